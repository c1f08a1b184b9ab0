"""Subspace diffusion (Jing et al. 2022): at high noise, diffuse only in a subspace.

Write a state of the forward process x = x0 + sigma n as its part in a subspace with
orthonormal basis U, u = U^T x, and the rest, x_perp = (I - U U^T) x. The noise part of x_perp
has variance sigma^2 in every direction while the data's part is small when the data lie near
the subspace, so above some sigma_switch x_perp is nearly N(0, sigma^2 I) and independent of u
(``diffnotes.theory.proofs.efficiency_proofs``). Above sigma_switch one needs a model of u only,
a smaller network on a smaller input; below it the full model takes over.

This module holds

* the subspaces: :class:`DownsampleSubspace` (images at a p times lower resolution; u is the
  block sum divided by p, so U has orthonormal columns) and :class:`PCASubspace` (the leading
  principal directions of the data, through the origin), each with ``coords`` (U^T x), ``lift``
  (U u) and ``orthogonal`` ((I - U U^T) x);
* the switching criterion: :func:`orthogonal_moments` (mean and covariance spectrum of the
  data's orthogonal part), :func:`orthogonal_kl` (the KL of the true orthogonal marginal, taken
  Gaussian with those moments, from the N(0, sigma^2 I) the method assumes) and
  :func:`switch_sigma` (the smallest sigma where that KL is below a tolerance);
* training at equal budget: :class:`BandEDMLoss` (EDM's loss with ln sigma drawn from EDM's
  normal truncated to a band) and :func:`band_probability` (the share of EDM's draws that fall
  in the band, to split a budget of steps between the two networks);
* sampling: :class:`SubspaceDenoiser`, one denoiser D(x; sigma) for the shared samplers that
  calls the subspace network above sigma_switch and the full one below it.

Used in the book by ``book/papers/jing2022subspace.md`` and ``notebooks/jing2022subspace.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import degradations
from .edm import EDMLoss

__all__ = ["DownsampleSubspace", "PCASubspace", "orthogonal_moments", "orthogonal_kl", "switch_sigma",
           "BandEDMLoss", "band_probability", "SubspaceDenoiser"]


class _Subspace:
    """``coords`` = U^T x, ``lift`` = U u; the rest follows."""

    def coords(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def lift(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """U U^T x: the closest point of the subspace."""
        return self.lift(self.coords(x))

    def orthogonal(self, x: torch.Tensor) -> torch.Tensor:
        """(I - U U^T) x: the part the subspace model never sees."""
        return x - self.project(x)


class DownsampleSubspace(_Subspace):
    """Images that are constant on ``factor`` x ``factor`` blocks.

    The basis vector of a block is 1/factor on its factor^2 pixels, so u = factor * (block mean)
    -- an image at 1/factor the resolution whose noise keeps the variance sigma^2 -- and U U^T is
    ILVR's block low-pass (``diffnotes.degradations.block_downsample`` / ``block_upsample``,
    scaled; ``factor`` 2, 4 or 8).
    """

    def __init__(self, factor: int = 2):
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2:
            raise ValueError(f"factor must be an integer >= 2 (the resolution divisor), got {factor!r}")
        self.factor = factor

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"DownsampleSubspace(factor={self.factor}) needs images (N, C, H, W) with H and W "
                             f"divisible by {self.factor}, got shape {tuple(x.shape)}")

    def coords(self, x):
        self._check(x)
        return self.factor * degradations.block_downsample(x, self.factor)

    def lift(self, u):
        return degradations.block_upsample(u, self.factor) / self.factor


class PCASubspace(_Subspace):
    """The span of the ``k`` leading right singular vectors of the (uncentred) data matrix.

    Through the origin, so that the noise-free mean lies in it too. ``basis`` has shape (D, k)
    with orthonormal columns; ``coords`` returns (N, k) and ``lift`` returns the data's shape.
    """

    def __init__(self, data: torch.Tensor, k: int):
        if data.ndim < 2 or data.shape[0] < 2:
            raise ValueError(f"data must be a batch (N, ...) with N >= 2, got shape {tuple(data.shape)}")
        dim = data[0].numel()
        if not isinstance(k, int) or not 1 <= k < dim:
            raise ValueError(f"k must be an integer in [1, {dim - 1}] (the data have {dim} dimensions), got {k!r}")
        self.shape = tuple(data.shape[1:])
        _, _, vh = torch.linalg.svd(data.reshape(data.shape[0], -1).double(), full_matrices=False)
        self.basis = vh[:k].T.to(data.dtype)

    def coords(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"PCASubspace was fitted on samples of shape {self.shape}, got {tuple(x.shape[1:])}")
        return x.reshape(x.shape[0], -1) @ self.basis.to(x.dtype)

    def lift(self, u):
        return (u @ self.basis.T.to(u.dtype)).reshape(u.shape[0], *self.shape)


def orthogonal_moments(subspace: _Subspace, data: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(|mu_perp|^2, eigenvalues of Cov(x_perp))`` of the data's orthogonal part, in float64."""
    perp = subspace.orthogonal(data.double()).reshape(data.shape[0], -1)
    mean = perp.mean(0)
    cov = torch.cov(perp.T)
    return float(mean @ mean), torch.linalg.eigvalsh(cov).clamp(min=0.0)


