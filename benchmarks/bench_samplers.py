"""PF-ODE sampler accuracy at a fixed number of network evaluations: ours against diffusers at its best.

Three problems, one noise process: DDPM's linear betas (T = 1000, beta 1e-4 ... 0.02), so that the
model's training range of noise levels is [sigma_0, sigma_999] = [0.010, 157.4] in EDM's
coordinates x = x0 + sigma n. Every sampler on both sides starts from the same x_T = sigma_999 z
and stops at sigma = 0.

A model is only defined on its training range: below sigma_0 every model here is held at
sigma_0, and the reference takes the last stretch as one denoising step, x(0) = D(x(sigma_0);
sigma_0). That is a convention (the held model's own ODE would drift further, towards a fixed
point of D), and every sampler is judged against that same reference.

* ``ring``: the 8-component 2-D Gaussian ring (std 0.1) with its exact denoiser; the reference is
  scipy's DOP853 (rtol = atol = 1e-10) on dx/dsigma = -sigma score(x; sigma) down to sigma_0.
* ``mixture``: a 10-D mixture of 8 Gaussians with unequal weights (0.02 ... 0.3) and anisotropic
  covariances whose eigenvalues span two orders of magnitude (1e-3 ... 1e-1); exact denoiser, same
  reference solver.
* ``digits``: a U-Net trained here on sklearn's 8x8 digits (EDM preconditioning and loss, fixed
  seed, cached under ``benchmarks/_cache/``). The reference is our 3rd-order multistep solver with 1,000
  log-linear steps; its distance to the 500-step solution is reported as the reference's own error.

Error: RMSE over samples of the distance to the reference (per dimension for ``digits``).

Peers (diffusers): every scheduler that integrates the PF-ODE - DDIM, PNDM (PRK and PLMS), Euler,
Heun, DPM2 (KDPM2), LMS, DPM-Solver multistep (++ and plain, orders 2 and 3, midpoint and Heun
variants), DPM-Solver single-step (orders 1-3, ++ and plain), DEIS (orders 2, 3), UniPC (orders
2, 3, bh1 and bh2) - times every spacing it offers (``timestep_spacing`` leading / trailing /
linspace, and ``use_karras_sigmas`` / ``use_exponential_sigmas`` / ``use_beta_sigmas`` /
``use_lu_lambdas`` where the class has them), each with its default final-step handling. A
configuration whose first level is not sigma_999 starts elsewhere and is left out (listed as
such). ``clip_sample`` is switched off (the data are not images in [-1, 1]). Each scheduler is
driven as a user would drive it, with the model as an eps-prediction network; the noise level
handed to the model is the one the scheduler's own state holds (no timestep rounding is charged).
The EDM-specific schedulers (EDMEuler, EDMDPMSolverMultistep) are the Euler and DPM-Solver++
updates on Karras / exponential levels, already covered; SA-Solver is stochastic by default.

Ours: each solver of ``diffnotes.sampling`` that solves the PF-ODE on each general-purpose
schedule over the same range (no parameter picked on a problem), plus the schedules that
``diffnotes.sampling.optimize_sigmas`` fits for a model from the model alone (pilot noise with its
own seed, never the benchmark's x_T or reference).

For each problem and budget B in BUDGETS, each configuration gets the largest step count whose NFE
(calls of the model, counted) is at most B; the table reports the best error of each side, the
two configurations and their ratio.

    .venv/bin/python benchmarks/run_all.py [--quick] [--problems ring,mixture]   # or make bench
    (running this file does the same: the driver writes the JSON, the tables and the figures)
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from diffnotes.data import GaussianMixture, gmm_ring  # noqa: E402
from diffnotes import sampling as S  # noqa: E402

warnings.filterwarnings("ignore")
CACHE = HERE / "_cache"
BUDGETS = (10, 20, 50)
T_TRAIN = 1000
BETAS = dict(num_train_timesteps=T_TRAIN, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
SEED_X_T, SEED_PILOT = 2024, 7  # the benchmark's noise and the schedule fitter's: never the same


def ddpm_sigma_table() -> np.ndarray:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), t = 0 ... 999, as diffusers builds it."""
    from diffusers import DDIMScheduler

    alpha_bar = DDIMScheduler(**BETAS).alphas_cumprod.double().numpy()
    return np.sqrt((1 - alpha_bar) / alpha_bar)


