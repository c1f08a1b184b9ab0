"""Every generated table is well-formed Markdown: each row has as many cells as its header.

A literal '|' inside a cell (an absolute value, a conditional bar) silently shifts the columns
of a Markdown table; the renderers escape it, and this test keeps them honest.
"""

import re

import pytest

from diffnotes.tables import all_tables

_UNESCAPED_BAR = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> int:
    return len(_UNESCAPED_BAR.findall(line.strip())) - 1


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t.name)
def test_rows_have_the_header_width(table):
    blocks, current = [], []  # a generated file may hold several tables: check each
    for ln in table.text().splitlines():
        if ln.strip().startswith("|"):
            current.append(ln)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    if not blocks:
        pytest.skip(f"{table.name} has no table yet")
    bad = []
    for lines in blocks:
        width = _cells(lines[0])
        bad += [ln[:120] for ln in lines[1:] if _cells(ln) != width]
    width = "each table"
    assert not bad, f"{table.name}: rows whose cell count differs from the header's {width}:\n" + "\n".join(bad)
