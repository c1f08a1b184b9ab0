"""The LaTeX every proof hands to the book is what its author wrote: no control characters (a
"\\frac" typed in a plain string becomes a form feed, which MathJax cannot typeset) and no SymPy
re-reading of symbol names that are already LaTeX."""

import sympy as sp

from diffnotes.theory.proofs import all_proofs
from diffnotes.theory.proofs.base import _raw_names


def test_no_control_characters_in_any_proof_latex():
    bad = []
    for proof in all_proofs():
        for text in [proof.statement] + [t for step in proof.steps_latex() for t in step]:
            if any(ord(c) < 32 and c not in "\n\t" for c in text):
                bad.append((proof.name, text[:60]))
    assert not bad, f"control characters in proof LaTeX: {bad}"


def test_latex_symbol_names_print_verbatim():
    lhs, rhs = sp.Symbol(r"\frac{d}{dt}(s^2\sigma^2)"), sp.Symbol(r"2fs^2\sigma^2 + g^2")
    eq = sp.Eq(lhs, rhs)
    assert sp.latex(eq, symbol_names=_raw_names(eq)) == r"\frac{d}{dt}(s^2\sigma^2) = 2fs^2\sigma^2 + g^2"
    plain = sp.Symbol("beta_min")
    assert _raw_names(plain + 1) == {}
