"""What every page of the built site must not show, checked in its HTML (no browser needed).

* A Markdown table printed as a paragraph: a ``<p>`` whose text holds a delimiter row
  (``|---``, or ``|—`` once the typographer has made the dashes an em dash) or starts with
  ``| `` -- what a ``text/markdown`` output looks like when it is parsed without table support.
* Raw TeX where MathJax never runs: page titles (``<title>``), the navigation sidebar, the
  previous/next links, and the page titles the search index shows. ``\\(``, ``\\[`` or a
  ``$...$`` pair there means a heading holds math.

`test_browser.py` repeats these checks in Chromium on a few pages at two window widths, with
what only a browser can measure (the width of what is drawn).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

bs4 = pytest.importorskip("bs4")

TABLE_AS_TEXT = re.compile(r"\|\s*:?(?:-{3,}|—|–)")
RAW_TEX = re.compile(r"\\\(|\\\[|\$[^$\s](?:[^$]*[^$\s])?\$(?!\d)")
SKIP = ("_static", "_sources", "_images", "genindex.html", "search.html")


def _pages(site_dir: Path) -> list[Path]:
    pages = [p for p in sorted(site_dir.rglob("*.html"))
             if not any(part in SKIP for part in p.relative_to(site_dir).parts)]
    assert pages, f"no HTML pages under {site_dir}"
    return pages


def _soup(path: Path):
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")


def table_as_paragraph(text: str) -> bool:
    text = " ".join(text.split())
    return bool(TABLE_AS_TEXT.search(text)) or text.startswith("| ")


def test_detectors():
    assert table_as_paragraph("| metric | value | |---|---| | FID | 3.17 |")
    assert table_as_paragraph("| metric | value | |—|—| | FID | 3.17 |")
    assert not table_as_paragraph("The bound |x| ≤ 1 holds for every step.")
    assert RAW_TEX.search(r"One family: \(x = s(t)\,(x_0 + \sigma(t)\,n)\)")
    assert RAW_TEX.search("One family: $x = s(t)$")
    assert not RAW_TEX.search("Costs $5 and $ 6")
    assert not RAW_TEX.search("The unified view: one family of forward processes")


def test_no_table_printed_as_a_paragraph(site_dir):
    bad = []
    for page in _pages(site_dir):
        soup = _soup(page)
        main = soup.select_one("article") or soup
        for p in main.find_all("p"):
            if table_as_paragraph(p.get_text(" ")):
                bad.append(f"{page.relative_to(site_dir)}: {' '.join(p.get_text(' ').split())[:90]}")
    assert not bad, "Markdown tables printed as text:\n" + "\n".join(bad)


def test_no_raw_tex_in_titles_and_navigation(site_dir):
    bad = []
    for page in _pages(site_dir):
        soup = _soup(page)
        rel = page.relative_to(site_dir)
        places = {"<title>": soup.title.get_text() if soup.title else ""}
        for name, selector in (("sidebar", ".bd-sidebar-primary"), ("prev/next", ".prev-next-area"),
                               ("page header", ".bd-header-article")):
            places[name] = " ".join(e.get_text(" ") for e in soup.select(selector))
        bad += [f"{rel} ({name}): {RAW_TEX.search(text).group(0)[:60]}"
                for name, text in places.items() if RAW_TEX.search(text)]
    assert not bad, "raw TeX outside the typeset text:\n" + "\n".join(sorted(set(bad))[:40])


def test_no_raw_tex_in_search_titles(site_dir):
    index = site_dir / "searchindex.js"
    if not index.is_file():
        pytest.skip("no searchindex.js in the built site")
    text = index.read_text(encoding="utf-8")
    data = json.loads(text[text.index("(") + 1:text.rindex(")")])
    bad = [t for t in data.get("titles", []) if RAW_TEX.search(t)]
    assert not bad, f"page titles with raw TeX in the search index: {bad[:10]}"
