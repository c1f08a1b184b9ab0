"""Restoration metrics: how close an image is to its ground truth, pixel by pixel.

:func:`psnr` and :func:`ssim` (Wang et al. 2004) for the super-resolution, inpainting and
compression chapters, and :func:`high_frequency_energy`, the energy above the band a
down-sampled image keeps, which tells a blurry estimate from plausible texture. Re-exported by
:mod:`diffnotes.metrics`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "high_frequency_energy"]


def _check_images(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"x and y must be image batches (N, C, H, W) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dtype), y.to(dtype)


def _reduce(values: torch.Tensor, reduction: str):
    if reduction == "mean":
        return values.mean().item()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def psnr(x, y, data_range: float = 2.0, reduction: str = "mean"):
    """Peak signal-to-noise ratio 10 log10(data_range^2 / MSE) per image, in dB.

    ``data_range`` is max - min of the pixel scale: 2 for the book's [-1, 1] images, 1 for [0, 1],
    255 for bytes. Identical images give ``inf``.
    """
    x, y = _check_images(x, y)
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    return _reduce(10 * torch.log10(data_range**2 / mse), reduction)


def _gaussian_window(win_size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(win_size, dtype=dtype, device=device) - (win_size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x, y, data_range: float = 2.0, win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03, reduction: str = "mean"):
    """Structural similarity (Wang et al. 2004) with their standard settings.

    An 11 x 11 Gaussian window (sigma 1.5) gives local means, variances and the covariance;
    C1 = (k1 L)^2, C2 = (k2 L)^2 with L = ``data_range``. The SSIM map is computed over the
    positions where the window fits ("valid"), averaged over channels and positions per image.
    For 8x8 digits pass a smaller odd ``win_size`` (e.g. 7). Equal to scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
    (checked to 3e-15 where scikit-image is installed).
    """
    x, y = _check_images(x, y)
    if win_size % 2 == 0 or win_size < 3:
        raise ValueError(f"win_size must be an odd number >= 3, got {win_size}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than win_size={win_size}; pass a smaller odd win_size")
    channels = x.shape[1]
    window = _gaussian_window(win_size, sigma, x.dtype, x.device).expand(channels, 1, win_size, win_size)

    def local_mean(t):
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _reduce(ssim_map.flatten(1).mean(dim=1), reduction)


def high_frequency_energy(x, factor: int, reduction: str = "none"):
    """Per-image mean of ``(x - lowpass(x, factor))**2``: the energy above the band that a
    ``factor``-times down-sampled image keeps (``diffnotes.degradations.lowpass``, bicubic).

    The super-resolution chapters compare it between outputs and ground truth: a blurry estimate
    has a ratio well below 1, plausible texture a ratio near 1, added noise a ratio above 1.
    """
    from .degradations import lowpass

    x = torch.as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"x must be an image batch (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return _reduce(((x - lowpass(x, factor)) ** 2).flatten(1).mean(dim=1), reduction)
