"""The solvers of :mod:`diffnotes.sampling`: twelve samplers, their registry and ``sample``.

Every solver is a stateless function ``sample_xxx(denoiser, x, sigmas, ...)`` in the EDM
coordinates with s(t) = 1 (see :mod:`diffnotes.sampling` for the conventions and the list of
solvers with their sources); ``SOLVERS`` names them and :func:`sample` runs one by name. The
noise levels come from :mod:`diffnotes.schedules`.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
# tqdm.std, not tqdm.auto: the notebook widget needs ipywidgets and CDN scripts the offline site must not load
from tqdm.std import tqdm

from .constants import NCSN_EPSILON, NCSN_T
from .parameterization import denoiser_to_eps, denoiser_to_score

__all__ = [
    "SOLVERS",
    "sample",
    "to_d",
    "posterior_variance",
    "sample_euler",
    "sample_heun",
    "sample_edm_stochastic",
    "sample_dpmpp_2m",
    "sample_dpmpp_3m",
    "sample_ddim",
    "sample_euler_maruyama",
    "sample_predictor_corrector",
    "sample_ancestral",
    "sample_annealed_langevin",
    "sample_unipc",
    "sample_deis",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def to_d(x: torch.Tensor, sigma, denoised: torch.Tensor) -> torch.Tensor:
    """The PF-ODE derivative dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 4 with s = 1): eps from D."""
    return denoiser_to_eps(denoised, x, sigma)


def _check(x, sigmas) -> list[float]:
    """Validate the inputs; return the noise levels as Python floats (float64 coefficients)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {tuple(x.shape)}")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D sequence of at least 2 levels ending at 0, got shape {tuple(sigmas.shape)}")
    if not bool(torch.isfinite(sigmas).all()):
        raise ValueError("sigmas must be finite")
    if float(sigmas[-1]) != 0.0:
        raise ValueError(f"sigmas must end at 0 (append a final 0), got last value {float(sigmas[-1])}")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing (from sigma_max down to 0)")
    return sigmas.tolist()


