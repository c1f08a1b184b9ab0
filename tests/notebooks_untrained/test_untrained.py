"""With training disabled (``DIFFNOTES_TRAIN_STEPS=0``) every lab notebook must fail its own
checks under ``quick``: a check an untrained model passes proves nothing. Notebooks that train
nothing (the channel-simulation labs) honour ``DIFFNOTES_BROKEN=1`` instead, which swaps their
coder for a broken one; both variables are set for every notebook.

Each notebook runs in a fresh kernel; the run must stop with an ``AssertionError`` (a failed
check), not with some other error and not by passing. Run with ``make notebooks-untrained``
(part of ``make test``).
"""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def run_expecting_failed_check(path, monkeypatch, what="with training disabled"):
    """Run ``path`` under ``quick`` in a fresh kernel; it must stop with an AssertionError."""
    monkeypatch.setenv("DIFFNOTES_PROFILE", "quick")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        assert err.ename == "AssertionError", (
            f"{path.name} stopped with {err.ename}, not a failed check: {err.evalue}")
        return
    pytest.fail(f"{path.name} passes its checks {what}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_fails_without_training(path, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    monkeypatch.setenv("DIFFNOTES_BROKEN", "1")
    run_expecting_failed_check(path, monkeypatch)
