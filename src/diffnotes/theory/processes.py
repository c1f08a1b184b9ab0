"""Every forward process of the notes in one language: x_t = s(t) (x_0 + sigma(t) n).

Karras et al. (2022, EDM, eq. 4 and Table 1) showed that every diffusion model the notes cover is
fixed, as far as its marginals go, by two functions of time: a noise level ``sigma(t)`` and a
scale ``s(t)``. Everything else follows from them:

* perturbation kernel  p_0t(x_t | x_0) = N(x_t; s x_0, s^2 sigma^2 I), so ``alpha = s`` (mean
  coefficient) and ``std = s sigma``;
* marginal  p_t = p_data convolved with that kernel (Gaussian data N(mu, c^2 I) gives
  N(s mu, s^2 (c^2 + sigma^2) I));
* an SDE dx = f(t) x dt + g(t) dw with these kernels: f = s'/s and g = s sqrt(2 sigma' sigma)
  (EDM, Appendix B.2);
* the probability-flow ODE dx/dt = f x - g^2/2 grad log p_t(x) (Song et al. 2021, eq. 13);
* SNR(t) = alpha^2 / std^2 = 1 / sigma^2.

Each process is one :class:`Process` built by a short builder function below (``_vp``,
``_edm``, ...; :func:`get_process` picks one by name) that says what its paper says: sigma(t),
s(t), where the paper writes its own f and g (VP, VE, sub-VP, VDM) those too, its discrete chain
where one exists, its sigma^{-1} where closed, and, for the four columns of EDM's Table 1, its
preconditioning, loss weight, sampling time steps and training distribution. Expressions are
SymPy; the papers' numbers come from ``diffnotes.constants``.

The engine evaluates these expressions through one cached bridge, ``diffnotes.theory.numeric``
(which calls :meth:`Process.lambdify` / :meth:`Process.lambdify_expr`); where it keeps a PyTorch
twin instead, a test proves the twin equal to the expression here.

Used by: ``book/unified-view.md`` (plots and the comparison table), the EDM Table 1 table
(``diffnotes.theory.tables``), the proofs in ``diffnotes.theory.proofs.processes_proofs``, and
the engine (``diffnotes.theory.numeric``, ``diffnotes.sampling``, ``diffnotes.methods``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np
import sympy as sp

from .. import constants as K

def tex(expr, **options) -> str:
    """``sympy.latex`` with the book's one convention for named subscripts: a symbol named
    ``<base>_<word>`` (``sigma_data``, ``sigma_min``, ``beta_max``) prints its word upright,
    ``\\sigma_\\mathrm{data}``, as the chapters write it; one-letter subscripts (``x_0``,
    ``x_t``) stay italic. Symbols whose names are already LaTeX are printed as they are."""
    names = dict(options.pop("symbol_names", {}) or {})
    for sym in getattr(expr, "free_symbols", ()):
        if sym in names or not isinstance(sym, sp.Symbol):
            continue
        base, _, sub = sym.name.partition("_")
        if sub and len(sub) > 1 and sub.isalpha() and base.isalpha():
            names[sym] = sp.latex(sp.Symbol(base)) + r"_\mathrm{" + sub + "}"
    return sp.latex(expr, symbol_names=names, **options)


__all__ = [
    "tex",
    "t", "SIGMA", "X", "X0", "SCORE", "DENOISER", "MU", "C_DATA",
    "I_SAMPLE", "N_SAMPLE", "RND_UNIFORM", "RND_NORMAL", "TRAIN_DRAWS",
    "Process", "DiscreteChain", "get_process", "PROCESS_NAMES", "PARAMETERIZATIONS",
    "edm_ode_drift", "iddpm_u", "ddpm_alpha_bar",
]

# -- shared symbols ---------------------------------------------------------------------------
t = sp.Symbol("t", positive=True)  # the process time of each paper (its own range)
SIGMA = sp.Symbol("sigma", positive=True)  # a noise level, argument of sigma^{-1}, c_skip, ...
X = sp.Symbol("x", real=True)  # a state x_t (one coordinate; everything acts coordinate-wise)
X0 = sp.Symbol("x_0", real=True)  # a clean data point
SCORE = sp.Symbol(r"\nabla_{x} \log p_t(x)", real=True)  # the score of the marginal at x
DENOISER = sp.Symbol(r"D(x/s; \sigma)", real=True)  # EDM's denoiser output at (x/s, sigma)
MU = sp.Symbol("mu", real=True)  # mean of Gaussian data N(mu, c^2 I)
C_DATA = sp.Symbol("c", positive=True)  # std of Gaussian data
SIGMA_DATA = sp.Symbol("sigma_data", positive=True)
# EDM Table 1's sampling grid t_i, i = 0..N-1, and the standard draws its training sigma is made of
I_SAMPLE = sp.Symbol("i", nonnegative=True, integer=True)
N_SAMPLE = sp.Symbol("N", positive=True, integer=True)
RND_UNIFORM = sp.Symbol("u", positive=True)  # u ~ U(0, 1)
RND_NORMAL = sp.Symbol("z", real=True)  # z ~ N(0, 1)
TRAIN_DRAWS = {"uniform": RND_UNIFORM, "normal": RND_NORMAL}

# the short-hand functions processes use in their displayed forms
beta_fn = sp.Function("beta")  # VP's beta(t)
B_fn = sp.Function("B")  # int_0^t beta(u) du
alpha_bar_fn = sp.Function(r"\bar{\alpha}")
gamma_fn = sp.Function("gamma")  # VDM's log-SNR negated: gamma(t) = -log SNR(t)


def _sigmoid(z):
    return 1 / (1 + sp.exp(-z))


def _vp_from_alpha_bar(alpha_bar):
    """(sigma, s) of a variance-preserving process with x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) n:
    s = sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar) (EDM Table 1, DDPM and iDDPM)."""
    return sp.sqrt((1 - alpha_bar) / alpha_bar), sp.sqrt(alpha_bar)


def edm_ode_drift(sigma_expr, scale_expr, x=X, denoiser=DENOISER):
    """EDM's general probability-flow ODE (Karras et al. 2022, eq. 4 written with D):

    dx/dt = (sigma'/sigma + s'/s) x - (sigma' s / sigma) D(x/s; sigma).
    """
    dsig, ds = sp.diff(sigma_expr, t), sp.diff(scale_expr, t)
    return (dsig / sigma_expr + ds / scale_expr) * x - dsig * scale_expr / sigma_expr * denoiser


@dataclass
class DiscreteChain:
    """A discrete forward chain: ``update`` gives x_i from x_{i-1} (or its non-Markovian rule).

    ``index`` is the step symbol i, ``n_steps`` the number of steps (N or L), ``schedule`` the
    per-step coefficient (beta_i or sigma_i) as SymPy in ``index``; ``values(params)`` returns
    the numeric schedule (index 1..n) as the paper's code builds it.
    """

    latex: str
    update: sp.Expr  # right-hand side, in x_prev, z (and x0 for non-Markovian rules)
    index: sp.Symbol
    n_steps: sp.Symbol
    schedule_name: str
    schedule: sp.Expr
    markovian: bool = True
    note: str = ""
    values: Callable[[dict], np.ndarray] | None = None


X_PREV = sp.Symbol("x_{i-1}", real=True)
Z = sp.Symbol("z", real=True)
I_STEP = sp.Symbol("i", positive=True, integer=True)


@dataclass
class Process:
    """One forward process, as built by this module's builders (get one with :func:`get_process`).

    ``sigma_short`` / ``scale_short`` may use the short-hand functions beta(t), B(t),
    alpha_bar(t), gamma(t); ``aux`` maps each to its full expression. The attributes ``sigma``,
    ``scale`` etc. are the full expressions in ``t`` and the parameter symbols; ``defaults``
    maps each parameter symbol to its value in the paper's code.
    """

    name: str
    title: str
    cite: str
    parameterization: str
    sigma_short: sp.Expr
    scale_short: sp.Expr
    defaults: dict
    aux: dict = field(default_factory=dict)
    f_short: sp.Expr | None = None  # the paper's own f(t), where it writes one
    g_short: sp.Expr | None = None  # the paper's own g(t)
    chain: DiscreteChain | None = None
    sigma_inv: sp.Expr | None = None  # in SIGMA, closed form where it exists
    t_range: tuple = (0.0, 1.0)  # sympy-able bounds in the parameters (numbers after subs)
    learned: bool = False
    notes: str = ""
    # EDM Table 1 rows (only the four columns there): sympy in SIGMA, or LaTeX strings
    table1: dict | None = None
    # EDM Table 1 as SymPy: the sampling times t_i (in I_SAMPLE, N_SAMPLE) and the training time
    # as a function of one standard draw (``train_draw``: "uniform" u ~ U(0, 1), "normal" z ~ N(0, 1))
    time_steps: sp.Expr | None = None
    train_time: sp.Expr | None = None
    train_draw: str | None = None
    overrides: dict = field(default_factory=dict)
    aux_display: dict = field(default_factory=dict)  # how the tables show a short-hand, if not by its value

    t = t

    # -- full expressions -----------------------------------------------------------------------
    def full(self, expr):
        """Replace the short-hand functions by their definitions."""
        for fn, value in self.aux.items():
            expr = expr.subs(fn, value)
        return sp.sympify(expr).doit()

    @property
    def sigma(self):
        return self.full(self.sigma_short)

    @property
    def scale(self):
        return self.full(self.scale_short)

    @property
    def sigma_steps(self):
        """EDM Table 1's sampling noise levels sigma(t_i), i = 0..N-1 (None if not in the table)."""
        return None if self.time_steps is None else self.sigma.subs(t, self.time_steps)

    @property
    def train_sigma(self):
        """The training noise level as a function of one standard draw (see ``train_draw``)."""
        return None if self.train_time is None else self.sigma.subs(t, self.train_time)

    @property
    def alpha(self):
        """Mean coefficient of the kernel (= s(t))."""
        return self.scale

    @property
    def std(self):
        """Standard deviation of the kernel (= s(t) sigma(t))."""
        return self.scale * self.sigma

    @property
    def snr(self):
        """alpha^2 / std^2, which is 1 / sigma^2 in every process."""
        return 1 / self.sigma**2

    # -- SDE -------------------------------------------------------------------------------------
    @property
    def f_derived(self):
        """f(t) = s'/s: the drift coefficient any SDE with these kernels has (EDM eq. 9)."""
        return sp.diff(self.scale, t) / self.scale

    @property
    def g_derived(self):
        """g(t) = s sqrt(2 sigma' sigma) (EDM, Appendix B.2)."""
        return self.scale * sp.sqrt(2 * sp.diff(self.sigma, t) * self.sigma)

    @property
    def f(self):
        return self.full(self.f_short) if self.f_short is not None else self.f_derived

    @property
    def g(self):
        return self.full(self.g_short) if self.g_short is not None else self.g_derived

    @property
    def f_display(self):
        """f(t) in the process's short-hand (what the tables show)."""
        if self.f_short is not None:
            return self.f_short
        return sp.simplify(sp.diff(self.scale_short, t) / self.scale_short)

    @property
    def g2_display(self):
        if self.g_short is not None:
            return self.g_short**2
        return sp.simplify(2 * self.scale_short**2 * sp.diff(self.sigma_short, t) * self.sigma_short)

    def sde_drift(self, x=X):
        return self.f * x

    def pf_ode_drift(self, x=X, score=SCORE):
        """Probability-flow ODE: dx/dt = f(t) x - g(t)^2 / 2 * score (Song et al. 2021, eq. 13)."""
        return self.f * x - self.g**2 / 2 * score

    def pf_ode_drift_denoiser(self, x=X, denoiser=DENOISER):
        """The same ODE with the score written through EDM's denoiser D(x/s; sigma)."""
        return edm_ode_drift(self.sigma, self.scale, x, denoiser)

    # -- kernel and marginal ---------------------------------------------------------------------
    def kernel(self):
        """(mean coefficient, std) of p_0t(x_t | x_0) = N(x_t; alpha x_0, std^2 I)."""
        return self.alpha, self.std

    def kernel_score(self, x=X, x0=X0):
        """grad_x log N(x; alpha x0, std^2) = -(x - alpha x0) / std^2 (the DSM target)."""
        return -(x - self.alpha * x0) / self.std**2

    def marginal_gaussian(self, mu=MU, c=C_DATA):
        """(mean, variance) of p_t when p_data = N(mu, c^2 I): N(s mu, s^2 (c^2 + sigma^2) I)."""
        return self.alpha * mu, self.alpha**2 * c**2 + self.std**2

    marginal_statement = (
        r"p_t(x) = \int p_\mathrm{data}(x_0)\, \mathcal{N}\!\left(x;\, s(t)\, x_0,\, "
        r"s(t)^2 \sigma(t)^2 \mathbf{I}\right) \mathrm{d}x_0"
    )

    # -- parameters and numerics -----------------------------------------------------------------
    @property
    def params(self) -> dict:
        """Parameter symbol -> value in use (the papers' defaults, with any overrides)."""
        return dict(self.defaults)

    def subs(self, expr):
        """``expr`` with every parameter replaced by its value."""
        return sp.sympify(expr).subs(self.params)

    def numeric_t_range(self) -> tuple[float, float]:
        return tuple(float(self.subs(b)) for b in self.t_range)

    def lambdify(self, backend: str = "numpy") -> SimpleNamespace:
        """NumPy (``backend="numpy"``) or PyTorch (``"torch"``) callables with the parameters set.

        Returns a namespace with ``sigma(t)``, ``scale(t)``, ``alpha``, ``std``, ``snr``,
        ``sigma_deriv``, ``scale_deriv``, ``f``, ``g`` (all of ``t``) and ``sigma_inv(sigma)``
        (``None`` where there is no closed form). PyTorch callables work in the input's dtype;
        pass float64 for the DDPM schedule: its log-gamma form subtracts numbers near 5e5, so
        alpha_bar carries ~1e-10 absolute error (use ``ddpm_alpha_bar`` for the exact grid).
        """
        exprs = {
            "sigma": self.sigma, "scale": self.scale, "alpha": self.alpha, "std": self.std,
            "snr": self.snr, "sigma_deriv": sp.diff(self.sigma, t), "scale_deriv": sp.diff(self.scale, t),
            "f": self.f, "g": self.g,
        }
        out = {key: self.lambdify_expr(expr, (t,), backend) for key, expr in exprs.items()}
        out["sigma_inv"] = None if self.sigma_inv is None else self.lambdify_expr(self.sigma_inv, (SIGMA,), backend)
        out["t_range"] = self.numeric_t_range()
        out["name"] = self.name
        return SimpleNamespace(**out)

    def lambdify_expr(self, expr, args=(t,), backend: str = "torch") -> Callable:
        """One expression of this process as a NumPy or PyTorch function of ``args``.

        The parameters are bound to their values; the result is shaped like the broadcast
        arguments and, for PyTorch, in the first argument's floating dtype (float default).
        """
        if backend == "numpy":
            modules = ["numpy", "scipy"]
        elif backend == "torch":
            modules = "torch"
        else:
            raise ValueError(f"unknown backend {backend!r}; valid: 'numpy', 'torch'")
        # The parameters stay arguments of the generated functions (bound below) so that SymPy does
        # not fold them into constants: DDPM's exp(loggamma(c) - ...) would overflow if it did.
        syms = list(self.params)
        values = [float(v) for v in self.params.values()]
        # numeric constants such as sqrt(2) become floats: torch.sqrt does not take a Python int
        prepared = _torch_ready(sp.sympify(expr)) if backend == "torch" else expr
        return _bind(sp.lambdify([*args, *syms], prepared, modules=modules), values, backend)


def _torch_ready(expr):
    """Floats for numeric constants (torch.sqrt(2) fails), but keep polygamma's integer order."""
    expr = sp.nfloat(expr)
    return expr.replace(lambda a: isinstance(a, sp.polygamma), lambda a: sp.polygamma(int(a.args[0]), a.args[1]))


def _bind(fn, values, backend):
    """Bind the parameter values; return an array shaped like the inputs even when constant."""

    def wrapped(arg, *more):
        if backend == "torch":
            import torch

            arg = torch.as_tensor(arg)
            dtype = arg.dtype if arg.is_floating_point() else torch.get_default_dtype()
            args = torch.broadcast_tensors(arg.to(dtype), *[torch.as_tensor(a, dtype=dtype, device=arg.device)
                                                            for a in more])
            value = fn(*args, *[torch.tensor(v, dtype=dtype, device=arg.device) for v in values])
            return torch.as_tensor(value, dtype=dtype, device=arg.device).expand_as(args[0]).clone()
        args = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in (arg, *more)])
        value = fn(*args, *values)
        return np.broadcast_to(np.asarray(value, dtype=np.float64), args[0].shape).copy()

    return wrapped


