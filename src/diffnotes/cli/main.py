"""The parser of ``python -m diffnotes`` and its entry point ``main(argv)``."""

from __future__ import annotations

from . import bench_command, book_commands, leaderboard_command, sample_command, train_command
from .args import Parser, UserError, fail


def build_parser() -> Parser:
    parser = Parser(prog="python -m diffnotes",
                    description="proofs, tables, train, sample, bench, leaderboard")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (book_commands, train_command, sample_command, bench_command,
                   leaderboard_command):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input ends in one ``error:`` line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as err:
        return fail(str(err))
