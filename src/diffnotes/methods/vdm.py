"""Variational diffusion models (Kingma et al. 2021): a learned schedule and the continuous-time ELBO.

VDM writes the forward process as z_t = alpha_t x + sigma_t eps with alpha_t^2 = sigmoid(-gamma(t)),
sigma_t^2 = sigmoid(gamma(t)), SNR(t) = exp(-gamma(t)); in the book's coordinates
x_hat = z_t / alpha_t = x + exp(gamma / 2) eps, so a ``diffnotes.precond`` denoiser at
sigma = exp(gamma(t) / 2) is VDM's model (``get_process("vdm")``, proof ``vdm_edm_same_family``).
What the paper adds, and this module keeps:

* :class:`MonotoneGamma` — gamma(t) as a monotone network (positive weights, VDM App. H's
  ``NoiseNet``), rescaled to fixed end points gamma_min, gamma_max; :class:`LinearGamma` is the
  fixed linear schedule with the same end points;
* :class:`FourierInput` — sin / cos(2^n pi z) features of the input concatenated to its channels
  (VDM App. C), wrapped around any backbone;
* :func:`diffusion_loss` — the continuous-time loss L_inf = 1/2 gamma'(t) ||eps - eps_hat||^2 at
  t ~ U(0, 1) (eq. 17 written with gamma), or the T-step loss T/2 (SNR(s) - SNR(t))
  ||x - x_hat||^2 (eq. 13) at t on the grid i / T;
* :class:`VDMLoss` — the full bound per dimension; with ``variance_minimising`` the schedule's
  gradient is that of E[L^2] (App. I.2: the expectation of L_inf does not depend on gamma between its
  end points, so lowering E[L^2] lowers the estimator's variance), by one backward pass;
* :func:`nll_bound` — the bound in bits/dim: prior KL at gamma_max, the diffusion loss over
  stratified t, and a discretized Gaussian decoder at gamma_min (the chain's
  :func:`~diffnotes.chain.discretized_gaussian_nll`; VDM's decoder is a per-pixel categorical).

Used by ``book/papers/kingma2021variational.md`` and ``notebooks/kingma2021variational.ipynb``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from diffnotes import constants as K
from diffnotes.chain import discretized_gaussian_nll, gaussian_kl, sum_dims, to_bits_per_dim
from diffnotes.parameterization import append_dims, denoiser_to_eps

__all__ = [
    "LinearGamma", "MonotoneGamma", "FourierInput", "VDM", "with_gamma", "diffusion_times",
    "diffusion_loss", "prior_loss", "reconstruction_loss", "VDMLoss", "nll_bound", "loss_variance",
]


# ----------------------------------------------------------------------------------------------
# Schedules gamma(t) = -log SNR(t)
# ----------------------------------------------------------------------------------------------
def _check_ends(gamma_min: float, gamma_max: float) -> None:
    if not gamma_min < gamma_max:
        raise ValueError(f"need gamma_min < gamma_max, got {gamma_min} and {gamma_max}")


class LinearGamma(nn.Module):
    """gamma(t) = gamma_min + (gamma_max - gamma_min) t: VDM's fixed baseline (and its init)."""

    def __init__(self, gamma_min: float = K.VDM_GAMMA_MIN, gamma_max: float = K.VDM_GAMMA_MAX):
        super().__init__()
        _check_ends(gamma_min, gamma_max)
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.gamma_min + (self.gamma_max - self.gamma_min) * t


class _PositiveLinear(nn.Linear):
    """A dense layer with speed |W| as its weight: non-decreasing in every input (VDM's DenseMonotone).

    ``speed`` multiplies the stored parameters: under Adam a parameter moves about lr per step
    whatever its gradient's size, so the schedule learns ``speed`` times faster than the denoiser.
    """

    def __init__(self, n_in: int, n_out: int, bias: bool = True, speed: float = 1.0):
        super().__init__(n_in, n_out, bias=bias)
        self.speed = float(speed)
        with torch.no_grad():
            self.weight /= self.speed
            if self.bias is not None:
                self.bias /= self.speed

    def forward(self, x):
        bias = None if self.bias is None else self.speed * self.bias
        return F.linear(x, self.speed * self.weight.abs(), bias)


