"""Analytic-DPM (Bao et al. 2022): the optimal reverse variance from a trained noise predictor.

For the family q(x_{n-1} | x_n, x_0) = N(mu_tilde_n, lambda_n^2 I) (DDPM: lambda_n^2 = beta_tilde_n)
and a Gaussian reverse step N(mu_n(x_n), sigma_n^2 I) whose mean uses E[x0 | x_n], the variance
that minimises the bound is (Theorem 1; proofs ``analytic_dpm_variance``, ``analytic_dpm_bounds``)

    sigma_n*^2 = lambda_n^2 + (sqrt(betabar_n / alpha_n) - sqrt(betabar_{n-1} - lambda_n^2))^2 (1 - Gamma_n),
    Gamma_n = E ||eps_hat(x_n, n)||^2 / d      (= betabar_n E||grad log q_n||^2 / d),

with alpha_n = alphabar_n / alphabar_{n-1} on any respaced chain, betabar = 1 - alphabar. It is
clipped to [lambda_n^2, lambda_n^2 + gamma_n^2 ((b - a) / 2)^2] for data in [a, b] (Theorem 2),
gamma_n = sqrt(alphabar_{n-1}) - sqrt(betabar_{n-1} - lambda_n^2) sqrt(alphabar_n / betabar_n)
the weight of x0 in mu_tilde_n. This module keeps only what the paper adds to the chain:

* :func:`score_norm_moments` — Gamma_n by Monte Carlo over data and noise at the given steps;
* :func:`analytic_variance` — sigma_n*^2 of a (respaced) chain with its two clipping bounds;
* :func:`nll_bounds` — the chain's bound in bits/dim for several reverse variances at once (one
  network evaluation per step serves them all; the terms are the chain's closed forms);
* :func:`sample` — ancestral sampling on a respaced chain with a given variance per step.

Used by ``book/papers/bao2022analytic.md`` and ``notebooks/bao2022analytic.ipynb``.
"""

from __future__ import annotations

import torch

from diffnotes.chain import (DiscreteSchedule, check_steps, discretized_gaussian_nll, gather, gaussian_kl,
                             prior_kl, sum_dims, to_bits_per_dim)
from diffnotes.parameterization import denoiser_to_eps

__all__ = ["score_norm_moments", "variance_terms", "analytic_variance", "fixed_variances", "nll_bounds",
           "sample", "DECODER_FLOOR"]

# The decoder step has lambda_1 = 0, so its lower clipping bound is 0; a Gaussian decoder needs a
# positive variance (ours: far below the digits' bin width squared).
DECODER_FLOOR = 1e-10


