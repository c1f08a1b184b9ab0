"""Likelihood: the derivations of the VDM (Kingma et al. 2021) and Analytic-DPM (Bao et al. 2022) chapters.

VDM: one step of the discrete bound is half the drop of the SNR times the denoising error, the
T-step bound tends to the continuous-time loss, and that loss is an integral over the SNR whose
value depends on the schedule only through its end points. Analytic-DPM: the bound-optimal
reverse variance is lambda^2 plus gamma_n^2 times the posterior variance of x0, which Tweedie's
second-moment identity turns into the score-norm moment, and which a bounded data range clips.
Each check takes a parameter that states something false, so a test can watch it fail.
"""

from __future__ import annotations

import random

import mpmath
import sympy as sp

from .base import Proof, ProofResult, combine, numeric_check, symbolic_zero

__all__ = ["PROOFS", "vdm_step_kl_check", "vdm_limit_check", "vdm_invariance_check",
           "analytic_bounds_check", "tweedie_moment_check"]


t = sp.Symbol("t", positive=True)
a_s, a_t, s_s, s_t = sp.symbols(r"\alpha_s \alpha_t \sigma_s \sigma_t", positive=True)
x, x_hat, z_t = sp.symbols(r"x \hat{x} z_t", real=True)
SNR = sp.Function(r"\mathrm{SNR}")


# =============================================================================================
# VDM (1): one step of the discrete bound (VDM eq. 13)
# =============================================================================================
def vdm_step_kl_check(factor=1) -> ProofResult:
    """z_s = alpha_s x + sigma_s e_s and z_t = alpha_{t|s} z_s + sigma_{t|s} e' (s < t), any
    alpha, sigma. q(z_s | z_t, x) by Gaussian conditioning (Schur complement); p(z_s | z_t) is the
    same with x replaced by x_hat. Their KL is ``factor``/2 (SNR(s) - SNR(t)) (x - x_hat)^2
    (``factor`` != 1 states a wrong weight)."""
    a_ts = a_t / a_s
    s2_ts = s_t**2 - a_ts**2 * s_s**2
    # joint of (z_s, z_t) given x: Var z_s = s_s^2, Cov = a_ts s_s^2, Var z_t = s_t^2
    cov = a_ts * s_s**2
    post_var = s_s**2 - cov**2 / s_t**2

    def post_mean(x0):
        return a_s * x0 + cov / s_t**2 * (z_t - a_t * x0)

    kl = (post_mean(x) - post_mean(x_hat)) ** 2 / (2 * post_var)  # equal variances
    snr_s, snr_t = a_s**2 / s_s**2, a_t**2 / s_t**2
    return combine(
        symbolic_zero(post_var - s2_ts * s_s**2 / s_t**2),  # VDM's sigma_Q^2
        symbolic_zero(kl - factor * (snr_s - snr_t) * (x - x_hat) ** 2 / 2),
    )


