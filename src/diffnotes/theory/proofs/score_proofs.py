"""Proofs about scores, parameterizations and reverse processes.

Every proof here works in the EDM form ``x = s (x0 + sigma n)`` (scale ``s``, noise level
``sigma``, standard normal ``n``). The conversions between what a network predicts (epsilon, x0,
v, score) and the denoiser ``D`` are written once below as SymPy expressions (:data:`CONVERSIONS`);
``diffnotes.parameterization`` is their PyTorch twin and is tested equal to them.
``book/questions.md`` shows each statement next to its verification status.
"""

from __future__ import annotations

import sympy as sp

from .base import Proof, cancelled, symbolic_zero

__all__ = ["PROOFS", "CONVERSIONS", "edm_preconditioning", "gaussian_expectation"]

# -- symbols ---------------------------------------------------------------------------------
from diffnotes.theory.processes import C_DATA as c, MU as mu, X as x, X0 as x0, t  # shared symbols

n, y = sp.symbols("n y", real=True)
sigma, s = sp.symbols("sigma s", positive=True)
sigma_data = sp.symbols("sigma_data", positive=True)
eps, v, D, score = sp.symbols("epsilon v D score", real=True)


def _normal_pdf(z, mean, var):
    return sp.exp(-((z - mean) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def gaussian_expectation(poly, *zs):
    """E[poly] for independent standard normals ``zs`` (poly a polynomial in them).

    Uses the moments E[z^k] = (k-1)!! for even k and 0 for odd k.
    """
    expr = sp.expand(poly)
    for z in zs:
        p = sp.Poly(expr, z)
        expr = sum(coef * (sp.factorial2(k - 1) if k % 2 == 0 else 0) for (k,), coef in p.terms())
        expr = sp.expand(expr)
    return expr


# -- conversions between parameterizations (the reference for diffnotes.parameterization) ---
# x is the network-side state x_t = s (x0 + sigma n); D is E[x0 | x_t]; eps is E[n | x_t];
# v = alpha eps - sigma_vp x0 with alpha = s and sigma_vp = s sigma (Salimans & Ho 2022 in the
# VP case alpha^2 + sigma_vp^2 = 1); score is grad_x log p_t(x_t).
CONVERSIONS: dict[str, tuple[tuple[sp.Symbol, ...], sp.Expr]] = {
    "eps_to_denoiser": ((eps, x, sigma, s), x / s - sigma * eps),
    "denoiser_to_eps": ((D, x, sigma, s), (x / s - D) / sigma),
    "v_to_denoiser": ((v, x, sigma, s), (x - sigma * v) / (s * (1 + sigma**2))),
    "denoiser_to_v": ((D, x, sigma, s), (x - s * D) / sigma - s * sigma * D),
    "score_to_denoiser": ((score, x, sigma, s), (x + s**2 * sigma**2 * score) / s),
    "denoiser_to_score": ((D, x, sigma, s), (s * D - x) / (s**2 * sigma**2)),
}


def _conv(name, value, x_, sigma_=sigma, s_=s):
    args, expr = CONVERSIONS[name]
    return expr.subs(dict(zip(args, (value, x_, sigma_, s_))), simultaneous=True)


def edm_preconditioning(sigma_, sigma_data_):
    """EDM's c_skip, c_out, c_in (Karras et al. 2022, Table 1), taken from the EDM process."""
    from diffnotes.theory.processes import SIGMA, SIGMA_DATA, get_process

    table = get_process("edm").table1
    return {k: table[k].subs({SIGMA: sigma_, SIGMA_DATA: sigma_data_}, simultaneous=True)
            for k in ("c_skip", "c_out", "c_in")}


# ===========================================================================================
# Score of the Gaussian kernel = -n / (s sigma): the denoising score matching target
# ===========================================================================================
def _check_kernel_score():
    x_t = s * (x0 + sigma * n)
    kernel = _normal_pdf(x, s * x0, s**2 * sigma**2)
    kernel_score = sp.diff(sp.log(kernel), x).subs(x, x_t)
    return symbolic_zero([kernel_score + n / (s * sigma), (kernel_score + n / (s * sigma)).subs(s, 1)])


KERNEL_SCORE = Proof(
    name="kernel_score",
    title="Score of the Gaussian perturbation kernel is -n/(s sigma)",
    statement=r"\nabla_{x}\log \mathcal{N}\!\left(x;\, s x_0,\, s^2\sigma^2 I\right)\Big|_{x = s(x_0+\sigma n)}"
    r" = -\frac{n}{s\,\sigma}\quad(\text{for } s=1:\ -n/\sigma)",
    steps=[
        ("log-kernel", sp.log(_normal_pdf(x, s * x0, s**2 * sigma**2))),
        ("its gradient", sp.simplify(sp.diff(sp.log(_normal_pdf(x, s * x0, s**2 * sigma**2)), x))),
        ("substitute x = s(x0 + sigma n)", r"-\frac{s\sigma n}{s^2\sigma^2} = -\frac{n}{s\sigma}"),
    ],
    check=_check_kernel_score,
)


# ===========================================================================================
# The conversions map exact quantities into each other and round-trip
# ===========================================================================================
def _check_conversions():
    x_t = s * (x0 + sigma * n)
    v_true = s * n - s * sigma * x0  # alpha eps - sigma_vp x0, alpha = s, sigma_vp = s sigma
    score_cond = -n / (s * sigma)  # conditional score: its E[. | x_t] is the marginal score
    checks = [
        _conv("eps_to_denoiser", n, x_t) - x0,
        _conv("denoiser_to_eps", x0, x_t) - n,
        _conv("v_to_denoiser", v_true, x_t) - x0,
        _conv("denoiser_to_v", x0, x_t) - v_true,
        _conv("score_to_denoiser", score_cond, x_t) - x0,
        _conv("denoiser_to_score", x0, x_t) - score_cond,
    ]
    # Round trips for arbitrary values (not only exact ones): each pair is a bijection.
    checks += [
        _conv("eps_to_denoiser", _conv("denoiser_to_eps", D, x), x) - D,
        _conv("v_to_denoiser", _conv("denoiser_to_v", D, x), x) - D,
        _conv("score_to_denoiser", _conv("denoiser_to_score", D, x), x) - D,
    ]
    return symbolic_zero([*checks])


CONVERSION_PROOF = Proof(
    name="parameterization_conversions",
    title="epsilon, v and score predictions convert exactly into the denoiser D",
    statement=r"x = s(x_0+\sigma n):\quad D = \frac{x}{s} - \sigma\hat\epsilon"
    r" = \frac{x - \sigma \hat v}{s(1+\sigma^2)} = \frac{x + s^2\sigma^2\,\widehat{\nabla\log p}}{s},"
    r"\quad v = s\,n - s\sigma x_0",
    steps=[(f"{name}({', '.join(map(str, args))})", expr) for name, (args, expr) in CONVERSIONS.items()]
    + [("each conversion sends the exact (eps, v, score) of x = s(x0 + sigma n) to x0 and back", None)],
    check=_check_conversions,
)


# ===========================================================================================
# (8) v-parameterization (Salimans & Ho 2022) and its relation to EDM's preconditioning
# ===========================================================================================
phi = sp.symbols("phi", real=True)


def _check_v_param():
    alpha, sig = sp.cos(phi), sp.sin(phi)  # alpha^2 + sigma^2 = 1
    x_t = alpha * x0 + sig * n
    v_ = alpha * n - sig * x0
    inversion = [alpha * x_t - sig * v_ - x0, sig * x_t + alpha * v_ - n]
    # Variance of the target for data with variance sigma_data^2 (zero mean, independent of n).
    z0, z1 = sp.symbols("z0 z1", real=True)
    var_v = gaussian_expectation(v_.subs({x0: sigma_data * z0, n: z1}) ** 2, z0, z1)
    variance = [var_v - (alpha**2 + sig**2 * sigma_data**2), var_v - 1 - sig**2 * (sigma_data**2 - 1)]
    # v-prediction as a denoiser of x_hat = x0 + sigma_E n (EDM, s = 1): x_t = x_hat/sqrt(1+sigma_E^2).
    pre = edm_preconditioning(sigma, 1)
    a_e, s_e = 1 / sp.sqrt(1 + sigma**2), sigma / sp.sqrt(1 + sigma**2)
    # D = a x_t - s v = a^2 x_hat + s_e * (-v): c_skip = a^2, c_out = s_e with F = -v, c_in = a.
    edm = [a_e**2 - pre["c_skip"], s_e - pre["c_out"], a_e - pre["c_in"]]
    # EDM's effective target F = (x0 - c_skip x_hat)/c_out has unit variance for ANY sigma_data.
    pre_d = edm_preconditioning(sigma, sigma_data)
    x_hat = x0 + sigma * n
    f_target = (x0 - pre_d["c_skip"] * x_hat) / pre_d["c_out"]
    var_f = gaussian_expectation(f_target.subs({x0: sigma_data * z0, n: z1}) ** 2, z0, z1)
    v_edm = (a_e * n - s_e * x0)
    f_is_minus_v = ((x0 - pre["c_skip"] * x_hat) / pre["c_out"]) + v_edm
    return symbolic_zero([*inversion, *variance, *edm, var_f - 1, f_is_minus_v])


V_PARAM = Proof(
    name="v_parameterization",
    title="v-prediction: inversion, target variance, and equality with EDM at sigma_data = 1",
    statement=r"\alpha^2+\sigma^2=1,\ x_t=\alpha x_0+\sigma\epsilon,\ v=\alpha\epsilon-\sigma x_0"
    r"\ \Rightarrow\ x_0=\alpha x_t-\sigma v,\ \ \epsilon=\sigma x_t+\alpha v,\ \ "
    r"\operatorname{Var} v=\alpha^2+\sigma^2\sigma_d^2;\ \ "
    r"\text{as } D:\ c_\mathrm{skip}=\tfrac{1}{1+\sigma_E^2},\ c_\mathrm{out}=\tfrac{\sigma_E}{\sqrt{1+\sigma_E^2}},"
    r"\ c_\mathrm{in}=\tfrac{1}{\sqrt{1+\sigma_E^2}}\ (\text{EDM with }\sigma_\mathrm{data}=1,\ F=-v)",
    steps=[
        ("write alpha = cos(phi), sigma = sin(phi) so that alpha^2 + sigma^2 = 1", r"\alpha=\cos\phi,\ \sigma=\sin\phi"),
        ("rotation inverse: [x_t, v] is a rotation of [x0, eps]", r"\alpha x_t - \sigma v = (\alpha^2+\sigma^2)x_0 = x_0"),
        ("second moment of v for zero-mean data of variance sigma_d^2", r"\alpha^2 + \sigma^2\sigma_d^2 = 1 + \sigma^2(\sigma_d^2-1)"),
        ("so the target has unit variance at every noise level iff sigma_d = 1", None),
        ("EDM noise level sigma_E = sigma/alpha; network input x_t = x_hat / sqrt(1 + sigma_E^2)", r"D = \alpha^2\hat x + \sigma\,(-v)"),
        ("EDM's target F = (x0 - c_skip x_hat)/c_out has unit variance for any sigma_data", r"\operatorname{Var}F = 1"),
    ],
    check=_check_v_param,
)


# ===========================================================================================
# (11) Tweedie's formula in the s(t) form, and how a scale changes the score
# ===========================================================================================
def _check_tweedie():
    sig2 = sigma**2
    # (a) pointwise identity behind Tweedie: sigma^2 d/dx N(x; y, sigma^2) = (y - x) N(x; y, sigma^2);
    #     integrating against p0(y) dy gives sigma^2 p'(x) = p(x) (E[x0 | x] - x).
    kernel = _normal_pdf(x, y, sig2)
    pointwise = sig2 * sp.diff(kernel, x) - (y - x) * kernel
    # (b) an instance: two-component Gaussian mixture with symbolic weights, means and variances.
    w1, w2 = sp.symbols("w1 w2", positive=True)
    m1, m2 = sp.symbols("m1 m2", real=True)
    c1, c2 = sp.symbols("c1 c2", positive=True)
    comps = [(w1, m1, c1), (w2, m2, c2)]
    dens = [w * _normal_pdf(x, m, cc**2 + sig2) for w, m, cc in comps]
    p = sum(dens)
    # E[x0 | x] = sum_k r_k (m_k + c_k^2/(c_k^2 + sigma^2) (x - m_k)) (Gaussian posterior per component)
    post_mean = sum(d * (m + cc**2 / (cc**2 + sig2) * (x - m)) for d, (w, m, cc) in zip(dens, comps)) / p
    mixture = sp.simplify((x + sig2 * sp.diff(p, x) / p - post_mean) * p)
    # (c) scaled marginal p_t(x) = p(x/s; sigma)/s (1-D; s^-d in d dims, which drops out of the score)
    f = sp.Function("p")
    p_t = f(x / s) / s
    score_t = sp.diff(sp.log(p_t), x)
    score_unscaled_at = sp.diff(sp.log(f(y)), y).subs(y, x / s)
    scale_rule = score_t - score_unscaled_at / s
    # (d) E[x0 | x_t] = D(x_t/s; sigma) = (x_t + s^2 sigma^2 grad log p_t(x_t)) / s
    denoiser_at = (y + sig2 * sp.diff(sp.log(f(y)), y)).subs(y, x / s)
    scaled_tweedie = denoiser_at - (x + s**2 * sig2 * score_t) / s
    return symbolic_zero([pointwise / kernel, mixture, scale_rule, scaled_tweedie])


TWEEDIE = Proof(
    name="tweedie_scaled",
    title="Tweedie's formula D = x + sigma^2 grad log p, with a scale s(t)",
    statement=r"D(x;\sigma)=\mathbb{E}[x_0\mid x_0+\sigma n=x]=x+\sigma^2\nabla\log p(x;\sigma);\quad "
    r"x_t=s(x_0+\sigma n):\ \nabla\log p_t(x)=\tfrac1s\nabla\log p(x/s;\sigma),\ \ "
    r"\mathbb{E}[x_0\mid x_t]=\frac{x_t+s^2\sigma^2\nabla\log p_t(x_t)}{s}",
    steps=[
        ("noisy marginal", r"p(x;\sigma)=\int p_0(y)\,\mathcal{N}(x;y,\sigma^2)\,dy"),
        ("kernel gradient", r"\sigma^2\nabla_x\mathcal{N}(x;y,\sigma^2)=(y-x)\,\mathcal{N}(x;y,\sigma^2)"),
        ("integrate against p0", r"\sigma^2\nabla p(x;\sigma)=p(x;\sigma)\,(\mathbb{E}[x_0\mid x]-x)"),
        ("instance: two-component mixture with symbolic parameters", None),
        ("scaled marginal (change of variables)", r"p_t(x)=s^{-d}\,p(x/s;\sigma)"),
        ("chain rule", r"\nabla\log p_t(x)=\tfrac1s(\nabla\log p)(x/s;\sigma)"),
        ("x_t -> x_t/s is a bijection, so E[x0|x_t] = D(x_t/s; sigma)", r"\frac{x_t}{s}+\sigma^2 s\,\nabla\log p_t(x_t)"),
    ],
    check=_check_tweedie,
)


# ===========================================================================================
# (9) Fokker-Planck: Gaussian data under VE / VP (general s(t), sigma(t)), and the PF-ODE
# ===========================================================================================
s_f, sigma_f = sp.Function("s"), sp.Function("sigma")


def _log_normal(mean, var):
    return -((x - mean) ** 2) / (2 * var) - sp.log(2 * sp.pi * var) / 2


def _over_p(logp, drift, g2, rules=None):
    """Pieces of a Fokker-Planck equation divided by p, written with L = log p:
    dp/dt / p = L_t,  d/dx(f p) / p = f_x + f L_x,  d^2p/dx^2 / p = L_xx + L_x^2.
    ``rules`` replaces derivatives of short-hand functions (B'(t) = beta(t)) after differentiating."""
    lx = sp.diff(logp, x)
    pieces = (sp.diff(logp, t), sp.diff(drift, x) + drift * lx, sp.diff(lx, x) + lx**2)
    return tuple(e.subs(rules or {}) for e in pieces)


def fokker_planck_residual(mean, var, drift, g2, rules=None):
    """(dp/dt + d/dx(f p) - g^2/2 d^2p/dx^2) / p for p = N(x; mean(t), var(t))."""
    pt, flux, curv = _over_p(_log_normal(mean, var), drift, g2, rules)
    return cancelled(pt + flux - g2 / 2 * curv)


def continuity_residual(mean, var, velocity, rules=None):
    """(dp/dt + d/dx(v p)) / p for p = N(x; mean(t), var(t))."""
    pt, flux, _ = _over_p(_log_normal(mean, var), velocity, 0, rules)
    return cancelled(pt + flux)


def reverse_fp_residual(mean, var, drift, g2, rules=None):
    """Fokker-Planck of the reverse process (drift f - g^2 grad log p, time reversed), divided by p."""
    logp = _log_normal(mean, var)
    pt, flux, curv = _over_p(logp, drift - g2 * sp.diff(logp, x), g2, rules)
    return cancelled(-pt - flux - g2 / 2 * curv)


def _gaussian_cases():
    """Gaussian data N(mu, c^2) under several SDEs: (label, mean(t), var(t), f(t) x, g(t)^2, rules).

    The processes come from ``diffnotes.theory.processes`` (one formula, one place):
    * a process with abstract s(t), sigma(t), whose SDE is the derived f = s'/s, g = s sqrt(2 sigma' sigma)
      (EDM, Appendix B.2) -- this is the general statement;
    * VE, VP and sub-VP with the f and g their paper writes (Song et al. 2021, eqs. 30-31). VP and
      sub-VP are kept in their short-hand beta(t), B(t) with only B' = beta used, so the check holds
      for every beta(t), not only the linear one.
    """
    from dataclasses import replace

    from diffnotes.theory.processes import B_fn, Process, beta_fn, get_process

    general = Process(name="general", title="general s, sigma", cite="karras2022elucidating", parameterization="edm",
                      sigma_short=sigma_f(t), scale_short=s_f(t), defaults={})
    rules = {sp.Derivative(B_fn(t), t): beta_fn(t)}
    cases = []
    for proc in (general, get_process("ve"), get_process("vp"), get_process("subvp")):
        proc = replace(proc, aux={})  # keep beta(t), B(t) abstract
        mean, var = proc.marginal_gaussian(mu, c)
        cases.append((proc.title, mean, var, proc.sde_drift(x), proc.g**2, rules))
    return cases


def _check_fokker_planck():
    res = []
    for _, mean, var, drift, g2, rules in _gaussian_cases():
        res.append(fokker_planck_residual(mean, var, drift, g2, rules))
        # PF-ODE velocity f - g^2/2 grad log p satisfies the continuity equation with the same p
        res.append(continuity_residual(mean, var, drift - g2 / 2 * sp.diff(_log_normal(mean, var), x), rules))
    return symbolic_zero([*res])


FOKKER_PLANCK = Proof(
    name="fokker_planck_gaussian",
    title="Gaussian marginals solve the VE/VP Fokker-Planck equation and the PF-ODE continuity equation",
    statement=r"p_t=\mathcal{N}\!\big(s\mu,\ s^2(c^2+\sigma^2)\big),\ f=\tfrac{\dot s}{s}x,\ g^2=2s^2\sigma\dot\sigma:\quad "
    r"\partial_t p_t=-\partial_x(f p_t)+\tfrac12 g^2\partial_x^2 p_t"
    r"=-\partial_x\!\big[(f-\tfrac12 g^2\partial_x\log p_t)\,p_t\big]",
    steps=[
        ("general form with abstract s(t), sigma(t): divide the equation by p and write L = log p", r"L_t + f_x + f L_x - \tfrac12 g^2 (L_{xx}+L_x^2) = 0"),
        ("VE (Song et al. 2021): f = 0, g^2 = d sigma^2/dt, sigma(t) = sigma_min (sigma_max/sigma_min)^t", None),
        ("VP (Song et al. 2021): f = -beta x/2, g^2 = beta, mean e^{-B/2} mu, variance e^{-B} c^2 + 1 - e^{-B}, for any beta(t) = B'(t)", None),
        ("sub-VP (Song et al. 2021): f = -beta x/2, g^2 = beta (1 - e^{-2B}), variance e^{-B} c^2 + (1 - e^{-B})^2", None),
        ("PF-ODE: the velocity f - g^2/2 d log p/dx satisfies the continuity equation (residual / p = 0)", None),
        ("the SDEs act on each coordinate independently, so the 1-D check covers d dimensions per coordinate", None),
    ],
    check=_check_fokker_planck,
)


# ===========================================================================================
# (12) Anderson's reverse-time SDE and the probability-flow ODE
# ===========================================================================================
def _check_reverse():
    P, F = sp.Function("p"), sp.Function("f")
    G = sp.Function("g")
    p, f, g2 = P(x, t), F(x, t), G(t) ** 2
    forward = sp.diff(p, t) + sp.diff(f * p, x) - g2 / 2 * sp.diff(p, x, 2)
    # Reverse process y_tau = x_{T - tau}: drift -(f - g^2 grad log p), diffusion g, density p_{T-tau}.
    # Its Fokker-Planck equation in tau, rewritten in t (d/dtau = -d/dt):
    rev_drift = f - g2 * sp.diff(sp.log(p), x)
    reverse = -sp.diff(p, t) - (sp.diff(rev_drift * p, x) + g2 / 2 * sp.diff(p, x, 2))
    ode = sp.diff(p, t) + sp.diff((f - g2 / 2 * sp.diff(sp.log(p), x)) * p, x)
    general = [reverse + forward, ode - forward]  # identically: forward FP holds => both hold
    # Gaussian data with VE / VP / general s, sigma: the reverse FP holds with the exact marginal.
    inst = [reverse_fp_residual(*case[1:]) for case in _gaussian_cases()]
    return symbolic_zero([*general, *inst])


REVERSE = Proof(
    name="reverse_sde_anderson",
    title="The reverse-time SDE and the PF-ODE have the forward marginals (Fokker-Planck level)",
    statement=r"dx=\big[f-g^2\nabla\log p_t(x)\big]dt+g\,d\bar w\ \ (\text{time running backwards}),\qquad "
    r"\frac{dx}{dt}=f-\tfrac12 g^2\nabla\log p_t(x):\ \text{both have marginals } p_t"
    r"\ \ (\text{density evolution only; not Anderson's pathwise result})",
    steps=[
        ("forward Fokker-Planck", r"\partial_t p=-\partial_x(fp)+\tfrac12g^2\partial_x^2p"),
        ("reverse process in tau = T - t has drift -(f - g^2 d log p) and the same g", r"-\partial_t p=\partial_x\big[(f-g^2\partial_x\log p)p\big]+\tfrac12g^2\partial_x^2 p"),
        ("identity", r"(\text{reverse residual}) = -(\text{forward residual})"),
        ("PF-ODE: diffusion term folded into the drift", r"(\text{continuity residual}) = (\text{forward residual})"),
        ("instances: Gaussian data under general s, sigma and Song's VE and VP SDEs", None),
        ("what this does not prove: that the reversed paths have the law of the forward paths run backwards "
         "(Anderson 1982, which needs the joint law, not only the marginals); only that the densities agree", None),
    ],
    check=_check_reverse,
)


# ===========================================================================================
# (10) Denoising score matching = explicit score matching + const (Vincent 2011)
# ===========================================================================================
def dsm_cross_term_residual(kernel_score_factor=1):
    """The cross term of denoising score matching, for any data density p0, any kernel q and any model.

    At a fixed x~ the inner integral over the clean x of p0(x) q(x~|x) s(x~) d/dx~ log q(x~|x) must
    equal s(x~) d/dx~ p_sigma(x~), p_sigma = int p0 q dx (differentiation under the integral sign,
    which SymPy's Integral.diff applies). Returns the integrand of their difference, simplified;
    ``kernel_score_factor`` scales the kernel score so a test can state a false identity.
    """
    xt_, y_ = sp.symbols("xtilde y", real=True)
    p0, q, s_model = sp.Function("p_0"), sp.Function("q"), sp.Function("s_theta")
    joint = p0(y_) * q(xt_, y_)
    lhs = sp.Integral(joint * s_model(xt_) * kernel_score_factor * sp.diff(sp.log(q(xt_, y_)), xt_), (y_, -sp.oo, sp.oo))
    p_sigma = sp.Integral(joint, (y_, -sp.oo, sp.oo))
    rhs = s_model(xt_) * sp.diff(p_sigma, xt_)  # = p_sigma(x~) s(x~) d/dx~ log p_sigma(x~)
    # both are integrals over y with the same limits: compare the integrands
    inner = [a for a in sp.Mul.make_args(rhs) if isinstance(a, sp.Integral)][0]
    outer = sp.Mul(*[a for a in sp.Mul.make_args(rhs) if not isinstance(a, sp.Integral)])
    if inner.limits != lhs.limits:
        raise ValueError(f"the two sides integrate over different limits: {inner.limits} vs {lhs.limits}")
    return sp.simplify(lhs.function - outer * inner.function)


def _check_dsm():
    general = dsm_cross_term_residual()
    z0, z1 = sp.symbols("z0 z1", real=True)
    a = sp.symbols("a0:4", real=True)
    model = lambda u: a[0] + a[1] * u + a[2] * u**2 + a[3] * u**3  # noqa: E731 (any polynomial)
    x_clean = mu + c * z0
    x_noisy = x_clean + sigma * z1
    # explicit: E_{p_sigma}[(s(x~) - grad log p_sigma(x~))^2], p_sigma = N(mu, c^2 + sigma^2)
    true_score = -(x_noisy - mu) / (c**2 + sigma**2)
    esm = gaussian_expectation((model(x_noisy) - true_score) ** 2, z0, z1)
    # denoising: E_{x, x~}[(s(x~) - grad log q(x~|x))^2], grad log q = (x - x~)/sigma^2
    dsm = gaussian_expectation((model(x_noisy) - (x_clean - x_noisy) / sigma**2) ** 2, z0, z1)
    gap = sp.simplify(dsm - esm)
    no_params = [sp.diff(gap, ai) for ai in a]
    constant = gap - (1 / sigma**2 - 1 / (c**2 + sigma**2))
    return symbolic_zero([general, *no_params, constant])


DSM = Proof(
    name="dsm_equals_esm",
    title="Denoising score matching equals explicit score matching up to a constant",
    statement=r"\mathbb{E}_{x,\tilde x}\big\|s_\theta(\tilde x)-\nabla_{\tilde x}\log q_\sigma(\tilde x\mid x)\big\|^2"
    r"=\mathbb{E}_{\tilde x}\big\|s_\theta(\tilde x)-\nabla\log p_\sigma(\tilde x)\big\|^2+C,"
    r"\ C\text{ free of }\theta\ \text{(any } p_0, q, s_\theta);"
    r"\quad C=\tfrac{1}{\sigma^2}-\tfrac{1}{c^2+\sigma^2}\ \text{for } x\sim\mathcal N(\mu,c^2)",
    steps=[
        ("general cross term, for any data density p0, kernel q and model s_theta: q grad log q = grad q, and "
         "the gradient moves out of the integral over the clean x (checked by SymPy for abstract p0, q, s_theta; "
         "per coordinate, so it holds in d dimensions)",
         r"\int p_0(x)\,q(\tilde x|x)\,s_\theta(\tilde x)\,\nabla\log q(\tilde x|x)\,dx"
         r"=s_\theta(\tilde x)\,\nabla\!\int p_0(x)\,q(\tilde x|x)\,dx=p_\sigma(\tilde x)\,s_\theta(\tilde x)\,\nabla\log p_\sigma(\tilde x)"),
        ("integrate over x~: the cross terms agree", r"\mathbb{E}_{x,\tilde x}[s_\theta(\tilde x)\nabla\log q(\tilde x|x)]=\mathbb{E}_{\tilde x}[s_\theta(\tilde x)\nabla\log p_\sigma(\tilde x)]"),
        ("E||s_theta||^2 is the same under both, so the difference of the losses is "
         "E||grad log q||^2 - E||grad log p_sigma||^2, free of theta (general)", None),
        ("the constant C in the statement is for the instance: Gaussian data N(mu, c^2) and a cubic model "
         "s(x) = a0 + a1 x + a2 x^2 + a3 x^3; both losses are polynomials in a and differ by", r"\tfrac{1}{\sigma^2}-\tfrac{1}{c^2+\sigma^2}"),
    ],
    check=_check_dsm,
)


# ===========================================================================================
# (14) Analytic-DPM's optimal reverse variance (Bao et al. 2022) for Gaussian data
# ===========================================================================================
def _check_analytic_dpm():
    ab_n, ab_p = sp.symbols("alphabar_n alphabar_nm1", positive=True)  # alpha-bar at n and n-1
    k = sp.symbols("k", positive=True)  # k = sqrt(betabar_{n-1} - lambda_n^2)
    bb_n, bb_p = 1 - ab_n, 1 - ab_p
    lam2 = bb_p - k**2
    z0, z1, z2 = sp.symbols("z0 z1 z2", real=True)
    # Generalised (DDIM-family) forward process: q(x_{n-1} | x_n, x0) = N(mean, lambda_n^2)
    x_0 = mu + c * z0
    x_n = sp.sqrt(ab_n) * x_0 + sp.sqrt(bb_n) * z1
    x_p = sp.sqrt(ab_p) * x_0 + k * (x_n - sp.sqrt(ab_n) * x_0) / sp.sqrt(bb_n) + sp.sqrt(lam2) * z2
    E = lambda e: gaussian_expectation(e, z0, z1, z2)  # noqa: E731
    m_n, m_p = E(x_n), E(x_p)
    v_n = E((x_n - m_n) ** 2)
    v_p = E((x_p - m_p) ** 2)
    cov = E((x_n - m_n) * (x_p - m_p))
    true_var = v_p - cov**2 / v_n  # Var(x_{n-1} | x_n) for the jointly Gaussian pair
    # Bao et al. (2022), Theorem 1, with d = 1 and E[|grad log q_n|^2] = 1/Var(x_n) for Gaussian q_n
    alpha_n = ab_n / ab_p
    mean_sq_score = 1 / v_n
    bao = lam2 + (sp.sqrt(bb_n / alpha_n) - k) ** 2 * (1 - bb_n * mean_sq_score)
    # The reverse mean (x0 predicted by E[x0|x_n]) is the true conditional mean as well.
    xn_sym = sp.symbols("x_n", real=True)
    post_x0 = mu + c**2 * sp.sqrt(ab_n) / v_n * (xn_sym - sp.sqrt(ab_n) * mu)
    model_mean = sp.sqrt(ab_p) * post_x0 + k * (xn_sym - sp.sqrt(ab_n) * post_x0) / sp.sqrt(bb_n)
    true_mean = m_p + cov / v_n * (xn_sym - m_n)
    marginal_consistent = [m_p - sp.sqrt(ab_p) * mu, v_p - (ab_p * c**2 + bb_p)]
    return symbolic_zero([bao - true_var, model_mean - true_mean, *marginal_consistent])


ANALYTIC_DPM = Proof(
    name="analytic_dpm_variance",
    title="Analytic-DPM's optimal reverse variance equals the true posterior variance for Gaussian data",
    statement=r"\sigma_n^{*2}=\lambda_n^2+\Big(\sqrt{\tfrac{\bar\beta_n}{\alpha_n}}-\sqrt{\bar\beta_{n-1}-\lambda_n^2}\Big)^2"
    r"\Big(1-\bar\beta_n\,\tfrac{\mathbb{E}\|\nabla\log q_n(x_n)\|^2}{d}\Big)"
    r"=\operatorname{Var}(x_{n-1}\mid x_n)\ \text{ when } x_0\sim\mathcal{N}(\mu,c^2)",
    steps=[
        ("forward family (DDIM/Analytic-DPM)", r"q(x_{n-1}|x_n,x_0)=\mathcal N\big(\sqrt{\bar\alpha_{n-1}}x_0+\sqrt{\bar\beta_{n-1}-\lambda_n^2}\,\tfrac{x_n-\sqrt{\bar\alpha_n}x_0}{\sqrt{\bar\beta_n}},\ \lambda_n^2\big)"),
        ("Gaussian data: q_n = N(sqrt(alphabar_n) mu, alphabar_n c^2 + betabar_n), so E|score|^2 = 1/Var(x_n)", None),
        ("true reverse variance by the Schur complement of the joint covariance of (x_n, x_{n-1})", r"\operatorname{Var}x_{n-1}-\operatorname{Cov}^2/\operatorname{Var}x_n"),
        ("the two agree for every lambda_n (DDPM: lambda_n^2 = betatilde_n; DDIM: lambda_n = 0)", None),
        ("and the reverse mean with x0 replaced by E[x0|x_n] is the true conditional mean", None),
    ],
    check=_check_analytic_dpm,
)


PROOFS = [KERNEL_SCORE, CONVERSION_PROOF, V_PARAM, TWEEDIE, FOKKER_PLANCK, REVERSE, DSM, ANALYTIC_DPM]
