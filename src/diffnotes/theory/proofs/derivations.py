"""The derivations each paper chapter displays: one or more per paper, each checked by SymPy.

These are the steps the papers take between their assumptions and their losses or samplers
(integration by parts in score matching, the bound of the diffusion models, DDIM's Lemma 1, ...).
Where SymPy can check a statement for abstract functions it does (``p``, ``q``, ``psi`` below are
undefined SymPy functions, so the identity holds for every density and model); where only an
instance can be computed, the statement says which instance. Shown in the chapters of
``book/papers/`` through :func:`diffnotes.book.show_proof`.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, ProofResult, combine, symbolic_zero
from .score_proofs import gaussian_expectation

__all__ = ["PROOFS"]

x, y, t_ = sp.symbols("x y t", real=True)
mu = sp.Symbol("mu", real=True)
c = sp.Symbol("c", positive=True)


def _log_normal(z, mean, var):
    return -((z - mean) ** 2) / (2 * var) - sp.log(2 * sp.pi * var) / 2


def _gaussian_entropy(var):
    return sp.log(2 * sp.pi * sp.E * var) / 2


def _gaussian_kl(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) in one dimension."""
    return sp.log(v2 / v1) / 2 + (v1 + (m1 - m2) ** 2) / (2 * v2) - sp.Rational(1, 2)


# =============================================================================================
# Hyvarinen 2005: integration by parts removes the data score
# =============================================================================================
def score_matching_by_parts(sign=1) -> ProofResult:
    """E_p[psi d/dx log p] = -E_p[psi'] (``sign=-1`` states the wrong sign)."""
    p, psi = sp.Function("p"), sp.Function("psi")
    # pointwise: p psi (log p)' = (p psi)' - p psi'; the total derivative integrates to 0 when p psi -> 0
    pointwise = p(x) * psi(x) * sp.diff(sp.log(p(x)), x) - (sp.diff(p(x) * psi(x), x) + sign * (-1) * p(x) * sp.diff(psi(x), x))
    # instance, integrated over the real line: p = N(mu, c^2), psi a cubic with symbolic coefficients
    a = sp.symbols("a0:4", real=True)
    psi_i = sum(a[k] * x**k for k in range(4))
    dens = sp.exp(_log_normal(x, mu, c**2))
    lhs = sp.integrate(sp.expand(dens * psi_i * sp.diff(_log_normal(x, mu, c**2), x)), (x, -sp.oo, sp.oo))
    rhs = -sign * sp.integrate(sp.expand(dens * sp.diff(psi_i, x)), (x, -sp.oo, sp.oo))
    return combine(symbolic_zero(pointwise), symbolic_zero(lhs - rhs))


HYVARINEN_BY_PARTS = Proof(
    name="score_matching_by_parts",
    title="Score matching: integration by parts removes the unknown data score",
    statement=(r"\mathbb{E}_{p}\big[\tfrac12\|\psi(x) - \nabla\log p(x)\|^2\big] = "
               r"\mathbb{E}_{p}\big[\tfrac12\|\psi(x)\|^2 + \operatorname{tr}\nabla\psi(x)\big] + C,\quad "
               r"\text{because } \mathbb{E}_p[\psi_i\,\partial_i\log p] = -\mathbb{E}_p[\partial_i\psi_i]"
               r"\ \ (p\,\psi \to 0 \text{ at infinity})"),
    steps=[
        ("Expand the square: (1/2)|psi|^2 - psi . grad log p + (1/2)|grad log p|^2; the last term is C, free of "
         "the model.", None),
        ("The cross term, per coordinate: p psi (log p)' = psi p' = (p psi)' - p psi' (checked for abstract p, psi).",
         r"p\,\psi\,(\log p)' = (p\,\psi)' - p\,\psi'"),
        ("Integrate over the line: the total derivative gives p psi at +-infinity, zero by assumption, so "
         "E[psi (log p)'] = -E[psi'] (Hyvarinen 2005, Theorem 1).", None),
        ("Instance integrated by SymPy over the real line: p = N(mu, c^2), psi = a0 + a1 x + a2 x^2 + a3 x^3.", None),
    ],
    check=score_matching_by_parts,
)


