"""Inverse problems from an unconditional model: ILVR's projection and CCDF's contraction.

The derivations of the Choi 2021 (ILVR) and Chung 2022 (CCDF) chapters:

* ``ilvr_projection`` -- with phi_N the block-mean low-pass (average-pool down, nearest up),
  phi_N is a symmetric idempotent matrix, and ILVR's update x - phi_N x + phi_N y is the
  orthogonal projection of x onto {z : phi_N z = phi_N y}; when the refinement runs to t = 0
  (where y_0 = y) the sample ends with phi_N x_0 = phi_N y exactly. Checked by SymPy on
  1-D signals of symbolic pixels with blocks of 2, 3 and 4 (an image's N x N blocks are the
  same matrix acting on each block's pixels).
* ``ccdf_contraction`` -- for Gaussian data x0 ~ N(0, v) and the exact denoiser, one ancestral
  step from sigma to sigma' maps the difference of two chains driven by the same noise to
  (v + sigma'^2) / (v + sigma^2) times itself; the factors telescope, so N' steps from sigma_0
  shrink the initial estimate's error by v / (v + sigma_0^2); a projection onto the measured
  part (data consistency) only shrinks it further.

Each check takes a parameter that states something false; ``tests/test_methods_ilvr.py`` and
``tests/test_methods_ccdf.py`` call :func:`gaussian_step_factor` (lambdified from the derived
expression), and ``tests/test_proofs_inverse.py`` makes sure a false statement fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult

__all__ = ["PROOFS", "block_lowpass_matrix", "ilvr_projection_check", "ccdf_contraction_check",
           "ancestral_step_factor", "gaussian_step_factor"]


def _zero(expr) -> ProofResult:
    """``expr`` (an expression or a Matrix) is identically 0 after ``cancel``/``expand``."""
    items = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    bad = [r for r in (sp.cancel(sp.expand(sp.together(e))) for e in items) if r != 0]
    return ProofResult(not bad, "symbolic", "0" if not bad else str(bad[0]))


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


# =============================================================================================
# ILVR: the update is the orthogonal projection onto {z : phi_N z = phi_N y}
# =============================================================================================
def block_lowpass_matrix(block: int, blocks: int = 2) -> sp.Matrix:
    """phi_N on a 1-D signal of ``blocks`` blocks of ``block`` pixels: each block's mean, spread
    over the block (the matrix of average-pool down then nearest up)."""
    one = sp.ones(block, block) / block
    return sp.diag(*([one] * blocks))


def ilvr_projection_check(block: int = 2, offset=0) -> ProofResult:
    """phi symmetric and idempotent; the update lands in the constraint set; it is the closest
    point of the set (x - u is orthogonal to every direction w = (I - phi) t inside the set);
    at t = 0 the low-pass content equals the reference's. ``offset`` != 0 states a wrong update."""
    n = 2 * block
    phi = block_lowpass_matrix(block)
    x = sp.Matrix(sp.symbols(f"x_0:{n}"))
    y = sp.Matrix(sp.symbols(f"y_0:{n}"))
    t = sp.Matrix(sp.symbols(f"t_0:{n}"))
    u = x - phi * x + phi * y + offset * y  # ILVR's update (the reference y_t at the step's level)
    w = (sp.eye(n) - phi) * t  # any direction that keeps phi z fixed
    return _combine(
        _zero(phi * phi - phi),  # idempotent
        _zero(phi.T - phi),  # symmetric: an orthogonal projection
        _zero(phi * u - phi * y),  # the update satisfies the constraint
        _zero(((x - u).T * w)[0, 0]),  # ... and x - u is orthogonal to the constraint set
        _zero(phi * (sp.eye(n) - phi)),  # the high frequencies of x pass untouched
    )


ILVR_PROJECTION = Proof(
    name="ilvr_projection",
    title="ILVR's update is the orthogonal projection onto {x : phi_N(x) = phi_N(y_t)}",
    statement=(r"\phi_N^2=\phi_N=\phi_N^\top\ \Rightarrow\ "
               r"x-\phi_N x+\phi_N y_t=\operatorname*{arg\,min}_{z:\ \phi_N z=\phi_N y_t}"
               r"\lVert z-x\rVert_2,\qquad \text{and at } t=0:\ \phi_N x_0=\phi_N y"),
    steps=[
        ("Take phi_N = average-pool by N, then nearest up-sampling: each pixel becomes the mean "
         "of its N x N block. As a matrix it is block diagonal with blocks J/N^2 (J all ones), "
         "so phi_N^2 = phi_N and phi_N^T = phi_N (SymPy, blocks of 2, 3 and 4 pixels).", None),
        ("The constraint set {z : phi_N z = phi_N y_t} is the affine space phi_N y_t + ker "
         "phi_N, and ker phi_N = range(I - phi_N).", None),
        ("The update u = x - phi_N x + phi_N y_t satisfies phi_N u = phi_N x - phi_N x + "
         "phi_N y_t = phi_N y_t, so it lies in the set.", None),
        ("x - u = phi_N (x - y_t) lies in range(phi_N), which is orthogonal to ker phi_N "
         "because phi_N is symmetric: u is the closest point of the set to x (Pythagoras).",
         None),
        ("ILVR applies it after every step of the conditioning range with y_t drawn from "
         "q(y_t | y). At the last step y_0 = y, so a range that reaches t = 0 ends with "
         "phi_N x_0 = phi_N y exactly, whatever the model did; the high frequencies "
         "(I - phi_N) x_0 are the model's alone.", None),
        ("The bicubic down/up pair (diffnotes.degradations.lowpass) is linear but not "
         "idempotent, so with it the update is not a projection and the end equality holds "
         "only approximately; the lab uses the block filter for that reason.", None),
    ],
    check=lambda: _combine(*(ilvr_projection_check(b) for b in (2, 3, 4))),
)


