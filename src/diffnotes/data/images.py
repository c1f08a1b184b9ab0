"""Image data: sklearn's bundled 8x8 digits, and MNIST / CIFAR-10 / image folders read from disk.

Every loader returns ``(images, labels)``: ``images`` a float tensor of shape (N, C, H, W) scaled
to [-1, 1] (the range every diffusion paper in the book trains on), ``labels`` an int64 tensor of
shape (N,). Nothing is downloaded at import or test time.

* :func:`load_digits` reads the 1,797 digits that ship inside scikit-learn (no network), the data
  set of the CPU lab notebooks, in a fixed three-way split (classifier / model training /
  evaluation, the last in two halves); see :func:`digits_split_indices` for the sizes and why.
* :func:`load_mnist` and :func:`load_cifar10` read the on-disk formats that torchvision writes
  (MNIST's raw idx-ubyte files, CIFAR-10's python pickle batches) without importing torchvision,
  whose PyPI wheels do not match this project's CPU torch build. ``download=True`` hands the
  download to torchvision when it is importable and fails with a clear message otherwise.
* :func:`load_image_folder` reads ``root/<class>/*.png|jpg`` like torchvision's ``ImageFolder``.

The ``gpu`` profile notebooks use MNIST / CIFAR-10 when a local copy exists.
"""

from __future__ import annotations

import gzip
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DIGITS_SIZES = (8, 16, 32)
DIGITS_SPLITS = ("train", "classifier", "eval", "eval_a", "eval_b", "test", "all")
SPLITS = DIGITS_SPLITS
# Per-class fractions of the three-way split (see digits_split_indices); the rest is "train".
DIGITS_EVAL_FRACTION = 0.36
DIGITS_CLASSIFIER_FRACTION = 0.20
DIGITS_SPLIT_SEED = 0
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# The file names torchvision's MNIST keeps under <root>/MNIST/raw/ (optionally gzipped).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def _check_choice(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(map(str, valid))}; got {value!r}")


