"""``python -m diffnotes ...``: proofs, tables, train, sample, bench.

Each subcommand lives in a small function; wrong choices are answered by argparse with the list
of valid ones, and expected failures (a missing folder, a corrupt checkpoint) end with one line
on stderr and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UserError(Exception):
    """An error caused by the input, reported as one line."""


def cmd_tables(args) -> int:
    from .tables import check_tables, find_root, write_tables

    root = Path(args.root) if args.root else find_root()
    if args.check:
        problems = check_tables(root, args.names or None)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print(f"tables: {len(problems)} drifted; run `python -m diffnotes tables` and commit", file=sys.stderr)
            return 1
        print("tables: all current")
        return 0
    for path in write_tables(root, args.names or None):
        print(f"wrote {path.relative_to(root)}")
    return 0


def cmd_proofs(args) -> int:
    from .theory.proofs import run_all

    return run_all(names=args.names or None, verbose=args.verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m diffnotes", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tables", help="rewrite (or --check) every generated table of the book")
    p.add_argument("names", nargs="*", help="only these tables (default: all)")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on drift")
    p.add_argument("--root", help="repository root (default: found from the current folder)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("proofs", help="verify every derivation with SymPy")
    p.add_argument("names", nargs="*", help="only these proofs (default: all)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each proof's steps")
    p.set_defaults(func=cmd_proofs)

    import importlib

    try:  # the engine's commands (train, sample, bench) register themselves
        cli_engine = importlib.import_module("diffnotes.cli_engine")
    except ModuleNotFoundError as err:
        if err.name != "diffnotes.cli_engine":
            raise
    else:
        cli_engine.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
