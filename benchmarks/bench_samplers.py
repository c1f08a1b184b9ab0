"""PF-ODE sampler accuracy at a fixed number of network evaluations: ours against diffusers and
k-diffusion at their best, on general schedules and on schedules fitted by a frozen rule.

Four problems, one noise process: DDPM's linear betas (T = 1000, beta 1e-4 ... 0.02), so that the
model's training range of noise levels is [sigma_0, sigma_999] = [0.010, 157.4] in EDM's
coordinates x = x0 + sigma n. Every sampler on every side starts from the same x_T = sigma_999 z
(DRAWS noise draws, seeds SEED_X_T, SEED_X_T + 1, ...) and stops at sigma = 0.

A model is only defined on its training range: below sigma_0 every model here is held at
sigma_0, and the reference takes the last stretch as one denoising step, x(0) = D(x(sigma_0);
sigma_0). That is a convention (the held model's own ODE would drift further, towards a fixed
point of D), and every sampler is judged against that same reference. A peer that returns a
state at sigma_0 > 0 (diffusers' DEIS, final_sigmas_type="sigma_min", PNDM's default
set_alpha_to_one=False; k-diffusion's DPM-Solver-fast and adaptive) is finished with that same
step, D(x; sigma_0), and the call is counted in its NFE.

* ``ring``: the 8-component 2-D Gaussian ring (std 0.1) with its exact denoiser; the reference is
  scipy's DOP853 (rtol = atol = 1e-10) on dx/dsigma = -sigma score(x; sigma) down to sigma_0.
* ``mixture``: a 10-D mixture of 8 Gaussians with unequal weights (0.02 ... 0.3) and anisotropic
  covariances whose eigenvalues span two orders of magnitude (1e-3 ... 1e-1); exact denoiser, same
  reference solver.
* ``digits``: a U-Net trained here on sklearn's 8x8 digits (EDM preconditioning and loss, fixed
  seed, cached under ``benchmarks/_cache/``). The reference is our 3rd-order multistep solver with 1,000
  log-linear steps; its distance to the 500-step solution is reported as the reference's own error.
* ``fresh``: a random Gaussian mixture (:func:`random_mixture`) drawn from a seed given on the
  command line (``make bench``: the date), after the fitting rule's digest has been checked
  against ``fit_rule.lock``; exact denoiser, DOP853 reference.

Error: RMSE over samples of the distance to the reference (per dimension for ``digits``), over
all noise draws; ratios carry a stratified bootstrap interval (:func:`ratio_interval`).

Peers. diffusers: every scheduler that integrates the PF-ODE - DDIM, PNDM (PRK and PLMS), Euler,
Heun, DPM2 (KDPM2), LMS, DPM-Solver multistep (++ and plain, orders 2 and 3, midpoint and Heun
variants), DPM-Solver single-step (orders 1-3, ++ and plain), DEIS (orders 2, 3), UniPC (orders
2, 3, bh1 and bh2) - times every spacing it offers (``timestep_spacing`` leading / trailing /
linspace, and ``use_karras_sigmas`` / ``use_exponential_sigmas`` / ``use_beta_sigmas`` /
``use_lu_lambdas`` where the class has them), each with its default final-step handling; then
the final-step options (FINAL_OPTIONS) on the TOP_FOR_FINAL best per budget. A configuration
whose first level is not sigma_999 starts elsewhere and is left out (listed as such).
``clip_sample`` is switched off (the data are not images in [-1, 1]). Each scheduler is driven as
a user would drive it, with the model as an eps-prediction network; the noise level handed to the
model is the one the scheduler's own state holds (no timestep rounding is charged). The
EDM-specific schedulers (EDMEuler, EDMDPMSolverMultistep) are the Euler and DPM-Solver++ updates
on Karras / exponential levels, already covered; SA-Solver is stochastic by default.
k-diffusion (``kdiffusion_peer.py``): every deterministic sampler on each sigma function,
DPM-Solver-fast, and DPM-Solver-12/23 adaptive at matched NFE.

Ours: each solver of ``diffnotes.sampling`` that solves the PF-ODE on each general-purpose
schedule over the same range (table (a)); and the schedules the frozen rule ``RULE``
(``diffnotes.sampling.fit_schedule``) fits for a model from the model alone, from pilot noise
with its own seeds (PILOT_SEEDS), never the benchmark's x_T or reference (table (b)). The fitted
levels are also handed to the peers' one-call-per-level solvers.

For each problem and budget B in BUDGETS, each configuration gets the largest step count whose NFE
(calls of the model, counted) is at most B.

    .venv/bin/python benchmarks/run_all.py [--quick] [--problems ring,mixture] [--fresh-seed N]   # or make bench

This file is the benchmark, imported by the driver ``run_all.py`` (which writes the JSON, the
tables and the figures); it never imports the driver, so the two form no import circle. Run
directly, it only points to the driver.
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
SEED_X_T = 2024  # the benchmark's noise draws: seeds 2024, 2025, 2026
DRAWS = 3
PILOT_SEEDS = (7, 8, 9)  # the fitting rule's pilot draws: never the benchmark's


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
    closed_form: bool = True  # a cheap exact denoiser (the fitting rule's larger pilot) or a network
    draws: int = 1  # benchmark noise draws, one after the other in x_T

    def sq(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample squared error to the reference (per dimension for images)."""
        diff = (x.double() - self.x_ref).flatten(1)
        return diff.pow(2).mean(1) if self.per_dim else diff.pow(2).sum(1)

    def error(self, x: torch.Tensor) -> float:
        return float(self.sq(x).mean().sqrt())


