"""iDDPM (diffnotes.methods.iddpm) on the chain's shared pieces: its sampler is the chain's
ancestral loop with the learned variance, bit for bit the loop it replaced (issue 24).

The method's other tests (schedules, L_vlb with a fixed v, L_hybrid, importance sampling) live in
``tests/test_methods_group_b.py``.
"""

import pytest
import torch

from diffnotes.methods import iddpm
from diffnotes.methods.iddpm import log_variance, respace
from diffnotes.nets import MLP
from diffnotes.precond import EDMPrecond


@torch.no_grad()
def _old_sample(model, shape, schedule, *, steps=None, generator=None, dtype=torch.float32):
    """Frozen reference: iddpm.sample as written before it called chain.ancestral_sample."""
    short, kept = respace(schedule, schedule.T if steps is None else steps)
    sigmas = schedule.sigmas[kept - 1]
    x_t = torch.randn(shape, generator=generator, dtype=dtype)
    for k in range(short.T, 0, -1):
        t = torch.full((shape[0],), k, dtype=torch.long)
        x = x_t / float(short.alpha_bar[k - 1].sqrt())
        sigma = x.new_full((shape[0],), float(sigmas[k - 1]))
        mean, _ = short.posterior(t, model(x, sigma, None).to(dtype), x_t)
        if k > 1:
            log_var = log_variance(model.v(x, sigma, None).to(dtype), short, t)
            noise = torch.randn(shape, generator=generator, dtype=dtype)
            x_t = mean + (0.5 * log_var).exp() * noise
        else:
            x_t = mean
    return x_t


def _model():
    torch.manual_seed(0)
    model = iddpm.LearnedVarianceModel(EDMPrecond(MLP(dim=2, hidden=32, depth=2)), MLP(dim=2, hidden=16, depth=1))
    for p in model.v_backbone.parameters():  # a v head that is not constant
        torch.nn.init.normal_(p, std=0.05)
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [None, 7])
def test_sampler_is_the_old_loop_bit_for_bit(steps, dtype):
    model = _model()
    for schedule in (iddpm.cosine_schedule(60), iddpm.linear_schedule(40)):
        old = _old_sample(model, (32, 2), schedule, steps=steps, generator=torch.Generator().manual_seed(1),
                          dtype=dtype)
        new = iddpm.sample(model, (32, 2), schedule, steps=steps, generator=torch.Generator().manual_seed(1),
                           dtype=dtype)
        assert bool(torch.isfinite(new).all()) and torch.equal(old, new)