# =============================================================================================
# VDM (2): T steps -> the continuous-time loss
# =============================================================================================
def vdm_limit_check(factor=1, rate=sp.Rational(1, 4), T_values=(100, 1000, 10000)) -> ProofResult:
    """L_T = 1/2 sum_i (SNR(s_i) - SNR(t_i)) h(t_i), s_i = (i - 1)/T, t_i = i/T, tends to
    L_inf = -1/2 int_0^1 SNR'(t) h(t) dt, with h(t) = E||x - x_hat(z_t; t)||^2, and the gap is first order.

    (a) Symbolic, for a generic cubic gamma (SNR = exp(-gamma)) and a generic quadratic h: the
    difference of one interval's term from its share of the integral, int_{t-D}^{t} -SNR'(u)
    (h(t) - h(u)) du, is -SNR'(t) h'(t) D^2 / 2 + O(D^3); summed over T intervals of width 1/T,
    L_T - L_inf = (1 / 4T) int_0^1 -SNR'(t) h'(t) dt + O(T^-2).
    (b) Instance, with the sums actually taken: Gaussian data N(0, c^2) and the exact denoiser,
    h = c^2 / (1 + c^2 SNR), gamma linear; L_inf = 1/2 log((1 + c^2 SNR(0)) / (1 + c^2 SNR(1)))
    in closed form. For T = 100, 1000, 10000: L_T decreases, and T (L_T - L_inf) agrees with
    (1/4) int -SNR' h' dt to O(1/T). ``factor`` != 1 states a wrong limit, ``rate`` != 1/4 a wrong
    first-order constant; both must fail.
    """
    u, D = sp.symbols("u D", positive=True)
    c0, c1, c2, c3, h0, h1, h2 = sp.symbols("c_0:4 h_0:3", real=True)
    snr = sp.exp(-(c0 + c1 * t + c2 * t**2 + c3 * t**3))
    h_of = h0 + h1 * t + h2 * t**2
    integrand = (-sp.diff(snr, t)).subs(t, u) * (h_of - h_of.subs(t, u))
    local = sp.integrate(sp.series(integrand.subs(u, t - D), D, 0, 3).removeO(), (D, 0, D))
    rate = sp.Rational(rate)
    leading = -sp.diff(snr, t) * sp.diff(h_of, t) * D**2 * 2 * rate
    checks = [symbolic_zero(sp.expand(sp.series(local, D, 0, 3).removeO() - leading))]

    with mpmath.workdps(30):
        g0, g1, cc = mpmath.mpf(-3), mpmath.mpf(4), mpmath.mpf("0.7")

        def snr_of(x):
            return mpmath.exp(-(g0 + (g1 - g0) * x))

        def h_fn(x):
            return cc**2 / (1 + cc**2 * snr_of(x))

        limit = factor * mpmath.log((1 + cc**2 * snr_of(0)) / (1 + cc**2 * snr_of(1))) / 2
        dsnr = lambda x: -(g1 - g0) * snr_of(x)  # noqa: E731
        dh = lambda x: cc**4 * (g1 - g0) * snr_of(x) / (1 + cc**2 * snr_of(x)) ** 2  # noqa: E731
        coef = mpmath.quad(lambda x: -dsnr(x) * dh(x), [0, 1]) * mpmath.mpf(rate.p) / rate.q
        values = []
        for T in T_values:
            grid = [mpmath.mpf(i) / T for i in range(T + 1)]
            total = mpmath.fsum((snr_of(grid[i - 1]) - snr_of(grid[i])) * h_fn(grid[i])
                                for i in range(1, T + 1)) / 2
            values.append(total)
            gap = T * (total - limit)
            ok = abs(gap - coef) <= 20 * abs(coef) / T + mpmath.mpf(10) ** -20
            checks.append(ProofResult(bool(ok), "numeric", "0" if ok else f"T = {T}: T (L_T - L_inf) = "
                                      f"{mpmath.nstr(gap, 8)}, predicted {mpmath.nstr(coef, 8)}"))
    falling = all(a > b for a, b in zip(values, values[1:])) and values[-1] > limit
    checks.append(ProofResult(falling, "numeric", "0" if falling else "L_T does not fall to L_inf"))
    return combine(*checks)