def _start(n: int, shape: tuple, draws: int = 1) -> torch.Tensor:
    """``draws`` benchmark noise draws of ``n`` samples each (seeds SEED_X_T, SEED_X_T + 1, ...),
    one after the other in one batch: draw k is rows k n ... (k + 1) n - 1."""
    out = []
    for k in range(draws):
        g = torch.Generator().manual_seed(SEED_X_T + k)
        out.append(SIGMA_MAX * torch.randn((n, *shape), dtype=torch.float64, generator=g))
    return torch.cat(out)


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


def problem_ring(n: int, draws: int = 1) -> Problem:
    gmm = gmm_ring(k=8, radius=1.0, std=0.1)
    x_T = _start(n, (2,), draws)
    return Problem("ring", "2-D ring: 8 equal Gaussians of std 0.1 on the unit circle, exact denoiser",
                   gmm_denoiser(gmm), (2,), x_T, _gmm_reference(gmm, x_T),
                   "DOP853 to sigma_0 (rtol = atol = 1e-10), then D(x; sigma_0)",
                   fingerprint(gmm.weights, gmm.means, gmm.covs), draws=draws)


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


def problem_mixture(n: int, draws: int = 1) -> Problem:
    gmm = anisotropic_mixture()
    x_T = _start(n, (gmm.dim,), draws)
    return Problem("mixture", f"{gmm.dim}-D mixture of {gmm.weights.numel()} Gaussians, weights 0.02-0.3, "
                   "covariance eigenvalues 1e-3 to 1e-1 (random rotations), exact denoiser",
                   gmm_denoiser(gmm), (gmm.dim,), x_T, _gmm_reference(gmm, x_T),
                   "DOP853 to sigma_0 (rtol = atol = 1e-10), then D(x; sigma_0)",
                   fingerprint(gmm.weights, gmm.means, gmm.covs), draws=draws)


