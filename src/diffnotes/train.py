"""One training loop for any loss callable: AdamW, EMA, checkpoints, exact resume, DDP.

``fit(model, loss_fn, data, steps, ...)`` knows no diffusion formulation: the methods supply a
``loss_fn(model, x0, class_labels=None) -> per-sample loss`` (e.g.
``diffnotes.methods.edm.EDMLoss``) and the loop minimises its mean. What the loop adds:

* AdamW with linear learning-rate warm-up and gradient-norm clipping;
* an exponential moving average of the weights (``model_ema``), updated every step;
* seeded, deterministic CPU runs: the data generator and torch's global generator are seeded
  from ``seed`` and saved in every checkpoint, so stopping and resuming reproduces the
  uninterrupted run bit for bit (``tests/test_train.py``);
* atomic checkpoints (temporary file in the same folder, flush + fsync, ``os.replace``) holding
  only tensors and plain types, read back with ``torch.load(weights_only=True)``;
* a non-finite loss stops training with a message naming the step, and the last good checkpoint
  stays untouched;
* bf16 autocast on CUDA, optional ``torch.compile``, a tqdm progress bar that is quiet when
  stderr is not a terminal;
* ``DIFFNOTES_TRAIN_STEPS`` (when set) caps the number of steps of every run, e.g. ``0`` to
  check that a notebook's final checks fail on an untrained model (see ``steps_cap``);
* data parallelism under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA): every rank draws the
  same *global* batch from the shared data generator and trains on its slice, so the gradient
  equals single-process training at the same global batch (up to summation order).

Used in the book by every lab notebook that trains a network and by ``python -m diffnotes train``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

__all__ = [
    "fit",
    "TrainResult",
    "TrainingDiverged",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "CKPT_NAME",
    "STEPS_ENV",
    "steps_cap",
]

CKPT_NAME = "ckpt.pt"
STEPS_ENV = "DIFFNOTES_TRAIN_STEPS"
CKPT_FORMAT = "diffnotes-ckpt-1"


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (corrupt, truncated, or not ours)."""


@dataclass
class TrainResult:
    """What ``fit`` returns: the trained model, its EMA copy and the loss history."""

    model: nn.Module
    model_ema: nn.Module
    losses: list[float]  # mean training loss of every step since step 0 (resumed runs included)
    step: int  # steps done in total
    seconds: float  # wall time of this call
    steps_run: int  # steps done by this call
    ckpt_path: Path | None = None
    config: dict = field(default_factory=dict)
    steps_requested: int | None = None  # ``steps`` as passed, before DIFFNOTES_TRAIN_STEPS

    @property
    def capped(self) -> bool:
        """True when ``DIFFNOTES_TRAIN_STEPS`` cut this run short."""
        return self.steps_requested is not None and self.step < self.steps_requested

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / self.seconds if self.seconds > 0 else float("nan")


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def _check_plain(value, where="config"):
    """Only plain types go into a checkpoint, so that ``weights_only=True`` can read it back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where} must hold only None/bool/int/float/str/list/dict, got {type(value).__name__}")


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``fit`` with ``weights_only=True`` (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt or truncated, or holds objects other than "
            f"tensors and plain types ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path} is not a diffnotes checkpoint (expected format {CKPT_FORMAT!r})")
    return state


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


NOISE_SEED_OFFSET = 1_000_003  # separates the global (loss noise) stream from the data stream


class _Batches:
    """Global batches from a tensor, a ``(x, labels)`` pair, a callable, or an iterable."""

    def __init__(self, data, batch_size: int, generator: torch.Generator):
        self.batch_size, self.generator = batch_size, generator
        self.kind, self.data, self._iter = None, data, None
        if isinstance(data, torch.Tensor):
            self.kind, self.x, self.labels = "tensor", data, None
        elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data):
            self.kind, (self.x, self.labels) = "tensor", data
            if self.labels.shape[0] != self.x.shape[0]:
                raise ValueError(f"data and labels differ in length: {self.x.shape[0]} vs {self.labels.shape[0]}")
        elif hasattr(data, "sample") and callable(data.sample):  # e.g. diffnotes.data.GaussianMixture
            self.kind, self.fn = "callable", data.sample
        elif callable(data):
            self.kind, self.fn = "callable", data
        elif hasattr(data, "__iter__"):
            self.kind = "iterable"
        else:
            raise ValueError(
                "data must be a tensor, an (x, labels) pair of tensors, a callable batch(n, generator), "
                f"or an iterable such as a DataLoader; got {type(data).__name__}"
            )
        if self.kind == "tensor" and self.x.shape[0] == 0:
            raise ValueError("data is empty")

    def next(self):
        if self.kind == "tensor":
            idx = torch.randint(self.x.shape[0], (self.batch_size,), generator=self.generator)
            return self.x[idx], (None if self.labels is None else self.labels[idx])
        if self.kind == "callable":
            out = self.fn(self.batch_size, self.generator)
        else:
            if self._iter is None:
                self._iter = iter(self.data)
            try:
                out = next(self._iter)
            except StopIteration:  # a new epoch
                self._iter = iter(self.data)
                out = next(self._iter)
        if isinstance(out, (tuple, list)):
            return out[0], (out[1] if len(out) > 1 else None)
        return out, None


# ----------------------------------------------------------------------------------------------
# Distributed
# ----------------------------------------------------------------------------------------------


def _distributed(device: torch.device):
    """(rank, world_size, created) under torchrun; (0, 1, False) otherwise."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return 0, 1, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), created


