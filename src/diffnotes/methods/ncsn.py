"""NCSN / SMLD (Song & Ermon 2019): one noise-conditional score model, annealed Langevin sampling.

In the book's common language (EDM form with s = 1) an NCSN is a denoiser ``D(x; sigma)`` trained
at a geometric ladder of noise levels sigma_1 > ... > sigma_L, and its score is
``s(x; sigma) = (D(x; sigma) - x) / sigma**2``. What this module adds to the engine:

* :func:`ncsn_sigmas` — the noise ladder, evaluated from the ``"smld"`` process of
  ``diffnotes.theory`` (the one place the geometric formula lives), largest first, with a final 0
  so the engine's samplers accept it;
* :class:`NCSNLoss` — the paper's denoising score-matching objective (NCSN eq. 5-6) with
  lambda(sigma) = sigma^2 and a noise level drawn uniformly from the ladder;
* :func:`annealed_langevin` / :func:`langevin` — Algorithm 1 and plain Langevin dynamics at a
  single (small) noise level, both through ``diffnotes.sampling``'s ``"annealed_langevin"``
  solver (plain Langevin is the one-level case: step size alpha = epsilon); optionally
  (``step_convention="code"``) the step of the authors' released sampler, which at the same
  epsilon moves twice as far (:func:`langevin_time_per_level`);
* :func:`component_fractions` / :func:`weight_error` — how much mass a sampler puts on each
  component of a :class:`~diffnotes.data.GaussianMixture`, the measurement behind the paper's
  Sec. 3.2 argument that plain Langevin cannot recover mixture weights.

Used by ``book/papers/song2019generative.md`` and ``notebooks/song2019generative.ipynb``.
"""

from __future__ import annotations

import torch

from diffnotes.constants import NCSN_EPSILON, NCSN_L, NCSN_SIGMA_1, NCSN_SIGMA_L, NCSN_T
from diffnotes.parameterization import append_dims
from diffnotes.sampling import sample as run_sampler
from diffnotes.theory.numeric import chain_schedule

__all__ = [
    "NCSN_L",
    "NCSN_SIGMA_1",
    "NCSN_SIGMA_L",
    "ncsn_sigmas",
    "NCSNLoss",
    "annealed_langevin",
    "langevin",
    "langevin_time_per_level",
    "STEP_CONVENTIONS",
    "component_fractions",
    "weight_error",
]

# NCSN Sec. 4 (CIFAR-10 setup): L = 10 levels from sigma_1 = 1 down to sigma_10 = 0.01,
# epsilon = 2e-5 and T = 100 Langevin steps per level (the numbers live in diffnotes.constants).


def ncsn_sigmas(L: int = NCSN_L, sigma_1: float = NCSN_SIGMA_1, sigma_L: float = NCSN_SIGMA_L,
                append_zero: bool = True) -> torch.Tensor:
    """The geometric ladder sigma_1 > ... > sigma_L (NCSN Sec. 4), float64, then a final 0.

    sigma_i / sigma_{i+1} is constant; the values come from the ``"smld"`` process of
    ``diffnotes.theory`` (its discrete chain), so the formula is written once.
    """
    if not isinstance(L, int) or L < 2:
        raise ValueError(f"L must be an integer >= 2 (number of noise levels), got {L!r}")
    if not 0 < sigma_L < sigma_1:
        raise ValueError(f"need 0 < sigma_L < sigma_1, got sigma_1={sigma_1}, sigma_L={sigma_L}")
    sigmas = chain_schedule("smld", sigma_min=sigma_L, sigma_max=sigma_1, L=L).flip(0)  # largest first
    return torch.cat([sigmas, sigmas.new_zeros(1)]) if append_zero else sigmas


