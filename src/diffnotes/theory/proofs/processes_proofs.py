"""Proofs about the forward processes: how the papers' processes are one family.

Every statement here is checked on the process objects of :mod:`diffnotes.theory.processes`
(the same expressions the book's tables and plots show), not on retyped formulas. Where a
proof also states a number (a largest gap between two schedules), the number is computed from
those objects when this module is imported and appears in the proof's steps.

Shown in ``book/unified-view.md`` (statements, via glue) and ``book/questions.md``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..processes import (
    DENOISER, SIGMA, SIGMA_DATA, VP_B, VP_BETA, X, X0, beta_d, beta_min, ddpm_alpha_bar, edm_ode_drift,
    gamma_max, gamma_min, get_process, iddpm_u, sigma_min, t,
)
from ... import constants as K
from .base import Proof, ProofResult, combine, symbolic_zero

__all__ = ["PROOFS", "schedule_gaps"]

h, N = sp.symbols("h N", positive=True)  # a time step and a number of steps
u = sp.Symbol("u", positive=True)
eps = sp.Symbol("epsilon", real=True)
x_t = sp.Symbol("x_t", real=True)
ab_t, ab_prev = sp.symbols(r"\bar{\alpha}_i \bar{\alpha}_{i-1}", positive=True)


def _factor_roots(expr):
    """Factor the radicand of every square root, so sqrt((a t + b)^2) becomes a t + b for positive symbols."""
    return expr.replace(lambda a: isinstance(a, sp.Pow) and a.exp == sp.Rational(1, 2),
                        lambda a: sp.sqrt(sp.factor(a.base)))


def _limit_zero(expr, var, point=sp.oo, label="") -> ProofResult:
    value = sp.limit(expr, var, point)
    ok = value == 0
    return ProofResult(bool(ok), "symbolic", "0" if ok else f"{label}limit = {value}")


def _nonnegative(expr, label="") -> ProofResult:
    ok = sp.simplify(expr).is_nonnegative is True
    return ProofResult(ok, "symbolic", "0" if ok else f"{label}cannot show {expr} >= 0")


# =============================================================================================
# Numbers: where the discrete schedules and their continuous twins differ most
# =============================================================================================
def schedule_gaps() -> dict:
    """Largest gaps between DDPM's discrete schedule and VP, and iDDPM's discrete and cosine.

    Returns a dict of floats (and the index/time where each gap is largest). Computed from
    ``ddpm_alpha_bar`` (DDPM's code), ``iddpm_u`` (EDM Table 1) and the lambdified processes.
    """
    vp = get_process("vp").lambdify()
    n_steps = 1000
    ab = ddpm_alpha_bar(n_steps)[1:]
    t_i = np.arange(1, n_steps + 1) / n_steps
    ab_vp = vp.scale(t_i) ** 2
    gap = np.abs(ab - ab_vp)
    log_sigma_gap = np.abs(0.5 * np.log((1 - ab) / ab) - np.log(vp.sigma(t_i)))
    # iDDPM: discrete u_j (j = M - i, with beta clipped at 0.999) vs the continuous cosine sigma(t)
    cos = get_process("iddpm").lambdify()
    u_j = iddpm_u()[:-1][::-1]  # u_{M-1}, ..., u_0 at t = i / M, i = 1..M
    sigma_cos = cos.sigma(t_i[:-1])  # t = 1 is infinite in the continuous schedule
    iddpm_gap = np.abs(np.log(u_j[:-1]) - np.log(sigma_cos))
    return {
        "ddpm_vp_alpha_bar_gap": float(gap.max()), "ddpm_vp_alpha_bar_gap_t": float(t_i[gap.argmax()]),
        "ddpm_vp_log_sigma_gap": float(log_sigma_gap.max()), "ddpm_vp_log_sigma_gap_t": float(t_i[log_sigma_gap.argmax()]),
        "iddpm_log_sigma_gap": float(iddpm_gap.max()), "iddpm_log_sigma_gap_t": float(t_i[iddpm_gap.argmax()]),
        "iddpm_u0": float(iddpm_u()[0]), "iddpm_sigma_cos_at_t_999": float(sigma_cos[-1]),
    }


GAPS = schedule_gaps()


# =============================================================================================
# (1) DDPM's chain -> VP-SDE
# =============================================================================================
def log_remainder_check(c=1, x_max=sp.Rational(1, 2)) -> ProofResult:
    """Check 0 <= -log(1 - x) - x <= c x^2 for 0 <= x <= x_max (both sides vanish at x = 0).

    Each side is shown by its derivative: with x = x_max y / (1 + y), y > 0 covers (0, x_max),
    and the derivative must be nonnegative there. True for c = 1, x_max = 1/2; false for
    c < 1/2 (the series starts x^2/2) and for c = 1 with x_max > 1/2.
    """
    xv, y = sp.Symbol("x", positive=True), sp.Symbol("y", positive=True)
    rem = -sp.log(1 - xv) - xv  # the part of -log(1 - x) beyond its first-order term
    sub = {xv: x_max * y / (1 + y)}
    lower = sp.factor(sp.together(sp.diff(rem, xv).subs(sub)))
    upper = sp.factor(sp.together(sp.diff(c * xv**2 - rem, xv).subs(sub)))
    return combine(_nonnegative(lower, "d/dx(-log(1-x) - x): "), _nonnegative(upper, f"d/dx({c} x^2 - remainder): "))


def _check_ddpm_to_vp():
    vp = get_process("vp")
    # one step with beta_i = beta(t) h: the mean factor and variance match Euler-Maruyama of the
    # VP-SDE to first order in h
    step_mean = sp.series(sp.sqrt(1 - VP_BETA * h), h, 0, 2).removeO()
    em_mean = 1 + vp.f * h
    step_var, em_var = VP_BETA * h, vp.g**2 * h
    # the kernel: log alpha_bar_N(t) = sum_{j<=Nt} log(1 - beta(j/N)/N); its first-order part
    # is a Riemann sum of beta, the rest is bounded by sum (beta/N)^2 <= N t (beta_max/N)^2
    j, M = sp.symbols("j M", positive=True, integer=True)
    riemann = sp.summation(VP_BETA.subs(t, j / N) / N, (j, 1, M)).subs(M, N * t)
    beta_max = beta_min + beta_d
    remainder_bound = N * t * (beta_max / N) ** 2
    return combine(
        symbolic_zero([step_mean - em_mean, step_var - em_var]),
        _limit_zero(sp.expand(riemann - VP_B), N, label="Riemann sum: "),
        _limit_zero(remainder_bound, N, label="remainder: "),
        # the bound used above: |log(1 - x) + x| <= x^2 for 0 <= x <= 1/2 (x = beta_j / N, N >= 2 beta_max)
        log_remainder_check(),
        symbolic_zero([vp.scale - sp.exp(-VP_B / 2), vp.std**2 - (1 - sp.exp(-VP_B))]),
    )


DDPM_TO_VP = Proof(
    name="ddpm_chain_to_vp_sde",
    title="DDPM's chain becomes the VP-SDE as N grows",
    statement=(r"\beta_i = \tfrac{\beta(i/N)}{N}:\quad x_i = \sqrt{1-\beta_i}\,x_{i-1} + \sqrt{\beta_i}\,z"
               r"\ \xrightarrow{N\to\infty}\ \mathrm{d}x = -\tfrac12\beta(t)\,x\,\mathrm{d}t + \sqrt{\beta(t)}\,\mathrm{d}w,\quad "
               r"\mathcal{N}\big(\sqrt{\bar\alpha_i}\,x_0,\,(1-\bar\alpha_i)I\big) \to "
               r"\mathcal{N}\big(e^{-\frac12\int_0^t\beta}x_0,\,(1-e^{-\int_0^t\beta})I\big)"),
    steps=[
        ("One step with beta_i = beta(t) h (h = 1/N): mean factor sqrt(1 - beta h) = 1 - beta h/2 + O(h^2), "
         "which is Euler-Maruyama's 1 + f h with f = -beta/2; the step variance beta h is g^2 h with g^2 = beta.",
         sp.Eq(sp.Symbol(r"\sqrt{1-\beta h}"), sp.series(sp.sqrt(1 - sp.Symbol("beta") * h), h, 0, 2))),
        ("Kernel: log alpha_bar = sum_j log(1 - beta(j/N)/N). The first-order part is a Riemann sum:",
         sp.Eq(sp.Symbol(r"\lim_{N\to\infty}\sum_{j\le Nt}\beta(j/N)/N"), VP_B)),
        ("The rest is bounded termwise by |log(1 - x) + x| <= x^2 for 0 <= x <= 1/2 (checked: both "
         "-log(1-x) - x and x^2 - (-log(1-x) - x) vanish at 0 and have nonnegative derivatives x/(1-x) and "
         "x(1-2x)/(1-x) there), so with x = beta_j/N and N >= 2 beta_max the sum of remainders is at most "
         "N t (beta_max/N)^2, which tends to 0.",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}}{\mathrm{d}x}\big(x^2 + \log(1-x) + x\big)"), sp.Symbol(r"\frac{x(1-2x)}{1-x}"))),
        ("So alpha_bar(t) -> exp(-B(t)) and the kernel is VP's: mean factor exp(-B/2), variance 1 - exp(-B).", None),
        (f"With DDPM's own schedule (beta_1 = 1e-4 ... beta_N = 0.02, N = 1000) against VP (beta_min = 0.1, "
         f"beta_d = 19.9) the largest gap in alpha_bar is {GAPS['ddpm_vp_alpha_bar_gap']:.3g} at "
         f"t = {GAPS['ddpm_vp_alpha_bar_gap_t']:.3f}; in log sigma it is {GAPS['ddpm_vp_log_sigma_gap']:.3g} at "
         f"t = {GAPS['ddpm_vp_log_sigma_gap_t']:.3f}.", None),
    ],
    check=_check_ddpm_to_vp,
)


# =============================================================================================
# (2) SMLD's chain -> VE-SDE
# =============================================================================================
def _check_smld_to_ve():
    ve = get_process("ve")
    smld = get_process("smld")
    j, i, L = sp.symbols("j i L", positive=True, integer=True)
    idx = smld.chain.index
    sched = smld.chain.schedule.subs(smld.chain.n_steps, L)
    # the schedule is geometric: sigma_1 = sigma_min and sigma_{j+1}^2 / sigma_j^2 = q
    q = sp.Symbol("q", positive=True)
    q_value = sp.simplify(sched.subs(idx, j + 1) ** 2 / sched.subs(idx, j) ** 2)
    sigma_1 = sched.subs(idx, 1)
    # the chain's variances telescope: sigma_1^2 - 0 + sum_{j=2}^i (sigma_j^2 - sigma_{j-1}^2) = sigma_i^2
    increments = sp.summation(sigma_1**2 * (q ** (j - 1) - q ** (j - 2)), (j, 2, i))
    if isinstance(increments, sp.Piecewise):  # the q = 1 branch is the degenerate constant schedule
        increments = increments.args[-1][0]
    total = sigma_1**2 + increments
    return combine(
        symbolic_zero([total - sigma_1**2 * q ** (i - 1), sp.diff(q_value, j), sigma_1 - sigma_min,
                       sp.expand_power_base(sigma_1**2 * q_value ** (i - 1) - sched.subs(idx, i) ** 2, force=True)]),
        smld_step_variance_limit(smld.sigma, ve.g**2),
    )


def smld_step_variance_limit(sigma_t, g2) -> ProofResult:
    """The chain's step variance per unit time tends to the SDE's g^2: the limit, taken by SymPy.

    With N levels sigma_i = sigma(i/N), the step from level i-1 to i adds variance
    sigma(t)^2 - sigma(t - 1/N)^2 in time 1/N; ``N`` times it must tend to ``g2`` as N -> oo
    at every t in (0, 1) (checked at symbolic t, then at t = 1/2 as a concrete case).
    """
    sig = sigma_t.rewrite(sp.exp)  # (a/b)^t as exp(t log(a/b)), which SymPy's limit handles
    step_rate = (sig**2 - sig.subs(t, t - h) ** 2) / h  # h = 1/N, so N -> oo is h -> 0+
    lim = sp.limit(step_rate, h, 0, "+")
    half = sp.limit(step_rate.subs(t, sp.Rational(1, 2)), h, 0, "+")
    return combine(symbolic_zero(lim - g2), symbolic_zero(half - g2.subs(t, sp.Rational(1, 2))))


SMLD_TO_VE = Proof(
    name="smld_chain_to_ve_sde",
    title="SMLD's noise levels as a chain become the VE-SDE",
    statement=(r"x_i = x_{i-1} + \sqrt{\sigma_i^2-\sigma_{i-1}^2}\,z,\ \sigma_0 = 0:\quad x_i \mid x_0 \sim \mathcal{N}(x_0, \sigma_i^2 I);"
               r"\quad \sigma_i = \sigma(i/N),\ N\to\infty:\ \mathrm{d}x = \sqrt{\tfrac{\mathrm{d}[\sigma^2]}{\mathrm{d}t}}\,\mathrm{d}w"
               r"\ \ (\text{VE-SDE for } \sigma(t) = \sigma_\mathrm{min}(\sigma_\mathrm{max}/\sigma_\mathrm{min})^t)"),
    steps=[
        ("Independent Gaussian increments add variances, which telescope (sigma_0 = 0):",
         sp.Eq(sp.Symbol(r"\sum_{j\le i}(\sigma_j^2-\sigma_{j-1}^2)"), sp.Symbol(r"\sigma_i^2"))),
        ("With N levels sigma_i = sigma(i/N) the step into level i adds variance sigma(t)^2 - sigma(t - 1/N)^2 "
         "over a time 1/N; SymPy takes the limit of N times it (the chain's variance rate) as N -> oo, and it is "
         "the VE-SDE's g^2, so the chain's increments become those of dx = g dw.",
         sp.Eq(sp.Symbol(r"\lim_{N\to\infty} N\big(\sigma(t)^2-\sigma(t-\tfrac1N)^2\big)"), get_process("ve").g ** 2)),
        ("NCSN's geometric sigma_i are the samples sigma(t_i), t_i = (i-1)/(L-1), of VE's sigma(t).", None),
    ],
    check=_check_smld_to_ve,
)


# =============================================================================================
# (3) VP keeps unit variance; sub-VP's variance stays below VP's
# =============================================================================================
def _check_vp_unit_variance():
    vp, vdm = get_process("vp"), get_process("vdm")
    c = sp.Symbol("c", positive=True)
    _, var = vp.marginal_gaussian(c=c)
    # the variance of the marginal solves the moment ODE dV/dt = 2 f V + g^2 of the OU process
    moment_ode = sp.diff(var, t) - (2 * vp.f * var + vp.g**2)
    return combine(
        symbolic_zero([vp.alpha**2 + vp.std**2 - 1, vdm.alpha**2 + vdm.std**2 - 1]),
        symbolic_zero(moment_ode),
        symbolic_zero(var.subs(c, 1) - 1),
        symbolic_zero(var - (1 + (c**2 - 1) * sp.exp(-VP_B))),
    )


VP_UNIT_VARIANCE = Proof(
    name="vp_unit_variance",
    title="Why VP's signal and noise squares add to 1",
    statement=(r"\text{VP: } s^2 + s^2\sigma^2 = 1;\quad \dot V = 2fV + g^2 = -\beta V + \beta \ \Rightarrow\ "
               r"V(t) = 1 + (c^2 - 1)\,e^{-B(t)},\ \ V \equiv 1 \text{ when } c = 1"),
    steps=[
        ("Kernel: mean factor and std.", sp.Eq(sp.Symbol(r"\alpha^2 + \sigma_{VP}^2"),
                                               sp.simplify(get_process("vp").alpha ** 2 + get_process("vp").std ** 2))),
        ("Marginal variance for data N(mu, c^2): V = s^2 (c^2 + sigma^2); it solves dV/dt = 2fV + g^2 = -beta V + beta.",
         sp.Eq(sp.Symbol("V(t)"), 1 + (sp.Symbol("c") ** 2 - 1) * sp.exp(-sp.Function("B")(t)))),
        ("VDM is the same kind of process: alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma) add to 1.", None),
        ("This is what the v-parameterization and the VP/iDDPM c_in = 1/sqrt(sigma^2 + 1) rely on: the network "
         "input has unit variance at every noise level when the data do.", None),
    ],
    check=_check_vp_unit_variance,
)


def _check_subvp_below_vp():
    vp, sub = get_process("vp"), get_process("subvp")
    B = sp.Symbol("B", positive=True)
    w = sp.Symbol("w", positive=True)  # e^B = 1 + w, w = sigma_VP^2 > 0
    diff = (vp.std**2 - sub.std**2).subs(VP_B, B)
    gap = sp.exp(-B) * (1 - sp.exp(-B))
    return combine(
        symbolic_zero(vp.std**2 - sub.std**2 - gap.subs(B, VP_B)),
        symbolic_zero(sp.simplify(diff) - gap),
        _nonnegative(sp.simplify(gap.subs(B, sp.log(1 + w))), "gap: "),
        symbolic_zero(vp.alpha - sub.alpha),
    )


SUBVP_BELOW_VP = Proof(
    name="subvp_variance_below_vp",
    title="sub-VP's kernel variance never exceeds VP's",
    statement=(r"\sigma^2_\mathrm{VP}(t) - \sigma^2_\mathrm{subVP}(t) = (1-e^{-B}) - (1-e^{-B})^2 = e^{-B}(1-e^{-B}) \ge 0,"
               r"\quad B(t) = \int_0^t\beta \ge 0"),
    steps=[
        ("VP: std^2 = 1 - e^{-B}; sub-VP: std = 1 - e^{-B} (Song et al. 2021, eq. 31).", None),
        ("Difference:", sp.Eq(sp.Symbol(r"\sigma_{VP}^2-\sigma_{subVP}^2"), sp.exp(-sp.Symbol("B")) * (1 - sp.exp(-sp.Symbol("B"))))),
        ("With e^B = 1 + w (w = sigma_VP^2 > 0) this is w / (1 + w)^2 > 0.", None),
    ],
    check=_check_subvp_below_vp,
)


# =============================================================================================
# (4) DDIM = Euler on the PF-ODE in (x / sqrt(alpha_bar), sigma); eta = 1 gives DDPM's beta_tilde
# =============================================================================================
def _ddim_sigma(ab):
    return sp.sqrt((1 - ab) / ab)


def _check_ddim_euler():
    ddim = get_process("ddim")
    # DDIM eq. 12 with sigma_t = 0: predict x0 from eps, then re-noise to level i-1
    x_prev = sp.sqrt(ab_prev) * (x_t - sp.sqrt(1 - ab_t) * eps) / sp.sqrt(ab_t) + sp.sqrt(1 - ab_prev) * eps
    # Euler on d xbar / d sigma = eps in xbar = x / sqrt(alpha_bar)
    euler = x_t / sp.sqrt(ab_t) + (_ddim_sigma(ab_prev) - _ddim_sigma(ab_t)) * eps
    # the ODE of the ddim process (sigma = t, s = 1), with D = xbar - sigma eps, is d xbar/dt = eps
    ode = ddim.pf_ode_drift_denoiser(X, X - t * eps)
    return combine(symbolic_zero(x_prev / sp.sqrt(ab_prev) - euler), symbolic_zero(ode - eps))


DDIM_EULER = Proof(
    name="ddim_euler_pf_ode",
    title="DDIM with eta = 0 is Euler's method on the probability-flow ODE",
    statement=(r"\bar x = \frac{x}{\sqrt{\bar\alpha}},\ \sigma = \sqrt{\frac{1-\bar\alpha}{\bar\alpha}}:\quad "
               r"\text{DDIM}(\eta = 0):\ \bar x_{i-1} = \bar x_i + (\sigma_{i-1}-\sigma_i)\,\epsilon_\theta(x_i) "
               r"= \text{Euler step of } \frac{\mathrm{d}\bar x}{\mathrm{d}\sigma} = \epsilon \ \ (\sigma(t) = t,\ s(t) = 1)"),
    steps=[
        ("DDIM (eta = 0): x_{i-1} = sqrt(ab_{i-1}) (x_i - sqrt(1-ab_i) eps)/sqrt(ab_i) + sqrt(1-ab_{i-1}) eps.", None),
        ("Divide by sqrt(ab_{i-1}): x_{i-1}/sqrt(ab_{i-1}) = x_i/sqrt(ab_i) - sigma_i eps + sigma_{i-1} eps.", None),
        ("EDM's ODE with sigma = t, s = 1 and D = x - sigma eps:",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}\bar x}{\mathrm{d}\sigma}"), sp.simplify(edm_ode_drift(t, sp.Integer(1), X, X - t * eps)))),
    ],
    check=_check_ddim_euler,
)


def _check_ddim_eta_one():
    alpha_i = ab_t / ab_prev  # DDPM's alpha_i = 1 - beta_i
    beta_i = 1 - alpha_i
    beta_tilde = (1 - ab_prev) / (1 - ab_t) * beta_i  # DDPM eq. 7
    sigma_eta = lambda eta: eta * sp.sqrt((1 - ab_prev) / (1 - ab_t)) * sp.sqrt(1 - ab_t / ab_prev)  # noqa: E731 (DDIM eq. 16)
    ddim = get_process("ddim").chain
    mean = ddim.update.subs(sp.Symbol("z", real=True), 0)
    sym = {sp.Symbol(r"\bar{\alpha}_i", positive=True): ab_t, sp.Symbol(r"\bar{\alpha}_{i-1}", positive=True): ab_prev,
           sp.Symbol("x_i", real=True): x_t, sp.Symbol("sigma_i", nonnegative=True): sigma_eta(1)}
    mean = mean.subs(sym)
    mu_tilde = sp.sqrt(ab_prev) * beta_i / (1 - ab_t) * X0 + sp.sqrt(alpha_i) * (1 - ab_prev) / (1 - ab_t) * x_t
    # write ab_{i-1} = 1/(1+a), ab_i = 1/(1+a+d) with a, d > 0 (noise grows with i) so that every
    # square root has a positive radicand SymPy can see
    a, d = sp.symbols("a d", positive=True)
    sub = {ab_prev: 1 / (1 + a), ab_t: 1 / (1 + a + d)}
    return combine(
        symbolic_zero(sigma_eta(1) ** 2 - beta_tilde),
        symbolic_zero(sp.simplify((mean - mu_tilde).subs(sub))),
    )


DDIM_ETA_ONE = Proof(
    name="ddim_eta_one_ddpm_posterior",
    title="DDIM with eta = 1 samples DDPM's posterior",
    statement=(r"\sigma_i(\eta) = \eta\sqrt{\tfrac{1-\bar\alpha_{i-1}}{1-\bar\alpha_i}}\sqrt{1-\tfrac{\bar\alpha_i}{\bar\alpha_{i-1}}}:\quad "
               r"\sigma_i(1)^2 = \tilde\beta_i = \tfrac{1-\bar\alpha_{i-1}}{1-\bar\alpha_i}\beta_i,\ \ "
               r"\mathbb{E}_{q_{\sigma(1)}}[x_{i-1}\mid x_i, x_0] = \tilde\mu_i(x_i, x_0)"),
    steps=[
        ("DDIM eq. 16 at eta = 1, with beta_i = 1 - ab_i / ab_{i-1}:",
         sp.Eq(sp.Symbol(r"\sigma_i(1)^2"), sp.Symbol(r"\tilde\beta_i"))),
        ("Mean of DDIM's rule (eq. 7) minus DDPM's mu_tilde (eq. 7 of Ho et al.) simplifies to 0.", None),
    ],
    check=_check_ddim_eta_one,
)


# =============================================================================================
# (5) The PF-ODE depends on sigma only
# =============================================================================================
def _check_sigma_only():
    score = sp.Function("S")  # S(x, sigma): the score of p(x; sigma) = p_data * N(0, sigma^2)
    ve, ddim = get_process("ve", "edm"), get_process("ddim")
    # PF-ODE of each with the score written as a function of the state and its noise level
    drift_ve = ve.f * X - ve.g**2 / 2 * score(X, ve.sigma)
    drift_ddim = ddim.f * X - ddim.g**2 / 2 * score(X, ddim.sigma)
    # x_ddim(u) = x_ve(u^2): d/du x_ve(u^2) = 2u * drift_ve at t = u^2
    reparam = 2 * u * drift_ve.subs(t, u**2) - drift_ddim.subs(t, u)
    # general (s, sigma): in xtilde = x / s the EDM ODE reads d xtilde/dt = sigma' (xtilde - D)/sigma
    s_f, sig_f, D = sp.Function("s")(t), sp.Function("sigma")(t), sp.Symbol("D", real=True)
    x_dot = edm_ode_drift(sig_f, s_f, X, D)
    xtilde_dot = (x_dot * s_f - X * sp.diff(s_f, t)) / s_f**2
    return combine(symbolic_zero(reparam),
                   symbolic_zero(xtilde_dot - sp.diff(sig_f, t) * (X / s_f - D) / sig_f))


SIGMA_ONLY = Proof(
    name="pf_ode_depends_on_sigma_only",
    title="The PF-ODE depends on sigma, not on how t parameterizes it",
    statement=(r"s = 1:\ \frac{\mathrm{d}x}{\mathrm{d}\sigma} = -\sigma\,\nabla_x\log p(x;\sigma)\ \text{ for any } \sigma(t);\quad "
               r"x_\mathrm{DDIM}(u) = x_\mathrm{VE}(u^2)\ (\sigma_\mathrm{VE} = \sqrt t,\ \sigma_\mathrm{DDIM} = t);\quad "
               r"\frac{\mathrm{d}(x/s)}{\mathrm{d}\sigma} = \frac{x/s - D(x/s;\sigma)}{\sigma}"),
    steps=[
        ("VE (EDM's sigma = sqrt t): f = 0, g = 1, drift -S(x, sqrt t)/2. DDIM (sigma = t): f = 0, g^2 = 2t, drift -t S(x, t).", None),
        ("x_DDIM(u) := x_VE(u^2) has derivative 2u * (-S(x, u)/2) = -u S(x, u): DDIM's drift.", None),
        ("So EDM's Table 1 gives DDIM and VE different sigma(t) but one ODE in sigma: the notes' question "
         "'DDIM is the PF-ODE of VE-SDE, yet their sigma(t) differ' is answered by this change of time.", None),
        ("General form: divide x by s and differentiate; the scale drops out.",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}\tilde x}{\mathrm{d}\sigma}"), (sp.Symbol(r"\tilde x") - sp.Symbol("D")) / SIGMA)),
    ],
    check=_check_sigma_only,
)


# =============================================================================================
# (6) EDM Table 1
# =============================================================================================
TABLE1_COLUMNS = (("vp", None), ("ve", "edm"), ("iddpm", "edm"), ("edm", None))


def _check_edm_general_ode():
    s_f, sig_f = sp.Function("s")(t), sp.Function("sigma")(t)
    D = sp.Symbol("D", real=True)
    f = sp.diff(s_f, t) / s_f
    g2 = s_f**2 * 2 * sp.diff(sig_f, t) * sig_f
    # p_t(x) = s^{-d} p(x/s; sigma) so grad log p_t(x) = (1/s) (D(x/s; sigma) - x/s) / sigma^2
    score = (D - X / s_f) / (s_f * sig_f**2)
    general = f * X - g2 / 2 * score
    checks = [symbolic_zero(general - edm_ode_drift(sig_f, s_f, X, D))]
    # and for every process, the PF-ODE with the paper's (f, g) equals EDM's form in (s, sigma)
    for name in ("vp", "subvp", "ve", "vdm"):
        p = get_process(name)
        sc = (DENOISER - X / p.scale) / (p.scale * p.sigma**2)
        checks.append(symbolic_zero(p.pf_ode_drift(X, sc) - p.pf_ode_drift_denoiser(X, DENOISER)))
    return combine(*checks)


EDM_GENERAL_ODE = Proof(
    name="edm_general_ode",
    title="EDM's ODE in (s, sigma) is the probability-flow ODE",
    statement=(r"f = \frac{\dot s}{s},\ g = s\sqrt{2\dot\sigma\sigma},\ \nabla_x\log p_t(x) = \frac{D(x/s;\sigma) - x/s}{s\sigma^2}:\quad "
               r"f x - \tfrac12 g^2\nabla_x\log p_t(x) = "
               r"\left(\frac{\dot\sigma}{\sigma}+\frac{\dot s}{s}\right)x - \frac{\dot\sigma s}{\sigma}D(x/s;\sigma)"),
    steps=[
        ("EDM eq. 4 (with Tweedie's D): the general ODE.",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}x}{\mathrm{d}t}"), edm_ode_drift(sp.Function("sigma")(t), sp.Function("s")(t), X, sp.Symbol("D")))),
        ("Checked for generic s(t), sigma(t), and for VP, sub-VP, VE and VDM with their papers' own f and g.", None),
    ],
    check=_check_edm_general_ode,
)


# Each Table 1 column's SDE written out by hand (not taken from the process objects): VP is Song
# et al.'s dx = -beta/2 x dt + sqrt(beta) dw with beta(t) = beta_min + beta_d t; the other columns
# have s = 1, so f = 0 and g^2 = d sigma^2 / dt: 1 for sigma = sqrt(t), 2t for sigma = t.
TABLE1_SDES = {"vp": (-(beta_min + beta_d * t) / 2, beta_min + beta_d * t),
               "ve": (sp.Integer(0), sp.Integer(1)),
               "iddpm": (sp.Integer(0), 2 * t), "edm": (sp.Integer(0), 2 * t)}


def moment_residuals(scale, sigma, f, g2):
    """The SDE dx = f x dt + g dw has kernel N(s x0, s^2 sigma^2) iff s' = f s and
    (s^2 sigma^2)' = 2 f s^2 sigma^2 + g^2 (its mean and variance ODEs, with s(0) = 1)"""
    var = scale**2 * sigma**2
    return [sp.diff(scale, t) - f * scale, sp.diff(var, t) - (2 * f * var + g2)]


def table1_sde_check(sdes=None) -> ProofResult:
    """Each column's (f, g^2) in ``sdes`` (default: the hand-written ``TABLE1_SDES``) against the
    column's s(t), sigma(t) through the moment ODEs, and against the process's own f and g^2."""
    sdes = TABLE1_SDES if sdes is None else sdes
    checks = []
    for name, par in TABLE1_COLUMNS:
        p = get_process(name, par)
        f_paper, g2_paper = sdes[name]
        checks.append(symbolic_zero(moment_residuals(p.scale, p.sigma, f_paper, g2_paper)))
        checks.append(symbolic_zero([p.f - f_paper, p.g**2 - g2_paper]))
    return combine(*checks)


def _check_table1_columns():
    checks = [table1_sde_check()]
    for name, par in TABLE1_COLUMNS:
        p = get_process(name, par)
        tab = p.table1
        checks.append(symbolic_zero(_factor_roots(sp.expand_log(sp.simplify(p.sigma_inv.subs(SIGMA, p.sigma)), force=True)) - t))
        checks.append(symbolic_zero(tab["loss_weight"] * tab["c_out"] ** 2 - 1))
    vp = get_process("vp")
    # VP's c_in is its own scale: the network sees x_t = s (x0 + sigma n) as is
    checks.append(symbolic_zero(vp.table1["c_in"].subs(SIGMA, vp.sigma) - vp.scale))
    return combine(*checks)


EDM_TABLE1 = Proof(
    name="edm_table1_columns",
    title="EDM Table 1: each column's sigma, s, sigma^{-1} and loss weight agree",
    statement=(r"\text{VP, VE, iDDPM+DDIM, EDM}:\quad \sigma^{-1}(\sigma(t)) = t,\ \ "
               r"\dot s = fs,\ \tfrac{\mathrm{d}}{\mathrm{d}t}(s^2\sigma^2) = 2fs^2\sigma^2 + g^2,\ \ \lambda(\sigma)\,c_\mathrm{out}(\sigma)^2 = 1;\quad "
               r"\text{VP: } c_\mathrm{in}(\sigma(t)) = s(t)"),
    steps=[
        ("VP: sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1), s(t) = 1/sqrt(exp(...)); "
         "sigma^{-1} solves the quadratic beta_d t^2/2 + beta_min t = ln(sigma^2 + 1).",
         sp.Eq(sp.Symbol(r"\sigma^{-1}_{VP}(\sigma)"), get_process("vp").sigma_inv)),
        ("VE: sigma = sqrt t, s = 1, sigma^{-1} = sigma^2; iDDPM+DDIM and EDM: sigma = t, s = 1.", None),
        ("VP, VE and iDDPM: lambda = 1/sigma^2 and c_out = -sigma, sigma, -sigma: lambda c_out^2 = 1.", None),
        ("Each column's SDE is written out by hand (VP: f = -beta/2, g^2 = beta; VE with sigma = sqrt t: f = 0, "
         "g^2 = 1; iDDPM+DDIM and EDM: f = 0, g^2 = 2t) and checked against the column's s and sigma through "
         "the kernel's mean and variance ODEs, not through the formula f = s'/s that defines the processes.",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}}{\mathrm{d}t}\big(s^2\sigma^2\big)"), sp.Symbol(r"2fs^2\sigma^2 + g^2"))),
    ],
    check=_check_table1_columns,
)


