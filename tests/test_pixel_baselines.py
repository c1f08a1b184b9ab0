"""metrics.independent_pixels_bits_per_dim: the per-pixel histogram codelength of images."""

import math

import pytest
import torch

from diffnotes.data import load_digits
from diffnotes.metrics import independent_pixels_bits_per_dim


def _on_grid(index, levels):
    return index.double() / (levels - 1) * 2 - 1


def test_uniform_pixels_cost_log2_levels_and_a_constant_pixel_costs_little():
    levels = 5
    gen = torch.Generator().manual_seed(0)
    train = _on_grid(torch.randint(0, levels, (20000, 1, 2, 2), generator=gen), levels)
    test = _on_grid(torch.randint(0, levels, (5000, 1, 2, 2), generator=gen), levels)
    assert independent_pixels_bits_per_dim(train, test, levels) == pytest.approx(
        math.log2(levels), abs=0.01)
    constant = torch.full((100, 1, 2, 2), -1.0)
    # 100 counts + 0.5 on one level, 0.5 on the others: p = 100.5 / 102.5
    assert independent_pixels_bits_per_dim(constant, constant, levels) == pytest.approx(
        -math.log2(100.5 / 102.5))


def test_digits_beat_uniform_coding_and_pixels_are_coded_one_by_one():
    train, _ = load_digits("train")
    test, _ = load_digits("eval")
    bpd = independent_pixels_bits_per_dim(train, test, 17)
    assert 1.5 < bpd < math.log2(17) - 1  # digits have mostly blank borders
    # shuffling the pixels of each image the same way changes nothing: no joint structure used
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    shuffled = independent_pixels_bits_per_dim(train.flatten(1)[:, perm], test.flatten(1)[:, perm], 17)
    assert shuffled == pytest.approx(bpd)


def test_bad_input_is_one_clear_error():
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ValueError, match="levels"):
        independent_pixels_bits_per_dim(x, x, 1)
    with pytest.raises(ValueError, match="equally spaced"):
        independent_pixels_bits_per_dim(x + 0.01, x, 17)
    with pytest.raises(ValueError, match="one image shape"):
        independent_pixels_bits_per_dim(x, torch.zeros(4, 1, 4, 4), 17)
    with pytest.raises(ValueError, match="pseudo_count"):
        independent_pixels_bits_per_dim(x, x, 17, pseudo_count=0)
