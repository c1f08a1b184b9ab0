"""Schedules and samplers of ``diffnotes.sampling`` on the exact Gaussian-mixture denoiser (float64).

Errors are measured against the truth: the mixture's own density, a high-accuracy ODE solution,
or DDPM's update written in its own variables.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffnotes.data import GaussianMixture, gmm_ring
from diffnotes.sampling import (
    SCHEDULES, SOLVERS, ddpm_sigmas, sample, sigma_schedule, vp_sigma, vp_sigma_inv,
)

GMM = gmm_ring(k=8, radius=1.0, std=0.1)
F64 = torch.float64


def noise(n, sigma_max, seed=0):
    g = torch.Generator().manual_seed(seed)
    return sigma_max * torch.randn(n, 2, dtype=F64, generator=g)


# -------------------------------------------------------------------------------------------
# Schedules
# -------------------------------------------------------------------------------------------
def test_exports():
    assert set(SCHEDULES) == {"karras", "loglinear", "uniform", "vp"}
    assert {"euler", "heun", "edm_stochastic", "dpmpp_2m", "dpmpp_3m", "ddim", "euler_maruyama",
            "predictor_corrector", "ancestral", "annealed_langevin", "unipc", "deis"} == set(SOLVERS)


@pytest.mark.parametrize("kind", ["karras", "loglinear", "uniform"])
def test_schedule_shape_and_endpoints(kind):
    s = sigma_schedule(kind, 12, 0.01, 50.0)
    assert s.dtype == F64 and s.shape == (13,)
    assert s[-1] == 0 and bool((s[1:] < s[:-1]).all())
    assert math.isclose(float(s[0]), 50.0, rel_tol=1e-12) and math.isclose(float(s[-2]), 0.01, rel_tol=1e-12)


def test_schedule_spacings():
    loglin = sigma_schedule("loglinear", 9, 0.01, 100.0)[:-1]
    ratios = loglin[1:] / loglin[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12)  # equal steps in lambda
    uni = sigma_schedule("uniform", 9, 0.01, 100.0)[:-1]
    assert torch.allclose(uni[:-1] - uni[1:], (uni[0] - uni[1]).expand(8), rtol=1e-10)
    # rho = 1 is uniform; large rho approaches log-linear (EDM, Sec. 3 "Discretization")
    assert torch.allclose(sigma_schedule("karras", 9, 0.01, 100.0, rho=1.0)[:-1], uni, rtol=1e-12)
    far = sigma_schedule("karras", 9, 0.01, 100.0, rho=1e4)[:-1]
    assert torch.allclose(far, loglin, rtol=1e-2)
    # Karras rho = 7 sits between the two: near sigma_min its steps are shorter in sigma than
    # uniform ones but longer in log sigma than log-linear ones (and the reverse near sigma_max).
    kar = sigma_schedule("karras", 9, 0.01, 100.0)[:-1]
    assert kar[-2] - kar[-1] < uni[-2] - uni[-1] and kar[-2] / kar[-1] > loglin[-2] / loglin[-1]
    assert kar[0] / kar[1] < loglin[0] / loglin[1]


def test_vp_schedule_is_uniform_in_vp_time():
    s = sigma_schedule("vp", 11)[:-1]
    t = vp_sigma_inv(s)
    assert torch.allclose(t, torch.linspace(1.0, 1e-3, 11, dtype=F64), atol=1e-12)
    assert torch.allclose(vp_sigma(t), s, rtol=1e-12)
    # EDM's VP range: sigma(1) ~ 152, sigma(1e-3) ~ 0.0105 (beta_d = 19.9, beta_min = 0.1)
    assert 150 < float(s[0]) < 154 and 0.0104 < float(s[-1]) < 0.0106


def test_vp_schedule_equals_theory():
    # One formula, one place: the numeric VP sigma(t) is the theory's expression evaluated.
    import diffnotes.theory as theory
    proc = theory.get_process("vp")
    rng = np.random.default_rng(0)
    for t in rng.uniform(1e-3, 1.0, size=5):
        expected = float(proc.subs(proc.sigma).subs(proc.t, t))
        assert math.isclose(float(vp_sigma(t)), expected, rel_tol=1e-12)
        assert math.isclose(float(vp_sigma_inv(expected)), t, rel_tol=1e-10)


def test_ddpm_sigmas_equal_theory_and_definition():
    sigmas, timesteps = ddpm_sigmas(1000, "leading", return_timesteps=True)
    assert timesteps.tolist() == list(range(999, -1, -1)) and sigmas[-1] == 0
    # the definition, written independently: alpha_bar = cumprod(1 - beta), sigma^2 = (1 - ab) / ab
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np.cumprod(1 - betas)
    assert np.allclose(sigmas[:-1].flip(0).numpy(), np.sqrt((1 - ab) / ab), rtol=1e-12)
    # and the theory's continuous DDPM process at t = i / N (DDPM's 1-based i = our t + 1)
    import diffnotes.theory as theory
    ddpm = theory.get_process("ddpm").lambdify("numpy")
    idx = np.random.default_rng(1).integers(0, 1000, size=8)
    assert np.allclose(ddpm.sigma((idx + 1) / 1000), np.sqrt((1 - ab[idx]) / ab[idx]), rtol=1e-8)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace", "ddim"])
def test_ddpm_sigmas_are_the_chains_levels(spacing):
    from diffnotes.chain import DiscreteSchedule, sigma_from_alpha_bar
    from diffnotes.theory.processes import ddpm_alpha_bar

    sigmas = ddpm_sigmas(50, spacing)
    assert torch.equal(sigmas, DiscreteSchedule.linear().sampling_sigmas(50, spacing))
    # the numpy twin it used before (issue 24) gives the same levels up to float64 round-off
    old = sigma_from_alpha_bar(torch.from_numpy(ddpm_alpha_bar()[1:]))
    _, timesteps = ddpm_sigmas(50, spacing, return_timesteps=True)
    torch.testing.assert_close(sigmas[:-1], old[timesteps], rtol=1e-14, atol=0)
    assert torch.equal(sigmas.float()[:-1], old[timesteps].float())
    # a constant schedule (beta_start = beta_end) stays allowed
    flat = ddpm_sigmas(5, spacing, num_train_timesteps=20, beta_start=0.05, beta_end=0.05)
    assert flat.shape == (6,) and bool((flat[:-2] > flat[1:-1]).all())


@pytest.mark.parametrize("spacing, expected", [
    ("leading", [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
    ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
    ("linspace", [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
])
def test_ddpm_spacings(spacing, expected):
    sigmas, timesteps = ddpm_sigmas(10, spacing, return_timesteps=True)
    assert timesteps.tolist() == expected
    table = ddpm_sigmas(1000, "leading")[:-1].flip(0)
    assert torch.equal(sigmas[:-1], table[timesteps]) and sigmas[-1] == 0


# -------------------------------------------------------------------------------------------
# Convergence orders of the ODE solvers
# -------------------------------------------------------------------------------------------
SIGMA_MIN, SIGMA_MAX = 0.05, 10.0


@pytest.fixture(scope="module")
def ode_problem():
    x_T = noise(16, SIGMA_MAX, seed=3)
    # Reference: the third-order multistep solver with 240 steps; its error is ~2% of the smallest
    # error being fitted (3M at 64 steps), and Heun converging to the same point at its own rate
    # cross-checks it. Same sigma_min, so the final step into sigma = 0 (x = D) is shared.
    reference = sample(GMM.denoiser, x_T, sigma_schedule("loglinear", 240, SIGMA_MIN, SIGMA_MAX), "dpmpp_3m")
    return x_T, reference


def rmse(a, b):
    return float((a - b).pow(2).sum(1).mean().sqrt())


@pytest.mark.parametrize("solver, order", [("euler", 1), ("heun", 2), ("dpmpp_2m", 2), ("dpmpp_3m", 3)])
def test_measured_convergence_order(solver, order, ode_problem):
    # Fitted log-log slope of the final-sample RMSE against the number of steps.
    x_T, reference = ode_problem
    steps = (16, 32, 64)
    errors = [rmse(sample(GMM.denoiser, x_T, sigma_schedule("loglinear", n, SIGMA_MIN, SIGMA_MAX), solver), reference)
              for n in steps]
    measured = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(measured - order) < 0.3, (solver, measured, errors)


# -------------------------------------------------------------------------------------------
# Every solver lands on the data
# -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_logprob():
    x0 = GMM.sample(4000, generator=torch.Generator().manual_seed(7))
    return float(GMM.log_prob(x0).mean())


CASES = {
    "euler": (sigma_schedule("karras", 40, 0.002, 20.0), {}),
    "heun": (sigma_schedule("karras", 18, 0.002, 20.0), {}),
    "edm_stochastic": (sigma_schedule("karras", 40, 0.002, 20.0), dict(S_churn=40.0, S_min=0.05, S_max=10.0, S_noise=1.0)),
    "dpmpp_2m": (sigma_schedule("karras", 20, 0.002, 20.0), {}),
    "dpmpp_3m": (sigma_schedule("karras", 20, 0.002, 20.0), {}),
    "unipc": (sigma_schedule("karras", 20, 0.002, 20.0), dict(order=3)),
    # DDPM spacings end at t = 0 (sigma = 0.01) with "leading"; "trailing" would end with x = D at
    # sigma_19 = 0.045, which visibly shrinks each 0.1-wide component.
    "ddim": (ddpm_sigmas(25, "leading"), dict(eta=0.0)),
    "euler_maruyama": (sigma_schedule("karras", 80, 0.002, 20.0), {}),
    "predictor_corrector": (sigma_schedule("karras", 40, 0.002, 20.0), dict(snr=0.16, n_corrector=1)),
    "ancestral": (ddpm_sigmas(50, "leading"), {}),
    # annealed Langevin has its own test below
}


@pytest.mark.parametrize("solver", list(CASES))
def test_solver_lands_on_data(solver, data_logprob):
    sigmas, options = CASES[solver]
    gen = torch.Generator().manual_seed(11)
    x = sample(GMM.denoiser, noise(400, float(sigmas[0]), seed=5), sigmas, solver, generator=gen, **options)
    logp = float(GMM.log_prob(x).mean())
    # The data's mean log-density is about -0.31; noise at sigma_max scores below -100, and
    # samples smeared or shrunk by a few hundredths already move it by ~0.3. The tolerance allows the
    # Monte-Carlo error of 400 samples (std ~0.05) and these short schedules.
    assert abs(logp - data_logprob) < 0.25, (solver, logp, data_logprob)
    # every mode is visited with roughly its weight (1/8 each)
    counts = torch.bincount(GMM.responsibilities(x).argmax(1), minlength=8).double() / len(x)
    assert float(counts.min()) > 0.06 and float(counts.max()) < 0.2, counts


def test_annealed_langevin_gets_mixture_weights_right():
    # NCSN's motivating example (Song & Ermon 2019, Sec. 3.2): Langevin dynamics at one small noise
    # level cannot recover the relative weights of separated modes; annealing over noise levels can.
    gmm = GaussianMixture([0.8, 0.2], [[-2.0, -2.0], [2.0, 2.0]], [0.25, 0.25])
    sigma_L = 0.1
    x_T = noise(600, 10.0, seed=1)
    x = sample(gmm.denoiser, x_T, sigma_schedule("loglinear", 10, sigma_L, 10.0), "annealed_langevin",
               generator=torch.Generator().manual_seed(0), epsilon=5e-3, n_steps_each=30)
    frac_annealed = float((gmm.responsibilities(x).argmax(1) == 0).double().mean())
    assert abs(frac_annealed - 0.8) < 0.05, frac_annealed  # binomial std at n = 600 is 0.016
    # The iterates target p(x; sigma_L): around its mode, each coordinate should spread with
    # std sqrt(0.25 + sigma_L^2) = 0.51; Langevin's step-size bias widens it a little (measured ~8%).
    spread = (x - gmm.means[gmm.responsibilities(x).argmax(1)]).std(0)
    assert torch.allclose(spread, torch.full((2,), (0.25 + sigma_L**2) ** 0.5, dtype=F64), rtol=0.15), spread
    # Plain Langevin at sigma_L alone, same starting points, splits the mass about evenly.
    plain = sample(gmm.denoiser, x_T, torch.tensor([sigma_L, 0.0]), "annealed_langevin",
                   generator=torch.Generator().manual_seed(0), epsilon=5e-3, n_steps_each=100)
    frac_plain = float((gmm.responsibilities(plain).argmax(1) == 0).double().mean())
    assert abs(frac_plain - 0.8) > 0.2, frac_plain


# -------------------------------------------------------------------------------------------
# Exact identities
# -------------------------------------------------------------------------------------------
def eps_model(gmm, x_vp, alpha_bar):
    """The GMM's exact denoiser as DDPM's eps-prediction on VP inputs."""
    sigma = math.sqrt((1 - alpha_bar) / alpha_bar)
    x = x_vp / math.sqrt(alpha_bar)
    return (x - gmm.denoiser(x, sigma)) / sigma


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ancestral_equals_ddpm_update(variance):
    # A short DDPM chain (T = 40, betas 1e-3 ... 0.25) run with Ho et al.'s Algorithm 2 in its own
    # VP variables, against our sigma-form ancestral sampler fed DDPM's discrete sigmas and the
    # same Gaussian draws.
    T, beta_1, beta_T = 40, 1e-3, 0.25
    betas = np.linspace(beta_1, beta_T, T)
    alphas = 1 - betas
    alpha_bar = np.cumprod(alphas)
    sigmas = ddpm_sigmas(T, "leading", num_train_timesteps=T, beta_start=beta_1, beta_end=beta_T)
    x_T_ve = noise(64, float(sigmas[0]), seed=2)

    gen = torch.Generator().manual_seed(42)
    x = x_T_ve * math.sqrt(alpha_bar[-1])  # x_T in DDPM's VP variables
    for t in range(T - 1, -1, -1):  # 0-based t; DDPM's t = this + 1
        eps = eps_model(GMM, x, alpha_bar[t])
        mean = (x - betas[t] / math.sqrt(1 - alpha_bar[t]) * eps) / math.sqrt(alphas[t])
        if t > 0:  # Alg. 2: z = 0 at the last step
            var = betas[t] if variance == "beta" else (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * betas[t]
            x = mean + math.sqrt(var) * torch.randn(x.shape, dtype=F64, generator=gen)
        else:
            x = mean
    ddpm_x0 = x

    ours = sample(GMM.denoiser, x_T_ve, sigmas, "ancestral", variance=variance,
                  generator=torch.Generator().manual_seed(42))
    assert (ours - ddpm_x0).abs().max() < 1e-10
    assert ours.abs().max() < 2


def test_ddim_eta_one_is_ancestral_and_eta_zero_is_euler():
    sigmas = ddpm_sigmas(20, "trailing")
    x_T = noise(32, float(sigmas[0]))
    anc = sample(GMM.denoiser, x_T, sigmas, "ancestral", generator=torch.Generator().manual_seed(0))
    ddim1 = sample(GMM.denoiser, x_T, sigmas, "ddim", eta=1.0, generator=torch.Generator().manual_seed(0))
    assert (anc - ddim1).abs().max() < 1e-10
    assert (sample(GMM.denoiser, x_T, sigmas, "ddim") - sample(GMM.denoiser, x_T, sigmas, "euler")).abs().max() < 1e-12


def test_edm_stochastic_without_churn_is_heun():
    sigmas = sigma_schedule("karras", 8, 0.002, 20.0)
    x_T = noise(32, 20.0)
    a = sample(GMM.denoiser, x_T, sigmas, "edm_stochastic", S_churn=0.0)
    b = sample(GMM.denoiser, x_T, sigmas, "heun")
    assert torch.equal(a, b)


@pytest.mark.parametrize("solver, options", [
    ("edm_stochastic", dict(S_churn=20.0)), ("ddim", dict(eta=0.5)), ("euler_maruyama", {}),
    ("predictor_corrector", {}), ("ancestral", {}), ("annealed_langevin", dict(n_steps_each=2)),
])
def test_stochastic_solvers_are_reproducible(solver, options):
    sigmas = sigma_schedule("karras", 6, 0.01, 10.0)
    x_T = noise(8, 10.0)
    run = lambda seed: sample(GMM.denoiser, x_T, sigmas, solver, generator=torch.Generator().manual_seed(seed), **options)  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


def test_callback_progress_and_float32():
    sigmas = sigma_schedule("karras", 5, 0.01, 10.0)
    seen = []
    x = sample(GMM.denoiser, noise(8, 10.0).float(), sigmas, "heun", progress=True,
               callback=lambda info: seen.append((info["i"], info["sigma"], tuple(info["denoised"].shape))))
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert [i for i, _, _ in seen] == [0, 1, 2, 3, 4] and seen[0][1] == pytest.approx(10.0)
    # the denoiser sees a per-sample sigma of shape (N,)
    shapes = []
    sample(lambda x, s: shapes.append(tuple(s.shape)) or 0 * x, noise(8, 10.0), sigmas, "euler")
    assert set(shapes) == {(8,)}


# -------------------------------------------------------------------------------------------
# Bad input: one clear ValueError
# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: sample(GMM.denoiser, noise(4, 1.0), sigma_schedule("karras", 3, 0.1, 1.0), "rk4"), "valid solvers: euler, heun"),
    (lambda: sigma_schedule("cosine", 10, 0.1, 1.0), "valid schedules: karras, loglinear, uniform, vp"),
    (lambda: sigma_schedule("karras", 10, 1.0, 0.1), "sigma_min < sigma_max"),
    (lambda: sigma_schedule("karras", 0, 0.1, 1.0), "positive integer"),
    (lambda: ddpm_sigmas(10, "even"), "valid spacings: leading, trailing, linspace"),
    (lambda: ddpm_sigmas(2000, "leading"), r"n_steps must be an integer in \[1, 1000\]"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), torch.tensor([1.0, 0.5]), "euler"), "must end at 0"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), torch.tensor([0.5, 1.0, 0.0]), "euler"), "strictly decreasing"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), torch.zeros(2, 3), "euler"), "1-D"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), torch.tensor([0.0]), "euler"), "at least 2"),
    (lambda: sample(GMM.denoiser, torch.zeros(4, 2, dtype=torch.int64), sigma_schedule("karras", 3, 0.1, 1.0), "euler"), "floating-point"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), sigma_schedule("karras", 3, 0.1, 1.0), "heun", eta=0.5), r"unknown options \['eta'\]; valid options: none"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), sigma_schedule("karras", 3, 0.1, 1.0), "ddim", S_churn=1.0), "valid options: eta"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), sigma_schedule("karras", 3, 0.1, 1.0), "predictor_corrector", predictor="ode"), "valid predictors"),
    (lambda: sample(GMM.denoiser, noise(4, 1.0), sigma_schedule("karras", 3, 0.1, 1.0), "ancestral", variance="big"), "valid variances"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
