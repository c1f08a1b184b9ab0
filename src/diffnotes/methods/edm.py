"""Denoising score-matching losses of the three formulations compared by EDM (Karras et al. 2022).

Each loss draws a noise level per sample from its training distribution p_train(sigma), adds
noise, and weights the squared denoising error by lambda(sigma) (EDM Table 1, "Training"):

    loss = lambda(sigma) * || D(y + n; sigma) - y ||^2,   n ~ N(0, sigma^2 I)

The squared error is averaged over the non-batch dimensions, so the returned tensor has shape
(N,) and its scale does not grow with image size (NVlabs/edm sums instead; only the learning-rate
scale differs). Randomness comes from torch's global generator, which ``diffnotes.train.fit``
seeds and checkpoints.

Used in the book by the EDM chapter, the VP (DDPM++) and VE (NCSN++) lab notebooks, and
``python -m diffnotes train --method edm|vp|ve``.
"""

from __future__ import annotations

import torch

from ..precond import vp_sigma

__all__ = ["EDMLoss", "VPLoss", "VELoss", "LOSSES"]


def _per_sample(weight: torch.Tensor, D_yn: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (weight * (D_yn - y) ** 2).flatten(1).mean(dim=1)


def _noise_level_shape(y: torch.Tensor) -> tuple[int, ...]:
    return (y.shape[0],) + (1,) * (y.ndim - 1)


class VPLoss:
    """VP (DDPM++, Song et al. 2021): t ~ U(epsilon_t, 1), sigma = sigma_VP(t), lambda = 1/sigma^2."""

    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, epsilon_t: float = 1e-5):
        self.beta_d, self.beta_min, self.epsilon_t = beta_d, beta_min, epsilon_t

    def __call__(self, model, x0, class_labels=None):
        rnd_uniform = torch.rand(_noise_level_shape(x0), device=x0.device)
        sigma = vp_sigma(1 + rnd_uniform * (self.epsilon_t - 1), self.beta_d, self.beta_min)
        weight = 1 / sigma**2
        n = torch.randn_like(x0) * sigma
        D_yn = model(x0 + n, sigma.flatten(), class_labels)
        return _per_sample(weight, D_yn, x0)


class VELoss:
    """VE (NCSN++ / SMLD): log sigma ~ U(log sigma_min, log sigma_max), lambda = 1/sigma^2."""

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def __call__(self, model, x0, class_labels=None):
        rnd_uniform = torch.rand(_noise_level_shape(x0), device=x0.device)
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** rnd_uniform
        weight = 1 / sigma**2
        n = torch.randn_like(x0) * sigma
        D_yn = model(x0 + n, sigma.flatten(), class_labels)
        return _per_sample(weight, D_yn, x0)


class EDMLoss:
    """EDM: ln sigma ~ N(P_mean, P_std^2), lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def __call__(self, model, x0, class_labels=None):
        rnd_normal = torch.randn(_noise_level_shape(x0), device=x0.device)
        sigma = (rnd_normal * self.P_std + self.P_mean).exp()
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        n = torch.randn_like(x0) * sigma
        D_yn = model(x0 + n, sigma.flatten(), class_labels)
        return _per_sample(weight, D_yn, x0)


LOSSES = {"edm": EDMLoss, "vp": VPLoss, "ve": VELoss}