def random_mixture(seed: int) -> GaussianMixture:
    """A Gaussian mixture nobody tuned to, drawn from ``seed``: dimension 2-12, 2-10 components,
    weights from a flat Dirichlet (floored at 0.01), means N(0, s^2 I) with s log-uniform in
    [0.5, 2], and per component covariance eigenvalues log-uniform in [10^-3.5, 10^-0.5] in a
    random rotation."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), dtype=torch.float64, generator=g))

    dim = int(torch.randint(2, 13, (), generator=g))
    k = int(torch.randint(2, 11, (), generator=g))
    weights = (-torch.rand(k, dtype=torch.float64, generator=g).log()).clamp(min=1e-12)
    weights = (weights / weights.sum()).clamp(min=0.01)
    means = 10 ** uniform(math.log10(0.5), math.log10(2.0)) * torch.randn(k, dim, dtype=torch.float64, generator=g)
    covs = []
    for _ in range(k):
        eigs = 10 ** (-3.5 + 3.0 * torch.rand(dim, dtype=torch.float64, generator=g))
        q, _ = torch.linalg.qr(torch.randn(dim, dim, dtype=torch.float64, generator=g))
        covs.append(q @ torch.diag(eigs) @ q.T)
    return GaussianMixture(weights, means, torch.stack(covs))


def problem_fresh(n: int, draws: int = 1, seed: int = 0) -> Problem:
    gmm = random_mixture(seed)
    x_T = _start(n, (gmm.dim,), draws)
    lam = torch.linalg.eigvalsh(gmm.covs)
    return Problem("fresh", f"a random {gmm.dim}-D mixture of {gmm.weights.numel()} Gaussians drawn from seed {seed} "
                   f"(weights {float(gmm.weights.min()):.2f}-{float(gmm.weights.max()):.2f}, covariance eigenvalues "
                   f"{float(lam.min()):.1e} to {float(lam.max()):.1e}), exact denoiser",
                   gmm_denoiser(gmm), (gmm.dim,), x_T, _gmm_reference(gmm, x_T),
                   "DOP853 to sigma_0 (rtol = atol = 1e-10), then D(x; sigma_0)",
                   fingerprint(gmm.weights, gmm.means, gmm.covs), draws=draws)


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


def problem_digits(n: int, draws: int = 1) -> Problem:
    model = digits_model()

    @torch.no_grad()
    def denoiser(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp(min=SIGMA_MIN)
        return model(x.float(), sigma.float().expand(x.shape[0])).double()

    x_T = _start(n, (1, 8, 8), draws)
    levels = S.sigma_schedule("loglinear", 1000, SIGMA_MIN, SIGMA_MAX)
    ref = S.sample(denoiser, x_T, levels, "dpmpp_3m")
    half = S.sample(denoiser, x_T, S.sigma_schedule("loglinear", 500, SIGMA_MIN, SIGMA_MAX), "dpmpp_3m")
    p = Problem("digits", f"U-Net ({sum(p.numel() for p in model.parameters()):,} parameters) trained on "
                "sklearn's 8x8 digits, EDM preconditioning, held at sigma_0 below sigma_0",
                denoiser, (1, 8, 8), x_T, ref, "", fingerprint(*model.state_dict().values()), per_dim=True,
                closed_form=False, draws=draws)
    p.ref_note = f"3rd-order multistep, 1000 log-linear steps (vs 500 steps: {p.error(half):.1e})"
    return p


PROBLEMS = {"ring": problem_ring, "mixture": problem_mixture, "digits": problem_digits, "fresh": problem_fresh}
N_SAMPLES = {"ring": 1000, "mixture": 1000, "digits": 64, "fresh": 1000}  # per noise draw


# --------------------------------------------------------------------------------------------
# diffusers at its best
# --------------------------------------------------------------------------------------------
FINAL_OPTIONS = {  # the final-step options a scheduler class takes: name -> values (default first)
    "lower_order_final": (True, False),
    "final_sigmas_type": ("zero", "sigma_min"),
    "euler_at_final": (False, True),
    "set_alpha_to_one": (None, True, False),  # None: the class's default (True for DDIM, False for PNDM)
}
TOP_FOR_FINAL = 8  # the final-step options are swept on this many best configurations per budget


def diffusers_configs():
    """(label, constructor) for every scheduler x variant x spacing (see the module docstring),
    each with the class's default final-step options; and the family of each label."""
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


def final_variants(make) -> list[dict]:
    """The non-default combinations of the final-step options the scheduler ``make()`` takes."""
    import inspect
    import itertools

    params = inspect.signature(type(make()).__init__).parameters
    names = [k for k in FINAL_OPTIONS if k in params]
    values = [[v for v in FINAL_OPTIONS[k] if v is not None] for k in names]
    default = make().config
    out = []
    for combo in itertools.product(*values):
        kw = dict(zip(names, combo))
        if any(default.get(k) != v for k, v in kw.items()):
            out.append(kw)
    return out


def with_options(make, options: dict):
    cls, cfg = type(make()), dict(make().config)
    kw = {k: v for k, v in cfg.items() if not k.startswith("_")}
    kw.update(options)
    return lambda: cls(**kw)


def _final_sigma(sched) -> float:
    """The level a scheduler's last step lands on: 0, or sigma_0 of the training table for the
    schedulers that end with a state that still holds noise (DEIS, final_sigmas_type="sigma_min",
    DDIM / PNDM with set_alpha_to_one=False)."""
    if hasattr(sched, "sigmas"):
        return float(sched.sigmas[-1])
    a = float(sched.final_alpha_cumprod)
    return math.sqrt((1 - a) / a)


def _set_levels(sched, levels) -> None:
    """Hand a scheduler our levels (n values, then 0): diffusers' multistep schedulers take no
    ``sigmas=`` for a DDPM-trained model (UniPC only with flow sigmas), so its state is set as
    ``set_timesteps`` would: ``sigmas`` (float32, as diffusers keeps them) and the matching
    continuous ``timesteps`` by the scheduler's own ``_sigma_to_t``."""
    levels = np.asarray(levels, dtype=np.float64)
    log_table = np.log(SIGMA_TABLE)
    ts = np.array([sched._sigma_to_t(np.array(s), log_table) for s in levels[:-1]], dtype=np.float64).reshape(-1)
    sched.sigmas = torch.from_numpy(levels.astype(np.float32))
    sched.timesteps = torch.from_numpy(ts)
    sched.num_inference_steps = len(ts)
    if hasattr(sched, "model_outputs"):
        sched.model_outputs = [None] * sched.config.solver_order
        sched.lower_order_nums = 0
    sched._step_index = None
    if hasattr(sched, "_begin_index"):
        sched._begin_index = None


