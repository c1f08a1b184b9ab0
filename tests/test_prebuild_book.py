"""The parallel pre-execution stages exactly the book's executable pages, with the build's
reader and cache."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("prebuild_book", ROOT / "scripts" / "prebuild_book.py")
prebuild = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prebuild)


def test_every_chapter_with_code_is_staged_and_no_notebook():
    staged = {p.relative_to(ROOT).as_posix() for p in prebuild.pages()}
    chapters = {p.relative_to(ROOT).as_posix() for p in (ROOT / "book" / "papers").glob("*.md")
                if "```{code-cell}" in p.read_text(encoding="utf-8")}
    assert chapters and chapters <= staged
    assert not any(s.startswith("notebooks/") for s in staged)
    assert all(s.endswith(".md") for s in staged)


def test_the_cache_is_the_one_the_build_reads():
    assert prebuild.cache_path() == ROOT / "_build" / ".jupyter_cache"
    assert prebuild.READER == {"name": "myst_nb_md", "type": "plugin"}


def test_the_inputs_digest_follows_the_records(tmp_path):
    (tmp_path / "src" / "diffnotes" / "data").mkdir(parents=True)
    (tmp_path / "notebooks" / "results" / "untrained").mkdir(parents=True)
    (tmp_path / "src" / "diffnotes" / "book.py").write_text("x = 1\n")
    record = tmp_path / "notebooks" / "results" / "untrained" / "demo.json"
    record.write_text("{}")
    before = prebuild.inputs_digest(tmp_path)
    assert prebuild.inputs_digest(tmp_path) == before
    record.write_text('{"claims": []}')
    assert prebuild.inputs_digest(tmp_path) != before
