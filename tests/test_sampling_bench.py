"""The sampler benchmark's machinery: the fitting rule and its cost (``diffnotes.sampling``), the
intervals and the fresh problem (``benchmarks/bench_samplers.py``), and the driver's rendering
(``benchmarks/run_all.py``) on a small synthetic results dict. Timings are not tested here."""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from diffnotes import sampling as S
from diffnotes.data import gmm_ring

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("diffusers")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_samplers

    return bench_samplers


# -- the fitting rule and its cost ----------------------------------------------------------
def ring_denoiser():
    gmm = gmm_ring()
    return lambda x, s: gmm.denoiser(x.double(), torch.as_tensor(s, dtype=torch.float64).clamp(min=0.01))


TINY = S.FitRule("tiny", pilot_closed_form=16, pilot_network=4, reference_steps=20, shape_evals=12, refine_evals=4)


def test_fit_schedule_counts_every_model_evaluation():
    fit = S.fit_schedule(ring_denoiser(), (2,), 5, TINY, sigma_min=0.01, sigma_max=80.0, seed=3, closed_form=True)
    assert fit["solver"] == "unipc_3" and len(fit["sigmas"]) == 6 and fit["sigmas"][-1] == 0.0
    assert fit["n_pilot"] == 16 and fit["rule_hash"] == TINY.digest() and fit["cpu_seconds"] > 0
    # every solve of 5 levels costs 5 calls on the 16 pilot samples; the reference 20 calls
    solves = (fit["calls"] - 20) / 5
    assert solves == int(solves) and 12 <= solves <= 12 + 4 + 1
    assert fit["evaluations"] == 16 * fit["calls"]


def test_fit_schedule_is_reproducible_and_depends_on_the_pilot_seed():
    a = S.fit_schedule(ring_denoiser(), (2,), 4, TINY, sigma_min=0.01, sigma_max=80.0, seed=3, closed_form=True)
    b = S.fit_schedule(ring_denoiser(), (2,), 4, TINY, sigma_min=0.01, sigma_max=80.0, seed=3, closed_form=True)
    c = S.fit_schedule(ring_denoiser(), (2,), 4, TINY, sigma_min=0.01, sigma_max=80.0, seed=4, closed_form=True)
    assert a["sigmas"] == b["sigmas"] and a["pilot_rmse"] != c["pilot_rmse"]


def test_rule_digest_changes_with_any_setting():
    assert TINY.digest() == S.FitRule(**vars(TINY)).digest()
    assert TINY.digest() != S.FitRule(**{**vars(TINY), "refine_evals": 5}).digest()
    assert S.RULE_FULL.pilot(True) == 4096 and S.RULE_FULL.pilot(False) == 32


def test_rule_of_record_is_frozen(bench):
    """Changing the fitting rule (its settings or the code it runs) must be a visible act: update
    benchmarks/fit_rule.lock in the same commit, and the fresh problem's rows say so."""
    assert bench.LOCK.read_text().split()[0] == bench.RULE.digest()


# -- intervals and the fresh problem ------------------------------------------------------
def test_ratio_interval_exact_cases(bench):
    g = torch.Generator().manual_seed(0)
    sq = torch.rand(3 * 50, dtype=torch.float64, generator=g) + 0.1
    point, lo, hi, draws = bench.ratio_interval(4 * sq, sq, 3)
    assert point == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    assert draws == pytest.approx([2.0] * 3)
    point, lo, hi, draws = bench.ratio_interval(sq.flip(0), sq, 3, n_boot=500)
    assert lo < point < hi and lo < 1 < hi


def test_fresh_problem_depends_on_its_seed_only(bench):
    a, b, c = bench.random_mixture(5), bench.random_mixture(5), bench.random_mixture(6)
    assert torch.equal(a.means, b.means) and torch.equal(a.covs, b.covs)
    assert a.means.shape != c.means.shape or not torch.equal(a.means, c.means)
    for seed in range(20):
        m = bench.random_mixture(seed)
        k, d = m.means.shape
        assert 2 <= d <= 12 and 2 <= k <= 10 and float(m.weights.min()) > 0
        lam = torch.linalg.eigvalsh(m.covs)
        assert float(lam.min()) > 10**-3.6 and float(lam.max()) < 10**-0.4


def test_date_seed(run_all):
    assert run_all.date_seed(datetime.date(2026, 12, 7)) == 20261207


