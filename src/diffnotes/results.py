"""Measured claims with error bars, their verdicts, and the generated ``book/results.md`` table.

A notebook measures each claim over several seeds and builds a :class:`Claim` with one of the
decision rules below; the rule, not the notebook, computes the verdict:

``compare(a, b)``
    Two arms measured with the same seeds (e.g. Heun and Euler at one budget). The per-seed
    differences ``a_i - b_i`` give a mean difference and its standard error ``se``. The claim
    "a is better than b" **holds** when the mean difference is better than zero by more than
    ``2 se``, **does not hold** when it is worse by more than ``2 se``, and is **within noise**
    otherwise.
``threshold(values, bound)``
    One arm against a fixed number (e.g. uniform coding at log2 17 bits/dim): the same rule with
    ``b`` the constant.
``ratio(num, den, paper_ratio)``
    A paper's "about k times": the per-seed ratios give ``mean ± 2 se``; the claim **holds** when
    that interval contains the paper's factor and **does not hold** otherwise. No hand-set window.
``curve(xs, a, b)``
    A claim about a curve (e.g. error against NFE): ``compare`` at every point, and the verdict
    says at which points it holds ("holds" only when it holds at all of them, "mixed" when the
    points disagree).

A claim needs at least :data:`MIN_SEEDS` seeds to be judged. Under the ``quick`` profile (CI) a
notebook may use fewer, and the verdict is then "not judged at quick"; under ``full`` or ``gpu``
fewer seeds is an error.

A notebook calls :func:`record` **after** its checks (asserts). Outside ``quick`` the record is
written to ``notebooks/results/<key>.json`` (``gpu`` runs: ``notebooks/results/gpu/<key>.json``, a
separate set); ``quick`` runs write under ``_build/results/`` so that a test run never rewrites
the committed numbers. ``record`` prints a digest of the claims;
a test compares that digest in the notebook's stored output with the committed JSON, so a record
cannot drift from the outputs the site shows.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .markdown import cell
from .profiles import get_profile

RESULTS_DIR = Path("notebooks") / "results"
QUICK_DIR = Path("_build") / "results"
GPU_DIR = RESULTS_DIR / "gpu"  # the gpu profile's own set: it never overwrites the full records

MIN_SEEDS = 3
"""Fewest seeds a verdict may rest on."""

Z = 2.0
"""A difference counts when it exceeds ``Z`` standard errors (about a 95% interval)."""

HOLDS, FAILS, NOISE, MIXED, UNJUDGED = (
    "holds", "does not hold", "within noise", "mixed", "not judged at quick",
)
VERDICTS = (HOLDS, FAILS, NOISE, MIXED, UNJUDGED)


def seeds(profile=None, *, quick: int = 1, full: int = MIN_SEEDS) -> tuple[int, ...]:
    """The seeds a notebook runs each measurement with: ``full`` ≥ :data:`MIN_SEEDS`."""
    profile = profile or get_profile()
    n = profile.pick(quick=quick, full=full)
    if not profile.is_quick and n < MIN_SEEDS:
        raise ValueError(f"seeds: full={n} is below MIN_SEEDS={MIN_SEEDS}")
    return tuple(range(n))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (``nan`` error for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_se: no values")
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return mean, math.sqrt(var / n)


def fmt_mean_se(values: Sequence[float], digits: int = 3) -> str:
    """``0.719 ± 0.003`` (or just the value for a single seed)."""
    mean, se = mean_se(values)
    if math.isnan(se):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {se:.2g}"


@dataclass
class Claim:
    """One reproduced claim: the paper's statement, what was measured over which seeds, the
    decision rule in words, and the verdict that rule computed."""

    claim: str  # the paper's claim in a few words, e.g. "Heun beats Euler at equal NFE"
    metric: str  # what was measured, e.g. "sliced W2 at 35 NFE (Heun / Euler)"
    values: dict[str, list[float]]  # per arm, one value per seed
    verdict: str
    rule: str  # the decision rule, e.g. "Heun - Euler < -2 se over 3 seeds"
    measured: str  # display: "0.719 ± 0.003 vs 0.725 ± 0.002"
    paper: str = ""  # the paper's number and its table, or "qualitative (Sec. 3)"
    points: list[dict] = field(default_factory=list)  # per-point verdicts of a curve

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")


def _as_list(name: str, values) -> list[float]:
    try:
        vals = [float(v) for v in values]
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of numbers, got {values!r}") from None
    if not vals:
        raise ValueError(f"{name}: no values")
    if any(math.isnan(v) for v in vals):
        raise ValueError(f"{name}: contains NaN ({vals})")
    return vals


def _enough(n: int, what: str) -> bool:
    """False when too few seeds under quick; an error under full/gpu."""
    if n >= MIN_SEEDS:
        return True
    if get_profile().is_quick:
        return False
    raise ValueError(f"{what}: {n} seed(s) under the full profile; at least {MIN_SEEDS} needed")


def _sign_verdict(mean: float, se: float, better: str) -> str:
    """Verdict for "difference is better than 0" with the ``Z``-standard-error rule."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}; valid: 'lower', 'higher'")
    d = mean if better == "higher" else -mean  # positive = the claim's direction
    if d - Z * se > 0:
        return HOLDS
    if d + Z * se < 0:
        return FAILS
    return NOISE


