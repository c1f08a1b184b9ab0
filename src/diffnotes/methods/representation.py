"""Diffusion-based representation learning (Abstreiter et al. 2021).

An encoder ``E`` reads the *clean* image ``x0`` and hands a short code ``z = E(x0)`` to the
denoiser, which now predicts ``D(x; sigma, z)`` from the noisy ``x = x0 + sigma n`` *and* the
code. Encoder and denoiser are trained together by the ordinary denoising loss and by nothing
else: no reconstruction from ``z`` alone, no contrastive pairs. The encoder is useful to the
denoiser only where the noisy image leaves ``x0`` uncertain, so the noise level chosen for
training decides what the code learns: almost nothing at a small ``sigma`` (the noisy image
already tells the denoiser ``x0``), the coarse content of ``x0`` at a large one. The proof
``conditioning_gain`` (``theory/proofs/compression_proofs.py``) makes that exact: the loss
falls by ``E|E[x0|x,z] - E[x0|x]|^2``, which for Gaussians is the MMSE times
``1 - exp(-2 I(x0; z | x))``.

* :class:`Encoder` — flattened image to a ``code_dim`` vector (an MLP).
* :class:`RepresentationDenoiser` — ``D(x; sigma, E(x0))``: EDM preconditioning around
  :class:`diffnotes.nets.VectorConditionedMLP` (the backbone of the retrieval and unCLIP
  decoders too), the code arriving through the ``class_labels`` slot of
  :class:`diffnotes.precond.Precond`; ``conditional=False`` in the loss feeds a zero code: the
  same network as an ordinary denoiser, the control arm.
* :class:`DenoisingRepresentationLoss` — EDM's weighted denoising loss at one ``sigma`` or at
  ``sigma`` drawn log-uniformly from a range.
* :class:`Autoencoder`, :class:`ReconstructionLoss` — the baseline: the same encoder trained
  to reconstruct ``x0`` from ``z`` alone, with the same budget.
* :func:`encode`, :func:`linear_probe` — what the lab measures, with the held-out denoising
  error ``diffnotes.metrics.denoising_error(model, x0, sigma, cond=x0)`` (the model encodes its
  condition, the clean image; ``cond=None`` gives the zero code).

Used in the book by ``book/papers/abstreiter2021diffusion.md`` and its notebook.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from diffnotes import constants as K
from diffnotes.methods.edm import edm_weight
from diffnotes.nets import VectorConditionedMLP, check_sizes, silu_mlp
from diffnotes.parameterization import append_dims
from diffnotes.precond import EDMPrecond
from diffnotes.theory.numeric import log_uniform_sigma

__all__ = ["Encoder", "RepresentationDenoiser",
           "DenoisingRepresentationLoss", "Autoencoder", "ReconstructionLoss", "encode",
           "linear_probe"]


class Encoder(nn.Module):
    """``z = E(x0)``: the flattened image through a two-hidden-layer MLP to ``code_dim``."""

    def __init__(self, dim: int = 64, code_dim: int = 8, hidden: int = 256):
        super().__init__()
        check_sizes(dim=dim, code_dim=code_dim, hidden=hidden)
        self.dim, self.code_dim = dim, code_dim
        self.net = silu_mlp(dim, hidden, code_dim)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        flat = x0.reshape(x0.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"Encoder expects {self.dim} values per image, got {flat.shape[1]}")
        return self.net(flat)


class RepresentationDenoiser(nn.Module):
    """``D(x; sigma, E(x0))``: EDM preconditioning around ``nets.VectorConditionedMLP``, with the
    code computed by :class:`Encoder` from the clean image (or given, or zero)."""

    def __init__(self, dim: int = 64, code_dim: int = 8, hidden: int = 256, depth: int = 3,
                 sigma_data: float = K.EDM_SIGMA_DATA):
        super().__init__()
        self.encoder = Encoder(dim, code_dim, hidden)
        self.denoiser = EDMPrecond(VectorConditionedMLP(dim, code_dim, hidden, depth),
                                   sigma_data=sigma_data)

    def forward(self, x: torch.Tensor, sigma, x0: torch.Tensor | None = None,
                code: torch.Tensor | None = None) -> torch.Tensor:
        if x0 is not None and code is not None:
            raise ValueError("give the clean image x0 or a code, not both")
        if x0 is not None:
            code = self.encoder(x0)
        return self.denoiser(x, sigma, class_labels=code)


def _check_sigma(sigma, sigma_range) -> None:
    if (sigma is None) == (sigma_range is None):
        raise ValueError("give exactly one of sigma (one noise level) and sigma_range (lo, hi)")
    if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if sigma_range is not None:
        lo, hi = sigma_range
        if not 0 < lo < hi < math.inf:
            raise ValueError(f"sigma_range must be (lo, hi) with 0 < lo < hi, got {sigma_range!r}")


class DenoisingRepresentationLoss:
    """Per-sample ``lambda(sigma) |D(x0 + sigma n; sigma, E(x0)) - x0|^2`` (mean over pixels).

    ``sigma`` fixes one noise level; ``sigma_range = (lo, hi)`` draws it log-uniformly per
    sample. ``conditional=False`` trains the same network with a zero code: the ordinary
    denoiser the representation is measured against. ``drop_code`` zeroes the code of that
    fraction of each batch (as classifier-free guidance drops labels), so one network also
    learns E[x0 | x] and the code's worth can be measured on it.
    """

    def __init__(self, sigma: float | None = None, *, sigma_range=None,
                 sigma_data: float = K.EDM_SIGMA_DATA, conditional: bool = True,
                 drop_code: float = 0.0):
        _check_sigma(sigma, sigma_range)
        if not 0 <= drop_code < 1:
            raise ValueError(f"drop_code must be in [0, 1), got {drop_code!r}")
        self.sigma, self.sigma_range = sigma, sigma_range
        self.sigma_data, self.conditional, self.drop_code = sigma_data, conditional, drop_code

    def draw_sigma(self, n: int, like: torch.Tensor) -> torch.Tensor:
        if self.sigma is not None:
            return torch.full((n,), float(self.sigma), dtype=like.dtype, device=like.device)
        return log_uniform_sigma(torch.rand(n, dtype=like.dtype, device=like.device), *self.sigma_range)

    def __call__(self, model: RepresentationDenoiser, x0: torch.Tensor,
                 class_labels=None) -> torch.Tensor:
        sigma = self.draw_sigma(x0.shape[0], x0)
        noise = torch.randn_like(x0)
        x = x0 + append_dims(sigma, x0) * noise
        if self.conditional:
            code = model.encoder(x0)
            if self.drop_code:
                keep = torch.rand(x0.shape[0], 1, device=x0.device) >= self.drop_code
                code = code * keep.to(code.dtype)
            denoised = model(x, sigma, code=code)
        else:
            denoised = model(x, sigma)
        error = (denoised - x0).pow(2).reshape(x0.shape[0], -1).mean(dim=1)
        return edm_weight(sigma, self.sigma_data) * error


class Autoencoder(nn.Module):
    """The baseline: the same :class:`Encoder`, and an MLP decoder from the code alone."""

    def __init__(self, dim: int = 64, code_dim: int = 8, hidden: int = 256):
        super().__init__()
        self.encoder = Encoder(dim, code_dim, hidden)
        self.decoder = silu_mlp(code_dim, hidden, dim)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x0)).reshape(x0.shape)


class ReconstructionLoss:
    """Per-sample squared reconstruction error ``|dec(E(x0)) - x0|^2`` (mean over pixels)."""

    def __call__(self, model: Autoencoder, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        return (model(x0) - x0).pow(2).reshape(x0.shape[0], -1).mean(dim=1)


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The codes of ``images`` (evaluation mode, no gradients), float32 on the CPU."""
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(images[i:i + batch_size]).float().cpu()
                     for i in range(0, len(images), batch_size)])
    encoder.train(was_training)
    return out


def linear_probe(train_features, train_labels, test_features, test_labels, *,
                 c: float = 1.0) -> float:
    """Test accuracy of a multinomial logistic regression (L2, strength 1/``c``) fitted on
    standardised training features: how linearly readable the labels are from a code."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = [np.asarray(torch.as_tensor(f).reshape(len(f), -1), dtype=np.float64)
          for f in (train_features, test_features)]
    ys = [np.asarray(torch.as_tensor(y)).reshape(-1) for y in (train_labels, test_labels)]
    for x, y, name in zip(xs, ys, ("train", "test")):
        if len(x) != len(y):
            raise ValueError(f"linear_probe: {len(x)} {name} features but {len(y)} labels")
        if not np.isfinite(x).all():
            raise ValueError(f"linear_probe: the {name} features contain NaN or inf")
    if xs[0].shape[1] != xs[1].shape[1]:
        raise ValueError(f"linear_probe: train features have {xs[0].shape[1]} columns, "
                         f"test features {xs[1].shape[1]}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    probe.fit(xs[0], ys[0])
    return float((probe.predict(xs[1]) == ys[1]).mean())
