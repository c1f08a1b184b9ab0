"""Subspace diffusion (Jing et al. 2022): subspaces, the switching criterion, the banded loss,
the switching denoiser, and the proof of the Gaussian gap."""

import math

import pytest
import torch

from diffnotes.methods.subspace import (BandEDMLoss, DownsampleSubspace, PCASubspace, SubspaceDenoiser,
                                        band_probability, orthogonal_kl, orthogonal_moments, switch_sigma)
from diffnotes.sampling import sample, sigma_schedule
from diffnotes.theory.proofs.efficiency_proofs import orthogonal_gap_check


def _orthonormal(subspace, shape):
    """U^T U = I and U U^T idempotent, checked on random vectors."""
    x = torch.randn(shape, dtype=torch.float64)
    u = subspace.coords(x)
    torch.testing.assert_close(subspace.coords(subspace.lift(u)), u)  # U^T U = I
    p = subspace.project(x)
    torch.testing.assert_close(subspace.project(p), p)
    # the two parts are orthogonal and add up to x
    torch.testing.assert_close((p * subspace.orthogonal(x)).flatten(1).sum(1), torch.zeros(shape[0], dtype=x.dtype))
    # an orthonormal basis keeps lengths in the subspace
    torch.testing.assert_close(u.flatten(1).norm(dim=1), p.flatten(1).norm(dim=1))


def test_downsample_subspace_is_orthonormal():
    _orthonormal(DownsampleSubspace(2), (5, 1, 8, 8))
    _orthonormal(DownsampleSubspace(4), (3, 2, 8, 8))


def test_downsample_noise_keeps_its_level():
    n = torch.randn(4000, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert abs(DownsampleSubspace(2).coords(n).std().item() - 1.0) < 0.03


def test_pca_subspace_is_orthonormal_and_contains_low_rank_data():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(200, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 16, generator=g,
                                                                                 dtype=torch.float64)
    pca = PCASubspace(data.reshape(200, 1, 4, 4), 3)
    _orthonormal(pca, (5, 1, 4, 4))
    mean_sq, eig = orthogonal_moments(pca, data.reshape(200, 1, 4, 4))
    assert mean_sq < 1e-20 and float(eig.max()) < 1e-10  # rank-3 data: nothing outside


def test_kl_matches_the_proof_and_falls_with_sigma():
    assert orthogonal_gap_check().ok and not orthogonal_gap_check(wrong_power=3).ok
    eig = torch.tensor([0.3, 0.1, 0.0], dtype=torch.float64)
    sig = torch.tensor([0.5, 1.0, 4.0])
    kl = orthogonal_kl(0.2, eig, sig)
    by_hand = [0.5 * (0.2 / s**2 + sum(v / s**2 - math.log1p(v / s**2) for v in (0.3, 0.1))) for s in (0.5, 1.0, 4.0)]
    torch.testing.assert_close(kl, torch.tensor(by_hand, dtype=torch.float64))
    assert bool((kl[1:] < kl[:-1]).all())


def test_switch_sigma_is_where_the_gap_meets_the_tolerance():
    eig = torch.tensor([0.5, 0.2], dtype=torch.float64)
    s = switch_sigma(0.1, eig, 0.05)
    assert orthogonal_kl(0.1, eig, s) <= 0.05 < orthogonal_kl(0.1, eig, 0.99 * s)
    assert switch_sigma(0.0, torch.zeros(2, dtype=torch.float64), 0.01) == 1e-3  # data in the subspace
    with pytest.raises(ValueError, match="tol must be"):
        switch_sigma(0.1, eig, 0.0)


def test_band_loss_draws_only_inside_its_band_with_edms_law():
    torch.manual_seed(0)
    lo, hi = 0.5, 3.0
    loss = BandEDMLoss(lo, hi)
    sig = loss.sigma_from(loss.draw(20000))
    assert float(sig.min()) >= lo * (1 - 1e-5) and float(sig.max()) < hi * (1 + 1e-5)
    # the median inside the band is EDM's conditional median
    p_mid = 0.5 * (loss.p_lo + loss.p_hi)
    median = math.exp(loss.P_mean + loss.P_std * math.sqrt(2) * torch.erfinv(torch.tensor(2 * p_mid - 1)).item())
    assert abs(float(sig.median()) / median - 1) < 0.03
    assert math.isclose(band_probability(0.0, 1.0) + band_probability(1.0), 1.0)
    with pytest.raises(ValueError, match="lo < hi"):
        BandEDMLoss(2.0, 1.0)


class _Constant(torch.nn.Module):
    """A 'denoiser' returning a fixed value, counting nothing."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x, sigma, class_labels=None):
        return torch.full_like(x, self.value)


def test_subspace_denoiser_routes_by_sigma():
    sub_space = DownsampleSubspace(2)
    den = SubspaceDenoiser(_Constant(-1.0), _Constant(2.0), sub_space, sigma_switch=1.0)
    x = torch.randn(4, 1, 8, 8)
    out = den(x, torch.tensor([0.5, 2.0, 1.0, 0.1]))
    torch.testing.assert_close(out[[0, 3]], torch.full((2, 1, 8, 8), -1.0))
    torch.testing.assert_close(out[[1, 2]], torch.full((2, 1, 8, 8), 1.0))  # lift(2) = 2 / factor
    assert den.calls == {"full": 1, "sub": 1}


def test_orthogonal_part_reaches_the_switch_as_fresh_noise():
    """Above the switch x_perp only scales with sigma: at sigma_switch it is sigma_switch / sigma_max
    times the starting noise, i.e. N(0, sigma_switch^2) -- the paper's fresh draw."""
    space = DownsampleSubspace(2)
    recorded = {}

    class Full(torch.nn.Module):
        def forward(self, x, sigma, class_labels=None):
            recorded.setdefault("x", x.clone())
            recorded.setdefault("sigma", float(sigma.reshape(-1)[0]))
            return torch.zeros_like(x)

    den = SubspaceDenoiser(Full(), _Constant(0.0), space, sigma_switch=2.0)
    sigmas = sigma_schedule("karras", 12, 0.01, 80.0)
    x = torch.randn(2000, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 80.0
    sample(den, x.clone(), sigmas, solver="euler")
    ratio = recorded["sigma"] / 80.0
    torch.testing.assert_close(space.orthogonal(recorded["x"]), space.orthogonal(x) * ratio)


def test_bad_subspace_inputs_are_one_clear_line():
    with pytest.raises(ValueError, match="factor must be"):
        DownsampleSubspace(1)
    with pytest.raises(ValueError, match="divisible by 2"):
        DownsampleSubspace(2).coords(torch.randn(1, 1, 5, 5))
    with pytest.raises(ValueError, match="k must be"):
        PCASubspace(torch.randn(10, 4), 4)
    with pytest.raises(ValueError, match="sigma_switch"):
        SubspaceDenoiser(_Constant(0.0), _Constant(0.0), DownsampleSubspace(2), 0.0)
