"""Embedding-conditioned generation: retrieval (Blattmann et al. 2022) and unCLIP (Ramesh et al. 2022).

* ``retrieval_posterior`` — for data from a Gaussian mixture with one shared isotropic variance,
  whose neighbours come from the same component as the image, the retrieval-conditioned model is p(x | n_1..n_k) = sum_c
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

from .base import Proof, ProofResult, combine, rational_zero

__all__ = ["PROOFS", "retrieval_posterior_check", "unclip_two_stage_check"]


# =============================================================================================
# Retrieval: the model conditioned on neighbours, for a Gaussian mixture with a shared variance
# =============================================================================================
def _sum_over_neighbours_to_mean(expr, n, j, i, k, nbar):
    """Replace every sum over the neighbours of n[j, i] by k nbar[i] (the definition of the mean)."""
    return expr.replace(lambda e: isinstance(e, sp.Sum) and e.function == n[j, i], lambda e: k * nbar[i])


def retrieval_posterior_check(slope_factor=1, variance_ratio=1) -> ProofResult:
    """Components N(mu_c, s^2 I) in d dimensions with weights pi_c; x and its k neighbours n_j are
    drawn independently from the same component c. With k symbolic (a SymPy sum over j = 1..k)
    and one symbolic coordinate i (the log-odds in d dimensions is the sum over i of such terms,
    so the result holds for every d), checks (1) the log-odds of two components c = 1, 2 given the
    neighbours: per coordinate i, the log-likelihood ratio summed over the k neighbours equals
    k (mu_1i - mu_2i)(nbar_i - (mu_1i + mu_2i)/2) / s^2 once the neighbours' sum is written as
    k nbar_i, and no neighbour is left in it otherwise (so the posterior over any number of
    components depends on the set only through k and nbar); (2) p(x | n) = sum_c p(c | n)
    N(x; mu_c, s^2 I) for C components (C symbolic, the likelihoods free positive symbols); (3)
    derived from (1): for neighbours at the mean of component 1, the log-odds are
    log(pi/(1-pi)) + k |mu_1 - mu_2|^2 / (2 s^2), which tend to infinity with k whenever
    mu_1 != mu_2. ``slope_factor`` != 1 states a wrong slope; ``variance_ratio`` r != 1 gives
    component 2 the standard deviation r s, where the claim is false (the squares of the
    neighbours no longer cancel)."""
    pi = sp.symbols("pi", positive=True)
    s = sp.symbols("s", positive=True)
    r = sp.sympify(variance_ratio)
    k = sp.symbols("k", positive=True, integer=True)
    j, i = sp.symbols("j i", positive=True, integer=True)
    n, mu1, mu2, nbar = sp.IndexedBase("n"), sp.IndexedBase("mu_1"), sp.IndexedBase("mu_2"), sp.IndexedBase("nbar")

    # (1) one coordinate's share of log p(n | c=1) - log p(n | c=2), summed over the k neighbours
    # (normal densities' constants included: log of 1/sqrt(2 pi s^2) per neighbour and coordinate)
    term = (-(n[j, i] - mu1[i]) ** 2 / (2 * s**2) + (n[j, i] - mu2[i]) ** 2 / (2 * r**2 * s**2)
            + sp.log(r))
    per_coord = sp.factor_terms(sp.expand(sp.Sum(sp.expand(term), (j, 1, k))).doit())
    per_coord = _sum_over_neighbours_to_mean(per_coord, n, j, i, k, nbar)
    claimed_coord = slope_factor * k * (mu1[i] - mu2[i]) * (nbar[i] - (mu1[i] + mu2[i]) / 2) / s**2
    only_mean = ProofResult(not per_coord.has(n), "symbolic",
                            "0" if not per_coord.has(n) else f"left over: {per_coord}")
    odds_ok = rational_zero(per_coord - claimed_coord, slow=True)
    # the d-dimensional log-odds is log(pi/(1-pi)) plus the sum over i = 1..d of these shares, so
    # equal summands give the claimed formula for every d

    # (2) the model conditioned on neighbours, C components, free likelihoods L_c = p(n_1..n_k | c)
    c, C = sp.symbols("c C", positive=True, integer=True)
    w, lik, dens = sp.IndexedBase("pi"), sp.IndexedBase("L"), sp.IndexedBase("N")
    evidence = sp.Sum(w[c] * lik[c], (c, 1, C))  # p(n)
    conditioned = sp.Sum(w[c] * dens[c] * lik[c], (c, 1, C)) / evidence  # p(x, n) / p(n)
    mixture = sp.Sum(w[c] * lik[c] / evidence * dens[c], (c, 1, C))  # sum_c p(c | n) N(x; mu_c)
    model_ok = rational_zero(sp.factor_terms(mixture) - conditioned, slow=True)

    # (3) neighbours at mu_1: the log-odds from (1), derived, not retyped; Delta = mu_1 - mu_2
    delta = sp.IndexedBase("Delta")
    at_mu1 = claimed_coord.subs(nbar[i], mu1[i]).subs(mu1[i], mu2[i] + delta[i])
    at_mu1_ok = rational_zero(at_mu1 - slope_factor * k * delta[i] ** 2 / (2 * s**2), slow=True)
    sq = sp.symbols("Delta_sq", positive=True)  # |mu_1 - mu_2|^2 = sum_i Delta_i^2 > 0
    odds_at_mu1 = sp.log(pi / (1 - pi)) + slope_factor * k * sq / (2 * s**2)
    limit_ok = ProofResult(sp.limit(odds_at_mu1, k, sp.oo) == sp.oo, "symbolic")
    return combine(only_mean, odds_ok, model_ok, at_mu1_ok, limit_ok)


RETRIEVAL_POSTERIOR = Proof(
    name="retrieval_posterior",
    title="The retrieval-conditioned model: neighbours act through the posterior over components",
    statement=(r"p(x\mid n_{1:k}) = \sum_c p(c\mid n_{1:k})\,\mathcal N(x;\mu_c,s^2 I),\qquad "
               r"\log\frac{p(c{=}1\mid n_{1:k})}{p(c{=}2\mid n_{1:k})} = \log\frac{\pi_1}{\pi_2}"
               r" + \frac{k}{s^2}(\mu_1-\mu_2)^\top\Big(\bar n - \frac{\mu_1+\mu_2}{2}\Big)"),
    steps=[
        ("Model the data as a mixture: a component c is drawn with weight pi_c, then x and its "
         "k neighbours are drawn independently from N(mu_c, s^2 I) in d dimensions, every "
         "component with the same variance s^2. Retrieval from a good database approximates "
         "this: neighbours are close to x, so they share its component.", None),
        ("Given c, x is independent of the neighbours, so p(x | n) = sum_c p(x | c) p(c | n): the "
         "retrieval-conditioned model is the mixture reweighted by the neighbours' posterior "
         "over components (checked by SymPy as p(x, n) / p(n) for a symbolic number C of "
         "components, whatever k is).", None),
        ("Bayes' rule with a shared variance: summed over the k neighbours (k symbolic), the "
         "squares of the n_j cancel between two components in every coordinate, leaving a "
         "log-odds linear in the neighbours' sum, i.e. a function of k and the mean nbar only "
         "(SymPy checks that no neighbour is left once the sum is written k nbar). The mean of "
         "the neighbour embeddings is therefore all that a model of this data needs from the "
         "set (the lab conditions on that mean). With unequal variances the squares remain, "
         "and the claim fails; the check is run on that false variant too.", None),
        ("Swapping the database changes only the neighbours: with a database that holds one "
         "component, nbar sits near its mean, and the log-odds derived above become "
         "log(pi_1/pi_2) + k |mu_1 - mu_2|^2 / (2 s^2), which SymPy confirms tends to infinity "
         "with k: the model then generates that component only, whatever its training data "
         "were.", None),
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
    results = [rational_zero(decoder[j][f[j]] * prior[f[j]] - p[j], slow=True) for j in range(4)]
    results += [rational_zero(sum(decoder[j][z] * prior[z] for z in (0, 1)) - p[j], slow=True) for j in range(4)]
    return combine(*results)


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
