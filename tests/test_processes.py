"""The forward processes of diffnotes.theory: consistency, papers' defaults, numerics, proofs."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from diffnotes.theory import PROCESS_NAMES, get_process
from diffnotes.theory.processes import SIGMA, ddpm_alpha_bar, iddpm_u, t
from diffnotes.theory.proofs.base import Proof, ProofResult, symbolic_zero
from diffnotes.theory.proofs.processes_proofs import GAPS, PROOFS

ALL = [(n, None) for n in PROCESS_NAMES] + [("ve", "edm"), ("iddpm", "edm")]
IDS = [f"{n}-{p}" if p else n for n, p in ALL]


def _zero(expr):
    res = symbolic_zero(expr)
    assert res.ok, res.residual


@pytest.mark.parametrize("name,par", ALL, ids=IDS)
def test_kernel_solves_the_sde_moment_odes(name, par):
    """Mean factor alpha solves alpha' = f alpha and variance std^2 solves V' = 2 f V + g^2,
    with each paper's own f and g where it writes them (so the kernel and the SDE agree)."""
    p = get_process(name, par)
    if name in ("ddpm", "iddpm"):
        # f, g are derived (log-gamma form; cos^2 whose square root SymPy will not resolve on
        # [0, 1]): check the identities at exact points in 60-digit arithmetic instead
        exact = {sym: sp.nsimplify(v) for sym, v in p.defaults.items()}  # no float folding
        for expr in (sp.diff(p.alpha, t) - p.f * p.alpha, sp.diff(p.std**2, t) - (2 * p.f * p.std**2 + p.g**2)):
            e = expr.subs(exact)
            for tv in (sp.Rational(1, 20), sp.Rational(3, 10), sp.Rational(77, 100)):
                assert abs(sp.N(e.subs(t, tv), 60)) < 1e-40
        return
    _zero(sp.diff(p.alpha, t) - p.f * p.alpha)
    _zero(sp.diff(p.std**2, t) - (2 * p.f * p.std**2 + p.g**2))


@pytest.mark.parametrize("name,par", ALL, ids=IDS)
def test_snr_marginal_and_kernel_score(name, par):
    p = get_process(name, par)
    _zero(p.alpha**2 / p.std**2 - p.snr)
    mu, c, x, x0 = sp.symbols("mu c x x_0", real=True)
    mean, var = p.marginal_gaussian(mu, c)
    _zero([mean - p.scale * mu, var - p.scale**2 * (c**2 + p.sigma**2)])
    # the kernel score is the gradient of the Gaussian log density
    logpdf = -((x - p.alpha * x0) ** 2) / (2 * p.std**2)
    _zero(sp.diff(logpdf, x) - p.kernel_score(x, x0))


def test_papers_defaults():
    d = lambda name, par=None: {str(k): v for k, v in get_process(name, par).defaults.items()}  # noqa: E731
    assert d("ddpm") == {"beta_1": 1e-4, "beta_N": 0.02, "N": 1000}  # Ho et al. 2020, Sec. 4
    assert d("smld") == {"sigma_min": 0.01, "sigma_max": 1.0, "L": 10}  # Song & Ermon 2019, Sec. 5
    assert d("ve") == {"sigma_min": 0.01, "sigma_max": 50.0}  # Score SDE code, CIFAR-10 VE
    assert d("ve", "edm") == {"sigma_min": 0.02, "sigma_max": 100.0}  # EDM Table 1
    vp = d("vp")
    assert (vp["beta_min"], vp["beta_d"], vp["beta_min"] + vp["beta_d"]) == (0.1, 19.9, 20.0)
    assert (vp["epsilon_s"], vp["epsilon_t"], vp["M"]) == (1e-3, 1e-5, 1000)
    assert d("iddpm") == {"C_1": 0.001, "C_2": 0.008, "M": 1000}
    assert d("iddpm", "edm")["j_0"] == 8
    assert d("edm") == {"sigma_min": 0.002, "sigma_max": 80.0, "rho": 7, "sigma_data": 0.5, "P_mean": -1.2, "P_std": 1.2}
    assert d("vdm") == {"gamma_min": -13.3, "gamma_max": 5.0}
    assert get_process("vdm").learned and not get_process("vp").learned


def test_ddpm_closed_form_matches_the_chain():
    """The log-gamma form of alpha_bar equals DDPM's cumprod, and its Product display at integers."""
    p = get_process("ddpm")
    num = p.lambdify()
    ab = ddpm_alpha_bar()
    i = np.arange(1, 1001)
    # float64 log-gamma differences of numbers near 5e4 cost ~1e-10 absolute (documented in lambdify)
    np.testing.assert_allclose(num.scale(i / 1000) ** 2, ab[1:], rtol=1e-8, atol=5e-10)
    np.testing.assert_allclose(num.std(i / 1000) ** 2, 1 - ab[1:], rtol=1e-8, atol=5e-10)
    # the chain's schedule values are DDPM's linspace, and the Product shown in the book agrees
    np.testing.assert_allclose(p.chain.values(p.params), np.linspace(1e-4, 0.02, 1000))
    (fn, shown), = p.aux_display.items()
    prod = p.subs(shown.rhs).subs(t, sp.Rational(7, 1000)).doit()
    assert abs(float(prod) - ab[7]) < 1e-12


