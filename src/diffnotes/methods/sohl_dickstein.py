"""Sohl-Dickstein et al. 2015: the original diffusion model, Gaussian reverse kernels learned on the bound.

The forward chain is the one DDPM later kept, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
(:class:`~diffnotes.chain.DiscreteSchedule` holds it, its posterior, the bound's closed-form terms
and the loop over them). The 2015 model differs
from DDPM in the reverse kernel: both its mean and its (diagonal) covariance are free functions of
(x_t, t) given by networks, with no epsilon or x0 parameterisation, and training maximises the
bound K on the log-likelihood (their eq. 14) directly. Here, per dimension,

    mu_theta(x_t, t) = x_t + F_mu(x_t, t),      log Sigma_theta(x_t, t) = log beta_t + F_Sigma(x_t, t),

with two backbones ``F(x_in, c_noise)`` (e.g. ``nets.MLP``; c_noise = t) whose zero-initialised
output layers start the model at the identity mean and the forward variance. This particular
parameterisation is ours; the paper's swiss-roll model was an MLP that output mean and covariance
coefficients directly.

* :class:`ReverseKernel` — the model: ``forward(x_t, t) -> (mean, log_var)``, in DDPM coordinates.
* :func:`bound_term` / :func:`nll_bound` — terms of -K: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
  for t >= 2 (the chain's ``step_kl`` with the free mean and variance), the decoder's -log N(x_0; mu, Sigma) at t = 1, and the prior term KL(q(x_T | x_0) || N(0, I));
  all in nats, a bound on -log p(x_0) for continuous data.
* :class:`BoundLoss` — the one-sample estimate L_T + T L_{t-1} at uniform t, per dimension.
* :func:`sample` — ancestral sampling through the learned kernels.
* :func:`gaussian_baseline_nll` — the exact NLL of an isotropic Gaussian fitted to training data,
  the baseline the notebook compares the bound with.

Used by ``book/papers/sohldickstein2015deep.md`` and ``notebooks/sohldickstein2015deep.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffnotes.chain import bound_terms, gather, gaussian_nll, prior_kl, random_steps, step_kl
from diffnotes.chain import DiscreteSchedule as DDPMSchedule

__all__ = ["swiss_roll_schedule", "ReverseKernel", "bound_term", "nll_bound", "BoundLoss", "sample", "gaussian_baseline_nll"]


def swiss_roll_schedule(T: int = 40, beta_1: float = 1e-3, beta_T: float = 0.25) -> DDPMSchedule:
    """A short linear chain for 2-D toys: T = 40 steps (the paper's swiss-roll T), alpha_bar_T ~ 0.005.

    The paper learned its beta schedule for the swiss roll; we fix a linear one (our choice),
    built by ``DDPMSchedule.linear`` from the theory's DDPM chain.
    """
    return DDPMSchedule.linear(T, beta_1, beta_T)


class ReverseKernel(nn.Module):
    """p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), diag Sigma_theta(x_t, t)) for t = 1..T."""

    def __init__(self, mean_backbone: nn.Module, var_backbone: nn.Module, schedule: DDPMSchedule):
        super().__init__()
        self.mean_backbone, self.var_backbone, self.schedule = mean_backbone, var_backbone, schedule
        self.register_buffer("log_beta", schedule.betas.log().float(), persistent=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor):
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        if bool(((t < 1) | (t > self.schedule.T)).any()):
            raise ValueError(f"steps t must lie in 1..{self.schedule.T}")
        net_dtype = next(self.mean_backbone.parameters()).dtype
        c_noise = t.to(net_dtype)
        mean = x_t + self.mean_backbone(x_t.to(net_dtype), c_noise).to(x_t.dtype)
        log_var = gather(self.log_beta, t, x_t) + self.var_backbone(x_t.to(net_dtype), c_noise).to(x_t.dtype)
        return mean, log_var


def bound_term(model: ReverseKernel, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The term of -K at step t per sample, in nats (KL for t >= 2, decoder NLL for t = 1)."""
    schedule = model.schedule
    t = torch.as_tensor(t, dtype=torch.long, device=x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = schedule.q_sample(x0, t, noise)
    mean_p, log_var_p = model(x_t, t)
    kl = step_kl(schedule, t, x0, x_t, mean_p, log_var_p.exp())
    dec = gaussian_nll(x0, mean_p, log_var=log_var_p)
    return torch.where(t == 1, dec, kl)


@torch.no_grad()
def nll_bound(model: ReverseKernel, x0: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """-K per sample in nats: prior term + every step's term (one noise draw each)."""
    terms = bound_terms(lambda steps, noise: bound_term(model, x0, steps, noise), x0, model.schedule.T, generator)
    return (prior_kl(x0, model.schedule).double().cpu() + terms.sum(dim=1)).to(x0.device)


class BoundLoss:
    """Unbiased one-sample estimate of -K: L_T + T L_{t-1} at uniform t, per sample and dimension."""

    def __call__(self, model: ReverseKernel, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        schedule = model.schedule
        t = random_steps(x0.shape[0], schedule.T, x0.device)
        return (prior_kl(x0, schedule) + schedule.T * bound_term(model, x0, t)) / x0[0].numel()


@torch.no_grad()
def sample(model: ReverseKernel, shape, *, generator: torch.Generator | None = None, dtype=torch.float32,
           device=None) -> torch.Tensor:
    """x_T ~ N(0, I), then x_{t-1} ~ p_theta(x_{t-1} | x_t) for t = T..1 (the last draw is x_0).

    The noise is drawn on the CPU (with ``generator``) and moved to ``device``, so a seed gives the
    same samples on any device."""
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device or "cpu")
    for t in range(model.schedule.T, 0, -1):
        mean, log_var = model(x, torch.full((shape[0],), t, dtype=torch.long, device=x.device))
        x = mean + (0.5 * log_var).exp() * torch.randn(shape, generator=generator, dtype=dtype).to(x.device)
    return x


def gaussian_baseline_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean exact NLL (nats) of ``test`` under N(mean, v I) fitted to ``train`` by maximum likelihood."""
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test must be (N, d) with the same d, got {tuple(train.shape)} and {tuple(test.shape)}")
    train, test = train.double(), test.double()
    mean = train.mean(dim=0)
    var = ((train - mean) ** 2).mean()  # isotropic: one variance for all coordinates
    d = train.shape[1]
    return float((0.5 * d * math.log(2 * math.pi * var) + 0.5 * ((test - mean) ** 2).sum(dim=1) / var).mean())
