"""One training loop for any loss callable: AdamW, EMA, checkpoints, exact resume, DDP.

``fit(model, loss_fn, data, steps, ...)`` knows no diffusion formulation: the methods supply a
``loss_fn(model, x0, class_labels=None) -> per-sample loss`` (e.g.
``diffnotes.methods.edm.EDMLoss``) and the loop minimises its mean. What the loop adds:

* AdamW with linear learning-rate warm-up and gradient-norm clipping;
* an exponential moving average of the weights (``model_ema``), updated every step;
* seeded, deterministic CPU runs: the data generator and torch's global generator are seeded
  from ``seed`` and saved in every checkpoint, so stopping and resuming reproduces the
  uninterrupted run bit for bit (``tests/test_train.py``). ``seed`` decides the data order
  and the training noise, *not* the initial weights: the model arrives built, so build it
  right after ``torch.manual_seed(seed)`` (torch's global generator starts from a different
  seed in every process; ``tests/test_notebook_determinism.py`` holds the notebooks to this);
* atomic checkpoints (temporary file in the same folder, flush + fsync, ``os.replace``) holding
  only tensors and plain types, read back with ``torch.load(weights_only=True)``;
* a non-finite loss stops training with a message naming the step, and the last good checkpoint
  stays untouched;
* bf16 autocast on CUDA, optional ``torch.compile``, a tqdm progress bar that is quiet when
  stderr is not a terminal; on CUDA also fused AdamW and pinned-memory batches, and under the
  ``gpu`` profile channels-last activations, TF32 and ``$DIFFNOTES_COMPILE`` (``diffnotes.device``;
  every one of them is off on the CPU);
* ``DIFFNOTES_TRAIN_STEPS`` (when set) caps the number of steps of every run, e.g. ``0`` to
  check that a notebook's final checks fail on an untrained model (see ``steps_cap``);
* data parallelism under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA): every rank draws the
  same *global* batch from the shared data generator and trains on its slice, so the gradient
  equals single-process training at the same global batch (up to summation order).

``fit`` itself is a short loop over helpers, each tested on its own: checkpoints
(``diffnotes.checkpoints``), data parallelism (``diffnotes.distributed``), batch drawing
(``diffnotes.batches``), and here the set-up, resume, one optimisation step, the loss log with
its divergence check, and the progress bar.

Used in the book by every lab notebook that trains a network and by ``python -m diffnotes train``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import distributed
from .device import COMPILE_MODES, Accel, accel, to_device
from .batches import Batches, shard
from .checkpoints import (CKPT_FORMAT, CKPT_NAME, CheckpointError, check_plain, load_checkpoint,
                          save_checkpoint)

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

STEPS_ENV = "DIFFNOTES_TRAIN_STEPS"
NOISE_SEED_OFFSET = 1_000_003  # separates the global (loss noise) stream from the data stream


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


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


def _validate(steps, lr, batch_size, ema_decay, ema_halflife, warmup, grad_clip, weight_decay, log_every,
              ckpt_every):
    def need(ok, what):
        if not ok:
            raise ValueError(what)

    need(isinstance(steps, int) and steps >= 0, f"steps must be an integer >= 0, got {steps!r}")
    need(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an integer >= 1, got {batch_size!r}")
    need(lr > 0 and math.isfinite(lr), f"lr must be a positive number, got {lr!r}")
    need(0 <= ema_decay < 1, f"ema_decay must lie in [0, 1), got {ema_decay!r}")
    need(ema_halflife is None or ema_halflife > 0,
         f"ema_halflife must be a positive number of steps, got {ema_halflife!r}")
    need(isinstance(warmup, int) and warmup >= 0, f"warmup must be an integer >= 0 (steps), got {warmup!r}")
    need(grad_clip is None or grad_clip > 0, f"grad_clip must be positive or None, got {grad_clip!r}")
    need(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay!r}")
    need(isinstance(log_every, int) and log_every >= 1, f"log_every must be an integer >= 1, got {log_every!r}")
    need(ckpt_every is None or (isinstance(ckpt_every, int) and ckpt_every >= 1),
         f"ckpt_every must be an integer >= 1 or None, got {ckpt_every!r}")


@torch.no_grad()
def update_ema(model_ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * weights``; buffers are copied."""
    # One fused call over all tensors (one kernel launch per chunk on CUDA instead of one per
    # parameter); the same ``lerp`` per element as a loop would compute.
    torch._foreach_lerp_(list(model_ema.parameters()), [p.detach() for p in model.parameters()],
                         1 - decay)
    for b_ema, b in zip(model_ema.buffers(), model.buffers()):
        b_ema.copy_(b)


# ----------------------------------------------------------------------------------------------
# One run's state and the helpers of the loop
# ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything the helpers of one ``fit`` call share."""

    model: nn.Module
    model_ema: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    batches: Batches
    device: torch.device
    rank: int
    world: int
    created_group: bool
    fast: Accel = field(default_factory=lambda: Accel(torch.device("cpu")))  # all fast paths off
    loop_config: dict = field(default_factory=dict)
    user_config: dict = field(default_factory=dict)
    ckpt_path: Path | None = None
    start: int = 0
    losses: list = field(default_factory=list)
    last_good: int | None = None


