"""Data loaders: 2-D toys, sklearn digits, and readers of MNIST / CIFAR-10 / image-folder layouts.

The on-disk tests write tiny fake data sets in ``tmp_path`` in the formats torchvision uses and
read them back; nothing is downloaded.
"""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from diffnotes.data import (
    CIFAR10_CLASSES,
    TOYS,
    digits_split_indices,
    get_toy,
    image_folder_classes,
    load_cifar10,
    load_digits,
    load_image_folder,
    load_mnist,
    read_idx,
)

RESCALED_TOYS = ("swiss_roll", "moons", "checkerboard")


# -- toys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RESCALED_TOYS)
def test_toy_is_centred_with_unit_variance(name):
    x = get_toy(name)(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (100_000, 2)
    # population mean 0 and mean per-coordinate variance 1; 1e5 samples: std error ~0.005
    assert x.mean(0).abs().max() < 0.02
    assert abs(x.var(0).mean().item() - 1.0) < 0.02


@pytest.mark.parametrize("name", list(TOYS))
def test_toy_is_seeded_and_noise_adds_variance(name):
    sampler = get_toy(name)
    a = sampler(500, generator=torch.Generator().manual_seed(3))
    b = sampler(500, generator=torch.Generator().manual_seed(3))
    c = sampler(500, generator=torch.Generator().manual_seed(4))
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    clean = sampler(20_000, generator=torch.Generator().manual_seed(5))
    noisy = sampler(20_000, generator=torch.Generator().manual_seed(5), noise=0.5)
    gain = noisy.var(0).sum() - clean.var(0).sum()
    assert abs(gain.item() - 2 * 0.25) < 0.05


def test_checkerboard_lies_on_dark_cells():
    x = get_toy("checkerboard")(5_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    board = x * (4.0 / 3.0) ** 0.5 + 2.0  # undo the scaling: back to [0, 4]^2
    cells = board.floor().long()
    assert bool(((cells[:, 0] + cells[:, 1]) % 2 == 0).all())


def test_swiss_roll_radius_matches_angle():
    # Undo the standardisation and check the defining relation |(x, y)| = t with t in [1.5pi, 4.5pi].
    from diffnotes.data.toys import _swiss_roll_moments

    (mx, my), var = _swiss_roll_moments()
    x = get_toy("swiss_roll")(1_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    raw = x * var**0.5 + torch.tensor([mx, my], dtype=torch.float64)
    radius = raw.norm(dim=1)
    angle = torch.atan2(raw[:, 1], raw[:, 0])
    assert radius.min() >= 1.5 * np.pi - 1e-9 and radius.max() <= 4.5 * np.pi + 1e-9
    # the polar angle equals t = radius up to whole turns
    assert torch.allclose(torch.cos(radius - angle), torch.ones_like(radius), atol=1e-9)


def test_get_toy_rejects_unknown_names():
    with pytest.raises(ValueError, match="swiss_roll, moons, checkerboard"):
        get_toy("spiral")
    with pytest.raises(ValueError, match="noise"):
        get_toy("moons")(10, noise=-1.0)
    assert get_toy("Swiss-Roll") is TOYS["swiss_roll"]


# -- sklearn digits ------------------------------------------------------------------------------
def test_digits_split_is_fixed_disjoint_and_stratified():
    # three-way split: models / feature classifier / evaluation (two halves); see
    # tests/test_image_metrics.py for the sizes
    parts = [digits_split_indices(s) for s in ("train", "classifier", "eval_a", "eval_b")]
    assert len(digits_split_indices("all")) == 1797 and sum(map(len, parts)) == 1797
    assert len(set().union(*map(set, parts))) == 1797  # disjoint
    assert np.array_equal(digits_split_indices("test"), digits_split_indices("eval"))
    x_test, y_test = load_digits("test")
    counts = torch.bincount(y_test, minlength=10)
    assert counts.min() >= 62 and counts.max() <= 67  # 36% of each class (174..183 per class)
    assert torch.equal(load_digits("test")[0], x_test)


def test_digits_range_shape_and_upsampling():
    x, y = load_digits("all")
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0  # pixels 0..16 -> [-1, 1]
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    assert torch.allclose(x[:5, 0], torch.from_numpy(raw.images[:5]).float() / 8 - 1, atol=1e-6)
    assert torch.equal(y, torch.from_numpy(raw.target))
    x32, _ = load_digits("train", size=32)
    assert x32.shape[1:] == (1, 32, 32)
    # bilinear upsampling stays in range and, pooled back to 8x8, matches the original pattern
    # (a transposed or shifted resize would drop this correlation well below 0.95)
    x8, _ = load_digits("train", size=8)
    back = torch.nn.functional.avg_pool2d(x32, 4)
    assert x32.min() >= -1 and x32.max() <= 1
    assert torch.corrcoef(torch.stack([back.flatten(), x8.flatten()]))[0, 1] > 0.95
    assert torch.corrcoef(torch.stack([back.transpose(2, 3).flatten(), x8.flatten()]))[0, 1] < 0.9


def test_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be one of 8, 16, 32"):
        load_digits(size=28)
    with pytest.raises(ValueError, match="split must be one of train, classifier, eval"):
        load_digits(split="valid")


# -- MNIST idx files -----------------------------------------------------------------------------
def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_reads_torchvision_raw_layout(tmp_path, compress):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(raw / "t10k-images-idx3-ubyte", pixels, compress)
    _write_idx(raw / "t10k-labels-idx1-ubyte", labels, compress)

    x, y = load_mnist(tmp_path, split="test")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == -1.0 and x[0, 0, 0, 1].item() == 1.0
    assert torch.allclose(x[:, 0], torch.from_numpy(pixels).float() / 127.5 - 1, atol=1e-6)
    assert y.tolist() == [3, 1, 4, 1, 5]
    assert load_mnist(tmp_path, split="test", size=32)[0].shape == (5, 1, 32, 32)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, split="train")


def test_read_idx_rejects_other_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x89PNG....")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(short)


def test_missing_mnist_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message and "idx" in message


# -- CIFAR-10 pickle batches ---------------------------------------------------------------------
def _write_cifar_batch(path, data: np.ndarray, labels: list[int]) -> None:
    # The official files were written by Python 2: byte-string keys.
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": data.reshape(len(labels), -1)}, f)


def test_cifar10_reader_reads_pickle_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train_batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
        _write_cifar_batch(folder / f"data_batch_{i}", data, [i, 9 - i])
        train_batches.append(data)
    test_data = np.zeros((3, 3, 32, 32), dtype=np.uint8)
    test_data[1, 0] = 255  # a pure red image
    _write_cifar_batch(folder / "test_batch", test_data, [0, 1, 2])

    x, y = load_cifar10(tmp_path, split="train")
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    assert torch.allclose(x, torch.from_numpy(np.concatenate(train_batches)).float() / 127.5 - 1, atol=1e-6)
    x_test, y_test = load_cifar10(tmp_path, split="test")
    assert x_test[1, 0].eq(1).all() and x_test[1, 1:].eq(-1).all() and y_test.tolist() == [0, 1, 2]
    assert len(CIFAR10_CLASSES) == 10

    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path, split="train")


def test_download_without_torchvision_says_unavailable(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.split(".")[0] == "torchvision":
            raise ImportError("torchvision hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    for loader in (load_mnist, load_cifar10):
        with pytest.raises(RuntimeError, match="downloads are unavailable"):
            loader(tmp_path, download=True)


# -- image folders -------------------------------------------------------------------------------
def test_image_folder_reads_class_subfolders(tmp_path):
    from PIL import Image

    colours = {"cats": (255, 0, 0), "dogs": (0, 0, 255)}
    for name, colour in colours.items():
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (6, 4), colour).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    # JPEG is lossy: a flat grey survives within a few levels
    Image.new("RGB", (6, 4), (128, 128, 128)).save(tmp_path / "dogs" / "2.jpg")

    assert image_folder_classes(tmp_path) == ["cats", "dogs"]
    x, y = load_image_folder(tmp_path)
    assert x.shape == (5, 3, 4, 6) and y.tolist() == [0, 0, 1, 1, 1]
    assert x[0, 0].eq(1).all() and x[0, 1:].eq(-1).all()  # red
    assert x[2, 2].eq(1).all() and x[2, :2].eq(-1).all()  # blue
    assert (x[4] - (128 / 127.5 - 1)).abs().max() < 0.05
    gray, _ = load_image_folder(tmp_path, size=8, mode="L")
    assert gray.shape == (5, 1, 8, 8)


def test_image_folder_errors(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="one subfolder per class"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no class subfolders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "a" / "0.png")
    Image.new("L", (5, 5)).save(tmp_path / "a" / "1.png")
    with pytest.raises(ValueError, match="pass size="):
        load_image_folder(tmp_path, mode="L")
    with pytest.raises(ValueError, match="mode must be one of RGB, L"):
        load_image_folder(tmp_path, mode="CMYK")


def test_readers_agree_with_torchvision(tmp_path):
    # Oracle where torchvision is importable (not beside this CPU torch; run on a machine that
    # has it): the same fake files read by torchvision's MNIST and ImageFolder.
    datasets = pytest.importorskip("torchvision.datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels, labels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7).astype(np.uint8)
    for split, n in (("t10k", 7), ("train", 3)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", pixels[:n], compress=False)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels[:n], compress=False)
    x, y = load_mnist(tmp_path, split="test")
    reference = datasets.MNIST(str(tmp_path), train=False, download=False)
    assert torch.equal(((x[:, 0] + 1) * 127.5).round().to(torch.uint8), reference.data)
    assert torch.equal(y, reference.targets)

    folder = tmp_path / "folder"
    for name in ("zebra", "ant"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    images, targets = load_image_folder(folder)
    reference = datasets.ImageFolder(str(folder))
    assert reference.classes == image_folder_classes(folder)
    for k, (pil_image, target) in enumerate(reference):
        assert targets[k].item() == target
        assert np.array_equal(((images[k].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy(), np.asarray(pil_image))
