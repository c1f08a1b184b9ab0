"""``bench``: run the performance scripts in ``benchmarks/``."""

from __future__ import annotations

import subprocess
import sys

from .args import UserError


def _select(folder, names):
    scripts = sorted(folder.glob("bench_*.py"))
    if names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in names}
        unknown = sorted(wanted - {s.stem for s in scripts})
        if unknown:
            valid = ", ".join(s.stem for s in scripts)
            raise UserError(f"unknown benchmark(s) {unknown}; valid: {valid}")
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        raise UserError(f"no benchmarks/bench_*.py scripts in {folder}")
    return scripts


def cmd_bench(args) -> int:
    from ..tables import find_root

    folder = find_root() / "benchmarks"
    scripts = _select(folder, args.names)
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=folder.parent).returncode:
            failed.append(script.name)
    note = f" ({', '.join(failed)})" if failed else ""
    print(f"bench: {len(scripts) - len(failed)} ran, {len(failed)} failed{note}")
    return 1 if failed else 0


def add_commands(sub) -> None:
    """Register ``bench``."""
    p = sub.add_parser("bench", help="run the performance scripts in benchmarks/")
    p.add_argument("names", nargs="*", help="only these (e.g. train); default: all")
    p.set_defaults(func=cmd_bench)
