"""diffnotes.methods.compression: the compressor's rate is the bound's terms, real messages
decode to what the sender drew, a broken coder is caught, the plan and the DCT baseline."""

import math

import pytest
import torch

from diffnotes.chain import DiscreteSchedule, prior_kl
from diffnotes.methods.compression import (ESCAPE_BITS, compress, dct_codec,
                                           mlp_digits_denoiser, plan_groups, step_gaussians)
from diffnotes.methods.ddpm import vlb_terms
from diffnotes.metrics import psnr
from diffnotes.theory.proofs import compression_proofs as C, get_proof

SCHEDULE = DiscreteSchedule.cosine(T=8)


def _oracle(x0):
    """A denoiser that knows the image: every step's KL is then ~0 except the prior's."""
    def denoiser(x, sigma, class_labels=None):
        return x0.float().expand_as(x)
    return denoiser


def _images(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g) * 2 - 1


def test_the_rate_is_the_bound_term_by_term():
    """The ideal compressor's expected message k equals L_{t-1} (and message 0 is L_T): the
    KL of each step agrees with ddpm.vlb_terms on the same x_t, averaged over many draws."""
    torch.manual_seed(0)
    model = mlp_digits_denoiser(hidden=32)
    torch.nn.init.normal_(model.backbone.mlp.out.weight, std=0.05)
    x0 = _images(1).expand(400, 1, 8, 8).contiguous()
    out = compress(model, x0, SCHEDULE, [1], generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out.message_kl[:, 0] * math.log(2), prior_kl(x0.double(), SCHEDULE))
    for k, t in [(1, 8), (4, 5), (7, 2)]:
        terms = vlb_terms(model, x0, torch.full((400,), t), SCHEDULE,
                          noise=torch.randn(x0.shape, generator=torch.Generator().manual_seed(t)))
        measured = out.message_kl[:, k].mean() * math.log(2)
        expected = terms.double().mean()
        se = (terms.double().std() + out.message_kl[:, k].std() * math.log(2)) / math.sqrt(400)
        assert abs(measured - expected) < 4 * se + 1e-6, (t, measured, expected)
    # the rate at the last stop is the sum of all messages
    assert torch.allclose(out.kl_rate[:, 0], out.message_kl.sum(1))


def test_step_gaussians_share_the_posterior_variance():
    x0 = _images(2)
    x_t = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    mean_q, mean_p, var = step_gaussians(_oracle(x0), SCHEDULE, x0, x_t, 5)
    assert torch.allclose(mean_q, mean_p, atol=1e-6)  # the oracle's p is the posterior
    assert float(var.flatten()[0]) == pytest.approx(float(SCHEDULE.beta_tilde[4]))
    with pytest.raises(ValueError, match="decoder"):
        step_gaussians(_oracle(x0), SCHEDULE, x0, x_t, 1)


def _plan_for(model, x0, target=6.0):
    ideal = compress(model, x0, SCHEDULE, [1], generator=torch.Generator().manual_seed(0))
    return plan_groups(ideal.kl_per_dim, target)


def test_real_messages_deliver_the_senders_sample_and_cost_about_the_kl():
    torch.manual_seed(0)
    model = mlp_digits_denoiser(hidden=32)
    torch.nn.init.normal_(model.backbone.mlp.out.weight, std=0.02)
    x0 = _images(2)
    plan = _plan_for(model, _images(16, seed=1))
    sent = compress(model, x0, SCHEDULE, [1, 4], method="pfr", plan=plan, seed=5)
    again = compress(model, x0, SCHEDULE, [1, 4], method="pfr", plan=plan, seed=5)
    assert torch.equal(sent.reconstructions, again.reconstructions)  # deterministic given seed
    assert bool((sent.coded_rate >= 0.9 * sent.kl_rate).all())
    n_groups = sum(len(g) for g in plan)
    # PFR + Elias delta + a flag: a few bits per group on top of the KL, never far more
    assert bool((sent.coded_rate[:, 0] < sent.kl_rate[:, 0] + 14 * n_groups).all())
    ideal = compress(model, x0, SCHEDULE, [1], generator=torch.Generator().manual_seed(2))
    assert psnr(sent.reconstructions[0].float(), x0) > psnr(ideal.reconstructions[0].float(),
                                                             x0) - 3


