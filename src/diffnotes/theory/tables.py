"""The unified view's tables, built from the process objects as cells (no Markdown here).

* ``render_comparison``: the notes' comparison table completed (chain, kernel, marginal, SDE,
  PF-ODE, s(t), sigma(t) for every process), plus ``render_comparison_symbols`` with each row's
  short-hands, defaults and source;
* ``render_edm_table1``: Karras et al. (2022) Table 1 for VP, VE, iDDPM+DDIM and EDM.

Every formula comes from ``diffnotes.theory.processes`` through ``sympy.latex``, so the book shows
the expressions the proofs check. Each function returns ``(header, rows)``: every cell is a list
of parts, a part being Markdown text kept as it is (a ``str``), ``("math", tex)`` for an inline
formula or ``("prose", text)`` for text whose formulas sit between ``$`` signs. This layer writes
no Markdown: the book tooling escapes the parts and writes the files
(``diffnotes.markdown.parts_table``, registered in ``diffnotes.tables`` under the names of
``TABLES``), so the imports point from the tooling down to the theory. Included by
``book/unified-view.md``.
"""

from __future__ import annotations

import sympy as sp

from .processes import C_DATA, MU, SCORE, SIGMA, X, X0, get_process, t, tex

__all__ = ["TABLES", "render_comparison", "render_comparison_symbols", "render_edm_table1",
           "COMPARISON_ROWS", "TABLE1_COLUMNS"]

# (row label, process name, parameterization)
COMPARISON_ROWS = (
    ("SMLD", "smld", None), ("DDPM", "ddpm", None), ("VE-SDE", "ve", None), ("VP-SDE", "vp", None),
    ("sub-VP", "subvp", None), ("DDIM", "ddim", None), ("iDDPM", "iddpm", None), ("EDM", "edm", None),
    ("VDM", "vdm", None),
)
TABLE1_COLUMNS = (("VP", "vp", None), ("VE", "ve", "edm"), ("iDDPM + DDIM", "iddpm", "edm"), ("EDM", "edm", None))

_X_T = sp.Symbol("x_t", real=True)
_DW, _DT, _DX = sp.Symbol(r"\mathrm{d}w"), sp.Symbol(r"\mathrm{d}t"), sp.Symbol(r"\mathrm{d}x")


def _latex(expr) -> str:
    return expr if isinstance(expr, str) else tex(expr)


def _math(tex: str) -> tuple[str, str]:
    """An inline formula (the tooling writes it as ``$tex$``, every bare ``|`` as ``\\vert``)."""
    return ("math", tex)


def _joined(parts, separator: str = ", ") -> list:
    """``parts`` with ``separator`` (text) between them, as one cell."""
    out = []
    for i, part in enumerate(parts):
        out += [separator, part] if i else [part]
    return out


def _shortest(expr):
    """The shorter (in LaTeX) of ``expr`` and its simplification: tables should read like papers."""
    return min((expr, sp.simplify(expr)), key=lambda e: len(tex(e)))


def _paren(expr) -> str:
    text = _latex(expr)
    return rf"\left({text}\right)" if isinstance(expr, sp.Add) else text


def _kernel(p) -> str:
    var = _shortest(p.scale_short**2 * p.sigma_short**2)
    return rf"\mathcal{{N}}\big(x_t;\ {_latex(p.scale_short * X0)},\ {_paren(var)}\,\mathbf{{I}}\big)"


def _marginal(p) -> str:
    kernel_var = _shortest(p.scale_short**2 * p.sigma_short**2)
    signal_var = p.scale_short**2 * C_DATA**2
    return (rf"\mathcal{{N}}\big({_latex(p.scale_short * MU)},\ "
            rf"\left({_latex(signal_var)} + {_latex(kernel_var)}\right)\mathbf{{I}}\big)")


def _sde(p) -> str:
    g = p.g_short if p.g_short is not None else sp.sqrt(p.g2_display)
    drift = _shortest(p.f_display)
    left = "" if drift == 0 else rf"{_latex(drift * X)}\,\mathrm{{d}}t + "
    return rf"\mathrm{{d}}x = {left}{_latex(g)}\,\mathrm{{d}}w"


def _pf_ode(p) -> str:
    drift = _shortest(p.f_display)
    half_g2 = p.g2_display / 2
    left = "" if drift == 0 else rf"{_latex(drift * X)} "
    if half_g2.could_extract_minus_sign():
        return rf"\frac{{\mathrm{{d}}x}}{{\mathrm{{d}}t}} = {left}+ {_paren(-half_g2)}\,\nabla_x \log p_t(x)"
    return rf"\frac{{\mathrm{{d}}x}}{{\mathrm{{d}}t}} = {left}- {_paren(half_g2)}\,\nabla_x \log p_t(x)"


