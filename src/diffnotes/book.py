"""Helpers the book's pages use to show what lives in the code (one place for all chapters).

* :func:`show_proof` — a derivation of :mod:`diffnotes.theory.proofs`, verified when the page is
  built, with its title, check method and LaTeX statement (used by the DDPM, DDIM and EDM chapters);
* :func:`docstring_math` — the ``.. math::`` block of a function's docstring, so a loss is
  displayed from the docstring beside its code (the score-matching and VAE chapters);
* :func:`paper_numbers` — a paper's headline numbers from :mod:`diffnotes.catalogue`.
"""

from __future__ import annotations

import inspect


def show_proof(name: str) -> None:
    """Display proof ``name``: title, name, check method and status (run now), and statement."""
    from IPython.display import Markdown, Math, display

    from .theory.proofs import get_proof

    proof = get_proof(name)
    ok = proof.verify()
    status = "verified" if ok else "**failed**"
    display(Markdown(f"**{proof.title}** (`{proof.name}`, {proof.result.method} check: {status})"))
    display(Math(proof.statement))


def docstring_math(fn):
    """The ``.. math::`` block of ``fn``'s docstring as an IPython ``Math`` object."""
    from IPython.display import Math

    lines = inspect.getdoc(fn).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(".. math::"))
    except StopIteration:
        raise ValueError(f"{fn.__qualname__} has no '.. math::' block in its docstring") from None
    block = [lines[start].removeprefix(".. math::").strip()]
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return Math(" ".join(block).strip())


def paper_numbers(key: str):
    """The paper's headline numbers from the catalogue, as a Markdown table (or a sentence)."""
    from IPython.display import Markdown

    from . import catalogue
    from .markdown import table

    paper = catalogue.get(key)
    if not paper.results and not paper.other_results:
        return Markdown(f"The paper catalogue lists no headline numbers for {paper.alias}: its claims are "
                        "qualitative or in figures, so the lab notebook reproduces claims, not a table.")
    rows = []
    for metric, r in paper.results.items():
        label, unit = catalogue.METRICS[metric]
        rows.append([label, f"{r.text} {unit}", r.setting, r.source])
    for o in paper.other_results:
        rows.append([f"{o.metric} ({o.dataset})", o.value, o.setting, o.source])
    return Markdown(table(["metric", "value", "setting", "source"], rows).rstrip("\n"))


def notes_corrections(key: str, fields=None):
    """What the notes said about the paper and the catalogue's correction, as a Markdown table
    (``fields`` keeps only those catalogue fields, e.g. ``("fid_uncond",)``)."""
    from IPython.display import Markdown

    from . import catalogue

    said = [c for c in catalogue.get(key).notes_said if fields is None or c.field in fields]
    if not said:
        return Markdown("The paper catalogue records no correction to the notes for this paper.")
    rows = ["| field | the notes said | correction |", "|---|---|---|"]
    rows += [f"| {catalogue.FIELD_LABELS[c.field]} | {c.said} | {c.correction} |" for c in said]
    return Markdown("\n".join(rows))
