"""The papers of the notes: ``records`` loads and validates them, ``render`` draws their tables.

``diffnotes.catalogue.get(key)`` and ``papers()`` are what chapters and notebooks use; the
rendering functions are re-exported for the tests and the book's pages.
"""

from .records import (CHECKED, COMPARED_FIELDS, DATA_FILE, FIELD_LABELS, KEY_PATTERN, METRICS,
                      NOT_REVIEWED, NOTES_FIELDS, RESULTS_DATASET, SOURCE_PATTERN, THEMES,
                      UNCONFIRMED_MARK, Correction, Paper, Result, Review, get, load, papers,
                      parse_papers)
from .render import (GENERATED_TABLES, THEME_SLUGS, render_corrections, render_numbers,
                     render_outlook, render_theme)

__all__ = ["CHECKED", "COMPARED_FIELDS", "DATA_FILE", "FIELD_LABELS", "KEY_PATTERN", "METRICS",
           "NOT_REVIEWED", "NOTES_FIELDS", "RESULTS_DATASET", "SOURCE_PATTERN", "THEMES",
           "UNCONFIRMED_MARK", "Correction", "Paper", "Result", "Review", "get", "load", "papers", "parse_papers", "GENERATED_TABLES", "THEME_SLUGS",
           "render_corrections", "render_numbers", "render_outlook", "render_theme"]
