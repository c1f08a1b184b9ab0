"""The site as a reader meets it: real headless Chromium against a local server.

For the landing page, the unified-view chapter, a paper chapter and a notebook page: math is
typeset by the offline MathJax (no raw delimiters left), every image has loaded, the console has
no errors, and no request leaves 127.0.0.1. `test_layout` opens a wider set of pages at 1400 px
and 1024 px: no Markdown table printed as text, nothing drawn wider than the content column
outside a box that scrolls on its own, no raw TeX in titles and navigation. Screenshots go to
`_build/screenshots/`.
Chromium comes from Debian (`make browser-deps`); without it these tests skip, saying why.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.browser


def _pick(site_dir: Path, pattern: str, preferred: str) -> str:
    if (site_dir / preferred).is_file():
        return preferred
    found = sorted(site_dir.glob(pattern))
    if not found:
        pytest.fail(f"the built site has no page matching {pattern}")
    return str(found[0].relative_to(site_dir))


@pytest.fixture(scope="module")
def driver():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("headless Chromium not installed (Debian packages chromium, chromium-driver; `make browser-deps`)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="diffnotes-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


PAGES = {
    "landing": ("index.html", None),
    "unified_view": ("book/unified-view.html", None),
    "paper_chapter": ("book/papers/karras2022elucidating.html", "book/papers/[a-z]*[0-9]*.html"),
    "notebook": ("notebooks/karras2022elucidating.html", "notebooks/*.html"),
    "questions": ("book/questions.html", None),
}

_WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const t0 = Date.now();
(function poll() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
  } else if (Date.now() - t0 > 20000) { done('no MathJax on page'); }
  else { setTimeout(poll, 100); }
})();
"""

_RAW_MATH_TEXT = """
const clone = document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight').forEach(e => e.remove());
const text = clone.innerText;
return ['\\\\(', '\\\\[', '$$'].filter(d => text.includes(d));
"""

_IMAGES = """
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });
return imgs.map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth]);
"""


@pytest.mark.parametrize("name", list(PAGES))
def test_page_in_real_browser(driver, site_url, site_dir, name):
    preferred, pattern = PAGES[name]
    rel = preferred if pattern is None else _pick(site_dir, pattern, preferred)
    if pattern is None and not (site_dir / rel).is_file():
        pytest.fail(f"{rel} is missing from the built site")
    driver.set_window_size(1280, 900)  # test_layout changes the shared window's width
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(f"{site_url}/{rel}")
    driver.set_script_timeout(30)
    has_math = driver.execute_script("return document.querySelector('.math, .MathJax, mjx-container, span.math') !== null")
    if has_math:
        status = driver.execute_async_script(_WAIT_FOR_MATHJAX)
        assert status == "ok", f"{rel}: MathJax did not finish: {status}"
        n_typeset = driver.execute_script("return document.querySelectorAll('mjx-container').length")
        assert n_typeset > 0, f"{rel}: math on the page but nothing typeset by MathJax"
        raw = driver.execute_script(_RAW_MATH_TEXT)
        assert not raw, f"{rel}: raw math delimiters left in the text: {raw}"
        # MathJax renders TeX it cannot parse (an unknown macro) as a red error box, silently
        errors = driver.execute_script(
            "return Array.from(document.querySelectorAll('mjx-merror')).map(e => e.getAttribute('data-mjx-error') || e.textContent)")
        assert not errors, f"{rel}: MathJax could not typeset: {errors[:5]}"
    images = driver.execute_script(_IMAGES)
    deadline = time.time() + 10
    while any(not c or w == 0 for _, c, w in images) and time.time() < deadline:
        time.sleep(0.2)
        images = driver.execute_script(_IMAGES)
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, f"{rel}: images that did not load: {broken}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))

    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{rel}: console errors: {errors}"
    foreign = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        url = msg["params"]["request"]["url"]
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
            continue
        if parsed.hostname != "127.0.0.1":
            foreign.append(url)
    assert not foreign, f"{rel}: requests to addresses other than the local server: {foreign}"


# --------------------------------------------------------------------------- layout at two widths

LAYOUT_WIDTHS = (1400, 1024)
LAYOUT_PAGES = {
    "landing": "index.html",
    "unified_view": "book/unified-view.html",
    "papers_at_a_glance": "book/papers/index.html",
    "numbers_table": "book/papers/dhariwal2021diffusion.html",
    "proofs": "book/questions.html",
    "notebook_table": "notebooks/ho2020denoising.html",
    "notebook_outputs": "notebooks/song2019generative.html",
    "benchmarks": "book/benchmarks.html",
    "results": "book/results.html",
    "chapter_with_lab_figure": "book/papers/saharia2022image.html",
}

