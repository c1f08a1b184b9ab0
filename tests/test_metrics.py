"""Metrics checked against closed forms, independent re-computations and exact densities.

The probability-flow likelihood test is the proof that :func:`pf_ode_log_likelihood` is right: on
the exact denoiser of a Gaussian mixture it must reproduce the mixture's exact log-density.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from diffnotes.data import GaussianMixture, gmm_ring, load_digits
from diffnotes.features import (
    FEATURE_DIM,
    WEIGHTS_PATH,
    classifier_accuracy,
    digits_features,
    digits_predict,
    load_digits_classifier,
)
from diffnotes.metrics import (
    bits_per_dim_from_nll,
    denoising_error,
    frechet_digits_distance,
    frechet_distance,
    gmm_log_likelihood,
    mmd,
    noisy_and_denoised,
    pf_ode_log_likelihood,
    psnr,
    sliced_wasserstein,
    ssim,
)
from diffnotes.parameterization import append_dims




def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- sliced Wasserstein ----------------------------------------------------------------------------
def test_sliced_wasserstein_in_1d_is_exact_w2_for_unequal_sizes():
    # In 1-D every direction is +-1, so SW2 = W2. Replicating each point to a common size (LCM)
    # turns the unequal-size problem into sorted matching: an independent reference.
    x = torch.randn(6, 1, generator=gen(0), dtype=torch.float64)
    y = 2 + torch.randn(4, 1, generator=gen(1), dtype=torch.float64)
    x_rep, y_rep = x.repeat_interleave(2, dim=0), y.repeat_interleave(3, dim=0)
    w2 = ((x_rep.flatten().sort().values - y_rep.flatten().sort().values) ** 2).mean().sqrt().item()
    assert sliced_wasserstein(x, y, n_projections=3, generator=gen(2)) == pytest.approx(w2, rel=1e-12)
    assert sliced_wasserstein(y, x, n_projections=3, generator=gen(2)) == pytest.approx(w2, rel=1e-12)


def test_sliced_wasserstein_of_shifted_gaussians():
    # N(0, I) vs N(mu, I): each projection has W2^2 = (theta . mu)^2, whose sphere average in d
    # dimensions is |mu|^2 / d, so SW2 = |mu| / sqrt(d).
    mu = torch.tensor([3.0, 0.0], dtype=torch.float64)
    x = torch.randn(1000, 2, generator=gen(0), dtype=torch.float64)
    y = torch.randn(800, 2, generator=gen(1), dtype=torch.float64) + mu
    # Monte Carlo over directions: W2^2 of one direction has relative spread 0.71, so 2000
    # directions leave ~1.6% on SW2^2 and ~0.8% on SW2; 3% is ~3.5 of those.
    value = sliced_wasserstein(x, y, n_projections=2000, generator=gen(2))
    assert value == pytest.approx(3 / math.sqrt(2), rel=0.03)
    assert sliced_wasserstein(x, x[torch.randperm(1000, generator=gen(3))], generator=gen(4)) == pytest.approx(0, abs=1e-12)


def test_sliced_wasserstein_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        sliced_wasserstein(torch.zeros(5), torch.zeros(5))


# -- MMD -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_equals_the_unbiased_double_sum(kernel):
    x = torch.randn(5, 3, generator=gen(0), dtype=torch.float64)
    y = torch.randn(7, 3, generator=gen(1), dtype=torch.float64) + 0.5
    hs = (0.5, 2.0)

    def k(a, b):
        d2 = float(((a - b) ** 2).sum())
        if kernel == "rbf":
            return sum(math.exp(-d2 / (2 * h * h)) for h in hs)
        return sum((1 + d2 / (h * h)) ** -0.5 for h in hs)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    assert mmd(x, y, kernel=kernel, bandwidths=hs) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_mmd_matches_the_gaussian_closed_form():
    # For N(0, I) and N(mu, I) in d dims and k = exp(-|a-b|^2 / (2 h^2)):
    # E k(X, X') = (h^2 / (h^2 + 2))^(d/2), E k(X, Y) = the same times exp(-|mu|^2 / (2 (h^2 + 2))).
    d, hs = 2, (0.5, 1.0)
    mu = torch.tensor([1.0, 0.0], dtype=torch.float64)
    expected = sum(2 * (h * h / (h * h + 2)) ** (d / 2) * (1 - math.exp(-1.0 / (2 * (h * h + 2)))) for h in hs)
    shifted, same = [], []
    for seed in range(10):
        g = gen(seed)
        x = torch.randn(1000, d, generator=g, dtype=torch.float64)
        shifted.append(mmd(x, torch.randn(1000, d, generator=g, dtype=torch.float64) + mu, bandwidths=hs))
        same.append(mmd(x, torch.randn(1000, d, generator=g, dtype=torch.float64), bandwidths=hs))
    # measured spread of one estimate: ~0.014 (shifted), ~0.001 (same); 10 seeds -> ~3.5 standard errors
    assert np.mean(shifted) == pytest.approx(expected, abs=0.015)  # expected = 0.1466
    assert abs(np.mean(same)) < 0.002


def test_mmd_rejects_unknown_kernel():
    with pytest.raises(ValueError, match="rbf, imq"):
        mmd(torch.zeros(4, 2), torch.zeros(4, 2), kernel="laplace")
    with pytest.raises(ValueError, match="positive"):
        mmd(torch.zeros(4, 2), torch.zeros(4, 2), bandwidths=(0.0,))


# -- GMM log-likelihood --------------------------------------------------------------------------
def test_gmm_log_likelihood_of_its_own_samples_is_minus_entropy():
    # 8 components of std 0.1 spaced 0.77 apart barely overlap, so the entropy is
    # log 8 + log(2 pi e 0.01) (2-D Gaussian entropy) = 0.312 nats up to ~1e-6.
    gmm = gmm_ring(k=8, radius=1.0, std=0.1)
    x = gmm.sample(20_000, generator=gen(0))
    entropy = math.log(8) + math.log(2 * math.pi * math.e * 0.01)
    assert gmm_log_likelihood(x, gmm) == pytest.approx(-entropy, abs=0.03)  # std error ~0.007
    assert gmm_log_likelihood(x + 0.2, gmm) < -entropy - 1.0  # off the modes: far less likely


# -- Fréchet distance ----------------------------------------------------------------------------
def frechet_reference(fx: np.ndarray, fy: np.ndarray) -> float:
    # The textbook formula with a general matrix square root.
    mu_x, mu_y = fx.mean(0), fy.mean(0)
    cx, cy = np.cov(fx, rowvar=False), np.cov(fy, rowvar=False)
    covmean = scipy.linalg.sqrtm(cx @ cy).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cx + cy - 2 * covmean))


def test_frechet_distance_matches_sqrtm_and_closed_forms():
    rng = np.random.default_rng(0)
    fx = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    fy = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + 0.3
    assert frechet_distance(fx, fy) == pytest.approx(frechet_reference(fx, fy), rel=1e-8)
    assert frechet_distance(fx, fy) == pytest.approx(frechet_distance(fy, fx), rel=1e-10)
    assert frechet_distance(fx, fx) == pytest.approx(0, abs=1e-8)
    shift = rng.normal(size=12)
    assert frechet_distance(fx, fx + shift) == pytest.approx((shift**2).sum(), rel=1e-8)
    # a scaled copy: C_y = s^2 C_x, so tr term = (1 - s)^2 tr C_x
    assert frechet_distance(fx, 3 * fx) == pytest.approx(
        ((2 * fx.mean(0)) ** 2).sum() + 4 * np.trace(np.cov(fx, rowvar=False)), rel=1e-8)


def test_frechet_distance_is_stable_for_singular_covariances():
    # 5 samples in 20 dims: rank-4 covariances, where a general sqrtm picks up complex round-off.
    rng = np.random.default_rng(1)
    fx, fy = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))
    value = frechet_distance(torch.from_numpy(fx), torch.from_numpy(fy))
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(frechet_reference(fx, fy), rel=1e-6)
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(fx, fy[:, :3])


# -- digits classifier and the Fréchet digits distance -------------------------------------------
# (the corruption ladder, KID, precision/recall and digits_report: tests/test_image_metrics.py)
def test_stored_digits_classifier_is_accurate_and_small():
    assert WEIGHTS_PATH.stat().st_size < 200_000
    eval_accuracy = classifier_accuracy(load_digits_classifier(), "eval")
    print(f"digits classifier: held-out accuracy {eval_accuracy:.4f}")
    assert eval_accuracy >= 0.95  # measured 0.9738 on the 648 evaluation digits
    for size in (16, 32):  # upsampled digits, mapped back to 8x8 exactly (measured 0.9738)
        x, y = load_digits("eval", size=size)
        assert (digits_predict(x) == y).float().mean() >= 0.95


def test_digits_features_shape_and_validation():
    x, _ = load_digits("eval")
    feats = digits_features(x[:10])
    assert feats.shape == (10, FEATURE_DIM) and bool((feats >= 0).all())  # ReLU features
    assert torch.allclose(digits_features(x[:10, 0]), feats)  # (N, H, W) accepted
    with pytest.raises(ValueError, match=r"\(N, 1, H, H\)"):
        digits_features(torch.zeros(2, 3, 8, 8))
    # features are scaled to mean square 1 on the classifier's own split
    x_classifier, _ = load_digits("classifier")
    assert digits_features(x_classifier).pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)


def test_frechet_digits_distance_orders_real_and_noisy_digits():
    x_a, _ = load_digits("eval_a")
    x_b, _ = load_digits("eval_b")
    real = frechet_digits_distance(x_a, x_b)
    noise = frechet_digits_distance(x_a, torch.rand(x_b.shape, generator=gen(0)) * 2 - 1)
    # measured: real 0.23, uniform noise 15.8
    assert real < 0.5 and noise > 30 * real
    noisy = [frechet_digits_distance(x_a, (x_b + s * torch.randn(x_b.shape, generator=gen(1))).clamp(-1, 1))
             for s in (0.8, 0.4, 0.2)]  # measured 2.9, 0.98, 0.39
    assert noisy[0] > noisy[1] > noisy[2] > real


# -- PSNR / SSIM ---------------------------------------------------------------------------------
def test_psnr_known_values():
    x = torch.rand(3, 1, 8, 8, generator=gen(0)) * 2 - 1
    # MSE 0.01 on a range of 2: 10 log10(4 / 0.01) = 26.02 dB
    assert psnr(x, x + 0.1) == pytest.approx(10 * math.log10(400), rel=1e-5)
    assert psnr(x, x + 0.1, data_range=1.0) == pytest.approx(20.0, rel=1e-5)
    assert math.isinf(psnr(x, x))
    assert psnr(x, x + 0.1, reduction="none").shape == (3,)


def test_ssim_equals_the_formula_on_one_window():
    # An 11x11 image holds exactly one window position: SSIM is the formula evaluated with
    # Gaussian-weighted moments, computed here directly.
    x = torch.rand(1, 1, 11, 11, generator=gen(0), dtype=torch.float64) * 2 - 1
    y = (0.6 * x + 0.4 * torch.rand(1, 1, 11, 11, generator=gen(1), dtype=torch.float64)).clamp(-1, 1)
    coords = np.arange(11) - 5
    w = np.exp(-coords**2 / (2 * 1.5**2))
    w = np.outer(w, w) / np.outer(w, w).sum()
    a, b = x[0, 0].numpy(), y[0, 0].numpy()
    mu_a, mu_b = (w * a).sum(), (w * b).sum()
    var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
    cov = (w * (a - mu_a) * (b - mu_b)).sum()
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    expected = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    assert ssim(x, y) == pytest.approx(expected, rel=1e-10)


def test_ssim_properties():
    x, _ = load_digits("test", size=16)
    x = x[:20].double()
    assert ssim(x, x, win_size=7) == pytest.approx(1.0, abs=1e-12)
    y = x + 0.3 * torch.randn(x.shape, generator=gen(0), dtype=torch.float64)
    assert ssim(x, y, win_size=7) == pytest.approx(ssim(y, x, win_size=7), rel=1e-12)
    values = [ssim(x, x + s * torch.randn(x.shape, generator=gen(1), dtype=torch.float64), win_size=7)
              for s in (0.05, 0.2, 0.8)]
    assert 1 > values[0] > values[1] > values[2]
    # flat images: only the luminance term is left, (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, -0.4, (0.01 * 2) ** 2
    flat = ssim(torch.full((1, 1, 12, 12), a, dtype=torch.float64), torch.full((1, 1, 12, 12), b, dtype=torch.float64))
    assert flat == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-10)
    with pytest.raises(ValueError, match="smaller than win_size=11"):
        ssim(x[:, :, :8, :8], x[:, :, :8, :8])


def test_ssim_and_psnr_match_scikit_image():
    # Oracle where scikit-image is installed (absent from the pinned set; measured on a machine
    # that has it: max |difference| 3e-15 over 6 digit pairs).
    skimage_metrics = pytest.importorskip("skimage.metrics")
    x, _ = load_digits("test", size=32)
    x = x[:4].double()
    y = (x + 0.3 * torch.randn(x.shape, generator=gen(0), dtype=torch.float64)).clamp(-1, 1)
    ours = ssim(x, y, reduction="none")
    for i in range(4):
        a, b = x[i, 0].numpy(), y[i, 0].numpy()
        ref = skimage_metrics.structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False)
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)
        assert psnr(x[i:i + 1], y[i:i + 1]) == pytest.approx(
            skimage_metrics.peak_signal_noise_ratio(a, b, data_range=2.0), rel=1e-10)


# -- bits per dimension and the PF-ODE likelihood ------------------------------------------------
def test_bits_per_dim_from_nll():
    assert bits_per_dim_from_nll(10 * math.log(2), 10) == pytest.approx(1.0)
    # 8-bit images in [-1, 1]: bins of width 2/256 add log2(128) = 7 bits
    assert bits_per_dim_from_nll(0.0, 3072, bin_width=2 / 256) == pytest.approx(7.0)
    out = bits_per_dim_from_nll(torch.tensor([0.0, 2 * math.log(2)]), 2)
    assert torch.allclose(out, torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="bin_width"):
        bits_per_dim_from_nll(1.0, 2, bin_width=0)


SIGMA_MIN, SIGMA_MAX = 1e-3, 80.0


def full_covariance_mixture() -> GaussianMixture:
    # three 3-D components with correlated covariances: exercises off-diagonal Jacobian terms
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(3, 3, 3)) * 0.3
    covs = factors @ factors.transpose(0, 2, 1) + 0.05 * np.eye(3)
    return GaussianMixture([0.5, 0.3, 0.2], rng.normal(size=(3, 3)), covs)


@pytest.mark.parametrize("make_gmm", [gmm_ring, full_covariance_mixture], ids=["ring2d", "full3d"])
def test_pf_ode_log_likelihood_recovers_the_exact_gmm_density(make_gmm):
    """The proof: the PF-ODE through the exact denoiser reproduces log p(x; sigma_min) exactly.

    Given the exact prior p(.; sigma_max), the only error left is the ODE solver's. Measured at
    sigma_min = 1e-3, sigma_max = 80: adaptive RK45 at rtol = atol = 1e-7 is off by 6e-7 (ring)
    and 1.6e-6 nats (3-D), asserted < 1e-5; fixed RK4 with 100 log-sigma steps by 3e-5 and
    6e-5 nats, asserted < 2e-4.
    """
    gmm = make_gmm()
    x = gmm.sample(12, generator=gen(0))
    truth = gmm.log_prob(x, SIGMA_MIN)

    def exact_prior(z):
        return gmm.log_prob(z, SIGMA_MAX)

    adaptive = pf_ode_log_likelihood(gmm.denoiser, x, SIGMA_MAX, SIGMA_MIN, rtol=1e-7, atol=1e-7,
                                     prior_log_prob=exact_prior)
    assert (adaptive - truth).abs().max() < 1e-5
    rk4 = pf_ode_log_likelihood(gmm.denoiser, x, SIGMA_MAX, SIGMA_MIN, steps=100, prior_log_prob=exact_prior)
    assert (rk4 - truth).abs().max() < 2e-4


def test_pf_ode_with_the_gaussian_prior_and_in_bits_per_dim():
    # The default prior N(0, sigma_max^2 I) differs from p(.; sigma_max) by O(E|x0|^2 / sigma_max^2)
    # for zero-mean data (the ring): measured 1.4e-4 nats at sigma_max = 80, asserted < 1e-3.
    # (For data with mean m the mismatch is O(|m| / sigma_max): 0.014 nats on the 3-D mixture.)
    gmm = gmm_ring()
    x = gmm.sample(12, generator=gen(0))
    log_p = pf_ode_log_likelihood(gmm.denoiser, x, SIGMA_MAX, SIGMA_MIN, rtol=1e-7, atol=1e-7)
    assert (log_p - gmm.log_prob(x, SIGMA_MIN)).abs().max() < 1e-3
    bpd = pf_ode_log_likelihood(gmm.denoiser, x, SIGMA_MAX, SIGMA_MIN, rtol=1e-7, atol=1e-7, unit="bits_per_dim")
    assert torch.allclose(bpd, -log_p / (2 * math.log(2)))


def test_pf_ode_hutchinson_estimate_is_unbiased():
    # With the probe fixed along the path, the RK4 result is linear in the divergence estimates,
    # so its mean over probes equals the exact-trace RK4 result on the same steps.
    gmm = gmm_ring()
    x = gmm.sample(3, generator=gen(0))
    repeats, steps = 1000, 20
    exact = pf_ode_log_likelihood(gmm.denoiser, x, SIGMA_MAX, SIGMA_MIN, steps=steps, exact_trace=True)
    estimates = pf_ode_log_likelihood(
        gmm.denoiser, x.repeat(repeats, 1), SIGMA_MAX, SIGMA_MIN, steps=steps, exact_trace=False,
        generator=gen(1)).reshape(repeats, 3)
    spread = estimates.std(dim=0)
    assert bool((spread > 0.1).all())  # a random estimate (one probe per sample) ...
    assert bool(((estimates.mean(dim=0) - exact).abs() < 4 * spread / math.sqrt(repeats)).all())  # ... centred


def test_pf_ode_rejects_bad_arguments():
    gmm = gmm_ring()
    x = gmm.sample(2, generator=gen(0))
    with pytest.raises(ValueError, match="0 < sigma_min < sigma_max"):
        pf_ode_log_likelihood(gmm.denoiser, x, 1.0, 2.0)
    with pytest.raises(ValueError, match="nats, bits_per_dim"):
        pf_ode_log_likelihood(gmm.denoiser, x, 80.0, 1e-3, unit="bits")


# -- held-out denoising error --------------------------------------------------------------------


def _old_denoising_error(denoiser, x0, cond, sigma, generator):
    """Frozen reference: the held-out error as methods/sr3.py wrote it before it moved here."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    sigmas = x0.new_full((x0.shape[0],), float(sigma))
    return ((denoiser(x0 + sigma * noise, sigmas, cond) - x0) ** 2).mean().item()