def _to_unit_range(images: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map pixel values in [0, max_value] to [-1, 1]."""
    return images.to(torch.float32) * (2.0 / max_value) - 1.0


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


# -- sklearn digits ----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()  # bundled with scikit-learn: no network
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def _digits_split_table() -> dict[str, np.ndarray]:
    _, labels = _digits_arrays()
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)
    parts = {"eval_a": [], "eval_b": [], "classifier": [], "train": []}
    first = 0
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        members = members[rng.permutation(members.shape[0])]
        n_eval = int(round(DIGITS_EVAL_FRACTION * members.shape[0]))
        n_classifier = int(round(DIGITS_CLASSIFIER_FRACTION * members.shape[0]))
        evaluation = members[:n_eval]
        # deal alternately, so each half is stratified too; an odd class hands its extra image
        # to the other half next time, which keeps the halves at 324 each
        parts["eval_a"].append(evaluation[first::2])
        parts["eval_b"].append(evaluation[1 - first::2])
        first ^= n_eval % 2
        parts["classifier"].append(members[n_eval: n_eval + n_classifier])
        parts["train"].append(members[n_eval + n_classifier:])
    # Each split comes in one fixed shuffled order: sklearn's order keeps digits of the same
    # writers together, and a contiguous block x[:300] of it sits 2-5 times farther (Fréchet
    # distance) from the remaining digits than a random 300 do, so a slice must be random.
    rank = np.random.RandomState(DIGITS_SPLIT_SEED + 1).permutation(labels.shape[0])

    def shuffled(idx):
        idx = np.concatenate(idx)
        return idx[np.argsort(rank[idx])]

    table = {name: shuffled(idx) for name, idx in parts.items()}
    table["eval"] = shuffled([table["eval_a"], table["eval_b"]])
    table["test"] = table["eval"]
    table["all"] = np.arange(labels.shape[0])
    return table


def digits_split_indices(split: str) -> np.ndarray:
    """Indices into sklearn's 1,797 digits of one part of the fixed three-way split.

    Each class is permuted with ``numpy.random.RandomState(0)`` (a stream frozen across numpy
    versions, so the split never moves) and cut into:

    * ``"eval"`` (36% of each class, 648 images): the **evaluation** split, the only reference
      that image metrics compare samples against. It is dealt alternately into two disjoint,
      stratified halves, ``"eval_a"`` (324, the reference) and ``"eval_b"`` (324, a second real
      set): half B scored against half A at the samples' N is the *real-vs-real band* every
      metric is read against. ``"test"`` is a synonym of ``"eval"`` (the held-out data).
    * ``"classifier"`` (20%, 359): trains the feature classifier of :mod:`diffnotes.features`
      and nothing else, so the feature space has never seen the reference or the models' data.
    * ``"train"`` (the remaining 44%, 790): what the diffusion models train on.

    Why these sizes: the halves must hold 300+ images each, so that metrics at N = 300 compare
    equal-sized sets and their real-vs-real band is not dominated by small-N bias (that asks for
    at least 600 evaluation images); the book's small classifier reaches 96.5% accuracy on the
    evaluation split from 36 images per class with shift augmentation, so 20% is enough for
    it; the models keep everything else. ``"all"`` is all 1,797 images in sklearn's order.

    Every other split is returned in a fixed shuffled order, so that a prefix ``x[:n]`` is a
    random sample of it: sklearn's order keeps each writer's digits together, and a contiguous
    block of 300 is 2-5 times farther from the rest (Fréchet distance in the classifier's
    features) than a random 300 are.
    """
    _check_choice("split", split, DIGITS_SPLITS)
    return _digits_split_table()[split]


def load_digits(split: str = "train", size: int = 8, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 handwritten digits as ``(images, labels)``, images (N, 1, size, size) in [-1, 1].

    The pixels (integers 0..16) map linearly to [-1, 1]; ``size`` 16 or 32 upsamples bilinearly.
    ``split`` is "train" (790 images, for the diffusion models), "classifier" (359, for the
    feature classifier only), "eval" (648; synonym "test") with its halves "eval_a" and "eval_b"
    (324 each, the metrics' reference and the real-vs-real band), or "all" (1,797); see
    :func:`digits_split_indices`.
    """
    _check_choice("split", split, DIGITS_SPLITS)
    _check_choice("size", size, DIGITS_SIZES)
    pixels, labels = _digits_arrays()
    idx = digits_split_indices(split)
    images = _to_unit_range(torch.from_numpy(pixels[idx]).unsqueeze(1), 16.0)
    images = _resize(images, size)
    return images.to(device), torch.from_numpy(labels[idx]).to(device)


# -- MNIST (torchvision's raw idx files) -------------------------------------------------------
# idx format: 2 zero bytes, a type code, the number of dimensions, then one big-endian int32 per
# dimension, then the data in C order. MNIST uses only type 0x08 (unsigned byte).
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path) -> np.ndarray:
    """Read one idx file (``.gz`` allowed) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {data[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {body.size} values")
    return body.reshape(shape)


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download_with_torchvision(dataset: str, root: Path, train: bool) -> None:
    try:
        import torchvision  # noqa: F401  (optional; PyPI's build does not match this CPU torch)
        from torchvision import datasets
    except Exception as err:
        raise RuntimeError(
            f"download=True needs torchvision, which is not importable here ({err.__class__.__name__}); "
            f"downloads are unavailable: place the {dataset} files under {root} by hand"
        ) from err
    getattr(datasets, dataset)(str(root), train=train, download=True)


def load_mnist(root, split: str = "train", size: int | None = None, download: bool = False,
               device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from ``<root>/MNIST/raw/`` as ``(images, labels)``, images (N, 1, 28, 28) in [-1, 1].

    Reads the four idx-ubyte files torchvision keeps there (gzipped or not). ``size`` resizes
    bilinearly (e.g. 32 for a U-Net with three down-samplings).
    """
    _check_choice("split", split, ("train", "test"))
    root = Path(root)
    raw = root / "MNIST" / "raw"
    if download:
        _download_with_torchvision("MNIST", root, train=split == "train")
    image_name, label_name = MNIST_FILES[split]
    image_path, label_path = _find_file(raw, image_name), _find_file(raw, label_name)
    if image_path is None or label_path is None:
        raise FileNotFoundError(
            f"MNIST not found: expected {image_name}[.gz] and {label_name}[.gz] in {raw} "
            "(torchvision's raw layout); nothing is downloaded unless download=True"
        )
    pixels, labels = read_idx(image_path), read_idx(label_path)
    if pixels.ndim != 3 or labels.ndim != 1 or pixels.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_path} / {label_path}: shapes {pixels.shape} and {labels.shape} do not match")
    images = _resize(_to_unit_range(torch.from_numpy(pixels.copy()).unsqueeze(1), 255.0), size)
    return images.to(device), torch.from_numpy(labels.astype(np.int64)).to(device)