# =============================================================================================
# Song et al. 2019 (sliced): a random projection gives the trace back in expectation
# =============================================================================================
def sliced_trace_identity(v_scale=1) -> ProofResult:
    """E_v[v^T A v] = tr A and E_v[(v^T s)^2] = |s|^2 for v ~ N(0, I) in 2-D (``v_scale`` != 1 fails)."""
    v1, v2 = sp.symbols("v1 v2", real=True)
    A = sp.Matrix(2, 2, sp.symbols("A11 A12 A21 A22", real=True))
    s = sp.Matrix(sp.symbols("s1 s2", real=True))
    v = v_scale * sp.Matrix([v1, v2])
    quad = gaussian_expectation((v.T * A * v)[0], v1, v2)
    proj = gaussian_expectation(((v.T * s)[0]) ** 2, v1, v2)
    return symbolic_zero([quad - A.trace(), proj - (s.T * s)[0]])


SLICED = Proof(
    name="sliced_score_matching_trace",
    title="Sliced score matching: random projections recover the trace in expectation",
    statement=(r"v\sim\mathcal{N}(0,I):\quad \mathbb{E}_v\big[v^\top\nabla s_\theta(x)\,v\big] = \operatorname{tr}\nabla s_\theta(x),\ \ "
               r"\mathbb{E}_v\big[(v^\top s_\theta)^2\big] = \|s_\theta\|^2\ \Rightarrow\ "
               r"\mathbb{E}_{p}\mathbb{E}_v\big[v^\top\nabla s_\theta v + \tfrac12 (v^\top s_\theta)^2\big] = "
               r"\mathbb{E}_p\big[\operatorname{tr}\nabla s_\theta + \tfrac12\|s_\theta\|^2\big]"),
    steps=[
        ("E[v v^T] = I, so E[v^T A v] = tr(A E[v v^T]) = tr A for any matrix A (checked in 2-D with symbolic A).", None),
        ("Likewise E[(v^T s)^2] = s^T E[v v^T] s = |s|^2.", None),
        ("So the sliced objective has Hyvarinen's objective as its expectation, while v^T grad s v costs one "
         "Jacobian-vector product instead of d.", None),
    ],
    check=sliced_trace_identity,
)


# =============================================================================================
# Sohl-Dickstein 2015 / DDPM: the bound, its KL form and its entropy form (1-D Gaussian chain)
# =============================================================================================
T_CHAIN = 3


def _chain_setup():
    # the schedule is one concrete instance (alpha_t squares of rationals, so every sqrt(alpha_bar)
    # is rational); data and model parameters stay symbolic. With symbolic betas the check is exact
    # too but takes SymPy over ten minutes.
    alphas = [sp.Rational(81, 100), sp.Rational(16, 25), sp.Rational(9, 25)][:T_CHAIN]
    betas = [1 - al for al in alphas]
    zs = sp.symbols("z0:%d" % (T_CHAIN + 1), real=True)  # z0 for the data, z_t for step t's noise
    xs = [mu + c * zs[0]]
    for k in range(T_CHAIN):
        xs.append(sp.sqrt(alphas[k]) * xs[-1] + sp.sqrt(betas[k]) * zs[k + 1])
    ab = [sp.Integer(1)]
    for al in alphas:
        ab.append(ab[-1] * al)
    # the model: any linear-Gaussian reverse kernels p(x_{t-1} | x_t) = N(a_t x_t + b_t, v_t)
    a = sp.symbols("a_1:%d" % (T_CHAIN + 1), real=True)
    b = sp.symbols("b_1:%d" % (T_CHAIN + 1), real=True)
    v = sp.symbols("v_1:%d" % (T_CHAIN + 1), positive=True)
    return betas, zs, xs, ab, a, b, v


