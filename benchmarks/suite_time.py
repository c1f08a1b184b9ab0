"""How long `make test` takes from a clean clone: read from the log of a `.ci/run`.

Run: ``python benchmarks/suite_time.py LOG [--note TEXT]`` on the output of
``git clone . /tmp/c && (cd /tmp/c && CI=true bash .ci/run) > LOG 2>&1``. Writes
``benchmarks/results_suite.md``, which ``run_all.py`` appends to ``RESULTS.md``.

The stages are the pytest runs of ``make test`` (each prints ``N passed ... in S s``), in the
order the Makefile runs them, and the book's pages executed before the build
(``scripts/prebuild_book.py`` prints ``prebuild: N page(s) executed ... in S s``); the build's
rendering prints no time, so its share is what is left of
``.ci/run``'s total (printed as ``ci: finished in S s``) after the timed stages and the install,
whose end is the first pytest line. The goal from issue 24 is a clean-clone ``make test`` in at
most 12 minutes on the 2-core machine, installs excluded.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results_suite.md"
# `make test`'s pytest runs, in order (see the Makefile's `test` target)
STAGES = ("unit tests", "notebooks (quick, nbval)", "notebooks untrained / badly trained",
          "site (browser)")
GOAL_S = 12 * 60
_SUMMARY = re.compile(r"^=*\s*(?:\x1b\[[0-9;]*m)?(\d+) passed.*? in ([\d.]+)s", re.M)
_TOTAL = re.compile(r"^ci: finished in (\d+) s", re.M)
_INSTALLED = re.compile(r"^ci: installed in (\d+) s", re.M)  # .ci/run: browser deps + venv
# scripts/prebuild_book.py's summary: the book's pages executed in parallel before the build
_PREBUILD = re.compile(r"^prebuild: (\d+) page\(s\) executed.*? in (\d+) s", re.M)


def parse(text: str) -> dict:
    """Stage seconds from a `.ci/run` log; raises ValueError naming what is missing."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    runs = [(int(n), float(s)) for n, s in _SUMMARY.findall(text)]
    total = _TOTAL.search(text)
    if total is None:
        raise ValueError("the log has no 'ci: finished in N s' line: did .ci/run finish?")
    if len(runs) != len(STAGES):
        raise ValueError(f"the log has {len(runs)} pytest summaries; `make test` runs "
                         f"{len(STAGES)} ({', '.join(STAGES)})")
    stages = [(name, n, s) for name, (n, s) in zip(STAGES, runs)]
    prebuild = _PREBUILD.search(text)
    if prebuild:  # the book's pages, executed before the (render-only) build
        stages.append(("book pages executed (prebuild, parallel)", int(prebuild.group(1)),
                       float(prebuild.group(2))))
    installed = _INSTALLED.search(text)
    return {"total": int(total.group(1)), "stages": stages,
            "installed": int(installed.group(1)) if installed else None}


def verdict(parsed: dict) -> str:
    """'met' or 'not met' for `make test` without the installs when the log times the installs
    apart (``ci: installed in N s``); otherwise 'met' when even the whole run fits the goal,
    'not met' when the timed stages alone exceed it, and undecided in between."""
    timed = sum(s for _, _, s in parsed["stages"])
    if parsed.get("installed") is not None:
        return "met" if parsed["total"] - parsed["installed"] <= GOAL_S else "not met"
    if parsed["total"] <= GOAL_S:
        return "met"
    if timed > GOAL_S:
        return "not met"
    return "not decided by this log (the install and the book build are timed together)"


def render(parsed: dict, note: str, date: str, machine: str) -> str:
    timed = sum(s for _, _, s in parsed["stages"])
    rows = [f"| {name} | {n} | {s / 60:.1f} |" for name, n, s in parsed["stages"]]
    installed = parsed.get("installed")
    rest = parsed["total"] - timed - (installed or 0)
    if installed is None:
        tail = [f"| install, tables check and the book build's rendering (not timed separately) "
                f"| | {rest / 60:.1f} |"]
        summary = f"The timed stages alone take {timed / 60:.1f} minutes"
    else:
        tail = [f"| tables check and the book build's rendering (not timed separately) | | "
                f"{rest / 60:.1f} |",
                f"| installs (browser, virtual environment; not part of the goal) | | "
                f"{installed / 60:.1f} |"]
        summary = (f"`make test` without the installs took "
                   f"{(parsed['total'] - installed) / 60:.1f} minutes")
    out = ["## 3. How long `make test` takes from a clean clone", "",
           f"Read by `benchmarks/suite_time.py` from the log of one `.ci/run` on a fresh clone, {date}, "
           f"{machine}. {note}".rstrip(), "",
           "| stage | tests | minutes |", "|---|---:|---:|", *rows, *tail,
           f"| **`.ci/run` in all** | | **{parsed['total'] / 60:.1f}** |", "",
           f"Goal (issue 24): `make test` from a clean clone in at most {GOAL_S // 60} minutes, "
           f"installs excluded. {summary}: {verdict(parsed)}.", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="output of a .ci/run on a clean clone")
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"error: no such log: {args.log}", file=sys.stderr)
        return 2
    try:
        parsed = parse(args.log.read_text(errors="replace"))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    OUT.write_text(render(parsed, args.note, datetime.date.today().isoformat(), machine))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
