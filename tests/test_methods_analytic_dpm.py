"""Analytic-DPM (diffnotes.methods.analytic_dpm): the score-norm moment, the optimal variance and its bounds.

For Gaussian data N(0, c^2 I) and the exact denoiser everything is known in closed form:
Gamma_n = betabar_n / (alphabar_n c^2 + betabar_n), the true reverse step is Gaussian, and with
the analytic variance ancestral sampling reproduces the data's law on any respaced chain.
"""

import pytest
import torch

from diffnotes.chain import (DiscreteSchedule, discretized_gaussian_nll, gather, gaussian_kl, prior_kl, sum_dims,
                             to_bits_per_dim)
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


def test_theorem_2_data_independent_upper_bound_never_binds_on_an_estimate():
    short, _ = DiscreteSchedule.linear().respace(10)
    gammas = torch.linspace(0, 1.5, 10, dtype=torch.float64)  # Gamma_n >= 0 always (a mean square)
    out = analytic_dpm.analytic_variance(short, gammas, data_range=None)
    c, _ = analytic_dpm.variance_terms(short, short.beta_tilde)
    assert torch.allclose(out["upper_any_data"], short.beta_tilde + c)
    assert bool((out["raw"] <= out["upper_any_data"]).all())
    # without a data range only lambda^2 <= sigma^2 <= lambda^2 + c clips
    assert torch.equal(out["variance"], torch.minimum(torch.maximum(out["raw"], out["lower"]), out["upper"]))


def test_clipping_sigma2_equals_the_official_clipping_of_the_x0_variance():
    # official code: sigma^2 = beta_tilde + gamma^2 clip((betabar/alphabar)(1 - Gamma), 0, ((b-a)/2)^2)
    short, _ = DiscreteSchedule.linear().respace(25)
    gammas = torch.linspace(0.0, 1.4, 25, dtype=torch.float64)
    ours = analytic_dpm.analytic_variance(short, gammas)["variance"]
    _, gamma = analytic_dpm.variance_terms(short, short.beta_tilde)
    ab = short.alpha_bar
    official = short.beta_tilde + gamma**2 * ((1 - ab) / ab * (1 - gammas)).clamp(0, 1)
    assert torch.allclose(ours[1:], official[1:], rtol=1e-12)


def test_official_decoder_variance_option():
    full = DiscreteSchedule.linear()
    short, _ = full.respace(10)
    dec = analytic_dpm.official_decoder_variance(full)
    assert dec == pytest.approx(float(full.betas[1] * full.betas[0] / (1 - full.alpha_bar[1])), rel=1e-12)
    ours = analytic_dpm.analytic_variance(short, torch.full((10,), 0.5))
    theirs = analytic_dpm.analytic_variance(short, torch.full((10,), 0.5), decoder_variance=dec)
    assert torch.equal(ours["variance"][1:], theirs["variance"][1:]) and float(theirs["variance"][0]) == dec
    fixed = analytic_dpm.fixed_variances(short, decoder_variance=dec)
    assert all(float(v[0]) == dec for v in fixed.values())
    assert float(analytic_dpm.fixed_variances(short)["beta"][0]) == pytest.approx(float(full.betas[0]), rel=1e-9)
    with pytest.raises(ValueError, match="positive"):
        analytic_dpm.fixed_variances(short, decoder_variance=0.0)


def _path_cost(costs, path):
    return sum(float(costs[s, t]) for s, t in zip(path[:-1].tolist(), path[1:].tolist()))