def bound_decomposition_check(entropy_sign=1) -> ProofResult:
    """K = E_q[log p(x_{0:T}) / q(x_{1:T} | x_0)] in three forms, exactly, for T = 3 in 1-D."""
    betas, zs, xs, ab, a, b, v = _chain_setup()
    E = lambda e: gaussian_expectation(sp.expand(e), *zs)  # noqa: E731
    log_prior = _log_normal(xs[-1], 0, 1)
    # definition: log p(x_T) + sum_t [log p(x_{t-1}|x_t) - log q(x_t|x_{t-1})]
    K = E(log_prior) + sum(E(_log_normal(xs[k - 1], a[k - 1] * xs[k] + b[k - 1], v[k - 1])
                             - _log_normal(xs[k], sp.sqrt(1 - betas[k - 1]) * xs[k - 1], betas[k - 1]))
                           for k in range(1, T_CHAIN + 1))

    def posterior(k):  # q(x_{k-1} | x_k, x_0) (DDPM eq. 7)
        beta, a_k, a_p = betas[k - 1], ab[k], ab[k - 1]
        mean = sp.sqrt(a_p) * beta / (1 - a_k) * xs[0] + sp.sqrt(1 - beta) * (1 - a_p) / (1 - a_k) * xs[k]
        return mean, (1 - a_p) / (1 - a_k) * beta

    kl_terms = 0
    for k in range(2, T_CHAIN + 1):
        m, var = posterior(k)
        kl_terms += sp.log(v[k - 1] / var) / 2 + (var + E((m - a[k - 1] * xs[k] - b[k - 1]) ** 2)) / (2 * v[k - 1]) - sp.Rational(1, 2)
    decoder = E(_log_normal(xs[0], a[0] * xs[1] + b[0], v[0]))
    h_T = _gaussian_entropy(1 - ab[-1])  # H_q(X_T | X_0)
    h_1 = _gaussian_entropy(betas[0])  # H_q(X_1 | X_0)
    # DDPM eq. 5: -L_T - sum L_{t-1} + log p(x_0|x_1), with L_T = KL(q(x_T|x_0) || p(x_T))
    L_T = E(_gaussian_kl(sp.sqrt(ab[-1]) * xs[0], 1 - ab[-1], 0, 1))
    ddpm_form = -L_T - kl_terms + decoder
    # Sohl-Dickstein eq. 14 before its approximations: the entropies of the first and last forward
    # steps, the prior term, and the decoder's excess over the forward step
    sd_form = (-kl_terms + entropy_sign * (h_T - h_1) + E(log_prior)
               + (decoder - E(_log_normal(xs[1], sp.sqrt(1 - betas[0]) * xs[0], betas[0]))))
    # Sohl-Dickstein's edge choice makes the bracket E log pi(x0)/pi(x1); E log p(x_T) becomes -H_p(X_T)
    # when q(x_T) is the prior. Both are approximations; the identity above is exact.
    return combine(_expanded_zero(K - ddpm_form, "DDPM form: "), _expanded_zero(K - sd_form, "entropy form: "))


def _expanded_zero(expr, label="") -> ProofResult:
    """Zero after expanding logs and products (fast for large polynomial-and-log expressions),
    with ``symbolic_zero``'s simplifications as the fallback."""
    r = sp.expand(sp.expand_log(sp.expand(expr), force=True))
    if r == 0:
        return ProofResult(True, "symbolic", "0")
    # what is left may be logs of unfactored arguments: factor them, then split again
    r = sp.expand(sp.expand_log(r.replace(sp.log, lambda a: sp.log(sp.factor(sp.together(a)))), force=True))
    if r == 0:
        return ProofResult(True, "symbolic", "0")
    res = symbolic_zero(r)
    return res if res.ok else ProofResult(False, "symbolic", label + res.residual[:300])


SD_BOUND = Proof(
    name="diffusion_bound_three_forms",
    title="The diffusion bound: definition, DDPM's KL form and Sohl-Dickstein's entropy form agree",
    statement=(r"K = \mathbb{E}_q\Big[\log\tfrac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\Big]"
               r" = -\mathbb{E}\,\mathrm{KL}\big(q(x_T|x_0)\Vert p(x_T)\big) - \sum_{t\ge2}\mathbb{E}\,\mathrm{KL}\big(q(x_{t-1}|x_t,x_0)\Vert p_\theta(x_{t-1}|x_t)\big) + \mathbb{E}\log p_\theta(x_0|x_1)"
               r" = -\sum_{t\ge2}\mathbb{E}\,\mathrm{KL}(\cdot) + H_q(X_T|X_0) - H_q(X_1|X_0) + \mathbb{E}\log p(x_T)"
               r" + \mathbb{E}\log\tfrac{p_\theta(x_0|x_1)}{q(x_1|x_0)}"
               r"\ \ (\text{checked exactly for } T = 3,\ \alpha_t = 0.81, 0.64, 0.36,\ 1\text{-D data } \mathcal N(\mu, c^2),\ \text{any linear-Gaussian } p_\theta)"),
    steps=[
        ("Markov chain and Bayes: q(x_t | x_{t-1}) = q(x_{t-1} | x_t, x_0) q(x_t | x_0) / q(x_{t-1} | x_0) for t >= 2.", None),
        ("Summed over t, the ratios q(x_{t-1}|x_0)/q(x_t|x_0) telescope to q(x_1|x_0)/q(x_T|x_0).", None),
        ("Grouping log p(x_T) with -log q(x_T|x_0) gives DDPM's L_T; grouping the t = 1 term with log q(x_1|x_0) "
         "gives the entropy form, where E log q(x_T|x_0) = -H_q(X_T|X_0).", None),
        ("Sohl-Dickstein then set p(x_0|x_1) to the forward step reweighted by pi(x_0)/pi(x_1) (App. B.2), so the "
         "last bracket is E log pi(x_0)/pi(x_1), and replaced E log p(x_T) by -H_p(X_T), valid when q(x_T) "
         "equals the prior: their eq. 14.", None),
        ("Checked exactly with SymPy for one schedule (T = 3): the three forms are the same expression in "
         "the data's (mu, c) and every reverse kernel's (a_t, b_t, v_t). The algebra above does not use the "
         "schedule's values.", None),
    ],
    check=bound_decomposition_check,
)


