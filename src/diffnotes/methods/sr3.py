"""SR3 (Saharia et al. 2021): super-resolution by a denoiser that also sees the low-resolution image.

SR3 trains an ordinary diffusion denoiser on high-resolution images ``x0`` and hands it one extra
input: the low-resolution image, bicubically up-sampled to the output size, ``y_up``, concatenated
with the noisy image along the channel axis. Nothing else changes: the loss is the usual denoising
loss, now an average over pairs ``(x0, y_up)``, and sampling is the usual reverse process with the
same ``y_up`` at every step. The book's version keeps that mechanism and writes it in EDM's
coordinates (``x = x0 + sigma n``, denoiser ``D(x; sigma, y_up)``, :class:`~diffnotes.precond.
EDMPrecond`), so the EDM loss, the Heun sampler and every helper of the engine apply unchanged:

* :class:`ConcatBackbone` -- the channel concatenation: ``F(x_in, c_noise, y) = UNet([x_in, y])``.
  The condition travels through the ``class_labels`` argument that preconditioners and
  ``diffnotes.train.fit`` already pass along (a ``(x0, y_up)`` pair of tensors is a data set fit
  can draw from).
* :func:`sr3_denoiser` -- ``EDMPrecond(ConcatBackbone(UNet(in_channels=6, out_channels=3)))``,
  the U-Net from ``diffnotes.presets.small_unet`` (the labs' one small-U-Net builder).
* :func:`super_resolve` -- the sampler: ``diffnotes.sampling.sample`` run on ``D(.; ., y_up)``.
* :class:`Regressor` and :func:`regression_loss` -- the paper's regression baseline: the *same*
  network (same weights' shapes, the noisy-image channels fed zeros and ``c_noise`` fixed) trained
  by mean squared error to output ``x0`` from ``y_up`` in one pass.
* :func:`sr_metrics` -- PSNR, SSIM, consistency (PSNR of the down-sampled output against the
  low-resolution input) and the high-frequency energy ratio to the ground truth, per image.
* :class:`DetailKernel` -- a distributional score: the unbiased kernel distance (MMD^2,
  :func:`diffnotes.metrics.mmd`) between sets of patches, read on texture statistics
  (:func:`detail_statistics`) of their *detail* (:func:`detail`, what the input does not
  determine), scaled once on training patches; the same score between two disjoint sets of real
  patches is its real-vs-real band.
* :func:`sample_spread` and :func:`pearson` -- how much several samples for one input differ,
  and whether that spread follows the truth's detail across inputs.

The degradation is :func:`diffnotes.degradations.downsample` (bicubic, antialiased); ``y_up`` is
:func:`diffnotes.degradations.upsample` of it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .. import constants as K
from ..degradations import downsample, upsample
from ..metrics import high_frequency_energy, mmd, psnr, ssim
from ..nets import UNet
from ..precond import EDMPrecond
from ..presets import small_unet
from ..sampling import sample, sigma_schedule
from .edm import EDMLoss

__all__ = ["ConcatBackbone", "sr3_denoiser", "sr_pairs", "super_resolve", "Regressor", "MeanShift",
           "regression_loss", "sr_metrics", "scaled_edm", "detail",
           "detail_statistics", "DetailKernel", "sample_spread", "pearson"]


class ConcatBackbone(nn.Module):
    """``F(x_in, c_noise, class_labels=y) = unet(concat([x_in, y], channels), c_noise)``.

    ``y`` is the condition image at the output resolution (SR3: the up-sampled low-resolution
    image); ``unet.in_channels`` must equal the channels of ``x_in`` plus those of ``y``.
    """

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None = None):
        y = class_labels
        if not isinstance(y, torch.Tensor) or y.ndim != 4 or y.shape[0] != x_in.shape[0] \
                or y.shape[-2:] != x_in.shape[-2:] or x_in.shape[1] + y.shape[1] != self.unet.in_channels:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"the condition must be an image batch of shape ({x_in.shape[0]}, "
                             f"{self.unet.in_channels - x_in.shape[1]}, {x_in.shape[-2]}, "
                             f"{x_in.shape[-1]}) (passed as class_labels), got {got}")
        return self.unet(torch.cat([x_in, y.to(x_in.dtype)], dim=1), c_noise)


def sr3_denoiser(resolution: int, *, ch: int = 16, ch_mult: Sequence[int] = (1, 2),
                 sigma_data: float = K.EDM_SIGMA_DATA, residual: bool = False) -> nn.Module:
    """SR3's conditional denoiser ``D(x; sigma, y_up)`` for RGB images of side ``resolution``.

    ``residual=True`` wraps it in :class:`MeanShift` around ``y_up`` (pass the residual's
    standard deviation as ``sigma_data`` then)."""
    unet = small_unet(resolution, 6, out_channels=3, ch=ch, ch_mult=ch_mult)
    inner = EDMPrecond(ConcatBackbone(unet), sigma_data=sigma_data)
    return MeanShift(inner) if residual else inner


def scaled_edm(sigma_data: float) -> tuple[EDMLoss, float, float]:
    """EDM's training noise distribution and sampling range moved to data of scale ``sigma_data``.

    EDM's constants (ln sigma ~ N(-1.2, 1.2^2), sigma in [0.002, 80]) are set for
    ``sigma_data = 0.5``. Scaling every sigma by ``sigma_data / 0.5`` keeps the signal-to-noise
    ratios the same for data of another scale (a residual of standard deviation 0.15, say):
    returns ``(loss, sigma_min, sigma_max)``.
    """
    scale = sigma_data / K.EDM_SIGMA_DATA
    loss = EDMLoss(P_mean=K.EDM_P_MEAN + math.log(scale), sigma_data=sigma_data)
    return loss, K.EDM_SIGMA_MIN * scale, K.EDM_SIGMA_MAX * scale


def sr_pairs(hr: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hr, y_up)``: the training pairs, ``y_up = upsample(downsample(hr, factor), factor)``."""
    return hr, upsample(downsample(hr, factor), factor)