c_skip_s, c_out_s, c_in_s = sp.symbols("c_skip c_out c_in", real=True)


def edm_preconditioning_derived():
    """c_in, c_skip, c_out, lambda from EDM's unit-variance requirements (Appendix B.6)."""
    sd, sg = SIGMA_DATA, SIGMA
    # network input c_in (y + n): Var = c_in^2 (sigma_data^2 + sigma^2) = 1
    c_in = [r for r in sp.solve(sp.Eq(c_in_s**2 * (sd**2 + sg**2), 1), c_in_s) if r.is_positive][0]
    # training target F = (y - c_skip (y + n)) / c_out; unit variance fixes c_out^2 given c_skip,
    # and c_skip minimizes c_out^2 (so errors of F are amplified as little as possible)
    c_out_sq = (1 - c_skip_s) ** 2 * sd**2 + c_skip_s**2 * sg**2
    c_skip = sp.solve(sp.diff(c_out_sq, c_skip_s), c_skip_s)[0]
    c_out = sp.sqrt(sp.factor(sp.simplify(c_out_sq.subs(c_skip_s, c_skip))))
    loss_weight = 1 / c_out**2  # lambda c_out^2 = 1: effective weight of F's error is 1
    return {"c_in": c_in, "c_skip": sp.simplify(c_skip), "c_out": sp.simplify(c_out), "loss_weight": sp.simplify(loss_weight),
            "target_variance": c_out_sq / c_out_s**2}