@torch.no_grad()
def score_norm_moments(denoiser, x0: torch.Tensor, schedule: DiscreteSchedule, steps, *,
                       batch: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gamma_t = E ||eps_hat(x_t, t)||^2 / d for each step t in ``steps`` (1-based), float64.

    x_t ~ q(x_t | x0) for every row of ``x0`` (the M data points of the paper's Monte Carlo
    estimate) with one noise draw each; eps_hat is the denoiser's noise prediction.
    """
    steps = check_steps(steps, schedule.T).reshape(-1)
    dims, out = x0[0].numel(), torch.empty(steps.numel(), dtype=torch.float64)
    for i, t in enumerate(steps.tolist()):
        total = 0.0
        for chunk in x0.split(batch):
            noise = torch.randn(chunk.shape, generator=generator, dtype=chunk.dtype).to(chunk.device)
            t_vec = torch.full((chunk.shape[0],), t, dtype=torch.long, device=chunk.device)
            x, sigma = schedule.perturb(chunk, t_vec, noise)
            eps_hat = denoiser_to_eps(denoiser(x, sigma).to(chunk.dtype), x, sigma)
            total += float(sum_dims(eps_hat.double() ** 2).sum())
        out[i] = total / (x0.shape[0] * dims)
    return out


def variance_terms(chain: DiscreteSchedule, lambda2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_n, gamma_n) for n = 1..K: sigma*^2 = lambda^2 + c_n (1 - Gamma_n), x0's weight gamma_n.

    c_n = (sqrt(betabar_n / alpha_n) - sqrt(betabar_{n-1} - lambda_n^2))^2 = gamma_n^2 betabar_n /
    alphabar_n (Theorem 1 and the proof ``analytic_dpm_bounds``).
    """
    ab, ab_prev = chain.alpha_bar, chain.alpha_bar_prev
    bb, bb_prev = 1 - ab, 1 - ab_prev
    lambda2 = torch.as_tensor(lambda2, dtype=torch.float64)
    if lambda2.shape != ab.shape or bool(((lambda2 < 0) | (lambda2 > bb_prev + 1e-12)).any()):
        raise ValueError(f"lambda2 must hold {chain.T} values in [0, betabar_(n-1)]")
    k = (bb_prev - lambda2).clamp_min(0).sqrt()
    c = ((bb * ab_prev / ab).sqrt() - k) ** 2
    gamma = ab_prev.sqrt() - k * (ab / bb).sqrt()
    return c, gamma


def analytic_variance(chain: DiscreteSchedule, moments: torch.Tensor, *, data_range=(-1.0, 1.0),
                      clip: bool = True) -> dict[str, torch.Tensor]:
    """Analytic-DPM's variance of each step of ``chain`` (DDPM's lambda_n^2 = beta_tilde_n).

    ``moments`` holds Gamma_n at the chain's steps n = 1..K (estimated on the original chain at the
    kept steps: respacing keeps their alphabar). Returns ``"variance"`` (clipped to the bounds when
    ``clip``), ``"raw"``, ``"lower"`` and ``"upper"``, each of shape (K,), float64.
    """
    low, high = (float(v) for v in data_range)
    if not low < high:
        raise ValueError(f"data_range must be (a, b) with a < b, got {data_range!r}")
    moments = torch.as_tensor(moments, dtype=torch.float64).reshape(-1)
    if moments.numel() != chain.T:
        raise ValueError(f"need one moment Gamma_n per step: {chain.T}, got {moments.numel()}")
    lambda2 = chain.beta_tilde
    c, gamma = variance_terms(chain, lambda2)
    raw = lambda2 + c * (1 - moments)
    lower, upper = lambda2.clamp_min(DECODER_FLOOR), lambda2 + gamma**2 * ((high - low) / 2) ** 2
    variance = torch.minimum(torch.maximum(raw, lower), upper) if clip else raw.clamp_min(DECODER_FLOOR)
    return {"variance": variance, "raw": raw, "lower": lower, "upper": upper}


def fixed_variances(chain: DiscreteSchedule) -> dict[str, torch.Tensor]:
    """DDPM's two fixed choices on ``chain``: ``"beta"`` and ``"beta_tilde"`` (decoder: beta_1)."""
    return {kind: chain.reverse_variance(kind) for kind in ("beta", "beta_tilde")}


@torch.no_grad()
def nll_bounds(denoiser, x0: torch.Tensor, chain: DiscreteSchedule, variances: dict[str, torch.Tensor], *,
               levels: int = 256, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The bound L_T + sum_{n>=2} L_{n-1} + L_0 per sample in bits/dim, for each named variance table.

    The chain's KL terms (DDPM eq. 5-7) and discretized decoder (eq. 13) with the reverse mean
    from D; one noise draw and one network evaluation per step, shared by every variance.
    """
    for name, var in variances.items():
        if torch.as_tensor(var).numel() != chain.T or bool((torch.as_tensor(var) <= 0).any()):
            raise ValueError(f"variance {name!r} must hold {chain.T} positive values")
    n, dims = x0.shape[0], x0[0].numel()
    totals = {name: prior_kl(x0, chain).double().cpu() for name in variances}
    for step in range(1, chain.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        t = torch.full((n,), step, dtype=torch.long, device=x0.device)
        x, sigma = chain.perturb(x0, t, noise)
        x0_hat = denoiser(x, sigma).to(x0.dtype)
        x_t = chain.to_ddpm(x, t)
        mean_q, var_q = chain.posterior(t, x0, x_t)
        mean_p, _ = chain.posterior(t, x0_hat, x_t)
        for name, var in variances.items():
            var_p = gather(torch.as_tensor(var, dtype=torch.float64), t, x0)
            if step == 1:  # mu at n = 1 is x0_hat itself (alphabar_0 = 1)
                term = discretized_gaussian_nll(x0, x0_hat, var_p, levels)
            else:
                term = sum_dims(gaussian_kl(mean_q, var_q.clamp_min(1e-30), mean_p, var_p))
            totals[name] += term.double().cpu()
    return {name: to_bits_per_dim(v, dims) for name, v in totals.items()}


@torch.no_grad()
def sample(denoiser, shape, chain: DiscreteSchedule, variance: torch.Tensor, *,
           generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Ancestral sampling on ``chain`` with reverse variance ``variance[n - 1]`` at step n.

    x_K ~ N(0, I) in DDPM coordinates; x_{n-1} ~ N(mu_tilde_n(x_n, D(x_n)), variance_n); the last
    step returns the mean (no noise), as DDPM's Algorithm 2.
    """
    variance = torch.as_tensor(variance, dtype=torch.float64)
    if variance.numel() != chain.T:
        raise ValueError(f"variance must hold {chain.T} values, got {variance.numel()}")
    x_t = torch.randn(shape, generator=generator, dtype=dtype).to(device or "cpu")
    for k in range(chain.T, 0, -1):
        t = torch.full((shape[0],), k, dtype=torch.long, device=x_t.device)
        x = x_t / float(chain.alpha_bar[k - 1].sqrt())  # EDM coordinates for the denoiser
        sigma = x.new_full((shape[0],), float(chain.sigmas[k - 1]))
        mean, _ = chain.posterior(t, denoiser(x, sigma).to(dtype), x_t)
        if k > 1:
            noise = torch.randn(shape, generator=generator, dtype=dtype).to(x_t.device)
            x_t = mean + float(variance[k - 1].sqrt()) * noise
        else:
            x_t = mean
    return x_t
