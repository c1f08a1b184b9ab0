"""The shared discrete chain (diffnotes.chain): respacing, q(x_t | x0), posterior, bound terms."""

import math

import pytest
import torch

from diffnotes import chain
from diffnotes.chain import DiscreteSchedule
from diffnotes.parameterization import append_dims
from diffnotes.sampling import ddpm_sigmas

F64 = torch.float64


def test_even_respacing_keeps_both_ends_and_matches_iddpm():
    for T, steps in [(1000, 1), (1000, 7), (40, 40), (10, 3)]:
        idx = chain.respace_steps(T, steps)
        assert idx.shape == (steps,) and int(idx[0]) == T - 1
        assert steps == 1 or int(idx[-1]) == 0
        assert bool((idx[1:] < idx[:-1]).all())
    sched = DiscreteSchedule.linear(50)
    short, kept = sched.respace(6)
    assert torch.equal(kept, chain.respace_steps(50, 6).flip(0) + 1)
    # the short chain has the kept steps' alpha_bar, so the same noise levels
    torch.testing.assert_close(short.alpha_bar, sched.alpha_bar[kept - 1])
    torch.testing.assert_close(sched.sampling_sigmas(6)[:-1], short.sigmas.flip(0))


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_diffusers_spacings_are_the_chain_respacing(spacing):
    sigmas, timesteps = ddpm_sigmas(10, spacing, return_timesteps=True)
    assert torch.equal(timesteps, chain.respace_steps(1000, 10, spacing))
    table = DiscreteSchedule.linear().sigmas
    torch.testing.assert_close(sigmas[:-1], table[timesteps], rtol=1e-12, atol=0)


def test_q_sample_posterior_and_prior():
    sched = DiscreteSchedule.linear(20, 1e-3, 0.2)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g, dtype=F64)
    t = torch.tensor([1, 2, 7, 19, 20])
    x, sigma = sched.perturb(x0, t, noise)
    # the same point in both coordinates: x_t = sqrt(alpha_bar) (x0 + sigma n)
    torch.testing.assert_close(sched.q_sample(x0, t, noise), sched.to_ddpm(x, t))
    torch.testing.assert_close(sigma, chain.sigma_from_alpha_bar(sched.alpha_bar[t - 1]))
    # posterior variance (eq. 7) and, at t = 1, the mean is x0 itself
    mean, var = sched.posterior(t, x0, sched.q_sample(x0, t, noise))
    torch.testing.assert_close(var.flatten(), sched.beta_tilde[t - 1])
    torch.testing.assert_close(mean[0], x0[0])
    # Bayes: the posterior mean is the precision-weighted combination of the two Gaussians
    ab_prev, alpha, beta = sched.alpha_bar_prev[t - 1], sched.alphas[t - 1], sched.betas[t - 1]
    x_t = sched.q_sample(x0, t, noise)
    prec = 1 / (1 - ab_prev) + alpha / beta
    bayes = (ab_prev.sqrt() / (1 - ab_prev))[:, None] * x0 + (alpha.sqrt() / beta)[:, None] * x_t
    torch.testing.assert_close(mean[1:], (bayes / prec[:, None])[1:])
    # L_T against the closed form for one coordinate
    ab = sched.alpha_bar[-1]
    want = 0.5 * (ab * x0**2 + (1 - ab) - 1 - torch.log(1 - ab)).sum(dim=1)
    torch.testing.assert_close(chain.prior_kl(x0, sched), want)


def test_gaussian_nll_forms_agree_and_bits_per_dim():
    g = torch.Generator().manual_seed(1)
    x0, mean = torch.randn(3, 4, generator=g, dtype=F64), torch.randn(3, 4, generator=g, dtype=F64)
    log_var = torch.randn(3, 4, generator=g, dtype=F64)
    a = chain.gaussian_nll(x0, mean, log_var.exp())
    b = chain.gaussian_nll(x0, mean, log_var=log_var)
    torch.testing.assert_close(a, b)
    dist = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    torch.testing.assert_close(b, -dist.log_prob(x0).sum(dim=1))
    with pytest.raises(ValueError, match="exactly one of var and log_var"):
        chain.gaussian_nll(x0, mean)
    torch.testing.assert_close(chain.to_bits_per_dim(torch.tensor([math.log(2) * 8]), 4), torch.tensor([2.0]))


