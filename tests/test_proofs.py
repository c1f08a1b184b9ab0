"""Every proof verifies; a broken one fails with its residual; the registry and run_all behave."""


import mpmath
import pytest
import sympy as sp

from diffnotes.theory import proofs as P
from diffnotes.theory.proofs import score_proofs as S
from diffnotes.theory.proofs.base import (
    Proof, ProofResult, cancelled, combine, numeric_check, rational_zero, symbolic_zero,
)

NAMES = [p.name for p in P.all_proofs()]


@pytest.mark.parametrize("name", NAMES)
def test_every_proof_verifies(name):
    proof = P.get_proof(name)
    assert proof.verify(), f"{name}: residual {proof.result.residual}"
    assert proof.result.ok and proof.result.residual == "0"
    assert proof.statement and proof.title and proof.steps
    assert all(isinstance(text, str) for text, _ in proof.steps_latex())


def test_score_proofs_are_registered():
    for name in ("kernel_score", "parameterization_conversions", "v_parameterization", "tweedie_scaled",
                 "fokker_planck_gaussian", "reverse_sde_anderson", "dsm_equals_esm", "analytic_dpm_variance"):
        assert name in NAMES
    assert len(NAMES) == len(set(NAMES))


def test_unknown_name_is_a_value_error_listing_names():
    with pytest.raises(ValueError, match="unknown proof 'nope'; valid names: .*tweedie_scaled"):
        P.get_proof("nope")


def test_broken_proof_fails_with_residual(capsys):
    x = sp.Symbol("x")
    broken = Proof("broken", "a false identity", r"(x+1)^2 = x^2 + 1", [("expand", (x + 1) ** 2)],
                   check=lambda: symbolic_zero(sp.Eq((x + 1) ** 2, x**2 + 1)))
    good = Proof("good", "a true identity", r"(x+1)^2 = x^2+2x+1", [("expand", None)],
                 check=lambda: symbolic_zero((x + 1) ** 2 - x**2 - 2 * x - 1))
    assert not broken.verify() and broken.result.residual == "2*x"
    rc = P.run_all(proofs=[good, broken])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[0].startswith("  ok   good  (symbolic, ") and out[0].endswith("a true identity")
    assert out[1].startswith("  FAIL broken ") and out[1].endswith("residual: 2*x")
    assert out[-1] == "proofs: 1 verified, 1 failed"


def test_a_wrong_sde_is_caught():
    """The Fokker-Planck check is not vacuous: doubling g^2 leaves a residual for every process."""
    for label, mean, var, drift, g2, rules in S._gaussian_cases():
        assert S.fokker_planck_residual(mean, var, drift, g2, rules) == 0, label
        assert S.fokker_planck_residual(mean, var, drift, 2 * g2, rules) != 0, label
        assert S.reverse_fp_residual(mean, var, drift, 2 * g2, rules) != 0, label


def test_numeric_check():
    sampler = lambda rng: (rng.uniform(0.1, 3.0),)  # noqa: E731
    ok = numeric_check(lambda a: mpmath.sin(a) ** 2 + mpmath.cos(a) ** 2, lambda a: mpmath.mpf(1), sampler)
    assert ok == ProofResult(True, "numeric", "0")
    bad = numeric_check(lambda a: mpmath.sin(a), lambda a: a, sampler)
    assert not bad.ok and bad.method == "numeric" and float(bad.residual) > 1e-3
    with pytest.raises(ValueError, match="n >= 20"):
        numeric_check(lambda a: a, lambda a: a, sampler, n=5)
    with pytest.raises(ValueError, match="'symbolic' or 'numeric'"):
        ProofResult(True, "guess")


