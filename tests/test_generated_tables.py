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
    lines = [ln for ln in table.text().splitlines() if ln.strip().startswith("|")]
    if not lines:
        pytest.skip(f"{table.name} has no table yet")
    width = _cells(lines[0])
    bad = [ln[:120] for ln in lines[1:] if _cells(ln) != width]
    assert not bad, f"{table.name}: rows whose cell count differs from the header's {width}:\n" + "\n".join(bad)
