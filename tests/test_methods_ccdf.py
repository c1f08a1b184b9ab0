"""CCDF (Chung et al. 2022): the truncated chain, the forward jump, the three inverse tasks and
the contraction of coupled chains.

With Gaussian data x0 ~ N(0, v I) and the exact denoiser D = v / (v + sigma^2) x, two chains
driven by the same noise differ, after one ancestral step from sigma to sigma', by exactly
(v + sigma'^2) / (v + sigma^2) times their difference before it: the per-step factor that the
proof ``ccdf_contraction`` derives. The test checks the engine against that number.
"""

import math

import pytest
import torch

from diffnotes.degradations import block_lowpass
from diffnotes.methods.ccdf import (TASKS, ccdf_start, coupled_distances, make_task,
                                    smooth_fill, truncated_sigmas)
from diffnotes.parameterization import append_dims
from diffnotes.sampling import sigma_schedule
from diffnotes.theory.proofs.inverse_proofs import gaussian_step_factor

V = 0.25


def gaussian_denoiser(x, sigma):
    s2 = append_dims(torch.as_tensor(sigma, dtype=x.dtype), x) ** 2
    return V / (V + s2) * x


def images(n=4, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return math.sqrt(V) * torch.randn(n, c, size, size, generator=g, dtype=torch.float64)


def test_truncated_sigmas_are_the_tail_of_the_full_chain():
    full = sigma_schedule("karras", 20)
    assert torch.equal(truncated_sigmas(20, 20), full)
    tail = truncated_sigmas(20, 5)
    assert torch.equal(tail, full[15:]) and tail.numel() == 6 and tail[-1] == 0
    with pytest.raises(ValueError, match="1 <= n_steps <= n_total"):
        truncated_sigmas(10, 11)


def test_forward_jump_adds_the_missing_variance():
    x = torch.zeros(2000, 1, 4, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    out = ccdf_start(x, 1.0, g, sigma_estimate=0.6)
    assert abs(out.std().item() - 0.8) < 0.01  # sqrt(1 - 0.36)
    with pytest.raises(ValueError, match="sigma0 >= sigma_estimate"):
        ccdf_start(x, 0.5, g, sigma_estimate=0.6)


def test_tasks_measure_estimate_and_keep_consistency():
    x = images(seed=1)
    sr = make_task("sr", x, 0, factor=4)
    assert sr.measurement.shape == (4, 3, 4, 4)
    assert torch.allclose(block_lowpass(sr.reference, 4), block_lowpass(x, 4))
    inp = make_task("inpaint", x, 0)
    observed = inp.mask.bool()
    assert torch.equal(inp.estimate[observed], x[observed]) and (~observed).any()
    den = make_task("denoise", x, 0, noise_std=0.3)
    assert abs((den.measurement - x).std().item() - 0.3) < 0.02 and den.refine() is None
    with pytest.raises(ValueError, match="unknown task 'deblur'; valid: denoise, sr, inpaint"):
        make_task("deblur", x, 0)
    assert TASKS == ("denoise", "sr", "inpaint")


@pytest.mark.parametrize("name", ["sr", "inpaint"])
def test_data_consistency_holds_at_the_end(name):
    x = images(n=3, seed=2)
    task = make_task(name, x, 0)
    out = task.run(gaussian_denoiser, truncated_sigmas(12, 5), seed=3)
    seen = block_lowpass(out, 4) if name == "sr" else task.mask * out
    target = block_lowpass(x, 4) if name == "sr" else task.measurement
    assert (seen - target).abs().max() < 1e-12


def test_coupled_gaussian_chains_contract_by_the_proved_factor():
    x = images(n=6, seed=4)
    task = make_task("denoise", x, 0, noise_std=0.5)
    sigmas = sigma_schedule("karras", 8, 0.02, 0.5)
    other = task.estimate + 0.3 * images(n=6, seed=5)
    d = coupled_distances(task, gaussian_denoiser, sigmas, other, seed=7)
    s = sigmas.tolist()
    assert d.shape == (len(s), 6)
    for i in range(len(s) - 1):  # each step: (v + sigma'^2) / (v + sigma^2), noise cancels
        want = gaussian_step_factor(V, s[i], s[i + 1])
        assert torch.allclose(d[i + 1] / d[i], torch.full((6,), want, dtype=torch.float64),
                              rtol=1e-9)
    # the product telescopes to v / (v + sigma_0^2)
    assert torch.allclose(d[-1] / d[0], torch.full((6,), V / (V + s[0] ** 2),
                                                   dtype=torch.float64), rtol=1e-9)


def test_smooth_fill_keeps_observed_pixels_and_fills_constants_exactly():
    const = torch.full((2, 1, 16, 16), -0.4, dtype=torch.float64)
    task = make_task("inpaint", const, 0)
    assert torch.allclose(task.estimate, const)  # a constant image is filled exactly
    ramp = torch.linspace(-1, 1, 16, dtype=torch.float64).expand(1, 1, 16, 16).contiguous()
    filled = smooth_fill(ramp * make_task("inpaint", ramp, 0).mask,
                         make_task("inpaint", ramp, 0).mask)
    # a linear ramp is harmonic: the fill should come close to it, much closer than a mean fill
    hole = make_task("inpaint", ramp, 0).mask == 0
    assert (filled - ramp)[hole].abs().max() < 0.2
    assert filled[hole].min() >= -1 and filled[hole].max() <= 1
