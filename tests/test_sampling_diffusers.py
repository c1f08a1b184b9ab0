"""Our samplers against diffusers' schedulers on the same exact model (diffusers is a test oracle).

The model is the exact denoiser of a 2-D Gaussian mixture. diffusers' discrete schedulers expect
an eps-prediction network ``eps(x_in, t)`` on VP-scaled inputs, so we express the same denoiser
that way: the integer or fractional timestep t gives sigma(t) by interpolating log sigma over
DDPM's table sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) (the exact inverse of diffusers'
``_sigma_to_t``), the VE input is x = x_in * sqrt(1 + sigma^2), and eps = (x - D(x; sigma)) / sigma.

Where diffusers works in VP coordinates (DDIM, DPM-Solver), its sample is x_VE / sqrt(1 + sigma^2)
and reaches x_VE at sigma = 0; Euler and Heun keep x_VE and divide only the model input
(``scale_model_input``). diffusers computes its tables (and Euler/DPM updates) in float32, so
agreement is at the 1e-6 level even though we run in float64; the bar is 1e-4.

Settings chosen so both sides run the same algorithm:
  * DDIM: ``clip_sample=False`` (no x0 clipping), ``set_alpha_to_one=True`` (the last step goes to
    alpha_bar = 1, i.e. sigma = 0), ``steps_offset=0``, ``eta=0``, DDPM's linear betas.
  * Euler: ``final_sigmas_type="zero"``, ``s_churn=0`` (no noise), same spacing as ours.
  * Heun: ``use_karras_sigmas=True`` with DDPM's betas (its defaults are Stable Diffusion's), so
    sigma_max = sigma_999 and sigma_min = sigma_0, rho = 7; its last step is Euler, as EDM's Alg. 1.
  * DPM-Solver++: ``algorithm_type="dpmsolver++"``, ``solver_order=2``, ``solver_type="midpoint"``
    (the paper's 2M), ``final_sigmas_type="zero"`` (which also makes the last step first order,
    like ours), ``timestep_spacing="linspace"`` whose n timesteps are the first n of
    round(linspace(0, T-1, n+1)) reversed, i.e. ``ddpm_sigmas(n + 1, "linspace")`` without its t = 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffnotes.data import gmm_ring
from diffnotes.sampling import ddpm_sigmas, sample, sigma_schedule

schedulers = pytest.importorskip("diffusers.schedulers")

T = 1000
BETAS = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
N_STEPS = 10
TOL = 1e-4

GMM = gmm_ring(k=8, radius=1.0, std=0.1)
# The "network" is trained on diffusers' own table (alpha_bar as a float32 cumulative product),
# so that the model and each scheduler agree on sigma(t) exactly; our samplers run on our float64
# ``ddpm_sigmas``, which differ from this table by float32 round-off (< 2e-4 relative, checked below).
_ALPHA_BAR = schedulers.DDIMScheduler(**BETAS).alphas_cumprod.double()
SIGMA_TABLE = ((1 - _ALPHA_BAR) / _ALPHA_BAR).sqrt()  # sigma_t for t = 0 ... T-1
LOG_SIGMA_TABLE = SIGMA_TABLE.log().numpy()
SIGMA_RTOL = 2e-4


def sigma_of_t(t) -> float:
    return float(np.exp(np.interp(float(t), np.arange(T), LOG_SIGMA_TABLE)))


def eps_model(x_in: torch.Tensor, t) -> torch.Tensor:
    """The exact GMM denoiser as an eps-prediction network on diffusers' VP-scaled inputs."""
    sigma = sigma_of_t(t)
    x = x_in * (1 + sigma**2) ** 0.5
    return (x - GMM.denoiser(x, sigma)) / sigma