# =============================================================================================
# VDM (3): the loss is an integral over the SNR (eq. 16-17)
# =============================================================================================
def vdm_invariance_check(factor=1) -> ProofResult:
    """(a) For any schedule and any h(v) = E||x - x_hat(z_v, v)||^2 with H' = h:
    -1/2 SNR'(t) h(SNR(t)) = d/dt [-1/2 H(SNR(t))], so L_inf = 1/2 (H(SNR_max) - H(SNR_min)).
    (b) z_v needs only v: alpha^2 = sigmoid(-gamma) = v / (1 + v) at gamma = -log v (VP), and
    sigma / alpha = v^(-1/2) there, as in VE (alpha = 1, sigma = v^(-1/2)): the same z / alpha.
    (c) Instance: Gaussian data N(0, c^2), the exact denoiser's error h(v) = c^2 / (1 + c^2 v); two
    different schedules with the same ends give 1/2 log((1 + c^2 SNR_max) / (1 + c^2 SNR_min))
    (``factor`` != 1 states a different value for the second schedule)."""
    H = sp.Function("H")
    v = sp.Symbol("v", positive=True)
    generic = sp.diff(-H(SNR(t)) / 2, t) - (-sp.diff(SNR(t), t) / 2 * sp.diff(H(v), v).subs(v, SNR(t)))
    scale = sp.exp(-(-sp.log(v))) / (1 + sp.exp(-(-sp.log(v))))  # sigmoid(-gamma) at gamma = -log v
    c, g0, g1 = sp.symbols("c gamma_0 gamma_1", positive=True)
    closed = sp.log((1 + c**2 * sp.exp(-g0)) / (1 + c**2 * sp.exp(-g1))) / 2
    # VP: sigma^2 = sigmoid(gamma) = 1 / (1 + v); VE: alpha = 1, sigma = v^(-1/2). Both give the same
    # unscaled variable z / alpha = x + v^(-1/2) eps, so a denoiser of (z / alpha, v) is shared
    vp_ratio = sp.sqrt(1 / (1 + v)) / sp.sqrt(scale)
    checks = [symbolic_zero(generic.doit()), symbolic_zero(scale - v / (1 + v)),
              symbolic_zero(vp_ratio - 1 / sp.sqrt(v))]
    for k, gamma in enumerate((g0 + (g1 - g0) * t, g0 + (g1 - g0) * t**2)):
        snr = sp.exp(-gamma)
        integrand = -sp.diff(snr, t) / 2 * c**2 / (1 + c**2 * snr)
        antiderivative = -sp.log(1 + c**2 * snr) / 2
        value = antiderivative.subs(t, 1) - antiderivative.subs(t, 0)
        checks.append(symbolic_zero(sp.diff(antiderivative, t) - integrand))
        checks.append(symbolic_zero(value - (factor if k else 1) * closed))
    return combine(*checks)


# =============================================================================================
# Analytic-DPM: the optimal variance's form and its clipping bounds (Theorems 1-2)
# =============================================================================================
ab_n, ab_p, bb_n = sp.symbols(r"\bar\alpha_n \bar\alpha_{n-1} \bar\beta_n", positive=True)  # bb_n = 1 - ab_n
k_n = sp.Symbol(r"k_n", positive=True)  # k_n = sqrt(betabar_{n-1} - lambda_n^2)
lam2, s2, mse = sp.symbols(r"\lambda_n^2 \sigma^2 \overline{\mathrm{Var}}", positive=True)
gamma_n = sp.sqrt(ab_p) - k_n * sp.sqrt(ab_n) / sp.sqrt(bb_n)


def analytic_bounds_check(factor=1) -> ProofResult:
    """(a) E[KL] per dimension, lambda^2/sigma^2 + E(mu_tilde - mu)^2/sigma^2 + log sigma^2 (+ const),
    is least at sigma^2 = lambda^2 + E(mu_tilde - mu)^2; (b) mu_tilde - mu = gamma_n (x0 - E[x0|x_n]),
    so E(mu_tilde - mu)^2 = gamma_n^2 Var-bar; (c) gamma_n^2 betabar_n / alphabar_n = (sqrt(betabar_n /
    alpha_n) - k_n)^2 (Theorem 1's coefficient); (d) Popoviciu: for X in [a, b] with mean m,
    E(X - a)(b - X) >= 0 gives Var X <= (b - m)(m - a) = ((b - a)/2)^2 - (m - (a + b)/2)^2; so
    lambda^2 <= sigma*^2 <= lambda^2 + gamma_n^2 ((b - a)/2)^2; (e) for any data, sigma*^2 =
    lambda^2 + c_n (1 - Gamma_n) = lambda^2 + c_n - c_n Gamma_n <= lambda^2 + c_n as c_n, Gamma_n >= 0.
    ``factor`` != 1 breaks (c)."""
    objective = lam2 / s2 + gamma_n**2 * mse / s2 + sp.log(s2)
    optimum = sp.solve(sp.diff(objective, s2), s2)
    x0, x0_mean, x_n = sp.symbols(r"x_0 \mathbb{E}[x_0|x_n] x_n", real=True)

    def mu_tilde(x0_value):
        return sp.sqrt(ab_p) * x0_value + k_n * (x_n - sp.sqrt(ab_n) * x0_value) / sp.sqrt(bb_n)

    alpha_n = ab_n / ab_p
    coef = (sp.sqrt(bb_n / alpha_n) - k_n) ** 2
    a, b, m, ex2 = sp.symbols("a b m E_{X^2}", real=True)
    score_moment = sp.Symbol(r"\Gamma_n", nonnegative=True)
    var = ex2 - m**2
    slack = -(ex2 - (a + b) * m + a * b)  # -E(X - a)(X - b) = E(X - a)(b - X) >= 0
    return combine(
        ProofResult(len(optimum) == 1, "symbolic", "0" if len(optimum) == 1 else str(optimum)),
        symbolic_zero(optimum[0] - (lam2 + gamma_n**2 * mse)),
        symbolic_zero(mu_tilde(x0) - mu_tilde(x0_mean) - gamma_n * (x0 - x0_mean)),
        symbolic_zero(gamma_n**2 * bb_n / ab_n - factor * coef),
        symbolic_zero((b - m) * (m - a) - var - slack),
        symbolic_zero((b - m) * (m - a) - ((b - a) ** 2 / 4 - (m - (a + b) / 2) ** 2)),
        # data-independent upper bound: lambda^2 + c (1 - Gamma) = lambda^2 + c - c Gamma, c, Gamma >= 0
        symbolic_zero((lam2 + coef) - (lam2 + coef * (1 - score_moment)) - coef * score_moment),
    )


