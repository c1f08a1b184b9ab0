"""Guidance: steering a diffusion model towards a class (Dhariwal & Nichol 2021; Ho & Salimans 2022).

Both methods change only the denoiser a sampler sees, so every solver of
:mod:`diffnotes.sampling` samples a guided model unchanged. In the book's coordinates
(x = x0 + sigma n, a denoiser D(x; sigma) ~ E[x0 | x], score (D - x) / sigma^2):

**Classifier guidance** (ADM, Sec. 4) adds ``s`` times the gradient of a *noise-aware*
classifier's log-probability to the model's score,

    score_s(x; sigma, y) = grad log p_sigma(x) + s grad log p_sigma(y | x),

the score of p_sigma(x) p_sigma(y | x)^s up to normalisation (proof ``guided_score_tilt``).
Through Tweedie's formula the guided denoiser is D + s sigma^2 grad log p_sigma(y | x)
(:func:`classifier_guided`, written with the conversions of :mod:`diffnotes.parameterization`).

**Classifier-free guidance** (Ho & Salimans 2022, eq. 6) trains one network with and without
the label (label dropout, :class:`LabelDropout`; the null label is the all-zero one-hot that
:class:`diffnotes.nets.UNet` embeds as zero) and mixes the two predictions,

    eps_w = (1 + w) eps(x, y) - w eps(x),

which is classifier guidance at scale 1 + w with the *implicit* classifier
p(y | x) proportional to p(x | y) / p(x) (proof ``cfg_implicit_classifier``);
:func:`classifier_free`.

The noise-aware classifier (:class:`NoisyDigitsClassifier`) learns p_sigma(y | x) on the
``train`` split of the digits, the split the diffusion models learn from. It is *not* the
classifier that grades samples (:func:`diffnotes.features.digits_classify`, trained on its own
``classifier`` split): guidance pushes samples to please its own classifier, so grading them
with that same classifier would score how well it was fooled, not whether the digits are right.

Used by the chapters on ADM (``dhariwal2021diffusion``) and classifier-free guidance
(``ho2022classifier``) and their lab notebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import constants as K
from ..parameterization import (append_dims, denoiser_to_eps, denoiser_to_score, eps_to_denoiser,
                               score_to_denoiser)
from ..precond import EDMPrecond
from ..theory.numeric import log_uniform_sigma

__all__ = ["NUM_CLASSES", "NoisyDigitsClassifier", "ClassifierLoss", "LabelDropout", "one_hot",
           "null_labels", "balanced_labels", "classifier_log_prob_grad", "classifier_guided",
           "classifier_free", "conditioned", "sweep", "classifier_accuracy_at",
           "class_conditional_digits_denoiser", "TiltGap",
           "guided_ode_tilt_gap", "ancestral_guidance_ratio"]

NUM_CLASSES = 10  # the ten digits


def one_hot(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Integer labels (N,) as float one-hot rows (N, num_classes); one-hot input passes through."""
    labels = torch.as_tensor(labels)
    if labels.ndim == 2 and labels.shape[1] == num_classes and labels.is_floating_point():
        return labels
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be integer classes of shape (N,) or one-hot rows (N, {num_classes}); "
                         f"got {labels.dtype} of shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")
    return F.one_hot(labels.long(), num_classes).float()


def null_labels(n: int, num_classes: int = NUM_CLASSES, device=None) -> torch.Tensor:
    """The null label of classifier-free guidance: n all-zero one-hot rows (the class embedding
    of :class:`diffnotes.nets.UNet` maps them to zero, so the network sees no class)."""
    return torch.zeros(n, num_classes, device=device)


