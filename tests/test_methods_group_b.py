"""Tests of the group-B method modules: NCSN, Score SDE, iDDPM, Sohl-Dickstein 2015.

Each numeric formula is checked against ``diffnotes.theory`` (where it lives) or against a closed
form on the exact Gaussian mixture; every test runs in well under a second or two on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from diffnotes.data import GaussianMixture
from diffnotes.methods import ncsn


def _two_blobs(weights=(0.2, 0.8)):
    return GaussianMixture(list(weights), [[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0])


# -- NCSN -------------------------------------------------------------------------------------
def test_ncsn_sigmas_geometric_and_from_theory():
    from diffnotes.theory import get_process

    s = ncsn.ncsn_sigmas()
    assert s.dtype == torch.float64 and float(s[-1]) == 0.0 and s.numel() == 11
    levels = s[:-1]
    assert float(levels[0]) == pytest.approx(1.0) and float(levels[-1]) == pytest.approx(0.01)
    ratios = levels[:-1] / levels[1:]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12)
    # equal to the SMLD process's sigma(t) at t_i = (i - 1) / (L - 1)
    sig = get_process("smld").lambdify("numpy").sigma
    t = torch.linspace(1, 0, 10, dtype=torch.float64).numpy()
    assert torch.allclose(levels, torch.from_numpy(sig(t)), rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(L=1), dict(sigma_1=0.01, sigma_L=1.0), dict(sigma_L=0.0)])
def test_ncsn_sigmas_bad_input(kwargs):
    with pytest.raises(ValueError):
        ncsn.ncsn_sigmas(**kwargs)


def test_ncsn_loss_is_zero_mean_gap_for_exact_denoiser():
    """With the exact denoiser the loss equals its irreducible part; a worse model scores higher."""
    torch.manual_seed(0)
    gmm = _two_blobs()
    x0 = gmm.sample(4000, torch.Generator().manual_seed(1))
    loss = ncsn.NCSNLoss(ncsn.ncsn_sigmas(5, 10.0, 0.5))
    exact = loss(lambda x, s, c=None: gmm.denoiser(x, s), x0).mean()
    identity = loss(lambda x, s, c=None: x, x0).mean()  # D = x: error sigma^2 |n|^2 -> 1/2 per dim
    assert float(identity) == pytest.approx(0.5, rel=0.05)
    assert float(exact) < 0.5 * float(identity)


def test_ncsn_loss_matches_eq5_in_score_form():
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    model = lambda x, s, c=None: 0.7 * x  # noqa: E731 - any denoiser
    loss = ncsn.NCSNLoss(torch.tensor([0.3], dtype=torch.float64))
    torch.manual_seed(5)
    ours = loss(model, x0)
    torch.manual_seed(5)
    torch.randint(1, (64,))  # same draws as inside the loss
    n = torch.randn_like(x0)
    x_t = x0 + 0.3 * n
    score = (model(x_t, 0.3) - x_t) / 0.3**2
    eq5 = 0.3**2 * 0.5 * (score + (x_t - x0) / 0.3**2).pow(2).mean(dim=1)
    assert torch.allclose(ours, eq5, rtol=1e-10)


def test_plain_langevin_keeps_initial_split_annealed_recovers_weights():
    """NCSN Sec. 3.2: exact scores, unequal weights. Plain Langevin keeps the 50/50 start."""
    gmm = _two_blobs()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=gen, dtype=torch.float64) * 16 - 8
    plain = ncsn.langevin(gmm.denoiser, x, 0.01, step_size=0.1, n_steps=100, generator=gen)
    annealed = ncsn.annealed_langevin(gmm.denoiser, x, ncsn.ncsn_sigmas(10, 20.0, 1.0), epsilon=0.1,
                                      n_steps_each=20, generator=gen)
    assert ncsn.weight_error(plain, gmm) > 0.2
    assert ncsn.weight_error(annealed, gmm) < 0.08
    assert torch.allclose(ncsn.component_fractions(annealed, gmm).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_ncsn_bad_input():
    gmm = _two_blobs()
    with pytest.raises(ValueError):
        ncsn.langevin(gmm.denoiser, torch.zeros(3, 2, dtype=torch.float64), 0.0, step_size=0.1, n_steps=1)
    with pytest.raises(ValueError):
        ncsn.component_fractions(torch.zeros(3, 3), gmm)


# -- Score SDE --------------------------------------------------------------------------------
from diffnotes.methods import score_sde  # noqa: E402


@pytest.mark.parametrize("sde", score_sde.SDES)
def test_score_sde_sigma_is_the_theory_marginal(sde):
    from diffnotes.theory import get_process

    proc = get_process(sde)
    t = torch.tensor([1e-3, 0.1, 0.5, 1.0], dtype=torch.float64)
    loss = score_sde.ScoreSDELoss(sde)
    numpy_sigma = torch.from_numpy(proc.lambdify("numpy").sigma(t.numpy()))
    assert torch.allclose(loss.sigma(t), numpy_sigma, rtol=1e-10)
    # the loss perturbs x = x_t / s(t) with std sigma(t): the kernel std of x_t is s(t) sigma(t)
    num = proc.lambdify("torch")
    assert torch.allclose(num.std(t), num.scale(t) * loss.sigma(t), rtol=1e-12)


def test_vp_sigma_equals_engine_vp_sigma():
    from diffnotes.sampling import vp_sigma

    t = torch.tensor([1e-5, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(score_sde.ScoreSDELoss("vp").sigma(t), vp_sigma(t), rtol=1e-12)


def test_score_sde_loss_equals_weighted_score_form():
    """std^2 ||score_theta - grad log p_0t||^2 in the SDE's own coordinates equals our loss."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    model = lambda x, s, c=None: 0.5 * x  # noqa: E731
    loss = score_sde.ScoreSDELoss("subvp")
    torch.manual_seed(7)
    ours = loss(model, x0)
    torch.manual_seed(7)
    t = loss.eps + (1 - loss.eps) * torch.rand(32, dtype=torch.float64)
    n = torch.randn_like(x0)
    proc = loss.process
    s, sig = proc.scale(t)[:, None], proc.sigma(t)[:, None]
    x_t = s * x0 + s * sig * n  # the SDE's own coordinates
    score_model = (s * model(x_t / s, sig[:, 0]) - x_t) / (s * sig) ** 2
    kernel_score = -(x_t - s * x0) / (s * sig) ** 2
    paper = ((s * sig) ** 2 * (score_model - kernel_score) ** 2).mean(dim=1)
    assert torch.allclose(ours, paper, rtol=1e-8)