def _check_edm_precond():
    derived = edm_preconditioning_derived()
    tab = get_process("edm").table1
    return symbolic_zero([derived[k] - tab[k] for k in ("c_in", "c_skip", "c_out", "loss_weight")])


EDM_PRECOND = Proof(
    name="edm_preconditioning_unit_variance",
    title="EDM's c_skip, c_out, c_in and lambda from unit variance",
    statement=(r"\operatorname{Var}[c_\mathrm{in}(y+n)] = 1,\ \operatorname{Var}\Big[\tfrac{y - c_\mathrm{skip}(y+n)}{c_\mathrm{out}}\Big] = 1,\ "
               r"\min_{c_\mathrm{skip}} c_\mathrm{out}:\ "
               r"c_\mathrm{in} = \tfrac{1}{\sqrt{\sigma^2+\sigma_\mathrm{data}^2}},\ c_\mathrm{skip} = \tfrac{\sigma_\mathrm{data}^2}{\sigma^2+\sigma_\mathrm{data}^2},\ "
               r"c_\mathrm{out} = \tfrac{\sigma\sigma_\mathrm{data}}{\sqrt{\sigma^2+\sigma_\mathrm{data}^2}},\ "
               r"\lambda = \tfrac{1}{c_\mathrm{out}^2} = \tfrac{\sigma^2+\sigma_\mathrm{data}^2}{(\sigma\sigma_\mathrm{data})^2}"),
    steps=[
        ("Input: Var[c_in (y + n)] = c_in^2 (sigma_data^2 + sigma^2) = 1.", None),
        ("Target: Var[(y - c_skip (y + n)) / c_out] = 1 gives",
         sp.Eq(c_out_s**2, (1 - c_skip_s) ** 2 * SIGMA_DATA**2 + c_skip_s**2 * SIGMA**2)),
        ("d c_out^2 / d c_skip = 0:", sp.Eq(c_skip_s, edm_preconditioning_derived()["c_skip"])),
        ("then", sp.Eq(c_out_s, edm_preconditioning_derived()["c_out"])),
        ("lambda(sigma) c_out(sigma)^2 = 1 makes the effective weight of F's error equal at all sigma:",
         sp.Eq(sp.Symbol(r"\lambda(\sigma)"), edm_preconditioning_derived()["loss_weight"])),
    ],
    check=_check_edm_precond,
)


