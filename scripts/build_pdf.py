"""Build a PDF of the whole book with packages available here: Sphinx's single-page HTML,
printed by headless Chromium (Debian's `chromium`) after the offline MathJax has typeset it.

Why not LaTeX: Jupyter Book's `pdflatex` builder needs a TeX Live installation of several GB,
and its `pdfhtml` builder downloads its own Chromium through pyppeteer, which this project's
machines cannot do. Chromium's print-to-PDF renders exactly what the website shows.

Usage: python scripts/build_pdf.py [--out _build/pdf/diffusion-notes.pdf]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "_build" / "pdf" / "diffusion-notes.pdf"))
    parser.add_argument("--budget-ms", type=int, default=60000, help="virtual time for MathJax to finish")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("error: headless Chromium is needed (Debian: apt-get install chromium; or `make browser-deps`)", file=sys.stderr)
        return 2
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(ROOT), "--builder", "singlehtml"], check=True)
    site = ROOT / "_build" / "singlehtml"
    # The single page lives at book/intro.html but links its assets relative to the site root.
    page = site / "book" / "intro.html"
    if not page.is_file():
        print(f"error: {page} was not produced by the singlehtml build", file=sys.stderr)
        return 1
    shutil.copyfile(page, site / "print.html")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="diffnotes-pdf-") as profile:
            subprocess.run(
                [
                    chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    f"--user-data-dir={profile}", f"--virtual-time-budget={args.budget_ms}",
                    "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer",
                    f"--print-to-pdf={out}", f"http://127.0.0.1:{server.server_address[1]}/print.html",
                ],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
    finally:
        server.shutdown()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
