"""One formula, one place: no re-definition of the bridge's, the conversions layer's or the chain's names.

The test reads the package's code with strings and comments blanked out (a docstring may
quote a formula; code may not re-type it) and fails listing ``file:line`` for

* a ``def`` of a name whose home is another module (``append_dims``, ``vp_sigma``, ...);
* a formula pattern outside its home (the per-sample reshape, sigma from alpha_bar, the score
  or epsilon from D, the respacing linspace);
* a paper constant typed as a number outside ``diffnotes/constants.py``.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffnotes"

# name -> the one module (relative to src/diffnotes) where it may be defined
HOMES = {
    **{name: "parameterization.py" for name in (
        "append_dims", "eps_to_denoiser", "denoiser_to_eps", "v_to_denoiser", "denoiser_to_v",
        "score_to_denoiser", "denoiser_to_score", "vp_scale")},
    **{name: "theory/numeric.py" for name in (
        "vp_sigma", "vp_sigma_inv", "table1", "sigma_steps", "chain_schedule", "chain_betas")},
    **{name: "chain.py" for name in (
        "sigma_from_alpha_bar", "respace_steps", "gaussian_kl", "prior_kl", "gaussian_nll",
        "discretized_gaussian_nll", "bound_terms", "random_steps", "check_steps", "sum_dims",
        "to_bits_per_dim", "q_sample", "posterior", "prior_term", "std_normal_cdf", "at", "per_sample",
        "bcast", "as_sigma", "ladder", "vp_process", "vp_theory", "numeric")},
}

# (what, regex on code, modules where it may appear); theory/ is the SymPy source of formulas
PATTERNS = [
    ("per-sample broadcast reshape", r"\.(reshape|view)\(\s*-1\s*,\s*\*\s*\(?\[\s*1\s*\]", {"parameterization.py"}),
    ("per-sample broadcast shape", r"\(\s*1\s*,\s*\)\s*\*\s*\(\s*\w+\.ndim\s*-\s*1\s*\)", {"parameterization.py"}),
    ("sigma from alpha_bar", r"\(\s*1\s*-\s*(alpha_bar|ab|abar)\s*\)\s*/\s*(alpha_bar|ab|abar)\b",
     {"chain.py", "theory/"}),
    ("score from D", r"\(\s*(denoised|D|d|x0_hat)\s*-\s*x\w*\s*\)\s*/\s*\(?\s*sigma\w*\s*\*\*\s*2",
     {"parameterization.py", "theory/"}),
    ("eps from D", r"\(\s*x\w*\s*-\s*(denoised|D|x0_hat)\s*\)\s*/\s*sigma\b", {"parameterization.py", "theory/"}),
    ("Tweedie D from the score", r"\+\s*\w+\s*\*\*\s*2\s*\*\s*(self\.)?score\b", {"parameterization.py", "theory/"}),
    ("timestep respacing", r"linspace\(\s*T\s*-\s*1\s*,\s*0\b", {"chain.py"}),
    ("alpha_bar as a cumulative product", r"cumprod\(", {"chain.py", "theory/processes.py"}),
    ("a second SymPy-to-torch bridge", r"\bget_process\(|\blambdify\(", {"theory/"}),
]

# distinctive paper constants (values no other setting of the package shares)
CONSTANTS = {19.9: "VP_BETA_D", 13.3: "VDM_GAMMA_MIN", 0.008: "IDDPM_C2", 80.0: "EDM_SIGMA_MAX",
             2e-5: "NCSN_EPSILON"}
# the engine modules that must take every paper number from diffnotes.constants
STRICT = ("precond.py", "chain.py", "theory/numeric.py", "methods/edm.py", "methods/score_sde.py",
          "methods/ncsn.py", "methods/ddpm.py")
STRICT_CONSTANTS = {0.1, 1e-5, 1e-3, 1e-4, 0.02, 0.002, 100.0, 50.0, 0.01, 1.2, 7.0, 1000.0, 0.999}
# Known, reported exceptions: (module, value) -> why. Keep this short; each one is a to-do.
EXEMPT = {
    ("theory/proofs/processes_proofs.py", 0.008): "iddpm_chain_u's defaults (the proofs' owner; to import "
                                                  "diffnotes.constants)",
}


def _code_lines(path: Path) -> list[str]:
    """The file's lines with every string and comment token replaced by spaces."""
    source = path.read_text()
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.STRING, tokenize.COMMENT):
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for row in range(r0, r1 + 1):
            line = lines[row - 1]
            start = c0 if row == r0 else 0
            end = c1 if row == r1 else len(line)
            lines[row - 1] = line[:start] + " " * (end - start) + line[end:]
    return lines


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def _allowed(rel: str, homes) -> bool:
    return any(rel == h or (h.endswith("/") and rel.startswith(h)) for h in homes)


