"""DDIM specifics (diffnotes.methods.ddim): deterministic encoding, slerp, interpolation.

For Gaussian data N(0, s^2 I) the probability-flow ODE is solved in closed form,
x(sigma) = x0 * sqrt(s^2 + sigma^2) / s, which gives the exact latent to compare with.
"""

import math

import pytest
import torch

from diffnotes.data import gmm_ring
from diffnotes.methods import ddim
from diffnotes.methods.ddpm import DDPMSchedule
from diffnotes.sampling import sample, sigma_schedule

S_DATA = 0.5


def gaussian_denoiser(x, sigma):
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return S_DATA**2 / (S_DATA**2 + sigma**2) * x


def test_encode_follows_the_exact_probability_flow():
    x0 = S_DATA * torch.randn(64, 2, dtype=torch.float64)
    errors = []
    for n in (10, 100, 1000):
        sigmas = sigma_schedule("karras", n, 0.002, 80.0).double()
        latent = ddim.encode(gaussian_denoiser, x0, sigmas)
        exact = x0 * math.sqrt(S_DATA**2 + 80.0**2) / S_DATA
        errors.append(((latent - exact).norm() / exact.norm()).item())
    assert errors[2] < 0.01
    assert errors[0] > errors[1] > errors[2]  # first-order solver: error shrinks with the steps


def test_encode_then_decode_reconstructs_and_improves_with_steps():
    gmm = gmm_ring(8, 1.0, 0.1)
    x0 = gmm.sample(200, generator=torch.Generator().manual_seed(0))

    def den(x, sigma):
        return gmm.denoiser(x, sigma)

    sch = DDPMSchedule.linear()
    mse = []
    for steps in (10, 50, 200):
        sigmas = sch.sampling_sigmas(steps)
        rec = ddim.decode(den, ddim.encode(den, x0, sigmas), sigmas)
        mse.append((rec - x0).pow(2).mean().item())
    assert mse[-1] < 1e-3  # data variance is ~0.5 per dim
    assert mse[0] > mse[1] > mse[2]  # DDIM Table 2: reconstruction error falls with S


def test_decode_is_the_eta_zero_ddim_solver_and_euler():
    sigmas = sigma_schedule("karras", 12, 0.01, 10.0).double()
    z = 10.0 * torch.randn(16, 2, dtype=torch.float64)
    out = ddim.decode(gaussian_denoiser, z, sigmas)
    assert torch.allclose(out, sample(gaussian_denoiser, z, sigmas, solver="euler"))
    assert torch.allclose(out, sample(gaussian_denoiser, z, sigmas, solver="ddim", eta=0.0))


def test_slerp_end_points_norm_and_midpoint():
    z0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    z1 = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    path = ddim.slerp(z0, z1, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert path.shape == (5, 3)
    assert torch.allclose(path[0], z0) and torch.allclose(path[-1], z1)
    assert torch.allclose(path.norm(dim=1), torch.ones(5, dtype=torch.float64))  # stays on the sphere
    assert torch.allclose(path[2], (z0 + z1) / math.sqrt(2))
    # a straight line would shrink Gaussian latents; slerp keeps their norm
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 8, 8, generator=g), torch.randn(1, 8, 8, generator=g)
    mid = ddim.slerp(a, b, 0.5)[0]
    assert abs(mid.norm() - a.norm()) < 0.25 * a.norm()
    assert (0.5 * (a + b)).norm() < 0.85 * a.norm()
    # parallel vectors: falls back to the straight line
    assert torch.allclose(ddim.slerp(z0, 2 * z0, 0.5)[0], 1.5 * z0)


def test_interpolate_decodes_the_end_points():
    sigmas = sigma_schedule("karras", 8, 0.01, 10.0).double()
    za, zb = 10 * torch.randn(2, dtype=torch.float64), 10 * torch.randn(2, dtype=torch.float64)
    out = ddim.interpolate(gaussian_denoiser, za, zb, sigmas, num=4)
    assert out.shape == (4, 2)
    assert torch.allclose(out[0], ddim.decode(gaussian_denoiser, za[None], sigmas)[0])
    assert torch.allclose(out[-1], ddim.decode(gaussian_denoiser, zb[None], sigmas)[0])


def test_bad_input_raises_one_clear_value_error():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="decreasing"):
        ddim.encode(gaussian_denoiser, x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="end with 0"):
        ddim.encode(gaussian_denoiser, x, torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        ddim.slerp(torch.zeros(2), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="num"):
        ddim.interpolate(gaussian_denoiser, torch.ones(2), torch.ones(2), torch.tensor([1.0, 0.0]), num=1)
