"""Sampler accuracy at a fixed budget of denoiser evaluations: ours vs diffusers' schedulers.

Problem: an analytic 2-D Gaussian mixture (8 components of std 0.1 on the unit circle) with its
exact denoiser. From the same starting points x_T = sigma_max z (sigma_max = sigma_999 of DDPM's
linear schedule, the largest level diffusers' discrete schedulers use), every sampler integrates
the probability-flow ODE down to sigma = 0; we report the RMSE of its final samples against a
high-accuracy solution of the same ODE (scipy ``solve_ivp``, DOP853, rtol = atol = 1e-10, in
sigma-time: dx/dsigma = (x - D(x; sigma)) / sigma).

Budgets are numbers of function evaluations (NFE): each sampler gets the largest step count whose
NFE fits (Heun: 2n - 1 for n levels, multistep solvers and DDIM/Euler: n). diffusers' schedulers
see the same denoiser as an eps-prediction on their VP-scaled inputs, with the sigma their own
state says they are at (so no rounding of timesteps is charged to them).

    .venv/bin/python benchmarks/bench_samplers.py            # writes benchmarks/results_samplers.md

Runtime: about 20-30 s on one CPU core.
"""

from __future__ import annotations

import datetime
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

from diffnotes.data import gmm_ring
from diffnotes.sampling import sample, sigma_schedule

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.set_num_threads(1)

