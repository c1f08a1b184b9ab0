"""The shape of a proof: a statement, its steps, and a check that SymPy (or mpmath) can run.

Every derivation the book shows is a :class:`Proof`. ``python -m diffnotes proofs`` verifies all
of them; ``book/questions.md`` displays each statement (glued at build time) next to its status.

The checks every proof module shares live here, once: ``symbolic_zero`` (SymPy's ``simplify``
decides), ``rational_zero`` (a fast rational normal form, ``cancelled``, with an optional random
-point refutation first and ``symbolic_zero`` as an optional last resort), ``numeric_check``
(agreement at random points in high precision) and ``combine`` (several checks that must all
hold, as one result).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import mpmath
import sympy as sp

from ..processes import tex

__all__ = ["Proof", "ProofResult", "symbolic_zero", "rational_zero", "cancelled", "combine",
           "numeric_check"]


@dataclass(frozen=True)
class ProofResult:
    """Outcome of a proof's check.

    ``method`` is ``"symbolic"`` (an exact SymPy simplification to zero) or ``"numeric"`` (agreement
    at random points in high precision, which is evidence, not a proof; the book labels it so).
    ``residual`` is ``"0"`` when the check holds and otherwise the expression (or worst error)
    that did not vanish.
    """

    ok: bool
    method: str
    residual: str = "0"

    def __post_init__(self):
        if self.method not in ("symbolic", "numeric"):
            raise ValueError(f"ProofResult.method must be 'symbolic' or 'numeric', got {self.method!r}")


@dataclass
class Proof:
    """One derivation: ``statement`` is LaTeX, ``steps`` a list of (text, SymPy expr or LaTeX str).

    ``check`` takes no argument and returns a :class:`ProofResult`; :meth:`verify` runs it and keeps
    the outcome in ``.result`` (``None`` until verified).
    """

    name: str
    title: str
    statement: str
    steps: list[tuple[str, object]]
    check: Callable[[], ProofResult]
    result: ProofResult | None = field(default=None, compare=False)

    def verify(self) -> bool:
        result = self.check()
        if not isinstance(result, ProofResult):
            raise TypeError(f"proof {self.name!r}: check() must return a ProofResult, got {type(result).__name__}")
        self.result = result
        return result.ok

    def steps_latex(self) -> list[tuple[str, str]]:
        """The steps with every SymPy object rendered as LaTeX (strings pass through)."""
        out = []
        for text, expr in self.steps:
            if expr is None:
                out.append((text, ""))
            elif isinstance(expr, str):
                out.append((text, expr))
            else:
                out.append((text, tex(expr, symbol_names=_raw_names(expr))))
        return out


def _raw_names(expr) -> dict:
    """Symbols whose names are already LaTeX (a backslash, ^ or braces) print verbatim: SymPy
    would otherwise read ``2fs^2\\sigma^2 + g^2`` as one base with one superscript."""
    symbols = getattr(expr, "free_symbols", set())
    return {s: s.name for s in symbols if any(c in s.name for c in "\\^{")}


def _as_exprs(expr) -> list[sp.Expr]:
    if isinstance(expr, sp.Equality):
        return [expr.lhs - expr.rhs]
    if isinstance(expr, (list, tuple)):
        return [e for item in expr for e in _as_exprs(item)]
    if isinstance(expr, sp.MatrixBase):
        return list(expr)
    return [sp.sympify(expr)]


def symbolic_zero(expr) -> ProofResult:
    """Check that ``expr`` (an expression, an ``Eq``, a Matrix or a list of them) is identically 0.

    Tries ``simplify``, then ``simplify(expand(...))`` and ``cancel(together(...))``; if none gives 0
    the residual is the simplest nonzero form found.
    """
    residuals = []
    for e in _as_exprs(expr):
        r = sp.simplify(e)
        if r != 0:
            r2 = sp.simplify(sp.expand(r))
            if r2 != 0:
                r3 = sp.cancel(sp.together(sp.expand(r2)))
                if r3 != 0:
                    residuals.append(r2)
    if residuals:
        return ProofResult(False, "symbolic", "; ".join(str(r) for r in residuals))
    return ProofResult(True, "symbolic", "0")


def cancelled(expr) -> sp.Expr:
    """``expr`` in a rational normal form, ``cancel(together(expand(expr)))``: it is 0 exactly
    when ``expr`` is identically 0 as a rational function of its symbols and other atoms."""
    return sp.cancel(sp.together(sp.expand(expr)))


def _refuted(expr, symbols, points: int = 5) -> str | None:
    """Where ``expr`` is off 0 at one of ``points`` random positive rationals (seed 0), if anywhere."""
    rng = random.Random(0)
    for _ in range(points):
        point = {v: sp.Rational(rng.randint(1, 400), rng.randint(1, 60)) for v in symbols}
        value = complex(sp.N(expr.subs(point), 30))
        if abs(value) > 1e-12:
            return f"{value:.3g} at {point}"
    return None


def rational_zero(expr, *, slow: bool = False, refute_at=None) -> ProofResult:
    """Check that ``expr`` (an expression, an ``Eq``, a Matrix or a list of them) is identically 0,
    fast: each item must have ``cancelled(item) == 0``.

    ``refute_at`` (symbols): first evaluate each item at random positive rational values of
    them; a value off 0 fails the check at once, naming the point (a quick answer for a false
    statement that the algebra would take long to reject). ``slow=True``: a rest that
    ``cancelled`` leaves goes on to :func:`symbolic_zero` (``simplify`` and friends) before the
    check fails. The residual is ``"0"`` or the rests, joined by ``"; "``.
    """
    items = _as_exprs(expr)
    if refute_at is not None:
        for e in items:
            where = _refuted(e, refute_at)
            if where is not None:
                return ProofResult(False, "symbolic", where)
    rests = [r for r in map(cancelled, items) if r != 0]
    if rests and slow:
        return symbolic_zero(rests)
    if rests:
        return ProofResult(False, "symbolic", "; ".join(str(r) for r in rests))
    return ProofResult(True, "symbolic", "0")


def combine(*results: ProofResult) -> ProofResult:
    """Several checks as one: it holds when all hold; its residual joins the failing ones'
    residuals with ``"; "``; its method is ``"numeric"`` when any part is numeric evidence."""
    bad = [r.residual for r in results if not r.ok]
    method = "numeric" if any(r.method == "numeric" for r in results) else "symbolic"
    return ProofResult(not bad, method, "0" if not bad else "; ".join(bad))


def numeric_check(
    f_lhs: Callable[..., object],
    f_rhs: Callable[..., object],
    sampler: Callable[[random.Random], Sequence[object]],
    n: int = 20,
    dps: int = 30,
    tol: float | None = None,
    seed: int = 0,
) -> ProofResult:
    """Compare ``f_lhs(*args)`` and ``f_rhs(*args)`` at ``n`` (>= 20) random points in mpmath.

    ``sampler(rng)`` returns the argument tuple for one point (values may be floats; they are
    converted to ``mpmath.mpf`` at ``dps`` digits). The check holds when the relative error
    ``|lhs - rhs| / max(1, |lhs|)`` stays below ``tol`` (default ``10**(-(dps - 5))``).
    """
    if n < 20:
        raise ValueError(f"numeric_check needs n >= 20 random points, got n={n}")
    tol = mpmath.mpf(10) ** (-(dps - 5)) if tol is None else mpmath.mpf(tol)
    rng = random.Random(seed)
    worst = mpmath.mpf(0)
    with mpmath.workdps(dps):
        for _ in range(n):
            args = [mpmath.mpf(a) if isinstance(a, (int, float)) else a for a in sampler(rng)]
            lhs, rhs = f_lhs(*args), f_rhs(*args)
            err = abs(lhs - rhs) / max(mpmath.mpf(1), abs(lhs))
            worst = max(worst, err)
        ok = worst < tol
        return ProofResult(bool(ok), "numeric", "0" if ok else mpmath.nstr(worst, 5))
