"""Data parallelism for ``diffnotes.train.fit`` under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).

Every rank draws the same *global* batch from the shared data generator and trains on its slice
(``diffnotes.batches.shard``), so the averaged gradient equals single-process training at the same
global batch, up to summation order. Each rank draws its own loss noise from torch's global
generator; checkpoints keep every rank's state (``rng_state``) so a resumed run continues exactly.
Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is a no-op on one process.
"""

from __future__ import annotations

import os
import warnings

import torch

__all__ = ["resolve_device", "init", "finish", "comm_device", "mean_over_ranks", "wrap",
           "rng_state", "set_rng_state"]


def _world_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(device) -> torch.device:
    """``device`` as a ``torch.device``; None picks the default, ``cuda`` under torchrun its local GPU."""
    if device is None:
        from .device import default_device

        device = default_device()
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and _world_env() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def init(device: torch.device):
    """(rank, world_size, created) under torchrun; (0, 1, False) otherwise."""
    import torch.distributed as dist

    world = _world_env()
    if world <= 1 or not dist.is_available():
        return 0, 1, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), created


def finish(created: bool) -> None:
    """Tear down a process group that ``init`` created (after all ranks arrive)."""
    if created:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def comm_device() -> torch.device:
    """Where collectives run: the current GPU under nccl (it gathers CUDA tensors only), else CPU."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of ``values`` over all ranks (``values`` itself on one process)."""
    if world == 1:
        return values
    import torch.distributed as dist

    values = values.to(comm_device())
    dist.all_reduce(values)
    return values / world


def wrap(model, device: torch.device, world: int):
    """``model`` in ``DistributedDataParallel`` when there are several ranks."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rng_state(generator: torch.Generator, world: int) -> dict:
    """Torch's global, CUDA and the data generator's states; every rank's torch state under DDP.

    Collective under DDP: every rank must call it.
    """
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if world > 1:  # each rank draws its own loss noise: keep every rank's torch state
        import torch.distributed as dist

        mine = torch.get_rng_state().to(comm_device())
        states = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(states, mine)
        state["torch_per_rank"] = [s.cpu() for s in states]
    return state


def set_rng_state(state: dict, generator: torch.Generator, rank: int, world: int) -> None:
    """Restore what ``rng_state`` saved; a different number of ranks reseeds the loss noise."""
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
