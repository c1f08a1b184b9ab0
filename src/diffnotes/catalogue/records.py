"""The papers of the notes, loaded and validated: who, where, what they contributed, their numbers.

The data live in ``diffnotes/data/papers.yaml`` (one record per paper, every number with the
table it comes from). Validation is strict on purpose: a difference between the notes and the
catalogue in venue, year or FID must come with a written correction, so the book never changes a
number silently. Rendering the tables is :mod:`diffnotes.catalogue.render`'s job.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATA_FILE = Path(__file__).parent.parent / "data" / "papers.yaml"

THEMES = (
    "Score matching and foundations",
    "DDPM family and samplers",
    "SDE view and EDM",
    "Conditioning and inverse problems",
    "Efficiency",
    "Related ideas",
)

# Metric key -> (short label used in the tables, unit or "").
METRICS = {
    "fid_uncond": ("FID (uncond.)", ""),
    "fid_cond": ("FID (cond.)", ""),
    "nll_bpd": ("NLL", "bits/dim"),
    "inception": ("IS", ""),
    "compression_ratio": ("compression ratio", "×"),  # the setting names model and data set
    "test_error": ("test error", "%"),
}

# How a number was confirmed while the catalogue was written (see papers.yaml's header).
# In every case the table reference itself comes from an earlier reading of the paper.
CHECKED = {
    "abstract": "the same number is stated in the paper's abstract",
    "secondary": "independent summaries of the paper agree on the number",
    "recall": "read from the named table earlier, not re-confirmed against a copy this time",
    "table": "read in the named table of a full-text copy of the paper while writing this file",
}
UNCONFIRMED_MARK = "†"  # shown after numbers whose `checked` is "recall"

BOUNDS = ("", "<=")

# Fields of the notes that the catalogue compares with its own values.
NOTES_FIELDS = ("venue", "year", "alias", "fid_uncond", "fid_cond")
COMPARED_FIELDS = ("venue", "year", "fid_uncond", "fid_cond")  # a difference needs a correction

FIELD_LABELS = {
    "venue": "Venue",
    "year": "Year",
    "alias": "Alias",
    "fid_uncond": "CIFAR-10 FID (uncond.)",
    "fid_cond": "CIFAR-10 FID (cond.)",
}

KEY_PATTERN = re.compile(r"^[a-z]+\d{4}[a-z]+$")
SOURCE_PATTERN = re.compile(r"^(Table \d+[a-z]?|Section \d+(\.\d+)*|Appendix [A-Z](\.\d+)*|Abstract)$")

_REQUIRED = ("key", "alias", "title", "venue", "year", "theme", "in_outlook_table", "contribution",
             "architecture", "results", "notes", "notes_said", "review")
_OPTIONAL = ("other_results",)
OTHER_FIELDS = ("metric", "value", "dataset", "setting", "source", "checked")

# The columns of ``results`` are CIFAR-10's: an FID there must say so (``dataset: CIFAR-10``), and
# an FID on any other data set belongs in ``other_results``.
RESULTS_DATASET = "CIFAR-10"
FID_METRICS = ("fid_uncond", "fid_cond")

# The second-pass review of a chapter against its paper (issue 23): either this sentence, or a
# mapping with these fields (see papers.yaml's header).
NOT_REVIEWED = "not reviewed in the second pass"
REVIEW_FIELDS = ("against", "date", "by", "fixed")
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Result:
    """One headline number: CIFAR-10 ``metric`` = ``value`` in the paper's ``source``."""

    metric: str
    text: str  # the value with the paper's digits, e.g. "2.20"
    source: str
    checked: str
    setting: str = ""
    bound: str = ""
    dataset: str = ""  # "CIFAR-10" for every FID; may be left empty for the other metrics

    @property
    def value(self) -> float:
        return float(self.text)

    def render(self) -> str:
        """E.g. ``≤3.75 (T1)``; a dagger marks numbers not re-confirmed (see ``CHECKED``)."""
        bound = "≤" if self.bound == "<=" else ""
        mark = UNCONFIRMED_MARK if self.checked == "recall" else ""
        return f"{bound}{self.text} ({_short_source(self.source)}){mark}"


