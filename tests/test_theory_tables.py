"""The generated tables of the unified view: current, well-formed, and equal to the engine."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp
import torch

from diffnotes.markdown import parts_table
from diffnotes.tables import check_tables, find_root, theory_tables
from diffnotes.theory import get_process
from diffnotes.theory.processes import SIGMA, SIGMA_DATA, tex
from diffnotes.theory.tables import (
    COMPARISON_ROWS, TABLE1_COLUMNS, TABLES, render_comparison, render_edm_table1,
)

NAMES = list(TABLES)


def _markdown(build) -> str:
    """A theory table written as the registry writes it."""
    return parts_table(*build())


def _rows(markdown: str) -> list[list[str]]:
    """Split a Markdown table into cells; a '|' inside $...$ would break this (and the table)."""
    out = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            out.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return out


def test_committed_tables_are_current():
    assert set(NAMES) == {"comparison", "comparison_symbols", "edm_table1"}
    assert [t.name for t in theory_tables()] == NAMES
    assert check_tables(find_root(), NAMES) == []


def test_the_theory_writes_no_markdown():
    """The theory hands over cells; escaping and files belong to the book tooling above it."""
    import inspect

    import diffnotes.theory.tables as theory

    source = inspect.getsource(theory)
    assert "markdown" not in source.split('"""', 2)[2]  # code after the docstring
    header, rows = render_edm_table1()
    assert all(isinstance(cell, list) for cell in header + [c for r in rows for c in r])


@pytest.mark.parametrize("render", [render_comparison, render_edm_table1])
def test_tables_are_rectangular_and_math_is_balanced(render):
    rows = _rows(_markdown(render))
    widths = {len(r) for r in rows}
    assert len(widths) == 1, widths
    for row in rows:
        for cell in row:
            assert cell.count("$") % 2 == 0, cell
            for math in re.findall(r"\$([^$]*)\$", cell):
                assert "|" not in math, math


def test_comparison_rows_come_from_the_processes():
    rows = _rows(_markdown(render_comparison))
    assert [r[0] for r in rows[1:]] == [f"**{label}**" for label, _, _ in COMPARISON_ROWS]
    for row, (label, name, par) in zip(rows[1:], COMPARISON_ROWS):
        p = get_process(name, par)
        assert row[-1] == f"${tex(p.sigma_short)}$"  # sigma(t)
        assert row[-2] == f"${tex(p.scale_short)}$"  # s(t)
        assert (row[1] == "—") == (p.chain is None)


def test_edm_table1_rows_and_known_entries():
    rows = {r[0]: r[1:] for r in _rows(_markdown(render_edm_table1))}
    assert rows[""] == [label for label, _, _ in TABLE1_COLUMNS]
    assert rows["Schedule $\\sigma(t)$"][1:] == ["$\\sqrt{t}$", "$t$", "$t$"]
    assert rows["Scaling $s(t)$"][1:] == ["$1$"] * 3
    assert rows["Output scaling $c_\\mathrm{out}(\\sigma)$"][:3] == ["$- \\sigma$", "$\\sigma$", "$- \\sigma$"]
    assert rows["Loss weighting $\\lambda(\\sigma)$"][:3] == ["$\\frac{1}{\\sigma^{2}}$"] * 3


def _table1_numeric(name, par, key, sigma):
    p = get_process(name, par)
    expr = p.subs(p.table1[key])
    return sp.lambdify(SIGMA, expr, "numpy")(sigma) * np.ones_like(sigma)


@pytest.mark.parametrize("name,par,precond", [("vp", None, "vp"), ("ve", "edm", "ve"), ("iddpm", "edm", "iddpm"), ("edm", None, "edm")])
def test_table1_preconditioning_equals_the_engine(name, par, precond):
    """diffnotes.precond implements EDM Table 1; its coefficients equal the SymPy entries."""
    import diffnotes.precond as pre_mod
    model = pre_mod.PRECONDS[precond](torch.nn.Identity())
    sigma = np.array([0.01, 0.3, 2.0, 40.0])
    got = model.coefficients(torch.tensor(sigma, dtype=torch.float64))
    for key, value in zip(("c_skip", "c_out", "c_in", "c_noise"), got):
        if isinstance(get_process(name, par).table1[key], str):  # iDDPM's c_noise is an argmin
            continue
        np.testing.assert_allclose(value.numpy(), _table1_numeric(name, par, key, sigma), rtol=1e-10, err_msg=key)


def test_edm_precond_agrees_with_score_proofs():
    import diffnotes.theory.proofs.score_proofs as score_proofs
    theirs = score_proofs.edm_preconditioning(SIGMA, SIGMA_DATA)
    mine = get_process("edm").table1
    for key, value in theirs.items():
        assert sp.simplify(value - mine[key]) == 0, key


def test_tex_writes_word_subscripts_upright_and_letters_italic():
    import sympy as sp

    a, b = sp.symbols("sigma_data x_0")
    assert tex(a**2) == r"\sigma_\mathrm{data}^{2}"
    assert tex(b) == "x_{0}"
    assert tex(sp.Symbol(r"\hat{x}")) == sp.latex(sp.Symbol(r"\hat{x}"))
