"""The ILVR and CCDF derivations verify, and fail when they state something false."""

import math

from diffnotes.theory.proofs import get_proof
from diffnotes.theory.proofs.inverse_proofs import (block_lowpass_matrix, ccdf_contraction_check,
                                                    gaussian_step_factor,
                                                    ilvr_projection_check)


def test_inverse_proofs_verify():
    for name in ("ilvr_projection", "ccdf_contraction"):
        assert get_proof(name).verify(), get_proof(name).result


def test_false_statements_fail():
    assert not ilvr_projection_check(2, offset=1).ok
    assert not ccdf_contraction_check(factor_scale=2).ok


def test_block_matrix_and_numeric_twin():
    phi = block_lowpass_matrix(3)
    assert phi.shape == (6, 6) and phi[0, 2] * 3 == 1 and phi[0, 3] == 0
    assert math.isclose(gaussian_step_factor(0.25, 1.0, 0.5), (0.25 + 0.25) / (0.25 + 1.0))


def test_ccdf_bound_needs_the_noise_term():
    """With independent noise the one-step identity has a 2 tau term: stating the shared-noise
    form (no noise term) for independent chains must fail, and so must a wrong factor."""
    assert not ccdf_contraction_check(noise_factor=0).ok
    assert not ccdf_contraction_check(noise_factor=1).ok
    assert ccdf_contraction_check().ok
