"""Execute the book's pages in parallel into the jupyter cache the book build reads.

    python scripts/prebuild_book.py

``jupyter-book build`` executes each page with code cells one after the other (``execute:
cache`` in ``_config.yml``). This script stages the same pages in the same cache with the
reader the build uses (myst-nb's ``myst_nb_md``) and runs the stale ones on one process per core
(jupyter-cache's ``local-parallel`` executor, each in its page's folder as the build would), so
the build that follows finds every page cached and only renders. A page that fails here is
reported in one line and left stale: the build executes it again and shows the error in full.
Pages already cached and unchanged are not run again -- but jupyter-cache keys a page on its
own code cells only, while the pages read the package and the stored records (glued numbers,
lab figures). So the script also keeps a digest of those inputs (``src/diffnotes`` and every
JSON under ``notebooks/results``) beside the cache, and empties the cache when it changes: a
build never shows a number from a record that has since been rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READER = {"name": "myst_nb_md", "type": "plugin"}


def pages(root: Path = ROOT) -> list[Path]:
    """The book's MyST pages that hold code cells (the notebooks/ folder is never executed)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    out = []
    for f in files:
        path = root / f"{f}.md"
        if path.exists() and "```{code-cell}" in path.read_text(encoding="utf-8"):
            out.append(path)
    return out


def cache_path(root: Path = ROOT) -> Path:
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return root / config["execute"]["cache"]


def inputs_digest(root: Path = ROOT) -> str:
    """A digest of what the pages read besides their own source: the package and the records."""
    h = hashlib.sha256()
    files = sorted([*(root / "src" / "diffnotes").rglob("*.py"),
                    *(root / "src" / "diffnotes" / "data").glob("*.yaml"),
                    *(root / "notebooks" / "results").rglob("*.json")])
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    cache = get_cache(str(cache_path()))
    stamp = cache_path() / "inputs.digest"
    digest = inputs_digest()
    if stamp.exists() and stamp.read_text() != digest:
        print("prebuild: the package or a stored record changed: every page runs again")
        cache.clear_cache()
        cache = get_cache(str(cache_path()))
    todo = pages()
    for path in todo:
        cache.add_nb_to_project(str(path), read_data=READER)
    t0 = time.time()
    executor = load_executor("local-parallel", cache=cache)
    result = executor.run_and_cache(filter_uris=[str(p) for p in todo], timeout=600,
                                    allow_errors=False)
    failed = list(result.excepted) + list(result.errored)
    stamp.write_text(digest)
    for uri in failed:
        print(f"prebuild: {Path(uri).relative_to(ROOT)} failed here; the book build will run "
              "it again and show why", file=sys.stderr)
    print(f"prebuild: {len(result.succeeded)} page(s) executed on {os.cpu_count()} process(es), "
          f"{len(todo) - len(result.succeeded) - len(failed)} already cached, {len(failed)} "
          f"failed, in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