@dataclass(frozen=True)
class OtherResult:
    """A number outside the CIFAR-10 columns: any ``metric`` on any ``dataset`` (ImageNet FIDs,
    PSNR, speed-ups, ...), with the paper's ``source`` and how it was ``checked``. ``value`` is
    the paper's text (e.g. "2.97" or "20x to 80x")."""

    metric: str
    value: str
    dataset: str
    setting: str
    source: str
    checked: str

    def render(self) -> str:
        mark = UNCONFIRMED_MARK if self.checked == "recall" else ""
        return f"{self.value} ({_short_source(self.source)}){mark}"


@dataclass(frozen=True)
class Correction:
    """Where the notes differ from the catalogue: the field, what they said, and why it changed."""

    field: str
    said: str
    correction: str


@dataclass(frozen=True)
class Review:
    """The second-pass review of a chapter: what it was checked ``against`` (e.g. "full text +
    official code"), the ISO ``date``, ``by`` whom or in which role, and the items ``fixed``.
    ``Review.none()`` is a chapter not reviewed in the second pass."""

    against: str = ""
    date: str = ""
    by: str = ""
    fixed: tuple = ()

    @property
    def reviewed(self) -> bool:
        return bool(self.date)

    @classmethod
    def none(cls) -> "Review":
        return cls()

    def render(self) -> str:
        return NOT_REVIEWED if not self.reviewed else f"{self.date}, {self.by}, against {self.against}"


@dataclass(frozen=True)
class Paper:
    key: str
    alias: str
    title: str
    venue: str
    year: int
    theme: str
    in_outlook_table: bool
    contribution: str
    architecture: str
    results: dict = field(default_factory=dict)  # metric -> Result
    notes: dict = field(default_factory=dict)  # field -> what the notes wrote (str)
    notes_said: tuple = ()  # of Correction
    other_results: tuple = ()  # of OtherResult
    review: Review = field(default_factory=Review.none)

    def result(self, metric: str) -> Result | None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
        return self.results.get(metric)


# --------------------------------------------------------------------------- loading, validation


def _short_source(source: str) -> str:
    return (source.replace("Table ", "T").replace("Section ", "§").replace("Appendix ", "App. ")
            .replace("Abstract", "abs."))


def _fail(where: str, message: str):
    raise ValueError(f"papers.yaml: {where}: {message}")


def _text(record: dict, name: str, where: str, *, allow_empty: bool = False) -> str:
    value = record[name]
    if not isinstance(value, str):
        _fail(where, f"field {name!r} must be a string, got {type(value).__name__}")
    value = " ".join(value.split())
    if not value and not allow_empty:
        _fail(where, f"field {name!r} is empty")
    return value


def _parse_result(metric: str, raw, where: str) -> Result:
    where = f"{where}, result {metric!r}"
    if metric not in METRICS:
        _fail(where, f"unknown metric; valid: {', '.join(METRICS)}")
    if not isinstance(raw, dict):
        _fail(where, "must be a mapping with value, source and checked")
    unknown = set(raw) - {"value", "source", "checked", "setting", "bound", "dataset"}
    if unknown:
        _fail(where, f"unknown field(s) {sorted(unknown)}; valid: value, source, checked, setting, bound, dataset")
    for name in ("value", "source", "checked"):
        if name not in raw:
            _fail(where, f"missing field {name!r} (every number needs its value, source table and how it was checked)")
    text = raw["value"]
    if not isinstance(text, str):
        _fail(where, f"field 'value' must be a quoted string (to keep the paper's digits), got {text!r}")
    try:
        number = float(text)
    except ValueError:
        _fail(where, f"field 'value' {text!r} is not a number")
    if not (math.isfinite(number) and number > 0):
        _fail(where, f"field 'value' {text!r} must be a positive finite number")
    source = raw["source"]
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source):
        _fail(where, f"field 'source' {source!r} must name the paper's place, e.g. 'Table 2', "
                     "'Section 4.1', 'Appendix C' or 'Abstract'")
    checked = raw["checked"]
    if checked not in CHECKED:
        _fail(where, f"field 'checked' {checked!r} is not one of {', '.join(CHECKED)}")
    bound = raw.get("bound", "")
    if bound not in BOUNDS:
        _fail(where, f"field 'bound' {bound!r} is not one of {BOUNDS}")
    setting = raw.get("setting", "")
    if not isinstance(setting, str):
        _fail(where, "field 'setting' must be a string")
    dataset = raw.get("dataset", "")
    if not isinstance(dataset, str):
        _fail(where, "field 'dataset' must be a string")
    if metric in FID_METRICS and dataset != RESULTS_DATASET:
        if not dataset:
            _fail(where, f"a headline FID needs its data set: add dataset: {RESULTS_DATASET} "
                         "(an FID on another data set goes under other_results)")
        _fail(where, f"dataset {dataset!r} is not {RESULTS_DATASET}: the FID columns are "
                     f"{RESULTS_DATASET}'s, so move this number to other_results")
    return Result(metric, text, source, checked, " ".join(setting.split()), bound, dataset)


