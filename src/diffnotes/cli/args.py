"""Argument parsing that answers bad input with one line: what was wrong and what is valid.

``Parser`` reports every parse error (a wrong choice, a missing option, a value out of range) as
one ``error: ...`` line on stderr and exit code 2, before any command runs, so nothing is written.
The argument types below check ranges at parse time; ``UserError`` is for the failures a command
finds later (a missing folder, a corrupt checkpoint).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

__all__ = ["UserError", "Parser", "int_at_least", "positive_float", "device"]


class UserError(Exception):
    """An error caused by the input, reported as one line."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block).

    It also reads ``-1e-3`` as a (negative) value rather than an unknown option, so that the
    range check, not "expected one argument", answers it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-inf$")

    def error(self, message):  # noqa: D102 - argparse's hook
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; valid: cpu, cuda, cuda:N")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r} needs CUDA, which this torch build or machine does not have; valid here: cpu")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {count} CUDA device(s); valid: cpu, cuda, cuda:0..cuda:{count - 1}")
    return text


def fail(message: str):
    """Print one ``error:`` line and return the exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2
