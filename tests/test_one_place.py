"""One formula, one place: no re-definition of the bridge's, the conversions layer's or the chain's names.

The test reads the package's code with strings and comments blanked out (a docstring may
quote a formula; code may not re-type it) and fails listing ``file:line`` for

* a ``def`` of a name whose home is another module (``append_dims``, ``vp_sigma``, ...);
* a formula or a definition outside its home (``PATTERNS``: the per-sample reshape, sigma from
  alpha_bar, the score or epsilon from D, the respacing linspace, the per-step bound term, the
  DDPM-to-EDM coordinate change, the log-uniform sigma draw, the block low-pass, EDM's loss
  weight, the backbones, the small U-Net builder, the training recipes, the proof helpers, the
  held-out denoising error, the engine's way to the theory's processes);
* ``SOLVERS`` assigned more than once, and a ``def mean(``, ``def digits_unet(`` or
  ``def identity(`` in a notebook's code cell;
* a paper constant typed as a number outside ``diffnotes/constants.py``.

Every repetition issue 24 found is covered; a check for a repetition that is still present
goes in as ``pytest.mark.xfail(strict=True)`` naming it, so it fails the run once it is gone.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import json

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "diffnotes"
NOTEBOOKS = PACKAGE.parents[1] / "notebooks"

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
    # issue 24: the discrete chain, losses and operators written again
    ("per-step bound term (the KL with var_q clamped)", r"clamp_min\(\s*1e-30\s*\)", {"chain.py"}),
    ("DDPM-to-EDM coordinate change x_t / sqrt(alpha_bar)",
     r"/\s*(float\(\s*)?[\w.]*(alpha_bar|abar)\w*(\[[^\]]*\])?\.sqrt\(\)"
     r"|/\s*gather\([^)]*alpha_bar[^)]*\)\.sqrt\(\)", {"chain.py", "theory/"}),
    ("log-uniform sigma draw", r"\(\s*\w*sigma_max\w*\s*/\s*\w*sigma_min\w*\s*\)\s*\*\*", {"theory/"}),
    ("block low-pass (average pooling)", r"\bavg_pool2d\(", {"degradations.py"}),
    ("EDM's loss weight lambda(sigma)",
     r"\(\s*sigma\s*\*\*\s*2\s*\+\s*(self\.)?sigma_data\s*\*\*\s*2\s*\)\s*/\s*\(\s*sigma\s*\*\s*(self\.)?sigma_data\s*\)",
     {"methods/edm.py", "theory/"}),
    ("reverse-SDE drift f x - g^2 score", r"-\s*(append_dims\()?\s*g\w*\s*\*\*\s*2\W[^\n]*\*\s*score\b",
     {"methods/score_sde.py", "theory/"}),
    # issue 24: networks, builders and recipes each in one home
    ("a backbone class outside nets", r"^\s*class\s+(MLP|FlatMLP|VectorConditionedMLP|CodeConditionedMLP|UNet|ScoreNet)\b",
     {"nets.py"}),
    ("a small U-Net builder outside presets", r"^\s*def\s+(small_unet|small_unet_config|sr_unet|_small_unet)\s*\(",
     {"presets.py"}),
    ("a training recipe outside recipes",
     r"^\s*def\s+(fit_digits_denoiser|fit_noisy_classifier|train_unconditional|fit_in_stages)\s*\(", {"recipes.py"}),
    ("digits_denoiser, a name that meant two networks", r"^\s*def\s+digits_denoiser\s*\(", set()),
    ("held-out denoising error outside metrics",
     r"^\s*def\s+(denoising_error|denoising_mse|noisy_and_denoised)\s*\(", {"metrics.py"}),
    ("per-sample sigma expand by hand (use parameterization.append_dims)",
     r"\.(reshape|view)\(\s*-1\s*(,\s*1\s*){3}\)|\[\s*:\s*,\s*None\s*,\s*None\s*,\s*None\s*\]",
     {"parameterization.py"}),
    ("the engine reads the theory's processes around the bridge",
     r"from\s+(\.+|diffnotes\.)theory\.processes\s+import|from\s+(\.+|diffnotes\.)theory\s+import\s+processes",
     {"theory/"}),
]

# distinctive paper constants (values no other setting of the package shares)
CONSTANTS = {19.9: "VP_BETA_D", 13.3: "VDM_GAMMA_MIN", 0.008: "IDDPM_C2", 80.0: "EDM_SIGMA_MAX",
             2e-5: "NCSN_EPSILON"}
# the engine modules that must take every paper number from diffnotes.constants
STRICT = ("precond.py", "chain.py", "theory/numeric.py", "methods/edm.py", "methods/score_sde.py",
          "methods/ncsn.py", "methods/ddpm.py")
STRICT_CONSTANTS = {0.1, 1e-5, 1e-3, 1e-4, 0.02, 0.002, 100.0, 50.0, 0.01, 1.2, 7.0, 1000.0, 0.999}
# Known, reported exceptions: (module, value) -> why. Keep this short; each one is a to-do.
EXEMPT: dict = {}


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


def _pattern_id(entry) -> str:
    return (entry.values if hasattr(entry, "values") else entry)[0]


def _plain(entry):
    return entry.values if hasattr(entry, "values") else entry


@pytest.mark.parametrize("what, regex, homes", PATTERNS, ids=[_pattern_id(p) for p in PATTERNS])
def test_no_formula_is_typed_twice(what, regex, homes):
    pattern = re.compile(regex)
    found = [f"{rel}:{lineno}: {line.strip()}" for rel, path in _modules() if not _allowed(rel, homes)
             for lineno, line in enumerate(_code_lines(path), 1) if pattern.search(line)]
    assert not found, f"{what} outside {sorted(homes)}:\n" + "\n".join(found)


def test_proof_helpers_live_in_base():
    """``combine`` and the zero checks are ``theory/proofs/base.py``'s; no proof module copies one."""
    pattern = re.compile(r"^\s*def\s+_?(combine|zero|all_zero|rational_zero|symbolic_zero|cancelled)\s*\(")
    found = [f"{rel}:{lineno}: {line.strip()}" for rel, path in _modules()
             if rel.startswith("theory/proofs/") and rel != "theory/proofs/base.py"
             for lineno, line in enumerate(_code_lines(path), 1) if pattern.match(line)]
    assert not found, "proof helpers copied (use theory/proofs/base.py):\n" + "\n".join(found)


