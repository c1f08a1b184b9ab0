"""UniPC and the model-fitted step schedules of ``diffnotes.sampling``.

* UniPC's measured order of convergence matches its theory (UniP-p alone: p; with the UniC
  corrector: p + 1), against a DOP853 solution of the same ODE.
* On the same sigmas it equals diffusers' ``UniPCMultistepScheduler`` (bh2) within 1e-4.
* ``optimize_sigmas`` fits a schedule from pilot noise and the model alone, and the fitted
  schedule beats the general-purpose ones on noise it never saw.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from diffnotes.data import gmm_ring
from diffnotes.sampling import (knot_sigmas, optimize_sigmas, refine_sigmas, sample, sigma_schedule,
                                warped_sigmas)

GMM = gmm_ring(k=8, radius=1.0, std=0.1)
F64 = torch.float64
SIGMA_MIN, SIGMA_MAX = 0.05, 10.0


def noise(n, sigma_max, seed):
    return sigma_max * torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


def rmse(a, b):
    return float((a - b).pow(2).sum(1).mean().sqrt())


def exact_solution(x_T, sigma_max, sigma_min):
    """DOP853 (rtol = atol = 1e-12) from sigma_max to sigma_min, then the shared last step x = D."""
    sol = solve_ivp(lambda s, y: (-s * GMM.score(torch.from_numpy(y.reshape(-1, 2)), s)).numpy().ravel(),
                    (sigma_max, sigma_min), x_T.numpy().ravel(), method="DOP853", rtol=1e-12, atol=1e-12)
    assert sol.success
    return GMM.denoiser(torch.from_numpy(sol.y[:, -1].reshape(-1, 2)), sigma_min)


@pytest.fixture(scope="module")
def ode_problem():
    x_T = noise(16, SIGMA_MAX, seed=3)
    return x_T, exact_solution(x_T, SIGMA_MAX, SIGMA_MIN)


@pytest.mark.parametrize("options, order", [
    (dict(order=1), 2), (dict(order=2), 3), (dict(order=3), 4),
    (dict(order=2, variant="bh1"), 3), (dict(order=3, variant="bh1"), 4),
    (dict(order=2, corrector=False), 2), (dict(order=3, corrector=False), 3),
])
def test_unipc_measured_order(options, order, ode_problem):
    x_T, reference = ode_problem
    steps = (32, 64, 128)
    errors = [rmse(sample(GMM.denoiser, x_T, sigma_schedule("loglinear", n, SIGMA_MIN, SIGMA_MAX), "unipc",
                          **options), reference) for n in steps]
    measured = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(measured - order) < 0.35, (options, measured, errors)


def test_unipc_corrector_is_free_and_helps(ode_problem):
    x_T, reference = ode_problem
    calls = []

    def counting(x, sigma):
        calls.append(1)
        return GMM.denoiser(x, sigma)

    sigmas = sigma_schedule("loglinear", 64, SIGMA_MIN, SIGMA_MAX)
    with_c = sample(counting, x_T, sigmas, "unipc", order=3)
    assert len(calls) == 64  # one model call per level, the corrector reuses it
    without = sample(GMM.denoiser, x_T, sigmas, "unipc", order=3, corrector=False)
    # in the asymptotic range one order more is worth well over a factor 3 at 64 steps
    assert rmse(with_c, reference) < 0.3 * rmse(without, reference)


# -------------------------------------------------------------------------------------------
# Equal to diffusers on the same sigmas
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("spacing", [dict(timestep_spacing="trailing"), dict(use_karras_sigmas=True),
                                     dict(use_exponential_sigmas=True, timestep_spacing="trailing")])
def test_unipc_matches_diffusers(order, spacing):
    schedulers = pytest.importorskip("diffusers.schedulers")
    betas = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    sched = schedulers.UniPCMultistepScheduler(**betas, solver_order=order, solver_type="bh2", **spacing)
    sched.set_timesteps(10)
    sigmas = sched.sigmas.double()  # the levels diffusers chose (last one 0)
    x_T = noise(16, float(sigmas[0]), seed=1234)
    # diffusers' sample is x_VE / sqrt(1 + sigma^2); the model gets the sigma its state holds
    x = x_T / (1 + float(sigmas[0]) ** 2) ** 0.5
    for i, t in enumerate(sched.timesteps):
        sigma = float(sigmas[i])
        x_ve = x * (1 + sigma**2) ** 0.5
        eps = (x_ve - GMM.denoiser(x_ve, sigma)) / sigma
        x = sched.step(eps, t, x).prev_sample
    ours = sample(GMM.denoiser, x_T, sigmas, "unipc", order=order, variant="bh2")
    assert (ours - x.double()).abs().max() < 1e-4
    assert ours.abs().max() < 2  # a real sample near the ring
    # and not the same as plain multistep DPM-Solver++ on those sigmas
    assert (sample(GMM.denoiser, x_T, sigmas, "dpmpp_2m") - ours).abs().max() > 1e-3


# -------------------------------------------------------------------------------------------
# Schedules fitted to a model
# -------------------------------------------------------------------------------------------
def test_warped_sigmas():
    base = warped_sigmas(12, 0.02, 80.0, 0.0)
    assert torch.allclose(base, sigma_schedule("loglinear", 12, 0.02, 80.0))
    for warp in (-3.0, 2.0):
        s = warped_sigmas(12, 0.02, 80.0, warp)
        assert s[-1] == 0 and abs(float(s[0]) - 80.0) < 1e-9 and abs(float(s[-2]) - 0.02) < 1e-12
        assert bool((s[1:] < s[:-1]).all())
    # a negative warp takes the long steps first (at high noise), a positive one last
    assert warped_sigmas(12, 0.02, 80.0, -3.0)[1] < base[1] < warped_sigmas(12, 0.02, 80.0, 2.0)[1]


def test_optimize_sigmas_beats_general_schedules_on_unseen_noise():
    sigma_min, sigma_max, n = 0.01, 80.0, 8
    pilot = noise(64, sigma_max, seed=21)
    sigmas, info = optimize_sigmas(GMM.denoiser, pilot, n, "dpmpp_3m", sigma_min=sigma_min, sigma_max=sigma_max,
                                   reference_steps=200, max_evals=30)
    assert len(sigmas) == n + 1 and sigmas[-1] == 0 and abs(float(sigmas[0]) - sigma_max) < 1e-9
    assert sigma_min <= info["sigma_end"] < sigma_max and info["solves"] <= 30
    fresh = noise(256, sigma_max, seed=99)  # the fit never saw this noise
    reference = sample(GMM.denoiser, fresh, sigma_schedule("loglinear", 200, sigma_min, sigma_max), "dpmpp_3m")
    fitted = rmse(sample(GMM.denoiser, fresh, sigmas, "dpmpp_3m"), reference)
    for kind in ("karras", "loglinear"):
        general = rmse(sample(GMM.denoiser, fresh, sigma_schedule(kind, n, sigma_min, sigma_max), "dpmpp_3m"),
                       reference)
        assert fitted < 0.7 * general, (kind, fitted, general)


def test_knot_sigmas_reproduces_a_schedule_and_stays_in_range():
    base = sigma_schedule("loglinear", 9, 0.02, 80.0)
    gaps = base[:-2].log() - base[1:-1].log()
    knots = torch.log(torch.expm1(gaps))
    assert torch.allclose(knot_sigmas(knots, 9, 80.0, 0.02), base, rtol=1e-10)
    # two knots interpolate linearly over the eight steps; levels never fall below sigma_min
    s = knot_sigmas([5.0, 5.0], 9, 80.0, 0.02)
    assert s[-1] == 0 and float(s[-2]) == 0.02 and abs(float(s[0]) - 80.0) < 1e-12


def test_refine_sigmas_lowers_the_pilot_error_and_the_error_on_unseen_noise():
    sigma_min, sigma_max, n = 0.01, 80.0, 8
    pilot = noise(256, sigma_max, seed=21)
    fine = sigma_schedule("loglinear", 200, sigma_min, sigma_max)
    start = sigma_schedule("karras", n, sigma_min, sigma_max)
    reference = sample(GMM.denoiser, pilot, fine, "unipc")
    before = rmse(sample(GMM.denoiser, pilot, start, "unipc"), reference)
    sigmas, info = refine_sigmas(GMM.denoiser, pilot, start, "unipc", reference=reference,
                                 sigma_min=sigma_min, max_evals=60)
    assert len(sigmas) == n + 1 and sigmas[-1] == 0 and bool((sigmas[1:] < sigmas[:-1]).all())
    assert info["refined_rmse"] < 0.7 * before and info["refine_solves"] <= 62
    fresh = noise(256, sigma_max, seed=99)  # the refinement never saw this noise
    fresh_ref = sample(GMM.denoiser, fresh, fine, "unipc")
    after = rmse(sample(GMM.denoiser, fresh, sigmas, "unipc"), fresh_ref)
    assert after < 0.8 * rmse(sample(GMM.denoiser, fresh, start, "unipc"), fresh_ref)


def test_optimize_sigmas_starts_from_a_given_schedule_when_it_is_better_on_the_pilot():
    sigma_min, sigma_max, n = 0.01, 80.0, 6
    pilot = noise(64, sigma_max, seed=5)
    reference = sample(GMM.denoiser, pilot, sigma_schedule("loglinear", 200, sigma_min, sigma_max), "unipc")
    _, plain = optimize_sigmas(GMM.denoiser, pilot, n, "unipc", sigma_min=sigma_min, sigma_max=sigma_max,
                               reference=reference, max_evals=14)
    worse = sigma_schedule("loglinear", n, 1.0, sigma_max)  # a poor start is never taken
    _, info = optimize_sigmas(GMM.denoiser, pilot, n, "unipc", sigma_min=sigma_min, sigma_max=sigma_max,
                              reference=reference, max_evals=14, starts=[worse])
    assert "start" not in info and info["pilot_rmse"] == plain["pilot_rmse"]


@pytest.mark.parametrize("call, match", [
    (lambda: sample(GMM.denoiser, noise(4, 10.0, 0), sigma_schedule("loglinear", 5, 0.1, 10.0), "unipc", order=4),
     "order in 1, 2, 3"),
    (lambda: sample(GMM.denoiser, noise(4, 10.0, 0), sigma_schedule("loglinear", 5, 0.1, 10.0), "unipc",
                    variant="bh3"), "variant"),
    (lambda: optimize_sigmas(GMM.denoiser, noise(4, 10.0, 0), 1, sigma_min=0.1, sigma_max=10.0), "n must be"),
    (lambda: optimize_sigmas(GMM.denoiser, noise(4, 10.0, 0), 5, sigma_min=1.0, sigma_max=0.5), "sigma_min"),
    (lambda: refine_sigmas(GMM.denoiser, noise(4, 10.0, 0), torch.tensor([10.0, 1.0]), "unipc",
                           reference=noise(4, 1.0, 1), sigma_min=0.1), "end at 0"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