def test_time_sigmas_and_prior():
    s = score_sde.time_sigmas("vp", 10)
    assert float(s[-1]) == 0 and bool((s[1:] < s[:-1]).all())
    assert float(s[0]) == pytest.approx(float(score_sde.get_sde("vp").sigma(torch.tensor(1.0, dtype=torch.float64))))
    # VP: s = 1 / sqrt(1 + sigma^2), so the prior N(0, I) in x_t is N(0, 1 + sigma(1)^2) in x
    assert score_sde.prior_std("vp") == pytest.approx(math.sqrt(1 + float(s[0]) ** 2), rel=1e-10)
    assert score_sde.prior_std("ve", sigma_max=10.0) == pytest.approx(10.0)


@pytest.mark.parametrize("sde", score_sde.SDES)
def test_reverse_sde_with_exact_score_reaches_the_data(sde):
    """Exact mixture score: the right mode weights and the right spread inside each mode."""
    from diffnotes.data import gmm_ring

    gmm = gmm_ring(4, 1.0, 0.1)
    gen = torch.Generator().manual_seed(0)
    params = dict(sigma_max=10.0) if sde == "ve" else {}
    x = score_sde.prior_sample(sde, (1000, 2), gen, torch.float64, **params)
    out = score_sde.reverse_sde_sample(gmm.denoiser, sde, x, 100, generator=gen, **params)
    assert ncsn.weight_error(out, gmm) < 0.06
    owner = gmm.responsibilities(out).argmax(dim=1)
    spread = (out - gmm.means[owner]).std(dim=0)
    assert bool(((spread > 0.085) & (spread < 0.12)).all()), spread  # component std is 0.1
    assert float(x.std()) > 3.0  # the prior sample itself is nothing like the data


def test_score_sde_bad_input():
    with pytest.raises(ValueError):
        score_sde.ScoreSDELoss("vesde")
    with pytest.raises(ValueError):
        score_sde.time_sigmas("ve", 1)
    with pytest.raises(ValueError):
        score_sde.get_sde("vp", sigma_max=3.0)  # the VP SDE has no sigma_max
