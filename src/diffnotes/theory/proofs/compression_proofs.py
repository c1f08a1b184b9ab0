"""What a code is worth to a denoiser, and what a diffusion model costs as a compressor.

The derivations of the Abstreiter 2021 chapter (conditioning the denoiser on an encoding lowers
the denoising loss by the information the encoding carries about x0 at that noise level) and of
the Theis 2022 bridge chapter (a sender who walks the forward posterior chain sends step t at
the cost of the bound's term L_{t-1}, so the total rate is the bound). Each check takes a
parameter that states something false; ``tests/test_methods_representation.py``,
``tests/test_methods_compression.py`` and ``tests/test_proofs_derivations.py`` make sure the
check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "conditioning_gain_check", "posterior_chain_check"]


# =============================================================================================
# Abstreiter 2021: the denoising loss falls by what the code tells about x0 beyond x
# =============================================================================================
def conditioning_gain_check(gain_factor=1) -> ProofResult:
    """Scalar Gaussians x0 ~ N(0, v), x = x0 + sigma n, z = x0 + tau m (the code, with its
    own uncertainty tau). From the joint covariance (Schur complements): the MMSE without and
    with z, their difference equal to E(E[x0|x,z] - E[x0|x])^2 (the orthogonality of the two
    estimators), and the ratio of the MMSEs equal to exp(-2 I(x0; z | x)) with I computed from
    the conditional entropies. ``gain_factor`` != 1 states a wrong gain."""
    v, s, tau = sp.symbols("v sigma tau", positive=True)
    # covariance of (x0, x, z)
    cov = sp.Matrix([[v, v, v], [v, v + s**2, v], [v, v, v + tau**2]])

    def cond_var(obs):
        c_xo = cov[0, obs]
        c_oo = cov.extract(obs, obs)
        return sp.cancel(cov[0, 0] - (c_xo * c_oo.inv() * c_xo.T)[0, 0])

    def weights(obs):  # E[x0 | obs] = w . obs
        return cov[0, obs] * cov.extract(obs, obs).inv()

    mmse_x, mmse_xz = cond_var([1]), cond_var([1, 2])
    w_x = weights([1]).col_insert(1, sp.Matrix([[0]]))  # as a function of (x, z)
    w_xz = weights([1, 2])
    diff = w_xz - w_x
    gain = sp.cancel((diff * cov.extract([1, 2], [1, 2]) * diff.T)[0, 0])  # E(E[x0|x,z]-E[x0|x])^2
    # I(x0; z | x) = h(x0 | x) - h(x0 | x, z), Gaussian entropies 1/2 log(2 pi e var)
    info = sp.log(2 * sp.pi * sp.E * mmse_x) / 2 - sp.log(2 * sp.pi * sp.E * mmse_xz) / 2
    ratio = sp.expand_power_exp(sp.exp(sp.expand(-2 * info)))  # exp(-2 I)
    return combine(
        rational_zero(mmse_x - v * s**2 / (v + s**2)),
        rational_zero(1 / mmse_xz - (1 / v + 1 / s**2 + 1 / tau**2)),
        rational_zero(mmse_x - mmse_xz - gain_factor * gain),
        rational_zero(mmse_xz - mmse_x * ratio),
        rational_zero(sp.limit(gain, s, 0)),  # a clean x leaves the code nothing to add
        rational_zero(sp.limit(gain, s, sp.oo) - v**2 / (v + tau**2)),  # all that z knows
    )


CONDITIONING_GAIN = Proof(
    name="conditioning_gain",
    title="Conditioning the denoiser on a code lowers its loss by what the code adds about x0",
    statement=(r"\mathbb{E}\lVert x_0 - \mathbb{E}[x_0\mid x]\rVert^2"
               r" - \mathbb{E}\lVert x_0 - \mathbb{E}[x_0\mid x, z]\rVert^2"
               r" = \mathbb{E}\lVert \mathbb{E}[x_0\mid x, z] - \mathbb{E}[x_0\mid x]\rVert^2"
               r"\ \overset{\text{Gauss}}{=}\ \mathrm{mmse}_\sigma\,\big(1 - e^{-2 I(x_0; z\mid x)}\big)"),
    steps=[
        ("Write x0 - E[x0|x] = (x0 - E[x0|x,z]) + (E[x0|x,z] - E[x0|x]). The first part is "
         "orthogonal to every function of (x, z), the second is one, so the squared norms add: "
         "the loss without the code exceeds the loss with it by the mean square of the "
         "correction the code brings.", None),
        ("The best conditional denoiser is the conditional mean, so a trained encoder can lower "
         "the loss only by making that correction large: it is trained to carry what the noisy "
         "image x hides about x0.", None),
        ("Gaussian case, x0 ~ N(0, v), x = x0 + sigma n, z = x0 + tau m: Schur complements give "
         "mmse(x) = v sigma^2/(v + sigma^2) and 1/mmse(x, z) = 1/v + 1/sigma^2 + 1/tau^2; "
         "the difference equals the mean square of the difference of the two linear estimators "
         "(checked by SymPy from the covariance).", None),
        ("The Gaussian conditional entropies give mmse(x, z) = mmse(x) exp(-2 I(x0; z | x)): the "
         "relative gain is 1 - exp(-2 I), a function of the information z adds at that sigma.",
         None),
        ("As sigma -> 0 the gain tends to 0 (x already reveals x0: nothing for the encoder to "
         "learn); as sigma -> infinity it tends to v^2/(v + tau^2), everything z knows about x0. "
         "The noise level of training sets how much the code must carry.", None),
    ],
    check=conditioning_gain_check,
)


# =============================================================================================
# Theis 2022: the sender's chain has the forward marginals, so step t costs L_{t-1}
# =============================================================================================
def posterior_chain_check(variance_factor=1, cov_factor=1, kl_weight=1) -> ProofResult:
    """One step of the sender's chain: x_t ~ q(x_t | x0) = N(sqrt(abar_t) x0, 1 - abar_t), then
    x_{t-1} ~ q(x_{t-1} | x_t, x0) (DDPM eq. 7). Checked:

    1. x_{t-1} has mean sqrt(abar_{t-1}) x0 and variance 1 - abar_{t-1}: the marginal
       q(x_{t-1} | x0), so by induction from x_T every x_t the sender visits has the law the
       bound averages over;
    2. the pair (x_t, x_{t-1}) has the forward process's covariance sqrt(alpha_t)(1 - abar_{t-1})
       (all laws are Gaussian, so the pair has the forward joint law, and the sender's whole
       trajectory that of q(x_{1:T} | x0));
    3. for a model step p(x_{t-1} | x_t) = N(c x_t, s^2) with symbolic c and s, the KL of step t
       averaged over the sender's x_t (whose moments come from the sender's step above it)
       equals the same KL averaged over the forward marginal q(x_t | x0), the bound's term
       L_{t-1}.

    ``variance_factor`` != 1 states a wrong posterior variance, ``cov_factor`` != 1 a wrong
    joint covariance, ``kl_weight`` != 1 a step cost that is not the bound's term."""
    ab_prev, alpha, x0 = sp.symbols("abar_prev alpha x_0", positive=True)
    ab_t = ab_prev * alpha
    beta = 1 - alpha
    coef_x0 = sp.sqrt(ab_prev) * beta / (1 - ab_t)
    coef_xt = sp.sqrt(alpha) * (1 - ab_prev) / (1 - ab_t)
    beta_tilde = variance_factor * (1 - ab_prev) / (1 - ab_t) * beta
    mean = coef_x0 * x0 + coef_xt * sp.sqrt(ab_t) * x0
    var = coef_xt**2 * (1 - ab_t) + beta_tilde
    cov_sender = coef_xt * (1 - ab_t)  # Cov(x_{t-1}, x_t) = coef_xt Var(x_t)
    cov_forward = cov_factor * sp.sqrt(alpha) * (1 - ab_prev)  # x_t = sqrt(alpha) x_{t-1} + ...
    # 3: the expected KL of step t. The sender's x_t is itself the output of a sender step from
    # x_{t+1} ~ q(x_{t+1} | x0) (alpha_next = alpha_{t+1}); its moments come from that step, the
    # bound's from the forward marginal q(x_t | x0). The KL is quadratic in x_t, so its mean is
    # fixed by the first two moments.
    alpha_next = sp.Symbol("alpha_next", positive=True)
    ab_next = ab_t * alpha_next
    up_x0 = sp.sqrt(ab_t) * (1 - alpha_next) / (1 - ab_next)
    up_xt = sp.sqrt(alpha_next) * (1 - ab_t) / (1 - ab_next)
    sender_mean = up_x0 * x0 + up_xt * sp.sqrt(ab_next) * x0
    sender_var = up_xt**2 * (1 - ab_next) + (1 - ab_t) / (1 - ab_next) * (1 - alpha_next)
    xt = sp.Symbol("x_t", real=True)
    c, s = sp.symbols("c s", positive=True)
    post_mean = coef_x0 * x0 + coef_xt * xt
    kl = (sp.log(s) - sp.log(beta_tilde) / 2
          + (beta_tilde + (post_mean - c * xt) ** 2) / (2 * s**2) - sp.Rational(1, 2))
    quad = sp.Poly(sp.expand(kl), xt)
    c2, c1, c0 = (quad.coeff_monomial(xt**2), quad.coeff_monomial(xt), quad.coeff_monomial(1))
    m_t, v_t = sp.sqrt(ab_t) * x0, 1 - ab_t
    forward_cost = c2 * (v_t + m_t**2) + c1 * m_t + c0  # the bound's term L_{t-1}
    # sender's cost minus the claimed one, c2 (E_s x^2 - E_q x^2) + c1 (E_s x - E_q x) + ...
    d1 = sp.cancel(sp.radsimp(sender_mean - m_t))
    d2 = sp.cancel(sp.radsimp(sp.expand(sender_var + sender_mean**2 - v_t - m_t**2)))
    cost_gap = c2 * d2 + c1 * d1 + (1 - kl_weight) * forward_cost
    result = combine(rational_zero(sp.radsimp(mean - sp.sqrt(ab_prev) * x0)),
                     rational_zero(var - (1 - ab_prev)),
                     rational_zero(sp.radsimp(cov_sender - cov_forward)),
                     rational_zero(cost_gap))
    if len(result.residual) > 300:  # a false step cost leaves a long rational function
        result = ProofResult(result.ok, result.method, result.residual[:300] + " ...")
    return result


