"""SR3 (diffnotes.methods.sr3), the high-frequency energy measure and the SR3 proof."""

import pytest
import torch

from diffnotes.data.patches import load_patches
from diffnotes.degradations import downsample, lowpass, upsample
from diffnotes.methods.sr3 import (ConcatBackbone, DetailKernel, Regressor,
                                   detail, detail_statistics, pearson, regression_loss,
                                   sample_spread, scaled_edm, sr3_denoiser, sr_metrics, sr_pairs,
                                   super_resolve)
from diffnotes.metrics import denoising_error, high_frequency_energy
from diffnotes.presets import small_unet
from diffnotes.nets import count_parameters
from diffnotes.theory.proofs.superres_proofs import conditional_score_check, sample_error_check
from diffnotes.train import fit


@pytest.fixture(scope="module")
def patches():
    return load_patches("test", 16, n=16)


def _sr_unet(resolution):
    """SR3's U-Net (6 channels in: noisy image and y_up; 3 out), as ``sr3_denoiser`` builds it."""
    return small_unet(resolution, 6, out_channels=3)


def test_the_condition_is_concatenated_and_changes_the_output(patches):
    torch.manual_seed(0)
    den = sr3_denoiser(16)
    for p in den.parameters():  # leave the zero-initialised output layer's "untrained" state
        p.data.normal_(0, 0.05)
    hr, y_up = sr_pairs(patches, 4)
    x = hr + 0.5 * torch.randn_like(hr)
    out_a = den(x, torch.full((16,), 0.5), y_up)
    out_b = den(x, torch.full((16,), 0.5), torch.zeros_like(y_up))
    assert out_a.shape == hr.shape
    assert (out_a - out_b).abs().max() > 1e-3
    assert den.backbone.unet.in_channels == 6


def test_bad_condition_gives_one_clear_line(patches):
    den = sr3_denoiser(16)
    with pytest.raises(ValueError, match=r"condition must be an image batch of shape \(16, 3, 16, 16\)"):
        den(patches, torch.ones(16), None)
    with pytest.raises(ValueError, match="condition must be"):
        den(patches, torch.ones(16), patches[:, :2])


def test_regressor_has_the_same_network_as_sr3():
    assert count_parameters(Regressor(ConcatBackbone(_sr_unet(16)))) == count_parameters(sr3_denoiser(16))


