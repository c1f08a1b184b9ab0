"""SRDiff (diffnotes.methods.srdiff), the mean-shift wrapper and the residual proof."""

import pytest
import torch

from diffnotes.data.patches import load_patches
from diffnotes.degradations import downsample, upsample
from diffnotes.methods.edm import EDMLoss
from diffnotes.methods.sr3 import MeanShift, sr3_denoiser, super_resolve
from diffnotes.methods.srdiff import LREncoder, residual_std, srdiff_denoiser, srdiff_pairs
from diffnotes.nets import count_parameters
from diffnotes.recipes import fit_in_stages
from diffnotes.theory.proofs.superres_proofs import residual_shift_check


@pytest.fixture(scope="module")
def patches():
    return load_patches("test", 16, n=8)


def test_untrained_srdiff_is_the_ideal_denoiser_of_a_gaussian_residual(patches):
    """With the zero-initialised output layer, D(x) = up(lr) + c_skip (x - up(lr)): exactly the
    posterior mean when the residual is N(0, sigma_data^2 I)."""
    hr, lr = srdiff_pairs(patches, 4)
    den = srdiff_denoiser(16, 4, sigma_data=0.2)
    x = hr + 0.3 * torch.randn_like(hr)
    mu = upsample(lr, 4)
    expected = mu + 0.2**2 / (0.2**2 + 0.3**2) * (x - mu)
    assert torch.allclose(den(x, torch.full((8,), 0.3), lr), expected, atol=1e-5)


def test_mean_shift_is_a_translation(patches):
    torch.manual_seed(0)
    inner = sr3_denoiser(16)
    for p in inner.parameters():
        p.data.normal_(0, 0.05)
    shifted = MeanShift(inner)
    y = patches.flip(0)
    x = patches + 0.1
    sigma = torch.full((8,), 0.4)
    assert torch.allclose(shifted(x, sigma, y), y + inner(x - y, sigma, y), atol=1e-6)


def test_encoder_sees_the_low_resolution_image(patches):
    torch.manual_seed(0)
    enc = LREncoder(4)
    lr = downsample(patches, 4)
    assert enc(lr).shape == patches.shape
    den = srdiff_denoiser(16, 4, sigma_data=0.2)
    for p in den.parameters():
        p.data.normal_(0, 0.05)
    x = torch.randn_like(patches)
    a = den(x, torch.full((8,), 1.0), lr)
    b = den(x, torch.full((8,), 1.0), lr.flip(0))
    assert (a - b).abs().max() > 1e-3


def test_parameters_match_sr3_up_to_the_encoder():
    srdiff, sr3 = srdiff_denoiser(16, 4, 0.2), sr3_denoiser(16)
    extra = count_parameters(srdiff) - count_parameters(sr3)
    assert extra == count_parameters(srdiff.inner.backbone.encoder) and 0 < extra < 0.03 * count_parameters(sr3)


def test_bad_condition_gives_one_clear_line(patches):
    den = srdiff_denoiser(16, 4, 0.2)
    with pytest.raises(ValueError, match=r"shift mu\(condition\) has shape \(8, 3, 64, 64\)"):
        den(patches, torch.ones(8), patches)
    with pytest.raises(ValueError, match=r"low-resolution batch of shape \(8, C, 4, 4\)"):
        den.inner(patches, torch.ones(8), patches)


def test_sampler_makes_full_size_images_from_the_low_resolution_input(patches):
    hr, lr = srdiff_pairs(patches, 4)
    out = super_resolve(srdiff_denoiser(16, 4, 0.2), lr, steps=3, factor=4,
                        generator=torch.Generator().manual_seed(0))
    assert out.shape == hr.shape and torch.isfinite(out).all()


def test_residual_std():
    hr = load_patches("train", 16, n=200)
    sd = residual_std(hr, 4)
    assert 0.02 < sd < hr.std().item()


def test_fit_in_stages_resumes_and_evaluates():
    hr = load_patches("train", 16, n=64)
    data = srdiff_pairs(hr, 4)
    sd = residual_std(hr, 4)
    seen = []
    evals, result = fit_in_stages(srdiff_denoiser(16, 4, sd), EDMLoss(sigma_data=sd), data, [3, 6],
                                  lambda m: seen.append(m) or len(seen), lr=1e-3, batch_size=8,
                                  device="cpu", progress=False, seed=0)
    assert evals == [1, 2] and result.step == 6 and len(result.losses) == 6
    with pytest.raises(ValueError, match="increasing positive step counts"):
        fit_in_stages(srdiff_denoiser(16, 4, sd), EDMLoss(), data, [4, 2], lambda m: 0)


def test_residual_shift_proof_holds_and_fails_when_wrong():
    assert residual_shift_check().ok
    assert not residual_shift_check(prior_factor=2).ok


def test_residual_shift_proof_fails_for_a_scaled_residual_at_the_old_noise_level():
    """A residual scaled by c is the same model only at noise level c sigma: left at sigma, the
    composed denoiser's integrated error exceeds the optimum and the check fails."""
    assert not residual_shift_check(noise_map="unscaled").ok


def test_untrained_srdiff_and_untrained_residual_sr3_are_one_function(patches):
    """The SRDiff lab's one untrained arm stands for both models: untrained, SR3 at its best
    (residual around y_up, y_up concatenated) and SRDiff (residual around up(lr), encoder
    features) both return up(lr) + c_skip (x - up(lr)), whatever the condition channels say."""
    hr, lr = srdiff_pairs(patches, 4)
    y_up = upsample(lr, 4)
    torch.manual_seed(0)
    srdiff = srdiff_denoiser(16, 4, sigma_data=0.15)
    sr3 = sr3_denoiser(16, sigma_data=0.15, residual=True)
    x = hr + 0.4 * torch.randn_like(hr)
    sigma = torch.full((8,), 0.4)
    assert torch.allclose(srdiff(x, sigma, lr), sr3(x, sigma, y_up), atol=1e-6)
    g = dict(steps=3, sigma_min=0.002 * 0.3, sigma_max=80 * 0.3)
    a = super_resolve(srdiff, lr, factor=4, generator=torch.Generator().manual_seed(1), **g)
    b = super_resolve(sr3, y_up, generator=torch.Generator().manual_seed(1), **g)
    assert torch.allclose(a, b, atol=1e-5)
    # once trained, the two differ: a perturbed output layer makes them different functions
    for p in srdiff.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    assert (srdiff(x, sigma, lr) - sr3(x, sigma, y_up)).abs().max() > 1e-3