def _rng_state(generator, world):
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if world > 1:  # each rank draws its own loss noise: keep every rank's torch state
        import torch.distributed as dist

        mine = torch.get_rng_state().to(_comm_device())  # nccl gathers CUDA tensors only
        states = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(states, mine)
        state["torch_per_rank"] = [s.cpu() for s in states]
    return state


def _comm_device():
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _set_rng_state(state, generator, rank, world):
    per_rank = state.get("torch_per_rank")
    if per_rank is not None and len(per_rank) == world:
        torch.set_rng_state(per_rank[rank])
    elif per_rank is None and world == 1:
        torch.set_rng_state(state["torch"])
    else:  # keep the fresh seed + rank streams set by fit
        warnings.warn("checkpoint was written with another number of processes; loss noise is reseeded")
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def steps_cap(environ=None) -> int | None:
    """The step cap from ``$DIFFNOTES_TRAIN_STEPS``: ``None`` when unset or empty, else an int >= 0.

    ``fit`` trains for ``min(steps, cap)`` steps; ``0`` disables training, so the returned model
    and its EMA copy keep their initial weights. Anything else raises one ``ValueError`` line.
    """
    raw = (os.environ if environ is None else environ).get(STEPS_ENV)
    if raw is None or not raw.strip():
        return None
    try:
        cap = int(raw.strip())
    except ValueError:
        cap = -1
    if cap < 0:
        raise ValueError(f"{STEPS_ENV} must be an integer >= 0 (0 disables training), got {raw!r}")
    return cap


