"""Gotta Go Fast (Jolicoeur-Martineau et al. 2021): an adaptive step-size solver for the reverse SDE.

The reverse-time SDE of a score model, written forward in tau = 1 - t in the process's own
coordinates y = x_t (Score SDE eq. 6),

    dy = -[f(t) y - g(t)^2 grad log p_t(y)] dtau + g(t) dw,

is solved with steps whose size follows the local error. One attempted step from t to t - h draws
one Brownian increment z sqrt(h) and evaluates the score twice:

* Euler-Maruyama proposal      y'  = y + k1,            k1 = -h drift(y, t) + g(t) sqrt(h) z;
* improved Euler (Heun) step   y'' = y + (k1 + k2) / 2, k2 = -h drift(y', t - h) + g(t - h) sqrt(h) z,
  with the *same* z;
* local error estimate         y'' - y' = (k2 - k1) / 2;
* mixed tolerance              delta = max(eps_abs, eps_rel max(|y'|, |y'_prev|)) per coordinate,
  with y'_prev the Euler-Maruyama proposal of the last accepted step;
* scaled error                 E = ||(y'' - y') / delta||_2 / sqrt(n)  (n coordinates per sample);
* accept when E <= 1, and then keep y'' (extrapolation: the higher-order solution);
* next step size               h <- min(t - eps, theta h E^(-r)), accepted or not.

Each sample has its own t and h. The loop ends when every sample reaches t = eps; the last
evaluation is the denoising step D(y / s(eps); sigma(eps)) that Score SDE's samplers end with.
The paper's controller constants (theta = r = 0.9, h_init = 0.01) are
``diffnotes.constants.GGF_THETA``, ``GGF_EXPONENT`` and ``GGF_H_INIT``; its tolerances were
eps_abs = 0.0078 (VP, data in [-1, 1]) or 0.0039 (VE, data in [0, 1]) and eps_rel from 0.01 to 0.1 (the authors' experiment script).

Why a module of its own and not a solver in ``diffnotes.sampling``: those solvers step through a
noise-level grid fixed in advance, ``sample(denoiser, x, sigmas)``, in EDM's coordinates. This
solver has no grid: it chooses its times as it goes, per sample, and its tolerance acts on the
state in the SDE's own coordinates (x_t, not x_t / s(t)), as in the paper. It reuses the SDE
models of :mod:`diffnotes.methods.score_sde`.

Also here: :func:`sra1_sample`, a fixed-step stochastic Runge-Kutta method of strong order 1.5
for additive noise (Roessler 2010, SRA1; two drift evaluations per step) — the kind of
higher-order SDE solver the paper found slower — and :class:`CountingDenoiser`, which counts
network evaluations (NFE) for any sampler.

Used by ``book/papers/jolicoeurmartineau2021gotta.md`` and its lab notebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from diffnotes import constants as K
from diffnotes.parameterization import append_dims, denoiser_to_score
from diffnotes.schedule_fitting import CountingDenoiser  # re-exported: its .nfe counts calls

from .score_sde import EPS_SAMPLE, get_sde, reverse_drift

__all__ = ["NORMS", "AdaptiveStats", "CountingDenoiser",
           "mixed_tolerance", "scaled_error", "next_step_size", "adaptive_sample", "sra1_sample",
           "nfe_to_reach"]

NORMS = ("l2", "linf")
_T_DONE = 1e-9  # a sample is finished when t - eps is below this


@dataclass
class AdaptiveStats:
    """What one run of :func:`adaptive_sample` cost.

    ``nfe``: network evaluations of the batch (two per iteration, plus the denoising step), what a
    batched run pays; ``nfe_per_sample``: each sample's own count (two per attempted step, plus
    one); ``accepted`` and ``rejected``: steps per sample; ``trace``: (t, h) of each accepted step
    of the first sample.
    """

    nfe: int
    nfe_per_sample: torch.Tensor
    accepted: torch.Tensor
    rejected: torch.Tensor
    trace: list[tuple[float, float]] = field(default_factory=list)

    @property
    def rejection_rate(self) -> float:
        total = (self.accepted + self.rejected).sum().item()
        return self.rejected.sum().item() / max(total, 1)


def _check_tolerances(eps_abs: float, eps_rel: float) -> None:
    if not (eps_abs >= 0 and eps_rel >= 0 and eps_abs + eps_rel > 0):
        raise ValueError(f"need eps_abs >= 0 and eps_rel >= 0, not both 0; got {eps_abs!r}, {eps_rel!r}")


def mixed_tolerance(y_new: torch.Tensor, y_prev: torch.Tensor, eps_abs: float, eps_rel: float) -> torch.Tensor:
    """delta = max(eps_abs, eps_rel max(|y_new|, |y_prev|)), coordinate by coordinate."""
    _check_tolerances(eps_abs, eps_rel)
    return torch.clamp(eps_rel * torch.maximum(y_new.abs(), y_prev.abs()), min=eps_abs)


def scaled_error(diff: torch.Tensor, delta: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """Per-sample error of ``diff`` in units of the tolerance ``delta``.

    ``"l2"``: ||diff / delta||_2 / sqrt(n), the root mean square over the n coordinates (the
    paper's choice); ``"linf"``: the largest |diff / delta|.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    ratio = (diff / delta).flatten(1)
    if norm == "l2":
        return ratio.norm(dim=1) / math.sqrt(ratio.shape[1])
    return ratio.abs().amax(dim=1)


def next_step_size(h: torch.Tensor, error: torch.Tensor, h_max: torch.Tensor, theta: float = K.GGF_THETA,
                   r: float = K.GGF_EXPONENT) -> torch.Tensor:
    """h <- min(h_max, theta h E^(-r)); a zero error jumps to ``h_max``."""
    if not (0 < theta <= 1 and r > 0):
        raise ValueError(f"need 0 < theta <= 1 and r > 0, got theta={theta!r}, r={r!r}")
    grown = theta * h * error.clamp_min(torch.finfo(error.dtype).tiny) ** (-r)
    return torch.minimum(h_max, torch.where(error > 0, grown, h_max))


def _increment(denoiser, proc, y: torch.Tensor, t: torch.Tensor, h: torch.Tensor, z: torch.Tensor):
    """k = -h [f y - g^2 score] + g sqrt(h) z: one Euler-Maruyama increment of the reverse SDE
    from t to t - h (per-sample t, h), the score from the denoiser with Tweedie and a scale."""
    scale, sigma = proc.scale(t), proc.sigma(t)
    denoised = denoiser(y / append_dims(scale, y), sigma.to(y.dtype)).to(y.dtype)
    score = denoiser_to_score(denoised, y, sigma, scale)
    drift = reverse_drift(y, score, proc.f(t), proc.g(t))
    return -append_dims(h, y) * drift + append_dims(proc.g(t) * h.sqrt(), y) * z


def _check_run(x, sde_eps: float, h_init: float, max_iters: int) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError("x must be a floating-point batch of shape (N, ...) with N >= 1 and a data dimension")
    if not 0 < sde_eps < 1:
        raise ValueError(f"eps (the end time) must lie in (0, 1), got {sde_eps!r}")
    if not 0 < h_init <= 1 - sde_eps:
        raise ValueError(f"h_init must lie in (0, 1 - eps], got {h_init!r}")
    if not (isinstance(max_iters, int) and max_iters >= 1):
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")


@torch.no_grad()
def adaptive_sample(denoiser, sde: str, x: torch.Tensor, *, eps_abs: float, eps_rel: float,
                    theta: float = K.GGF_THETA, r: float = K.GGF_EXPONENT, h_init: float = K.GGF_H_INIT,
                    eps: float = EPS_SAMPLE, norm: str = "l2", extrapolate: bool = True,
                    reject: bool = True, max_iters: int = 100_000, generator: torch.Generator | None = None,
                    **params):
    """Sample the reverse SDE of ``sde`` with the adaptive solver (see the module doc).

    ``x`` is the start at t = 1 in EDM coordinates (e.g. ``score_sde.prior_sample``); the return
    value is ``(sample, stats)``, the sample denoised at t = ``eps`` in EDM coordinates and an
    :class:`AdaptiveStats`. ``extrapolate=False`` keeps the Euler-Maruyama proposal y' instead
    of y''. ``reject=False`` accepts every step (the step size still follows the error): an
    ablation that shows what rejecting and redrawing the Brownian increment does to the law.
    ``params`` override the SDE's parameters (e.g. ``sigma_max`` for VE).
    """
    _check_tolerances(eps_abs, eps_rel)
    _check_run(x, eps, h_init, max_iters)
    proc = get_sde(sde, **params)
    n = x.shape[0]
    t = torch.ones(n, dtype=torch.float64, device=x.device)
    h = torch.full_like(t, h_init)
    y = x * float(proc.scale(t[:1]))  # to the process's own coordinates
    y_prev = y.clone()  # the last accepted Euler-Maruyama proposal
    accepted = torch.zeros(n, dtype=torch.long, device=x.device)
    rejected = torch.zeros_like(accepted)
    trace, iters = [], 0
    while bool((active := t - eps > _T_DONE).any()):
        iters += 1
        if iters > max_iters:
            raise RuntimeError(f"adaptive_sample: {max_iters} iterations without reaching t = eps; "
                               "loosen eps_abs / eps_rel or raise max_iters")
        idx = active.nonzero().squeeze(1)
        y_a, t_a, h_a = y[idx], t[idx], h[idx]
        z = torch.randn(y_a.shape, dtype=y.dtype, generator=generator).to(y.device)
        k1 = _increment(denoiser, proc, y_a, t_a, h_a, z)
        y_em = y_a + k1  # Euler-Maruyama proposal
        k2 = _increment(denoiser, proc, y_em, t_a - h_a, h_a, z)  # same Brownian increment
        y_heun = y_a + 0.5 * (k1 + k2)  # improved Euler
        error = scaled_error(y_heun - y_em, mixed_tolerance(y_em, y_prev[idx], eps_abs, eps_rel), norm)
        ok = (error <= 1) | (not reject)
        ok_b = append_dims(ok.to(y.dtype), y_a) > 0  # per-sample mask, broadcast
        y[idx] = torch.where(ok_b, y_heun if extrapolate else y_em, y_a)
        y_prev[idx] = torch.where(ok_b, y_em, y_prev[idx])
        if bool(ok[0]) and idx[0] == 0:
            trace.append((float(t_a[0]), float(h_a[0])))
        t[idx] = torch.where(ok, t_a - h_a, t_a)
        h[idx] = next_step_size(h_a, error, (t[idx] - eps).clamp_min(0), theta, r)
        accepted[idx] += ok.long()
        rejected[idx] += (~ok).long()
    t_end = torch.full_like(t, eps)
    scale_end = proc.scale(t_end)
    sample = denoiser(y / append_dims(scale_end, y), proc.sigma(t_end).to(y.dtype)).to(y.dtype)
    stats = AdaptiveStats(nfe=2 * iters + 1, nfe_per_sample=2 * (accepted + rejected) + 1,
                          accepted=accepted, rejected=rejected, trace=trace)
    return sample, stats


@torch.no_grad()
def sra1_sample(denoiser, sde: str, x: torch.Tensor, n_steps: int, *, eps: float = EPS_SAMPLE,
                generator: torch.Generator | None = None, **params) -> torch.Tensor:
    """Fixed-step SRA1 (Roessler 2010, strong order 1.5 for additive noise) on the reverse SDE.

    In tau = 1 - t the reverse SDE dY = A(tau, Y) dtau + B(tau) dW has additive noise (B depends
    on time only), which is what SRA methods need. One step of size h uses two drift evaluations:

        H2 = Y + (3/4) h A(tau, Y) + (3/2) B(tau + h) dZ / h,
        Y <- Y + h [A(tau, Y) / 3 + 2 A(tau + 3h/4, H2) / 3] + B(tau + h) (dW - dZ / h) + B(tau) dZ / h,

    with dW ~ N(0, h) and dZ = int int dW ds ~ N(0, h^3 / 3), Cov(dW, dZ) = h^2 / 2. ``n_steps``
    steps on a uniform grid from t = 1 to ``eps``, then the denoising step: 2 n_steps + 1 NFE.
    """
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    _check_run(x, eps, 1 - eps, 1)
    proc = get_sde(sde, **params)
    times = torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64)
    h = float(times[0] - times[1])
    y = x * float(proc.scale(times[:1]))

    def drift(y_, t_):  # A(tau, y) = -[f y - g^2 score] at t = 1 - tau
        t_vec = torch.full((y_.shape[0],), t_, dtype=torch.float64, device=y_.device)
        return _increment(denoiser, proc, y_, t_vec, torch.ones_like(t_vec), torch.zeros_like(y_))

    def diffusion(t_):
        return float(proc.g(torch.tensor(t_, dtype=torch.float64)))

    for i in range(n_steps):
        t_i = float(times[i])
        u1 = torch.randn(y.shape, dtype=y.dtype, generator=generator).to(y.device)
        u2 = torch.randn(y.shape, dtype=y.dtype, generator=generator).to(y.device)
        d_w = math.sqrt(h) * u1
        d_z = 0.5 * h**1.5 * (u1 + u2 / math.sqrt(3))
        a1 = drift(y, t_i)
        b_now, b_next = diffusion(t_i), diffusion(t_i - h)
        h2 = y + 0.75 * h * a1 + 1.5 * b_next * d_z / h
        a2 = drift(h2, t_i - 0.75 * h)
        y = y + h * (a1 / 3 + 2 * a2 / 3) + b_next * (d_w - d_z / h) + b_now * d_z / h
    t_end = torch.full((y.shape[0],), eps, dtype=torch.float64, device=y.device)
    return denoiser(y / append_dims(proc.scale(t_end), y), proc.sigma(t_end).to(y.dtype)).to(y.dtype)


def nfe_to_reach(nfes, errors, target: float) -> float:
    """The NFE at which an error curve first falls to ``target``, interpolated in log-log between
    the measured points (``nfes`` increasing); ``inf`` when it never does, ``nfes[0]`` when it
    starts below."""
    pairs = [(float(n), float(e)) for n, e in zip(nfes, errors)]
    if len(pairs) < 1 or any(b[0] <= a[0] for a, b in zip(pairs, pairs[1:])) or not target > 0:
        raise ValueError("need increasing nfes, one error per NFE, and target > 0")
    if pairs[0][1] <= target:
        return pairs[0][0]
    for (n0, e0), (n1, e1) in zip(pairs, pairs[1:]):
        if e1 <= target:
            w = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(n0) + w * (math.log(n1) - math.log(n0)))
    return math.inf