def _diff_verdict(a: list[float], b: list[float], better: str, claim: str) -> str:
    if len(a) != len(b):
        raise ValueError(f"{claim!r}: arms have {len(a)} and {len(b)} seeds; pair them by seed")
    if not _enough(len(a), claim):
        return UNJUDGED
    mean, se = mean_se([x - y for x, y in zip(a, b)])
    return _sign_verdict(mean, se, better)


def compare(claim: str, metric: str, a, b, *, names=("a", "b"), better: str = "lower",
            paper: str = "") -> Claim:
    """Claim "arm ``a`` is better than arm ``b``" (``better``: "lower" or "higher" is better),
    judged on per-seed paired differences."""
    a, b = _as_list(names[0], a), _as_list(names[1], b)
    verdict = _diff_verdict(a, b, better, claim)
    rule = (f"paired difference {names[0]} − {names[1]} {'<' if better == 'lower' else '>'} 0 "
            f"by > {Z:g} se over {len(a)} seeds")
    measured = f"{fmt_mean_se(a)} vs {fmt_mean_se(b)}"
    return Claim(claim, metric, {names[0]: a, names[1]: b}, verdict, rule, measured, paper)


def threshold(claim: str, metric: str, values, bound: float, *, name: str = "measured",
              bound_name: str = "bound", better: str = "lower", paper: str = "") -> Claim:
    """Claim "the measured value is better than the fixed number ``bound``"."""
    vals = _as_list(name, values)
    if math.isnan(float(bound)):
        raise ValueError(f"{claim!r}: bound is NaN")
    verdict = _diff_verdict(vals, [float(bound)] * len(vals), better, claim)
    rule = (f"{name} {'<' if better == 'lower' else '>'} {bound_name} ({float(bound):.4g}) "
            f"by > {Z:g} se over {len(vals)} seeds")
    return Claim(claim, metric, {name: vals}, verdict, rule, fmt_mean_se(vals), paper)


def ratio(claim: str, metric: str, num, den, *, paper_ratio: float, names=("num", "den"),
          paper: str = "") -> Claim:
    """Claim "``num`` is about ``paper_ratio`` times ``den``": holds when the per-seed ratio's
    mean ± ``Z`` se contains the paper's factor."""
    num, den = _as_list(names[0], num), _as_list(names[1], den)
    if len(num) != len(den):
        raise ValueError(f"{claim!r}: {len(num)} and {len(den)} seeds; pair them by seed")
    if any(d == 0 for d in den):
        raise ValueError(f"{claim!r}: a denominator is zero")
    ratios = [x / y for x, y in zip(num, den)]
    mean, se = mean_se(ratios)
    if not _enough(len(ratios), claim):
        verdict = UNJUDGED
    else:
        verdict = HOLDS if mean - Z * se <= paper_ratio <= mean + Z * se else FAILS
    interval = "" if math.isnan(se) else f" [{mean - Z * se:.3g}, {mean + Z * se:.3g}]"
    rule = f"paper's factor {paper_ratio:g} inside ratio mean ± {Z:g} se over {len(ratios)} seeds"
    values = {names[0]: num, names[1]: den, "ratio": ratios}
    measured = f"ratio {fmt_mean_se(ratios)}{interval} (paper {paper_ratio:g})"
    return Claim(claim, metric, values, verdict, rule, measured, paper)


