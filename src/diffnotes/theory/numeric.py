"""The one bridge from the theory's SymPy processes to the engine's PyTorch numbers.

``diffnotes.theory.processes`` writes each formula once, in SymPy; the engine evaluates it
through the functions here, which lambdify an expression once per process and parameter set
(``functools.lru_cache``) and bind the parameters:

* :func:`process` — sigma(t), s(t), sigma^{-1}(sigma), d sigma/dt, ds/dt, f(t), g(t), SNR;
* :func:`table1` — EDM Table 1 as functions: c_skip, c_out, c_in, c_noise, the loss weight
  lambda(sigma) (all of sigma), the sampling noise levels sigma(t_i) (of i and N) and the
  training noise level as a function of one standard draw (of u ~ U(0, 1) or z ~ N(0, 1));
* :func:`sigma_steps` — Table 1's N sampling noise levels as a float64 tensor;
* :func:`chain_schedule` — a discrete chain's per-step schedule at i = 1..N: beta_i (DDPM,
  iDDPM) or sigma_i (SMLD's ladder);
* :func:`iddpm_sigmas` — EDM Table 1's discrete iDDPM levels u_0 > ... > u_M = 0, from the
  theory's recursion (``processes.iddpm_u``, a numpy twin that ``tests/test_numeric.py`` proves
  equal to the iDDPM process's SymPy chain);
* :func:`vp_sigma` / :func:`vp_sigma_inv` — the VP noise level and its inverse;
* :func:`log_uniform_sigma` — the log-uniform training draw of the VE column,
  ln sigma ~ U(ln sigma_min, ln sigma_max), as one PyTorch line of a uniform draw u, which every
  loss with that draw calls (``tests/test_methods_edm.py`` proves it equal to the column's
  ``train_sigma``).

Where the engine keeps a PyTorch twin instead (EDM's four preconditioning lines, the karras
schedule, the EDM loss's draw, :func:`log_uniform_sigma`), ``tests/test_numeric.py``,
``tests/test_precond.py`` and ``tests/test_methods_edm.py`` prove the twin equal to these
functions at random points. SymPy is imported on first use only.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import torch

from .. import constants as K

__all__ = ["process", "table1", "sigma_steps", "chain_schedule", "iddpm_sigmas", "vp_sigma", "vp_sigma_inv",
           "log_uniform_sigma", "TABLE1_COEFFICIENTS"]

TABLE1_COEFFICIENTS = ("c_skip", "c_out", "c_in", "c_noise", "loss_weight")


def _key(params: dict) -> tuple:
    """Hashable parameters: integers stay integers (a step count), other numbers become floats."""
    return tuple(sorted((name, value if isinstance(value, int) else float(value))
                        for name, value in params.items()))


def _get(name: str, parameterization: str | None, key: tuple):
    from .processes import get_process  # SymPy loads only when a formula is first needed

    return get_process(name, parameterization, **dict(key))


@functools.lru_cache(maxsize=None)
def _process(name: str, parameterization: str | None, key: tuple) -> SimpleNamespace:
    return _get(name, parameterization, key).lambdify("torch")


def process(name: str, parameterization: str | None = None, **params) -> SimpleNamespace:
    """The process's PyTorch functions of t (see ``Process.lambdify``), cached.

    ``params`` override the papers' defaults by name, e.g. ``process("vp", beta_min=0.2)``.
    """
    return _process(name, parameterization, _key(params))


@functools.lru_cache(maxsize=None)
def _table1(name: str, parameterization: str | None, key: tuple) -> SimpleNamespace:
    from .processes import SIGMA, I_SAMPLE, N_SAMPLE, TRAIN_DRAWS

    proc = _get(name, parameterization, key)
    if proc.table1 is None:
        raise ValueError(f"process {name!r} ({proc.parameterization}) is not a column of EDM Table 1; "
                         "valid: 'vp', 've' with 'edm', 'iddpm' with 'edm', 'edm'")
    out = {k: proc.lambdify_expr(proc.table1[k], (SIGMA,)) for k in TABLE1_COEFFICIENTS
           if not isinstance(proc.table1[k], str)}  # iDDPM's c_noise is an argmin, not a formula
    out["sigma_steps"] = (None if proc.sigma_steps is None
                          else proc.lambdify_expr(proc.sigma_steps, (I_SAMPLE, N_SAMPLE)))
    out["train_draw"] = proc.train_draw
    out["train_sigma"] = (None if proc.train_sigma is None
                          else proc.lambdify_expr(proc.train_sigma, (TRAIN_DRAWS[proc.train_draw],)))
    return SimpleNamespace(**out)


def table1(name: str, parameterization: str | None = None, **params) -> SimpleNamespace:
    """EDM Table 1's column ``name`` as PyTorch functions (see the module docstring), cached."""
    return _table1(name, parameterization, _key(params))