# =============================================================================================
# Kingma & Welling 2014: the ELBO and its gap; diffusion as a hierarchical VAE
# =============================================================================================
def elbo_gap_check(gap_sign=1) -> ProofResult:
    """log p(x) = ELBO(q) + KL(q(z|x) || p(z|x)) for a linear-Gaussian model and any Gaussian q."""
    w, b0 = sp.symbols("w b", real=True)
    v, s = sp.symbols("v s", positive=True)
    m, z0 = sp.symbols("m z0", real=True)
    z = m + s * z0  # z ~ q(z|x) = N(m, s^2)
    log_px = _log_normal(x, b0, w**2 + v)  # p(z) = N(0, 1), p(x|z) = N(w z + b, v)
    elbo = gaussian_expectation(sp.expand(_log_normal(x, w * z + b0, v) + _log_normal(z, 0, 1)), z0) + _gaussian_entropy(s**2)
    post_var = v / (w**2 + v)
    post_mean = w * (x - b0) / (w**2 + v)
    gap = _gaussian_kl(m, s**2, post_mean, post_var)
    return symbolic_zero(sp.expand(sp.expand_log(log_px - elbo - gap_sign * gap, force=True)))


ELBO = Proof(
    name="elbo_gap_identity",
    title="The ELBO and its gap: log p(x) = ELBO + KL(q(z|x) || p(z|x))",
    statement=(r"\log p_\theta(x) = \underbrace{\mathbb{E}_{q(z|x)}\big[\log p_\theta(x\mid z)\big] - \mathrm{KL}\big(q(z|x)\Vert p(z)\big)}_{\mathrm{ELBO}}"
               r" + \mathrm{KL}\big(q(z|x)\Vert p_\theta(z|x)\big)"
               r"\ \ (\text{checked exactly: } p(z) = \mathcal N(0,1),\ p(x|z) = \mathcal N(wz+b, v),\ \text{any Gaussian } q);"
               r"\quad z = x_{1:T}:\ \log p_\theta(x_0) - K = \mathrm{KL}\big(q(x_{1:T}|x_0)\Vert p_\theta(x_{1:T}|x_0)\big)"),
    steps=[
        ("Bayes: log p(x) = log p(x, z) - log p(z | x) for every z; take the expectation over q(z | x).", None),
        ("Add and subtract E_q log q(z|x): log p(x) = E_q[log p(x, z) - log q(z|x)] + E_q[log q(z|x) - log p(z|x)].", None),
        ("The first bracket is the ELBO, the second the KL to the true posterior, >= 0: the gap.", None),
        ("Diffusion (Luo 2022's hierarchical-VAE reading): z = x_{1:T}, the encoder q(x_{1:T}|x_0) is the fixed "
         "noising chain and the decoder is the reverse chain; the same identity gives the gap of the diffusion "
         "bound K (see diffusion_bound_three_forms), which the encoder being fixed does not remove.", None),
    ],
    check=elbo_gap_check,
)


