"""The exact Gaussian mixture: log-density, score and denoiser against independent references."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from diffnotes.data import GaussianMixture, gmm_grid, gmm_ring


@pytest.fixture
def mixture():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, 3, dtype=torch.float64, generator=g)
    covs = a @ a.transpose(1, 2) + 0.1 * torch.eye(3, dtype=torch.float64)
    return GaussianMixture([0.2, 0.5, 0.3], torch.randn(3, 3, generator=g), covs)


def test_log_prob_matches_torch_distributions(mixture):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, dtype=torch.float64, generator=g)
    sigma = torch.rand(40, dtype=torch.float64, generator=g)
    eye = torch.eye(3, dtype=torch.float64)
    ref = torch.stack([
        torch.logsumexp(torch.stack([
            math.log(w) + MultivariateNormal(mixture.means[k], mixture.covs[k] + sigma[n] ** 2 * eye).log_prob(x[n])
            for k, w in enumerate(mixture.weights.tolist())
        ]), 0)
        for n in range(40)
    ])
    assert torch.allclose(mixture.log_prob(x, sigma), ref, atol=1e-12)


def test_score_is_gradient_of_log_prob(mixture):
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, 0.7).sum(), x)
    assert torch.allclose(mixture.score(x.detach(), 0.7), grad, atol=1e-12)


def test_denoiser_of_one_gaussian_is_the_posterior_mean():
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    gauss = GaussianMixture([1.0], mu, cov.unsqueeze(0))
    x = torch.randn(10, 2, dtype=torch.float64)
    sigma = 0.8
    # E[x0 | x] = mu + C (C + sigma^2 I)^-1 (x - mu) for Gaussian data
    gain = cov @ torch.linalg.inv(cov + sigma**2 * torch.eye(2, dtype=torch.float64))
    expected = mu + (x - mu) @ gain.T
    assert torch.allclose(gauss.denoiser(x, sigma), expected, atol=1e-12)


def test_sample_moments_and_labels():
    ring = gmm_ring(k=4, radius=2.0, std=0.05)
    x, labels = ring.sample(20000, generator=torch.Generator().manual_seed(0), return_labels=True)
    assert torch.allclose(x.mean(0), torch.zeros(2, dtype=torch.float64), atol=0.05)
    counts = torch.bincount(labels, minlength=4).double() / 20000
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)
    assert gmm_grid(3).means.shape == (9, 2)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([1.0, -1.0], torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="means"):
        GaussianMixture([1.0], torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture([1.0], torch.zeros(1, 2), torch.ones(1, 3, 3))
