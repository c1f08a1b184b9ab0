"""Analytic-DPM (Bao et al. 2022): the optimal reverse variance from a trained noise predictor.

For the family q(x_{n-1} | x_n, x_0) = N(mu_tilde_n, lambda_n^2 I) (DDPM: lambda_n^2 = beta_tilde_n)
and a Gaussian reverse step N(mu_n(x_n), sigma_n^2 I) whose mean uses E[x0 | x_n], the variance
that minimises the bound is (Theorem 1; proofs ``analytic_dpm_variance``, ``analytic_dpm_bounds``)

    sigma_n*^2 = lambda_n^2 + (sqrt(betabar_n / alpha_n) - sqrt(betabar_{n-1} - lambda_n^2))^2 (1 - Gamma_n),
    Gamma_n = E ||eps_hat(x_n, n)||^2 / d      (= betabar_n E||grad log q_n||^2 / d),

with alpha_n = alphabar_n / alphabar_{n-1} on any respaced chain, betabar = 1 - alphabar. Theorem 2
bounds it twice: for any data lambda_n^2 <= sigma*^2 <= lambda_n^2 + c_n (c_n the coefficient of
(1 - Gamma_n) above; an estimate never exceeds it, since Gamma_n >= 0), and for data in [a, b]^d
sigma*^2 <= lambda_n^2 + gamma_n^2 ((b - a) / 2)^2, gamma_n = sqrt(alphabar_{n-1}) - sqrt(betabar_{n-1}
- lambda_n^2) sqrt(alphabar_n / betabar_n) the weight of x0 in mu_tilde_n. The estimate is clipped
to the bounded-data interval, as the official code, which clips the posterior variance of x0,
(betabar_n / alphabar_n)(1 - Gamma_n), to [0, ((b - a) / 2)^2]: the same thing, since
sigma^2 = lambda^2 + gamma^2 Var is increasing in Var. This module keeps only what the paper adds:

* :func:`score_norm_moments` — Gamma_n by Monte Carlo over data and noise at the given steps;
* :func:`analytic_variance` — sigma_n*^2 of a (respaced) chain with its two clipping bounds;
* :func:`nll_bounds` — the chain's bound in bits/dim for several reverse variances at once (the
  chain's loop ``bound_terms`` over its ``step_kl`` and discretized decoder; one network
  evaluation per step serves them all);
* :func:`sample` — the chain's ``ancestral_sample`` on a respaced chain with a given variance per step;
* :func:`official_decoder_variance` — the decoder (n = 1) variance of the official code, beta_tilde_2
  of the full chain for every K (this module's default is the chain's own: see below);
* :func:`step_kl_costs`, :func:`optimal_trajectory` — the per-step KLs with the analytic variance
  between any two steps of the full chain, and the K-step trajectory that minimises their sum by
  dynamic programming (Sec. 4 of the paper).

The decoder step. By default the n = 1 entry is the chain's own: the analytic value at n = 1
(where lambda_1 = 0, floored at ``DECODER_FLOOR``), and beta_1 in :func:`fixed_variances`. The
official code instead uses beta_tilde_2 of the full 1000-step chain for the decoder of every arm
and every K; pass ``decoder_variance=official_decoder_variance(full_chain)`` for that. Every other
variance entry agrees with the official code.

Used by ``book/papers/bao2022analytic.md`` and ``notebooks/bao2022analytic.ipynb``.
"""

from __future__ import annotations

import math

import torch

from diffnotes.chain import (DiscreteSchedule, ancestral_sample, bound_terms, check_steps, discretized_gaussian_nll,
                             gather, prior_kl, step_kl, sum_dims, to_bits_per_dim)
from diffnotes.parameterization import denoiser_to_eps

__all__ = ["score_norm_moments", "variance_terms", "analytic_variance", "fixed_variances", "nll_bounds",
           "sample", "DECODER_FLOOR", "official_decoder_variance", "step_kl_costs", "optimal_trajectory"]

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


def official_decoder_variance(full_chain: DiscreteSchedule) -> float:
    """beta_tilde_2 of the full (not respaced) chain: the official code's decoder variance for every K."""
    if full_chain.T < 2:
        raise ValueError("the full chain needs at least 2 steps")
    return float(full_chain.beta_tilde[1])


def _with_decoder(table: torch.Tensor, decoder_variance) -> torch.Tensor:
    if decoder_variance is None:
        return table
    if not float(decoder_variance) > 0:
        raise ValueError(f"decoder_variance must be positive, got {decoder_variance!r}")
    table = table.clone()
    table[0] = float(decoder_variance)
    return table


