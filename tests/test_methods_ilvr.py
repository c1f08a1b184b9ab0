"""ILVR (Choi et al. 2021): the exact low-pass projector, the refinement step and the sampler.

The denoiser in these tests is exact: for Gaussian data x0 ~ N(0, v I) the posterior mean is
D(x; sigma) = v / (v + sigma^2) x, so nothing here needs training.
"""

import pytest
import torch

from diffnotes import degradations
from diffnotes.degradations import block_lowpass
from diffnotes.methods.ilvr import (ProjectionRefine, diversity, get_lowpass,
                                    ilvr_sample, lowpass_psnr)
from diffnotes.recipes import train_unconditional
from diffnotes.sampling import sample, sigma_schedule

V = 0.25


def gaussian_denoiser(x, sigma):
    s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) ** 2
    return V / (V + s2) * x


def images(n=4, c=1, size=16, seed=0):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_block_lowpass_is_an_orthogonal_projection(factor):
    x, y = images(seed=1), images(seed=2)
    px = block_lowpass(x, factor)
    # idempotent (exactly in arithmetic; float64 rounding of a block mean is all that is left)
    assert (block_lowpass(px, factor) - px).abs().max() < 1e-15
    # symmetric: <P x, y> = <x, P y>
    assert torch.isclose((px * y).sum(), (x * block_lowpass(y, factor)).sum(), rtol=1e-12)
    const = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    assert torch.allclose(block_lowpass(const, factor), const)
    # block means are kept: average pooling of P x is that of x
    assert torch.allclose(torch.nn.functional.avg_pool2d(px, factor),
                          torch.nn.functional.avg_pool2d(x, factor))


def test_bicubic_lowpass_is_not_idempotent_but_block_is():
    x = images(seed=3)
    bic = get_lowpass("bicubic", 4)
    assert (bic(bic(x)) - bic(x)).abs().max() > 1e-3
    blk = get_lowpass("block", 4)
    assert (blk(blk(x)) - blk(x)).abs().max() < 1e-15


def test_bad_arguments_get_one_clear_line():
    with pytest.raises(ValueError, match="factor must be one of"):
        block_lowpass(images(), 3)
    with pytest.raises(ValueError, match="divisible by 8"):
        block_lowpass(images(size=12), 8)
    with pytest.raises(ValueError, match="unknown low-pass 'box'; valid: block, bicubic"):
        get_lowpass("box", 2)
    with pytest.raises(ValueError, match="sigma_stop must be >= 0"):
        ProjectionRefine(lambda z: z, images(), -1.0)
    with pytest.raises(ValueError, match="groups"):
        diversity(images(n=3), 2)


def test_refine_replaces_the_projected_part_and_respects_the_range():
    x, y = images(seed=4), images(seed=5)
    phi = get_lowpass("block", 4)
    refine = ProjectionRefine(phi, y, sigma_stop=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(refine(x, 0.4), x)  # below sigma_stop: unconditioned
    out = refine(x, 0.0 + 1.0)  # inside the range: P out = P(y + sigma n), (I - P) out = (I - P) x
    assert torch.allclose(out - phi(out), x - phi(x))
    exact = ProjectionRefine(phi, y, sigma_stop=0.0)(x, 0.0)  # at sigma = 0 the reference itself
    assert torch.allclose(phi(exact), phi(y), atol=1e-12)


def test_ancestral_refine_hook_is_called_after_every_step_and_none_changes_nothing():
    x, sigmas = images(seed=6) * 5, sigma_schedule("karras", 6, 0.01, 5.0)
    seen = []

    def spy(z, sigma_next):
        seen.append(sigma_next)
        return z

    plain = sample(gaussian_denoiser, x, sigmas, "ancestral",
                   generator=torch.Generator().manual_seed(1))
    hooked = sample(gaussian_denoiser, x, sigmas, "ancestral", refine=spy,
                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, hooked)
    assert seen == sigmas[1:].tolist()  # every new level, the final 0 included


@pytest.mark.parametrize("factor", [2, 4])
def test_ilvr_over_the_whole_range_ends_with_the_references_low_pass(factor):
    ref = images(n=3, seed=7)
    sigmas = sigma_schedule("karras", 12, 0.01, 10.0)
    out = ilvr_sample(gaussian_denoiser, ref, sigmas, factor=factor,
                      generator=torch.Generator().manual_seed(2))
    assert lowpass_psnr(out, ref, factor).min() > 200  # equal up to float64 rounding
    # stopping the refinement early leaves the low-pass content free to drift
    free = ilvr_sample(gaussian_denoiser, ref, sigmas, factor=factor, sigma_stop=1.0,
                       generator=torch.Generator().manual_seed(2))
    assert lowpass_psnr(free, ref, factor).max() < 60


def test_diversity_is_zero_for_copies_and_grows_with_spread():
    base = images(n=2, seed=8)
    copies = base.repeat_interleave(3, 0)
    assert torch.allclose(diversity(copies, 2), torch.zeros(2, dtype=torch.float64))
    noisy = degradations.add_noise(copies, 0.1, torch.Generator().manual_seed(0))
    noisier = degradations.add_noise(copies, 0.3, torch.Generator().manual_seed(0))
    assert (diversity(noisier, 2) > diversity(noisy, 2)).all()
    # two iid copies of noise of std s differ by sqrt(2) s per pixel on average
    assert torch.allclose(diversity(noisy - copies, 2), torch.full((2,), 0.1 * 2**0.5,
                                                                    dtype=torch.float64), rtol=0.1)


def test_train_unconditional_goes_through_fit(monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    res = train_unconditional(images(n=8).float(), 50, seed=0)
    assert res.steps_run == 0 and res.capped
    out = res.model_ema(images(n=2).float(), torch.full((2,), 0.5))
    assert out.shape == (2, 1, 16, 16)