def _parse_other_results(raw, where: str) -> tuple:
    if not isinstance(raw, list):
        _fail(where, "field 'other_results' must be a list of {metric, value, dataset, setting, source, checked}")
    out = []
    for j, r in enumerate(raw):
        rw = f"{where}, other_results #{j + 1}"
        if not isinstance(r, dict) or set(r) != set(OTHER_FIELDS):
            _fail(rw, f"must have exactly the fields {', '.join(OTHER_FIELDS)}")
        if not all(isinstance(r[f], str) and r[f].strip() for f in OTHER_FIELDS):
            _fail(rw, "every field must be a non-empty string (quote numbers to keep the paper's digits)")
        if not SOURCE_PATTERN.match(r["source"]):
            _fail(rw, f"field 'source' {r['source']!r} must name the paper's place, e.g. 'Table 2', "
                      "'Section 4.1', 'Appendix C' or 'Abstract'")
        if r["checked"] not in CHECKED:
            _fail(rw, f"field 'checked' {r['checked']!r} is not one of {', '.join(CHECKED)}")
        out.append(OtherResult(*(" ".join(r[f].split()) for f in OTHER_FIELDS)))
    return tuple(out)


def _parse_review(raw, where: str) -> Review:
    where = f"{where}, review"
    if raw == NOT_REVIEWED:
        return Review.none()
    if not isinstance(raw, dict) or set(raw) != set(REVIEW_FIELDS):
        _fail(where, f"must be {NOT_REVIEWED!r} or a mapping with exactly the fields "
                     f"{', '.join(REVIEW_FIELDS)}")
    for name in ("against", "by"):
        if not isinstance(raw[name], str) or not raw[name].strip():
            _fail(where, f"field {name!r} must be a non-empty string")
    date = str(raw["date"])  # YAML reads an unquoted 2026-12-07 as a date
    if not _DATE_PATTERN.match(date):
        _fail(where, f"field 'date' {date!r} must be an ISO date, e.g. 2026-12-07")
    fixed = raw["fixed"]
    if not isinstance(fixed, list) or not fixed or not all(isinstance(f, str) and f.strip() for f in fixed):
        _fail(where, "field 'fixed' must be a non-empty list of the items fixed, one sentence each")
    return Review(" ".join(raw["against"].split()), date, " ".join(raw["by"].split()),
                  tuple(" ".join(f.split()) for f in fixed))


