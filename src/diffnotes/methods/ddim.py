"""DDIM (Song, Meng & Ermon 2021): what is specific to DDIM beyond the ``"ddim"`` solver.

The DDIM sampler itself (eq. 12, with eta interpolating between the deterministic implicit model,
eta = 0, and DDPM's ancestral sampler, eta = 1) lives in ``diffnotes.sampling`` as the ``"ddim"``
solver. In EDM coordinates (x = x0 + sigma n) its eta = 0 step is one Euler step of the
probability-flow ODE ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al. 2022, Sec. 3;
``diffnotes.theory.proofs``). This module adds the two uses of that determinism the paper shows:

* :func:`encode` — run the deterministic map backwards, x0 -> x_T (DDIM Sec. 5.4, "reconstruction
  from latent space"): Euler steps of the same ODE with increasing sigma.
* :func:`slerp` and :func:`interpolate` — spherical interpolation between two latents and decoding
  of every intermediate point (DDIM Sec. 5.3, "interpolation in deterministic generative
  processes"; the slerp is the one of White 2016 that DDIM uses).

Latents are returned in EDM units (``x = x_T * sqrt(1 + sigma_T^2)`` for DDPM's x_T ~ N(0, I)),
the same units ``diffnotes.sampling.sample`` starts from.

Used in the book by ``book/papers/song2021denoising.md`` and ``notebooks/song2021denoising.ipynb``.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffnotes.sampling import sample, to_d

__all__ = ["encode", "decode", "slerp", "interpolate"]

Denoiser = Callable[..., torch.Tensor]


def _check_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    sigmas = torch.as_tensor(sigmas)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of at least 2 noise levels, got shape {tuple(sigmas.shape)}")
    if bool((sigmas[1:] >= sigmas[:-1]).any()) or float(sigmas[-1]) != 0.0:
        raise ValueError("sigmas must be strictly decreasing and end with 0 (the sampling ladder)")
    return sigmas


def _sigma_batch(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(dtype=x.dtype, device=x.device).expand(x.shape[0])


@torch.no_grad()
def encode(denoiser: Denoiser, x0: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Deterministic encoding x0 -> latent at sigmas[0], the reverse of eta = 0 DDIM on ``sigmas``.

    ``sigmas`` is the decoding ladder (decreasing, ending in 0). The clean image is placed at the
    smallest positive level sigmas[-2] (an O(sigma_min) approximation, as in DDIM's own encoder,
    which starts the network at its first step) and carried up the ladder by Euler steps of the
    PF-ODE with the slope taken at the current, lower noise level:

        x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (x_i - D(x_i; sigma_i)) / sigma_i.

    Decoding with the eta = 0 sampler takes the slope at the upper level instead, so encode then
    decode is the identity only up to the solver's step error; it shrinks as the ladder gets finer
    (DDIM Table 2 shows the same).
    """
    sigmas = _check_sigmas(sigmas)
    ladder = torch.flip(sigmas[:-1], dims=[0])  # sigma_min < ... < sigma_max
    x = x0.clone()
    for sigma_cur, sigma_next in zip(ladder[:-1], ladder[1:]):
        denoised = denoiser(x, _sigma_batch(sigma_cur, x))
        d_cur = to_d(x, sigma_cur.to(x.dtype), denoised)
        x = x + (sigma_next - sigma_cur).to(x.dtype) * d_cur
    return x


@torch.no_grad()
def decode(denoiser: Denoiser, latent: torch.Tensor, sigmas: torch.Tensor, **options) -> torch.Tensor:
    """Deterministic decoding latent -> x0: ``diffnotes.sampling``'s ``"ddim"`` solver with eta = 0."""
    sigmas = _check_sigmas(sigmas)
    options.setdefault("eta", 0.0)
    return sample(denoiser, latent, sigmas.to(device=latent.device, dtype=latent.dtype), solver="ddim", **options)


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha) -> torch.Tensor:
    """Spherical linear interpolation between two latents (DDIM Sec. 5.3).

    ``z = sin((1 - a) theta) / sin(theta) z0 + sin(a theta) / sin(theta) z1`` with ``theta`` the
    angle between the flattened ``z0`` and ``z1``. Gaussian latents in high dimension concentrate
    on a sphere; slerp keeps the interpolants there while a straight line would shrink their norm.
    ``alpha`` is a number or a 1-D tensor of K values; the result has shape (K, *z0.shape).
    """
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    alpha = torch.as_tensor(alpha, dtype=z0.dtype, device=z0.device).reshape(-1)
    a, b = z0.reshape(-1), z1.reshape(-1)
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    view = (-1,) + (1,) * z0.ndim
    if float(theta) < 1e-6:  # (anti)parallel to working precision: the straight line is the arc
        w0, w1 = 1 - alpha, alpha
    else:
        w0 = torch.sin((1 - alpha) * theta) / torch.sin(theta)
        w1 = torch.sin(alpha * theta) / torch.sin(theta)
    return w0.reshape(view) * z0.unsqueeze(0) + w1.reshape(view) * z1.unsqueeze(0)


@torch.no_grad()
def interpolate(denoiser: Denoiser, latent_a: torch.Tensor, latent_b: torch.Tensor, sigmas: torch.Tensor,
                num: int = 8, **options) -> torch.Tensor:
    """Decode ``num`` slerp interpolants between two single latents (shape (*sample_shape))."""
    if num < 2:
        raise ValueError(f"num must be >= 2 (the two end points), got {num}")
    alphas = torch.linspace(0, 1, num, dtype=latent_a.dtype)
    return decode(denoiser, slerp(latent_a, latent_b, alphas), sigmas, **options)
