"""The k-diffusion peer of the sampler benchmark (``benchmarks/kdiffusion_peer.py``).

k-diffusion is a benchmark-only dependency (``requirements-bench.txt``, installed by
``make bench``); ``make test`` does not install it, so these tests skip without it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("k_diffusion") is None:
    pytest.skip("k-diffusion is not installed: it is a benchmark-only dependency "
                "(pip install --no-deps -r requirements-bench.txt -c constraints.txt, or make bench)",
                allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kdiffusion_peer as P  # noqa: E402
from diffnotes.data import gmm_ring  # noqa: E402
from diffnotes.sampling import sample, sigma_schedule  # noqa: E402

SIGMA_MIN, SIGMA_MAX = 0.01, 80.0


@pytest.fixture(scope="module")
def K():
    return P.load_sampling()


def denoiser():
    gmm = gmm_ring()
    return lambda x, s: gmm.denoiser(x.double(), torch.as_tensor(s, dtype=torch.float64).clamp(min=SIGMA_MIN))


def x_T(n=32):
    return SIGMA_MAX * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_sampling_module_loads_without_the_training_stack(K):
    assert K.__name__ == f"{P.PACKAGE}.sampling" and hasattr(K, "sample_dpm_adaptive")
    assert "k_diffusion" not in sys.modules  # the package's __init__ (CLIP, torchvision, ...) never ran
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules  # the stub is gone again


def test_same_algorithm_same_samples(K):
    """k-diffusion's DPM++(2M) and Euler on our levels give our samples."""
    sigmas = sigma_schedule("loglinear", 12, SIGMA_MIN, SIGMA_MAX)
    for theirs, ours in (("DPM++ 2M", "dpmpp_2m"), ("Euler", "euler")):
        out, nfe = P.run_sampler(K, theirs, denoiser(), x_T(), sigmas)
        assert nfe == 12
        assert torch.allclose(out, sample(denoiser(), x_T(), sigmas, ours), atol=1e-8)


@pytest.mark.parametrize("name", list(P.SAMPLERS))
def test_every_sampler_is_deterministic_and_counted(K, name):
    sigmas = K.get_sigmas_karras(6, SIGMA_MIN, SIGMA_MAX)
    a, nfe = P.run_sampler(K, name, denoiser(), x_T(), sigmas)
    b, _ = P.run_sampler(K, name, denoiser(), x_T(), sigmas)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert nfe == (6 if name in P.ONE_CALL_PER_LEVEL else 11)


def test_dpm_fast_and_adaptive_end_with_the_denoising_step_within_budget(K):
    out, nfe = P.run_dpm_fast(K, denoiser(), x_T(), 10, SIGMA_MIN, SIGMA_MAX)
    assert nfe == 10 and torch.isfinite(out).all()
    found = P.run_dpm_adaptive(K, denoiser(), x_T(), 30, SIGMA_MIN, SIGMA_MAX, order=3)
    assert found is not None and found[1] <= 30
    # the last call is D(x; sigma_0): the output is a denoised point, not a noisy state
    assert torch.allclose(found[0], denoiser()(found[0], SIGMA_MIN), atol=0.05)