# =============================================================================================
# NCSN (Song & Ermon 2019): Langevin keeps p, and alpha_i proportional to sigma_i^2
# =============================================================================================
def langevin_check(power=2) -> ProofResult:
    """(a) p is stationary for dx = 1/2 grad log p dt + dw, any p; (b) NCSN's step alpha = k sigma^power
    makes the update's signal-to-noise ratio free of sigma (for sigma >> data scale) only at power 2."""
    p = sp.Function("p")
    drift = sp.diff(sp.log(p(x)), x) / 2
    stationary = -sp.diff(drift * p(x), x) + sp.diff(p(x), x, 2) / 2
    sigma, k = sp.symbols("sigma k", positive=True)
    alpha = k * sigma**power
    # E|score|^2 = 1/(c^2 + sigma^2) for data N(mu, c^2) perturbed by N(0, sigma^2); the ratio of
    # |alpha/2 score| to |sqrt(alpha) z| is, squared, alpha E|score|^2 / 4
    snr2 = alpha / (4 * (c**2 + sigma**2))
    large_sigma = sp.limit(snr2, c, 0)
    return combine(symbolic_zero(stationary), symbolic_zero(sp.diff(large_sigma, sigma)))


LANGEVIN = Proof(
    name="langevin_stationary_and_step_size",
    title="Langevin dynamics keeps p, and NCSN's step size alpha_i is proportional to sigma_i^2",
    statement=(r"x \leftarrow x + \tfrac{\alpha}{2}\nabla\log p(x) + \sqrt{\alpha}\,z:\quad "
               r"-\nabla\cdot\big(\tfrac12 p\nabla\log p\big) + \tfrac12\Delta p = 0\ \ (p \text{ is stationary});\quad "
               r"\frac{\mathbb{E}\|\tfrac{\alpha}{2}\nabla\log p_\sigma\|^2}{\mathbb{E}\|\sqrt\alpha z\|^2} = "
               r"\frac{\alpha}{4(c^2+\sigma^2)} \xrightarrow{\sigma\gg c} \frac{\alpha}{4\sigma^2}\ "
               r"\text{is free of } \sigma \iff \alpha\propto\sigma^2"),
    steps=[
        ("With time step alpha the update is Euler-Maruyama of dx = 1/2 grad log p dt + dw; its Fokker-Planck "
         "right-hand side vanishes at p because p grad log p = grad p (checked for abstract p).",
         r"-\partial_x\big(\tfrac12 p\,\partial_x\log p\big) + \tfrac12\partial_x^2 p = -\tfrac12 p'' + \tfrac12 p'' = 0"),
        ("For data N(mu, c^2) perturbed at level sigma, E|grad log p_sigma|^2 = 1/(c^2 + sigma^2) per dimension.", None),
        ("NCSN's alpha_i = eps sigma_i^2 / sigma_L^2 makes the squared ratio eps / (4 sigma_L^2), the same at every "
         "level once sigma_i >> c (Song & Ermon 2019, Sec. 4.3); another power of sigma would not.", None),
    ],
    check=langevin_check,
)


# =============================================================================================
# DDPM: the forward posterior and the weight of L_{t-1}
# =============================================================================================
def ddpm_posterior_check(weight_power=2) -> ProofResult:
    """q(x_{t-1}|x_t,x_0) by completing the square; L_{t-1} as a weighted epsilon error."""
    beta, ab_p = sp.symbols("beta_t alphabar_tm1", positive=True)
    x0, xt, xp, eps, eps_hat = sp.symbols("x_0 x_t x_tm1 epsilon epsilon_hat", real=True)
    alpha = 1 - beta
    ab_t = ab_p * alpha
    mean = sp.sqrt(ab_p) * beta / (1 - ab_t) * x0 + sp.sqrt(alpha) * (1 - ab_p) / (1 - ab_t) * xt
    var = (1 - ab_p) / (1 - ab_t) * beta
    # log q(x_t|x_{t-1}) + log q(x_{t-1}|x_0) - log N(x_{t-1}; mean, var) must not depend on x_{t-1}
    joint = _log_normal(xt, sp.sqrt(alpha) * xp, beta) + _log_normal(xp, sp.sqrt(ab_p) * x0, 1 - ab_p)
    rest = joint - _log_normal(xp, mean, var)
    posterior = [sp.diff(rest, xp), sp.diff(rest, xp, 2)]
    # with x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps and mu_theta = (x_t - beta/sqrt(1-ab_t) eps_hat)/sqrt(alpha)
    sub = {xt: sp.sqrt(ab_t) * x0 + sp.sqrt(1 - ab_t) * eps}
    mu_theta = (xt - beta / sp.sqrt(1 - ab_t) * eps_hat) / sp.sqrt(alpha)
    sigma2 = sp.Symbol("sigma_t^2", positive=True)
    kl_mean_part = ((mean - mu_theta) ** 2 / (2 * sigma2)).subs(sub)
    weight = beta**weight_power / (2 * sigma2 * alpha * (1 - ab_t))
    return combine(symbolic_zero(posterior), symbolic_zero(kl_mean_part - weight * (eps - eps_hat) ** 2))


