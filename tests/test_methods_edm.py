"""EDM's losses (diffnotes.methods.edm): the one loss weight and the one log-uniform draw."""

from __future__ import annotations

import torch

from diffnotes.methods.edm import EDMLoss, edm_weight
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
