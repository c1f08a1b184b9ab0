"""The paper catalogue (diffnotes.catalogue + data/papers.yaml) and its generated tables."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffnotes import catalogue
from diffnotes.tables import GENERATED_DIR, check_tables, write_tables

ROOT = Path(__file__).resolve().parents[1]
MY_TABLES = ("outlook", "corrections", "paper-numbers")


@pytest.fixture(scope="module")
def raw():
    with open(catalogue.DATA_FILE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _record(raw, key):
    return next(r for r in raw["papers"] if r["key"] == key)


# --------------------------------------------------------------------------- the data


def test_loads_28_papers_with_known_themes():
    papers = catalogue.papers()
    assert len(papers) == 28
    assert {p.theme for p in papers} <= set(catalogue.THEMES)
    # 15 rows in the notes' outlook table, 11 papers only in their list, and the book's own
    # bridge chapter (theis2022lossy) and classifier-free guidance (ho2022classifier)
    assert sum(p.in_outlook_table for p in papers) == 15


def test_get_and_unknown_key():
    assert catalogue.get("ho2020denoising").alias == "DDPM"
    with pytest.raises(ValueError, match=r"no paper 'ho2020ddpm'.*valid keys: .*ho2020denoising"):
        catalogue.get("ho2020ddpm")


def test_numbers_the_notes_had_right():
    """The notes' FIDs that survive verification, with the table they come from."""
    expect = {
        ("song2019generative", "fid_uncond"): ("25.32", "Table 1"),
        ("song2019generative", "inception"): ("8.87", "Table 1"),
        ("ho2020denoising", "fid_uncond"): ("3.17", "Table 1"),
        ("ho2020denoising", "nll_bpd"): ("3.75", "Table 1"),
        ("song2021score", "fid_uncond"): ("2.20", "Table 3"),
        ("song2021score", "nll_bpd"): ("2.99", "Table 2"),
        ("karras2022elucidating", "fid_uncond"): ("1.97", "Table 2"),
        ("karras2022elucidating", "fid_cond"): ("1.79", "Table 2"),
    }
    for (key, metric), (text, source) in expect.items():
        r = catalogue.get(key).result(metric)
        assert r is not None and (r.text, r.source) == (text, source), (key, metric, r)


def test_iddpm_correction_is_recorded():
    p = catalogue.get("nichol2021improved")
    # 2.94 is a likelihood, not an FID: the FID cell is empty, the NLL carries 2.94
    assert p.result("fid_uncond") is None
    assert p.result("nll_bpd").text == "2.94"
    fix = [c for c in p.notes_said if c.field == "fid_uncond"]
    assert len(fix) == 1 and fix[0].said == "2.94"
    assert "bits/dim" in fix[0].correction and "not an FID" in fix[0].correction


def test_every_number_names_its_source():
    n = 0
    for p in catalogue.papers():
        for r in p.results.values():
            n += 1
            assert catalogue.SOURCE_PATTERN.match(r.source), (p.key, r)
            assert r.checked in catalogue.CHECKED
            assert r.setting, f"{p.key} {r.metric}: say which model/sampler the number belongs to"
    assert n >= 12


# --------------------------------------------------------------------------- validation errors


def _parse_with(raw, key, **changes):
    data = copy.deepcopy(raw)
    rec = _record(data, key)
    for name, value in changes.items():
        if value is _DELETE:
            del rec[name]
        else:
            rec[name] = value
    return catalogue.parse_papers(data)


_DELETE = object()


def test_validation_accepts_the_shipped_file(raw):
    assert len(catalogue.parse_papers(copy.deepcopy(raw))) == 28


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"theme": "Samplers"}, r"paper 'ho2020denoising': field 'theme' 'Samplers' is not one of: Score matching"),
        ({"year": "2020"}, r"paper 'ho2020denoising': field 'year' '2020' must be an integer year"),
        ({"year": 2019}, r"paper 'ho2020denoising': field 'year' 2019 does not match the year in the key"),
        ({"alias": _DELETE}, r"paper 'ho2020denoising': missing field\(s\) \['alias'\]"),
        ({"colour": "red"}, r"paper 'ho2020denoising': unknown field\(s\) \['colour'\]"),
        ({"contribution": "  "}, r"paper 'ho2020denoising': field 'contribution' is empty"),
        ({"in_outlook_table": "yes"}, r"field 'in_outlook_table' must be true or false"),
    ],
)
def test_validation_errors_name_paper_and_field(raw, changes, message):
    with pytest.raises(ValueError, match=message):
        _parse_with(raw, "ho2020denoising", **changes)


