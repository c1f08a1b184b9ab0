"""Measure, then choose: a cheaper schedule-fitting rule against the rule of the first rounds.

For each problem and budget, the full rule (``diffnotes.sampling.RULE_FULL``: three solvers,
4,096 pilot samples for closed-form denoisers, 32 for the network, a 500-step reference, 40 +
200 solves per solver) and a few cheaper candidates fit a schedule from pilot noise (seeds 7,
8, 9; the full rule only seed 7, its cost being the point), and each fitted schedule is judged
on the benchmark's three noise draws. The share of the full rule's error reduction a candidate
keeps is (G - E_cand) / (G - E_full), with G the best error of our solvers on the general
schedules at that budget. Cost: model sample-evaluations of the whole fit (reference included)
and process CPU seconds, as a share of the full rule's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_rule_study.py [--problems ring,mixture,digits] [--budgets 10]

Writes ``benchmarks/fit_rule_study.json`` (merged per problem, budget and rule),
``benchmarks/fit_rule_study.md`` and the same table for the book, ``book/_generated/fit_rule_study.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_samplers as B  # noqa: E402
from diffnotes import sampling as S  # noqa: E402

CANDIDATES = {
    "A: 1 solver, 512/24 pilot, 100-step ref, 16+16 solves": S.FitRule(
        "A", pilot_closed_form=512, pilot_network=24, reference_steps=100, shape_evals=16, refine_evals=16),
    "B: 1 solver, 512/24 pilot, 100-step ref, 16+48 solves": S.FitRule(
        "B", pilot_closed_form=512, pilot_network=24, reference_steps=100, shape_evals=16, refine_evals=48),
    "C: 1 solver, 1024/24 pilot, 100-step ref, 24 shape solves only": S.FitRule(
        "C", pilot_closed_form=1024, pilot_network=24, reference_steps=100, shape_evals=24, refine_evals=0),
    "D: 1 solver, 256/16 pilot, 100-step ref, 12+36 solves": S.FitRule(
        "D", pilot_closed_form=256, pilot_network=16, reference_steps=100, shape_evals=12, refine_evals=36),
    "E: 1 solver, 4096/24 pilot, 100-step ref, 12+12 solves": S.FitRule(
        "E", pilot_closed_form=4096, pilot_network=24, reference_steps=100, shape_evals=12, refine_evals=12),
    "F: 1 solver, 2048/24 pilot, 100-step ref, 16+32 solves": S.FitRule(
        "F", pilot_closed_form=2048, pilot_network=24, reference_steps=100, shape_evals=16, refine_evals=32),
    "G: 1 solver, 4096/24 pilot, 100-step ref, 12 shape solves only": S.FitRule(
        "G", pilot_closed_form=4096, pilot_network=24, reference_steps=100, shape_evals=12, refine_evals=0),
    "H: 1 solver, 2048/24 pilot, 100-step ref, 24 shape solves only": S.FitRule(
        "H", pilot_closed_form=2048, pilot_network=24, reference_steps=100, shape_evals=24, refine_evals=0),
    "I: 1 solver, 4096/24 pilot, 100-step ref, 20 shape solves only": S.FitRule(
        "I", pilot_closed_form=4096, pilot_network=24, reference_steps=100, shape_evals=20, refine_evals=0),
    "J: 1 solver, 1024/24 pilot, 100-step ref, 40+100 solves": S.FitRule(
        "J", pilot_closed_form=1024, pilot_network=24, reference_steps=100, shape_evals=40, refine_evals=100),
    "K: 1 solver, 1024/8 pilot, 100-step ref, 40+96 solves": S.FitRule(
        "K", pilot_closed_form=1024, pilot_network=8, reference_steps=100, shape_evals=40, refine_evals=96),
    "L: 1 solver, 1024/6 pilot, 100-step ref, 40+96 solves": S.FitRule(
        "L", pilot_closed_form=1024, pilot_network=6, reference_steps=100, shape_evals=40, refine_evals=96),
    "M: 1 solver, 1024/8 pilot, 100-step ref, 40+80 solves": S.FitRule(
        "M", pilot_closed_form=1024, pilot_network=8, reference_steps=100, shape_evals=40, refine_evals=80),
}
FULL = "full (RULE_FULL)"
PILOT_SEEDS = (7, 8, 9)
DRAWS, N = 3, {"ring": 1000, "mixture": 1000, "digits": 64}


def judge(problem, fit) -> float:
    solver, options = S.FIT_SOLVERS[fit["solver"]]
    sigmas = torch.tensor(fit["sigmas"], dtype=torch.float64)
    return problem.error(S.sample(problem.denoiser, problem.x_T, sigmas, solver, **options))


def study(name: str, budget: int, only=None, earlier: dict | None = None, full_seeds=PILOT_SEEDS[:1],
          log=print) -> dict:
    torch.set_num_threads(1)
    problem = B.PROBLEMS[name](N[name], DRAWS)
    closed = name != "digits"
    general = min(problem.error(S.sample(problem.denoiser, problem.x_T, sig, solver, **opt))
                  for solver, opt, ev in B.OUR_SOLVERS.values() if ev(budget) == budget
                  for _, sig in B.our_schedules(budget) if math.isclose(float(sig[0]), B.SIGMA_MAX, rel_tol=1e-4))
    starts = [sig for _, sig in B.our_schedules(budget)]
    out = dict(problem=name, budget=budget, general=general, rules=dict((earlier or {}).get("rules", {})))
    rules = {FULL: (S.RULE_FULL, tuple(full_seeds)), **{k: (r, PILOT_SEEDS) for k, r in CANDIDATES.items()}}
    for label, (rule, seeds) in rules.items():
        if only is not None and label.split(":")[0].split(" ")[0] not in only:
            continue
        done = {f["seed"]: f for f in out["rules"].get(label, [])}
        seeds = [s for s in seeds if s not in done]
        fits = list(done.values())
        for seed in seeds:
            fit = S.fit_schedule(problem.denoiser, problem.shape, budget, rule, sigma_min=B.SIGMA_MIN,
                                 sigma_max=B.SIGMA_MAX, seed=seed, closed_form=closed, starts=starts)
            fit["error"] = judge(problem, fit)
            fits.append(fit)
            log(f"{name} NFE {budget} {label} seed {seed}: error {fit['error']:.3e} (general {general:.3e}), "
                f"{fit['evaluations']:,} evaluations, {fit['cpu_seconds']:.1f} s")
        out["rules"][label] = fits
    return study_kept(out)


def study_kept(out: dict) -> dict:
    """Share of the full rule's reduction kept, and cost shares, against the full rule's median."""
    general = out["general"]
    fulls = sorted(out["rules"][FULL], key=lambda f: f["error"])
    full = fulls[len(fulls) // 2]  # the full rule's median over its pilot seeds
    for label, fits in out["rules"].items():
        for f in fits:
            f["kept"] = (general - f["error"]) / (general - full["error"]) if general > full["error"] else float("nan")
            f["cost_share"] = f["evaluations"] / full["evaluations"]
            f["cpu_share"] = f["cpu_seconds"] / full["cpu_seconds"]
    return out


def render(results: dict) -> str:
    lines = ["# Choosing a cheaper fitting rule: measured", "",
             "Written by `benchmarks/fit_rule_study.py`. Kept = share of the full rule's error reduction over "
             "our best general schedule (G) that a rule keeps, on the benchmark's three noise draws "
             "(median over pilot seeds 7, 8, 9; the full rule: the seeds listed). Cost = the fit's model "
             "sample-evaluations (reference included) and CPU seconds as a share of the full rule's.", "",
             "| problem | NFE | rule | pilot seeds | error (median) | G | kept (median, min) | evaluations | share "
             "| CPU s | share |",
             "|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for key in sorted(results):
        r = results[key]
        for label, fits in r["rules"].items():
            def med(k):
                v = sorted(f[k] for f in fits)
                return v[len(v) // 2]
            lines.append(f"| {r['problem']} | {r['budget']} | {label} | {', '.join(str(f['seed']) for f in fits)} | "
                         f"{med('error'):.3e} | {r['general']:.3e} | "
                         f"{med('kept'):.0%}, {min(f['kept'] for f in fits):.0%} | {med('evaluations'):,} | "
                         f"{med('cost_share'):.1%} | {med('cpu_seconds'):.1f} | {med('cpu_share'):.1%} |")
    return "\n".join(lines) + "\n\n" + render_choice(results) + "\n"


TARGET_KEPT, TARGET_COST = 0.80, 0.05


def choose(results: dict):
    """The choice (a criterion written while the first results came in, not before): among the candidates run on every
    problem and budget studied whose median cost share is at most TARGET_COST everywhere, the one
    that keeps at least TARGET_KEPT of the full rule's reduction (median over pilot seeds) on
    the most problems, then the one with the largest smallest median kept, then the cheapest.
    Returns (label, {problem/budget: (kept, cost share)}), or None when no candidate qualifies."""
    keys = sorted(results)
    labels = set.intersection(*(set(results[k]["rules"]) for k in keys)) - {FULL} if keys else set()
    scored = []
    for label in labels:
        per = {}
        for k in keys:
            fits = results[k]["rules"][label]
            kept = sorted(f["kept"] for f in fits)[len(fits) // 2]
            share = sorted(f["cost_share"] for f in fits)[len(fits) // 2]
            per[k] = (kept, share)
        if all(share <= TARGET_COST for _, share in per.values()):
            hits = sum(kept >= TARGET_KEPT for kept, _ in per.values())
            scored.append(((-hits, -min(kept for kept, _ in per.values()), max(s for _, s in per.values())),
                           label, per))
    if not scored:
        return None
    _, label, per = min(scored)
    return label, per


def render_choice(results: dict) -> str:
    found = choose(results)
    if found is None:
        return "No candidate was run on every problem within the cost target."
    label, per = found
    met = [k for k, (kept, _) in per.items() if kept >= TARGET_KEPT]
    missed = [k for k in per if k not in met]
    parts = "; ".join(f"{k}: kept {kept:.0%} at {share:.1%} of the cost" for k, (kept, share) in sorted(per.items()))
    verdict = ("It meets the target everywhere studied." if not missed else
               f"It meets the target (at least {TARGET_KEPT:.0%} kept at most {TARGET_COST:.0%} of the cost) on "
               f"{', '.join(met) or 'none'} and misses it on {', '.join(missed)}.")
    return (f"Choice (by `choose` in fit_rule_study.py, a criterion written while the study was running: within {TARGET_COST:.0%} of the full rule's "
            f"cost everywhere, keep at least {TARGET_KEPT:.0%} of its error reduction on the most problems, then "
            f"the largest smallest share kept, then the cheapest): **{label}**. {parts}. {verdict}")


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--problems", default="ring,mixture,digits")
    p.add_argument("--budgets", default="10")
    p.add_argument("--full-seeds", default="7", help="pilot seeds of the full rule (it costs ~100x a candidate)")
    p.add_argument("--rules", default=None, help="only these rules (e.g. E,F; 'full' for RULE_FULL); the others "
                   "are kept from fit_rule_study.json")
    args = p.parse_args(argv)
    path = HERE / "fit_rule_study.json"
    only = None if args.rules is None else set(args.rules.split(","))
    for name in args.problems.split(","):
        for budget in map(int, args.budgets.split(",")):
            t0 = time.time()
            if only and FULL not in (json.loads(path.read_text()) if path.exists() else {}).get(
                    f"{name}/{budget}", {}).get("rules", {}) and "full" not in only:
                raise SystemExit(f"{name}/{budget}: the full rule has not been run yet; add --rules full")
            earlier = json.loads(path.read_text()).get(f"{name}/{budget}") if path.exists() and only else None
            r = study(name, budget, only, earlier, [int(x) for x in args.full_seeds.split(",")])
            r["seconds"] = time.time() - t0
            results = json.loads(path.read_text()) if path.exists() else {}  # read late: runs may overlap
            on_disk = results.get(f"{name}/{budget}", {}).get("rules", {})
            for label, fits in on_disk.items():  # union by pilot seed: runs of other rules may overlap
                mine = {f["seed"] for f in r["rules"].get(label, [])}
                r["rules"][label] = r["rules"].get(label, []) + [f for f in fits if f["seed"] not in mine]
            study_kept(r)
            results[f"{name}/{budget}"] = r
            path.write_text(json.dumps(results, indent=1) + "\n")
            (HERE / "fit_rule_study.md").write_text(render(results))
            (HERE.parent / "book/_generated/fit_rule_study.md").write_text(
                "<!-- generated by benchmarks/fit_rule_study.py; do not edit by hand -->\n"
                + render(results).split("\n", 2)[2])


if __name__ == "__main__":
    main()
