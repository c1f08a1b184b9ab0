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


# -- iDDPM ------------------------------------------------------------------------------------
from diffnotes.methods import ddpm as ddpm_method  # noqa: E402
from diffnotes.methods import iddpm  # noqa: E402


def _random_denoiser(seed=0):
    from diffnotes.nets import MLP
    from diffnotes.precond import VPPrecond

    torch.manual_seed(seed)
    net = MLP(2, hidden=16, depth=1)
    torch.nn.init.normal_(net.out.weight, std=0.3)
    return VPPrecond(net).double()


def test_cosine_schedule_is_eq17_and_clipped():
    sched = iddpm.cosine_schedule(1000)
    i = torch.arange(0, 1001, dtype=torch.float64)
    f = torch.cos((i / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # eq. 17, written out independently
    betas = torch.clamp(1 - f[1:] / f[:-1], max=0.999)
    assert torch.allclose(sched.betas, betas, rtol=1e-10, atol=1e-14)
    assert float(sched.betas[-1]) == pytest.approx(0.999)
    # before clipping alpha_bar is the theory's continuous cosine alpha_bar(t) at t = i / T
    from diffnotes.theory import get_process

    scale = get_process("iddpm").lambdify("numpy").scale
    t = (torch.arange(1, 991, dtype=torch.float64) / 1000).numpy()
    assert torch.allclose(sched.alpha_bar[:990], torch.from_numpy(scale(t) ** 2), rtol=1e-9)


def test_linear_schedule_and_respace():
    assert torch.allclose(iddpm.linear_schedule(1000).betas, ddpm_method.DDPMSchedule.linear().betas)
    assert float(iddpm.linear_schedule(100).betas[-1]) == pytest.approx(0.2)
    sched = iddpm.cosine_schedule(1000)
    short, kept = iddpm.respace(sched, 50)
    assert kept[0] == 1 and kept[-1] == 1000 and short.T == 50
    assert torch.allclose(short.alpha_bar, sched.alpha_bar[kept - 1], rtol=1e-12)
    same, _ = iddpm.respace(sched, 1000)
    assert torch.allclose(same.betas, sched.betas, rtol=1e-12)
    # the kept steps are the noise levels of DDPMSchedule.sampling_sigmas
    assert torch.allclose(sched.sampling_sigmas(50)[:-1].flip(0), sched.sigmas[kept - 1])


def test_log_variance_interpolates_between_the_bounds():
    sched = iddpm.cosine_schedule(100)
    t = torch.tensor([2, 50, 100])
    ones = torch.ones(3, 2, dtype=torch.float64)
    assert torch.allclose(iddpm.log_variance(ones, sched, t), sched.betas[t - 1].log()[:, None].expand(3, 2))
    assert torch.allclose(iddpm.log_variance(0 * ones, sched, t), sched.beta_tilde[t - 1].log()[:, None].expand(3, 2))


@pytest.mark.parametrize("v, kind", [(0.0, "beta_tilde"), (1.0, "beta")])
def test_vlb_term_with_fixed_v_equals_ddpm_bound(v, kind):
    sched = iddpm.cosine_schedule(100)
    model = iddpm.LearnedVarianceModel(_random_denoiser(), iddpm.ConstantV(v))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    t = torch.randint(2, 101, (16,), generator=gen)
    ours, _, _ = iddpm.vlb_term(model, x0, t, sched, noise=noise)
    theirs = ddpm_method.vlb_terms(lambda x, s, c=None: model(x, s), x0, t, sched, reverse_variance=kind, noise=noise)
    assert torch.allclose(ours, theirs, rtol=1e-9)


def test_hybrid_loss_stops_the_mean_gradient_in_l_vlb():
    sched = iddpm.cosine_schedule(50)
    x0 = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def grads(lam):
        from diffnotes.nets import MLP

        torch.manual_seed(3)
        model = iddpm.LearnedVarianceModel(_random_denoiser(), MLP(2, hidden=8, depth=1).double())
        torch.nn.init.normal_(model.v_backbone.out.weight, std=0.5)
        torch.manual_seed(4)
        iddpm.HybridLoss(sched, lam)(model, x0).mean().backward()
        return [p.grad.clone() for p in model.denoiser.parameters()], [p.grad for p in model.v_backbone.parameters()]

    mean_0, var_0 = grads(0.0)
    mean_1, var_1 = grads(1.0)
    assert all(torch.allclose(a, b) for a, b in zip(mean_0, mean_1))  # L_vlb does not move the mean
    assert all(g is None or float(g.abs().sum()) == 0 for g in var_0)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in var_1)  # ... but trains the variance


@pytest.mark.parametrize("v, variance", [(0.0, "posterior"), (1.0, "beta")])
def test_learned_variance_sampler_equals_engine_ancestral_for_fixed_v(v, variance):
    from diffnotes.sampling import sample as engine_sample

    sched = iddpm.cosine_schedule(200)
    model = iddpm.LearnedVarianceModel(_random_denoiser(), iddpm.ConstantV(v))
    ours = iddpm.sample(model, (64, 2), sched, steps=20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(64, 2, generator=gen, dtype=torch.float64) * sched.prior_scale()
    theirs = engine_sample(model, x, sched.sampling_sigmas(20), "ancestral", variance=variance, generator=gen)
    assert torch.allclose(ours, theirs, rtol=1e-7, atol=1e-9)


def test_importance_sampler():
    sampler = iddpm.ImportanceSampler(4, history=2, uniform_prob=0.0)
    assert torch.allclose(sampler.probs(), torch.full((4,), 0.25, dtype=torch.float64))
    sampler.update(torch.tensor([1, 1, 2, 2, 3, 3, 4]), torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0]))
    assert not sampler.warmed_up
    sampler.update(torch.tensor([4, 4]), torch.tensor([4.0, 4.0]))  # the oldest 4.0 drops out
    assert sampler.warmed_up
    assert torch.allclose(sampler.probs(), torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64) / 10)
    t, p = sampler.sample(1000, torch.Generator().manual_seed(0))
    assert int(t.min()) >= 1 and int(t.max()) <= 4
    assert float((t == 4).double().mean()) == pytest.approx(0.4, abs=0.06)
    with pytest.raises(ValueError):
        iddpm.ImportanceSampler(0)