# ============================================================================================
# Processes
# ============================================================================================
def _p(name, **assumptions):
    return sp.Symbol(name, **assumptions)


# -- DDPM: discrete chain with a linear beta_i, and its exact continuous interpolation ---------
beta_1, beta_N, N_steps = _p("beta_1", positive=True), _p("beta_N", positive=True), _p("N", positive=True)


def _ddpm_betas(n_steps: int, beta_1: float, beta_N: float) -> np.ndarray:
    """beta_1..beta_N linear, as DDPM's code builds them (np.linspace, float64)."""
    return np.linspace(beta_1, beta_N, int(n_steps), dtype=np.float64)


def ddpm_alpha_bar(n_steps: int = K.DDPM_T, beta_1: float = K.DDPM_BETA_1,
                   beta_N: float = K.DDPM_BETA_T) -> np.ndarray:
    """alpha_bar_i = prod_{j<=i} (1 - beta_j), i = 0..N (index 0 is 1), as DDPM's code builds it."""
    return np.concatenate([[1.0], np.cumprod(1.0 - _ddpm_betas(n_steps, beta_1, beta_N))])


def _ddpm():
    # beta_j = beta_1 + (j - 1) Delta is linear in j, so 1 - beta_j = Delta (c - j) and
    # alpha_bar_i = prod_{j=1}^{i} Delta (c - j) = Delta^i Gamma(c) / Gamma(c - i): a closed form
    # that is exact at every integer i and smooth in between (t = i / N).
    delta = (beta_N - beta_1) / (N_steps - 1)
    c = (1 - beta_1 + delta) / delta
    i_of_t = N_steps * t
    alpha_bar = sp.exp(i_of_t * sp.log(delta) + sp.loggamma(c) - sp.loggamma(c - i_of_t))
    ab = alpha_bar_fn(t)
    j = I_STEP
    chain = DiscreteChain(
        latex=r"x_i = \sqrt{1-\beta_i}\, x_{i-1} + \sqrt{\beta_i}\, z_{i-1}",
        update=sp.sqrt(1 - sp.Symbol("beta_i", positive=True)) * X_PREV + sp.sqrt(sp.Symbol("beta_i", positive=True)) * Z,
        index=j, n_steps=N_steps, schedule_name=r"\beta_i",
        schedule=beta_1 + (j - 1) * (beta_N - beta_1) / (N_steps - 1),
        values=lambda p: _ddpm_betas(p[N_steps], p[beta_1], p[beta_N]),
    )
    return Process(
        name="ddpm", title="DDPM", cite="ho2020denoising", parameterization="ho2020",
        sigma_short=_vp_from_alpha_bar(ab)[0], scale_short=_vp_from_alpha_bar(ab)[1],
        aux={ab: alpha_bar},
        aux_display={ab: sp.Eq(ab, sp.Product(1 - chain.schedule, (j, 1, N_steps * t)))},
        defaults={beta_1: K.DDPM_BETA_1, beta_N: K.DDPM_BETA_T, N_steps: K.DDPM_T},
        chain=chain, sigma_inv=None, t_range=(1 / N_steps, 1),
        notes=(r"t = i/N. $\bar\alpha(t) = \prod_{j\le Nt}(1-\beta_j) = \Delta^{Nt}\,\Gamma(c)/\Gamma(c-Nt)$ "
               r"with $\Delta = (\beta_N-\beta_1)/(N-1)$, $c = (1-\beta_1+\Delta)/\Delta$: exact at "
               r"integer $Nt$, a smooth interpolation between them."),
    )


