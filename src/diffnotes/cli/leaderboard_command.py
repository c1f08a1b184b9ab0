"""``leaderboard``: train (or reuse) and score the book's generative methods at equal budget.

Writes its cache under ``_build/leaderboard/<profile>/`` (a rerun resumes; a corrupted or stale
entry is rebuilt with one line saying so) and, under ``full`` with every row, the stored results
``src/diffnotes/data/leaderboard_full.json`` that the book's table is generated from.
"""

from __future__ import annotations

import time

from .args import UserError


def cmd_leaderboard(args) -> int:
    from .. import leaderboard as lb
    from ..profiles import get_profile

    args.profile = get_profile(args.profile).name
    unknown = [k for k in args.only or [] if k not in lb.ROWS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(lb.ROWS)}")
    if args.data_root is not None and args.profile != "gpu":
        raise UserError(f"--data-root is for --profile gpu only (got {args.profile}); "
                        "quick and full use the digits")
    if args.profile == "gpu" and args.data_root is None:
        raise UserError("--profile gpu needs --data-root, a folder of class subfolders of images "
                        "(an ImageFolder such as CIFAR-10's)")
    start = time.perf_counter()
    try:
        results = lb.run(args.profile, args.only, args.data_root)
    except FileNotFoundError as err:
        raise UserError(str(err).splitlines()[0]) from None
    rows = len(results)
    cpu_min = lb.total_cpu_seconds(results) / 60
    print(f"leaderboard ({args.profile}): {rows} rows in {time.perf_counter() - start:.0f} s; "
          f"the table cost {cpu_min:.1f} CPU minutes in all (training and scoring, over every "
          f"run that built the cache); cache {lb.cache_dir(args.profile)}")
    return 0


def add_commands(sub) -> None:
    """Register ``leaderboard``."""
    from ..profiles import PROFILES

    p = sub.add_parser("leaderboard", help="the notes' table, measured: every generative method "
                                           "at equal budget (cached, resumable)")
    p.add_argument("--profile", choices=PROFILES,
                   help="budget (default: $DIFFNOTES_PROFILE or full): quick (CI, under a "
                        "minute), full (the book's table), gpu (larger nets on --data-root)")
    p.add_argument("--only", nargs="+", metavar="METHOD",
                   help="only these rows (default: all); e.g. ddpm edm")
    p.add_argument("--data-root", dest="data_root",
                   help="gpu only: a folder of class subfolders of images (e.g. CIFAR-10)")
    p.set_defaults(func=cmd_leaderboard)
