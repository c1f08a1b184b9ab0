"""The benchmark driver's rendering (``benchmarks/run_all.py``): tables and figures from a results
dict, checked on a small synthetic one. Timings are not tested here: speed targets live in the
benchmarks themselves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_results():
    rows = [dict(budget=b, ours=e, ours_config="unipc_3, fitted (sigma_end 0.03, warp -1.20)", ours_steps=b,
                 ours_nfe=b, diffusers=d, diffusers_config="UniPC (solver_order=3, Karras | odd)",
                 diffusers_steps=b, diffusers_nfe=b, ratio=e / d, rule=r, rule_config="x", rule_ratio=r / d)
            for b, e, d, r in ((10, 1e-2, 4e-2, 2e-2), (20, 3e-3, 2e-3, 3e-3))]
    return dict(
        budgets=[10, 20], sigma_min=0.01, sigma_max=157.4, n_diffusers_configs=3, torch="2.x", diffusers="0.42",
        seconds=90.0, date="2026-12-01", cpu="Test CPU", cpu_count=2, load_before=1.0, python="3.11",
        problems={"ring": dict(
            description="2-D ring", n_samples=64, reference="DOP853", rows=rows, seconds=3.0, skipped=["a"],
            all_ours={"10": [[1e-2, "ours-a", 10, 10]], "20": [[3e-3, "ours-a", 20, 20]]},
            all_diffusers={"10": [[4e-2, "peer-a", 10, 10], [5e-2, "peer-b", 10, 10]], "20": [[2e-3, "peer-a", 20, 20]]},
            n_compared={"10": 2, "20": 1}, fixed={"karras": [0.1, 0.05], "loglinear": [0.05, 0.01]})})


def test_summary_table_states_ratios_and_verdicts(run_all):
    table = run_all.render_summary_table(fake_results()).splitlines()
    assert len(table) == 4 and table[0].count("|") == table[2].count("|")
    assert "| 2-D ring | 10 | 1.00e-02 | 4.00e-02 | 0.25 | met | 2.00e-02 | 0.50 |" == table[2]
    assert "| 1.50 | not met |" in table[3]  # a loss is reported as measured


def test_results_md_has_machine_tables_and_train_report(run_all):
    text = run_all.render_results_md(fake_results(), "# Training\n\n## Throughput\n\n| a | b |\n")
    assert "2026-12-01, Test CPU (2 logical CPUs" in text and "diffusers 0.42" in text
    assert "UniPC (solver_order=3, Karras \\| odd)" in text  # '|' inside a cell is escaped
    assert "### Throughput" in text and "# Training" not in text
    assert run_all.render_results_md(fake_results(), None).count("## ") == 1


def test_details_list_both_sides_per_budget(run_all):
    text = run_all.render_details(fake_results())
    assert "### NFE ≤ 10 (2 diffusers configurations compared)" in text
    assert "| 2 |  |  | peer-b | 5.00e-02 |" in text


def test_curves_are_written(run_all, tmp_path):
    paths = run_all.plot_curves(fake_results(), tmp_path)
    assert [p.name for p in paths] == ["ring.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
