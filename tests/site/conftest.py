"""Fixtures for tests over the built site (`_build/html`).

These tests run after `jupyter-book build` (see `make site-test`). With DIFFNOTES_REQUIRE_SITE=1
(set by `make test`) a missing build is a failure, not a skip.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("DIFFNOTES_SITE_DIR", ROOT / "_build" / "html"))


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (HTML / "index.html").is_file():
        msg = f"no built site at {HTML}; run `make book` first"
        if os.environ.get("DIFFNOTES_REQUIRE_SITE") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="session")
def site_url(site_dir):
    """Serve the built site on 127.0.0.1 (a free port) for the session."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
