"""DDPM (Ho et al. 2020): the discrete chain, L_simple, the full variational bound, ancestral sampling.

Everything is written in the book's common language (EDM form, s = 1 coordinates): a *denoiser*
``D(x; sigma)`` with ``x = x0 + sigma n``. DDPM's variance-preserving chain
``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` is the same point divided by
``s_t = sqrt(alpha_bar_t)``, with noise level

    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)          (t = 1, ..., T),

so a denoiser trained at the discrete levels ``sigma_t`` *is* a DDPM model: its noise prediction is
``eps_hat = (x - D(x; sigma_t)) / sigma_t`` (with :class:`diffnotes.precond.VPPrecond`,
``c_skip = 1, c_out = -sigma``, the backbone's raw output is exactly DDPM's ``eps_theta``).

* :class:`DDPMSchedule` — the discrete chain (:class:`diffnotes.chain.DiscreteSchedule`, shared
  with iDDPM and Sohl-Dickstein et al.; ``DDPMSchedule.linear()`` is DDPM Sec. 4's beta_1 = 1e-4
  ... beta_T = 0.02, T = 1000), with alpha_bar, sigma_t and the posterior. The bound's closed-form
  terms (Gaussian KL, prior KL, decoder likelihoods) and bits/dim also live in ``diffnotes.chain``
  and are re-exported here; the KL term L_{t-1} is the chain's ``step_kl`` with the posterior
  mean at D's x0_hat and the fixed variance.
* :class:`SimpleLoss` — L_simple, DDPM eq. (14): ``|| eps - eps_hat ||^2`` at a uniform step t.
* :func:`vlb_terms` / :func:`nll_bound` / :class:`VLBLoss` — the variational bound, DDPM eq. (5):
  ``L_T + sum_{t>=2} L_{t-1} + L_0``. Two decoders for ``L_0 = -log p(x0 | x1)`` are offered:

  - ``"discretized"`` — DDPM's discretized Gaussian (Sec. 3.3, eq. 13) for data on a grid of
    ``levels`` equally spaced values in [-1, 1] (256 for 8-bit images, 17 for sklearn's digits,
    whose pixels take the values 0..16). The bound is then a bound on a *probability*; in bits/dim
    it is comparable with a codelength.
  - ``"gaussian"`` — a plain Gaussian density ``N(x0; x0_hat, sigma_1^2 I)`` for continuous toy
    data (2-D mixtures). The bound is then on a *density*: comparable with the exact
    ``-log p_data`` of a :class:`~diffnotes.data.GaussianMixture`, and it may be negative.

  The reverse variances are DDPM's "fixed" choices (Sec. 3.2): ``sigma_t^2 = beta_tilde_t`` (the
  true posterior variance, the default) or ``beta_t``; the decoder at t = 1 uses ``beta_1`` in both
  cases (``beta_tilde_1 = 0``).
* :func:`sample` — ancestral sampling (DDPM Algorithm 2): the chain's one ancestral loop
  (``diffnotes.chain.ancestral_sample``, shared with iDDPM and Analytic-DPM) with beta_tilde_t
  or beta_t as the reverse variance.

Used in the book by ``book/papers/ho2020denoising.md`` and ``notebooks/ho2020denoising.ipynb``; the
schedule is reused by the DDIM chapter (``diffnotes.methods.ddim``).
"""

from __future__ import annotations

from typing import Callable

import torch

from diffnotes import constants as K
from diffnotes.chain import (REVERSE_VARIANCES, ancestral_sample, bound_terms, check_steps, discretized_gaussian_nll,
                             gather, gaussian_kl, gaussian_nll, prior_kl, random_steps, step_kl, to_bits_per_dim)
from diffnotes.chain import DiscreteSchedule as DDPMSchedule
from diffnotes.parameterization import denoiser_to_eps

__all__ = [
    "DDPMSchedule",
    "SimpleLoss",
    "VLBLoss",
    "vlb_terms",
    "nll_bound",
    "gaussian_kl",
    "prior_kl",
    "discretized_gaussian_nll",
    "gaussian_nll",
    "to_bits_per_dim",
    "sample",
    "DECODERS",
    "REVERSE_VARIANCES",
]