def test_bound_terms_visits_every_step_in_order():
    x0 = torch.zeros(3, 2)
    seen = []

    def term(steps, noise):
        seen.append(int(steps[0]))
        assert noise.shape == x0.shape
        return steps.double() * 10

    terms = chain.bound_terms(term, x0, 5, torch.Generator().manual_seed(0))
    assert seen == [1, 2, 3, 4, 5] and terms.shape == (3, 5)
    assert torch.equal(terms[0], torch.tensor([10.0, 20, 30, 40, 50], dtype=F64))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown spacing"):
        chain.respace_steps(10, 3, "uniform")
    with pytest.raises(ValueError, match=r"steps must be an integer in 1..10"):
        chain.respace_steps(10, 11)
    with pytest.raises(ValueError, match=r"steps t must lie in 1..10"):
        chain.check_steps(torch.tensor([0, 3]), 10)
    with pytest.raises(ValueError, match="betas must be"):
        DiscreteSchedule(torch.tensor([0.5, 1.0]))


def test_even_respacing_does_not_depend_on_torch_default_dtype():
    # float32 and float64 linspace round differently at some half-way points (132 of the 1,000
    # counts at T = 1000); the rule fixes float64, so the default dtype must not matter
    before = torch.get_default_dtype()
    try:
        results = {}
        for dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            results[dtype] = [chain.respace_steps(1000, k) for k in range(1, 1001)]
    finally:
        torch.set_default_dtype(before)
    assert all(torch.equal(a, b) for a, b in zip(results[torch.float32], results[torch.float64]))
    # and the result is float64 rounding: 15 of 1000 is one of the counts float32 gets wrong
    want = torch.linspace(999, 0, 15, dtype=F64).round().long()
    assert torch.equal(chain.respace_steps(1000, 15), want)
    assert not torch.equal(torch.linspace(999, 0, 15, dtype=torch.float32).round().long(), want)


def test_ddim_spacing_is_adms_ddimK_rule():
    # ADM / iDDPM's space_timesteps(T, "ddimK"): range(0, T, i) for the smallest stride i giving K
    def ddimk(T, k):
        for stride in range(1, T):
            if len(range(0, T, stride)) == k:
                return sorted(range(0, T, stride), reverse=True)
        return None

    valid = [k for k in range(1, 1001) if ddimk(1000, k) is not None]
    assert len(valid) == 62
    differ = 0
    for k in valid:
        got = chain.respace_steps(1000, k, "ddim")
        assert got.tolist() == ddimk(1000, k)
        differ += not torch.equal(got, chain.respace_steps(1000, k, "leading"))
        if 1000 % k == 0:  # "leading" is the ddimK rule exactly when K divides T
            assert torch.equal(got, chain.respace_steps(1000, k, "leading"))
    assert differ == 47
    # ddim50 stops at 980; the even ladder keeps 999 and shares only 2 of its 50 steps with it
    ddim50, even50 = chain.respace_steps(1000, 50, "ddim"), chain.respace_steps(1000, 50)
    assert int(ddim50[0]) == 980 and int(even50[0]) == 999
    assert len(set(ddim50.tolist()) & set(even50.tolist())) == 2
    with pytest.raises(ValueError, match="stride"):
        chain.respace_steps(1000, 1, "ddim")  # no stride below T gives a single step
    short, kept = DiscreteSchedule.linear().respace(50, "ddim")
    assert torch.equal(kept, ddim50.flip(0) + 1) and short.T == 50


def test_notebook_step_counts_are_the_same_under_float32_and_float64_rounding():
    # the counts the stored notebooks use (bao2022analytic, nichol2021improved, song2021denoising,
    # ho2020denoising): the float64 fix leaves each of their ladders unchanged
    for T, counts in [(1000, (10, 20, 25, 50, 100, 500, 1000)), (250, (25, 250)), (40, range(2, 41))]:
        for k in counts:
            old = torch.linspace(T - 1, 0, k, dtype=torch.float32).round().long()
            assert torch.equal(chain.respace_steps(T, k), old), (T, k)


# -------------------------------------------------------------------------------------------
# The family's shared pieces: the per-step KL, the change of coordinates, the ancestral loop
# -------------------------------------------------------------------------------------------
def _toy_denoiser(x, sigma, class_labels=None):
    """A fixed, non-trivial D(x; sigma): the exact denoiser of N(0.3, 0.5^2 I) data."""
    s2 = append_dims(torch.as_tensor(sigma, dtype=x.dtype), x) ** 2
    return 0.3 + 0.25 / (0.25 + s2) * (x - 0.3)


