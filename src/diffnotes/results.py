"""Measured numbers from the lab notebooks, and the generated ``book/results.md`` table.

A notebook ends by calling :func:`record` with the claims it reproduced in small. Outside the
``quick`` profile the record is written to ``notebooks/results/<key>.json`` (committed with the
notebook's stored outputs); ``quick`` runs (CI) write under ``_build/results/`` so that a test run
never rewrites the committed numbers. ``python -m diffnotes tables`` turns the committed records
into the results table, one row per claim, our number beside the paper's.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .profiles import get_profile

RESULTS_DIR = Path("notebooks") / "results"
QUICK_DIR = Path("_build") / "results"


@dataclass
class Claim:
    """One reproduced claim: what the paper says, what we measured, and how."""

    claim: str  # the paper's claim in a few words, e.g. "Heun beats Euler at equal NFE"
    metric: str  # what was measured, e.g. "sliced W2 at 35 NFE (Heun / Euler)"
    measured: float | str  # our number (a float is rounded for display)
    paper: str = ""  # the paper's number and where it is, e.g. "FID 3.17 (Table 1)", or "" if qualitative
    holds: bool | None = None  # does our measurement agree with the claim?


def _machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}"
    except Exception:  # pragma: no cover - torch missing is not our problem here
        pass
    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def _repo_root() -> Path:
    from .tables import find_root

    return find_root()


def record(key: str, claims: list[Claim], *, root: Path | None = None) -> Path:
    """Write this notebook's claims (see module doc for where); returns the path written."""
    if not claims:
        raise ValueError(f"record({key!r}): no claims given")
    profile = get_profile()
    root = root or _repo_root()
    folder = root / (QUICK_DIR if profile.is_quick else RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "key": key,
        "profile": profile.name,
        "date": _dt.date.today().isoformat(),
        "machine": _machine(),
        "claims": [asdict(c) for c in claims],
    }
    path = folder / f"{key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_records(root: Path | None = None) -> list[dict]:
    root = root or _repo_root()
    folder = root / RESULTS_DIR
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def _cell(text) -> str:
    """A Markdown table cell: a literal '|' (e.g. an absolute value) would split the column."""
    return _fmt(text).replace("|", "\\|").replace("\n", " ")


def render_results_table(root: Path | None = None) -> str:
    records = load_records(root)
    if not records:
        return "*No notebook has recorded results yet.*\n"
    lines = [
        "| paper | claim | measured | ours | paper's number | holds | profile, date, machine |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        for c in rec["claims"]:
            holds = {True: "yes", False: "**no**", None: "–"}[c.get("holds")]
            lines.append(
                f"| {{cite:t}}`{rec['key']}` | {_cell(c['claim'])} | {_cell(c['metric'])} | {_cell(c['measured'])} | "
                f"{_cell(c.get('paper') or '–')} | {holds} | {rec['profile']}, {rec['date']}, {rec['machine']} |"
            )
    return "\n".join(lines) + "\n"


def _generated_tables():
    from .tables import GeneratedTable

    return [GeneratedTable("results", render_results_table, "notebooks/results/*.json")]


GENERATED_TABLES = _generated_tables()