def test_run_all_by_name_ends_with_summary(capsys):
    rc = P.run_all(names=["kernel_score", "parameterization_conversions"], verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[-1] == "proofs: 2 verified, 0 failed"
    assert sum(line.startswith("  ok   ") for line in out) == 2


def test_cli_proofs_runs_run_all(capsys):
    from diffnotes.cli import main

    assert main(["proofs", "kernel_score"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "proofs: 1 verified, 0 failed"


def test_questions_page_links_only_existing_proofs():
    """book/questions.md: every {ref}`proof-X` and (proof-X)= label names a registered proof, and
    each labelled section pastes that proof's glued statement, status and steps."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "book" / "questions.md").read_text(encoding="utf-8")
    labels = re.findall(r"^\(proof-([A-Za-z0-9_]+)\)=$", page, flags=re.M)
    refs = set(re.findall(r"\{ref\}`proof-([A-Za-z0-9_]+)`", page))
    assert labels and len(labels) == len(set(labels))
    assert not (set(labels) | refs) - set(NAMES), "questions.md names proofs that do not exist"
    for name in labels:
        for key in (f"{{glue:math}} proof-{name}", f"{{glue:md}}`status-{name}`", f"{{glue:md}} steps-{name}"):
            assert key in page, key


def test_statements_have_no_run_together_spacing_macros():
    """'\\quad' glued to the next word ('\\quadx') is an unknown macro that MathJax shows in red."""
    import re

    from diffnotes.theory.proofs import all_proofs

    glued = [p.name for p in all_proofs() if re.search(r"\\q?quad[A-Za-z]", p.statement)]
    assert not glued, f"statements with a glued \\quad: {glued}"


def test_rational_zero_proves_true_identities_and_refuses_false_ones():
    """The one fast zero check every proof module uses: a false variant of each form fails."""
    x, y = sp.symbols("x y", positive=True)
    assert rational_zero(1 / (x + y) + y / (x * (x + y)) - 1 / x).ok
    assert not rational_zero(1 / (x + y) + y / (x * (x + y)) - 1 / y).ok
    assert rational_zero(sp.Eq((x + y) ** 2, x**2 + 2 * x * y + y**2)).ok
    false = rational_zero(sp.Eq((x + y) ** 2, x**2 + y**2))
    assert not false.ok and false.method == "symbolic" and false.residual == "2*x*y"
    matrix = sp.Matrix([[x / (x * y), 0], [0, (x**2 - y**2) / (x - y)]])
    assert rational_zero(matrix - sp.Matrix([[1 / y, 0], [0, x + y]])).ok
    assert not rational_zero(matrix - sp.Matrix([[1 / y, 0], [0, x - y]])).ok
    assert cancelled((x**2 - y**2) / (x - y)) == x + y


def test_rational_zero_slow_path_and_refutation():
    x = sp.Symbol("x", positive=True)
    trig = sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1  # not a rational identity: cancel leaves a rest
    assert not rational_zero(trig).ok and rational_zero(trig, slow=True).ok
    assert not rational_zero(trig + x, slow=True).ok  # the false variant fails on the slow path too
    refuted = rational_zero(trig + 1 / x, slow=True, refute_at=[x])
    assert not refuted.ok and " at {x: " in refuted.residual  # refuted at a random point, no algebra
    assert rational_zero(trig, slow=True, refute_at=[x]).ok


def test_combine_holds_only_when_every_part_holds():
    ok, bad = ProofResult(True, "symbolic"), ProofResult(False, "symbolic", "x")
    evidence = ProofResult(True, "numeric")
    assert combine(ok, ok) == ProofResult(True, "symbolic", "0")
    assert combine(ok, bad, ProofResult(False, "symbolic", "y")) == ProofResult(False, "symbolic", "x; y")
    assert combine(ok, evidence).method == "numeric" and combine(ok, evidence).ok


def test_no_proof_module_copies_the_shared_checks():
    """``combine`` and the zero checks live in base.py only (issue 24: they were copied)."""
    import re
    from pathlib import Path

    folder = Path(P.__file__).parent
    copies = [f"{f.name}:{i}" for f in sorted(folder.glob("*.py")) if f.name != "base.py"
              for i, line in enumerate(f.read_text().splitlines(), 1)
              if re.match(r"def _?(combine|zero|all_zero|cancelled|rational_zero)\(", line)]
    assert not copies, f"shared proof checks copied: {copies}"
