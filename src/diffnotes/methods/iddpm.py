"""Improved DDPM (Nichol & Dhariwal 2021): cosine schedule, learned variances, L_hybrid, importance sampling.

Built on :mod:`diffnotes.chain` (the discrete chain :class:`~diffnotes.chain.DiscreteSchedule`,
its posterior and respacing, Gaussian KL, decoder likelihood and the bound's loop) and on the book's common language: the mean
of the reverse step comes from a denoiser ``D(x; sigma)`` in EDM coordinates (x = x_t /
sqrt(alpha_bar_t), sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)). What iDDPM adds:

* :func:`cosine_schedule` — betas of the discrete cosine chain (iDDPM eq. 17, with beta_t
  clipped at 0.999), evaluated from the ``"iddpm"`` process of ``diffnotes.theory`` (its chain);
  :func:`linear_schedule` — DDPM's linear betas scaled to T steps as iDDPM Sec. 3.1 does.
* :class:`LearnedVarianceModel` — a denoiser plus a second head ``v(x, sigma)``; the reverse
  variance interpolates in log space between the two bounds (eq. 15),
  Sigma = exp(v log beta_t + (1 - v) log beta_tilde_t), with v = (out + 1) / 2 of the raw head
  output ``out`` as in the paper's code, so an untrained head sits halfway.
* :func:`vlb_term` — one term L_{t-1} of the bound with the learned variance (KL for t >= 2; at
  t = 1 the decoder: by default a Gaussian density, for continuous toy data, or with
  ``decoder="discretized"`` the paper's discretized likelihood over 256 bins, DDPM eq. 13, which
  image bits/dim need), and :func:`nll_bound` summing all, in nats.
* :class:`HybridLoss` — L_hybrid = L_simple + lambda L_vlb with lambda = 0.001 (Sec. 3.1), the
  mean's gradient stopped in the L_vlb term. L_vlb is in nats by default (the stored lab run);
  the paper's code takes it in bits, ``vlb_unit="bits"``; in nats the effective lambda, counted
  in the paper's bits, is 0.001 ln 2 = 6.9e-4. :class:`VLBLoss` — L_vlb alone, t uniform or from
  an :class:`ImportanceSampler`.
* :class:`ImportanceSampler` — t drawn with p_t proportional to sqrt(E[L_t^2]) over the last 10
  values of each term, uniform until every t has 10 (Sec. 3.3, eq. 18).
* :func:`sample` — the chain's ancestral loop (``chain.ancestral_sample``) with the learned
  variance on a respaced chain (Sec. 4: the kept steps' alpha_bar define new betas, and v
  interpolates between the new bounds).

The bound's KL term is the chain's ``step_kl`` with Sigma_theta as the model's variance.

Used by ``book/papers/nichol2021improved.md`` and ``notebooks/nichol2021improved.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffnotes import constants as K
from diffnotes.chain import (ancestral_sample, bound_terms, check_steps, discretized_gaussian_nll, gather,
                             gaussian_nll, prior_kl, random_steps, step_kl)
from diffnotes.chain import DiscreteSchedule as DDPMSchedule
from diffnotes.parameterization import append_dims, denoiser_to_eps

__all__ = [
    "LAMBDA_VLB",
    "DECODERS",
    "VLB_UNITS",
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
DECODERS = ("gaussian", "discretized")
VLB_UNITS = {"nats": 1.0, "bits": 1.0 / math.log(2)}  # L_vlb in nats (ours, default) or bits (paper's code)


def _check_decoder(decoder: str, levels: int) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; valid: {', '.join(DECODERS)}")
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")


def _unit_scale(vlb_unit: str) -> float:
    if vlb_unit not in VLB_UNITS:
        raise ValueError(f"unknown vlb_unit {vlb_unit!r}; valid: {', '.join(VLB_UNITS)}")
    return VLB_UNITS[vlb_unit]


# ----------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------
# iDDPM's cosine schedule (eq. 17, beta_t <= 0.999) is the shared chain's ``cosine`` constructor.
cosine_schedule = DDPMSchedule.cosine


def linear_schedule(T: int = K.DDPM_T) -> DDPMSchedule:
    """DDPM's linear schedule for T steps, betas scaled by 1000 / T (iDDPM Sec. 3.1)."""
    if int(T) != T or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    scale = K.DDPM_T / T
    return DDPMSchedule.linear(int(T), K.DDPM_BETA_1 * scale, K.DDPM_BETA_T * scale)