def tweedie_moment_check(factor=1, points: int = 20) -> ProofResult:
    """Tweedie's second moment on non-Gaussian data: x0 in {-1, 1} with P(1) = p, x_n = sqrt(ab) x0 +
    sqrt(1 - ab) e. E Var[x0 | x_n] = (betabar/alphabar) (1 - betabar E|d/dx log q_n|^2), by mpmath
    quadrature at random (ab, p) (``factor`` != 1 states a wrong identity)."""

    def sides(ab, p):
        sa, sb = mpmath.sqrt(ab), mpmath.sqrt(1 - ab)

        def integrand(xn, which):
            w1 = p * mpmath.npdf(xn, sa, sb)
            w0 = (1 - p) * mpmath.npdf(xn, -sa, sb)
            q = w1 + w0
            if which == "var":  # q(x_n) Var[x0 | x_n], x0 = +-1
                return q * (1 - ((w1 - w0) / q) ** 2)
            return (w1 * (sa - xn) + w0 * (-sa - xn)) ** 2 / (sb**4 * q)  # q (d log q / dx)^2

        cuts = [-mpmath.inf, -sa, sa, mpmath.inf]
        lhs = mpmath.quad(lambda xn: integrand(xn, "var"), cuts)
        moment = mpmath.quad(lambda xn: integrand(xn, "score"), cuts)
        return lhs, factor * (1 - ab) / ab * (1 - (1 - ab) * moment)

    def sampler(rng: random.Random):
        return (rng.uniform(0.05, 0.95), rng.uniform(0.1, 0.9))

    return numeric_check(lambda ab, p: sides(ab, p)[0], lambda ab, p: sides(ab, p)[1], sampler,
                         n=points, dps=15, tol=1e-9)


def _check_analytic():
    return combine(analytic_bounds_check(), tweedie_moment_check())