# =============================================================================================
# (7) VDM and EDM: one family
# =============================================================================================
def vdm_edm_check(sigma_edm=None) -> ProofResult:
    """VDM's SDE, written from VDM's own alpha and sigma, has EDM's kernel and EDM's PF-ODE.

    ``sigma_edm`` is the claimed EDM noise level as a function of gamma (default e^{gamma/2});
    a test passes a wrong one and sees the kernel and ODE checks fail.
    """
    gam = sp.Function("gamma", real=True)(t)
    sigma_edm = sp.exp(gam / 2) if sigma_edm is None else sigma_edm(gam)
    alpha = sp.sqrt(1 / (1 + sp.exp(gam)))  # VDM: alpha^2 = sigmoid(-gamma)
    sigma_v2 = 1 / (1 + sp.exp(-gam))  # VDM: sigma^2 = sigmoid(gamma)
    # VDM's SDE (Kingma et al. 2021, App. A): f = d log alpha / dt, g^2 = d sigma^2/dt - 2 f sigma^2
    f_vdm = sp.diff(sp.log(alpha), t)
    g2_vdm = sp.diff(sigma_v2, t) - 2 * f_vdm * sigma_v2
    # (1) the kernel of that SDE is N(s x0, s^2 sigma^2) with s = alpha and sigma = sigma_edm
    kernel = moment_residuals(alpha, sigma_edm, f_vdm, g2_vdm)
    # (2) its PF-ODE, with the score of that kernel written through EDM's denoiser, is EDM's eq. 4
    score = (DENOISER - X / alpha) / (alpha * sigma_edm**2)
    ode = f_vdm * X - g2_vdm / 2 * score - edm_ode_drift(sigma_edm, alpha, X, DENOISER)
    # (3) the process objects carry the same (s, sigma) for this generic gamma
    vdm = get_process("vdm", gamma=gam)
    same = [vdm.scale - alpha, vdm.sigma - sigma_edm, vdm.f - f_vdm, vdm.g**2 - g2_vdm]
    return combine(symbolic_zero(kernel), symbolic_zero(ode), symbolic_zero(same))


