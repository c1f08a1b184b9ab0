"""Score SDE (Song et al. 2021): continuous-time denoising score matching on the VE, VP and sub-VP SDEs.

Every quantity of an SDE comes from ``diffnotes.theory.get_process(name)`` (its marginal scale
s(t), noise level sigma(t), drift f(t) and diffusion g(t), lambdified for PyTorch), so the formulas
of Score SDE eq. 29-31 live in one place. What this module adds:

* :class:`ScoreSDELoss` — the continuous objective (Score SDE eq. 7) with t ~ U(eps, 1) and the
  paper's weighting lambda(t) = E||grad log p_0t(x_t | x_0)||^{-2} ~ std(t)^2. Written with the
  book's denoiser (x = x_t / s(t) = x_0 + sigma(t) n, score = (s D - x_t) / (s sigma)^2) it is

      std^2 || score_theta(x_t, t) - grad log p_0t(x_t | x_0) ||^2 = || D(x; sigma(t)) - x_0 ||^2 / sigma(t)^2,

  so the three SDEs differ only in the distribution of sigma(t) that uniform t induces.
* :func:`time_sigmas` — the noise levels sigma(t_i) at Score SDE's uniform time grid from t = 1
  down to t = eps, then 0, for the engine's samplers (``diffnotes.sampling``), which integrate in
  sigma (EDM's coordinates, where the probability-flow ODE of every SDE is the same ODE).
* :func:`prior_sample` — x(1) from each SDE's prior (VE: N(0, sigma_max^2 I); VP and sub-VP:
  N(0, I) in the process's own coordinates), expressed in EDM coordinates.
* :func:`reverse_drift` — the reverse-time SDE's drift f(t) x - g(t)^2 grad log p_t(x) (Score SDE
  eq. 6), written once for this module's sampler and the adaptive solver of
  :mod:`diffnotes.methods.gotta_go_fast`.
* :func:`reverse_sde_sample` — Euler-Maruyama on the SDE's *own* reverse-time SDE (Score SDE eq. 6,
  dx = [f x - g^2 score] dt + g dw_bar) in the process's own coordinates and time. The engine's
  ``"euler_maruyama"`` solver is the VE form in sigma-time; for VP and sub-VP this function keeps
  their own drift and diffusion, as the paper's "reverse diffusion / Euler-Maruyama" samplers do.

Used by ``book/papers/song2021score.md`` and ``notebooks/song2021score.ipynb``.
"""

from __future__ import annotations

import math

import torch

from diffnotes import constants as K
from diffnotes.parameterization import append_dims, denoiser_to_score
from diffnotes.theory import numeric

__all__ = ["SDES", "get_sde", "ScoreSDELoss", "time_sigmas", "prior_std", "prior_sample", "reverse_drift",
           "reverse_sde_sample"]

SDES = ("ve", "vp", "subvp")
EPS_TRAIN = K.VP_EPS_T  # Score SDE: t ~ U(eps, 1) with eps = 1e-5 in training
EPS_SAMPLE = K.VP_EPS_S  # and the sampling grid ends at eps = 1e-3 (their code)


def _check_sde(sde: str) -> None:
    if sde not in SDES:
        raise ValueError(f"unknown SDE {sde!r}; valid: {', '.join(SDES)}")


def get_sde(sde: str, **params):
    """The lambdified process (``sigma``, ``scale``, ``f``, ``g`` of t) with the paper's defaults.

    ``params`` override the theory's defaults by name, e.g. ``get_sde("ve", sigma_max=10.0)``.
    """
    _check_sde(sde)
    return numeric.process(sde, **params)