def initial_noise(sigma_max: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(1234)
    return sigma_max * torch.randn(16, 2, dtype=torch.float64, generator=g)


def run_vp_scheduler(scheduler, x_ve: torch.Tensor, sigma_start: float, **step_kwargs) -> torch.Tensor:
    """Drive a diffusers scheduler whose sample lives in VP coordinates (DDIM, DPM-Solver)."""
    x = x_ve / (1 + sigma_start**2) ** 0.5
    for t in scheduler.timesteps:
        x = scheduler.step(eps_model(x, t), t, x, **step_kwargs).prev_sample
    return x


def run_ve_scheduler(scheduler, x_ve: torch.Tensor) -> torch.Tensor:
    """Drive a diffusers scheduler whose sample is x_VE and which scales only the model input."""
    x = x_ve
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        x = scheduler.step(eps_model(x_in, t), t, x).prev_sample
    return x


def test_ddpm_sigmas_match_diffusers_table():
    ours = ddpm_sigmas(T, "leading")[:-1].flip(0)  # every timestep, t = 0 ... T-1
    assert torch.allclose(ours, SIGMA_TABLE, rtol=SIGMA_RTOL)
    # and the eps wrapper inverts diffusers' sigma -> t interpolation at a fractional timestep
    t = 123.4
    log_lo, log_hi = LOG_SIGMA_TABLE[123], LOG_SIGMA_TABLE[124]
    assert np.isclose(np.log(sigma_of_t(t)), log_lo + 0.4 * (log_hi - log_lo))


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ddim_matches_diffusers(spacing):
    sched = schedulers.DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                     timestep_spacing=spacing)
    sched.set_timesteps(N_STEPS)
    sigmas, timesteps = ddpm_sigmas(N_STEPS, spacing, return_timesteps=True)
    assert timesteps.tolist() == sched.timesteps.tolist()
    x_T = initial_noise(float(sigmas[0]))
    ours = sample(GMM.denoiser, x_T, sigmas, "ddim", eta=0.0)
    theirs = run_vp_scheduler(sched, x_T, float(sigmas[0]), eta=0.0)
    assert (ours - theirs).abs().max() < TOL
    assert ours.abs().max() < 2  # and it is a real sample near the ring, not a trivially equal blow-up


def _ddim_one_step(x, sigma, sigma_next):
    """One step of our DDIM from sigma to sigma_next (run [sigma, sigma_next, 0], keep the iterate)."""
    if sigma_next == 0:
        return sample(GMM.denoiser, x, torch.tensor([sigma, 0.0], dtype=torch.float64), "ddim")
    captured = {}

    def grab(info):
        if info["i"] == 1:
            captured["x"] = info["x"]

    sample(GMM.denoiser, x, torch.tensor([sigma, sigma_next, 0.0], dtype=torch.float64), "ddim", callback=grab)
    return captured["x"]


def test_ddim_linspace_matches_diffusers_step_by_step():
    # diffusers' DDIM always steps from t to t - T // n, which for "linspace" is not the next listed
    # timestep (the next step then restarts from a different level). Each of its steps is still our
    # DDIM step between those two sigmas, which is what we check, step by step.
    sched = schedulers.DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=True, timestep_spacing="linspace")
    sched.set_timesteps(N_STEPS)
    sigmas, timesteps = ddpm_sigmas(N_STEPS, "linspace", return_timesteps=True)
    assert timesteps.tolist() == sched.timesteps.tolist()
    x_vp = initial_noise(float(sigmas[0])) / (1 + float(sigmas[0]) ** 2) ** 0.5
    for t in sched.timesteps.tolist():
        t_prev = t - T // N_STEPS
        sigma, sigma_prev = float(SIGMA_TABLE[t]), (float(SIGMA_TABLE[t_prev]) if t_prev >= 0 else 0.0)
        ours = _ddim_one_step(x_vp * (1 + sigma**2) ** 0.5, sigma, sigma_prev)
        x_vp = sched.step(eps_model(x_vp, t), t, x_vp, eta=0.0).prev_sample
        assert (ours - x_vp * (1 + sigma_prev**2) ** 0.5).abs().max() < TOL


