"""Inverse problems from an unconditional model: ILVR's projection and CCDF's contraction.

The derivations of the Choi 2021 (ILVR) and Chung 2022 (CCDF) chapters:

* ``ilvr_projection`` -- with phi_N the block-mean low-pass (average-pool down, nearest up),
  phi_N is a symmetric idempotent matrix, and ILVR's update x - phi_N x + phi_N y is the
  orthogonal projection of x onto {z : phi_N z = phi_N y}; when the refinement runs to t = 0
  (where y_0 = y) the sample ends with phi_N x_0 = phi_N y exactly. Checked by SymPy on
  1-D signals of symbolic pixels with blocks of 2, 3 and 4 (an image's N x N blocks are the
  same matrix acting on each block's pixels).
* ``ccdf_contraction`` -- two chains with independent noise: one step gives
  E|e'|^2 = a^2 E|e|^2 + 2 tau, so with a <= lambda < 1 the mean squared difference obeys the
  theorem's bound lambda^(2N') eps_0 + 2 tau/(1 - lambda^2) (noise term included). For
  Gaussian data x0 ~ N(0, v) and the exact denoiser, one ancestral step from sigma to sigma'
  multiplies the difference by (v + sigma'^2) / (v + sigma^2); the factors telescope, so a
  chain from sigma_0 to 0 keeps (v / (v + sigma_0^2))^2 of the initial squared error whatever
  the number of steps; a projection onto the measured part (data consistency) only shrinks it
  further.

Each check takes a parameter that states something false; ``tests/test_methods_ilvr.py`` and
``tests/test_methods_ccdf.py`` call :func:`gaussian_step_factor` (lambdified from the derived
expression), and ``tests/test_proofs_inverse.py`` makes sure a false statement fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "block_lowpass_matrix", "ilvr_projection_check", "ccdf_contraction_check",
           "ancestral_step_factor", "ancestral_noise_variance", "gaussian_step_factor"]


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
    return combine(
        rational_zero(phi * phi - phi),  # idempotent
        rational_zero(phi.T - phi),  # symmetric: an orthogonal projection
        rational_zero(phi * u - phi * y),  # the update satisfies the constraint
        rational_zero(((x - u).T * w)[0, 0]),  # ... and x - u is orthogonal to the constraint set
        rational_zero(phi * (sp.eye(n) - phi)),  # the high frequencies of x pass untouched
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
    check=lambda: combine(*(ilvr_projection_check(b) for b in (2, 3, 4))),
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


def ancestral_noise_variance(sigma=_s, sigma_next=_sn):
    """Variance of the fresh noise in one ancestral step sigma -> sigma' (per coordinate):
    sigma'^2 (sigma^2 - sigma'^2) / sigma^2, the noise the step adds on top of its mean."""
    return sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2


def _expect(poly, moments):
    """E[poly] for a polynomial in independent variables with the given moments
    ({var: {power: value}}); powers absent from a variable's table have expectation 0."""
    poly = sp.Poly(sp.expand(poly), *moments)
    total = 0
    for powers, coef in poly.terms():
        term = coef
        for var, k in zip(moments, powers):
            term *= moments[var].get(k, 0) if k else 1
        total += term
    return sp.expand(total)