def _time(t: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


class ScoreSDELoss:
    """Continuous DSM on ``sde`` (one of :data:`SDES`), per sample, mean over dimensions.

    t ~ U(eps, 1), sigma = sigma(t) from the theory, loss = ||D(x0 + sigma n; sigma) - x0||^2 / sigma^2
    (the lambda(t) = std(t)^2 weighting of Score SDE, see the module doc). ``params`` override the
    SDE's parameters (``sigma_max`` for VE on toy data, ``beta_min``/``beta_d`` for VP, sub-VP).
    """

    def __init__(self, sde: str = "vp", eps: float = EPS_TRAIN, **params):
        self.process = get_sde(sde, **params)
        self.sde, self.params = sde, params
        if not 0 < eps < 1:
            raise ValueError(f"eps must lie in (0, 1), got {eps}")
        self.eps = eps

    def sigma(self, t) -> torch.Tensor:
        return self.process.sigma(_time(t))

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        t = self.eps + (1 - self.eps) * torch.rand(x0.shape[0], dtype=torch.float64, device=x0.device)
        sigma = self.sigma(t).to(x0.dtype)
        sigma_b = append_dims(sigma, x0)
        denoised = model(x0 + sigma_b * torch.randn_like(x0), sigma, class_labels)
        return ((denoised - x0) ** 2 / sigma_b**2).flatten(1).mean(dim=1)


def time_sigmas(sde: str, n: int, eps: float = EPS_SAMPLE, **params) -> torch.Tensor:
    """sigma(t_i) at t_i uniform from 1 down to ``eps`` (``n`` levels), then 0; float64, decreasing."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    t = torch.linspace(1.0, eps, n, dtype=torch.float64)
    return torch.cat([get_sde(sde, **params).sigma(t), torch.zeros(1, dtype=torch.float64)])


def prior_std(sde: str, **params) -> float:
    """Standard deviation of x(1) ~ prior in EDM coordinates (x = x_t / s(1))."""
    proc = get_sde(sde, **params)
    one = torch.tensor(1.0, dtype=torch.float64)
    if sde == "ve":
        return float(proc.sigma(one))  # N(0, sigma_max^2 I)
    return float(1 / proc.scale(one))  # N(0, I) in x_t, divided by s(1)


def prior_sample(sde: str, shape, generator: torch.Generator | None = None, dtype=torch.float32, **params) -> torch.Tensor:
    """Draw x(1) from the SDE's prior, in EDM coordinates (what the engine's samplers start from)."""
    return torch.randn(shape, generator=generator, dtype=dtype) * prior_std(sde, **params)


def reverse_drift(x: torch.Tensor, score: torch.Tensor, f, g) -> torch.Tensor:
    """f x - g^2 score: the drift of the reverse-time SDE dx = [f x - g^2 grad log p_t(x)] dt + g dw_bar
    (Score SDE eq. 6), in the process's own coordinates x = x_t.

    ``f`` and ``g`` are the SDE's f(t) and g(t), each a number or a per-sample (N,) tensor; g is
    squared before it is shaped to broadcast against ``x``.
    """
    return append_dims(f, x) * x - append_dims(g**2, x) * score


@torch.no_grad()
def reverse_sde_sample(denoiser, sde: str, x: torch.Tensor, n_steps: int, *, eps: float = EPS_SAMPLE,
                       generator: torch.Generator | None = None, **params) -> torch.Tensor:
    """Euler-Maruyama on the reverse SDE of ``sde`` in its own time and coordinates (eq. 6).

    ``x`` is the start in EDM coordinates at t = 1 (e.g. from :func:`prior_sample`); the return
    value is in EDM coordinates too. ``n_steps`` network evaluations in all: ``n_steps - 1``
    Euler-Maruyama steps on the uniform grid 1 -> eps, then the denoising step D(x; sigma(eps))
    that Score SDE's samplers end with.
    """
    if not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    proc = get_sde(sde, **params)
    times = torch.linspace(1.0, eps, n_steps, dtype=torch.float64)
    dt = float(times[0] - times[1])
    scale, sigma = proc.scale(times), proc.sigma(times)
    f, g = proc.f(times), proc.g(times)
    y = x * float(scale[0])  # to the process's own coordinates x_t = s(t) x
    for i in range(n_steps - 1):
        s_i, sig_i = float(scale[i]), float(sigma[i])
        denoised = denoiser(y / s_i, y.new_full((y.shape[0],), sig_i))
        score = denoiser_to_score(denoised, y, sig_i, s_i)  # grad log p_t(x_t), Tweedie with a scale
        drift = reverse_drift(y, score, float(f[i]), float(g[i]))
        noise = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
        y = y - drift * dt + float(g[i]) * math.sqrt(dt) * noise  # one step backwards in time
    s_last = float(scale[-1])
    return denoiser(y / s_last, y.new_full((y.shape[0],), float(sigma[-1])))
