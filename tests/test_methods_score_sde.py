"""The one reverse-SDE drift (diffnotes.methods.score_sde.reverse_drift) and the two samplers on it."""

from __future__ import annotations

import pytest
import torch

from diffnotes.methods import gotta_go_fast as ggf
from diffnotes.methods import score_sde
from diffnotes.parameterization import append_dims

F64 = torch.float64

# Recorded with the code before the drift moved into one function (commit 1d7df72): each sampler
# on the ideal denoiser of N(0, I) data, float64, fixed seeds. (reverse_sde_sample, adaptive_sample, NFE)
FROZEN = {
    "vp": ([-0.7308844132123844, 0.9603013629440733, -0.8136549287924331, -0.4566672180393779,
            0.13380173928217678, -0.4289408926315949],
           [0.9148152623356767, 1.0776755290551616, -2.240729631238743, 1.8733231131581014,
            -0.6728972471123451, -1.7672141242430777], 217),
    "subvp": ([-0.31071646737238323, 0.683593475757378, -0.795713917187301, -0.4733379021512592,
               0.1426015033246528, -0.3977208047988997],
              [-0.6084920227850606, 1.318245978499026, -2.1907869215712954, 1.7704449573854468,
               0.5068073086056488, 0.8819274342541586], 219),
    "ve": ([-0.9443455305116744, -0.694092170914167, -0.17704952131358676, -1.2517383582575565,
            0.7707234489132395, -0.024877156698929977],
           [1.4063739466014331, 0.6912150156184128, -1.810337654584288, 0.5127042763043542,
            -2.4413166289184853, -1.300085302463411], 157),
}
PARAMS = {"vp": {}, "subvp": {}, "ve": {"sigma_max": 5.0}}


def _gauss(x, sigma):
    """E[x0 | x0 + sigma n] for x0 ~ N(0, I)."""
    return x / (1 + append_dims(torch.as_tensor(sigma, dtype=x.dtype), x) ** 2)


def test_reverse_drift_is_f_x_minus_g_squared_score():
    g = torch.Generator().manual_seed(0)
    x, score = torch.randn(5, 3, 2, 2, generator=g, dtype=F64), torch.randn(5, 3, 2, 2, generator=g, dtype=F64)
    f_t, g_t = torch.rand(5, generator=g, dtype=F64), torch.rand(5, generator=g, dtype=F64)
    want = f_t.reshape(5, 1, 1, 1) * x - (g_t**2).reshape(5, 1, 1, 1) * score
    torch.testing.assert_close(score_sde.reverse_drift(x, score, f_t, g_t), want, rtol=1e-15, atol=0)
    # numbers: the same formula with the one f and g for the whole batch
    torch.testing.assert_close(score_sde.reverse_drift(x, score, 0.3, 2.0), 0.3 * x - 4.0 * score)
    # a false variant (g not squared) differs
    assert not torch.allclose(score_sde.reverse_drift(x, score, 0.3, 2.0), 0.3 * x - 2.0 * score)


@pytest.mark.parametrize("sde", list(FROZEN))
def test_both_samplers_unchanged_by_the_shared_drift(sde):
    em_want, adaptive_want, nfe = FROZEN[sde]
    x = score_sde.prior_sample(sde, (3, 2), generator=torch.Generator().manual_seed(1), dtype=F64, **PARAMS[sde])
    em = score_sde.reverse_sde_sample(_gauss, sde, x, 8, generator=torch.Generator().manual_seed(2), **PARAMS[sde])
    adaptive, stats = ggf.adaptive_sample(_gauss, sde, x, eps_abs=0.01, eps_rel=0.05,
                                          generator=torch.Generator().manual_seed(3), **PARAMS[sde])
    torch.testing.assert_close(em.flatten(), torch.tensor(em_want, dtype=F64), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(adaptive.flatten(), torch.tensor(adaptive_want, dtype=F64), rtol=1e-12, atol=1e-14)
    assert stats.nfe == nfe
