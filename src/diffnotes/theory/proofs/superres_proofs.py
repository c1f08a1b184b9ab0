"""Super-resolution derivations: SR3's conditional score and SRDiff's residual as a mean shift.

* ``sr3_conditional_score`` (Saharia et al. 2021): for any joint law of (x0, y) and noise added
  to x0 alone, the conditional score is Tweedie's formula with the conditional mean, and the
  plain denoising loss over pairs is minimised by that conditional mean -- so a denoiser that
  receives y as an extra input (channel concatenation) learns the conditional score, with no
  classifier and no new loss. Checked for an arbitrary conditional density (the pointwise
  identity under the integral), exactly for a non-Gaussian two-point law in two dimensions,
  and, with the Bayes split, for jointly Gaussian scalar (x0, y).
* ``srdiff_residual_shift`` (Li et al. 2022): diffusing r0 = x0 - mu(y) is diffusing x0 with its
  mean shifted by mu(y). Under a process without scaling (VE / EDM) the two are the same model
  with D_x(x) = mu + D_r(x - mu); a residual scaled by c (SRDiff's code: c = 2) is the same
  model only at the noise level c sigma (checked by the composed denoiser's integrated squared
  error, which an unmoved noise level makes larger); under DDPM's scaled chain the shift changes the forward chain
  (it contracts to mu instead of 0). In the bound only the prior term changes; every per-step
  KL is translation invariant.

Each check takes a parameter that states something false; ``tests/test_methods_sr3.py`` and
``tests/test_methods_srdiff.py`` make sure the check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "conditional_score_check", "sample_error_check", "residual_shift_check"]


def _gauss_logpdf(z, mean, var):
    return -(z - mean) ** 2 / (2 * var) - sp.log(2 * sp.pi * var) / 2


# =============================================================================================
# SR3: grad log p(x | y) from a denoiser that also sees y
# =============================================================================================
def _general_tweedie(tweedie_factor=1, noise_shift=0) -> ProofResult:
    """Any law of x0 given y, in two dimensions: q(u1, u2, y) is an undefined SymPy function
    (any density). With x = x0 + sigma n and n independent of (x0, y), the joint density of
    (x0, x) given y is N(x; x0, sigma^2 I) q(x0, y), and its x-gradient is ((x0 - x)/sigma^2)
    times itself, pointwise in x0. Integrating over x0 (differentiation under the integral)
    gives grad_x p(x | y) = (E[x0 | x, y] - x)/sigma^2 p(x | y), i.e. conditional Tweedie.
    ``noise_shift`` != 0 makes the noise's mean depend on y (n not independent of y); the
    stated identity then fails."""
    s = sp.symbols("sigma", positive=True)
    y = sp.symbols("y", real=True)
    u = sp.symbols("u_1:3", real=True)
    x = sp.symbols("x_1:3", real=True)
    q = sp.Function("q")(*u, y)
    kernel = sp.exp(-sum((xi - ui - noise_shift * y) ** 2 for xi, ui in zip(x, u)) / (2 * s**2)) \
        / (2 * sp.pi * s**2)
    joint = kernel * q
    res = [sp.simplify((sp.diff(joint, xi) - (ui - xi) / (tweedie_factor * s**2) * joint) / joint)
           for xi, ui in zip(x, u)]
    return combine(*[rational_zero(r) for r in res])


def _mixture_tweedie(tweedie_factor=1) -> ProofResult:
    """A non-Gaussian conditional law in two dimensions: given y, x0 is a(y) with probability w
    and b(y) otherwise (a, b vectors, w in (0, 1)). Then p(x | y) is a two-component Gaussian
    mixture and E[x0 | x, y] its responsibility-weighted mean; checked exactly: (1) the gradient
    of log p(x | y) is (E[x0 | x, y] - x)/sigma^2; (2) the conditional expected loss
    sum_k post_k |d - c_k|^2 has zero gradient at d = E[x0 | x, y] and Hessian 2 I, so the
    conditional mean is its unique minimiser."""
    s = sp.symbols("sigma", positive=True)
    w = sp.symbols("w", positive=True)
    a = sp.symbols("a_1:3", real=True)
    b = sp.symbols("b_1:3", real=True)
    x = sp.symbols("x_1:3", real=True)
    d = sp.symbols("d_1:3", real=True)

    def gauss(c):
        return sp.exp(-sum((xi - ci) ** 2 for xi, ci in zip(x, c)) / (2 * s**2)) / (2 * sp.pi * s**2)

    na, nb = w * gauss(a), (1 - w) * gauss(b)
    p = na + nb
    post = [na / p, nb / p]
    mean = [post[0] * ai + post[1] * bi for ai, bi in zip(a, b)]
    score = [sp.diff(sp.log(p), xi) for xi in x]
    tweedie = [(m - xi) / (tweedie_factor * s**2) for m, xi in zip(mean, x)]
    loss = post[0] * sum((di - ai) ** 2 for di, ai in zip(d, a)) \
        + post[1] * sum((di - bi) ** 2 for di, bi in zip(d, b))
    at_mean = dict(zip(d, mean))
    grads = [sp.diff(loss, di).subs(at_mean) for di in d]
    hess = sp.hessian(loss, d) - 2 * sp.eye(2)
    return combine(*[rational_zero(sp.simplify(sc - tw)) for sc, tw in zip(score, tweedie)],
                   *[rational_zero(sp.simplify(g)) for g in grads], *[rational_zero(sp.simplify(h)) for h in hess])


def _gaussian_bayes_split() -> ProofResult:
    """Scalar x0 ~ N(m, v), y = a x0 + e, e ~ N(0, w), x = x0 + sigma n: from the joint
    covariance of (x0, x, y), d/dx log p(x | y) = d/dx log p(x) + d/dx log p(y | x) and equals
    (E[x0 | x, y] - x)/sigma^2 (the classifier-guidance split, with every term explicit)."""
    m, a = sp.symbols("m a", real=True)
    v, w, s, x, y = sp.symbols("v w sigma x y", positive=True)
    mean = sp.Matrix([m, m, a * m])  # (x0, x, y)
    cov = sp.Matrix([[v, v, a * v], [v, v + s**2, a * v], [a * v, a * v, a**2 * v + w]])

    def conditional(target, obs, values):
        c_to, c_oo = cov[target, obs], cov.extract(obs, obs)
        gain = c_to * c_oo.inv()
        shift = sp.Matrix(values) - mean.extract(obs, [0])
        return mean[target] + (gain * shift)[0, 0], cov[target, target] - (gain * c_to.T)[0, 0]

    post_mean, _ = conditional(0, [1, 2], [x, y])
    x_mean, x_var = conditional(1, [2], [y])
    score_cond = sp.diff(_gauss_logpdf(x, x_mean, x_var), x)
    y_mean, y_var = conditional(2, [1], [x])
    bayes = sp.diff(_gauss_logpdf(x, m, v + s**2) + _gauss_logpdf(y, y_mean, y_var), x)
    return combine(rational_zero(score_cond - (post_mean - x) / s**2), rational_zero(score_cond - bayes))


def conditional_score_check(tweedie_factor=1, noise_shift=0) -> ProofResult:
    """(1) For any conditional density of x0 given y (an undefined function, two dimensions) and
    noise independent of (x0, y), the integrand of p(x | y) satisfies the pointwise identity
    behind conditional Tweedie; (2) exactly, for a non-Gaussian (two-atom) conditional law in two
    dimensions, the score of p(x | y) is Tweedie's formula with E[x0 | x, y], and that
    conditional mean is the unique minimiser of the conditional squared error; (3) the Bayes
    split, for a jointly Gaussian scalar model. ``tweedie_factor`` != 1 states a wrong formula;
    ``noise_shift`` != 0 breaks the independence of the noise from y."""
    return combine(_general_tweedie(tweedie_factor, noise_shift), _mixture_tweedie(tweedie_factor),
                   _gaussian_bayes_split())


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
        ("Checked by SymPy in three parts. (i) General: for an arbitrary density q(x0, y) (an "
         "undefined function) in two dimensions, the x-gradient of N(x; x0, sigma^2 I) q(x0, y) is "
         "(x0 - x)/sigma^2 times it, pointwise in x0; integrating over x0 is the first step. If "
         "the noise's mean depended on y the identity would fail (the check's false variant). "
         "(ii) Exact and non-Gaussian: x0 given y is one of two points a(y), b(y) with weights "
         "w, 1 - w; the score of the Gaussian mixture p(x | y) equals Tweedie's formula with "
         "the responsibility-weighted mean, and the conditional squared error has zero "
         "gradient there and Hessian 2I. (iii) The Bayes split, for jointly Gaussian scalar "
         "x0 ~ N(m, v), y = a x0 + e. Differentiating under the integral is a standard step, "
         "not checked by SymPy: it is valid for any law of x0, because (x0 - x) times the "
         "Gaussian kernel is bounded.", None),
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
    return rational_zero(mse_sample - factor * mse_mean)


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
def residual_shift_check(prior_factor=1, noise_map="scaled") -> ProofResult:
    """Scalar x0 | y ~ N(m, s2), any shift mu = mu(y) (SRDiff: the up-sampled low-res image) and
    any residual scale c > 0 (SRDiff's official code uses c = 2), r0 = c (x0 - mu).
    (1) VE/EDM: the ideal residual denoiser D_r, computed from the residual's own law
    N(c(m - mu), c^2 s2) at noise level tau, gives the ideal x-denoiser through
    D_x(x; sigma) = mu + D_r(c(x - mu); c sigma)/c;
    (2) the squared error of that composition, integrated over x0 and the noise, is the
    x-denoiser's optimum s2 sigma^2/(s2 + sigma^2) -- with the residual model run at noise level
    sigma instead of c sigma (``noise_map="unscaled"``) it is larger for every c != 1;
    (3) a Gaussian KL is translation invariant: every per-step term of the bound is unchanged;
    (4) DDPM's prior term KL(q(x_T | x0) || N(0, 1)) changes by abar_T (x0^2 - r0^2)/2 (c = 1);
    (5) in DDPM's scaled chain, mu + r_t has mean mu + sqrt(abar)(x0 - mu): the chain on x
    contracts to mu instead of 0.
    ``prior_factor`` != 1 states a wrong prior-term change."""
    m, mu, x, x0, a1, a2, delta = sp.symbols("m mu x x_0 a_1 a_2 delta", real=True)
    s2, sig, v1, v2, ab, c = sp.symbols("s2 sigma v_1 v_2 abar c", positive=True)
    z, n = sp.symbols("z n", real=True)  # standard normals: x0 = m + sqrt(s2) z, noise n

    def ideal(mean, var, noisy, tau):  # E[u0 | u0 + tau n = noisy] for u0 ~ N(mean, var)
        return mean + var / (var + tau**2) * (noisy - mean)

    d_x = ideal(m, s2, x, sig)
    tau = c * sig if noise_map == "scaled" else sig
    composed = mu + ideal(c * (m - mu), c**2 * s2, c * (x - mu), tau) / c
    # (2) the composed denoiser's squared error, x = x0 + sigma n, x0 = m + sqrt(s2) z
    err = sp.expand((composed - x0).subs(x, x0 + sig * n).subs(x0, m + sp.sqrt(s2) * z))
    poly = sp.Poly(err, z, n)
    mse = sum(coef**2 for mon, coef in poly.terms() if sum(mon) == 1) \
        + sum(coef for mon, coef in poly.terms() if sum(mon) == 0) ** 2
    # error is linear in (z, n): E[err^2] = sum of squared coefficients + squared constant
    optimum = s2 * sig**2 / (s2 + sig**2)

    def kl(mean_q, var_q, mean_p, var_p):
        return sp.log(sp.sqrt(var_p / var_q)) + (var_q + (mean_q - mean_p) ** 2) / (2 * var_p) - sp.Rational(1, 2)

    prior_x = kl(sp.sqrt(ab) * x0, 1 - ab, 0, 1)
    prior_r = kl(sp.sqrt(ab) * (x0 - mu), 1 - ab, 0, 1)
    r0 = x0 - mu
    return combine(
        rational_zero(d_x - composed),
        rational_zero(mse - optimum),
        rational_zero(sp.simplify(kl(a1 + delta, v1, a2 + delta, v2) - kl(a1, v1, a2, v2))),
        rational_zero(prior_x - prior_r - prior_factor * ab * (x0**2 - r0**2) / 2),
        rational_zero(sp.expand(mu + sp.sqrt(ab) * (x0 - mu)) - (sp.sqrt(ab) * x0 + (1 - sp.sqrt(ab)) * mu)),
    )


SRDIFF_RESIDUAL_SHIFT = Proof(
    name="srdiff_residual_shift",
    title="SRDiff's residual: the data mean shifted by the up-sampled image; only the prior term moves",
    statement=(r"r_0 = c\,(x_0 - \mu(y)):\quad D_x(x;\sigma) = \mu + \tfrac1c D_r\big(c(x-\mu);"
               r" c\sigma\big)\ \text{(VE/EDM)},"
               r"\qquad L_{t-1}^{(r)} = L_{t-1}^{(x)},\qquad "
               r"L_T^{(x)} - L_T^{(r)} = \tfrac{\bar\alpha_T}{2}\big(\lVert x_0\rVert^2 - "
               r"\lVert x_0-\mu\rVert^2\big)\ \ (c = 1)"),
    steps=[
        ("Without scaling (VE / EDM) and with c = 1, r = r0 + sigma n = x - mu: the noisy "
         "residual is the noisy image moved by mu. The ideal residual denoiser, computed from the "
         "residual's own law, is E[r0 | r] = E[x0 | x] - mu, so D_x(x) = mu + D_r(x - mu): the "
         "residual is a reparameterisation, a skip connection from mu to the output, not a new "
         "model.", None),
        ("A scaled residual r0 = c (x0 - mu) with the same noise n is c (x - mu) at noise level "
         "c sigma: the ideal denoisers agree as D_x(x; sigma) = mu + D_r(c (x - mu); c sigma)/c. "
         "SymPy integrates the composed denoiser's squared error over x0 ~ N(m, s2) and the noise "
         "and finds the optimum s2 sigma^2/(s2 + sigma^2); run at sigma instead of c sigma (a "
         "scaled residual with an unchanged schedule) the error is larger for every c != 1, "
         "and the check fails. So scaling the residual, as SRDiff's code does (c = 2), changes "
         "the model unless the noise levels move with it; clamping the residual, which that code "
         "also does, is no reparameterisation at all.", None),
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
