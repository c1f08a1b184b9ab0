"""EDM's losses (diffnotes.methods.edm): the one loss weight and the one log-uniform draw."""

from __future__ import annotations

import math

import torch

from diffnotes.methods.edm import EDMLoss, VELoss, edm_weight
from diffnotes.theory import numeric

F64 = torch.float64


def test_edm_weight_is_table1_loss_weight():
    sigma = torch.logspace(-3, 2, 41, dtype=F64)
    for sigma_data in (0.5, 0.2, 1.0):
        theory = numeric.table1("edm", sigma_data=sigma_data).loss_weight(sigma)
        torch.testing.assert_close(edm_weight(sigma, sigma_data), theory, rtol=1e-12, atol=0)


def test_edm_loss_weights_with_edm_weight():
    sigma = torch.rand(100) * 10 + 1e-3
    assert torch.equal(EDMLoss(sigma_data=0.3).weight(sigma), edm_weight(sigma, 0.3))


def test_edm_weight_recorded_values():
    # frozen values of the weight before it moved here from methods/representation.py
    sigma = torch.tensor([0.002, 0.5, 1.0, 80.0])
    want = torch.tensor([250004.0, 8.0, 5.0, 4.00015625])
    torch.testing.assert_close(edm_weight(sigma, 0.5), want, rtol=1e-6, atol=0)


def test_log_uniform_sigma_is_the_ve_columns_training_draw():
    u = torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=F64).clamp_min(1e-6)
    for sigma_min, sigma_max in ((0.02, 100.0), (0.1, 10.0)):
        theory = numeric.table1("ve", "edm", sigma_min=sigma_min, sigma_max=sigma_max).train_sigma(u)
        ours = numeric.log_uniform_sigma(u, sigma_min, sigma_max)
        torch.testing.assert_close(ours, theory, rtol=1e-12, atol=0)
        torch.testing.assert_close(ours.log(), math.log(sigma_min) + u * math.log(sigma_max / sigma_min))


def test_every_log_uniform_loss_draws_through_the_one_function():
    from diffnotes.methods.guidance import ClassifierLoss
    from diffnotes.methods.representation import DenoisingRepresentationLoss

    u = torch.rand(64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(VELoss(0.1, 10.0).sigma_from(u), numeric.log_uniform_sigma(u, 0.1, 10.0))
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x, sigma, class_labels=None):
            seen.append(sigma)
            return torch.zeros(x.shape[0], 10)

    x0 = torch.zeros(64, 1, 8, 8)
    torch.manual_seed(3)
    ClassifierLoss(0.01, 50.0)(Record(), x0, torch.zeros(64, dtype=torch.long))
    torch.manual_seed(3)
    assert torch.equal(seen[-1], numeric.log_uniform_sigma(torch.rand(64), 0.01, 50.0))
    torch.manual_seed(4)
    drawn = DenoisingRepresentationLoss(sigma_range=(0.2, 5.0)).draw_sigma(64, x0)
    torch.manual_seed(4)
    assert torch.equal(drawn, numeric.log_uniform_sigma(torch.rand(64), 0.2, 5.0))


def test_a_wrong_log_uniform_draw_is_caught():
    # the check above must fail on a draw that is uniform in sigma instead of in ln sigma
    u = torch.linspace(0.01, 0.99, 50, dtype=F64)
    wrong = 0.1 + u * (10.0 - 0.1)
    theory = numeric.table1("ve", "edm", sigma_min=0.1, sigma_max=10.0).train_sigma(u)
    assert not torch.allclose(wrong, theory, rtol=1e-6)


def _old_vp_loss(model, x0):
    """Frozen copy of ``edm.VPLoss()`` before VP training was routed to ``ScoreSDELoss("vp")``:
    t = 1 + u (epsilon_t - 1), sigma = sigma_VP(t), lambda = 1 / sigma^2 (EDM Table 1)."""
    from diffnotes import constants as K
    from diffnotes.parameterization import append_dims

    sigma = numeric.vp_sigma(1 + torch.rand(x0.shape[0]) * (K.VP_EPS_T - 1))
    denoised = model(x0 + torch.randn_like(x0) * append_dims(sigma, x0), sigma)
    return (append_dims(1 / sigma**2, x0) * (denoised - x0) ** 2).flatten(1).mean(dim=1)


def test_vp_training_is_score_sde_loss_on_vp(monkeypatch):
    # EDM's VP column and Score SDE's loss on the VP SDE are one loss: t uniform on (epsilon_t, 1)
    # (mirrored: 1 + u (eps - 1) = eps + (1 - eps)(1 - u)), sigma = sigma_VP(t), weight 1/sigma^2.
    # Fed the same uniform draw (mirrored) and the same noise, the two give the same losses.
    from diffnotes.methods.edm import LOSSES
    from diffnotes.methods.score_sde import ScoreSDELoss

    assert LOSSES["vp"] is ScoreSDELoss and ScoreSDELoss().sde == "vp"
    u = torch.rand(256, generator=torch.Generator().manual_seed(5), dtype=F64)
    x0 = torch.randn(256, 3, generator=torch.Generator().manual_seed(6))

    def model(x, sigma, class_labels=None):
        return 0.7 * x

    def rand_returning(values):
        return lambda *shape, dtype=None, device=None, **kw: values.to(dtype or torch.float32)

    monkeypatch.setattr(torch, "rand", rand_returning(1 - u))
    torch.manual_seed(0)
    new = LOSSES["vp"]()(model, x0)
    monkeypatch.setattr(torch, "rand", rand_returning(u))
    torch.manual_seed(0)
    old = _old_vp_loss(model, x0)
    # equal up to the old loss's float32 time: 1 + u (eps - 1) cancels near t = eps (relative
    # error up to ~1e-3 of a small t there); the Score SDE loss draws t in float64
    torch.testing.assert_close(new, old, rtol=1e-3, atol=0)
    assert float(((new - old) / old).abs().median()) < 1e-6
    # a false variant: without the mirror the draws (and losses) differ
    monkeypatch.setattr(torch, "rand", rand_returning(u))
    torch.manual_seed(0)
    assert not torch.allclose(LOSSES["vp"]()(model, x0), old, rtol=1e-2)


def test_score_sde_vp_draw_is_table1_vp_training_draw():
    from diffnotes.methods.score_sde import ScoreSDELoss

    loss = ScoreSDELoss("vp")
    u = torch.rand(200, generator=torch.Generator().manual_seed(4), dtype=F64)
    theory = numeric.table1("vp")
    assert theory.train_draw == "uniform"
    # the loss's time eps + (1 - eps) u is Table 1's 1 + u' (eps - 1) at u' = 1 - u
    torch.testing.assert_close(loss.sigma(loss.eps + (1 - loss.eps) * u), theory.train_sigma(1 - u),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(1 / theory.train_sigma(u) ** 2, theory.loss_weight(theory.train_sigma(u)),
                               rtol=1e-12, atol=0)
