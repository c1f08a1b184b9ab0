"""The committed fitted schedules are what the benchmark uses: ``fit_all`` reuses a stored fit
only for the same problem, model, budget, pilot seed and rule digest, and fits again otherwise;
the fit sees the model and its own pilot noise, never the benchmark's noise or reference.
(The earlier ``--ours-only`` reuse of diffusers' side is gone: every run now re-runs every peer.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_samplers as B  # noqa: E402
from diffnotes import sampling as S  # noqa: E402

TINY = S.FitRule("tiny", pilot_closed_form=8, pilot_network=4, reference_steps=10, shape_evals=12, refine_evals=0)


class Spy:
    def __init__(self, problem):
        self.problem, self.seen = problem, []

    def __call__(self, x, sigma):
        self.seen.append(x.clone())
        return self.problem.denoiser(x, sigma)


@pytest.fixture(scope="module")
def ring():
    return B.problem_ring(16, draws=2)


def test_fit_all_reuses_only_the_same_computation(ring):
    store = {}
    fits = B.fit_all(ring, (4,), TINY, (7,), store, log=lambda *a: None)
    (key,) = store
    assert key.endswith(TINY.digest()) and fits[(4, 7)] is store[key]
    store[key] = dict(store[key], sigmas=[157.0, 1.0, 0.5, 0.1, 0.0])  # a stored fit is used as stored
    assert B.fit_all(ring, (4,), TINY, (7,), store, log=lambda *a: None)[(4, 7)]["sigmas"][1] == 1.0
    other = S.FitRule(**{**vars(TINY), "shape_evals": 13})
    B.fit_all(ring, (4,), other, (7,), store, log=lambda *a: None)
    B.fit_all(ring, (4,), TINY, (8,), store, log=lambda *a: None)
    assert len(store) == 3


def test_the_fit_never_sees_the_benchmark_noise(ring):
    spy = Spy(ring)
    problem = B.Problem(**{**vars(ring), "denoiser": spy})
    B.fit_all(problem, (4,), TINY, (7,), {}, log=lambda *a: None)
    pilots = torch.cat([x for x in spy.seen if x.shape[0] == TINY.pilot_closed_form])
    assert len(pilots) == sum(x.shape[0] for x in spy.seen)  # every call is on the pilot batch
    assert float(torch.cdist(spy.seen[0], ring.x_T).min()) > 0  # the pilot noise is not the benchmark's
