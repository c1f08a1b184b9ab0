"""Embedding-conditioned generation: retrieval (Blattmann et al. 2022) and unCLIP (Ramesh et al. 2022).

* ``retrieval_posterior`` — for data from a Gaussian mixture whose neighbours come from the same
  component as the image, the retrieval-conditioned model is p(x | n_1..n_k) = sum_c
  p(c | n_1..n_k) N(x; mu_c, s^2): the neighbours act only through the posterior over
  components, which depends on them only through their number k and their mean; a database that
  holds one component drives that posterior to 1 as k grows.
* ``unclip_two_stage`` — when the image embedding z_i = f(x) is a deterministic function of x,
  p(x | y) = p(x | z_i, y) p(z_i | y) holds for z_i = f(x) (no sum over z_i is needed); with a
  noisy encoder it fails.

Each check takes a parameter that states something false; ``tests/test_methods_retrieval.py``
and ``tests/test_methods_unclip.py`` make sure the check then fails.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult

__all__ = ["PROOFS", "retrieval_posterior_check", "unclip_two_stage_check"]


def _zero(expr) -> ProofResult:
    r = sp.simplify(sp.cancel(sp.together(sp.expand(expr))))
    return ProofResult(r == 0, "symbolic", "0" if r == 0 else str(r))


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


# =============================================================================================
# Retrieval: the model conditioned on neighbours, for a two-component Gaussian mixture
# =============================================================================================
K_NEIGHBOURS = 3  # the algebra is the same for every k; SymPy checks k = 3 with free n_j


def retrieval_posterior_check(slope_factor=1) -> ProofResult:
    """Two 1-D components N(mu_1, s^2), N(mu_2, s^2) with weights pi, 1 - pi; x and its k
    neighbours n_j are drawn independently from the same component c. Checks (1) the log-odds of
    c = 1 given the neighbours equals log(pi/(1-pi)) + k (mu_1 - mu_2)(nbar - (mu_1+mu_2)/2)/s^2,
    a function of k and the neighbour mean nbar only; (2) p(x | n) = sum_c p(c | n) N(x; mu_c,
    s^2), i.e. the joint p(x, n) divided by p(n); (3) for neighbours at the mean of component 1
    the log-odds grow without bound in k. ``slope_factor`` != 1 states a wrong slope."""
    pi = sp.symbols("pi", positive=True)
    mu1, mu2, x = sp.symbols("mu_1 mu_2 x", real=True)
    s = sp.symbols("s", positive=True)
    n = sp.symbols(f"n_1:{K_NEIGHBOURS + 1}", real=True)
    k = K_NEIGHBOURS

    def normal(v, mu):
        return sp.exp(-(v - mu) ** 2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)

    lik = [sp.Mul(*[normal(nj, mu) for nj in n]) for mu in (mu1, mu2)]
    log_odds = sp.expand_log(sp.log(pi * lik[0]) - sp.log((1 - pi) * lik[1]), force=True)
    nbar = sum(n) / k
    claimed = sp.log(pi / (1 - pi)) + slope_factor * k * (mu1 - mu2) * (nbar - (mu1 + mu2) / 2) / s**2
    odds_ok = _zero(sp.expand(log_odds - sp.expand_log(claimed, force=True)))

    post1 = pi * lik[0] / (pi * lik[0] + (1 - pi) * lik[1])
    joint = pi * normal(x, mu1) * lik[0] + (1 - pi) * normal(x, mu2) * lik[1]
    mixture = post1 * normal(x, mu1) + (1 - post1) * normal(x, mu2)
    model_ok = _zero(joint / (pi * lik[0] + (1 - pi) * lik[1]) - mixture)

    kk = sp.symbols("k", positive=True, integer=True)
    odds_at_mu1 = sp.log(pi / (1 - pi)) + kk * (mu1 - mu2) ** 2 / (2 * s**2)
    limit_ok = ProofResult(sp.limit(odds_at_mu1.subs({mu1: 1, mu2: 0, s: 1}), kk, sp.oo) == sp.oo,
                           "symbolic")
    return _combine(odds_ok, model_ok, limit_ok)


RETRIEVAL_POSTERIOR = Proof(
    name="retrieval_posterior",
    title="The retrieval-conditioned model: neighbours act through the posterior over components",
    statement=(r"p(x\mid n_{1:k}) = \sum_c p(c\mid n_{1:k})\,\mathcal N(x;\mu_c,s^2),\qquad "
               r"\log\frac{p(c{=}1\mid n_{1:k})}{p(c{=}2\mid n_{1:k})} = \log\frac{\pi}{1-\pi}"
               r" + \frac{k(\mu_1-\mu_2)}{s^2}\Big(\bar n - \frac{\mu_1+\mu_2}{2}\Big)"),
    steps=[
        ("Model the data as a mixture: a component c is drawn with weight pi_c, then x and its "
         "k neighbours are drawn independently from N(mu_c, s^2). Retrieval from a good "
         "database approximates this: neighbours are close to x, so they share its component.",
         None),
        ("Given c, x is independent of the neighbours, so p(x | n) = sum_c p(x | c) p(c | n): the "
         "retrieval-conditioned model is the mixture reweighted by the neighbours' posterior "
         "over components (checked by SymPy as p(x, n) / p(n) for k = 3).", None),
        ("Bayes' rule with equal variances: the quadratic terms in n_j cancel between the "
         "components, leaving a log-odds linear in the neighbours' sum, i.e. a function of k and "
         "the mean nbar only. The mean of the neighbour embeddings is therefore all that a "
         "model of this data needs from the set (the lab conditions on that mean).", None),
        ("Swapping the database changes only the neighbours: with a database that holds one "
         "component, nbar sits near its mean, and the log-odds grow like k (mu_1 - mu_2)^2 / "
         "(2 s^2), which SymPy confirms tends to infinity: the model then generates that "
         "component only, whatever its training data were.", None),
    ],
    check=retrieval_posterior_check,
)


# =============================================================================================
# unCLIP: p(x | y) = p(x | z_i, y) p(z_i | y) when z_i = f(x)
# =============================================================================================
def unclip_two_stage_check(encoder_noise=0) -> ProofResult:
    """Four images x_1..x_4 with p(x_j | y) = p_j (free positive symbols summing to 1) and the
    deterministic embedding f = (a, a, b, b). Builds the joint p(x, z | y), the prior p(z | y)
    and the decoder p(x | z, y) from it and checks, for every x, p(x | y) = p(x | f(x), y)
    p(f(x) | y), and that sampling z from the prior and x from the decoder gives p(x | y).
    ``encoder_noise`` e != 0 flips the embedding with probability e: then the first identity
    fails (the check must fail) while the second (plain marginalisation) still holds."""
    p1, p2, p3 = sp.symbols("p_1:4", positive=True)
    p = [p1, p2, p3, 1 - p1 - p2 - p3]
    e = sp.sympify(encoder_noise)
    f = [0, 0, 1, 1]  # z = a for x_1, x_2 and z = b for x_3, x_4
    joint = [[p[j] * ((1 - e) if f[j] == z else e) for z in (0, 1)] for j in range(4)]
    prior = [sum(joint[j][z] for j in range(4)) for z in (0, 1)]  # p(z | y)
    decoder = [[joint[j][z] / prior[z] for z in (0, 1)] for j in range(4)]  # p(x | z, y)
    results = [_zero(decoder[j][f[j]] * prior[f[j]] - p[j]) for j in range(4)]
    results += [_zero(sum(decoder[j][z] * prior[z] for z in (0, 1)) - p[j]) for j in range(4)]
    return _combine(*results)


UNCLIP_TWO_STAGE = Proof(
    name="unclip_two_stage",
    title="unCLIP's two stages: p(x | y) = p(x | z_i, y) p(z_i | y) for a deterministic image embedding",
    statement=(r"z_i = f(x)\ \Rightarrow\ p(x\mid y) = p(x, z_i\mid y) = "
               r"p(x\mid z_i, y)\,p(z_i\mid y)\quad\text{at } z_i = f(x)"),
    steps=[
        ("Because z_i = f(x), the pair (x, z_i) carries no more randomness than x alone: "
         "p(x, z | y) = p(x | y) 1[z = f(x)]. At z = f(x) the joint equals the marginal, which "
         "is the first equality.", None),
        ("The product rule p(x, z | y) = p(x | z, y) p(z | y) gives the second: a prior over "
         "image embeddings given the caption, then a decoder of images given the embedding "
         "(and, optionally, the caption). Sampling z from the prior and x from the decoder "
         "therefore samples p(x | y) exactly when both stages are exact.", None),
        ("SymPy checks both identities for four images, two embeddings and free probabilities, "
         "and that the first fails when the encoder is noisy: the single-z factorisation needs "
         "a deterministic embedding (the sum over z, marginalisation, holds regardless).", None),
    ],
    check=unclip_two_stage_check,
)

PROOFS = [RETRIEVAL_POSTERIOR, UNCLIP_TWO_STAGE]