def _run_scheduler(make, n_steps: int, x_T: torch.Tensor, denoiser, levels=None):
    """Drive one scheduler; return (final sample at sigma = 0, NFE, its levels), or None when it
    does not start at sigma_max.

    A scheduler whose last step lands on sigma_0 > 0 (see :func:`_final_sigma`) is finished with
    the model's denoising step D(x; sigma_0), the end point of the reference, and that call is
    counted. ``levels`` (n values, then 0) replaces the scheduler's own levels (:func:`_set_levels`).
    ``denoiser=None`` counts the NFE with a zero model output (no model call)."""
    from diffusers import KDPM2DiscreteScheduler

    def fresh():
        sched = make()
        sched.set_timesteps(n_steps)
        if levels is not None:
            _set_levels(sched, levels)
        return sched

    sched = fresh()
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
    sched = fresh()
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
    x = x.double()
    final = _final_sigma(sched)
    if final > 1e-8:  # a state at sigma_0: finish with the model's denoising step, as the reference does
        nfe += 1
        if denoiser is not None:
            x_ve = x if ve_state else x * math.sqrt(1 + final**2)
            x = denoiser(x_ve, torch.tensor(final, dtype=torch.float64))
    lv = sched.sigmas if hasattr(sched, "sigmas") else sched.timesteps
    return x, nfe, tuple(np.round(np.asarray(lv, dtype=np.float64), 6).tolist()) + (round(final, 6),)


