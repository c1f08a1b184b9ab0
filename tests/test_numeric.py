"""The SymPy -> PyTorch bridge, and the PyTorch twins the engine keeps, equal to the theory."""

import math

import numpy as np
import pytest
import sympy as sp
import torch

from diffnotes import constants as K
from diffnotes.methods.edm import EDMLoss, VELoss
from diffnotes.methods.ncsn import ncsn_sigmas
from diffnotes.sampling import sigma_schedule
from diffnotes.theory import get_process, numeric
from diffnotes.theory.processes import SIGMA, TRAIN_DRAWS

F64 = torch.float64
COLUMNS = [("edm", None), ("vp", None), ("ve", "edm"), ("iddpm", "edm")]


def _sigmas(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.empty(n, dtype=F64).uniform_(math.log(1e-3), math.log(100.0), generator=g))


def test_bridge_is_cached_per_process_and_parameters():
    assert numeric.process("vp") is numeric.process("vp")
    assert numeric.process("vp", beta_min=0.2) is not numeric.process("vp")
    assert numeric.table1("edm") is numeric.table1("edm")


@pytest.mark.parametrize("name, par", [("vp", None), ("subvp", None), ("ve", None), ("ve", "edm"), ("edm", None)])
def test_process_functions_equal_sympy(name, par):
    proc, fns = get_process(name, par), numeric.process(name, par)
    lo, hi = proc.numeric_t_range()
    for t in np.random.default_rng(1).uniform(lo, hi, size=5):
        expected = float(proc.subs(proc.sigma).subs(proc.t, t))
        assert math.isclose(float(fns.sigma(torch.tensor(t, dtype=F64))), expected, rel_tol=1e-12)
        deriv = float(proc.subs(sp.diff(proc.sigma, proc.t)).subs(proc.t, t))
        assert math.isclose(float(fns.sigma_deriv(torch.tensor(t, dtype=F64))), deriv, rel_tol=1e-10)
        assert math.isclose(float(fns.sigma_inv(torch.tensor(expected, dtype=F64))), t, rel_tol=1e-9)


@pytest.mark.parametrize("name, par", COLUMNS, ids=[c[0] for c in COLUMNS])
def test_table1_coefficients_equal_sympy(name, par):
    proc, column = get_process(name, par), numeric.table1(name, par)
    sigma = _sigmas()
    checked = 0
    for key in numeric.TABLE1_COEFFICIENTS:
        if isinstance(proc.table1[key], str):
            assert not hasattr(column, key)
            continue
        reference = sp.lambdify(SIGMA, proc.subs(proc.table1[key]), "numpy")
        want = np.broadcast_to(reference(sigma.numpy()), sigma.shape)
        np.testing.assert_allclose(getattr(column, key)(sigma).numpy(), want, rtol=1e-12, err_msg=f"{name} {key}")
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("n, sigma_min, sigma_max, rho", [(2, 0.002, 80.0, 7.0), (18, 0.01, 50.0, 3.0),
                                                          (40, 0.3, 1.5, 1.0)])
