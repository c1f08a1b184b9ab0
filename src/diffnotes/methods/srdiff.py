"""SRDiff (Li et al. 2022): diffuse the residual ``x0 - up(lr)``, conditioned on a low-resolution encoder.

Two changes relative to SR3 (:mod:`diffnotes.methods.sr3`):

* **The residual.** The model generates ``r0 = x0 - up(lr)`` (``up``: bicubic up-sampling of the
  low-resolution input ``lr``) and returns ``up(lr) + r0``. In the book's EDM coordinates this is
  :class:`~diffnotes.methods.sr3.MeanShift` with ``mu(lr) = up(lr)``; the proof
  ``srdiff_residual_shift`` shows that under a process without scaling it is the same model as a
  plain denoiser of ``x0``, differently parameterised, and that in DDPM's bound only the prior
  term moves. The preconditioning's ``sigma_data`` is the residual's standard deviation.
* **The encoder.** The condition is not the up-sampled image but features of ``lr`` computed at
  low resolution (SRDiff: a pretrained RRDB network; here :class:`LREncoder`, three small
  convolutions trained jointly with the denoiser), up-sampled to the output size and
  concatenated with the noisy residual (:class:`EncoderBackbone`).

The U-Net is ``diffnotes.presets.small_unet``. The lab reads SRDiff against SR3 at its best
(``sr3_denoiser(..., residual=True)``: the same residual around ``y_up``, the up-sampled input
concatenated instead of the encoder) with the SR3 lab's scores, realism after a quarter, a half
and all of the training budget included (``diffnotes.recipes.fit_in_stages``). Untrained, the
two are one function, ``up(lr) + c_skip (x - up(lr))``, so one untrained sampler is the control
of both.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn

from ..degradations import downsample, upsample
from ..nets import UNet
from ..precond import EDMPrecond
from ..presets import small_unet
from .sr3 import MeanShift

__all__ = ["LREncoder", "EncoderBackbone", "srdiff_denoiser", "srdiff_pairs", "residual_std"]


class LREncoder(nn.Module):
    """Features of the low-resolution image, computed at its own size and up-sampled by ``factor``."""

    def __init__(self, factor: int, in_channels: int = 3, hidden: int = 16, out_channels: int = 3):
        super().__init__()
        self.factor = factor
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, out_channels, 3, padding=1))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return upsample(self.net(lr), self.factor)


class EncoderBackbone(nn.Module):
    """``F(x_in, c_noise, class_labels=lr) = unet(concat([x_in, encoder(lr)]), c_noise)``."""

    def __init__(self, encoder: LREncoder, unet: UNet):
        super().__init__()
        self.encoder, self.unet = encoder, unet

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None = None):
        lr = class_labels
        f = self.encoder.factor
        if not isinstance(lr, torch.Tensor) or lr.ndim != 4 or lr.shape[0] != x_in.shape[0] \
                or lr.shape[-1] * f != x_in.shape[-1] or lr.shape[-2] * f != x_in.shape[-2]:
            got = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
            raise ValueError(f"the condition must be the low-resolution batch of shape ({x_in.shape[0]}, C, "
                             f"{x_in.shape[-2] // f}, {x_in.shape[-1] // f}) (passed as class_labels), got {got}")
        return self.unet(torch.cat([x_in, self.encoder(lr).to(x_in.dtype)], dim=1), c_noise)


def srdiff_denoiser(resolution: int, factor: int, sigma_data: float, *, ch: int = 16,
                    ch_mult: Sequence[int] = (1, 2), hidden: int = 16, features: int = 3) -> MeanShift:
    """``D(x; sigma, lr) = up(lr) + D_r(x - up(lr); sigma, enc(lr))`` for RGB images of side
    ``resolution``; ``sigma_data`` is the residual's standard deviation (see :func:`residual_std`).
    With ``features=3`` the U-Net is SR3's own (6 input channels); the encoder adds its weights."""
    encoder = LREncoder(factor, hidden=hidden, out_channels=features)
    unet = small_unet(resolution, 3 + features, out_channels=3, ch=ch, ch_mult=ch_mult)
    return MeanShift(EDMPrecond(EncoderBackbone(encoder, unet), sigma_data=sigma_data),
                     shift=partial(upsample, factor=factor))


def srdiff_pairs(hr: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hr, lr)``: the training pairs of SRDiff, ``lr = downsample(hr, factor)``."""
    return hr, downsample(hr, factor)


def residual_std(hr: torch.Tensor, factor: int) -> float:
    """Standard deviation of ``hr - up(down(hr))`` over a data set: the residual's sigma_data."""
    return (hr - upsample(downsample(hr, factor), factor)).std().item()