def ccdf_contraction_check(factor_scale=1, noise_factor=2) -> ProofResult:
    """Chung et al.'s Theorem 1 in the form the chapter states, with independent noise.

    1. One step: two chains whose difference e (any law, E e^2 = eps) is multiplied by the
       step's factor a and which then take *independent* fresh noises xi, xi' of variance tau
       have E(a e + xi - xi')^2 = a^2 eps + 2 tau (``noise_factor`` = 2; 0 states the
       shared-noise case as if it held for independent noise, which fails).
    2. Iterated with a <= lam < 1 and tau <= tau_max: the recursion
       eps_{k+1} = lam^2 eps_k + 2 tau_max is solved by
       eps_k = lam^(2k) eps_0 + 2 tau_max (1 - lam^(2k))/(1 - lam^2), which is below
       lam^(2k) eps_0 + 2 tau_max/(1 - lam^2) by 2 tau_max lam^(2k)/(1 - lam^2) >= 0: the
       theorem's bound with C = 1 per coordinate.
    3. Gaussian data x0 ~ N(0, v), exact denoiser: the per-step factor is (v + s'^2)/(v + s^2)
       (the mean coefficient of the exact reverse kernel), in (0, 1) for s' < s; the factors
       telescope, so the coefficient of eps_0 after a chain from s_0 to 0 is (v/(v + s_0^2))^2
       for any intermediate levels, and it falls as s_0 grows: the estimate's error shrinks with
       the start level, not with the number of steps. With independent noise a chain
       s_0 -> s_1 -> 0 ends at (v/(v + s_0^2))^2 eps_0 + 2 (v/(v + s_1^2))^2 tau(s_0, s_1).
    4. A data-consistency projection P after each step keeps |(I - P) a e| <= a |e|
       (Pythagoras), so it can only shrink both terms.
    ``factor_scale`` != 1 states a wrong factor."""
    a = factor_scale * ancestral_step_factor()
    exact_mean = (_v + _sn**2) / (_v + _s**2)  # Cov(x_{s'}, x_s) / Var(x_s) for Gaussian data
    s0, s1, s2, s3 = sp.symbols("sigma_0:4", positive=True)
    three = ancestral_step_factor(_v, s0, s1) * ancestral_step_factor(_v, s1, s2) \
        * ancestral_step_factor(_v, s2, s3)
    to_zero = ancestral_step_factor(_v, s2, 0) * ancestral_step_factor(_v, s0, s2)
    gap = sp.simplify(1 - exact_mean)  # (s^2 - s'^2)/(v + s^2) > 0 when s' < s
    # 1. one step with independent noise: e has E e = mu_e, E e^2 = eps (any law)
    e, xi, xi2, lam, eps, tau, mu_e = sp.symbols("e xi xi' lambda varepsilon tau mu_e", real=True)
    moments = {e: {1: mu_e, 2: eps}, xi: {1: 0, 2: tau}, xi2: {1: 0, 2: tau}}
    one_step = _expect((lam * e + xi - xi2) ** 2, moments) - (lam**2 * eps + noise_factor * tau)
    # 2. the recursion's solution and the theorem's bound
    k = sp.symbols("k", integer=True, nonnegative=True)
    eps0 = sp.symbols("varepsilon_0", positive=True)

    def eps_k(kk):
        return lam ** (2 * kk) * eps0 + 2 * tau * (1 - lam ** (2 * kk)) / (1 - lam**2)

    recursion = sp.simplify(eps_k(k + 1) - (lam**2 * eps_k(k) + 2 * tau))
    bound_gap = sp.simplify(lam ** (2 * k) * eps0 + 2 * tau / (1 - lam**2) - eps_k(k)
                            - 2 * tau * lam ** (2 * k) / (1 - lam**2))
    # 3. Gaussian: two steps s0 -> s1 -> 0 with independent noise; the eps_0 coefficient
    l01, l10 = ancestral_step_factor(_v, s0, s1), ancestral_step_factor(_v, s1, 0)
    final = l10**2 * (l01**2 * eps0 + noise_factor * ancestral_noise_variance(s0, s1)) \
        + noise_factor * ancestral_noise_variance(s1, 0)
    coef0 = sp.diff(final, eps0)
    d_coef = sp.diff((_v / (_v + s0**2)) ** 2, s0)  # < 0: more forgetting from higher starts
    # consistency: P (here the block low-pass, an orthogonal projection) replaces the measured
    # part of both chains by the same values, so the difference becomes (I - P) a e, and
    # |a e|^2 = |(I - P) a e|^2 + |P a e|^2 (Pythagoras): the map never expands the error
    proj = block_lowpass_matrix(2)
    ev = sp.Matrix(sp.symbols("e_0:4", real=True))
    after = (sp.eye(4) - proj) * a * ev
    pythagoras = (a * ev).dot(a * ev) - after.dot(after) - (proj * a * ev).dot(proj * a * ev)
    return combine(
        rational_zero(a - exact_mean),
        rational_zero(gap - (_s**2 - _sn**2) / (_v + _s**2)),
        rational_zero(three - (_v + s3**2) / (_v + s0**2)),
        rational_zero(to_zero - _v / (_v + s0**2)),
        rational_zero(one_step),
        rational_zero(recursion),
        rational_zero(bound_gap),
        rational_zero(coef0 - (_v / (_v + s0**2)) ** 2),
        rational_zero(d_coef + 4 * _v**2 * s0 / (_v + s0**2) ** 3),
        rational_zero(ancestral_noise_variance(s1, 0)),
        rational_zero(pythagoras),
    )


