"""ILVR (Choi et al. 2021): steer an unconditional diffusion model towards a reference image.

At every reverse step the sample's low-frequency content is replaced by that of the reference
diffused to the same noise level (the paper's Algorithm 1, written in sigma):

    x  <-  x - phi_N(x) + phi_N(y + sigma n),   n ~ N(0, I) drawn afresh at each step,

for every step whose new level ``sigma`` lies in the conditioning range ``[sigma_stop, sigma_max]``;
below ``sigma_stop`` the chain runs unconditioned. ``phi_N`` is a low-pass filter with factor N:

* ``"block"`` -- :func:`diffnotes.degradations.block_lowpass`, the mean over N x N blocks spread back over each block
  (average-pool down, nearest up). It is linear, symmetric and exactly idempotent: the
  orthogonal projection onto images that are constant on N x N blocks, which is what the
  paper's analysis assumes of phi_N (proof ``ilvr_projection`` in
  ``diffnotes.theory.proofs.inverse_proofs``). The book's lab uses it.
* ``"bicubic"`` -- :func:`diffnotes.degradations.lowpass` (bicubic down, bicubic up), closer to
  the paper's code, but only nearly idempotent, so the update is not an exact projection.

The same "replace the part an operator sees" step is CCDF's data consistency for
super-resolution and inpainting (:mod:`diffnotes.methods.ccdf`), so :class:`ProjectionRefine`
serves both. The refinement runs inside :func:`diffnotes.sampling.sample_ancestral` through its
``refine`` hook (DDPM's ancestral step, as in the paper).

Also here: the two measures of the ILVR lab (:func:`lowpass_psnr`, :func:`diversity`). The one
unconditional EDM denoiser per seed that the ILVR and CCDF labs train and reuse for every
experiment comes from ``diffnotes.recipes.train_unconditional`` (a small U-Net of
``diffnotes.presets.small_unet``).
"""

from __future__ import annotations

import torch

from .. import degradations
from ..metrics import psnr
from ..sampling import sample

__all__ = ["LOWPASS", "get_lowpass", "ProjectionRefine", "ilvr_sample",
           "lowpass_psnr", "diversity"]


LOWPASS = {"block": degradations.block_lowpass, "bicubic": degradations.lowpass}


def get_lowpass(name: str, factor: int):
    """phi_N as a one-argument function: ``name`` "block" (exact projector) or "bicubic"."""
    if name not in LOWPASS:
        raise ValueError(f"unknown low-pass {name!r}; valid: {', '.join(LOWPASS)}")
    return lambda x: LOWPASS[name](x, factor)


class ProjectionRefine:
    """``refine(x, sigma)``: x - P x + P (y + sigma n) while ``sigma >= sigma_stop``.

    ``project`` is a linear map P (ILVR's phi_N, an inpainting mask's multiplication, ...),
    ``reference`` the image y whose P-part the sample must take (diffused to the sample's level
    with fresh noise from ``generator`` at each call). At sigma = 0 the reference is used as is,
    so a range that reaches 0 ends with P x = P y exactly when P is idempotent.
    """

    def __init__(self, project, reference: torch.Tensor, sigma_stop: float = 0.0,
                 generator: torch.Generator | None = None):
        if not sigma_stop >= 0:
            raise ValueError(f"sigma_stop must be >= 0, got {sigma_stop!r}")
        self.project, self.reference = project, reference
        self.sigma_stop, self.generator = float(sigma_stop), generator

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        if sigma < self.sigma_stop:
            return x
        y_sigma = degradations.add_noise(self.reference, float(sigma), self.generator)
        return x - self.project(x) + self.project(y_sigma.to(x.dtype))


def ilvr_sample(denoiser, reference: torch.Tensor, sigmas, *, factor: int, sigma_stop: float = 0.0,
                lowpass: str = "block", generator: torch.Generator | None = None) -> torch.Tensor:
    """One ILVR sample per reference image: ancestral sampling from ``sigmas[0]`` (pure noise)
    with the low-frequency replacement in the range [``sigma_stop``, ``sigmas[0]``]."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    refine = ProjectionRefine(get_lowpass(lowpass, factor), reference, sigma_stop, generator)
    x = degradations.add_noise(torch.zeros_like(reference), float(sigmas[0]), generator)
    return sample(denoiser, x, sigmas, "ancestral", refine=refine, generator=generator)


def lowpass_psnr(samples: torch.Tensor, reference: torch.Tensor, factor: int,
                 lowpass: str = "block") -> torch.Tensor:
    """Per-image PSNR (dB, range [-1, 1]) between phi_N(sample) and phi_N(reference)."""
    phi = get_lowpass(lowpass, factor)
    return psnr(phi(samples), phi(reference), reduction="none")


def diversity(samples: torch.Tensor, groups: int) -> torch.Tensor:
    """Spread between samples drawn for one reference: ``samples`` holds ``groups`` blocks of
    ``k`` samples (k >= 2, block j for reference j); per block, the root-mean-square distance
    per pixel between two samples of the block, averaged over the pairs. Shape (groups,)."""
    n = samples.shape[0]
    if groups < 1 or n % groups or n // groups < 2:
        raise ValueError(f"need groups >= 1 blocks of >= 2 samples each, got {n} samples in "
                         f"{groups} groups")
    flat = samples.reshape(groups, n // groups, -1)
    d2 = torch.cdist(flat, flat) ** 2 / flat.shape[-1]  # (groups, k, k), mean sq. per pixel
    k = flat.shape[1]
    return (d2.sum(dim=(1, 2)) / (k * (k - 1))).sqrt()
