"""``python -m diffnotes ...``: a run end to end, and one-line errors for every bad argument."""

import json

import pytest
import torch

from diffnotes.cli import main




def test_train_sample_and_resume_on_moons(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--method", "edm", "--data", "moons", "--profile", "quick", "--out", str(out),
                 "--steps", "30"]) == 0
    assert (out / "ckpt.pt").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "edm" and config["net"]["kind"] == "mlp" and 0.5 < config["sigma_data"] < 1.5
    assert config["shape"] == [2]  # one example's shape, which `sample` reads back
    assert "step 30" in capsys.readouterr().out

    # A second call on the same folder resumes from the checkpoint.
    assert main(["train", "--method", "edm", "--data", "moons", "--profile", "quick", "--out", str(out),
                 "--steps", "40"]) == 0
    assert "step 40" in capsys.readouterr().out

    png = tmp_path / "moons.png"
    assert main(["sample", "--ckpt", str(out / "ckpt.pt"), "--solver", "euler", "--steps", "6", "-n", "300",
                 "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    samples = torch.load(png.with_suffix(".pt"))
    assert samples.shape == (300, 2) and torch.isfinite(samples).all()
    # Started at sigma_max = 80, the samples must have been pulled back to the data's scale.
    assert samples.std() < 5


def test_digits_image_grid(tmp_path):
    out = tmp_path / "digits"
    assert main(["train", "--method", "vp", "--data", "digits", "--profile", "quick", "--out", str(out),
                 "--steps", "2", "--batch-size", "8"]) == 0
    png = tmp_path / "grid.png"
    assert main(["sample", "--ckpt", str(out / "ckpt.pt"), "--solver", "heun", "--steps", "3", "-n", "4",
                 "--out", str(png)]) == 0
    assert png.is_file() and torch.load(png.with_suffix(".pt")).shape == (4, 1, 8, 8)


def _drop_shape(ckpt):
    """Rewrite ``ckpt`` as a checkpoint from before ``train`` stored ``config["shape"]``."""
    from diffnotes.checkpoints import load_checkpoint, save_checkpoint

    state = load_checkpoint(ckpt)
    del state["config"]["shape"]
    save_checkpoint(ckpt, state)


def test_sample_reads_the_shape_from_the_config_and_old_checkpoints_still_sample(tmp_path, monkeypatch):
    from diffnotes.cli import sample_command

    out = tmp_path / "digits"
    assert main(["train", "--method", "ve", "--data", "digits", "--profile", "quick", "--out", str(out),
                 "--steps", "1", "--batch-size", "4"]) == 0
    assert json.loads((out / "config.json").read_text())["shape"] == [1, 8, 8]
    fallback = sample_command._shape_from_the_network
    calls = []

    def watched(model, config):
        calls.append(config)
        return fallback(model, config)

    monkeypatch.setattr(sample_command, "_shape_from_the_network", watched)
    argv = ["sample", "--ckpt", str(out / "ckpt.pt"), "--solver", "euler", "--steps", "2", "-n", "3"]
    assert main(argv + ["--out", str(tmp_path / "new.png")]) == 0
    assert calls == []  # the new checkpoint's config gave the shape
    assert torch.load(tmp_path / "new.pt").shape == (3, 1, 8, 8)

    _drop_shape(out / "ckpt.pt")
    assert main(argv + ["--out", str(tmp_path / "old.png")]) == 0
    assert len(calls) == 1 and "shape" not in calls[0]  # the old route, for the old checkpoint
    assert torch.equal(torch.load(tmp_path / "old.pt"), torch.load(tmp_path / "new.pt"))


def test_points_from_an_old_checkpoint_default_to_2000(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--method", "edm", "--data", "gmm", "--profile", "quick", "--out", str(out),
                 "--steps", "1"]) == 0
    _drop_shape(out / "ckpt.pt")
    png = tmp_path / "g.png"
    assert main(["sample", "--ckpt", str(out / "ckpt.pt"), "--solver", "euler", "--steps", "2",
                 "--out", str(png)]) == 0
    assert torch.load(png.with_suffix(".pt")).shape == (2000, 2)


def test_a_bad_stored_shape_is_one_line(tmp_path, capsys):
    from diffnotes.checkpoints import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--method", "edm", "--data", "gmm", "--profile", "quick", "--out", str(out),
                 "--steps", "1"]) == 0
    capsys.readouterr()
    state = load_checkpoint(out / "ckpt.pt")
    state["config"]["shape"] = [2, 0]
    save_checkpoint(out / "ckpt.pt", state)
    png = tmp_path / "g.png"
    _one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt.pt"), "--out", str(png)],
                    "shape [2, 0] is not a list of positive integers")
    assert not png.exists()


