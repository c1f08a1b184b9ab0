"""Adaptive SDE solvers: the derivations of the Gotta Go Fast chapter (Jolicoeur-Martineau et al. 2021).

Why the difference between the improved-Euler and the Euler-Maruyama step estimates the local
error, where the step-size controller settles and when it gets there, and why the error is
measured with an l2 norm scaled by the tolerance and by the number of coordinates. The engine's
solver is ``diffnotes.methods.gotta_go_fast``; each check below takes a parameter that states
something false, and ``tests/test_proofs_adaptive.py`` makes sure it then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, rational_zero, symbolic_zero

__all__ = ["PROOFS", "local_error_check", "controller_check", "scale_invariance_check"]


def _order(expr, h, n: int) -> ProofResult:
    """``expr`` is O(h^n) as h -> 0: its series has no term below h^n."""
    low = sp.series(sp.simplify(expr), h, 0, n).removeO()
    return symbolic_zero(low)


# =============================================================================================
# The local error estimate on a linear SDE (Ornstein-Uhlenbeck step)
# =============================================================================================
def local_error_check(heun_weight=sp.Rational(1, 2)) -> ProofResult:
    """dy = a y dtau + b dW, one step of size h, one shared draw z ~ N(0, 1).

    Checks: (1) y'' - y' = a^2 h^2 y / 2 + a b h^(3/2) z / 2 exactly; (2) the exact conditional
    mean e^(a h) y minus the Euler-Maruyama mean equals the drift part of y'' - y' up to O(h^3),
    and the Heun mean is O(h^3) from it; (3) the Heun variance is O(h^3) from the exact variance
    b^2 (e^(2 a h) - 1) / (2 a), Euler-Maruyama's only O(h^2). ``heun_weight`` != 1/2 states a
    wrong trapezoid and must fail.
    """
    a, b, y, z = sp.symbols("a b y z", real=True)
    h = sp.Symbol("h", positive=True)
    y_em = y + h * a * y + b * sp.sqrt(h) * z
    y_heun = y + h * ((1 - heun_weight) * a * y + heun_weight * a * y_em) + b * sp.sqrt(h) * z
    difference = sp.expand(y_heun - y_em)
    stated = a**2 * h**2 * y / 2 + a * b * h**sp.Rational(3, 2) * z / 2
    exact_mean, exact_var = sp.exp(a * h) * y, b**2 * (sp.exp(2 * a * h) - 1) / (2 * a)
    mean_em, mean_heun = y_em.subs(z, 0), y_heun.subs(z, 0)
    var_em = sp.expand(y_em - mean_em).coeff(z) ** 2
    var_heun = sp.expand(y_heun - mean_heun).coeff(z) ** 2
    drift_part = difference.subs(z, 0)
    return combine(
        symbolic_zero(difference - stated),
        _order(exact_mean - mean_em - drift_part, h, 3),
        _order(exact_mean - mean_heun, h, 3),
        _order(exact_var - var_heun, h, 3),
        symbolic_zero(sp.series(exact_var - var_em, h, 0, 3).removeO() - a * b**2 * h**2),
    )


LOCAL_ERROR = Proof(
    name="heun_euler_local_error",
    title="The Heun minus Euler-Maruyama difference is the Euler-Maruyama step's leading error",
    statement=(r"\mathrm{d}y = a\,y\,\mathrm{d}\tau + b\,\mathrm{d}W:\quad y'' - y' = \tfrac{1}{2}a^2h^2\,y"
               r" + \tfrac{1}{2}ab\,h^{3/2}z,\qquad e^{ah}y - \mathbb{E}[y'] = \tfrac{1}{2}a^2h^2\,y + O(h^3),"
               r"\qquad e^{ah}y - \mathbb{E}[y''] = O(h^3),\qquad \mathrm{Var}_{\rm exact} - \mathrm{Var}[y'']"
               r" = O(h^3)"),
    steps=[
        ("Euler-Maruyama: y' = y + h a y + b sqrt(h) z. Improved Euler with the same z: "
         "y'' = y + (h/2)(a y + a y') + b sqrt(h) z.", None),
        ("Their difference is (h/2) a (y' - y): a drift part a^2 h^2 y / 2 and a noise part "
         "a b h^(3/2) z / 2. With a time-dependent g the paper's k2 adds (g(t - h) - g(t)) sqrt(h) z / 2, "
         "also O(h^(3/2)).", None),
        ("The exact step has mean e^(a h) y = y (1 + a h + a^2 h^2 / 2 + ...): Euler-Maruyama misses the "
         "a^2 h^2 y / 2 term, which is the drift part of the difference; the Heun mean matches to O(h^3).", None),
        ("The exact variance b^2 (e^(2ah) - 1) / (2a) = b^2 h (1 + a h + ...) is matched by Heun's "
         "b^2 h (1 + a h / 2)^2 to O(h^3) and by Euler-Maruyama's b^2 h only to O(h^2): keeping y'' "
         "(extrapolation) keeps the more accurate of the two.", None),
        ("Checked by SymPy series in h, with symbolic a, b, y, z.", None),
    ],
    check=local_error_check,
)


# =============================================================================================
# The step-size controller's fixed point and its stability
# =============================================================================================
def controller_check(claimed_slope_sign=1) -> ProofResult:
    """Error model E(h) = C h^q, update h' = theta h E^(-r).

    Checks: h* = (theta^(1/r) / C)^(1/q) is a fixed point with E(h*) = theta^(1/r); the map in
    u = log h is affine with slope 1 - r q (so it converges when 0 < r q < 2); at the paper's
    theta = r = 0.9 and q = 2 the slope is -0.8 and E* < 1 (steps at the fixed point are
    accepted). ``claimed_slope_sign=-1`` states the slope 1 + r q and must fail.
    """
    theta, r, q, C, h, u = sp.symbols("theta r q C h u", positive=True)
    error = C * h**q
    update = theta * h * error ** (-r)
    h_star = (theta ** (1 / r) / C) ** (1 / q)
    log_map = sp.expand_log(sp.log(update.subs(h, sp.exp(u))), force=True)
    slope = sp.diff(log_map, u)
    paper = {theta: sp.Rational(9, 10), r: sp.Rational(9, 10), q: 2}
    e_star = (theta ** (1 / r)).subs(paper)
    checks = [
        symbolic_zero(sp.simplify(update.subs(h, h_star) - h_star)),
        symbolic_zero(sp.simplify(error.subs(h, h_star) - theta ** (1 / r))),
        symbolic_zero(slope - (1 - claimed_slope_sign * r * q)),
        symbolic_zero(slope.subs(paper) + sp.Rational(4, 5)),
    ]
    below_one = bool(e_star < 1)
    checks.append(ProofResult(below_one, "symbolic", "0" if below_one else f"E* = {e_star} >= 1"))
    return combine(*checks)


CONTROLLER = Proof(
    name="step_controller_fixed_point",
    title="The step-size controller settles where E = theta^(1/r), and converges when 0 < rq < 2",
    statement=(r"E(h) = C h^q,\ \ h \leftarrow \theta\,h\,E(h)^{-r}:\quad h^* = \big(\theta^{1/r}/C\big)^{1/q},"
               r"\ \ E(h^*) = \theta^{1/r},\ \ \frac{\mathrm{d}\log h_{n+1}}{\mathrm{d}\log h_n} = 1 - rq"),
    steps=[
        ("A fixed point needs theta E(h*)^(-r) = 1, i.e. E(h*) = theta^(1/r): about 0.89 at the paper's "
         "theta = r = 0.9, below the acceptance threshold 1, so the controller settles on steps it "
         "accepts.", None),
        ("In u = log h the update is u <- u + log theta - r (log C + q u), an affine map with slope "
         "1 - r q: it converges when |1 - r q| < 1. For the drift part of the error (q = 2) the slope "
         "is -0.8, for the noise part (q = 3/2) -0.35: both converge, the first with damped "
         "oscillation (rejections alternate with accepted steps).", None),
        ("Checked by SymPy with symbolic theta, r, q, C, and at the paper's values.", None),
    ],
    check=controller_check,
)


# =============================================================================================
# Why the scaled l2 norm: invariance to units and to the number of coordinates
# =============================================================================================
def _max(*args):
    """max of its arguments as (a + b + |a - b|) / 2, nested: SymPy can then scale it through."""
    out = args[0]
    for arg in args[1:]:
        out = (out + arg + sp.Abs(out - arg)) / 2
    return out


def _scaled_error(ds, ys, ps, eps_abs, eps_rel, scaled=True):
    ratios = [d / _max(eps_abs, eps_rel * _max(y, p)) for d, y, p in zip(ds, ys, ps)]
    total = sum(r**2 for r in ratios)
    return sp.sqrt(total / len(ratios)) if scaled else sp.sqrt(total)


def scale_invariance_check(n: int = 2, copies: int = 3, scaled: bool = True, scale_abs: bool = True) -> ProofResult:
    """E = sqrt(sum_i (d_i / delta_i)^2 / n), delta_i = max(eps_abs, eps_rel max(|y_i|, |p_i|)).

    Checks, on E itself (the max written as (a + b + |a - b|) / 2, so no branch is assumed):
    (1) E(c d, c y, c p; c eps_abs, eps_rel) = E(d, y, p; eps_abs, eps_rel) for symbolic c > 0:
    unit-free once eps_abs is given in the data's units; (2) the same with eps_rel = 0: an
    absolute tolerance scaled with the data is unit-free too, so the relative part is not what
    makes E unit-free; (3) with eps_abs held fixed, E changes with the units exactly where the
    absolute branch wins (numeric instances both ways); (4) repeating the n coordinates ``copies``
    times leaves E unchanged. False variants that must fail: ``scale_abs=False`` states (1)
    with eps_abs not rescaled; ``scaled=False`` drops the 1/n (the plain l2 norm grows like
    sqrt(copies)).
    """
    c, eps_abs, eps_rel = sp.symbols("c epsilon_abs epsilon_rel", positive=True)
    ys = sp.symbols(f"y1:{n + 1}", positive=True)  # |y'_i|, |y'_prev,i|: magnitudes
    ps = sp.symbols(f"p1:{n + 1}", positive=True)
    ds = sp.symbols(f"d1:{n + 1}", real=True)  # y''_i - y'_i
    base = _scaled_error(ds, ys, ps, eps_abs, eps_rel, scaled)
    new_abs = c * eps_abs if scale_abs else eps_abs
    moved = _scaled_error([c * d for d in ds], [c * y for y in ys], [c * p for p in ps], new_abs, eps_rel, scaled)
    free = [c, eps_abs, eps_rel, *ys, *ps, *ds]
    checks = [rational_zero(moved - base, slow=True, refute_at=free)]
    abs_only = _scaled_error(ds, ys, ps, eps_abs, 0, scaled)
    abs_moved = _scaled_error([c * d for d in ds], [c * y for y in ys], [c * p for p in ps], new_abs, 0, scaled)
    checks.append(rational_zero(abs_moved - abs_only, slow=True, refute_at=free))
    # (3) eps_abs fixed, units changed by c = 10: relative branch winning at both scales -> same E;
    # absolute branch winning -> E changes (by the factor c)
    point = {eps_abs: sp.Rational(1, 100), eps_rel: sp.Rational(1, 10)}
    big = {**point, **{y: 2 for y in ys}, **{p: 3 for p in ps}, **{d: sp.Rational(1, 7) for d in ds}}
    small = {**point, **{y: sp.Rational(1, 1000) for y in ys}, **{p: sp.Rational(1, 2000) for p in ps},
             **{d: sp.Rational(1, 700) for d in ds}}
    for values, same in ((big, True), (small, False)):
        before = base.subs(values)
        after = base.subs({**values, **{k: 10 * v for k, v in values.items() if k not in (eps_abs, eps_rel)}})
        equal = bool(sp.simplify(after - before) == 0)
        checks.append(ProofResult(equal == same, "symbolic", "0" if equal == same else
                                  f"fixed eps_abs: E went {before} -> {after}"))
    rs = sp.symbols(f"r1:{n + 1}", real=True)  # the ratios d_i / delta_i

    def error(ratios):
        total = sum(v**2 for v in ratios)
        return sp.sqrt(total / len(ratios)) if scaled else sp.sqrt(total)

    checks.append(symbolic_zero(error(list(rs) * copies) - error(list(rs))))
    return combine(*checks)


SCALE_INVARIANCE = Proof(
    name="scaled_error_invariance",
    title="The error in tolerance units, root-mean-squared, ignores the data's units and its dimension",
    statement=(r"E = \sqrt{\tfrac{1}{n}\textstyle\sum_i \big(d_i/\delta_i\big)^2},\ \ "
               r"\delta_i = \max\big(\epsilon_{\rm abs}, \epsilon_{\rm rel}\max(|y'_i|, |y'_{{\rm prev},i}|)\big):"
               r"\quad E(c\,y, c\,\epsilon_{\rm abs}) = E(y, \epsilon_{\rm abs})\ (c > 0,\ \text{any}\ "
               r"\epsilon_{\rm rel} \ge 0),\quad E(\underbrace{y, \dots, y}_{k}) = E(y)"),
    steps=[
        ("Units: multiplying the states and eps_abs by c > 0 multiplies every argument of the max by c, "
         "and max(c a, c b) = c max(a, b); so delta_i scales by c, as does d_i, and E does not change. "
         "Checked on E itself, with the max written as (a + b + |a - b|)/2 and c symbolic.", None),
        ("This holds for eps_rel = 0 too: a purely absolute tolerance given in the data's units is "
         "unit-free as well. What the relative part adds is that E stays put under a change of units "
         "without retuning eps_abs wherever eps_rel |y| exceeds eps_abs (large states); where the "
         "absolute branch wins, a fixed eps_abs makes E depend on the units (both checked at numeric "
         "instances).", None),
        ("Dimension: the mean over coordinates inside the root makes E the root-mean-square ratio, so "
         "an image with k times more pixels and the same per-pixel errors has the same E; the plain "
         "l2 norm would grow like sqrt(k) and force ever smaller steps.", None),
        ("The l-infinity alternative is unit-free too, but for independent per-coordinate errors the "
         "largest of n grows like sqrt(2 log n): its steps shrink with the image size (measured in the "
         "lab notebook). The mean of n squared ratios also concentrates as n grows, so the accept/reject "
         "decision depends less on the particular Brownian draw: fewer rejections in high dimension.", None),
        ("Checked by SymPy for a state of n = 2 coordinates (and that state repeated three times).", None),
    ],
    check=scale_invariance_check,
)


PROOFS = [LOCAL_ERROR, CONTROLLER, SCALE_INVARIANCE]
