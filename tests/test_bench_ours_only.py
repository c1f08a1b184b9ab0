"""``run_all.py --ours-only``: diffusers' side of a problem is reused from an earlier run only when
that run was the same computation (diffusers version, configurations, budgets, samples)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_samplers  # noqa: E402

BUDGETS = (10, 20)


def earlier_run(**changes):
    peers = {"10": [[0.3, "DEIS (solver_order=3, trailing)", 10, 10], [0.4, "DDIM (trailing)", 10, 10]],
             "20": [[0.1, "UniPC (solver_order=3, solver_type=bh2, trailing)", 20, 20]]}
    record = dict(n_samples=1000, all_diffusers=peers, skipped=["PNDM (PRK+PLMS) (leading)"],
                  n_compared={"10": 92, "20": 94}, date="2026-11-30")
    run = dict(diffusers="0.42.1", n_diffusers_configs=180, quick=False, problems={"mixture": record})
    run.update(changes)
    return run


def current():
    return dict(diffusers="0.42.1", n_diffusers_configs=180, quick=False)


def test_earlier_peers_are_reused_as_recorded():
    theirs, skipped, n_compared, peers_from = bench_samplers._earlier_peers(
        earlier_run(), "mixture", current(), BUDGETS, 1000)
    assert min(theirs[10]) == (0.3, "DEIS (solver_order=3, trailing)", 10, 10)
    assert theirs[20] == [(0.1, "UniPC (solver_order=3, solver_type=bh2, trailing)", 20, 20)]
    assert skipped == ["PNDM (PRK+PLMS) (leading)"] and n_compared == {"10": 92, "20": 94}
    assert peers_from == "2026-11-30"


@pytest.mark.parametrize("changes, n, budgets", [
    (dict(diffusers="0.41.0"), 1000, BUDGETS), (dict(n_diffusers_configs=179), 1000, BUDGETS),
    (dict(quick=True), 1000, BUDGETS), ({}, 64, BUDGETS), ({}, 1000, (10, 20, 50)),
    (dict(problems={}), 1000, BUDGETS),
])
def test_earlier_peers_refused_when_not_the_same_computation(changes, n, budgets):
    with pytest.raises(ValueError, match="--ours-only: no earlier diffusers results for 'mixture'"):
        bench_samplers._earlier_peers(earlier_run(**changes), "mixture", current(), budgets, n)
