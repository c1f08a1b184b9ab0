"""The Gotta Go Fast derivations verify, and each fails when it states something false."""

from __future__ import annotations

import sympy as sp

from diffnotes.theory.proofs import adaptive_proofs, get_proof


def test_every_adaptive_proof_verifies_and_is_registered():
    for proof in adaptive_proofs.PROOFS:
        assert proof.verify(), proof.result.residual
        assert get_proof(proof.name) is not None


def test_the_checks_fail_on_wrong_statements():
    assert not adaptive_proofs.local_error_check(heun_weight=sp.Rational(1, 3)).ok
    assert not adaptive_proofs.controller_check(claimed_slope_sign=-1).ok
    assert not adaptive_proofs.scale_invariance_check(scaled=False).ok


def test_scale_invariance_needs_eps_abs_in_the_data_units():
    # the strengthened check works on E itself: with eps_abs not rescaled, invariance is false
    assert adaptive_proofs.scale_invariance_check().ok
    assert not adaptive_proofs.scale_invariance_check(scale_abs=False).ok
