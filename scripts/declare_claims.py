"""One-off migration (2026-12-07): write ``src/diffnotes/data/claims.yaml`` from the stored records.

Before this date a claim was declared only inside its notebook, at the moment it was measured.
This script lifts every recorded claim into the registry -- its arms, direction and rule read
from the record's rule text -- adds the margins and tolerances that the new rules need (listed
below with their reasons, chosen on 2026-12-07 *after* the measurements: the page says so), and
collects from git history every earlier verdict a record was written with. New claims are
declared in the registry by hand, before their notebook measures them.

Run from the repository root: ``python scripts/declare_claims.py`` (it refuses to overwrite an
existing registry unless ``--force``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "notebooks" / "results"
OUT = ROOT / "src" / "diffnotes" / "data" / "claims.yaml"
MIGRATED = "2026-12-07"

KD_MARGIN = ("10 (kernel distance x 1e3): about four standard errors of the real-vs-real band "
             "at N = 120")
# (key, start of the claim text) -> the test and margin the new rules need, with the reason.
OVERRIDES = {
    ("jing2022subspace", "at equal training budget, subspace"): dict(
        test="noninferior", margin=10.0, why=KD_MARGIN),
    ("jing2022subspace", "with its small network trained longer"): dict(
        test="noninferior", margin=10.0, why=KD_MARGIN),
    ("luhman2022improving", "at equal training time, patch size 2"): dict(
        test="noninferior", margin=10.0, why=KD_MARGIN),
    ("luhman2022improving", "at equal training time, patch size 4"): dict(
        test="noninferior", margin=10.0, why=KD_MARGIN),
    ("ho2022classifier", "CFG samples are at least as close"): dict(
        test="noninferior", margin=10.0, why=KD_MARGIN.replace("120", "200")),
    ("ho2022classifier", "the implicit classifier guides at least as well"): dict(
        test="noninferior", margin=0.02, why="0.02 of the judge's accuracy (4 of 200 samples)"),
    ("abstreiter2021diffusion", "a diffusion encoder matches an autoencoder"): dict(
        test="equivalent", margin=0.02, why="0.02 of linear-probe accuracy"),
    ("kingma2021variational", "The schedule between fixed end points"): dict(
        tolerance=1.01, why="an identity of the exact loss, measured by a stratified "
        "estimator: a 1% band"),
    ("song2019sliced", "sliced SM (variance-reduced) is about as accurate"): dict(
        tolerance=1.25, why="'about as accurate': within 25%"),
    ("song2019sliced", "plain sliced SM (one Gaussian projection) is about as accurate"): dict(
        tolerance=1.25, why="'about as accurate': within 25%"),
}
RATIO_TOLERANCE = 1.5  # "about k times": a factor of 1.5 either way

PAIR = re.compile(r"^paired difference (.+) − (.+) ([<>]) 0 by > 2 se")
CURVE_X = re.compile(r" at each (.+)$")
THRESH = re.compile(r"^(.+) ([<>]) (.+) \(([-0-9.e+]+)\) by > 2 se")
RATIO = re.compile(r"^paper's factor (\S+) inside")


def slug(text: str, used: set) -> str:
    words = re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split()
    base = "-".join(words[:7]) or "claim"
    out, i = base, 2
    while out in used:
        out, i = f"{base}-{i}", i + 1
    used.add(out)
    return out


def declare(key: str, c: dict, used: set) -> dict:
    rule = c["rule"]
    d = {"id": slug(c["claim"], used), "claim": c["claim"], "metric": c["metric"],
         "paper": c.get("paper") or ""}
    if m := RATIO.match(rule):
        d.update(kind="ratio", paper_ratio=float(m.group(1)), tolerance=RATIO_TOLERANCE)
    elif m := PAIR.match(rule):
        d.update(kind="curve" if c.get("points") else "compare", arms=[m.group(1), m.group(2)],
                 better="lower" if m.group(3) == "<" else "higher", test="better")
        if c.get("points"):
            d["over"] = CURVE_X.search(rule).group(1)
    elif m := THRESH.match(rule):
        d.update(kind="threshold", arms=[m.group(1)], bound_name=m.group(3),
                 bound=float(m.group(4)), better="lower" if m.group(2) == "<" else "higher")
    else:
        raise SystemExit(f"{key}: cannot read the rule {rule!r}")
    for (k, start), extra in OVERRIDES.items():
        if k == key and c["claim"].startswith(start):
            d.update(extra)
            d["margin_declared"] = f"{MIGRATED}, after the measurement"
    arms = " ".join(d.get("arms", [])) + " " + c["metric"]
    d["control"] = ("in the claim (an untrained arm)" if "untrained" in arms.lower()
                    else "not measured")
    d["declared"] = f"{MIGRATED} (migrated from the notebook, after its measurement)"
    return d


def history(path: Path) -> dict:
    """claim text -> earlier verdicts, from every committed version of the record."""
    rel = path.relative_to(ROOT).as_posix()
    log = subprocess.run(["git", "log", "--format=%h %ad", "--date=short", "--", rel],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    current = {c["claim"]: c.get("verdict") for c in json.loads(path.read_text())["claims"]}
    out: dict = {}
    for line in log[1:]:  # skip the newest commit: that is the record itself
        if not line.strip():
            continue
        sha, date = line.split()
        text = subprocess.run(["git", "show", f"{sha}:{rel}"], cwd=ROOT, capture_output=True,
                              text=True).stdout
        if not text:
            continue
        for c in json.loads(text).get("claims", []):
            if c.get("verdict") and c["claim"] in current and c["verdict"] != current[c["claim"]]:
                out.setdefault(c["claim"], []).append(
                    {"date": date, "commit": sha, "verdict": c["verdict"],
                     "measured": c.get("measured", ""), "rule": c.get("rule", "")})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    if OUT.exists() and not args.force:
        print(f"error: {OUT.relative_to(ROOT)} exists; pass --force to rewrite it")
        return 2
    papers = {}
    for path in sorted(RECORDS.glob("*.json")):
        rec = json.loads(path.read_text())
        used: set = set()
        hist = history(path)
        decls = []
        for c in rec["claims"]:
            d = declare(rec["key"], c, used)
            if c["claim"] in hist:
                d["history"] = hist[c["claim"]]
            decls.append(d)
        papers[rec["key"]] = decls
    header = ("# Declared claims: what each lab measures, in which direction, under which rule.\n"
              "# Read by diffnotes.claims; the results page re-judges every stored record\n"
              "# against these declarations. Written first by scripts/declare_claims.py.\n")
    OUT.write_text(header + yaml.safe_dump(papers, sort_keys=False, allow_unicode=True,
                                           width=100), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {sum(map(len, papers.values()))} claims")
    return 0


if __name__ == "__main__":
    sys.exit(main())
