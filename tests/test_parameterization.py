"""diffnotes.parameterization equals the SymPy conversions of theory.proofs.score_proofs."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from diffnotes import parameterization as P
from diffnotes.data import GaussianMixture
from diffnotes.theory.proofs.score_proofs import CONVERSIONS


def _random_points(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(n, dtype=torch.float64, generator=g) * 3
    x = torch.randn(n, dtype=torch.float64, generator=g) * 5
    sigma = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(math.log(1e-2), math.log(80.0), generator=g))
    scale = torch.empty(n, dtype=torch.float64).uniform_(0.01, 2.0, generator=g)
    return value, x, sigma, scale


@pytest.mark.parametrize("name", sorted(CONVERSIONS))
def test_torch_equals_sympy(name):
    args, expr = CONVERSIONS[name]
    reference = sp.lambdify(args, expr, modules="numpy")
    value, x, sigma, scale = _random_points()
    got = getattr(P, name)(value, x, sigma, scale)
    want = torch.from_numpy(np.asarray(reference(value.numpy(), x.numpy(), sigma.numpy(), scale.numpy())))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "v", "score"])
def test_round_trips(prediction):
    """D -> prediction -> D and prediction -> D -> prediction, float64, to 1e-12.

    Predictions are drawn at their natural size (eps ~ n, v ~ s(n - sigma x0), score ~ -n/(s sigma)),
    since e.g. a score of size 1 at sigma = 0.01 is not one a network would ever output.
    """
    value, x, sigma, scale = _random_points(seed=1)
    natural = {"eps": value, "v": scale * (value - sigma * x), "score": -value / (scale * sigma)}[prediction]
    to_d, from_d = getattr(P, f"{prediction}_to_denoiser"), getattr(P, f"denoiser_to_{prediction}")
    torch.testing.assert_close(to_d(from_d(value, x, sigma, scale), x, sigma, scale), value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(from_d(to_d(natural, x, sigma, scale), x, sigma, scale), natural, rtol=1e-12, atol=1e-12)


def test_exact_quantities_and_vp_form():
    """x_t = s(x0 + sigma n): eps = n, v = s n - s sigma x0 and the conditional score go to x0."""
    g = torch.Generator().manual_seed(2)
    x0, n = torch.randn(2, 50, 3, 4, 4, dtype=torch.float64, generator=g)
    sigma = torch.rand(50, dtype=torch.float64, generator=g) * 10 + 0.01  # per-sample, image-shaped x
    s = P.vp_scale(sigma)
    sb, sgb = P.append_dims(s, x0), P.append_dims(sigma, x0)
    x_t = sb * (x0 + sgb * n)
    alpha, sigma_vp = sb, sb * sgb
    torch.testing.assert_close(alpha**2 + sigma_vp**2, torch.ones_like(alpha))
    v = alpha * n - sigma_vp * x0
    torch.testing.assert_close(P.eps_to_denoiser(n, x_t, sigma, s), x0)
    torch.testing.assert_close(P.v_to_denoiser(v, x_t, sigma, s), x0)
    torch.testing.assert_close(P.v_to_denoiser(v, x_t, sigma, s), alpha * x_t - sigma_vp * v)  # Salimans & Ho
    torch.testing.assert_close(P.score_to_denoiser(-n / (sb * sgb), x_t, sigma, s), x0)
    torch.testing.assert_close(P.denoiser_to_v(x0, x_t, sigma, s), v)


def _gmm():
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]], [0.2, 0.05])


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_wrap_recovers_the_exact_denoiser(prediction):
    """A VP network that predicts eps / x0 / v / score exactly, wrapped, is the exact D."""
    gmm = _gmm()
    t_of_sigma = lambda sigma: torch.log(sigma)  # any conditioning the net was trained with  # noqa: E731

    def model(x_t, cond):
        sigma = torch.exp(cond).reshape(-1, 1)
        s = P.vp_scale(sigma)
        x_hat = x_t / s
        d = gmm.denoiser(x_hat, sigma.reshape(-1))  # E[x0 | x_t]
        e = -sigma * gmm.score(x_hat, sigma.reshape(-1))  # E[n | x_t] = -sigma grad log p(x_hat)
        return {
            "x0": d,
            "eps": e,
            "v": s * e - s * sigma * d,  # E[v | x_t] by linearity of expectation
            "score": gmm.score(x_hat, sigma.reshape(-1)) / s,  # grad log p_t = (1/s) grad log p(x/s)
        }[prediction]

    denoiser = P.wrap(model, prediction, scale=P.vp_scale, noise_cond=t_of_sigma)
    g = torch.Generator().manual_seed(3)
    x = gmm.sample(64, generator=g)
    for sigma in (torch.tensor(0.3, dtype=torch.float64), torch.rand(64, dtype=torch.float64, generator=g) * 5 + 0.05):
        x_hat = x + P.append_dims(sigma, x) * torch.randn(x.shape, dtype=torch.float64, generator=g)
        torch.testing.assert_close(denoiser(x_hat, sigma), gmm.denoiser(x_hat, sigma), rtol=1e-10, atol=1e-10)


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="prediction must be one of eps, x0, v, score"):
        P.wrap(lambda x, c: x, "noise")
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        P.eps_to_denoiser(x, x, torch.ones(3))


def test_append_dims_is_the_per_sample_broadcast():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.float64)
    per_sample = torch.arange(4, dtype=torch.float32)
    out = P.append_dims(per_sample, x)
    assert out.shape == (4, 1, 1, 1) and out.dtype == torch.float64
    assert torch.equal(out.flatten(), per_sample.double())
    assert P.append_dims(torch.tensor(2.0), x).shape == ()
    assert P.append_dims(0.5, x) == 0.5  # a Python number stays one (full precision)
    with pytest.raises(ValueError, match=r"must be a scalar or have shape \(4,\)"):
        P.append_dims(torch.ones(3), x)
    with pytest.raises(ValueError, match="got shape"):
        P.append_dims(torch.ones(4, 1), x)
