"""The catalogue's generated tables for ``book/papers/index.md`` and the theme pages.

* ``outlook``       the notes' outlook table regenerated for all papers, ordered by year;
* ``corrections``   every place where the catalogue corrects what the notes wrote;
* ``paper-numbers`` every number with its setting, source table and how it was checked;
* ``theme-<slug>``  the papers of one theme, linking the chapters that exist.

Cells go through :func:`diffnotes.markdown.cell`, the one escaper of every generated table.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..markdown import GeneratedTable, cell, find_root
from .records import FIELD_LABELS, METRICS, THEMES, Paper, _catalogue_value, papers


# --------------------------------------------------------------------------- rendering


def _cell(text: str) -> str:
    return cell(text, empty="–")


def _cite(key: str) -> str:
    return f"{{cite:t}}`{key}`"


def _other_numbers(paper: Paper) -> str:
    parts = []
    for metric in ("nll_bpd", "inception"):
        r = paper.results.get(metric)
        if r is not None:
            label, unit = METRICS[metric]
            parts.append(f"{label} {r.render()}" + (f" {unit}" if unit else ""))
    return "; ".join(parts)


def _fid(paper: Paper, metric: str) -> str:
    r = paper.results.get(metric)
    return r.render() if r is not None else ""


def render_outlook(items: list[Paper] | None = None) -> str:
    """The notes' outlook table, regenerated for every paper and ordered by year."""
    items = sorted(items if items is not None else papers(), key=lambda p: (p.year, p.key))
    lines = [
        "| Paper | Venue | Year | Alias | FID uncond. | FID cond. | Other CIFAR-10 numbers "
        "| Contribution | Architecture | In notes' table |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in items:
        row = [
            _cite(p.key), p.venue, str(p.year), p.alias, _fid(p, "fid_uncond"), _fid(p, "fid_cond"),
            _other_numbers(p), p.contribution, p.architecture, "yes" if p.in_outlook_table else "no",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def _catalogue_says(paper: Paper, name: str) -> str:
    if name in ("fid_uncond", "fid_cond"):
        r = paper.results.get(name)
        return r.render() if r is not None else "(left empty)"
    return str(_catalogue_value(paper, name))


def render_corrections(items: list[Paper] | None = None) -> str:
    """Every place the catalogue corrects the notes: what they said, what is right, why."""
    items = items if items is not None else papers()
    lines = [
        "| Paper | Field | The notes said | The catalogue says | Correction |",
        "|---|---|---|---|---|",
    ]
    for p in sorted(items, key=lambda p: (p.year, p.key)):
        for c in p.notes_said:
            row = [_cite(p.key), FIELD_LABELS[c.field], c.said, _catalogue_says(p, c.field), c.correction]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    if len(lines) == 2:
        return "*The catalogue agrees with the notes everywhere.*\n"
    return "\n".join(lines) + "\n"


def render_numbers(items: list[Paper] | None = None) -> str:
    """Every headline number with its setting, its source in the paper and how it was checked."""
    items = items if items is not None else papers()
    lines = [
        "| Paper | Metric (CIFAR-10 unless the setting says otherwise) | Value | Setting | Source | Checked |",
        "|---|---|---|---|---|---|",
    ]
    for p in sorted(items, key=lambda p: (p.year, p.key)):
        for metric in METRICS:
            r = p.results.get(metric)
            if r is None:
                continue
            label, unit = METRICS[metric]
            value = ("≤" if r.bound == "<=" else "") + r.text + (f" {unit}" if unit else "")
            row = [_cite(p.key), label, value, r.setting, r.source, r.checked]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
        for o in p.other_results:
            row = [_cite(p.key), f"{o.metric} ({o.dataset})", o.value, o.setting, o.source, o.checked]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return "\n".join(lines) + "\n"


THEME_SLUGS = {
    "Score matching and foundations": "foundations",
    "DDPM family and samplers": "ddpm-family",
    "SDE view and EDM": "sde-edm",
    "Conditioning and inverse problems": "conditioning",
    "Efficiency": "efficiency",
    "Related ideas": "related",
}


def render_theme(theme: str, items: list[Paper] | None = None, root: Path | None = None) -> str:
    """The papers of one theme, for the theme's overview page (``book/themes/<slug>.md``).

    A paper whose chapter exists (``book/papers/<key>.md``) links to it; the others are listed
    with their one-line contribution until their chapter is written.
    """
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; valid: {', '.join(THEMES)}")
    root = root or find_root()
    items = sorted((p for p in (items if items is not None else papers()) if p.theme == theme),
                   key=lambda p: (p.year, p.key))
    lines = ["| Paper | Year | Alias | Chapter | Contribution | CIFAR-10 numbers |", "|---|---|---|---|---|---|"]
    for p in items:
        has_chapter = (root / "book" / "papers" / f"{p.key}.md").is_file()
        chapter = f"[chapter](../papers/{p.key}.md)" if has_chapter else "not yet written"
        numbers = "; ".join(x for x in (
            f"FID {_fid(p, 'fid_uncond')}" if p.result("fid_uncond") else "",
            f"cond. FID {_fid(p, 'fid_cond')}" if p.result("fid_cond") else "",
            _other_numbers(p) if _other_numbers(p) != "–" else "",
        ) if x) or "–"
        row = [_cite(p.key), str(p.year), p.alias, chapter, p.contribution, numbers]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


GENERATED_TABLES = [
    GeneratedTable("outlook", render_outlook, "src/diffnotes/data/papers.yaml"),
    GeneratedTable("corrections", render_corrections, "src/diffnotes/data/papers.yaml"),
    GeneratedTable("paper-numbers", render_numbers, "src/diffnotes/data/papers.yaml"),
] + [
    GeneratedTable(f"theme-{slug}", functools.partial(render_theme, theme), "src/diffnotes/data/papers.yaml")
    for theme, slug in THEME_SLUGS.items()
]
