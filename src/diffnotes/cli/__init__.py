"""``python -m diffnotes ...``: proofs, tables, train, sample, bench.

One module per group of commands, each registering its subcommand on the parser that
:mod:`diffnotes.cli.main` builds; :mod:`diffnotes.cli.args` holds the one-line error reporting
and the argument types that check ranges. Imports run one way: ``main`` imports the command
modules, the command modules import ``args`` and the engine, and nothing imports ``main`` back.
"""

from .args import UserError
from .main import build_parser, main

__all__ = ["UserError", "build_parser", "main"]
