"""Noise-level schedules fitted to one model, and the fixed rule that fits them.

The sampler benchmark (``benchmarks/bench_samplers.py``, ``benchmarks/fit_rule_study.py``)
compares the general-purpose schedules of :mod:`diffnotes.schedules` with schedules fitted to
each model from the model alone: :func:`warped_sigmas` and :func:`knot_sigmas` are the two
families, :func:`optimize_sigmas` and :func:`refine_sigmas` the two stages of the fit, and
:func:`fit_schedule` applies a :class:`FitRule` fixed in advance and counts what the fit costs
(:class:`CountingDenoiser`). :meth:`FitRule.digest` hashes the source of these functions, so
a changed fit gets a new hash (``benchmarks/fit_rule.lock`` holds the frozen one).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass

import torch

from .schedules import _append_zero, sigma_schedule
from .solvers import sample

__all__ = [
    "warped_sigmas",
    "optimize_sigmas",
    "knot_sigmas",
    "refine_sigmas",
    "FIT_SOLVERS",
    "FitRule",
    "RULE_FULL",
    "CountingDenoiser",
    "fit_schedule",
]


# --------------------------------------------------------------------------------------------
# Step schedules fitted to a model
# --------------------------------------------------------------------------------------------
def warped_sigmas(n: int, sigma_end: float, sigma_max: float, warp: float) -> torch.Tensor:
    """``n`` levels from ``sigma_max`` down to ``sigma_end``, then 0, warped in lambda = -log sigma.

    lambda_i = lambda_max + (lambda_end - lambda_max) g(i / (n - 1)) with g(u) = (e^(warp u) - 1) /
    (e^warp - 1): ``warp`` = 0 is log-linear (uniform in lambda, DPM-Solver's choice); a negative
    warp takes long steps at high noise and short ones near the data (like Karras' rho, whose
    rho = 7 over [0.002, 80] is close to warp = -2.4); a positive warp does the opposite.
    The family of :func:`optimize_sigmas`.
    """
    if n == 1 or abs(warp) < 1e-9:
        return sigma_schedule("loglinear", n, sigma_end, sigma_max)
    u = torch.linspace(0, 1, n, dtype=torch.float64)
    g = torch.expm1(warp * u) / math.expm1(warp)
    log_sigmas = math.log(sigma_max) + (math.log(sigma_end) - math.log(sigma_max)) * g
    return _append_zero(torch.exp(log_sigmas))


def optimize_sigmas(denoiser, x_pilot: torch.Tensor, n: int, solver: str = "dpmpp_3m", *,
                    sigma_min: float, sigma_max: float, reference: torch.Tensor | None = None,
                    reference_steps: int = 500, max_evals: int = 40, refine_evals: int = 0,
                    starts=(), solver_options: dict | None = None):
    """Fit ``n`` noise levels for ``solver`` to one model, from the model alone.

    The rule (in the spirit of "Align Your Steps", Sabour et al. 2024, with the sampling error
    itself as the objective): draw pilot noise ``x_pilot = sigma_max z`` (the caller's seed, never
    the noise the schedule is later judged on), solve the model's PF-ODE from it finely
    (``reference_steps`` log-linear steps of ``"dpmpp_3m"`` over [sigma_min, sigma_max], unless a
    ``reference`` is given), and pick the schedule of :func:`warped_sigmas` - two numbers: the
    last nonzero level sigma_end in [sigma_min, sigma_max / e] and the warp in [-6, 6] - whose
    ``solver`` samples (with ``solver_options``) from ``x_pilot`` have the smallest RMSE to that
    solution. A 4 x 3 grid seeds a Nelder-Mead search in (log sigma_end, warp); at most
    ``max_evals`` solves in all.

    The step into sigma = 0 stays a single step, so a larger sigma_end trades the last, cheap
    steps near the data for smaller steps higher up (the effect of diffusers' "trailing" spacing,
    here chosen for the model instead of fixed). With ``refine_evals`` > 0 a second stage,
    :func:`refine_sigmas`, frees the step sizes themselves (up to 8 knots) and moves them within
    that many more solves, starting from the warped fit or from any of the schedules in
    ``starts`` (n levels then 0, e.g. the general-purpose ones) that does better on the pilot
    (``info["start"] == "given"``). Returns ``(sigmas, info)`` with info the chosen ``sigma_end``,
    ``warp``, the pilot RMSE and the number of solves (and the refined RMSE and its solves).
    """
    from scipy.optimize import minimize

    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer number of levels >= 2, got {n!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if reference is None:
        fine = sigma_schedule("loglinear", reference_steps, sigma_min, sigma_max)
        reference = sample(denoiser, x_pilot, fine, "dpmpp_3m")
    log_lo, log_hi = math.log(sigma_min), math.log(sigma_max) - 1.0
    seen: dict[tuple[float, float], float] = {}

    def levels(p) -> torch.Tensor:
        log_end = min(max(p[0], log_lo), log_hi)
        return warped_sigmas(n, math.exp(log_end), sigma_max, min(max(p[1], -6.0), 6.0))

    def loss(p) -> float:
        key = (round(min(max(p[0], log_lo), log_hi), 6), round(min(max(p[1], -6.0), 6.0), 6))
        if key not in seen:
            out = sample(denoiser, x_pilot, levels(p), solver, **(solver_options or {}))
            err = (out - reference).flatten(1).pow(2).sum(1).mean().sqrt()
            seen[key] = float(err) if bool(torch.isfinite(err)) else float("inf")
        return seen[key]

    grid = [(log_lo + k * 1.2, w) for k in range(4) for w in (-2.0, 0.0, 2.0)]
    start = min(grid, key=loss)
    simplex = [start, (start[0] + 0.6, start[1]), (start[0], start[1] + 1.0)]
    minimize(lambda p: loss(p), start, method="Nelder-Mead",
             options=dict(initial_simplex=simplex, maxfev=max(1, max_evals - len(grid)), xatol=1e-3, fatol=0))
    (log_end, warp), err = min(seen.items(), key=lambda kv: kv[1])
    info = dict(sigma_end=math.exp(log_end), warp=warp, pilot_rmse=err, solves=len(seen))
    sigmas = levels((log_end, warp))
    for other in starts:  # other schedules of n levels: keep whichever does best on the pilot
        other = torch.as_tensor(other, dtype=torch.float64)
        out = sample(denoiser, x_pilot, other, solver, **(solver_options or {}))
        other_err = float((out - reference).flatten(1).pow(2).sum(1).mean().sqrt())
        if len(other) == n + 1 and other_err < info["pilot_rmse"]:
            sigmas, info["pilot_rmse"], info["start"] = other, other_err, "given"
    if refine_evals > 0:
        sigmas, refined = refine_sigmas(denoiser, x_pilot, sigmas, solver, reference=reference,
                                        sigma_min=sigma_min, max_evals=refine_evals,
                                        solver_options=solver_options)
        info.update(refined)
    return sigmas, info


def knot_sigmas(knots, n: int, sigma_max: float, sigma_min: float) -> torch.Tensor:
    """``n`` levels from ``sigma_max`` with free step sizes, then 0: the family of :func:`refine_sigmas`.

    The step i -> i+1 shrinks log sigma by softplus(k(i)), where k interpolates the ``knots``
    linearly over the n - 1 steps (as many knots as steps makes every step free; fewer keep the
    search small for long schedules). Levels never go below ``sigma_min``: a step that would is
    clamped there, which leaves two equal levels - not a schedule, and :func:`refine_sigmas`
    scores it as infinitely bad.
    """
    knots = torch.as_tensor(knots, dtype=torch.float64)
    pos = torch.linspace(0, knots.numel() - 1, n - 1, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=knots.numel() - 1)
    hi = (lo + 1).clamp(max=knots.numel() - 1)
    k = knots[lo] + (pos - lo) * (knots[hi] - knots[lo])
    logs = math.log(sigma_max) - torch.cumsum(torch.nn.functional.softplus(k), 0)
    top = torch.tensor([sigma_max], dtype=torch.float64)
    return torch.cat([top, logs.exp().clamp(min=sigma_min), torch.zeros(1, dtype=torch.float64)])


def refine_sigmas(denoiser, x_pilot: torch.Tensor, sigmas: torch.Tensor, solver: str, *,
                  reference: torch.Tensor, sigma_min: float, max_evals: int = 200,
                  max_knots: int = 8, solver_options: dict | None = None):
    """Refine a schedule's step sizes one by one against a fine solution of the same pilot noise.

    The second stage of :func:`optimize_sigmas`: the schedule ``sigmas`` (n levels, then 0) is
    written as :func:`knot_sigmas` with min(n - 1, ``max_knots``) knots fitted to it, and Powell's
    method moves the knots to lower the pilot RMSE to ``reference``, within ``max_evals``
    solves. Only the pilot noise and the model are used. Returns ``(sigmas, info)``; info holds
    the refined pilot RMSE and the solves spent. The result is never worse on the pilot than
    the starting schedule (which is kept if nothing better is found).
    """
    from scipy.optimize import minimize

    s = torch.as_tensor(sigmas, dtype=torch.float64)
    n = len(s) - 1
    if n < 2 or float(s[-1]) != 0.0:
        raise ValueError(f"sigmas must hold at least 2 levels and end at 0, got {s.tolist()}")
    gaps = (s[:-2].log() - s[1:-1].log()).clamp(min=1e-6)
    n_knots = min(n - 1, max_knots)
    at = torch.linspace(0, n - 2, n_knots).round().long()
    knots0 = torch.log(torch.expm1(gaps[at])).tolist()
    seen: dict[tuple, float] = {}

    def loss(p) -> float:
        key = tuple(round(v, 6) for v in p)
        if key not in seen:
            levels = knot_sigmas(p, n, float(s[0]), sigma_min)
            if not bool((levels[1:] < levels[:-1]).all()):  # ran into sigma_min: not a schedule
                seen[key] = float("inf")
                return seen[key]
            out = sample(denoiser, x_pilot, levels, solver, **(solver_options or {}))
            err = (out - reference).flatten(1).pow(2).sum(1).mean().sqrt()
            seen[key] = float(err) if bool(torch.isfinite(err)) else float("inf")
        return seen[key]

    start = sample(denoiser, x_pilot, s, solver, **(solver_options or {}))
    start_err = float((start - reference).flatten(1).pow(2).sum(1).mean().sqrt())
    with warnings.catch_warnings():  # Powell's line search meets the infinite scores of non-schedules
        warnings.simplefilter("ignore", RuntimeWarning)
        minimize(loss, knots0, method="Powell", options=dict(maxfev=max_evals, xtol=1e-2))
    best, err = min(seen.items(), key=lambda kv: kv[1])
    if err >= start_err:
        return s, dict(refined_rmse=start_err, refine_solves=len(seen) + 1)
    return knot_sigmas(best, n, float(s[0]), sigma_min), dict(refined_rmse=err, refine_solves=len(seen) + 1)


# --------------------------------------------------------------------------------------------
# A fitting rule, fixed in advance, and its cost
# --------------------------------------------------------------------------------------------
FIT_SOLVERS = {  # the solvers a rule may fit a schedule for: name -> (solver, options)
    "dpmpp_3m": ("dpmpp_3m", {}),
    "unipc_2": ("unipc", {"order": 2}),
    "unipc_3": ("unipc", {"order": 3}),
}


@dataclass(frozen=True)
class FitRule:
    """Everything :func:`fit_schedule` does, fixed before it meets a model.

    ``solvers``: the solvers a schedule is fitted for (the rule keeps the one with the smallest
    pilot error); ``pilot_closed_form`` / ``pilot_network``: pilot samples for a cheap
    closed-form denoiser / a network; ``reference_steps``: log-linear 3M steps of the pilot's
    fine solution; ``shape_evals``, ``refine_evals``, ``max_knots``: the budgets of the two
    stages of :func:`optimize_sigmas`; ``use_starts``: whether general schedules handed in may
    replace the warped fit as the refinement's start. :meth:`digest` hashes these settings
    together with the source of every function the rule runs, so a changed rule gets a new
    hash.
    """

    name: str
    solvers: tuple = ("unipc_3",)
    pilot_closed_form: int = 512
    pilot_network: int = 32
    reference_steps: int = 100
    shape_evals: int = 16
    refine_evals: int = 16
    max_knots: int = 8
    use_starts: bool = True

    def pilot(self, closed_form: bool) -> int:
        return self.pilot_closed_form if closed_form else self.pilot_network

    def digest(self) -> str:
        import dataclasses
        import hashlib

        h = hashlib.sha256(repr(sorted(dataclasses.asdict(self).items())).encode())
        for fn in (warped_sigmas, optimize_sigmas, knot_sigmas, refine_sigmas, fit_schedule):
            h.update(inspect.getsource(fn).encode())
        h.update(repr(sorted(FIT_SOLVERS.items())).encode())
        return h.hexdigest()[:16]


# The rule of the first two benchmark rounds: three solvers, large pilots, 40 + 200 solves each.
RULE_FULL = FitRule("full", solvers=("dpmpp_3m", "unipc_2", "unipc_3"), pilot_closed_form=4096,
                    pilot_network=32, reference_steps=500, shape_evals=40, refine_evals=200)


class CountingDenoiser:
    """Wraps a denoiser and counts its work: ``calls`` (batched calls, the NFE of a sampler; also
    read as ``nfe``) and ``evaluations`` (sample-evaluations: one call on a batch of n samples
    counts n), the unit in which a fit's cost is compared with sampling."""

    def __init__(self, denoiser):
        self.denoiser, self.evaluations, self.calls = denoiser, 0, 0

    @property
    def nfe(self) -> int:
        return self.calls

    @nfe.setter
    def nfe(self, value: int) -> None:
        self.calls = value

    def __call__(self, x, sigma, *args, **kwargs):
        self.evaluations += int(x.shape[0])
        self.calls += 1
        return self.denoiser(x, sigma, *args, **kwargs)


def fit_schedule(denoiser, shape: tuple, n: int, rule: FitRule, *, sigma_min: float, sigma_max: float,
                 seed: int, closed_form: bool, starts=()) -> dict:
    """Fit ``n`` noise levels to a model by ``rule``, from the model alone, and count the cost.

    Draws ``rule.pilot(closed_form)`` pilot samples ``sigma_max z`` with ``seed`` (never the
    noise the schedule is judged on), solves them finely (``rule.reference_steps``), runs
    :func:`optimize_sigmas` for each of ``rule.solvers`` and keeps the solver and schedule with
    the smallest pilot RMSE. Returns a dict: ``solver`` (a key of :data:`FIT_SOLVERS`),
    ``sigmas`` (n levels, then 0), ``pilot_rmse``, the cost of the whole fit - ``evaluations``
    (model sample-evaluations, reference included), ``calls`` (batched model calls) and
    ``cpu_seconds`` (process CPU time) - and ``rule``, ``rule_hash``, ``seed``, ``n_pilot``.
    """
    import time

    t0 = time.process_time()
    counted = CountingDenoiser(denoiser)
    n_pilot = rule.pilot(closed_form)
    g = torch.Generator().manual_seed(seed)
    x_pilot = sigma_max * torch.randn((n_pilot, *shape), dtype=torch.float64, generator=g)
    fine = sigma_schedule("loglinear", rule.reference_steps, sigma_min, sigma_max)
    reference = sample(counted, x_pilot, fine, "dpmpp_3m")
    best = None
    for name in rule.solvers:
        solver, options = FIT_SOLVERS[name]
        sigmas, info = optimize_sigmas(counted, x_pilot, n, solver, sigma_min=sigma_min, sigma_max=sigma_max,
                                       reference=reference, max_evals=rule.shape_evals,
                                       refine_evals=rule.refine_evals, solver_options=options,
                                       starts=starts if rule.use_starts else ())
        err = info.get("refined_rmse", info["pilot_rmse"])
        if best is None or err < best["pilot_rmse"]:
            best = dict(solver=name, sigmas=[float(s) for s in sigmas], pilot_rmse=float(err),
                        start=info.get("start", "warped fit"), sigma_end=float(info["sigma_end"]),
                        warp=float(info["warp"]))
    best.update(evaluations=counted.evaluations, calls=counted.calls, cpu_seconds=time.process_time() - t0,
                rule=rule.name, rule_hash=rule.digest(), seed=seed, n_pilot=n_pilot)
    return best