class NCSNLoss:
    """NCSN's objective (eq. 6): (1/L) sum_i lambda(sigma_i) l(theta; sigma_i), lambda = sigma^2.

    l(theta; sigma) = 1/2 E || s(x~; sigma) + (x~ - x) / sigma^2 ||^2 (eq. 5) with
    s = (D - x~) / sigma^2 is, times sigma^2, ``1/2 || D(x~; sigma) - x ||^2 / sigma^2``. The level
    is drawn uniformly from ``sigmas`` per sample (an unbiased estimate of the average over i);
    the squared error is averaged over the non-batch dimensions, as in ``methods.edm``.
    """

    def __init__(self, sigmas: torch.Tensor | None = None):
        sigmas = ncsn_sigmas(append_zero=False) if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64)
        sigmas = sigmas[sigmas > 0]  # accept a ladder with the engine's trailing 0
        if sigmas.ndim != 1 or sigmas.numel() < 1:
            raise ValueError("sigmas must be a 1-D ladder of positive noise levels")
        self.sigmas = sigmas

    def __call__(self, model, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        idx = torch.randint(self.sigmas.numel(), (x0.shape[0],), device=x0.device)
        sigma = self.sigmas.to(x0.device)[idx].to(x0.dtype)
        sigma_b = append_dims(sigma, x0)
        x_tilde = x0 + sigma_b * torch.randn_like(x0)
        denoised = model(x_tilde, sigma, class_labels)
        # sigma^2 * 1/2 ||s + (x~ - x)/sigma^2||^2  ==  1/2 ||D - x||^2 / sigma^2
        return 0.5 * ((denoised - x0) ** 2 / sigma_b**2).flatten(1).mean(dim=1)


STEP_CONVENTIONS = ("paper", "code")


def langevin_time_per_level(epsilon: float, n_steps_each: int, sigma: float, sigma_L: float,
                            step_convention: str = "paper") -> float:
    """Langevin time T * dt spent at level sigma by :func:`annealed_langevin`.

    Both conventions discretise dx = s dt + sqrt(2) dw. The paper's form (Algorithm 1)
    x + (alpha/2) s + sqrt(alpha) z takes dt = alpha / 2; the official code's form
    x + h s + sqrt(2 h) z takes dt = h. With alpha = h = epsilon sigma^2 / sigma_L^2 at the
    same epsilon, the code's chain therefore runs twice as far per step.
    """
    if step_convention not in STEP_CONVENTIONS:
        raise ValueError(f"step_convention must be one of {STEP_CONVENTIONS}, got {step_convention!r}")
    step = epsilon * sigma**2 / sigma_L**2
    return n_steps_each * (step / 2 if step_convention == "paper" else step)


@torch.no_grad()
def annealed_langevin(denoiser, x_init: torch.Tensor, sigmas: torch.Tensor | None = None, *,
                      epsilon: float = NCSN_EPSILON, n_steps_each: int = NCSN_T,
                      final_denoise: bool = False, generator: torch.Generator | None = None,
                      step_convention: str = "paper") -> torch.Tensor:
    """NCSN Algorithm 1 from ``x_init`` over the ladder ``sigmas`` (default: the paper's).

    ``step_convention="paper"`` (the default) is Algorithm 1 as printed,
    x <- x + (alpha_i / 2) s + sqrt(alpha_i) z with alpha_i = epsilon sigma_i^2 / sigma_L^2, run by
    the engine's ``"annealed_langevin"`` solver. ``step_convention="code"`` is the step of the
    authors' released sampler (ermongroup/ncsn, ``anneal_Langevin_dynamics``),
    x <- x + h_i s + sqrt(2 h_i) z with h_i = epsilon sigma_i^2 / sigma_L^2: at the same epsilon
    it moves twice as far per step, and it equals the paper's form run with 2 epsilon (same
    noise draws; ``tests/test_methods_group_b.py`` checks this). See
    :func:`langevin_time_per_level`.
    """
    if step_convention not in STEP_CONVENTIONS:
        raise ValueError(f"step_convention must be one of {STEP_CONVENTIONS}, got {step_convention!r}")
    sigmas = ncsn_sigmas() if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64)
    if step_convention == "paper":
        return run_sampler(denoiser, x_init, sigmas, solver="annealed_langevin", epsilon=epsilon,
                           n_steps_each=n_steps_each, final_denoise=final_denoise, generator=generator)
    return _annealed_langevin_code(denoiser, x_init, sigmas, epsilon, n_steps_each, final_denoise, generator)


def _annealed_langevin_code(denoiser, x, sigmas, epsilon, n_steps_each, final_denoise, generator):
    """The released code's step, written out here (not through the engine) so that the test
    comparing it with Algorithm 1 at 2 epsilon compares two implementations."""
    if not epsilon > 0 or not isinstance(n_steps_each, int) or n_steps_each < 1:
        raise ValueError(f"need epsilon > 0 and an integer n_steps_each >= 1, got {epsilon!r}, {n_steps_each!r}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("x_init must be a floating-point tensor")
    ladder = [float(v) for v in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    if len(ladder) < 2 or ladder[-1] != 0.0 or any(b >= a for a, b in zip(ladder, ladder[1:])):
        raise ValueError("sigmas must be strictly decreasing and end at 0 (as the engine's samplers require)")
    levels = ladder[:-1]
    sigma_L = levels[-1]
    where = x.device if generator is None else generator.device
    for sigma in levels:
        h = epsilon * sigma**2 / sigma_L**2
        sig = x.new_full((x.shape[0],), sigma)
        for _ in range(n_steps_each):
            score = (denoiser(x, sig).to(x.dtype) - x) / sigma**2
            z = torch.randn(x.shape, dtype=x.dtype, device=where, generator=generator).to(x.device)
            x = x + h * score + (2 * h) ** 0.5 * z
    if final_denoise:
        x = denoiser(x, x.new_full((x.shape[0],), sigma_L)).to(x.dtype)
    return x


@torch.no_grad()
def langevin(denoiser, x_init: torch.Tensor, sigma: float, *, step_size: float, n_steps: int,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Plain Langevin dynamics x <- x + (a/2) s(x; sigma) + sqrt(a) z at one noise level.

    This is Algorithm 1 with a single level (then alpha = epsilon = ``step_size``); with a small
    ``sigma`` the score is that of the data itself (NCSN Sec. 3.2's "Langevin dynamics").
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (the score at sigma = 0 is x-independent 0/0), got {sigma}")
    sigmas = torch.tensor([float(sigma), 0.0], dtype=torch.float64)
    return run_sampler(denoiser, x_init, sigmas, solver="annealed_langevin", epsilon=step_size,
                       n_steps_each=n_steps, generator=generator)


def component_fractions(x: torch.Tensor, gmm) -> torch.Tensor:
    """Fraction of the points ``x`` whose most likely component of ``gmm`` is k, shape (K,)."""
    if x.ndim != 2 or x.shape[1] != gmm.dim:
        raise ValueError(f"x must have shape (N, {gmm.dim}), got {tuple(x.shape)}")
    owner = gmm.responsibilities(x.to(gmm.dtype)).argmax(dim=1)
    return torch.bincount(owner, minlength=gmm.weights.numel()).to(torch.float64) / x.shape[0]


def weight_error(x: torch.Tensor, gmm) -> float:
    """Largest absolute difference between the sampled fractions and the mixture weights."""
    return float((component_fractions(x, gmm) - gmm.weights).abs().max())