class MonotoneGamma(nn.Module):
    """A learned, increasing gamma(t) with fixed end points gamma(0) = gamma_min, gamma(1) = gamma_max.

    gamma_tilde(t) = l1(t) + l3(2 sigmoid(l2(2 t - 1)) - 1) / hidden with positive weights (VDM
    App. H and its code's ``NoiseNet``), then gamma(t) = gamma_min + (gamma_max - gamma_min)
    (gamma_tilde(t) - gamma_tilde(0)) / (gamma_tilde(1) - gamma_tilde(0)): increasing in t for
    any weights, with the end points fixed.
    """

    def __init__(self, gamma_min: float = K.VDM_GAMMA_MIN, gamma_max: float = K.VDM_GAMMA_MAX,
                 hidden: int = 64, speed: float = 1.0):
        super().__init__()
        _check_ends(gamma_min, gamma_max)
        if int(hidden) != hidden or hidden < 1 or not speed > 0:
            raise ValueError(f"need an integer hidden >= 1 and speed > 0, got {hidden!r}, {speed!r}")
        self.gamma_min, self.gamma_max, self.hidden = float(gamma_min), float(gamma_max), int(hidden)
        self.l1 = _PositiveLinear(1, 1, speed=speed)
        self.l2 = _PositiveLinear(1, hidden, speed=speed)
        self.l3 = _PositiveLinear(hidden, 1, bias=False, speed=speed)
        with torch.no_grad():
            self.l1.weight.fill_(1.0 / speed)
            self.l1.bias.zero_()
            self.l3.weight.normal_(0.0, 1.0 / speed)  # |N(0, 1)| weights, as VDM's code

    def gamma_tilde(self, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1)
        branch = self.l3(2 * torch.sigmoid(self.l2(2 * t - 1)) - 1) / self.hidden
        return (self.l1(t) + branch).reshape(-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        dtype = self.l1.weight.dtype  # t may come in another precision
        ends = self.gamma_tilde(torch.tensor([0.0, 1.0], dtype=dtype, device=t.device))
        unit = (self.gamma_tilde(t.to(dtype)).reshape(t.shape) - ends[0]) / (ends[1] - ends[0])
        return (self.gamma_min + (self.gamma_max - self.gamma_min) * unit).to(t.dtype)


# ----------------------------------------------------------------------------------------------
# Fourier features of the input and the model
# ----------------------------------------------------------------------------------------------
class FourierInput(nn.Module):
    """Backbone wrapper: ``backbone(cat[z, sin(2^n pi z), cos(2^n pi z)]_n, c_noise)`` (VDM App. C).

    With VP preconditioning the backbone's input c_in x_hat is VDM's z_t. For data on a grid of
    spacing 2^-m (8x8 digits in [-1, 1]: 17 levels, spacing 2^-3) the features sin(2^n pi z)
    with n >= m vanish on the grid, so at low noise they read off the noise itself: the fine detail a
    likelihood model must get right. ``backbone`` must take ``C (1 + 2 len(exponents))`` channels.
    """

    def __init__(self, backbone: nn.Module, exponents=(3, 4)):
        super().__init__()
        exponents = tuple(int(n) for n in exponents)
        if not exponents:
            raise ValueError("give at least one exponent n for the features sin(2^n pi z)")
        self.backbone = backbone
        self.register_buffer("freqs", torch.tensor([2.0**n * math.pi for n in exponents], dtype=torch.float64))

    def forward(self, x_in, c_noise, class_labels=None):
        args = x_in.unsqueeze(2) * self.freqs.to(x_in.dtype).reshape(1, 1, -1, *([1] * (x_in.ndim - 2)))
        feats = torch.cat([torch.sin(args), torch.cos(args)], dim=2).flatten(1, 2)
        return self.backbone(torch.cat([x_in, feats], dim=1), c_noise, class_labels=class_labels)


class VDM(nn.Module):
    """A denoiser D(x_hat; sigma) (any ``diffnotes.precond`` wrapper) and a schedule gamma(t).

    ``forward`` is the denoiser, so samplers and the chain's bounds can use a VDM as they are.
    """

    def __init__(self, denoiser: nn.Module, gamma: nn.Module):
        super().__init__()
        self.denoiser, self.gamma = denoiser, gamma

    def forward(self, x, sigma, class_labels=None):
        return self.denoiser(x, sigma, class_labels)


def with_gamma(model: VDM, gamma: nn.Module) -> VDM:
    """The same denoiser under another schedule (the loss's mean is unchanged if the ends are)."""
    return VDM(model.denoiser, gamma)


# ----------------------------------------------------------------------------------------------
# The bound's three terms (VDM eq. 11: prior, reconstruction, diffusion)
# ----------------------------------------------------------------------------------------------
def diffusion_times(n: int, *, low_discrepancy: bool = True, generator=None, device=None) -> torch.Tensor:
    """n times in [0, 1): t_i = (u + i / n) mod 1 with one u ~ U(0, 1) (VDM App. I.1), or i.i.d."""
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if low_discrepancy:
        u = torch.rand((), generator=generator)
        return ((u + torch.arange(n) / n) % 1.0).to(device)
    return torch.rand(n, generator=generator).to(device)


def _grid(t: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) of the T-step model: t rounded up to the grid i / T, s = t - 1 / T (eq. 13)."""
    t = torch.ceil(t * T).clamp(1, T) / T
    return t - 1.0 / T, t


def _gamma_and_slope(gamma: nn.Module, t: torch.Tensor, create_graph: bool):
    """gamma(t) and d gamma / dt by autograd (the schedule network is differentiable in t)."""
    with torch.enable_grad():
        t = t.detach().requires_grad_(True)
        g = gamma(t)
        (slope,) = torch.autograd.grad(g.sum(), t, create_graph=create_graph)
    return g, slope


def diffusion_loss(model: VDM, x0: torch.Tensor, t: torch.Tensor, *, noise=None, T: int | None = None,
                   class_labels=None, create_graph: bool = False, gamma_hook=None) -> torch.Tensor:
    """One-sample estimate of the diffusion loss per sample, in nats.

    ``T=None``: L_inf = 1/2 gamma'(t) ||eps - eps_hat(z_t; t)||^2 (VDM eq. 17 with SNR = e^-gamma),
    whose mean over t ~ U(0, 1) is the continuous-time loss. ``T``: L_T = T/2 (SNR(s) - SNR(t))
    ||x - x_hat(z_t; t)||^2 with t on the grid i / T (eq. 13). ``gamma_hook`` (internal) routes
    gamma and its slope through the variance-minimising gradient of :class:`VDMLoss`.
    """
    noise = torch.randn_like(x0) if noise is None else noise
    if T is None:
        g, slope = _gamma_and_slope(model.gamma, t, create_graph)
        if gamma_hook is not None:
            g, slope = gamma_hook(g), gamma_hook(slope)
    else:
        if int(T) != T or T < 1:
            raise ValueError(f"T must be an integer >= 1, got {T!r}")
        s, t = _grid(t, int(T))
        g, g_s = model.gamma(t), model.gamma(s)
    sigma = torch.exp(g / 2).to(x0.dtype)
    x = x0 + append_dims(sigma, x0) * noise  # x_hat = z_t / alpha_t
    denoised = model.denoiser(x, sigma, class_labels).to(x0.dtype)
    if T is None:
        eps_hat = denoiser_to_eps(denoised, x, sigma)
        return 0.5 * slope.to(x0.dtype) * sum_dims((noise - eps_hat) ** 2)
    weight = T / 2 * (torch.exp(-g_s) - torch.exp(-g)).to(x0.dtype)
    return weight * sum_dims((x0 - denoised) ** 2)


def _ends(model: VDM, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ends = model.gamma(torch.tensor([0.0, 1.0], dtype=like.dtype, device=like.device))
    return ends[0], ends[1]


def prior_loss(model: VDM, x0: torch.Tensor) -> torch.Tensor:
    """KL(q(z_1 | x) || N(0, I)) per sample in nats, alpha_1^2 = sigmoid(-gamma_max)."""
    _, gamma_1 = _ends(model, x0)
    var_1 = torch.sigmoid(gamma_1)
    mean_1 = torch.sigmoid(-gamma_1).sqrt() * x0
    return sum_dims(gaussian_kl(mean_1, var_1, torch.zeros_like(x0), torch.ones_like(x0)))


def reconstruction_loss(model: VDM, x0: torch.Tensor, levels: int, noise=None) -> torch.Tensor:
    """-log p(x | z_0) per sample in nats: a discretized Gaussian at z_0 / alpha_0, variance e^gamma_min."""
    gamma_0, _ = _ends(model, x0)
    noise = torch.randn_like(x0) if noise is None else noise
    var_0 = torch.exp(gamma_0)
    return discretized_gaussian_nll(x0, x0 + var_0.sqrt() * noise, var_0, levels)


class _TimesTwoLoss(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by 2 L (the per-sample loss, stored later).

    With g = gamma(t_i): d E[L^2] / d eta = E[2 L dL/d eta], so routing gamma and its slope
    through this gives the schedule's parameters eta the gradient of E[L^2] (VDM App. I.2)
    while the denoiser, which does not pass through it, gets the gradient of E[L].
    """

    @staticmethod
    def forward(ctx, value, holder):
        ctx.holder = holder
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 2 * ctx.holder[0].to(grad.dtype), None


class VDMLoss:
    """VDM's bound per sample, in nats per dimension: prior + reconstruction + continuous diffusion loss.

    ``variance_minimising=True`` (VDM's schedule training) gives the schedule network the
    gradient of the diffusion loss's second moment instead of its mean; with
    ``False`` the schedule (if it has parameters) is trained on the bound itself.
    ``levels`` is the data's number of values per dimension (the decoder's bins).
    """

    def __init__(self, levels: int, *, variance_minimising: bool = True, low_discrepancy: bool = True):
        if int(levels) != levels or levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        self.levels, self.variance_minimising = int(levels), bool(variance_minimising)
        self.low_discrepancy = bool(low_discrepancy)

    def __call__(self, model: VDM, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        dims = x0[0].numel()
        t = diffusion_times(x0.shape[0], low_discrepancy=self.low_discrepancy, device=x0.device).to(x0.dtype)
        holder: list = []
        hook = (lambda v: _TimesTwoLoss.apply(v, holder)) if self.variance_minimising else None
        diff = diffusion_loss(model, x0, t, class_labels=class_labels, create_graph=True, gamma_hook=hook) / dims
        holder.append(diff.detach())
        rest = (prior_loss(model, x0) + reconstruction_loss(model, x0, self.levels)) / dims
        return diff + rest


@torch.no_grad()
def nll_bound(model: VDM, x0: torch.Tensor, levels: int, *, n_times: int = 100, T: int | None = None,
              generator: torch.Generator | None = None, class_labels=None) -> dict[str, torch.Tensor]:
    """VDM's bound per sample in bits/dim: ``"prior"``, ``"reconstruction"``, ``"diffusion"``, ``"total"``.

    The diffusion loss is averaged over ``n_times`` stratified times per sample (t_k = (k + u_k) /
    n_times, unbiased), continuous (``T=None``) or of the T-step model; one noise draw per time.
    """
    if int(n_times) != n_times or n_times < 1:
        raise ValueError(f"n_times must be an integer >= 1, got {n_times!r}")
    n, dims = x0.shape[0], x0[0].numel()
    diff = torch.zeros(n, dtype=torch.float64)
    for k in range(int(n_times)):
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        t = ((k + u) / n_times).to(x0.device, x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        diff += diffusion_loss(model, x0, t, noise=noise, T=T, class_labels=class_labels).double().cpu()
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    out = {"prior": prior_loss(model, x0).double().cpu(),
           "reconstruction": reconstruction_loss(model, x0, levels, noise).double().cpu(),
           "diffusion": diff / n_times}
    out["total"] = out["prior"] + out["reconstruction"] + out["diffusion"]
    return {k: to_bits_per_dim(v, dims) for k, v in out.items()}


@torch.no_grad()
def loss_variance(model: VDM, x0: torch.Tensor, *, draws: int = 32,
                  generator: torch.Generator | None = None) -> tuple[float, float]:
    """(mean, variance) of the one-sample estimate of L_inf in bits/dim, t ~ U(0, 1) i.i.d.

    Each of the ``draws`` rounds draws one t and one noise per data point; the variance is over
    data, t and noise together: what a training step's loss estimate varies by.
    """
    if int(draws) != draws or draws < 2:
        raise ValueError(f"draws must be an integer >= 2, got {draws!r}")
    values = []
    for _ in range(int(draws)):
        t = torch.rand(x0.shape[0], generator=generator).to(x0.device, x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        values.append(diffusion_loss(model, x0, t, noise=noise).double().cpu())
    bpd = to_bits_per_dim(torch.cat(values), x0[0].numel())
    return float(bpd.mean()), float(bpd.var())