def _validate(steps, lr, batch_size, ema_decay, ema_halflife, warmup, grad_clip, weight_decay, log_every, ckpt_every):
    def need(ok, what):
        if not ok:
            raise ValueError(what)

    need(isinstance(steps, int) and steps >= 0, f"steps must be an integer >= 0, got {steps!r}")
    need(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an integer >= 1, got {batch_size!r}")
    need(lr > 0 and math.isfinite(lr), f"lr must be a positive number, got {lr!r}")
    need(0 <= ema_decay < 1, f"ema_decay must lie in [0, 1), got {ema_decay!r}")
    need(ema_halflife is None or ema_halflife > 0, f"ema_halflife must be a positive number of steps, got {ema_halflife!r}")
    need(isinstance(warmup, int) and warmup >= 0, f"warmup must be an integer >= 0 (steps), got {warmup!r}")
    need(grad_clip is None or grad_clip > 0, f"grad_clip must be positive or None, got {grad_clip!r}")
    need(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay!r}")
    need(isinstance(log_every, int) and log_every >= 1, f"log_every must be an integer >= 1, got {log_every!r}")
    need(ckpt_every is None or (isinstance(ckpt_every, int) and ckpt_every >= 1),
         f"ckpt_every must be an integer >= 1 or None, got {ckpt_every!r}")


@torch.no_grad()
def _update_ema(model_ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(model_ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - decay)
    for b_ema, b in zip(model_ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def fit(
    model: nn.Module,
    loss_fn: Callable,
    data: Any,
    steps: int,
    *,
    lr: float = 2e-4,
    batch_size: int = 128,
    ema_decay: float = 0.999,
    ema_halflife: float | None = None,
    ema_warmup: bool = True,
    warmup: int = 0,
    grad_clip: float | None = 1.0,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    seed: int = 0,
    ckpt_dir=None,
    ckpt_every: int | None = None,
    resume: bool = True,
    device=None,
    amp: bool = True,
    compile: bool = False,
    progress: bool | None = None,
    log_every: int = 10,
    config: dict | None = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn(model, x0, class_labels).mean()`` for ``steps`` steps.

    ``steps`` counts from the start of training: resuming from a checkpoint at step k runs the
    remaining ``steps - k``. ``batch_size`` is the global batch (split over DDP ranks).
    ``ema_halflife`` (in steps) overrides ``ema_decay`` with ``0.5 ** (1 / ema_halflife)``;
    ``ema_warmup`` uses ``min(decay, (1 + step) / (10 + step))`` so that short runs get a useful
    average. ``warmup`` ramps the learning rate linearly over that many steps. ``config`` (plain
    types) is stored in the checkpoint next to the loop's own settings, for rebuilding the model.
    ``progress=None`` shows a bar only when stderr is a terminal.
    """
    _validate(steps, lr, batch_size, ema_decay, ema_halflife, warmup, grad_clip, weight_decay, log_every, ckpt_every)
    steps_requested, cap = steps, steps_cap()
    if cap is not None:
        steps = min(steps, cap)
    user_config = dict(config or {})
    _check_plain(user_config)
    if ema_halflife is not None:
        ema_decay = 0.5 ** (1.0 / ema_halflife)

    if device is None:
        from .device import default_device

        device = default_device()
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    rank, world, created_group = _distributed(device)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")

    model.to(device)
    model.train()
    model_ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    # Loss noise and dropout use torch's global stream, each rank its own. It must not start from
    # the data generator's seed: a loss drawing randn would then repeat the data's own randn
    # draws (the noise would equal the data's latent), which made DSM "beat" its floor.
    torch.manual_seed(seed + NOISE_SEED_OFFSET + rank)
    batches = _Batches(data, batch_size, generator)
    param_dtype = next(model.parameters()).dtype

    loop_config = dict(lr=lr, batch_size=batch_size, ema_decay=ema_decay, ema_warmup=ema_warmup, warmup=warmup,
                       grad_clip=grad_clip, weight_decay=weight_decay, betas=list(betas), seed=seed, steps=steps,
                       world_size=world)
    ckpt_path = Path(ckpt_dir) / CKPT_NAME if ckpt_dir is not None else None
    start, losses, last_good = 0, [], None
    if ckpt_path is not None and resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location="cpu")  # RNG states must stay on the CPU
        if cap is not None and int(state["step"]) > steps:
            raise ValueError(f"{ckpt_path} holds {int(state['step'])} steps, more than {STEPS_ENV}={cap} "
                             "allows; unset it, pass resume=False or use another ckpt_dir")
        model.load_state_dict(state["model"])
        model_ema.load_state_dict(state["model_ema"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], generator, rank, world)
        start, losses, last_good = int(state["step"]), state["losses"].tolist(), int(state["step"])
        changed = {k: (state["config"]["train"].get(k), v) for k, v in loop_config.items()
                   if k not in ("steps",) and state["config"]["train"].get(k) != v}
        if changed:
            warnings.warn(f"resuming {ckpt_path} with changed settings (checkpoint, now): {changed}")
        if batches.kind == "iterable":
            warnings.warn("resuming with an iterable data source: batches do not continue exactly")

    def checkpoint(step):
        state = {
            "format": CKPT_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "model_ema": model_ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": _rng_state(generator, world),  # collective under DDP: every rank calls it
            "losses": torch.tensor(losses, dtype=torch.float64),
            "config": {"train": loop_config, **user_config},
        }
        if rank == 0:
            save_checkpoint(ckpt_path, state)

    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        train_model = torch.compile(train_model)

    show = (sys.stderr.isatty() if progress is None else bool(progress)) and rank == 0
    from tqdm.std import tqdm  # text bar; the widget would need ipywidgets and scripts from a CDN

    bar = tqdm(total=steps, initial=start, disable=not show, desc="train", unit="step", dynamic_ncols=True)
    local = batch_size // world
    pending: list[torch.Tensor] = []
    t0 = time.perf_counter()

    def flush(step_after):
        """Move the pending losses to the host, check them, extend the history."""
        nonlocal pending
        if not pending:
            return
        values = torch.stack(pending).float()
        if world > 1:
            import torch.distributed as dist

            values = values.to(_comm_device())
            dist.all_reduce(values)
            values = values / world
        values = values.cpu().tolist()
        first = step_after - len(values)
        pending = []
        for i, v in enumerate(values):
            if not math.isfinite(v):
                bar.close()
                kept = (f"the last good checkpoint (step {last_good}) is kept at {ckpt_path}"
                        if last_good is not None else "no checkpoint had been written")
                raise TrainingDiverged(
                    f"loss is {v} at step {first + i + 1} of {steps}; training stopped and {kept}. "
                    "Lower the learning rate, clip gradients, or check the data for NaN/inf."
                )
        losses.extend(values)
        bar.set_postfix(loss=f"{sum(values) / len(values):.4g}")

    try:
        for step in range(start, steps):
            for group in optimizer.param_groups:  # linear warm-up (DDPM used 5000 steps)
                group["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
            x0, labels = batches.next()
            if world > 1:
                x0 = x0[rank * local:(rank + 1) * local]
                labels = None if labels is None else labels[rank * local:(rank + 1) * local]
            x0 = x0.to(device, dtype=param_dtype if x0.is_floating_point() else None, non_blocking=True)
            labels = None if labels is None else labels.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                loss = loss_fn(train_model, x0, labels).float().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            decay = min(ema_decay, (1 + step) / (10 + step)) if ema_warmup else ema_decay
            _update_ema(model_ema, model, decay)
            pending.append(loss.detach())
            bar.update(1)
            done = step + 1
            save_now = ckpt_path is not None and (done == steps or (ckpt_every and done % ckpt_every == 0))
            if done % log_every == 0 or save_now or done == steps:
                flush(done)
            if save_now:
                checkpoint(done)
                last_good = done
    finally:
        bar.close()
        if created_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
    seconds = time.perf_counter() - t0
    return TrainResult(model=model, model_ema=model_ema, losses=losses, step=max(start, steps), seconds=seconds,
                       steps_run=max(0, steps - start), ckpt_path=ckpt_path,
                       config={"train": loop_config, **user_config}, steps_requested=steps_requested)
