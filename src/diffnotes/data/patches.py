"""Natural-image patches: 32x32 (or 16x16) RGB patches of the two photographs scikit-learn ships.

Why these images: ``sklearn.datasets.load_sample_images`` returns two colour photographs,
``china.jpg`` (a temple with trees and sky) and ``flower.jpg`` (a flower close-up), that are
installed with scikit-learn itself -- no download at run time, the same bytes on every machine
with the pinned scikit-learn, free to use (see their README in ``sklearn/datasets/images``). The
8x8 digits are too small for x4 super-resolution; these photographs give real textures, edges
and flat regions. Training patches come from one photograph and test patches from the other, so
a test score measures generalisation to an unseen image, not memorisation of overlapping crops.

The extraction, fully deterministic:

* both photographs are 427 x 640 pixels (H x W), uint8 RGB, scaled to [-1, 1];
* ``split="train"``: ``china.jpg``, 32x32 patches on a grid of stride 16 (overlapping) starting
  at the top-left pixel: 25 rows x 39 columns = **975 patches**;
* ``split="test"``: ``flower.jpg``, 32x32 patches on a grid of stride 32 (non-overlapping, so
  test patches share no pixels): 13 rows x 20 columns = **260 patches**;
* the patches are listed in one fixed pseudo-random order (``numpy.random.RandomState(0)``
  permutation, per split), so ``n=100`` takes 100 patches spread over the whole photograph
  rather than its top rows (the sky of ``china.jpg``);
* ``size=16`` down-samples each 32x32 patch by 2 with :func:`diffnotes.degradations.downsample`
  (bicubic, antialiased): a 16x16 patch shows the same scene content as its 32x32 patch at half
  the resolution, so ``quick`` and ``full`` runs see the same patches, only coarser (values
  clipped to [-1, 1], as bicubic filtering overshoots slightly at sharp edges).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

PATCH_SIZES = (16, 32)
PATCH_SPLITS = ("train", "test")
PATCH_IMAGES = {"train": "china.jpg", "test": "flower.jpg"}
PATCH_STRIDES = {"train": 16, "test": 32}
PATCH_BASE_SIZE = 32
PATCH_ORDER_SEED = 0


@lru_cache(maxsize=1)
def _sample_images() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()  # bundled with scikit-learn: no network
    return {path.replace("\\", "/").rsplit("/", 1)[-1]: image
            for path, image in zip(bunch.filenames, bunch.images)}


@lru_cache(maxsize=4)
def _patch_table(split: str, size: int) -> torch.Tensor:
    image = _sample_images()[PATCH_IMAGES[split]]
    stride, side = PATCH_STRIDES[split], PATCH_BASE_SIZE
    height, width = image.shape[:2]
    crops = [image[top:top + side, left:left + side]
             for top in range(0, height - side + 1, stride)
             for left in range(0, width - side + 1, stride)]
    order = np.random.RandomState(PATCH_ORDER_SEED).permutation(len(crops))
    pixels = np.stack([crops[i] for i in order]).astype(np.float32)
    patches = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous() * (2.0 / 255.0) - 1.0
    if size != side:
        from ..degradations import downsample

        # bicubic overshoots by a few percent at sharp edges; keep the data range [-1, 1]
        patches = downsample(patches, side // size).clamp(-1.0, 1.0)
    return patches


def patch_count(split: str) -> int:
    """How many patches ``split`` holds (975 train, 260 test)."""
    _check(split, PATCH_BASE_SIZE, None)
    return _patch_table(split, PATCH_BASE_SIZE).shape[0]


def _check(split, size, n) -> None:
    if split not in PATCH_SPLITS:
        raise ValueError(f"split must be one of {', '.join(PATCH_SPLITS)}; got {split!r}")
    if size not in PATCH_SIZES or isinstance(size, bool):
        raise ValueError(f"size must be one of {', '.join(map(str, PATCH_SIZES))}; got {size!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None (all patches); got {n!r}")


def load_patches(split: str = "train", size: int = 32, n: int | None = None,
                 device=None) -> torch.Tensor:
    """Deterministic RGB patches ``(N, 3, size, size)`` in [-1, 1] (see the module docstring).

    ``split``: "train" (china.jpg, 975 patches) or "test" (flower.jpg, 260 patches); ``size``
    32 or 16 (the 32-patches down-sampled by 2); ``n`` the first ``n`` patches of the split's
    fixed shuffled order (None = all; more than the split holds is an error).
    """
    _check(split, size, n)
    patches = _patch_table(split, size)
    if n is not None:
        if n > patches.shape[0]:
            raise ValueError(f"n={n} exceeds the {patches.shape[0]} {split} patches")
        patches = patches[:n]
    return patches.clone().to(device) if device is not None else patches.clone()