DDPM_POSTERIOR = Proof(
    name="ddpm_posterior_and_weight",
    title="DDPM: the forward posterior q(x_{t-1} | x_t, x_0) and the weight of L_{t-1}",
    statement=(r"q(x_{t-1}\mid x_t,x_0) = \mathcal N\Big(\tfrac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0 + "
               r"\tfrac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\ \tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t\Big);\quad "
               r"L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)}\,\mathbb{E}\|\epsilon - \epsilon_\theta(x_t,t)\|^2 + C"),
    steps=[
        ("Bayes: q(x_{t-1} | x_t, x_0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0), a product of Gaussians in "
         "x_{t-1}. Subtracting the claimed Gaussian's log density leaves no dependence on x_{t-1} (first and "
         "second derivatives vanish), so mean and variance are as stated (DDPM eqs. 6-7).", None),
        ("KL between Gaussians with the model variance sigma_t^2 fixed: L_{t-1} = |mu_tilde - mu_theta|^2 / "
         "(2 sigma_t^2) + C.", None),
        ("With x_t = sqrt(ab_t) x0 + sqrt(1-ab_t) eps and mu_theta = (x_t - beta_t/sqrt(1-ab_t) eps_theta)/sqrt(alpha_t), "
         "the difference of means is beta_t/(sqrt(alpha_t) sqrt(1-ab_t)) (eps_theta - eps): DDPM eq. 12; L_simple "
         "drops the weight.", None),
    ],
    check=ddpm_posterior_check,
)


# =============================================================================================
# DDIM: Lemma 1, the non-Markovian family keeps DDPM's marginals
# =============================================================================================
def ddim_marginal_check(drop_sigma=False) -> ProofResult:
    ab_t, ab_p = sp.symbols("alphabar_t alphabar_tm1", positive=True)
    x0, z1, z2 = sp.symbols("x_0 z1 z2", real=True)
    k = sp.Symbol("k", positive=True)  # k = sqrt(1 - ab_{t-1} - sigma_t^2), so sigma_t^2 = 1 - ab_{t-1} - k^2
    sig2 = 1 - ab_p - k**2
    xt = sp.sqrt(ab_t) * x0 + sp.sqrt(1 - ab_t) * z1  # the marginal assumed at step t
    noise = 0 if drop_sigma else sp.sqrt(sig2) * z2
    xp = sp.sqrt(ab_p) * x0 + k * (xt - sp.sqrt(ab_t) * x0) / sp.sqrt(1 - ab_t) + noise
    mean = gaussian_expectation(xp, z1, z2)
    var = gaussian_expectation(sp.expand((xp - mean) ** 2), z1, z2)
    return symbolic_zero([mean - sp.sqrt(ab_p) * x0, var - (1 - ab_p)])


DDIM_LEMMA1 = Proof(
    name="ddim_lemma1_marginals",
    title="DDIM's Lemma 1: the non-Markovian family keeps DDPM's marginals",
    statement=(r"q_\sigma(x_{t-1}\mid x_t,x_0) = \mathcal N\Big(\sqrt{\bar\alpha_{t-1}}x_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,"
               r"\tfrac{x_t-\sqrt{\bar\alpha_t}x_0}{\sqrt{1-\bar\alpha_t}},\ \sigma_t^2\Big),\ "
               r"q(x_t\mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}x_0, 1-\bar\alpha_t)\ \Rightarrow\ "
               r"q(x_{t-1}\mid x_0) = \mathcal N(\sqrt{\bar\alpha_{t-1}}x_0, 1-\bar\alpha_{t-1})"),
    steps=[
        ("Write x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) z1 and the new step's noise as sigma_t z2, z1 and z2 independent.", None),
        ("Then (x_t - sqrt(ab_t) x0)/sqrt(1 - ab_t) = z1, so x_{t-1} = sqrt(ab_{t-1}) x0 + k z1 + sigma_t z2 with "
         "k^2 = 1 - ab_{t-1} - sigma_t^2: mean sqrt(ab_{t-1}) x0, variance k^2 + sigma_t^2 = 1 - ab_{t-1}.", None),
        ("By induction from t = T down, every marginal is DDPM's, for every choice of sigma_t (DDIM App. B); "
         "the training objective, which only sees the marginals, is unchanged.", None),
    ],
    check=ddim_marginal_check,
)


