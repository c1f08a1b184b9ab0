"""House style of the lab notebooks: the title first, then the setup cell, which installs the
package from the repository address set once in `_config.yml` (`repository.url`) and says in one
line what to do when that fails; code a reader sees on the page stays within about 80 columns
(no horizontal scrolling)."""

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_COLUMNS = 88  # "about 80": a few characters of slack, never a scrolled line


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_then_setup_cell(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), (
        f"{path.name}: the first cell must be the title (a Markdown cell starting with '# ')")
    setup = "".join(cells[1]["source"])
    assert cells[1]["cell_type"] == "code" and "get_profile()" in setup, (
        f"{path.name}: the second cell must be the setup cell")
    url = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    assert f'REPO = "{url}"' in setup, (
        f"{path.name}: the setup cell must install from _config.yml's repository.url ({url})")
    # installing may fail (no network, or the address does not serve the package): say what to do
    assert ".returncode" in setup and "pip install -e ." in setup and "check=True" not in setup
    assert "fit_figures_to_column()" in setup, (
        f"{path.name}: the setup cell must call diffnotes.plotting.fit_figures_to_column() so "
        "that every figure fits the book's column (scripts/fix_setup_cells.py writes it)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_fits_the_page(path):
    wide = [(i, len(line), line.strip()[:50]) for i, c in enumerate(_cells(path))
            if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_COLUMNS]
    assert not wide, f"{path.name}: code lines over {MAX_COLUMNS} columns (cell, length, start): {wide}"
