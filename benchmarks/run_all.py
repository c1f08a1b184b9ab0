"""Run the benchmarks and write everything they report: ``make bench`` calls this.

    .venv/bin/python benchmarks/run_all.py            # full (an hour or more of one core)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke test (minutes); writes under _build/bench-quick/
    .venv/bin/python benchmarks/run_all.py --train    # also re-run bench_train.py (throughput, memory)
    .venv/bin/python benchmarks/run_all.py --fresh-seed 20261207   # the fresh problem's seed (default: today's date)

Writes, from the scripts' outputs only (no number in them is typed by hand):

* ``benchmarks/results_samplers.json`` - the raw sampler results;
* ``benchmarks/fitted_schedules.json`` - every schedule the fitting rule fitted for these numbers,
  with its pilot seed, cost and the rule's digest (committed: the numbers can be audited);
* ``benchmarks/results_samplers.md`` - every problem and budget, the best configurations of each side;
* ``benchmarks/RESULTS.md`` - the summary: machine, date, versions, the two ratio tables with
  intervals, the fit's cost and break-even, and the training benchmark's own report;
* ``book/_generated/samplers_summary.md`` and ``book/_static/samplers/<problem>.png`` (error vs
  NFE) and ``book/_static/samplers/schedules.png`` (the fitted levels, from fitted_schedules.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROBLEM_TITLES = {"ring": "2-D ring", "mixture": "10-D anisotropic mixture", "digits": "digits U-Net",
                  "fresh": "fresh random mixture"}
GOAL = 1.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def date_seed(day: datetime.date | None = None) -> int:
    """The fresh problem's seed of ``make bench``: the date as YYYYMMDD."""
    return int((day or datetime.date.today()).strftime("%Y%m%d"))


def machine_line(results: dict) -> str:
    kd = f", k-diffusion {results['kdiffusion']}" if results.get("kdiffusion") else ", k-diffusion not installed"
    return (f"{results['date']}, {results['cpu']} ({results['cpu_count']} logical CPUs, load average "
            f"{results['load_before']:.1f} at the start), Python {results['python']}, torch {results['torch']}, "
            f"diffusers {results['diffusers']}{kd}, one thread; {results['seconds'] / 60:.1f} min in all.")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


TIE = 1e-3  # both ends of the interval within 0.1% of the goal: the same algorithm on the same levels
VERDICTS = ("met", "tie (within 0.1%)", "undecided", "not met")  # from best to worst


def verdict(low: float, high: float, goal: float = GOAL) -> str:
    """'met' only when the whole interval is below the goal; 'not met' when it is all above;
    'tie' when both ends are within 0.1% of the goal (both sides ran the same algorithm on the
    same levels, up to float32 rounding in the peer)."""
    if abs(low - goal) < TIE and abs(high - goal) < TIE:
        return "tie (within 0.1%)"
    if high < goal:
        return "met"
    if low > goal:
        return "not met"
    return "undecided"


def worst(*verdicts: str) -> str:
    return max(verdicts, key=VERDICTS.index)


def _ratio(r) -> str:
    point, lo, hi, draws = r
    return f"{point:.2f} [{lo:.2f}, {hi:.2f}]"


def _title(name: str, prob: dict) -> str:
    return PROBLEM_TITLES.get(name, name)


def render_general_table(results: dict) -> str:
    """(a) general schedules: ours against each peer's best, with intervals."""
    kd = bool(results.get("kdiffusion"))
    head = "| problem | NFE ≤ | ours (best general) | diffusers (best) | ours / diffusers [95% CI] |"
    rule = "|---|---:|---:|---:|---|"
    if kd:
        head += " k-diffusion (best) | ours / k-diffusion [95% CI] |"
        rule += "---:|---|"
    head += " goal < 1 against both |"
    rule += "---|"
    lines = [head, rule]
    for name, prob in results["problems"].items():
        for row in prob["general"]:
            r = row["vs_diffusers"]
            v = verdict(r[1], r[2])
            line = (f"| {_title(name, prob)} | {row['budget']} | {row['ours']['error']:.2e} | "
                    f"{row['diffusers']['error']:.2e} | {_ratio(r)} |")
            if kd and "kdiffusion" in row:
                rk = row["vs_kdiffusion"]
                v = worst(v, verdict(rk[1], rk[2]))
                line += f" {row['kdiffusion']['error']:.2e} | {_ratio(rk)} |"
            line += f" {v} |"
            lines.append(line)
    return "\n".join(lines)


