"""Preconditioning wrappers: their defining properties, the iDDPM table, and the shared forward."""

import math

import pytest
import torch
from torch import nn

from diffnotes.precond import EDMPrecond, IDDPMPrecond, PRECONDS, VEPrecond, VPPrecond
from diffnotes.theory.numeric import iddpm_sigmas




class Constant(nn.Module):
    """A backbone returning a fixed value, recording what it was called with."""

    def __init__(self, value=0.0):
        super().__init__()
        self.value = value
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x_in, c_noise, class_labels=None):
        self.calls.append((x_in, c_noise, class_labels))
        return torch.full_like(x_in, self.value)


def _random_sigmas(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(n, generator=gen, dtype=torch.float64) * 2.0)


def test_edm_input_and_training_target_have_unit_variance():
    # EDM Sec. 5 / App. B.6: c_in makes Var[c_in (y + n)] = 1, and c_skip, c_out make the effective
    # target (y - c_skip x) / c_out unit-variance, for data of std sigma_data.
    pre = EDMPrecond(Constant(), sigma_data=0.5)
    sigma = _random_sigmas()
    c_skip, c_out, c_in, c_noise = pre.coefficients(sigma)
    sd = 0.5
    torch.testing.assert_close(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma))
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(sigma))
    # c_skip minimises the variance of y - c_skip x, hence c_out (EDM App. B.6): perturbing it hurts.
    worse = ((1 - 1.05 * c_skip) ** 2 * sd**2 + (1.05 * c_skip) ** 2 * sigma**2) / c_out**2
    assert bool((worse > target_var).all())
    torch.testing.assert_close(torch.exp(4 * c_noise), sigma)


def test_vp_sigma_and_its_inverse():
    pre = VPPrecond(Constant())
    t = torch.linspace(1e-5, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(pre.sigma_inv(pre.sigma(t)), t)
    # VP-SDE with linear beta(t) = beta_min + beta_d t has alpha_bar(t) = exp(-int_0^t beta) and
    # sigma(t)^2 = 1/alpha_bar - 1 (Song et al. 2021, EDM Table 1).
    alpha_bar = torch.exp(-(pre.beta_min * t + 0.5 * pre.beta_d * t**2))
    torch.testing.assert_close(pre.sigma(t) ** 2, 1 / alpha_bar - 1)
    c_skip, c_out, c_in, c_noise = pre.coefficients(pre.sigma(t))
    torch.testing.assert_close(c_noise, 999 * t)
    torch.testing.assert_close(c_in, alpha_bar.sqrt())  # the DDPM input scaling sqrt(alpha_bar)
    torch.testing.assert_close(c_out, -pre.sigma(t))
    assert pre.sigma_min == pytest.approx(float(pre.sigma(torch.tensor(1e-5, dtype=torch.float64))))


def test_ve_coefficients():
    pre = VEPrecond(Constant())
    sigma = _random_sigmas()
    c_skip, c_out, c_in, c_noise = pre.coefficients(sigma)
    assert bool((c_skip == 1).all()) and bool((c_in == 1).all())
    torch.testing.assert_close(c_out, sigma)
    torch.testing.assert_close(torch.exp(c_noise), sigma / 2)
    assert (pre.sigma_min, pre.sigma_max) == (0.02, 100.0)


def test_iddpm_table_is_the_cosine_schedule():
    u = iddpm_sigmas(M=1000, C_1=0.001, C_2=0.008)
    assert u.shape == (1001,) and u[-1] == 0 and bool((u[:-1] > u[1:]).all())
    # Away from the clipped first step, 1 / (1 + u_j^2) is iDDPM's alpha_bar at step t = M - j:
    # alpha_bar_t = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2), s = 0.008 (Nichol &
    # Dhariwal 2021, eq. 17).
    s, T = 0.008, 1000

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    j = torch.arange(1, 1001)
    alpha_bar = torch.tensor([f(T - int(k)) / f(0) for k in j], dtype=torch.float64)
    torch.testing.assert_close(1 / (1 + u[1:] ** 2), alpha_bar)


def test_iddpm_rounds_sigma_to_the_table():
    backbone = Constant()
    pre = IDDPMPrecond(backbone)
    j = torch.tensor([0, 1, 17, 500, 998, 999])
    exact = pre.u[j]
    # Nudged by 0.1% the levels still round to the same entries.
    torch.testing.assert_close(pre.round_sigma(exact * 1.001), exact)
    c_skip, c_out, c_in, c_noise = pre.coefficients(exact * 1.001)
    torch.testing.assert_close(c_noise, (999 - j).to(torch.float64))
    assert pre.sigma_max == float(pre.u[0]) and pre.sigma_min == float(pre.u[999])
    pre(torch.zeros(6, 2), (exact * 1.001).float())
    torch.testing.assert_close(backbone.calls[-1][1], (999 - j).float())


@pytest.mark.parametrize("name", sorted(PRECONDS))
def test_forward_combines_skip_and_network(name):
    value = 0.3
    backbone = Constant(value)
    pre = PRECONDS[name](backbone)
    x = torch.randn(5, 1, 4, 4)
    sigma = torch.tensor([0.05, 0.5, 1.0, 3.0, 40.0])
    out = pre(x, sigma, class_labels=torch.arange(5))
    c_skip, c_out, c_in, c_noise = pre.coefficients(sigma.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(out, c_skip * x + c_out * value)
    x_in, c_noise_seen, labels = backbone.calls[-1]
    torch.testing.assert_close(x_in, c_in * x)
    assert c_noise_seen.shape == (5,) and labels.tolist() == [0, 1, 2, 3, 4]
    # A 0-d sigma is broadcast over the batch.
    torch.testing.assert_close(pre(x, torch.tensor(0.5)), pre(x, torch.full((5,), 0.5)))


def test_precond_keeps_float64():
    pre = EDMPrecond(Constant(0.0))
    x = torch.randn(3, 2, dtype=torch.float64)
    out = pre(x, torch.tensor(2.0))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x * 0.25 / (4 + 0.25))


def test_bad_sigma_shape():
    pre = EDMPrecond(Constant())
    with pytest.raises(ValueError, match="sigma must be"):
        pre(torch.randn(3, 2), torch.ones(4))



# ----------------------------------------------------------------------------------------------
# Equal to the theory: EDM Table 1 as SymPy expressions in diffnotes.theory, lambdified
# ----------------------------------------------------------------------------------------------

THEORY_COLUMNS = [("edm", None, EDMPrecond), ("vp", None, VPPrecond), ("ve", "edm", VEPrecond),
                  ("iddpm", "edm", IDDPMPrecond)]


@pytest.mark.parametrize("name, parameterization, cls", THEORY_COLUMNS, ids=[c[0] for c in THEORY_COLUMNS])
def test_coefficients_equal_the_theory(name, parameterization, cls):
    import sympy as sp

    from diffnotes.theory import get_process
    from diffnotes.theory.processes import SIGMA

    proc = get_process(name, parameterization)
    pre = cls(Constant())
    sigma = _random_sigmas(seed=3)
    ours = dict(zip(("c_skip", "c_out", "c_in", "c_noise"), pre.coefficients(sigma)))
    checked = 0
    for key, value in ours.items():
        expr = proc.table1[key]
        if isinstance(expr, str):  # iDDPM's c_noise is an argmin over the table, tested above
            continue
        fn = sp.lambdify(SIGMA, proc.subs(expr), modules="torch")
        expected = torch.as_tensor(fn(sigma), dtype=torch.float64).expand_as(sigma)
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12, msg=f"{name} {key}")
        checked += 1
    assert checked >= 3

