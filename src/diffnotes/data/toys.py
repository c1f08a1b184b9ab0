"""Two-dimensional toy distributions: swiss roll, two moons, checkerboard.

Each sampler is a pure function ``sampler(n, generator=None, noise=0.0, dtype=torch.float32)``
returning an ``(n, 2)`` tensor. The clean shape is centred and divided by one isotropic scale so
that its population mean is 0 and its average per-coordinate variance is 1 (the constants below
are the shape's exact moments, not estimates from a sample). Isotropic scaling keeps the shape
undistorted; ``noise`` is the standard deviation of Gaussian jitter added *after* scaling, so the
variance becomes ``1 + noise**2``. Unit variance matches the EDM default ``sigma_data = 0.5``
within a factor of two and lets one ``sigma_max`` serve every toy.

Used by the 2-D lab notebooks (the score-matching and sampler chapters) next to the exact
Gaussian mixture of :mod:`diffnotes.data.gmm`, whose scores are known in closed form.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .gmm import gmm_grid, gmm_ring

# Swiss roll: the angle t ~ U[a, b] traces (t cos t, t sin t); the range is sklearn's make_swiss_roll.
_ROLL_A, _ROLL_B = 1.5 * math.pi, 4.5 * math.pi


def _swiss_roll_moments() -> tuple[tuple[float, float], float]:
    """Exact mean and average per-coordinate variance of (t cos t, t sin t), t ~ U[a, b]."""
    a, b = _ROLL_A, _ROLL_B
    # Antiderivatives: ∫ t cos t = t sin t + cos t, ∫ t sin t = sin t - t cos t, ∫ t^2 = t^3 / 3.
    mean_x = ((b * math.sin(b) + math.cos(b)) - (a * math.sin(a) + math.cos(a))) / (b - a)
    mean_y = ((math.sin(b) - b * math.cos(b)) - (math.sin(a) - a * math.cos(a))) / (b - a)
    second_moment = (b**3 - a**3) / (3 * (b - a))  # E[x^2 + y^2] = E[t^2]
    total_var = second_moment - mean_x**2 - mean_y**2
    return (mean_x, mean_y), total_var / 2


def _moons_moments() -> tuple[tuple[float, float], float]:
    """Exact mean and average per-coordinate variance of the two moons, theta ~ U[0, pi].

    Upper moon (cos th, sin th), lower moon (1 - cos th, 1/2 - sin th), half the mass each;
    E[cos] = 0, E[sin] = 2/pi, E[cos^2] = E[sin^2] = 1/2.
    """
    mean_x = 0.5 * (0.0 + 1.0)
    mean_y = 0.5 * (2 / math.pi + (0.5 - 2 / math.pi))
    second_x = 0.5 * (0.5 + (1.0 + 0.5))  # E[(1 - cos)^2] = 1 + 1/2
    second_y = 0.5 * (0.5 + (0.25 - 2 / math.pi + 0.5))  # E[(1/2 - sin)^2]
    total_var = second_x - mean_x**2 + second_y - mean_y**2
    return (mean_x, mean_y), total_var / 2


def _standardise(xy: torch.Tensor, moments, noise: float, generator) -> torch.Tensor:
    (mean_x, mean_y), var = moments
    xy = (xy - xy.new_tensor([mean_x, mean_y])) / math.sqrt(var)
    if noise:
        xy = xy + noise * torch.randn(xy.shape, dtype=xy.dtype, generator=generator)
    return xy


def _check(n: int, noise: float) -> None:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0 (a standard deviation), got {noise!r}")


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.0,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points of the 2-D swiss roll (t cos t, t sin t), t ~ U[1.5 pi, 4.5 pi], standardised."""
    _check(n, noise)
    t = _ROLL_A + (_ROLL_B - _ROLL_A) * torch.rand(n, dtype=torch.float64, generator=generator)
    xy = torch.stack([t * t.cos(), t * t.sin()], dim=1)
    return _standardise(xy, _swiss_roll_moments(), noise, generator).to(dtype)


def moons(n: int, generator: torch.Generator | None = None, noise: float = 0.0,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points of two interleaved half circles (sklearn's make_moons shape), standardised.

    Each point picks a moon with probability 1/2 and an angle uniform on [0, pi].
    """
    _check(n, noise)
    theta = math.pi * torch.rand(n, dtype=torch.float64, generator=generator)
    lower = torch.rand(n, generator=generator) < 0.5
    upper_xy = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower_xy = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    xy = torch.where(lower.unsqueeze(1), lower_xy, upper_xy)
    return _standardise(xy, _moons_moments(), noise, generator).to(dtype)


def checkerboard(n: int, generator: torch.Generator | None = None, noise: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points uniform on the 8 dark cells of a 4 x 4 board over [-2, 2]^2, standardised.

    Cell (i, j) is dark when i + j is even. Each column holds two dark cells, so each coordinate
    is uniform on [-2, 2] (mean 0, variance 16/12); dividing by sqrt(4/3) gives unit variance.
    """
    _check(n, noise)
    dark = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0],
                        dtype=torch.float64)
    cell = torch.randint(0, dark.shape[0], (n,), generator=generator)
    xy = dark[cell] - 2.0 + torch.rand(n, 2, dtype=torch.float64, generator=generator)
    return _standardise(xy, ((0.0, 0.0), 4.0 / 3.0), noise, generator).to(dtype)


def _gmm_sampler(make) -> Callable:
    def sampler(n: int, generator: torch.Generator | None = None, noise: float = 0.0,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        _check(n, noise)
        x = make().sample(n, generator=generator)
        if noise:
            x = x + noise * torch.randn(x.shape, dtype=x.dtype, generator=generator)
        return x.to(dtype)

    sampler.__doc__ = f"Samples of ``{make.__name__}()`` (not rescaled; its exact score is known)."
    return sampler


TOYS: dict[str, Callable] = {
    "swiss_roll": swiss_roll,
    "moons": moons,
    "checkerboard": checkerboard,
    "gmm_ring": _gmm_sampler(gmm_ring),
    "gmm_grid": _gmm_sampler(gmm_grid),
}


def get_toy(name: str) -> Callable:
    """The sampler called ``name``: ``get_toy("moons")(1000, generator=g)``.

    An unknown name raises ``ValueError`` listing the valid names.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key not in TOYS:
        raise ValueError(f"unknown toy {name!r}; valid toys: {', '.join(TOYS)}")
    return TOYS[key]
