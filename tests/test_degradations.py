"""The degradation operators of the inverse-problem chapters (diffnotes.degradations)."""

import pytest
import torch

from diffnotes.data.patches import load_patches
from diffnotes.degradations import (add_noise, block_downsample, block_lowpass, block_upsample, box_mask,
                                    downsample, gaussian_blur, lowpass, random_mask, upsample)


@pytest.fixture(scope="module")
def patches():
    return load_patches("test", 32, n=50)


@pytest.mark.parametrize("factor", [2, 4])
def test_shapes(patches, factor):
    assert downsample(patches, factor).shape == (50, 3, 32 // factor, 32 // factor)
    assert upsample(patches, factor).shape == (50, 3, 32 * factor, 32 * factor)
    assert lowpass(patches, factor).shape == patches.shape
    assert gaussian_blur(patches, 1.0).shape == patches.shape


def test_constants_are_preserved():
    constant = torch.full((2, 3, 16, 16), 0.3)
    for out in (downsample(constant, 4), upsample(constant, 2), lowpass(constant, 4),
                gaussian_blur(constant, 2.0)):
        assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)


def test_downsample_antialiases(patches):
    # a checkerboard at the Nyquist frequency averages to its mean when antialiased
    # (plain bicubic decimation would alias it to a large-amplitude pattern)
    idx = torch.arange(32)
    board = ((idx[:, None] + idx[None, :]) % 2 * 2.0 - 1.0).expand(1, 3, 32, 32)
    assert downsample(board, 4).abs().max() < 0.05
    # down-sampling averages: it lowers the variance of real patches
    assert downsample(patches, 4).var() < patches.var()


@pytest.mark.parametrize("factor, bound", [(2, 0.3), (4, 0.3)])
def test_lowpass_is_near_idempotent_not_a_projection(patches, factor, bound):
    once = lowpass(patches, factor)
    twice = lowpass(once, factor)
    first_change = (once - patches).norm()
    second_change = (twice - once).norm()
    # measured: 0.24 (factor 2) and 0.18 (factor 4) -- small, but not zero
    assert second_change < bound * first_change
    assert second_change > 0.05 * first_change
    low = downsample(patches, factor)
    assert (downsample(upsample(low, factor), factor) - low).norm() < 0.03 * low.norm()


def test_operators_are_linear(patches):
    a, b = patches[:10], patches[10:20]
    for op in (lambda x: downsample(x, 4), lambda x: lowpass(x, 2), lambda x: gaussian_blur(x, 1.2)):
        assert torch.allclose(op(2 * a - b), 2 * op(a) - op(b), atol=1e-5)


def test_gaussian_blur_smooths_and_matches_a_dense_convolution(patches):
    blurred = gaussian_blur(patches, 1.5)
    assert blurred.diff(dim=-1).abs().mean() < 0.7 * patches.diff(dim=-1).abs().mean()
    # away from the border the separable blur equals the 2-D Gaussian convolution
    radius = 5
    coords = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (coords / 1.5) ** 2)
    g2 = (g[:, None] * g[None, :]) / (g.sum() ** 2)
    dense = torch.nn.functional.conv2d(patches, g2.expand(3, 1, 11, 11), groups=3)
    assert torch.allclose(blurred[..., radius:-radius, radius:-radius], dense, atol=1e-5)


def test_masks():
    box = box_mask((2, 3, 16, 16), 8, 4)
    assert box.shape == (2, 3, 16, 16)
    assert box.sum() == 2 * 3 * (256 - 32)
    assert (box[:, :, 4:12, 6:10] == 0).all()
    assert box_mask((1, 1, 8, 8), 2, 2, top=0, left=0)[0, 0, :2, :2].sum() == 0
    gen = torch.Generator().manual_seed(0)
    rand = random_mask((4, 3, 32, 32), 0.7, generator=gen)
    missing = 1 - rand.mean().item()
    assert abs(missing - 0.7) < 0.03
    assert torch.equal(rand[:, 0], rand[:, 2])  # one mask per pixel, shared by its channels
    again = random_mask((4, 3, 32, 32), 0.7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rand, again)
    assert random_mask((1, 1, 4, 4), 0.0).min() == 1 and random_mask((1, 1, 4, 4), 1.0).max() == 0


