"""Device choice and the GPU fast paths (every chapter runs anywhere; CUDA is used when present).

``default_device()`` picks CUDA when present, CPU otherwise. ``accel(device)`` says which fast
paths one run takes; each of them is off on the CPU, so a CPU run computes exactly what it did
before they existed (``tests/test_device.py``):

=================  ===========================================  ================================
fast path          what it does                                 when it is on
=================  ===========================================  ================================
bf16 autocast      matmuls/convs in bfloat16, loss in float32   CUDA (``fit(amp=True)``)
fused AdamW        one kernel per parameter group               CUDA
pinned memory      host batches copied asynchronously           CUDA
channels-last      NHWC activations (faster cuDNN convs)        CUDA under the ``gpu`` profile
TF32               float32 matmuls outside autocast on TF32     CUDA under the ``gpu`` profile
``torch.compile``  fused kernels (and CUDA graphs with          CUDA under ``gpu`` when
                   ``max-autotune``)                            ``$DIFFNOTES_COMPILE`` names a mode
sample batch       images drawn per sampler call                4096 on CUDA under ``gpu``, else 512
=================  ===========================================  ================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["default_device", "Accel", "accel", "compile_mode", "COMPILE_ENV", "COMPILE_MODES",
           "to_device", "in_batches"]

COMPILE_ENV = "DIFFNOTES_COMPILE"
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def default_device() -> torch.device:
    """Return ``cuda`` when available (and not disabled by ``DIFFNOTES_DEVICE``), else ``cpu``."""
    wanted = os.environ.get("DIFFNOTES_DEVICE", "").strip().lower()
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"DIFFNOTES_DEVICE={wanted!r} but CUDA is not available; use 'cpu' or unset it")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Accel:
    """The fast paths one run takes (see the module's table); all off on the CPU."""

    device: torch.device
    fused_adamw: bool = False
    pin_memory: bool = False
    channels_last: bool = False
    tf32: bool = False
    compile_mode: str | None = None
    sample_batch: int = 512


def compile_mode(environ=None) -> str | None:
    """The ``torch.compile`` mode named by ``$DIFFNOTES_COMPILE`` (unset, ``0`` or empty: None)."""
    raw = (os.environ if environ is None else environ).get(COMPILE_ENV, "").strip().lower()
    if raw in ("", "0", "off", "none"):
        return None
    if raw in ("1", "on"):
        return "default"
    if raw not in COMPILE_MODES:
        raise ValueError(f"{COMPILE_ENV}={raw!r} is not a torch.compile mode; valid: 0, 1, "
                         + ", ".join(COMPILE_MODES))
    return raw


def accel(device=None, profile=None, environ=None) -> Accel:
    """The fast paths for ``device`` under ``profile`` (default: ``$DIFFNOTES_PROFILE``)."""
    from .profiles import get_profile

    device = default_device() if device is None else torch.device(device)
    mode = compile_mode(environ)  # a bad value fails on every device, not only on a GPU
    if device.type != "cuda":
        return Accel(device)
    gpu = get_profile(profile).name == "gpu"
    return Accel(device, fused_adamw=True, pin_memory=True, channels_last=gpu, tf32=gpu,
                 compile_mode=mode if gpu else None, sample_batch=4096 if gpu else 512)


def to_device(x: torch.Tensor, fast: Accel, dtype=None) -> torch.Tensor:
    """``x`` on ``fast.device``: pinned and copied asynchronously on CUDA, NHWC when asked."""
    if fast.pin_memory and x.device.type == "cpu":
        x = x.pin_memory()
    x = x.to(fast.device, dtype=dtype, non_blocking=fast.pin_memory)
    if fast.channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def in_batches(draw, n: int, batch: int) -> torch.Tensor:
    """``draw(k)`` called on chunks of at most ``batch`` rows, concatenated to ``n`` rows.

    Sampling many images at once keeps a GPU busy; ``batch`` (e.g. ``Accel.sample_batch``) keeps
    the memory of one call bounded.
    """
    if n < 0 or batch < 1:
        raise ValueError(f"need n >= 0 and batch >= 1, got n={n}, batch={batch}")
    parts = [draw(min(batch, n - start)) for start in range(0, n, batch)]
    return torch.cat(parts) if parts else torch.empty(0)
