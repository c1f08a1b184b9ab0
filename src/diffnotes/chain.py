"""The discrete forward chain shared by Sohl-Dickstein et al. 2015, DDPM and iDDPM, written once.

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I),   t = 1, ..., T.

Everything the three papers have in common lives here; each method module keeps only what its
paper adds (DDPM: L_simple and the fixed reverse variances; iDDPM: the learned variance and
importance sampling; Sohl-Dickstein: free mean and variance networks):

* :class:`DiscreteSchedule` — the betas (linear: DDPM Sec. 4, cosine: iDDPM eq. 17, both
  evaluated from the theory's chains by ``diffnotes.theory.numeric.chain_schedule``), alpha_bar,
  the EDM noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), q(x_t | x_0) in both
  coordinates, the one change of coordinates between them (``to_edm``: x = x_t / sqrt(alpha_bar_t)
  and sigma_t; ``to_ddpm``: back), the posterior q(x_{t-1} | x_t, x_0) (DDPM eq. 6-7) and
  respacing (iDDPM Sec. 4);
* :func:`respace_steps` — the one timestep-subset rule (ours, diffusers' three spacings, ADM's ddimK);
* :func:`gaussian_kl`, :func:`prior_kl`, :func:`gaussian_nll`, :func:`discretized_gaussian_nll`
  — the bound's closed-form terms (DDPM eq. 5 and 13);
* :func:`step_kl` — the bound's term L_{t-1} for t >= 2: KL(q(x_{t-1} | x_t, x_0) || N(mean_p,
  var_p)) for the model's mean and per-step variance (DDPM eq. 5; every paper of the family
  differs only in how it makes mean_p and var_p);
* :func:`bound_terms` — the loop that evaluates every term of the bound, one noise draw each;
* :func:`ancestral_sample` — the ancestral sampler in the chain's own coordinates: x_T ~ N(0, I),
  x_{t-1} ~ N(posterior mean at x_0 = D, the model's variance of step t) (DDPM Algorithm 2 with
  any per-step variance: a table, e.g. Analytic-DPM's, or a learned one, iDDPM's);
* :func:`random_steps`, :func:`check_steps`, :func:`to_bits_per_dim`.

A new paper of the family writes only its reverse variance (a table or a function of x_t) or its
loss; its bound is ``bound_terms`` over ``step_kl`` and a decoder, its sampler ``ancestral_sample``.

Step ``t`` is 1-based throughout; tables indexed by step hold step ``t`` at index ``t - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import constants as K
from .parameterization import append_dims
from .theory.numeric import chain_schedule

__all__ = [
    "DiscreteSchedule", "RESPACINGS", "respace_steps", "sigma_from_alpha_bar", "gather",
    "sum_dims", "random_steps", "check_steps", "gaussian_kl", "prior_kl", "gaussian_nll",
    "discretized_gaussian_nll", "step_kl", "bound_terms", "ancestral_sample", "to_bits_per_dim",
    "REVERSE_VARIANCES",
]

RESPACINGS = ("even", "leading", "trailing", "linspace", "ddim")
REVERSE_VARIANCES = ("beta_tilde", "beta")
_LOG_2PI = math.log(2 * math.pi)


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """EDM's noise level of a VP step: sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def respace_steps(T: int, steps: int, spacing: str = "even") -> torch.Tensor:
    """0-based indices of ``steps`` of the ``T`` steps, largest first (int64).

    * ``"even"``: round(linspace(T - 1, 0, steps)) in float64, always keeping both ends (DDIM
      Sec. 4.2, iDDPM Sec. 4; ours). The float64 is explicit: in float32 the half-way points
      round differently for 132 of the 1,000 counts at T = 1000 (none the notebooks use);
    * diffusers' ``timestep_spacing`` with ``steps_offset = 0``: ``"leading"``
      k (T // steps) for k = steps-1..0, ``"trailing"`` round(T - k T / steps) - 1 for
      k = 0..steps-1, ``"linspace"`` round(linspace(0, T - 1, steps)) reversed;
    * ``"ddim"``: the ``ddimK`` rule of the iDDPM / ADM code (``space_timesteps``): range(0, T, i)
      for the smallest integer stride i that gives exactly ``steps`` steps (an error when none
      does). It equals ``"leading"`` when ``steps`` divides T and stops short of T - 1 (e.g. at
      980 for 50 of 1000), where ``"even"`` keeps T - 1.
    """
    if spacing not in RESPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; valid spacings: {', '.join(RESPACINGS)}")
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..{T}, got {steps!r}")
    if spacing == "even":
        if steps == 1:
            return torch.tensor([T - 1])
        return torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long()
    if spacing == "leading":
        return torch.arange(steps - 1, -1, -1, dtype=torch.int64) * (T // steps)
    if spacing == "trailing":
        return torch.round(torch.arange(T, 0, -T / steps, dtype=torch.float64)).long() - 1
    if spacing == "ddim":
        for stride in range(1, T):
            if len(range(0, T, stride)) == steps:
                return torch.arange(0, T, stride, dtype=torch.int64).flip(0)
        raise ValueError(f"no integer stride gives exactly {steps} of {T} steps (the ddimK rule)")
    return torch.round(torch.linspace(0, T - 1, steps, dtype=torch.float64)).long().flip(0)


def gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``table[t - 1]`` per sample, in ``like``'s dtype and device, shaped to broadcast against it."""
    return append_dims(table.to(like.device, like.dtype)[t - 1], like)


def sum_dims(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the batch: one number per sample."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def check_steps(t, T: int) -> torch.Tensor:
    """``t`` as int64, or a clear error when a step lies outside 1..T."""
    t = torch.as_tensor(t, dtype=torch.long)
    if bool(((t < 1) | (t > T)).any()):
        raise ValueError(f"steps t must lie in 1..{T}")
    return t


def random_steps(n: int, T: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` steps drawn uniformly from 1..T (the bound's and L_simple's t ~ U{1, ..., T})."""
    return torch.randint(1, T + 1, (n,), device=device, generator=generator)


@dataclass(frozen=True)
class DiscreteSchedule:
    """A discrete forward chain ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)``.

    ``betas`` has shape (T,) and holds beta_1 ... beta_T (index ``t - 1`` is step ``t``). All
    derived tensors are float64 and indexed the same way.
    """

    betas: torch.Tensor

    def __post_init__(self):
        betas = torch.as_tensor(self.betas, dtype=torch.float64).reshape(-1)
        if betas.numel() < 1 or bool(((betas <= 0) | (betas >= 1)).any()):
            raise ValueError("betas must be a non-empty sequence of numbers in (0, 1)")
        object.__setattr__(self, "betas", betas)

    @classmethod
    def linear(cls, T: int = K.DDPM_T, beta_1: float = K.DDPM_BETA_1,
               beta_T: float = K.DDPM_BETA_T) -> "DiscreteSchedule":
        """DDPM's linear schedule beta_i = beta_1 + (i - 1) (beta_T - beta_1) / (T - 1), i = 1..T.

        The chain of the ``"ddpm"`` process in ``diffnotes.theory``. For T != 1000 keep
        ``T * beta`` comparable, e.g. scale ``beta_1, beta_T`` by ``1000 / T`` (iDDPM Sec. 3.1).
        """
        if int(T) != T or T < 2:
            raise ValueError(f"T must be an integer >= 2, got {T!r}")
        if not 0 < beta_1 <= beta_T < 1:
            raise ValueError(f"need 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
        return cls(chain_schedule("ddpm", beta_1=beta_1, beta_N=beta_T, N=int(T)))

    @classmethod
    def cosine(cls, T: int = K.IDDPM_M, s: float = K.IDDPM_C2,
               max_beta: float = K.IDDPM_MAX_BETA) -> "DiscreteSchedule":
        """iDDPM's cosine schedule: beta_t = min(1 - alpha_bar_t / alpha_bar_{t-1}, max_beta).

        alpha_bar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s) / (1 + s)) (eq. 17): the chain of
        ``get_process("iddpm")`` with ``C_2 = s``, ``C_1 = 1 - max_beta``.
        """
        if int(T) != T or T < 2:
            raise ValueError(f"T must be an integer >= 2, got {T!r}")
        if not 0 < s < 1 or not 0 < max_beta < 1:
            raise ValueError(f"need 0 < s < 1 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        return cls(chain_schedule("iddpm", M=int(T), C_2=s, C_1=1 - max_beta))

    # -- derived quantities (DDPM Sec. 2, eq. 4, 6, 7) -------------------------------------------
    @property
    def T(self) -> int:
        return self.betas.numel()

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @property
    def alpha_bar(self) -> torch.Tensor:
        """alpha_bar_t = prod_{s <= t} alpha_s (eq. 4)."""
        return torch.cumprod(self.alphas, dim=0)

    @property
    def alpha_bar_prev(self) -> torch.Tensor:
        """alpha_bar_{t-1}, with alpha_bar_0 = 1."""
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])

    @property
    def sigmas(self) -> torch.Tensor:
        """EDM noise level of step t: sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), increasing."""
        return sigma_from_alpha_bar(self.alpha_bar)

    @property
    def beta_tilde(self) -> torch.Tensor:
        """Posterior variance of q(x_{t-1} | x_t, x0) (eq. 7); beta_tilde_1 = 0."""
        return (1 - self.alpha_bar_prev) / (1 - self.alpha_bar) * self.betas

    @property
    def posterior_coef_x0(self) -> torch.Tensor:
        """Weight of x0 in the posterior mean mu_tilde_t (eq. 7)."""
        return self.alpha_bar_prev.sqrt() * self.betas / (1 - self.alpha_bar)

    @property
    def posterior_coef_xt(self) -> torch.Tensor:
        """Weight of x_t in the posterior mean mu_tilde_t (eq. 7)."""
        return self.alphas.sqrt() * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)

    def reverse_variance(self, kind: str = "beta_tilde") -> torch.Tensor:
        """sigma_t^2 of p(x_{t-1} | x_t) for t = 1..T (DDPM Sec. 3.2); entry t = 1 is the decoder's."""
        if kind not in REVERSE_VARIANCES:
            raise ValueError(f"unknown reverse variance {kind!r}; valid: {', '.join(REVERSE_VARIANCES)}")
        var = self.beta_tilde.clone() if kind == "beta_tilde" else self.betas.clone()
        var[0] = self.betas[0]  # beta_tilde_1 = 0: the decoder keeps beta_1
        return var

    # -- q(x_t | x_0) and the posterior -------------------------------------------------------------
    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, sigma)`` with ``x = x0 + sigma_t n``: q(x_t | x0) (eq. 4) in EDM coordinates."""
        sigma = self.sigmas.to(x0.device)[t - 1].to(x0.dtype)
        return x0 + append_dims(sigma, x0) * noise, sigma

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) n: q(x_t | x0) in DDPM coordinates."""
        alpha_bar = gather(self.alpha_bar, t, x0)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def to_ddpm(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x: from EDM coordinates (s = 1) back to the chain's own.

        ``t`` holds one step per sample (shape (N,)); the inverse of :meth:`to_edm`.
        """
        return gather(self.alpha_bar, t, x).sqrt() * x

    def to_edm(self, x_t: torch.Tensor, step: int) -> tuple[torch.Tensor, float]:
        """``(x, sigma_t)`` with x = x_t / sqrt(alpha_bar_t): the chain's x_t at one step in EDM
        coordinates (s = 1), where a denoiser D(x; sigma_t) works.

        ``step`` is one integer t in 1..T for the whole batch (the samplers' loops); the square
        root is taken in float64 and applied as a Python number, so the result keeps ``x_t``'s dtype.
        """
        return x_t / float(self.alpha_bar[step - 1].sqrt()), float(self.sigmas[step - 1])

    def posterior(self, t: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x0) in DDPM coordinates (eq. 6-7)."""
        mean = gather(self.posterior_coef_x0, t, x0) * x0 + gather(self.posterior_coef_xt, t, x0) * x_t
        return mean, gather(self.beta_tilde, t, x0)

    # -- shorter chains and the sampler's ladder ----------------------------------------------------
    def respace(self, steps: int, spacing: str = "even") -> tuple["DiscreteSchedule", torch.Tensor]:
        """A chain on ``steps`` strided steps (iDDPM Sec. 4) and its kept 1-based steps.

        The new betas are 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}}, t_1 < ... < t_K; ``spacing``
        is a rule of :func:`respace_steps` (default ``"even"``, which the notebooks use).
        """
        kept = respace_steps(self.T, steps, spacing).flip(0) + 1
        alpha_bar = self.alpha_bar[kept - 1]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        return DiscreteSchedule(1 - alpha_bar / prev), kept

    def sampling_sigmas(self, steps: int | None = None, spacing: str = "even") -> torch.Tensor:
        """Decreasing sigmas for ``diffnotes.sampling``: sigma_T, ..., sigma_1, 0.

        ``steps`` (default T) picks an evenly strided sub-sequence of the T levels (always keeping
        sigma_T and sigma_1), the respacing of DDIM Sec. 4.2 and iDDPM Sec. 4; ``spacing`` picks
        another rule of :func:`respace_steps`.
        """
        T = self.T
        steps = T if steps is None else int(steps)
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in 1..{T}, got {steps}")
        return torch.cat([self.sigmas[respace_steps(T, steps, spacing)], torch.zeros(1, dtype=torch.float64)])

    def prior_scale(self) -> float:
        """x_T ~ N(0, I) in DDPM coordinates is ``x = x_T * sqrt(1 + sigma_T^2)`` in EDM ones."""
        return float((1 + self.sigmas[-1] ** 2).sqrt())


# ----------------------------------------------------------------------------------------------
# The bound's terms (DDPM eq. 5, 13)
# ----------------------------------------------------------------------------------------------
def gaussian_kl(mean_q, var_q, mean_p, var_p) -> torch.Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) elementwise (variances broadcast), in nats."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)


def step_kl(schedule: DiscreteSchedule, t: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
            mean_p: torch.Tensor, var_p) -> torch.Tensor:
    """L_{t-1} = KL(q(x_{t-1} | x_t, x0) || N(mean_p, var_p)) per sample, in nats (DDPM eq. 5-7).

    ``mean_p`` is the model's mean of p(x_{t-1} | x_t) (for the DDPM family the posterior mean at
    x0 = D, ``schedule.posterior(t, x0_hat, x_t)[0]``; Sohl-Dickstein et al.'s free mean) and
    ``var_p`` its per-step variance (a fixed table gathered at t, Analytic-DPM's, or a learned
    one), both broadcasting against ``x0``. Meaningful for t >= 2: at t = 1 the posterior
    variance beta_tilde_1 is 0 (floored at 1e-30 here) and the bound uses the decoder instead.
    """
    mean_q, var_q = schedule.posterior(t, x0, x_t)
    return sum_dims(gaussian_kl(mean_q, var_q.clamp_min(1e-30), mean_p, var_p))


def prior_kl(x0: torch.Tensor, schedule: DiscreteSchedule) -> torch.Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) per sample, in nats (no learned parameter)."""
    ab = schedule.alpha_bar[-1].to(x0.dtype)
    kl = gaussian_kl(ab.sqrt() * x0, 1 - ab, torch.zeros_like(x0), torch.ones_like(x0))
    return sum_dims(kl)


def gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, var=None, *, log_var=None) -> torch.Tensor:
    """-log N(x0; mean, var I) per sample, in nats (the continuous-data decoder).

    Give ``var`` or ``log_var`` (a learned log-variance is used as it is, not re-logged).
    """
    if (var is None) == (log_var is None):
        raise ValueError("give exactly one of var and log_var")
    if log_var is None:
        var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device)
        log_var = torch.log(var)
    else:
        var = log_var.exp()
    return sum_dims(0.5 * (_LOG_2PI + log_var + (x0 - mean) ** 2 / var))


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def discretized_gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, var, levels: int = 256) -> torch.Tensor:
    """-log p(x0 | x1) per sample for DDPM's discretized decoder (eq. 13), in nats.

    Data lie on ``levels`` equally spaced values in [-1, 1]; each value owns the bin of half-width
    ``1 / (levels - 1)`` around it, and the two outermost bins extend to -inf / +inf, so the
    probabilities of all levels sum to one.
    """
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    half = 1.0 / (levels - 1)
    std = torch.as_tensor(var, dtype=mean.dtype, device=mean.device).sqrt()
    centered = x0 - mean
    cdf_plus = _std_normal_cdf((centered + half) / std)
    cdf_minus = _std_normal_cdf((centered - half) / std)
    prob = torch.where(x0 > 1 - half / 2, 1 - cdf_minus,
                       torch.where(x0 < -1 + half / 2, cdf_plus, cdf_plus - cdf_minus))
    return -sum_dims(torch.log(prob.clamp_min(1e-12)))


@torch.no_grad()
def bound_terms(term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, T: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Every term of the bound, (N, T) float64 on the CPU: column t - 1 is ``term(steps, noise)``.

    ``term(steps, noise)`` gets steps filled with t (shape (N,)) and one fresh noise draw per t,
    for t = 1..T in order (DDPM Sec. 4.3 evaluates the bound the same way). A term may return
    several values per sample, shape (N, V) (e.g. one per candidate reverse variance, sharing one
    network evaluation); the result is then (N, T, V).
    """
    n = x0.shape[0]
    terms = None
    for t in range(1, T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        steps = torch.full((n,), t, dtype=torch.long, device=x0.device)
        value = term(steps, noise).double().cpu()
        if terms is None:
            terms = torch.empty(n, T, *value.shape[1:], dtype=torch.float64)
        terms[:, t - 1] = value
    return terms


@torch.no_grad()
def ancestral_sample(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape,
                     chain: DiscreteSchedule, *, variance=None, log_variance=None, sigmas=None,
                     generator: torch.Generator | None = None, dtype=torch.float32,
                     device=None) -> torch.Tensor:
    """Ancestral sampling on ``chain`` in its own (DDPM) coordinates, any per-step variance.

    x_T ~ N(0, I); for t = T..1 the denoiser sees ``chain.to_edm(x_t, t)`` (sigma per sample),
    its x0_hat gives the posterior mean mu_tilde_t(x_t, x0_hat) (DDPM eq. 7), and x_{t-1} = mean +
    std z; the last step returns the mean (no noise), as DDPM's Algorithm 2. Give exactly one of

    * ``variance``: T variances, entry t - 1 for step t (DDPM's fixed choices, Analytic-DPM's);
    * ``log_variance(x, sigma, t) -> log variance``: a function of the step's EDM point, its
      per-sample sigma and steps t (iDDPM's learned variance), broadcasting against x_t.

    ``sigmas`` (T values) replaces the noise levels the denoiser is given (default: the chain's
    own); a respaced chain may pass the full chain's levels at its kept steps, equal to its own up
    to round-off. Noise is drawn on the CPU with ``generator`` and moved to ``device``, so a seed
    gives the same samples on any device.
    """
    if (variance is None) == (log_variance is None):
        raise ValueError("give exactly one of variance and log_variance")
    if variance is not None:
        variance = torch.as_tensor(variance, dtype=torch.float64)
        if variance.numel() != chain.T:
            raise ValueError(f"variance must hold {chain.T} values, got {variance.numel()}")
    x_t = torch.randn(shape, generator=generator, dtype=dtype).to(device or "cpu")
    for k in range(chain.T, 0, -1):
        t = torch.full((shape[0],), k, dtype=torch.long, device=x_t.device)
        x, sigma = chain.to_edm(x_t, k)
        sigma = x.new_full((shape[0],), sigma if sigmas is None else float(sigmas[k - 1]))
        mean, _ = chain.posterior(t, denoiser(x, sigma).to(dtype), x_t)
        if k == 1:
            return mean
        if variance is None:
            std = (0.5 * log_variance(x, sigma, t)).exp()
        else:
            std = float(variance[k - 1].sqrt())
        noise = torch.randn(shape, generator=generator, dtype=dtype).to(x_t.device)
        x_t = mean + std * noise


def to_bits_per_dim(nats: torch.Tensor, dims: int) -> torch.Tensor:
    """Convert a per-sample negative log-likelihood in nats to bits per dimension."""
    return nats / (dims * math.log(2))