def render_comparison() -> tuple[list, list]:
    """The comparison table: one row per process of ``COMPARISON_ROWS``."""
    head = ["", "discrete forward chain", "perturbation kernel $p_{0t}(x_t\\mid x_0)$",
            "marginal for data $\\mathcal{N}(\\mu, c^2\\mathbf{I})$", "SDE", "PF-ODE", "$s(t)$", "$\\sigma(t)$"]
    rows = []
    for label, name, par in COMPARISON_ROWS:
        p = get_process(name, par)
        if p.chain is None:
            chain = ["—"]
        else:
            chain = [_math(p.chain.latex)] + ([] if p.chain.markovian else [" (non-Markovian)"])
        rows.append([[f"**{label}**"], chain] + [[_math(part)] for part in (
            _kernel(p), _marginal(p), _sde(p), _pf_ode(p), _latex(p.scale_short), _latex(p.sigma_short))])
    return [[h] for h in head], rows


def _fmt(value) -> str:
    v = float(value)
    return f"{int(v)}" if v.is_integer() and abs(v) < 1e6 else f"{v:g}"


def _bound(b) -> str:
    b = sp.sympify(b)
    return _fmt(b) if b.is_number else tex(b)


def render_comparison_symbols() -> tuple[list, list]:
    """Each process's source, short-hands, defaults, time range, sigma inverse and notes."""
    head = ["", "source", "short-hands", "defaults (papers' code)", "$t$ range", "$\\sigma^{-1}(\\sigma)$", "notes"]
    rows = []
    for label, name, par in COMPARISON_ROWS:
        p = get_process(name, par)
        shorthands = _joined([_math(_latex(p.aux_display.get(fn, sp.Eq(fn, value))))
                              for fn, value in p.aux.items()]) or ["—"]
        defaults = _joined([_math(f"{tex(sym)} = {_fmt(val)}") for sym, val in p.defaults.items()]) or ["—"]
        if p.learned:
            defaults.append(" (learned in the paper; fixed linear shown)")
        lo, hi = p.t_range
        t_range = [_math(rf"[{_bound(lo)},\ {_bound(hi)}]")]
        inv = [_math(_latex(p.sigma_inv))] if p.sigma_inv is not None else ["no closed form"]
        rows.append([[f"**{label}**"], [f"{{cite:t}}`{p.cite}`"], shorthands, defaults, t_range, inv,
                     [("prose", p.notes)]])
    return [[h] for h in head], rows


def render_edm_table1() -> tuple[list, list]:
    """Karras et al. (2022) Table 1: one column per process of ``TABLE1_COLUMNS``."""
    procs = [(label, get_process(name, par)) for label, name, par in TABLE1_COLUMNS]
    head = [""] + [label for label, _ in procs]
    rows = []

    def text_row(cells):  # cells of plain text
        rows.append([[c] for c in cells])

    def add(title, getter):
        rows.append([[title]] + [[_math(_latex(getter(p)))] for _, p in procs])

    text_row(["**Sampling**"] + [""] * len(procs))
    add("Time steps $t_{i<N}$", lambda p: p.table1["time_steps"])
    add(r"Schedule $\sigma(t)$", lambda p: p.sigma)
    add("Scaling $s(t)$", lambda p: p.scale)
    add(r"Inverse $\sigma^{-1}(\sigma)$", lambda p: p.sigma_inv)
    text_row(["**Network and preconditioning**"] + [""] * len(procs))
    text_row(["Architecture of $F_\\theta$"] + [p.table1["architecture"] for _, p in procs])
    add(r"Skip scaling $c_\mathrm{skip}(\sigma)$", lambda p: p.table1["c_skip"])
    add(r"Output scaling $c_\mathrm{out}(\sigma)$", lambda p: p.table1["c_out"])
    add(r"Input scaling $c_\mathrm{in}(\sigma)$", lambda p: p.table1["c_in"])
    add(r"Noise cond. $c_\mathrm{noise}(\sigma)$", lambda p: p.table1["c_noise"])
    text_row(["**Training**"] + [""] * len(procs))
    add(r"Noise distribution $p_\mathrm{train}(\sigma)$", lambda p: p.table1["train"])
    add(r"Loss weighting $\lambda(\sigma)$", lambda p: p.table1["loss_weight"])
    add("Parameters", lambda p: p.table1["parameters"])
    return [[h] for h in head], rows


# file stem under book/_generated/ -> the function that builds that table
TABLES = {"comparison": render_comparison, "comparison_symbols": render_comparison_symbols,
          "edm_table1": render_edm_table1}
