"""Analytic-DPM (diffnotes.methods.analytic_dpm): the score-norm moment, the optimal variance and its bounds.

For Gaussian data N(0, c^2 I) and the exact denoiser everything is known in closed form:
Gamma_n = betabar_n / (alphabar_n c^2 + betabar_n), the true reverse step is Gaussian, and with
the analytic variance ancestral sampling reproduces the data's law on any respaced chain.
"""

import pytest
import torch

from diffnotes.chain import DiscreteSchedule
from diffnotes.methods import analytic_dpm
from diffnotes.methods.ddpm import nll_bound

C = 0.5  # data standard deviation


def exact_denoiser(x, sigma, class_labels=None):
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return C**2 / (C**2 + sigma**2) * x


def exact_moments(chain):
    ab = chain.alpha_bar
    return (1 - ab) / (ab * C**2 + 1 - ab)


def true_reverse_variance(chain):
    """Var(x_{n-1} | x_n) of the Gaussian pair, x_n = sqrt(alpha_n) x_{n-1} + noise."""
    ab, ab_prev = chain.alpha_bar, chain.alpha_bar_prev
    var_prev = ab_prev * C**2 + 1 - ab_prev
    var_n = ab * C**2 + 1 - ab
    alpha = ab / ab_prev
    return var_prev - alpha * var_prev**2 / var_n


def test_score_norm_moment_matches_the_gaussian_closed_form():
    chain = DiscreteSchedule.linear(100, 1e-3, 0.2)
    x0 = C * torch.randn(20000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = torch.tensor([1, 10, 50, 100])
    got = analytic_dpm.score_norm_moments(exact_denoiser, x0, chain, steps,
                                          generator=torch.Generator().manual_seed(1))
    want = exact_moments(chain)[steps - 1]
    assert torch.allclose(got, want, rtol=0.03), (got, want)


@pytest.mark.parametrize("steps", [100, 10, 4])
def test_exact_moments_give_the_true_reverse_variance(steps):
    short, _ = DiscreteSchedule.linear(100, 1e-3, 0.2).respace(steps)
    out = analytic_dpm.analytic_variance(short, exact_moments(short), data_range=(-10, 10))
    want = true_reverse_variance(short)
    assert torch.allclose(out["raw"][1:], want[1:], rtol=1e-9)
    assert torch.equal(out["variance"], out["raw"].clamp_min(analytic_dpm.DECODER_FLOOR))
    # the optimum lies between DDPM's two choices here: beta_tilde <= sigma*^2 <= beta
    assert bool((out["raw"][1:] >= short.beta_tilde[1:] - 1e-12).all())
    assert bool((out["raw"][1:] <= short.betas[1:] + 1e-12).all())


def test_clipping_bounds_bind_when_the_moment_leaves_them():
    short, _ = DiscreteSchedule.linear().respace(10)
    low = analytic_dpm.analytic_variance(short, torch.full((10,), 5.0))
    assert torch.equal(low["variance"], low["lower"])  # Gamma > 1: raw below lambda^2
    high = analytic_dpm.analytic_variance(short, torch.zeros(10))  # Gamma = 0: an untrained eps = 0
    loud = short.sigmas > 1  # there the unclipped value exceeds the [-1, 1] data bound
    assert bool(loud.any())
    assert torch.equal(high["variance"][loud], high["upper"][loud])
    assert bool((high["raw"][loud] > high["upper"][loud]).all())
    c, gamma = analytic_dpm.variance_terms(short, short.beta_tilde)
    assert torch.allclose(c, gamma**2 * (1 - short.alpha_bar) / short.alpha_bar)


def test_bounds_agree_with_ddpm_bound_for_the_fixed_variances():
    chain = DiscreteSchedule.linear(50, 2e-3, 0.3)
    x0 = (C * torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    x0 = (x0 * 8).round() / 8  # 17 levels in [-1, 1]
    got = analytic_dpm.nll_bounds(exact_denoiser, x0, chain, analytic_dpm.fixed_variances(chain),
                                  levels=17, generator=torch.Generator().manual_seed(3))
    for kind in ("beta", "beta_tilde"):
        want = nll_bound(exact_denoiser, x0, chain, decoder="discretized", levels=17,
                         reverse_variance=kind, generator=torch.Generator().manual_seed(3))["total"]
        assert torch.allclose(got[kind], want, rtol=1e-5), kind


def test_analytic_variance_lowers_the_bound_on_a_short_chain():
    chain = DiscreteSchedule.linear(200, 5e-4, 0.1)
    short, kept = chain.respace(10)
    x0 = C * torch.randn(256, 4, generator=torch.Generator().manual_seed(4))
    x0 = ((x0 * 8).round() / 8).clamp(-1, 1)
    moments = analytic_dpm.score_norm_moments(exact_denoiser, x0, chain, kept,
                                              generator=torch.Generator().manual_seed(5))
    tables = {**analytic_dpm.fixed_variances(short),
              "analytic": analytic_dpm.analytic_variance(short, moments)["variance"]}
    bounds = analytic_dpm.nll_bounds(exact_denoiser, x0, short, tables, levels=17,
                                     generator=torch.Generator().manual_seed(6))
    means = {k: float(v.mean()) for k, v in bounds.items()}
    assert means["analytic"] < means["beta"] and means["analytic"] < means["beta_tilde"], means


def test_sampling_with_the_analytic_variance_reproduces_gaussian_data():
    short, _ = DiscreteSchedule.linear().respace(10)
    var = analytic_dpm.analytic_variance(short, exact_moments(short), data_range=(-10, 10))["variance"]
    stds = {}
    for name, table in [("analytic", var), ("beta_tilde", short.reverse_variance("beta_tilde"))]:
        xs = analytic_dpm.sample(exact_denoiser, (40000, 1), short, table, dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(7))
        stds[name] = float(xs.std())
    assert abs(stds["analytic"] - C) < 0.01, stds
    assert abs(stds["beta_tilde"] - C) > 0.03, stds  # the fixed choice is visibly off at 10 steps


def test_bad_input_is_named():
    short, _ = DiscreteSchedule.linear().respace(10)
    with pytest.raises(ValueError, match="one moment"):
        analytic_dpm.analytic_variance(short, torch.zeros(3))
    with pytest.raises(ValueError, match="data_range"):
        analytic_dpm.analytic_variance(short, torch.zeros(10), data_range=(1, -1))
    with pytest.raises(ValueError, match="positive values"):
        analytic_dpm.nll_bounds(exact_denoiser, torch.zeros(2, 3), short, {"x": torch.zeros(10)})
    with pytest.raises(ValueError, match="lambda2"):
        analytic_dpm.variance_terms(short, -torch.ones(10))


def test_the_bounds_proof_fails_when_it_states_something_false():
    from diffnotes.theory.proofs.likelihood_proofs import analytic_bounds_check

    assert analytic_bounds_check().ok
    assert not analytic_bounds_check(factor=2).ok
