"""Super-resolution derivations: SR3's conditional score and SRDiff's residual as a mean shift.

* ``sr3_conditional_score`` (Saharia et al. 2021): for any joint law of (x0, y) and noise added
  to x0 alone, the conditional score is Tweedie's formula with the conditional mean, and the
  plain denoising loss over pairs is minimised by that conditional mean -- so a denoiser that
  receives y as an extra input (channel concatenation) learns the conditional score, with no
  classifier and no new loss. Checked exactly for jointly Gaussian (x0, y).
* ``srdiff_residual_shift`` (Li et al. 2022): diffusing r0 = x0 - mu(y) is diffusing x0 with its
  mean shifted by mu(y). Under a process without scaling (VE / EDM) the two are the same model
  with D_x(x) = mu + D_r(x - mu); under DDPM's scaled chain the shift changes the forward chain
  (it contracts to mu instead of 0). In the bound only the prior term changes; every per-step
  KL is translation invariant.

Each check takes a parameter that states something false; ``tests/test_methods_sr3.py`` and
``tests/test_methods_srdiff.py`` make sure the check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult

__all__ = ["PROOFS", "conditional_score_check", "sample_error_check", "residual_shift_check"]


def _zero(expr) -> ProofResult:
    r = sp.cancel(sp.together(sp.expand(expr)))
    return ProofResult(r == 0, "symbolic", "0" if r == 0 else str(r))


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


def _gauss_logpdf(z, mean, var):
    return -(z - mean) ** 2 / (2 * var) - sp.log(2 * sp.pi * var) / 2


# =============================================================================================
# SR3: grad log p(x | y) from a denoiser that also sees y
# =============================================================================================
def conditional_score_check(tweedie_factor=1) -> ProofResult:
    """Scalar model x0 ~ N(m, v), measurement y = a x0 + e with e ~ N(0, w) (a linear
    degradation with noise), noisy x = x0 + sigma n. From the joint covariance of (x0, x, y):
    (1) d/dx log p(x | y) = (E[x0 | x, y] - x) / sigma^2 (conditional Tweedie);
    (2) the denoising loss E(alpha x + beta y + gamma - x0)^2 has zero gradient at the
    coefficients of E[x0 | x, y] (the loss's minimiser is the conditional mean);
    (3) Bayes: d/dx log p(x | y) = d/dx log p(x) + d/dx log p(y | x).
    ``tweedie_factor`` != 1 states a wrong Tweedie formula."""
    m, a = sp.symbols("m a", real=True)
    v, w, s, x, y = sp.symbols("v w sigma x y", positive=True)
    mean = sp.Matrix([m, m, a * m])  # (x0, x, y)
    cov = sp.Matrix([[v, v, a * v], [v, v + s**2, a * v], [a * v, a * v, a**2 * v + w]])

    def conditional(target, obs, values):
        c_to, c_oo = cov[target, obs], cov.extract(obs, obs)
        gain = c_to * c_oo.inv()
        shift = sp.Matrix(values) - mean.extract(obs, [0])
        return (mean[target] + (gain * shift)[0, 0], cov[target, target] - (gain * c_to.T)[0, 0], gain)

    post_mean, _, gain = conditional(0, [1, 2], [x, y])  # E[x0 | x, y] = g_x x + g_y y + c
    x_mean, x_var, _ = conditional(1, [2], [y])  # p(x | y)
    score_cond = sp.diff(_gauss_logpdf(x, x_mean, x_var), x)
    tweedie = (post_mean - x) / (tweedie_factor * s**2)
    # (2) the loss as a function of (alpha, beta, gamma), its gradient at the conditional mean
    alpha, beta, gamma = sp.symbols("alpha beta gamma", real=True)
    second = cov + mean * mean.T  # E[u u^T] for u = (x0, x, y)
    coef = sp.Matrix([-1, alpha, beta])  # alpha x + beta y - x0
    loss = (coef.T * second * coef)[0, 0] + 2 * gamma * (coef.T * mean)[0, 0] + gamma**2
    at_mean = {alpha: gain[0, 0], beta: gain[0, 1],
               gamma: sp.expand(post_mean - gain[0, 0] * x - gain[0, 1] * y)}
    grads = [sp.diff(loss, p).subs(at_mean) for p in (alpha, beta, gamma)]
    # (3) Bayes: p(y | x) from (x, y) jointly Gaussian, p(x) = N(m, v + sigma^2)
    y_mean, y_var, _ = conditional(2, [1], [x])
    bayes = sp.diff(_gauss_logpdf(x, m, v + s**2) + _gauss_logpdf(y, y_mean, y_var), x)
    return _combine(_zero(score_cond - tweedie), *[_zero(g) for g in grads], _zero(score_cond - bayes))


SR3_CONDITIONAL_SCORE = Proof(
    name="sr3_conditional_score",
    title="A denoiser that sees y learns the conditional score: concatenation is enough",
    statement=(r"x = x_0 + \sigma n,\ n \perp (x_0, y):\quad "
               r"\nabla_x \log p_\sigma(x\mid y) = \frac{\mathbb{E}[x_0\mid x, y] - x}{\sigma^2},"
               r"\qquad \mathbb{E}[x_0\mid x, y] = \arg\min_{D}\ "
               r"\mathbb{E}_{x_0, y, n}\lVert D(x_0 + \sigma n, y; \sigma) - x_0\rVert^2"),
    steps=[
        ("Noise is added to x0 alone: p(x | x0, y) = N(x; x0, sigma^2 I) does not depend on y. "
         "So p(x | y) = integral of N(x; x0, sigma^2 I) p(x0 | y) dx0, and differentiating under "
         "the integral gives Tweedie's formula with p(x0 | y) in place of p(x0): the score of the "
         "conditional is (E[x0 | x, y] - x)/sigma^2.", None),
        ("The denoising loss averaged over pairs (x0, y) splits, for each (x, y), into "
         "|D(x, y) - E[x0|x,y]|^2 plus a term free of D; its minimiser over all functions of "
         "(x, y, sigma) is the conditional mean.", None),
        ("So the only change SR3 needs is an input: any network that receives (x, y, sigma) can "
         "represent the minimiser, and concatenating y (up-sampled to x's size) to x's channels "
         "is the simplest such input. This is exact at the optimum of the loss; it says nothing "
         "about how fast a given network reaches it.", None),
        ("Bayes: grad log p(x|y) = grad log p(x) + grad log p_sigma(y|x). The concatenated "
         "denoiser learns the sum in one network; classifier guidance would learn the two terms "
         "apart.", None),
        ("Checked exactly for scalar x0 ~ N(m, v), y = a x0 + e, e ~ N(0, w): the derivative "
         "of log p(x | y) equals Tweedie's formula, the loss's gradient vanishes at the "
         "conditional mean's coefficients, and the Bayes split holds.", None),
    ],
    check=conditional_score_check,
)


# =============================================================================================
# SR3: an exact sample pays twice the regression's squared error
# =============================================================================================
def sample_error_check(factor=2) -> ProofResult:
    """Given y, let x0 and the sample xh be independent draws from p(x0 | y), scalar Gaussian
    N(m, v) (the identity E(xh - x0)^2 = E(xh - m)^2 + E(x0 - m)^2 needs only independence and
    equal laws). The mean squared error of xh is ``factor`` (= 2) times that of the conditional
    mean m, integrated exactly over the joint density."""
    m = sp.symbols("m", real=True)
    v = sp.symbols("v", positive=True)
    a, b = sp.symbols("a b", real=True)
    density = sp.exp(-(a - m) ** 2 / (2 * v) - (b - m) ** 2 / (2 * v)) / (2 * sp.pi * v)
    mse_sample = sp.integrate((a - b) ** 2 * density, (a, -sp.oo, sp.oo), (b, -sp.oo, sp.oo))
    mse_mean = sp.integrate((b - m) ** 2 * density, (a, -sp.oo, sp.oo), (b, -sp.oo, sp.oo))
    return _zero(mse_sample - factor * mse_mean)


SR3_SAMPLE_ERROR = Proof(
    name="sr3_sample_error",
    title="An exact posterior sample has twice the squared error of the posterior mean",
    statement=(r"\hat x, x_0 \overset{\text{iid}}{\sim} p(x_0\mid y):\quad "
               r"\mathbb{E}\lVert \hat x - x_0\rVert^2 = 2\,\mathbb{E}\lVert x_0 - "
               r"\mathbb{E}[x_0\mid y]\rVert^2,\qquad \Delta\mathrm{PSNR} = 10\log_{10}2"
               r"\approx 3.01\ \mathrm{dB}"),
    steps=[
        ("Write xh - x0 = (xh - m) - (x0 - m) with m = E[x0 | y]. Given y the two terms are "
         "independent with mean zero, so the cross term vanishes in expectation and the squared "
         "errors add: twice the posterior variance, which is the regressor's optimal error.", None),
        ("So a perfect sampler scores 10 log10 2 dB below a perfect regressor on PSNR, however "
         "good its samples: PSNR ranks the mean above every sample. Checked by integrating over "
         "two independent Gaussians.", None),
    ],
    check=sample_error_check,
)


# =============================================================================================
# SRDiff: the residual r0 = x0 - mu(y) is x0 with its mean shifted
# =============================================================================================
def residual_shift_check(prior_factor=1) -> ProofResult:
    """Scalar x0 | y ~ N(m, s2) and any shift mu = mu(y) (SRDiff: the up-sampled low-res image).
    (1) VE/EDM: the ideal residual denoiser and the ideal x-denoiser satisfy
    D_x(x) = mu + D_r(x - mu), so the two losses and their minima coincide;
    (2) a Gaussian KL is translation invariant: every per-step term of the bound is unchanged;
    (3) DDPM's prior term KL(q(x_T | x0) || N(0, 1)) changes by abar_T (x0^2 - r0^2)/2;
    (4) in DDPM's scaled chain, mu + r_t has mean mu + sqrt(abar)(x0 - mu): the chain on x
    contracts to mu instead of 0 (a shift of the data mean, not of the chain's fixed point 0).
    ``prior_factor`` != 1 states a wrong prior-term change."""
    m, mu, x, x0, a1, a2, delta = sp.symbols("m mu x x_0 a_1 a_2 delta", real=True)
    s2, sig, v1, v2, ab = sp.symbols("s2 sigma v_1 v_2 abar", positive=True)
    shrink = s2 / (s2 + sig**2)
    d_x = m + shrink * (x - m)  # E[x0 | x] for x = x0 + sigma n
    r = x - mu  # the noisy residual, r = r0 + sigma n with r0 = x0 - mu ~ N(m - mu, s2)
    d_r = (m - mu) + shrink * (r - (m - mu))  # E[r0 | r]

    def kl(mean_q, var_q, mean_p, var_p):
        return sp.log(sp.sqrt(var_p / var_q)) + (var_q + (mean_q - mean_p) ** 2) / (2 * var_p) - sp.Rational(1, 2)

    prior_x = kl(sp.sqrt(ab) * x0, 1 - ab, 0, 1)
    prior_r = kl(sp.sqrt(ab) * (x0 - mu), 1 - ab, 0, 1)
    r0 = x0 - mu
    return _combine(
        _zero(d_x - (mu + d_r)),
        # the residual denoiser's error is the x-denoiser's error: same loss, same minimum
        _zero(((mu + d_r) - x0) - (d_r - r0)),
        _zero(sp.simplify(kl(a1 + delta, v1, a2 + delta, v2) - kl(a1, v1, a2, v2))),
        _zero(prior_x - prior_r - prior_factor * ab * (x0**2 - r0**2) / 2),
        _zero(sp.expand(mu + sp.sqrt(ab) * (x0 - mu)) - (sp.sqrt(ab) * x0 + (1 - sp.sqrt(ab)) * mu)),
    )


SRDIFF_RESIDUAL_SHIFT = Proof(
    name="srdiff_residual_shift",
    title="SRDiff's residual: the data mean shifted by the up-sampled image; only the prior term moves",
    statement=(r"r_0 = x_0 - \mu(y):\quad D_x(x;\sigma) = \mu + D_r(x-\mu;\sigma)\ \text{(VE/EDM)},"
               r"\qquad L_{t-1}^{(r)} = L_{t-1}^{(x)},\qquad "
               r"L_T^{(x)} - L_T^{(r)} = \tfrac{\bar\alpha_T}{2}\big(\lVert x_0\rVert^2 - "
               r"\lVert x_0-\mu\rVert^2\big)"),
    steps=[
        ("Without scaling (VE / EDM), r = r0 + sigma n = x - mu: the noisy residual is the noisy "
         "image moved by mu. The ideal residual denoiser is E[r0 | r] = E[x0 | x] - mu, so "
         "D_x(x) = mu + D_r(x - mu) and the two denoising losses are the same number for every "
         "network: the residual is a reparameterisation, a skip connection from mu to the "
         "output, not a new model.", None),
        ("In the bound, each L_{t-1} is a KL between two Gaussians whose means move by the same "
         "mu: a KL depends on the difference of means only, so every L_{t-1} (t >= 2) is "
         "unchanged. A Gaussian decoder L_0 is unchanged too; a discretised decoder is not "
         "exactly, because the bins do not move with mu.", None),
        ("The prior term compares q(x_T | x0) with N(0, I). With DDPM's chain, "
         "KL = (abar_T |x0|^2 + d(1 - abar_T) - d - d log(1 - abar_T))/2, which the shift "
         "changes by abar_T (|x0|^2 - |x0 - mu|^2)/2: smaller when mu is a good guess. With "
         "abar_T near 0 the difference is negligible -- the bound hardly moves.", None),
        ("What does change under DDPM's scaled chain: mu + r_t has mean "
         "sqrt(abar) x0 + (1 - sqrt(abar)) mu, so, as a chain on x, the process now contracts "
         "to mu(y) instead of 0 and its prior is N(mu(y), I). The data the network must model "
         "have the small variance of the residual, so the signal-to-noise ratio at each step is "
         "lower and the sampler spends its steps on the detail, not on the coarse image.", None),
    ],
    check=residual_shift_check,
)


PROOFS = [SR3_CONDITIONAL_SCORE, SR3_SAMPLE_ERROR, SRDIFF_RESIDUAL_SHIFT]
