"""Channel simulation: the derivations of the Havasi 2019 and Harsha 2007 chapters.

What minimal random coding's output law is (and why it is only approximately q), what a rejection
sampler accepts, how far a Gaussian likelihood ratio can rise, and why the Poisson functional
representation's index costs KL + 2 log2(KL + 1) + O(1) bits. The engine's coders live in
``diffnotes.coding``; each check below can be made to fail by a parameter that states something
false (``tests/test_coding.py``).
"""

from __future__ import annotations

import itertools

import sympy as sp

from .base import Proof, ProofResult, symbolic_zero

__all__ = ["PROOFS", "mrc_output_law_check", "rejection_check", "gaussian_ratio_sup_check",
           "pfr_length_check"]


def _combine(*results: ProofResult) -> ProofResult:
    bad = [r.residual for r in results if not r.ok]
    return ProofResult(not bad, "symbolic", "0" if not bad else "; ".join(bad))


def _nonnegative(expr, symbols) -> ProofResult:
    """``expr`` >= 0 where the given symbols are positive (SymPy's assumptions decide)."""
    ok = sp.factor(sp.together(sp.simplify(expr))).is_nonnegative
    return ProofResult(bool(ok), "symbolic", "0" if ok else f"not shown >= 0: {expr}")


# =============================================================================================
# Havasi 2019: the law of the sample minimal random coding sends
# =============================================================================================
def mrc_output_law_check(n: int = 3, factor=1) -> ProofResult:
    """Two symbols {a, b}: enumerate every draw of ``n`` candidates from p, pick one with
    probability w_k / sum w, and compare the law of the pick with
    q(z) * n * E[1 / (w(z) + S_{n-1})] (``factor`` != 1 states a wrong formula)."""
    pa, qa = sp.symbols("p_a q_a", positive=True)
    p = {"a": pa, "b": 1 - pa}
    q = {"a": qa, "b": 1 - qa}
    w = {z: q[z] / p[z] for z in p}
    law = {z: sp.Integer(0) for z in p}
    for draw in itertools.product(p, repeat=n):
        chance = sp.Mul(*(p[z] for z in draw))
        total = sum(w[z] for z in draw)
        for z in draw:
            law[z] += chance * w[z] / total
    # S_{n-1}: the weights of the other n - 1 candidates, summed
    rest = {}
    for draw in itertools.product(p, repeat=n - 1):
        rest_sum = sum((w[z] for z in draw), sp.Integer(0))
        rest[rest_sum] = rest.get(rest_sum, 0) + sp.Mul(*(p[z] for z in draw))
    formula = {z: factor * q[z] * n * sum(c / (w[z] + s) for s, c in rest.items()) for z in p}
    return symbolic_zero([sp.together(law[z] - formula[z]) for z in p])


MRC_OUTPUT_LAW = Proof(
    name="mrc_output_law",
    title="Minimal random coding sends a sample of a reweighted q, which tends to q",
    statement=(r"Z_1,\dots,Z_N \overset{iid}{\sim} p,\ \ P(k^*=k\mid Z) = \frac{w(Z_k)}{\sum_j w(Z_j)},"
               r"\ w=\frac{q}{p}\ \Rightarrow\ \bar q(z) = q(z)\,\mathbb{E}\Big[\frac{N}{w(z) + S_{N-1}}\Big],"
               r"\ \ S_{N-1} = \sum_{j=2}^{N} w(Z_j)"),
    steps=[
        ("By symmetry the pick is candidate 1 with probability 1/N of the total; candidate 1 sits at z "
         "with density p(z) and is picked with probability w(z)/(w(z) + S_{N-1}).", None),
        ("Multiply by N and use p(z) w(z) = q(z): the output density is q(z) N E[1/(w(z) + S_{N-1})].", None),
        ("The factor depends on z only through w(z), so the total variation between the output law and "
         "q is that of the law of w(Z): one dimension, whatever the dimension of z.", None),
        ("S_{N-1}/N tends to E_p[w] = 1, so the factor tends to 1 as N grows; with N = exp(KL + t) "
         "Havasi et al.'s Theorem 3.2 (from Chatterjee & Diaconis 2018) bounds the error.", None),
        ("Checked exactly by SymPy: two symbols, three candidates, every draw enumerated, symbolic p and q.",
         None),
    ],
    check=mrc_output_law_check,
)


