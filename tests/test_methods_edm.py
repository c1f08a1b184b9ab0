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