def sigma_steps(name: str, n: int, parameterization: str | None = None, **params) -> torch.Tensor:
    """Table 1's ``n`` sampling noise levels sigma(t_i), i = 0..n-1, float64, decreasing."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (number of noise levels), got {n!r}")
    column = table1(name, parameterization, **params)
    if column.sigma_steps is None:
        raise ValueError(f"Table 1 gives no closed-form time steps for {name!r}")
    return column.sigma_steps(torch.arange(n, dtype=torch.float64), float(n))


@functools.lru_cache(maxsize=None)
def _chain_schedule(name: str, parameterization: str | None, key: tuple) -> tuple[float, ...]:
    import sympy as sp

    proc = _get(name, parameterization, key)
    chain = proc.chain
    if chain is None or not chain.markovian:
        raise ValueError(f"process {name!r} has no Markovian discrete chain; valid: 'ddpm', 'iddpm', 'smld'")
    schedule_i = sp.lambdify(chain.index, proc.subs(chain.schedule), "numpy")
    steps = np.arange(1, int(proc.subs(chain.n_steps)) + 1, dtype=np.float64)
    return tuple(np.broadcast_to(schedule_i(steps), steps.shape).tolist())


def chain_schedule(name: str, parameterization: str | None = None, **params) -> torch.Tensor:
    """The chain's schedule at i = 1..N as a float64 tensor (increasing in i), cached.

    ``chain_schedule("ddpm", beta_1=..., beta_N=..., N=...)`` is DDPM's linear beta_i,
    ``chain_schedule("iddpm", M=..., C_1=..., C_2=...)`` iDDPM's clipped cosine beta_i and
    ``chain_schedule("smld", sigma_min=..., sigma_max=..., L=...)`` SMLD's geometric sigma_i.
    """
    return torch.tensor(_chain_schedule(name, parameterization, _key(params)), dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _iddpm_sigmas(M: int, C_1: float, C_2: float) -> tuple[float, ...]:
    from .processes import iddpm_u

    return tuple(iddpm_u(M, C_1, C_2).tolist())


def iddpm_sigmas(M: int = K.IDDPM_M, C_1: float = K.IDDPM_C1, C_2: float = K.IDDPM_C2) -> torch.Tensor:
    """iDDPM's discrete noise levels u_0 > u_1 > ... > u_M = 0 (EDM Table 1), float64, cached.

    u_{j-1} = sqrt((u_j^2 + 1) / max(alpha_bar_{j-1} / alpha_bar_j, C_1) - 1): sigma of iDDPM's
    clipped cosine chain (eq. 17, beta <= 1 - C_1) at step M - j, written once in the theory.
    """
    if int(M) != M or M < 1:
        raise ValueError(f"M must be an integer >= 1, got {M!r}")
    return torch.tensor(_iddpm_sigmas(int(M), float(C_1), float(C_2)), dtype=torch.float64)


def _time_tensor(value) -> torch.Tensor:
    """A floating tensor keeps its dtype; numbers, arrays and integer tensors become float64."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value
    return torch.as_tensor(value, dtype=torch.float64)


def vp_sigma(t, *, beta_d: float = K.VP_BETA_D, beta_min: float = K.VP_BETA_MIN) -> torch.Tensor:
    """VP noise level sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) (EDM Table 1).

    In the dtype of a floating tensor ``t``, float64 for Python numbers.
    """
    return process("vp", beta_d=beta_d, beta_min=beta_min).sigma(_time_tensor(t))


def vp_sigma_inv(sigma, *, beta_d: float = K.VP_BETA_D, beta_min: float = K.VP_BETA_MIN) -> torch.Tensor:
    """The VP time t with ``vp_sigma(t) = sigma`` (the theory's closed form)."""
    return process("vp", beta_d=beta_d, beta_min=beta_min).sigma_inv(_time_tensor(sigma))


def log_uniform_sigma(u, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """sigma = sigma_min (sigma_max / sigma_min)^u: ln sigma uniform on [ln sigma_min, ln sigma_max]
    for u ~ U(0, 1) (the VE column's training draw, EDM Table 1), in the dtype of ``u``."""
    return sigma_min * (sigma_max / sigma_min) ** u
