"""DDPM (diffnotes.methods.ddpm): schedule, posterior, losses and bound, ancestral sampling.

Gaussian data N(0, s^2 I) make every expectation closed-form: the ideal denoiser is
D(x; sigma) = s^2 / (s^2 + sigma^2) x, so L_simple's minimum and the exact entropy are known.
"""

import math

import pytest
import torch

from diffnotes.data import gmm_ring
from diffnotes.methods import ddpm
from diffnotes.methods.ddpm import DDPMSchedule
from diffnotes.sampling import ddpm_sigmas

S_DATA = 0.5


def gaussian_denoiser(x, sigma, class_labels=None):
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return S_DATA**2 / (S_DATA**2 + sigma**2) * x


def small_schedule(T=50):
    # keep T * beta comparable with DDPM's T = 1000 so that alpha_bar_T stays near 0
    return DDPMSchedule.linear(T, 1e-4 * 1000 / T, 0.02 * 1000 / T)


def test_linear_schedule_matches_ddpm_and_sampling_module():
    sch = DDPMSchedule.linear()
    assert sch.T == 1000
    assert sch.betas[0].item() == pytest.approx(1e-4) and sch.betas[-1].item() == pytest.approx(0.02)
    assert torch.allclose(sch.alpha_bar, torch.cumprod(1 - sch.betas, 0))
    # alpha_bar_T is tiny: q(x_T | x0) is N(0, I) to within 4e-5 of mean scale (DDPM Sec. 4)
    assert sch.alpha_bar[-1].sqrt().item() < 1e-2
    # the sampling ladder is the same table diffnotes.sampling builds for DDPM
    assert torch.allclose(sch.sampling_sigmas(), ddpm_sigmas(1000, spacing="linspace"))


def test_schedule_equals_the_theory_process():
    from diffnotes.theory import get_process

    sch = DDPMSchedule.linear(500, 2e-4, 0.04)
    assert torch.allclose(sch.betas, torch.linspace(2e-4, 0.04, 500, dtype=torch.float64), atol=1e-15)
    # sigma(t) of the SymPy process (t = i / N, exact at integer i) is our sigma_i
    sigma = get_process("ddpm", beta_1=2e-4, beta_N=0.04, N=500).lambdify("torch").sigma
    i = torch.tensor([1, 2, 17, 250, 500], dtype=torch.float64)
    assert torch.allclose(sch.sigmas[i.long() - 1], sigma(i / 500), rtol=1e-9)


def test_posterior_coefficients_equal_gaussian_conditioning():
    sch = DDPMSchedule.linear()
    ab, abp, a = sch.alpha_bar, sch.alpha_bar_prev, sch.alphas
    # (x_{t-1}, x_t) given x0 is jointly Gaussian; condition directly.
    cov = a.sqrt() * (1 - abp)
    var_t = 1 - ab
    mean_coef_xt = cov / var_t
    mean_coef_x0 = abp.sqrt() - mean_coef_xt * ab.sqrt()
    cond_var = (1 - abp) - cov**2 / var_t
    assert torch.allclose(sch.posterior_coef_xt, mean_coef_xt, atol=1e-12)
    assert torch.allclose(sch.posterior_coef_x0, mean_coef_x0, atol=1e-12)
    assert torch.allclose(sch.beta_tilde, cond_var, atol=1e-12)
    assert sch.beta_tilde[0].item() == 0.0 and sch.reverse_variance()[0].item() == pytest.approx(1e-4)