def test_step_kl_is_the_posterior_kl_and_zero_only_for_the_true_posterior():
    sched = DiscreteSchedule.linear(20, 1e-3, 0.2)
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 3, generator=g, dtype=F64)
    t = torch.tensor([2, 3, 5, 11, 19, 20])
    x_t = sched.q_sample(x0, t, noise)
    mean_q, var_q = sched.posterior(t, x0, x_t)
    # the true posterior as the model: every term is zero
    torch.testing.assert_close(chain.step_kl(sched, t, x0, x_t, mean_q, var_q), torch.zeros(6, dtype=F64))
    # a model mean at another x0 and DDPM's beta: the closed form, summed over dimensions
    mean_p, _ = sched.posterior(t, x0 + 0.1, x_t)
    var_p = chain.gather(sched.betas, t, x0)
    want = 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)
    got = chain.step_kl(sched, t, x0, x_t, mean_p, var_p)
    torch.testing.assert_close(got, want.sum(dim=1))
    # a false variant (the model's mean in place of the truth's) does not give the same numbers
    assert not torch.allclose(got, chain.step_kl(sched, t, x0 + 0.1, x_t, mean_q, var_q))
    assert bool((got > 0).all())


def test_to_edm_is_the_inverse_of_to_ddpm():
    sched = DiscreteSchedule.cosine(50)
    g = torch.Generator().manual_seed(4)
    x_t = torch.randn(4, 2, generator=g, dtype=F64)
    for k in (1, 17, 50):
        x, sigma = sched.to_edm(x_t, k)
        assert sigma == float(sched.sigmas[k - 1])
        torch.testing.assert_close(x, x_t / sched.alpha_bar[k - 1].sqrt(), rtol=1e-15, atol=0)
        torch.testing.assert_close(sched.to_ddpm(x, torch.full((4,), k)), x_t, rtol=1e-14, atol=0)
        # sigma^2 = 1 / alpha_bar - 1: the two coordinates of the same point
        assert math.isclose(sigma**2, 1 / float(sched.alpha_bar[k - 1]) - 1, rel_tol=1e-12)


def test_bound_terms_keeps_several_values_per_term():
    x0 = torch.zeros(3, 2)
    terms = chain.bound_terms(lambda steps, noise: torch.stack([steps.double(), -steps.double()], dim=1), x0, 5)
    assert terms.shape == (3, 5, 2)
    assert torch.equal(terms[0, :, 0], torch.arange(1, 6, dtype=F64)) and torch.equal(terms[..., 1], -terms[..., 0])


@torch.no_grad()
def _old_ancestral(denoiser, shape, chain_, variance, generator, dtype):
    """Frozen reference: Analytic-DPM's loop as written before the chain had one (issue 24)."""
    variance = torch.as_tensor(variance, dtype=torch.float64)
    x_t = torch.randn(shape, generator=generator, dtype=dtype)
    for k in range(chain_.T, 0, -1):
        t = torch.full((shape[0],), k, dtype=torch.long)
        x = x_t / float(chain_.alpha_bar[k - 1].sqrt())
        sigma = x.new_full((shape[0],), float(chain_.sigmas[k - 1]))
        mean, _ = chain_.posterior(t, denoiser(x, sigma).to(dtype), x_t)
        if k > 1:
            noise = torch.randn(shape, generator=generator, dtype=dtype)
            x_t = mean + float(variance[k - 1].sqrt()) * noise
        else:
            x_t = mean
    return x_t


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_ancestral_sample_is_the_old_loop_bit_for_bit(dtype):
    short, _ = DiscreteSchedule.linear(40, 2e-3, 0.3).respace(9)
    for kind in ("beta", "beta_tilde"):
        var = short.reverse_variance(kind)
        a = _old_ancestral(_toy_denoiser, (32, 2), short, var, torch.Generator().manual_seed(5), dtype)
        b = chain.ancestral_sample(_toy_denoiser, (32, 2), short, variance=var,
                                   generator=torch.Generator().manual_seed(5), dtype=dtype)
        assert torch.equal(a, b)
    # the same variance as a log-variance function gives the same law (not the same bits: exp(log))
    c = chain.ancestral_sample(_toy_denoiser, (32, 2), short,
                               log_variance=lambda x, sigma, t: chain.gather(var.log(), t, x),
                               generator=torch.Generator().manual_seed(5), dtype=dtype)
    torch.testing.assert_close(c, b, rtol=1e-5, atol=1e-5)


def test_ancestral_sample_bad_input():
    sched = DiscreteSchedule.linear(10, 1e-3, 0.2)
    with pytest.raises(ValueError, match="exactly one of variance and log_variance"):
        chain.ancestral_sample(_toy_denoiser, (2, 2), sched)
    with pytest.raises(ValueError, match="variance must hold 10 values"):
        chain.ancestral_sample(_toy_denoiser, (2, 2), sched, variance=torch.ones(3))