def analytic_variance(chain: DiscreteSchedule, moments: torch.Tensor, *, data_range=(-1.0, 1.0),
                      clip: bool = True, decoder_variance: float | None = None) -> dict[str, torch.Tensor]:
    """Analytic-DPM's variance of each step of ``chain`` (DDPM's lambda_n^2 = beta_tilde_n).

    ``moments`` holds Gamma_n at the chain's steps n = 1..K (estimated on the original chain at the
    kept steps: respacing keeps their alphabar). Returns ``"variance"`` (clipped to the bounds when
    ``clip``), ``"raw"``, ``"lower"``, ``"upper"`` (Theorem 2's bound for data in ``data_range``) and
    ``"upper_any_data"`` (lambda^2 + c_n, its bound for any data), each of shape (K,), float64.
    ``data_range=None`` clips to the data-independent bounds instead. An estimate never exceeds
    lambda^2 + c_n (Gamma_n is a mean square), so only the data bound can bind from above. ``decoder_variance`` replaces the
    n = 1 entry of ``"variance"`` (e.g. :func:`official_decoder_variance`); default: the chain's own.
    """
    moments = torch.as_tensor(moments, dtype=torch.float64).reshape(-1)
    if moments.numel() != chain.T:
        raise ValueError(f"need one moment Gamma_n per step: {chain.T}, got {moments.numel()}")
    lambda2 = chain.beta_tilde
    c, gamma = variance_terms(chain, lambda2)
    raw = lambda2 + c * (1 - moments)
    any_data = lambda2 + c
    if data_range is None:
        upper = any_data
    else:
        low, high = (float(v) for v in data_range)
        if not low < high:
            raise ValueError(f"data_range must be (a, b) with a < b, got {data_range!r}")
        upper = lambda2 + gamma**2 * ((high - low) / 2) ** 2  # as the official code (and the stored runs)
    lower = lambda2.clamp_min(DECODER_FLOOR)
    variance = torch.minimum(torch.maximum(raw, lower), upper) if clip else raw.clamp_min(DECODER_FLOOR)
    return {"variance": _with_decoder(variance, decoder_variance), "raw": raw, "lower": lower,
            "upper": upper, "upper_any_data": any_data}


def fixed_variances(chain: DiscreteSchedule, *, decoder_variance: float | None = None) -> dict[str, torch.Tensor]:
    """DDPM's two fixed choices on ``chain``: ``"beta"`` and ``"beta_tilde"``.

    Decoder (n = 1): beta_1 by default (``chain.reverse_variance``); ``decoder_variance`` replaces it
    (the official code's :func:`official_decoder_variance`).
    """
    return {kind: _with_decoder(chain.reverse_variance(kind), decoder_variance) for kind in ("beta", "beta_tilde")}


def step_kl_costs(schedule: DiscreteSchedule, moments: torch.Tensor, *, data_range=(-1.0, 1.0)) -> torch.Tensor:
    """Expected KL per dimension (nats) of the reverse step t -> s, 1 <= s < t <= T, with the analytic variance.

    ``moments`` holds Gamma_t at every step t = 1..T of ``schedule`` (the full chain). Entry
    [s, t] of the (T + 1, T + 1) result is (1/2)(log(sigma^2 / lambda^2) + (lambda^2 + gamma^2 V) /
    sigma^2 - 1), with lambda^2 = beta_tilde of the jump, V = (betabar_t / alphabar_t)(1 - Gamma_t)
    the estimated posterior variance of x0 (clipped to [0, ((b - a) / 2)^2] for ``data_range``) and
    sigma^2 = lambda^2 + gamma^2 V; without clipping this is (1/2) log(sigma*^2 / lambda^2). Every
    other entry (s >= t, s = 0) is +inf. Summing entries along a trajectory 1 = tau_1 < ... < tau_K
    = T gives its bound's KL terms (the prior and decoder terms do not depend on the inner steps).
    """
    T = schedule.T
    moments = torch.as_tensor(moments, dtype=torch.float64).reshape(-1)
    if moments.numel() != T:
        raise ValueError(f"need one moment Gamma_t per step of the full chain: {T}, got {moments.numel()}")
    ab = torch.cat([torch.ones(1, dtype=torch.float64), schedule.alpha_bar])  # index = step, ab_0 = 1
    s_ab, t_ab = ab[:, None], ab[None, :]
    valid = torch.triu(torch.ones(T + 1, T + 1, dtype=torch.bool), diagonal=1)
    valid[0] = False
    beta_ts = torch.where(valid, 1 - t_ab / s_ab, torch.ones(()))  # beta_{t|s}
    bb_t = 1 - t_ab
    lambda2 = torch.where(valid, (1 - s_ab) * beta_ts / bb_t, torch.ones(()))
    gamma2 = s_ab * beta_ts**2 / bb_t**2
    var = (bb_t / t_ab) * (1 - torch.cat([torch.zeros(1, dtype=torch.float64), moments]))[None, :]
    high = math.inf if data_range is None else ((float(data_range[1]) - float(data_range[0])) / 2) ** 2
    var_clip = var.clamp(0, high)
    sigma2 = lambda2 + gamma2 * var_clip
    kl = 0.5 * (torch.log(sigma2 / lambda2) + (lambda2 + gamma2 * var) / sigma2 - 1)
    return torch.where(valid, kl, torch.full_like(kl, math.inf))