def _call(denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """D(x; sigma) with sigma passed per sample, shape (N,); the output is cast to x's dtype so the
    sampler's state keeps the dtype it started with (a float64 denoiser cannot promote a float32 chain)."""
    return denoiser(x, x.new_full((x.shape[0],), sigma)).to(x.dtype)


def _steps(n: int, progress: bool):
    # disable=None lets tqdm stay quiet when stderr is not a TTY.
    return tqdm(range(n), disable=None if progress else True, leave=False)


def _randn(x: torch.Tensor, generator) -> torch.Tensor:
    # Drawn where the generator lives, then moved: a CPU generator seeds a CUDA run too, and a
    # seed gives the same noise on every device.
    where = x.device if generator is None else generator.device
    return torch.randn(x.shape, dtype=x.dtype, device=where, generator=generator).to(x.device)


def _report(callback, **info):
    if callback is not None:
        callback(info)


# --------------------------------------------------------------------------------------------
# Probability-flow ODE solvers
# --------------------------------------------------------------------------------------------
def sample_euler(denoiser, x, sigmas, *, callback=None, progress=False):
    """Euler's method on the PF-ODE dx/dsigma = (x - D) / sigma.

    With DDPM's sigmas this is exactly DDIM with eta = 0 (Karras et al. 2022, Sec. 3; Song et al.
    2021, DDIM eq. 14 in sigma form).
    """
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        d = to_d(x, s[i], denoised)
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        x = x + (s[i + 1] - s[i]) * d
    return x


def sample_heun(denoiser, x, sigmas, *, callback=None, progress=False):
    """Heun's 2nd-order method (EDM Algorithm 1); the last step, to sigma = 0, is plain Euler."""
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        d_cur = to_d(x, s[i], denoised)  # Alg. 1 line 4: evaluate dx/dt at t_i
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        x_next = x + (s[i + 1] - s[i]) * d_cur  # line 5: Euler step
        if s[i + 1] != 0:  # line 6: apply the 2nd-order correction unless sigma_{i+1} = 0
            d_prime = to_d(x_next, s[i + 1], _call(denoiser, x_next, s[i + 1]))  # line 7
            x_next = x + (s[i + 1] - s[i]) * (0.5 * d_cur + 0.5 * d_prime)  # line 8: trapezoidal rule
        x = x_next
    return x


def sample_edm_stochastic(denoiser, x, sigmas, *, S_churn: float = 0.0, S_min: float = 0.0,
                          S_max: float = float("inf"), S_noise: float = 1.0, generator=None,
                          callback=None, progress=False):
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) in s = 1 coordinates.

    Each step first adds noise to raise sigma_i to sigma_hat = (1 + gamma_i) sigma_i, then takes a
    Heun step from sigma_hat to sigma_{i+1}. S_churn = 0 recovers Algorithm 1.
    """
    s = _check(x, sigmas)
    n = len(s) - 1
    for i in _steps(n, progress):
        # Alg. 2 line 4: gamma_i = min(S_churn / N, sqrt(2) - 1) if t_i in [S_tmin, S_tmax], else 0.
        gamma = min(S_churn / n, math.sqrt(2) - 1) if S_min <= s[i] <= S_max else 0.0
        sigma_hat = s[i] * (1 + gamma)  # line 6: increase noise temporarily
        if gamma > 0:  # lines 5, 7: eps ~ N(0, S_noise^2 I), x_hat = x + sqrt(t_hat^2 - t_i^2) eps
            x = x + math.sqrt(sigma_hat**2 - s[i] ** 2) * S_noise * _randn(x, generator)
        denoised = _call(denoiser, x, sigma_hat)
        d_cur = to_d(x, sigma_hat, denoised)  # line 8
        _report(callback, x=x, i=i, sigma=s[i], sigma_hat=sigma_hat, sigma_next=s[i + 1], denoised=denoised)
        x_next = x + (s[i + 1] - sigma_hat) * d_cur  # line 9
        if s[i + 1] != 0:  # lines 10-12: 2nd-order correction
            d_prime = to_d(x_next, s[i + 1], _call(denoiser, x_next, s[i + 1]))
            x_next = x + (s[i + 1] - sigma_hat) * (0.5 * d_cur + 0.5 * d_prime)
        x = x_next
    return x


def sample_dpmpp_2m(denoiser, x, sigmas, *, callback=None, progress=False):
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2) in data-prediction form, lambda = -log sigma.

    With alpha = 1 the exact solution of the PF-ODE from sigma_i to sigma_{i+1} is
    x_{i+1} = (sigma_{i+1}/sigma_i) x_i + sigma_{i+1} int_{lambda_i}^{lambda_{i+1}} e^lambda D dlambda;
    2M replaces D by D_i + (D_i - D_{i-1}) / (2 r_i) with r_i = h_{i-1} / h_i. The first step, and
    the last one into sigma = 0 (where h = inf), are first order (DPM-Solver++(1) = DDIM).
    """
    s = _check(x, sigmas)
    denoised_prev, h_prev = None, None
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:  # the exact first-order step into sigma = 0 returns D
            x = denoised
            break
        h = math.log(s[i]) - math.log(s[i + 1])  # h_i = lambda_{i+1} - lambda_i
        if denoised_prev is None:
            D = denoised  # Alg. 2 line 3: first step is first order
        else:
            r = h_prev / h  # line 6
            D = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * denoised_prev  # line 7
        # lines 4 / 8: x_{i+1} = (sigma_{i+1}/sigma_i) x_i - alpha (e^{-h} - 1) D with alpha = 1
        x = (s[i + 1] / s[i]) * x - math.expm1(-h) * D
        denoised_prev, h_prev = denoised, h
    return x