def _check_vdm_edm():
    return vdm_edm_check()


VDM_EDM = Proof(
    name="vdm_edm_same_family",
    title="VDM's (alpha, sigma) and EDM's (s, sigma) are one family",
    statement=(r"\alpha^2 = \mathrm{sigmoid}(-\gamma),\ \sigma_\mathrm{VDM}^2 = \mathrm{sigmoid}(\gamma):\quad "
               r"s = \alpha,\ \sigma = \frac{\sigma_\mathrm{VDM}}{\alpha} = e^{\gamma/2} = \mathrm{SNR}^{-1/2};\ \ "
               r"f_\mathrm{VDM} = \tfrac{\mathrm{d}\log\alpha}{\mathrm{d}t} = \tfrac{\dot s}{s},\ "
               r"g^2_\mathrm{VDM} = \tfrac{\mathrm{d}\sigma_\mathrm{VDM}^2}{\mathrm{d}t} - 2f\sigma_\mathrm{VDM}^2 = 2s^2\dot\sigma\sigma"),
    steps=[
        ("EDM's sigma is a function of the SNR alone:", sp.Eq(sp.Symbol(r"\sigma_\mathrm{EDM}"), sp.exp(sp.Function("gamma")(t) / 2))),
        ("VDM's SDE, f = (log alpha)' and g^2 = (sigma_VDM^2)' - 2 f sigma_VDM^2 (VDM App. A), written from VDM's "
         "own alpha and sigma_VDM for a generic gamma(t): its kernel's mean and variance ODEs hold with s = alpha, "
         "sigma = e^{gamma/2}, and its PF-ODE with that kernel's score is EDM's eq. 4 term by term.",
         sp.Eq(sp.Symbol(r"f x - \tfrac12 g^2\nabla\log p"), edm_ode_drift(sp.Symbol(r"\sigma"), sp.Symbol("s"), X, sp.Symbol("D")))),
        ("So the family is the same; VDM and EDM differ in what they choose inside it: VDM learns gamma(t) "
         "(EDM fixes sigma(t) = t and puts the schedule in the sampler's time steps), weights the loss by the ELBO "
         "(see vdm_elbo_as_edm_weight), draws t uniformly (EDM draws ln sigma from a normal), and predicts epsilon "
         "with Fourier features and a discrete decoder for likelihoods; EDM's c_skip/c_out/c_in preconditioning "
         "has no counterpart in VDM.", None),
    ],
    check=_check_vdm_edm,
)


