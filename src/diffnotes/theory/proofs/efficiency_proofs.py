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

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "orthogonal_gap_check", "space_to_depth_matrix", "patching_check", "PATCH_SHAPES"]


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
    return combine(
        rational_zero(sp.limit(s**wrong_power * info, s, sp.oo) - c**2 / 2),
        rational_zero(sp.simplify(sp.logcombine(sp.expand(kl - kl_general), force=True))),
        rational_zero(sp.limit(s**2 * kl, s, sp.oo) - m**2 / 2),
        rational_zero(sp.limit(s**4 * kl.subs(m, 0), s, sp.oo) - B**2 / 4),
        rational_zero(sp.diff(kl, s) - dkl),
        rational_zero(sp.limit(s * w2_spread, s, sp.oo) - B / 2),
        rational_zero(sp.simplify(sp.exp(logdet_eig) - sp.exp(logdet))),
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


def _index_map_is_bijection(channels: int, height: int, width: int, patch: int,
                            channel_stride: int | None = None) -> bool:
    """The space-to-depth index map and the inverse read off by integer division compose to the
    identity both ways, on every coordinate of a ``channels x height x width`` image.
    ``channel_stride`` other than p^2 states a broken map (channels overlap)."""
    hp, wp = height // patch, width // patch
    stride = patch**2 if channel_stride is None else channel_stride

    def forward(c, h, w):  # input pixel -> (output channel, h', w')
        return c * stride + (h % patch) * patch + (w % patch), h // patch, w // patch

    def backward(co, hq, wq):  # output coordinate -> input pixel (division algorithm)
        c, rest = divmod(co, patch**2)
        i, j = divmod(rest, patch)
        return c, hq * patch + i, wq * patch + j

    ins = [(c, h, w) for c in range(channels) for h in range(height) for w in range(width)]
    outs = [(co, hq, wq) for co in range(channels * patch**2) for hq in range(hp) for wq in range(wp)]
    return (len(ins) == len(outs) and all(backward(*forward(*t)) == t for t in ins)
            and all(forward(*backward(*t)) == t for t in outs))


#: the shapes (channels, height, width, patch) on which the index map is checked exhaustively
PATCH_SHAPES = [(1, 4, 4, 2), (3, 4, 4, 2), (2, 4, 6, 2), (3, 8, 8, 4), (3, 6, 9, 3), (3, 32, 32, 4)]


def patching_check(channels=1, height=4, width=4, patch=2, break_entry=False) -> ProofResult:
    """P is a permutation, P P^T = I; a denoiser that patches, runs F and unpatches has the loss
    |P^T F(P x) - x0|^2 = |F(P x) - P x0|^2; noise N(0, sigma^2 I) keeps its covariance.
    Checked (1) symbolically on the ``channels x height x width`` image with ``patch``, from the
    matrix built by the definition; (2) for a general square matrix, the loss difference is
    f^T (P P^T - I) f - x0^T (P^T P - I) x0, so orthogonality is exactly what the identity needs;
    (3) the index map is a bijection, by its inverse from integer division, on every shape of
    :data:`PATCH_SHAPES` (3 channels, non-square images, patch sizes 2, 3, 4).
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
    # (2) any square matrix Q: |Q^T g - z|^2 - |g - Q z|^2 = g^T (Q Q^T - I) g - z^T (Q^T Q - I) z
    Q = sp.Matrix(3, 3, sp.symbols("q0:9", real=True))
    g, z = sp.Matrix(sp.symbols("g0:3", real=True)), sp.Matrix(sp.symbols("z0:3", real=True))
    generic = ((Q.T * g - z).T * (Q.T * g - z))[0, 0] - ((g - Q * z).T * (g - Q * z))[0, 0] \
        - (g.T * (Q * Q.T - sp.eye(3)) * g)[0, 0] + (z.T * (Q.T * Q - sp.eye(3)) * z)[0, 0]
    shapes_ok = all(_index_map_is_bijection(*shape) for shape in PATCH_SHAPES)
    return combine(
        ProofResult(one_per_row, "symbolic", "0" if one_per_row else "P is not a permutation"),
        *[rational_zero(v) for v in (P * P.T - sp.eye(d))],
        rational_zero(sp.expand(loss_unpatched - loss_patched)),
        *[rational_zero(v) for v in (P * (s**2 * sp.eye(d)) * P.T - s**2 * sp.eye(d))],
        rational_zero(sp.expand(generic)),
        ProofResult(shapes_ok, "symbolic", "0" if shapes_ok else "index map not a bijection"),
    )


PATCHING_ORTHOGONAL = Proof(
    name="patching_orthogonal",
    title="Space-to-depth is a permutation: the denoising loss and the noise law are unchanged",
    statement=(r"P^\top P = I,\quad \lVert P^\top F(Px) - x_0\rVert^2 = \lVert F(Px) - Px_0\rVert^2,"
               r"\quad Pn \sim \mathcal N(0, \sigma^2 I)\ \text{if}\ n \sim \mathcal N(0, \sigma^2 I)"),
    steps=[
        ("Space-to-depth with patch p sends pixel (c, h p + i, w p + j) to channel c p^2 + i p + j "
         "at (h, w), with 0 <= i, j < p. Integer division inverts it (c, i, j from the output "
         "channel; h p + i, w p + j from the position), so every input coordinate lands in "
         "exactly one output coordinate, for every shape whose sides p divides: the map is a "
         "permutation matrix P. Checked exhaustively, both compositions the identity, on six "
         "shapes (1 to 3 channels, square and non-square, p = 2, 3, 4, up to 3 x 32 x 32); "
         "SymPy builds P from the definition for a 1 x 4 x 4 image with p = 2 and checks one 1 "
         "per row and column and P P^T = I; the tests check the same index map against "
         "torch's pixel_unshuffle.", None),
        ("The patched denoiser is D(x) = P^T F(P x). For any square matrix, "
         "|P^T f - x0|^2 - |f - P x0|^2 = f^T (P P^T - I) f - x0^T (P^T P - I) x0 (SymPy, for a "
         "symbolic 3 x 3 matrix): the two losses agree for every f and x0 exactly when P is "
         "orthogonal, which a permutation is. So training D is training F on patched images, "
         "with the same loss value for every sample; EDM's preconditioning multiplies x and the "
         "output by per-sample scalars, which commute with P.", None),
        ("The patched noise P n has covariance P (sigma^2 I) P^T = sigma^2 I: still white "
         "Gaussian noise of the same level, so noise schedules, preconditioning and samplers "
         "need no change.", None),
        ("What this does not say: that the patched network F is as good. The loss is the same "
         "function of F's outputs, but F is a different network (pixels of a patch become "
         "channels, with fewer positions to share weights over); quality at a given budget is "
         "measured in the lab, not proved.", None),
    ],
    check=patching_check,
)

PROOFS = [ORTHOGONAL_GAP, PATCHING_ORTHOGONAL]