# =============================================================================================
# Score SDE: the instantaneous change of variables behind the PF-ODE likelihood
# =============================================================================================
def change_of_variables_check(div_sign=1) -> ProofResult:
    """Along x(t) solving dx/dt = v(x, t): d/dt log p(x(t), t) = -div v, when p solves the continuity equation."""
    p, v = sp.Function("p"), sp.Function("v")
    continuity = sp.diff(p(x, t_), t_) + sp.diff(v(x, t_) * p(x, t_), x)  # = 0 for the marginals
    total = sp.diff(sp.log(p(x, t_)), t_) + v(x, t_) * sp.diff(sp.log(p(x, t_)), x)  # chain rule along the path
    return symbolic_zero(total + div_sign * sp.diff(v(x, t_), x) - continuity / p(x, t_))


CHANGE_OF_VARIABLES = Proof(
    name="instantaneous_change_of_variables",
    title="The instantaneous change of variables behind the probability-flow likelihood",
    statement=(r"\frac{\mathrm{d}x}{\mathrm{d}t} = \tilde f(x,t),\ \ \partial_t p_t = -\nabla\cdot(\tilde f p_t):\quad "
               r"\frac{\mathrm{d}}{\mathrm{d}t}\log p_t(x(t)) = -\nabla\cdot\tilde f(x(t),t)\ \Rightarrow\ "
               r"\log p_0(x(0)) = \log p_T(x(T)) + \int_0^T \nabla\cdot\tilde f(x(t),t)\,\mathrm{d}t"),
    steps=[
        ("Chain rule along the path: d/dt log p(x(t), t) = d_t log p + f . grad log p.", None),
        ("Divide the continuity equation by p: d_t log p + f . grad log p + div f = 0 (checked for abstract p, f "
         "in one dimension; in d dimensions the same holds per coordinate and the divergences add).",
         r"\tfrac{\mathrm{d}}{\mathrm{d}t}\log p + \nabla\cdot\tilde f = \tfrac{1}{p}\big(\partial_t p + \nabla\cdot(\tilde f p)\big) = 0"),
        ("With f~ = f - g^2/2 grad log p (the PF-ODE, whose marginals solve the continuity equation: "
         "fokker_planck_gaussian) integrating from 0 to T gives Score SDE's eq. 39; the divergence is estimated "
         "with Hutchinson's trace estimator.", None),
    ],
    check=change_of_variables_check,
)


# =============================================================================================
# EDM: the stochastic sampler is the PF-ODE plus a Langevin term (EDM eq. 6)
# =============================================================================================
def edm_sde_check(langevin_factor=2) -> ProofResult:
    """(a) the Langevin part beta sigma^2 grad log p dt + sqrt(2 beta) sigma dw leaves p(x; sigma) unchanged,
    any p; (b) for Gaussian data the whole forward SDE solves the Fokker-Planck equation of p(x; sigma(t))."""
    p = sp.Function("p")
    beta_f, sig = sp.Function("beta")(t_), sp.Function("sigma")(t_)
    lang_drift = beta_f * sig**2 * sp.diff(sp.log(p(x)), x)
    lang_g2 = langevin_factor * beta_f * sig**2
    langevin_fp = -sp.diff(lang_drift * p(x), x) + lang_g2 / 2 * sp.diff(p(x), x, 2)
    # Gaussian data N(mu, c^2): p(x; sigma) = N(mu, c^2 + sigma^2); forward SDE dx+ of EDM eq. 6
    var = c**2 + sig**2
    logp = _log_normal(x, mu, var)
    score = sp.diff(logp, x)
    drift = -sp.diff(sig, t_) * sig * score + beta_f * sig**2 * score
    g2 = lang_g2
    dens = sp.exp(logp)
    fp = sp.diff(dens, t_) + sp.diff(drift * dens, x) - g2 / 2 * sp.diff(dens, x, 2)
    return combine(symbolic_zero(langevin_fp), symbolic_zero(sp.simplify(fp / dens)))