def _check_vdm_weight():
    gam = sp.Function("gamma", real=True)(t)
    vdm = get_process("vdm", gamma=gam)
    sig = vdm.sigma
    # VDM eq. (continuous-time loss): weight -1/2 SNR'(t) on ||x - x_hat||^2 with t ~ U(0, 1);
    # in sigma: -1/2 d(sigma^-2)/dt = sigma' / sigma^3
    weight_t = -sp.diff(vdm.snr, t) / 2
    lin = get_process("vdm")
    sig_lin = lin.sigma
    # t ~ U(0,1) -> density of sigma is 1/|d sigma/dt| at t = sigma^{-1}(sigma)
    p_sigma = (1 / sp.diff(sig_lin, t)).subs(t, lin.sigma_inv)
    w_lin = (-sp.diff(lin.snr, t) / 2).subs(t, lin.sigma_inv)
    lam = sp.simplify(w_lin)  # E_t[w(t) ||.||^2] = E_sigma[w ||.||^2] with sigma ~ p_sigma: lambda = w
    return combine(
        symbolic_zero(weight_t - sp.diff(sig, t) / sig**3),
        symbolic_zero(lam - (gamma_max - gamma_min) / (2 * SIGMA**2)),
        symbolic_zero(p_sigma - 2 / ((gamma_max - gamma_min) * SIGMA)),
    )


