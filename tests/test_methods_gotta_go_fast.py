"""The adaptive SDE solver of Gotta Go Fast (diffnotes.methods.gotta_go_fast)."""

from __future__ import annotations

import math

import pytest
import torch

from diffnotes import sampling

from diffnotes import constants as K
from diffnotes.data import GaussianMixture
from diffnotes.methods import gotta_go_fast as ggf
from diffnotes.methods import score_sde


def _gaussian(dim: int, std: float = 0.5) -> GaussianMixture:
    return GaussianMixture([1.0], torch.zeros(1, dim), [std**2])


def test_mixed_tolerance_takes_the_larger_of_absolute_and_relative():
    y_new = torch.tensor([[0.0, 1.0, -3.0]])
    y_prev = torch.tensor([[0.0, -2.0, 1.0]])
    delta = ggf.mixed_tolerance(y_new, y_prev, eps_abs=0.05, eps_rel=0.1)
    assert torch.allclose(delta, torch.tensor([[0.05, 0.2, 0.3]]))
    with pytest.raises(ValueError, match="eps_abs"):
        ggf.mixed_tolerance(y_new, y_prev, eps_abs=0.0, eps_rel=0.0)


def test_scaled_l2_is_the_root_mean_square_and_linf_the_largest_ratio():
    diff = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    delta = torch.ones_like(diff)
    assert torch.allclose(ggf.scaled_error(diff, delta), torch.tensor([5 / math.sqrt(2), 1 / math.sqrt(2)]))
    assert torch.allclose(ggf.scaled_error(diff, delta, "linf"), torch.tensor([4.0, 1.0]))
    with pytest.raises(ValueError, match="valid: l2, linf"):
        ggf.scaled_error(diff, delta, "l1")


def test_scaled_error_is_invariant_to_units_and_to_repeating_coordinates():
    gen = torch.Generator().manual_seed(0)
    y_em, y_heun, y_prev = (torch.randn(4, 16, generator=gen, dtype=torch.float64) for _ in range(3))

    def error(c, reps, norm="l2"):
        parts = [v.repeat(1, reps) * c for v in (y_em, y_heun, y_prev)]
        delta = ggf.mixed_tolerance(parts[0], parts[2], eps_abs=0.01 * c, eps_rel=0.05)
        return ggf.scaled_error(parts[1] - parts[0], delta, norm)

    base = error(1.0, 1)
    assert torch.allclose(error(1000.0, 1), base)  # the data's units do not matter
    assert torch.allclose(error(1.0, 8), base)  # nor does the dimension, for the same error pattern
    # the plain l2 norm would grow by sqrt(8); the scaled one must not
    assert not torch.allclose(base * math.sqrt(8), base)


def test_linf_error_grows_with_dimension_for_iid_errors_l2_does_not():
    gen = torch.Generator().manual_seed(1)
    small = torch.randn(2000, 4, generator=gen)
    large = torch.randn(2000, 1024, generator=gen)
    ones_s, ones_l = torch.ones_like(small), torch.ones_like(large)
    l2_s, l2_l = ggf.scaled_error(small, ones_s).mean(), ggf.scaled_error(large, ones_l).mean()
    inf_s, inf_l = ggf.scaled_error(small, ones_s, "linf").mean(), ggf.scaled_error(large, ones_l, "linf").mean()
    assert abs(l2_l - 1) < 0.02 and abs(l2_s - 1) < 0.1
    assert inf_l > 2 * inf_s  # about sqrt(2 log d): 3.4 against 1.4


def test_step_size_controller():
    h = torch.tensor([0.1, 0.1, 0.1, 0.1])
    error = torch.tensor([1.0, 0.0, 4.0, 0.25])
    h_max = torch.tensor([1.0, 0.3, 1.0, 0.05])
    new = ggf.next_step_size(h, error, h_max)
    assert torch.allclose(new[0], torch.tensor(0.09))  # theta h at E = 1
    assert new[1] == 0.3  # zero error: as far as allowed
    assert torch.allclose(new[2], torch.tensor(0.09 * 4**-0.9))  # shrinks after a rejection
    assert new[3] == 0.05  # capped by the distance to the end
    with pytest.raises(ValueError, match="theta"):
        ggf.next_step_size(h, error, h_max, theta=1.5)


def test_controller_converges_to_its_fixed_point_on_a_power_law_error():
    # E(h) = C h^2: the fixed point E* = theta^(1/r), reached geometrically (slope 1 - 2r)
    h = torch.tensor([0.3], dtype=torch.float64)
    for _ in range(300):
        h = ggf.next_step_size(h, 50.0 * h**2, torch.ones(1, dtype=torch.float64))
    assert math.isclose(float(50.0 * h**2), K.GGF_THETA ** (1 / K.GGF_EXPONENT), rel_tol=1e-6)


