"""``train``: fit a preconditioned network with one of EDM Table 1's losses on a data set.

Writes ``<out>/ckpt.pt`` (weights, EMA, optimizer, RNG, and the config that rebuilds the model)
and ``<out>/config.json``; running it again on the same folder resumes. The run profile
(``--profile`` or ``$DIFFNOTES_PROFILE``) picks the budget from :mod:`diffnotes.presets`.

Several processes: ``torchrun --nproc_per_node=N -m diffnotes train ...`` trains with
DistributedDataParallel (``diffnotes.distributed``): ``--batch-size`` stays the global batch,
split over the N ranks; rank 0 alone writes ``config.json``, the checkpoint and the summary line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..presets import DATASETS, FOLDER_DATA
from .args import UserError, device, int_at_least, positive_float

METHODS = ("edm", "vp", "ve")


def _load_data(args, size: int | None):
    """``presets.load_data`` for the parsed arguments; its errors become one ``UserError`` line."""
    from ..presets import load_data

    if args.data in FOLDER_DATA and args.data_root is None:
        raise UserError(f"--data {args.data} needs --data-root, the folder holding the {args.data} files")
    try:
        return load_data(args.data, args.data_root, size)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None


def _refuse_other_run(out: Path, config: dict) -> None:
    from ..presets import refuse_other_run

    try:
        refuse_other_run(out, config)
    except ValueError as err:
        raise UserError(f"{err}; choose another --out") from None


def cmd_train(args) -> int:
    import torch

    from ..methods.edm import LOSSES
    from ..presets import (build_model, image_size, model_config, sample_shape, sigma_data_of,
                           train_budget)
    from ..profiles import get_profile
    from ..train import fit, steps_cap

    steps_cap()  # a bad $DIFFNOTES_TRAIN_STEPS fails here, before anything is written
    profile = get_profile(args.profile)
    out = Path(args.out)
    data = _load_data(args, image_size(args.data, profile))
    budget = train_budget(profile, args.data)
    budget.update({k: getattr(args, k) for k in ("steps", "batch_size", "lr") if getattr(args, k) is not None})
    sigma_data = sigma_data_of(data)
    config = {"method": args.method, "data": args.data, "profile": profile.name, "sigma_data": sigma_data,
              "shape": sample_shape(data), **model_config(args.method, args.data, profile, sigma_data)}
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun; 0 for a single process
    if rank == 0:  # the other ranks would read a config.json that rank 0 is writing
        _refuse_other_run(out, config)
    loss_fn = LOSSES[args.method](**config["precond"]["kwargs"])
    torch.manual_seed(args.seed)  # the initial weights
    model = build_model(config)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    steps = budget.pop("steps")
    result = fit(model, loss_fn, data, steps, seed=args.seed, ckpt_dir=out,
                 ckpt_every=max(1, min(1000, steps // 4)), device=args.device, config=config,
                 log_every=10, profile=profile.name, **budget)
    if rank != 0:
        return 0
    tail = result.losses[-min(50, len(result.losses)):] or [float("nan")]
    print(f"trained {args.method} on {args.data} ({profile.name}): step {result.step}, "
          f"loss {sum(tail) / len(tail):.4g} (mean of last {len(tail)}), "
          f"{result.steps_per_second:.1f} steps/s; checkpoint {result.ckpt_path}")
    return 0


def add_commands(sub) -> None:
    """Register ``train``."""
    from ..profiles import PROFILES

    p = sub.add_parser("train", help="train a diffusion model (writes <out>/ckpt.pt and config.json; "
                                     "reruns resume)")
    p.add_argument("--method", required=True, choices=METHODS, help="loss and preconditioning (EDM Table 1)")
    p.add_argument("--data", required=True, choices=DATASETS, help="training data")
    p.add_argument("--data-root", help="folder with the MNIST / CIFAR-10 files (mnist, cifar10 only)")
    p.add_argument("--profile", choices=PROFILES, help="budget (default: $DIFFNOTES_PROFILE or full)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/x")
    p.add_argument("--steps", type=int_at_least(1), help="training steps (default: from the profile)")
    p.add_argument("--batch-size", dest="batch_size", type=int_at_least(1),
                   help="global batch size (default: from the profile)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: from the profile)")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--device", type=device, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.set_defaults(func=cmd_train)