def test_sigmas_are_the_edm_form_of_the_chain():
    sch = small_schedule()
    x0 = torch.randn(4, 3, dtype=torch.float64)
    n = torch.randn_like(x0)
    t = torch.tensor([1, 7, 20, 50])
    x, sigma = sch.perturb(x0, t, n)
    ab = sch.alpha_bar[t - 1].reshape(-1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * n  # DDPM eq. 4
    assert torch.allclose(ab.sqrt() * x, x_t)


def test_gaussian_kl_and_prior_kl_match_torch_distributions():
    D = torch.distributions
    mq, vq, mp, vp = torch.randn(5), torch.rand(5) + 0.1, torch.randn(5), torch.rand(5) + 0.1
    ref = D.kl_divergence(D.Normal(mq, vq.sqrt()), D.Normal(mp, vp.sqrt()))
    assert torch.allclose(ddpm.gaussian_kl(mq, vq, mp, vp), ref, atol=1e-6)
    sch = DDPMSchedule.linear()
    x0 = torch.randn(3, 2, dtype=torch.float64)
    ab = sch.alpha_bar[-1]
    ref = D.kl_divergence(D.Normal(ab.sqrt() * x0, (1 - ab).sqrt()), D.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(ddpm.prior_kl(x0, sch), ref)


def test_discretized_decoder_is_a_distribution_over_the_levels():
    for levels in (2, 17, 256):
        grid = torch.linspace(-1, 1, levels, dtype=torch.float64).reshape(-1, 1)
        for mean, var in ((0.0, 1e-4), (0.37, 0.05), (-1.3, 2.0)):
            nll = ddpm.discretized_gaussian_nll(grid, torch.full_like(grid, mean), var, levels)
            assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="levels"):
        ddpm.discretized_gaussian_nll(grid, grid, 1.0, 1)


def test_simple_loss_is_eps_mse_with_closed_form_minimum():
    torch.manual_seed(0)
    sch = small_schedule()
    x0 = S_DATA * torch.randn(40000, 2, dtype=torch.float64)
    loss = ddpm.SimpleLoss(sch)(gaussian_denoiser, x0)
    assert loss.shape == (40000,)
    # E||eps - eps_hat||^2 per dim = posterior variance / sigma^2 = s^2 / (s^2 + sigma_t^2), t uniform
    expected = (S_DATA**2 / (S_DATA**2 + sch.sigmas**2)).mean().item()
    assert loss.mean().item() == pytest.approx(expected, rel=0.03)
    worse = ddpm.SimpleLoss(sch)(lambda x, s, c=None: torch.zeros_like(x), x0).mean().item()
    assert worse > 2 * expected


def test_bound_is_above_the_exact_entropy_and_separates_good_from_bad_models():
    torch.manual_seed(0)
    sch = small_schedule(100)
    x0 = S_DATA * torch.randn(2000, 2, dtype=torch.float64)
    exact_nll = 2 * 0.5 * math.log(2 * math.pi * math.e * S_DATA**2)  # entropy of N(0, s^2 I_2), nats
    gen = torch.Generator().manual_seed(1)
    good = ddpm.nll_bound(gaussian_denoiser, x0, sch, bits_per_dim=False, generator=gen)
    assert set(good) == {"total", "prior", "diffusion", "decoder", "terms"}
    assert good["terms"].shape == (2000, 100)
    total = good["total"].mean().item()
    assert total > exact_nll  # a bound on the cross-entropy, which is >= the entropy
    # even the ideal denoiser leaves a gap (Gaussian reverse steps of fixed variance); it closes
    # as the chain gets finer (measured: ~3.9 nats at T = 50, ~2.5 at T = 100, ~0.9 at T = 1000)
    coarse = ddpm.nll_bound(gaussian_denoiser, x0, small_schedule(50), bits_per_dim=False,
                            generator=gen)["total"].mean().item()
    assert coarse > total + 0.5
    bad = ddpm.nll_bound(lambda x, s, c=None: 0.9 * gaussian_denoiser(x, s), x0, sch, bits_per_dim=False,
                         generator=gen)["total"].mean().item()
    assert bad > total + 1.0
    bpd = ddpm.nll_bound(gaussian_denoiser, x0, sch, generator=torch.Generator().manual_seed(1))["total"]
    assert torch.allclose(bpd, good["total"] / (2 * math.log(2)))


def test_vlb_loss_is_an_unbiased_estimate_of_the_bound():
    torch.manual_seed(0)
    sch = DDPMSchedule.linear(10, 0.01, 0.5)
    x0 = S_DATA * torch.randn(200000, 1, dtype=torch.float64)
    full = ddpm.nll_bound(gaussian_denoiser, x0[:20000], sch, bits_per_dim=False)["total"].mean().item()
    est = ddpm.VLBLoss(sch)(gaussian_denoiser, x0).mean().item()
    assert est == pytest.approx(full, abs=0.05)


def test_discretized_bound_on_grid_data_beats_uniform_coding():
    torch.manual_seed(0)
    sch = small_schedule(50)
    levels = 17
    gmm = gmm_ring(4, 0.6, 0.05)
    x0 = gmm.sample(500).clamp(-1, 1)
    x0 = torch.round((x0 + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1  # data on the 17-level grid
    bpd = ddpm.nll_bound(lambda x, s, c=None: gmm.denoiser(x, s), x0, sch, decoder="discretized",
                         levels=levels)["total"].mean().item()
    assert 0 < bpd < math.log2(levels)  # a real codelength, shorter than uniform coding


def test_ancestral_sampling_equals_algorithm_2_in_ddpm_coordinates():
    sch = small_schedule(30)
    gen = torch.Generator().manual_seed(3)
    ours = ddpm.sample(gaussian_denoiser, (6, 2), sch, generator=gen, dtype=torch.float64)
    # DDPM Algorithm 2, written independently in the VP coordinates with the same random draws
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((6, 2), generator=gen, dtype=torch.float64)
    a, ab, b, bt = sch.alphas, sch.alpha_bar, sch.betas, sch.beta_tilde
    for t in range(sch.T, 0, -1):
        sigma = sch.sigmas[t - 1]
        x_edm = x / ab[t - 1].sqrt()
        eps = (x_edm - gaussian_denoiser(x_edm, sigma)) / sigma
        x = (x - b[t - 1] / (1 - ab[t - 1]).sqrt() * eps) / a[t - 1].sqrt()
        if t > 1:
            x = x + bt[t - 1].sqrt() * torch.randn((6, 2), generator=gen, dtype=torch.float64)
    assert torch.allclose(ours, x, atol=1e-8)


def test_ancestral_samples_have_the_data_distribution():
    sch = DDPMSchedule.linear()
    gen = torch.Generator().manual_seed(0)
    xs = ddpm.sample(gaussian_denoiser, (20000, 2), sch, generator=gen, dtype=torch.float64)
    assert xs.mean().abs().item() < 0.02
    assert xs.std().item() == pytest.approx(S_DATA, rel=0.02)
    # strided to 100 steps, the beta_tilde variances lose spread (why iDDPM learns the variances)
    few = ddpm.sample(gaussian_denoiser, (20000, 2), sch, steps=100, generator=gen, dtype=torch.float64)
    assert few.std().item() < xs.std().item() - 0.01


def test_bad_input_raises_one_clear_value_error():
    with pytest.raises(ValueError, match="T must be"):
        DDPMSchedule.linear(1)
    with pytest.raises(ValueError, match="beta_1"):
        DDPMSchedule.linear(10, 0.1, 0.01)
    with pytest.raises(ValueError, match="betas"):
        DDPMSchedule(torch.tensor([0.1, 1.5]))
    sch = small_schedule()
    with pytest.raises(ValueError, match="decoder"):
        ddpm.VLBLoss(sch, decoder="laplace")
    with pytest.raises(ValueError, match="reverse variance"):
        ddpm.VLBLoss(sch, reverse_variance="learned")
    with pytest.raises(ValueError, match="steps t"):
        ddpm.vlb_terms(gaussian_denoiser, torch.zeros(2, 2), torch.tensor([0, 3]), sch)
    with pytest.raises(ValueError, match="steps must be"):
        sch.sampling_sigmas(0)


# ----------------------------------------------------------------------------------------------
# iDDPM's bound and losses: the decoder and the unit of L_vlb (diffnotes.methods.iddpm)
# ----------------------------------------------------------------------------------------------
def _iddpm_model(v):
    from diffnotes.methods import iddpm
    from diffnotes.nets import MLP
    from diffnotes.precond import VPPrecond

    torch.manual_seed(0)
    net = MLP(16, hidden=16, depth=1)
    return iddpm.LearnedVarianceModel(VPPrecond(net).double(), iddpm.ConstantV(v))


def _grid_images(n=8, levels=17, seed=0):
    x = torch.rand(n, 16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    return (x * (levels - 1) / 2).round() / ((levels - 1) / 2)


def test_iddpm_discretized_decoder_matches_ddpm_bound_for_fixed_beta():
    from diffnotes.methods import iddpm

    schedule = DDPMSchedule.linear(20, 1e-3, 0.3)
    x0 = _grid_images()
    model = _iddpm_model(1.0)  # v = 1: Sigma = beta_t, DDPM's "beta" arm, decoder beta_1
    got = iddpm.nll_bound(model, x0, schedule, decoder="discretized", levels=17,
                          generator=torch.Generator().manual_seed(1))
    want = ddpm.nll_bound(model, x0, schedule, decoder="discretized", levels=17, reverse_variance="beta",
                          generator=torch.Generator().manual_seed(1))["total"]
    torch.testing.assert_close(got / (16 * math.log(2)), want.double(), rtol=1e-6, atol=1e-6)
    # the density decoder is a different quantity: on these 17-level data it is far lower
    dens = iddpm.nll_bound(model, x0, schedule, generator=torch.Generator().manual_seed(1))
    assert float((got - dens).mean()) > 0
    with pytest.raises(ValueError, match="decoder"):
        iddpm.nll_bound(model, x0, schedule, decoder="categorical")


def test_gaussian_and_discretized_decoders_differ_by_log2_127_5_bits_for_a_wide_decoder():
    # -log P(bin) = -log(p(x0) * 2/255) when the decoder is wide next to a bin: 7 bits/dim apart
    x0 = _grid_images(levels=256, n=64)
    mean, var = x0 + 0.05, torch.tensor(0.3**2, dtype=torch.float64)
    from diffnotes.chain import discretized_gaussian_nll, gaussian_nll

    inner = x0.abs() < 0.9  # the two outermost bins reach to infinity
    x0, mean = x0[inner.all(dim=1)], mean[inner.all(dim=1)]
    assert x0.shape[0] > 0
    gap_bits = (discretized_gaussian_nll(x0, mean, var, 256) - gaussian_nll(x0, mean, var)) / (16 * math.log(2))
    assert torch.allclose(gap_bits, torch.full_like(gap_bits, math.log2(127.5)), atol=1e-3)


def test_iddpm_losses_take_l_vlb_in_nats_or_bits():
    from diffnotes.methods import iddpm

    schedule = DDPMSchedule.linear(20, 1e-3, 0.3)
    x0 = _grid_images()
    model = _iddpm_model(0.5)
    losses = {}
    for unit in ("nats", "bits"):
        for name, loss in (("hybrid", iddpm.HybridLoss(schedule, vlb_unit=unit)),
                           ("vlb", iddpm.VLBLoss(schedule, vlb_unit=unit))):
            torch.manual_seed(3)
            losses[name, unit] = loss(model, x0)
    torch.testing.assert_close(losses["vlb", "bits"], losses["vlb", "nats"] / math.log(2))
    # L_hybrid: the same L_simple, the L_vlb part 1/ln 2 as large in bits
    torch.manual_seed(3)
    simple = iddpm.HybridLoss(schedule, lambda_vlb=0.0)(model, x0)
    torch.testing.assert_close(losses["hybrid", "bits"] - simple, (losses["hybrid", "nats"] - simple) / math.log(2))
    # so lambda = 0.001 in nats weighs L_vlb as lambda = 0.001 ln 2 does in bits
    torch.manual_seed(3)
    bits_small = iddpm.HybridLoss(schedule, lambda_vlb=1e-3 * math.log(2), vlb_unit="bits")(model, x0)
    torch.testing.assert_close(bits_small, losses["hybrid", "nats"])
    with pytest.raises(ValueError, match="vlb_unit"):
        iddpm.HybridLoss(schedule, vlb_unit="bans")


# ----------------------------------------------------------------------------------------------
# ddpm.sample is the chain's one ancestral loop (issue 24), against the loop it replaced
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def _old_sample(denoiser, shape, schedule, *, steps=None, generator=None, dtype=torch.float32,
                variance="posterior"):
    """Frozen reference: ddpm.sample as written before it called chain.ancestral_sample, i.e.
    the "ancestral" solver of diffnotes.sampling inlined, run in EDM coordinates (x = x_t /
    sqrt(alpha_bar_t)) on the ladder sampling_sigmas(steps) rounded to ``dtype``."""
    x = torch.randn(shape, generator=generator, dtype=dtype) * schedule.prior_scale()
    s = schedule.sampling_sigmas(steps).to(dtype).double().tolist()
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = denoiser(x, x.new_full((shape[0],), sigma)).to(dtype)
        x = denoised + sigma_next**2 / sigma**2 * (x - denoised)  # posterior mean
        if sigma_next > 0:
            if variance == "posterior":
                var = sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
            else:
                var = (1 + sigma_next**2) * (sigma**2 - sigma_next**2) / (1 + sigma**2)
            x = x + math.sqrt(var) * torch.randn(shape, generator=generator, dtype=dtype)
    return x


def _small_denoiser(shape):
    from diffnotes.nets import MLP, FlatMLP
    from diffnotes.precond import VPPrecond

    torch.manual_seed(0)
    dim = math.prod(shape[1:])
    net = VPPrecond(MLP(dim=2, hidden=32, depth=2) if len(shape) == 2 else FlatMLP(dim=dim, hidden=32, depth=2))
    for p in net.parameters():  # the zero-initialised output layer: else D(x) = x
        if not p.any():
            torch.nn.init.normal_(p, std=0.05)
    return net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [None, 7])
@pytest.mark.parametrize("variance", ["posterior", "beta"])
@pytest.mark.parametrize("shape", [(16, 2), (3, 1, 4, 4)])
def test_sampler_is_the_old_loop_up_to_rounding(shape, variance, steps, dtype):
    # Not bit for bit: the old loop kept its state in EDM coordinates (x = x_t / sqrt(alpha_bar_t))
    # with coefficients from the float32-rounded sigma ladder, the chain keeps DDPM's x_t with
    # coefficients from alpha_bar, so the two round differently at every step (no clamping on
    # either side; same noise draws, same order). In float32 each step rounds the state a few
    # times (about eps/2 relative each) independently in the two paths, and the step contracts
    # earlier differences (the posterior mean weighs x by sigma'^2 / sigma^2 < 1), so the
    # difference is a random walk: about eps sqrt(K) max|x| after K steps (0.5-1.5 of that
    # measured over 8-10 seeds, both shapes and denoisers, on DDPM's T = 1000 chain at K = 7,
    # 100, 1000 and on this T = 200 chain). In float64 the state's rounding is negligible; what
    # is left is the coefficients' rounding: the chain's last step weighs D by beta_1 / (1 -
    # alpha_bar_1), which rounds to 1 + delta (delta = 1.1e-13 for DDPM's chain, 0 for the
    # respaced ones) where the old loop's weight was exactly 1, and the other steps' rounding
    # adds up to about eps K max|x| (at most 1.1 of that measured once delta is taken off). The
    # bound allows 4 times the random walk or the sum, plus delta in float64.
    sch = small_schedule(200)  # DDPM's chain shortened (T beta kept), to keep the test quick
    K = sch.T if steps is None else steps
    eps = torch.finfo(dtype).eps
    chain = sch if steps is None else sch.respace(steps)[0]
    delta = abs(float(chain.posterior_coef_x0[0]) - 1) if dtype == torch.float64 else 0.0
    for denoiser in (_small_denoiser(shape).to(dtype), gaussian_denoiser):
        old = _old_sample(denoiser, shape, sch, steps=steps, generator=torch.Generator().manual_seed(1),
                          dtype=dtype, variance=variance)
        new = ddpm.sample(denoiser, shape, sch, steps=steps, generator=torch.Generator().manual_seed(1),
                          dtype=dtype, variance=variance)
        assert new.dtype == dtype and new.shape == shape and bool(torch.isfinite(new).all())
        scale = old.abs().max().item()
        bound = (4 * eps * (math.sqrt(K) if dtype == torch.float32 else K) + delta) * scale
        assert (new - old).abs().max().item() <= bound


def test_sampler_calls_the_chains_ancestral_loop(monkeypatch):
    """ddpm.sample has no loop of its own: it is one call of chain.ancestral_sample."""
    from diffnotes import chain

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return chain.ancestral_sample(*args, **kwargs)

    monkeypatch.setattr(ddpm, "ancestral_sample", spy)
    sch = small_schedule(30)
    out = ddpm.sample(gaussian_denoiser, (4, 2), sch, steps=10, generator=torch.Generator().manual_seed(0),
                      variance="beta")
    assert len(calls) == 1 and out.shape == (4, 2)
    short, _ = sch.respace(10)
    assert torch.equal(calls[0]["variance"], short.betas)


def test_sampler_rejects_bad_options_with_one_clear_error():
    sch = small_schedule()
    with pytest.raises(ValueError, match="unknown variance 'learned'; valid variances: posterior, beta_tilde, beta"):
        ddpm.sample(gaussian_denoiser, (2, 2), sch, variance="learned")
    with pytest.raises(ValueError, match=r"unknown options \['refine'\]; valid options: variance"):
        ddpm.sample(gaussian_denoiser, (2, 2), sch, refine=lambda x, s: x)
    with pytest.raises(ValueError, match="steps must be"):
        ddpm.sample(gaussian_denoiser, (2, 2), sch, steps=51)