def _steps_for(make, budget: int, x1: torch.Tensor, levels=None):
    """The largest step count whose NFE is at most ``budget`` (None: does not start at sigma_max)."""
    n = budget
    while n >= 1:
        counted = _run_scheduler(make, n, x1, None, levels)
        if counted is None:
            return None
        if counted[1] <= budget:
            return n, counted
        n -= max(1, (counted[1] - budget) // 2)
    return 0, None


def best_diffusers(problem: Problem, budgets, configs, families, scores, log=print):
    """Every comparable configuration at its default final step, then the final-step options on
    the TOP_FOR_FINAL best per budget; results go into ``scores`` (side "diffusers").

    Two configurations of one scheduler variant that end up on the same levels with the same
    final step (e.g. Karras sigmas built from "trailing" or "linspace" timesteps) are the same
    computation: the second is not run again, and not counted as compared."""
    skipped, seen = set(), set()

    def one(label, make, budget):
        found = _steps_for(make, budget, problem.x_T[:1])
        if found is None:
            skipped.add(label)
            return
        n, counted = found
        if n < 1:
            return
        signature = (families[label.split(";")[0]], label.partition(";")[2], counted[2])
        if signature in seen:
            return
        seen.add(signature)
        x, nfe, _ = _run_scheduler(make, n, problem.x_T, problem.denoiser)
        scores.add("diffusers", budget, label, n, nfe, x)

    for label, make in configs:
        for budget in budgets:
            if label in skipped:
                break
            try:
                one(label, make, budget)
            except Exception as exc:  # a step count diffusers refuses: that budget is left out
                log(f"  diffusers {label}, NFE <= {budget}: {type(exc).__name__}: {str(exc)[:60]}")
    makers = dict(configs)
    for budget in budgets:
        for entry in scores.ranked("diffusers", budget)[:TOP_FOR_FINAL]:
            base = entry[1].split(";")[0]
            for opts in final_variants(makers[base]):
                label = base + "; " + ", ".join(f"{k}={v}" for k, v in opts.items())
                try:
                    one(label, with_options(makers[base], opts), budget)
                except Exception as exc:
                    log(f"  diffusers {label}, NFE <= {budget}: {type(exc).__name__}: {str(exc)[:60]}")
    return sorted(skipped)


# diffusers' solvers handed a fitted schedule: those that take one network call per level. DEIS and
# UniPC's bh1 variant divide by the last level and return NaN when it is 0 (they are built to stop
# at sigma_0); a run that is not finite is not scored, so they drop out of table (b).
ON_LEVELS = (
    [(f"DPM-Solver multistep (solver_order={o}, algorithm_type=dpmsolver++, solver_type=midpoint)",
      "DPMSolverMultistepScheduler", dict(solver_order=o, algorithm_type="dpmsolver++")) for o in (2, 3)]
    + [(f"UniPC (solver_order={o}, solver_type={s})", "UniPCMultistepScheduler", dict(solver_order=o, solver_type=s))
       for o in (2, 3) for s in ("bh1", "bh2")]
    + [(f"DEIS (solver_order={o})", "DEISMultistepScheduler", dict(solver_order=o)) for o in (2, 3)]
    + [("Euler", "EulerDiscreteScheduler", {})])


def diffusers_on_levels(problem: Problem, sigmas, budget: int, scores, side: str, log=print):
    """diffusers' one-call-per-level solvers on our levels (with lower_order_final both ways)."""
    from diffusers import schedulers as D

    n = len(sigmas) - 1
    for label, cls_name, opt in ON_LEVELS:
        cls = getattr(D, cls_name)
        base = lambda cls=cls, opt=opt: cls(**BETAS, **opt)  # noqa: E731
        for lof in ((None, False) if "lower_order_final" in base().config else (None,)):
            make = base if lof is None else with_options(base, dict(lower_order_final=lof))
            name = label + ("" if lof is None else "; lower_order_final=False")
            try:
                x, nfe, _ = _run_scheduler(make, n, problem.x_T, problem.denoiser, levels=sigmas)
            except Exception as exc:
                log(f"  diffusers {name} on fitted levels: {type(exc).__name__}: {str(exc)[:60]}")
                continue
            if nfe <= budget:
                scores.add(side, budget, name, n, nfe, x)


# --------------------------------------------------------------------------------------------
# k-diffusion at its best
# --------------------------------------------------------------------------------------------
def best_kdiffusion(problem: Problem, budgets, scores, log=print) -> int:
    """Every deterministic k-diffusion sampler on every sigma function it offers (largest level
    count within the budget), DPM-Solver-fast, and DPM-Solver-12/23 adaptive at matched NFE."""
    import kdiffusion_peer as P

    K = P.load_sampling()
    x1 = problem.x_T[:1]
    for budget in budgets:
        for name in P.SAMPLERS:
            n = budget
            while n >= 1:  # NFE counted on one sample
                _, calls = P.run_sampler(K, name, problem.denoiser, x1, next(P.sigma_functions(K, n, SIGMA_MIN, SIGMA_MAX))[1])
                if calls <= budget:
                    break
                n -= max(1, (calls - budget + 1) // 2)
            if n < 1:
                continue
            for label, sigmas in P.sigma_functions(K, n, SIGMA_MIN, SIGMA_MAX):
                try:
                    x, nfe = P.run_sampler(K, name, problem.denoiser, problem.x_T, sigmas)
                except Exception as exc:
                    log(f"  k-diffusion {name}, {label}: {type(exc).__name__}: {str(exc)[:60]}")
                    continue
                scores.add("kdiffusion", budget, f"{name}, {label}", n, nfe, x)
        x, nfe = P.run_dpm_fast(K, problem.denoiser, problem.x_T, budget, SIGMA_MIN, SIGMA_MAX)
        scores.add("kdiffusion", budget, "DPM-Solver-fast (+ D(x; sigma_0))", budget - 1, nfe, x)
        for order in (2, 3):
            found = P.run_dpm_adaptive(K, problem.denoiser, problem.x_T, budget, SIGMA_MIN, SIGMA_MAX, order)
            if found is not None:
                x, nfe, tol = found
                scores.add("kdiffusion", budget, f"DPM-Solver-{order - 1}{order} adaptive (rtol = atol = {tol:.1e}, "
                           "+ D(x; sigma_0))", nfe - 1, nfe, x)
    return 0


def kdiffusion_on_levels(problem: Problem, sigmas, budget: int, scores, side: str, log=print):
    import kdiffusion_peer as P

    K = P.load_sampling()
    for name in P.ONE_CALL_PER_LEVEL:
        x, nfe = P.run_sampler(K, name, problem.denoiser, problem.x_T, sigmas)
        if nfe <= budget:
            scores.add(side, budget, name, len(sigmas) - 1, nfe, x)


# --------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------
OUR_SOLVERS = {  # name: (solver, options, NFE of n levels)
    "euler": ("euler", {}, lambda n: n), "heun": ("heun", {}, lambda n: 2 * n - 1),
    "dpmpp_2m": ("dpmpp_2m", {}, lambda n: n), "dpmpp_3m": ("dpmpp_3m", {}, lambda n: n),
    "unipc_2": ("unipc", dict(order=2), lambda n: n), "unipc_3": ("unipc", dict(order=3), lambda n: n),
    "deis_2": ("deis", dict(order=2), lambda n: n), "deis_3": ("deis", dict(order=3), lambda n: n),
}
# The fitting rule of record, chosen by benchmarks/fit_rule_study.py (fit_rule_study.md) against
# the rule of the first rounds (S.RULE_FULL), and frozen: its digest is in fit_rule.lock, and the
# fresh problem is drawn only after the digest is checked.
RULE = S.FitRule("cheap", solvers=("unipc_3",), pilot_closed_form=1024, pilot_network=8, reference_steps=100,
                 shape_evals=40, refine_evals=80)  # candidate M of the study
QUICK_RULE = S.FitRule("quick", solvers=("unipc_3",), pilot_closed_form=64, pilot_network=8, reference_steps=50,
                       shape_evals=12, refine_evals=4)
LOCK = HERE / "fit_rule.lock"
SCHEDULES = HERE / "fitted_schedules.json"  # committed: the fitted levels behind the committed numbers


def our_schedules(n: int):
    """General-purpose schedules over the model's range: nothing here is picked on a problem."""
    yield "Karras rho=7", S.sigma_schedule("karras", n, SIGMA_MIN, SIGMA_MAX, rho=7.0)
    yield "log-linear", S.sigma_schedule("loglinear", n, SIGMA_MIN, SIGMA_MAX)
    yield "VP time", S.sigma_schedule("vp", n, SIGMA_MIN, SIGMA_MAX)
    for spacing in ("trailing", "linspace"):
        yield f"DDPM {spacing}", S.ddpm_sigmas(n, spacing)


def general_levels(schedule: str, n: int):
    return dict(our_schedules(n))[schedule]


def best_ours_general(problem: Problem, budgets, scores):
    """Every solver on every general schedule (largest level count within the budget)."""
    for budget in budgets:
        for name, (solver, options, evals) in OUR_SOLVERS.items():
            n = max(k for k in range(1, budget + 1) if evals(k) <= budget)
            for label, sigmas in our_schedules(n):
                if not math.isclose(float(sigmas[0]), SIGMA_MAX, rel_tol=1e-4):
                    continue
                x = S.sample(problem.denoiser, problem.x_T, sigmas, solver, **options)
                scores.add("ours", budget, f"{name}, {label}", n, evals(n), x)


def fit_all(problem: Problem, budgets, rule: S.FitRule, seeds, store: dict, log=print) -> dict:
    """The rule's fit for every budget and pilot seed, from the model alone; reused from ``store``
    (the committed fitted_schedules.json) when the same model, budget, seed and rule digest."""
    digest = rule.digest()
    fits = {}
    for budget in budgets:
        starts = [sig for _, sig in our_schedules(budget)]
        for seed in seeds:
            key = f"{problem.name}/{problem.model_key}/{budget}/{seed}/{rule.name}/{digest}"
            if key not in store:
                store[key] = S.fit_schedule(problem.denoiser, problem.shape, budget, rule, sigma_min=SIGMA_MIN,
                                            sigma_max=SIGMA_MAX, seed=seed, closed_form=problem.closed_form,
                                            starts=starts)
                log(f"  fit {problem.name} NFE {budget} seed {seed}: {store[key]['solver']}, "
                    f"{store[key]['evaluations']:,} evaluations, {store[key]['cpu_seconds']:.1f} CPU s")
            fits[(budget, seed)] = store[key]
    return fits


# --------------------------------------------------------------------------------------------
# Scores and intervals
# --------------------------------------------------------------------------------------------
class Scores:
    """Per-sample squared errors of every configuration run: (side, budget) -> label -> entry."""

    def __init__(self, problem: Problem):
        self.problem, self.table = problem, {}

    def add(self, side, budget, label, steps, nfe, x):
        sq = self.problem.sq(x)
        if bool(torch.isfinite(sq).all()):
            self.table.setdefault((side, budget), {})[label] = (float(sq.mean().sqrt()), label, steps, nfe, sq)

    def ranked(self, side, budget):
        return sorted(self.table.get((side, budget), {}).values(), key=lambda e: e[0])

    def count(self, side, budget) -> int:
        return len(self.table.get((side, budget), {}))


def per_draw(sq: torch.Tensor, draws: int) -> list[float]:
    return [float(c.mean().sqrt()) for c in sq.chunk(draws)]


def ratio_interval(sq_a: torch.Tensor, sq_b: torch.Tensor, draws: int, n_boot: int = 2000, seed: int = 0):
    """RMSE_a / RMSE_b over all draws with a 95% percentile bootstrap interval: samples resampled
    within each noise draw, the same indices for both sides (they start from the same x_T).
    Returns (ratio, low, high, [ratio per draw])."""
    g = torch.Generator().manual_seed(seed)
    a, b = sq_a.reshape(draws, -1), sq_b.reshape(draws, -1)
    n = a.shape[1]
    idx = torch.randint(0, n, (n_boot, draws, n), generator=g)
    sa = torch.gather(a.expand(n_boot, -1, -1), 2, idx).sum((1, 2))
    sb = torch.gather(b.expand(n_boot, -1, -1), 2, idx).sum((1, 2))
    boot = (sa / sb).sqrt()
    lo, hi = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=boot.dtype)).tolist()
    point = float((a.sum() / b.sum()).sqrt())
    return point, lo, hi, [float((a[k].sum() / b[k].sum()).sqrt()) for k in range(draws)]


