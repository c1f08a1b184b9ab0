"""DEIS ("tAB", Zhang & Chen 2023) in ``diffnotes.sampling``, on the exact 2-D mixture denoiser.

* Its measured order of convergence is its order (1, 2, 3), against a DOP853 solution.
* On the same noise levels it equals diffusers' ``DEISMultistepScheduler`` (orders 1-3, default
  ``algorithm_type="deis"``) within 1e-4, step by step. diffusers ends at sigma_0 of its table,
  where our solvers end at 0, so we give ours diffusers' levels with the last one replaced by 0:
  every state before the last step must agree, and the last steps are both first order, ours
  returning D and diffusers' an Euler step to sigma_0 from the same state. States at sigma > 1
  are compared in diffusers' own coordinates x / sqrt(1 + sigma^2), where its float32 arithmetic
  lives (in x itself, of size ~sigma, float32 round-off alone reaches 1e-4 at sigma ~ 100).
* Bad arguments raise one ValueError.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from diffnotes.data import gmm_ring
from diffnotes.sampling import sample, sample_deis, sigma_schedule

GMM = gmm_ring(k=8, radius=1.0, std=0.1)
F64 = torch.float64
SIGMA_MIN, SIGMA_MAX = 0.05, 10.0
BETAS = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")


def noise(n, sigma_max, seed):
    return sigma_max * torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


def rmse(a, b):
    return float((a - b).pow(2).sum(1).mean().sqrt())


@pytest.fixture(scope="module")
def ode_problem():
    """x_T and the exact solution: DOP853 down to sigma_min, then the shared last step x = D."""
    x_T = noise(16, SIGMA_MAX, seed=3)

    def rhs(sigma, y):
        x = torch.from_numpy(y.reshape(-1, 2))
        return (-sigma * GMM.score(x, sigma)).numpy().ravel()

    sol = solve_ivp(rhs, (SIGMA_MAX, SIGMA_MIN), x_T.numpy().ravel(), method="DOP853", rtol=1e-12, atol=1e-12)
    assert sol.success
    return x_T, GMM.denoiser(torch.from_numpy(sol.y[:, -1].reshape(-1, 2)), SIGMA_MIN)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deis_measured_order(order, ode_problem):
    x_T, reference = ode_problem
    steps = (32, 64, 128)
    errors = [rmse(sample(GMM.denoiser, x_T, sigma_schedule("loglinear", n, SIGMA_MIN, SIGMA_MAX), "deis",
                          order=order), reference) for n in steps]
    measured = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(measured - order) < 0.3, (order, measured, errors)


def test_deis_order_one_is_euler_and_higher_orders_are_not():
    sigmas = sigma_schedule("karras", 12, 0.01, 20.0)
    x_T = noise(16, 20.0, seed=5)
    euler = sample(GMM.denoiser, x_T, sigmas, "euler")
    assert (sample_deis(GMM.denoiser, x_T, sigmas, order=1) - euler).abs().max() < 1e-12
    second = sample_deis(GMM.denoiser, x_T, sigmas, order=2)
    third = sample_deis(GMM.denoiser, x_T, sigmas, order=3)
    assert (second - euler).abs().max() > 1e-3 and (third - second).abs().max() > 1e-4


def _trajectory(sigmas, x_T, order):
    """Our DEIS on ``sigmas``: the state and denoiser output at every level, and the final sample."""
    states, outputs = [], []

    def grab(info):
        states.append(info["x"])
        outputs.append(info["denoised"])

    final = sample(GMM.denoiser, x_T, sigmas, "deis", order=order, callback=grab)
    return states, outputs, final


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("n_steps, spacing", [
    (10, dict(timestep_spacing="trailing")), (10, dict(timestep_spacing="linspace")),
    (10, dict(use_karras_sigmas=True)), (16, dict(timestep_spacing="trailing")),
])
def test_deis_matches_diffusers(order, n_steps, spacing):
    schedulers = pytest.importorskip("diffusers.schedulers")
    sched = schedulers.DEISMultistepScheduler(**BETAS, solver_order=order, **spacing)
    sched.set_timesteps(n_steps)
    levels = sched.sigmas.double()  # diffusers' levels, the last one sigma_0 of its table
    assert len(levels) == n_steps + 1 and float(levels[-1]) > 0
    x_T = noise(16, float(levels[0]), seed=1234)
    # diffusers' sample is x_VE / sqrt(1 + sigma^2); the model gets the sigma its state holds
    x, theirs = x_T / (1 + float(levels[0]) ** 2) ** 0.5, []
    for i, t in enumerate(sched.timesteps):
        sigma = float(levels[i])
        x_ve = x * (1 + sigma**2) ** 0.5
        theirs.append(x_ve)
        x = sched.step((x_ve - GMM.denoiser(x_ve, sigma)) / sigma, t, x).prev_sample
    theirs_final = x.double() * (1 + float(levels[-1]) ** 2) ** 0.5

    ours, outputs, final = _trajectory(torch.cat([levels[:-1], levels.new_zeros(1)]), x_T, order)
    assert len(ours) == n_steps
    for i, (a, b) in enumerate(zip(ours, theirs)):  # in diffusers' own (VP) coordinates, |x| ~ 1
        gap = float((a - b).abs().max()) / (1 + float(levels[i]) ** 2) ** 0.5
        assert gap < 1e-4, (i, gap)
    # the last steps: both first order from the same state, to 0 (ours) and to sigma_0 (diffusers')
    sigma_n, sigma_0 = float(levels[-2]), float(levels[-1])
    eps_n = (ours[-1] - outputs[-1]) / sigma_n
    if n_steps < 15:
        assert (theirs_final - (ours[-1] + (sigma_0 - sigma_n) * eps_n)).abs().max() < 1e-4
    assert torch.equal(final, outputs[-1])
    assert final.abs().max() < 2  # a real sample near the ring


@pytest.mark.parametrize("call, match", [
    (lambda: sample(GMM.denoiser, noise(4, 10.0, 0), sigma_schedule("loglinear", 5, 0.1, 10.0), "deis", order=4),
     "DEIS needs order 1, 2 or 3, got 4"),
    (lambda: sample_deis(GMM.denoiser, noise(4, 10.0, 0), sigma_schedule("loglinear", 5, 0.1, 10.0), order="3"),
     "DEIS needs order 1, 2 or 3, got '3'"),
    (lambda: sample(GMM.denoiser, noise(4, 10.0, 0), sigma_schedule("loglinear", 5, 0.1, 10.0), "deis",
                    variant="bh2"), r"unknown options \['variant'\]; valid options: order"),
    (lambda: sample_deis(GMM.denoiser, noise(4, 10.0, 0), torch.tensor([10.0, 1.0])), "must end at 0"),
])
def test_deis_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