# -- CIFAR-10 (python pickle batches) ----------------------------------------------------------
def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The official batches are pickles of dicts; read only trusted files (pickle runs code).
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or not ({"labels", "fine_labels"} & batch.keys()):
        raise ValueError(f"{path} is not a CIFAR batch (keys: {sorted(batch)})")
    labels = batch.get("labels", batch.get("fine_labels"))
    data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows are R, G, B planes
    return data, np.asarray(labels, dtype=np.int64)


def load_cifar10(root, split: str = "train", download: bool = False,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/`` as ``(images, labels)``, (N, 3, 32, 32) in [-1, 1].

    Reads ``data_batch_1..5`` (train) or ``test_batch`` (test); class names: ``CIFAR10_CLASSES``.
    """
    _check_choice("split", split, ("train", "test"))
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    if download:
        _download_with_torchvision("CIFAR10", root, train=split == "train")
    names = CIFAR10_BATCHES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected {', '.join(names)} in {folder} (the python version's "
            f"pickle batches; missing: {', '.join(missing)}); nothing is downloaded unless download=True"
        )
    parts = [_read_cifar_batch(folder / n) for n in names]
    pixels = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images = _to_unit_range(torch.from_numpy(pixels), 255.0)
    return images.to(device), torch.from_numpy(labels).to(device)


# -- image folders -------------------------------------------------------------------------------
def image_folder_classes(root) -> list[str]:
    """Sorted names of the class subfolders of ``root`` (label i is the i-th name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder not found: {root} (expected one subfolder per class holding "
            f"{'/'.join(IMAGE_EXTENSIONS)} files)"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"no class subfolders in {root} (expected {root}/<class>/<image>.png)")
    return classes


def load_image_folder(root, size: int | None = None, mode: str = "RGB",
                      device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images under ``root/<class>/`` as ``(images, labels)``, images (N, C, H, W) in [-1, 1].

    ``mode`` is "RGB" (C = 3) or "L" (grayscale, C = 1). Without ``size`` all images must share
    one size; with it each is resized bilinearly to ``size x size``. Classes are numbered in the
    order of :func:`image_folder_classes`; files are read in sorted order.
    """
    from PIL import Image

    _check_choice("mode", mode, ("RGB", "L"))
    root = Path(root)
    images, labels = [], []
    for label, name in enumerate(image_folder_classes(root)):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            with Image.open(path) as img:
                array = np.asarray(img.convert(mode), dtype=np.uint8)
            tensor = torch.from_numpy(array.copy())
            tensor = tensor.unsqueeze(0) if mode == "L" else tensor.permute(2, 0, 1)
            images.append(_resize(_to_unit_range(tensor, 255.0).unsqueeze(0), size)[0])
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} files in the class subfolders of {root}")
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) > 1:
        raise ValueError(f"images in {root} have different shapes {sorted(shapes)}; pass size=... to resize")
    return torch.stack(images).to(device), torch.tensor(labels, dtype=torch.int64, device=device)