def sample_dpmpp_3m(denoiser, x, sigmas, *, callback=None, progress=False):
    """A third-order multistep DPM-Solver++ ("3M") in data-prediction form.

    With tau = lambda - lambda_i and h = lambda_{i+1} - lambda_i, the exact solution is
    x_{i+1} = e^{-h} x_i + e^{-h} int_0^h e^tau D(lambda_i + tau) dtau. We replace D by the
    polynomial through the last three denoiser outputs (Newton form),
    D(tau) ~ D_i + a tau + b tau^2, and integrate it exactly:
        e^{-h} int_0^h e^tau dtau      = 1 - e^{-h}            = phi_0
        e^{-h} int_0^h tau e^tau dtau  = h - 1 + e^{-h}        = phi_1
        e^{-h} int_0^h tau^2 e^tau dtau = h^2 - 2 phi_1        = phi_2.
    The first step is first order, the second uses the linear polynomial, the step into
    sigma = 0 returns D (as in 2M). ``tests/test_sampling.py`` measures order 3.

    diffusers' (0.42) third-order DPM-Solver++ update gives the curvature term half this weight
    (its D2 = (D1_0 - D1_1) / (r0 + r1) is h^2 b, multiplied by phi_2 / (2 h^2)); on the GMM that
    variant measured order ~2.4 between 16 and 64 steps but a smaller error at 16 steps. The
    sampler benchmark (``benchmarks/results_samplers.md``) shows both on the same sigmas.
    """
    s = _check(x, sigmas)
    history: list[tuple[float, torch.Tensor]] = []  # (lambda_j, D_j), newest last, at most 2 kept
    for i in _steps(len(s) - 1, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:
            x = denoised
            break
        lam, lam_next = -math.log(s[i]), -math.log(s[i + 1])
        h = lam_next - lam
        phi_0 = -math.expm1(-h)
        phi_1 = h + math.expm1(-h)
        phi_2 = h * h - 2 * phi_1
        x = math.exp(-h) * x + phi_0 * denoised
        if history:
            lam_1, D_1 = history[-1]
            h_1 = lam - lam_1
            f_01 = (denoised - D_1) / h_1  # first divided difference
            if len(history) == 2:
                lam_2, D_2 = history[-2]
                h_2 = lam_1 - lam_2
                b = (f_01 - (D_1 - D_2) / h_2) / (h_1 + h_2)  # second divided difference
                a = f_01 + b * h_1  # slope at tau = 0 of the quadratic through the 3 points
                x = x + phi_1 * a + phi_2 * b
            else:
                x = x + phi_1 * f_01
        history = (history + [(lam, denoised)])[-2:]
    return x


def sample_ddim(denoiser, x, sigmas, *, eta: float = 0.0, generator=None, callback=None, progress=False):
    """DDIM (Song et al. 2021, eq. 12) written in sigma: x' = D + sqrt(s'^2 - c^2) eps_hat + c z.

    With x_VE = x_VP / sqrt(alpha_bar) and sigma^2 = (1 - alpha_bar) / alpha_bar, DDIM's
    sigma_t(eta)^2 / alpha_bar_{t-1} becomes c^2 = eta^2 s'^2 (s^2 - s'^2) / s^2 (s = sigma_i,
    s' = sigma_{i+1}), and eps_hat = (x - D) / s. eta = 0 is deterministic and equals Euler;
    eta = 1 is the ancestral posterior step.
    """
    s = _check(x, sigmas)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        eps_hat = denoiser_to_eps(denoised, x, sigma)
        c = eta * math.sqrt(max(posterior_variance(sigma, sigma_next), 0.0))
        if c > sigma_next:  # eta > 1 can ask for more noise than the target level holds
            raise ValueError(f"eta={eta} gives a noise scale {c:.4g} above sigma_next={sigma_next:.4g}; use eta <= 1")
        x = denoised + math.sqrt(sigma_next**2 - c**2) * eps_hat
        if c > 0:
            x = x + c * _randn(x, generator)
    return x


# --------------------------------------------------------------------------------------------
# Stochastic samplers
# --------------------------------------------------------------------------------------------
def _em_step(x, score, sigma, sigma_next, generator):
    """One Euler-Maruyama step of the reverse VE SDE in sigma-time, sigma -> sigma_next
    (see :func:`sample_euler_maruyama`)."""
    delta = sigma - sigma_next
    return x + 2 * sigma * delta * score + math.sqrt(2 * sigma * delta) * _randn(x, generator)


def posterior_variance(sigma: float, sigma_next: float) -> float:
    """Variance (VE units) of q(x_next | x, x0) for the chain x_next -> x that adds noise
    sqrt(sigma^2 - sigma_next^2): DDPM's beta_tilde step and DDIM's eta = 1 noise."""
    return sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2


def sample_euler_maruyama(denoiser, x, sigmas, *, generator=None, callback=None, progress=False):
    """Euler-Maruyama on the reverse SDE of the VE form in sigma-time (Song et al. 2021, eq. 6).

    The forward SDE dx = sqrt(2 sigma_dot sigma) dW reverses to
    dx = -2 sigma_dot sigma grad log p dt + sqrt(2 sigma_dot sigma) dW_bar; with t = sigma
    (sigma_dot = 1) one step from sigma_i down to sigma_{i+1} (Delta = sigma_i - sigma_{i+1} > 0) is
    x <- x + 2 sigma_i Delta score + sqrt(2 sigma_i Delta) z, score = (D - x) / sigma_i^2.
    The final step into sigma = 0 is the PF-ODE Euler step, which returns D(x; sigma_{N-1})
    (Score SDE's "denoise at the end"; an EM step there would add noise of scale sqrt(2) sigma).
    """
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        if sigma_next == 0:
            x = denoised
            break
        score = denoiser_to_score(denoised, x, sigma)
        x = _em_step(x, score, sigma, sigma_next, generator)
    return x


def sample_predictor_corrector(denoiser, x, sigmas, *, predictor: str = "reverse_diffusion",
                               corrector: str = "langevin", snr: float = 0.16, n_corrector: int = 1,
                               generator=None, callback=None, progress=False):
    """Predictor-corrector sampling (Song et al. 2021, Algorithm 2 for the VE SDE, Algorithm 4 corrector).

    Predictor from sigma_i to sigma_{i+1} (> 0):
      * ``"reverse_diffusion"``: x <- x + (sigma_i^2 - sigma_{i+1}^2) score + sqrt(sigma_i^2 - sigma_{i+1}^2) z,
      * ``"euler_maruyama"``: the sigma-time EM step of :func:`sample_euler_maruyama`;
    then ``n_corrector`` Langevin steps at sigma_{i+1} with step size eps = 2 (snr ||z|| / ||g||)^2
    (Algorithm 4 with alpha_i = 1 for VE; the norms are batch means of per-sample norms, as in the
    Score SDE code) and ``corrector="none"`` to skip. The last step into sigma = 0 returns D(x; sigma_{N-1}).
    """
    predictors, correctors = ("reverse_diffusion", "euler_maruyama"), ("langevin", "none")
    if predictor not in predictors:
        raise ValueError(f"unknown predictor {predictor!r}; valid predictors: {', '.join(predictors)}")
    if corrector not in correctors:
        raise ValueError(f"unknown corrector {corrector!r}; valid correctors: {', '.join(correctors)}")
    if not isinstance(n_corrector, int) or n_corrector < 0 or not snr > 0:
        raise ValueError(f"need an integer n_corrector >= 0 and snr > 0, got {n_corrector!r}, {snr!r}")
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        if sigma_next == 0:
            x = denoised
            break
        score = denoiser_to_score(denoised, x, sigma)
        if predictor == "reverse_diffusion":  # Alg. 2 lines 3-5
            var = sigma**2 - sigma_next**2
            x = x + var * score + math.sqrt(var) * _randn(x, generator)
        else:
            x = _em_step(x, score, sigma, sigma_next, generator)
        if corrector == "langevin":
            for _ in range(n_corrector):  # Alg. 2 lines 6-8, step size from Alg. 4
                z = _randn(x, generator)
                g = (_call(denoiser, x, sigma_next) - x) / sigma_next**2
                g_norm = g.flatten(1).norm(dim=1).mean()
                z_norm = z.flatten(1).norm(dim=1).mean()
                eps = 2 * (snr * z_norm / g_norm) ** 2
                x = x + eps * g + torch.sqrt(2 * eps) * z
    return x


def sample_ancestral(denoiser, x, sigmas, *, variance: str = "posterior", refine=None, generator=None,
                     callback=None, progress=False):
    """DDPM's ancestral step (Ho et al. 2020, Algorithm 2) written in sigma.

    DDPM's forward chain x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z becomes, in x_VE = x_VP /
    sqrt(alpha_bar), x_t = x_{t-1} + sqrt(sigma_t^2 - sigma_{t-1}^2) z. Its posterior given x0 = D
    has mean D + (s'^2/s^2)(x - D) (= DDPM's 1/sqrt(alpha_t)(x_t - beta_t/sqrt(1-alpha_bar_t) eps)
    / sqrt(alpha_bar_{t-1})) and, in VE units, variance
      * ``"posterior"``: s'^2 (s^2 - s'^2) / s^2 (DDPM's beta_tilde choice), or
      * ``"beta"``: (1 + s'^2)(s^2 - s'^2) / (1 + s^2) (DDPM's sigma_t^2 = beta_t choice; this one
        depends on the VP scaling, so it is only meaningful for DDPM's VP chain),
    with s = sigma_i, s' = sigma_{i+1}. No noise is added on the step into sigma = 0 (Alg. 2: z = 0
    for t = 1). Strided sigmas give the same step over several DDPM timesteps.
    ``refine(x, sigma_next) -> x``, when given, is applied after every step (ILVR's low-frequency
    replacement and CCDF's data consistency; ``diffnotes.methods.ilvr``).
    """
    variances = ("posterior", "beta")
    if variance not in variances:
        raise ValueError(f"unknown variance {variance!r}; valid variances: {', '.join(variances)}")
    s = _check(x, sigmas)
    for i in _steps(len(s) - 1, progress):
        sigma, sigma_next = s[i], s[i + 1]
        denoised = _call(denoiser, x, sigma)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=sigma_next, denoised=denoised)
        ratio = sigma_next**2 / sigma**2
        x = denoised + ratio * (x - denoised)  # posterior mean
        if sigma_next > 0:
            if variance == "posterior":
                var = posterior_variance(sigma, sigma_next)
            else:
                var = (1 + sigma_next**2) * (sigma**2 - sigma_next**2) / (1 + sigma**2)
            x = x + math.sqrt(var) * _randn(x, generator)
        if refine is not None:
            x = refine(x, sigma_next)
    return x


