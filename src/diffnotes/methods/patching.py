"""Patched diffusion (Luhman & Luhman 2022): the U-Net sees p x p patches folded into channels.

The image (N, C, H, W) is rearranged by space-to-depth into (N, C p^2, H/p, W/p) before the
backbone and back by depth-to-space after it (``torch.nn.functional.pixel_unshuffle`` and
``pixel_shuffle``). Nothing else changes: the same loss, noise levels, preconditioning and
sampler. The rearrangement only permutes coordinates, so it is an orthogonal map: it keeps the
squared error of every denoising loss and maps N(0, sigma^2 I) noise to itself
(``diffnotes.theory.proofs.efficiency_proofs``). What it buys is a network that runs at a p
times smaller resolution, so every evaluation costs less.

This module holds

* :class:`PatchedBackbone` -- wraps any image backbone ``F(x, c_noise, class_labels)``;
* :func:`patched_unet` -- the same U-Net configuration at patch size 1, 2 or 4 (resolution
  divided by p, input/output channels multiplied by p^2);
* :func:`patch_permutation` -- the permutation that space-to-depth applies, as an index tensor
  (the proof checks its matrix; the tests check it against ``pixel_unshuffle``);
* :func:`activation_elements` and :func:`images_per_second` -- the memory and throughput
  measurements of the lab.

Used in the book by ``book/papers/luhman2022improving.md`` and
``notebooks/luhman2022improving.ipynb``.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import UNet

__all__ = ["PATCH_SIZES", "PatchedBackbone", "patched_unet", "patch_permutation", "activation_elements",
           "images_per_second", "train_images_per_second"]

PATCH_SIZES = (1, 2, 4)


def _check_patch(patch: int) -> int:
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
        raise ValueError(f"patch must be a positive integer (1 = no patching), got {patch!r}")
    return patch


class PatchedBackbone(nn.Module):
    """``F_patched(x) = depth_to_space(F(space_to_depth(x)))`` for any image backbone ``F``.

    ``backbone`` must take ``C p^2`` channels at resolution ``H / p`` and return as many.
    """

    def __init__(self, backbone: nn.Module, patch: int):
        super().__init__()
        self.backbone, self.patch = backbone, _check_patch(patch)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, class_labels=None) -> torch.Tensor:
        p = self.patch
        if x.ndim != 4 or x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"PatchedBackbone(patch={p}) needs images (N, C, H, W) with H and W "
                             f"divisible by {p}, got shape {tuple(x.shape)}")
        h = self.backbone(F.pixel_unshuffle(x, p), c_noise, class_labels=class_labels)
        return F.pixel_shuffle(h, p)


def patched_unet(patch: int, img_resolution: int, in_channels: int = 1, **unet_kwargs) -> PatchedBackbone:
    """One U-Net configuration at patch size ``patch``: resolution ``img_resolution / patch`` and
    ``in_channels * patch^2`` channels in and out; every other setting (widths, depth,
    attention levels given in *patched* resolutions) comes from ``unet_kwargs``."""
    patch = _check_patch(patch)
    if img_resolution % patch:
        raise ValueError(f"img_resolution {img_resolution} is not divisible by patch {patch}")
    net = UNet(img_resolution=img_resolution // patch, in_channels=in_channels * patch**2, **unet_kwargs)
    return PatchedBackbone(net, patch)


def patch_permutation(channels: int, height: int, width: int, patch: int) -> torch.Tensor:
    """Index ``perm`` with ``pixel_unshuffle(x, patch).flatten(1) == x.flatten(1)[:, perm]``.

    Output channel ``c p^2 + i p + j`` at ``(h, w)`` holds input pixel ``(c, h p + i, w p + j)``.
    """
    patch = _check_patch(patch)
    if height % patch or width % patch:
        raise ValueError(f"height {height} and width {width} must be divisible by patch {patch}")
    c, i, j, h, w = torch.meshgrid(torch.arange(channels), torch.arange(patch), torch.arange(patch),
                                   torch.arange(height // patch), torch.arange(width // patch), indexing="ij")
    return (c * height * width + (h * patch + i) * width + (w * patch + j)).reshape(-1)


def activation_elements(model: nn.Module, *inputs) -> int:
    """Elements of every tensor that ``model``'s leaf modules output in one forward pass of
    ``inputs`` (no gradients): the activations a training step keeps for its backward pass,
    counted exactly rather than read off an allocator."""
    total = 0

    def count(_module, _args, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def _timed(fn: Callable[[], None], repeats: int, clock: Callable[[], float]) -> float:
    fn()  # warm-up (allocator, lazy init)
    start = clock()
    for _ in range(repeats):
        fn()
    return (clock() - start) / repeats


def images_per_second(denoiser: Callable, shape, *, repeats: int = 3, seed: int = 0,
                      clock: Callable[[], float] = time.process_time) -> float:
    """Denoiser evaluations per second, in images: ``shape[0]`` images per call, no gradients.

    ``clock`` defaults to this process's CPU time, which other jobs on a shared machine do not
    inflate (with one thread it is the compute spent; with several it sums them); pass
    ``time.perf_counter`` for wall time, and synchronise first on a GPU.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    sigma = torch.ones(shape[0])

    def call():
        with torch.no_grad():
            denoiser(x, sigma)

    return shape[0] / _timed(call, repeats, clock)


def train_images_per_second(model: nn.Module, loss_fn: Callable, x0: torch.Tensor, *, repeats: int = 3,
                            lr: float = 1e-3, clock: Callable[[], float] = time.process_time) -> float:
    """Training throughput in images per second of ``clock`` (as in :func:`images_per_second`):
    forward, backward and an Adam step on a batch ``x0``, timed on a copy of ``model`` (the
    caller's weights are not touched)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    work = copy.deepcopy(model)
    opt = torch.optim.Adam(work.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(work, x0).mean().backward()
        opt.step()

    return x0.shape[0] / _timed(step, repeats, clock)
