"""Metrics of sample sets of points (N, d): the 2-D toys' sample quality.

:func:`sliced_wasserstein` (SW-2) and :func:`mmd` (unbiased MMD^2) compare a model's samples
with real ones; :func:`sliced_wasserstein_band` gives the values two real sets of the same size
get, the band a model's number is read against; :func:`gmm_log_likelihood` is the exact mean
log-density of samples under a mixture whose density is known. SW and MMD take any point sets
(the SR3 lab compares flattened image patches with :func:`mmd`). Re-exported by
:mod:`diffnotes.metrics`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["sliced_wasserstein", "sliced_wasserstein_band", "mmd", "MMD_KERNELS", "DEFAULT_BANDWIDTHS",
           "gmm_log_likelihood"]


def _as_points(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, d) with N >= 2, got {tuple(x.shape)}")
    return x.to(torch.float64)


# -- distances between sample sets --------------------------------------------------------------
def _w2_squared_1d(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Exact W2^2 between the empirical measures of sorted columns xs (n, P) and ys (m, P).

    W2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du with both quantile functions piecewise constant; the
    integral is a finite sum over the merged breakpoints {i/n} U {j/m}.
    """
    n, m = xs.shape[0], ys.shape[0]
    if n == m:
        return ((xs - ys) ** 2).mean(dim=0)
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                   torch.arange(1, m + 1, dtype=torch.float64) / m]).sort().values
    u[-1] = 1.0
    widths = torch.diff(u, prepend=u.new_zeros(1))
    mid = u - widths / 2  # inside each interval both quantile functions are constant
    ix = (mid * n).floor().long().clamp(max=n - 1).to(xs.device)
    iy = (mid * m).floor().long().clamp(max=m - 1).to(xs.device)
    return (widths.to(xs.device).unsqueeze(1) * (xs[ix] - ys[iy]) ** 2).sum(dim=0)


def sliced_wasserstein(x, y, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance ``(E_theta W2^2(theta.x, theta.y))^(1/2)``, theta uniform on the sphere.

    Each 1-D W2 is exact (sorting for equal sizes, merged quantiles otherwise); the only error is
    the Monte Carlo average over ``n_projections`` directions, drawn from ``generator``.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = torch.randn(n_projections, x.shape[1], dtype=torch.float64, generator=generator)
    theta = (theta / theta.norm(dim=1, keepdim=True)).to(x.device)
    xs = (x @ theta.T).sort(dim=0).values
    ys = (y.to(x.device) @ theta.T).sort(dim=0).values
    return _w2_squared_1d(xs, ys).mean().sqrt().item()


MMD_KERNELS = ("rbf", "imq")
DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


def _kernel(sq_dist: torch.Tensor, kernel: str, bandwidths) -> torch.Tensor:
    total = torch.zeros_like(sq_dist)
    for h in bandwidths:
        if kernel == "rbf":
            total += torch.exp(-sq_dist / (2 * h**2))
        else:  # inverse multiquadric, heavy-tailed: still sees far-apart modes
            total += (1 + sq_dist / h**2).rsqrt()
    return total


def mmd(x, y, kernel: str = "rbf", bandwidths=DEFAULT_BANDWIDTHS) -> float:
    """Unbiased estimate of MMD^2 (Gretton et al. 2012) with a sum of kernels over ``bandwidths``.

    ``kernel`` is "rbf" (exp(-|a-b|^2 / (2 h^2))) or "imq" ((1 + |a-b|^2 / h^2)^(-1/2)). The default
    bandwidths suit the unit-variance 2-D toys; pass fixed ones of your data's scale otherwise
    (fixed, so that numbers of different models stay comparable). The estimate drops the i = j
    terms, so it is unbiased and can be slightly negative when the two samples match.
    """
    if kernel not in MMD_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(MMD_KERNELS)}; got {kernel!r}")
    bandwidths = tuple(float(h) for h in np.atleast_1d(bandwidths))
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"bandwidths must be positive numbers, got {bandwidths}")
    x, y = _as_points(x, "x"), _as_points(y, "y").to(torch.as_tensor(x).device)
    n, m = x.shape[0], y.shape[0]
    k_xx = _kernel(torch.cdist(x, x) ** 2, kernel, bandwidths)
    k_yy = _kernel(torch.cdist(y, y) ** 2, kernel, bandwidths)
    k_xy = _kernel(torch.cdist(x, y) ** 2, kernel, bandwidths)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return (term_xx + term_yy - 2 * k_xy.mean()).item()


def gmm_log_likelihood(x, gmm, sigma: float = 0.0) -> float:
    """Mean exact log-density (nats) of samples ``x`` under a known mixture ``gmm`` (``log_prob``).

    For a sampler run on the exact GMM denoiser, this says how much mass lands where the data
    lives; it is bounded above by minus the mixture's entropy.
    """
    return gmm.log_prob(torch.as_tensor(x), sigma).mean().item()


# -- real-vs-real bands -------------------------------------------------------------------------
def sliced_wasserstein_band(sample_fn: Callable, n: int, seeds, *, n_projections: int = 256) -> list[float]:
    """The sliced Wasserstein distance between two independent real sets of ``n`` points, per seed.

    ``sample_fn(n, generator)`` draws ``n`` real points (e.g. ``gmm.sample``). A model's
    :func:`sliced_wasserstein` to real data at the same ``n`` is read against these values: no
    sampler can be expected to do better than a second draw from the data itself. Seed ``s``
    draws both sets from ``Generator().manual_seed(s)`` and the projections from seed ``s``
    too, so one seed's value is reproducible on its own.
    """
    if not callable(sample_fn):
        raise ValueError(f"sample_fn must be callable as sample_fn(n, generator), got {sample_fn!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (points per set), got {n!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    band = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        first, second = sample_fn(n, gen), sample_fn(n, gen)
        band.append(sliced_wasserstein(first, second, n_projections,
                                       generator=torch.Generator().manual_seed(seed)))
    return band