# -- SMLD / NCSN: geometric noise levels, chain x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z
sigma_min, sigma_max, L_levels = _p("sigma_min", positive=True), _p("sigma_max", positive=True), _p("L", positive=True)


def _geometric_sigma():
    return sigma_min * (sigma_max / sigma_min) ** t


def _smld():
    j = I_STEP
    # NCSN numbers sigma_1 > ... > sigma_L; we follow Song et al. 2021 (Score SDE) and number
    # them upwards, sigma_i = sigma(t_i) with t_i = (i - 1) / (L - 1), and sigma_0 = 0.
    sched = sigma_min * (sigma_max / sigma_min) ** ((j - 1) / (L_levels - 1))
    sig_i, sig_prev = sp.Symbol("sigma_i", positive=True), sp.Symbol("sigma_{i-1}", nonnegative=True)
    chain = DiscreteChain(
        latex=r"x_i = x_{i-1} + \sqrt{\sigma_i^2 - \sigma_{i-1}^2}\, z_{i-1},\ \sigma_0 = 0",
        update=X_PREV + sp.sqrt(sig_i**2 - sig_prev**2) * Z,
        index=j, n_steps=L_levels, schedule_name=r"\sigma_i", schedule=sched,
        values=lambda p: np.geomspace(p[sigma_min], p[sigma_max], int(p[L_levels])),
    )
    return Process(
        name="smld", title="SMLD (NCSN)", cite="song2019generative", parameterization="song2019",
        sigma_short=_geometric_sigma(), scale_short=sp.Integer(1),
        # as L -> infinity the chain becomes Score SDE's VE-SDE (proof smld_chain_to_ve_sde)
        f_short=sp.Integer(0), g_short=_geometric_sigma() * sp.sqrt(2 * sp.log(sigma_max / sigma_min)),
        defaults={sigma_min: K.NCSN_SIGMA_L, sigma_max: K.NCSN_SIGMA_1, L_levels: K.NCSN_L},
        chain=chain, sigma_inv=sp.log(SIGMA / sigma_min) / sp.log(sigma_max / sigma_min),
        notes=r"$t_i = (i-1)/(L-1)$: the $L$ levels are samples of VE's $\sigma(t)$ (NCSN: $\sigma_1=1 > \dots > \sigma_{10}=0.01$).",
    )


