"""The LaTeX every proof hands to the book is what its author wrote: no control characters (a
"\\frac" typed in a plain string becomes a form feed, which MathJax cannot typeset) and no SymPy
re-reading of symbol names that are already LaTeX. The book's Markdown sources get the same
check, plus one for the trace such a character leaves once an editor turns it into a line
break ("\\rceil" written from a plain Python string became a line break followed by "ceil")."""

import re
from pathlib import Path

import sympy as sp

from diffnotes.theory.proofs import all_proofs
from diffnotes.theory.proofs.base import _raw_names


def test_no_control_characters_in_any_proof_latex():
    bad = []
    for proof in all_proofs():
        for text in [proof.statement] + [t for step in proof.steps_latex() for t in step]:
            if any(ord(c) < 32 for c in text):
                bad.append((proof.name, text[:60]))
    assert not bad, f"control characters in proof LaTeX: {bad}"


def test_latex_symbol_names_print_verbatim():
    lhs, rhs = sp.Symbol(r"\frac{d}{dt}(s^2\sigma^2)"), sp.Symbol(r"2fs^2\sigma^2 + g^2")
    eq = sp.Eq(lhs, rhs)
    assert sp.latex(eq, symbol_names=_raw_names(eq)) == r"\frac{d}{dt}(s^2\sigma^2) = 2fs^2\sigma^2 + g^2"
    plain = sp.Symbol("beta_min")
    assert _raw_names(plain + 1) == {}


BOOK = Path(__file__).resolve().parents[1] / "book"
# LaTeX delimiters that come in pairs; a macro whose backslash and first letter became a
# control character (\r, \t, \f, \b, \v) leaves an opening one without its partner
_PAIRS = [(r"\\lceil(?![A-Za-z])", r"\\rceil(?![A-Za-z])"),
          (r"\\lfloor(?![A-Za-z])", r"\\rfloor(?![A-Za-z])"),
          (r"\\left(?![A-Za-z])", r"\\right(?![A-Za-z])"),
          (r"\\begin\{", r"\\end\{")]


def _book_sources():
    files = sorted(f for f in BOOK.rglob("*.md") if "_build" not in f.parts)
    assert len(files) > 20, "the book's Markdown sources were not found"
    return files


def test_no_control_characters_in_book_markdown():
    bad = []
    for path in _book_sources():
        for number, line in enumerate(path.read_bytes().decode("utf-8").split("\n"), 1):
            if any(ord(c) < 32 for c in line):
                bad.append(f"{path.relative_to(BOOK)}:{number}: {line[:60]!r}")
    assert not bad, "control characters (\\r, \\t, \\f, \\b, \\v ...) in book sources:\n" + "\n".join(bad)


def test_latex_delimiters_pair_up_in_book_markdown():
    bad = []
    for path in _book_sources():
        text = path.read_text(encoding="utf-8")
        for opening, closing in _PAIRS:
            n_open, n_close = len(re.findall(opening, text)), len(re.findall(closing, text))
            if n_open != n_close:
                bad.append(f"{path.relative_to(BOOK)}: {n_open} x {opening} but {n_close} x {closing}")
    assert not bad, "unpaired LaTeX delimiters (a macro eaten by a control character?):\n" + "\n".join(bad)


def test_the_markdown_checks_catch_the_bug_they_are_for():
    """A carriage return where "\\r" of "\\rceil" stood, and the line break it became."""
    raw = "$2^{\\lceil k\rceil}$"  # not a raw string on purpose: \r is a carriage return
    assert any(ord(c) < 32 for c in raw)
    healed = raw.replace("\r", "\n")
    assert len(re.findall(_PAIRS[0][0], healed)) != len(re.findall(_PAIRS[0][1], healed))
