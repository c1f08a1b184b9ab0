"""Likelihoods and codelengths of data under a model.

:func:`pf_ode_log_likelihood` is the log-likelihood through the probability-flow ODE as a
continuous normalising flow (Song et al. 2021), :func:`bits_per_dim_from_nll` converts nats to
bits per dimension, and :func:`independent_pixels_bits_per_dim` is the codelength of a baseline
that codes each pixel with its own histogram. Re-exported by :mod:`diffnotes.metrics`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

__all__ = ["bits_per_dim_from_nll", "pf_ode_log_likelihood", "PF_ODE_UNITS", "independent_pixels_bits_per_dim"]


def bits_per_dim_from_nll(nll, num_dims: int, bin_width: float | None = None):
    """Convert a negative log-likelihood in nats to bits per dimension.

    bpd = nll / (num_dims ln 2). With ``bin_width`` (the spacing of the discrete pixel values in
    the model's coordinates) a density becomes the probability of a bin, P ~ p * width^D, so
    ``-log2(bin_width)`` is added: for 8-bit images scaled to [-1, 1], bin_width = 2/256 adds 7
    bits (8 for [0, 1]), the same offset as the Score SDE code release (``likelihood.py``).
    """
    from .chain import to_bits_per_dim  # the one nats -> bits/dim conversion

    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    bpd = to_bits_per_dim(torch.as_tensor(nll, dtype=torch.float64), num_dims)
    if bin_width is not None:
        if bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {bin_width}")
        bpd = bpd - math.log2(bin_width)
    return bpd.item() if bpd.ndim == 0 else bpd


def _gaussian_prior_log_prob(sigma_max: float) -> Callable:
    def log_prob(z: torch.Tensor) -> torch.Tensor:
        d = z[0].numel()
        return -0.5 * (z.flatten(1) ** 2).sum(1) / sigma_max**2 - 0.5 * d * math.log(2 * math.pi * sigma_max**2)

    return log_prob


def _drift_and_divergence(denoiser, x: torch.Tensor, sigma: float, eps: torch.Tensor | None):
    """f = dx/du with u = log sigma, and its divergence (exact, or Hutchinson with probe ``eps``)."""
    from .solvers import to_d

    n, num_dims = x.shape[0], x[0].numel()
    # Exact trace: stack D copies of the batch, copy i differentiates output coordinate i; one
    # backward pass through a D-times larger batch gives every diagonal Jacobian entry.
    copies = 1 if eps is not None else num_dims
    with torch.enable_grad():
        x_in = x.detach().repeat(copies, *([1] * (x.ndim - 1))).requires_grad_(True)
        sigma_vec = torch.full((x_in.shape[0],), sigma, dtype=x.dtype, device=x.device)
        # dx/du = sigma dx/dsigma: log-sigma time keeps the step sizes even from sigma_min to sigma_max
        f = sigma * to_d(x_in, sigma, denoiser(x_in, sigma_vec).to(x.dtype))
        if eps is not None:
            # Hutchinson: E[eps^T (df/dx) eps] = tr(df/dx) for Rademacher eps
            (grad,) = torch.autograd.grad((f * eps).sum(), x_in)
            div = (grad * eps).flatten(1).sum(dim=1)
        else:
            diag = torch.arange(num_dims, device=x.device)
            picked = f.reshape(num_dims, n, num_dims)[diag, :, diag]  # (D, N): f_i of copy i
            (grad,) = torch.autograd.grad(picked.sum(), x_in)
            div = grad.reshape(num_dims, n, num_dims)[diag, :, diag].sum(dim=0)
    return f[:n].detach(), div.detach()


PF_ODE_UNITS = ("nats", "bits_per_dim")


def pf_ode_log_likelihood(denoiser, x: torch.Tensor, sigma_max: float, sigma_min: float, *,
                          steps: int | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                          exact_trace: bool | None = None, generator: torch.Generator | None = None,
                          prior_log_prob: Callable | None = None, unit: str = "nats",
                          bin_width: float | None = None) -> torch.Tensor:
    """Log-likelihood of ``x`` under the model through the probability-flow ODE, per sample.

    The PF-ODE in the s = 1 sigma-parameterisation, dx/dsigma = (x - D(x; sigma)) / sigma, is a
    continuous normalising flow: along a trajectory, d log p(x; sigma) / dsigma = -div_x(dx/dsigma)
    (the instantaneous change of variables of Chen et al. 2018, as used by Song et al. 2021). Integrating from the data at ``sigma_min`` up to
    ``sigma_max`` (in u = log sigma) gives

        log p(x; sigma_min) = log p_prior(x(sigma_max)) + int div_x f du,    f = x - D(x; sigma),

    with the prior N(0, sigma_max^2 I) unless ``prior_log_prob`` (a callable on (N, ...) batches)
    is given. The result is the density of the data blurred by ``sigma_min``; keep it small.

    Solver: adaptive RK45 (``scipy.integrate.solve_ivp``) with ``rtol``/``atol``, or fixed-step
    RK4 with ``steps`` steps evenly spaced in log sigma. Divergence: exact (one backward pass
    through a batch of D stacked copies, so memory grows D-fold) or Hutchinson's estimator with one Rademacher probe per sample, fixed over the
    whole solve and drawn from ``generator`` (unbiased for the likelihood, as in FFJORD);
    ``exact_trace=None`` picks exact for up to 64 dimensions.

    ``unit`` "nats" returns log p (N,), "bits_per_dim" returns the NLL in bits per dimension via
    :func:`bits_per_dim_from_nll` (with ``bin_width`` for discrete data). Used by the likelihood
    sections of the Score SDE, VDM and EDM chapters; tested against the exact Gaussian mixture.
    """
    if not (0 < sigma_min < sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if unit not in PF_ODE_UNITS:
        raise ValueError(f"unit must be one of {', '.join(PF_ODE_UNITS)}; got {unit!r}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive number of RK4 steps (or None for adaptive), got {steps}")
    x = torch.as_tensor(x)
    if not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point batch (N, ...), got {x.dtype} of shape {tuple(x.shape)}")
    n, shape, num_dims = x.shape[0], x.shape, x[0].numel()
    if exact_trace is None:
        exact_trace = num_dims <= 64
    eps = None
    if not exact_trace:
        eps = (torch.randint(0, 2, shape, generator=generator) * 2 - 1).to(x.dtype).to(x.device)
    prior = prior_log_prob or _gaussian_prior_log_prob(float(sigma_max))
    u_min, u_max = math.log(sigma_min), math.log(sigma_max)

    def rhs(u: float, x_now: torch.Tensor):
        return _drift_and_divergence(denoiser, x_now, math.exp(u), eps)

    if steps is not None:
        x_now, delta = x.detach().clone(), torch.zeros(n, dtype=x.dtype, device=x.device)
        h = (u_max - u_min) / steps
        for k in range(steps):  # classical RK4 on the joint state (x, int div f du)
            u = u_min + k * h
            f1, d1 = rhs(u, x_now)
            f2, d2 = rhs(u + h / 2, x_now + h / 2 * f1)
            f3, d3 = rhs(u + h / 2, x_now + h / 2 * f2)
            f4, d4 = rhs(u + h, x_now + h * f3)
            x_now = x_now + h / 6 * (f1 + 2 * f2 + 2 * f3 + f4)
            delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    else:
        from scipy.integrate import solve_ivp

        def rhs_numpy(u, state):
            x_now = torch.from_numpy(state[: n * num_dims]).reshape(shape).to(x.dtype).to(x.device)
            f, div = rhs(u, x_now)
            return np.concatenate([f.cpu().double().flatten().numpy(), div.cpu().double().numpy()])

        start = np.concatenate([x.detach().cpu().double().flatten().numpy(), np.zeros(n)])
        solution = solve_ivp(rhs_numpy, (u_min, u_max), start, method="RK45", rtol=rtol, atol=atol)
        if not solution.success:
            raise RuntimeError(f"PF-ODE solve failed: {solution.message}")
        end = torch.from_numpy(solution.y[:, -1])
        x_now = end[: n * num_dims].reshape(shape).to(x.dtype).to(x.device)
        delta = end[n * num_dims:].to(x.dtype).to(x.device)
    log_p = prior(x_now) + delta
    if unit == "nats":
        return log_p
    return bits_per_dim_from_nll(-log_p, num_dims, bin_width)


# -- a baseline codelength for images on a grid of grey levels ------------------------------------
def independent_pixels_bits_per_dim(train, test, levels: int, *, pseudo_count: float = 0.5) -> float:
    """Bits/dim of ``test`` coded pixel by pixel with each pixel's histogram over ``train``.

    Images live in [-1, 1] on ``levels`` equally spaced grey values (17 for sklearn's digits);
    each of the D pixels gets its own categorical distribution, the training counts plus
    ``pseudo_count`` per level (add-half smoothing by default, so an unseen value costs a finite
    codelength). The result is the mean over test images of ``-log2 p(x) / D``: the codelength
    of a model that knows each pixel's marginal and nothing of how pixels go together. Coding
    every pixel uniformly costs ``log2(levels)``; a model that beats neither has learnt nothing.
    """
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    if not (isinstance(levels, int) and levels >= 2):
        raise ValueError(f"levels must be an integer >= 2 (grey values per pixel), got {levels!r}")
    if train.ndim < 2 or test.shape[1:] != train.shape[1:] or not len(train) or not len(test):
        raise ValueError(f"train and test must be non-empty batches of one image shape, got "
                         f"{tuple(train.shape)} and {tuple(test.shape)}")
    if not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be positive, got {pseudo_count!r}")

    def grid_values(images, name):
        values = (images.double().flatten(1) + 1) / 2 * (levels - 1)
        index = torch.round(values)
        if (index - values).abs().max() > 1e-4 or index.min() < 0 or index.max() > levels - 1:
            raise ValueError(f"{name} must take {levels} equally spaced values in [-1, 1]")
        return index.long()

    train_values, test_values = grid_values(train, "train"), grid_values(test, "test")
    dims = train_values.shape[1]
    counts = torch.zeros(dims, levels, dtype=torch.float64)
    counts.scatter_add_(1, train_values.T, torch.ones_like(train_values.T, dtype=torch.float64))
    probs = (counts + pseudo_count) / (counts.sum(1, keepdim=True) + levels * pseudo_count)
    code = -torch.log2(probs[torch.arange(dims), test_values])  # (N, D)
    return code.mean().item()
