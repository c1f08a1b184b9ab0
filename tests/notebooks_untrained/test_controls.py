"""The untrained-control runner (scripts/measure_controls.py) on one lab under ``quick``: the
notebook fails its checks, runs on to its record cell, and the record lands in the control
folder (never in the trained record's place), marked as a control."""

import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("measure_controls",
                                              ROOT / "scripts" / "measure_controls.py")
controls = importlib.util.module_from_spec(spec)
spec.loader.exec_module(controls)


def test_a_control_run_records_beside_the_trained_record(monkeypatch):
    for name in ("DIFFNOTES_PROFILE", "DIFFNOTES_TRAIN_STEPS", "DIFFNOTES_CONTROL",
                 "DIFFNOTES_BROKEN", "OMP_NUM_THREADS", "MPLBACKEND"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    trained = ROOT / "_build" / "results" / "vincent2011connection.json"
    before = trained.read_bytes() if trained.exists() else None
    key, outcome, _ = controls.run_one("vincent2011connection", "quick")
    assert outcome.startswith("recorded"), outcome
    stored = json.loads((ROOT / "_build" / "results" / "untrained" /
                         "vincent2011connection.json").read_text())
    assert stored["profile"] == "quick" and "untrained" in stored["control"]
    assert (trained.read_bytes() if trained.exists() else None) == before
