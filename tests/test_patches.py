"""The natural-image patch data set (diffnotes.data.patches)."""

import numpy as np
import pytest
import torch

from diffnotes.data.patches import load_patches, patch_count
from diffnotes.degradations import downsample


@pytest.mark.parametrize("split, count", [("train", 975), ("test", 260)])
@pytest.mark.parametrize("size", [16, 32])
def test_shapes_counts_and_range(split, count, size):
    patches = load_patches(split, size)
    assert patches.shape == (count, 3, size, size)
    assert patch_count(split) == count
    assert patches.dtype == torch.float32
    assert patches.min() >= -1.0 and patches.max() <= 1.0
    # real photographs: most patches are not flat, and the range is used
    assert (patches.flatten(1).std(dim=1) > 0.02).float().mean() > 0.5
    assert patches.max() - patches.min() > 1.5


def test_deterministic_and_prefix():
    a, b = load_patches("train", 32, n=50), load_patches("train", 32)
    assert torch.equal(a, b[:50])
    assert torch.equal(load_patches("test", 16, n=7), load_patches("test", 16, n=7))
    a[0].fill_(0.0)  # a returned tensor is the caller's copy
    assert not torch.equal(load_patches("train", 32, n=1)[0], a[0])


def test_train_and_test_come_from_different_photographs():
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    train, test = load_patches("train", 32), load_patches("test", 32)
    to_bytes = lambda p: np.rint((p.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)
    # a train patch is an exact crop of china.jpg on the stride-16 grid, a test patch of
    # flower.jpg on the stride-32 grid
    crops_china = {china[t:t + 32, l:l + 32].tobytes()
                   for t in range(0, 427 - 31, 16) for l in range(0, 640 - 31, 16)}
    crops_flower = {flower[t:t + 32, l:l + 32].tobytes()
                    for t in range(0, 427 - 31, 32) for l in range(0, 640 - 31, 32)}
    assert all(to_bytes(p).tobytes() in crops_china for p in train[:40])
    assert all(to_bytes(p).tobytes() in crops_flower for p in test[:40])
    assert not any(to_bytes(p).tobytes() in crops_china for p in test[:40])


def test_size_16_is_the_32_patch_down_sampled():
    big, small = load_patches("test", 32, n=20), load_patches("test", 16, n=20)
    assert torch.allclose(small, downsample(big, 2).clamp(-1, 1))


def test_device_argument():
    assert load_patches("test", 16, n=3, device="cpu").device.type == "cpu"


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "valid"}, "split must be one of train, test"),
    ({"size": 8}, "size must be one of 16, 32"),
    ({"n": 0}, "n must be a positive int"),
    ({"n": 2.5}, "n must be a positive int"),
    ({"split": "test", "n": 261}, "n=261 exceeds the 260 test patches"),
])
def test_bad_arguments_give_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_patches(**kwargs)