SIGMA_TABLE = ddpm_sigma_table()
SIGMA_MIN, SIGMA_MAX = float(SIGMA_TABLE[0]), float(SIGMA_TABLE[-1])


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------
@dataclass
class Problem:
    name: str
    description: str
    denoiser: Callable  # D(x, sigma) -> x0_hat, float64 in and out
    shape: tuple  # of one sample
    x_T: torch.Tensor
    x_ref: torch.Tensor
    ref_note: str
    model_key: str  # a fingerprint of the model: fitted schedules are cached under it
    per_dim: bool = False  # RMSE per dimension (images) instead of per sample

    def error(self, x: torch.Tensor) -> float:
        diff = (x.double() - self.x_ref).flatten(1)
        sq = diff.pow(2).mean(1) if self.per_dim else diff.pow(2).sum(1)
        return float(sq.mean().sqrt())


def _start(n: int, shape: tuple) -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED_X_T)
    return SIGMA_MAX * torch.randn((n, *shape), dtype=torch.float64, generator=g)


def _gmm_reference(gmm: GaussianMixture, x_T: torch.Tensor) -> torch.Tensor:
    """DOP853 on dx/dsigma = (x - D) / sigma = -sigma score(x; sigma) from sigma_max to sigma_0, then
    the exact rest of the way for a model held at sigma_0: x(0) = D(x(sigma_0); sigma_0)."""
    shape = x_T.shape

    def rhs(sigma, y):
        x = torch.from_numpy(y.reshape(shape))
        return (-sigma * gmm.score(x, sigma)).numpy().ravel()

    sol = solve_ivp(rhs, (SIGMA_MAX, SIGMA_MIN), x_T.numpy().ravel(), method="DOP853", rtol=1e-10, atol=1e-10)
    assert sol.success, sol.message
    return gmm.denoiser(torch.from_numpy(sol.y[:, -1].reshape(shape)), SIGMA_MIN)