# =============================================================================================
# CCDF: the reverse steps contract the error of the initial estimate (Gaussian case)
# =============================================================================================
_v, _s, _sn = sp.symbols("v sigma sigma'", positive=True)


def ancestral_step_factor(v=_v, sigma=_s, sigma_next=_sn):
    """Coefficient of x in one ancestral step x' = D + (s'^2/s^2)(x - D) + noise with the exact
    Gaussian denoiser D = v x / (v + s^2): what multiplies the difference of two coupled chains."""
    denoised = v / (v + sigma**2)  # D(x) / x
    return sp.simplify(denoised + sigma_next**2 / sigma**2 * (1 - denoised))


gaussian_step_factor = sp.lambdify((_v, _s, _sn), ancestral_step_factor(), "math")
"""Numeric twin of :func:`ancestral_step_factor`: ``gaussian_step_factor(v, sigma, sigma_next)``."""


def ccdf_contraction_check(factor_scale=1) -> ProofResult:
    """The per-step factor is (v + s'^2)/(v + s^2) -- the mean coefficient of the exact reverse
    kernel p(x_{s'} | x_s) of Gaussian data -- it lies in (0, 1) for s' < s, three steps
    telescope to (v + s_3^2)/(v + s_0^2), down to s = 0 to v/(v + s_0^2); a projection P
    after each step keeps |(I - P) a e| <= a |e| (Pythagoras). ``factor_scale`` != 1 states a wrong factor."""
    a = factor_scale * ancestral_step_factor()
    exact_mean = (_v + _sn**2) / (_v + _s**2)  # Cov(x_{s'}, x_s) / Var(x_s) for Gaussian data
    s0, s1, s2, s3 = sp.symbols("sigma_0:4", positive=True)
    three = ancestral_step_factor(_v, s0, s1) * ancestral_step_factor(_v, s1, s2) \
        * ancestral_step_factor(_v, s2, s3)
    to_zero = ancestral_step_factor(_v, s2, 0) * ancestral_step_factor(_v, s0, s2)
    gap = sp.simplify(1 - exact_mean)  # (s^2 - s'^2)/(v + s^2) > 0 when s' < s
    # consistency: P (here the block low-pass, an orthogonal projection) replaces the measured
    # part of both chains by the same values, so the difference becomes (I - P) a e, and
    # |a e|^2 = |(I - P) a e|^2 + |P a e|^2 (Pythagoras): the map never expands the error
    proj = block_lowpass_matrix(2)
    e = sp.Matrix(sp.symbols("e_0:4", real=True))
    after = (sp.eye(4) - proj) * a * e
    pythagoras = (a * e).dot(a * e) - after.dot(after) - (proj * a * e).dot(proj * a * e)
    return _combine(
        _zero(a - exact_mean),
        _zero(gap - (_s**2 - _sn**2) / (_v + _s**2)),
        _zero(three - (_v + s3**2) / (_v + s0**2)),
        _zero(to_zero - _v / (_v + s0**2)),
        _zero(pythagoras),
    )


CCDF_CONTRACTION = Proof(
    name="ccdf_contraction",
    title="CCDF's contraction, Gaussian case: each reverse step shrinks the estimate's error",
    statement=(r"x_0\sim\mathcal N(0,v):\quad \frac{\lVert x'_{\sigma'}-\tilde x'_{\sigma'}\rVert}"
               r"{\lVert x_\sigma-\tilde x_\sigma\rVert}=\lambda(\sigma,\sigma')="
               r"\frac{v+\sigma'^2}{v+\sigma^2}<1,\qquad"
               r"\prod_{i=0}^{N'-1}\lambda(\sigma_i,\sigma_{i+1})=\frac{v}{v+\sigma_0^2}"
               r"\ \ (\sigma_{N'}=0)"),
    steps=[
        ("Two chains start from the initial estimate x_hat and from another point (the truth, "
         "or a second estimate), jumped to sigma_0 with the same noise, and take the same noise "
         "at every step (a synchronous coupling). Their difference e evolves without noise.",
         None),
        ("For Gaussian data x0 ~ N(0, v) the exact denoiser is D(x; sigma) = v x / (v + sigma^2). "
         "The ancestral step x' = D + (sigma'^2/sigma^2)(x - D) + noise multiplies e by "
         "lambda = v/(v + sigma^2) + (sigma'^2/sigma^2) sigma^2/(v + sigma^2) = "
         "(v + sigma'^2)/(v + sigma^2) -- the mean coefficient of the exact reverse kernel.", None),
        ("lambda = 1 - (sigma^2 - sigma'^2)/(v + sigma^2) < 1 whenever sigma' < sigma: every "
         "step contracts, strongly where sigma^2 is large next to the data variance v, hardly "
         "at all where sigma^2 << v.", None),
        ("The factors telescope: N' steps from sigma_0 down to 0 multiply the error by "
         "v/(v + sigma_0^2). A larger sigma_0 (a larger t_0) forgets more of the estimate's "
         "error -- and of the estimate; that trade-off is why CCDF starts at an intermediate "
         "t_0.", None),
        ("A data-consistency projection P after each step replaces the measured part of both "
         "chains by the same measurement: the measured part of e becomes 0 and the rest keeps "
         "lambda times its size, so |e'| <= lambda |e|: the map is non-expansive, as the "
         "paper's theorem requires.", None),
        ("The paper's Theorem 1 states the general, non-Gaussian version with a contraction "
         "rate lambda < 1, a noise term and the initial error after the forward jump "
         "(see the chapter); the Gaussian case computes every constant.", None),
    ],
    check=ccdf_contraction_check,
)


PROOFS = [ILVR_PROJECTION, CCDF_CONTRACTION]
