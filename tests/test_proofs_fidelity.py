"""The strengthened proofs of issue 12 fail when their statement is changed to something false.

Each test builds the same check a proof runs, with one deliberate error (a wrong constant, a
wrong exponent, a sign flip, the unclipped recursion where the clipped one is claimed), and
asserts that the check then fails; the true version passes.
"""

import sympy as sp

from diffnotes.theory.processes import beta_d, beta_min, t
from diffnotes.theory.proofs import get_proof
from diffnotes.theory.proofs import processes_proofs as PP
from diffnotes.theory.proofs import score_proofs as S


def test_log_remainder_bound_holds_only_where_it_is_true():
    assert PP.log_remainder_check().ok  # |log(1-x) + x| <= x^2 on [0, 1/2]
    assert not PP.log_remainder_check(c=sp.Rational(1, 4)).ok  # the series starts at x^2/2
    assert not PP.log_remainder_check(c=1, x_max=sp.Rational(3, 4)).ok  # 1 - 2x < 0 beyond 1/2


def test_smld_limit_is_a_limit_that_can_fail():
    from diffnotes.theory import get_process

    ve, smld = get_process("ve"), get_process("smld")
    assert PP.smld_step_variance_limit(smld.sigma, ve.g**2).ok
    assert not PP.smld_step_variance_limit(smld.sigma, ve.g**2 / 2).ok  # wrong diffusion
    assert not PP.smld_step_variance_limit(2 * smld.sigma, ve.g**2).ok  # a chain with other levels


def test_table1_sdes_are_checked_against_s_and_sigma():
    assert PP.table1_sde_check().ok
    wrong_edm = dict(PP.TABLE1_SDES, edm=(sp.Integer(0), t))  # g^2 = t instead of 2t
    assert not PP.table1_sde_check(wrong_edm).ok
    wrong_vp = dict(PP.TABLE1_SDES, vp=((beta_min + beta_d * t) / 2, beta_min + beta_d * t))  # sign flip in f
    assert not PP.table1_sde_check(wrong_vp).ok
    wrong_iddpm = dict(PP.TABLE1_SDES, iddpm=(sp.Integer(0), sp.Integer(1)))  # VE's g^2 in the iDDPM column
    assert not PP.table1_sde_check(wrong_iddpm).ok


def test_vdm_family_fails_with_a_wrong_sigma():
    assert PP.vdm_edm_check().ok
    assert not PP.vdm_edm_check(lambda g: sp.exp(g)).ok  # sigma = e^gamma instead of e^{gamma/2}
    assert not PP.vdm_edm_check(lambda g: sp.exp(-g / 2)).ok  # the SNR^{+1/2} by mistake


def test_iddpm_needs_the_clipped_recursion():
    assert PP.iddpm_recursion_check(clip=True).ok
    res = PP.iddpm_recursion_check(clip=False)
    assert not res.ok and "u_0" in res.residual
    u = PP.iddpm_chain_u()
    assert 2.0e4 < u[0] < 2.1e4 and u[-1] == 0.0


def test_forward_map_fails_with_a_wrong_exponent_or_sign():
    assert PP.forward_map_check().ok
    assert not PP.forward_map_check(power=1).ok  # sigma^2 = int g^2 / s
    assert not PP.forward_map_check(sign=-1).ok  # s = exp(-int f)


def test_forward_map_proof_is_registered_and_verifies():
    proof = get_proof("forward_map_sde_to_kernel")
    assert proof.verify(), proof.result.residual
    assert proof.result.method == "symbolic"


def test_dsm_cross_term_is_general_and_not_vacuous():
    assert S.dsm_cross_term_residual() == 0
    assert S.dsm_cross_term_residual(2) != 0
    assert S.dsm_cross_term_residual(-1) != 0


def test_reverse_proof_states_its_limit():
    proof = get_proof("reverse_sde_anderson")
    assert "Fokker-Planck" in proof.title
    assert "pathwise" in proof.statement


# --------------------------------------------------------------------------- issue 23: guidance


def test_guided_score_tilt_is_stated_for_any_density_and_fails_with_a_wrong_exponent():
    from diffnotes.theory.proofs import guidance_proofs as GP

    assert GP.tilt_linearity_check().ok  # generic P, C: linearity of the derivative
    res = GP.tilt_linearity_check(power=2)
    assert not res.ok and "s - 2" in res.residual


def test_tilted_family_is_a_heat_flow_only_at_scale_one():
    from diffnotes.theory.proofs import guidance_proofs as GP

    assert GP.tilt_heat_flow_check(1, claim_flow=True).ok
    assert GP.tilt_heat_flow_check(2, claim_flow=False).ok
    assert GP.tilt_heat_flow_check(0, claim_flow=True).ok  # s = 0 is p_sigma itself
    false = GP.tilt_heat_flow_check(2, claim_flow=True)  # "guidance samples p p(y|x)^2"
    assert not false.ok and "3.62" in false.residual  # the slope the proof's step quotes (3.6)
    assert not GP.tilt_heat_flow_check(1, claim_flow=False).ok
    proof = get_proof("guided_score_tilt")
    assert proof.verify(), proof.result.residual
    assert "not in general" in proof.statement


def test_cfg_implicit_classifier_needs_exact_scores():
    from diffnotes.theory.proofs import guidance_proofs as GP

    assert GP.cfg_gradient_field_check(0).ok
    assert GP.cfg_gradient_field_check(1).ok  # a rotational error: correctly no gradient
    false = GP.cfg_gradient_field_check(1, claim_gradient=True)  # "always a classifier's gradient"
    assert not false.ok and "-2/sigma" in false.residual
    proof = get_proof("cfg_implicit_classifier")
    assert proof.verify(), proof.result.residual
    assert "exact scores" in proof.title
