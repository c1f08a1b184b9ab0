"""A Gaussian mixture whose noisy marginals, scores and ideal denoiser are known exactly.

For data x0 ~ sum_k w_k N(mu_k, C_k) and x = x0 + sigma n (the EDM form with s = 1), the noisy
marginal is p(x; sigma) = sum_k w_k N(x; mu_k, C_k + sigma^2 I). Its score is exact, and by
Tweedie's formula the ideal denoiser is D(x; sigma) = x + sigma^2 grad log p(x; sigma)
(``diffnotes.theory.proofs`` checks that identity). This is the test bed for every sampler and
every score-matching loss in the book: errors are measured against the truth, not a proxy.
"""

from __future__ import annotations

import math

import torch

from ..parameterization import append_dims, score_to_denoiser


def _per_sample_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """A scalar / 0-d / per-sample sigma as shape (N,), in x's dtype."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


class GaussianMixture:
    """A d-dimensional Gaussian mixture with full covariances.

    Parameters
    ----------
    weights: (K,) positive, normalised internally.
    means: (K, d).
    covs: (K, d, d) symmetric positive definite, or (K,) / float for isotropic ``std**2 I``
        given as variances.
    """

    def __init__(self, weights, means, covs, dtype=torch.float64):
        means = torch.as_tensor(means, dtype=dtype)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        k, d = means.shape
        weights = torch.as_tensor(weights, dtype=dtype).reshape(-1)
        if weights.shape[0] != k or bool((weights <= 0).any()):
            raise ValueError(f"weights must be {k} positive numbers, got {weights.tolist()}")
        covs = torch.as_tensor(covs, dtype=dtype)
        if covs.ndim == 0:
            covs = covs.expand(k)
        if covs.ndim == 1:
            covs = covs.reshape(k, 1, 1) * torch.eye(d, dtype=dtype)
        if covs.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}) or ({k},), got {tuple(covs.shape)}")
        self.weights = weights / weights.sum()
        self.means = means
        self.covs = covs
        self.dim = d
        self.dtype = dtype

    # -- sampling -------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """Draw ``n`` samples of the clean data (sigma = 0)."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.dim, dtype=self.dtype, generator=generator)
        x = self.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z)
        return (x, labels) if return_labels else x

    # -- exact quantities of the noisy marginal p(x; sigma) -------------------------------
    def _component_terms(self, x: torch.Tensor, sigma):
        """log w_k + log N(x; mu_k, C_k + sigma^2 I) and the score of each component.

        Each covariance is diagonalised once, C_k = U_k diag(lam_k) U_k^T, so that for any
        per-sample sigma, (C_k + sigma^2 I)^-1 = U_k diag(1 / (lam_k + sigma^2)) U_k^T: no matrix
        is inverted per sample.
        """
        x = x.to(self.dtype)
        s2 = append_dims(_per_sample_sigma(sigma, x), x) ** 2  # (N,1)
        lam, vecs = self._eig  # (K,d), (K,d,d)
        diff = x.unsqueeze(1) - self.means.unsqueeze(0)  # (N,K,d)
        proj = torch.einsum("kji,nkj->nki", vecs, diff)  # U_k^T (x - mu_k)
        var = lam.unsqueeze(0) + s2.unsqueeze(-1)  # (N,K,d) eigenvalues of C_k + sigma^2 I
        maha = (proj**2 / var).sum(-1)
        logdet = torch.log(var).sum(-1)
        log_comp = torch.log(self.weights) - 0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))
        comp_scores = -torch.einsum("kij,nkj->nki", vecs, proj / var)  # -(C_k + s^2 I)^-1 (x - mu_k)
        return log_comp, comp_scores

    @property
    def _eig(self):
        if not hasattr(self, "_eig_cache"):
            lam, vecs = torch.linalg.eigh(self.covs)
            self._eig_cache = (lam, vecs)
        return self._eig_cache

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """Exact log p(x; sigma) of the mixture convolved with N(0, sigma^2 I)."""
        log_comp, _ = self._component_terms(x, sigma)
        return torch.logsumexp(log_comp, dim=1)

    def responsibilities(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """Posterior component probabilities p(k | x; sigma), shape (N, K)."""
        log_comp, _ = self._component_terms(x, sigma)
        return torch.softmax(log_comp, dim=1)

    def score(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """Exact score grad_x log p(x; sigma), shape (N, d)."""
        log_comp, comp_scores = self._component_terms(x, sigma)
        r = torch.softmax(log_comp, dim=1)  # (N,K)
        return torch.einsum("nk,nki->ni", r, comp_scores)

    def denoiser(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Ideal denoiser D(x; sigma) = E[x0 | x] = x + sigma^2 * score (Tweedie)."""
        x = x.to(self.dtype)
        return score_to_denoiser(self.score(x, sigma), x, _per_sample_sigma(sigma, x))

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.weights.numel()}, d={self.dim})"


def gmm_ring(k: int = 8, radius: float = 1.0, std: float = 0.1, weights=None) -> GaussianMixture:
    """``k`` isotropic components evenly spaced on a circle (the classic 2-D test bed)."""
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    w = torch.ones(k) if weights is None else torch.as_tensor(weights)
    return GaussianMixture(w, means, torch.full((k,), std**2))


def gmm_grid(n: int = 3, spacing: float = 1.0, std: float = 0.1, weights=None) -> GaussianMixture:
    """An ``n x n`` grid of isotropic components centred at the origin."""
    coords = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    means = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    w = torch.ones(n * n) if weights is None else torch.as_tensor(weights)
    return GaussianMixture(w, means, torch.full((n * n,), std**2))