# Outermost elements of the article that reach past the content column, and boxes whose content
# is wider than they are (it scrolls sideways or is cut off). Content may be wider than the
# column only inside two kinds of box that scroll sideways on their own and fit the column
# themselves: a MathJax display equation (`mjx-container[display="true"]`, or its `div.math`) and
# a table's wrapper (pydata-sphinx-theme's `.pst-scrollable-table-container`). Nothing else may:
# not code (the house style keeps it within about 80 columns), not notebook outputs (they wrap),
# not diagrams, images or figures. Inline math is measured as a whole.
_TOO_WIDE = """
const art = document.querySelector('article.bd-article') || document.querySelector('main');
const col = art.getBoundingClientRect();
const SCROLLERS = 'mjx-container[display="true"], div.math, .pst-scrollable-table-container';
const wide = [];
function describe(e, r) {
  const cls = (e.getAttribute('class') || '').trim().split(/\\s+/).slice(0, 3).join('.');
  const text = (e.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
  return `${e.tagName.toLowerCase()}${cls ? '.' + cls : ''} ${Math.round(r.width)} px ` +
         `(${Math.round(r.left - col.left)}..${Math.round(r.right - col.left)} in a ` +
         `${Math.round(col.width)} px column): ${text}`;
}
function visit(e) {
  const r = e.getBoundingClientRect();
  if (r.width > 0 && (r.left < col.left - 1 || r.right > col.right + 1)) {
    wide.push(describe(e, r)); return;
  }
  const s = getComputedStyle(e);
  const own = ['auto', 'scroll'].includes(s.overflowX);
  if (e.matches(SCROLLERS) && own) return;
  if (e.matches('mjx-container, span.math')) return;  // inline math: measured as a whole
  if (s.overflowX !== 'visible' && e.scrollWidth > e.clientWidth + 1) {
    wide.push(describe(e, r) + ` [content ${e.scrollWidth} px wide, ` +
              (own ? 'scrolls sideways]' : 'cut off]'));
    return;
  }
  for (const c of e.children) visit(c);
}
for (const c of art.children) visit(c);
const doc = document.documentElement;
return {wide: wide, page_scrolls: doc.scrollWidth > doc.clientWidth + 1,
        column: Math.round(col.width)};
"""

_TABLES_AS_TEXT = r"""
return Array.from(document.querySelectorAll('article p'))
  .map(p => p.textContent.replace(/\s+/g, ' ').trim())
  .filter(t => /\|\s*:?(-{3,}|—|–)/.test(t) || t.startsWith('| '))
  .map(t => t.slice(0, 90));
"""

_NAV_TEXT = """
const text = sel => Array.from(document.querySelectorAll(sel)).map(e => e.textContent).join(' ');
return {'title': document.title, 'sidebar': text('.bd-sidebar-primary'),
        'prev/next': text('.prev-next-area'), 'page header': text('.bd-header-article')};
"""

_RAW_TEX = re.compile(r"\\\(|\\\[|\$[^$\s](?:[^$]*[^$\s])?\$(?!\d)")


@pytest.mark.parametrize("width", LAYOUT_WIDTHS)
@pytest.mark.parametrize("name", list(LAYOUT_PAGES))
def test_layout(driver, site_url, site_dir, name, width):
    """At 1400 px and 1024 px: no Markdown table printed as a paragraph, nothing wider than the
    content column outside a box that scrolls on its own (display equations, table wrappers;
    see `_TOO_WIDE`), no page-wide horizontal scroll, and no raw TeX (``\\(``, ``\\[``,
    ``$...$``) in the tab title, the sidebar, the page header or the previous/next links."""
    rel = LAYOUT_PAGES[name]
    if not (site_dir / rel).is_file():
        pytest.fail(f"{rel} is missing from the built site")
    driver.set_window_size(width, 900)
    driver.get(f"{site_url}/{rel}")
    driver.set_script_timeout(30)
    if driver.execute_script("return document.querySelector('.math, span.math, div.math') !== null"):
        assert driver.execute_async_script(_WAIT_FOR_MATHJAX) == "ok"
    driver.execute_script("return document.fonts ? document.fonts.ready : null")
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"layout-{name}-{width}.png"))

    tables = driver.execute_script(_TABLES_AS_TEXT)
    assert not tables, f"{rel} at {width} px: Markdown tables printed as text: {tables}"
    nav = driver.execute_script(_NAV_TEXT)
    raw = {k: _RAW_TEX.search(v).group(0)[:60] for k, v in nav.items() if _RAW_TEX.search(v)}
    assert not raw, f"{rel} at {width} px: raw TeX in {raw}"
    layout = driver.execute_script(_TOO_WIDE)
    assert not layout["wide"], (f"{rel} at {width} px: wider than the {layout['column']} px column:\n"
                                + "\n".join(layout["wide"][:15]))
    assert not layout["page_scrolls"], f"{rel} at {width} px: the whole page scrolls sideways"


