"""Sample-quality and likelihood metrics used across the book: the one import for all of them.

This module writes the package's held-out denoising error and gathers the metric modules under
one name (each has one subject; every name below is importable from here as well):

* :mod:`diffnotes.toy_metrics`, sets of points such as the 2-D toys: :func:`sliced_wasserstein`
  (SW-2), :func:`mmd` (unbiased MMD^2), :func:`sliced_wasserstein_band` (the real-vs-real
  band) and, for the Gaussian mixture whose density is known, :func:`gmm_log_likelihood`.
* :mod:`diffnotes.feature_metrics`, image sets on any features: :func:`frechet_distance` (the
  FID formula of Heusel et al. 2017), :func:`kernel_distance` (the unbiased KID of Binkowski
  et al. 2018, with its standard error) and :func:`precision_recall` (improved precision and
  recall, Kynkaanniemi et al. 2019); for digits, :func:`digits_report` (:class:`DigitsReport`),
  which scores samples against the evaluation split *and* scores a real set of the same size
  the same way, so every number comes with the band real data gets, and
  :func:`frechet_digits_distance` ("FDD"), the Fréchet distance alone in that space. The
  features, :func:`digits_features` and :func:`digits_classify`, are those of the small
  classifier of :mod:`diffnotes.features`, trained on a split no metric uses as reference.
* :mod:`diffnotes.restoration_metrics`: :func:`psnr` and :func:`ssim` (Wang et al. 2004) for the
  super-resolution and inpainting chapters, and :func:`high_frequency_energy`.
* :mod:`diffnotes.likelihood`: :func:`pf_ode_log_likelihood` (the probability-flow ODE as a
  continuous normalising flow of Song et al. 2021), :func:`bits_per_dim_from_nll` and the
  independent-pixels baseline :func:`independent_pixels_bits_per_dim`.
* Here, denoising on held-out data at one noise level: :func:`noisy_and_denoised` (x0 + sigma n
  and D(x0 + sigma n; sigma), n from a given generator) and :func:`denoising_error`, the squared
  error of D against x0 (the denoising loss itself, unweighted), the one held-out denoising
  error of the package.

Every function takes torch tensors with the batch first and returns a float or a tensor; none of
them trains anything.
"""

from __future__ import annotations

import torch

from . import feature_metrics, likelihood, restoration_metrics, toy_metrics
from .feature_metrics import (DIGITS_MIN_N, DigitsReport, digits_report, frechet_digits_distance,
                              frechet_distance, kernel_distance, precision_recall)
from .features import digits_classify, digits_features
from .likelihood import PF_ODE_UNITS, bits_per_dim_from_nll, independent_pixels_bits_per_dim, pf_ode_log_likelihood
from .restoration_metrics import high_frequency_energy, psnr, ssim
from .toy_metrics import (DEFAULT_BANDWIDTHS, MMD_KERNELS, gmm_log_likelihood, mmd, sliced_wasserstein,
                          sliced_wasserstein_band)

# each part lists its own names once; this module gathers them and adds its own two
__all__ = [*toy_metrics.__all__, *feature_metrics.__all__, "digits_features", "digits_classify",
           *restoration_metrics.__all__, *likelihood.__all__,
           "noisy_and_denoised", "denoising_error"]


@torch.no_grad()
def noisy_and_denoised(denoiser, x0: torch.Tensor, sigma: float, *, cond=None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0 + sigma n, D(x0 + sigma n; sigma))`` for held-out ``x0`` at one noise level.

    ``n ~ N(0, I)`` is one draw of ``x0``'s shape and dtype from ``generator`` (so two models or two
    conditions can be compared on the same noise); the denoiser gets ``sigma`` per sample and,
    when ``cond`` is given, ``cond`` as its third argument (a label, a code, a low-resolution image).
    """
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    noisy = x0 + sigma * noise
    sigmas = x0.new_full((x0.shape[0],), float(sigma))
    denoised = denoiser(noisy, sigmas) if cond is None else denoiser(noisy, sigmas, cond)
    return noisy, denoised


@torch.no_grad()
def denoising_error(denoiser, x0: torch.Tensor, sigma: float, *, cond=None,
                    generator: torch.Generator | None = None, reduction: str = "mean"):
    """Squared error ``|D(x0 + sigma n; sigma) - x0|^2`` on held-out ``x0`` at one noise level.

    The noise and the call are those of :func:`noisy_and_denoised`. ``reduction="mean"``: the mean
    over every value, a float; ``"none"``: each sample's mean over its values, shape (N,) (weight
    it, e.g. by ``diffnotes.methods.edm.edm_weight``, for a weighted loss).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    _, denoised = noisy_and_denoised(denoiser, x0, sigma, cond=cond, generator=generator)
    error = (denoised - x0) ** 2
    return error.mean().item() if reduction == "mean" else error.flatten(1).mean(dim=1)