def _span(pilots, key):
    """Median point over pilot draws, and the union of their intervals."""
    pts = sorted(p[key][0] for p in pilots)
    return pts[len(pts) // 2], min(p[key][1] for p in pilots), max(p[key][2] for p in pilots)


def render_fitted_table(results: dict) -> str:
    """(b) fitted schedules: ours, the same levels handed to the peers' solvers, and the peers'
    best general schedule."""
    kd = bool(results.get("kdiffusion"))
    head = ("| problem | NFE ≤ | ours on fitted levels (median) | diffusers' solvers, same levels | "
            + ("k-diffusion's solvers, same levels | " if kd else "")
            + "peers' best general | ours-fitted / peers' best general [95% CI] | goal < 1 | "
            "ours / diffusers, same levels | " + ("ours / k-diffusion, same levels |" if kd else ""))
    rule = "|---|---:|---:|---:|" + ("---:|" if kd else "") + "---:|---|---|---|" + ("---|" if kd else "")
    lines = [head, rule]
    for name, prob in results["problems"].items():
        for row in prob["fitted"]:
            p = row["pilots"]
            med = lambda k: sorted(x[k]["error"] for x in p)[len(p) // 2]  # noqa: E731
            pt, lo, hi = _span(p, "vs_peer_general")
            sd = _span(p, "vs_diffusers_same_levels")
            line = (f"| {_title(name, prob)} | {row['budget']} | {row['median_error']:.2e} | "
                    f"{med('diffusers_same_levels'):.2e} | ")
            if kd and "kdiffusion_same_levels" in p[0]:
                line += f"{med('kdiffusion_same_levels'):.2e} | "
            line += (f"{row['peer_general']['error']:.2e} | {pt:.2f} [{lo:.2f}, {hi:.2f}] | {verdict(lo, hi)} | "
                     f"{sd[0]:.2f} [{sd[1]:.2f}, {sd[2]:.2f}] |")
            if kd and "vs_kdiffusion_same_levels" in p[0]:
                sk = _span(p, "vs_kdiffusion_same_levels")
                line += f" {sk[0]:.2f} [{sk[1]:.2f}, {sk[2]:.2f}] |"
            lines.append(line)
    return "\n".join(lines)


def _count(x) -> str:
    return f"{x:,.0f}" if x < 1e6 else f"{x / 1e6:.1f}M"


def render_cost_table(results: dict) -> str:
    lines = ["| problem | NFE ≤ | model evaluations per fit | CPU s per fit | benchmark's own evaluations "
             "(1 draw) | error reduction vs our best general | general NFE for the same error | "
             "break-even samples |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, prob in results["problems"].items():
        for row in prob["fitted"]:
            eq = row["equivalent_nfe"]
            eq_text = "—" if eq is None else ("> 4 × budget" if eq == float("inf") else f"{eq:.0f}")
            if row["break_even"] is None:
                be = "never (no gain)" if eq is None else "—"
            elif row["reduction"] < 0.01:
                be = "— (gain under 1%)"
            elif eq == float("inf"):
                be = f"< {row['fit_evaluations'] / (3 * row['budget']):,.0f}"
            else:
                be = f"{row['break_even']:,.0f}"
            lines.append(f"| {_title(name, prob)} | {row['budget']} | {_count(row['fit_evaluations'])} | "
                         f"{row['fit_cpu_seconds']:.1f} | {_count(row['eval_evaluations'])} | "
                         f"{row['reduction']:.0%} | {eq_text} | {be} |")
    return "\n".join(lines)


def render_config_table(results: dict) -> str:
    kd = bool(results.get("kdiffusion"))
    lines = ["| problem | NFE ≤ | ours: best general (steps, NFE) | diffusers: best (steps, NFE) | "
             + ("k-diffusion: best (steps, NFE) | " if kd else "") + "configurations compared (ours / diffusers"
             + (" / k-diffusion" if kd else "") + ") |",
             "|---|---:|---|---|" + ("---|" if kd else "") + "---|"]
    for name, prob in results["problems"].items():
        for row in prob["general"]:
            c = row["n_compared"]
            cell = lambda e: f"{_cell(e['config'])} ({e['steps']}, {e['nfe']})"  # noqa: E731
            line = f"| {_title(name, prob)} | {row['budget']} | {cell(row['ours'])} | {cell(row['diffusers'])} | "
            if kd and "kdiffusion" in row:
                line += f"{cell(row['kdiffusion'])} | "
            line += f"{c['ours']} / {c['diffusers']}" + (f" / {c['kdiffusion']}" if kd else "") + " |"
            lines.append(line)
    return "\n".join(lines)


def render_problems(results: dict) -> str:
    lines = []
    for name, prob in results["problems"].items():
        title = _title(name, prob)
        description = prob["description"].removeprefix(f"{title}: ")
        lines.append(f"* **{title}**: {description}; {prob['draws']} noise draws of {prob['n_samples']} "
                     f"samples; reference: {prob['reference']}.")
    return "\n".join(lines)


def render_rule(results: dict) -> str:
    r = results["rule"]
    s = r["settings"]
    if not r.get("of_record", True):
        frozen = "a smoke-test rule, not the rule of record"
    elif r.get("frozen"):
        frozen = "matches the frozen digest in `benchmarks/fit_rule.lock`, checked before the fresh problem was drawn"
    else:
        frozen = (f"does NOT match the frozen digest ({r.get('frozen_hash')}): the rule changed after it was "
                  "frozen")
    return (f"Fitting rule `{r['name']}` (digest `{r['digest']}`, {frozen}): solvers "
            f"{', '.join(s['solvers'])}; pilot {s['pilot_closed_form']} samples for a closed-form denoiser, "
            f"{s['pilot_network']} for a network; reference {s['reference_steps']} log-linear 3M steps; "
            f"{s['shape_evals']} + {s['refine_evals']} solves; pilot seeds "
            f"{', '.join(map(str, results['pilot_seeds']))}. Every schedule it fitted is in "
            "`benchmarks/fitted_schedules.json`. It was chosen against the rule of the earlier rounds "
            "(`RULE_FULL`) by `benchmarks/fit_rule_study.py`: candidates, their cost and the share of the "
            "full rule's gain each keeps in `benchmarks/fit_rule_study.md`.")


def render_method(results: dict) -> str:
    return (
        f"Every ratio is the RMSE over {results['draws']} benchmark noise draws, with a 95% bootstrap interval "
        "(samples resampled within each draw, the same for both sides); a cell is \"met\" only when its "
        "whole interval is below the goal, \"not met\" when it is all above, \"tie\" when both ends are within "
        "0.1% of it (the same algorithm on the same levels), \"undecided\" otherwise (table (a): the worse of the two peers' verdicts). Each "
        "side's best is chosen on the benchmark's own error, over every configuration it offers "
        "(configurations compared: last column of the configuration table). Peers that return a state at "
        "sigma_0 (diffusers' DEIS, `final_sigmas_type=\"sigma_min\"`, PNDM's default `set_alpha_to_one=False`, "
        "k-diffusion's DPM-Solver-fast and adaptive) are finished with the model's denoising step "
        "D(x; sigma_0), the reference's own last step, and that call is counted in their NFE. diffusers' "
        "final-step options (`lower_order_final`, `final_sigmas_type`, `euler_at_final`, `set_alpha_to_one`) "
        "are swept on the best configurations of the default sweep at each budget. In table (b), the "
        "fitted levels of each pilot draw are handed to the peers' solvers that take one call per level "
        "(diffusers' DEIS and UniPC-bh1 return NaN on levels that end at 0 and drop out); "
        "its interval is the union of the pilot draws' intervals, its point their median.")


def render_details(results: dict) -> str:
    """results_samplers.md: per problem and budget, the best configurations of each side."""
    out = ["# Sampler accuracy at a fixed NFE: ours against diffusers and k-diffusion at their best", "",
           f"Written by `benchmarks/run_all.py` from `benchmarks/results_samplers.json`. {machine_line(results)}",
           "", f"Noise process: DDPM's linear betas; sigma range [{results['sigma_min']:.4f}, "
           f"{results['sigma_max']:.1f}] (sigma_0 ... sigma_999). Error: RMSE against the reference over "
           f"{results['draws']} noise draws (per-draw RMSEs in brackets).", "", render_problems(results), ""]
    for name, prob in results["problems"].items():
        out += [f"## {_title(name, prob)}", "",
                f"{prob['seconds']:.0f} s. diffusers configurations left out because they do not start at "
                f"sigma_max: {len(prob['skipped'])}.", ""]
        for budget in results["budgets"]:
            out += [f"### NFE ≤ {budget}", ""]
            for side in ("ours", "diffusers", "kdiffusion"):
                entries = prob["top"].get(f"{side}/{budget}", [])
                if not entries:
                    continue
                out += [f"| rank | {side} | steps | NFE | error | per draw |", "|---:|---|---:|---:|---:|---|"]
                for k, e in enumerate(entries):
                    out.append(f"| {k + 1} | {_cell(e[1])} | {e[2]} | {e[3]} | {e[0]:.2e} | "
                               f"{', '.join(f'{v:.2e}' for v in e[4])} |")
                out.append("")
    return "\n".join(out) + "\n"


def render_fresh(results: dict) -> str:
    prob = results["problems"].get("fresh")
    if not prob:
        return "The fresh problem was not run."
    rows = []
    for g, f in zip(prob["general"], prob["fitted"]):
        pt, lo, hi = _span(f["pilots"], "vs_peer_general")
        go = g["vs_diffusers"]
        rows.append(f"NFE {g['budget']}: general ours/diffusers {go[0]:.2f} [{go[1]:.2f}, {go[2]:.2f}], "
                    f"fitted/peers' best general {pt:.2f} [{lo:.2f}, {hi:.2f}] ({verdict(lo, hi)})")
    r = results["rule"]
    state = (f"The rule's digest `{r['rule_hash']}` matched `benchmarks/fit_rule.lock` before it was drawn"
             if r.get("frozen") else "The rule's digest did NOT match `benchmarks/fit_rule.lock`: these rows "
             "are not a test of a frozen rule")
    return (f"Fresh problem of this run (seed {results['fresh_seed']}): {prob['description']}. {state}. "
            + "; ".join(rows) + ".")


def tables_block(results: dict) -> list[str]:
    return ["### (a) General schedules", "",
            "Ours: every solver of `diffnotes.sampling` on every general-purpose schedule (nothing fitted). "
            "diffusers: every scheduler x spacing x final-step option; k-diffusion: every deterministic "
            "sampler x sigma function, DPM-Solver-fast, and DPM-Solver-12/23 adaptive at matched NFE.", "",
            render_general_table(results), "",
            "### (b) Fitted schedules", "", render_rule(results), "", render_fitted_table(results), "",
            "### The fit's cost", "",
            "Per fit (median over pilot draws): model sample-evaluations (a call on a batch of n counts n; "
            "the pilot's fine reference included) and CPU seconds; the benchmark's own evaluation of one "
            "draw at that budget for scale; the error reduction of the fitted schedule over our best general "
            "configuration; the NFE at which that general configuration reaches the fitted error (runs at "
            "up to 4 x the budget, log-log interpolated); and the break-even: the number of samples after "
            "which the evaluations saved per sample repay the fit.", "",
            render_cost_table(results), "",
            "### The fresh problem", "", render_fresh(results), "",
            "### Configurations", "", render_config_table(results), ""]


def render_results_md(results: dict, train_report: str | None, suite_report: str | None = None) -> str:
    out = ["# Benchmark results", "",
           "Written by `benchmarks/run_all.py` (`make bench`) from the benchmark scripts' outputs; nothing "
           "here is typed by hand.", "",
           "## 1. PF-ODE sampler accuracy at a fixed number of network evaluations", "",
           f"`benchmarks/bench_samplers.py`; the best configurations of every side in "
           f"[results_samplers.md](results_samplers.md). {machine_line(results)}", "",
           render_problems(results), "", render_method(results), "", *tables_block(results)]
    if train_report:
        body = train_report.split("\n", 1)[1] if train_report.startswith("# ") else train_report
        out += ["## 2. Training throughput and memory", "",
                "`benchmarks/bench_train.py` (its own report, `results_train.md`, as written; run "
                "`benchmarks/run_all.py --train` to regenerate it).", "",
                body.replace("\n## ", "\n### ").strip(), ""]
    if suite_report:  # benchmarks/suite_time.py's section, as written
        out += [suite_report.strip(), ""]
    return "\n".join(out) + "\n"


def render_book_summary(results: dict) -> str:
    return ("<!-- generated by `make bench` (benchmarks/run_all.py) from benchmarks/results_samplers.json; "
            "do not edit by hand -->\n"
            f"Measured by `benchmarks/run_all.py` on {results['date']} ({results['cpu']}, one thread).\n\n"
            + render_method(results) + "\n\n" + "\n".join(tables_block(results)) + "\n")


def plot_curves(results: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, prob in results["problems"].items():
        nfe = [r["budget"] for r in prob["general"]]
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        ax.loglog(nfe, [r["diffusers"]["error"] for r in prob["general"]], "s-", color="tab:gray",
                  label="diffusers, best of all")
        if all("kdiffusion" in r for r in prob["general"]):
            ax.loglog(nfe, [r["kdiffusion"]["error"] for r in prob["general"]], "^-", color="tab:brown",
                      label="k-diffusion, best of all")
        ax.loglog(nfe, [r["ours"]["error"] for r in prob["general"]], "o-", color="tab:blue",
                  label="ours, best general schedule")
        ax.loglog(nfe, [r["median_error"] for r in prob["fitted"]], "o--", color="tab:orange",
                  label="ours, fitted schedule (median of pilots)")
        for label, key in (("Karras rho=7", "karras"), ("log-linear", "loglinear")):
            series = prob.get("fixed", {}).get(key)
            if series:
                ax.loglog(nfe, series, ":", color="tab:green" if key == "karras" else "tab:purple",
                          label=f"ours, 3M on {label}")
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_ylabel("RMSE to the reference")
        ax.set_title(_title(name, prob))
        ax.set_xticks(nfe, [str(n) for n in nfe])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_schedules(results: dict, store: dict, folder: Path) -> Path | None:
    """The fitted levels behind the numbers, read from fitted_schedules.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    digest = results["rule"]["digest"]
    names = list(results["problems"])
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        key_part = f"{name}/{results['problems'][name]['model_key']}/"
        for budget, color in zip(results["budgets"], ("tab:blue", "tab:orange", "tab:green")):
            for key, fit in store.items():
                if key.startswith(key_part) and key.split("/")[2] == str(budget) and key.endswith(digest):
                    levels = [s for s in fit["sigmas"] if s > 0]
                    ax.semilogy(range(len(levels)), levels, ".-", color=color, alpha=0.6, lw=0.8,
                                label=f"NFE {budget}" if key.split("/")[3] == str(results["pilot_seeds"][0]) else None)
        ax.set_title(_title(name, results["problems"][name]), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("noise level sigma")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = folder / "schedules.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write RESULTS.md and the book's figures.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: few samples, three diffusers peers, two budgets, a tiny fitting rule; "
                             "writes under _build/bench-quick/")
    parser.add_argument("--train", action="store_true", help="also re-run bench_train.py")
    parser.add_argument("--problems", default="ring,mixture,digits,fresh",
                        help="the problems to run; the others keep their last results from the JSON file")
    parser.add_argument("--fresh-seed", type=int, default=None,
                        help="seed of the fresh random problem (default: today's date as YYYYMMDD)")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the tables and figures from results_samplers.json without running anything")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(HERE))
    import bench_samplers

    bench_dir = ROOT / "_build" / "bench-quick" if args.quick else HERE
    book_table = bench_dir / "samplers_summary.md" if args.quick else ROOT / "book/_generated/samplers_summary.md"
    fig_dir = bench_dir / "figures" if args.quick else ROOT / "book/_static/samplers"
    bench_dir.mkdir(parents=True, exist_ok=True)
    schedules_path = bench_dir / "fitted_schedules.json"

    json_path = bench_dir / "results_samplers.json"
    previous = json.loads(json_path.read_text()) if json_path.exists() else None
    store = json.loads(schedules_path.read_text()) if schedules_path.exists() else {}
    if args.render_only:
        if previous is None:
            parser.error(f"--render-only needs {json_path}; run the benchmark first")
        if "general" not in next(iter(previous["problems"].values()), {"general": 1}):
            parser.error(f"{json_path} is from before the second round (no tables (a), (b)); run the benchmark")
        results = previous
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        t0 = time.time()
        names = [p for p in args.problems.split(",") if p]
        unknown = sorted(set(names) - set(bench_samplers.PROBLEMS))
        if unknown:
            parser.error(f"unknown problems {unknown}; valid: {', '.join(bench_samplers.PROBLEMS)}")
        seed = date_seed() if args.fresh_seed is None else args.fresh_seed
        results = bench_samplers.run(names, (10, 20) if args.quick else bench_samplers.BUDGETS, quick=args.quick,
                                     fresh_seed=seed, store=store)
        if args.train and not args.quick:
            subprocess.run([sys.executable, str(HERE / "bench_train.py")], check=True)
        results.update(seconds=time.time() - t0, date=datetime.date.today().isoformat(), cpu=cpu_name(),
                       cpu_count=os.cpu_count(), load_before=load, python=platform.python_version())
        for name in results["problems"]:
            results["problems"][name].update(date=results["date"], cpu=results["cpu"])
        previous = json.loads(json_path.read_text()) if json_path.exists() else None  # read late: runs may overlap
        if (previous and previous.get("quick") == results["quick"]
                and previous.get("rule", {}).get("digest") == results["rule"]["digest"]):  # keep the problems not re-run
            kept = {k: v for k, v in previous["problems"].items() if k not in results["problems"]}
            merged = {**kept, **results["problems"]}
            results["problems"] = {k: merged[k] for k in bench_samplers.PROBLEMS if k in merged}
            results["seconds"] += sum(v["seconds"] for v in kept.values())
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        on_disk = json.loads(schedules_path.read_text()) if schedules_path.exists() else {}
        used = {k: v for k, v in store.items() if k.endswith(results["rule"]["digest"])}
        schedules_path.write_text(json.dumps({**on_disk, **used}, indent=1, sort_keys=True) + "\n")
        store = {**on_disk, **used}
    (bench_dir / "results_samplers.md").write_text(render_details(results))
    train = HERE / "results_train.md"
    suite = HERE / "results_suite.md"
    (bench_dir / "RESULTS.md").write_text(render_results_md(
        results, train.read_text() if train.exists() else None,
        suite.read_text() if suite.exists() else None))
    book_table.parent.mkdir(parents=True, exist_ok=True)
    book_table.write_text(render_book_summary(results))
    figures = plot_curves(results, fig_dir)
    schedules_fig = plot_schedules(results, store, fig_dir)
    print(f"wrote {bench_dir / 'RESULTS.md'}, {book_table}, {len(figures) + bool(schedules_fig)} figures in "
          f"{fig_dir} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
