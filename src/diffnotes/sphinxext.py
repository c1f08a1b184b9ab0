"""Small Sphinx fixes for the site (listed in `_config.yml` under `sphinx.extra_extensions`).

* pydata-sphinx-theme logs a console error ("Got invalid theme mode") on a first visit when no
  ``default_mode`` is in the page context (sphinx-book-theme has no option for it), so we set it.
* sphinx-thebe 0.3 registers its inline configuration script twice, which redeclares a ``const``
  and raises a SyntaxError in the browser; identical scripts are kept once per page.
* Lab notebook pages (``notebooks/...``) drop the right-hand "on this page" column, so their
  figures (stored at the width they were drawn) get the width the column gives up instead of
  being scaled down; ``book/_static/css/diffnotes.css`` keeps their prose at the chapters'
  measure. (The notebook's own headings stay in the left navigation and the page.)
* Counts the pages state are computed, not typed: ``{{ n_papers }}`` (MyST substitution) is the
  number of papers in the catalogue (`src/diffnotes/data/papers.yaml`).

The browser tests (`tests/site/test_browser.py`) fail if either error comes back.
"""

from __future__ import annotations


def _page_context(app, pagename, templatename, context, doctree):
    if not context.get("default_mode"):
        context["default_mode"] = "light"
    if pagename.startswith("notebooks/"):
        meta = context.get("meta")
        if meta is None:
            context["meta"] = meta = {}
        meta["html_theme.sidebar_secondary.remove"] = "true"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = (
            getattr(script, "filename", None) or "",  # None and "" both mean an inline script
            repr(sorted(getattr(script, "attributes", {}).items())),
        )
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def _substitutions(app, config):
    from . import catalogue

    computed = {"n_papers": str(len(catalogue.papers()))}
    config.myst_substitutions = {**(config.myst_substitutions or {}), **computed}


def setup(app):
    app.connect("config-inited", _substitutions)
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
