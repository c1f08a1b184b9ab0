"""Every internal link, anchor and asset of the built site resolves (no network needed)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

EXTERNAL_SCHEMES = {"http", "https", "mailto", "javascript", "data", "tel"}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (attribute, value)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(("href", attrs["href"]))
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(("src", attrs["src"]))
        if tag == "link" and attrs.get("href") and "stylesheet" in (attrs.get("rel") or ""):
            self.links.append(("href", attrs["href"]))


def _parse(path: Path, cache: dict) -> _Collector:
    if path not in cache:
        c = _Collector()
        c.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = c
    return cache[path]


def test_internal_links_and_anchors_resolve(site_dir):
    cache: dict = {}
    pages = sorted(p for p in site_dir.rglob("*.html") if "_static" not in p.parts)
    assert pages, "the built site has no pages"
    broken = []
    checked = 0
    for page in pages:
        for attr, value in _parse(page, cache).links:
            if urlparse(value).scheme in EXTERNAL_SCHEMES:
                continue
            target, anchor = urldefrag(value)
            target = unquote(target.split("?")[0])
            dest = page if not target else (page.parent / target).resolve()
            if dest.is_dir():
                dest = dest / "index.html"
            checked += 1
            rel = page.relative_to(site_dir)
            if not dest.exists():
                broken.append(f"{rel}: {attr}={value!r} -> missing {dest}")
                continue
            if anchor and dest.suffix == ".html" and anchor not in _parse(dest, cache).ids:
                broken.append(f"{rel}: {attr}={value!r} -> no anchor #{anchor} in {dest.name}")
    assert checked > 0
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:50])


def test_no_script_or_style_from_a_cdn(site_dir):
    """The pages must load every script and stylesheet from the site itself."""
    offenders = []
    for page in site_dir.rglob("*.html"):
        if "_static" in page.parts:
            continue
        c = _Collector()
        c.feed(page.read_text(encoding="utf-8", errors="replace"))
        for attr, value in c.links:
            if attr == "src" or value.endswith(".css"):
                if urlparse(value).scheme in ("http", "https"):
                    offenders.append(f"{page.relative_to(site_dir)}: {value}")
    assert not offenders, "assets loaded from the network:\n" + "\n".join(offenders)
    assert (site_dir / "_static" / "mathjax" / "tex-chtml.js").is_file(), "offline MathJax missing"
