"""Run the benchmarks and write everything they report: ``make bench`` calls this.

    .venv/bin/python benchmarks/run_all.py            # full: ~15-20 min of one core
    .venv/bin/python benchmarks/run_all.py --quick    # smoke test (seconds); writes under _build/bench-quick/
    .venv/bin/python benchmarks/run_all.py --train    # also re-run bench_train.py (throughput, memory)

Writes, from the scripts' outputs only (no number in them is typed by hand):

* ``benchmarks/results_samplers.json`` - the raw sampler results;
* ``benchmarks/results_samplers.md`` - every problem and budget, the best configurations of each side;
* ``benchmarks/RESULTS.md`` - the summary: machine, date, versions, the ratio table, and the
  training benchmark's own report (``results_train.md``, written by ``bench_train.py``);
* ``book/_generated/samplers_summary.md`` and ``book/_static/samplers/<problem>.png`` - the table
  and the error-vs-NFE curves the book's "Choosing a sampler" page shows.
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
PROBLEM_TITLES = {"ring": "2-D ring", "mixture": "10-D anisotropic mixture", "digits": "digits U-Net"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(results: dict) -> str:
    return (f"{results['date']}, {results['cpu']} ({results['cpu_count']} logical CPUs, load average "
            f"{results['load_before']:.1f} at the start), Python {results['python']}, torch {results['torch']}, "
            f"diffusers {results['diffusers']}, one thread; {results['seconds'] / 60:.1f} min in all.")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def verdict(ratio: float) -> str:
    return "met" if ratio <= 1.0 else "not met"


def render_summary_table(results: dict) -> str:
    """One row per problem and budget: ours, diffusers' best, the ratio and the configurations."""
    lines = ["| problem | NFE ≤ | ours (best) | diffusers (best) | ratio | goal ≤ 1.0 | ours: fitted schedule the rule picks | its ratio |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for name, prob in results["problems"].items():
        for row in prob["rows"]:
            lines.append(
                f"| {PROBLEM_TITLES.get(name, name)} | {row['budget']} | {row['ours']:.2e} | {row['diffusers']:.2e} "
                f"| {row['ratio']:.2f} | {verdict(row['ratio'])} | {row['rule']:.2e} | {row['rule_ratio']:.2f} |")
    return "\n".join(lines)


def render_config_table(results: dict) -> str:
    lines = ["| problem | NFE ≤ | ours: configuration (steps, NFE) | diffusers: configuration (steps, NFE) |",
             "|---|---:|---|---|"]
    for name, prob in results["problems"].items():
        for row in prob["rows"]:
            lines.append(
                f"| {PROBLEM_TITLES.get(name, name)} | {row['budget']} | {_cell(row['ours_config'])} "
                f"({row['ours_steps']}, {row['ours_nfe']}) | {_cell(row['diffusers_config'])} "
                f"({row['diffusers_steps']}, {row['diffusers_nfe']}) |")
    return "\n".join(lines)


def render_problems(results: dict) -> str:
    lines = []
    for name, prob in results["problems"].items():
        title = PROBLEM_TITLES.get(name, name)
        description = prob["description"].removeprefix(f"{title}: ")
        peers = (f" diffusers' side taken from the run of {prob['peers_from']} (same diffusers version, "
                 "configurations and samples; `--ours-only`)." if prob.get("peers_from") else "")
        lines.append(f"* **{title}**: {description}; {prob['n_samples']} "
                     f"samples; reference: {prob['reference']}.{peers}")
    return "\n".join(lines)


def render_details(results: dict) -> str:
    """results_samplers.md: per problem and budget, the best configurations of each side."""
    out = ["# Sampler accuracy at a fixed NFE: ours against diffusers at its best", "",
           f"Written by `benchmarks/run_all.py` from `benchmarks/results_samplers.json`. {machine_line(results)}",
           "", f"Noise process: DDPM's linear betas; sigma range [{results['sigma_min']:.4f}, "
           f"{results['sigma_max']:.1f}] (sigma_0 ... sigma_999); {results['n_diffusers_configs']} diffusers "
           "configurations (scheduler x variant x spacing). Error: RMSE against the reference.", "",
           render_problems(results), ""]
    for name, prob in results["problems"].items():
        out += [f"## {PROBLEM_TITLES.get(name, name)}", "",
                f"{prob['seconds']:.0f} s. Configurations left out because they do not start at sigma_max: "
                f"{len(prob['skipped'])}.", ""]
        for budget in results["budgets"]:
            b = str(budget)
            out += [f"### NFE ≤ {budget} ({prob['n_compared'][b]} diffusers configurations compared)", "",
                    "| rank | ours | error | diffusers | error |", "|---:|---|---:|---|---:|"]
            ours, theirs = prob["all_ours"][b], prob["all_diffusers"][b]
            for k in range(max(len(ours), len(theirs))):
                o = ours[k] if k < len(ours) else None
                d = theirs[k] if k < len(theirs) else None
                out.append(f"| {k + 1} | {_cell(o[1]) if o else ''} | {f'{o[0]:.2e}' if o else ''} | "
                           f"{_cell(d[1]) if d else ''} | {f'{d[0]:.2e}' if d else ''} |")
            out.append("")
    return "\n".join(out) + "\n"


def render_results_md(results: dict, train_report: str | None) -> str:
    out = ["# Benchmark results", "",
           "Written by `benchmarks/run_all.py` (`make bench`) from the benchmark scripts' outputs; nothing "
           "here is typed by hand.", "",
           "## 1. PF-ODE sampler accuracy at a fixed number of network evaluations", "",
           f"`benchmarks/bench_samplers.py`; every configuration of both sides in "
           f"[results_samplers.md](results_samplers.md). {machine_line(results)}", "",
           render_problems(results), "",
           "Ratio = our best error / diffusers' best error over every scheduler x spacing it offers "
           f"({results['n_diffusers_configs']} configurations). \"Ours (best)\" is selected the same way as "
           "diffusers' (the best of our fixed menu of solvers x general schedules, plus the fitted "
           "schedules); the last two columns show the single configuration our fitting rule picks from "
           "pilot noise alone, without looking at the benchmark's samples or reference.", "",
           render_summary_table(results), "", render_config_table(results), ""]
    if train_report:
        body = train_report.split("\n", 1)[1] if train_report.startswith("# ") else train_report
        out += ["## 2. Training throughput and memory", "",
                "`benchmarks/bench_train.py` (its own report, `results_train.md`, as written; run "
                "`benchmarks/run_all.py --train` to regenerate it).", "",
                body.replace("\n## ", "\n### ").strip(), ""]
    return "\n".join(out) + "\n"


def render_book_summary(results: dict) -> str:
    return ("<!-- generated by `make bench` (benchmarks/run_all.py) from benchmarks/results_samplers.json; "
            "do not edit by hand -->\n"
            f"Measured by `benchmarks/run_all.py` on {results['date']} ({results['cpu']}, one thread).\n\n"
            + render_summary_table(results) + "\n\n" + render_config_table(results) + "\n")


def plot_curves(results: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, prob in results["problems"].items():
        rows = prob["rows"]
        nfe = [r["budget"] for r in rows]
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        ax.loglog(nfe, [r["diffusers"] for r in rows], "s-", color="tab:gray", label="diffusers, best of all")
        ax.loglog(nfe, [r["ours"] for r in rows], "o-", color="tab:blue", label="ours, best")
        ax.loglog(nfe, [r["rule"] for r in rows], "o--", color="tab:orange",
                  label="ours, fitted schedule (rule's pick)")
        for label, key in (("Karras rho=7", "karras"), ("log-linear", "loglinear")):
            series = prob.get("fixed", {}).get(key)
            if series:
                ax.loglog(nfe, series, ":", color="tab:green" if key == "karras" else "tab:purple",
                          label=f"ours, 3M on {label}")
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_ylabel("RMSE to the reference")
        ax.set_title(PROBLEM_TITLES.get(name, name))
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write RESULTS.md and the book's figures.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: few samples, three peers, two budgets; writes under _build/bench-quick/")
    parser.add_argument("--train", action="store_true", help="also re-run bench_train.py")
    parser.add_argument("--problems", default="ring,mixture,digits",
                        help="the problems to run; the others keep their last results from the JSON file")
    parser.add_argument("--ours-only", action="store_true",
                        help="re-run only our side of --problems; diffusers' side comes from results_samplers.json "
                             "(checked to be the same diffusers version, configurations and samples)")
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

    json_path = bench_dir / "results_samplers.json"
    previous = json.loads(json_path.read_text()) if json_path.exists() else None
    if args.render_only:
        if previous is None:
            parser.error(f"--render-only needs {json_path}; run the benchmark first")
        results = previous
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        t0 = time.time()
        names = [p for p in args.problems.split(",") if p]
        if args.ours_only and previous is None:
            parser.error(f"--ours-only needs {json_path}; run the benchmark in full first")
        results = bench_samplers.run(names, (10, 20) if args.quick else bench_samplers.BUDGETS, quick=args.quick,
                                     earlier=previous if args.ours_only else None)
        if args.train and not args.quick:
            subprocess.run([sys.executable, str(HERE / "bench_train.py")], check=True)
        results.update(seconds=time.time() - t0, date=datetime.date.today().isoformat(), cpu=cpu_name(),
                       cpu_count=os.cpu_count(), load_before=load, python=platform.python_version())
        for name in results["problems"]:
            results["problems"][name].update(date=results["date"], cpu=results["cpu"])
        previous = json.loads(json_path.read_text()) if json_path.exists() else None  # read late: runs may overlap
        if previous and previous.get("quick") == results["quick"]:  # keep the problems not re-run
            kept = {k: v for k, v in previous["problems"].items() if k not in results["problems"]}
            results["problems"] = {k: {**kept, **results["problems"]}[k]
                                   for k in bench_samplers.PROBLEMS if k in {**kept, **results["problems"]}}
            results["seconds"] += sum(v["seconds"] for v in kept.values())
        json_path.write_text(json.dumps(results, indent=1) + "\n")
    (bench_dir / "results_samplers.md").write_text(render_details(results))
    train = HERE / "results_train.md"
    (bench_dir / "RESULTS.md").write_text(render_results_md(results, train.read_text() if train.exists() else None))
    book_table.parent.mkdir(parents=True, exist_ok=True)
    book_table.write_text(render_book_summary(results))
    figures = plot_curves(results, fig_dir)
    print(f"wrote {bench_dir / 'RESULTS.md'}, {book_table}, {len(figures)} figures in {fig_dir} "
          f"({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