CCDF_CONTRACTION = Proof(
    name="ccdf_contraction",
    title="CCDF's contraction with independent noise: the theorem's bound, and the Gaussian case",
    statement=(r"\bar\varepsilon_{k+1}\le\lambda^2\bar\varepsilon_k+2\tau\ \Rightarrow\ "
               r"\bar\varepsilon_{N'}\le\lambda^{2N'}\bar\varepsilon_0+\frac{2\tau}{1-\lambda^2};"
               r"\qquad x_0\sim\mathcal N(0,v):\ \lambda(\sigma,\sigma')="
               r"\frac{v+\sigma'^2}{v+\sigma^2}<1,\ \ "
               r"\prod_{i=0}^{N'-1}\lambda(\sigma_i,\sigma_{i+1})=\frac{v}{v+\sigma_0^2}"
               r"\ \ (\sigma_{N'}=0)"),
    steps=[
        ("Two chains start from the initial estimate x_hat and from another point (the truth, "
         "or a second estimate), each jumped to sigma_0 and each taking its own fresh noise at "
         "every step (independent noise, as two separate runs of the sampler do). Write e for "
         "their difference and eps = E|e|^2 per coordinate.", None),
        ("One step multiplies e by the step's factor a and adds the difference of two "
         "independent noises of variance tau each: E(a e + xi - xi')^2 = a^2 eps + 2 tau, for "
         "any law of e (SymPy, from the moments; the cross terms vanish by independence). With "
         "a <= lambda < 1 this is the theorem's recursion with C = 1 per coordinate. With "
         "shared noise (a synchronous coupling) the 2 tau term is absent; that case is the "
         "special case tau = 0, not the general one.", None),
        ("Iterating: eps_k = lambda^(2k) eps_0 + 2 tau (1 - lambda^(2k))/(1 - lambda^2) solves "
         "the recursion (SymPy) and stays below lambda^(2k) eps_0 + 2 tau/(1 - lambda^2) by "
         "2 tau lambda^(2k)/(1 - lambda^2) >= 0: the estimate's error is forgotten "
         "geometrically, and the noise the chains inject leaves a floor that does not depend on "
         "the estimate.", None),
        ("For Gaussian data x0 ~ N(0, v) the exact denoiser is D(x; sigma) = v x / (v + sigma^2). "
         "The ancestral step x' = D + (sigma'^2/sigma^2)(x - D) + noise, with noise variance "
         "sigma'^2 (sigma^2 - sigma'^2)/sigma^2, multiplies e by "
         "lambda = (v + sigma'^2)/(v + sigma^2) -- the mean coefficient of the exact reverse "
         "kernel -- and lambda = 1 - (sigma^2 - sigma'^2)/(v + sigma^2) < 1 whenever "
         "sigma' < sigma.", None),
        ("The factors telescope: however many steps run from sigma_0 down to 0, the "
         "coefficient of eps_0 at the end is (v/(v + sigma_0^2))^2 (SymPy, for three steps and "
         "for a two-step chain with independent noise), and it decreases as sigma_0 grows. The "
         "estimate's error shrinks with the start level t_0, not with the number of steps: a "
         "finer grid makes each lambda closer to 1 and leaves the product unchanged. A larger "
         "sigma_0 forgets more of the estimate's error -- and of the estimate; that trade-off is "
         "why CCDF starts at an intermediate t_0.", None),
        ("A data-consistency projection P after each step replaces the measured part of both "
         "chains by the same measurement: the measured part of e becomes 0 and the rest keeps "
         "lambda times its size, so |e'| <= lambda |e| (Pythagoras): the map is non-expansive, "
         "as the paper's theorem requires, and shrinks both terms of the bound.", None),
        ("Scope: the bound above is the theorem's form for any chain whose steps contract by at "
         "most lambda and add independent noise of variance at most tau; the constants lambda "
         "and tau are computed here only for Gaussian data. For a trained, non-Gaussian model "
         "they are not computed (the lab measures the contraction instead).", None),
    ],
    check=ccdf_contraction_check,
)


PROOFS = [ILVR_PROJECTION, CCDF_CONTRACTION]
