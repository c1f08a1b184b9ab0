"""Noise-level schedules: the decreasing sigmas every solver of :mod:`diffnotes.sampling` walks.

A schedule is a float64 tensor sigma_0 > sigma_1 > ... > sigma_{n-1} > 0 followed by a final 0,
in the EDM coordinates of :mod:`diffnotes.sampling` (x = x0 + sigma n).
:func:`sigma_schedule` gives the general-purpose ones (``SCHEDULES``: Karras et al.'s rho
schedule, log-linear, uniform, EDM's VP discretisation); :func:`ddpm_sigmas` the levels of a
subset of DDPM's discrete timesteps under diffusers' spacing conventions (``DDPM_SPACINGS``).
Schedules fitted to one model live in :mod:`diffnotes.schedule_fitting`.
"""

from __future__ import annotations

import math

import torch

from .chain import DiscreteSchedule, respace_steps
from .constants import DDPM_BETA_1, DDPM_BETA_T, DDPM_T, EDM_RHO, EDM_SIGMA_MAX, EDM_SIGMA_MIN, VP_EPS_S
from .theory.numeric import vp_sigma, vp_sigma_inv

__all__ = ["SCHEDULES", "DDPM_SPACINGS", "sigma_schedule", "ddpm_sigmas"]

SCHEDULES = ("karras", "loglinear", "uniform", "vp")
DDPM_SPACINGS = ("leading", "trailing", "linspace", "ddim")

# EDM's sigma range and VP constants (Karras et al. 2022, Table 1) live in diffnotes.constants;
# vp_sigma / vp_sigma_inv in diffnotes.theory.numeric.


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