def orthogonal_kl(mean_sq: float, eigenvalues: torch.Tensor, sigma) -> torch.Tensor:
    """KL( N(mu, Sigma + sigma^2 I) || N(0, sigma^2 I) ) in nats, for each ``sigma``.

    The first is the orthogonal part of x = x0 + sigma n when x0's orthogonal part is Gaussian
    with mean mu (``mean_sq`` = |mu|^2) and covariance spectrum ``eigenvalues``; the second is
    what subspace diffusion assumes. Directions of zero variance add nothing.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if bool((sigma <= 0).any()):
        raise ValueError("sigma must be positive")
    ratio = eigenvalues.double().reshape(-1, 1) / sigma.reshape(1, -1) ** 2
    kl = 0.5 * (ratio - torch.log1p(ratio)).sum(0) + 0.5 * mean_sq / sigma.reshape(-1) ** 2
    return kl.reshape(sigma.shape)


def switch_sigma(mean_sq: float, eigenvalues: torch.Tensor, tol: float, *, sigma_min: float = 1e-3,
                 sigma_max: float = 1e3, iters: int = 60) -> float:
    """The smallest sigma in [sigma_min, sigma_max] with ``orthogonal_kl <= tol`` (bisection in
    ln sigma; the KL falls monotonically as sigma grows)."""
    if not tol > 0:
        raise ValueError(f"tol must be a positive number of nats, got {tol!r}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")

    def ok(s):
        return float(orthogonal_kl(mean_sq, eigenvalues, s)) <= tol

    if ok(sigma_min):
        return sigma_min
    if not ok(sigma_max):
        raise ValueError(f"the orthogonal KL is above tol={tol} even at sigma_max={sigma_max}")
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(math.exp(mid)) else (mid, hi)
    return math.exp(hi)


class BandEDMLoss(EDMLoss):
    """EDM's loss with ln sigma ~ N(P_mean, P_std^2) truncated to sigma in [lo, hi).

    The truncated draw is the inverse CDF of a uniform draw inside the band's probability
    interval, so each network of a split model sees exactly the noise levels that EDM's loss
    would give it, and no others.
    """

    def __init__(self, lo: float = 0.0, hi: float = math.inf, **edm_kwargs):
        super().__init__(**edm_kwargs)
        if not (0 <= lo < hi):
            raise ValueError(f"need 0 <= lo < hi for the sigma band, got lo={lo}, hi={hi}")
        self.lo, self.hi = float(lo), float(hi)
        self.p_lo, self.p_hi = (self._cdf(lo), self._cdf(hi))
        self.draw = self._band_draw

    def _cdf(self, sigma: float) -> float:
        if sigma <= 0:
            return 0.0
        if math.isinf(sigma):
            return 1.0
        z = (math.log(sigma) - self.P_mean) / self.P_std
        return float(torch.special.ndtr(torch.tensor(z, dtype=torch.float64)))

    def _band_draw(self, n: int, device=None) -> torch.Tensor:
        u = self.p_lo + (self.p_hi - self.p_lo) * torch.rand(n, device=device, dtype=torch.float64)
        eps = 1e-12  # keep ndtri finite at the ends of the unit interval
        return torch.special.ndtri(u.clamp(eps, 1 - eps)).float()


def band_probability(lo: float, hi: float = math.inf, **edm_kwargs) -> float:
    """P(lo <= sigma < hi) under EDM's training distribution of sigma."""
    loss = BandEDMLoss(lo, hi, **edm_kwargs)
    return loss.p_hi - loss.p_lo


class SubspaceDenoiser(nn.Module):
    """D(x; sigma) for the shared samplers: U D_sub(U^T x; sigma) above ``sigma_switch``, the
    full denoiser below.

    Above the switch the orthogonal part's denoised value is 0 (the method's assumption that
    x_perp is pure noise), so the probability-flow ODE dx/dsigma = (x - D)/sigma scales x_perp
    by sigma_next / sigma at every step (exactly, for Euler and Heun steps): started from
    N(0, sigma_max^2 I) it reaches N(0, sigma_switch^2 I), the draw the paper makes when it
    lifts the subspace state back to the full space. ``calls`` counts the evaluations of
    each network.
    """

    def __init__(self, full: nn.Module, sub: nn.Module, subspace: _Subspace, sigma_switch: float):
        super().__init__()
        if not sigma_switch > 0:
            raise ValueError(f"sigma_switch must be positive, got {sigma_switch!r}")
        self.full, self.sub, self.subspace, self.sigma_switch = full, sub, subspace, float(sigma_switch)
        self.calls = {"full": 0, "sub": 0}

    def forward(self, x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        high = sigma >= self.sigma_switch
        out = torch.empty_like(x)
        if bool(high.any()):
            self.calls["sub"] += 1
            u = self.subspace.coords(x[high])
            out[high] = self.subspace.lift(self.sub(u, sigma[high]).to(x.dtype))
        if not bool(high.all()):
            self.calls["full"] += 1
            out[~high] = self.full(x[~high], sigma[~high]).to(x.dtype)
        return out
