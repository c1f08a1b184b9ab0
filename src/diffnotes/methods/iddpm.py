"""Improved DDPM (Nichol & Dhariwal 2021): cosine schedule, learned variances, L_hybrid, importance sampling.

Built on :mod:`diffnotes.methods.ddpm` (the discrete chain :class:`~diffnotes.methods.ddpm.DDPMSchedule`,
its posterior, Gaussian KL and decoder likelihoods) and on the book's common language: the mean
of the reverse step comes from a denoiser ``D(x; sigma)`` in EDM coordinates (x = x_t /
sqrt(alpha_bar_t), sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)). What iDDPM adds:

* :func:`cosine_schedule` — betas of the discrete cosine chain (iDDPM eq. 17, with beta_t
  clipped at 0.999), evaluated from the ``"iddpm"`` process of ``diffnotes.theory`` (its chain);
  :func:`linear_schedule` — DDPM's linear betas scaled to T steps as iDDPM Sec. 3.1 does.
* :class:`LearnedVarianceModel` — a denoiser plus a second head ``v(x, sigma)``; the reverse
  variance interpolates in log space between the two bounds (eq. 15),
  Sigma = exp(v log beta_t + (1 - v) log beta_tilde_t), with v = (out + 1) / 2 of the raw head
  output ``out`` as in the paper's code, so an untrained head sits halfway.
* :func:`vlb_term` — one term L_{t-1} of the bound with the learned variance (KL for t >= 2,
  the decoder's Gaussian NLL at t = 1, for continuous toy data), and :func:`nll_bound` summing all.
* :class:`HybridLoss` — L_hybrid = L_simple + lambda L_vlb with lambda = 0.001 (Sec. 3.1), the
  mean's gradient stopped in the L_vlb term; :class:`VLBLoss` — L_vlb alone, t uniform or from
* :class:`ImportanceSampler` — t drawn with p_t proportional to sqrt(E[L_t^2]) over the last 10
  values of each term, uniform until every t has 10 (Sec. 3.3, eq. 18).
* :func:`sample` — ancestral sampling with the learned variance on a respaced chain (Sec. 4:
  the kept steps' alpha_bar define new betas, and v interpolates between the new bounds).

Used by ``book/papers/nichol2021improved.md`` and ``notebooks/nichol2021improved.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffnotes.methods.ddpm import DDPMSchedule, gaussian_kl, gaussian_nll

__all__ = [
    "LAMBDA_VLB",
    "cosine_schedule",
    "linear_schedule",
    "respace",
    "LearnedVarianceModel",
    "ConstantV",
    "with_fixed_variance",
    "log_variance",
    "vlb_term",
    "nll_bound",
    "HybridLoss",
    "VLBLoss",
    "ImportanceSampler",
    "sample",
]

LAMBDA_VLB = 1e-3  # iDDPM Sec. 3.1: L_hybrid = L_simple + lambda L_vlb, lambda = 0.001


# ----------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------
def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DDPMSchedule:
    """iDDPM's cosine schedule with T steps: beta_t = min(1 - alpha_bar_t / alpha_bar_{t-1}, max_beta).

    alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s) / (1 + s)) (eq. 17); the expression
    is the discrete chain of ``get_process("iddpm")`` (``C_2 = s``, ``C_1 = 1 - max_beta``).
    """
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if not 0 < s < 1 or not 0 < max_beta < 1:
        raise ValueError(f"need 0 < s < 1 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
    import numpy as np
    import sympy as sp

    from diffnotes.theory import get_process

    process = get_process("iddpm", M=int(T), C_2=s, C_1=1 - max_beta)
    chain = process.chain
    beta_i = sp.lambdify(chain.index, process.subs(chain.schedule), "numpy")
    steps = np.arange(1, int(T) + 1, dtype=np.float64)
    return DDPMSchedule(torch.as_tensor(np.broadcast_to(beta_i(steps), steps.shape).copy(), dtype=torch.float64))


def linear_schedule(T: int = 1000) -> DDPMSchedule:
    """DDPM's linear schedule for T steps, betas scaled by 1000 / T (iDDPM Sec. 3.1)."""
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    scale = 1000 / T
    return DDPMSchedule.linear(int(T), 1e-4 * scale, 0.02 * scale)


def respace(schedule: DDPMSchedule, steps: int) -> tuple[DDPMSchedule, torch.Tensor]:
    """A shorter chain on ``steps`` evenly strided steps of ``schedule`` (iDDPM Sec. 4).

    Returns the new schedule, whose betas are 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}}, and the
    kept (1-based) steps t_1 < ... < t_K of the original chain; the kept steps are the ones
    ``DDPMSchedule.sampling_sigmas`` uses, so the two samplers visit the same noise levels.
    """
    T = schedule.T
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..{T}, got {steps!r}")
    kept = (torch.linspace(T - 1, 0, steps).round().long() if steps > 1 else torch.tensor([T - 1])).flip(0) + 1
    alpha_bar = schedule.alpha_bar[kept - 1]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    return DDPMSchedule(1 - alpha_bar / prev), kept


