"""Execute the code cells of chapters without building the book: a fast check while writing.

    python scripts/check_chapter.py book/papers/ho2020denoising.md [more.md ...]

Each chapter runs in a fresh kernel (jupytext reads the MyST file, nbclient executes it); the
script prints one line per chapter and exits non-zero if a cell raised. `make book` remains the
full check (cross-references, citations, glue keys).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def check(path: Path) -> bool:
    nb = jupytext.read(path, fmt="md:myst")
    start = time.time()
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as e:
        last = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        print(f"FAIL {path}: {last}")
        return False
    print(f"ok   {path} ({time.time() - start:.1f} s, {len(nb.cells)} cells)")
    return True


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python scripts/check_chapter.py book/papers/<key>.md [...]", file=sys.stderr)
        return 2
    missing = [a for a in argv if not Path(a).is_file()]
    if missing:
        print(f"error: no such chapter: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = [check(Path(a)) for a in argv]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