# -- VE-SDE: two parameterizations ----------------------------------------------------------
def _ve(parameterization="scoresde"):
    if parameterization == "scoresde":
        # Song et al. 2021, eq. 30 and their code: sigma(t) = sigma_min (sigma_max/sigma_min)^t,
        # f = 0, g = sigma(t) sqrt(2 log(sigma_max / sigma_min)).
        sig = _geometric_sigma()
        return Process(
            name="ve", title="VE-SDE", cite="song2021score", parameterization="scoresde",
            sigma_short=sig, scale_short=sp.Integer(1),
            f_short=sp.Integer(0), g_short=sig * sp.sqrt(2 * sp.log(sigma_max / sigma_min)),
            defaults={sigma_min: K.SCORE_SDE_VE_SIGMA_MIN, sigma_max: K.SCORE_SDE_VE_SIGMA_MAX},
            sigma_inv=sp.log(SIGMA / sigma_min) / sp.log(sigma_max / sigma_min),
            notes=(r"Score SDE's VE: the SDE started at $x(0)\sim p_\mathrm{data}$ has kernel variance "
                   r"$\sigma(t)^2-\sigma(0)^2$; like the paper's code we take $\sigma(t)^2$ (data already carries "
                   r"$\sigma_\mathrm{min}$)."),
        )
    if parameterization == "edm":
        # Karras et al. 2022, Table 1, column VE: sigma(t) = sqrt(t), s = 1, t in [sigma_min^2, sigma_max^2].
        return Process(
            name="ve", title="VE (EDM's parameterization)", cite="karras2022elucidating", parameterization="edm",
            sigma_short=sp.sqrt(t), scale_short=sp.Integer(1),
            f_short=sp.Integer(0), g_short=sp.Integer(1),
            defaults={sigma_min: K.VE_SIGMA_MIN, sigma_max: K.VE_SIGMA_MAX},
            sigma_inv=SIGMA**2, t_range=(sigma_min**2, sigma_max**2),
            time_steps=sigma_max**2 * (sigma_min**2 / sigma_max**2) ** (I_SAMPLE / (N_SAMPLE - 1)),
            train_time=(sigma_min * (sigma_max / sigma_min) ** RND_UNIFORM) ** 2, train_draw="uniform",
            table1={
                "c_skip": sp.Integer(1), "c_out": SIGMA, "c_in": sp.Integer(1), "c_noise": sp.log(SIGMA / 2),
                "loss_weight": 1 / SIGMA**2,
                "train": r"\ln(\sigma) \sim \mathcal{U}(\ln\sigma_\mathrm{min}, \ln\sigma_\mathrm{max})",
                "time_steps": r"\sigma_\mathrm{max}^2 \left(\sigma_\mathrm{min}^2/\sigma_\mathrm{max}^2\right)^{\frac{i}{N-1}}",
                "architecture": "NCSN++",
                "parameters": r"\sigma_\mathrm{min} = 0.02,\ \sigma_\mathrm{max} = 100",
            },
            notes="EDM's VE column: the same SDE as Score SDE's VE up to a change of time, $t = \\sigma^2$.",
        )
    raise ValueError(f"unknown parameterization {parameterization!r} for 've'; valid: 'scoresde', 'edm'")