def test_step_kl_costs_match_the_analytic_variance_on_a_respaced_chain():
    chain = DiscreteSchedule.linear(100, 1e-3, 0.2)
    gammas = torch.rand(100, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 1.2
    costs = analytic_dpm.step_kl_costs(chain, gammas)
    short, kept = chain.respace(10)
    out = analytic_dpm.analytic_variance(short, gammas[kept - 1])
    _, gamma = analytic_dpm.variance_terms(short, short.beta_tilde)
    lam2, var = short.beta_tilde, out["variance"]
    post = (1 - short.alpha_bar) / short.alpha_bar * (1 - gammas[kept - 1])
    kl = 0.5 * (torch.log(var / lam2) + (lam2 + gamma**2 * post) / var - 1)
    assert _path_cost(costs, kept) == pytest.approx(float(kl[1:].sum()), rel=1e-9)


def test_optimal_trajectory_is_the_least_cost_path():
    import itertools

    T, K = 9, 4
    chain = DiscreteSchedule.linear(T, 0.02, 0.4)
    gammas = torch.rand(T, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    costs = analytic_dpm.step_kl_costs(chain, gammas)
    path = analytic_dpm.optimal_trajectory(costs, K)
    assert path[0] == 1 and path[-1] == T and path.numel() == K
    brute = min(_path_cost(costs, torch.tensor([1, *inner, T]))
                for inner in itertools.combinations(range(2, T), K - 2))
    assert _path_cost(costs, path) == pytest.approx(brute, rel=1e-12)
    assert torch.equal(analytic_dpm.optimal_trajectory(costs, T), torch.arange(1, T + 1))
    with pytest.raises(ValueError, match="steps"):
        analytic_dpm.optimal_trajectory(costs, 1)


def test_for_gaussian_data_every_trajectory_costs_the_same():
    # the analytic variance makes every reverse step of Gaussian data exact, so the KL sum is
    # path-independent: the DP has nothing to gain there (it does for non-Gaussian data)
    chain = DiscreteSchedule.linear(100, 1e-3, 0.2)
    costs = analytic_dpm.step_kl_costs(chain, exact_moments(chain), data_range=None)
    even = chain.respace(10)[1]
    best = analytic_dpm.optimal_trajectory(costs, 10)
    assert _path_cost(costs, best) == pytest.approx(_path_cost(costs, even), rel=1e-9)


@torch.no_grad()
def _old_nll_bounds(denoiser, x0, chain, variances, *, levels=256, generator=None):
    """Frozen reference: nll_bounds with its own loop, as written before it called the chain's (issue 24)."""
    n, dims = x0.shape[0], x0[0].numel()
    totals = {name: prior_kl(x0, chain).double().cpu() for name in variances}
    for step in range(1, chain.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        t = torch.full((n,), step, dtype=torch.long)
        x, sigma = chain.perturb(x0, t, noise)
        x0_hat = denoiser(x, sigma).to(x0.dtype)
        x_t = chain.to_ddpm(x, t)
        mean_q, var_q = chain.posterior(t, x0, x_t)
        mean_p, _ = chain.posterior(t, x0_hat, x_t)
        for name, var in variances.items():
            var_p = gather(torch.as_tensor(var, dtype=torch.float64), t, x0)
            if step == 1:
                term = discretized_gaussian_nll(x0, x0_hat, var_p, levels)
            else:
                term = sum_dims(gaussian_kl(mean_q, var_q.clamp_min(1e-30), mean_p, var_p))
            totals[name] += term.double().cpu()
    return {name: to_bits_per_dim(v, dims) for name, v in totals.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nll_bounds_is_the_old_loop_bit_for_bit(dtype):
    full = DiscreteSchedule.linear(60, 1e-3, 0.2)
    chain, kept = full.respace(8)
    x0 = (torch.rand(24, 1, 2, 2, generator=torch.Generator().manual_seed(2), dtype=dtype) * 16).round() / 8 - 1
    moments = analytic_dpm.score_norm_moments(exact_denoiser, x0, full, kept,
                                              generator=torch.Generator().manual_seed(3))
    variances = {**analytic_dpm.fixed_variances(chain),
                 "analytic": analytic_dpm.analytic_variance(chain, moments)["variance"]}

    def denoiser(x, sigma):  # not the exact one: the bound's terms are not all at their minimum
        return exact_denoiser(x, sigma) + 0.05 * torch.tanh(3 * x)

    old = _old_nll_bounds(denoiser, x0, chain, variances, levels=17, generator=torch.Generator().manual_seed(4))
    new = analytic_dpm.nll_bounds(denoiser, x0, chain, variances, levels=17,
                                  generator=torch.Generator().manual_seed(4))
    assert list(new) == list(old)
    assert all(torch.equal(new[k], old[k]) for k in old)