def test_smld_chain_values_and_iddpm_u():
    p = get_process("smld")
    np.testing.assert_allclose(p.chain.values(p.params), np.geomspace(0.01, 1.0, 10))
    u = iddpm_u()
    assert u[-1] == 0 and np.all(np.diff(u) < 0)
    # EDM Table 1's j_0 = 8 is the first index with u_j <= 81 (the sigma_max of EDM's iDDPM sampling)
    assert int(np.argmax(u <= 81)) == get_process("iddpm", "edm").defaults[sp.Symbol("j_0", positive=True)]
    # unclipped, the discrete u_j are the continuous cosine sigma at t = 1 - j / M
    cos = get_process("iddpm").lambdify()
    j = np.arange(1, 1000)
    np.testing.assert_allclose(u[j], cos.sigma(1 - j / 1000), rtol=1e-9)


@pytest.mark.parametrize("name,par", ALL, ids=IDS)
def test_lambdified_numerics_equal_sympy(name, par):
    p = get_process(name, par)
    rng = np.random.default_rng(0)
    lo, hi = p.numeric_t_range()
    ts = rng.uniform(lo, hi, 4)
    num, tor = p.lambdify("numpy"), p.lambdify("torch")
    for key in ("sigma", "scale", "snr", "f", "g"):
        expr = p.subs(getattr(p, key))
        want = np.array([float(sp.N(expr.subs(t, tv), 30)) for tv in ts])
        np.testing.assert_allclose(getattr(num, key)(ts), want, rtol=1e-7, err_msg=key)
        got_t = getattr(tor, key)(torch.tensor(ts, dtype=torch.float64))
        assert got_t.dtype == torch.float64 and got_t.shape == (4,)
        np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-7, err_msg=f"torch {key}")
    if num.sigma_inv is not None:
        np.testing.assert_allclose(num.sigma_inv(num.sigma(ts)), ts, rtol=1e-8)
        sig = float(sp.N(p.subs(p.sigma).subs(t, ts[0])))
        assert abs(float(sp.N(p.subs(p.sigma_inv).subs(SIGMA, sig))) - ts[0]) < 1e-8 * max(1, ts[0])


def test_torch_float32_keeps_dtype():
    vp = get_process("vp").lambdify("torch")
    out = vp.sigma(torch.tensor([0.1, 0.5]))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), get_process("vp").lambdify().sigma(np.array([0.1, 0.5])), rtol=1e-6)


def test_parameter_overrides():
    p = get_process("vp", beta_min=0.2)
    assert float(p.lambdify().sigma(np.array([0.0]))[0]) == 0.0
    sig = p.lambdify().sigma(np.array([0.5]))[0]
    assert abs(sig - np.sqrt(np.exp(0.2 * 0.5 + 19.9 * 0.25 / 2) - 1)) < 1e-12


def test_bad_input_errors():
    with pytest.raises(ValueError, match="valid names: smld, ddpm, ve, vp, subvp, ddim, iddpm, edm, vdm"):
        get_process("ddpmm")
    with pytest.raises(ValueError, match="valid: scoresde, edm"):
        get_process("ve", "karras")
    with pytest.raises(ValueError, match="valid: M, beta_d, beta_min, epsilon_s, epsilon_t"):
        get_process("vp", sigma_max=3)
    with pytest.raises(ValueError, match="only applies to 'vdm'"):
        get_process("vp", gamma=t)
    with pytest.raises(ValueError, match="valid: 'numpy', 'torch'"):
        get_process("edm").lambdify("jax")


def test_ve_parameterizations_are_one_sde_in_sigma():
    """Score SDE's VE and EDM's VE differ only in how t maps to sigma: g^2 dt = d(sigma^2)."""
    for par in ("scoresde", "edm"):
        p = get_process("ve", par)
        _zero(p.g**2 - sp.diff(p.sigma**2, t))


# Proofs with a numeric part by design: iDDPM's clipped recursion is also compared with the chain
# accumulated in 30-digit arithmetic (issue 12); every other process proof is symbolic throughout.
NUMERIC_PARTS = {"iddpm_cosine_schedule"}


@pytest.mark.parametrize("proof", PROOFS, ids=[p.name for p in PROOFS])
def test_every_process_proof_verifies(proof):
    assert proof.verify(), proof.result.residual
    assert proof.result.method == ("numeric" if proof.name in NUMERIC_PARTS else "symbolic")
    assert proof.statement and proof.title and proof.name == proof.name.lower()


def test_broken_proof_fails_with_residual():
    """A wrong claim (sub-VP's variance above VP's; DDPM's ᾱ equal to VP's at finite N) must fail."""
    vp, sub = get_process("vp"), get_process("subvp")
    broken = Proof(name="broken", title="wrong", statement="wrong", steps=[],
                   check=lambda: symbolic_zero(vp.std**2 - sub.std**2))
    assert broken.verify() is False
    assert broken.result.residual != "0" and "exp" in broken.result.residual


def test_gaps_are_measured():
    assert 1e-4 < GAPS["ddpm_vp_alpha_bar_gap"] < 1e-2
    assert 0 < GAPS["ddpm_vp_log_sigma_gap"] < 0.1
    assert GAPS["iddpm_log_sigma_gap"] < 1e-9  # identical except the clipped last step
    assert np.isfinite(GAPS["iddpm_u0"]) and GAPS["iddpm_u0"] > GAPS["iddpm_sigma_cos_at_t_999"]


def test_registry_sees_the_process_proofs():
    from diffnotes.theory.proofs import get_proof

    for p in PROOFS:
        assert get_proof(p.name).statement == p.statement
    assert isinstance(PROOFS[0].check(), ProofResult)