def _gaussian_denoiser(v):
    """E[x0 | x0 + sigma n] for x0 ~ N(0, v I)."""
    return lambda x, sigma, cond=None: v / (v + append_dims(sigma, x) ** 2) * x


def test_denoising_error_is_the_gaussian_mmse():
    v, sigma = 0.25, 0.8
    x0 = v**0.5 * torch.randn(4000, 8, generator=gen(0), dtype=torch.float64)
    err = denoising_error(_gaussian_denoiser(v), x0, sigma, generator=gen(1))
    mmse = v * sigma**2 / (v + sigma**2)
    assert abs(err - mmse) < 0.02 * mmse
    # a false variant: the noisy input itself is not that close
    noisy, _ = noisy_and_denoised(_gaussian_denoiser(v), x0, sigma, generator=gen(1))
    assert float(((noisy - x0) ** 2).mean()) > 2 * mmse


def test_denoising_error_equals_the_old_copy_and_its_per_sample_form():
    torch.manual_seed(0)
    net = torch.nn.Linear(12, 6)

    def denoiser(x, sigma, cond):  # a conditional denoiser (cond: a low-resolution image, say)
        return net(torch.cat([x, cond], dim=1)) / (1 + append_dims(sigma, x) ** 2)

    x0, cond = torch.randn(32, 6, generator=gen(2)), torch.randn(32, 6, generator=gen(3))
    with torch.no_grad():
        old = _old_denoising_error(denoiser, x0, cond, 0.7, gen(4))
    assert denoising_error(denoiser, x0, 0.7, cond=cond, generator=gen(4)) == old
    per_sample = denoising_error(denoiser, x0, 0.7, cond=cond, generator=gen(4), reduction="none")
    assert per_sample.shape == (32,)
    torch.testing.assert_close(per_sample.mean().item(), old, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="reduction"):
        denoising_error(denoiser, x0, 0.7, cond=cond, reduction="sum")


def test_noisy_and_denoised_is_the_notebooks_denoising_gain_draw():
    # the labs' "denoising gain at sigma": clean + sigma * randn from g, then D(noisy, full(sigma))
    clean = torch.randn(10, 1, 4, 4, generator=gen(5))
    seen = []

    def denoiser(x, sigma):
        seen.append(sigma)
        return 0.5 * x

    noisy, den = noisy_and_denoised(denoiser, clean, 0.5, generator=gen(6))
    want = clean + 0.5 * torch.randn(clean.shape, generator=gen(6))
    assert torch.equal(noisy, want) and torch.equal(den, 0.5 * want)
    assert torch.equal(seen[0], torch.full((10,), 0.5))

