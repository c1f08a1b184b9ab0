"""Noise-level schedules and samplers shared by every method in the book.

Everything here works in the EDM coordinates with s(t) = 1: x = x0 + sigma n, and a model is a
*denoiser* ``D(x; sigma) ~ E[x0 | x]``. The score is ``(D - x) / sigma**2`` and the
probability-flow ODE in sigma-time is ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al.
2022, eq. 4 with s = 1, sigma(t) = t). VP-trained networks enter through the preconditioning
wrappers of ``diffnotes.precond``, which already return ``D`` in these coordinates: x_VE =
x_VP / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar).

The samplers are stateless pure functions in the style of k-diffusion,
``sample_xxx(denoiser, x, sigmas, ...)``: ``x`` is the starting point at ``sigmas[0]`` (usually
``sigmas[0] * randn``), ``sigmas`` a strictly decreasing 1-D sequence that ends at 0, and the
return value the sample at sigma = 0. There is no scheduler object and no hidden step counter.

Used in the book by the chapters on SMLD (annealed Langevin), DDPM (ancestral), Score SDE
(Euler-Maruyama, predictor-corrector), DDIM, DPM-Solver++ (2M, 3M) and EDM (Heun, stochastic
sampler), and by ``benchmarks/bench_samplers.py``, which also runs UniPC (``sample_unipc``) and
DEIS (``sample_deis``). ``SOLVERS`` names them all; ``sample(..., solver=name)`` runs one.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
# tqdm.std, not tqdm.auto: the notebook widget needs ipywidgets and CDN scripts the offline site must not load
from tqdm.std import tqdm

from .chain import DiscreteSchedule, respace_steps
from .constants import (DDPM_BETA_1, DDPM_BETA_T, DDPM_T, EDM_RHO, EDM_SIGMA_MAX, EDM_SIGMA_MIN, NCSN_EPSILON,
                        NCSN_T, VP_EPS_S)
from .parameterization import denoiser_to_eps, denoiser_to_score
from .theory.numeric import vp_sigma, vp_sigma_inv

__all__ = [
    "SOLVERS",
    "SCHEDULES",
    "sample",
    "sigma_schedule",
    "ddpm_sigmas",
    "vp_sigma",
    "vp_sigma_inv",
    "to_d",
    "sample_euler",
    "sample_heun",
    "sample_edm_stochastic",
    "sample_dpmpp_2m",
    "sample_dpmpp_3m",
    "sample_unipc",
    "sample_deis",
    "warped_sigmas",
    "optimize_sigmas",
    "refine_sigmas",
    "knot_sigmas",
    "sample_euler_maruyama",
    "sample_predictor_corrector",
    "sample_ancestral",
    "sample_ddim",
    "sample_annealed_langevin",
]

SCHEDULES = ("karras", "loglinear", "uniform", "vp")
DDPM_SPACINGS = ("leading", "trailing", "linspace", "ddim")

# EDM's sigma range and VP constants (Karras et al. 2022, Table 1) live in diffnotes.constants;
# vp_sigma / vp_sigma_inv in diffnotes.theory.numeric (both re-exported here for old imports).


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------
def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def sigma_schedule(kind: str, n: int, sigma_min: float | None = None, sigma_max: float | None = None,
                   rho: float = EDM_RHO) -> torch.Tensor:
    """``n`` decreasing noise levels from ``sigma_max`` to ``sigma_min``, then a final 0 (float64).

    kinds:
      * ``"karras"``: sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
        (Karras et al. 2022, eq. 5); rho = 7 is EDM's choice, rho = 1 is uniform, rho -> inf log-linear.
      * ``"loglinear"``: uniform in log sigma (equivalently in lambda = -log sigma, the DPM-Solver time).
      * ``"uniform"``: uniform in sigma (the VE ODE in sigma-time with equal steps).
      * ``"vp"``: EDM's VP discretisation: uniform in the VP time t between the times of sigma_max
        and sigma_min (by default t from 1 to eps_s = 1e-3, beta_min = 0.1, beta_d = 19.9).

    Defaults when ``sigma_min`` / ``sigma_max`` are None: EDM's (0.002, 80), or for ``"vp"`` the
    VP process's sigma(eps_s) and sigma(1).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid schedules: {', '.join(SCHEDULES)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer number of noise levels, got {n!r}")
    if kind == "vp":
        sigma_min = float(vp_sigma(VP_EPS_S)) if sigma_min is None else sigma_min
        sigma_max = float(vp_sigma(1.0)) if sigma_max is None else sigma_max
    else:
        sigma_min = EDM_SIGMA_MIN if sigma_min is None else sigma_min
        sigma_max = EDM_SIGMA_MAX if sigma_max is None else sigma_max
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if n == 1:
        return _append_zero(torch.tensor([float(sigma_max)], dtype=torch.float64))
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    if kind == "karras":
        if not rho > 0:
            raise ValueError(f"rho must be positive, got {rho}")
        inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
        sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    elif kind == "loglinear":
        sigmas = torch.exp(math.log(sigma_max) + ramp * (math.log(sigma_min) - math.log(sigma_max)))
    elif kind == "uniform":
        sigmas = sigma_max + ramp * (sigma_min - sigma_max)
    else:  # "vp"
        t_max, t_min = vp_sigma_inv(sigma_max), vp_sigma_inv(sigma_min)
        sigmas = vp_sigma(t_max + ramp * (t_min - t_max))
    return _append_zero(sigmas)