@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
def test_euler_matches_diffusers(spacing):
    sched = schedulers.EulerDiscreteScheduler(**BETAS, timestep_spacing=spacing, final_sigmas_type="zero")
    sched.set_timesteps(N_STEPS)
    sigmas = ddpm_sigmas(N_STEPS, spacing)
    assert torch.allclose(sched.sigmas.double(), sigmas, rtol=SIGMA_RTOL)
    x_T = initial_noise(float(sigmas[0]))
    ours = sample(GMM.denoiser, x_T, sigmas, "euler")
    theirs = run_ve_scheduler(sched, x_T)
    assert (ours - theirs).abs().max() < TOL
    # DDIM with eta = 0 is Euler in sigma (the same sigmas give the same samples).
    assert (sample(GMM.denoiser, x_T, sigmas, "ddim") - ours).abs().max() < 1e-12


def test_heun_karras_matches_diffusers():
    sched = schedulers.HeunDiscreteScheduler(**BETAS, use_karras_sigmas=True)
    sched.set_timesteps(N_STEPS)
    sigmas = sigma_schedule("karras", N_STEPS, float(SIGMA_TABLE[0]), float(SIGMA_TABLE[-1]), rho=7.0)
    theirs_sigmas = torch.cat([sched.sigmas[:1], sched.sigmas[1:-1:2], sched.sigmas[-1:]]).double()
    assert torch.allclose(theirs_sigmas, sigmas, rtol=SIGMA_RTOL)
    x_T = initial_noise(float(sigmas[0]))
    ours = sample(GMM.denoiser, x_T, sigmas, "heun")
    theirs = run_ve_scheduler(sched, x_T)
    assert (ours - theirs).abs().max() < TOL


def test_dpmpp_2m_matches_diffusers():
    sched = schedulers.DPMSolverMultistepScheduler(
        **BETAS, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True,
        final_sigmas_type="zero", timestep_spacing="linspace")
    sched.set_timesteps(N_STEPS)
    levels = ddpm_sigmas(N_STEPS + 1, "linspace")
    sigmas = torch.cat([levels[:-2], levels.new_zeros(1)])
    assert torch.allclose(sched.sigmas.double(), sigmas, rtol=SIGMA_RTOL)
    x_T = initial_noise(float(sigmas[0]))
    ours = sample(GMM.denoiser, x_T, sigmas, "dpmpp_2m")
    theirs = run_vp_scheduler(sched, x_T, float(sigmas[0]))
    assert (ours - theirs).abs().max() < TOL
    # 2M is not Euler: the test would not notice a silently first-order solver otherwise.
    assert (sample(GMM.denoiser, x_T, sigmas, "euler") - ours).abs().max() > 100 * TOL


# -- the benchmark hands our levels to diffusers' solvers (benchmarks/bench_samplers.py) -----------
@pytest.mark.parametrize("cls_name, options, ours, our_options", [
    ("UniPCMultistepScheduler", dict(solver_order=2, solver_type="bh2"), "unipc", dict(order=2)),
    ("DPMSolverMultistepScheduler", dict(solver_order=2, algorithm_type="dpmsolver++"), "dpmpp_2m", {}),
])
def test_our_levels_handed_to_diffusers_give_our_samples(cls_name, options, ours, our_options):
    """A fitted schedule (any levels, then 0) set as a scheduler's state runs diffusers' solver on
    exactly those levels: same algorithm, same levels, same samples."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_samplers as B

    gmm = gmm_ring()

    def den(x, s):
        return gmm.denoiser(x.double(), torch.as_tensor(s, dtype=torch.float64).clamp(min=B.SIGMA_MIN))

    levels = torch.tensor([B.SIGMA_MAX, 40.0, 9.0, 2.5, 0.9, 0.3, 0.08, 0.0], dtype=torch.float64)
    x = B.SIGMA_MAX * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    make = lambda: getattr(schedulers, cls_name)(**BETAS, **options)  # noqa: E731
    theirs, nfe, _ = B._run_scheduler(make, 7, x, den, levels=levels)
    assert nfe == 7
    assert torch.allclose(theirs, sample(den, x, levels, ours, **our_options), atol=TOL)
