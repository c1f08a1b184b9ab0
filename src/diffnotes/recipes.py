"""Training recipes: the few trained models that several notebooks (or chapters) share, one each.

A recipe fixes the data, the network (a builder of :mod:`diffnotes.presets` or of a paper
module), the loss and the optimiser settings, and trains through :func:`diffnotes.train.fit`, so
every recipe obeys ``DIFFNOTES_TRAIN_STEPS`` like any other run. Each returns ``fit``'s
:class:`~diffnotes.train.TrainResult` (use ``model_ema``).

Why a module of its own rather than ``presets``: a recipe needs a paper's loss
(``methods.edm.EDMLoss``, guidance's label dropout and classifier), while paper modules build
their networks with ``presets``' builders. Keeping recipes here lets every import point one
way, ``nets`` -> ``presets`` -> ``methods`` -> ``recipes``, with no circle.

* :func:`fit_digits_denoiser` -- the class-conditional digits U-Net of the guidance chapters
  (ADM, classifier-free guidance), trained with EDM's loss and label dropout;
* :func:`fit_noisy_classifier` -- the noise-aware digits classifier of classifier guidance;
* :func:`train_unconditional` -- the unconditional EDM denoiser (a ``presets.small_unet``) that
  the ILVR and CCDF labs train once per seed and reuse for every experiment;
* :func:`fit_in_stages` -- ``fit`` to several step counts in turn, resuming from a checkpoint and
  evaluating after each stage (the SRDiff lab's convergence comparison).

Other trainers stay with what they train: ``features.train_digits_classifier`` (the grading
classifier) and ``methods.miracle.train_miracle`` (a paper's own coding algorithm).
"""

from __future__ import annotations

import tempfile
from typing import Callable, Sequence

import torch
from torch import nn

from . import constants as K
from .data import load_digits
from .methods.edm import EDMLoss
from .methods.guidance import (ClassifierLoss, LabelDropout, NoisyDigitsClassifier,
                               class_conditional_digits_denoiser)
from .precond import EDMPrecond
from .presets import small_unet
from .train import fit

__all__ = ["fit_digits_denoiser", "fit_noisy_classifier", "train_unconditional", "fit_in_stages"]


def fit_digits_denoiser(seed: int, steps: int, *, scale_shift: bool = True,
                        p_uncond: float = K.CFG_P_UNCOND, ch: int = 16, batch_size: int = 64,
                        lr: float = 1e-3):
    """Train ``methods.guidance.class_conditional_digits_denoiser`` on the ``train`` digits with
    EDM's loss and label dropout (probability ``p_uncond``).

    One network learns D(x; sigma, y) and, through the null label, D(x; sigma): the conditional
    model, classifier-free guidance and the unconditional base of classifier guidance all come
    from it.
    """
    x, y = load_digits("train")
    torch.manual_seed(seed)  # the network's initialisation
    return fit(class_conditional_digits_denoiser(scale_shift, ch), LabelDropout(EDMLoss(), p_uncond),
               (x, y), steps, lr=lr, batch_size=batch_size, ema_halflife=max(steps / 20, 5),
               warmup=min(50, steps // 4), progress=False, seed=seed)


def fit_noisy_classifier(seed: int, steps: int, *, width: int = 32, batch_size: int = 64,
                         lr: float = 2e-3):
    """Train ``methods.guidance.NoisyDigitsClassifier`` on the ``train`` digits (never the grading
    classifier's ``classifier`` split, nor the evaluation split) with its ``ClassifierLoss``."""
    x, y = load_digits("train")
    torch.manual_seed(seed)
    return fit(NoisyDigitsClassifier(width), ClassifierLoss(), (x, y), steps, lr=lr,
               batch_size=batch_size, warmup=min(20, steps // 4), weight_decay=0.01,
               progress=False, seed=seed)


def train_unconditional(images: torch.Tensor, steps: int, *, seed: int = 0, width: int = 16,
                        batch_size: int = 32, lr: float = 2e-3,
                        sigma_data: float = K.EDM_SIGMA_DATA):
    """One unconditional EDM denoiser D(x; sigma) trained on ``images`` (N, C, H, W): the
    ``presets.small_unet`` of ``width`` channels (two levels, no attention) under
    ``EDMPrecond``, on the CPU."""
    torch.manual_seed(seed)
    net = small_unet(images.shape[-1], images.shape[1], ch=width)
    model = EDMPrecond(net, sigma_data=sigma_data)
    return fit(model, EDMLoss(sigma_data=sigma_data), images, steps, lr=lr,
               batch_size=batch_size, ema_halflife=max(steps / 10, 1.0), warmup=min(50, steps),
               seed=seed, progress=False, device="cpu")


def fit_in_stages(model: nn.Module, loss_fn, data, stages: Sequence[int], evaluate: Callable,
                  **fit_options) -> tuple[list, object]:
    """Train ``model`` with ``diffnotes.train.fit`` to each step count in ``stages`` (increasing),
    resuming from a temporary checkpoint, and call ``evaluate(model_ema)`` after each stage.
    Returns the evaluations and the last ``TrainResult``. ``DIFFNOTES_TRAIN_STEPS`` caps every
    stage as it caps ``fit``."""
    if not stages or any(b <= a for a, b in zip(stages, stages[1:])) or stages[0] < 1:
        raise ValueError(f"stages must be increasing positive step counts, got {list(stages)}")
    evaluations, result = [], None
    with tempfile.TemporaryDirectory() as ckpt_dir:
        for steps in stages:
            result = fit(model, loss_fn, data, steps, ckpt_dir=ckpt_dir, **fit_options)
            evaluations.append(evaluate(result.model_ema))
    return evaluations, result