def test_karras_schedule_is_edm_table1_time_steps(n, sigma_min, sigma_max, rho):
    ours = sigma_schedule("karras", n, sigma_min, sigma_max, rho=rho)
    theory = numeric.sigma_steps("edm", n, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    torch.testing.assert_close(ours[:-1], theory, rtol=1e-12, atol=0)
    assert float(ours[-1]) == 0.0


def test_loglinear_and_vp_schedules_are_table1_time_steps():
    # EDM Table 1's VE steps t_i = sigma_max^2 (sigma_min^2/sigma_max^2)^(i/(N-1)) with sigma = sqrt(t)
    ve = numeric.sigma_steps("ve", 12, "edm", sigma_min=0.05, sigma_max=20.0)
    torch.testing.assert_close(sigma_schedule("loglinear", 12, 0.05, 20.0)[:-1], ve, rtol=1e-12, atol=0)
    # and the VP steps t_i = 1 + i/(N-1) (epsilon_s - 1), with the default range sigma(epsilon_s) .. sigma(1)
    torch.testing.assert_close(sigma_schedule("vp", 9)[:-1], numeric.sigma_steps("vp", 9), rtol=1e-12, atol=0)


LOSS_COLUMNS = [(EDMLoss(), ("edm", None), {}),
                (EDMLoss(P_mean=0.3, P_std=0.5, sigma_data=1.0), ("edm", None),
                 dict(P_mean=0.3, P_std=0.5, sigma_data=1.0)),
                (VELoss(), ("ve", "edm"), {}),
                (VELoss(sigma_min=0.1, sigma_max=10.0), ("ve", "edm"), dict(sigma_min=0.1, sigma_max=10.0))]
# the VP column is trained by score_sde.ScoreSDELoss("vp"): tests/test_methods_edm.py checks its draw


@pytest.mark.parametrize("loss, column, params", LOSS_COLUMNS, ids=[f"{c[1][0]}-{i}" for i, c in enumerate(LOSS_COLUMNS)])
def test_loss_draws_and_weights_equal_table1(loss, column, params):
    theory = numeric.table1(*column, **params)
    g = torch.Generator().manual_seed(4)
    draw = torch.randn(200, generator=g, dtype=F64) if theory.train_draw == "normal" else \
        torch.rand(200, generator=g, dtype=F64).clamp_min(1e-6)
    assert (loss.draw is torch.randn) == (theory.train_draw == "normal")
    sigma = loss.sigma_from(draw)
    torch.testing.assert_close(sigma, theory.train_sigma(draw), rtol=1e-12, atol=0)
    torch.testing.assert_close(loss.weight(sigma), theory.loss_weight(sigma), rtol=1e-12, atol=0)


def test_edm_loss_feeds_the_model_the_table1_sigma():
    seen = []

    def model(x, sigma, class_labels=None):
        seen.append(sigma)
        return torch.zeros_like(x)

    x0 = torch.ones(64, 3)
    torch.manual_seed(7)
    loss = EDMLoss()(model, x0)
    torch.manual_seed(7)
    draw = torch.randn(64, 1)
    expected = numeric.table1("edm").train_sigma(draw.double()).flatten()
    torch.testing.assert_close(seen[0].double(), expected, rtol=1e-6, atol=0)
    # with D = 0 the loss is lambda(sigma) ||x0||^2 / d = lambda(sigma)
    torch.testing.assert_close(loss.double(), numeric.table1("edm").loss_weight(expected), rtol=1e-5, atol=0)


def test_training_draws_follow_the_papers():
    # EDM: ln sigma ~ N(P_mean, P_std^2); VE: ln sigma ~ U(ln sigma_min, ln sigma_max)
    z = torch.linspace(-3, 3, 7, dtype=F64)
    torch.testing.assert_close(numeric.table1("edm").train_sigma(z).log(), K.EDM_P_MEAN + K.EDM_P_STD * z)
    u = torch.linspace(0, 1, 5, dtype=F64)
    log_ve = numeric.table1("ve", "edm").train_sigma(u).log()
    torch.testing.assert_close(log_ve, math.log(K.VE_SIGMA_MIN) + u * math.log(K.VE_SIGMA_MAX / K.VE_SIGMA_MIN))
    # VP: sigma^{-1}(sigma) ~ U(epsilon_t, 1)
    t = numeric.vp_sigma_inv(numeric.table1("vp").train_sigma(u))
    torch.testing.assert_close(t, 1 + u * (K.VP_EPS_T - 1))
    assert set(TRAIN_DRAWS) == {"uniform", "normal"}


def test_constants_are_the_theory_defaults():
    by_name = lambda name, par=None: {str(k): v for k, v in get_process(name, par).params.items()}  # noqa: E731
    assert by_name("vp") == dict(beta_min=K.VP_BETA_MIN, beta_d=K.VP_BETA_D, M=K.VP_M,
                                 epsilon_s=K.VP_EPS_S, epsilon_t=K.VP_EPS_T)
    assert by_name("edm") == dict(sigma_min=K.EDM_SIGMA_MIN, sigma_max=K.EDM_SIGMA_MAX, rho=K.EDM_RHO,
                                  sigma_data=K.EDM_SIGMA_DATA, P_mean=K.EDM_P_MEAN, P_std=K.EDM_P_STD)
    assert by_name("ddpm") == dict(beta_1=K.DDPM_BETA_1, beta_N=K.DDPM_BETA_T, N=K.DDPM_T)
    assert K.VP_BETA_MIN + K.VP_BETA_D == pytest.approx(20.0)  # Score SDE's beta_max


def test_chain_schedules():
    betas = numeric.chain_schedule("ddpm")
    np.testing.assert_allclose(betas.numpy(), np.linspace(K.DDPM_BETA_1, K.DDPM_BETA_T, K.DDPM_T), rtol=1e-12)
    ladder = numeric.chain_schedule("smld")
    np.testing.assert_allclose(ladder.numpy(), np.geomspace(K.NCSN_SIGMA_L, K.NCSN_SIGMA_1, K.NCSN_L), rtol=1e-12)
    torch.testing.assert_close(ncsn_sigmas(append_zero=False), ladder.flip(0))
    cos = numeric.chain_schedule("iddpm", M=100)
    assert cos.shape == (100,) and float(cos.max()) == pytest.approx(K.IDDPM_MAX_BETA)


@pytest.mark.parametrize("M, C_1, C_2", [(K.IDDPM_M, K.IDDPM_C1, K.IDDPM_C2), (60, 0.02, 0.01)])
def test_iddpm_sigmas_twin_is_the_sympy_chain(M, C_1, C_2):
    """The numpy recursion behind numeric.iddpm_sigmas (processes.iddpm_u) against its SymPy source:
    1 / (1 + u_{M-t}^2) is alpha_bar_t of the iDDPM process's clipped chain (eq. 17, beta <= 1 - C_1)."""
    u = numeric.iddpm_sigmas(M, C_1, C_2)
    assert u.dtype == F64 and u.shape == (M + 1,) and float(u[-1]) == 0 and bool((u[:-1] > u[1:]).all())
    alpha_bar = torch.cumprod(1 - numeric.chain_schedule("iddpm", M=M, C_1=C_1, C_2=C_2), dim=0)
    torch.testing.assert_close(1 / (1 + u[:-1].flip(0) ** 2), alpha_bar, rtol=1e-12, atol=0)
    # a false variant: the chain without its clipping (C_1 -> 0) differs at the noisy end
    unclipped = torch.cumprod(1 - numeric.chain_schedule("iddpm", M=M, C_1=1e-12, C_2=C_2), dim=0)
    assert not torch.allclose(1 / (1 + u[:-1].flip(0) ** 2), unclipped, rtol=1e-6, atol=0)
    assert numeric.iddpm_sigmas(M, C_1, C_2) is not u and torch.equal(numeric.iddpm_sigmas(M, C_1, C_2), u)


def test_vp_sigma_dtype_rule():
    assert numeric.vp_sigma(0.5).dtype == F64
    assert numeric.vp_sigma(torch.tensor(0.5)).dtype == torch.float32
    assert numeric.vp_sigma(torch.tensor(1)).dtype == F64


def test_bad_input():
    with pytest.raises(ValueError, match="not a column of EDM Table 1"):
        numeric.table1("ddpm")
    with pytest.raises(ValueError, match="integer >= 2"):
        numeric.sigma_steps("edm", 1)
    with pytest.raises(ValueError, match="no closed-form time steps"):
        numeric.sigma_steps("iddpm", 5, "edm")
    with pytest.raises(ValueError, match="no Markovian discrete chain"):
        numeric.chain_schedule("ddim")
    with pytest.raises(ValueError, match="unknown parameter"):
        numeric.process("vp", beta_max=20.0)