def ddpm_sigmas(n_steps: int, spacing: str = "leading", num_train_timesteps: int = DDPM_T,
                beta_start: float = DDPM_BETA_1, beta_end: float = DDPM_BETA_T, return_timesteps: bool = False):
    """Noise levels of ``n_steps`` discrete DDPM timesteps, then a final 0 (float64).

    DDPM's linear betas (Ho et al. 2020: beta_1 = 1e-4 ... beta_T = 0.02, T = 1000) give
    alpha_bar_t = prod_{s<=t} (1 - beta_s) and, in EDM coordinates, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t):
    the levels of the chain's ``DiscreteSchedule.linear(T, beta_start, beta_end).sampling_sigmas``.
    The subset of timesteps follows diffusers' ``timestep_spacing`` conventions (with
    ``steps_offset = 0``), 0-based timesteps as in diffusers:

      * ``"leading"``: t = k * (T // n), k = n-1 ... 0 (DDIM's original choice);
      * ``"trailing"``: t = round(T - k T / n) - 1, k = 0 ... n-1 (always includes t = T-1);
      * ``"linspace"``: t = round(linspace(0, T-1, n)) reversed;
      * ``"ddim"``: the iDDPM / ADM code's ``ddimK`` striding, range(0, T, i) for the smallest
        stride i giving n steps (equal to ``"leading"`` only when n divides T).

    With ``return_timesteps`` also returns the integer timesteps (without the final 0).
    """
    if spacing not in DDPM_SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; valid spacings: {', '.join(DDPM_SPACINGS)}")
    if not isinstance(n_steps, int) or not 1 <= n_steps <= num_train_timesteps:
        raise ValueError(f"n_steps must be an integer in [1, {num_train_timesteps}], got {n_steps!r}")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    sigmas = DiscreteSchedule.linear(num_train_timesteps, beta_start, beta_end).sampling_sigmas(n_steps, spacing)
    if not return_timesteps:
        return sigmas
    return sigmas, respace_steps(num_train_timesteps, n_steps, spacing)  # 0-based t, as diffusers


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def to_d(x: torch.Tensor, sigma, denoised: torch.Tensor) -> torch.Tensor:
    """The PF-ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 4 with s = 1): eps from D."""
    return denoiser_to_eps(denoised, x, sigma)


def _check(x, sigmas) -> list[float]:
    """Validate the inputs; return the noise levels as Python floats (float64 coefficients)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {tuple(x.shape)}")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D sequence of at least 2 levels ending at 0, got shape {tuple(sigmas.shape)}")
    if not bool(torch.isfinite(sigmas).all()):
        raise ValueError("sigmas must be finite")
    if float(sigmas[-1]) != 0.0:
        raise ValueError(f"sigmas must end at 0 (append a final 0), got last value {float(sigmas[-1])}")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing (from sigma_max down to 0)")
    return sigmas.tolist()


def _call(denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """D(x; sigma) with sigma passed per sample, shape (N,); the output is cast to x's dtype so the
    sampler's state keeps the dtype it started with (a float64 denoiser cannot promote a float32 chain)."""
    return denoiser(x, x.new_full((x.shape[0],), sigma)).to(x.dtype)


def _steps(n: int, progress: bool):
    # disable=None lets tqdm stay quiet when stderr is not a TTY.
    return tqdm(range(n), disable=None if progress else True, leave=False)


def _randn(x: torch.Tensor, generator) -> torch.Tensor:
    # Drawn where the generator lives, then moved: a CPU generator seeds a CUDA run too, and a
    # seed gives the same noise on every device.
    where = x.device if generator is None else generator.device
    return torch.randn(x.shape, dtype=x.dtype, device=where, generator=generator).to(x.device)


def _report(callback, **info):
    if callback is not None:
        callback(info)


# --------------------------------------------------------------------------------------------
# Probability-flow ODE solvers
# --------------------------------------------------------------------------------------------
def sample_euler(denoiser, x, sigmas, *, callback=None, progress=False):
    """Euler's method on the PF-ODE dx/dsigma = (x - D) / sigma.

    With DDPM's sigmas this is exactly DDIM with eta = 0 (Karras et al. 2022, Sec. 3; Song et al.
    2021, DDIM eq. 14 in sigma form).
    """
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        x = x + (s[i + 1] - s[i]) * d
    return x


def sample_heun(denoiser, x, sigmas, *, callback=None, progress=False):
    """Heun's 2nd-order method (EDM Algorithm 1); the last step, to sigma = 0, is plain Euler."""
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        d_cur = to_d(x, s[i], denoised)  # Alg. 1 line 4: evaluate dx/dt at t_i
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        x_next = x + (s[i + 1] - s[i]) * d_cur  # line 5: Euler step
        if s[i + 1] != 0:  # line 6: apply the 2nd-order correction unless sigma_{i+1} = 0
            d_prime = to_d(x_next, s[i + 1], _call(denoiser, x_next, s[i + 1]))  # line 7
            x_next = x + (s[i + 1] - s[i]) * (0.5 * d_cur + 0.5 * d_prime)  # line 8: trapezoidal rule
        x = x_next
    return x


def sample_edm_stochastic(denoiser, x, sigmas, *, S_churn: float = 0.0, S_min: float = 0.0,
                          S_max: float = float("inf"), S_noise: float = 1.0, generator=None,
                          callback=None, progress=False):
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) in s = 1 coordinates.

    Each step first adds noise to raise sigma_i to sigma_hat = (1 + gamma_i) sigma_i, then takes a
    Heun step from sigma_hat to sigma_{i+1}. S_churn = 0 recovers Algorithm 1.
    """
    s = _check(x, sigmas)
    n = len(s) - 1
    for i in _steps(n, progress):
        # Alg. 2 line 4: gamma_i = min(S_churn / N, sqrt(2) - 1) if t_i in [S_tmin, S_tmax], else 0.
        gamma = min(S_churn / n, math.sqrt(2) - 1) if S_min <= s[i] <= S_max else 0.0
        sigma_hat = s[i] * (1 + gamma)  # line 6: increase noise temporarily
        if gamma > 0:  # lines 5, 7: eps ~ N(0, S_noise^2 I), x_hat = x + sqrt(t_hat^2 - t_i^2) eps
            x = x + math.sqrt(sigma_hat**2 - s[i] ** 2) * S_noise * _randn(x, generator)
        denoised = _call(denoiser, x, sigma_hat)
        d_cur = to_d(x, sigma_hat, denoised)  # line 8
        _report(callback, x=x, i=i, sigma=s[i], sigma_hat=sigma_hat, sigma_next=s[i + 1], denoised=denoised)
        x_next = x + (s[i + 1] - sigma_hat) * d_cur  # line 9
        if s[i + 1] != 0:  # lines 10-12: 2nd-order correction
            d_prime = to_d(x_next, s[i + 1], _call(denoiser, x_next, s[i + 1]))
            x_next = x + (s[i + 1] - sigma_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x


def sample_dpmpp_2m(denoiser, x, sigmas, *, callback=None, progress=False):
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2) in data-prediction form, lambda = -log sigma.

    With alpha = 1 the exact solution of the PF-ODE from sigma_i to sigma_{i+1} is
    x_{i+1} = (sigma_{i+1}/sigma_i) x_i + sigma_{i+1} int_{lambda_i}^{lambda_{i+1}} e^lambda D dlambda;
    2M replaces D by D_i + (D_i - D_{i-1}) / (2 r_i) with r_i = h_{i-1} / h_i. The first step, and
    the last one into sigma = 0 (where h = inf), are first order (DPM-Solver++(1) = DDIM).
    """
    s = _check(x, sigmas)
    denoised_prev, h_prev = None, None
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:  # the exact first-order step into sigma = 0 returns D
            x = denoised
            break
        h = math.log(s[i]) - math.log(s[i + 1])  # h_i = lambda_{i+1} - lambda_i
        if denoised_prev is None:
            D = denoised  # Alg. 2 line 3: first step is first order
        else:
            r = h_prev / h  # line 6
            D = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * denoised_prev  # line 7
        # lines 4 / 8: x_{i+1} = (sigma_{i+1}/sigma_i) x_i - alpha (e^{-h} - 1) D with alpha = 1
        x = (s[i + 1] / s[i]) * x - math.expm1(-h) * D
        denoised_prev, h_prev = denoised, h
    return x


