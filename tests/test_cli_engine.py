"""``python -m diffnotes train | sample | bench``: a run end to end, and one-line errors."""

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


def test_other_run_in_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--method", "ve", "--data", "gmm", "--profile", "quick", "--out", str(out), "--steps", "2"]) == 0
    assert main(["train", "--method", "edm", "--data", "gmm", "--profile", "quick", "--out", str(out), "--steps", "2"]) == 2
    assert "different run" in capsys.readouterr().err


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


def test_bench_unknown_name(capsys):
    _one_line_error(capsys, ["bench", "nonexistent"], "valid")