def test_no_name_is_defined_outside_its_home():
    # The SymPy layer (theory/, but for the bridge) writes the symbolic originals of these names
    # (e.g. the proofs' gaussian_kl); the engine's numeric twins are what may not be written twice.
    pattern = re.compile(r"^\s*def\s+_?(" + "|".join(map(re.escape, HOMES)) + r")\s*\(")
    found = []
    for rel, path in _modules():
        if rel.startswith("theory/") and rel != "theory/numeric.py":
            continue
        for lineno, line in enumerate(_code_lines(path), 1):
            m = pattern.match(line)
            if m and rel != HOMES[m.group(1)]:
                found.append(f"{rel}:{lineno}: def {m.group(1)} (its home is {HOMES[m.group(1)]})")
    assert not found, "re-definitions:\n" + "\n".join(found)


@pytest.mark.parametrize("what, regex, homes", PATTERNS, ids=[p[0] for p in PATTERNS])
def test_no_formula_is_typed_twice(what, regex, homes):
    pattern = re.compile(regex)
    found = [f"{rel}:{lineno}: {line.strip()}" for rel, path in _modules() if not _allowed(rel, homes)
             for lineno, line in enumerate(_code_lines(path), 1) if pattern.search(line)]
    assert not found, f"{what} outside {sorted(homes)}:\n" + "\n".join(found)


def _numbers(path: Path):
    source = path.read_text()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NUMBER:
            try:
                yield tok.start[0], float(tok.string.replace("_", ""))
            except ValueError:  # complex literals
                continue


def test_paper_constants_are_written_once():
    found = []
    for rel, path in _modules():
        if rel == "constants.py":
            continue
        strict = rel in STRICT
        for lineno, value in _numbers(path):
            if (rel, value) in EXEMPT:
                continue
            if value in CONSTANTS:
                found.append(f"{rel}:{lineno}: {value} (use diffnotes.constants.{CONSTANTS[value]})")
            elif strict and value in STRICT_CONSTANTS:
                found.append(f"{rel}:{lineno}: {value} (a paper number: import it from diffnotes.constants)")
    assert not found, "paper constants typed again:\n" + "\n".join(found)


def test_the_checks_see_a_copy(tmp_path):
    # the scanner itself: a copy in code is found, the same text in a docstring or comment is not
    copy = tmp_path / "copy.py"
    copy.write_text('"""sigma = sqrt((1 - alpha_bar) / alpha_bar)."""\n'
                    "# score = (denoised - x) / sigma**2\n"
                    "s = ((1 - alpha_bar) / alpha_bar).sqrt()\n"
                    "v = value.reshape(-1, *([1] * (x.ndim - 1)))\n"
                    "beta_d = 19.9\n")
    lines = _code_lines(copy)
    hits = [i for i, line in enumerate(lines, 1) for _, regex, _ in PATTERNS if re.search(regex, line)]
    assert hits == [3, 4]
    assert [value for _, value in _numbers(copy) if value in CONSTANTS] == [19.9]
