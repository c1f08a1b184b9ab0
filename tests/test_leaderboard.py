"""The measured table (issue 26): a tiny end-to-end run, resume, corrupted cache entries, the CLI's
bad input, the gpu path on a fake image folder, and the ranking's ties."""

from __future__ import annotations

import json

import pytest
import torch

from diffnotes import leaderboard as lb
from diffnotes.cli.main import main

TINY = lb.Budget(seeds=1, steps=2, batch_size=8, lr=1e-3, width=8, n_samples=12, nfes=(4,),
                 default_cap=6, n_bound=0, sd_T=4)


def _run(tmp_path, only, **kw):
    lines = []
    results = lb.run("quick", only, root=tmp_path, budget=kw.pop("budget", TINY), echo=lines.append,
                     **kw)
    return results, lines


def _result_path(tmp_path, key, seed=0):
    return lb.cache_dir("quick", tmp_path) / "results" / f"{key}-seed{seed}.json"


def _ckpt_path(tmp_path, model, seed=0):
    return lb.cache_dir("quick", tmp_path) / "models" / f"{model}-seed{seed}.pt"


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained although a sound checkpoint was cached")

    monkeypatch.setattr(lb, "_fit", refuse)


def _no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("sampled although a sound result was cached")

    monkeypatch.setattr(lb, "_evaluate", refuse)


def test_every_row_has_a_model_and_a_chapter():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert len(lb.ROWS) >= 12
    for row in lb.ROWS.values():
        assert row.model in lb.MODELS
        assert (root / "book" / "papers" / f"{row.paper}.md").is_file(), row.paper
    # the rows that share a model: DDIM and Analytic-DPM on DDPM's, Gotta Go Fast on the VP one
    assert lb.ROWS["ddim"].model == lb.ROWS["analytic-dpm"].model == lb.ROWS["ddpm"].model
    assert lb.ROWS["gotta-go-fast"].model == lb.ROWS["vp-pc"].model == "vp"


def test_tiny_run_end_to_end_shares_the_ddpm_checkpoint(tmp_path):
    results, lines = _run(tmp_path, ["ddpm", "ddim", "edm"])
    assert set(results) == {"ddpm", "ddim", "edm"}
    assert len([l for l in lines if " done:" in l]) == 3  # one line per (method, seed)
    models = sorted(p.name for p in (lb.cache_dir("quick", tmp_path) / "models").iterdir())
    assert models == ["ddpm-seed0.pt", "edm-seed0.pt"]  # DDIM reused DDPM's model
    for key, (seed_result,) in results.items():
        assert [e["requested"] for e in seed_result["evals"]] == [4, "default"]
        assert seed_result["examples"] == TINY.steps * TINY.batch_size
        for e in seed_result["evals"]:
            assert e["nfe"] >= 1 and e["band"]["n"] == e["n"] == TINY.n_samples
            assert e["sample_cpu_s_per_100"] > 0
    assert results["ddpm"][0]["train_cpu_s"] == results["ddim"][0]["train_cpu_s"]
    # NFE is counted, not assumed: DDPM's 4 steps call the network 4 times, Heun at 4 levels 3 + 2
    assert results["ddpm"][0]["evals"][0]["nfe"] == 4
    table = lb._table_markdown(lb.load_results("quick", tmp_path), judged=False)
    assert "real vs real (band)" in table and table.count("| – |") >= 3


def test_only_a_full_run_stores_results_and_the_table_reads_them(tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "STORED_FULL", tmp_path / "stored.json")
    results, _ = _run(tmp_path, ["ddpm", "ddim"])
    assert not lb.STORED_FULL.exists()  # quick never writes the stored results
    _run(tmp_path, ["ddpm", "ddim"], store=True)  # what a full run of every row does
    stored = json.loads(lb.STORED_FULL.read_text())
    # DDIM shares DDPM's model: its training is counted once
    ddpm, ddim = stored["results"]["ddpm"][0], stored["results"]["ddim"][0]
    expected = ddpm["train_cpu_s"] + ddpm["eval_cpu_s"] + ddim["eval_cpu_s"]
    assert stored["cpu_s"] == pytest.approx(expected, abs=0.1)
    text = lb.generated_table()
    assert text.startswith("Measured under `full`") and "DDIM (eta = 0, DDPM model)" in text