# =============================================================================================
# The proofs the chapters display
# =============================================================================================
VDM_DISCRETE = Proof(
    name="vdm_discrete_to_continuous",
    title="VDM: one step of the bound, and T steps tending to the continuous-time loss",
    statement=(r"D_{KL}\big(q(z_s|z_t,x)\,\|\,p(z_s|z_t)\big) = \tfrac12\big(\mathrm{SNR}(s)-\mathrm{SNR}(t)\big)"
               r"\|x-\hat x_\theta(z_t;t)\|^2;\quad "
               r"\mathcal L_T = \tfrac T2\,\mathbb E_{i}\big[(\mathrm{SNR}(\tfrac{i-1}{T})-\mathrm{SNR}(\tfrac iT))"
               r"\|x-\hat x\|^2\big] = -\tfrac12\,\mathbb E_{t\sim\mathcal U(0,1)}"
               r"\big[\mathrm{SNR}'(t)\,\|x-\hat x\|^2\big] + O(T^{-1})"),
    steps=[
        ("Forward: z_s = alpha_s x + sigma_s e, z_t = alpha_{t|s} z_s + sigma_{t|s} e' with alpha_{t|s} = "
         "alpha_t / alpha_s, sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2.", None),
        ("Conditioning the Gaussian pair (z_s, z_t) on z_t gives the posterior variance", sp.Eq(
            sp.Symbol(r"\sigma_Q^2"), s_s**2 * (s_t**2 - a_t**2 * s_s**2 / a_s**2) / s_t**2)),
        ("p(z_s | z_t) is the posterior with x replaced by x_hat: same variance, means differ by "
         "alpha_s sigma_{t|s}^2 / sigma_t^2 (x - x_hat); the KL is that squared over 2 sigma_Q^2:",
         sp.Eq(sp.Symbol(r"D_{KL}"), (a_s**2 / s_s**2 - a_t**2 / s_t**2) * (x - x_hat) ** 2 / 2)),
        ("Summing the T steps s = (i-1)/T, t = i/T gives L_T = 1/2 sum_i (SNR(s_i) - SNR(t_i)) h(t_i), "
         "h(t) = E||x - x_hat(z_t; t)||^2. Each term is int_{s_i}^{t_i} -SNR'(u) h(t_i) du, so it differs "
         "from its share of L_inf by int -SNR'(u) (h(t_i) - h(u)) du = -SNR'(t_i) h'(t_i) / (2T^2) + O(T^-3) "
         "(checked by series for a generic cubic gamma and quadratic h). Summed over T intervals:",
         r"\mathcal L_T - \mathcal L_\infty = \frac{1}{4T}\int_0^1 -\mathrm{SNR}'(t)\,h'(t)\,dt + O(T^{-2})"),
        ("So L_T tends to L_inf at rate 1/T, from above when h increases with t (the error grows with "
         "the noise). Checked with the sums taken for Gaussian data and the exact denoiser, "
         "h = c^2/(1 + c^2 SNR), linear gamma: at T = 100, 1000 and 10000, L_T falls and T (L_T - L_inf) "
         "matches the predicted constant, with L_inf = 1/2 log((1 + c^2 SNR(0))/(1 + c^2 SNR(1))).", None),
        ("With SNR = exp(-gamma): -SNR'(t) = gamma'(t) SNR(t), and SNR ||x - x_hat||^2 = ||e - e_hat||^2, "
         "so L_inf = 1/2 E_t[gamma'(t) ||e - e_hat||^2] (VDM eq. 17; diffnotes.methods.vdm).", None),
    ],
    check=lambda: combine(vdm_step_kl_check(), vdm_limit_check()),
)

VDM_INVARIANCE = Proof(
    name="vdm_snr_invariance",
    title="VDM: the continuous-time loss is an integral over the SNR, fixed by its end points",
    statement=(r"\mathcal L_\infty = -\tfrac12\int_0^1 \mathrm{SNR}'(t)\,h\big(\mathrm{SNR}(t)\big)\,dt"
               r" = \tfrac12\int_{\mathrm{SNR}_\mathrm{min}}^{\mathrm{SNR}_\mathrm{max}} h(v)\,dv,\quad "
               r"h(v) = \mathbb E_{\epsilon}\|x-\hat x_\theta(z_v;v)\|^2"),
    steps=[
        ("Change of variables v = SNR(t) (monotone): with H' = h, the integrand is a derivative,",
         r"-\tfrac12\,\mathrm{SNR}'(t)\,h(\mathrm{SNR}(t)) = \tfrac{d}{dt}\big[-\tfrac12 H(\mathrm{SNR}(t))\big]"),
        ("so L_inf = 1/2 (H(SNR_max) - H(SNR_min)): only the end points SNR(0), SNR(1) enter.", None),
        ("This needs z and x_hat to depend on t only through v: in the VP family alpha_v^2 = sigmoid(-gamma) "
         "at gamma = -log v is", sp.Eq(sp.Symbol(r"\alpha_v^2"), sp.Symbol("v") / (1 + sp.Symbol("v")))),
        ("and the network is fed a function of v (here sigma = v^{-1/2}). The same holds across "
         "specifications: in VP, sigma_v / alpha_v = v^{-1/2}, and in VE (alpha = 1, sigma_v = v^{-1/2}) too, "
         "so z_v / alpha_v = x + v^{-1/2} eps is one variable and a denoiser of it gives one loss for both "
         "(VDM Sec. 5.1). So two schedules, or a VP and a VE process, with the same SNR ends give the same "
         "expected loss; they differ in the variance of its one-sample estimate, which is what VDM's "
         "learned schedule minimises.", None),
        ("Instance: Gaussian data N(0, c^2), exact denoiser, h(v) = c^2 / (1 + c^2 v). Linear and "
         "quadratic gamma(t) with the same ends both integrate to", r"\tfrac12\log\frac{1+c^2e^{-\gamma_0}}"
         r"{1+c^2e^{-\gamma_1}}"),
    ],
    check=vdm_invariance_check,
)

