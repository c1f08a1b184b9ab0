"""Image degradations for the inverse-problem chapters (SR3, SRDiff, ILVR, CCDF, subspace diffusion):
one module, tested.

All operators act on float image batches ``(N, C, H, W)`` (the book's [-1, 1] scale, though
nothing here depends on the range) and are linear in ``x`` except :func:`add_noise`.

* :func:`downsample` -- bicubic, antialiased (``torch.nn.functional.interpolate(...,
  antialias=True)``: the bicubic kernel is stretched by ``factor`` so it low-passes before
  decimating, as PIL's and MATLAB's ``imresize`` do). This is the "bicubic x4" degradation
  of the super-resolution papers.
* :func:`upsample` -- plain bicubic interpolation (no antialiasing is needed when enlarging).
* :func:`lowpass` -- ``upsample(downsample(x))``, ILVR's phi_N. It is a linear map that keeps
  constants, but it is **not** an exact projection: bicubic down-sampling of a bicubic
  up-sampling is close to, not equal to, the identity (relative error about 2 % on the test
  patches), so a second application still changes the image: ``|lowpass(lowpass(x)) -
  lowpass(x)|`` is about a fifth of ``|lowpass(x) - x|`` on the 32x32 test patches (0.24 for
  factor 2, 0.18 for factor 4; measured in ``tests/test_degradations.py``). Where a chapter
  needs an exact projection it uses the block operators below.
* :func:`block_downsample` -- the mean of each ``factor`` x ``factor`` block (average pooling):
  CCDF's super-resolution measurement; :func:`block_upsample` -- each pixel repeated over a
  ``factor`` x ``factor`` block (nearest up-sampling); :func:`block_lowpass` --
  ``block_upsample(block_downsample(x))``, ILVR's phi_N as the exact orthogonal projection onto
  images constant on blocks (ILVR's and CCDF's data consistency; subspace diffusion's
  down-sampling subspace is the same pair, scaled to an orthonormal basis).
* :func:`gaussian_blur` -- separable Gaussian convolution, kernel radius ``ceil(3 sigma)``,
  reflect padding (keeps constants and the image size).
* :func:`box_mask`, :func:`random_mask` -- inpainting masks, **1 where the pixel is observed,
  0 where it is missing**, shared by all channels of a pixel.
* :func:`add_noise` -- ``x + std * z`` with ``z ~ N(0, I)`` from the given generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FACTORS = (2, 4, 8)


def _check_batch(x, name: str = "x") -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float image batch (N, C, H, W), got shape {tuple(x.shape)} "
                         f"and dtype {x.dtype}")
    return x


def _check_factor(factor) -> int:
    if isinstance(factor, bool) or factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    return int(factor)


def downsample(x, factor: int) -> torch.Tensor:
    """Bicubic, antialiased down-sampling by ``factor`` (2, 4 or 8); H and W must divide by it."""
    x, factor = _check_batch(x), _check_factor(factor)
    height, width = x.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not divisible by factor {factor}")
    return F.interpolate(x, size=(height // factor, width // factor), mode="bicubic",
                         antialias=True, align_corners=False)


def upsample(x, factor: int) -> torch.Tensor:
    """Bicubic up-sampling by ``factor`` (2, 4 or 8)."""
    x, factor = _check_batch(x), _check_factor(factor)
    height, width = x.shape[-2:]
    return F.interpolate(x, size=(height * factor, width * factor), mode="bicubic",
                         align_corners=False)


def lowpass(x, factor: int) -> torch.Tensor:
    """ILVR's phi_N: ``upsample(downsample(x, factor), factor)`` (near-, not exactly, idempotent)."""
    return upsample(downsample(x, factor), factor)


def _check_blocks(x, factor) -> tuple[torch.Tensor, int]:
    x, factor = _check_batch(x), _check_factor(factor)
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"x must be (N, C, H, W) with H and W divisible by {factor}, got shape "
                         f"{tuple(x.shape)}")
    return x, factor


def block_downsample(x, factor: int) -> torch.Tensor:
    """The mean of each ``factor`` x ``factor`` block (2, 4 or 8; H and W must divide by it)."""
    x, factor = _check_blocks(x, factor)
    return F.avg_pool2d(x, factor)


def block_upsample(x, factor: int) -> torch.Tensor:
    """Each pixel spread over a ``factor`` x ``factor`` block (nearest up-sampling; 2, 4 or 8)."""
    x, factor = _check_batch(x), _check_factor(factor)
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def block_lowpass(x, factor: int) -> torch.Tensor:
    """ILVR's phi_N as an exact projector: each block's mean spread over the block.

    ``block_upsample(block_downsample(x, factor), factor)``: linear, symmetric and idempotent,
    the orthogonal projection onto images that are constant on ``factor`` x ``factor`` blocks.
    """
    return block_upsample(block_downsample(x, factor), factor)


def _gaussian_kernel_1d(sigma: float, dtype, device) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels (> 0), reflect padding."""
    x = _check_batch(x)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
    kernel = _gaussian_kernel_1d(float(sigma), x.dtype, x.device)
    radius = kernel.numel() // 2
    if radius >= min(x.shape[-2:]):
        raise ValueError(f"sigma={sigma} needs a kernel radius {radius} smaller than the image "
                         f"side {min(x.shape[-2:])}")
    channels = x.shape[1]
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, kernel.numel())
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, kernel.numel(), 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), rows, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), cols, groups=channels)


def _check_shape(shape) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (N, C, H, W) with positive sizes, got {shape}")
    return shape


def box_mask(shape, height: int, width: int, top: int | None = None,
             left: int | None = None) -> torch.Tensor:
    """Mask (1 = observed) with a missing ``height x width`` box, centred unless top/left given."""
    n, c, h, w = _check_shape(shape)
    if not (1 <= height <= h and 1 <= width <= w):
        raise ValueError(f"box {height}x{width} must fit in the image {h}x{w} with positive sides")
    top = (h - height) // 2 if top is None else top
    left = (w - width) // 2 if left is None else left
    if not (0 <= top <= h - height and 0 <= left <= w - width):
        raise ValueError(f"box at top={top}, left={left} of size {height}x{width} leaves the image {h}x{w}")
    mask = torch.ones(shape)
    mask[:, :, top:top + height, left:left + width] = 0.0
    return mask


def random_mask(shape, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask (1 = observed) with each pixel missing independently with probability ``fraction``."""
    n, c, h, w = _check_shape(shape)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction (of missing pixels) must be in [0, 1], got {fraction!r}")
    keep = torch.rand((n, 1, h, w), generator=generator) >= fraction
    return keep.to(torch.float32).expand(n, c, h, w).contiguous()


def add_noise(x, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + std * z`` with standard normal ``z`` drawn from ``generator`` (``std`` >= 0)."""
    x = _check_batch(x)
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0:
        raise ValueError(f"std must be a non-negative number, got {std!r}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + std * noise.to(x.device)