@pytest.mark.parametrize(
    "result, message",
    [
        ({"value": 3.17, "source": "Table 1", "checked": "abstract"}, r"field 'value' must be a quoted string"),
        ({"value": "3.17", "checked": "abstract"}, r"missing field 'source'"),
        ({"value": "3.17", "source": "the paper", "checked": "abstract"}, r"field 'source' 'the paper' must name"),
        ({"value": "3.17", "source": "Table 1", "checked": "trust me"}, r"field 'checked' 'trust me' is not one of"),
        ({"value": "-1", "source": "Table 1", "checked": "abstract"}, r"field 'value' '-1' must be a positive finite number"),
    ],
)
def test_result_errors_name_paper_metric_and_field(raw, result, message):
    with pytest.raises(ValueError, match=r"paper 'ho2020denoising', result 'fid_uncond': " + message):
        _parse_with(raw, "ho2020denoising", results={"fid_uncond": result})


def test_headline_fid_needs_cifar10_as_its_dataset(raw):
    """The FID columns are CIFAR-10's: an FID without a data set, or on another, is refused."""
    rec = copy.deepcopy(_record(raw, "ho2020denoising"))
    del rec["results"]["fid_uncond"]["dataset"]
    with pytest.raises(ValueError) as err:
        _parse_with(raw, "ho2020denoising", results=rec["results"])
    message = str(err.value)
    assert "\n" not in message  # one line
    assert message == ("papers.yaml: paper 'ho2020denoising', result 'fid_uncond': a headline FID needs "
                       "its data set: add dataset: CIFAR-10 (an FID on another data set goes under "
                       "other_results)")
    rec["results"]["fid_uncond"]["dataset"] = "ImageNet 256x256"
    with pytest.raises(ValueError, match=r"result 'fid_uncond': dataset 'ImageNet 256x256' is not "
                                         r"CIFAR-10: .* move this number to other_results"):
        _parse_with(raw, "ho2020denoising", results=rec["results"])


def test_no_headline_fid_from_another_dataset():
    """ADM's 4.59, CFG's 2.43 and SR3's 11.3 (ImageNet) left the CIFAR-10 column (issue 23)."""
    for p in catalogue.papers():
        for metric in ("fid_uncond", "fid_cond"):
            r = p.result(metric)
            assert r is None or r.dataset == catalogue.RESULTS_DATASET, (p.key, r)
    for key, value in (("dhariwal2021diffusion", "4.59"), ("ho2022classifier", "2.43 / 158.47"),
                       ("saharia2022image", "11.3")):
        p = catalogue.get(key)
        assert not p.results, key
        assert any(o.value == value and "ImageNet" in o.dataset for o in p.other_results), key


REVIEW = {"against": "full text + official code", "date": "2026-12-07", "by": "a reviewer",
          "fixed": ["one thing"]}


def test_review_field_parses_and_defaults_to_not_reviewed(raw):
    papers = _parse_with(raw, "ho2020denoising", review=REVIEW)
    r = next(p for p in papers if p.key == "ho2020denoising").review
    assert r.reviewed and (r.against, r.date, r.by, r.fixed) == (
        "full text + official code", "2026-12-07", "a reviewer", ("one thing",))
    import datetime
    dated = dict(REVIEW, date=datetime.date(2026, 12, 7))  # YAML's unquoted date
    assert next(p for p in _parse_with(raw, "ho2020denoising", review=dated)
                if p.key == "ho2020denoising").review.date == "2026-12-07"
    unreviewed = next(p for p in _parse_with(raw, "ho2020denoising", review=catalogue.NOT_REVIEWED)
                      if p.key == "ho2020denoising").review
    assert not unreviewed.reviewed and unreviewed.render() == catalogue.NOT_REVIEWED


@pytest.mark.parametrize("review, message", [
    (_DELETE, r"missing field\(s\) \['review'\]"),
    ("reviewed", r"review: must be 'not reviewed in the second pass' or a mapping"),
    ({**REVIEW, "date": "7 Dec"}, r"review: field 'date' '7 Dec' must be an ISO date"),
    ({**REVIEW, "fixed": []}, r"review: field 'fixed' must be a non-empty list"),
    ({**REVIEW, "by": " "}, r"review: field 'by' must be a non-empty string"),
    ({k: v for k, v in REVIEW.items() if k != "against"}, r"review: must be .* exactly the fields against"),
])
def test_review_errors_name_the_paper(raw, review, message):
    with pytest.raises(ValueError, match=r"paper 'ho2020denoising'.*" + message):
        _parse_with(raw, "ho2020denoising", review=review)


def test_guidance_chapters_are_marked_reviewed():
    for key in ("dhariwal2021diffusion", "ho2022classifier"):
        r = catalogue.get(key).review
        assert r.reviewed and r.date == "2026-12-07" and r.fixed, key