# -- VP-SDE and sub-VP: linear beta(t) ------------------------------------------------------
beta_min, beta_d = _p("beta_min", positive=True), _p("beta_d", positive=True)
M_train, eps_s, eps_t = _p("M", positive=True), _p("epsilon_s", positive=True), _p("epsilon_t", positive=True)
VP_BETA = beta_min + beta_d * t  # beta(t); Score SDE writes beta_min + t (beta_max - beta_min)
VP_B = beta_min * t + beta_d * t**2 / 2  # int_0^t beta


def _vp():
    b, Bt = beta_fn(t), B_fn(t)
    sigma_inv = (sp.sqrt(beta_min**2 + 2 * beta_d * sp.log(SIGMA**2 + 1)) - beta_min) / beta_d
    return Process(
        name="vp", title="VP-SDE", cite="song2021score", parameterization="scoresde",
        sigma_short=sp.sqrt(sp.exp(Bt) - 1), scale_short=sp.exp(-Bt / 2),
        aux={b: VP_BETA, Bt: VP_B},
        f_short=-b / 2, g_short=sp.sqrt(b),
        defaults={beta_min: K.VP_BETA_MIN, beta_d: K.VP_BETA_D, M_train: K.VP_M, eps_s: K.VP_EPS_S, eps_t: K.VP_EPS_T},
        sigma_inv=sigma_inv, t_range=(eps_t, 1),
        time_steps=1 + I_SAMPLE / (N_SAMPLE - 1) * (eps_s - 1),
        train_time=1 + RND_UNIFORM * (eps_t - 1), train_draw="uniform",
        table1={
            "c_skip": sp.Integer(1), "c_out": -SIGMA, "c_in": 1 / sp.sqrt(SIGMA**2 + 1),
            "c_noise": (M_train - 1) * sigma_inv,
            "loss_weight": 1 / SIGMA**2,
            "train": r"\sigma^{-1}(\sigma) \sim \mathcal{U}(\epsilon_t, 1)",
            "time_steps": r"1 + \tfrac{i}{N-1}(\epsilon_s - 1)",
            "architecture": "DDPM++",
            "parameters": r"\beta_d = 19.9,\ \beta_\mathrm{min} = 0.1,\ \epsilon_s = 10^{-3},\ \epsilon_t = 10^{-5},\ M = 1000",
        },
        notes=r"$\beta(t) = \beta_\mathrm{min} + \beta_d t$, $B(t) = \int_0^t\beta = \beta_\mathrm{min}t + \tfrac12\beta_d t^2$; Score SDE's $\beta_\mathrm{max} = \beta_\mathrm{min} + \beta_d = 20$.",
    )