ANALYTIC_BOUNDS = Proof(
    name="analytic_dpm_bounds",
    title="Analytic-DPM: the optimal variance from the score-norm moment, and its clipping bounds",
    statement=(r"\sigma_n^{*2} = \lambda_n^2 + \gamma_n^2\,\overline{\mathrm{Var}}[x_0|x_n] = \lambda_n^2 + "
               r"\Big(\sqrt{\tfrac{\bar\beta_n}{\alpha_n}}-\sqrt{\bar\beta_{n-1}-\lambda_n^2}\Big)^2(1-\Gamma_n),"
               r"\quad \lambda_n^2 \le \sigma_n^{*2} \le \lambda_n^2 + \Big(\sqrt{\tfrac{\bar\beta_n}{\alpha_n}}"
               r"-\sqrt{\bar\beta_{n-1}-\lambda_n^2}\Big)^2,\quad x_0\in[a,b]^d:\ "
               r"\sigma_n^{*2} \le \lambda_n^2 + \gamma_n^2\big(\tfrac{b-a}{2}\big)^2"),
    steps=[
        ("gamma_n, the weight of x0 in the posterior mean mu_tilde_n(x_n, x0):",
         sp.Eq(sp.Symbol(r"\gamma_n"), gamma_n)),
        ("Per dimension, the expected KL to N(mu_n, sigma^2) is lambda^2/sigma^2 + E(mu_tilde - mu)^2/sigma^2 + "
         "log sigma^2 + const; its minimiser is", sp.Eq(s2, lam2 + gamma_n**2 * mse)),
        ("with mu = mu_tilde(x_n, E[x0|x_n]), mu_tilde - mu = gamma_n (x0 - E[x0|x_n]), so Var-bar is "
         "the average posterior variance of x0.", None),
        ("Tweedie's second moment: Var-bar = (betabar_n/alphabar_n)(1 - Gamma_n), Gamma_n = betabar_n "
         "E||grad log q_n||^2/d = E||eps_hat||^2/d for the exact noise predictor (checked by quadrature "
         "on two-point data), and gamma_n^2 betabar_n/alphabar_n is Theorem 1's coefficient.", None),
        ("Bounds (Theorem 2), first for any data: Var-bar >= 0 gives the lower one; Gamma_n >= 0 (a mean "
         "square) gives sigma*^2 <= lambda^2 + c_n, c_n Theorem 1's coefficient. Then for data in [a, b]^d: "
         "for X in [a, b], E(X-a)(b-X) >= 0 gives Var X <= (b - m)(m - a) <= ((b - a)/2)^2, so "
         "sigma*^2 <= lambda^2 + gamma_n^2 ((b - a)/2)^2, tighter than the first when the x0-variance "
         "bound (b - a)^2/4 is below betabar_n/alphabar_n. A trained model's Gamma_n can leave these "
         "limits; Analytic-DPM clips to the bounded-data ones (the official code clips Var-bar to "
         "[0, ((b - a)/2)^2], the same interval).", None),
    ],
    check=_check_analytic,
)

PROOFS = [VDM_DISCRETE, VDM_INVARIANCE, ANALYTIC_BOUNDS]