def test_review_table_lists_every_chapter():
    from diffnotes.book_status import render_review_table

    text = render_review_table(ROOT)
    rows = [line for line in text.splitlines()[2:] if line.startswith("| [")]
    chapters = {p.stem for p in (ROOT / "book" / "papers").glob("*.md")} - {"index"}
    assert len(rows) == len(chapters & {p.key for p in catalogue.papers()})
    adm = next(r for r in rows if "papers/dhariwal2021diffusion.md" in r)
    assert "2026-12-07" in adm and "official code" in adm
    unreviewed = [p.key for p in catalogue.papers() if not p.review.reviewed]
    assert sum(catalogue.NOT_REVIEWED in r for r in rows) == len(chapters & set(unreviewed))


def test_unknown_metric_is_rejected(raw):
    with pytest.raises(ValueError, match=r"result 'fid_imagenet': unknown metric; valid: fid_uncond"):
        _parse_with(raw, "ho2020denoising", results={"fid_imagenet": {"value": "1", "source": "Table 1", "checked": "abstract"}})


OTHER = {"metric": "FID", "value": "2.97", "dataset": "ImageNet 128x128", "setting": "ADM-G",
         "source": "Abstract", "checked": "abstract"}


def test_other_results_parse_and_render(raw):
    papers = _parse_with(raw, "dhariwal2021diffusion", other_results=[OTHER])
    (o,) = next(p for p in papers if p.key == "dhariwal2021diffusion").other_results
    assert (o.metric, o.value, o.dataset, o.render()) == ("FID", "2.97", "ImageNet 128x128", "2.97 (abs.)")
    rows = _rows(catalogue.render_numbers(papers))
    assert any("| FID (ImageNet 128x128) | 2.97 | ADM-G | Abstract | abstract |" in r for r in rows)


@pytest.mark.parametrize("change, message", [
    ({"source": "somewhere"}, r"other_results #1: field 'source' 'somewhere' must name"),
    ({"checked": "hope"}, r"other_results #1: field 'checked' 'hope' is not one of"),
    ({"value": 2.97}, r"other_results #1: every field must be a non-empty string"),
    ({"dataset": None}, r"other_results #1: every field must be a non-empty string"),
    ({"extra": "x"}, r"other_results #1: must have exactly the fields metric, value"),
])
def test_other_results_errors_name_the_entry(raw, change, message):
    entry = {k: v for k, v in {**OTHER, **change}.items()}
    with pytest.raises(ValueError, match=r"paper 'dhariwal2021diffusion', " + message):
        _parse_with(raw, "dhariwal2021diffusion", other_results=[entry])


def test_silent_change_of_a_notes_number_is_rejected(raw):
    """Dropping the iDDPM correction, or changing DDPM's FID, without saying why must fail."""
    with pytest.raises(ValueError, match=r"paper 'nichol2021improved': the notes say fid_uncond = '2.94' but the catalogue has None; add a notes_said"):
        _parse_with(raw, "nichol2021improved", notes_said=[c for c in _record(raw, "nichol2021improved")["notes_said"] if c["field"] != "fid_uncond"])
    rec = copy.deepcopy(_record(raw, "ho2020denoising"))
    rec["results"]["fid_uncond"]["value"] = "3.21"
    with pytest.raises(ValueError, match=r"paper 'ho2020denoising': the notes say fid_uncond = '3.17' but the catalogue has 3.21"):
        _parse_with(raw, "ho2020denoising", results=rec["results"])


def test_correction_must_quote_the_notes(raw):
    said = copy.deepcopy(_record(raw, "nichol2021improved")["notes_said"])
    said[0]["said"] = "2.90"
    with pytest.raises(ValueError, match=r"notes_said #1: says the notes wrote '2.90' for 'fid_uncond', but 'notes' records '2.94'"):
        _parse_with(raw, "nichol2021improved", notes_said=said)


def test_duplicate_paper_and_bad_top_level(raw):
    data = copy.deepcopy(raw)
    data["papers"].append(copy.deepcopy(data["papers"][0]))
    with pytest.raises(ValueError, match=r"paper 'hyvarinen2005estimation' appears twice"):
        catalogue.parse_papers(data)
    with pytest.raises(ValueError, match=r"top level must be a mapping with a list under 'papers'"):
        catalogue.parse_papers([1, 2])


def test_result_lookup_rejects_unknown_metric():
    with pytest.raises(ValueError, match=r"unknown metric 'fid'; valid: fid_uncond, fid_cond, nll_bpd, inception"):
        catalogue.get("ho2020denoising").result("fid")


# --------------------------------------------------------------------------- rendered tables


def _rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| {cite:t}")]