def _start(model, data, device, batch_size, seed, optimizer_kwargs, profile=None) -> _Run:
    """Device and process group, the EMA copy, AdamW, and the seeded data and noise streams."""
    device = distributed.resolve_device(device)
    rank, world, created = distributed.init(device)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes")
    fast = accel(device, profile)
    model.to(device)
    if fast.channels_last:  # NHWC weights and activations: cuDNN's fast convolution layout
        model.to(memory_format=torch.channels_last)
    model.train()
    if fast.tf32:  # float32 matmuls outside autocast (the loss, the EMA) on the tensor cores
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model_ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), fused=fast.fused_adamw or None, **optimizer_kwargs)
    generator = torch.Generator().manual_seed(seed)
    # Loss noise and dropout use torch's global stream, each rank its own. It must not start from
    # the data generator's seed: a loss drawing randn would then repeat the data's own randn
    # draws (the noise would equal the data's latent), which made DSM "beat" its floor.
    torch.manual_seed(seed + NOISE_SEED_OFFSET + rank)
    batches = Batches(data, batch_size, generator)
    return _Run(model, model_ema, optimizer, generator, batches, device, rank, world, created, fast)


def _resume(run: _Run, steps: int, cap: int | None) -> None:
    """Continue from ``run.ckpt_path``: weights, EMA, optimizer, RNG streams and loss history."""
    state = load_checkpoint(run.ckpt_path, map_location="cpu")  # RNG states must stay on the CPU
    if cap is not None and int(state["step"]) > steps:
        raise ValueError(f"{run.ckpt_path} holds {int(state['step'])} steps, more than {STEPS_ENV}={cap} "
                         "allows; unset it, pass resume=False or use another ckpt_dir")
    run.model.load_state_dict(state["model"])
    run.model_ema.load_state_dict(state["model_ema"])
    run.optimizer.load_state_dict(state["optimizer"])
    distributed.set_rng_state(state["rng"], run.generator, run.rank, run.world)
    run.start, run.losses, run.last_good = int(state["step"]), state["losses"].tolist(), int(state["step"])
    saved = state["config"]["train"]
    changed = {k: (saved.get(k), v) for k, v in run.loop_config.items() if k != "steps" and saved.get(k) != v}
    if changed:
        warnings.warn(f"resuming {run.ckpt_path} with changed settings (checkpoint, now): {changed}")
    if run.batches.kind == "iterable":
        warnings.warn("resuming with an iterable data source: batches do not continue exactly")


def _save(run: _Run, step: int) -> None:
    """Write the checkpoint of ``step`` (rank 0 writes; every rank joins the RNG gather)."""
    state = {
        "format": CKPT_FORMAT,
        "step": step,
        "model": run.model.state_dict(),
        "model_ema": run.model_ema.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "rng": distributed.rng_state(run.generator, run.world),  # collective under DDP
        "losses": torch.tensor(run.losses, dtype=torch.float64),
        "config": {"train": run.loop_config, **run.user_config},
    }
    if run.rank == 0:
        save_checkpoint(run.ckpt_path, state)
    run.last_good = step


def _step(run: _Run, train_model, loss_fn, step: int, opts: dict) -> torch.Tensor:
    """One optimisation step: warm-up lr, a batch, the loss, clipping, AdamW, EMA. Returns the loss."""
    warmup = opts["warmup"]
    for group in run.optimizer.param_groups:  # linear warm-up (DDPM used 5000 steps)
        group["lr"] = opts["lr"] * min(1.0, (step + 1) / warmup) if warmup else opts["lr"]
    x0, labels = shard(*run.batches.next(), run.rank, run.world, run.batches.batch_size)
    x0 = to_device(x0, run.fast, opts["param_dtype"] if x0.is_floating_point() else None)
    labels = None if labels is None else to_device(labels, run.fast)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=opts["amp"] and run.device.type == "cuda"):
        loss = loss_fn(train_model, x0, labels).float().mean()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if opts["grad_clip"] is not None:
        nn.utils.clip_grad_norm_(run.model.parameters(), opts["grad_clip"])
    run.optimizer.step()
    decay = opts["ema_decay"]
    if opts["ema_warmup"]:
        decay = min(decay, (1 + step) / (10 + step))
    update_ema(run.model_ema, run.model, decay)
    return loss.detach()


class LossLog:
    """Losses wait on the device and move to the host every ``log_every`` steps (one sync).

    ``flush`` averages them over the ranks, stops training with ``TrainingDiverged`` at the first
    non-finite value (naming the step and the last good checkpoint), and extends the history.
    """

    def __init__(self, run: _Run, steps: int, bar=None):
        self.run, self.steps, self.bar, self.pending = run, steps, bar, []

    def add(self, loss: torch.Tensor) -> None:
        self.pending.append(loss)

    def flush(self, step_after: int) -> None:
        if not self.pending:
            return
        values = distributed.mean_over_ranks(torch.stack(self.pending).float(), self.run.world)
        values, self.pending = values.cpu().tolist(), []
        first = step_after - len(values)
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise TrainingDiverged(
                    f"loss is {v} at step {first + i + 1} of {self.steps}; training stopped and "
                    f"{self._kept()}. Lower the learning rate, clip gradients, or check the data for NaN/inf."
                )
        self.run.losses.extend(values)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{sum(values) / len(values):.4g}")

    def _kept(self) -> str:
        if self.run.last_good is None:
            return "no checkpoint had been written"
        return f"the last good checkpoint (step {self.run.last_good}) is kept at {self.run.ckpt_path}"