def optimal_trajectory(costs: torch.Tensor, steps: int) -> torch.Tensor:
    """The ``steps`` kept 1-based steps 1 = tau_1 < ... < tau_K = T minimising sum_k costs[tau_k, tau_{k+1}].

    Dynamic programming over the (T + 1, T + 1) matrix of :func:`step_kl_costs` (Bao et al. Sec. 4:
    the bound with the analytic variance splits into per-step terms, so the best K-step trajectory
    is a least-cost path). O(K T^2) work; returns int64 of shape (K,), increasing.
    """
    costs = torch.as_tensor(costs, dtype=torch.float64)
    T = costs.shape[0] - 1
    if costs.shape != (T + 1, T + 1) or T < 1:
        raise ValueError(f"costs must be a square (T + 1, T + 1) matrix, got {tuple(costs.shape)}")
    if not isinstance(steps, int) or not (2 <= steps <= T or steps == T == 1):
        raise ValueError(f"steps must be an integer in 2..{T}, got {steps!r}")
    if steps == T:
        return torch.arange(1, T + 1)
    best = torch.full((T + 1,), math.inf, dtype=torch.float64)
    best[1] = 0.0  # a path of one node: tau_1 = 1
    parents = []
    for _ in range(steps - 1):
        total = best[:, None] + costs  # [s, t]: best path to s, then the jump s -> t
        best, parent = total.min(dim=0)
        parents.append(parent)
    if not math.isfinite(float(best[T])):
        raise ValueError("no finite path of that length")
    path = [T]
    for parent in reversed(parents):
        path.append(int(parent[path[-1]]))
    return torch.tensor(path[::-1], dtype=torch.int64)


@torch.no_grad()
def nll_bounds(denoiser, x0: torch.Tensor, chain: DiscreteSchedule, variances: dict[str, torch.Tensor], *,
               levels: int = 256, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The bound L_T + sum_{n>=2} L_{n-1} + L_0 per sample in bits/dim, for each named variance table.

    The chain's loop (:func:`diffnotes.chain.bound_terms`: one noise draw and one network
    evaluation per step, shared by every variance) over its KL term ``step_kl`` (DDPM eq. 5-7)
    and the discretized decoder (eq. 13), with the reverse mean from D.
    """
    for name, var in variances.items():
        if torch.as_tensor(var).numel() != chain.T or bool((torch.as_tensor(var) <= 0).any()):
            raise ValueError(f"variance {name!r} must hold {chain.T} positive values")
    tables = [torch.as_tensor(var, dtype=torch.float64) for var in variances.values()]

    def term(t, noise):  # (N, number of variances): every table's term at step t
        x, sigma = chain.perturb(x0, t, noise)
        x0_hat = denoiser(x, sigma).to(x0.dtype)
        x_t = chain.to_ddpm(x, t)
        mean_p, _ = chain.posterior(t, x0_hat, x_t)
        out = []
        for table in tables:
            var_p = gather(table, t, x0)
            # mu at n = 1 is x0_hat itself (alphabar_0 = 1)
            dec = discretized_gaussian_nll(x0, x0_hat, var_p, levels)
            out.append(torch.where(t == 1, dec, step_kl(chain, t, x0, x_t, mean_p, var_p)))
        return torch.stack(out, dim=1)

    terms = bound_terms(term, x0, chain.T, generator)
    prior, dims = prior_kl(x0, chain).double().cpu(), x0[0].numel()
    # the prior term, then L_0, L_1, ... added one by one (the order the totals were always summed in)
    return {name: to_bits_per_dim(sum(terms[:, :, i].unbind(1), prior), dims)
            for i, name in enumerate(variances)}


@torch.no_grad()
def sample(denoiser, shape, chain: DiscreteSchedule, variance: torch.Tensor, *,
           generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
    """Ancestral sampling on ``chain`` with reverse variance ``variance[n - 1]`` at step n.

    The chain's loop (:func:`diffnotes.chain.ancestral_sample`): x_K ~ N(0, I) in DDPM
    coordinates; x_{n-1} ~ N(mu_tilde_n(x_n, D(x_n)), variance_n); the last step returns the mean
    (no noise), as DDPM's Algorithm 2.
    """
    return ancestral_sample(denoiser, shape, chain, variance=variance, generator=generator, dtype=dtype,
                            device=device)