def sample_dpmpp_3m(denoiser, x, sigmas, *, callback=None, progress=False):
    """A third-order multistep DPM-Solver++ ("3M") in data-prediction form.

    With tau = lambda - lambda_i and h = lambda_{i+1} - lambda_i, the exact solution is
    x_{i+1} = e^{-h} x_i + e^{-h} int_0^h e^tau D(lambda_i + tau) dtau. We replace D by the
    polynomial through the last three denoiser outputs (Newton form),
    D(tau) ~ D_i + a tau + b tau^2, and integrate it exactly:
        e^{-h} int_0^h e^tau dtau      = 1 - e^{-h}            = phi_0
        e^{-h} int_0^h tau e^tau dtau  = h - 1 + e^{-h}        = phi_1
        e^{-h} int_0^h tau^2 e^tau dtau = h^2 - 2 phi_1        = phi_2.
    The first step is first order, the second uses the linear polynomial, the step into
    sigma = 0 returns D (as in 2M). ``tests/test_sampling.py`` measures order 3.

    diffusers' (0.42) third-order DPM-Solver++ update gives the curvature term half this weight
    (its D2 = (D1_0 - D1_1) / (r0 + r1) is h^2 b, multiplied by phi_2 / (2 h^2)); on the GMM that
    variant measured order ~2.4 between 16 and 64 steps but a smaller error at 16 steps. The
    sampler benchmark (``benchmarks/results_samplers.md``) shows both on the same sigmas.
    """
    s = _check(x, sigmas)
    history: list[tuple[float, torch.Tensor]] = []  # (lambda_j, D_j), newest last, at most 2 kept
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:
            x = denoised
            break
        lam, lam_next = -math.log(s[i]), -math.log(s[i + 1])
        h = lam_next - lam
        phi_0 = -math.expm1(-h)
        phi_1 = h + math.expm1(-h)
        phi_2 = h * h - 2 * phi_1
        x = math.exp(-h) * x + phi_0 * denoised
        if history:
            lam_1, D_1 = history[-1]
            h_1 = lam - lam_1
            f_01 = (denoised - D_1) / h_1  # first divided difference
            if len(history) == 2:
                lam_2, D_2 = history[-2]
                h_2 = lam_1 - lam_2
                b = (f_01 - (D_1 - D_2) / h_2) / (h_1 + h_2)  # second divided difference
                a = f_01 + b * h_1  # slope at tau = 0 of the quadratic through the 3 points
                x = x + phi_1 * a + phi_2 * b
            else:
                x = x + phi_1 * f_01
        history = (history + [(lam, denoised)])[-2:]
    return x


def sample_ddim(denoiser, x, sigmas, *, eta: float = 0.0, generator=None, callback=None, progress=False):
    """DDIM (Song et al. 2021, eq. 12) written in sigma: x' = D + sqrt(s'^2 - c^2) eps_hat + c z.

    With x_VE = x_VP / sqrt(alpha_bar) and sigma^2 = (1 - alpha_bar) / alpha_bar, DDIM's
    sigma_t(eta)^2 / alpha_bar_{t-1} becomes c^2 = eta^2 s'^2 (s^2 - s'^2) / s^2 (s = sigma_i,
    s' = sigma_{i+1}), and eps_hat = (x - D) / s. eta = 0 is deterministic and equals Euler;
    eta = 1 is the ancestral posterior step.
    """
    s = _check(x, sigmas)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        eps_hat = denoiser_to_eps(denoised, x, sigma)
        c = eta * math.sqrt(max(posterior_variance(sigma, sigma_next), 0.0))
        if c > sigma_next:  # eta > 1 can ask for more noise than the target level holds
            raise ValueError(f"eta={eta} gives a noise scale {c:.4g} above sigma_next={sigma_next:.4g}; use eta <= 1")
        x = denoised + math.sqrt(sigma_next**2 - c**2) * eps_hat
        if c > 0:
            x = x + c * _randn(x, generator)
    return x


# --------------------------------------------------------------------------------------------
# Stochastic samplers
# --------------------------------------------------------------------------------------------
def _em_step(x, score, sigma, sigma_next, generator):
    """One Euler-Maruyama step of the reverse VE SDE in sigma-time, sigma -> sigma_next
    (see :func:`sample_euler_maruyama`)."""
    delta = sigma - sigma_next
    return x + 2 * sigma * delta * score + math.sqrt(2 * sigma * delta) * _randn(x, generator)


def posterior_variance(sigma: float, sigma_next: float) -> float:
    """Variance (VE units) of q(x_next | x, x0) for the chain x_next -> x that adds noise
    sqrt(sigma^2 - sigma_next^2): DDPM's beta_tilde step and DDIM's eta = 1 noise."""
    return sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2


def sample_euler_maruyama(denoiser, x, sigmas, *, generator=None, callback=None, progress=False):
    """Euler-Maruyama on the reverse SDE of the VE form in sigma-time (Song et al. 2021, eq. 6).

    The forward SDE dx = sqrt(2 sigma_dot sigma) dW reverses to
    dx = -2 sigma_dot sigma grad log p dt + sqrt(2 sigma_dot sigma) dW_bar; with t = sigma
    (sigma_dot = 1) one step from sigma_i down to sigma_{i+1} (Delta = sigma_i - sigma_{i+1} > 0) is
    x <- x + 2 sigma_i Delta score + sqrt(2 sigma_i Delta) z, score = (D - x) / sigma_i^2.
    The final step into sigma = 0 is the PF-ODE Euler step, which returns D(x; sigma_{N-1})
    (Score SDE's "denoise at the end"; an EM step there would add noise of scale sqrt(2) sigma).
    """
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        if sigma_next == 0:
            x = denoised
            break
        score = denoiser_to_score(denoised, x, sigma)
        x = _em_step(x, score, sigma, sigma_next, generator)
    return x