# =============================================================================================
# Harsha 2007: the plain rejection sampler and why it costs the max-divergence
# =============================================================================================
def rejection_check(m_power=1) -> ProofResult:
    """Three symbols, symbolic q and p, a bound M: accept probability 1/M, accepted law q,
    mean index M (``m_power`` != 1 states a wrong acceptance rate)."""
    p = sp.symbols("p1:4", positive=True)
    q = sp.symbols("q1:4", positive=True)
    m = sp.Symbol("M", positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    a = sp.Symbol("a", positive=True)  # the acceptance probability, in (0, 1)
    q_sum_one = {q[2]: 1 - q[0] - q[1]}
    accept = sum(pi * qi / (m * pi) for pi, qi in zip(p, q)).subs(q_sum_one)
    accepted_law = [pi * qi / (m * pi) / accept for pi, qi in zip(p, q)]
    mean_index = sp.summation(k * a * (1 - a) ** (k - 1), (k, 1, sp.oo))
    mean_index = sp.piecewise_fold(mean_index).subs(sp.Abs(1 - a) < 1, True)
    if isinstance(mean_index, sp.Piecewise):
        mean_index = mean_index.args[0][0]
    return symbolic_zero([accept - 1 / m**m_power,
                          *[(law - qi).subs(q_sum_one) for law, qi in zip(accepted_law, q)],
                          mean_index - 1 / a])


REJECTION = Proof(
    name="rejection_sampling_acceptance",
    title="Rejection sampling accepts with probability 1/M and so costs log2 M bits",
    statement=(r"X_i\sim p,\ \text{accept with prob. } \frac{q(X_i)}{M\,p(X_i)},\ M\ge\max\frac{q}{p}:\ \ "
               r"P(\text{accept}) = \frac1M,\ \ X_K\sim q,\ \ \mathbb{E}[K] = M,\ \ "
               r"\mathbb{E}\log_2 K \le \log_2 M"),
    steps=[
        ("One step accepts with probability sum_x p(x) q(x)/(M p(x)) = 1/M, and accepts x with "
         "probability q(x)/M, so the accepted symbol has law q.", None),
        ("Steps are independent, so the index K is geometric with success 1/M: E[K] = M "
         "(SymPy sums the series).", None),
        ("Jensen: E log2 K <= log2 E K = log2 M. The index costs about log2 max q/p bits, the "
         "max-divergence, which can exceed KL(q||p) by any amount: the reason Harsha et al. make "
         "the acceptance greedy.", None),
    ],
    check=rejection_check,
)


def gaussian_ratio_sup_check(shift=0) -> ProofResult:
    """sup_z log N(z; a, s^2)/N(z; b, r^2) for s < r: stationary point, curvature and value
    (``shift`` != 0 states a wrong value)."""
    z, a, b = sp.symbols("z a b", real=True)
    s, d = sp.symbols("s d", positive=True)  # r = s + d > s
    r = s + d
    log_w = (-(z - a) ** 2 / (2 * s**2) - sp.log(s)) - (-(z - b) ** 2 / (2 * r**2) - sp.log(r))
    z_star = sp.solve(sp.diff(log_w, z), z)[0]
    value = log_w.subs(z, z_star)
    claimed = sp.log(r / s) + (a - b) ** 2 / (2 * (r**2 - s**2)) + shift
    curvature = sp.diff(log_w, z, 2)
    return _combine(symbolic_zero(sp.expand_log(value - claimed, force=True)),
                    _nonnegative(-curvature, (s, d)))


GAUSSIAN_RATIO_SUP = Proof(
    name="gaussian_ratio_sup",
    title="How high the likelihood ratio of two Gaussians rises (the rejection bound M)",
    statement=(r"\sigma_q<\sigma_p:\ \ \sup_z \log\frac{\mathcal N(z;\mu_q,\sigma_q^2)}{\mathcal N(z;\mu_p,\sigma_p^2)}"
               r" = \log\frac{\sigma_p}{\sigma_q} + \frac{(\mu_q-\mu_p)^2}{2(\sigma_p^2-\sigma_q^2)},"
               r"\quad \sigma_q\ge\sigma_p:\ +\infty"),
    steps=[
        ("The log ratio is a quadratic in z with leading coefficient 1/(2 sigma_p^2) - 1/(2 sigma_q^2), "
         "negative exactly when sigma_q < sigma_p; otherwise it is unbounded.", None),
        ("Set its derivative to zero and substitute back (SymPy), per coordinate; a product of "
         "coordinates adds the logs.", None),
        ("This is log M for a Gaussian rejection sampler and the stopping certificate of the Poisson "
         "functional representation in diffnotes.coding.gaussian_log_ratio_max.", None),
    ],
    check=gaussian_ratio_sup_check,
)


# =============================================================================================
# Harsha 2007 / Li & El Gamal 2018: the index of the Poisson functional representation
# =============================================================================================
def pfr_length_check(jensen_sign=1, slack=4) -> ProofResult:
    """The pieces of E len <= KL + 2 log2(KL + 1) + slack: E_q[1/w] = 1 for a Gaussian pair,
    concavity of u + 2 log2(u + 1) + 1, and the final comparison (``jensen_sign`` = -1 claims
    convexity; ``slack`` < 4 a constant the steps do not give)."""
    u, kl = sp.symbols("u KL", nonnegative=True)
    z = sp.Symbol("z", real=True)
    a = sp.Symbol("a", real=True)
    s = sp.Symbol("s", positive=True)
    q = sp.exp(-(z - a) ** 2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    p = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    inverse_weight = sp.integrate(sp.simplify(q * p / q), (z, -sp.oo, sp.oo))
    length = u + 2 * sp.log(u + 1, 2) + 1  # the Elias delta bound as a function of log2 K
    curvature = sp.diff(length, u, 2)
    # E len <= (KL + 1) + 2 log2(KL + 2) + 1 after Jensen; compare with KL + 2 log2(KL + 1) + slack
    after_jensen = (kl + 1) + 2 * sp.log(kl + 2, 2) + 1
    gap = kl + 2 * sp.log(kl + 1, 2) + slack - after_jensen  # >= 0 iff (KL+2)/(KL+1) <= 2^((slack-2)/2)
    gap_ok = sp.simplify(2 ** sp.Rational(slack - 2, 2) * (kl + 1) - (kl + 2))
    return _combine(symbolic_zero(inverse_weight - 1),
                    _nonnegative(-jensen_sign * curvature, (u,)),
                    _nonnegative(gap_ok, (kl,)),
                    ProofResult(bool(sp.simplify(gap.subs(kl, 0)) >= 0), "symbolic",
                                "0" if sp.simplify(gap.subs(kl, 0)) >= 0 else str(gap)))


PFR_LENGTH = Proof(
    name="pfr_code_length",
    title="The Poisson functional representation sends q in KL + 2 log2(KL + 1) + O(1) bits",
    statement=(r"K = \arg\min_i \frac{T_i}{w(Z_i)}:\ \ Z_K\sim q,\ \ \mathbb{E}\log_2 K \le "
               r"\mathrm{KL}(q\|p) + 1,\ \ \mathbb{E}\,\ell_\delta(K) \le \mathrm{KL} + 2\log_2(\mathrm{KL}+1) + 4"),
    steps=[
        ("The points (T_i/w(Z_i), Z_i) form a Poisson process with intensity q(z) ds dz, so the first "
         "one is at Z_K ~ q (Li & El Gamal 2018).", None),
        ("Given Z_K = z and S_K = s ~ Exp(1), the earlier points are those with T_i < s w(z) and "
         "T_i/w(Z_i) > s: at most s w(z) of them on average, so E[K | Z_K = z] <= w(z) + 1.", None),
        ("Jensen: E log2 K <= E_q log2(w + 1) = KL + E_q log2(1 + 1/w) <= KL + log2(1 + E_q[1/w]), and "
         "E_q[1/w] = integral of p over the support of q <= 1 (SymPy integrates a Gaussian pair: 1).",
         None),
        ("The Elias delta code of K has at most u + 2 log2(u + 1) + 1 bits with u = log2 K; that "
         "function is concave and increasing (SymPy: its second derivative is negative), so by "
         "Jensen E len <= (KL + 1) + 2 log2(KL + 2) + 1.", None),
        ("Since (KL + 2)/(KL + 1) <= 2, this is at most KL + 2 log2(KL + 1) + 4: Harsha et al.'s "
         "bound with an explicit constant. Averaged over x with p the marginal, KL becomes I(X;Y), "
         "and concavity again moves the mean inside the logarithm.", None),
    ],
    check=pfr_length_check,
)


PROOFS = [MRC_OUTPUT_LAW, REJECTION, GAUSSIAN_RATIO_SUP, PFR_LENGTH]