def test_add_noise(patches):
    gen = torch.Generator().manual_seed(1)
    noisy = add_noise(patches, 0.2, generator=gen)
    assert abs((noisy - patches).std().item() - 0.2) < 0.01
    assert abs((noisy - patches).mean().item()) < 0.01
    assert torch.equal(add_noise(patches, 0.0), patches)
    again = add_noise(patches, 0.2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again)


@pytest.mark.parametrize("call, message", [
    (lambda x: downsample(x, 3), "factor must be one of"),
    (lambda x: upsample(x, 0), "factor must be one of"),
    (lambda x: lowpass(x, True), "factor must be one of"),
    (lambda x: downsample(x[..., :30, :30], 4), "not divisible by factor 4"),
    (lambda x: block_lowpass(x, 3), "factor must be one of"),
    (lambda x: block_downsample(x[..., :12, :12], 8), "divisible by 8"),
    (lambda x: block_upsample(x[0], 2), r"must be a float image batch \(N, C, H, W\)"),
    (lambda x: downsample(x[0], 2), r"must be a float image batch \(N, C, H, W\)"),
    (lambda x: gaussian_blur(x, 0.0), "sigma must be a positive number"),
    (lambda x: gaussian_blur(x, 20.0), "kernel radius"),
    (lambda x: add_noise(x, -1.0), "std must be a non-negative number"),
    (lambda x: box_mask((1, 3, 8, 8), 9, 2), "must fit in the image"),
    (lambda x: box_mask((1, 3, 8, 8), 2, 2, top=7), "leaves the image"),
    (lambda x: box_mask((3, 8, 8), 2, 2), r"shape must be \(N, C, H, W\)"),
    (lambda x: random_mask((1, 3, 8, 8), 1.5), r"fraction .* must be in \[0, 1\]"),
])
def test_bad_input_gives_one_clear_line(patches, call, message):
    with pytest.raises(ValueError, match=message):
        call(patches)


def _old_block_lowpass(x, factor):
    """Frozen reference: ILVR's phi_N as methods/ilvr.py wrote it before it moved here."""
    return torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, factor), scale_factor=factor,
                                           mode="nearest")


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_block_operators_are_the_block_mean_and_its_spread(patches, factor):
    x = patches[:6]
    low = block_downsample(x, factor)
    assert low.shape == (6, x.shape[1], x.shape[2] // factor, x.shape[3] // factor)
    # each low-resolution pixel is its block's mean, and up-sampling repeats it over the block
    torch.testing.assert_close(low[:, :, 0, 0], x[:, :, :factor, :factor].mean(dim=(2, 3)))
    up = block_upsample(low, factor)
    assert torch.equal(up[:, :, :factor, :factor], low[:, :, :1, :1].expand(-1, -1, factor, factor))
    assert torch.equal(block_lowpass(x, factor), up)
    assert torch.equal(block_lowpass(x, factor), _old_block_lowpass(x, factor))
    # exact projection: idempotent (up to the rounding of a float32 block mean), unlike bicubic
    torch.testing.assert_close(block_lowpass(up, factor), up, rtol=0, atol=1e-6)


def test_subspace_and_ccdf_use_the_block_operators(patches):
    from diffnotes.methods.ccdf import make_task
    from diffnotes.methods.subspace import DownsampleSubspace

    x = patches[:4].double()
    space = DownsampleSubspace(2)
    torch.testing.assert_close(space.project(x), block_lowpass(x, 2), rtol=0, atol=1e-15)
    assert torch.equal(space.coords(x), 2 * block_downsample(x, 2))
    task = make_task("sr", patches[:4], 0, factor=4)
    assert torch.equal(task.measurement, block_downsample(patches[:4], 4))
    assert torch.equal(task.reference, block_lowpass(patches[:4], 4))
    assert torch.equal(task.project(patches[:4]), block_lowpass(patches[:4], 4))