def test_iddpm_bad_input():
    with pytest.raises(ValueError):
        iddpm.cosine_schedule(1)
    with pytest.raises(ValueError):
        iddpm.with_fixed_variance(iddpm.LearnedVarianceModel(_random_denoiser(), iddpm.ConstantV(0.5)), "sigma")
    with pytest.raises(ValueError):
        iddpm.respace(iddpm.cosine_schedule(10), 11)
    with pytest.raises(ValueError):
        iddpm.HybridLoss(iddpm.cosine_schedule(10), -1.0)
    with pytest.raises(ValueError):
        iddpm.VLBLoss(iddpm.cosine_schedule(10), iddpm.ImportanceSampler(5))


# -- Sohl-Dickstein 2015 ----------------------------------------------------------------------
from diffnotes.methods import sohl_dickstein as sd  # noqa: E402


class _StationaryMean(torch.nn.Module):
    """F_mu = (sqrt(1 - beta_t) - 1) x: the exact reverse mean when the data is N(0, I)."""

    def __init__(self, schedule):
        super().__init__()
        self.register_buffer("beta", schedule.betas.double())
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_in, c_noise, class_labels=None):
        beta = self.beta[c_noise.long() - 1].reshape(-1, 1)
        return ((1 - beta).sqrt() - 1) * x_in + 0 * self.dummy


class _Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_in, c_noise, class_labels=None):
        return torch.zeros_like(x_in) + 0 * self.dummy