# -- rendering -------------------------------------------------------------------------------
def fake_results():
    def ratio(p, lo, hi):
        return [p, lo, hi, [p, p, p]]

    def entry(e, c="cfg | odd"):
        return dict(error=e, config=c, steps=10, nfe=10)

    general = [dict(budget=b, ours=entry(o), diffusers=entry(d), kdiffusion=entry(k),
                    n_compared=dict(ours=40, diffusers=93, kdiffusion=33),
                    vs_diffusers=ratio(*rd), vs_kdiffusion=ratio(*rk))
               for b, o, d, k, rd, rk in ((10, 1e-2, 2e-2, 1.5e-2, (0.5, 0.4, 0.6), (0.67, 0.5, 0.8)),
                                          (20, 3e-3, 3e-3, 3e-3, (1.0, 0.9, 1.1), (1.0, 0.95, 1.05)))]
    pilot = lambda p, lo, hi: dict(  # noqa: E731
        seed=7, solver="unipc_3", error=p * 1e-2, per_draw=[1e-2] * 3, evaluations=200000, cpu_seconds=1.5,
        diffusers_same_levels=entry(p * 1e-2), kdiffusion_same_levels=entry(p * 1e-2),
        vs_peer_general=ratio(p, lo, hi), vs_diffusers_same_levels=ratio(1.0, 0.99, 1.01),
        vs_kdiffusion_same_levels=ratio(1.0, 0.98, 1.02), vs_ours_general=ratio(p, lo, hi))
    fitted = [dict(budget=10, pilots=[pilot(0.5, 0.4, 0.6), pilot(0.55, 0.45, 0.7), pilot(0.6, 0.5, 0.9)],
                   median_error=5.5e-3, peer_general=entry(1.5e-2), ours_general=entry(1e-2), equivalent_nfe=15.0,
                   reduction=0.45, break_even=40000.0, fit_evaluations=200000, fit_cpu_seconds=1.5,
                   eval_evaluations=10000),
              dict(budget=20, pilots=[pilot(1.2, 1.1, 1.3)] * 3, median_error=4e-3, peer_general=entry(3e-3),
                   ours_general=entry(3e-3), equivalent_nfe=None, reduction=-0.3, break_even=None,
                   fit_evaluations=300000, fit_cpu_seconds=2.0, eval_evaluations=20000)]
    top = {"ours/10": [[1e-2, "ours-a", 10, 10, [1e-2] * 3]], "diffusers/10": [[2e-2, "peer-a", 10, 10, [2e-2] * 3]]}
    return dict(
        budgets=[10, 20], sigma_min=0.01, sigma_max=157.4, torch="2.x", diffusers="0.42", kdiffusion="0.1.1",
        draws=3, pilot_seeds=[7, 8, 9], fresh_seed=20261207, seconds=90.0, date="2026-12-01", cpu="Test CPU",
        cpu_count=2, load_before=1.0, python="3.11",
        rule=dict(name="cheap", digest="abc", rule_hash="abc", frozen_hash="abc", frozen=True, of_record=True,
                  settings=dict(solvers=["unipc_3"], pilot_closed_form=512, pilot_network=24, reference_steps=100,
                                shape_evals=16, refine_evals=16)),
        problems={"ring": dict(description="2-D ring", n_samples=64, draws=3, reference="DOP853", general=general,
                               fitted=fitted, seconds=3.0, skipped=["a"], top=top, model_key="k",
                               fixed={"karras": [0.1, 0.05], "loglinear": [0.05, 0.01]})})


def test_a_cell_is_met_only_when_its_interval_is_below_the_goal(run_all):
    assert run_all.verdict(0.5, 0.99) == "met"
    assert run_all.verdict(0.5, 1.01) == "undecided"
    assert run_all.verdict(1.01, 1.2) == "not met"


def test_general_table_states_intervals_and_verdicts(run_all):
    table = run_all.render_general_table(fake_results()).splitlines()
    assert len(table) == 4 and table[0].count("|") == table[2].count("|")
    assert table[2] == ("| 2-D ring | 10 | 1.00e-02 | 2.00e-02 | 0.50 [0.40, 0.60] | 1.50e-02 | "
                        "0.67 [0.50, 0.80] | met |")
    assert table[3].endswith("| undecided |")
    assert run_all.verdict(0.9999, 1.0002) == "tie (within 0.1%)" and run_all.worst("met", "undecided") == "undecided"


def test_fitted_table_uses_the_union_of_pilot_intervals(run_all):
    table = run_all.render_fitted_table(fake_results()).splitlines()
    assert "| 0.55 [0.40, 0.90] | met |" in table[2]
    assert "| 1.20 [1.10, 1.30] | not met |" in table[3]


def test_cost_table_and_break_even(run_all):
    table = run_all.render_cost_table(fake_results()).splitlines()
    assert table[2] == "| 2-D ring | 10 | 200,000 | 1.5 | 10,000 | 45% | 15 | 40,000 |"
    assert "never (no gain)" in table[3]


def test_results_md_has_machine_rule_tables_and_train_report(run_all):
    text = run_all.render_results_md(fake_results(), "# Training\n\n## Throughput\n\n| a | b |\n")
    assert "2026-12-01, Test CPU (2 logical CPUs" in text and "k-diffusion 0.1.1" in text
    assert "cfg \\| odd" in text  # '|' inside a cell is escaped
    assert "digest `abc`, matches the frozen digest" in text
    assert "### Throughput" in text and "# Training" not in text
    assert "The fresh problem was not run." in text


def test_details_list_every_side_per_budget(run_all):
    text = run_all.render_details(fake_results())
    assert "| 1 | peer-a | 10 | 10 | 2.00e-02 | 2.00e-02, 2.00e-02, 2.00e-02 |" in text


def test_figures_are_drawn_from_the_results_and_the_fitted_schedules(run_all, tmp_path):
    results = fake_results()
    paths = run_all.plot_curves(results, tmp_path)
    assert [p.name for p in paths] == ["ring.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    store = {f"ring/k/{b}/{s}/cheap/abc": dict(sigmas=[157.4, 10.0, 1.0, 0.1, 0.0]) for b in (10, 20) for s in (7, 8)}
    path = run_all.plot_schedules(results, store, tmp_path)
    assert path.name == "schedules.png" and path.stat().st_size > 5000


def test_committed_schedules_carry_the_rule_digest():
    path = ROOT / "benchmarks" / "fitted_schedules.json"
    if not path.exists():
        pytest.skip("no fitted schedules committed yet (written by make bench)")
    store = json.loads(path.read_text())
    for key, fit in store.items():
        assert key.endswith(fit["rule_hash"]) and fit["sigmas"][-1] == 0.0
        assert fit["evaluations"] > 0 and fit["cpu_seconds"] > 0