def _subvp():
    b, Bt = beta_fn(t), B_fn(t)
    # std = 1 - e^{-B} and s = e^{-B/2}, so sigma = std / s = 2 sinh(B / 2) and B = 2 asinh(sigma / 2)
    B_of_sigma = 2 * sp.asinh(SIGMA / 2)
    return Process(
        name="subvp", title="sub-VP SDE", cite="song2021score", parameterization="scoresde",
        sigma_short=(1 - sp.exp(-Bt)) * sp.exp(Bt / 2), scale_short=sp.exp(-Bt / 2),
        aux={b: VP_BETA, Bt: VP_B},
        f_short=-b / 2, g_short=sp.sqrt(b * (1 - sp.exp(-2 * Bt))),
        defaults={beta_min: K.VP_BETA_MIN, beta_d: K.VP_BETA_D},
        sigma_inv=(sp.sqrt(beta_min**2 + 2 * beta_d * B_of_sigma) - beta_min) / beta_d,
        t_range=(K.VP_EPS_T, 1),
        notes=r"Same $\beta(t)$ as VP; Song et al. 2021, eq. 31.",
    )


# -- DDIM: EDM's sigma(t) = t, s(t) = 1 ----------------------------------------------------
def _ddim():
    ab_t, ab_prev, eta_sig = (sp.Symbol(r"\bar{\alpha}_i", positive=True), sp.Symbol(r"\bar{\alpha}_{i-1}", positive=True),
                              sp.Symbol("sigma_i", nonnegative=True))
    x_i = sp.Symbol("x_i", real=True)
    # DDIM eq. 7: q_sigma(x_{i-1} | x_i, x_0), the non-Markovian rule that keeps DDPM's marginals
    mean = sp.sqrt(ab_prev) * X0 + sp.sqrt(1 - ab_prev - eta_sig**2) * (x_i - sp.sqrt(ab_t) * X0) / sp.sqrt(1 - ab_t)
    chain = DiscreteChain(
        latex=(r"q(x_{i-1}\mid x_i,x_0)=\mathcal{N}\big(\sqrt{\bar\alpha_{i-1}}x_0+\sqrt{1-\bar\alpha_{i-1}-\sigma_i^2}"
               r"\,\tfrac{x_i-\sqrt{\bar\alpha_i}x_0}{\sqrt{1-\bar\alpha_i}},\ \sigma_i^2\mathbf{I}\big)"),
        update=mean + eta_sig * Z, index=I_STEP, n_steps=N_steps, schedule_name=r"\bar\alpha_i",
        schedule=alpha_bar_fn(I_STEP), markovian=False,
        note="non-Markovian; same marginals q(x_i | x_0) as DDPM",
    )
    return Process(
        name="ddim", title="DDIM", cite="song2021denoising", parameterization="edm",
        sigma_short=t, scale_short=sp.Integer(1), defaults={},
        chain=chain, sigma_inv=SIGMA, t_range=(K.EDM_SIGMA_MIN, K.EDM_SIGMA_MAX),
        notes=(r"In $\bar x = x/\sqrt{\bar\alpha}$ and $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$ DDIM's "
               r"$\eta=0$ update is Euler on this ODE (EDM Table 1 writes $\sigma(t)=t$, $s(t)=1$). DDIM "
               r"itself has no SDE; the one shown has the marginals of $\bar x = x/\sqrt{\bar\alpha}$, "
               r"not of DDIM's own $x_t$."),
    )


# -- iDDPM: cosine schedule; EDM's column iDDPM+DDIM ------------------------------------------
C_1, C_2 = _p("C_1", positive=True), _p("C_2", positive=True)
j0 = _p("j_0", positive=True)


def iddpm_u(M: int = K.IDDPM_M, C1: float = K.IDDPM_C1, C2: float = K.IDDPM_C2) -> np.ndarray:
    """EDM Table 1's noise levels u_0 > ... > u_M = 0 of iDDPM's discrete cosine schedule.

    u_{j-1} = sqrt((u_j^2 + 1) / max(alpha_bar_{j-1} / alpha_bar_j, C1) - 1) with
    alpha_bar_j = sin^2(pi/2 j / (M (C2 + 1))); the max(., C1) is iDDPM's clipping beta <= 0.999.
    """
    j = np.arange(M + 1, dtype=np.float64)
    alpha_bar = np.sin(0.5 * np.pi * j / (M * (C2 + 1))) ** 2
    u = np.zeros(M + 1)
    for k in range(M, 0, -1):
        u[k - 1] = math.sqrt((u[k] ** 2 + 1) / max(alpha_bar[k - 1] / alpha_bar[k], C1) - 1)
    return u


