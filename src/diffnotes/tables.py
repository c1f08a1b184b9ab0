"""Every generated table of the book, in one registry.

``python -m diffnotes tables`` rewrites them; ``--check`` compares them with what the code
produces now and fails, naming each drifted table and showing a diff. Each table is a Markdown
file under ``book/_generated/`` that a chapter pulls in with ``{include}``; the file starts with a
comment saying it is generated, so nobody edits it by hand. What a table is and how its cells
are escaped lives in :mod:`diffnotes.markdown`, which the contributing modules of the book
tooling import; this registry imports them, so the imports run one way. The theory layer writes
no Markdown: ``diffnotes.theory.tables`` builds its tables as cells, and this registry writes
them with ``markdown.parts_table`` (the theory sits below the tooling, never the other way).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from functools import partial

from .markdown import GENERATED_DIR, HEADER, GeneratedTable, find_root, parts_table

__all__ = ["GENERATED_DIR", "HEADER", "GeneratedTable", "find_root", "all_tables", "theory_tables",
           "write_tables", "check_tables"]


def _contributors() -> list[list[GeneratedTable]]:
    """Every contributor's tables: the tooling modules that define ``GENERATED_TABLES`` and the
    theory's tables (imported here, never the other way round)."""
    from . import book_status, claims, leaderboard
    from .catalogue import render

    return [render.GENERATED_TABLES, theory_tables(), claims.GENERATED_TABLES,
            book_status.GENERATED_TABLES, leaderboard.GENERATED_TABLES]


def _written(build) -> str:
    return parts_table(*build())


def theory_tables() -> list[GeneratedTable]:
    """The unified view's tables: ``diffnotes.theory.tables`` builds the cells, Markdown is written here."""
    from .theory import tables as theory

    return [GeneratedTable(name, partial(_written, build), f"{theory.__name__}.{build.__name__}")
            for name, build in theory.TABLES.items()]


def all_tables() -> list[GeneratedTable]:
    tables: list[GeneratedTable] = []
    for contributed in _contributors():
        tables.extend(contributed)
    names = [t.name for t in tables]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RuntimeError(f"duplicate generated table names: {dupes}")
    return tables


def write_tables(root: Path, names: list[str] | None = None) -> list[Path]:
    written = []
    for table in _select(names):
        path = root / table.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        new = table.text()
        if not path.exists() or path.read_text(encoding="utf-8") != new:
            tmp = path.with_suffix(".md.tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(path)
        written.append(path)
    return written


def check_tables(root: Path, names: list[str] | None = None) -> list[str]:
    """Return one report (name + unified diff) per drifted or missing table; empty when current."""
    problems = []
    for table in _select(names):
        path = root / table.relpath
        new = table.text()
        if not path.exists():
            problems.append(f"table {table.name!r}: {table.relpath} is missing (run `python -m diffnotes tables`)")
            continue
        old = path.read_text(encoding="utf-8")
        if old != new:
            diff = "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"{table.relpath} (committed)",
                    tofile=f"{table.relpath} (generated now)",
                )
            )
            problems.append(f"table {table.name!r} drifted from the code:\n{diff}")
    return problems


def _select(names):
    tables = all_tables()
    if not names:
        return tables
    known = {t.name: t for t in tables}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; valid: {', '.join(sorted(known))}")
    return [known[n] for n in names]
