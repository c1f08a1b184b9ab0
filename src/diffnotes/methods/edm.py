"""Denoising score-matching losses of the formulations compared by EDM (Karras et al. 2022).

Each loss draws a noise level per sample from its training distribution p_train(sigma), adds
noise, and weights the squared denoising error by lambda(sigma) (EDM Table 1, "Training"):

    loss = lambda(sigma) * || D(y + n; sigma) - y ||^2,   n ~ N(0, sigma^2 I)

The squared error is averaged over the non-batch dimensions, so the returned tensor has shape
(N,) and its scale does not grow with image size (NVlabs/edm sums instead; only the learning-rate
scale differs). Randomness comes from torch's global generator, which ``diffnotes.train.fit``
seeds and checkpoints.

Here: :class:`EDMLoss` (EDM's column), :class:`VELoss` (VE, NCSN++) and :func:`edm_weight`. The VP
column (DDPM++: t ~ U(epsilon_t, 1), sigma = sigma_VP(t), lambda = 1/sigma^2) is Score SDE's
loss on the VP SDE, :class:`diffnotes.methods.score_sde.ScoreSDELoss` with ``sde="vp"``, written
once there; ``LOSSES["vp"]`` is that class (``tests/test_methods_edm.py`` shows the two columns'
draws and weights agree).

Used in the book by the EDM chapter, the VP (DDPM++) and VE (NCSN++) lab notebooks, and
``python -m diffnotes train --method edm|vp|ve`` (through :data:`LOSSES`).
"""

from __future__ import annotations

import torch

from .. import constants as K
from ..parameterization import append_dims
from ..theory.numeric import log_uniform_sigma
from .score_sde import ScoreSDELoss

__all__ = ["edm_weight", "EDMLoss", "VELoss", "LOSSES"]


def edm_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's loss weight lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (eq. 8).

    The one PyTorch line of Table 1's EDM weight (``tests/test_numeric.py`` checks it against
    ``diffnotes.theory.numeric.table1("edm").loss_weight``); :class:`EDMLoss` and every loss
    that weights a denoising error the EDM way call it.
    """
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class _DenoisingLoss:
    """lambda(sigma) ||D(y + n; sigma) - y||^2 with sigma = sigma_from(one standard draw) per sample.

    A subclass says its Table 1 column in three lines: ``draw`` (``torch.rand`` for u ~ U(0, 1)
    or ``torch.randn`` for z ~ N(0, 1)), ``sigma_from(draw)`` (p_train) and ``weight(sigma)``
    (lambda). ``tests/test_numeric.py`` checks the last two against ``diffnotes.theory``.
    """

    draw = staticmethod(torch.rand)

    def sigma_from(self, draw: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1 / sigma**2

    def __call__(self, model, x0, class_labels=None):
        sigma = self.sigma_from(self.draw(x0.shape[0], device=x0.device))  # (N,)
        n = torch.randn_like(x0) * append_dims(sigma, x0)
        D_yn = model(x0 + n, sigma, class_labels)
        return (append_dims(self.weight(sigma), x0) * (D_yn - x0) ** 2).flatten(1).mean(dim=1)


class VELoss(_DenoisingLoss):
    """VE (NCSN++ / SMLD): log sigma ~ U(log sigma_min, log sigma_max), lambda = 1/sigma^2."""

    def __init__(self, sigma_min: float = K.VE_SIGMA_MIN, sigma_max: float = K.VE_SIGMA_MAX):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma_from(self, draw):
        return log_uniform_sigma(draw, self.sigma_min, self.sigma_max)


class EDMLoss(_DenoisingLoss):
    """EDM: ln sigma ~ N(P_mean, P_std^2), lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""

    draw = staticmethod(torch.randn)

    def __init__(self, P_mean: float = K.EDM_P_MEAN, P_std: float = K.EDM_P_STD,
                 sigma_data: float = K.EDM_SIGMA_DATA):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def sigma_from(self, draw):
        return (draw * self.P_std + self.P_mean).exp()

    def weight(self, sigma):
        return edm_weight(sigma, self.sigma_data)


# EDM Table 1's three training columns by name; each is called with the preconditioning's
# keyword arguments (``sigma_data`` for EDM, none for VP and VE).
LOSSES = {"edm": EDMLoss, "vp": ScoreSDELoss, "ve": VELoss}