def _iddpm(parameterization="cosine"):
    if parameterization == "cosine":
        ab = alpha_bar_fn(t)
        # Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(pi/2 (t + s)/(1 + s))
        f_cos = lambda u: sp.cos(sp.pi / 2 * (u + C_2) / (1 + C_2)) ** 2  # noqa: E731
        alpha_bar = f_cos(t) / f_cos(0)
        inv = (1 + C_2) * 2 / sp.pi * sp.acos(sp.cos(sp.pi / 2 * C_2 / (1 + C_2)) / sp.sqrt(1 + SIGMA**2)) - C_2
        j = I_STEP
        chain = DiscreteChain(
            latex=(r"x_i = \sqrt{1-\beta_i}\, x_{i-1} + \sqrt{\beta_i}\, z_{i-1},\ "
                   r"\beta_i = \min\!\big(1-\bar\alpha_i/\bar\alpha_{i-1},\ 0.999\big)"),
            update=sp.sqrt(1 - sp.Symbol("beta_i", positive=True)) * X_PREV + sp.sqrt(sp.Symbol("beta_i", positive=True)) * Z,
            index=j, n_steps=M_train, schedule_name=r"\beta_i",
            schedule=sp.Min(1 - alpha_bar.subs(t, j / M_train) / alpha_bar.subs(t, (j - 1) / M_train), 1 - C_1),
        )
        return Process(
            name="iddpm", title="iDDPM (cosine)", cite="nichol2021improved", parameterization="cosine",
            sigma_short=_vp_from_alpha_bar(ab)[0], scale_short=_vp_from_alpha_bar(ab)[1], aux={ab: alpha_bar},
            defaults={C_1: K.IDDPM_C1, C_2: K.IDDPM_C2, M_train: K.IDDPM_M},
            chain=chain, sigma_inv=inv, t_range=(1e-3, 0.995),
            notes=(r"$\bar\alpha(t) = \cos^2\!\big(\tfrac{\pi}{2}\tfrac{t+s}{1+s}\big)/\cos^2\!\big(\tfrac{\pi}{2}\tfrac{s}{1+s}\big)$ "
                   r"with $s = C_2 = 0.008$, $t = i/M$; the discrete chain clips $\beta_i \le 0.999$ "
                   r"($C_1 = 0.001$), so its $\sigma$ stays finite at $t = 1$ where this one diverges."),
        )
    if parameterization == "edm":
        return Process(
            name="iddpm", title="iDDPM + DDIM (EDM's parameterization)", cite="karras2022elucidating",
            parameterization="edm", sigma_short=t, scale_short=sp.Integer(1),
            defaults={C_1: K.IDDPM_C1, C_2: K.IDDPM_C2, M_train: K.IDDPM_M, j0: K.IDDPM_J0},
            sigma_inv=SIGMA, t_range=(K.EDM_SIGMA_MIN, K.EDM_SIGMA_MAX),
            table1={
                "c_skip": sp.Integer(1), "c_out": -SIGMA, "c_in": 1 / sp.sqrt(SIGMA**2 + 1),
                "c_noise": r"M - 1 - \arg\min_j \lvert u_j - \sigma \rvert",
                "loss_weight": 1 / SIGMA**2,
                "train": r"\sigma = u_j,\ j \sim \mathcal{U}\{0, \dots, M-1\}",
                "time_steps": r"u_{\lfloor j_0 + \frac{M-1-j_0}{N-1} i + \frac12 \rfloor},\ "
                              r"u_{j-1} = \sqrt{\frac{u_j^2+1}{\max(\bar\alpha_{j-1}/\bar\alpha_j,\, C_1)} - 1},\ u_M = 0",
                "architecture": "DDPM (iDDPM's)",
                "parameters": r"\bar\alpha_j = \sin^2\!\big(\tfrac{\pi}{2}\tfrac{j}{M(C_2+1)}\big),\ C_1 = 0.001,\ C_2 = 0.008,\ M = 1000,\ j_0 = 8",
            },
            notes="iDDPM also trains with a second loss term (L_vlb) for its learned variances.",
        )
    raise ValueError(f"unknown parameterization {parameterization!r} for 'iddpm'; valid: 'cosine', 'edm'")


# -- EDM ---------------------------------------------------------------------------------------
rho, P_mean, P_std = _p("rho", positive=True), _p("P_mean", real=True), _p("P_std", positive=True)