def sample_annealed_langevin(denoiser, x, sigmas, *, epsilon: float = NCSN_EPSILON, n_steps_each: int = NCSN_T,
                             final_denoise: bool = False, generator=None, callback=None, progress=False):
    """Annealed Langevin dynamics (Song & Ermon 2019, NCSN Algorithm 1).

    The noise levels are ``sigmas[:-1]`` (the trailing 0 only marks the end); at level sigma_i,
    alpha_i = epsilon sigma_i^2 / sigma_L^2 with sigma_L the smallest level, and T =
    ``n_steps_each`` steps x <- x + (alpha_i / 2) score(x; sigma_i) + sqrt(alpha_i) z.
    Algorithm 1 returns the last Langevin iterate (``final_denoise=False``); ``final_denoise=True``
    additionally returns D(x; sigma_L), the denoising step later work added.
    """
    if not epsilon > 0 or not isinstance(n_steps_each, int) or n_steps_each < 1:
        raise ValueError(f"need epsilon > 0 and an integer n_steps_each >= 1, got {epsilon!r}, {n_steps_each!r}")
    s = _check(x, sigmas)
    levels = s[:-1]
    sigma_L = levels[-1]
    for i in _steps(len(levels), progress):
        sigma = levels[i]
        alpha = epsilon * sigma**2 / sigma_L**2  # Alg. 1 line 3
        for _ in range(n_steps_each):  # lines 4-7
            denoised = _call(denoiser, x, sigma)
            score = denoiser_to_score(denoised, x, sigma)
            x = x + 0.5 * alpha * score + math.sqrt(alpha) * _randn(x, generator)
        _report(callback, x=x, i=i, sigma=sigma, sigma_next=s[i + 1], denoised=denoised)
    if final_denoise:
        x = _call(denoiser, x, sigma_L)
    return x