def sample_predictor_corrector(denoiser, x, sigmas, *, predictor: str = "reverse_diffusion",
                               corrector: str = "langevin", snr: float = 0.16, n_corrector: int = 1,
                               generator=None, callback=None, progress=False):
    """Predictor-corrector sampling (Song et al. 2021, Algorithm 2 for the VE SDE, Algorithm 4 corrector).

    Predictor from sigma_i to sigma_{i+1} (> 0):
      * ``"reverse_diffusion"``: x <- x + (sigma_i^2 - sigma_{i+1}^2) score + sqrt(sigma_i^2 - sigma_{i+1}^2) z,
      * ``"euler_maruyama"``: the sigma-time EM step of :func:`sample_euler_maruyama`;
    then ``n_corrector`` Langevin steps at sigma_{i+1} with step size eps = 2 (snr ||z|| / ||g||)^2
    (Algorithm 4 with alpha_i = 1 for VE; the norms are batch means of per-sample norms, as in the
    Score SDE code) and ``corrector="none"`` to skip. The last step into sigma = 0 returns D(x; sigma_{N-1}).
    """
    predictors, correctors = ("reverse_diffusion", "euler_maruyama"), ("langevin", "none")
    if predictor not in predictors:
        raise ValueError(f"unknown predictor {predictor!r}; valid predictors: {', '.join(predictors)}")
    if corrector not in correctors:
        raise ValueError(f"unknown corrector {corrector!r}; valid correctors: {', '.join(correctors)}")
    if not isinstance(n_corrector, int) or n_corrector < 0 or not snr > 0:
        raise ValueError(f"need an integer n_corrector >= 0 and snr > 0, got {n_corrector!r}, {snr!r}")
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        if sigma_next == 0:
            x = denoised
            break
        score = denoiser_to_score(denoised, x, sigma)
        if predictor == "reverse_diffusion":  # Alg. 2 lines 3-5
            var = sigma**2 - sigma_next**2
            x = x + var * score + math.sqrt(var) * _randn(x, generator)
        else:
            x = _em_step(x, score, sigma, sigma_next, generator)
        if corrector == "langevin":
            for _ in range(n_corrector):  # Alg. 2 lines 6-8, step size from Alg. 4
                z = _randn(x, generator)
                g = (_call(denoiser, x, sigma_next) - x) / sigma_next**2
                g_norm = g.flatten(1).norm(dim=1).mean()
                z_norm = z.flatten(1).norm(dim=1).mean()
                eps = 2 * (snr * z_norm / g_norm) ** 2
                x = x + eps * g + torch.sqrt(2 * eps) * z
    return x


def sample_ancestral(denoiser, x, sigmas, *, variance: str = "posterior", refine=None, generator=None,
                     callback=None, progress=False):
    """DDPM's ancestral step (Ho et al. 2020, Algorithm 2) written in sigma.

    DDPM's forward chain x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z becomes, in x_VE = x_VP /
    sqrt(alpha_bar), x_t = x_{t-1} + sqrt(sigma_t^2 - sigma_{t-1}^2) z. Its posterior given x0 = D
    has mean D + (s'^2/s^2)(x - D) (= DDPM's 1/sqrt(alpha_t)(x_t - beta_t/sqrt(1-alpha_bar_t) eps)
    / sqrt(alpha_bar_{t-1})) and, in VE units, variance
      * ``"posterior"``: s'^2 (s^2 - s'^2) / s^2 (DDPM's beta_tilde choice), or
      * ``"beta"``: (1 + s'^2)(s^2 - s'^2) / (1 + s^2) (DDPM's sigma_t^2 = beta_t choice; this one
        depends on the VP scaling, so it is only meaningful for DDPM's VP chain),
    with s = sigma_i, s' = sigma_{i+1}. No noise is added on the step into sigma = 0 (Alg. 2: z = 0
    for t = 1). Strided sigmas give the same step over several DDPM timesteps.
    ``refine(x, sigma_next) -> x``, when given, is applied after every step (ILVR's low-frequency
    replacement and CCDF's data consistency; ``diffnotes.methods.ilvr``).
    """
    variances = ("posterior", "beta")
    if variance not in variances:
        raise ValueError(f"unknown variance {variance!r}; valid variances: {', '.join(variances)}")
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        ratio = sigma_next**2 / sigma**2
        x = denoised + ratio * (x - denoised)  # posterior mean
        if sigma_next > 0:
            if variance == "posterior":
                var = posterior_variance(sigma, sigma_next)
            else:
                var = (1 + sigma_next**2) * (sigma**2 - sigma_next**2) / (1 + sigma**2)
            x = x + math.sqrt(var) * _randn(x, generator)
        if refine is not None:
            x = refine(x, sigma_next)
    return x


def sample_annealed_langevin(denoiser, x, sigmas, *, epsilon: float = NCSN_EPSILON, n_steps_each: int = NCSN_T,
                             final_denoise: bool = False, generator=None, callback=None, progress=False):
    """Annealed Langevin dynamics (Song & Ermon 2019, NCSN Algorithm 1).

    The noise levels are ``sigmas[:-1]`` (the trailing 0 only marks the end); at level sigma_i,
    alpha_i = epsilon sigma_i^2 / sigma_L^2 with sigma_L the smallest level, and T =
    ``n_steps_each`` steps x <- x + (alpha_i / 2) score(x; sigma_i) + sqrt(alpha_i) z.
    Algorithm 1 returns the last Langevin iterate (``final_denoise=False``); ``final_denoise=True``
    additionally returns D(x; sigma_L), the denoising step later work added.
    """
    if not epsilon > 0 or not isinstance(n_steps_each, int) or n_steps_each < 1:
        raise ValueError(f"need epsilon > 0 and an integer n_steps_each >= 1, got {epsilon!r}, {n_steps_each!r}")
    s = _check(x, sigmas)
    levels = s[:-1]
    sigma_L = levels[-1]
    for i in _steps(len(levels), progress):
        sigma = levels[i]
        alpha = epsilon * sigma**2 / sigma_L**2  # Alg. 1 line 3
        for _ in range(n_steps_each):  # lines 4-7
            denoised = _call(denoiser, x, sigma)
            score = denoiser_to_score(denoised, x, sigma)
            x = x + 0.5 * alpha * score + math.sqrt(alpha) * _randn(x, generator)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=s[i + 1], denoised=denoised)
    if final_denoise:
        x = _call(denoiser, x, sigma_L)
    return x


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
# The registry of solvers by name is at the end of this module, after the last solver.