def _edm():
    return Process(
        name="edm", title="EDM", cite="karras2022elucidating", parameterization="edm",
        sigma_short=t, scale_short=sp.Integer(1),
        defaults={sigma_min: K.EDM_SIGMA_MIN, sigma_max: K.EDM_SIGMA_MAX, rho: K.EDM_RHO,
                  SIGMA_DATA: K.EDM_SIGMA_DATA, P_mean: K.EDM_P_MEAN, P_std: K.EDM_P_STD},
        sigma_inv=SIGMA, t_range=(sigma_min, sigma_max),
        time_steps=(sigma_max ** (1 / rho) + I_SAMPLE / (N_SAMPLE - 1)
                    * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho,
        train_time=sp.exp(P_mean + P_std * RND_NORMAL), train_draw="normal",
        table1={
            "c_skip": SIGMA_DATA**2 / (SIGMA**2 + SIGMA_DATA**2),
            "c_out": SIGMA * SIGMA_DATA / sp.sqrt(SIGMA_DATA**2 + SIGMA**2),
            "c_in": 1 / sp.sqrt(SIGMA**2 + SIGMA_DATA**2),
            "c_noise": sp.log(SIGMA) / 4,
            "loss_weight": (SIGMA**2 + SIGMA_DATA**2) / (SIGMA * SIGMA_DATA) ** 2,
            "train": r"\ln(\sigma) \sim \mathcal{N}(P_\mathrm{mean}, P_\mathrm{std}^2)",
            "time_steps": (r"\Big(\sigma_\mathrm{max}^{1/\rho} + \tfrac{i}{N-1}\big(\sigma_\mathrm{min}^{1/\rho} - "
                           r"\sigma_\mathrm{max}^{1/\rho}\big)\Big)^{\rho}"),
            "architecture": "(any)",
            "parameters": (r"\sigma_\mathrm{min} = 0.002,\ \sigma_\mathrm{max} = 80,\ \sigma_\mathrm{data} = 0.5,\ "
                           r"\rho = 7,\ P_\mathrm{mean} = -1.2,\ P_\mathrm{std} = 1.2"),
        },
        notes="EDM's deterministic ODE; its stochastic sampler adds Langevin-like churn on top.",
    )


# -- VDM ---------------------------------------------------------------------------------------
gamma_min, gamma_max = _p("gamma_min", real=True), _p("gamma_max", real=True)


def _vdm(gamma=None):
    """VDM: alpha^2 = sigmoid(-gamma), sigma_VDM^2 = sigmoid(gamma), SNR = exp(-gamma).

    VDM learns gamma(t) (a monotone network); the default is the fixed linear schedule
    gamma(t) = gamma_min + (gamma_max - gamma_min) t with VDM's gamma_min = -13.3, gamma_max = 5
    (the initialization/endpoints in VDM's code). Pass ``gamma`` (a SymPy expression in ``t``,
    e.g. ``sp.Function('gamma')(t)``) to study any schedule.
    """
    g = gamma_fn(t)
    gamma_expr = gamma_min + (gamma_max - gamma_min) * t if gamma is None else sp.sympify(gamma)
    alpha_vdm = sp.sqrt(_sigmoid(-g))
    sigma2_vdm = _sigmoid(g)
    # VDM (Appendix, continuous-time SDE): f = d log(alpha)/dt, g^2 = d sigma^2/dt - 2 f sigma^2
    f_vdm = sp.diff(sp.log(alpha_vdm), t)
    g2_vdm = sp.diff(sigma2_vdm, t) - 2 * f_vdm * sigma2_vdm
    closed_inv = (2 * sp.log(SIGMA) - gamma_min) / (gamma_max - gamma_min) if gamma is None else None
    return Process(
        name="vdm", title="VDM", cite="kingma2021variational", parameterization="kingma2021",
        sigma_short=sp.exp(g / 2), scale_short=alpha_vdm, aux={g: gamma_expr},
        f_short=sp.simplify(f_vdm), g_short=sp.sqrt(sp.simplify(g2_vdm)),
        defaults={gamma_min: K.VDM_GAMMA_MIN, gamma_max: K.VDM_GAMMA_MAX},
        sigma_inv=closed_inv, learned=True,
        notes=(r"$\gamma(t)$ is learned in VDM; shown is the fixed linear $\gamma(t) = \gamma_\mathrm{min} + "
               r"(\gamma_\mathrm{max}-\gamma_\mathrm{min})t$ with $\gamma_\mathrm{min}=-13.3$, $\gamma_\mathrm{max}=5$. "
               r"$\sigma_\mathrm{EDM} = \sigma_\mathrm{VDM}/\alpha = e^{\gamma/2}$, $s = \alpha$."),
    )


# ============================================================================================
_BUILDERS = {
    "smld": (_smld, ("song2019",)),
    "ddpm": (_ddpm, ("ho2020",)),
    "ve": (_ve, ("scoresde", "edm")),
    "vp": (_vp, ("scoresde",)),
    "subvp": (_subvp, ("scoresde",)),
    "ddim": (_ddim, ("edm",)),
    "iddpm": (_iddpm, ("cosine", "edm")),
    "edm": (_edm, ("edm",)),
    "vdm": (_vdm, ("kingma2021",)),
}
PROCESS_NAMES = tuple(_BUILDERS)
PARAMETERIZATIONS = {name: params for name, (_, params) in _BUILDERS.items()}


def get_process(name: str, parameterization: str | None = None, *, gamma=None, **params) -> Process:
    """The process ``name`` (one of :data:`PROCESS_NAMES`) with the papers' defaults.

    ``parameterization`` picks between papers where they disagree: ``"ve"`` has ``"scoresde"``
    (default; sigma = sigma_min (sigma_max/sigma_min)^t, t in [0, 1]) and ``"edm"`` (EDM Table 1:
    sigma = sqrt(t)); ``"iddpm"`` has ``"cosine"`` (default; the VP-type cosine schedule) and
    ``"edm"`` (EDM's column iDDPM+DDIM: sigma = t, s = 1). Keyword ``params`` override defaults
    by name (``get_process("vp", beta_min=0.2)``); ``gamma`` sets VDM's schedule.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown process {name!r}; valid names: {', '.join(PROCESS_NAMES)}")
    builder, valid = _BUILDERS[name]
    if parameterization is None:
        parameterization = valid[0]
    if parameterization not in valid:
        raise ValueError(f"unknown parameterization {parameterization!r} for {name!r}; valid: {', '.join(valid)}")
    if name == "vdm":
        proc = builder(gamma=gamma)
    elif gamma is not None:
        raise ValueError(f"'gamma' only applies to 'vdm', not {name!r}")
    elif len(valid) > 1:
        proc = builder(parameterization)
    else:
        proc = builder()
    if params:
        by_name = {str(sym): sym for sym in proc.defaults}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for {name!r}; valid: {', '.join(sorted(by_name)) or 'none'}")
        proc.defaults = {**proc.defaults, **{by_name[k]: v for k, v in params.items()}}
        proc.overrides = dict(params)
    return proc