Denoiser = Callable[..., torch.Tensor]

DECODERS = ("discretized", "gaussian")

# DDPM Sec. 4 (the numbers live in diffnotes.constants; these names are kept for old imports)
T_DDPM, BETA_1, BETA_T = K.DDPM_T, K.DDPM_BETA_1, K.DDPM_BETA_T


# ----------------------------------------------------------------------------------------------
# L_simple (DDPM eq. 14, Algorithm 1)
# ----------------------------------------------------------------------------------------------


class SimpleLoss:
    """L_simple = E_{t, x0, eps} || eps - eps_theta(x_t, t) ||^2, per sample (mean over dimensions).

    ``model(x, sigma, class_labels)`` is a denoiser; its noise prediction is ``(x - D) / sigma``.
    Equivalently the loss is ``|| x0 - D ||^2 / sigma_t^2``: DDPM's "simple" weighting is EDM's
    ``lambda(sigma) = 1 / sigma^2`` at uniformly drawn discrete steps.
    """

    def __init__(self, schedule: DDPMSchedule):
        self.schedule = schedule

    def __call__(self, model: Denoiser, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        t = random_steps(x0.shape[0], self.schedule.T, x0.device)
        noise = torch.randn_like(x0)
        x, sigma = self.schedule.perturb(x0, t, noise)
        denoised = model(x, sigma, class_labels)
        eps_hat = denoiser_to_eps(denoised, x, sigma)
        return (eps_hat - noise).pow(2).reshape(x0.shape[0], -1).mean(dim=1)


# ----------------------------------------------------------------------------------------------
# The variational bound (DDPM eq. 5)
# ----------------------------------------------------------------------------------------------


def _check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; valid: {', '.join(DECODERS)}")


def vlb_terms(
    model: Denoiser,
    x0: torch.Tensor,
    t: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    decoder: str = "gaussian",
    levels: int = 256,
    reverse_variance: str = "beta_tilde",
    noise: torch.Tensor | None = None,
    class_labels=None,
) -> torch.Tensor:
    """One-sample estimate of the bound's term at step t, per sample, in nats.

    ``t`` (shape (N,), values 1..T) picks the term: ``L_{t-1} = KL(q(x_{t-1} | x_t, x0) ||
    p(x_{t-1} | x_t))`` for t >= 2 (closed form between Gaussians, eq. 5-7), and the decoder term
    ``L_0 = -log p(x0 | x1)`` for t = 1. ``x_t`` is drawn from q(x_t | x0) with ``noise``.
    """
    _check_decoder(decoder)
    t = check_steps(t, schedule.T).to(x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x, sigma = schedule.perturb(x0, t, noise)
    x0_hat = model(x, sigma, class_labels).to(x0.dtype)
    x_t = schedule.to_ddpm(x, t)
    var_p = gather(schedule.reverse_variance(reverse_variance), t, x0)
    # mu_theta is the posterior mean at the model's x0_hat (eq. 7 and the x0-parameterization).
    mean_p, _ = schedule.posterior(t, x0_hat, x_t)
    kl = step_kl(schedule, t, x0, x_t, mean_p, var_p)

    # t = 1: mu_theta(x_1, 1) = x0_hat exactly (alpha_bar_1 = alpha_1), variance beta_1.
    if decoder == "discretized":
        dec = discretized_gaussian_nll(x0, x0_hat, var_p, levels)
    else:
        dec = gaussian_nll(x0, x0_hat, var_p)
    return torch.where(t == 1, dec, kl)


@torch.no_grad()
def nll_bound(
    model: Denoiser,
    x0: torch.Tensor,
    schedule: DDPMSchedule,
    *,
    decoder: str = "gaussian",
    levels: int = 256,
    reverse_variance: str = "beta_tilde",
    class_labels=None,
    generator: torch.Generator | None = None,
    bits_per_dim: bool = True,
) -> dict[str, torch.Tensor]:
    """The full bound ``L_T + sum_{t=2}^T L_{t-1} + L_0`` per sample, every term evaluated.

    One network evaluation per step and sample (T in all), one noise draw per term (DDPM Sec. 4.3
    evaluates the bound the same way). Returns a dict of per-sample tensors: ``"total"``,
    ``"prior"`` (L_T), ``"diffusion"`` (sum of L_{t-1}, t >= 2), ``"decoder"`` (L_0), and
    ``"terms"`` of shape (N, T) with term ``t - 1`` in column ``t - 1``; in bits/dim by default.
    """
    def term(steps, noise):
        return vlb_terms(model, x0, steps, schedule, decoder=decoder, levels=levels,
                         reverse_variance=reverse_variance, noise=noise, class_labels=class_labels)

    dims = x0[0].numel()
    terms = bound_terms(term, x0, schedule.T, generator)
    prior = prior_kl(x0, schedule).double().cpu()
    out = {"prior": prior, "decoder": terms[:, 0], "diffusion": terms[:, 1:].sum(dim=1), "terms": terms}
    out["total"] = out["prior"] + out["decoder"] + out["diffusion"]
    if bits_per_dim:
        out = {k: to_bits_per_dim(v, dims) for k, v in out.items()}
    return out


class VLBLoss:
    """Training on the true bound: ``L_T + T * L_{t-1}`` at a uniform step t (unbiased), per dim.

    DDPM Table 1 trains this ("L, fixed isotropic Sigma") against L_simple. Returned in nats per
    dimension so that its scale is comparable with :class:`SimpleLoss`'s.
    """

    def __init__(self, schedule: DDPMSchedule, *, decoder: str = "gaussian", levels: int = 256,
                 reverse_variance: str = "beta_tilde"):
        _check_decoder(decoder)
        self.schedule, self.decoder, self.levels, self.reverse_variance = schedule, decoder, levels, reverse_variance
        schedule.reverse_variance(reverse_variance)  # validates the name

    def __call__(self, model: Denoiser, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        t = random_steps(x0.shape[0], self.schedule.T, x0.device)
        term = vlb_terms(model, x0, t, self.schedule, decoder=self.decoder, levels=self.levels,
                         reverse_variance=self.reverse_variance, class_labels=class_labels)
        return (prior_kl(x0, self.schedule) + self.schedule.T * term) / x0[0].numel()


# ----------------------------------------------------------------------------------------------
# Ancestral sampling (DDPM Algorithm 2)
# ----------------------------------------------------------------------------------------------


# sample's variance option -> the chain's name: "posterior" and "beta" as the "ancestral" solver of
# diffnotes.sampling (which ddpm.sample ran before) names them, and the chain's own "beta_tilde"
_VARIANCES = {"posterior": "beta_tilde", "beta_tilde": "beta_tilde", "beta": "beta"}


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    schedule: DDPMSchedule,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
    **options,
) -> torch.Tensor:
    """Draw samples with DDPM's ancestral sampler (Algorithm 2): the chain's one ancestral loop.

    :func:`diffnotes.chain.ancestral_sample` in DDPM coordinates: x_T ~ N(0, I), the denoiser
    sees x_t / sqrt(alpha_bar_t) at sigma_t, and x_{t-1} is drawn from the posterior
    q(x_{t-1} | x_t, x0 = D) with one of DDPM's two fixed variances (Sec. 3.2), the one option:
    ``variance="posterior"`` (beta_tilde_t, the default; ``"beta_tilde"`` names it too) or
    ``variance="beta"`` (beta_t). The last step returns the mean, D itself. ``steps`` (default T)
    samples the chain respaced to that many evenly strided steps (iDDPM Sec. 4), the denoiser
    being given the full chain's sigma at each kept step.
    """
    variance = options.pop("variance", "posterior")
    if options:
        raise ValueError(f"ddpm.sample got unknown options {sorted(options)}; valid options: variance")
    if variance not in _VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; valid variances: {', '.join(_VARIANCES)}")
    chain, sigmas = schedule, None
    if steps is not None and steps != schedule.T:
        chain, kept = schedule.respace(steps)
        sigmas = schedule.sigmas[kept - 1]
    return ancestral_sample(denoiser, shape, chain, variance=chain.reverse_variance(_VARIANCES[variance]),
                            sigmas=sigmas, generator=generator, dtype=dtype, device=device)
