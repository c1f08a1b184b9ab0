"""references.bib: parses cleanly, follows the key scheme, and matches what the book cites.

* every entry parses (bibtexparser 2.x) and has author, title, year, a venue field and an
  identifier (arXiv eprint, DOI or URL);
* keys follow <first author's family name><year><first title word>;
* every {cite...} key used in book/**/*.md and notebooks/*.ipynb exists in the file, and every
  entry of the file is cited somewhere;
* the catalogue's papers are exactly the 26 papers of the notes, all in the file.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import bibtexparser
import pytest
from bibtexparser.model import DuplicateBlockKeyBlock

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "references.bib"

# The 26 papers of the notes: 15 rows of the outlook table and 11
# more from its list of papers. Written out here so that the catalogue is checked against it.
NOTES_PAPERS = {
    # outlook table
    "hyvarinen2005estimation", "vincent2011connection", "kingma2014auto", "sohldickstein2015deep",
    "song2019generative", "ho2020denoising", "nichol2021improved", "song2021score",
    "song2021denoising", "dhariwal2021diffusion", "kingma2021variational", "bao2022analytic",
    "chung2022come", "karras2022elucidating", "luhman2022improving",
    # list of papers
    "blattmann2022retrieval", "ramesh2022hierarchical", "abstreiter2021diffusion",
    "jolicoeurmartineau2021gotta", "jing2022subspace", "li2022srdiff", "saharia2022image",
    "choi2021ilvr", "song2019sliced", "havasi2019minimal", "harsha2007communication",
}
BOOK_PAPERS = {"theis2022lossy", "ho2022classifier"}  # chapters the book adds to the notes' papers (the bridge)
EXTRA_KEYS = {
    "heusel2017gans", "anderson1982reverse", "lu2022dpm", "lu2022dpmsolverpp",
    "salimans2022progressive", "efron2011tweedie", "weng2021what",
}
VENUE_FIELDS = ("journal", "booktitle", "publisher", "howpublished")
TITLE_STOPWORDS = {"a", "an", "the", "on", "of"}

# {cite}`a,b`, {cite:t}`a`, {cite:p}`a; b`, {cite:ps}`a` ... (sphinxcontrib-bibtex roles in MyST)
CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")


@pytest.fixture(scope="module")
def library():
    return bibtexparser.parse_file(str(BIB))


@pytest.fixture(scope="module")
def entries(library):
    return {e.key: e for e in library.entries}


def _plain(text: str) -> str:
    """Lower-case ASCII letters only: strips LaTeX accents and braces, e.g. Hyv{\\"a}rinen -> hyvarinen."""
    text = re.sub(r"\\[^a-zA-Z]", "", text)  # \" \' \` ...
    text = re.sub(r"\\[a-zA-Z]+\s*", "", text)  # \o \ss ...
    text = text.replace("++", "pp")  # DPM-Solver++ -> dpmsolverpp
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", text.lower())


def _first_family_name(author_field: str) -> str:
    first = author_field.split(" and ")[0].strip()
    family = first.split(",")[0] if "," in first else first.split()[-1]
    return _plain(family)


def _title_words(title: str) -> list[str]:
    words = [_plain(w) for w in re.split(r"[\s]+", title)]
    return [w for w in words if w and w not in TITLE_STOPWORDS]


def parse_problems(library) -> list[str]:
    """One line per block that failed to parse, naming the entry and its line."""
    problems = []
    for block in library.failed_blocks:
        line = block.start_line + 1
        if isinstance(block, DuplicateBlockKeyBlock):
            problems.append(f"line {line}: duplicate key {block.key!r}")
        else:
            head = block.raw.strip().splitlines()[0] if block.raw.strip() else "?"
            problems.append(f"line {line}: {head!r} failed to parse: {getattr(block, 'error', '')}")
    return problems


def field_problems(entries) -> list[str]:
    problems = []
    for key, e in entries.items():
        fields = {k.lower(): str(v.value).strip() for k, v in e.fields_dict.items()}
        where = f"{key} (line {e.start_line + 1})"
        for name in ("author", "title", "year"):
            if not fields.get(name):
                problems.append(f"{where}: missing {name}")
        if not any(fields.get(name) for name in VENUE_FIELDS):
            problems.append(f"{where}: no venue field (one of {', '.join(VENUE_FIELDS)})")
        has_arxiv = bool(fields.get("eprint")) and fields.get("archiveprefix", "").lower() == "arxiv"
        if fields.get("eprint") and not has_arxiv:
            problems.append(f"{where}: eprint without archiveprefix = {{arXiv}}")
        if fields.get("eprint") and not re.fullmatch(r"\d{4}\.\d{4,5}", fields["eprint"]):
            problems.append(f"{where}: eprint {fields['eprint']!r} is not a new-style arXiv id")
        if not (has_arxiv or fields.get("doi") or fields.get("url")):
            problems.append(f"{where}: no identifier (arXiv eprint + archiveprefix, doi or url)")
        if fields.get("year") and not re.fullmatch(r"(19|20)\d\d", fields["year"]):
            problems.append(f"{where}: year {fields['year']!r} is not a year")
    return problems


def key_problems(entries) -> list[str]:
    """key = <first author's family name><year><first title word (or its start)>."""
    problems = []
    for key, e in entries.items():
        m = re.fullmatch(r"([a-z]+)(\d{4})([a-z]+)", key)
        if not m:
            problems.append(f"{key}: not of the form <author><year><word> in lower-case ASCII")
            continue
        author, year, word = m.groups()
        expected_author = _first_family_name(e.fields_dict["author"].value)
        if author != expected_author:
            problems.append(f"{key}: starts with {author!r}, first author's family name is {expected_author!r}")
        if year != str(e.fields_dict["year"].value):
            problems.append(f"{key}: year {year} differs from the entry's year {e.fields_dict['year'].value}")
        words = _title_words(e.fields_dict["title"].value)
        if not words or not words[0].startswith(word):
            problems.append(f"{key}: {word!r} is not the start of the title's first word {words[:1]}")
    return problems


def test_parses_without_failed_blocks(library):
    problems = parse_problems(library)
    assert not problems, "references.bib has blocks that failed to parse:\n" + "\n".join(problems)


def test_no_duplicate_keys(library):
    keys = [e.key for e in library.entries]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"duplicate keys in references.bib: {dupes}"


def test_required_fields(entries):
    problems = field_problems(entries)
    assert not problems, "\n".join(problems)


def test_key_scheme(entries):
    problems = key_problems(entries)
    assert not problems, "\n".join(problems)


BROKEN_BIB = """@article{ho2020denoising,
  author = {Ho, Jonathan},
  title = {Denoising Diffusion Probabilistic Models},
  journal = {NeurIPS},
  year = {2020},
  eprint = {2006.11239},
  archiveprefix = {arXiv},
}

@article{ho2020denoising,
  author = {Ho, Jonathan},
  title = {Denoising Diffusion Probabilistic Models},
  year = {2020},
}

@article{smith2020wrong,
  author = {Jones, Ann},
  title = {Right Title},
  journal = {J},
  year = {2021},
  url = {https://example.org},
}

@article{broken2020entry,
  title = {Unclosed
"""


def test_checks_catch_broken_entries(tmp_path):
    """The checks above are not vacuous: each kind of mistake gives a line naming entry and line."""
    path = tmp_path / "broken.bib"
    path.write_text(BROKEN_BIB, encoding="utf-8")
    lib = bibtexparser.parse_file(str(path))
    parse = parse_problems(lib)
    assert any("line 10" in p and "duplicate key 'ho2020denoising'" in p for p in parse), parse
    assert any("line 24" in p and "broken2020entry" in p for p in parse), parse
    ents = {e.key: e for e in lib.entries}
    fields = field_problems(ents)
    assert fields == [], fields  # the surviving entries are complete
    keys = key_problems(ents)
    assert any(p.startswith("smith2020wrong: starts with 'smith'") for p in keys), keys
    assert any("smith2020wrong: year 2020 differs" in p for p in keys), keys
    assert any("smith2020wrong: 'wrong' is not the start" in p for p in keys), keys
    incomplete = bibtexparser.parse_string("@misc{x2020y,\n  title = {Y},\n  year = {2020},\n}\n")
    missing = field_problems({e.key: e for e in incomplete.entries})
    assert "x2020y (line 1): missing author" in missing
    assert any("no venue field" in p for p in missing) and any("no identifier" in p for p in missing)


def test_expected_keys_present(entries):
    missing = sorted((NOTES_PAPERS | EXTRA_KEYS) - set(entries))
    assert not missing, f"references.bib lacks the agreed keys: {missing}"


def _cited_keys() -> dict[str, set[str]]:
    """key -> files citing it, over book/**/*.md and notebooks/*.ipynb."""
    found: dict[str, set[str]] = {}

    def scan(text: str, where: str):
        for group in CITE_ROLE.findall(text):
            for key in re.split(r"[,;]", group):
                key = key.strip()
                if key:
                    found.setdefault(key, set()).add(where)

    for path in sorted((ROOT / "book").rglob("*.md")):
        scan(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            source = cell.get("source", "")
            scan("".join(source) if isinstance(source, list) else source, str(path.relative_to(ROOT)))
    return found


def test_cite_role_pattern_finds_keys():
    # the scanner must see every form the book uses, or the two tests below check nothing
    text = "{cite:t}`a2020x` and {cite:p}`b2021y, c2022z` and {cite}`d2019w`"
    assert CITE_ROLE.findall(text) == ["a2020x", "b2021y, c2022z", "d2019w"]


def test_every_cited_key_exists(entries):
    cited = _cited_keys()
    assert cited, "no {cite} roles found in book/ or notebooks/ (is the scanner broken?)"
    unknown = {k: sorted(v) for k, v in cited.items() if k not in entries}
    assert not unknown, "cited but missing from references.bib:\n" + "\n".join(
        f"  {k}: cited in {', '.join(v)}" for k, v in sorted(unknown.items()))


def test_every_entry_is_cited(entries):
    cited = _cited_keys()
    uncited = sorted(set(entries) - set(cited))
    assert not uncited, f"entries of references.bib cited nowhere in book/ or notebooks/: {uncited}"


def test_catalogue_matches_notes_and_bib(entries):
    from diffnotes import catalogue

    keys = [p.key for p in catalogue.papers()]
    assert len(keys) == len(set(keys))
    catalogued = NOTES_PAPERS | BOOK_PAPERS
    assert set(keys) == catalogued, (
        f"catalogue vs notes: missing {sorted(catalogued - set(keys))}, extra {sorted(set(keys) - catalogued)}")
    assert set(keys) <= set(entries)
    # year and title agree between the catalogue and the bib entry
    for p in catalogue.papers():
        e = entries[p.key]
        assert str(p.year) == str(e.fields_dict["year"].value), p.key
        bib_title = _title_words(e.fields_dict["title"].value)
        assert _title_words(p.title) == bib_title, f"{p.key}: title differs from references.bib"