def equivalent_nfe(problem: Problem, label: str, budget: int, target: float, general_at_budget: float):
    """The NFE at which our best general configuration at ``budget`` (``label`` = "solver,
    schedule") reaches the error ``target``: run at 1, 1.25, 1.5, 2, 2.5, 3, 4 times the budget,
    log-log interpolated between the two runs that bracket it. None when not reached by 4 x."""
    name, schedule = label.split(", ", 1)
    solver, options, evals = OUR_SOLVERS[name]
    prev = (budget, general_at_budget)
    if target >= general_at_budget:
        return None
    for factor in (1.25, 1.5, 2, 2.5, 3, 4):
        nfe = int(round(budget * factor))
        n = max(k for k in range(1, nfe + 1) if evals(k) <= nfe)
        err = problem.error(S.sample(problem.denoiser, problem.x_T, general_levels(schedule, n), solver, **options))
        if err <= target:
            (n0, e0), (n1, e1) = prev, (nfe, err)
            if e0 <= e1:
                return float(n1)
            t = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return float(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))
        prev = (nfe, err)
    return float("inf")


def rule_digest_check(rule: S.FitRule) -> dict:
    """The rule's digest now and the frozen one in fit_rule.lock (computed before any problem is drawn)."""
    digest = rule.digest()
    frozen = LOCK.read_text().split()[0] if LOCK.exists() else None
    return dict(rule=rule.name, rule_hash=digest, frozen_hash=frozen, frozen=digest == frozen)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def _row_entry(entry):
    return dict(error=entry[0], config=entry[1], steps=entry[2], nfe=entry[3])


