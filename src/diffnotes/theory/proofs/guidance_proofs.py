"""Guidance as a tilt of the density: classifier guidance (ADM) and classifier-free guidance.

The derivations of the Dhariwal & Nichol 2021 chapter (the guided score is the score of
p(x) p(y|x)^s normalised, and for s > 1 that tilt sharpens the class posterior) and of the
Ho & Salimans 2022 chapter ((1 + w) eps(x, y) - w eps(x) is classifier guidance at scale 1 + w
with the implicit classifier p(x|y) / p(x)). Both are checked on a one-dimensional mixture of
two Gaussians at noise level sigma, whose class posterior is a logistic function of x, so every
quantity has a closed form. Two further checks say what the identities do *not* give: for
s != 1 the tilted densities p_sigma(x) p_sigma(y|x)^s / Z are not the noised marginals of one
density (a counterexample on the mixture), so a guided sampler does not draw p(x) p(y|x)^s; and a
trained network's eps(x, y) - eps(x) need not be a gradient field, so it need not be any
classifier's gradient (a counterexample in 2-D). Each check takes a parameter that states
something false; ``tests/test_guidance.py`` and ``tests/test_proofs_fidelity.py`` make sure the
check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "guided_score_check", "cfg_implicit_check", "tilt_linearity_check",
           "tilt_heat_flow_check", "cfg_gradient_field_check"]


def _mixture():
    """Two classes y in {0, 1}, weights pi and 1 - pi, x | y ~ N(mu_y, v); noised by sigma."""
    x, mu0, mu1 = sp.symbols("x mu_0 mu_1", real=True)
    pi = sp.Symbol("pi", positive=True)
    v, sigma = sp.symbols("v sigma", positive=True)
    tau2 = v + sigma**2  # x + sigma n has class-conditional variance v + sigma^2

    def normal(mu):
        return sp.exp(-(x - mu) ** 2 / (2 * tau2)) / sp.sqrt(2 * sp.pi * tau2)

    joint = (pi * normal(mu0), (1 - pi) * normal(mu1))  # p_sigma(x, y)
    return x, sigma, joint, joint[0] + joint[1], (pi, 1 - pi)


def _dlog(expr, x):
    """d/dx log(expr), expanded into a sum of logs first (keeps SymPy's work small)."""
    return sp.diff(sp.expand_log(sp.log(expr), force=True), x)


def guided_score_check(scale_factor=1) -> ProofResult:
    """(1) grad log p(x) + s grad log p(y|x) = grad log [p(x) p(y|x)^s] on the mixture, the
    normaliser Z_s being constant in x; (2) the tilted class posterior p(y|x)^s / sum_y'
    p(y'|x)^s has logit s times the original logit; (3) its derivative in s is logit * r (1 - r)
    (the favoured class gains); (4) its entropy falls at the rate s logit^2 r (1 - r).
    ``scale_factor`` != 1 states a wrong scale for the logit."""
    x, _, joint, marginal, _ = _mixture()
    s = sp.Symbol("s", positive=True)
    guided = _dlog(marginal, x) + s * (_dlog(joint[1], x) - _dlog(marginal, x))
    tilted_log = sp.log(marginal) + s * (sp.log(joint[1]) - sp.log(marginal))  # log p p(y|x)^s
    score_ok = rational_zero(guided - sp.diff(tilted_log, x), slow=True)

    a = sp.Symbol("a", real=True)  # the logit log p(1|x) / p(0|x), any real number
    r1 = sp.exp(a) / (1 + sp.exp(a))  # p(1|x) = sigmoid(a)
    tilted = r1**s / (r1**s + (1 - r1) ** s)
    logit_ok = rational_zero(sp.expand_log(sp.log(tilted / (1 - tilted)), force=True) - scale_factor * s * a, slow=True)
    rate_ok = rational_zero(sp.diff(tilted, s) - a * tilted * (1 - tilted), slow=True)
    entropy = -tilted * sp.log(tilted) - (1 - tilted) * sp.log(1 - tilted)
    entropy_rate = sp.diff(entropy, s).subs(sp.log(tilted) - sp.log(1 - tilted), s * a)
    entropy_ok = rational_zero(sp.simplify(sp.expand_log(entropy_rate, force=True))
                               + s * a**2 * tilted * (1 - tilted), slow=True)
    # the mixture's own logit is linear in x: the tilt scales how fast the posterior switches
    j0, j1 = sp.symbols("j_0 j_1", positive=True)  # the two joint densities at x
    odds_ok = rational_zero((j1 / (j0 + j1)) / (1 - j1 / (j0 + j1)) - j1 / j0, slow=True)  # odds = joint ratio
    logit_x = sp.expand(sp.expand_log(sp.log(joint[1]) - sp.log(joint[0]), force=True))
    linear_ok = rational_zero(sp.diff(logit_x, x, 2), slow=True)
    return combine(score_ok, logit_ok, rate_ok, entropy_ok, odds_ok, linear_ok)


def tilt_linearity_check(power=None) -> ProofResult:
    """grad log P + s grad log C = grad log (P C^s) for *any* positive differentiable P, C (SymPy
    functions, not a particular density): linearity of the derivative, nothing more.
    ``power`` replaces the exponent s of C by something else (a false statement)."""
    x = sp.Symbol("x", real=True)
    s = sp.Symbol("s", positive=True)
    P, C = sp.Function("P", positive=True)(x), sp.Function("C", positive=True)(x)
    exponent = s if power is None else power
    lhs = sp.diff(sp.log(P), x) + s * sp.diff(sp.log(C), x)
    rhs = sp.diff(sp.expand_log(sp.log(P * C**exponent), force=True), x)
    return rational_zero(lhs - rhs, slow=True)


_POINT = {"x": sp.Rational(3, 10), "sigma": sp.Rational(7, 10), "mu_0": -1, "mu_1": 1,
          "v": sp.Rational(1, 4), "pi": sp.Rational(1, 2)}


def _heat_residual_slope(scale):
    """d/dx of R = d_sigma log q - sigma (d_xx log q + (d_x log q)^2) for the unnormalised tilt
    q = p_sigma(x) p_sigma(1 | x)^s of the mixture. A family q / Z(sigma) solves the heat
    equation d_sigma q = sigma d_xx q (is the noised family of one density, x = x0 + sigma n)
    exactly when R = d log Z / d sigma does not depend on x, i.e. when this slope is 0."""
    x, sigma, joint, marginal, _ = _mixture()
    log_q = (1 - scale) * sp.log(marginal) + scale * sp.log(joint[1])
    dx = sp.diff(log_q, x)
    r = sp.diff(log_q, sigma) - sigma * (sp.diff(dx, x) + dx**2)
    return sp.diff(r, x)


def tilt_heat_flow_check(scale=2, claim_flow=False) -> ProofResult:
    """Are the tilted densities q_sigma = p_sigma(x) p_sigma(y|x)^s / Z the noised marginals of one
    density? ``claim_flow`` says what is claimed for ``scale``; the check holds when the claim
    matches the mixture. s = 1 is decided symbolically (the slope of the heat residual is 0 for
    every x, sigma and mixture); any other s at one exact point of one mixture (a counterexample),
    evaluated to 30 digits."""
    slope = _heat_residual_slope(sp.nsimplify(scale))
    if scale == 1:
        flat = rational_zero(slope, slow=True)
        is_flow = flat.ok
        residual = flat.residual
    else:
        syms = {sym: _POINT[sym.name] for sym in slope.free_symbols}
        value = sp.N(slope.subs(syms), 30)
        is_flow = abs(value) < sp.Float("1e-20")
        residual = f"slope of the heat residual at the test point = {sp.N(value, 6)}"
    ok = is_flow == claim_flow
    return ProofResult(ok, "symbolic", "0" if ok else
                       f"claimed {'a' if claim_flow else 'no'} heat flow at s = {scale}; {residual}")


def _guided_score_proof_check() -> ProofResult:
    return combine(tilt_linearity_check(), guided_score_check(),
                   tilt_heat_flow_check(1, claim_flow=True), tilt_heat_flow_check(2, claim_flow=False))


GUIDED_SCORE = Proof(
    name="guided_score_tilt",
    title=("Classifier guidance is, at each noise level, the score of p(x) p(y|x)^s; s > 1 sharpens "
           "the class posterior; for s != 1 the tilted densities are not one density's noised marginals"),
    statement=(r"\nabla_x \log p_\sigma(x) + s\,\nabla_x \log p_\sigma(y\mid x)"
               r" = \nabla_x \log q_\sigma,\quad q_\sigma = \frac{p_\sigma(x)\,p_\sigma(y\mid x)^s}{Z_\sigma};"
               r"\qquad \operatorname{logit} \frac{p(y\mid x)^s}{\sum_{y'} p(y'\mid x)^s}"
               r" = s\,\operatorname{logit} p(y\mid x);"
               r"\qquad \partial_\sigma q_\sigma = \sigma\,\partial_x^2 q_\sigma"
               r"\ \text{at } s = 1,\ \text{not in general at } s \ne 1"),
    steps=[
        ("The normaliser Z_sigma = integral of p_sigma(x) p_sigma(y|x)^s dx does not depend on x, "
         "so its gradient vanishes; the log of the product splits into log p(x) + s log p(y|x). "
         "This is linearity of the derivative: it holds for any positive differentiable "
         "densities (checked with SymPy functions P and C, not a particular density), and it "
         "is a statement about one noise level sigma at a time.", None),
        ("For two classes the class posterior is the logistic function of a logit a(x); on a "
         "two-class Gaussian mixture noised to level sigma, a(x) is linear in x (equal class "
         "variances v + sigma^2, checked).", None),
        ("Raising the posterior to the power s and normalising over the classes multiplies the "
         "logit by s: the classifier answers as if it were s times as sure.", None),
        ("Its derivative in s is a r (1 - r): the class the classifier already favours "
         "(a > 0) gains probability as s grows, the other one loses it.", None),
        ("The entropy of the tilted posterior changes at the rate -s a^2 r (1 - r) <= 0: for "
         "s > 1 the posterior is sharper than the classifier's own, and s < 1 flattens it.", None),
        ("What a sampler draws is another question. A probability-flow ODE or reverse SDE "
         "driven by the scores of a family q_sigma ends in q_0 when the q_sigma are the noised "
         "marginals of q_0, i.e. solve the heat equation d_sigma q = sigma d_xx q (x = x0 + "
         "sigma n). Write R = d_sigma log q - sigma (d_xx log q + (d_x log q)^2) for the "
         "unnormalised tilt; the normalised family solves the heat equation exactly when R does "
         "not depend on x. At s = 1 the tilt is p_sigma(x, y), and R is flat in x (symbolic, for "
         "every mixture). At s = 2 the slope of R in x is 3.6 at x = 0.3, sigma = 0.7 on the "
         "mixture with means -1 and 1, variance 1/4 and equal weights: no density's noised "
         "marginals are these q_sigma, so guidance at s != 1 is not exact sampling of "
         "p(x) p(y|x)^s (its guided_ode_tilt_gap in diffnotes.guidance measures the miss).", None),
    ],
    check=_guided_score_proof_check,
)


def cfg_implicit_check(weight_offset=1) -> ProofResult:
    """On the mixture with eps = -sigma * score (EDM coordinates, x = x0 + sigma n):
    (1 + w) eps(x, y) - w eps(x) = -sigma [grad log p(x) + (1 + w) grad log p_i(y|x)] with the
    implicit classifier p_i(y|x) = p(x|y) p(y) / p(x) (Bayes); and the same combination of the
    denoisers, (1 + w) D(x, y) - w D(x), is the denoiser of that guided eps (the weights sum to
    one, so the affine map D = x - sigma eps commutes with it). ``weight_offset`` != 1 states
    the wrong guidance scale w + weight_offset."""
    x, sigma, joint, marginal, prior = _mixture()
    w = sp.Symbol("w", nonnegative=True)
    y = 1
    conditional = joint[y] / prior[y]  # p(x | y) = p(x, y) / p(y)
    score_cond = _dlog(joint[y], x)  # grad log p(x | y) = grad log p(x, y): p(y) is constant in x
    score_uncond = _dlog(marginal, x)
    eps_cond, eps_uncond = -sigma * score_cond, -sigma * score_uncond
    implicit = _dlog(joint[y] / marginal, x)  # grad log p_i(y | x)
    lhs = (1 + w) * eps_cond - w * eps_uncond
    rhs = -sigma * (score_uncond + (w + weight_offset) * implicit)
    eps_ok = rational_zero(lhs - rhs, slow=True)

    def denoiser(eps):
        return x - sigma * eps

    mix_ok = rational_zero((1 + w) * denoiser(eps_cond) - w * denoiser(eps_uncond) - denoiser(lhs), slow=True)
    bayes_ok = rational_zero(_dlog(conditional, x) - score_cond, slow=True)
    return combine(eps_ok, mix_ok, bayes_ok)


def cfg_gradient_field_check(error_curl=0, claim_gradient=None) -> ProofResult:
    """Is the implicit-classifier field -(eps(x, y) - eps(x)) / sigma the gradient of a log-classifier?

    In 2-D, with eps(x, y) = -sigma grad log P_y(x) + e_y(x) for any positive smooth P_y (SymPy
    functions: exact scores when e = 0) and a network error e_y. Exact scores give a curl-free
    field, the gradient of log P_y / P_null. An error whose difference between the conditional
    and the null prediction is ``error_curl`` * (-x_2, x_1) (a rotation, which no trained network
    is kept from making) gives curl -2 * error_curl / sigma: then no function, hence no classifier,
    has the field as its gradient. ``claim_gradient`` (default: error_curl == 0) is what is
    claimed; the check holds when the claim matches the curl."""
    x1, x2 = sp.symbols("x_1 x_2", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    c = sp.nsimplify(error_curl)
    p_y = sp.Function("P_y", positive=True)(x1, x2)
    p_0 = sp.Function("P_0", positive=True)(x1, x2)

    def eps(density, error):
        return [-sigma * sp.diff(sp.log(density), v) + e for v, e in zip((x1, x2), error)]

    eps_y = eps(p_y, (-c * x2, c * x1))
    eps_0 = eps(p_0, (0, 0))
    field = [-(a - b) / sigma for a, b in zip(eps_y, eps_0)]  # the implicit classifier's gradient
    curl = sp.simplify(sp.diff(field[1], x1) - sp.diff(field[0], x2))
    is_gradient = curl == 0
    claim = (c == 0) if claim_gradient is None else bool(claim_gradient)
    ok = is_gradient == claim
    return ProofResult(ok, "symbolic", "0" if ok else
                       f"claimed {'a' if claim else 'no'} gradient field; its curl is {curl}")


def _cfg_proof_check() -> ProofResult:
    return combine(cfg_implicit_check(), cfg_gradient_field_check(0, claim_gradient=True),
                   cfg_gradient_field_check(1, claim_gradient=False))


CFG_IMPLICIT = Proof(
    name="cfg_implicit_classifier",
    title=("With exact scores, classifier-free guidance is classifier guidance at scale 1 + w with "
           "an implicit classifier; a trained network's difference need not be any classifier's "
           "gradient"),
    statement=(r"\epsilon = -\sigma\nabla_x\log p_\sigma:\quad"
               r"(1+w)\,\epsilon(x, y) - w\,\epsilon(x) = -\sigma\Big[\nabla_x \log p_\sigma(x)"
               r" + (1+w)\,\nabla_x \log p^{i}_\sigma(y\mid x)\Big],\qquad "
               r"p^{i}_\sigma(y\mid x) = \frac{p_\sigma(x\mid y)\,p(y)}{p_\sigma(x)};"
               r"\qquad \text{for a network, } \nabla\times\big(\epsilon_\theta(x,y)"
               r" - \epsilon_\theta(x)\big) \ne 0 \text{ is possible}"),
    steps=[
        ("In the book's coordinates (x = x0 + sigma n) the noise prediction is eps = -sigma "
         "times the score: eps(x, y) for the conditional model, eps(x) for the same network "
         "given the null label.", None),
        ("Bayes: grad log p(y|x) = grad log p(x|y) - grad log p(x), since p(y) does not "
         "depend on x. A network that knows both scores knows this gradient without any "
         "classifier having been trained: the implicit classifier.", None),
        ("Hence (1 + w) eps(x, y) - w eps(x) = -sigma [grad log p(x) + (1 + w)(grad log p(x|y) "
         "- grad log p(x))]: classifier guidance of the unconditional score at scale 1 + w "
         "(w = 0 is the plain conditional model, scale 1). Checked on the two-class mixture "
         "noised to level sigma.", None),
        ("The combination can be taken on the denoisers instead: D = x - sigma eps is affine "
         "in eps and the weights (1 + w) and -w sum to one, so (1 + w) D(x, y) - w D(x) is the "
         "guided denoiser.", None),
        ("All of this assumes exact scores. A trained network's eps(x, y) - eps(x) is the "
         "difference of two approximations; it is the gradient of a log-classifier only if it "
         "is a gradient field at all. In 2-D, with generic densities (SymPy functions), exact "
         "scores give a curl-free difference; adding to the conditional prediction an error "
         "c (-x_2, x_1), a rotation, gives curl -2c / sigma != 0, and a field with curl is "
         "nobody's gradient. So with a trained network 'implicit classifier' is a heuristic "
         "name, exact only where the network's scores are.", None),
    ],
    check=_cfg_proof_check,
)


PROOFS = [GUIDED_SCORE, CFG_IMPLICIT]
