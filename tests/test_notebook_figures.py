"""Every figure a lab notebook stores fits the book's column: at most 700 px wide (7 in at
100 dpi) with no text under 10 pt, as :func:`diffnotes.plotting.fit_figures_to_column` draws it
and declares in the PNG. (Until 2026-12-08 the notebooks whose stored ``full`` outputs predated
the rule were listed here; every one has since been re-run and the list is gone.)"""

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from diffnotes.plotting import BOOK_DPI, BOOK_MAX_WIDTH_IN, BOOK_MIN_FONT_PT, png_min_font

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

def _stored_pngs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get("image/png")
            if data:
                yield i, base64.b64decode(data if isinstance(data, str) else "".join(data))


def _problems(path):
    found = []
    for i, png in _stored_pngs(path):
        with Image.open(io.BytesIO(png)) as im:
            width = im.size[0]
        font = png_min_font(png)
        if width > BOOK_MAX_WIDTH_IN * BOOK_DPI:
            found.append(f"cell {i}: {width} px wide")
        if font is None or font < BOOK_MIN_FONT_PT:
            found.append(f"cell {i}: smallest text {font} pt (undeclared when None)")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_figures_fit_the_column(path):
    problems = _problems(path)
    assert problems == [], f"{path.name}: stored figures that do not fit the column: {problems}"