def test_solvers_are_listed_once():
    """``SOLVERS`` is assigned in one place (a second assignment hides which solvers the first knew)."""
    found = [f"{rel}:{lineno}" for rel, path in _modules()
             for lineno, line in enumerate(_code_lines(path), 1) if re.match(r"^\s*SOLVERS\s*=", line)]
    assert len(found) <= 1, "SOLVERS assigned more than once: " + ", ".join(found)


def _notebook_code(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c.get("cell_type") == "code"]


def test_notebooks_define_no_mean_of_their_own():
    """Notebook helpers live in the package: no notebook writes ``def mean(`` again."""
    found = [path.name for path in sorted(NOTEBOOKS.glob("*.ipynb"))
             if any(re.search(r"^\s*def\s+mean\s*\(", code, flags=re.M) for code in _notebook_code(path))]
    assert not found, f"notebooks defining mean(): {found}"


def test_notebooks_share_their_model_helpers():
    """The digits U-Net builder and the identity denoiser several notebooks use come from the
    package, not from a ``def`` in each notebook."""
    found = [path.name for path in sorted(NOTEBOOKS.glob("*.ipynb"))
             if any(re.search(r"^\s*def\s+(digits_unet|identity)\s*\(", code, flags=re.M)
                    for code in _notebook_code(path))]
    assert not found, f"notebooks defining digits_unet() or identity(): {found}"


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
    hits = [i for i, line in enumerate(lines, 1) for _, regex, _ in map(_plain, PATTERNS) if re.search(regex, line)]
    assert hits == [3, 4]
    assert [value for _, value in _numbers(copy) if value in CONSTANTS] == [19.9]


@pytest.mark.parametrize("line, what", [
    ("kl = gaussian_kl(m, var_q.clamp_min(1e-30), mp, vp)", "per-step bound term"),
    ("x = x_t / float(chain.alpha_bar[step - 1].sqrt())", "DDPM-to-EDM coordinate change"),
    ("x = x_t / alpha_bar.sqrt()", "DDPM-to-EDM coordinate change"),
    ("sigma = sigma_min * (sigma_max / sigma_min) ** u", "log-uniform sigma draw"),
    ("low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2)", "block low-pass"),
    ("w = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2", "EDM's loss weight"),
    ("drift = f * x - g ** 2 * score", "reverse-SDE drift"),
    ("drift = append_dims(f, x) * x - append_dims(g**2, x) * score", "reverse-SDE drift"),
    ("class ScoreNet(nn.Module):", "a backbone class"),
    ("def sr_unet(resolution):", "a small U-Net builder"),
    ("def train_unconditional(images, steps):", "a training recipe"),
    ("def digits_denoiser(seed):", "digits_denoiser"),
    ("def denoising_mse(model, x0, sigma):", "held-out denoising error"),
    ("x = x0 + n * sigma.reshape(-1, 1, 1, 1)", "per-sample sigma expand"),
    ("from .theory.processes import ddpm_alpha_bar", "the engine reads the theory's processes"),
])
def test_the_new_patterns_see_their_copy(line, what):
    """Each pattern issue 24 added finds the copy it is for (and the code it must let be does not match)."""
    hits = [name for name, regex, _ in map(_plain, PATTERNS) if re.search(regex, line)]
    assert [h for h in hits if h.startswith(what)], f"{what!r} does not match {line!r} (hits: {hits})"