# --------------------------------------------------------------------------------------------
# UniPC (Zhao et al. 2023): a multistep predictor with a free corrector
# --------------------------------------------------------------------------------------------
def _unipc_weights(h: float, rks: list[float], order: int, variant: str):
    """h phi_1(-h), B(h) and the order-``order`` system R rho = b of UniPC (Zhao et al. 2023, Alg. 2-3).

    With hh = -h (data prediction), phi_k as in DPM-Solver: b_k = hh phi_{k+1}(hh) k! / B(h) and
    R_{kj} = r_j^(k-1). B(h) = hh ("bh1") or e^hh - 1 ("bh2").
    """
    hh = -h
    h_phi_1 = math.expm1(hh)  # hh phi_1(hh) = e^hh - 1
    h_phi_k = h_phi_1 / hh - 1  # phi_2(hh) hh... built up by the recursion phi_{k+1} = (phi_k - 1/k!) / hh
    B_h = hh if variant == "bh1" else math.expm1(hh)
    R, b, factorial = [], [], 1
    for k in range(1, order + 1):
        R.append([rk ** (k - 1) for rk in rks])
        b.append(h_phi_k * factorial / B_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return h_phi_1, B_h, torch.tensor(R, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)


def _unipc_differences(history, lam0: float, h: float, D0: torch.Tensor, order: int):
    """r_k = (lambda_{-k} - lambda_0) / h and (D_{-k} - D_0) / r_k for the order - 1 older outputs."""
    rks, diffs = [], []
    for k in range(1, order):
        lam_k, D_k = history[-(k + 1)]
        rk = (lam_k - lam0) / h
        rks.append(rk)
        diffs.append((D_k - D0) / rk)
    return rks, diffs


def sample_unipc(denoiser, x, sigmas, *, order: int = 3, variant: str = "bh2", corrector: bool = True,
                 callback=None, progress=False):
    """UniPC (Zhao et al. 2023) in data-prediction form, lambda = -log sigma, s = 1 coordinates.

    Each step is a UniP-``order`` predictor (Alg. 2: x_{i+1} = (sigma_{i+1}/sigma_i) x_i +
    (1 - e^{-h}) D_i - B(h) sum_k rho_k (D_{i-k} - D_i) / r_k), and once D has been evaluated at
    the predicted point, a UniC corrector (Alg. 3) re-solves the same step with that new value
    included, which raises the order by one at no extra evaluation. The corrected point keeps the
    output D evaluated at the predicted one (the model is not called twice). As in diffusers'
    ``UniPCMultistepScheduler`` (``lower_order_final=True``, ``final_sigmas_type="zero"``): the
    order warms up over the first steps, the last steps drop to the remaining count, and the
    step into sigma = 0 returns D. ``order=2`` uses rho = 1/2 for the predictor, as diffusers does.
    """
    if order not in (1, 2, 3) or variant not in ("bh1", "bh2"):
        raise ValueError(f"UniPC needs order in 1, 2, 3 and variant 'bh1' or 'bh2', got {order!r}, {variant!r}")
    s = _check(x, sigmas)
    n = len(s) - 1
    history: list[tuple[float, torch.Tensor]] = []  # (lambda_j, D_j), newest last
    x_last, order_last = None, 0
    for i in _steps(n, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        lam = -math.log(s[i])
        if corrector and x_last is not None:  # UniC: redo the last step with D_i included
            lam0, D0 = history[-1]
            h = lam - lam0
            rks, diffs = _unipc_differences(history, lam0, h, D0, order_last)
            h_phi_1, B_h, R, b = _unipc_weights(h, rks + [1.0], order_last, variant)
            rhos = [0.5] if order_last == 1 else torch.linalg.solve(R, b).tolist()
            x = (s[i] / s[i - 1]) * x_last - h_phi_1 * D0
            x = x - B_h * (sum(r * d for r, d in zip(rhos[:-1], diffs)) + rhos[-1] * (denoised - D0))
        history = (history + [(lam, denoised)])[-order:]
        order_now = min(order, n - i, len(history))
        x_last, order_last = x, order_now
        if s[i + 1] == 0:  # the first-order step into sigma = 0 returns D
            x = denoised
            break
        h = math.log(s[i]) - math.log(s[i + 1])
        rks, diffs = _unipc_differences(history, lam, h, denoised, order_now)
        h_phi_1, B_h, R, b = _unipc_weights(h, rks + [1.0], order_now, variant)
        x = (s[i + 1] / s[i]) * x - h_phi_1 * denoised
        if diffs:  # UniP: rho solves the leading (order - 1) x (order - 1) block
            rhos = [0.5] if order_now == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
            x = x - B_h * sum(r * d for r, d in zip(rhos, diffs))
    return x


# --------------------------------------------------------------------------------------------
# DEIS (Zhang & Chen 2023): the multistep exponential integrator "tAB" in eps and sigma
# --------------------------------------------------------------------------------------------
def _deis_weights(h: float, nodes: list[float]) -> list[float]:
    """w_j = int_0^{-h} l_j(v) e^v dv for the Lagrange basis l_j through the ``nodes`` v_j.

    v = log(rho / sigma_i) measures the noise level rho from the current one, so the step to
    sigma_{i+1} = sigma_i e^{-h} runs from v = 0 to v = -h and the nodes are v_0 = 0 (now) and
    the earlier levels (v_j > 0). With P_k(v) = sum_m (-1)^(k-m) k!/m! v^m, an antiderivative of
    v^k e^v is e^v P_k(v), so int_0^{-h} v^k e^v dv = e^{-h} P_k(-h) - (-1)^k k!.
    """
    def moment(k: int) -> float:
        if k == 0:
            return math.expm1(-h)
        p = sum((-1) ** (k - m) * math.factorial(k) / math.factorial(m) * (-h) ** m for m in range(k + 1))
        return math.exp(-h) * p - (-1) ** k * math.factorial(k)

    weights = []
    for j, v_j in enumerate(nodes):
        poly = [1.0]  # coefficients of l_j, lowest power first
        for v_m in nodes[:j] + nodes[j + 1:]:
            shifted = [0.0] + poly  # v * poly
            poly = [(a - v_m * b) / (v_j - v_m) for a, b in zip(shifted, poly + [0.0])]
        weights.append(sum(c * moment(k) for k, c in enumerate(poly)))
    return weights


def sample_deis(denoiser, x, sigmas, *, order: int = 3, callback=None, progress=False):
    """DEIS's multistep exponential integrator "tAB" (Zhang & Chen 2023, eq. 15), orders 1-3.

    With s = 1 the PF-ODE is dx/dsigma = eps(x; sigma) = (x - D) / sigma, so the step is
    x_{i+1} = x_i + int_{sigma_i}^{sigma_{i+1}} eps drho exactly. DEIS replaces eps by the
    polynomial in log rho through the last ``order`` outputs (Lagrange form) and integrates it
    exactly: x_{i+1} = x_i + sigma_i sum_j w_j eps_j (see :func:`_deis_weights`). Order 1 is
    Euler (= DDIM). As diffusers' ``DEISMultistepScheduler`` (``algorithm_type="deis"``, its
    default ``lower_order_final=True``): the order warms up over the first steps; with fewer
    than 15 steps the second-to-last step is at most second order and the last one first
    order. The last step, into sigma = 0, is always first order and returns D, as in our other
    multistep solvers; diffusers' DEIS instead stops at sigma_0 of its training table and
    returns the state there (``tests/test_sampling_deis.py`` checks both, step by step).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"DEIS needs order 1, 2 or 3, got {order!r}")
    s = _check(x, sigmas)
    n = len(s) - 1
    history: list[tuple[float, torch.Tensor]] = []  # (log sigma_j, eps_j), newest last
    for i in _steps(n, progress):
        denoised = _call(denoiser, x, s[i])
        _report(callback, x=x, i=i, sigma=s[i], sigma_next=s[i + 1], denoised=denoised)
        if s[i + 1] == 0:  # the first-order step into sigma = 0 returns D
            x = denoised
            break
        history = (history + [(math.log(s[i]), to_d(x, s[i], denoised))])[-order:]
        order_now = min(order, len(history))  # warm-up
        if n < 15 and i == n - 2:  # diffusers' lower_order_final
            order_now = min(order_now, 2)
        used = history[-order_now:][::-1]  # current first
        h = math.log(s[i]) - math.log(s[i + 1])
        weights = _deis_weights(h, [log_j - used[0][0] for log_j, _ in used])
        x = x + s[i] * sum(w * eps for w, (_, eps) in zip(weights, used))
    return x


# --------------------------------------------------------------------------------------------
# Every solver by name, in one place (`sample` looks solvers up here when it is called).
_SOLVER_FUNCTIONS: dict[str, Callable] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "edm_stochastic": sample_edm_stochastic,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_3m": sample_dpmpp_3m,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "predictor_corrector": sample_predictor_corrector,
    "ancestral": sample_ancestral,
    "annealed_langevin": sample_annealed_langevin,
    "unipc": sample_unipc,
    "deis": sample_deis,
}
SOLVERS = tuple(_SOLVER_FUNCTIONS)


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
def sample(denoiser, x, sigmas, solver: str = "heun", *, generator=None, callback=None,
           progress: bool = False, **options):
    """Run ``solver`` from ``x`` at ``sigmas[0]`` down to sigma = 0 and return the final sample.

    ``denoiser(x, sigma) -> x0_hat`` (sigma is passed per sample, shape (N,)); ``sigmas`` is
    decreasing and ends at 0 (see :mod:`diffnotes.schedules`); ``generator``
    drives the noise of the stochastic solvers (deterministic solvers draw none); ``options`` go
    to the solver (e.g. ``S_churn`` for ``"edm_stochastic"``, ``eta`` for ``"ddim"``).
    """
    if solver not in _SOLVER_FUNCTIONS:
        raise ValueError(f"unknown solver {solver!r}; valid solvers: {', '.join(SOLVERS)}")
    fn = _SOLVER_FUNCTIONS[solver]
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if params[p].kind == inspect.Parameter.KEYWORD_ONLY
               and p not in ("generator", "callback", "progress")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"solver {solver!r} got unknown options {unknown}; valid options: "
                         f"{', '.join(allowed) if allowed else 'none'}")
    if "generator" in params:
        options["generator"] = generator
    return fn(denoiser, x, sigmas, callback=callback, progress=progress, **options)