def test_resume_after_a_kill_trains_nothing_twice(tmp_path, monkeypatch):
    _run(tmp_path, ["ddpm", "ddim"])
    # a kill after the model and one result were written, with a temporary file left behind
    _result_path(tmp_path, "ddim").unlink()
    (_result_path(tmp_path, "ddim").parent / ".ddim-seed0.json.123.tmp").write_text('{"half')
    _no_training(monkeypatch)
    results, lines = _run(tmp_path, ["ddpm", "ddim"])
    assert lines[0].startswith("removed 1 partial file(s) left by an interrupted run")
    assert lines[1].startswith("leaderboard quick: 2 rows x 1 seed(s), 2 steps of batch 8")
    lines = lines[2:]
    assert not any(l.startswith("rebuilt") for l in lines), lines
    assert [l.split(":")[0].split()[-1] for l in lines] == ["cached", "done"]
    assert not list(_result_path(tmp_path, "ddim").parent.glob(".*.tmp"))
    _no_sampling(monkeypatch)
    _, lines = _run(tmp_path, ["ddpm", "ddim"])
    assert all(" cached:" in l for l in lines[1:]) and len(lines) == 3


@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_text('{"row": "ddpm", "evals": [1, 2'), "unreadable"),
    (lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": 7')), "does not match its digest"),
])
def test_a_corrupted_result_is_rebuilt_with_one_line(tmp_path, damage, why):
    _run(tmp_path, ["ddpm"])
    damage(_result_path(tmp_path, "ddpm"))
    _, lines = _run(tmp_path, ["ddpm"])
    rebuilt = [l for l in lines if l.startswith("rebuilt")]
    assert len(rebuilt) == 1 and "ddpm seed 0" in rebuilt[0] and why in rebuilt[0], lines
    assert json.loads(_result_path(tmp_path, "ddpm").read_text())["seed"] == 0
    _, lines = _run(tmp_path, ["ddpm"])  # and then it is sound again
    assert not any(l.startswith("rebuilt") for l in lines)


def test_a_stale_result_is_rebuilt(tmp_path, monkeypatch):
    _run(tmp_path, ["edm"])
    _no_training(monkeypatch)  # the checkpoint is stale too: rebuilding it must train...
    with pytest.raises(AssertionError, match="trained although"):
        _run(tmp_path, ["edm"], budget=lb.Budget(**{**TINY.__dict__, "steps": 3}))


def test_a_truncated_checkpoint_is_rebuilt_with_one_line(tmp_path):
    _run(tmp_path, ["edm"])
    _result_path(tmp_path, "edm").unlink()
    ckpt = _ckpt_path(tmp_path, "edm")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    _, lines = _run(tmp_path, ["edm"])
    rebuilt = [l for l in lines if l.startswith("rebuilt")]
    assert len(rebuilt) == 1 and rebuilt[0].startswith("rebuilt model edm seed 0: edm-seed0.pt "
                                                        "unreadable"), lines