VDM_WEIGHT = Proof(
    name="vdm_elbo_as_edm_weight",
    title="VDM's continuous-time ELBO as an EDM loss weight",
    statement=(r"-\tfrac12\,\mathrm{SNR}'(t) = \frac{\dot\sigma}{\sigma^3};\quad \gamma \text{ linear},\ t\sim\mathcal{U}(0,1):\ "
               r"\ln\sigma \sim \mathcal{U}\big(\tfrac{\gamma_\mathrm{min}}{2}, \tfrac{\gamma_\mathrm{max}}{2}\big),\ "
               r"\lambda_\mathrm{VDM}(\sigma) = \frac{\gamma_\mathrm{max}-\gamma_\mathrm{min}}{2\sigma^2}"),
    steps=[
        ("SNR = sigma^{-2}, so -SNR'/2 = sigma'/sigma^3 for any gamma(t).", None),
        ("Linear gamma: sigma = exp(gamma/2), t uniform -> p(sigma) = 2/((gamma_max - gamma_min) sigma) (log-uniform).",
         sp.Eq(sp.Symbol(r"p(\sigma)"), 2 / ((gamma_max - gamma_min) * SIGMA))),
        ("Weight at sigma:", sp.Eq(sp.Symbol(r"\lambda_\mathrm{VDM}(\sigma)"), (gamma_max - gamma_min) / (2 * SIGMA**2))),
        ("A learned gamma(t) changes p(sigma) but not the integral over sigma (VDM's invariance: only the endpoint "
         "SNRs matter), so the weight per unit of sigma, sigma^{-3} d sigma, is fixed by the ELBO.", None),
    ],
    check=_check_vdm_weight,
)


# =============================================================================================
# (13) iDDPM's cosine schedule
# =============================================================================================
def iddpm_chain_u(M=1000, s_off=K.IDDPM_C2, max_beta=K.IDDPM_MAX_BETA, clip=True):
    """sigma = sqrt(1/alpha_bar - 1) of iDDPM's discrete chain, u_0 (t = M) ... u_M (t = 0), from
    Nichol & Dhariwal's definition: beta_t = min(1 - alpha_bar(t)/alpha_bar(t-1), max_beta),
    alpha_bar(t) = cos^2(pi/2 (t/M + s)/(1 + s)), accumulated in mpmath (``clip=False`` drops the min)."""
    import mpmath

    with mpmath.workdps(30):
        f = lambda k: mpmath.cos(mpmath.pi / 2 * (mpmath.mpf(k) / M + s_off) / (1 + s_off)) ** 2  # noqa: E731
        ab, out = mpmath.mpf(1), [mpmath.mpf(0)]
        for k in range(1, M + 1):
            beta = 1 - f(k) / f(k - 1)
            ab *= 1 - (min(beta, max_beta) if clip else beta)
            out.append(mpmath.sqrt(1 / ab - 1) if ab > 0 else mpmath.inf)
        return [float(v) for v in out[::-1]]


def iddpm_recursion_check(clip=True) -> ProofResult:
    """EDM's u_j recursion (``iddpm_u``, with max(., C_1)) against iDDPM's clipped chain."""
    uj, uprev = sp.symbols("u_j u_{j-1}", positive=True)
    ab_j, r, c1 = sp.symbols(r"\bar{\alpha}_j r C_1", positive=True)
    # one step of the clipped chain: alpha_bar_{j-1} = alpha_bar_j * max(r, C_1), r = the cosine ratio
    ab_prev = ab_j * sp.Max(r, c1)
    recursion = ((uj**2 + 1) / sp.Max(r, c1) - 1 - uprev**2).subs({uj: sp.sqrt(1 / ab_j - 1), uprev: sp.sqrt(1 / ab_prev - 1)})
    engine, chain = np.asarray(iddpm_u()), np.asarray(iddpm_chain_u(clip=clip))
    rel = float(np.max(np.abs(engine - chain) / np.maximum(1.0, engine)))
    numeric = ProofResult(bool(rel < 1e-9), "numeric", "0" if rel < 1e-9 else f"max relative gap {rel:.3g} (u_0 = {chain[0]:.4g})")
    return combine(symbolic_zero(recursion), numeric)


def _check_iddpm():
    cos = get_process("iddpm")
    ab = cos.scale**2
    return combine(
        symbolic_zero([cos.snr - ab / (1 - ab), cos.sigma**2 - (1 / ab - 1), cos.alpha**2 + cos.std**2 - 1]),
        iddpm_recursion_check(),
        ProofResult(GAPS["iddpm_u0"] > 1e3 and np.isfinite(GAPS["iddpm_u0"]), "symbolic",
                    "0" if GAPS["iddpm_u0"] > 1e3 else f"u_0 = {GAPS['iddpm_u0']}"),
    )


