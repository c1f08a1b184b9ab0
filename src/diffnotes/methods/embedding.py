"""A denoiser conditioned on a vector embedding, shared by the retrieval (RDM) and unCLIP chapters.

Blattmann et al. 2022 condition a diffusion model on the embeddings of retrieved neighbours;
Ramesh et al. 2022 condition theirs on a CLIP image embedding, and their diffusion *prior* is a
denoiser of embeddings conditioned on a text embedding. All three are one kind of object: a
denoiser ``D(x; sigma, c)`` whose condition ``c`` is a real vector, trained with EDM's loss
(``diffnotes.methods.edm.EDMLoss``, the condition travelling through the ``class_labels`` slot
of the loss contract) and sampled with the package's solvers. This module builds the two
decoders (retrieval's and unCLIP's) and gives the two measurements both chapters make; unCLIP's
prior is built by ``diffnotes.methods.unclip.prior_denoiser`` around ``nets.MLP``, the text
embedding entering as a soft class label (the network its lab was run with).

* :func:`embedding_denoiser` — EDM preconditioning around
  :class:`diffnotes.nets.VectorConditionedMLP` (pixels, condition and noise embedding read side
  by side; the same backbone as the representation-learning denoiser of
  :mod:`diffnotes.methods.representation`); a zero condition is the unconditional input.
* :func:`sample_conditioned` — Heun's sampler on EDM's noise levels, one condition per sample.
* :func:`conditioned_loss` — the EDM-weighted denoising loss of held-out data at fixed noise
  levels and fixed noise, so that two models (or two conditions) are compared on the same draws
  (each level's error is ``diffnotes.metrics.denoising_error``).
"""

from __future__ import annotations

import torch

from .. import constants as K
from ..metrics import denoising_error
from ..nets import VectorConditionedMLP
from ..precond import EDMPrecond
from ..sampling import sample, sigma_schedule
from .edm import edm_weight

__all__ = ["embedding_denoiser", "sample_conditioned", "conditioned_loss"]


def embedding_denoiser(dim: int, cond_dim: int, *, hidden: int = 128, depth: int = 3,
                       sigma_data: float = K.EDM_SIGMA_DATA) -> EDMPrecond:
    """``D(x; sigma, c)`` for flattened data of ``dim`` values and conditions of ``cond_dim``."""
    return EDMPrecond(VectorConditionedMLP(dim, cond_dim, hidden, depth), sigma_data=sigma_data)


def _check_cond(cond: torch.Tensor, n: int | None = None) -> torch.Tensor:
    cond = torch.as_tensor(cond)
    if cond.ndim != 2 or (n is not None and cond.shape[0] != n):
        want = f"({n}, cond_dim)" if n is not None else "(N, cond_dim)"
        raise ValueError(f"the condition must have shape {want}, got {tuple(cond.shape)}")
    return cond


@torch.no_grad()
def sample_conditioned(denoiser, cond: torch.Tensor, shape: tuple[int, ...], *, steps: int = 18,
                       generator: torch.Generator | None = None,
                       sigma_min: float = K.EDM_SIGMA_MIN,
                       sigma_max: float = K.EDM_SIGMA_MAX) -> torch.Tensor:
    """One sample per row of ``cond`` (shape ``(N, cond_dim)``), each of ``shape``, drawn with
    Heun's method on ``steps`` Karras noise levels from N(0, sigma_max^2 I)."""
    cond = _check_cond(cond)
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    n = cond.shape[0]
    x = torch.randn((n, *shape), generator=generator) * sigma_max
    sigmas = sigma_schedule("karras", steps, sigma_min, sigma_max).to(torch.float32)
    return sample(lambda z, s: denoiser(z, s, cond), x, sigmas, solver="heun")


@torch.no_grad()
def conditioned_loss(denoiser, x0: torch.Tensor, cond: torch.Tensor | None, sigmas, *,
                     seed: int = 0, sigma_data: float = K.EDM_SIGMA_DATA) -> torch.Tensor:
    """Per-sample EDM-weighted denoising loss of ``x0`` averaged over the noise levels
    ``sigmas``, with noise drawn from ``seed`` (the same draws for every model and condition);
    ``cond`` None means the zero condition. Returns shape (N,)."""
    n = x0.shape[0]
    if cond is not None:
        cond = _check_cond(cond, n)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(n)
    for sigma in sigmas:
        error = denoising_error(denoiser, x0, float(sigma), cond=cond, generator=generator,
                                reduction="none")
        total += edm_weight(torch.full((n,), float(sigma)), sigma_data) * error
    return total / len(sigmas)
