"""Every derivation of the book as a :class:`~diffnotes.theory.proofs.base.Proof`.

Proofs come from ``processes_proofs`` (forward processes), ``score_proofs`` (scores,
parameterizations, reverse processes), ``derivations`` (the steps each paper chapter shows) and one
``<area>_proofs.py`` module per later group of chapters (found by its name); each module defines
``PROOFS``. ``python -m diffnotes
proofs`` calls :func:`run_all`; ``book/questions.md`` renders every proof via :func:`all_proofs`.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .base import Proof, ProofResult, numeric_check, symbolic_zero

__all__ = ["Proof", "ProofResult", "symbolic_zero", "numeric_check", "all_proofs", "get_proof", "run_all"]


# The part-1 modules, in the order the book introduces them; any further ``<area>_proofs.py``
# module in this package (one per group of chapters) is found by name and follows, sorted.
_CORE = ("processes_proofs", "score_proofs", "derivations", "coding_proofs", "compression_proofs")


def _module_names() -> list[str]:
    here = Path(__file__).parent
    extra = sorted(f.stem for f in here.glob("*_proofs.py") if f.stem not in _CORE)
    return [*_CORE, *extra]


def _load() -> list[Proof]:
    # SymPy work happens on first use, not on import of the package.
    proofs: list[Proof] = []
    for name in _module_names():
        proofs += importlib.import_module(f"{__name__}.{name}").PROOFS
    names = [p.name for p in proofs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RuntimeError(f"duplicate proof names: {', '.join(dupes)}")
    return proofs


_CACHE: list[Proof] | None = None


def all_proofs() -> list[Proof]:
    """All proofs, in registry order (processes first, then scores)."""
    global _CACHE
    if _CACHE is None:
        _CACHE = _load()
    return list(_CACHE)


def get_proof(name: str) -> Proof:
    """The proof called ``name``; a ``ValueError`` lists the valid names otherwise."""
    for p in all_proofs():
        if p.name == name:
            return p
    valid = ", ".join(p.name for p in all_proofs())
    raise ValueError(f"unknown proof {name!r}; valid names: {valid}")


def run_all(names=None, verbose: bool = False, proofs=None) -> int:
    """Verify proofs (all, or those in ``names``), print one line each and a summary.

    The last line is exactly ``proofs: N verified, M failed``. Returns 0 iff nothing failed.
    ``proofs`` lets tests pass their own list instead of the registry.
    """
    if proofs is None:
        proofs = [get_proof(n) for n in names] if names else all_proofs()
    n_ok = n_fail = 0
    for p in proofs:
        t0 = time.perf_counter()
        try:
            ok = p.verify()
            res = p.result
        except Exception as err:  # a crashing check is a failed proof, reported, not a traceback
            ok, res = False, ProofResult(False, "symbolic", f"{type(err).__name__}: {err}")
            p.result = res
        dt = time.perf_counter() - t0
        if ok:
            n_ok += 1
            print(f"  ok   {p.name}  ({res.method}, {dt:.2f} s)  {p.title}")
        else:
            n_fail += 1
            print(f"  FAIL {p.name}  ({res.method}, {dt:.2f} s)  {p.title}  residual: {res.residual}")
        if verbose:
            for text, expr in p.steps_latex():
                print(f"         {text}" + (f": {expr}" if expr else ""))
    print(f"proofs: {n_ok} verified, {n_fail} failed")
    return 0 if n_fail == 0 else 1
