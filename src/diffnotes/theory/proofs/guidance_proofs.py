"""Guidance as a tilt of the density: classifier guidance (ADM) and classifier-free guidance.

The derivations of the Dhariwal & Nichol 2021 chapter (the guided score is the score of
p(x) p(y|x)^s normalised, and for s > 1 that tilt sharpens the class posterior) and of the
Ho & Salimans 2022 chapter ((1 + w) eps(x, y) - w eps(x) is classifier guidance at scale 1 + w
with the implicit classifier p(x|y) / p(x)). Both are checked on a one-dimensional mixture of
two Gaussians at noise level sigma, whose class posterior is a logistic function of x, so every
quantity has a closed form. Each check takes a parameter that states something false;
``tests/test_guidance.py`` makes sure the check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult

__all__ = ["PROOFS", "guided_score_check", "cfg_implicit_check"]


def _zero(expr) -> ProofResult:
    """``expr`` is identically 0: a rational cancel first, ``simplify`` only if that leaves a rest."""
    r = sp.cancel(sp.together(sp.expand(expr)))
    if r != 0:
        r = sp.simplify(r)
    return ProofResult(r == 0, "symbolic", "0" if r == 0 else str(r))


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


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
    score_ok = _zero(guided - sp.diff(tilted_log, x))

    a = sp.Symbol("a", real=True)  # the logit log p(1|x) / p(0|x), any real number
    r1 = sp.exp(a) / (1 + sp.exp(a))  # p(1|x) = sigmoid(a)
    tilted = r1**s / (r1**s + (1 - r1) ** s)
    logit_ok = _zero(sp.expand_log(sp.log(tilted / (1 - tilted)), force=True) - scale_factor * s * a)
    rate_ok = _zero(sp.diff(tilted, s) - a * tilted * (1 - tilted))
    entropy = -tilted * sp.log(tilted) - (1 - tilted) * sp.log(1 - tilted)
    entropy_rate = sp.diff(entropy, s).subs(sp.log(tilted) - sp.log(1 - tilted), s * a)
    entropy_ok = _zero(sp.simplify(sp.expand_log(entropy_rate, force=True))
                       + s * a**2 * tilted * (1 - tilted))
    # the mixture's own logit is linear in x: the tilt scales how fast the posterior switches
    j0, j1 = sp.symbols("j_0 j_1", positive=True)  # the two joint densities at x
    odds_ok = _zero((j1 / (j0 + j1)) / (1 - j1 / (j0 + j1)) - j1 / j0)  # odds = joint ratio
    logit_x = sp.expand(sp.expand_log(sp.log(joint[1]) - sp.log(joint[0]), force=True))
    linear_ok = _zero(sp.diff(logit_x, x, 2))
    return _combine(score_ok, logit_ok, rate_ok, entropy_ok, odds_ok, linear_ok)


GUIDED_SCORE = Proof(
    name="guided_score_tilt",
    title="Classifier guidance is the score of p(x) p(y|x)^s, and s > 1 sharpens the class posterior",
    statement=(r"\nabla_x \log p_\sigma(x) + s\,\nabla_x \log p_\sigma(y\mid x)"
               r" = \nabla_x \log \frac{p_\sigma(x)\,p_\sigma(y\mid x)^s}{Z_s},\qquad"
               r"\operatorname{logit} \frac{p(y\mid x)^s}{\sum_{y'} p(y'\mid x)^s}"
               r" = s\,\operatorname{logit} p(y\mid x)"),
    steps=[
        ("The normaliser Z_s = integral of p(x) p(y|x)^s dx does not depend on x, so its "
         "gradient vanishes and the log of the product splits into log p(x) + s log p(y|x). "
         "Checked on a two-class Gaussian mixture noised to level sigma, with the mixture's "
         "own marginal and posterior (not a generic identity of symbols).", None),
        ("For two classes the class posterior is the logistic function of a logit a(x); on the "
         "mixture a(x) is linear in x (equal class variances v + sigma^2, checked).", None),
        ("Raising the posterior to the power s and normalising over the classes multiplies the "
         "logit by s: the classifier answers as if it were s times as sure.", None),
        ("Its derivative in s is a r (1 - r): the class the classifier already favours "
         "(a > 0) gains probability as s grows, the other one loses it.", None),
        ("The entropy of the tilted posterior changes at the rate -s a^2 r (1 - r) <= 0: for "
         "s > 1 the posterior is sharper than the classifier's own, and s < 1 flattens it. "
         "That is the fidelity-for-diversity trade: samples land where the classifier is "
         "confident, which is a smaller part of the class.", None),
    ],
    check=guided_score_check,
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
    eps_ok = _zero(lhs - rhs)

    def denoiser(eps):
        return x - sigma * eps

    mix_ok = _zero((1 + w) * denoiser(eps_cond) - w * denoiser(eps_uncond) - denoiser(lhs))
    bayes_ok = _zero(_dlog(conditional, x) - score_cond)
    return _combine(eps_ok, mix_ok, bayes_ok)


CFG_IMPLICIT = Proof(
    name="cfg_implicit_classifier",
    title="Classifier-free guidance is classifier guidance at scale 1 + w with an implicit classifier",
    statement=(r"(1+w)\,\epsilon(x, y) - w\,\epsilon(x) = -\sigma\Big[\nabla_x \log p_\sigma(x)"
               r" + (1+w)\,\nabla_x \log p^{i}_\sigma(y\mid x)\Big],\qquad "
               r"p^{i}_\sigma(y\mid x) = \frac{p_\sigma(x\mid y)\,p(y)}{p_\sigma(x)}"),
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
    ],
    check=cfg_implicit_check,
)


PROOFS = [GUIDED_SCORE, CFG_IMPLICIT]
