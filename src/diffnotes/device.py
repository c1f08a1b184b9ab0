"""Device choice: CUDA when present, CPU otherwise (every chapter runs anywhere)."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """Return ``cuda`` when available (and not disabled by ``DIFFNOTES_DEVICE``), else ``cpu``."""
    wanted = os.environ.get("DIFFNOTES_DEVICE", "").strip().lower()
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"DIFFNOTES_DEVICE={wanted!r} but CUDA is not available; use 'cpu' or unset it")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