def test_sd_bound_is_tight_for_the_exact_reverse_kernel():
    """N(0, I) data is stationary under the VP chain, so its reverse kernel is N(sqrt(1-beta) x, beta):
    with it the bound is tight in expectation, E[-K] = E[-log N(x0; 0, I)] = d/2 log(2 pi e)."""
    sched = sd.swiss_roll_schedule(10)
    model = sd.ReverseKernel(_StationaryMean(sched), _Zero(), sched)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    bound = sd.nll_bound(model, x0, generator=gen)
    assert float(bound.mean()) == pytest.approx(math.log(2 * math.pi * math.e), abs=0.03)
    samples = sd.sample(model, (4000, 2), generator=gen, dtype=torch.float64)
    assert float(samples.std()) == pytest.approx(1.0, abs=0.05)
    # the one-step training loss is an unbiased estimate of the same bound (per dimension)
    torch.manual_seed(1)
    with torch.no_grad():
        estimates = sd.BoundLoss()(model, x0) * 2
    stderr = float(estimates.std()) / math.sqrt(estimates.numel())
    assert abs(float(estimates.mean()) - float(bound.mean())) < 4 * stderr


def test_sd_kernel_starts_at_identity_mean_and_forward_variance():
    from diffnotes.nets import MLP

    sched = sd.swiss_roll_schedule()
    model = sd.ReverseKernel(MLP(2, hidden=8, depth=1), MLP(2, hidden=8, depth=1), sched)
    x = torch.randn(5, 2)
    mean, log_var = model(x, torch.tensor(7))
    assert torch.allclose(mean, x) and torch.allclose(log_var, sched.betas[6].log().float().expand(5, 2))
    with pytest.raises(ValueError):
        model(x, torch.tensor(0))


def test_gaussian_baseline_nll():
    gen = torch.Generator().manual_seed(0)
    train, test = torch.randn(20000, 2, generator=gen) * 2, torch.randn(20000, 2, generator=gen) * 2
    assert sd.gaussian_baseline_nll(train, test) == pytest.approx(math.log(2 * math.pi * math.e * 4), abs=0.03)
    with pytest.raises(ValueError):
        sd.gaussian_baseline_nll(train, test[:, :1])


def test_ncsn_code_step_convention_is_the_paper_form_at_twice_epsilon():
    # ermongroup/ncsn's sampler steps x + h s + sqrt(2h) z with h = eps sigma_i^2 / sigma_L^2;
    # Algorithm 1 steps x + (a/2) s + sqrt(a) z with a = eps sigma_i^2 / sigma_L^2. Same noise,
    # code at eps == paper at 2 eps; at the same eps they differ (the false variant).
    from diffnotes.data import GaussianMixture

    gmm = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [0.5, 0.8])
    ladder = ncsn.ncsn_sigmas(4, 3.0, 0.1)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def run(eps, convention):
        gen = torch.Generator().manual_seed(1)
        return ncsn.annealed_langevin(gmm.denoiser, x0, ladder, epsilon=eps, n_steps_each=7,
                                      final_denoise=True, generator=gen, step_convention=convention)

    code = run(1e-3, "code")
    assert torch.allclose(code, run(2e-3, "paper"), atol=1e-10, rtol=0)
    assert not torch.allclose(code, run(1e-3, "paper"), atol=1e-3)
    # Langevin time per level: the code's is twice the paper's at equal eps and T, and the
    # digits lab (eps = 2e-5, T = 50, paper form) runs a quarter of the code's default (T = 100)
    t_paper = ncsn.langevin_time_per_level(2e-5, 50, 1.0, 0.01, "paper")
    t_code = ncsn.langevin_time_per_level(2e-5, 100, 1.0, 0.01, "code")
    assert t_paper / t_code == pytest.approx(0.25)
    assert ncsn.langevin_time_per_level(1e-3, 7, 3.0, 0.1, "code") == pytest.approx(
        ncsn.langevin_time_per_level(2e-3, 7, 3.0, 0.1, "paper"))
    with pytest.raises(ValueError, match="step_convention"):
        run(1e-3, "official")