def balanced_labels(n: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """n labels cycling through the classes (0, 1, ..., 9, 0, ...): every class asked for equally."""
    if n < 1:
        raise ValueError(f"n must be a positive number of labels, got {n}")
    return torch.arange(n) % num_classes


# ----------------------------------------------------------------------------------------------
# The noise-aware classifier p_sigma(y | x) and its loss
# ----------------------------------------------------------------------------------------------


class NoisyDigitsClassifier(nn.Module):
    """A small CNN for p_sigma(y | x) on 8x8 digits at any noise level sigma.

    The input is preconditioned as EDM's networks are: x is scaled by c_in(sigma) = 1 /
    sqrt(sigma^2 + sigma_data^2) to unit variance, and c_noise(sigma) = ln(sigma) / 4 enters as a
    second input channel (ADM's classifier is the encoder half of its U-Net with the timestep
    embedding; a constant channel is the smallest way to tell a CNN the noise level).
    """

    def __init__(self, width: int = 32, num_classes: int = NUM_CLASSES,
                 sigma_data: float = K.EDM_SIGMA_DATA):
        super().__init__()
        self.sigma_data, self.num_classes = float(sigma_data), num_classes
        self.conv1 = nn.Conv2d(2, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 2 * 2, 4 * width)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Logits (N, num_classes) of p_sigma(y | x) for x (N, 1, 8, 8) at noise level sigma."""
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"x must be 8x8 digits of shape (N, 1, 8, 8), got {tuple(x.shape)}")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be 0-d or of shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        # EDM's c_in and c_noise, taken from its preconditioning (one formula, one place)
        _, _, c_in, c_noise = EDMPrecond.coefficients(self, append_dims(sigma, x))
        h = torch.cat([c_in * x, c_noise.expand_as(x)], dim=1)
        h = F.silu(self.conv1(h))
        h = F.max_pool2d(F.silu(self.conv2(h)), 2)
        h = F.max_pool2d(F.silu(self.conv3(h)), 2)
        return self.head(F.silu(self.fc(h.flatten(1))))


class ClassifierLoss:
    """Cross-entropy of p_sigma(y | x0 + sigma n) with ln sigma uniform on [ln sigma_min, ln sigma_max].

    The loss contract of :func:`diffnotes.train.fit` (``loss_fn(model, x0, class_labels)`` ->
    per-sample loss), so the classifier trains in the same loop, with the same
    ``DIFFNOTES_TRAIN_STEPS`` cap, as every diffusion model. The noise levels cover every level
    the EDM sampler visits (ADM draws its classifier's timesteps uniformly for the same reason).
    """

    def __init__(self, sigma_min: float = K.EDM_SIGMA_MIN, sigma_max: float = K.EDM_SIGMA_MAX):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def __call__(self, model, x0, class_labels=None):
        if class_labels is None:
            raise ValueError("ClassifierLoss needs class labels: pass the data as an (x, labels) pair")
        u = torch.rand(x0.shape[0], device=x0.device)
        sigma = log_uniform_sigma(u, self.sigma_min, self.sigma_max)
        x = x0 + torch.randn_like(x0) * append_dims(sigma, x0)
        return F.cross_entropy(model(x, sigma), class_labels.long(), reduction="none")


class LabelDropout:
    """Wrap a diffusion loss so that each label is replaced by the null label with probability p.

    Ho & Salimans (2022, Alg. 1) train one network on p(x | y) and p(x) at once this way
    (p_uncond = 0.1 or 0.2 in their Table 1). The labels reach the network as one-hot rows; a
    dropped row is all zero (:func:`null_labels`). Randomness comes from torch's global
    generator, which :func:`diffnotes.train.fit` seeds.
    """

    def __init__(self, loss: Callable, p_uncond: float, num_classes: int = NUM_CLASSES):
        if not 0 <= p_uncond <= 1:
            raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond}")
        self.loss, self.p_uncond, self.num_classes = loss, float(p_uncond), num_classes

    def __call__(self, model, x0, class_labels=None):
        if class_labels is None:
            raise ValueError("LabelDropout needs class labels: pass the data as an (x, labels) pair")
        rows = one_hot(class_labels, self.num_classes).to(x0.device)
        keep = torch.rand(rows.shape[0], device=x0.device) >= self.p_uncond
        return self.loss(model, x0, rows * keep.unsqueeze(1).to(rows.dtype))


# ----------------------------------------------------------------------------------------------
# Guided denoisers (the sampler's contract: denoiser(x, sigma) -> D)
# ----------------------------------------------------------------------------------------------


def classifier_log_prob_grad(classifier: nn.Module, x: torch.Tensor, sigma, labels: torch.Tensor) -> torch.Tensor:
    """grad_x log p_sigma(y | x) for each sample's label (N,), shaped like x."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x, sigma), dim=1)
        picked = log_probs.gather(1, labels.long().reshape(-1, 1)).sum()
        (grad,) = torch.autograd.grad(picked, x)
    return grad


def _call_model(denoiser, x, sigma, model_labels):
    return denoiser(x, sigma) if model_labels is None else denoiser(x, sigma, model_labels)


def classifier_guided(denoiser: Callable, classifier: nn.Module, labels: torch.Tensor, scale: float,
                      model_labels: torch.Tensor | None = None) -> Callable:
    """The classifier-guided denoiser D_s(x; sigma, y), a ``denoiser(x, sigma)`` for the samplers.

    score_s = (D(x; sigma) - x) / sigma^2 + s grad log p_sigma(y | x), turned back into a
    denoiser by Tweedie's formula (so D_s = D + s sigma^2 grad log p_sigma(y | x)). ``labels``
    (N,) are the classes asked for; ``model_labels`` is what the diffusion model is given
    (None for an unconditional network, :func:`null_labels` for a label-dropout network's
    unconditional mode, or the labels themselves to guide a conditional model, as ADM does).
    ``scale`` 0 returns the model's own denoiser.
    """
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"the guidance scale must be a finite number >= 0, got {scale}")
    labels = torch.as_tensor(labels)

    def guided(x, sigma):
        with torch.no_grad():
            denoised = _call_model(denoiser, x, sigma, model_labels)
        if scale == 0:
            return denoised
        score = denoiser_to_score(denoised, x, sigma)
        score = score + scale * classifier_log_prob_grad(classifier, x, sigma, labels)
        return score_to_denoiser(score, x, sigma).detach()

    return guided


def classifier_free(denoiser: Callable, labels: torch.Tensor, weight: float,
                    num_classes: int = NUM_CLASSES) -> Callable:
    """The classifier-free guided denoiser: eps_w = (1 + w) eps(x, y) - w eps(x) (Ho & Salimans eq. 6).

    ``denoiser(x, sigma, class_labels)`` must take one-hot rows and the all-zero null label
    (a network trained with :class:`LabelDropout`). The conditional and unconditional
    predictions come from one batched call of twice the size. w = 0 is the conditional model.
    """
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"the guidance weight w must be a finite number >= 0, got {weight}")
    cond = one_hot(labels, num_classes)

    @torch.no_grad()
    def guided(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma_n = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        rows = torch.cat([cond.to(x.device), null_labels(x.shape[0], num_classes, x.device)])
        both = denoiser(torch.cat([x, x]), torch.cat([sigma_n, sigma_n]), rows)
        eps_cond = denoiser_to_eps(both[: x.shape[0]], x, sigma_n)
        eps_uncond = denoiser_to_eps(both[x.shape[0]:], x, sigma_n)
        return eps_to_denoiser((1 + weight) * eps_cond - weight * eps_uncond, x, sigma_n)

    return guided


def conditioned(denoiser: Callable, class_labels: torch.Tensor) -> Callable:
    """Bind labels: ``denoiser(x, sigma, class_labels)`` as the samplers' ``denoiser(x, sigma)``."""

    @torch.no_grad()
    def bound(x, sigma):
        return denoiser(x, sigma, class_labels)

    return bound


def sweep(make_denoiser: Callable[[float], Callable], strengths: Sequence[float], shape: tuple,
          sigmas: torch.Tensor, seed: int, solver: str = "heun") -> dict[float, torch.Tensor]:
    """Samples for each guidance strength, all from the same starting noise (seeded with ``seed``).

    ``make_denoiser(strength)`` returns a ``denoiser(x, sigma)``; the shared noise makes the
    strengths a paired comparison (only the guidance differs between them).
    """
    from ..sampling import sample

    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * float(sigmas[0])
    return {float(s): sample(make_denoiser(s), noise.clone(), sigmas, solver).clamp(-1, 1)
            for s in strengths}


@torch.no_grad()
def classifier_accuracy_at(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, sigma: float,
                           seed: int = 0) -> float:
    """Accuracy of a noise-aware classifier on images noised to level ``sigma`` (a held-out check)."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    logits = classifier(images + sigma * noise, torch.tensor(float(sigma)))
    return (logits.argmax(dim=1) == labels).float().mean().item()


# ----------------------------------------------------------------------------------------------
# The guidance notebooks' diffusion model (trained by diffnotes.recipes.fit_digits_denoiser)
# ----------------------------------------------------------------------------------------------


def class_conditional_digits_denoiser(scale_shift: bool = True, ch: int = 16) -> nn.Module:
    """A class-conditional digits U-Net under EDM preconditioning: D(x; sigma, one-hot label).

    ``scale_shift`` True conditions every residual block by AdaGN (ADM), False by adding the
    embedding (DDPM); everything else, the parameter count included up to the AdaGN projections,
    is the same. ``diffnotes.recipes.fit_digits_denoiser`` trains it with label dropout, so the
    all-zero label (:func:`null_labels`) gives the unconditional model.
    """
    from ..nets import UNet

    return EDMPrecond(UNet.digits(ch=ch, num_classes=NUM_CLASSES, scale_shift=scale_shift))


# ----------------------------------------------------------------------------------------------
# What a guided sampler draws: an exact 1-D computation, and ADM's two guided DDPM means
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TiltGap:
    """The end law of the guided probability-flow ODE against the tilted target, for one scale:
    ``w1`` is the Wasserstein-1 distance between them; ``mean_ode``, ``std_ode`` describe the
    ODE's end law and ``mean_target``, ``std_target`` the target p(x) p(y|x)^s / Z."""

    scale: float
    w1: float
    mean_ode: float
    std_ode: float
    mean_target: float
    std_target: float


def _gmm1d_log_joint(x, sigma, means, var, weights):
    """log p_sigma(x, y) for each class y of a 1-D mixture noised to level sigma: shape (..., K)."""
    tau2 = var + sigma**2
    return (torch.log(weights) - 0.5 * math.log(2 * math.pi) - 0.5 * torch.log(tau2)
            - (x.unsqueeze(-1) - means) ** 2 / (2 * tau2))


def _gmm1d_guided_score(x, sigma, label, scale, means, var, weights):
    """grad log p_sigma(x) + s grad log p_sigma(y | x) of the 1-D mixture, exact."""
    tau2 = var + sigma**2
    log_joint = _gmm1d_log_joint(x, sigma, means, var, weights)
    resp = torch.exp(log_joint - log_joint.max(dim=-1, keepdim=True).values)
    resp = resp / resp.sum(dim=-1, keepdim=True)  # p_sigma(y | x)
    comp_score = -(x.unsqueeze(-1) - means) / tau2  # d/dx log N(x; mu_k, tau2)
    marginal = (resp * comp_score).sum(-1)
    conditional = comp_score[..., label]
    return marginal + scale * (conditional - marginal)


def _tilted_log_density(grid, sigma, label, scale, means, var, weights):
    """log [p_sigma(x) p_sigma(y | x)^s], unnormalised, on a grid."""
    log_joint = _gmm1d_log_joint(grid, sigma, means, var, weights)
    log_marg = torch.logsumexp(log_joint, dim=-1)
    return log_marg + scale * (log_joint[..., label] - log_marg)


def _quantiles(grid, log_density, u):
    """Quantiles at levels u of the density exp(log_density) on a uniform grid (trapezoid CDF)."""
    dens = torch.exp(log_density - log_density.max())
    cdf = torch.cat([torch.zeros(1, dtype=grid.dtype),
                     torch.cumsum(0.5 * (dens[1:] + dens[:-1]) * (grid[1:] - grid[:-1]), 0)])
    cdf = cdf / cdf[-1]
    idx = torch.searchsorted(cdf, u).clamp(1, grid.numel() - 1)
    c0, c1 = cdf[idx - 1], cdf[idx]
    frac = (u - c0) / (c1 - c0).clamp_min(1e-300)
    return grid[idx - 1] + frac * (grid[idx] - grid[idx - 1])


def guided_ode_tilt_gap(scale: float, *, means=(-1.0, 1.0), std: float = 0.5,
                        weights=(0.5, 0.5), label: int = 1, sigma_max: float = 20.0,
                        steps: int = 400, n_quantiles: int = 4000) -> TiltGap:
    """Does the probability-flow ODE driven by the guided score draw p(x) p(y|x)^s / Z? Exactly, in 1-D.

    A 1-D mixture of Gaussians N(mu_k, std^2) with weights pi_k has closed-form noised scores and
    class posteriors at every sigma. At each sigma the guided field grad log p_sigma(x) + s grad
    log p_sigma(y | x) is the score of q_sigma = p_sigma(x) p_sigma(y | x)^s / Z_sigma (proof
    ``guided_score_tilt``). The ODE dx/dsigma = -sigma * (guided score) (EDM's probability-flow
    ODE, x = x0 + sigma n) is started from q_{sigma_max} itself, the most favourable start, and
    integrated to sigma = 0 with Heun's method on a Karras grid (rho = 7) of ``steps`` steps.
    In 1-D the ODE's flow map is increasing, so it carries the quantiles of the start law to the
    quantiles of its end law; those are compared with the quantiles of the target q_0 = p(x)
    p(y | x)^s / Z, computed by quadrature on a fine grid. At s = 1 the q_sigma are the noised
    marginals of p(x | y) and the gap is the integration error only; for s != 1 they are not the
    noised marginals of any one density, and the end law misses q_0.
    """
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"the guidance scale must be a finite number >= 0, got {scale}")
    if std <= 0 or sigma_max <= 0 or steps < 2 or n_quantiles < 10:
        raise ValueError("need std > 0, sigma_max > 0, steps >= 2 and n_quantiles >= 10")
    dt = torch.float64
    mu = torch.as_tensor(means, dtype=dt)
    pi = torch.as_tensor(weights, dtype=dt)
    pi = pi / pi.sum()
    if mu.shape != pi.shape or not 0 <= label < mu.numel():
        raise ValueError("means and weights must have one entry per class, and label must be a class")
    var = torch.tensor(std**2, dtype=dt)
    args = (label, float(scale), mu, var, pi)
    u = (torch.arange(n_quantiles, dtype=dt) + 0.5) / n_quantiles

    def grid_for(sigma):
        half = float(mu.abs().max()) + 12 * math.sqrt(std**2 + sigma**2)
        return torch.linspace(-half, half, 40001, dtype=dt)

    g0 = grid_for(sigma_max)
    x = _quantiles(g0, _tilted_log_density(g0, torch.tensor(sigma_max, dtype=dt), *args), u)
    # Karras et al.'s noise levels from sigma_max down to 0
    rho, smin = 7.0, 1e-4
    i = torch.arange(steps, dtype=dt) / (steps - 1)
    sig = (sigma_max ** (1 / rho) + i * (smin ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    sig = torch.cat([sig, torch.zeros(1, dtype=dt)])
    for s_cur, s_next in zip(sig[:-1], sig[1:]):
        d_cur = -s_cur * _gmm1d_guided_score(x, s_cur, *args)
        x_next = x + (s_next - s_cur) * d_cur
        if s_next > 0:
            d_next = -s_next * _gmm1d_guided_score(x_next, s_next, *args)
            x_next = x + (s_next - s_cur) * 0.5 * (d_cur + d_next)
        x = x_next
    g = grid_for(0.0)
    target = _quantiles(g, _tilted_log_density(g, torch.tensor(0.0, dtype=dt), *args), u)
    w1 = (x - target).abs().mean()
    return TiltGap(float(scale), float(w1), float(x.mean()), float(x.std()), float(target.mean()),
                   float(target.std()))


def ancestral_guidance_ratio(schedule=None, variance: str = "small") -> torch.Tensor:
    """ADM's two guided DDPM steps compared: the mean shift of Alg. 1 over that of Alg. 2, per step.

    With g = s grad log p(y | x_t), ADM's ancestral sampler (Alg. 1, ``condition_mean`` in its
    code) shifts the reverse mean by Sigma_t g, while its DDIM-style sampler (Alg. 2,
    ``condition_score``) changes the noise prediction to eps - sqrt(1 - alpha_bar_t) g; pushed
    through DDPM's posterior mean, the latter shifts the mean by (beta_t / sqrt(alpha_t)) g, which
    is the book's guided denoiser D + s sigma^2 grad log p. The ratio of the two shifts is
    Sigma_t sqrt(alpha_t) / beta_t. ``variance`` "small" takes Sigma_t = beta~_t = beta_t (1 -
    alpha_bar_{t-1}) / (1 - alpha_bar_t) (so the ratio is sqrt(alpha_t) (1 - alpha_bar_{t-1}) /
    (1 - alpha_bar_t)); "large" takes Sigma_t = beta_t (ratio sqrt(alpha_t)). ADM learns Sigma_t
    between the two (iDDPM), so its ratio lies between these curves. Returns the ratio for
    t = 1..T (index t - 1); ``schedule`` defaults to DDPM's linear 1,000-step chain.
    """
    from ..chain import DiscreteSchedule

    schedule = DiscreteSchedule.linear() if schedule is None else schedule
    alphas, betas = schedule.alphas, schedule.betas
    if variance == "small":
        sigma2 = betas * (1 - schedule.alpha_bar_prev) / (1 - schedule.alpha_bar)
    elif variance == "large":
        sigma2 = betas
    else:
        raise ValueError(f"variance must be 'small' or 'large', got {variance!r}")
    return sigma2 * alphas.sqrt() / betas