def sample(denoiser, x, sigmas, solver: str = "heun", *, generator=None, callback=None,
           progress: bool = False, **options):
    """Run ``solver`` from ``x`` at ``sigmas[0]`` down to sigma = 0 and return the final sample.

    ``denoiser(x, sigma) -> x0_hat`` (sigma is passed per sample, shape (N,)); ``sigmas`` is
    decreasing and ends at 0 (see :func:`sigma_schedule`, :func:`ddpm_sigmas`); ``generator``
    drives the noise of the stochastic solvers (deterministic solvers draw none); ``options`` go
    to the solver (e.g. ``S_churn`` for ``"edm_stochastic"``, ``eta`` for ``"ddim"``).
    """
    if solver not in _SOLVER_FUNCTIONS:
        raise ValueError(f"unknown solver {solver!r}; valid solvers: {', '.join(SOLVERS)}")
    fn = _SOLVER_FUNCTIONS[solver]
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if params[p].kind == inspect.Parameter.KEYWORD_ONLY
               and p not in ("generator", "callback", "progress")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"solver {solver!r} got unknown options {unknown}; valid options: "
                         f"{', '.join(allowed) if allowed else 'none'}")
    if "generator" in params:
        options["generator"] = generator
    return fn(denoiser, x, sigmas, callback=callback, progress=progress, **options)


# --------------------------------------------------------------------------------------------
# Step schedules fitted to a model
# --------------------------------------------------------------------------------------------
def warped_sigmas(n: int, sigma_end: float, sigma_max: float, warp: float) -> torch.Tensor:
    """``n`` levels from ``sigma_max`` down to ``sigma_end``, then 0, warped in lambda = -log sigma.

    lambda_i = lambda_max + (lambda_end - lambda_max) g(i / (n - 1)) with g(u) = (e^(warp u) - 1) /
    (e^warp - 1): ``warp`` = 0 is log-linear (uniform in lambda, DPM-Solver's choice); a negative
    warp takes long steps at high noise and short ones near the data (like Karras' rho, whose
    rho = 7 over [0.002, 80] is close to warp = -2.4); a positive warp does the opposite.
    The family of :func:`optimize_sigmas`.
    """
    if n == 1 or abs(warp) < 1e-9:
        return sigma_schedule("loglinear", n, sigma_end, sigma_max)
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    g = torch.expm1(warp * u) / math.expm1(warp)
    log_sigmas = math.log(sigma_max) + (math.log(sigma_end) - math.log(sigma_max)) * g
    return _append_zero(torch.exp(log_sigmas))


