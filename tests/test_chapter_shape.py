"""Every paper chapter has the one shape written in ARCHITECTURE.md ("The shape of a chapter").

The template is read from ARCHITECTURE.md itself (the numbered list of ``## `` headings), so the
map and this test cannot disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "book" / "papers").glob("*.md") if p.stem != "index")


def _template():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## The shape of a chapter", 1)[1].split("\n## ", 1)[0]
    required = re.findall(r"^\d+\. `## ([^`]+)`", section, flags=re.M)
    optional = re.findall(r"^   \* optional `## ([^`]+)`", section, flags=re.M)
    return required, optional


REQUIRED, OPTIONAL = _template()
FREE_AFTER, FREE_BEFORE = "The derivation", "What changed"


def _h2(path: Path) -> list[str]:
    heads, fenced = [], False
    for line in path.read_text().splitlines():
        if not fenced and line.startswith("```"):
            fenced = True
            continue
        if fenced and line.strip() == "```":
            fenced = False
            continue
        if not fenced and line.startswith("## "):
            heads.append(line[3:].strip())
    return heads


def _match(head: str, name: str) -> bool:
    return head == name or head.startswith(name + ":") or head.startswith(name + ",") \
        or head.startswith(name + " ")


def test_template_is_read():
    assert REQUIRED[:2] == ["Why it is here", "The problem"] and REQUIRED[-1] == "References"
    assert len(REQUIRED) == 10 and OPTIONAL


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_the_shape(path):
    heads = _h2(path)
    problems, i = [], 0
    free = False
    for h in heads:
        later = [j for j in range(i, len(REQUIRED)) if _match(h, REQUIRED[j])]
        if later:
            j = later[0]
            problems += [f"missing '## {r}'" for r in REQUIRED[i:j]]
            free = REQUIRED[j] == FREE_AFTER
            i = j + 1
            continue
        if free and not any(_match(h, r) for r in REQUIRED):
            continue  # method sections (algorithm, key equations, ...) after the derivation
        if any(_match(h, o) for o in OPTIONAL) and REQUIRED[i - 1].startswith("What the notes"):
            continue
        problems.append(f"'## {h}' is out of place (after '## {REQUIRED[i - 1]}')"
                        if i else f"'## {h}' before '## {REQUIRED[0]}'")
    if i < len(REQUIRED):
        problems += [f"missing '## {r}'" for r in REQUIRED[i:]]
    assert not problems, f"{path.name}: " + "; ".join(problems) + f"\nheadings: {heads}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shows_its_proof_figure_and_lab(path):
    text = path.read_text()
    key = path.stem
    assert re.search(r"\b(get_proof|show_proof)\(", text), \
        f"{path.name}: the derivation shows no checked proof (get_proof / show_proof)"
    assert "{glue:figure}" in text or "```{figure}" in text, f"{path.name}: no figure"
    assert f"lab_figure(\"{key}\")" in text or f"lab_figure('{key}')" in text, \
        f"{path.name}: the lab section does not draw its own lab's claims (lab_figure)"
    lab = text.split("\n## The lab", 1)[-1].split("\n## ", 1)[0]
    assert f"notebooks/{key}.ipynb" in lab, f"{path.name}: the lab section does not link its notebook"
    assert f"lab-{key}" in lab, f"{path.name}: the lab section does not link its verdicts " \
        f"({{ref}}`lab-{key}` on the results page)"
    assert f'control_note("{key}")' in lab, \
        f"{path.name}: the lab section does not say which claims its untrained control earns"