def test_outlook_has_every_paper_once_in_year_order():
    text = catalogue.render_outlook()
    rows = _rows(text)
    keys = [re.search(r"\{cite:t\}`([^`]+)`", r).group(1) for r in rows]
    assert sorted(keys) == sorted(p.key for p in catalogue.papers())
    years = [catalogue.get(k).year for k in keys]
    assert years == sorted(years)
    header = text.splitlines()[0]
    for column in ("Paper", "Venue", "Year", "Alias", "FID uncond.", "FID cond.", "Contribution", "Architecture"):
        assert f"| {column} |" in header or header.startswith(f"| {column} ")
    n_columns = header.count("|")
    assert all(r.count("|") == n_columns for r in rows), "a cell contains a stray pipe"


def test_outlook_renders_numbers_with_their_source():
    rows = {re.search(r"`([^`]+)`", r).group(1): r for r in _rows(catalogue.render_outlook())}
    assert "| 3.17 (T1) |" in rows["ho2020denoising"]
    assert "| 1.97 (T2) | 1.79 (T2) |" in rows["karras2022elucidating"]
    # DDPM's NLL was re-read in Table 1's text (checked: table); NCSN's FID was not (recall: †)
    assert "NLL ≤3.75 (T1) bits/dim" in rows["ho2020denoising"]
    assert "| 25.32 (T1)† |" in rows["song2019generative"]
    iddpm = rows["nichol2021improved"].split(" | ")
    assert iddpm[4] == "–" and "NLL 2.94 (T3) bits/dim" in rows["nichol2021improved"]


def test_corrections_table_shows_the_iddpm_fix():
    text = catalogue.render_corrections()
    row = next(r for r in _rows(text) if "nichol2021improved" in r and "FID" in r)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["CIFAR-10 FID (uncond.)", "2.94", "(left empty)"]
    assert "bits/dim" in cells[4]
    # one row per recorded correction
    assert len(_rows(text)) == sum(len(p.notes_said) for p in catalogue.papers())


def test_numbers_table_lists_every_number():
    rows = _rows(catalogue.render_numbers())
    assert len(rows) == sum(len(p.results) + len(p.other_results) for p in catalogue.papers())
    assert any("karras2022elucidating" in r and "| 1.79 |" in r and "| Table 2 |" in r for r in rows)


# --------------------------------------------------------------------------- drift of the committed files


def test_committed_tables_are_current():
    for table in catalogue.GENERATED_TABLES:
        path = ROOT / table.relpath
        assert path.exists(), f"{table.relpath} missing: run `python -m diffnotes tables`"
        assert path.read_text(encoding="utf-8") == table.text(), (
            f"{table.relpath} drifted: run `python -m diffnotes tables` and commit")


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "diffnotes", "tables", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_check_passes_and_detects_drift(tmp_path):
    ok = _cli("--check", *MY_TABLES)
    assert ok.returncode == 0, ok.stderr
    assert "tables: all current" in ok.stdout

    # a copy of the repository root with only what the check needs, then one tampered number
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    (tmp_path / GENERATED_DIR).mkdir(parents=True)
    for name in MY_TABLES:
        shutil.copy(ROOT / GENERATED_DIR / f"{name}.md", tmp_path / GENERATED_DIR / f"{name}.md")
    outlook = tmp_path / GENERATED_DIR / "outlook.md"
    text = outlook.read_text(encoding="utf-8")
    assert "| 3.17 (T1) |" in text
    outlook.write_text(text.replace("| 3.17 (T1) |", "| 2.94 (T1) |"), encoding="utf-8")

    bad = _cli("--check", "--root", str(tmp_path), *MY_TABLES)
    assert bad.returncode == 1
    assert "table 'outlook' drifted from the code" in bad.stderr
    assert "-| {cite:t}`ho2020denoising`" in bad.stderr and "2.94 (T1)" in bad.stderr
    assert "'corrections'" not in bad.stderr  # only the tampered table is reported
    assert "tables: 1 drifted" in bad.stderr

    # writing repairs it (in-process: the CLI's write path is the same function)
    write_tables(tmp_path, list(MY_TABLES))
    assert outlook.read_text(encoding="utf-8") == text
    assert check_tables(tmp_path, list(MY_TABLES)) == []


def test_index_page_includes_tables_and_cites_every_paper():
    page = (ROOT / "book" / "papers" / "index.md").read_text(encoding="utf-8")
    for name in MY_TABLES:
        assert f"```{{include}} ../_generated/{name}.md\n```" in page
        assert (ROOT / "book" / "papers" / f"../_generated/{name}.md").resolve().is_file()
    cited = {k.strip() for g in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]*)`", page) for k in g.split(",")}
    missing = sorted({p.key for p in catalogue.papers()} - cited)
    assert not missing, f"book/papers/index.md does not cite: {missing}"