def test_a_coder_that_ignores_q_is_caught():
    """The notebook's DIFFNOTES_BROKEN control: the prior coder sends draws of p; with an
    oracle model p equals q at every step but the first, so use a weak model instead."""
    torch.manual_seed(0)
    model = mlp_digits_denoiser(hidden=32)  # untrained: p knows nothing about x0
    x0 = _images(2)
    plan = _plan_for(model, _images(16, seed=1))
    good = compress(model, x0, SCHEDULE, [1], method="pfr", plan=plan, seed=3)
    bad = compress(model, x0, SCHEDULE, [1], method="prior", plan=plan, seed=3)
    assert psnr(good.reconstructions[0].float(), x0) > psnr(bad.reconstructions[0].float(),
                                                            x0) + 6


def test_plan_groups_reaches_the_target():
    kl = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 3.0, 0.5]])
    plan = plan_groups(kl, 4.0)
    assert [g.tolist() for g in plan[0]] == [[0, 1, 2, 3]]
    assert [g.tolist() for g in plan[1]] == [[0], [2, 1, 3]]
    with pytest.raises(ValueError, match="target_bits"):
        plan_groups(kl, 0)
    with pytest.raises(ValueError, match="non-negative"):
        plan_groups(-kl, 1.0)


def test_bad_input_gives_one_clear_line():
    x0 = _images(1)
    with pytest.raises(ValueError, match="unknown method"):
        compress(_oracle(x0), x0, SCHEDULE, [1], method="zip")
    with pytest.raises(ValueError, match="needs a plan"):
        compress(_oracle(x0), x0, SCHEDULE, [1], method="pfr")
    with pytest.raises(ValueError, match=r"integer in 1\.\.8"):
        compress(_oracle(x0), x0, SCHEDULE, [9])
    with pytest.raises(ValueError, match="step must be a positive"):
        dct_codec(x0, x0, 0.0)


def test_an_unaffordable_coordinate_escapes():
    """One coordinate whose KL exceeds the search limit is sent as a float64 (flag + 64)."""
    from diffnotes.methods.compression import _code_group
    mq, mp, std = torch.tensor([30.0]), torch.tensor([0.0]), torch.tensor([1.0])
    sample, bits, searched = _code_group(mq, mp, std, 7, "pfr", 2.0, 8)
    assert bits == 1 + ESCAPE_BITS and searched == 0
    assert abs(float(sample) - 30.0) < 6


def test_dct_codec_trades_bits_for_psnr():
    x = _images(64)
    fine_bits, fine = dct_codec(x, x, 0.05)
    coarse_bits, coarse = dct_codec(x, x, 1.0)
    assert fine_bits.mean() > coarse_bits.mean()
    assert psnr(fine, x) > psnr(coarse, x) + 10
    assert psnr(fine, x) > 40  # quantisation error of step 0.05 in an orthonormal basis


def test_compression_rate_proof_verifies_and_fails_when_false():
    assert get_proof("diffusion_compression_rate").verify()
    assert not C.posterior_chain_check(variance_factor=2).ok


def test_fixed_budgets_send_exactly_the_planned_bits():
    """MRC with lengths agreed in advance: the message is the sum of the budgets, whatever
    the image, and a trained-enough model's reconstruction survives it."""
    from diffnotes.methods.compression import group_budgets
    torch.manual_seed(0)
    model = mlp_digits_denoiser(hidden=32)
    torch.nn.init.normal_(model.backbone.mlp.out.weight, std=0.02)
    train = _images(16, seed=1)
    ideal = compress(model, train, SCHEDULE, [1], generator=torch.Generator().manual_seed(0))
    plan = plan_groups(ideal.kl_per_dim, 6.0)
    budgets = group_budgets(ideal.kl_per_dim, plan, extra_bits=2.0)
    x0 = _images(2)
    sent = compress(model, x0, SCHEDULE, [1], method="mrc", plan=plan, budgets=budgets, seed=4)
    total = sum(sum(b) for b in budgets)
    assert torch.equal(sent.coded_rate[:, 0], torch.full((2,), float(total), dtype=torch.float64))
    with pytest.raises(ValueError, match="budgets go with method='mrc'"):
        compress(model, x0, SCHEDULE, [1], method="pfr", plan=plan, budgets=budgets)
    with pytest.raises(ValueError, match="plan has"):
        group_budgets(ideal.kl_per_dim, plan[:-1])
