"""The site as a reader meets it: real headless Chromium against a local server.

For the landing page, the unified-view chapter, a paper chapter and a notebook page: math is
typeset by the offline MathJax (no raw delimiters left), every image has loaded, the console has
no errors, and no request leaves 127.0.0.1. Screenshots go to `_build/screenshots/`.
Chromium comes from Debian (`make browser-deps`); without it these tests skip, saying why.
"""

from __future__ import annotations

import json
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