@torch.no_grad()
def super_resolve(denoiser, y: torch.Tensor, *, steps: int = 18, solver: str = "heun",
                  sigma_min: float = K.EDM_SIGMA_MIN, sigma_max: float = K.EDM_SIGMA_MAX,
                  generator: torch.Generator | None = None, factor: int = 1) -> torch.Tensor:
    """One sample of ``p(x0 | y)`` per row of the condition ``y``: the reverse process from pure
    noise, with ``y`` fed to the denoiser at every step (EDM's schedule, ``steps`` noise levels).
    The output is ``factor`` times larger than ``y`` (1 for SR3's ``y_up``; SRDiff's ``y`` is
    the low-resolution image itself)."""
    sigmas = sigma_schedule("karras", steps, sigma_min, sigma_max)
    shape = (*y.shape[:2], y.shape[-2] * factor, y.shape[-1] * factor)
    noise = torch.randn(shape, generator=generator, dtype=y.dtype).to(y.device)
    return sample(lambda x, sigma: denoiser(x, sigma, y), noise * sigma_max, sigmas, solver,
                  generator=generator)


class MeanShift(nn.Module):
    """``D_x(x; sigma, y) = mu(y) + D_r(x - mu(y); sigma, y)``: a denoiser of the residual
    ``r0 = x0 - mu(y)`` used as a denoiser of ``x0``.

    Under a process without scaling (VE / EDM) this is the *same* model as a plain denoiser of
    ``x0`` -- the proof ``srdiff_residual_shift`` -- with another parameterisation: the network
    outputs a correction to ``mu(y)`` (SR3 here: ``mu(y) = y_up``; SRDiff: the up-sampled
    low-resolution image computed from ``y``). ``shift(y)`` computes ``mu(y)``.
    """

    def __init__(self, inner: nn.Module, shift=None):
        super().__init__()
        self.inner, self.shift = inner, shift

    def mean(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.shift is None else self.shift(y)

    def forward(self, x: torch.Tensor, sigma, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(class_labels, torch.Tensor):
            raise ValueError(f"MeanShift needs the condition (class_labels), got {type(class_labels).__name__}")
        mu = self.mean(class_labels).to(x.dtype)
        if mu.shape != x.shape:
            raise ValueError(f"the shift mu(condition) has shape {tuple(mu.shape)} but x has shape "
                             f"{tuple(x.shape)}: pass the condition this model expects")
        return mu + self.inner(x - mu, sigma, class_labels)


class Regressor(nn.Module):
    """The regression baseline: ``x0_hat = F(0, c_noise=0, y_up)`` with SR3's own backbone
    (``residual=True``: ``x0_hat = y_up + F(...)``, the same output parameterisation as
    :class:`MeanShift` gives the diffusion model)."""

    def __init__(self, backbone: ConcatBackbone, residual: bool = False):
        super().__init__()
        self.backbone, self.residual = backbone, residual

    def forward(self, y_up: torch.Tensor) -> torch.Tensor:
        channels = self.backbone.unet.in_channels - y_up.shape[1]
        blank = y_up.new_zeros((y_up.shape[0], channels, *y_up.shape[-2:]))
        out = self.backbone(blank, y_up.new_zeros(y_up.shape[0]), class_labels=y_up)
        return y_up + out if self.residual else out


def regression_loss(model: Regressor, x0: torch.Tensor, y_up: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error of the regressor (the ``fit`` loss contract)."""
    return ((model(y_up) - x0) ** 2).flatten(1).mean(dim=1)


def sr_metrics(output: torch.Tensor, hr: torch.Tensor, factor: int) -> dict[str, float]:
    """Mean PSNR and SSIM against ``hr``, consistency (PSNR of ``downsample(output)`` against
    ``downsample(hr)``, the input) and the high-frequency energy ratio ``E_hf(output) / E_hf(hr)``
    (1 for a perfect texture level, below 1 for blur; see ``metrics.high_frequency_energy``)."""
    win = 7 if hr.shape[-1] < 32 else 11
    return {
        "psnr": psnr(output, hr),
        "ssim": ssim(output, hr, win_size=win),
        "consistency": psnr(downsample(output, factor), downsample(hr, factor)),
        "hf_ratio": (high_frequency_energy(output, factor).sum()
                     / high_frequency_energy(hr, factor).sum()).item(),
    }


def detail(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``x - upsample(downsample(x))``: the part of an image the low-resolution input does not
    fix, which a super-resolver has to invent (near 0 for a bicubic image)."""
    return x - upsample(downsample(x, factor), factor)


def detail_statistics(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Four texture statistics of each patch's :func:`detail` ``d``, shape ``(N, 4)``: the log of
    its mean square, the share of its energy off the grey axis (colour), and its correlation
    between horizontal and between vertical neighbours (about -0.1 to 0 for white noise,
    positive for edges and smooth texture)."""
    d = detail(x, factor)
    energy = d.pow(2).flatten(1).sum(1).clamp_min(1e-12)
    colour = (d - d.mean(dim=1, keepdim=True)).pow(2).flatten(1).sum(1) / energy
    across = (d[..., 1:] * d[..., :-1]).flatten(1).sum(1) / energy
    down = (d[..., 1:, :] * d[..., :-1, :]).flatten(1).sum(1) / energy
    log_ms = (energy / d[0].numel()).log()
    return torch.stack([log_ms, colour, across, down], dim=1)


class DetailKernel:
    """A kernel distance between sets of patches, read on their detail's texture statistics.

    ``DetailKernel(reference, factor)`` standardises :func:`detail_statistics` with the mean and
    spread of ``reference`` patches (a training set, fixed before any model is scored) and sets
    RBF bandwidths at ``scales`` times the median distance between them. ``distance(outputs,
    real)`` is the unbiased MMD^2 (:func:`diffnotes.metrics.mmd`): 0 in expectation when both
    sets come from one distribution, and it can dip below 0.
    """

    def __init__(self, reference: torch.Tensor, factor: int,
                 scales: Sequence[float] = (0.5, 1.0, 2.0)):
        self.factor = factor
        stats = detail_statistics(reference, factor)
        self.mean, self.std = stats.mean(0), stats.std(0).clamp_min(1e-8)
        z = self.features(reference)
        dist = torch.cdist(z, z)
        med = dist[~torch.eye(len(z), dtype=torch.bool)].median().item()
        if not med > 0:
            raise ValueError("DetailKernel: the reference patches' statistics are all equal")
        self.bandwidths = tuple(med * float(s) for s in scales)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return (detail_statistics(x, self.factor) - self.mean) / self.std

    def distance(self, outputs: torch.Tensor, real: torch.Tensor) -> float:
        if outputs.shape[1:] != real.shape[1:]:
            raise ValueError(f"outputs {tuple(outputs.shape)} and real {tuple(real.shape)} "
                             "must be patches of one shape")
        return mmd(self.features(outputs), self.features(real), bandwidths=self.bandwidths)


def sample_spread(samples: torch.Tensor) -> torch.Tensor:
    """Per input, the per-pixel standard deviation over ``K`` samples, averaged over pixels:
    ``samples`` has shape ``(K, N, C, H, W)`` (K >= 2); returns ``(N,)`` (0 for a regressor)."""
    if samples.ndim != 5 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (K >= 2, N, C, H, W), got {tuple(samples.shape)}")
    return samples.std(dim=0).flatten(1).mean(dim=1)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two 1-D sets of values (``nan`` when one is constant)."""
    a, b = torch.as_tensor(a, dtype=torch.float64).flatten(), torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"pearson: two sets of equal size >= 2, got {a.numel()} and {b.numel()}")
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return (a @ b).item() / den if den > 0 else math.nan