def optimize_sigmas(denoiser, x_pilot: torch.Tensor, n: int, solver: str = "dpmpp_3m", *,
                    sigma_min: float, sigma_max: float, reference: torch.Tensor | None = None,
                    reference_steps: int = 500, max_evals: int = 40, refine_evals: int = 0,
                    starts=(), solver_options: dict | None = None):
    """Fit ``n`` noise levels for ``solver`` to one model, from the model alone.

    The rule (in the spirit of "Align Your Steps", Sabour et al. 2024, with the sampling error
    itself as the objective): draw pilot noise ``x_pilot = sigma_max z`` (the caller's seed, never
    the noise the schedule is later judged on), solve the model's PF-ODE from it finely
    (``reference_steps`` log-linear steps of ``"dpmpp_3m"`` over [sigma_min, sigma_max], unless a
    ``reference`` is given), and pick the schedule of :func:`warped_sigmas` - two numbers: the
    last nonzero level sigma_end in [sigma_min, sigma_max / e] and the warp in [-6, 6] - whose
    ``solver`` samples (with ``solver_options``) from ``x_pilot`` have the smallest RMSE to that
    solution. A 4 x 3 grid seeds a Nelder-Mead search in (log sigma_end, warp); at most
    ``max_evals`` solves in all.

    The step into sigma = 0 stays a single step, so a larger sigma_end trades the last, cheap
    steps near the data for smaller steps higher up (the effect of diffusers' "trailing" spacing,
    here chosen for the model instead of fixed). With ``refine_evals`` > 0 a second stage,
    :func:`refine_sigmas`, frees the step sizes themselves (up to 8 knots) and moves them within
    that many more solves, starting from the warped fit or from any of the schedules in
    ``starts`` (n levels then 0, e.g. the general-purpose ones) that does better on the pilot
    (``info["start"] == "given"``). Returns ``(sigmas, info)`` with info the chosen ``sigma_end``,
    ``warp``, the pilot RMSE and the number of solves (and the refined RMSE and its solves).
    """
    from scipy.optimize import minimize

    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer number of levels >= 2, got {n!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if reference is None:
        fine = sigma_schedule("loglinear", reference_steps, sigma_min, sigma_max)
        reference = sample(denoiser, x_pilot, fine, "dpmpp_3m")
    log_lo, log_hi = math.log(sigma_min), math.log(sigma_max) - 1.0
    seen: dict[tuple[float, float], float] = {}

    def levels(p) -> torch.Tensor:
        log_end = min(max(p[0], log_lo), log_hi)
        return warped_sigmas(n, math.exp(log_end), sigma_max, min(max(p[1], -6.0), 6.0))

    def loss(p) -> float:
        key = (round(min(max(p[0], log_lo), log_hi), 6), round(min(max(p[1], -6.0), 6.0), 6))
        if key not in seen:
            out = sample(denoiser, x_pilot, levels(p), solver, **(solver_options or {}))
            err = (out - reference).flatten(1).pow(2).sum(1).mean().sqrt()
            seen[key] = float(err) if bool(torch.isfinite(err)) else float("inf")
        return seen[key]

    grid = [(log_lo + k * 1.2, w) for k in range(4) for w in (-2.0, 0.0, 2.0)]
    start = min(grid, key=loss)
    simplex = [start, (start[0] + 0.6, start[1]), (start[0], start[1] + 1.0)]
    minimize(lambda p: loss(p), start, method="Nelder-Mead",
             options=dict(initial_simplex=simplex, maxfev=max(1, max_evals - len(grid)), xatol=1e-3, fatol=0))
    (log_end, warp), err = min(seen.items(), key=lambda kv: kv[1])
    info = dict(sigma_end=math.exp(log_end), warp=warp, pilot_rmse=err, solves=len(seen))
    sigmas = levels((log_end, warp))
    for other in starts:  # other schedules of n levels: keep whichever does best on the pilot
        other = torch.as_tensor(other, dtype=torch.float64)
        out = sample(denoiser, x_pilot, other, solver, **(solver_options or {}))
        other_err = float((out - reference).flatten(1).pow(2).sum(1).mean().sqrt())
        if len(other) == n + 1 and other_err < info["pilot_rmse"]:
            sigmas, info["pilot_rmse"], info["start"] = other, other_err, "given"
    if refine_evals > 0:
        sigmas, refined = refine_sigmas(denoiser, x_pilot, sigmas, solver, reference=reference,
                                        sigma_min=sigma_min, max_evals=refine_evals,
                                        solver_options=solver_options)
        info.update(refined)
    return sigmas, info


def knot_sigmas(knots, n: int, sigma_max: float, sigma_min: float) -> torch.Tensor:
    """``n`` levels from ``sigma_max`` with free step sizes, then 0: the family of :func:`refine_sigmas`.

    The step i -> i+1 shrinks log sigma by softplus(k(i)), where k interpolates the ``knots``
    linearly over the n - 1 steps (as many knots as steps makes every step free; fewer keep the
    search small for long schedules). Levels never go below ``sigma_min``: a step that would is
    clamped there, which leaves two equal levels - not a schedule, and :func:`refine_sigmas`
    scores it as infinitely bad.
    """
    knots = torch.as_tensor(knots, dtype=torch.float64)
    pos = torch.linspace(0, knots.numel() - 1, n - 1, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=knots.numel() - 1)
    hi = (lo + 1).clamp(max=knots.numel() - 1)
    k = knots[lo] + (pos - lo) * (knots[hi] - knots[lo])
    logs = math.log(sigma_max) - torch.cumsum(torch.nn.functional.softplus(k), 0)
    top = torch.tensor([sigma_max], dtype=torch.float64)
    return torch.cat([top, logs.exp().clamp(min=sigma_min), torch.zeros(1, dtype=torch.float64)])


def refine_sigmas(denoiser, x_pilot: torch.Tensor, sigmas: torch.Tensor, solver: str, *,
                  reference: torch.Tensor, sigma_min: float, max_evals: int = 200,
                  max_knots: int = 8, solver_options: dict | None = None):
    """Refine a schedule's step sizes one by one against a fine solution of the same pilot noise.

    The second stage of :func:`optimize_sigmas`: the schedule ``sigmas`` (n levels, then 0) is
    written as :func:`knot_sigmas` with min(n - 1, ``max_knots``) knots fitted to it, and Powell's
    method moves the knots to lower the pilot RMSE to ``reference``, within ``max_evals``
    solves. Only the pilot noise and the model are used. Returns ``(sigmas, info)``; info holds
    the refined pilot RMSE and the solves spent. The result is never worse on the pilot than
    the starting schedule (which is kept if nothing better is found).
    """
    from scipy.optimize import minimize

    s = torch.as_tensor(sigmas, dtype=torch.float64)
    n = len(s) - 1
    if n < 2 or float(s[-1]) != 0.0:
        raise ValueError(f"sigmas must hold at least 2 levels and end at 0, got {s.tolist()}")
    gaps = (s[:-2].log() - s[1:-1].log()).clamp(min=1e-6)
    n_knots = min(n - 1, max_knots)
    at = torch.linspace(0, n - 2, n_knots).round().long()
    knots0 = torch.log(torch.expm1(gaps[at])).tolist()
    seen: dict[tuple, float] = {}

    def loss(p) -> float:
        key = tuple(round(v, 6) for v in p)
        if key not in seen:
            levels = knot_sigmas(p, n, float(s[0]), sigma_min)
            if not bool((levels[1:] < levels[:-1]).all()):  # ran into sigma_min: not a schedule
                seen[key] = float("inf")
                return seen[key]
            out = sample(denoiser, x_pilot, levels, solver, **(solver_options or {}))
            err = (out - reference).flatten(1).pow(2).sum(1).mean().sqrt()
            seen[key] = float(err) if bool(torch.isfinite(err)) else float("inf")
        return seen[key]

    start = sample(denoiser, x_pilot, s, solver, **(solver_options or {}))
    start_err = float((start - reference).flatten(1).pow(2).sum(1).mean().sqrt())
    with warnings.catch_warnings():  # Powell's line search meets the infinite scores of non-schedules
        warnings.simplefilter("ignore", RuntimeWarning)
        minimize(loss, knots0, method="Powell", options=dict(maxfev=max_evals, xtol=1e-2))
    best, err = min(seen.items(), key=lambda kv: kv[1])
    if err >= start_err:
        return s, dict(refined_rmse=start_err, refine_solves=len(seen) + 1)
    return knot_sigmas(best, n, float(s[0]), sigma_min), dict(refined_rmse=err, refine_solves=len(seen) + 1)


# --------------------------------------------------------------------------------------------
# A fitting rule, fixed in advance, and its cost
# --------------------------------------------------------------------------------------------
FIT_SOLVERS = {  # the solvers a rule may fit a schedule for: name -> (solver, options)
    "dpmpp_3m": ("dpmpp_3m", {}),
    "unipc_2": ("unipc", {"order": 2}),
    "unipc_3": ("unipc", {"order": 3}),
}


@dataclass(frozen=True)
class FitRule:
    """Everything :func:`fit_schedule` does, fixed before it meets a model.

    ``solvers``: the solvers a schedule is fitted for (the rule keeps the one with the smallest
    pilot error); ``pilot_closed_form`` / ``pilot_network``: pilot samples for a cheap
    closed-form denoiser / a network; ``reference_steps``: log-linear 3M steps of the pilot's
    fine solution; ``shape_evals``, ``refine_evals``, ``max_knots``: the budgets of the two
    stages of :func:`optimize_sigmas`; ``use_starts``: whether general schedules handed in may
    replace the warped fit as the refinement's start. :meth:`digest` hashes these settings
    together with the source of every function the rule runs, so a changed rule gets a new
    hash.
    """

    name: str
    solvers: tuple = ("unipc_3",)
    pilot_closed_form: int = 512
    pilot_network: int = 32
    reference_steps: int = 100
    shape_evals: int = 16
    refine_evals: int = 16
    max_knots: int = 8
    use_starts: bool = True

    def pilot(self, closed_form: bool) -> int:
        return self.pilot_closed_form if closed_form else self.pilot_network

    def digest(self) -> str:
        import dataclasses
        import hashlib

        h = hashlib.sha256(repr(sorted(dataclasses.asdict(self).items())).encode())
        for fn in (warped_sigmas, optimize_sigmas, knot_sigmas, refine_sigmas, fit_schedule):
            h.update(inspect.getsource(fn).encode())
        h.update(repr(sorted(FIT_SOLVERS.items())).encode())
        return h.hexdigest()[:16]


# The rule of the first two benchmark rounds: three solvers, large pilots, 40 + 200 solves each.
RULE_FULL = FitRule("full", solvers=("dpmpp_3m", "unipc_2", "unipc_3"), pilot_closed_form=4096,
                    pilot_network=32, reference_steps=500, shape_evals=40, refine_evals=200)


class CountingDenoiser:
    """Wraps a denoiser and counts its work in sample-evaluations (one call on a batch of n
    samples counts n), the unit in which a fit's cost is compared with sampling."""

    def __init__(self, denoiser):
        self.denoiser, self.evaluations, self.calls = denoiser, 0, 0

    def __call__(self, x, sigma, *args, **kwargs):
        self.evaluations += int(x.shape[0])
        self.calls += 1
        return self.denoiser(x, sigma, *args, **kwargs)


def fit_schedule(denoiser, shape: tuple, n: int, rule: FitRule, *, sigma_min: float, sigma_max: float,
                 seed: int, closed_form: bool, starts=()) -> dict:
    """Fit ``n`` noise levels to a model by ``rule``, from the model alone, and count the cost.

    Draws ``rule.pilot(closed_form)`` pilot samples ``sigma_max z`` with ``seed`` (never the
    noise the schedule is judged on), solves them finely (``rule.reference_steps``), runs
    :func:`optimize_sigmas` for each of ``rule.solvers`` and keeps the solver and schedule with
    the smallest pilot RMSE. Returns a dict: ``solver`` (a key of :data:`FIT_SOLVERS`),
    ``sigmas`` (n levels, then 0), ``pilot_rmse``, the cost of the whole fit - ``evaluations``
    (model sample-evaluations, reference included), ``calls`` (batched model calls) and
    ``cpu_seconds`` (process CPU time) - and ``rule``, ``rule_hash``, ``seed``, ``n_pilot``.
    """
    import time

    t0 = time.process_time()
    counted = CountingDenoiser(denoiser)
    n_pilot = rule.pilot(closed_form)
    g = torch.Generator().manual_seed(seed)
    x_pilot = sigma_max * torch.randn((n_pilot, *shape), dtype=torch.float64, generator=g)
    fine = sigma_schedule("loglinear", rule.reference_steps, sigma_min, sigma_max)
    reference = sample(counted, x_pilot, fine, "dpmpp_3m")
    best = None
    for name in rule.solvers:
        solver, options = FIT_SOLVERS[name]
        sigmas, info = optimize_sigmas(counted, x_pilot, n, solver, sigma_min=sigma_min, sigma_max=sigma_max,
                                       reference=reference, max_evals=rule.shape_evals,
                                       refine_evals=rule.refine_evals, solver_options=options,
                                       starts=starts if rule.use_starts else ())
        err = info.get("refined_rmse", info["pilot_rmse"])
        if best is None or err < best["pilot_rmse"]:
            best = dict(solver=name, sigmas=[float(s) for s in sigmas], pilot_rmse=float(err),
                        start=info.get("start", "warped fit"), sigma_end=float(info["sigma_end"]),
                        warp=float(info["warp"]))
    best.update(evaluations=counted.evaluations, calls=counted.calls, cpu_seconds=time.process_time() - t0,
                rule=rule.name, rule_hash=rule.digest(), seed=seed, n_pilot=n_pilot)
    return best


# --------------------------------------------------------------------------------------------
# UniPC (Zhao et al. 2023): a multistep predictor with a free corrector
# --------------------------------------------------------------------------------------------
def _unipc_weights(h: float, rks: list[float], order: int, variant: str):
    """h phi_1(-h), B(h) and the order-``order`` system R rho = b of UniPC (Zhao et al. 2023, Alg. 2-3).

    With hh = -h (data prediction), phi_k as in DPM-Solver: b_k = hh phi_{k+1}(hh) k! / B(h) and
    R_{kj} = r_j^(k-1). B(h) = hh ("bh1") or e^hh - 1 ("bh2").
    """
    hh = -h
    h_phi_1 = math.expm1(hh)  # hh phi_1(hh) = e^hh - 1
    h_phi_k = h_phi_1 / hh - 1  # phi_2(hh) hh... built up by the recursion phi_{k+1} = (phi_k - 1/k!) / hh
    B_h = hh if variant == "bh1" else math.expm1(hh)
    R, b, factorial = [], [], 1
    for k in range(1, order + 1):
        R.append([rk ** (k - 1) for rk in rks])
        b.append(h_phi_k * factorial / B_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return h_phi_1, B_h, torch.tensor(R, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)


def _unipc_differences(history, lam0: float, h: float, D0: torch.Tensor, order: int):
    """r_k = (lambda_{-k} - lambda_0) / h and (D_{-k} - D_0) / r_k for the order - 1 older outputs."""
    rks, diffs = [], []
    for k in range(1, order):
        lam_k, D_k = history[-(k + 1)]
        rk = (lam_k - lam0) / h
        rks.append(rk)
        diffs.append((D_k - D0) / rk)
    return rks, diffs


def sample_unipc(denoiser, x, sigmas, *, order: int = 3, variant: str = "bh2", corrector: bool = True,
                 callback=None, progress=False):
    """UniPC (Zhao et al. 2023) in data-prediction form, lambda = -log sigma, s = 1 coordinates.

    Each step is a UniP-``order`` predictor (Alg. 2: x_{i+1} = (sigma_{i+1}/sigma_i) x_i +
    (1 - e^{-h}) D_i - B(h) sum_k rho_k (D_{i-k} - D_i) / r_k), and once D has been evaluated at
    the predicted point, a UniC corrector (Alg. 3) re-solves the same step with that new value
    included, which raises the order by one at no extra evaluation. The corrected point keeps the
    output D evaluated at the predicted one (the model is not called twice). As in diffusers'
    ``UniPCMultistepScheduler`` (``lower_order_final=True``, ``final_sigmas_type="zero"``): the
    order warms up over the first steps, the last steps drop to the remaining count, and the
    step into sigma = 0 returns D. ``order=2`` uses rho = 1/2 for the predictor, as diffusers does.
    """
    if order not in (1, 2, 3) or variant not in ("bh1", "bh2"):
        raise ValueError(f"UniPC needs order in 1, 2, 3 and variant 'bh1' or 'bh2', got {order!r}, {variant!r}")
    s = _check(x, sigmas)
    n = len(s) - 1
    history: list[tuple[float, torch.Tensor]] = []  # (lambda_j, D_j), newest last
    x_last, order_last = None, 0
    for i in _steps(n, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        lam = -math.log(s[i])
        if corrector and x_last is not None:  # UniC: redo the last step with D_i included
            lam0, D0 = history[-1]
            h = lam - lam0
            rks, diffs = _unipc_differences(history, lam0, h, D0, order_last)
            h_phi_1, B_h, R, b = _unipc_weights(h, rks + [1.0], order_last, variant)
            rhos = [0.5] if order_last == 1 else torch.linalg.solve(R, b).tolist()
            x = (s[i] / s[i - 1]) * x_last - h_phi_1 * D0
            x = x - B_h * (sum(r * d for r, d in zip(rhos[:-1], diffs)) + rhos[-1] * (denoised - D0))
        history = (history + [(lam, denoised)])[-order:]
        order_now = min(order, n - i, len(history))
        x_last, order_last = x, order_now
        if s[i + 1] == 0:  # the first-order step into sigma = 0 returns D
            x = denoised
            break
        h = math.log(s[i]) - math.log(s[i + 1])
        rks, diffs = _unipc_differences(history, lam, h, denoised, order_now)
        h_phi_1, B_h, R, b = _unipc_weights(h, rks + [1.0], order_now, variant)
        x = (s[i + 1] / s[i]) * x - h_phi_1 * denoised
        if diffs:  # UniP: rho solves the leading (order - 1) x (order - 1) block
            rhos = [0.5] if order_now == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
            x = x - B_h * sum(r * d for r, d in zip(rhos, diffs))
    return x




# --------------------------------------------------------------------------------------------
# DEIS (Zhang & Chen 2023): the multistep exponential integrator "tAB" in eps and sigma
# --------------------------------------------------------------------------------------------
def _deis_weights(h: float, nodes: list[float]) -> list[float]:
    """w_j = int_0^{-h} l_j(v) e^v dv for the Lagrange basis l_j through the ``nodes`` v_j.

    v = log(rho / sigma_i) measures the noise level rho from the current one, so the step to
    sigma_{i+1} = sigma_i e^{-h} runs from v = 0 to v = -h and the nodes are v_0 = 0 (now) and
    the earlier levels (v_j > 0). With P_k(v) = sum_m (-1)^(k-m) k!/m! v^m, an antiderivative of
    v^k e^v is e^v P_k(v), so int_0^{-h} v^k e^v dv = e^{-h} P_k(-h) - (-1)^k k!.
    """
    def moment(k: int) -> float:
        if k == 0:
            return math.expm1(-h)
        p = sum((-1) ** (k - m) * math.factorial(k) / math.factorial(m) * (-h) ** m for m in range(k + 1))
        return math.exp(-h) * p - (-1) ** k * math.factorial(k)

    weights = []
    for j, v_j in enumerate(nodes):
        poly = [1.0]  # coefficients of l_j, lowest power first
        for v_m in nodes[:j] + nodes[j + 1:]:
            shifted = [0.0] + poly  # v * poly
            poly = [(a - v_m * b) / (v_j - v_m) for a, b in zip(shifted, poly + [0.0])]
        weights.append(sum(c * moment(k) for k, c in enumerate(poly)))
    return weights


def sample_deis(denoiser, x, sigmas, *, order: int = 3, callback=None, progress=False):
    """DEIS's multistep exponential integrator "tAB" (Zhang & Chen 2023, eq. 15), orders 1-3.

    With s = 1 the PF-ODE is dx/dsigma = eps(x; sigma) = (x - D) / sigma, so the step is
    x_{i+1} = x_i + int_{sigma_i}^{sigma_{i+1}} eps drho exactly. DEIS replaces eps by the
    polynomial in log rho through the last ``order`` outputs (Lagrange form) and integrates it
    exactly: x_{i+1} = x_i + sigma_i sum_j w_j eps_j (see :func:`_deis_weights`). Order 1 is
    Euler (= DDIM). As diffusers' ``DEISMultistepScheduler`` (``algorithm_type="deis"``, its
    default ``lower_order_final=True``): the order warms up over the first steps; with fewer
    than 15 steps the second-to-last step is at most second order and the last one first
    order. The last step, into sigma = 0, is always first order and returns D, as in our other
    multistep solvers; diffusers' DEIS instead stops at sigma_0 of its training table and
    returns the state there (``tests/test_sampling_deis.py`` checks both, step by step).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"DEIS needs order 1, 2 or 3, got {order!r}")
    s = _check(x, sigmas)
    n = len(s) - 1
    history: list[tuple[float, torch.Tensor]] = []  # (log sigma_j, eps_j), newest last
    for i in _steps(n, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:  # the first-order step into sigma = 0 returns D
            x = denoised
            break
        history = (history + [(math.log(s[i]), to_d(x, s[i], denoised))])[-order:]
        order_now = min(order, len(history))  # warm-up
        if n < 15 and i == n - 2:  # diffusers' lower_order_final
            order_now = min(order_now, 2)
        used = history[-order_now:][::-1]  # current first
        h = math.log(s[i]) - math.log(s[i + 1])
        weights = _deis_weights(h, [log_j - used[0][0] for log_j, _ in used])
        x = x + s[i] * sum(w * eps for w, (_, eps) in zip(weights, used))
    return x


# --------------------------------------------------------------------------------------------
# Every solver by name, in one place (`sample` looks solvers up here when it is called).
_SOLVER_FUNCTIONS: dict[str, Callable] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "edm_stochastic": sample_edm_stochastic,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_3m": sample_dpmpp_3m,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "predictor_corrector": sample_predictor_corrector,
    "ancestral": sample_ancestral,
    "annealed_langevin": sample_annealed_langevin,
    "unipc": sample_unipc,
    "deis": sample_deis,
}
SOLVERS = tuple(_SOLVER_FUNCTIONS)