# --------------------------------------------------------------------------- a figure per chapter

CHAPTERS = sorted(p.stem for p in (ROOT / "book" / "papers").glob("*.md") if p.stem != "index")
MIN_FONT_PX = 10.0

_FIGURES = """
const art = document.querySelector('article.bd-article') || document.querySelector('main');
return Array.from(art.querySelectorAll('img')).map(img => ({
  src: img.getAttribute('src'), shown: img.getBoundingClientRect().width,
  natural: img.naturalWidth, complete: img.complete}));
"""


def _png_font_px(site_dir: Path, page: str, src: str):
    """(smallest font in points × dpi / 72) of a chapter figure, from its PNG, or None when the
    PNG carries no font record (not drawn by ``plotting.book_figure``)."""
    import base64
    import io

    from PIL import Image

    from diffnotes.plotting import MIN_FONT_KEY

    if src.startswith("data:"):
        raw = base64.b64decode(src.split(",", 1)[1])
    else:
        path = (site_dir / page).parent / src.split("?")[0]
        if not path.is_file():
            return None
        raw = path.read_bytes()
    img = Image.open(io.BytesIO(raw))
    font = img.info.get(MIN_FONT_KEY)
    if font is None:
        return None
    dpi = img.info.get("dpi", (72, 72))[0]
    return float(font) * float(dpi) / 72.0


@pytest.mark.parametrize("width", (1024,))
def test_every_chapter_has_a_legible_figure(driver, site_url, site_dir, width):
    """Every paper chapter shows at least one figure drawn for the column (plotting.book_figure),
    and on screen at 1024 px — the narrowest column — its smallest text is at least 10 px:
    (font in points) × dpi / 72 × (shown width / natural width)."""
    driver.set_window_size(width, 900)
    problems = []
    for key in CHAPTERS:
        rel = f"book/papers/{key}.html"
        if not (site_dir / rel).is_file():
            problems.append(f"{rel}: missing from the built site")
            continue
        driver.get(f"{site_url}/{rel}")
        figs = driver.execute_script(_FIGURES)
        legible = []
        for f in figs:
            font = _png_font_px(site_dir, rel, f["src"] or "")
            if font is None or not f["natural"]:
                continue
            legible.append(font * f["shown"] / f["natural"])
        if not legible:
            problems.append(f"{rel}: no figure drawn for the column ({len(figs)} images)")
        elif min(legible) < MIN_FONT_PX:
            problems.append(f"{rel}: smallest figure text {min(legible):.1f} px on screen "
                            f"(at least {MIN_FONT_PX:g})")
    assert not problems, "\n".join(problems)


def test_every_chapter_fits_the_column(driver, site_url, site_dir):
    """The layout rule of `test_layout` (nothing wider than the column outside a box that scrolls
    on its own, no page-wide sideways scroll) on every chapter at 1024 px, the narrower width."""
    driver.set_window_size(1024, 900)
    driver.set_script_timeout(30)
    problems = []
    for key in CHAPTERS:
        rel = f"book/papers/{key}.html"
        if not (site_dir / rel).is_file():
            problems.append(f"{rel}: missing from the built site")
            continue
        driver.get(f"{site_url}/{rel}")
        if driver.execute_script("return document.querySelector('.math') !== null"):
            driver.execute_async_script(_WAIT_FOR_MATHJAX)
        layout = driver.execute_script(_TOO_WIDE)
        problems += [f"{rel}: {w}" for w in layout["wide"][:5]]
        if layout["page_scrolls"]:
            problems.append(f"{rel}: the whole page scrolls sideways")
    assert not problems, "\n".join(problems)
