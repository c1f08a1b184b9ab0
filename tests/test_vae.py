"""VAE bounds on a linear-Gaussian model, where log p(x) and the posterior are known exactly.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I) and
p(z|x) = N(C W^T (x - b) / s^2, C) with C = (I + W^T W / s^2)^{-1}. With W's columns orthogonal
the posterior covariance is diagonal, so a linear mean-field encoder can represent it exactly.
"""

import math

import pytest
import torch

from diffnotes.methods.vae import (
    VAE,
    VAELoss,
    binarized_digits,
    gaussian_kl_to_standard,
    independent_pixels_log_likelihood,
)

X_DIM, Z_DIM, S = 3, 2, 0.5




def _linear_vae(exact_posterior: bool = True) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(X_DIM, X_DIM, dtype=torch.float64))
    w = q[:, :Z_DIM] * torch.tensor([1.5, 0.7], dtype=torch.float64)  # orthogonal columns
    b = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    vae = VAE(X_DIM, Z_DIM, hidden=(), likelihood="gaussian").double()
    post_cov = torch.linalg.inv(torch.eye(Z_DIM, dtype=torch.float64) + w.T @ w / S**2)
    a = post_cov @ w.T / S**2
    with torch.no_grad():
        vae.decoder[0].weight.copy_(w)
        vae.decoder[0].bias.copy_(b)
        vae.log_sigma_x.fill_(math.log(S))
        enc = vae.encoder[0]
        enc.weight.zero_()
        enc.weight[:Z_DIM].copy_(a)
        enc.bias[:Z_DIM].copy_(-a @ b)
        enc.bias[Z_DIM:].copy_(torch.diagonal(post_cov).log())
        if not exact_posterior:  # a wrong mean and a too-wide variance (wide: the importance
            enc.bias[:Z_DIM].add_(0.4)  # weights p/q keep a finite variance, see iwae below)
            enc.bias[Z_DIM:].add_(0.7)
    return vae, w, b


def _log_px(x, w, b):
    cov = w @ w.T + S**2 * torch.eye(X_DIM, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def _kl_to_posterior(vae, x, w, b):
    """KL(q(z|x) || p(z|x)), exactly, for the linear-Gaussian model."""
    mu, log_var = vae.encode(x)
    post_cov = torch.linalg.inv(torch.eye(Z_DIM, dtype=torch.float64) + w.T @ w / S**2)
    post_mean = (x - b) @ w @ post_cov / S**2
    q = torch.distributions.MultivariateNormal(mu, torch.diag_embed(log_var.exp()))
    p = torch.distributions.MultivariateNormal(post_mean, post_cov)
    return torch.distributions.kl_divergence(q, p)


def _data(n=6):
    return torch.randn(n, X_DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def test_elbo_equals_log_likelihood_with_the_exact_posterior():
    vae, w, b = _linear_vae(exact_posterior=True)
    x = _data()
    # SGVB A: log p(x,z) - log q(z|x) is log p(x) at every z when q is the posterior
    elbo_a = vae.elbo(x, n_samples=3, analytic_kl=False).detach()
    assert torch.allclose(elbo_a, _log_px(x, w, b), atol=1e-10)
    # SGVB B: Monte Carlo reconstruction term, closed-form KL; equal in expectation
    elbo_b = vae.elbo(x, n_samples=40_000, analytic_kl=True, generator=torch.Generator().manual_seed(2)).detach()
    assert torch.allclose(elbo_b, _log_px(x, w, b), atol=0.02)
    assert torch.allclose(vae.iwae_bound(x, k=50), _log_px(x, w, b), atol=1e-10)


def test_elbo_is_below_log_likelihood_by_the_posterior_kl():
    vae, w, b = _linear_vae(exact_posterior=False)
    x = _data()
    log_px = _log_px(x, w, b)
    gap = _kl_to_posterior(vae, x, w, b).detach()
    assert bool((gap > 0.1).all())
    g = torch.Generator().manual_seed(3)
    for analytic_kl in (True, False):
        elbo = vae.elbo(x, n_samples=40_000, analytic_kl=analytic_kl, generator=g).detach()
        assert bool((elbo < log_px).all())
        assert torch.allclose(elbo, log_px - gap, atol=0.03), (elbo, log_px - gap)
    # the importance-weighted bound closes the gap as k grows (it is a bound only in expectation,
    # so one draw may land a little above log p(x); hence a tolerance, not an inequality)
    iwae = vae.iwae_bound(x, k=100_000, generator=g)
    assert torch.allclose(iwae, log_px, atol=0.02), iwae - log_px


def test_kl_to_standard_normal_matches_torch():
    mu = torch.randn(4, 3, dtype=torch.float64)
    log_var = torch.randn(4, 3, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl_to_standard(mu, log_var), expected)


def test_digits_baseline_and_a_short_training_run():
    train, test = binarized_digits("train"), binarized_digits("test")
    assert train.shape == (790, 64) and set(train.unique().tolist()) == {0.0, 1.0}
    baseline = independent_pixels_log_likelihood(train, test)
    assert baseline.shape == (test.shape[0],) and bool((baseline < 0).all())
    from diffnotes.train import fit

    result = fit(VAE(64, 4, hidden=(64,)), VAELoss(seed=1), train, 150, lr=3e-3, batch_size=64,
                 device="cpu", progress=False)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < first - 5.0, (first, last)  # the negative ELBO fell by more than 5 nats


def test_bad_input_raises_one_clear_line():
    with pytest.raises(ValueError, match="valid: bernoulli, gaussian"):
        VAE(4, 2, likelihood="poisson")
    vae = VAE(4, 2)
    with pytest.raises(ValueError, match="expects 4 values"):
        vae.elbo(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="n_samples"):
        vae.elbo(torch.zeros(2, 4), n_samples=0)


def test_estimator_variance_zero_for_sgvb_a_at_the_exact_posterior():
    from diffnotes.methods.vae import elbo_estimator_variance

    x = _data()
    vae, _, _ = _linear_vae(exact_posterior=True)
    gen = torch.Generator().manual_seed(3)
    var_a = elbo_estimator_variance(vae, x, analytic_kl=False, draws=50, generator=gen)
    var_b = elbo_estimator_variance(vae, x, analytic_kl=True, draws=50, generator=gen)
    assert var_a.shape == (x.shape[0],)
    assert float(var_a.max()) < 1e-20  # log p(x, z) - log q(z|x) = log p(x) at every z
    assert bool((var_b > 1e-3).all())  # the reconstruction term still varies with z
    with pytest.raises(ValueError, match="draws must be >= 2"):
        elbo_estimator_variance(vae, x, draws=1)