def _log_bounds(schedule: DDPMSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """(log beta_t, log beta_tilde_t) for t = 1..T; beta_tilde_1 = 0 is replaced by beta_tilde_2."""
    beta_tilde = schedule.beta_tilde.clone()
    if beta_tilde.numel() > 1:
        beta_tilde[0] = beta_tilde[1]  # as the paper's code: log of 0 would be -inf
    else:
        beta_tilde[0] = schedule.betas[0]
    return schedule.betas.log(), beta_tilde.log()


# ----------------------------------------------------------------------------------------------
# The model: a denoiser and a variance head
# ----------------------------------------------------------------------------------------------
class LearnedVarianceModel(nn.Module):
    """``forward(x, sigma) = D(x; sigma)`` (any ``diffnotes.precond`` denoiser) plus ``v(x, sigma)``.

    ``v_backbone`` is a backbone ``F(x_in, c_noise)`` with the data's shape (e.g. a second
    ``nets.MLP``); it sees the same ``c_in x`` and ``c_noise`` as the denoiser's backbone. iDDPM
    uses one network with twice the output channels; the book's MLP has one output head, so the
    variance gets its own small network here (``nets.UNet(out_channels=2 C)`` would share one).
    """

    def __init__(self, denoiser: nn.Module, v_backbone: nn.Module):
        super().__init__()
        self.denoiser, self.v_backbone = denoiser, v_backbone

    def forward(self, x, sigma, class_labels=None):
        return self.denoiser(x, sigma, class_labels)

    def v(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        """The interpolation weight v = (out + 1) / 2 per dimension (eq. 15)."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        _, _, c_in, c_noise = self.denoiser.coefficients(sigma.reshape(-1, *([1] * (x.ndim - 1))))
        net_dtype = next(self.v_backbone.parameters(), torch.empty(0)).dtype  # a parameter-free head keeps float32
        out = self.v_backbone((c_in * x).to(net_dtype), c_noise.flatten().to(net_dtype), class_labels=class_labels)
        return (out.to(x.dtype) + 1) / 2


class ConstantV(nn.Module):
    """A variance head with a constant raw output 2 v - 1: v = 1 is DDPM's beta_t, v = 0 its beta_tilde_t."""

    def __init__(self, v: float):
        super().__init__()
        if not 0 <= v <= 1:
            raise ValueError(f"v must lie in [0, 1] (0: beta_tilde, 1: beta), got {v}")
        self.v = float(v)

    def forward(self, x_in, c_noise, class_labels=None):
        return torch.full_like(x_in, 2 * self.v - 1)


FIXED_VARIANCES = {"beta": 1.0, "beta_tilde": 0.0}


def with_fixed_variance(model: LearnedVarianceModel, kind: str) -> LearnedVarianceModel:
    """The same mean with DDPM's fixed variance ``kind`` ("beta" or "beta_tilde") instead of the learned one."""
    if kind not in FIXED_VARIANCES:
        raise ValueError(f"unknown fixed variance {kind!r}; valid: {', '.join(FIXED_VARIANCES)}")
    return LearnedVarianceModel(model.denoiser, ConstantV(FIXED_VARIANCES[kind]))


def log_variance(v: torch.Tensor, schedule: DDPMSchedule, t: torch.Tensor) -> torch.Tensor:
    """log Sigma_theta = v log beta_t + (1 - v) log beta_tilde_t (eq. 15), t of shape (N,) in 1..T."""
    log_beta, log_beta_tilde = _log_bounds(schedule)
    shape = (-1, *([1] * (v.ndim - 1)))
    lb = log_beta.to(v.device, v.dtype)[t - 1].reshape(shape)
    lbt = log_beta_tilde.to(v.device, v.dtype)[t - 1].reshape(shape)
    return v * lb + (1 - v) * lbt


def _sum_dims(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def _posterior(schedule: DDPMSchedule, t: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor):
    """Mean and variance of q(x_{t-1} | x_t, x0) in DDPM coordinates (DDPM eq. 7)."""
    shape = (-1, *([1] * (x0.ndim - 1)))

    def at(table):
        return table.to(x0.device, x0.dtype)[t - 1].reshape(shape)

    return at(schedule.posterior_coef_x0) * x0 + at(schedule.posterior_coef_xt) * x_t, at(schedule.beta_tilde)


def vlb_term(model: LearnedVarianceModel, x0: torch.Tensor, t: torch.Tensor, schedule: DDPMSchedule, *,
             noise: torch.Tensor | None = None, stop_mean_grad: bool = False, class_labels=None):
    """(L_{t-1} per sample in nats, denoised, noise): the bound's term at step t with the learned variance.

    t >= 2: KL(q(x_{t-1} | x_t, x0) || N(mu_theta, Sigma_theta)); t = 1: -log N(x0; mu_theta, Sigma_theta)
    (a density decoder for continuous data). ``stop_mean_grad`` detaches mu_theta (iDDPM's
    L_vlb term in L_hybrid trains only the variance).
    """
    t = torch.as_tensor(t, dtype=torch.long, device=x0.device)
    if bool(((t < 1) | (t > schedule.T)).any()):
        raise ValueError(f"steps t must lie in 1..{schedule.T}")
    noise = torch.randn_like(x0) if noise is None else noise
    x, sigma = schedule.perturb(x0, t, noise)
    denoised = model(x, sigma, class_labels).to(x0.dtype)
    x0_hat = denoised.detach() if stop_mean_grad else denoised
    sqrt_ab = schedule.alpha_bar.to(x0.device, x0.dtype)[t - 1].sqrt().reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = sqrt_ab * x  # DDPM coordinates
    mean_q, var_q = _posterior(schedule, t, x0, x_t)
    mean_p, _ = _posterior(schedule, t, x0_hat, x_t)
    log_var = log_variance(model.v(x, sigma, class_labels), schedule, t)
    kl = _sum_dims(gaussian_kl(mean_q, var_q.clamp_min(1e-30), mean_p, log_var.exp()))
    # at t = 1 the posterior mean coefficient of x0 is 1 and of x_1 is 0: mu_theta = x0_hat
    dec = _sum_dims(0.5 * (math.log(2 * math.pi) + log_var + (x0 - mean_p) ** 2 / log_var.exp()))
    return torch.where(t == 1, dec, kl), denoised, noise


@torch.no_grad()
def nll_bound(model: LearnedVarianceModel, x0: torch.Tensor, schedule: DDPMSchedule, *,
              generator: torch.Generator | None = None, return_terms: bool = False):
    """Every term of L_vlb = L_T + sum_t L_{t-1} per sample, in nats (a bound on -log p(x0)).

    One noise draw per term; ``return_terms`` also returns the (N, T) matrix of L_{t-1}.
    """
    n = x0.shape[0]
    terms = torch.empty(n, schedule.T, dtype=torch.float64)
    for t in range(1, schedule.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        steps = torch.full((n,), t, dtype=torch.long, device=x0.device)
        terms[:, t - 1] = vlb_term(model, x0, steps, schedule, noise=noise)[0].double().cpu()
    ab = schedule.alpha_bar[-1].to(x0.dtype)
    prior = _sum_dims(gaussian_kl(ab.sqrt() * x0, 1 - ab, torch.zeros_like(x0), torch.ones_like(x0))).double().cpu()
    total = prior + terms.sum(dim=1)
    return (total, terms) if return_terms else total


# ----------------------------------------------------------------------------------------------
# Importance sampling of t (Sec. 3.3)
# ----------------------------------------------------------------------------------------------
class ImportanceSampler:
    """p_t proportional to sqrt(E[L_t^2]) over the last ``history`` values of each term.

    Until every t has ``history`` values, t is uniform (the paper's warm-up). A small
    ``uniform_prob`` is mixed in, as in the paper's code, so no step gets probability 0.
    """

    def __init__(self, T: int, history: int = 10, uniform_prob: float = 1e-3):
        if int(T) != T or T < 1 or int(history) != history or history < 1 or not 0 <= uniform_prob < 1:
            raise ValueError(f"need integers T >= 1, history >= 1 and 0 <= uniform_prob < 1, got {T}, {history}, {uniform_prob}")
        self.T, self.history, self.uniform_prob = int(T), int(history), float(uniform_prob)
        self.buffer = torch.zeros(self.T, self.history, dtype=torch.float64)
        self.count = torch.zeros(self.T, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        return bool((self.count >= self.history).all())

    def probs(self) -> torch.Tensor:
        if not self.warmed_up:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        weights = self.buffer.pow(2).mean(dim=1).sqrt()
        p = weights / weights.sum()
        return p * (1 - self.uniform_prob) + self.uniform_prob / self.T

    def sample(self, n: int, generator: torch.Generator | None = None):
        """(t of shape (n,), values 1..T; p_t of the drawn steps)."""
        p = self.probs()
        idx = torch.multinomial(p, n, replacement=True, generator=generator)
        return idx + 1, p[idx]

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Push the per-sample terms L_{t-1} (detached) into the history of their steps."""
        for step, value in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            row = step - 1
            if self.count[row] < self.history:
                self.buffer[row, self.count[row]] = value
            else:  # drop the oldest
                self.buffer[row] = torch.cat([self.buffer[row, 1:], torch.tensor([value], dtype=torch.float64)])
            self.count[row] += 1


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
class HybridLoss:
    """L_hybrid = L_simple + lambda L_vlb (iDDPM Sec. 3.1), per sample, in nats per dimension.

    L_simple is DDPM's ||eps - eps_hat||^2 (mean over dimensions); the L_vlb term is the one-step
    estimate T L_{t-1} (for uniform t), with the mean's gradient stopped, divided by the number of
    dimensions. With T = 1000 and lambda = 0.001 the L_vlb term enters with weight one, as in the
    paper's code. ``lambda_vlb=0`` trains the mean alone (the variance head then gets no gradient).
    """

    def __init__(self, schedule: DDPMSchedule, lambda_vlb: float = LAMBDA_VLB):
        if lambda_vlb < 0:
            raise ValueError(f"lambda_vlb must be >= 0, got {lambda_vlb}")
        self.schedule, self.lambda_vlb = schedule, lambda_vlb

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        t = torch.randint(1, self.schedule.T + 1, (x0.shape[0],), device=x0.device)
        term, denoised, noise = vlb_term(model, x0, t, self.schedule, stop_mean_grad=True, class_labels=class_labels)
        sigma = self.schedule.sigmas.to(x0.device, x0.dtype)[t - 1].reshape(-1, *([1] * (x0.ndim - 1)))
        x = x0 + sigma * noise
        simple = ((x - denoised) / sigma - noise).pow(2).flatten(1).mean(dim=1)  # DDPM eq. 14
        dims = x0[0].numel()
        return simple + self.lambda_vlb * self.schedule.T * term / dims


class VLBLoss:
    """L_vlb alone (mean and variance both trained), t uniform or from an :class:`ImportanceSampler`.

    The one-sample estimate is L_{t-1} / p_t (= T L_{t-1} for uniform t), per dimension; the prior
    term L_T has no parameters and is left out. The sampler's history is updated on every call.
    """

    def __init__(self, schedule: DDPMSchedule, sampler: ImportanceSampler | None = None):
        if sampler is not None and sampler.T != schedule.T:
            raise ValueError(f"the sampler has T={sampler.T} but the schedule T={schedule.T}")
        self.schedule, self.sampler = schedule, sampler

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        n = x0.shape[0]
        if self.sampler is None:
            t = torch.randint(1, self.schedule.T + 1, (n,), device=x0.device)
            p = torch.full((n,), 1.0 / self.schedule.T, dtype=torch.float64)
        else:
            t, p = self.sampler.sample(n)
            t = t.to(x0.device)
        term, _, _ = vlb_term(model, x0, t, self.schedule, class_labels=class_labels)
        if self.sampler is not None:
            self.sampler.update(t, term)
        return term / p.to(term.device, term.dtype) / x0[0].numel()


# ----------------------------------------------------------------------------------------------
# Sampling with the learned variance (Sec. 4)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def sample(model: LearnedVarianceModel, shape, schedule: DDPMSchedule, *, steps: int | None = None,
           generator: torch.Generator | None = None, dtype=torch.float32, device=None, class_labels=None) -> torch.Tensor:
    """Ancestral sampling with Sigma_theta on the chain respaced to ``steps`` steps (default T).

    Works in DDPM coordinates: x_T ~ N(0, I), x_{t-1} ~ N(mu_theta, Sigma_theta) with mu_theta the
    posterior mean at x0 = D(x_t / sqrt(alpha_bar_t); sigma_t), no noise on the last step. Returns
    x_0 (= D at the smallest kept step followed by the last posterior mean).
    """
    short, kept = respace(schedule, schedule.T if steps is None else steps)
    sigmas = schedule.sigmas[kept - 1]
    x_t = torch.randn(shape, generator=generator, dtype=dtype).to(device or "cpu")
    for k in range(short.T, 0, -1):
        t = torch.full((shape[0],), k, dtype=torch.long, device=x_t.device)
        sqrt_ab = float(short.alpha_bar[k - 1].sqrt())
        x = x_t / sqrt_ab  # EDM coordinates for the denoiser
        sigma = x.new_full((shape[0],), float(sigmas[k - 1]))
        x0_hat = model(x, sigma, class_labels).to(dtype)
        mean, _ = _posterior(short, t, x0_hat, x_t)
        if k > 1:
            log_var = log_variance(model.v(x, sigma, class_labels).to(dtype), short, t)
            noise = torch.randn(shape, generator=generator, dtype=dtype).to(x_t.device)
            x_t = mean + (0.5 * log_var).exp() * noise
        else:
            x_t = mean
    return x_t
