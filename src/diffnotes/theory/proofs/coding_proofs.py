"""Channel simulation: the derivations of the Havasi 2019 and Harsha 2007 chapters.

What minimal random coding's output law is (and why it is only approximately q), what a rejection
sampler accepts, how far a Gaussian likelihood ratio can rise, and why the book's Elias delta
code of the Poisson functional representation's index costs at most KL + 2 log2(KL + 1) + 4 bits
(the book's bound for its own code; Harsha et al. 2007 and Li & El Gamal 2018 prove their own,
different bounds, which the chapters state). The engine's coders live in
``diffnotes.coding``; each check below can be made to fail by a parameter that states something
false (``tests/test_coding.py``).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import sympy as sp

from .base import Proof, ProofResult, combine, symbolic_zero

__all__ = ["PROOFS", "mrc_output_law_check", "rejection_check", "gaussian_ratio_sup_check",
           "pfr_length_check"]


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
    return combine(symbolic_zero(sp.expand_log(value - claimed, force=True)),
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
# The book's own bound: an Elias delta code of the Poisson functional representation's index
# (the representation is Li & El Gamal 2018's; the bound below is for this book's code of K)
# =============================================================================================
def _elias_delta_word(k: int) -> str:
    """The Elias delta code word of k >= 1, written out (the theory layer keeps its own copy so
    the check does not rest on the engine's ``diffnotes.coding.elias_delta_bits``)."""
    binary = bin(k)[3:]  # k without its leading 1
    length = bin(len(binary) + 1)[2:]
    return "0" * (len(length) - 1) + length + binary


def _power_of_two(e: int) -> Fraction:
    return Fraction(2) ** e


def pfr_length_check(jensen_sign=1, slack=4, log_coeff=2, offset=1, k_max=1 << 12) -> ProofResult:
    """E len <= KL + 2 log2(KL + 1) + 4 for the Elias delta code of the PFR index, from the bound
    f(u) = u + ``log_coeff`` log2(u + 1) + ``offset`` on the code length at u = log2 K:

    1. E_q[1/w] = 1 for a Gaussian pair (the integral behind E log2 K <= KL + 1);
    2. f increasing and concave on u >= 0 (the two uses of Jensen's inequality need both);
    3. len(k) <= f(log2 k) for *every* k >= 1: with L = floor(log2 k) and M = floor(log2(L + 1)),
       len = L + 2M + 1 <= L + 2 log2(L + 1) + 1 <= f(L) <= f(log2 k); the middle inequality is
       checked for every integer L >= 0 symbolically, the last by step 2; and for k = 1..k_max,
       exactly in rational arithmetic, the written-out code word has length L + 2M + 1 and
       2^(len - L - offset) <= (L + 1)^log_coeff, i.e. len <= f(L);
    4. f(KL + 1) <= KL + log_coeff log2(KL + 1) + slack for every KL >= 0 (increasing gap,
       checked at KL = 0).

    False variants: ``jensen_sign`` = -1 claims convexity, ``slack`` < 4 a constant the steps do
    not give, ``log_coeff`` = 1 or ``offset`` = 0 a length bound the Elias delta code breaks."""
    u, kl = sp.symbols("u KL", nonnegative=True)
    big_l = sp.Symbol("L", integer=True, nonnegative=True)
    z = sp.Symbol("z", real=True)
    a = sp.Symbol("a", real=True)
    s = sp.Symbol("s", positive=True)
    q = sp.exp(-(z - a) ** 2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    p = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    inverse_weight = sp.integrate(sp.simplify(q * p / q), (z, -sp.oo, sp.oo))
    log_coeff, offset, slack = sp.nsimplify(log_coeff), sp.nsimplify(offset), sp.nsimplify(slack)

    def f(x):
        return x + log_coeff * sp.log(x + 1, 2) + offset

    slope, curvature = sp.diff(f(u), u), sp.diff(f(u), u, 2)
    # step 3, for every integer L >= 0: L + 2 log2(L + 1) + 1 <= f(L)
    per_integer = f(big_l) - (big_l + 2 * sp.log(big_l + 1, 2) + 1)
    # step 3, exactly on a range: the code word's length, and len <= f(L)
    bad_k = []
    exponent_ok = log_coeff.is_Integer and offset.is_Integer
    for k in range(1, k_max + 1):
        length = len(_elias_delta_word(k))
        lk = k.bit_length() - 1
        mk = (lk + 1).bit_length() - 1
        fits = (_power_of_two(lk) <= k < _power_of_two(lk + 1)
                and _power_of_two(mk) <= lk + 1 and length == lk + 2 * mk + 1)
        if exponent_ok:
            fits = fits and _power_of_two(length - lk - int(offset)) <= Fraction(lk + 1) ** int(log_coeff)
        else:  # a non-integer coefficient: compare in SymPy's exact arithmetic
            fits = fits and bool(sp.Integer(length) <= f(sp.Integer(lk)))
        if not fits:
            bad_k.append(k)
            if len(bad_k) >= 3:
                break
    range_ok = ProofResult(not bad_k, "symbolic",
                           "0" if not bad_k else f"Elias delta length above the bound at k = {bad_k}")
    # step 4: the gap KL + c log2(KL + 1) + slack - f(KL + 1) grows with KL; check it at 0
    gap = kl + log_coeff * sp.log(kl + 1, 2) + slack - f(kl + 1)
    gap_at_zero = sp.nsimplify(sp.simplify(gap.subs(kl, 0)))
    gap_zero_ok = ProofResult(bool(gap_at_zero >= 0), "symbolic",
                              "0" if gap_at_zero >= 0 else f"gap at KL = 0 is {gap_at_zero}")
    return combine(symbolic_zero(inverse_weight - 1),
                   _nonnegative(slope, (u,)),
                   _nonnegative(-jensen_sign * curvature, (u,)),
                   _nonnegative(sp.expand_log(per_integer, force=True), (big_l,)),
                   range_ok,
                   _nonnegative(sp.diff(gap, kl), (kl,)),
                   gap_zero_ok)


PFR_LENGTH = Proof(
    name="pfr_code_length",
    title="The book's Elias delta code of the PFR index costs at most KL + 2 log2(KL + 1) + 4 bits",
    statement=(r"K = \arg\min_i \frac{T_i}{w(Z_i)}:\ \ Z_K\sim q,\ \ \mathbb{E}\log_2 K \le "
               r"\mathrm{KL}(q\|p) + 1;\ \ \ell_\delta(k) \le \log_2 k + 2\log_2(\log_2 k + 1) + 1"
               r"\ \ \forall k\ge 1;\ \ \mathbb{E}\,\ell_\delta(K) \le \mathrm{KL} + "
               r"2\log_2(\mathrm{KL}+1) + 4"),
    steps=[
        ("The points (T_i/w(Z_i), Z_i) form a Poisson process with intensity q(z) ds dz, so the first "
         "one is at Z_K ~ q (Li & El Gamal 2018, whose construction this is).", None),
        ("Given Z_K = z and S_K = s ~ Exp(1), the earlier points are those with T_i < s w(z) and "
         "T_i/w(Z_i) > s: at most s w(z) of them on average, so E[K | Z_K = z] <= w(z) + 1 "
         "(the book's argument; SymPy does not check this step).", None),
        ("Jensen: E log2 K <= E_q log2(w + 1) = KL + E_q log2(1 + 1/w) <= KL + log2(1 + E_q[1/w]), and "
         "E_q[1/w] = integral of p over the support of q <= 1 (SymPy integrates a Gaussian pair: 1).",
         None),
        ("The Elias delta code of k has L + 2M + 1 bits, L = floor(log2 k), M = floor(log2(L + 1)). "
         "Since M <= log2(L + 1), L <= log2 k and f(u) = u + 2 log2(u + 1) + 1 is increasing "
         "(SymPy: f' > 0), the length is at most f(log2 k) for every k; the code words for "
         "k = 1..4096 are written out and checked in exact arithmetic.", None),
        ("f is also concave (SymPy: f'' < 0), so by Jensen and monotonicity "
         "E len <= f(E log2 K) <= f(KL + 1) = KL + 2 log2(KL + 2) + 2.", None),
        ("The gap to KL + 2 log2(KL + 1) + 4 is 2 - 2 log2((KL + 2)/(KL + 1)): increasing in KL "
         "(SymPy) and 0 at KL = 0, so the bound holds for every KL >= 0. This bound and its "
         "constant are the book's, for the book's code; Harsha et al. 2007 prove "
         "I + 2 log2(I + 1) + O(1) for their rejection sampler, and Li & El Gamal 2018 bound an "
         "optimal code of the index by I + log2(I + 1) + O(1). Averaged over x with p the "
         "marginal, KL becomes I(X;Y), and concavity again moves the mean inside the logarithm.",
         None),
    ],
    check=pfr_length_check,
)


PROOFS = [MRC_OUTPUT_LAW, REJECTION, GAUSSIAN_RATIO_SUP, PFR_LENGTH]