BUDGETS = (10, 20, 50)
N_SAMPLES = 1000
T_TRAIN = 1000
BETAS = dict(num_train_timesteps=T_TRAIN, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")

GMM = gmm_ring(k=8, radius=1.0, std=0.1)
MEANS = GMM.means.numpy()  # (K, 2)
VAR0 = 0.1**2  # every component is isotropic with this variance
LOG_W = np.log(GMM.weights.numpy())


# --------------------------------------------------------------------------------------------
# The exact denoiser, vectorised for isotropic components (checked against GaussianMixture below)
# --------------------------------------------------------------------------------------------
def _posterior(x: np.ndarray, sigma: np.ndarray):
    """Responsibilities r (N, K) and noisy variances v (N, 1) of the components at x, sigma."""
    v = VAR0 + sigma.reshape(-1, 1) ** 2
    diff = x[:, None, :] - MEANS[None]  # (N, K, 2)
    logits = LOG_W - 0.5 * (diff**2).sum(-1) / v - np.log(v)  # d/2 log v with d = 2
    logits -= logits.max(1, keepdims=True)
    r = np.exp(logits)
    return r / r.sum(1, keepdims=True), v, diff


def denoiser_np(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    # E[x0 | x] = sum_k r_k (mu_k + VAR0 / v (x - mu_k))
    r, v, diff = _posterior(x, sigma)
    return x - (r[..., None] * diff).sum(1) * (1 - VAR0 / v)


def ode_rhs_np(x: np.ndarray, sigma: float) -> np.ndarray:
    # (x - D) / sigma = sigma sum_k r_k (x - mu_k) / v: no division by sigma, exact at sigma = 0
    r, v, diff = _posterior(x, np.full(len(x), sigma))
    return sigma * (r[..., None] * diff).sum(1) / v


def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
    return torch.from_numpy(denoiser_np(x.double().numpy(), sigma.numpy())).to(x.dtype)


def reference_solution(x_T: np.ndarray, sigma_max: float) -> np.ndarray:
    sol = solve_ivp(lambda s, y: ode_rhs_np(y.reshape(-1, 2), s).ravel(), (sigma_max, 0.0), x_T.ravel(),
                    method="DOP853", rtol=1e-10, atol=1e-10)
    assert sol.success, sol.message
    return sol.y[:, -1].reshape(-1, 2)


# --------------------------------------------------------------------------------------------
# diffusers' schedulers on the same denoiser
# --------------------------------------------------------------------------------------------
def diffusers_runs(sigma_table: np.ndarray):
    """(label, constructor, evals(n)) for each diffusers configuration in the comparison."""
    from diffusers import schedulers as S

    dpm = dict(algorithm_type="dpmsolver++", solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero")
    unipc = dict(solver_type="bh2", lower_order_final=True, final_sigmas_type="zero")
    deis = dict(lower_order_final=True)
    configs = [
        ("DDIM (trailing)", lambda: S.DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")),
        ("Euler (trailing)", lambda: S.EulerDiscreteScheduler(**BETAS, timestep_spacing="trailing")),
        ("Euler-Karras", lambda: S.EulerDiscreteScheduler(**BETAS, use_karras_sigmas=True)),
        ("Heun-Karras", lambda: S.HeunDiscreteScheduler(**BETAS, use_karras_sigmas=True)),
        ("DPM-Solver++ 2M", lambda: S.DPMSolverMultistepScheduler(**BETAS, solver_order=2, **dpm)),
        ("DPM-Solver++ 2M Karras", lambda: S.DPMSolverMultistepScheduler(**BETAS, solver_order=2, use_karras_sigmas=True, **dpm)),
        ("DPM-Solver++ 3M", lambda: S.DPMSolverMultistepScheduler(**BETAS, solver_order=3, **dpm)),
        ("DPM-Solver++ 3M Karras", lambda: S.DPMSolverMultistepScheduler(**BETAS, solver_order=3, use_karras_sigmas=True, **dpm)),
        ("DEIS 2", lambda: S.DEISMultistepScheduler(**BETAS, solver_order=2, **deis)),
        ("DEIS 3", lambda: S.DEISMultistepScheduler(**BETAS, solver_order=3, **deis)),
        ("DEIS 3 Karras", lambda: S.DEISMultistepScheduler(**BETAS, solver_order=3, use_karras_sigmas=True, **deis)),
        ("UniPC 2 (bh2)", lambda: S.UniPCMultistepScheduler(**BETAS, solver_order=2, **unipc)),
        ("UniPC 3 (bh2)", lambda: S.UniPCMultistepScheduler(**BETAS, solver_order=3, **unipc)),
        ("UniPC 3 Karras", lambda: S.UniPCMultistepScheduler(**BETAS, solver_order=3, use_karras_sigmas=True, **unipc)),
    ]
    return configs


def run_diffusers(make, n_steps: int, x_T_ve: torch.Tensor, sigma_table: np.ndarray):
    """Run one diffusers scheduler; return (final sample, NFE, its sigma sequence) or None."""
    sched = make()
    sched.set_timesteps(n_steps)
    ve_state = type(sched).__name__ in ("EulerDiscreteScheduler", "HeunDiscreteScheduler")
    has_sigmas = hasattr(sched, "sigmas")

    def current_sigma(t) -> float:
        if has_sigmas:
            idx = 0 if sched.step_index is None else sched.step_index
            return float(sched.sigmas[idx])
        return float(sigma_table[int(t)])  # DDIM: integer timesteps on the training table

    sigma_0 = current_sigma(sched.timesteps[0])
    if not math.isclose(sigma_0, float(sigma_table[-1]), rel_tol=1e-5):
        return None  # this configuration does not start at sigma_max; not comparable
    x = x_T_ve.clone() if ve_state else x_T_ve / math.sqrt(1 + sigma_0**2)
    nfe = 0
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        sigma = current_sigma(t)
        x_ve = x_in * math.sqrt(1 + sigma**2)
        eps = (x_ve - denoiser(x_ve, torch.tensor(sigma))) / sigma
        nfe += 1
        x = sched.step(eps, t, x).prev_sample
    sigmas = sched.sigmas.double() if has_sigmas else None
    return x.double(), nfe, sigmas


# --------------------------------------------------------------------------------------------
# Our samplers
# --------------------------------------------------------------------------------------------
OUR_SOLVERS = {"euler": lambda n: n, "heun": lambda n: 2 * n - 1, "dpmpp_2m": lambda n: n, "dpmpp_3m": lambda n: n}


def our_schedules(n: int, sigma_max: float):
    yield "karras rho=7, sigma_min=0.002", sigma_schedule("karras", n, 0.002, sigma_max, rho=7.0)
    yield "karras rho=7, sigma_min=0.01", sigma_schedule("karras", n, 0.01, sigma_max, rho=7.0)
    yield "karras rho=5, sigma_min=0.01", sigma_schedule("karras", n, 0.01, sigma_max, rho=5.0)
    yield "loglinear, sigma_min=0.01", sigma_schedule("loglinear", n, 0.01, sigma_max)
    yield "loglinear, sigma_min=0.03", sigma_schedule("loglinear", n, 0.03, sigma_max)
    yield "vp (EDM), sigma_min=0.01", sigma_schedule("vp", n, 0.01, sigma_max)
    yield "uniform, sigma_min=0.002", sigma_schedule("uniform", n, 0.002, sigma_max)


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).sum(1).mean().sqrt())


def main(out_path: Path) -> None:
    import diffusers

    t_start = time.time()
    alpha_bar = diffusers.schedulers.DDIMScheduler(**BETAS).alphas_cumprod.double().numpy()
    sigma_table = np.sqrt((1 - alpha_bar) / alpha_bar)  # diffusers' own (float32-built) table
    sigma_max = float(sigma_table[-1])

    # the vectorised denoiser is the mixture's exact denoiser
    probe = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    for s in (0.0, 0.05, 1.0, 30.0):
        assert torch.allclose(denoiser(probe, torch.tensor(s)), GMM.denoiser(probe, s), atol=1e-12)

    x_T = sigma_max * torch.randn(N_SAMPLES, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2024))
    t0 = time.time()
    x_ref = torch.from_numpy(reference_solution(x_T.numpy(), sigma_max))
    t_ref = time.time() - t0
    assert float(GMM.log_prob(x_ref).mean()) > float(GMM.log_prob(GMM.sample(4000)).mean()) - 0.1

    rows = []  # (budget, who, method, schedule, steps, nfe, rmse)
    for budget in BUDGETS:
        for solver, evals in OUR_SOLVERS.items():
            n = max(k for k in range(1, budget + 1) if evals(k) <= budget)
            for label, sigmas in our_schedules(n, sigma_max):
                err = rmse(sample(denoiser, x_T, sigmas, solver), x_ref)
                rows.append((budget, "ours", solver, label, n, evals(n), err))
        for label, make in diffusers_runs(sigma_table):
            best = None
            for n in range(budget, 0, -1):  # the largest step count whose NFE fits the budget
                out = run_diffusers(make, n, x_T, sigma_table)
                if out is None:
                    break
                x, nfe, sched_sigmas = out
                if nfe <= budget:
                    best = (n, nfe, rmse(x, x_ref), sched_sigmas)
                    break
            if best is None:
                continue
            n, nfe, err, sched_sigmas = best
            rows.append((budget, "diffusers", label, "its own", n, nfe, err))
            # the same sigmas through our solver, to separate algorithm from schedule
            if label.startswith("DPM-Solver++ 3M") or label.startswith("DPM-Solver++ 2M"):
                ours = "dpmpp_3m" if "3M" in label else "dpmpp_2m"
                rows.append((budget, "ours", ours, f"diffusers' {label} sigmas", n, n,
                             rmse(sample(denoiser, x_T, sched_sigmas, ours), x_ref)))
    elapsed = time.time() - t_start
    write_results(out_path, rows, t_ref, elapsed, sigma_max)
    print(out_path.read_text())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(path: Path, rows, t_ref: float, elapsed: float, sigma_max: float) -> None:
    lines = [
        "# Sampler accuracy at a fixed NFE budget: ours vs diffusers",
        "",
        f"Generated by `benchmarks/bench_samplers.py` on {datetime.date.today().isoformat()}; "
        f"machine: {cpu_name()} ({platform.platform()}), "
        f"Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"diffusers {__import__('diffusers').__version__}, 1 thread. Total {elapsed:.0f} s "
        f"(reference ODE solve {t_ref:.1f} s).",
        "",
        f"Problem: 8-component 2-D Gaussian ring (radius 1, std 0.1) with its exact denoiser; "
        f"{N_SAMPLES} samples from the same x_T = sigma_max z with sigma_max = sigma_999 = "
        f"{sigma_max:.1f} (DDPM linear betas) down to sigma = 0. Error: RMSE of the final "
        "samples against scipy DOP853 (rtol = atol = 1e-10) on the PF-ODE in sigma. NFE = denoiser "
        "evaluations. diffusers' schedulers run partly in float32 (their tables and some updates), so "
        "errors below ~1e-5 are at their round-off floor; ours run in float64.",
        "",
    ]
    lines += [
        "Notes:",
        "",
        "* `ours` rows: every solver x schedule we tried (all shown, none hidden); the step into "
        "sigma = 0 is the last level of each schedule. Rows `diffusers' ... sigmas` run our solver "
        "on the exact sigmas diffusers chose, separating the algorithm from the schedule.",
        "* DPM-Solver++ 2M: ours and diffusers' agree to round-off on the same sigmas (also a test, "
        "`tests/test_sampling_diffusers.py`). 3M: diffusers weights the curvature term by half of "
        "the exact polynomial integral ours uses; ours is 3rd order asymptotically (measured in "
        "`tests/test_sampling.py`), theirs is more accurate at very few steps, so on identical "
        "sigmas the better of the two depends on the step size.",
        "* DEIS (diffusers 0.42) has no `final_sigmas_type` option and stops at sigma_0 = 0.01, "
        "which leaves a floor of order 1e-3 against the sigma = 0 reference.",
        "* Schedules matter as much as solvers here: log-linear spacing (uniform in lambda = -log "
        "sigma, the variable DPM-Solver integrates in) beats Karras rho = 7 for the multistep "
        "solvers on this problem, and a larger sigma_min helps at 10-20 NFE because the final "
        "x = D(x; sigma_min) step is cheap and accurate for components of std 0.1.",
        "",
    ]
    for budget in BUDGETS:
        sub = sorted([r for r in rows if r[0] == budget], key=lambda r: r[6])
        best_ours = min(r[6] for r in sub if r[1] == "ours")
        best_theirs = min(r[6] for r in sub if r[1] == "diffusers")
        verdict = "ours <= diffusers" if best_ours <= best_theirs else "diffusers better"
        lines += [f"## NFE <= {budget}: best ours {best_ours:.2e}, best diffusers {best_theirs:.2e} ({verdict})", "",
                  "| rank | who | method | schedule | steps | NFE | RMSE |", "|---|---|---|---|---|---|---|"]
        for rank, (_, who, method, sched, n, nfe, err) in enumerate(sub, 1):
            lines.append(f"| {rank} | {who} | {method} | {sched} | {n} | {nfe} | {err:.2e} |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "results_samplers.md")
