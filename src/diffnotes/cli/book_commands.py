"""``tables`` (rewrite or --check every generated table) and ``proofs`` (verify every derivation)."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_tables(args) -> int:
    from ..tables import check_tables, find_root, write_tables

    root = Path(args.root) if args.root else find_root()
    if args.check:
        problems = check_tables(root, args.names or None)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print(f"tables: {len(problems)} drifted; run `python -m diffnotes tables` and commit",
                  file=sys.stderr)
            return 1
        print("tables: all current")
        return 0
    for path in write_tables(root, args.names or None):
        print(f"wrote {path.relative_to(root)}")
    return 0


def cmd_proofs(args) -> int:
    from ..theory.proofs import run_all

    return run_all(names=args.names or None, verbose=args.verbose)


def add_commands(sub) -> None:
    """Register ``tables`` and ``proofs``."""
    p = sub.add_parser("tables", help="rewrite (or --check) every generated table of the book")
    p.add_argument("names", nargs="*", help="only these tables (default: all)")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on drift")
    p.add_argument("--root", help="repository root (default: found from the current folder)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("proofs", help="verify every derivation with SymPy")
    p.add_argument("names", nargs="*", help="only these proofs (default: all)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each proof's steps")
    p.set_defaults(func=cmd_proofs)