@pytest.mark.parametrize("sde,params", [("vp", {}), ("ve", {"sigma_max": 10.0})])
def test_adaptive_sample_draws_the_right_gaussian_in_high_dimension(sde, params):
    std, dim, n = 0.5, 512, 300
    gauss = _gaussian(dim, std)
    gen = torch.Generator().manual_seed(0)
    x = score_sde.prior_sample(sde, (n, dim), gen, torch.float64, **params)
    counted = ggf.CountingDenoiser(gauss.denoiser)
    xs, stats = ggf.adaptive_sample(counted, sde, x, eps_abs=0.0078, eps_rel=0.05, generator=gen, **params)
    assert counted.nfe == stats.nfe == int(stats.nfe_per_sample.max())
    # one counter in the package: the sampler's calls are its NFE
    assert ggf.CountingDenoiser is sampling.CountingDenoiser
    assert counted.calls == counted.nfe
    # the adaptive sampler evaluates only the samples still moving: each sample's own count
    assert counted.evaluations == int(stats.nfe_per_sample.sum()) < n * counted.calls
    assert abs(xs.std().item() - std) < 0.01 * std
    assert xs.mean(0).abs().max().item() < 0.1
    assert (stats.accepted > 10).all() and stats.rejection_rate < 0.1  # the error concentrates
    ts = [t for t, _ in stats.trace]
    assert ts[0] == 1.0 and all(a > b for a, b in zip(ts, ts[1:]))


def test_rejections_bias_the_law_in_low_dimension():
    # A rejected step is retried with a fresh Brownian draw, so the accepted draws are selected by
    # the error estimate; in 2-D that selection is strong (about 40 % rejected) and widens the
    # samples.
    std, n = 0.5, 1500
    gauss = _gaussian(2, std)
    gen = torch.Generator().manual_seed(4)
    x = score_sde.prior_sample("vp", (n, 2), gen, torch.float64)
    xs, stats = ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=0.0078, eps_rel=0.05, generator=gen)
    assert stats.rejection_rate > 0.3
    with_rejections = xs.std().item()
    assert with_rejections > 1.15 * std
    # accepting every step removes most of the bias (what is left comes from step sizes that
    # depend on the same draws)
    gen = torch.Generator().manual_seed(4)
    x = score_sde.prior_sample("vp", (n, 2), gen, torch.float64)
    xs, stats = ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=0.0078, eps_rel=0.05, reject=False,
                                    generator=gen)
    assert stats.rejection_rate == 0
    assert xs.std().item() - std < 0.5 * (with_rejections - std)


def test_adaptive_sample_tighter_tolerance_costs_more_and_an_untrained_denoiser_fails():
    gauss = _gaussian(4)
    gen = torch.Generator().manual_seed(2)
    x = score_sde.prior_sample("vp", (500, 4), gen, torch.float64)
    _, loose = ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=0.0078, eps_rel=0.2, generator=gen)
    _, tight = ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=0.0078, eps_rel=0.02, generator=gen)
    assert tight.nfe > 1.5 * loose.nfe

    def zero(x_, sigma):  # D = 0: samples collapse to the origin
        return torch.zeros_like(x_)

    xs, _ = ggf.adaptive_sample(zero, "vp", x, eps_abs=0.0078, eps_rel=0.1, generator=gen)
    assert xs.std().item() < 0.1


def test_adaptive_sample_rejects_bad_input():
    gauss = _gaussian(2)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="h_init"):
        ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=0.01, eps_rel=0.1, h_init=2.0)
    with pytest.raises(ValueError, match="unknown SDE"):
        ggf.adaptive_sample(gauss.denoiser, "vq", x, eps_abs=0.01, eps_rel=0.1)
    with pytest.raises(RuntimeError, match="iterations"):
        ggf.adaptive_sample(gauss.denoiser, "vp", x, eps_abs=1e-9, eps_rel=1e-9, max_iters=5)


def test_sra1_is_exact_in_law_for_a_gaussian_and_counts_two_evaluations_per_step():
    std, dim, n = 0.5, 4, 6000
    gauss = _gaussian(dim, std)
    gen = torch.Generator().manual_seed(3)
    x = score_sde.prior_sample("vp", (n, dim), gen, torch.float64)
    counted = ggf.CountingDenoiser(gauss.denoiser)
    xs = ggf.sra1_sample(counted, "vp", x, 40, generator=gen)
    assert counted.nfe == 2 * 40 + 1
    assert abs(xs.std().item() - std) < 0.04 * std


def test_nfe_to_reach_interpolates_in_log_log():
    assert ggf.nfe_to_reach([10, 100], [1.0, 0.01], 0.1) == pytest.approx(10 ** 1.5)
    assert ggf.nfe_to_reach([10, 100], [0.05, 0.01], 0.1) == 10
    assert ggf.nfe_to_reach([10, 100], [1.0, 0.5], 0.1) == math.inf
    with pytest.raises(ValueError, match="increasing"):
        ggf.nfe_to_reach([100, 10], [1.0, 0.5], 0.1)
