"""Conversions between what a network predicts (epsilon, x0, v, score) and the denoiser D.

Every process of the book is written x_t = s (x0 + sigma n) (EDM's form): ``scale`` is s and
``sigma`` the noise level of the *unscaled* variable x_hat = x_t / s. A denoiser is
``D(x_hat; sigma) ~ E[x0 | x_t]`` (the shared contract), so each conversion below takes the
network-side state ``x`` = x_t and returns (or consumes) D. With s = 1 (VE / EDM) x_t = x_hat.

The formulas are the SymPy expressions in
``diffnotes.theory.proofs.score_proofs.CONVERSIONS`` (proof ``parameterization_conversions``),
written again here in PyTorch; ``tests/test_parameterization.py`` checks that the two agree.
The book uses them in ``questions.md`` (v-parameterization, changing schedulers at sampling time)
and every method whose network does not predict D directly (DDPM's epsilon, v-prediction, NCSN's
score) goes through :func:`wrap` to become a denoiser for ``diffnotes.sampling``.

v-prediction (Salimans & Ho 2022) is defined with alpha = s and sigma_vp = s * sigma,
``v = alpha * eps - sigma_vp * x0``. In the VP case alpha^2 + sigma_vp^2 = 1, i.e.
s = 1 / sqrt(1 + sigma^2) (:func:`vp_scale`), and the familiar x0 = alpha x_t - sigma_vp v holds;
the general formula below reduces to it.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = [
    "PREDICTIONS",
    "append_dims",
    "eps_to_denoiser",
    "denoiser_to_eps",
    "v_to_denoiser",
    "denoiser_to_v",
    "score_to_denoiser",
    "denoiser_to_score",
    "vp_scale",
    "wrap",
]

PREDICTIONS = ("eps", "x0", "v", "score")


def append_dims(value, x: torch.Tensor) -> torch.Tensor:
    """A float, 0-d tensor or per-sample (N,) tensor, shaped to broadcast against x (N, ...).

    The one per-sample broadcast of the package: (N,) becomes (N, 1, ..., 1), in x's dtype and
    device; a tensor scalar becomes 0-d in x's dtype; a Python number is returned as it is
    (PyTorch combines it with x at full precision). Anything else is an error.
    """
    if isinstance(value, (int, float)):
        return value
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.ndim == 0:
        return value
    if value.ndim == 1 and value.shape[0] == x.shape[0]:
        return value.reshape(-1, *([1] * (x.ndim - 1)))
    raise ValueError(
        f"a per-sample value (sigma, scale, ...) must be a scalar or have shape ({x.shape[0]},) "
        f"for x of shape {tuple(x.shape)}, got shape {tuple(value.shape)}"
    )


def eps_to_denoiser(eps, x, sigma, scale=1.0):
    """D = x_t / s - sigma * eps (x_t = s (x0 + sigma n), eps ~ E[n | x_t])."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return x / scale - sigma * eps


def denoiser_to_eps(denoised, x, sigma, scale=1.0):
    """eps = (x_t / s - D) / sigma; undefined at sigma = 0."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return (x / scale - denoised) / sigma


def v_to_denoiser(v, x, sigma, scale=1.0):
    """D = (x_t - sigma v) / (s (1 + sigma^2)); VP (s^2 (1 + sigma^2) = 1): D = alpha x_t - sigma_vp v."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return (x - sigma * v) / (scale * (1 + sigma**2))


def denoiser_to_v(denoised, x, sigma, scale=1.0):
    """v = s eps - s sigma D with eps = (x_t / s - D) / sigma, i.e. (x_t - s D) / sigma - s sigma D."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return (x - scale * denoised) / sigma - scale * sigma * denoised


def score_to_denoiser(score, x, sigma, scale=1.0):
    """Tweedie with a scale: D = (x_t + s^2 sigma^2 grad log p_t(x_t)) / s."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return (x + scale**2 * sigma**2 * score) / scale


def denoiser_to_score(denoised, x, sigma, scale=1.0):
    """grad log p_t(x_t) = (s D - x_t) / (s^2 sigma^2); with s = 1 the contract's (D - x) / sigma^2."""
    sigma, scale = append_dims(sigma, x), append_dims(scale, x)
    return (scale * denoised - x) / (scale**2 * sigma**2)


def vp_scale(sigma):
    """s(sigma) = 1 / sqrt(1 + sigma^2): the variance-preserving scale (alpha^2 + sigma_vp^2 = 1)."""
    sigma = torch.as_tensor(sigma)
    return torch.rsqrt(1 + sigma**2)


_TO_DENOISER = {
    "eps": eps_to_denoiser,
    "v": v_to_denoiser,
    "score": score_to_denoiser,
    "x0": lambda out, x, sigma, scale: out,
}


def wrap(
    model: Callable,
    prediction: str = "eps",
    scale: Callable | float | None = None,
    noise_cond: Callable | None = None,
) -> Callable:
    """Turn ``model(x_t, cond, **kw) -> prediction`` into ``denoiser(x_hat, sigma, **kw) -> D``.

    ``prediction`` is one of :data:`PREDICTIONS`. ``scale`` gives s: ``None`` (s = 1, VE / EDM),
    a number, or a callable ``sigma -> s`` (e.g. :func:`vp_scale` for DDPM / VP models).
    ``noise_cond`` maps sigma to what the network was trained to receive (a timestep, log sigma,
    ...); default: sigma itself. The model sees x_t = s * x_hat and ``cond`` of shape (N,).
    This is how a network trained under one schedule is sampled under another (questions.md):
    the sampler only ever needs D, and D only needs the training-time s and conditioning.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}; got {prediction!r}")
    if scale is not None and not callable(scale) and not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be None, a number or a callable sigma -> s; got {type(scale).__name__}")
    convert = _TO_DENOISER[prediction]

    def denoiser(x, sigma, **kwargs):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma_n = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        s = 1.0 if scale is None else (scale(sigma_n) if callable(scale) else scale)
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
        x_t = x * append_dims(s, x)
        cond = sigma_n if noise_cond is None else noise_cond(sigma_n)
        out = model(x_t, cond, **kwargs)
        return convert(out, x_t, sigma_n, s)

    denoiser.prediction = prediction
    return denoiser