def fingerprint(*tensors) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().double().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def gmm_denoiser(gmm: GaussianMixture):
    """The exact denoiser on the training range, held at sigma_0 below it (as for the network)."""

    def denoiser(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp(min=SIGMA_MIN)
        return gmm.denoiser(x.double(), sigma)

    return denoiser


def problem_ring(n: int) -> Problem:
    gmm = gmm_ring(k=8, radius=1.0, std=0.1)
    x_T = _start(n, (2,))
    return Problem("ring", "2-D ring: 8 equal Gaussians of std 0.1 on the unit circle, exact denoiser",
                   gmm_denoiser(gmm), (2,), x_T, _gmm_reference(gmm, x_T),
                   "DOP853 to sigma_0 (rtol = atol = 1e-10), then D(x; sigma_0)",
                   fingerprint(gmm.weights, gmm.means, gmm.covs))


def anisotropic_mixture(dim: int = 10, k: int = 8, seed: int = 0) -> GaussianMixture:
    """Unequal weights (0.02 ... 0.3) and covariances with eigenvalues from 1e-3 to 1e-1."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.tensor([0.3, 0.2, 0.15, 0.12, 0.09, 0.07, 0.05, 0.02], dtype=torch.float64)[:k]
    means = torch.randn(k, dim, dtype=torch.float64, generator=g)
    eigs = torch.logspace(-3, -1, dim, dtype=torch.float64)
    covs = []
    for _ in range(k):
        q, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64, generator=g))
        covs.append(q @ torch.diag(eigs[torch.randperm(dim, generator=g)]) @ q.T)
    return GaussianMixture(weights, means, torch.stack(covs))


def problem_mixture(n: int) -> Problem:
    gmm = anisotropic_mixture()
    x_T = _start(n, (gmm.dim,))
    return Problem("mixture", f"{gmm.dim}-D mixture of {gmm.weights.numel()} Gaussians, weights 0.02-0.3, "
                   "covariance eigenvalues 1e-3 to 1e-1 (random rotations), exact denoiser",
                   gmm_denoiser(gmm), (gmm.dim,), x_T, _gmm_reference(gmm, x_T),
                   "DOP853 to sigma_0 (rtol = atol = 1e-10), then D(x; sigma_0)",
                   fingerprint(gmm.weights, gmm.means, gmm.covs))


DIGITS_STEPS, DIGITS_CH = 800, 16


def digits_model():
    """The digits U-Net: trained once (seed 0) and cached in benchmarks/_cache/ (not in git)."""
    from diffnotes.data import load_digits
    from diffnotes.methods.edm import EDMLoss
    from diffnotes.nets import UNet
    from diffnotes.precond import EDMPrecond
    from diffnotes.train import fit

    torch.manual_seed(0)
    model = EDMPrecond(UNet.digits(ch=DIGITS_CH), sigma_data=0.5)
    path = CACHE / f"digits_unet_ch{DIGITS_CH}_{DIGITS_STEPS}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        images, _ = load_digits("train")
        result = fit(model, EDMLoss(), images, DIGITS_STEPS, batch_size=128, lr=2e-3, seed=0, warmup=50,
                     ema_halflife=100, amp=False, progress=False, device="cpu")
        if result.capped:
            raise RuntimeError("DIFFNOTES_TRAIN_STEPS cut the digits model's training short; unset it")
        model = result.model_ema
        CACHE.mkdir(exist_ok=True)
        torch.save(model.state_dict(), path)
    return model.eval()


def problem_digits(n: int) -> Problem:
    model = digits_model()

    @torch.no_grad()
    def denoiser(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp(min=SIGMA_MIN)
        return model(x.float(), sigma.float().expand(x.shape[0])).double()

    x_T = _start(n, (1, 8, 8))
    levels = S.sigma_schedule("loglinear", 1000, SIGMA_MIN, SIGMA_MAX)
    ref = S.sample(denoiser, x_T, levels, "dpmpp_3m")
    half = S.sample(denoiser, x_T, S.sigma_schedule("loglinear", 500, SIGMA_MIN, SIGMA_MAX), "dpmpp_3m")
    p = Problem("digits", f"U-Net ({sum(p.numel() for p in model.parameters()):,} parameters) trained on "
                "sklearn's 8x8 digits, EDM preconditioning, held at sigma_0 below sigma_0",
                denoiser, (1, 8, 8), x_T, ref, "", fingerprint(*model.state_dict().values()), per_dim=True)
    p.ref_note = f"3rd-order multistep, 1000 log-linear steps (vs 500 steps: {p.error(half):.1e})"
    return p


PROBLEMS = {"ring": problem_ring, "mixture": problem_mixture, "digits": problem_digits}
N_SAMPLES = {"ring": 1000, "mixture": 1000, "digits": 64}


# --------------------------------------------------------------------------------------------
# diffusers at its best
# --------------------------------------------------------------------------------------------
def diffusers_configs():
    """(label, constructor) for every scheduler x variant x spacing (see the module docstring)."""
    import inspect

    from diffusers import schedulers as D

    variants = {
        "DDIM": (D.DDIMScheduler, [{}]),
        "PNDM (PRK+PLMS)": (D.PNDMScheduler, [{}]),
        "PNDM (PLMS)": (D.PNDMScheduler, [dict(skip_prk_steps=True)]),
        "Euler": (D.EulerDiscreteScheduler, [{}]),
        "Heun": (D.HeunDiscreteScheduler, [{}]),
        "DPM2": (D.KDPM2DiscreteScheduler, [{}]),
        "LMS": (D.LMSDiscreteScheduler, [{}]),
        "DPM-Solver multistep": (D.DPMSolverMultistepScheduler, [
            dict(solver_order=o, algorithm_type=a, solver_type=s)
            for o in (2, 3) for a in ("dpmsolver++", "dpmsolver") for s in ("midpoint", "heun")]),
        "DPM-Solver single-step": (D.DPMSolverSinglestepScheduler, [
            dict(solver_order=o, algorithm_type=a) for o in (1, 2, 3) for a in ("dpmsolver++", "dpmsolver")]),
        "DEIS": (D.DEISMultistepScheduler, [dict(solver_order=o) for o in (2, 3)]),
        "UniPC": (D.UniPCMultistepScheduler, [
            dict(solver_order=o, solver_type=s) for o in (2, 3) for s in ("bh1", "bh2")]),
    }
    sigma_kinds = {"": {}, "Karras": dict(use_karras_sigmas=True),
                   "exponential": dict(use_exponential_sigmas=True), "beta": dict(use_beta_sigmas=True),
                   "Lu lambdas": dict(use_lu_lambdas=True)}
    configs, families = [], {}
    for name, (cls, opts) in variants.items():
        params = inspect.signature(cls.__init__).parameters
        spacings = ("leading", "trailing", "linspace") if "timestep_spacing" in params else (None,)
        for opt in opts:
            for kind, flags in sigma_kinds.items():
                if any(f not in params for f in flags):
                    continue
                for spacing in spacings:
                    kw = dict(BETAS, **opt, **flags)
                    if "clip_sample" in params:
                        kw["clip_sample"] = False
                    if spacing:
                        kw["timestep_spacing"] = spacing
                    detail = ", ".join([f"{k}={v}" for k, v in opt.items()] + [x for x in (kind, spacing) if x])
                    configs.append((f"{name} ({detail})", lambda cls=cls, kw=kw: cls(**kw)))
                    families[configs[-1][0]] = f"{name} {opt}"
    return configs, families


def _run_scheduler(make, n_steps: int, x_T: torch.Tensor, denoiser):
    """Drive one scheduler; return (final sample, NFE, its levels), or None when it does not start
    at sigma_max.

    ``denoiser=None`` counts the NFE with a zero model output (no model call)."""
    from diffusers import KDPM2DiscreteScheduler

    sched = make()
    sched.set_timesteps(n_steps)
    ve_state = float(sched.init_noise_sigma) > 1.5  # Euler-like: the sample is x_VE itself
    kdpm2 = isinstance(sched, KDPM2DiscreteScheduler)

    def sigma_now(t) -> float:
        if hasattr(sched, "sigmas"):
            idx = sched.step_index or 0
            if kdpm2 and not sched.state_in_first_order:
                return float(sched.sigmas_interpol[idx])
            return float(sched.sigmas[idx])
        return float(SIGMA_TABLE[int(t)])  # DDIM, PNDM: integer timesteps on the training table

    first = sched.timesteps[0]
    sched.scale_model_input(x_T, first)  # initialises the step index of the schedulers that keep one
    sched = make()
    sched.set_timesteps(n_steps)
    if not math.isclose(sigma_now(first), SIGMA_MAX, rel_tol=1e-4):
        return None
    x = x_T.clone() if ve_state else x_T / math.sqrt(1 + SIGMA_MAX**2)
    nfe = 0
    for t in sched.timesteps:
        sched.scale_model_input(x, t)
        sigma = sigma_now(t)
        if denoiser is None:
            eps = torch.zeros_like(x)
        else:
            x_ve = x if ve_state else x * math.sqrt(1 + sigma**2)
            eps = (x_ve - denoiser(x_ve, torch.tensor(sigma, dtype=torch.float64))) / sigma
        nfe += 1
        x = sched.step(eps, t, x).prev_sample
    levels = sched.sigmas if hasattr(sched, "sigmas") else sched.timesteps
    return x.double(), nfe, tuple(np.round(np.asarray(levels, dtype=np.float64), 6).tolist())


def best_diffusers(problem: Problem, budgets, configs, families, log=print):
    """{budget: [(error, label, steps, nfe), ...]} over every comparable configuration.

    Two configurations of one scheduler variant that end up on the same levels (e.g. Karras sigmas
    built from "trailing" or "linspace" timesteps, both spanning sigma_0 ... sigma_999) are the same
    computation: the second is not run again."""
    out = {b: [] for b in budgets}
    skipped, seen = set(), set()
    for label, make in configs:
        for budget in budgets:
            try:
                n = budget
                while n >= 1:
                    counted = _run_scheduler(make, n, problem.x_T[:1], None)
                    if counted is None:
                        skipped.add(label)
                        break
                    if counted[1] <= budget:
                        break
                    n -= max(1, (counted[1] - budget) // 2)
                if label in skipped or n < 1:
                    break
                signature = (families[label], counted[2])
                if signature in seen:
                    continue
                seen.add(signature)
                x, nfe, _ = _run_scheduler(make, n, problem.x_T, problem.denoiser)
            except Exception as exc:  # a step count diffusers refuses: that budget is left out
                log(f"  diffusers {label}, NFE <= {budget}: {type(exc).__name__}: {str(exc)[:60]}")
                continue
            err = problem.error(x)
            if math.isfinite(err):
                out[budget].append((err, label, n, nfe))
    return out, sorted(skipped)


# --------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------
OUR_SOLVERS = {  # name: (solver, options, NFE of n levels)
    "euler": ("euler", {}, lambda n: n), "heun": ("heun", {}, lambda n: 2 * n - 1),
    "dpmpp_2m": ("dpmpp_2m", {}, lambda n: n), "dpmpp_3m": ("dpmpp_3m", {}, lambda n: n),
    "unipc_2": ("unipc", dict(order=2), lambda n: n), "unipc_3": ("unipc", dict(order=3), lambda n: n),
    "deis_2": ("deis", dict(order=2), lambda n: n), "deis_3": ("deis", dict(order=3), lambda n: n),
}
FITTED_SOLVERS = ("dpmpp_3m", "unipc_2", "unipc_3")  # the multistep solvers whose schedules we fit
# Pilot noise for the schedule fit. The rule: the error is heavy-tailed (a few samples that
# cross between modes dominate an RMSE), so a pilot must be large enough to hold such samples;
# closed-form denoisers are cheap and get 4,096 pilot samples, a network as many as a fit costs
# about as much as the benchmark's own evaluation of it (32 digits).
N_PILOT = {"ring": 4096, "mixture": 4096, "digits": 32}
REFINE_EVALS = 200  # solves of the second stage (free step sizes, up to 8 knots) per fit
FIT_RULE = "warp+refine200"  # part of the cache key: a changed rule never reuses old fits


def our_schedules(n: int):
    """General-purpose schedules over the model's range: nothing here is picked on a problem."""
    yield "Karras rho=7", S.sigma_schedule("karras", n, SIGMA_MIN, SIGMA_MAX, rho=7.0)
    yield "log-linear", S.sigma_schedule("loglinear", n, SIGMA_MIN, SIGMA_MAX)
    yield "VP time", S.sigma_schedule("vp", n, SIGMA_MIN, SIGMA_MAX)
    for spacing in ("trailing", "linspace"):
        yield f"DDPM {spacing}", S.ddpm_sigmas(n, spacing)


def fitted_schedules(problem: Problem, budgets, quick: bool, log=print) -> dict:
    """``optimize_sigmas`` for each budget and fitted solver, from pilot noise (its own seed) and the
    model alone; cached per model in benchmarks/_cache/schedules.json."""
    path = CACHE / "schedules.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    n_pilot = 16 if quick else N_PILOT[problem.name]
    g = torch.Generator().manual_seed(SEED_PILOT)
    x_pilot = SIGMA_MAX * torch.randn((n_pilot, *problem.shape), dtype=torch.float64, generator=g)
    reference = None
    fitted = {}
    for budget in budgets:
        for name in FITTED_SOLVERS:
            solver, options, _ = OUR_SOLVERS[name]
            key = f"{problem.model_key}/{n_pilot}/{name}/{budget}/{FIT_RULE}"
            if key not in cache:
                if reference is None:
                    fine = S.sigma_schedule("loglinear", 500, SIGMA_MIN, SIGMA_MAX)
                    reference = S.sample(problem.denoiser, x_pilot, fine, "dpmpp_3m")
                sigmas, info = S.optimize_sigmas(problem.denoiser, x_pilot, budget, solver, sigma_min=SIGMA_MIN,
                                                 sigma_max=SIGMA_MAX, reference=reference,
                                                 max_evals=12 if quick else 40,
                                                 refine_evals=20 if quick else REFINE_EVALS,
                                                 starts=[sig for _, sig in our_schedules(budget)],
                                                 solver_options=options)
                start = info.pop("start", "warped fit")
                cache[key] = dict(sigmas=sigmas.tolist(), start=start, **{k: float(v) for k, v in info.items()})
                if not quick:  # merge with what other runs cached meanwhile
                    CACHE.mkdir(exist_ok=True)
                    on_disk = json.loads(path.read_text()) if path.exists() else {}
                    path.write_text(json.dumps({**on_disk, key: cache[key]}, indent=1) + "\n")
            fitted[(budget, name)] = cache[key]
    return fitted


def best_ours(problem: Problem, budgets, quick: bool = False, log=print):
    """Every solver on every general schedule, and the fitted schedules; plus the one configuration
    the fitting rule itself picks per budget (smallest pilot error), which sees no benchmark data."""
    out = {b: [] for b in budgets}
    chosen = {}
    fitted = fitted_schedules(problem, budgets, quick, log)
    for budget in budgets:
        for name, (solver, options, evals) in OUR_SOLVERS.items():
            n = max(k for k in range(1, budget + 1) if evals(k) <= budget)
            for label, sigmas in our_schedules(n):
                if not math.isclose(float(sigmas[0]), SIGMA_MAX, rel_tol=1e-4):
                    continue
                err = problem.error(S.sample(problem.denoiser, problem.x_T, sigmas, solver, **options))
                out[budget].append((err, f"{name}, {label}", n, evals(n)))
        best_pilot = None
        for name in FITTED_SOLVERS:
            solver, options, evals = OUR_SOLVERS[name]
            fit = fitted[(budget, name)]
            sigmas = torch.tensor(fit["sigmas"], dtype=torch.float64)
            err = problem.error(S.sample(problem.denoiser, problem.x_T, sigmas, solver, **options))
            origin = ("a general schedule" if fit.get("start") == "given"
                      else f"sigma_end {fit['sigma_end']:.3g}, warp {fit['warp']:.2f}")
            label = f"{name}, fitted (from {origin}, refined)"
            row = (err, label, len(sigmas) - 1, evals(len(sigmas) - 1))
            out[budget].append(row)
            pilot = fit.get("refined_rmse", fit["pilot_rmse"])
            if best_pilot is None or pilot < best_pilot[0]:
                best_pilot = (pilot, row)
        chosen[budget] = best_pilot[1]
    return out, chosen


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def _earlier_peers(earlier: dict, name: str, results: dict, budgets, n: int):
    """diffusers' side of problem ``name`` from an earlier run's results, once it is checked to be
    the same computation (diffusers version, configurations, budgets, samples): the peers' code
    and inputs are unchanged, so re-running them would reproduce it."""
    record = earlier.get("problems", {}).get(name)
    same = (record is not None and earlier.get("diffusers") == results["diffusers"]
            and earlier.get("n_diffusers_configs") == results["n_diffusers_configs"]
            and earlier.get("quick") == results["quick"] and record["n_samples"] == n
            and all(str(b) in record["all_diffusers"] for b in budgets))
    if not same:
        raise ValueError(f"--ours-only: no earlier diffusers results for {name!r} from the same diffusers "
                         f"{results['diffusers']}, configurations, budgets and samples; run it in full")
    theirs = {b: [tuple(r) for r in record["all_diffusers"][str(b)]] for b in budgets}
    return theirs, record["skipped"], record["n_compared"], record.get("peers_from") or record["date"]


def run(problems=("ring", "mixture", "digits"), budgets=BUDGETS, quick=False, log=print,
        earlier: dict | None = None) -> dict:
    """Run the problems; with ``earlier`` (the results of an earlier run), only our side is run
    and diffusers' side is taken from there (``run_all.py --ours-only``, recorded as peers_from)."""
    import diffusers

    torch.set_num_threads(1)
    configs, families = diffusers_configs()
    if quick:  # a smoke test: three peers, two budgets, few samples
        keep = ("DDIM (trailing)", "DPM-Solver multistep (solver_order=2, algorithm_type=dpmsolver++, "
                "solver_type=midpoint, trailing)", "UniPC (solver_order=3, solver_type=bh2, exponential, trailing)")
        assert all(any(c[0] == k for c in configs) for k in keep), "quick peers renamed"
        configs = [c for c in configs if c[0] in keep]
    results = dict(budgets=list(budgets), sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, quick=quick,
                   torch=torch.__version__, diffusers=diffusers.__version__,
                   n_diffusers_configs=len(configs), problems={})
    for name in problems:
        t0 = time.time()
        n = 64 if quick else N_SAMPLES[name]
        problem = PROBLEMS[name](n)
        t_ref = time.time() - t0
        if earlier is None:
            theirs, skipped = best_diffusers(problem, budgets, configs, families, log)
            n_compared, peers_from = {str(b): len(theirs[b]) for b in budgets}, None
        else:
            theirs, skipped, n_compared, peers_from = _earlier_peers(earlier, name, results, budgets, n)
        ours, chosen = best_ours(problem, budgets, quick, log)
        rows = []
        for b in budgets:
            o, d, c = min(ours[b]), min(theirs[b]), chosen[b]
            rows.append(dict(budget=b, ours=o[0], ours_config=o[1], ours_steps=o[2], ours_nfe=o[3],
                             diffusers=d[0], diffusers_config=d[1], diffusers_steps=d[2], diffusers_nfe=d[3],
                             ratio=o[0] / d[0], rule=c[0], rule_config=c[1], rule_ratio=c[0] / d[0]))
            log(f"{name} NFE<={b}: ours {o[0]:.3e} ({o[1]}), diffusers {d[0]:.3e} ({d[1]}), ratio {o[0] / d[0]:.2f}")
        results["problems"][name] = dict(
            description=problem.description, n_samples=n, reference=problem.ref_note, rows=rows,
            seconds=time.time() - t0, reference_seconds=t_ref, skipped=skipped,
            all_ours={str(b): sorted(ours[b])[:12] for b in budgets},
            all_diffusers={str(b): sorted(theirs[b])[:12] for b in budgets},
            n_compared=n_compared, peers_from=peers_from,
            fixed={key: [next(r[0] for r in ours[b] if r[1] == f"dpmpp_3m, {label}") for b in budgets]
                   for key, label in (("karras", "Karras rho=7"), ("loglinear", "log-linear"))})
    return results


if __name__ == "__main__":  # the driver runs this benchmark and writes its tables and figures
    import run_all

    run_all.main(sys.argv[1:])
