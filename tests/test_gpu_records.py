"""A notebook run under the ``gpu`` profile records its claims as a separate set
(``notebooks/results/gpu/``): it never overwrites the ``full`` records the book's table shows."""

import json

from diffnotes import results as R


def test_gpu_records_go_to_their_own_folder_and_stay_out_of_the_full_table(tmp_path, monkeypatch):
    claim = R.compare("a beats b", "err", [1.0, 1.1, 0.9], [2.0, 2.2, 1.9])
    monkeypatch.setenv("DIFFNOTES_PROFILE", "full")
    R.record("demo", [claim], root=tmp_path)
    full = R.record_path("demo", root=tmp_path)
    monkeypatch.setenv("DIFFNOTES_PROFILE", "gpu")
    R.record("demo", [R.compare("a beats b", "err", [5.0, 5.1, 4.9], [2.0, 2.2, 1.9])],
             root=tmp_path)
    gpu = R.record_path("demo", root=tmp_path)
    assert gpu.parent == tmp_path / R.GPU_DIR and full.parent == tmp_path / R.RESULTS_DIR
    assert json.loads(gpu.read_text())["profile"] == "gpu"
    assert json.loads(full.read_text())["claims"][0]["verdict"] == R.HOLDS  # untouched
    assert [r["profile"] for r in R.load_records(tmp_path)] == ["full"]