def _parse_paper(raw, index: int) -> Paper:
    if not isinstance(raw, dict):
        _fail(f"paper #{index + 1}", f"must be a mapping, got {type(raw).__name__}")
    key = raw.get("key")
    where = f"paper {key!r}" if isinstance(key, str) else f"paper #{index + 1}"
    missing = [name for name in _REQUIRED if name not in raw]
    if missing:
        _fail(where, f"missing field(s) {missing}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        _fail(where, f"unknown field(s) {unknown}; valid: {', '.join(_REQUIRED + _OPTIONAL)}")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        _fail(where, f"field 'key' {key!r} must look like <author><year><word>, e.g. 'ho2020denoising'")
    year = raw["year"]
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2100:
        _fail(where, f"field 'year' {year!r} must be an integer year")
    if str(year) not in key:
        _fail(where, f"field 'year' {year} does not match the year in the key")
    theme = raw["theme"]
    if theme not in THEMES:
        _fail(where, f"field 'theme' {theme!r} is not one of: {'; '.join(THEMES)}")
    if not isinstance(raw["in_outlook_table"], bool):
        _fail(where, "field 'in_outlook_table' must be true or false")

    results_raw = raw["results"]
    if not isinstance(results_raw, dict):
        _fail(where, "field 'results' must be a mapping metric -> {value, source, checked}")
    results = {m: _parse_result(m, r, where) for m, r in results_raw.items()}

    notes = raw["notes"]
    if not isinstance(notes, dict):
        _fail(where, "field 'notes' must be a mapping")
    bad = sorted(set(notes) - set(NOTES_FIELDS))
    if bad:
        _fail(where, f"field 'notes' has unknown key(s) {bad}; valid: {', '.join(NOTES_FIELDS)}")
    notes = {k: ("" if v is None else str(v)) for k, v in notes.items()}
    if raw["in_outlook_table"] and "year" not in notes:
        _fail(where, "is in the notes' outlook table, so 'notes' must record at least the row's year")

    said_raw = raw["notes_said"]
    if not isinstance(said_raw, list):
        _fail(where, "field 'notes_said' must be a list")
    corrections = []
    for j, c in enumerate(said_raw):
        cw = f"{where}, notes_said #{j + 1}"
        if not isinstance(c, dict) or set(c) != {"field", "said", "correction"}:
            _fail(cw, "must have exactly the fields field, said, correction")
        if c["field"] not in NOTES_FIELDS:
            _fail(cw, f"field {c['field']!r} is not one of {', '.join(NOTES_FIELDS)}")
        said = str(c["said"])
        if c["field"] in notes and notes[c["field"]] != said:
            _fail(cw, f"says the notes wrote {said!r} for {c['field']!r}, but 'notes' records {notes[c['field']]!r}")
        text = " ".join(str(c["correction"]).split())
        if len(text) < 20:
            _fail(cw, "the correction must be a sentence saying what is right and why")
        corrections.append(Correction(c["field"], said, text))

    paper = Paper(
        key=key,
        alias=_text(raw, "alias", where),
        title=_text(raw, "title", where),
        venue=_text(raw, "venue", where),
        year=year,
        theme=theme,
        in_outlook_table=raw["in_outlook_table"],
        contribution=_text(raw, "contribution", where),
        architecture=_text(raw, "architecture", where, allow_empty=True),
        results=results,
        notes=notes,
        notes_said=tuple(corrections),
        other_results=_parse_other_results(raw.get("other_results", []), where),
        review=_parse_review(raw["review"], where),
    )
    _check_against_notes(paper, where)
    return paper


def _catalogue_value(paper: Paper, name: str):
    if name == "venue":
        return paper.venue
    if name == "year":
        return paper.year
    if name == "alias":
        return paper.alias
    result = paper.results.get(name)
    return None if result is None else result.value


def _check_against_notes(paper: Paper, where: str) -> None:
    """Every difference between the notes and the catalogue (venue, year, FID) needs a correction."""
    corrected = {c.field for c in paper.notes_said}
    for name in COMPARED_FIELDS:
        said = paper.notes.get(name, "")
        if not said:
            continue  # the notes left it empty: filling it in is not a correction
        ours = _catalogue_value(paper, name)
        if name in ("fid_uncond", "fid_cond"):
            try:
                said_value = float(said)
            except ValueError:
                _fail(where, f"notes value {said!r} for {name!r} is not a number")
            same = ours is not None and math.isclose(said_value, ours)
        elif name == "year":
            same = str(ours) == said
        else:
            same = ours == said
        if not same and name not in corrected:
            _fail(where, f"the notes say {name} = {said!r} but the catalogue has {ours!r}; "
                         f"add a notes_said entry for {name!r} with the correction")


def parse_papers(data) -> list[Paper]:
    """Validate the loaded YAML (``{"papers": [...]}``) and return the papers in file order."""
    if not isinstance(data, dict) or not isinstance(data.get("papers"), list):
        raise ValueError("papers.yaml: the top level must be a mapping with a list under 'papers'")
    papers = [_parse_paper(raw, i) for i, raw in enumerate(data["papers"])]
    seen = set()
    for p in papers:
        if p.key in seen:
            raise ValueError(f"papers.yaml: paper {p.key!r} appears twice")
        seen.add(p.key)
    return papers


def load(path: Path | str | None = None) -> list[Paper]:
    path = Path(path) if path is not None else DATA_FILE
    with open(path, encoding="utf-8") as fh:
        return parse_papers(yaml.safe_load(fh))


@functools.lru_cache(maxsize=1)
def _default() -> tuple:
    return tuple(load())


def papers() -> list[Paper]:
    """All papers of the notes, in the data file's order (grouped by theme)."""
    return list(_default())


def get(key: str) -> Paper:
    for p in _default():
        if p.key == key:
            return p
    raise ValueError(f"no paper {key!r} in the catalogue; valid keys: {', '.join(sorted(p.key for p in _default()))}")