IDDPM = Proof(
    name="iddpm_cosine_schedule",
    title="iDDPM's cosine schedule in EDM's language, and where discrete and continuous differ",
    statement=(r"\bar\alpha(t) = \frac{\cos^2\big(\frac{\pi}{2}\frac{t+s}{1+s}\big)}{\cos^2\big(\frac{\pi}{2}\frac{s}{1+s}\big)}:\ "
               r"\sigma(t) = \sqrt{\tfrac{1}{\bar\alpha(t)} - 1},\ \mathrm{SNR}(t) = \tfrac{\bar\alpha}{1-\bar\alpha};\quad "
               r"u_{j-1} = \sqrt{\tfrac{u_j^2+1}{\max(\bar\alpha_{j-1}/\bar\alpha_j,\, C_1)} - 1}"),
    steps=[
        ("SNR and sigma:", sp.Eq(sp.Symbol(r"\mathrm{SNR}(t)"), sp.Symbol(r"\bar\alpha(t)/(1-\bar\alpha(t))"))),
        ("One step of iDDPM's chain multiplies alpha_bar by max(alpha_bar(t)/alpha_bar(t-1), C_1) (the clip "
         "beta <= 0.999); with u^2 = 1/alpha_bar - 1 that is exactly EDM's recursion, max included (checked with "
         "Max as a symbol). Numerically, EDM's u_j (iddpm_u) equal sigma of iDDPM's clipped chain accumulated in "
         "30-digit arithmetic at all 1001 levels; without the clip the last level would be infinite.", None),
        (f"The clipping matters only at the noisy end: the discrete u_0 = {GAPS['iddpm_u0']:.4g} while the continuous "
         f"cosine sigma diverges at t = 1 (sigma(0.999) = {GAPS['iddpm_sigma_cos_at_t_999']:.4g}); the largest gap in "
         f"log sigma over t < 1 is {GAPS['iddpm_log_sigma_gap']:.3g} at t = {GAPS['iddpm_log_sigma_gap_t']:.3f}.", None),
        (f"DDPM's linear discrete schedule against the continuous VP: largest gap in log sigma "
         f"{GAPS['ddpm_vp_log_sigma_gap']:.3g} at t = {GAPS['ddpm_vp_log_sigma_gap_t']:.3f}, in alpha_bar "
         f"{GAPS['ddpm_vp_alpha_bar_gap']:.3g} at t = {GAPS['ddpm_vp_alpha_bar_gap_t']:.3f}.", None),
    ],
    check=_check_iddpm,
)


PROOFS = [
    DDPM_TO_VP, SMLD_TO_VE, VP_UNIT_VARIANCE, SUBVP_BELOW_VP, DDIM_EULER, DDIM_ETA_ONE, SIGMA_ONLY,
    EDM_GENERAL_ODE, EDM_TABLE1, EDM_PRECOND, VDM_EDM, VDM_WEIGHT, IDDPM,
]


# =============================================================================================
# (15) The forward map (f, g) -> (s, sigma), and back
# =============================================================================================
tau, r_ = sp.symbols("tau r", positive=True)


def _same_integrals(expr):
    """Replace every int_0^t F(.) by one symbol, whatever its dummy variable is called."""
    big_f = sp.Symbol("I_f")
    return expr.replace(lambda e: isinstance(e, sp.Integral) and e.limits[0][1:] == (0, t), lambda e: big_f)


def forward_map(f_of, g2_of, power=2):
    """s(t) = exp(int_0^t f) and sigma(t)^2 = int_0^t g^2 / s^power (the true map has power 2)."""
    s_t = sp.exp(sp.Integral(f_of(tau), (tau, 0, t)))
    s_tau = sp.exp(sp.Integral(f_of(r_), (r_, 0, tau)))
    sigma2_t = sp.Integral(g2_of(tau) / s_tau**power, (tau, 0, t))
    return s_t, sigma2_t


def forward_map_check(power=2, sign=1) -> ProofResult:
    """The kernel of dx = f x dt + g dw is N(s x0, s^2 sigma^2) with the map above (``power`` and
    ``sign`` let a test state a wrong map and see it fail), for abstract f, g and for the papers'
    VP, sub-VP and VE SDEs by explicit integration."""
    F, G = sp.Function("f"), sp.Function("g")
    s_t, sigma2_t = forward_map(lambda u: sign * F(u), lambda u: G(u) ** 2, power)
    general = [_same_integrals(e) for e in (
        moment_residuals(s_t, sp.sqrt(sigma2_t), F(t), G(t) ** 2)                    # (f, g) -> (s, sigma)
        + [sp.diff(s_t, t) / s_t - F(t), s_t**2 * sp.diff(sigma2_t, t) - G(t) ** 2]  # and back
    )]
    checks = [symbolic_zero(general), symbolic_zero([s_t.subs(t, 0) - 1, sigma2_t.subs(t, 0).doit()])]
    for name in ("vp", "subvp", "ve"):
        p = get_process(name)
        f_tau, g2_tau = p.f.subs(t, tau), (p.g**2).subs(t, tau)
        s_p = sp.exp(sign * sp.integrate(f_tau, (tau, 0, t)))
        sig2 = sp.integrate(sp.expand(g2_tau / s_p.subs(t, tau) ** power), (tau, 0, t))
        if isinstance(sig2, sp.Piecewise):  # the branch sigma_max != sigma_min (a real schedule)
            sig2 = next(e for e, cond in sig2.args if cond != sp.true)
        checks.append(symbolic_zero([s_p - p.scale, sig2 - (p.sigma**2 - p.sigma.subs(t, 0) ** 2)]))
    return combine(*checks)


FORWARD_MAP = Proof(
    name="forward_map_sde_to_kernel",
    title="The forward map: an affine SDE's (f, g) give the kernel's (s, sigma), and back",
    statement=(r"\mathrm{d}x = f(t)\,x\,\mathrm{d}t + g(t)\,\mathrm{d}w,\ x(0) = x_0:\quad "
               r"x(t)\mid x_0 \sim \mathcal{N}\big(s x_0,\ s^2\sigma^2 I\big),\ \ "
               r"s(t) = e^{\int_0^t f},\ \ \sigma(t)^2 = \int_0^t \frac{g(\tau)^2}{s(\tau)^2}\,\mathrm{d}\tau;"
               r"\qquad f = \frac{\dot s}{s},\ \ g^2 = s^2\,\frac{\mathrm{d}\sigma^2}{\mathrm{d}t} = 2s^2\sigma\dot\sigma"),
    steps=[
        ("The SDE is linear, so x(t) | x0 is Gaussian; its mean m and variance V solve m' = f m and "
         "V' = 2 f V + g^2 (Ito, or Sarkka & Solin eq. 5.51).", None),
        ("With s = exp(int f): m = s x0 solves the first. With V = s^2 sigma^2 the second becomes "
         "s^2 (sigma^2)' = g^2, solved by the integral; s(0) = 1 and sigma(0) = 0 give x(0) = x0.",
         sp.Eq(sp.Symbol(r"\frac{\mathrm{d}}{\mathrm{d}t}\big(s^2\sigma^2\big) - 2fs^2\sigma^2"), sp.Symbol(r"s^2\frac{\mathrm{d}\sigma^2}{\mathrm{d}t} = g^2"))),
        ("Back: f = (log s)' and g^2 = s^2 (sigma^2)'; checked for abstract f(t), g(t).", None),
        ("Instances, integrated by SymPy from the papers' own f and g: VP (s = e^{-B/2}, sigma^2 = e^B - 1), "
         "sub-VP (sigma^2 = (e^{B/2} - e^{-B/2})^2) and VE (sigma^2 - sigma_min^2 = int g^2).", None),
        ("A VE process started at sigma_min > 0 adds sigma(0)^2 to the integral; the map is otherwise the same.", None),
    ],
    check=forward_map_check,
)

PROOFS.append(FORWARD_MAP)
