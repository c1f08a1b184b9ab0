"""``sample``: load a checkpoint written by ``train`` and draw samples with any solver.

Saves a scatter plot (2-D data) or an image grid to ``--out`` and the samples themselves next to
it as ``.pt``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..constants import EDM_SIGMA_MAX, EDM_SIGMA_MIN
from .args import UserError, device, int_at_least, positive_float


def _load_model(args):
    import torch

    from ..presets import build_model
    from ..train import CheckpointError, load_checkpoint

    try:
        state = load_checkpoint(args.ckpt)
    except (CheckpointError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    config = state.get("config", {})
    if not {"net", "precond"} <= set(config):
        raise UserError(f"{args.ckpt} was not written by `python -m diffnotes train` (no net/precond config)")
    model = build_model(config)
    model.load_state_dict(state["model"] if args.no_ema else state["model_ema"])
    from ..device import default_device

    dev = torch.device(args.device) if args.device else default_device()
    return model.to(dev).eval(), state, dev


def _shape(args, model, config) -> tuple[int, ...]:
    """The batch to draw: ``-n`` (default 2000 points or 64 images) examples of the stored shape."""
    shape = config.get("shape")
    if shape is None:  # a checkpoint from before `train` stored the shape: the old route
        shape = _shape_from_the_network(model, config)
    elif not (isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)):
        raise UserError(f"{args.ckpt}: its config's shape {shape!r} is not a list of positive integers")
    return (args.n or (2000 if len(shape) == 1 else 64), *shape)


def _shape_from_the_network(model, config) -> list[int]:
    """The example shape of a checkpoint written before ``train`` stored ``config["shape"]``.

    Fallback for old checkpoints only (issue 24): it reads the backbone's own attributes (the
    MLP's ``dim`` from the config, the U-Net's ``in_channels`` and ``img_resolution``), which
    is how ``sample`` found the shape before the config carried it.
    """
    net = config["net"]
    if net["kind"] == "mlp":
        return [net["kwargs"].get("dim", 2)]
    unet = model.backbone
    return [unet.in_channels, unet.img_resolution, unet.img_resolution]


def cmd_sample(args) -> int:
    import torch

    from .. import sampling
    from ..plotting import save_samples

    model, state, dev = _load_model(args)
    config = state["config"]
    # Default: the model's own range, clipped to EDM's (Karras et al. 2022, Sec. 3)
    sigma_min = args.sigma_min if args.sigma_min is not None else max(model.sigma_min, EDM_SIGMA_MIN)
    sigma_max = args.sigma_max if args.sigma_max is not None else min(model.sigma_max, EDM_SIGMA_MAX)
    sigmas = sampling.sigma_schedule(args.schedule, args.steps, sigma_min, sigma_max).to(dev)
    shape = _shape(args, model, config)
    generator = torch.Generator(device=dev).manual_seed(args.seed)
    x = torch.randn(shape, generator=generator, device=dev, dtype=torch.float64) * sigmas[0]

    @torch.no_grad()
    def denoiser(x, sigma):
        return model(x.float(), sigma.float()).to(x.dtype)

    t0 = time.perf_counter()
    samples = sampling.sample(denoiser, x, sigmas, solver=args.solver, generator=generator)
    seconds = time.perf_counter() - t0
    title = f"{config.get('method')} on {config.get('data')}, step {state['step']}, {args.solver} x {args.steps}"
    save_samples(samples.float().cpu(), Path(args.out), title)
    torch.save(samples.float().cpu(), Path(args.out).with_suffix(".pt"))
    print(f"sampled {shape[0]} with {args.solver} ({args.steps} steps, sigma {sigma_max:g} -> {sigma_min:g}) "
          f"in {seconds:.1f} s; wrote {args.out}")
    return 0


def add_commands(sub) -> None:
    """Register ``sample``."""
    from ..sampling import SCHEDULES, SOLVERS

    p = sub.add_parser("sample", help="sample from a checkpoint and save a scatter plot or an image grid")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `train`, e.g. runs/x/ckpt.pt")
    p.add_argument("--solver", default="heun", choices=SOLVERS)
    p.add_argument("--steps", type=int_at_least(1), default=18,
                   help="number of noise levels (EDM used 18 for CIFAR-10)")
    p.add_argument("--schedule", default="karras", choices=SCHEDULES)
    p.add_argument("--sigma-min", dest="sigma_min", type=positive_float)
    p.add_argument("--sigma-max", dest="sigma_max", type=positive_float)
    p.add_argument("-n", type=int_at_least(1), help="number of samples (default: 2000 points or 64 images)")
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--device", type=device, help="cpu, cuda (default: CUDA when present)")
    p.add_argument("--out", required=True, help="image file to write (e.g. grid.png); samples also go to .pt")
    p.set_defaults(func=cmd_sample)
