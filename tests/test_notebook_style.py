"""House style of the lab notebooks: the setup cell first, then the title; code a reader sees on
the page stays within about 80 columns (no horizontal scrolling)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_COLUMNS = 88  # "about 80": a few characters of slack, never a scrolled line


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_then_title(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "code" and "get_profile()" in "".join(cells[0]["source"])
    assert cells[1]["cell_type"] == "markdown" and "".join(cells[1]["source"]).startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_fits_the_page(path):
    wide = [(i, len(line), line.strip()[:50]) for i, c in enumerate(_cells(path))
            if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_COLUMNS]
    assert not wide, f"{path.name}: code lines over {MAX_COLUMNS} columns (cell, length, start): {wide}"