@pytest.mark.parametrize("argv, says", [
    (["leaderboard", "--only", "nope"], "unknown method(s) nope; valid: sohl-dickstein"),
    (["leaderboard", "--profile", "quick", "--data-root", "."], "--data-root is for --profile gpu"),
    (["leaderboard", "--profile", "gpu"], "--profile gpu needs --data-root"),
    (["leaderboard", "--profile", "gpu", "--data-root", "/no/such/folder"], "does not exist"),
    (["leaderboard", "--profile", "slow"], "invalid choice: 'slow'"),
])
def test_bad_cli_input_is_one_line(argv, says, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err


def test_gpu_profile_on_a_fake_image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    gen = torch.Generator().manual_seed(0)
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        for i in range(15):
            pixels = (torch.rand(8, 8, 3, generator=gen) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    lines = []
    results = lb.run("gpu", ["edm", "cfg"], str(folder), root=tmp_path, budget=TINY,
                     echo=lines.append)
    assert lines[0] == "skipped cfg: a class-conditional row needs the digits judge"
    assert set(results) == {"edm"}
    (edm,) = results["edm"]
    assert edm["data"] == "folder:images" and edm["profile"] == "gpu"
    # a separate result set, never mixed with the digits'
    assert (lb.cache_dir("gpu", tmp_path) / "folder-images" / "results" / "edm-seed0.json").is_file()
    assert not lb.cache_dir("quick", tmp_path).exists()
    assert edm["evals"][-1]["band"]["n"] >= 4


def test_ranking_separates_only_real_differences():
    per_row = {"a": [1.0, 1.1, 0.9], "b": [1.05, 0.95, 1.0], "c": [5.0, 5.1, 4.9]}
    assert lb.rank_rows(per_row) == {"a": 1, "b": 1, "c": 3}  # a and b tie
    assert lb.rank_rows({"a": [1.0], "b": [2.0]}) == {"a": None, "b": None}  # one seed: unjudged
    assert lb.rank_rows(per_row, better="higher") == {"a": 2, "b": 2, "c": 1}


def test_render_table_without_and_with_stored_results(tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "STORED_FULL", tmp_path / "missing.json")
    text = lb.generated_table()
    assert text.startswith("The full run has not been made yet") and "|" not in text
    assert lb.GENERATED_TABLES[0].name == "leaderboard" and lb.GENERATED_TABLES[0].render() == text
    # the quick cache is shown by render_table, never by the generated (drift-checked) file
    _run(tmp_path, ["edm"])
    assert "not judged at quick" in lb.render_table(root=tmp_path)
    assert lb.generated_table() == text
    ev = {"requested": "default", "nfe": 35, "sample_cpu_s_per_100": 1.0, "kd": 0.01, "kd_se": 0.001,
          "fd": 0.5, "precision": 0.9, "recall": 0.8, "n": 100,
          "band": {"kd": 0.0, "kd_se": 0.001, "fd": 0.2, "precision": 0.92, "recall": 0.92, "n": 100}}

    def seeds(kd):
        return [{"evals": [{**ev, "kd": v}], "train_cpu_s": 10.0, "bpd": None, "seed": s}
                for s, v in enumerate(kd)]

    stored = {"format": lb.RESULTS_FORMAT, "profile": "full", "cpu_s": 600.0,
              "results": {"edm": seeds([0.010, 0.011, 0.012]), "ddpm": seeds([0.030, 0.031, 0.033])}}
    monkeypatch.setattr(lb, "STORED_FULL", tmp_path / "stored.json")
    lb.STORED_FULL.write_text(json.dumps(stored))
    text = lb.generated_table()
    edm_line = next(l for l in text.splitlines() if "EDM (Heun)" in l and "karras" in l)
    ddpm_line = next(l for l in text.splitlines() if "DDPM (ancestral)" in l)
    assert edm_line.startswith("| 1 |") and ddpm_line.startswith("| 2 |")
    assert "11.0 ± 2.5" in edm_line  # mean and the 95% t-interval's half width (x 1000)
    assert "took 10 CPU minutes" in text
    assert lb.figure_quality_vs_nfe().data and lb.figure_quality_vs_training().data


def test_bits_per_dim_where_the_method_defines_a_bound(tmp_path):
    budget = lb.Budget(**{**TINY.__dict__, "n_bound": 2})
    results, _ = _run(tmp_path, ["vdm", "analytic-dpm", "edm", "ddim"], budget=budget)
    for key in ("vdm", "analytic-dpm", "edm"):  # two bounds, and the PF-ODE's dequantized NLL
        bpd = results[key][0]["bpd"]
        assert bpd is not None and 0 < bpd < 1e4, (key, bpd)
    assert results["ddim"][0]["bpd"] is None  # a sampler defines no likelihood of its own


def test_guided_rows_report_the_judges_accuracy_and_share_the_network(tmp_path):
    results, _ = _run(tmp_path, ["cfg", "adm-cg"])
    models = sorted(p.name for p in (lb.cache_dir("quick", tmp_path) / "models").iterdir())
    assert models == ["cond-guided-seed0.pt", "cond-seed0.pt"]
    cfg, cg = results["cfg"][0], results["adm-cg"][0]
    for r in (cfg, cg):
        e = r["evals"][-1]
        assert 0 <= e["class_accuracy"] <= 1 and e["band"]["class_accuracy"] > 0.5
        assert e["nfe"] == 2 * ((TINY.default_cap + 1) // 2) - 1  # Heun, counted
    # classifier guidance pays for the network (trained once) and its classifier
    assert cg["train_cpu_s"] > cfg["train_cpu_s"]
    assert cg["examples"] == 2 * cfg["examples"]
    # ... and the table's total counts the network's training once
    total = lb.total_cpu_seconds(results)
    expected = (cfg["train_cpu_s"] + cg["train_parts"]["cond-guided"] + cfg["eval_cpu_s"]
                + cg["eval_cpu_s"])
    assert total == pytest.approx(expected) and cg["train_parts"]["cond"] == cfg["train_cpu_s"]
    table = lb._table_markdown(lb.load_results("quick", tmp_path), judged=False)
    assert "| accuracy |" in table


def test_the_quick_profile_runs_every_row_and_is_not_judged(tmp_path):
    """The CI run of issue 26: every row at the real `quick` budget (about 20 CPU s), and the table
    it gives says it is not judged."""
    results = lb.run("quick", None, root=tmp_path, echo=lambda line: None)
    assert set(results) == set(lb.ROWS)
    table = lb._table_markdown(lb.load_results("quick", tmp_path), judged=False)
    main_table = table.split("\n\n")[0].splitlines()[3:]  # the rows after the band's
    assert len(main_table) == len(lb.ROWS)
    assert all(line.startswith("| – |") for line in main_table)  # no rank at quick