EDM_SDE = Proof(
    name="edm_sde_langevin_split",
    title="EDM's stochastic sampler: the probability-flow ODE plus a Langevin term",
    statement=(r"\mathrm{d}x_\pm = \underbrace{-\dot\sigma\sigma\nabla\log p(x;\sigma)\,\mathrm{d}t}_{\text{PF-ODE}}"
               r"\ \underbrace{\pm\,\beta(t)\sigma^2\nabla\log p(x;\sigma)\,\mathrm{d}t + \sqrt{2\beta(t)}\,\sigma\,\mathrm{d}w_t}_{\text{Langevin: leaves } p(x;\sigma) \text{ unchanged}}"),
    steps=[
        ("The Langevin part alone: its Fokker-Planck right-hand side is -d(beta sigma^2 p d log p) + beta sigma^2 p'' "
         "= 0, since p d log p = p' (checked for abstract p and beta(t), sigma(t)).", None),
        ("Hence adding it to the PF-ODE, with any beta(t) >= 0, keeps the marginals p(x; sigma(t)); EDM's "
         "Algorithm 2 discretises it as 'add noise, then take an ODE step' (S_churn sets beta).", None),
        ("Checked in full for Gaussian data: p(x; sigma) = N(mu, c^2 + sigma^2) solves the forward equation's "
         "Fokker-Planck equation for abstract sigma(t) and beta(t).", None),
    ],
    check=edm_sde_check,
)


def karras_rho_check(rho_limit=True) -> ProofResult:
    """EDM's step rule interpolates between uniform steps (rho = 1) and geometric ones (rho -> oo)."""
    i, n = sp.symbols("i N", positive=True)
    smin, smax, rho = sp.symbols("sigma_min sigma_max rho", positive=True)
    frac = i / (n - 1)
    sigma_i = (smax ** (1 / rho) + frac * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    uniform = sigma_i.subs(rho, 1) - (smax + frac * (smin - smax))
    geometric_target = smax * (smin / smax) ** frac if rho_limit else smax + frac * (smin - smax)
    lim = sp.limit(sp.log(sigma_i).subs({smin: 1, smax: sp.E ** 4, i: 1, n: 3}), rho, sp.oo)
    ends = [sigma_i.subs(i, 0) - smax, sigma_i.subs(i, n - 1) - smin]
    return combine(symbolic_zero([uniform] + ends),
                   symbolic_zero(lim - sp.log(geometric_target.subs({smin: 1, smax: sp.E ** 4, i: 1, n: 3}))))


KARRAS_RHO = Proof(
    name="karras_steps_rho_family",
    title="EDM's time steps: a family from uniform (rho = 1) to geometric (rho -> infinity)",
    statement=(r"\sigma_i = \Big(\sigma_\mathrm{max}^{1/\rho} + \tfrac{i}{N-1}\big(\sigma_\mathrm{min}^{1/\rho} - \sigma_\mathrm{max}^{1/\rho}\big)\Big)^\rho:\ "
               r"\sigma_0 = \sigma_\mathrm{max},\ \sigma_{N-1} = \sigma_\mathrm{min};\ \rho = 1:\ \text{uniform};\ "
               r"\rho\to\infty:\ \sigma_\mathrm{max}\big(\sigma_\mathrm{min}/\sigma_\mathrm{max}\big)^{i/(N-1)}\ \text{(instance checked at } i = 1, N = 3)"),
    steps=[
        ("Linear in sigma^{1/rho}: the endpoints are sigma_max and sigma_min for every rho.", None),
        ("rho = 1 gives uniform steps in sigma; as rho grows the steps crowd towards sigma_min, and the limit is "
         "the geometric (log-uniform) schedule of SMLD/VE (limit taken by SymPy at one instance).", None),
        ("Which rho is best is not derived here. EDM Sec. 3 reports that rho = 3 roughly equalises the local "
         "truncation error of each step, measured on its trained models, but that rho = 5-10 gives better "
         "FID, and picks rho = 7. Errors near sigma_min therefore count for more than their size.", None),
    ],
    check=karras_rho_check,
)


PROOFS = [HYVARINEN_BY_PARTS, SLICED, SD_BOUND, ELBO, LANGEVIN, DDPM_POSTERIOR, DDIM_LEMMA1,
          CHANGE_OF_VARIABLES, EDM_SDE, KARRAS_RHO]
