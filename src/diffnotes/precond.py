"""Preconditioning: turn any backbone ``F`` into a denoiser ``D(x; sigma)`` (EDM, eq. 7).

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), class_labels)

Each formulation of Karras et al. 2022 (Table 1, "Network and preconditioning") is one class
whose ``coefficients(sigma)`` returns ``(c_skip, c_out, c_in, c_noise)`` in four lines; the
forward pass is shared. The coefficients are tested equal to the SymPy expressions of
``diffnotes.theory`` (``tests/test_precond.py``).

Used in the book by the EDM chapter (the comparison of formulations), the DDPM / SMLD / iDDPM
lab notebooks, and ``python -m diffnotes train`` (``--method vp|ve|edm``).
"""

from __future__ import annotations

import torch
from torch import nn

from . import constants as K
from .parameterization import append_dims
from .theory.numeric import iddpm_sigmas, vp_sigma, vp_sigma_inv

__all__ = ["vp_sigma", "vp_sigma_inv", "Precond", "VPPrecond", "VEPrecond", "IDDPMPrecond", "EDMPrecond", "PRECONDS"]


# vp_sigma / vp_sigma_inv live in diffnotes.theory.numeric (re-exported here for old imports).


class Precond(nn.Module):
    """Shared forward pass: broadcast sigma, scale the input, call the backbone, mix with x."""

    sigma_min: float = 0.0
    sigma_max: float = float("inf")

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def coefficients(self, sigma: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def round_sigma(self, sigma):
        """Noise levels the network can take exactly (identity except for iDDPM's discrete table)."""
        return torch.as_tensor(sigma)

    def forward(self, x: torch.Tensor, sigma, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        x = x.to(dtype)
        sigma = torch.as_tensor(sigma, dtype=dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be 0-d or of shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        sigma = append_dims(sigma, x)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        net_dtype = next(self.backbone.parameters()).dtype
        F_x = self.backbone((c_in * x).to(net_dtype), c_noise.flatten(), class_labels=class_labels)
        return c_skip * x + c_out * F_x.to(dtype)


class VPPrecond(Precond):
    """Variance preserving (DDPM++ of Song et al. 2021): predicts the noise, -sigma scales it back.

    sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1), t in [epsilon_t, 1] (EDM Table 1).
    """

    def __init__(self, backbone: nn.Module, beta_d: float = K.VP_BETA_D, beta_min: float = K.VP_BETA_MIN,
                 M: int = K.VP_M, epsilon_t: float = K.VP_EPS_T):
        super().__init__(backbone)
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.sigma_min = float(self.sigma(torch.tensor(epsilon_t, dtype=torch.float64)))
        self.sigma_max = float(self.sigma(torch.tensor(1.0, dtype=torch.float64)))

    def sigma(self, t):
        return vp_sigma(t, beta_d=self.beta_d, beta_min=self.beta_min)

    def sigma_inv(self, sigma):
        return vp_sigma_inv(sigma, beta_d=self.beta_d, beta_min=self.beta_min)

    def coefficients(self, sigma):
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1).sqrt()
        c_noise = (self.M - 1) * self.sigma_inv(sigma)
        return c_skip, c_out, c_in, c_noise


class VEPrecond(Precond):
    """Variance exploding (NCSN++ / SMLD): the network outputs sigma-scaled noise, input unscaled."""

    def __init__(self, backbone: nn.Module, sigma_min: float = K.VE_SIGMA_MIN, sigma_max: float = K.VE_SIGMA_MAX):
        super().__init__(backbone)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def coefficients(self, sigma):
        c_skip = torch.ones_like(sigma)
        c_out = sigma
        c_in = torch.ones_like(sigma)
        c_noise = torch.log(0.5 * sigma)
        return c_skip, c_out, c_in, c_noise


class IDDPMPrecond(Precond):
    """Improved DDPM (Nichol & Dhariwal 2021): the network saw only the M discrete levels u_j."""

    def __init__(self, backbone: nn.Module, C_1: float = K.IDDPM_C1, C_2: float = K.IDDPM_C2, M: int = K.IDDPM_M):
        super().__init__(backbone)
        self.C_1, self.C_2, self.M = C_1, C_2, M
        self.register_buffer("u", iddpm_sigmas(M, C_1, C_2), persistent=False)
        self.sigma_min, self.sigma_max = float(self.u[M - 1]), float(self.u[0])

    def sigma_index(self, sigma):
        """Index j of the nearest u_j (u has j = 0 largest ... j = M zero)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=self.u.device)
        return torch.cdist(sigma.reshape(1, -1, 1), self.u[:-1].reshape(1, -1, 1)).argmin(dim=2).reshape(sigma.shape)

    def round_sigma(self, sigma):
        sigma = torch.as_tensor(sigma)
        return self.u[self.sigma_index(sigma)].to(sigma.dtype)

    def coefficients(self, sigma):
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1 / (sigma**2 + 1).sqrt()
        c_noise = (self.M - 1 - self.sigma_index(sigma)).to(sigma.dtype)
        return c_skip, c_out, c_in, c_noise


class EDMPrecond(Precond):
    """EDM (Karras et al. 2022, Sec. 5): unit-variance input and target at every sigma."""

    def __init__(self, backbone: nn.Module, sigma_data: float = K.EDM_SIGMA_DATA, sigma_min: float = 0.0,
                 sigma_max: float = float("inf")):
        super().__init__(backbone)
        self.sigma_data, self.sigma_min, self.sigma_max = float(sigma_data), float(sigma_min), float(sigma_max)

    def coefficients(self, sigma):
        c_skip = self.sigma_data**2 / (sigma**2 + self.sigma_data**2)
        c_out = sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()
        c_in = 1 / (self.sigma_data**2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise


PRECONDS = {"vp": VPPrecond, "ve": VEPrecond, "iddpm": IDDPMPrecond, "edm": EDMPrecond}
