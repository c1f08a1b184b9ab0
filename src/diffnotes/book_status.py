"""The status page: each lab notebook's profile, execution time and date, read from its outputs,
and each chapter's second-pass review against its paper, read from the paper catalogue.

The site renders notebooks from their stored outputs (`make notebooks` executes them under the
``full`` profile), so the numbers here describe the run a reader sees. Execution time is the sum
of the per-cell times Jupyter records in each cell's metadata; the profile is the one the
notebook's setup cell printed (``profile: full``).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

from .markdown import GeneratedTable, cell, find_root, row

NOTEBOOKS = Path("notebooks")
_PROFILE_RE = re.compile(r"^profile:\s*(\w+)", re.MULTILINE)


def _parse_time(stamp: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def notebook_status(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    title, profile, seconds, last = path.stem, None, 0.0, None
    timed_cells = code_cells = 0
    for cell in nb.get("cells", []):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown" and title == path.stem:
            m = re.search(r"^#\s+(.+)$", source, re.MULTILINE)
            if m:
                title = m.group(1).strip()
        if cell.get("cell_type") != "code":
            continue
        code_cells += 1
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", [])) if out.get("output_type") == "stream" else ""
            m = _PROFILE_RE.search(text)
            if m and profile is None:
                profile = m.group(1)
        ex = cell.get("metadata", {}).get("execution", {})
        start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if start and end:
            t0, t1 = _parse_time(start), _parse_time(end)
            seconds += max(0.0, (t1 - t0).total_seconds())
            last = t1 if last is None or t1 > last else last
            timed_cells += 1
    return {
        "key": path.stem,
        "title": title,
        "profile": profile or "not executed",
        "seconds": seconds if timed_cells else None,
        "date": last.date().isoformat() if last else "–",
        "cells": f"{timed_cells}/{code_cells}",
    }


def render_status_table(root: Path | None = None) -> str:
    folder = (root or Path.cwd()) / NOTEBOOKS
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        return "*No lab notebooks yet.*\n"
    lines = [
        "| notebook | profile of stored outputs | execution time | executed on | cells timed |",
        "|---|---|---|---|---|",
    ]
    for p in paths:
        s = notebook_status(p)
        secs = "–" if s["seconds"] is None else f"{s['seconds']:.0f} s"
        link = f"[{cell(s['title'])}](../notebooks/{s['key']}.ipynb)"
        lines.append(row([link, *(cell(x) for x in (s["profile"], secs, s["date"], s["cells"]))]))
    return "\n".join(lines) + "\n"


def render_review_table(root: Path | None = None) -> str:
    """One row per chapter (``book/papers/<key>.md``): whether, when, by whom and against what the
    second-pass review (issue 23) checked it, and the items it fixed (``review`` in papers.yaml)."""
    from . import catalogue

    folder = (root or find_root()) / "book" / "papers"
    lines = [
        "| chapter | second-pass review | checked against | by | items fixed |",
        "|---|---|---|---|---|",
    ]
    for p in sorted(catalogue.papers(), key=lambda p: (p.year, p.key)):
        if not (folder / f"{p.key}.md").is_file():
            continue
        r = p.review
        link = f"[{cell(p.alias)}](papers/{p.key}.md)"
        if not r.reviewed:
            cells = [catalogue.NOT_REVIEWED, "–", "–", "–"]
        else:
            cells = [r.date, r.against, r.by, f"{len(r.fixed)}: " + "; ".join(r.fixed)]
        lines.append(row([link, *(cell(x) for x in cells)]))
    return "\n".join(lines) + "\n"


GENERATED_TABLES = [
    GeneratedTable("notebook_status", render_status_table, "notebooks/*.ipynb (stored outputs)"),
    GeneratedTable("review_status", render_review_table, "src/diffnotes/data/papers.yaml (review)"),
]
