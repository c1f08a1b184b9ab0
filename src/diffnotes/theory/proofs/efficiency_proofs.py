"""Why two shortcuts to cheaper diffusion models cost (almost) nothing.

The derivations of the subspace-diffusion chapter (Jing et al. 2022: at high noise the part of
x = x0 + sigma n orthogonal to a subspace is nearly an independent N(0, sigma^2 I), and the
Gaussian gap that sets the switching noise level) and of the patching chapter (Luhman & Luhman
2022: space-to-depth is a permutation of coordinates, so the denoising loss and the noise law are
unchanged). Each check takes a parameter that states something false; the tests
(``tests/test_methods_subspace.py``, ``tests/test_methods_patching.py``) make sure the check
then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult

__all__ = ["PROOFS", "orthogonal_gap_check", "space_to_depth_matrix", "patching_check"]


def _zero(expr) -> ProofResult:
    """``expr`` is identically 0 as a rational function (``cancel``; no slow ``simplify``)."""
    r = sp.cancel(sp.together(expr))
    return ProofResult(r == 0, "symbolic", "0" if r == 0 else str(r))


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


# =============================================================================================
# Jing et al. 2022: the orthogonal part becomes an independent Gaussian, and how fast
# =============================================================================================
def orthogonal_gap_check(wrong_power=4) -> ProofResult:
    """Gaussian data with one coordinate in the subspace (variance A), one orthogonal to it
    (mean m, variance B), covariance c between them; x = x0 + sigma n.

    1. The mutual information of the two parts of x, -1/2 log(1 - rho^2), falls like
       c^2 / (2 sigma^4): sigma^``wrong_power`` I -> c^2/2 (4 is true).
    2. The KL of the orthogonal marginal N(m, B + sigma^2) from N(0, sigma^2) equals the
       general Gaussian KL formula, falls like m^2/(2 sigma^2) (like B^2/(4 sigma^4) when m = 0)
       and decreases in sigma (its derivative, in closed form, is negative).
    3. The 2-Wasserstein gap of the spread, sqrt(B + sigma^2) - sigma, falls like B/(2 sigma).
    4. In d orthogonal dimensions, log det(I + Sigma/sigma^2) is the sum of log(1 + lambda_i /
       sigma^2) over Sigma's eigenvalues (checked on a symbolic 2 x 2 covariance).
    """
    A, B, s, m = sp.symbols("A B sigma m", positive=True)
    c = sp.symbols("c", real=True)
    rho2 = c**2 / ((A + s**2) * (B + s**2))
    info = -sp.log(1 - rho2) / 2
    kl = (B / s**2 + m**2 / s**2 - sp.log(1 + B / s**2)) / 2
    # the general formula 1/2 [tr(S0^-1 S1) + (mu1 - mu0)^2/S0 - 1 + ln(S0/S1)], S0 = sigma^2
    kl_general = ((B + s**2) / s**2 + m**2 / s**2 - 1 + sp.log(s**2 / (B + s**2))) / 2
    dkl = -B**2 / (s**3 * (B + s**2)) - m**2 / s**3
    w2_spread = sp.sqrt(B + s**2) - s
    a, b, e = sp.symbols("a b e", positive=True)  # a 2 x 2 covariance [[a, e], [e, b]]
    lam = sp.Matrix([[a, e], [e, b]]).eigenvals()
    logdet_eig = sum(k * sp.log(1 + v / s**2) for v, k in lam.items())
    logdet = sp.log((sp.eye(2) + sp.Matrix([[a, e], [e, b]]) / s**2).det())
    return _combine(
        _zero(sp.limit(s**wrong_power * info, s, sp.oo) - c**2 / 2),
        _zero(sp.simplify(sp.logcombine(sp.expand(kl - kl_general), force=True))),
        _zero(sp.limit(s**2 * kl, s, sp.oo) - m**2 / 2),
        _zero(sp.limit(s**4 * kl.subs(m, 0), s, sp.oo) - B**2 / 4),
        _zero(sp.diff(kl, s) - dkl),
        _zero(sp.limit(s * w2_spread, s, sp.oo) - B / 2),
        _zero(sp.simplify(sp.exp(logdet_eig) - sp.exp(logdet))),
    )


ORTHOGONAL_GAP = Proof(
    name="subspace_orthogonal_gap",
    title="At high noise the orthogonal part is nearly an independent N(0, sigma^2 I)",
    statement=(r"I(u_\sigma; x^\perp_\sigma) \sim \frac{c^2}{2\sigma^4},\qquad "
               r"\mathrm{KL}\big(\mathcal N(\mu_\perp, \Sigma_\perp + \sigma^2 I)\,\big\|\,"
               r"\mathcal N(0, \sigma^2 I)\big) = \tfrac12\Big[\frac{\lVert\mu_\perp\rVert^2}{\sigma^2}"
               r" + \sum_i \Big(\frac{\lambda_i}{\sigma^2} - \log\big(1 + \frac{\lambda_i}{\sigma^2}\big)"
               r"\Big)\Big]"),
    steps=[
        ("Split x = x0 + sigma n into u = U^T x (the subspace) and x_perp = (I - U U^T) x. The "
         "noise parts of the two are independent (U^T n and (I - U U^T) n are uncorrelated "
         "Gaussians) and each has variance sigma^2 per direction; only the data couple them.",
         None),
        ("Gaussian data, one direction each: the correlation of the two parts is "
         "rho^2 = c^2 / ((A + sigma^2)(B + sigma^2)) and their mutual information "
         "-1/2 log(1 - rho^2) falls like c^2/(2 sigma^4) (SymPy: the limit of sigma^4 I).", None),
        ("The orthogonal marginal is N(mu_perp, Sigma_perp + sigma^2 I); the method replaces it by "
         "N(0, sigma^2 I). Their KL is the general Gaussian KL with S0 = sigma^2 I (SymPy checks the "
         "two forms agree and that log det(I + Sigma/sigma^2) is the sum over eigenvalues).", None),
        ("The gap falls like |mu_perp|^2 / (2 sigma^2) (like sum lambda_i^2 / (4 sigma^4) for "
         "centred data) and decreases monotonically in sigma: its derivative is "
         "-sum lambda_i^2 / (sigma^3 (lambda_i + sigma^2)) - |mu_perp|^2 / sigma^3 < 0. So the "
         "set of sigma where the gap is below a tolerance is an interval [sigma_switch, oo): the "
         "switching rule is one bisection on the data's orthogonal moments.", None),
        ("The Wasserstein view says the same: the spread of x_perp exceeds sigma by "
         "sqrt(lambda + sigma^2) - sigma ~ lambda / (2 sigma) per direction.", None),
    ],
    check=orthogonal_gap_check,
)


# =============================================================================================
# Luhman & Luhman 2022: space-to-depth is a permutation
# =============================================================================================
def space_to_depth_matrix(channels: int, height: int, width: int, patch: int) -> sp.Matrix:
    """The 0/1 matrix P with (space-to-depth x).flatten() = P x.flatten(), from the definition:
    output channel c p^2 + i p + j at (h, w) is input pixel (c, h p + i, w p + j)."""
    hp, wp = height // patch, width // patch
    P = sp.zeros(channels * height * width)
    row = 0
    for c in range(channels):
        for i in range(patch):
            for j in range(patch):
                for h in range(hp):
                    for w in range(wp):
                        P[row, c * height * width + (h * patch + i) * width + (w * patch + j)] = 1
                        row += 1
    return P


def patching_check(channels=1, height=4, width=4, patch=2, break_entry=False) -> ProofResult:
    """P is a permutation, P P^T = I; a denoiser that patches, runs F and unpatches has the loss
    |P^T F(P x) - x0|^2 = |F(P x) - P x0|^2; noise N(0, sigma^2 I) keeps its covariance.
    ``break_entry`` duplicates one row of P (a broken rearrangement)."""
    P = space_to_depth_matrix(channels, height, width, patch)
    if break_entry:
        P[1, :] = P[0, :]
    d = P.shape[0]
    x0 = sp.Matrix(sp.symbols(f"x0:{d}", real=True))
    f = sp.Matrix(sp.symbols(f"f0:{d}", real=True))  # the backbone's output on the patched input
    s = sp.symbols("sigma", positive=True)
    one_per_row = all(sum(P.row(k)) == 1 for k in range(d)) and all(sum(P.col(k)) == 1 for k in range(d))
    loss_unpatched = ((P.T * f - x0).T * (P.T * f - x0))[0, 0]
    loss_patched = ((f - P * x0).T * (f - P * x0))[0, 0]
    return _combine(
        ProofResult(one_per_row, "symbolic", "0" if one_per_row else "P is not a permutation"),
        *[_zero(v) for v in (P * P.T - sp.eye(d))],
        _zero(sp.expand(loss_unpatched - loss_patched)),
        *[_zero(v) for v in (P * (s**2 * sp.eye(d)) * P.T - s**2 * sp.eye(d))],
    )


PATCHING_ORTHOGONAL = Proof(
    name="patching_orthogonal",
    title="Space-to-depth is a permutation: the denoising loss and the noise law are unchanged",
    statement=(r"P^\top P = I,\quad \lVert P^\top F(Px) - x_0\rVert^2 = \lVert F(Px) - Px_0\rVert^2,"
               r"\quad Pn \sim \mathcal N(0, \sigma^2 I)\ \text{if}\ n \sim \mathcal N(0, \sigma^2 I)"),
    steps=[
        ("Space-to-depth with patch p sends pixel (c, h p + i, w p + j) to channel c p^2 + i p + j "
         "at (h, w): every input coordinate lands in exactly one output coordinate, so the map is "
         "a permutation matrix P (SymPy builds it for a 1 x 4 x 4 image with p = 2 and checks one "
         "1 per row and column, and P P^T = I; the tests check the same index map against "
         "torch's pixel_unshuffle).", None),
        ("The patched denoiser is D(x) = P^T F(P x). Its squared error against x0 equals "
         "|F(P x) - P x0|^2 because P^T is orthogonal: training it is training F on patched "
         "images, with the same loss value for every sample.", None),
        ("The patched noise P n has covariance P (sigma^2 I) P^T = sigma^2 I: still white "
         "Gaussian noise of the same level, so noise schedules, preconditioning and samplers "
         "need no change.", None),
    ],
    check=patching_check,
)

PROOFS = [ORTHOGONAL_GAP, PATCHING_ORTHOGONAL]
