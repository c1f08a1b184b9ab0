"""Checkpoints of ``diffnotes.train.fit``: atomic writes, safe reads, plain contents.

A checkpoint is a dict of tensors and plain types (``format``, ``step``, model, EMA and optimizer
state, RNG states, the loss history and the run's config). ``save_checkpoint`` writes it to a
temporary file in the same folder, flushes and fsyncs it, then renames it over the old one, so a
reader sees the old file or the new one and never half of one; ``load_checkpoint`` reads it back
with ``torch.load(weights_only=True)``, so a checkpoint cannot run code when it is opened.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["CKPT_NAME", "CKPT_FORMAT", "CheckpointError", "check_plain", "save_checkpoint",
           "load_checkpoint"]

CKPT_NAME = "ckpt.pt"
CKPT_FORMAT = "diffnotes-ckpt-1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (corrupt, truncated, or not ours)."""


def check_plain(value, where: str = "config") -> None:
    """Only plain types go into a checkpoint, so that ``weights_only=True`` can read it back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} keys must be strings, got {k!r}")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where} must hold only None/bool/int/float/str/list/dict, "
                     f"got {type(value).__name__}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (some file systems refuse fsync on folders)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


def atomic_write(path, write, *, mode: str = "wb") -> Path:
    """Write a file atomically: ``write(fh)`` fills a temporary file in the same folder, which is
    flushed, fsynced and renamed over ``path``, so a reader (or a run resumed after a kill) sees
    the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)
    return path


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``fit`` with ``weights_only=True`` (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or truncated, or holds objects "
            f"other than tensors and plain types ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path} is not a diffnotes checkpoint (expected format {CKPT_FORMAT!r})")
    return state
