"""DDPM (Ho et al. 2020): the discrete chain, L_simple, the full variational bound, ancestral sampling.

Everything is written in the book's common language (EDM form, s = 1 coordinates): a *denoiser*
``D(x; sigma)`` with ``x = x0 + sigma n``. DDPM's variance-preserving chain
``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` is the same point divided by
``s_t = sqrt(alpha_bar_t)``, with noise level

    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)          (t = 1, ..., T),

so a denoiser trained at the discrete levels ``sigma_t`` *is* a DDPM model: its noise prediction is
``eps_hat = (x - D(x; sigma_t)) / sigma_t`` (with :class:`diffnotes.precond.VPPrecond`,
``c_skip = 1, c_out = -sigma``, the backbone's raw output is exactly DDPM's ``eps_theta``).

* :class:`DDPMSchedule` — the linear beta schedule of DDPM Sec. 4 (beta_1 = 1e-4 ... beta_T = 0.02,
  T = 1000) and the quantities derived from it (alpha_bar, sigma_t, posterior coefficients).
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
* :func:`sample` — ancestral sampling (DDPM Algorithm 2) through ``diffnotes.sampling``'s
  ``"ancestral"`` solver on the discrete sigma_t ladder.

Used in the book by ``book/papers/ho2020denoising.md`` and ``notebooks/ho2020denoising.ipynb``; the
schedule is reused by the DDIM chapter (``diffnotes.methods.ddim``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from diffnotes.sampling import sample as run_sampler

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
REVERSE_VARIANCES = ("beta_tilde", "beta")

# DDPM Sec. 4: "we set T = 1000 ... forward process variances to constants increasing linearly from
# beta_1 = 1e-4 to beta_T = 0.02".
T_DDPM = 1000
BETA_1 = 1e-4
BETA_T = 0.02


def _sum_dims(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the batch: one number per sample."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def _per_sample(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample values of shape (N,) to broadcast against a batch like ``x``."""
    return value.reshape(-1, *([1] * (x.ndim - 1)))


# ----------------------------------------------------------------------------------------------
# The schedule
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DDPMSchedule:
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
    def linear(cls, T: int = T_DDPM, beta_1: float = BETA_1, beta_T: float = BETA_T) -> "DDPMSchedule":
        """DDPM's linear schedule beta_i = beta_1 + (i - 1) (beta_T - beta_1) / (T - 1), i = 1..T.

        The expression is the discrete chain of the ``"ddpm"`` process in ``diffnotes.theory``
        (lambdified here, so the formula lives in one place). For T != 1000 keep ``T * beta``
        comparable, e.g. scale ``beta_1, beta_T`` by ``1000 / T`` (as iDDPM Sec. 3.1 does).
        """
        if int(T) != T or T < 2:
            raise ValueError(f"T must be an integer >= 2, got {T!r}")
        if not 0 < beta_1 < beta_T < 1:
            raise ValueError(f"need 0 < beta_1 < beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
        import numpy as np
        import sympy as sp

        from diffnotes.theory import get_process

        chain = (process := get_process("ddpm", beta_1=beta_1, beta_N=beta_T, N=int(T))).chain
        beta_i = sp.lambdify(chain.index, process.subs(chain.schedule), "numpy")
        steps = np.arange(1, int(T) + 1, dtype=np.float64)
        return cls(torch.as_tensor(np.broadcast_to(beta_i(steps), steps.shape).copy(), dtype=torch.float64))

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
        ab = self.alpha_bar
        return ((1 - ab) / ab).sqrt()

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
        """sigma_t^2 of p(x_{t-1} | x_t) for t = 1..T (Sec. 3.2); entry t = 1 is the decoder's."""
        if kind not in REVERSE_VARIANCES:
            raise ValueError(f"unknown reverse variance {kind!r}; valid: {', '.join(REVERSE_VARIANCES)}")
        var = self.beta_tilde.clone() if kind == "beta_tilde" else self.betas.clone()
        var[0] = self.betas[0]  # beta_tilde_1 = 0: the decoder keeps beta_1
        return var

    def sampling_sigmas(self, steps: int | None = None) -> torch.Tensor:
        """Decreasing sigmas for ``diffnotes.sampling``: sigma_T, ..., sigma_1, 0.

        ``steps`` (default T) picks an evenly strided sub-sequence of the T levels (always keeping
        sigma_T and sigma_1), the "respacing" that DDIM Sec. 4.2 and iDDPM Sec. 4 use.
        """
        T = self.T
        steps = T if steps is None else int(steps)
        if not 1 <= steps <= T:
            raise ValueError(f"steps must be in 1..{T}, got {steps}")
        idx = torch.linspace(T - 1, 0, steps).round().long() if steps > 1 else torch.tensor([T - 1])
        return torch.cat([self.sigmas[idx], torch.zeros(1, dtype=torch.float64)])

    def prior_scale(self) -> float:
        """x_T ~ N(0, I) in DDPM coordinates is ``x = x_T * sqrt(1 + sigma_T^2)`` in EDM ones."""
        return float((1 + self.sigmas[-1] ** 2).sqrt())

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, sigma)`` with ``x = x0 + sigma_t n``: q(x_t | x0) (eq. 4) in EDM coordinates."""
        sigma = self.sigmas.to(x0.device)[t - 1].to(x0.dtype)
        return x0 + _per_sample(sigma, x0) * noise, sigma


def _check_t(t: torch.Tensor, T: int) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.long)
    if bool(((t < 1) | (t > T)).any()):
        raise ValueError(f"steps t must lie in 1..{T}")
    return t


def _random_steps(n: int, T: int, device, generator=None) -> torch.Tensor:
    return torch.randint(1, T + 1, (n,), device=device, generator=generator)


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
        t = _random_steps(x0.shape[0], self.schedule.T, x0.device)
        noise = torch.randn_like(x0)
        x, sigma = self.schedule.perturb(x0, t, noise)
        denoised = model(x, sigma, class_labels)
        eps_hat = (x - denoised) / _per_sample(sigma, x0)
        return (eps_hat - noise).pow(2).reshape(x0.shape[0], -1).mean(dim=1)


# ----------------------------------------------------------------------------------------------
# The variational bound (DDPM eq. 5)
# ----------------------------------------------------------------------------------------------


def gaussian_kl(mean_q, var_q, mean_p, var_p) -> torch.Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) elementwise (variances broadcast), in nats."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)


def prior_kl(x0: torch.Tensor, schedule: DDPMSchedule) -> torch.Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) per sample, in nats (no learned parameter)."""
    ab = schedule.alpha_bar[-1].to(x0.dtype)
    kl = gaussian_kl(ab.sqrt() * x0, 1 - ab, torch.zeros_like(x0), torch.ones_like(x0))
    return _sum_dims(kl)


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
    prob = torch.where(x0 > 1 - half / 2, 1 - cdf_minus, torch.where(x0 < -1 + half / 2, cdf_plus, cdf_plus - cdf_minus))
    return -_sum_dims(torch.log(prob.clamp_min(1e-12)))


def gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, var) -> torch.Tensor:
    """-log N(x0; mean, var I) per sample, in nats (the continuous-data decoder)."""
    var = torch.as_tensor(var, dtype=mean.dtype, device=mean.device)
    return _sum_dims(0.5 * (torch.log(2 * math.pi * var) + (x0 - mean) ** 2 / var))


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
    t = _check_t(t, schedule.T).to(x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x, sigma = schedule.perturb(x0, t, noise)
    x0_hat = model(x, sigma, class_labels).to(x0.dtype)

    def at(table):
        return _per_sample(table.to(device=x0.device, dtype=x0.dtype)[t - 1], x0)

    # x_t in DDPM coordinates: x_t = sqrt(alpha_bar_t) * x (EDM form s = 1 undone)
    x_t = at(schedule.alpha_bar).sqrt() * x
    var_p = at(schedule.reverse_variance(reverse_variance))
    # Posterior mean with the true x0 and with the model's x0_hat (eq. 7 and the x0-parameterization
    # of mu_theta); only the x0 coefficient differs between the two.
    mean_q = at(schedule.posterior_coef_x0) * x0 + at(schedule.posterior_coef_xt) * x_t
    mean_p = at(schedule.posterior_coef_x0) * x0_hat + at(schedule.posterior_coef_xt) * x_t
    var_q = at(schedule.beta_tilde).clamp_min(1e-30)
    kl = _sum_dims(gaussian_kl(mean_q, var_q, mean_p, var_p))

    # t = 1: mu_theta(x_1, 1) = x0_hat exactly (alpha_bar_1 = alpha_1), variance beta_1.
    if decoder == "discretized":
        dec = discretized_gaussian_nll(x0, x0_hat, var_p, levels)
    else:
        dec = gaussian_nll(x0, x0_hat, var_p)
    return torch.where(t == 1, dec, kl)


def to_bits_per_dim(nats: torch.Tensor, dims: int) -> torch.Tensor:
    """Convert a per-sample negative log-likelihood in nats to bits per dimension."""
    return nats / (dims * math.log(2))


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
    n, dims = x0.shape[0], x0[0].numel()
    terms = torch.empty(n, schedule.T, dtype=torch.float64)
    for t in range(1, schedule.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        steps = torch.full((n,), t, dtype=torch.long, device=x0.device)
        terms[:, t - 1] = vlb_terms(model, x0, steps, schedule, decoder=decoder, levels=levels,
                                    reverse_variance=reverse_variance, noise=noise,
                                    class_labels=class_labels).double().cpu()
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
        t = _random_steps(x0.shape[0], self.schedule.T, x0.device)
        term = vlb_terms(model, x0, t, self.schedule, decoder=self.decoder, levels=self.levels,
                         reverse_variance=self.reverse_variance, class_labels=class_labels)
        return (prior_kl(x0, self.schedule) + self.schedule.T * term) / x0[0].numel()


# ----------------------------------------------------------------------------------------------
# Ancestral sampling (DDPM Algorithm 2)
# ----------------------------------------------------------------------------------------------


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
    """Draw samples with DDPM's ancestral sampler (reverse variance beta_tilde), in EDM form.

    x_T ~ N(0, I) in DDPM coordinates is ``x = sqrt(1 + sigma_T^2) z``; each step draws from
    the posterior ``q(x_{t-1} | x_t, x0 = D(x_t))``, which is the ``"ancestral"`` solver of
    ``diffnotes.sampling`` on the ladder sigma_T > ... > sigma_1 > 0.
    """
    z = torch.randn(shape, generator=generator, dtype=dtype).to(device or "cpu")
    sigmas = schedule.sampling_sigmas(steps).to(dtype)
    x = z * schedule.prior_scale()
    return run_sampler(denoiser, x, sigmas.to(x.device), solver="ancestral", generator=generator, **options)