def run(problems=("ring", "mixture", "digits", "fresh"), budgets=BUDGETS, quick=False, log=print,
        fresh_seed: int = 0, store: dict | None = None) -> dict:
    """Run the problems and return the results (see run_all.py for what is written)."""
    import diffusers

    import kdiffusion_peer as P

    torch.set_num_threads(1)
    rule = QUICK_RULE if quick else RULE
    check = rule_digest_check(RULE)  # the rule of record against its frozen digest, before any problem is drawn
    log(f"fitting rule {RULE.name}: digest {check['rule_hash']} (frozen: {check['frozen_hash']})")
    have_kd = P.load_sampling() is not None
    configs, families = diffusers_configs()
    if quick:  # a smoke test: three peers, two budgets, few samples
        keep = ("DDIM (trailing)", "DPM-Solver multistep (solver_order=2, algorithm_type=dpmsolver++, "
                "solver_type=midpoint, trailing)", "UniPC (solver_order=3, solver_type=bh2, exponential, trailing)")
        assert all(any(c[0] == k for c in configs) for k in keep), "quick peers renamed"
        configs = [c for c in configs if c[0] in keep]
    draws = DRAWS
    seeds = PILOT_SEEDS
    store = {} if store is None else store
    results = dict(budgets=list(budgets), sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, quick=quick,
                   torch=torch.__version__, diffusers=diffusers.__version__, kdiffusion=P.version() if have_kd else None,
                   n_diffusers_configs=len(configs), draws=draws, pilot_seeds=list(seeds), fresh_seed=fresh_seed,
                   rule=dict(settings={k: v for k, v in vars(rule).items()}, **check, name=rule.name,
                             digest=rule.digest(), of_record=rule == RULE), problems={})
    results["rule"]["settings"]["solvers"] = list(rule.solvers)
    for name in problems:
        t0 = time.time()
        n = 64 if quick else N_SAMPLES[name]
        problem = PROBLEMS[name](n, draws, fresh_seed) if name == "fresh" else PROBLEMS[name](n, draws)
        t_ref = time.time() - t0
        scores = Scores(problem)
        skipped = best_diffusers(problem, budgets, configs, families, scores, log)
        if have_kd:
            best_kdiffusion(problem, budgets, scores, log)
        best_ours_general(problem, budgets, scores)
        fits = fit_all(problem, budgets, rule, seeds, store, log)
        general_rows, fitted_rows = [], []
        for b in budgets:
            o, d = scores.ranked("ours", b)[0], scores.ranked("diffusers", b)[0]
            k = scores.ranked("kdiffusion", b)[0] if have_kd else None
            row = dict(budget=b, ours=_row_entry(o), diffusers=_row_entry(d),
                       n_compared=dict(ours=scores.count("ours", b), diffusers=scores.count("diffusers", b),
                                       kdiffusion=scores.count("kdiffusion", b)),
                       vs_diffusers=ratio_interval(o[4], d[4], draws))
            if k:
                row.update(kdiffusion=_row_entry(k), vs_kdiffusion=ratio_interval(o[4], k[4], draws))
            general_rows.append(row)
            peer = min([d] + ([k] if k else []), key=lambda e: e[0])
            per_seed = []
            for seed in seeds:
                fit = fits[(b, seed)]
                sigmas = torch.tensor(fit["sigmas"], dtype=torch.float64)
                solver, options = S.FIT_SOLVERS[fit["solver"]]
                x = S.sample(problem.denoiser, problem.x_T, sigmas, solver, **options)
                sq = problem.sq(x)
                side_d, side_k = f"diffusers@fit{seed}", f"kdiffusion@fit{seed}"
                diffusers_on_levels(problem, sigmas, b, scores, side_d, log)
                if have_kd:
                    kdiffusion_on_levels(problem, sigmas, b, scores, side_k, log)
                dd = scores.ranked(side_d, b)[0]
                kk = scores.ranked(side_k, b)[0] if have_kd else None
                err = float(sq.mean().sqrt())
                item = dict(seed=seed, solver=fit["solver"], error=err, per_draw=per_draw(sq, draws),
                            evaluations=fit["evaluations"], cpu_seconds=fit["cpu_seconds"],
                            diffusers_same_levels=_row_entry(dd), vs_peer_general=ratio_interval(sq, peer[4], draws),
                            vs_diffusers_same_levels=ratio_interval(sq, dd[4], draws),
                            vs_ours_general=ratio_interval(sq, o[4], draws))
                if kk:
                    item.update(kdiffusion_same_levels=_row_entry(kk),
                                vs_kdiffusion_same_levels=ratio_interval(sq, kk[4], draws))
                per_seed.append(item)
            errs = sorted(p["error"] for p in per_seed)
            median = errs[len(errs) // 2]
            eq = equivalent_nfe(problem, o[1], b, median, o[0])
            cost = sorted(p["evaluations"] for p in per_seed)[len(per_seed) // 2]
            fitted_rows.append(dict(
                budget=b, pilots=per_seed, median_error=median, peer_general=_row_entry(peer),
                ours_general=_row_entry(o), equivalent_nfe=eq,
                reduction=(o[0] - median) / o[0],
                break_even=(cost / (eq - b)) if eq is not None and eq > b else None,
                fit_evaluations=cost, fit_cpu_seconds=sorted(p["cpu_seconds"] for p in per_seed)[len(per_seed) // 2],
                eval_evaluations=n * b))
            log(f"{name} NFE<={b}: ours general {o[0]:.3e}, diffusers {d[0]:.3e}"
                + (f", k-diffusion {k[0]:.3e}" if k else "") + f"; fitted (median) {median:.3e}")
        results["problems"][name] = dict(
            description=problem.description, n_samples=n, draws=draws, reference=problem.ref_note,
            model_key=problem.model_key, general=general_rows, fitted=fitted_rows,
            seconds=time.time() - t0, reference_seconds=t_ref, skipped=skipped,
            top={f"{side}/{b}": [list(e[:4]) + [per_draw(e[4], draws)] for e in scores.ranked(side, b)[:12]]
                 for side in ("ours", "diffusers", "kdiffusion") for b in budgets},
            fixed={key: [scores.table[("ours", b)][f"dpmpp_3m, {label}"][0] for b in budgets]
                   for key, label in (("karras", "Karras rho=7"), ("loglinear", "log-linear"))})
    return results


if __name__ == "__main__":  # the driver imports this file, not the other way round
    sys.exit("bench_samplers.py is the benchmark the driver runs: use "
             "`python benchmarks/run_all.py` (or `make bench`)")