def curve(claim: str, metric: str, xs, a, b, *, names=("a", "b"), better: str = "lower",
          x_name: str = "x", paper: str = "") -> Claim:
    """Claim "``a`` is better than ``b``" along a curve: ``a[i]``, ``b[i]`` hold the per-seed
    values at ``xs[i]``. The verdict names the points where it holds."""
    if not (len(xs) == len(a) == len(b)) or not xs:
        raise ValueError(f"{claim!r}: xs, a and b need the same, non-zero length")
    points, verdicts = [], []
    for x, ai, bi in zip(xs, a, b):
        ai, bi = _as_list(f"{names[0]} at {x}", ai), _as_list(f"{names[1]} at {x}", bi)
        v = _diff_verdict(ai, bi, better, claim)
        verdicts.append(v)
        points.append({x_name: x, "verdict": v, names[0]: ai, names[1]: bi,
                       "measured": f"{fmt_mean_se(ai)} vs {fmt_mean_se(bi)}"})
    if UNJUDGED in verdicts:
        verdict = UNJUDGED
    elif len(set(verdicts)) == 1:
        verdict = verdicts[0]
    else:
        verdict = MIXED
    by_verdict = {}
    for x, v in zip(xs, verdicts):
        by_verdict.setdefault(v, []).append(str(x))
    measured = "; ".join(f"{v} at {x_name} {', '.join(v_xs)}" for v, v_xs in by_verdict.items())
    rule = (f"paired difference {names[0]} − {names[1]} {'<' if better == 'lower' else '>'} 0 "
            f"by > {Z:g} se at each {x_name}")
    values = {f"{n} at {x}": list(map(float, vals)) for n, arm in zip(names, (a, b))
              for x, vals in zip(xs, arm)}
    return Claim(claim, metric, values, verdict, rule, measured, paper, points)


# ---------------------------------------------------------------- records


def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}"
    except Exception:  # pragma: no cover - torch missing is not our problem here
        pass
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def _repo_root() -> Path:
    from .markdown import find_root

    return find_root()


def claims_digest(claims: list[dict]) -> str:
    """A short hash of the claims as stored in JSON (what the stored output must print)."""
    text = json.dumps(claims, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_path(key: str, *, root: Path | None = None) -> Path:
    """Where :func:`record` writes ``key``'s claims under the current profile."""
    profile = get_profile()
    root = root or _repo_root()
    folder = QUICK_DIR if profile.is_quick else GPU_DIR if profile.name == "gpu" else RESULTS_DIR
    return root / folder / f"{key}.json"


def record(key: str, claims: list[Claim], *, root: Path | None = None) -> None:
    """Write this notebook's claims (to :func:`record_path`), print them and their digest.
    Call it after the notebook's checks; it returns nothing, so a notebook's last cell shows
    no machine path."""
    if not claims:
        raise ValueError(f"record({key!r}): no claims given")
    if not all(isinstance(c, Claim) for c in claims):
        raise ValueError(f"record({key!r}): claims must be built with compare/threshold/ratio/curve")
    profile = get_profile()
    path = record_path(key, root=root)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(json.dumps([asdict(c) for c in claims]))
    payload = {
        "key": key,
        "profile": profile.name,
        "date": _dt.date.today().isoformat(),
        "machine": _machine(),
        "claims": stored,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    for c in claims:
        print(f"- {c.claim}: {c.verdict} — {c.measured}")
    print(f"recorded {key}: {len(claims)} claims, digest {claims_digest(stored)}")


def load_records(root: Path | None = None) -> list[dict]:
    root = root or _repo_root()
    folder = root / RESULTS_DIR
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def _cell(text) -> str:
    """A Markdown table cell (the package's one escaper)."""
    return cell(_fmt(text))


def _row_parts(c: dict) -> tuple[str, str, str]:
    """(measured, seeds, verdict) of a stored claim; a claim from before verdicts existed (one
    seed, a hand-set yes/no) is shown as not judged."""
    if "verdict" not in c:
        return _fmt(c.get("measured", "")), "1", "not judged (one seed; to be re-run)"
    lengths = [len(v) for v in c.get("values", {}).values()]
    n = str(min(lengths)) if lengths else "–"
    verdict = c["verdict"] if c["verdict"] != FAILS else f"**{FAILS}**"
    return c["measured"], n, verdict


def render_results_table(root: Path | None = None) -> str:
    records = load_records(root)
    if not records:
        return "*No notebook has recorded results yet.*\n"
    lines = [
        "| paper | claim | measured | ours (mean ± se) | seeds | paper's number | verdict | "
        "profile, date, machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        for c in rec["claims"]:
            measured, n, verdict = _row_parts(c)
            lines.append(
                f"| {{cite:t}}`{rec['key']}` | {_cell(c['claim'])} | {_cell(c['metric'])} | "
                f"{_cell(measured)} | {n} | {_cell(c.get('paper') or '–')} | {verdict} | "
                f"{rec['profile']}, {rec['date']}, {rec['machine']} |"
            )
    return "\n".join(lines) + "\n"


def _generated_tables():
    from .markdown import GeneratedTable

    return [GeneratedTable("results", render_results_table, "notebooks/results/*.json")]


GENERATED_TABLES = _generated_tables()
