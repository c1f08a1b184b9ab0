"""``diffnotes.presets``' named data sets (issue 24): loading one, measuring it, and checking a
run folder against a config. Every failure is one line of ``ValueError`` or ``FileNotFoundError``,
which the CLI prints as its ``error:`` line."""

import json

import pytest
import torch

from diffnotes import presets


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_toys_are_samplers_and_digits_a_tensor():
    moons = presets.load_data("moons", None, None)
    first = moons(5, torch.Generator().manual_seed(0))
    assert first.shape == (5, 2)
    assert torch.equal(first, moons(5, torch.Generator().manual_seed(0)))
    digits = presets.load_data("digits", None, 8)
    assert digits.ndim == 4 and digits.shape[1:] == (1, 8, 8)
    assert presets.load_data("digits", None, 32).shape[1:] == (1, 32, 32)


def test_unknown_data_set_is_one_line():
    with pytest.raises(ValueError) as err:
        presets.load_data("faces", None)
    assert _one_line(err).startswith("unknown data set 'faces'; valid: gmm")


@pytest.mark.parametrize("name", presets.FOLDER_DATA)
def test_folder_data_need_a_root_that_exists(tmp_path, name):
    with pytest.raises(ValueError) as err:
        presets.load_data(name, None)
    assert _one_line(err) == f"data set {name} needs a data root, the folder holding the {name} files"
    with pytest.raises(FileNotFoundError) as err:
        presets.load_data(name, tmp_path / "nope")
    assert _one_line(err) == f"data folder {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize("name, words", [("mnist", "MNIST not found"), ("cifar10", "CIFAR-10 not found")])
def test_missing_files_are_one_line(tmp_path, name, words):
    with pytest.raises(FileNotFoundError) as err:
        presets.load_data(name, tmp_path)
    assert _one_line(err).startswith(words)


def test_an_unreadable_file_is_one_line_value_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (raw / name).write_bytes(b"garbage, not gzip")
    with pytest.raises(ValueError) as err:  # gzip's BadGzipFile is an OSError
        presets.load_data("mnist", tmp_path)
    assert "gzip" in _one_line(err)


def test_sigma_data_reads_a_fixed_sample():
    signs = torch.ones(10000, 2)
    signs[1::2] = -1.0  # std 1 (to three places) over the first 10000 rows
    data = torch.cat([signs, torch.full((5000, 2), 100.0)])  # rows past 10000 are not read
    assert presets.sigma_data_of(data) == 1.0
    moons = presets.load_data("moons", None, None)
    assert presets.sigma_data_of(moons) == presets.sigma_data_of(moons)  # seeded draw
    assert 0.5 < presets.sigma_data_of(moons) < 1.5


def test_sample_shape_is_one_example():
    assert presets.sample_shape(torch.zeros(7, 1, 8, 8)) == [1, 8, 8]
    assert presets.sample_shape(presets.load_data("gmm", None, None)) == [2]
    assert presets.sample_shape(presets.load_data("digits", None, 8)) == [1, 8, 8]


def _config(**changes):
    config = {"method": "edm", "data": "moons", "profile": "quick", "sigma_data": 0.7, "shape": [2],
              "net": {"kind": "mlp", "kwargs": {"dim": 2}}, "precond": {"kind": "edm", "kwargs": {}}}
    return {**config, **changes}


def test_a_run_folder_takes_the_same_run_only(tmp_path):
    presets.refuse_other_run(tmp_path / "new", _config())  # nothing there yet
    (tmp_path / "config.json").write_text(json.dumps(_config()))
    presets.refuse_other_run(tmp_path, _config(profile="full", sigma_data=0.8))  # same run
    old_style = {k: v for k, v in _config().items() if k != "shape"}
    (tmp_path / "config.json").write_text(json.dumps(old_style))
    presets.refuse_other_run(tmp_path, _config())  # a run from before "shape" resumes
    with pytest.raises(ValueError) as err:
        presets.refuse_other_run(tmp_path, _config(method="ve", precond={"kind": "ve", "kwargs": {}}))
    assert _one_line(err) == f"{tmp_path} holds a different run (method, precond differ)"


@pytest.mark.parametrize("text, words", [("{not json", "not JSON"), ("[1, 2]", "a JSON list")])
def test_a_broken_config_is_one_line(tmp_path, text, words):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError) as err:
        presets.refuse_other_run(tmp_path, _config())
    assert words in _one_line(err) and "config.json is not a run's config" in _one_line(err)


@pytest.mark.parametrize("profile", ["quick", "full", "gpu"])
@pytest.mark.parametrize("name", [*presets.TOY_DATA, "digits"])
def test_the_stored_shape_is_what_the_network_takes(name, profile):
    """What ``train`` stores as ``config["shape"]`` matches the backbone that the profile builds
    (the attributes ``sample`` read the shape from before the config held it)."""
    from diffnotes.profiles import get_profile

    chosen = get_profile(profile)
    shape = presets.sample_shape(presets.load_data(name, None, presets.image_size(name, chosen)))
    net = presets.build_net(presets.net_config(name, chosen))
    if name in presets.TOY_DATA:
        assert shape == [net.dim] == [2]
    else:
        assert shape == [net.in_channels, net.img_resolution, net.img_resolution]
