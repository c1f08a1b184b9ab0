"""The chapter derivations (diffnotes.theory.proofs.derivations) verify, and fail when their
statement is made false: a sign flip, a wrong power, a dropped term."""

import pytest
import sympy as sp

from diffnotes.theory.proofs import derivations as D
from diffnotes.theory.proofs import get_proof

NAMES = [p.name for p in D.PROOFS]
# the eleven chapters of part 1 (the papers of the notes' main line)
PART1 = ("hyvarinen2005estimation", "vincent2011connection", "song2019sliced", "sohldickstein2015deep",
         "kingma2014auto", "song2019generative", "ho2020denoising", "song2021denoising", "nichol2021improved",
         "song2021score", "karras2022elucidating")


@pytest.mark.parametrize("name", NAMES)
def test_derivation_verifies_through_the_registry(name):
    proof = get_proof(name)
    assert proof.verify(), proof.result.residual
    assert proof.result.method == "symbolic"


def test_by_parts_fails_with_the_wrong_sign():
    assert not D.score_matching_by_parts(sign=-1).ok


def test_sliced_needs_unit_covariance_projections():
    assert not D.sliced_trace_identity(v_scale=2).ok


def test_bound_fails_with_flipped_entropies():
    assert not D.bound_decomposition_check(entropy_sign=-1).ok


def test_elbo_gap_must_be_added_not_subtracted():
    assert not D.elbo_gap_check(gap_sign=-1).ok


def test_langevin_step_size_only_at_sigma_squared():
    assert not D.langevin_check(power=1).ok
    assert not D.langevin_check(power=3).ok


def test_ddpm_weight_has_beta_squared():
    assert not D.ddpm_posterior_check(weight_power=1).ok


def test_ddim_lemma_needs_the_added_noise():
    assert not D.ddim_marginal_check(drop_sigma=True).ok


def test_change_of_variables_sign():
    assert not D.change_of_variables_check(div_sign=-1).ok


def test_edm_langevin_needs_sqrt_2_beta():
    assert not D.edm_sde_check(langevin_factor=1).ok


def test_rho_limit_is_geometric_not_uniform():
    assert not D.karras_rho_check(rho_limit=False).ok


def test_every_paper_chapter_shows_a_checked_derivation():
    """Each part-1 chapter calls show_proof (or glues a proof statement) for a registered proof."""
    import re
    from pathlib import Path

    from diffnotes.theory.proofs import all_proofs

    names = {p.name for p in all_proofs()}
    papers = Path(__file__).resolve().parents[1] / "book" / "papers"
    chapters = [papers / f"{key}.md" for key in PART1]
    for chapter in chapters:
        text = chapter.read_text(encoding="utf-8")
        shown = set(re.findall(r"show_proof\(\"([a-z0-9_]+)\"\)", text))
        shown |= set(re.findall(r"get_proof\(\"([a-z0-9_]+)\"\)", text))
        assert shown & names, f"{chapter.name} displays no checked derivation"
        assert not shown - names, f"{chapter.name} names unknown proofs: {shown - names}"


def test_diffusion_compression_rate_proves_the_joint_law_and_the_step_cost():
    """The strengthened Theis 2022 proof: the sender's pair (x_t, x_{t-1}) has the forward joint
    law and the expected KL of step t is the bound's term; a wrong covariance or a step cost
    that is not L_{t-1} (twice it) must fail, as must a wrong posterior variance."""
    from diffnotes.theory.proofs import compression_proofs as C

    assert C.posterior_chain_check().ok
    assert not C.posterior_chain_check(cov_factor=2).ok
    assert not C.posterior_chain_check(kl_weight=2).ok
    assert not C.posterior_chain_check(variance_factor=2).ok
    assert get_proof("diffusion_compression_rate").verify()
