"""Measure the untrained control of every lab: run each notebook with training disabled and
record its claims beside the trained ones.

    python scripts/measure_controls.py [KEY ...] [--profile full] [--jobs 2]

Each notebook runs in a fresh kernel with ``DIFFNOTES_TRAIN_STEPS=0`` (every network keeps its
initial weights), ``DIFFNOTES_BROKEN=1`` (the coding labs, which train nothing, swap in a broken
coder: their control) and ``DIFFNOTES_CONTROL=1``, so that :func:`diffnotes.results.record` writes to
``notebooks/results/untrained/<key>.json`` (``_build/results/untrained/`` under ``quick``)
instead of the trained record. The notebook is not rewritten. Its checks cell is expected to
fail -- an untrained model must not pass it -- and the run goes on past that one failed check
to the record cell; any other error, or a checks cell that *passes*, is reported and that
notebook's control is not written. ``diffnotes.claims`` re-judges each control record under the
claim's declaration and flags a claim whose verdict the untrained control earns too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _is_checks(source: str) -> bool:
    return any(line.lstrip().startswith("assert ") for line in source.splitlines())


def run_one(key: str, profile: str) -> tuple[str, str, float]:
    """Run one notebook as its untrained control; ``(key, outcome, seconds)``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    os.environ.update(DIFFNOTES_PROFILE=profile, DIFFNOTES_TRAIN_STEPS="0", DIFFNOTES_CONTROL="1",
                      DIFFNOTES_BROKEN="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    path = NOTEBOOKS / f"{key}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=3600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    t0 = time.time()
    checks_failed = False
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as err:
                if _is_checks(cell.source) and err.ename == "AssertionError":
                    checks_failed = True
                    continue
                return key, f"error in cell {i}: {err.ename}: {err.evalue}", time.time() - t0
    seconds = time.time() - t0
    from diffnotes.results import record_path

    written = record_path(key, root=ROOT)
    if not written.exists() or written.stat().st_mtime < t0:
        return key, f"no control record written to {written}", seconds
    if not checks_failed:
        written.unlink()  # a control its checks accept is no control
        return key, "its checks PASSED untrained: no control recorded", seconds
    return key, "recorded (its checks failed, as they must)", seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("keys", nargs="*", help="notebook keys (default: every lab)")
    ap.add_argument("--profile", default="full", choices=("quick", "full"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    known = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    keys = args.keys or known
    bad = [k for k in keys if k not in known]
    if bad:
        ap.error(f"no notebook {', '.join(bad)}; valid: {', '.join(known)}")
    failed = 0
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, k, args.profile) for k in keys]
        for n, fut in enumerate(as_completed(futures), 1):
            key, outcome, seconds = fut.result()
            failed += not outcome.startswith("recorded")
            print(f"[{n}/{len(keys)}] {key}: {outcome} ({seconds:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