# iDDPM Sec. 4's respacing is the shared chain's: ``respace(schedule, steps) -> (shorter, kept)``;
# the kept steps are the ones ``sampling_sigmas`` uses, so the two samplers visit the same levels.
respace = DDPMSchedule.respace


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
        _, _, c_in, c_noise = self.denoiser.coefficients(append_dims(sigma, x))
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
    return v * gather(log_beta, t, v) + (1 - v) * gather(log_beta_tilde, t, v)


def vlb_term(model: LearnedVarianceModel, x0: torch.Tensor, t: torch.Tensor, schedule: DDPMSchedule, *,
             noise: torch.Tensor | None = None, stop_mean_grad: bool = False, class_labels=None,
             decoder: str = "gaussian", levels: int = 256):
    """(L_{t-1} per sample in nats, denoised, noise): the bound's term at step t with the learned variance.

    t >= 2: KL(q(x_{t-1} | x_t, x0) || N(mu_theta, Sigma_theta)); t = 1: the decoder,
    ``"gaussian"`` -log N(x0; mu_theta, Sigma_theta) (a density, for continuous data: the default
    and the lab's toy runs) or ``"discretized"`` -log of the probability of x0's bin among
    ``levels`` values in [-1, 1] (DDPM eq. 13, what iDDPM's image bits/dim use). On 8-bit data,
    with a decoder wide next to a bin of width 2/255, the bin's probability is about the density
    times 2/255, so the two differ by about log2(127.5) = 7 bits/dim; only the discretized one
    compares with the paper's tables. ``stop_mean_grad`` detaches mu_theta (iDDPM's
    L_vlb term in L_hybrid trains only the variance).
    """
    _check_decoder(decoder, levels)
    t = check_steps(t, schedule.T).to(x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x, sigma = schedule.perturb(x0, t, noise)
    denoised = model(x, sigma, class_labels).to(x0.dtype)
    x0_hat = denoised.detach() if stop_mean_grad else denoised
    x_t = schedule.to_ddpm(x, t)
    mean_p, _ = schedule.posterior(t, x0_hat, x_t)
    log_var = log_variance(model.v(x, sigma, class_labels), schedule, t)
    kl = step_kl(schedule, t, x0, x_t, mean_p, log_var.exp())
    # at t = 1 the posterior mean coefficient of x0 is 1 and of x_1 is 0: mu_theta = x0_hat
    if decoder == "gaussian":
        dec = gaussian_nll(x0, mean_p, log_var=log_var)
    else:
        dec = discretized_gaussian_nll(x0, mean_p, log_var.exp(), levels)
    return torch.where(t == 1, dec, kl), denoised, noise


@torch.no_grad()
def nll_bound(model: LearnedVarianceModel, x0: torch.Tensor, schedule: DDPMSchedule, *,
              generator: torch.Generator | None = None, return_terms: bool = False,
              decoder: str = "gaussian", levels: int = 256):
    """Every term of L_vlb = L_T + sum_t L_{t-1} per sample, in nats (a bound on -log p(x0)).

    One noise draw per term; ``return_terms`` also returns the (N, T) matrix of L_{t-1}.
    ``decoder``: see :func:`vlb_term` (``"discretized"`` for image bits/dim comparable with the
    paper's; ``chain.to_bits_per_dim`` converts).
    """
    _check_decoder(decoder, levels)
    terms = bound_terms(lambda steps, noise: vlb_term(model, x0, steps, schedule, noise=noise, decoder=decoder,
                                                     levels=levels)[0],
                        x0, schedule.T, generator)
    prior = prior_kl(x0, schedule).double().cpu()
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
    """L_hybrid = L_simple + lambda L_vlb (iDDPM Sec. 3.1), per sample, per dimension.

    L_simple is DDPM's ||eps - eps_hat||^2 (mean over dimensions); the L_vlb term is the one-step
    estimate T L_{t-1} (for uniform t), with the mean's gradient stopped, divided by the number of
    dimensions. With T = 1000 and lambda = 0.001 the L_vlb term enters with weight one, as in the
    paper's code. ``vlb_unit``: ``"nats"`` (default; the lab's stored run) or ``"bits"`` (the
    paper's code, which divides its KL terms by ln 2): in nats, lambda = 0.001 weighs L_vlb as
    lambda = 0.001 ln 2 = 6.9e-4 would in bits. ``lambda_vlb=0`` trains the mean alone (the
    variance head then gets no gradient). ``decoder``: see :func:`vlb_term`.
    """

    def __init__(self, schedule: DDPMSchedule, lambda_vlb: float = LAMBDA_VLB, *, vlb_unit: str = "nats",
                 decoder: str = "gaussian", levels: int = 256):
        if lambda_vlb < 0:
            raise ValueError(f"lambda_vlb must be >= 0, got {lambda_vlb}")
        _check_decoder(decoder, levels)
        self.schedule, self.lambda_vlb = schedule, lambda_vlb
        self.vlb_unit, self.unit_scale = vlb_unit, _unit_scale(vlb_unit)
        self.decoder, self.levels = decoder, levels

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        t = random_steps(x0.shape[0], self.schedule.T, x0.device)
        term, denoised, noise = vlb_term(model, x0, t, self.schedule, stop_mean_grad=True, class_labels=class_labels,
                                         decoder=self.decoder, levels=self.levels)
        x, sigma = self.schedule.perturb(x0, t, noise)
        simple = (denoiser_to_eps(denoised, x, sigma) - noise).pow(2).flatten(1).mean(dim=1)  # DDPM eq. 14
        dims = x0[0].numel()
        if self.unit_scale != 1.0:
            term = term * self.unit_scale
        return simple + self.lambda_vlb * self.schedule.T * term / dims


class VLBLoss:
    """L_vlb alone (mean and variance both trained), t uniform or from an :class:`ImportanceSampler`.

    The one-sample estimate is L_{t-1} / p_t (= T L_{t-1} for uniform t), per dimension, in nats
    (default) or bits (``vlb_unit="bits"``, the paper's code); the prior term L_T has no
    parameters and is left out. The sampler's history is updated on every call (in nats, either
    way). ``decoder``: see :func:`vlb_term`.
    """

    def __init__(self, schedule: DDPMSchedule, sampler: ImportanceSampler | None = None, *, vlb_unit: str = "nats",
                 decoder: str = "gaussian", levels: int = 256):
        if sampler is not None and sampler.T != schedule.T:
            raise ValueError(f"the sampler has T={sampler.T} but the schedule T={schedule.T}")
        _check_decoder(decoder, levels)
        self.schedule, self.sampler = schedule, sampler
        self.vlb_unit, self.unit_scale = vlb_unit, _unit_scale(vlb_unit)
        self.decoder, self.levels = decoder, levels

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        n = x0.shape[0]
        if self.sampler is None:
            t = random_steps(n, self.schedule.T, x0.device)
            p = torch.full((n,), 1.0 / self.schedule.T, dtype=torch.float64)
        else:
            t, p = self.sampler.sample(n)
            t = t.to(x0.device)
        term, _, _ = vlb_term(model, x0, t, self.schedule, class_labels=class_labels, decoder=self.decoder,
                              levels=self.levels)
        if self.sampler is not None:
            self.sampler.update(t, term)
        if self.unit_scale != 1.0:
            term = term * self.unit_scale
        return term / p.to(term.device, term.dtype) / x0[0].numel()


# ----------------------------------------------------------------------------------------------
# Sampling with the learned variance (Sec. 4)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def sample(model: LearnedVarianceModel, shape, schedule: DDPMSchedule, *, steps: int | None = None,
           generator: torch.Generator | None = None, dtype=torch.float32, device=None, class_labels=None) -> torch.Tensor:
    """Ancestral sampling with Sigma_theta on the chain respaced to ``steps`` steps (default T).

    The chain's ancestral loop (:func:`diffnotes.chain.ancestral_sample`, DDPM coordinates:
    x_T ~ N(0, I), x_{t-1} ~ N(mu_theta, Sigma_theta) with mu_theta the posterior mean at
    x0 = D(x_t / sqrt(alpha_bar_t); sigma_t), no noise on the last step) with the learned
    variance of the respaced chain; the denoiser is given the full chain's sigma at each kept step.
    """
    short, kept = respace(schedule, schedule.T if steps is None else steps)

    def log_var(x, sigma, t):
        return log_variance(model.v(x, sigma, class_labels).to(dtype), short, t)

    return ancestral_sample(lambda x, sigma: model(x, sigma, class_labels), shape, short,
                            log_variance=log_var, sigmas=schedule.sigmas[kept - 1],
                            generator=generator, dtype=dtype, device=device)