COMPRESSION_RATE = Proof(
    name="diffusion_compression_rate",
    title="The sender's chain has the forward law, so step t costs the bound's term L_{t-1} in KL",
    statement=(r"x_T\sim q(x_T\mid x_0),\ x_{t-1}\sim q(x_{t-1}\mid x_t, x_0)\ \Rightarrow\ "
               r"(x_t, x_{t-1})\sim q(x_t, x_{t-1}\mid x_0)\ \forall t,\qquad "
               r"\mathbb{E}\,\mathrm{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\Vert\,"
               r"p_\theta(x_{t-1}\mid x_t)\big) = L_{t-1},"
               r"\qquad R_s = \frac{L_T + \sum_{t=s+1}^{T} L_{t-1}}{\ln 2}\ \text{bits of KL}"),
    steps=[
        ("The sender knows x0 and walks the chain backwards: x_T from q(x_T | x0), then each "
         "x_{t-1} from the posterior q(x_{t-1} | x_t, x0). The receiver knows only the model, "
         "p(x_T) = N(0, I) and p_theta(x_{t-1} | x_t).", None),
        ("Composing the posterior with the marginal q(x_t | x0) gives the marginal q(x_{t-1} | x0) "
         "(mean and variance checked by SymPy with abar_t = abar_{t-1} alpha_t), and the pair "
         "(x_t, x_{t-1}) has the forward covariance sqrt(alpha_t)(1 - abar_{t-1}) (SymPy); the "
         "laws are Gaussian, so by induction from x_T the sender's trajectory has the forward "
         "law q(x_{1:T} | x0). The coordinates are independent, so one scalar coordinate "
         "suffices.", None),
        ("So the KL of step t, averaged over the sender's x_t, is the bound's term L_{t-1}: for a "
         "model step N(c x_t, s^2) with symbolic c and s the KL is quadratic in x_t, and SymPy "
         "averages it with the moments the sender's previous step gives x_t and with those of "
         "the forward marginal, and finds the two equal. Step T costs "
         "L_T = KL(q(x_T|x0) || N(0, I)). Stopping after step s + 1 (the receiver holds x_s) "
         "costs the partial sum R_s in KL; at s = 1 it is the whole bound except the decoder "
         "term L_0.", None),
        ("What is not proved here: the bits. Each step is a channel-simulation problem, whose "
         "message costs the step's KL plus the coder's overhead (bounded in the Harsha 2007 "
         "chapter for the book's PFR code, approximate for minimal random coding in the Havasi "
         "2019 chapter), so R_s is the rate of an ideal coder, not of a real one. The receiver's "
         "reconstruction is a denoiser's guess of x0 from x_s: fewer steps, fewer bits, more "
         "distortion.", None),
    ],
    check=posterior_chain_check,
)


PROOFS = [CONDITIONING_GAIN, COMPRESSION_RATE]