def test_pairs_and_sampler_shapes(patches):
    hr, y_up = sr_pairs(patches, 4)
    assert torch.allclose(y_up, lowpass(hr, 4))
    out = super_resolve(sr3_denoiser(16), y_up, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == hr.shape and torch.isfinite(out).all()


def test_high_frequency_energy():
    hr = load_patches("test", 32, n=32)
    energy = high_frequency_energy(hr, 4)
    assert energy.shape == (32,) and (energy >= 0).all()
    # a low-passed image keeps little energy above the band; a constant none
    assert high_frequency_energy(lowpass(hr, 4), 4).sum() < 0.2 * energy.sum()
    assert high_frequency_energy(torch.full((2, 3, 16, 16), 0.4), 4).max() < 1e-10
    # noise is almost all high frequency: its energy is about its variance times (1 - 1/16)
    noise = 0.1 * torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert abs(high_frequency_energy(noise, 4).mean().item() / 0.01 - 1) < 0.15
    with pytest.raises(ValueError, match=r"image batch \(N, C, H, W\)"):
        high_frequency_energy(hr[0], 4)


def test_sr_metrics_rank_bicubic_below_the_truth():
    hr = load_patches("test", 16, n=32)
    _, y_up = sr_pairs(hr, 4)
    perfect, bicubic = sr_metrics(hr, hr, 4), sr_metrics(y_up, hr, 4)
    assert perfect["psnr"] == float("inf") and perfect["hf_ratio"] == pytest.approx(1.0)
    assert bicubic["hf_ratio"] < 0.5 and 15 < bicubic["psnr"] < 40
    # the bicubic output is nearly consistent with its input (lowpass is near-idempotent)
    assert bicubic["consistency"] > bicubic["psnr"] + 5


def test_training_lowers_both_losses():
    """A few steps of fit: the regressor's held-out error falls well below the untrained one's,
    and the residual SR3 denoiser beats its untrained self (the ideal denoiser of a Gaussian
    residual) on held-out patches."""
    hr = load_patches("train", 16, n=256)
    data = sr_pairs(hr, 4)
    test_hr = load_patches("test", 16, n=32)
    _, y_test = sr_pairs(test_hr, 4)
    reg = fit(Regressor(ConcatBackbone(_sr_unet(16))), regression_loss, data, 60, lr=3e-3,
              batch_size=16, device="cpu", progress=False, seed=0)
    with torch.no_grad():
        trained = regression_loss(reg.model_ema, test_hr, y_test).mean()
        untrained = regression_loss(Regressor(ConcatBackbone(_sr_unet(16))), test_hr, y_test).mean()
    assert trained < 0.5 * untrained
    sd = (data[0] - data[1]).std().item()
    loss, _, _ = scaled_edm(sd)
    res = fit(sr3_denoiser(16, sigma_data=sd, residual=True), loss, data, 80, lr=1e-3,
              batch_size=16, device="cpu", progress=False, seed=0)
    errors = [denoising_error(m, test_hr, sd, cond=y_test, generator=torch.Generator().manual_seed(0))
              for m in (res.model_ema, sr3_denoiser(16, sigma_data=sd, residual=True))]
    assert errors[0] < errors[1]


def test_denoising_error_of_the_ideal_gaussian_denoiser():
    """Untrained residual SR3 is the posterior mean for a N(0, sd^2) residual: its error at
    sigma is sd^2 sigma^2 / (sd^2 + sigma^2) when the residual really is that Gaussian."""
    gen = torch.Generator().manual_seed(0)
    y_up = torch.zeros(256, 3, 16, 16)
    x0 = 0.2 * torch.randn(y_up.shape, generator=gen)
    err = denoising_error(sr3_denoiser(16, sigma_data=0.2, residual=True), x0, 0.3, cond=y_up,
                          generator=gen)
    assert err == pytest.approx(0.04 * 0.09 / 0.13, rel=0.02)


def test_scaled_edm_keeps_the_signal_to_noise_ratios():
    loss, lo, hi = scaled_edm(0.1)
    assert loss.sigma_data == 0.1 and hi == pytest.approx(16.0) and lo == pytest.approx(0.0004)
    assert loss.P_mean == pytest.approx(-1.2 + torch.tensor(0.2).log().item())


def test_conditional_score_proof_holds_and_fails_when_wrong():
    assert conditional_score_check().ok
    assert not conditional_score_check(tweedie_factor=2).ok


def test_sample_error_proof_holds_and_fails_when_wrong():
    assert sample_error_check().ok
    assert not sample_error_check(factor=3).ok


def test_conditional_score_general_proof_fails_for_noise_that_depends_on_y():
    """The general (any-density) and two-point parts fail for a wrong Tweedie factor, and the
    general part fails when the noise's mean depends on y (noise not independent of y)."""
    from diffnotes.theory.proofs.superres_proofs import _general_tweedie, _mixture_tweedie
    assert _general_tweedie().ok and _mixture_tweedie().ok
    assert not _general_tweedie(noise_shift=1).ok
    assert not _general_tweedie(tweedie_factor=2).ok
    assert not _mixture_tweedie(tweedie_factor=2).ok
    assert not conditional_score_check(noise_shift=1).ok


def test_detail_is_what_the_input_does_not_fix():
    hr = load_patches("test", 16, n=32)
    _, y_up = sr_pairs(hr, 4)
    assert torch.allclose(detail(hr, 4), hr - y_up)
    # the bicubic image keeps little detail of its own; the truth keeps all of its own
    assert detail(y_up, 4).pow(2).sum() < 0.2 * detail(hr, 4).pow(2).sum()


def test_detail_statistics_tell_white_noise_from_image_detail():
    hr = load_patches("test", 16, n=64)
    gen = torch.Generator().manual_seed(0)
    noisy = lowpass(hr, 4) + 0.15 * torch.randn(hr.shape, generator=gen)
    real, noise = detail_statistics(hr, 4), detail_statistics(noisy, 4)
    assert real.shape == (64, 4) and torch.isfinite(real).all()
    # white noise: two thirds of its energy off the grey axis, no neighbour correlation to speak of
    assert noise[:, 1].mean() == pytest.approx(2 / 3, abs=0.05)
    assert noise[:, 2:].mean().abs() < 0.15 and real[:, 2:].mean() > noise[:, 2:].mean() + 0.2
    assert real[:, 1].mean() < noise[:, 1].mean()  # image detail is mostly grey (luminance)


def test_detail_kernel_separates_real_from_noise_and_blur():
    """Two halves of real patches score near 0 (the real-vs-real band); the bicubic image and
    white noise of the residual's size score well above it."""
    kernel = DetailKernel(load_patches("train", 16), 4)
    assert len(kernel.bandwidths) == 3 and min(kernel.bandwidths) > 0
    test = load_patches("test", 16)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    a, b = test[order[:100]], test[order[100:200]]
    _, y_up = sr_pairs(a, 4)
    noise = y_up + 0.145 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    band, blur, white = (kernel.distance(x, b) for x in (a, y_up, noise))
    assert abs(band) < 0.2 * blur and abs(band) < 0.2 * white
    with pytest.raises(ValueError, match="patches of one shape"):
        kernel.distance(a[:, :, :8, :8], b)


def test_sample_spread_and_pearson():
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert sample_spread(torch.stack([x, x, x])).abs().max() == 0  # a regressor: no spread
    scale = torch.arange(1.0, 9.0).view(8, 1, 1, 1)
    draws = scale * torch.randn(16, 8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    spread = sample_spread(draws)
    assert spread.shape == (8,) and pearson(spread, scale.flatten()) > 0.95
    assert pearson(torch.arange(5.0), -torch.arange(5.0)) == pytest.approx(-1.0)
    assert pearson(torch.ones(5), torch.arange(5.0)) != pearson(torch.ones(5), torch.arange(5.0))
    with pytest.raises(ValueError, match="K >= 2"):
        sample_spread(x.unsqueeze(0))