def test_other_run_in_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--method", "ve", "--data", "gmm", "--profile", "quick", "--out", str(out), "--steps", "2"]) == 0
    assert main(["train", "--method", "edm", "--data", "gmm", "--profile", "quick", "--out", str(out), "--steps", "2"]) == 2
    assert capsys.readouterr().err == (f"error: {out} holds a different run (method, precond differ); "
                                       "choose another --out\n")


@pytest.mark.parametrize("argv, valid", [
    (["sample", "--ckpt", "x.pt", "--solver", "rk45", "--out", "g.png"], "heun"),
    (["train", "--method", "ddpm", "--data", "moons", "--out", "r"], "edm"),
    (["train", "--method", "edm", "--data", "faces", "--out", "r"], "checkerboard"),
])
def test_wrong_choices_list_the_valid_ones(argv, valid, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and valid in err


def test_wrong_solver_choices_come_from_sampling(capsys):
    from diffnotes.sampling import SOLVERS

    with pytest.raises(SystemExit):
        main(["sample", "--ckpt", "x.pt", "--solver", "nope", "--out", "g.png"])
    err = capsys.readouterr().err
    assert all(repr(s) in err for s in SOLVERS)


def _one_line_error(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"\x00garbage")
    _one_line_error(capsys, ["sample", "--ckpt", str(bad), "--out", str(tmp_path / "g.png")], "cannot read checkpoint")
    _one_line_error(capsys, ["sample", "--ckpt", str(tmp_path / "none.pt"), "--out", "g.png"], "no checkpoint")


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--method", "edm", "--data", "mnist", "--data-root", str(tmp_path / "nope"),
                             "--out", str(tmp_path / "r")], "does not exist")
    _one_line_error(capsys, ["train", "--method", "edm", "--data", "cifar10", "--data-root", str(tmp_path),
                             "--out", str(tmp_path / "r")], "CIFAR-10 not found")


def test_folder_data_without_a_root_is_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["train", "--method", "edm", "--data", "mnist", "--out", str(tmp_path / "r")],
                    "--data mnist needs --data-root, the folder holding the mnist files")
    assert not (tmp_path / "r").exists()