def compiled(train_model: nn.Module, compile, fast: Accel) -> nn.Module:
    """``train_model`` under ``torch.compile``: ``compile`` True or a mode, else the profile's mode."""
    if isinstance(compile, str) and compile not in COMPILE_MODES:
        raise ValueError(f"compile must be True, False or one of {', '.join(COMPILE_MODES)}; got {compile!r}")
    mode = compile if isinstance(compile, str) else ("default" if compile else fast.compile_mode)
    return train_model if mode is None else torch.compile(train_model, mode=mode)


def progress_bar(steps: int, start: int, progress: bool | None, rank: int):
    """A text tqdm bar on rank 0; ``progress=None`` shows it only when stderr is a terminal."""
    from tqdm.std import tqdm  # text bar; the widget would need ipywidgets and scripts from a CDN

    show = (sys.stderr.isatty() if progress is None else bool(progress)) and rank == 0
    return tqdm(total=steps, initial=start, disable=not show, desc="train", unit="step", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


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
    compile: bool | str = False,
    progress: bool | None = None,
    log_every: int = 10,
    config: dict | None = None,
    profile: str | None = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn(model, x0, class_labels).mean()`` for ``steps`` steps.

    ``steps`` counts from the start of training: resuming from a checkpoint at step k runs the
    remaining ``steps - k``; ``$DIFFNOTES_TRAIN_STEPS`` caps it (``steps_cap``). ``batch_size`` is
    the global batch (split over DDP ranks). ``ema_halflife`` (in steps) overrides ``ema_decay``
    with ``0.5 ** (1 / ema_halflife)``; ``ema_warmup`` uses ``min(decay, (1 + step) / (10 + step))``
    so that short runs get a useful average. ``warmup`` ramps the learning rate linearly over that
    many steps. ``config`` (plain types) is stored in the checkpoint next to the loop's own
    settings, for rebuilding the model. ``progress=None`` shows a bar only when stderr is a terminal.
    ``compile`` is False, True or a ``torch.compile`` mode (``"max-autotune"`` adds CUDA graphs);
    False leaves the choice to ``$DIFFNOTES_COMPILE`` under the ``gpu`` profile on CUDA.
    ``profile`` (default ``$DIFFNOTES_PROFILE``) selects the fast paths (``diffnotes.device.accel``).
    """
    _validate(steps, lr, batch_size, ema_decay, ema_halflife, warmup, grad_clip, weight_decay, log_every, ckpt_every)
    check_plain(dict(config or {}))
    steps_requested, cap = steps, steps_cap()
    steps = steps if cap is None else min(steps, cap)
    if ema_halflife is not None:
        ema_decay = 0.5 ** (1.0 / ema_halflife)
    run = _start(model, data, device, batch_size, seed, dict(lr=lr, betas=betas, weight_decay=weight_decay),
                 profile)
    run.user_config = dict(config or {})
    run.loop_config = dict(lr=lr, batch_size=batch_size, ema_decay=ema_decay, ema_warmup=ema_warmup, warmup=warmup,
                           grad_clip=grad_clip, weight_decay=weight_decay, betas=list(betas), seed=seed,
                           steps=steps, world_size=run.world)
    run.ckpt_path = Path(ckpt_dir) / CKPT_NAME if ckpt_dir is not None else None
    if run.ckpt_path is not None and resume and run.ckpt_path.exists():
        _resume(run, steps, cap)
    train_model = distributed.wrap(model, run.device, run.world)
    train_model = compiled(train_model, compile, run.fast)
    opts = dict(lr=lr, warmup=warmup, amp=amp, grad_clip=grad_clip, ema_decay=ema_decay, ema_warmup=ema_warmup,
                param_dtype=next(model.parameters()).dtype)
    bar = progress_bar(steps, run.start, progress, run.rank)
    log, t0 = LossLog(run, steps, bar), time.perf_counter()
    try:
        for step in range(run.start, steps):
            log.add(_step(run, train_model, loss_fn, step, opts))
            bar.update(1)
            done = step + 1
            save_now = run.ckpt_path is not None and (done == steps or (ckpt_every and done % ckpt_every == 0))
            if done % log_every == 0 or save_now or done == steps:
                log.flush(done)
            if save_now:
                _save(run, done)
    finally:
        bar.close()
        distributed.finish(run.created_group)
    return TrainResult(model=model, model_ema=run.model_ema, losses=run.losses, step=max(run.start, steps),
                       seconds=time.perf_counter() - t0, steps_run=max(0, steps - run.start),
                       ckpt_path=run.ckpt_path, config={"train": run.loop_config, **run.user_config},
                       steps_requested=steps_requested)
