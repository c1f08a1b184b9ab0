"""Each lab notebook's committed record equals what its stored outputs printed, and is written
after the notebook's checks (a failing run must not leave a record behind)."""

import ast
import json
import re
from pathlib import Path

import pytest

from diffnotes.results import RESULTS_DIR, claims_digest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DIGEST = re.compile(r"recorded (\S+): (\d+) claims, digest ([0-9a-f]{16})")


def _code_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _calls(source: str, name: str) -> list[int]:
    """Line numbers of calls to ``name`` (ignores comments and strings)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: fall back to a plain search
        return [i + 1 for i, line in enumerate(source.splitlines()) if f"{name}(" in line]
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _asserts(source: str) -> list[int]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [i + 1 for i, line in enumerate(source.splitlines()) if line.strip().startswith("assert")]
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]


def _text(outputs) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append("".join(out["text"]))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_record_follows_checks(path):
    cells = _code_cells(path)
    where = [(i, ln) for i, c in enumerate(cells) for ln in _calls("".join(c["source"]), "record")]
    assert len(where) == 1, f"{path.name}: expected one record(...) call, found {len(where)}"
    cell, line = where[0]
    checks = [(i, ln) for i, c in enumerate(cells) for ln in _asserts("".join(c["source"]))]
    assert checks, f"{path.name}: no checks (assert) before the record"
    late = [(i, ln) for i, ln in checks if (i, ln) > (cell, line)]
    assert not late, f"{path.name}: asserts after record(...) at cell/line {late}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_record_equals_stored_output(path):
    record_file = ROOT / RESULTS_DIR / f"{path.stem}.json"
    assert record_file.exists(), f"no committed record {record_file.relative_to(ROOT)}"
    stored = json.loads(record_file.read_text(encoding="utf-8"))
    printed = [m for c in _code_cells(path) for m in DIGEST.finditer(_text(c.get("outputs", [])))]
    assert printed, f"{path.name}: stored outputs print no 'recorded ... digest' line (re-run it)"
    key, n, digest = printed[-1].groups()
    assert key == path.stem
    assert int(n) == len(stored["claims"])
    assert digest == claims_digest(stored["claims"]), (
        f"{record_file.name} differs from what {path.name}'s stored outputs recorded")


def test_every_record_has_a_notebook():
    stems = {p.stem for p in NOTEBOOKS}
    orphans = [p.name for p in (ROOT / RESULTS_DIR).glob("*.json") if p.stem not in stems]
    assert not orphans, f"records without a notebook: {orphans}"