def test_a_broken_run_config_is_one_line_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{half")
    _one_line_error(capsys, ["train", "--method", "edm", "--data", "gmm", "--profile", "quick", "--out", str(out),
                             "--steps", "1"], "is not a run's config (not JSON")
    assert (out / "config.json").read_text() == "{half" and not (out / "ckpt.pt").exists()


def test_bench_unknown_name(capsys):
    _one_line_error(capsys, ["bench", "nonexistent"], "valid")


# ----------------------------------------------------------------------------------------------
# Bad numbers and devices: one line naming the argument and the valid range, exit 2, no files
# ----------------------------------------------------------------------------------------------


def _refused(capsys, argv, fragments, written):
    """``main(argv)`` exits 2 with one line naming every fragment, and ``written`` stays absent."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    assert all(f in captured.err for f in fragments), captured.err
    assert not any(p.exists() for p in written)


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"


@pytest.mark.parametrize("value", ["-5", "0", "2.5", "many"])
def test_sample_count_must_be_positive(tmp_path, capsys, value):
    png = tmp_path / "g.png"
    _refused(capsys, ["sample", "--ckpt", str(tmp_path / "c.pt"), "-n", value, "--out", str(png)],
             ["argument -n", "integer >= 1", repr(value)], [png, png.with_suffix(".pt")])


@pytest.mark.parametrize("flag", ["--steps", "--seed"])
def test_sample_steps_and_seed_must_not_be_negative(tmp_path, capsys, flag):
    png = tmp_path / "g.png"
    low = "1" if flag == "--steps" else "0"
    _refused(capsys, ["sample", "--ckpt", str(tmp_path / "c.pt"), flag, "-3", "--out", str(png)],
             [f"argument {flag}", f"integer >= {low}"], [png, png.with_suffix(".pt")])


@pytest.mark.parametrize("flag", ["--sigma-min", "--sigma-max"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_sample_noise_levels_must_be_positive_and_finite(tmp_path, capsys, flag, value):
    png = tmp_path / "g.png"
    _refused(capsys, ["sample", "--ckpt", str(tmp_path / "c.pt"), flag, value, "--out", str(png)],
             [f"argument {flag}", "finite number > 0"], [png])


@pytest.mark.parametrize("flag, value, valid", [
    ("--steps", "-10", "integer >= 1"),
    ("--steps", "0", "integer >= 1"),
    ("--batch-size", "0", "integer >= 1"),
    ("--batch-size", "-8", "integer >= 1"),
    ("--lr", "-1e-3", "finite number > 0"),
    ("--lr", "0", "finite number > 0"),
    ("--seed", "-1", "integer >= 0"),
])
def test_train_numbers_out_of_range(run_dir, capsys, flag, value, valid):
    _refused(capsys, ["train", "--method", "edm", "--data", "moons", "--out", str(run_dir), flag, value],
             [f"argument {flag}", valid], [run_dir])


@pytest.mark.parametrize("command", ["train", "sample"])
def test_unknown_device(tmp_path, capsys, command):
    out = tmp_path / ("run" if command == "train" else "g.png")
    argv = (["train", "--method", "edm", "--data", "moons"] if command == "train"
            else ["sample", "--ckpt", str(tmp_path / "c.pt")])
    _refused(capsys, argv + ["--device", "tpu", "--out", str(out)],
             ["argument --device", "unknown device 'tpu'", "valid: cpu, cuda"], [out])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer of a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "sample"])
def test_cuda_without_cuda(tmp_path, capsys, command):
    out = tmp_path / ("run" if command == "train" else "g.png")
    argv = (["train", "--method", "edm", "--data", "moons"] if command == "train"
            else ["sample", "--ckpt", str(tmp_path / "c.pt")])
    _refused(capsys, argv + ["--device", "cuda", "--out", str(out)],
             ["argument --device", "needs CUDA", "valid here: cpu"], [out])


def test_cuda_index_beyond_the_devices(tmp_path, capsys, monkeypatch):
    """Runs everywhere: the device count is pretended, so the range in the message is known."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    out = tmp_path / "run"
    _refused(capsys, ["train", "--method", "edm", "--data", "moons", "--device", "cuda:5", "--out", str(out)],
             ["argument --device", "2 CUDA device(s)", "cuda:0..cuda:1"], [out])


def test_bad_train_steps_variable_writes_nothing(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "-2")
    assert main(["train", "--method", "edm", "--data", "moons", "--profile", "quick", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DIFFNOTES_TRAIN_STEPS" in err and ">= 0" in err
    assert not run_dir.exists()


def test_train_steps_zero_trains_nothing_and_says_so(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("DIFFNOTES_TRAIN_STEPS", "0")
    assert main(["train", "--method", "edm", "--data", "moons", "--profile", "quick", "--out", str(run_dir),
                 "--steps", "30"]) == 0
    assert "step 0" in capsys.readouterr().out


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    import subprocess
    import sys

    png = tmp_path / "g.png"
    done = subprocess.run([sys.executable, "-m", "diffnotes", "sample", "--ckpt", "c.pt", "-n", "-5",
                           "--out", str(png)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "" and not png.exists()
    assert done.stderr.splitlines() == [done.stderr.strip()] and "argument -n" in done.stderr


def test_sigma_range_upside_down_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--method", "ve", "--data", "gmm", "--profile", "quick", "--out", str(out),
                 "--steps", "2"]) == 0
    capsys.readouterr()
    png = tmp_path / "g.png"
    _one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt.pt"), "--sigma-min", "5", "--sigma-max", "1",
                             "--out", str(png)], "sigma_min < sigma_max")
    assert not png.exists() and not png.with_suffix(".pt").exists()