def test_the_new_patterns_leave_other_code_alone():
    innocent = ["c = ((bb * ab_prev / ab).sqrt() - k) ** 2",  # Analytic-DPM's variance, not a coordinate change
                "pooled = F.adaptive_avg_pool2d(images, 8)",
                "return (x + scale**2 * sigma**2 * score) / scale",
                "x = x0 + n * append_dims(sigma, x0)",
                "from .theory.numeric import vp_sigma"]
    hits = [(line, name) for line in innocent for name, regex, _ in map(_plain, PATTERNS) if re.search(regex, line)]
    assert not hits, hits


# Issue 24: the digits report's summary line and the labelled image row are one call each
# (DigitsReport.summary / DigitsReport.summarize, plotting.image_rows); a notebook that writes
# either by hand again fails. Each regex runs on a notebook's code cells as written (the
# summaries are f-strings, so strings are not blanked here).
NOTEBOOK_PATTERNS = [
    ("a digits report's summary printed by hand (use DigitsReport.summary or .summarize)",
     r"KD x 1000[^\"'{\n]*\{[^}\n]*\bkd\s*[(\[]|\{[^}\n]*\.(?:kd|fd|precision|recall)\b"),
    ("a labelled image row built by hand (use plotting.image_rows)",
     r"show_images\((?:[^()]|\([^()]*\))*\bax\s*=|axes\[\s*\w+\s*,\s*\w+\s*\]\.imshow\("),
]


@pytest.mark.parametrize("what, regex", NOTEBOOK_PATTERNS, ids=[w for w, _ in NOTEBOOK_PATTERNS])
def test_notebooks_use_the_shared_summary_and_image_rows(what, regex):
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert paths, f"no notebooks under {NOTEBOOKS}: nothing was checked"
    found = [f"{path.name}: {m.group(0)[:60]!r}" for path in paths
             for code in _notebook_code(path) for m in re.finditer(regex, code)]
    assert not found, f"{what}:\n" + "\n".join(found)


@pytest.mark.parametrize("code, hit", [
    ('print(f"real band: precision {band.precision:.3f}, recall {band.recall:.3f}")', 0),
    ('print(f"KD x 1000 {fmt_mean_se([1e3 * r.kd for r in reports])}")', 0),
    ('print(f"{arm}: KD x 1000 {fmt_mean_se(kd[arm])}")', 0),
    ('print(f"p = {p}: KD x 1000 {fmt_mean_se(kd(reports[p]))}")', 0),
    ("for ax, s in zip(axes, SCALES):\n    show_images(xs[s], cols=5, ax=ax, title=f\"s = {s}\")", 1),
    ("show_images(p_shown[4][0], ax=axes[0], cols=3 * K)", 1),
    ("        axes[r, c].imshow(img, interpolation=\"nearest\")", 1),
    ('print("real band: " + band.summary(("precision", "recall", "kd")))', None),
    ('print(f"{name}: " + DigitsReport.summarize(reps, fmt_mean_se))', None),
    ('image_rows({f"s = {s:g}": xs[s][:20] for s in SCALES}, cols=5)', None),
    ('show_images(grid, title="top row: source", cols=8)', None),
    ('print(f"{arm}: accuracy {fmt_mean_se(acc)}, KD x 1000 {fmt_mean_se(per_scale(t, \'kd\', [a])[0])}")',
     None),
])
def test_the_notebook_patterns_see_their_copy(code, hit):
    """Each pattern finds the hand-written copies it is for, and lets the package's calls be."""
    hits = [i for i, (_, regex) in enumerate(NOTEBOOK_PATTERNS) if re.search(regex, code)]
    assert hits == ([] if hit is None else [hit]), (code, hits)
