"""Generated tables of the unified view, rendered from the process objects.

* ``comparison``: the notes' comparison table completed (chain, kernel, marginal, SDE, PF-ODE,
  s(t), sigma(t) for every process), plus ``comparison_symbols`` with each row's short-hands,
  defaults and source;
* ``edm_table1``: Karras et al. (2022) Table 1 for VP, VE, iDDPM+DDIM and EDM.

Every cell comes from ``diffnotes.theory.processes`` through ``sympy.latex``, so the book shows the
expressions the proofs check. Included by ``book/unified-view.md``.
"""

from __future__ import annotations

import sympy as sp

from ..markdown import GeneratedTable, math_cell, text_with_math_cell
from .processes import C_DATA, MU, SCORE, SIGMA, X, X0, get_process, t

__all__ = ["GENERATED_TABLES", "render_comparison", "render_comparison_symbols", "render_edm_table1", "COMPARISON_ROWS"]

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
    return expr if isinstance(expr, str) else sp.latex(expr)


def _cell(tex: str) -> str:
    """One table cell of math (``diffnotes.markdown.math_cell``: a bare ``|`` becomes ``\\vert``)."""
    return math_cell(tex)


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _shortest(expr):
    """The shorter (in LaTeX) of ``expr`` and its simplification: tables should read like papers."""
    return min((expr, sp.simplify(expr)), key=lambda e: len(sp.latex(e)))


def _paren(expr) -> str:
    tex = _latex(expr)
    return rf"\left({tex}\right)" if isinstance(expr, sp.Add) else tex


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


def render_comparison() -> str:
    head = ["", "discrete forward chain", "perturbation kernel $p_{0t}(x_t\\mid x_0)$",
            "marginal for data $\\mathcal{N}(\\mu, c^2\\mathbf{I})$", "SDE", "PF-ODE", "$s(t)$", "$\\sigma(t)$"]
    lines = [_row(head), _row(["---"] * len(head))]
    for label, name, par in COMPARISON_ROWS:
        p = get_process(name, par)
        chain = _cell(p.chain.latex) + (" (non-Markovian)" if not p.chain.markovian else "") if p.chain else "—"
        lines.append(_row([
            f"**{label}**", chain, _cell(_kernel(p)), _cell(_marginal(p)), _cell(_sde(p)), _cell(_pf_ode(p)),
            _cell(_latex(p.scale_short)), _cell(_latex(p.sigma_short)),
        ]))
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    v = float(value)
    return f"{int(v)}" if v.is_integer() and abs(v) < 1e6 else f"{v:g}"


def _bound(b) -> str:
    b = sp.sympify(b)
    return _fmt(b) if b.is_number else sp.latex(b)


def render_comparison_symbols() -> str:
    head = ["", "source", "short-hands", "defaults (papers' code)", "$t$ range", "$\\sigma^{-1}(\\sigma)$", "notes"]
    lines = [_row(head), _row(["---"] * len(head))]
    for label, name, par in COMPARISON_ROWS:
        p = get_process(name, par)
        shorthands = ", ".join(_cell(_latex(p.aux_display.get(fn, sp.Eq(fn, value), ))) for fn, value in p.aux.items()) or "—"
        defaults = ", ".join(_cell(f"{sp.latex(sym)} = {_fmt(val)}") for sym, val in p.defaults.items()) or "—"
        if p.learned:
            defaults += " (learned in the paper; fixed linear shown)"
        lo, hi = p.t_range
        t_range = _cell(rf"[{_bound(lo)},\ {_bound(hi)}]")
        inv = _cell(_latex(p.sigma_inv)) if p.sigma_inv is not None else "no closed form"
        lines.append(_row([f"**{label}**", f"{{cite:t}}`{p.cite}`", shorthands, defaults, t_range, inv,
                           text_with_math_cell(p.notes)]))
    return "\n".join(lines) + "\n"


def render_edm_table1() -> str:
    procs = [(label, get_process(name, par)) for label, name, par in TABLE1_COLUMNS]
    head = [""] + [label for label, _ in procs]
    lines = [_row(head), _row(["---"] * len(head))]

    def add(title, getter):
        lines.append(_row([title] + [_cell(_latex(getter(p))) for _, p in procs]))

    lines.append(_row(["**Sampling**"] + [""] * len(procs)))
    add("Time steps $t_{i<N}$", lambda p: p.table1["time_steps"])
    add(r"Schedule $\sigma(t)$", lambda p: p.sigma)
    add("Scaling $s(t)$", lambda p: p.scale)
    add(r"Inverse $\sigma^{-1}(\sigma)$", lambda p: p.sigma_inv)
    lines.append(_row(["**Network and preconditioning**"] + [""] * len(procs)))
    lines.append(_row(["Architecture of $F_\\theta$"] + [p.table1["architecture"] for _, p in procs]))
    add(r"Skip scaling $c_\mathrm{skip}(\sigma)$", lambda p: p.table1["c_skip"])
    add(r"Output scaling $c_\mathrm{out}(\sigma)$", lambda p: p.table1["c_out"])
    add(r"Input scaling $c_\mathrm{in}(\sigma)$", lambda p: p.table1["c_in"])
    add(r"Noise cond. $c_\mathrm{noise}(\sigma)$", lambda p: p.table1["c_noise"])
    lines.append(_row(["**Training**"] + [""] * len(procs)))
    add(r"Noise distribution $p_\mathrm{train}(\sigma)$", lambda p: p.table1["train"])
    add(r"Loss weighting $\lambda(\sigma)$", lambda p: p.table1["loss_weight"])
    add("Parameters", lambda p: p.table1["parameters"])
    return "\n".join(lines) + "\n"


GENERATED_TABLES = [
    GeneratedTable("comparison", render_comparison, "diffnotes.theory.tables.render_comparison"),
    GeneratedTable("comparison_symbols", render_comparison_symbols, "diffnotes.theory.tables.render_comparison_symbols"),
    GeneratedTable("edm_table1", render_edm_table1, "diffnotes.theory.tables.render_edm_table1"),
]
