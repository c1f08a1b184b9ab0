"""The engine's commands: ``python -m diffnotes train | sample | bench``.

``train`` fits a preconditioned network with one formulation's loss on a toy or image data set and
writes ``<out>/ckpt.pt`` (weights, EMA, optimizer, RNG, and the config needed to rebuild the
model) plus ``<out>/config.json``; running it again on the same folder resumes. ``sample`` loads
such a checkpoint (``weights_only=True``) and draws samples with any solver of
``diffnotes.sampling``, saving a scatter plot (2-D) or an image grid. ``bench`` runs the scripts
in ``benchmarks/``.

Registered by ``diffnotes.cli`` (``add_commands``); the run profile (``--profile`` or
``$DIFFNOTES_PROFILE``) picks the budgets. Used in the book's "running the code" pages.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("edm", "vp", "ve")
TOY_DATA = {"gmm": "gmm_ring", "swissroll": "swiss_roll", "moons": "moons", "checkerboard": "checkerboard"}
IMAGE_DATA = ("digits", "mnist", "cifar10")
DATASETS = tuple(TOY_DATA) + IMAGE_DATA


def _user_error(message: str):
    from .cli import UserError

    return UserError(message)


# ----------------------------------------------------------------------------------------------
# Budgets per profile (quick: CI seconds; full: laptop minutes; gpu: one CUDA GPU)
# ----------------------------------------------------------------------------------------------


def _budget(profile, data: str) -> dict:
    if data in TOY_DATA:
        return profile.pick(quick=dict(steps=300, batch_size=256, lr=2e-3, ema_decay=0.99),
                            full=dict(steps=4000, batch_size=512, lr=1e-3, ema_decay=0.999),
                            gpu=dict(steps=20000, batch_size=2048, lr=1e-3, ema_decay=0.9995))
    if data == "digits":
        return profile.pick(quick=dict(steps=60, batch_size=32, lr=1e-3, ema_decay=0.95),
                            full=dict(steps=4000, batch_size=128, lr=5e-4, ema_decay=0.999),
                            gpu=dict(steps=20000, batch_size=256, lr=2e-4, ema_decay=0.9995))
    return profile.pick(quick=dict(steps=20, batch_size=8, lr=2e-4, ema_decay=0.9),
                        full=dict(steps=2000, batch_size=32, lr=2e-4, ema_decay=0.999),
                        gpu=dict(steps=100000, batch_size=128, lr=2e-4, ema_decay=0.9999))


def _net_config(data: str, profile) -> dict:
    if data in TOY_DATA:
        return {"kind": "mlp", "kwargs": dict(dim=2, hidden=profile.pick(quick=64, full=128, gpu=256), depth=3)}
    if data == "digits":
        return {"kind": "unet", "kwargs": {"preset": "digits"}}
    if data == "mnist":
        return {"kind": "unet", "kwargs": dict(img_resolution=32, in_channels=1, ch=profile.pick(quick=16, full=32, gpu=64),
                                               ch_mult=[1, 2, 2], num_res_blocks=profile.pick(quick=1, full=1, gpu=2),
                                               attn_resolutions=[8], dropout=0.1, groups=8)}
    return {"kind": "unet", "kwargs": {"preset": "ddpm_cifar10"} if profile.name == "gpu" else
            dict(img_resolution=32, in_channels=3, ch=profile.pick(quick=16, full=32), ch_mult=[1, 2, 2],
                 num_res_blocks=1, attn_resolutions=[16], dropout=0.1, groups=8)}


def build_net(net_config: dict):
    """Rebuild a backbone from the plain ``{"kind", "kwargs"}`` stored in a checkpoint."""
    from .nets import MLP, UNet

    kind, kwargs = net_config["kind"], dict(net_config["kwargs"])
    if kind == "mlp":
        return MLP(**kwargs)
    if kind == "unet":
        preset = kwargs.pop("preset", None)
        return getattr(UNet, preset)(**kwargs) if preset else UNet(**kwargs)
    raise ValueError(f"unknown net kind {kind!r}; valid: mlp, unet")


def build_model(config: dict):
    """The preconditioned denoiser described by a checkpoint's config."""
    from .precond import PRECONDS

    precond = config["precond"]
    return PRECONDS[precond["kind"]](build_net(config["net"]), **precond["kwargs"])


def _load_data(name: str, root: str | None):
    """Training data as a tensor or a ``batch(n, generator)`` callable; one clear error if missing."""
    import importlib

    try:
        data = importlib.import_module("diffnotes.data")
    except ImportError as err:
        raise _user_error(f"data sets are unavailable (cannot import diffnotes.data: {err})") from None
    try:
        if name in TOY_DATA:
            sampler = data.get_toy(TOY_DATA[name])
            return lambda n, generator: sampler(n, generator=generator)
        if name == "digits":
            return data.load_digits("train")[0]
        if root is None:
            raise _user_error(f"--data {name} needs --data-root, the folder holding the {name} files")
        if not Path(root).is_dir():
            raise _user_error(f"data folder {root} does not exist")
        if name == "mnist":
            return data.load_mnist(root, "train", size=32)[0]
        return data.load_cifar10(root, "train")[0]
    except AttributeError as err:
        raise _user_error(f"data set {name!r} is unavailable in this version of diffnotes.data ({err})") from None
    except (FileNotFoundError, OSError) as err:
        raise _user_error(str(err).splitlines()[0]) from None


def _sigma_data(data) -> float:
    """The data's standard deviation (EDM's sigma_data), measured on a fixed sample."""
    import torch

    x = data if isinstance(data, torch.Tensor) else data(10000, torch.Generator().manual_seed(0))
    return round(float(x[:10000].double().std()), 3)


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from .methods.edm import LOSSES
    from .profiles import get_profile
    from .train import fit

    profile = get_profile(args.profile)
    out = Path(args.out)
    data = _load_data(args.data, args.data_root)
    budget = _budget(profile, args.data)
    for key in ("steps", "batch_size", "lr"):
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    sigma_data = _sigma_data(data)
    if args.method == "edm":
        precond = {"kind": "edm", "kwargs": {"sigma_data": sigma_data}}
        loss_fn = LOSSES["edm"](sigma_data=sigma_data)
    else:
        precond = {"kind": args.method, "kwargs": {}}
        loss_fn = LOSSES[args.method]()
    config = {"method": args.method, "data": args.data, "profile": profile.name, "sigma_data": sigma_data,
              "net": _net_config(args.data, profile), "precond": precond}
    if out.exists() and (out / "config.json").exists():
        previous = json.loads((out / "config.json").read_text())
        clash = {k: (previous.get(k), config[k]) for k in ("method", "data", "net", "precond") if previous.get(k) != config[k]}
        if clash:
            raise _user_error(f"{out} holds a different run ({', '.join(clash)} differ); choose another --out")
    import torch

    torch.manual_seed(args.seed)  # the initial weights
    model = build_model(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    steps = budget.pop("steps")
    result = fit(model, loss_fn, data, steps, seed=args.seed, ckpt_dir=out,
                 ckpt_every=max(1, min(1000, steps // 4)), device=args.device, config=config,
                 log_every=10, **budget)
    tail = result.losses[-min(50, len(result.losses)):] or [float("nan")]
    print(f"trained {args.method} on {args.data} ({profile.name}): step {result.step}, "
          f"loss {sum(tail) / len(tail):.4g} (mean of last {len(tail)}), "
          f"{result.steps_per_second:.1f} steps/s; checkpoint {result.ckpt_path}")
    return 0


# ----------------------------------------------------------------------------------------------
# sample
# ----------------------------------------------------------------------------------------------


def _save_figure(samples, path: Path, title: str) -> None:
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    x = samples.detach().float().cpu()  # numpy arrays go to matplotlib below
    if x.ndim == 2 and x.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5)
        ax.set_aspect("equal")
    elif x.ndim == 4:
        n = x.shape[0]
        cols = int(n**0.5 + 0.999)
        rows = (n + cols - 1) // cols
        x = torch.nn.functional.pad(x.clamp(-1, 1), (1, 1, 1, 1), value=1.0)  # white lines between images
        c, h, w = x.shape[1:]
        grid = x.new_ones(rows * cols, c, h, w)
        grid[:n] = x
        grid = grid.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
        grid = ((grid + 1) / 2).numpy()
        fig, ax = plt.subplots(figsize=(cols * 0.6 + 1, rows * 0.6 + 1))
        ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
        ax.axis("off")
    else:
        raise _user_error(f"cannot draw samples of shape {tuple(x.shape)}")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_sample(args) -> int:
    import torch

    from .train import CheckpointError, load_checkpoint

    try:
        import diffnotes.sampling as sampling
    except ImportError as err:
        raise _user_error(f"sampling is unavailable (cannot import diffnotes.sampling: {err})") from None
    try:
        state = load_checkpoint(args.ckpt)
    except (CheckpointError, FileNotFoundError) as err:
        raise _user_error(str(err)) from None
    config = state.get("config", {})
    if not {"net", "precond"} <= set(config):
        raise _user_error(f"{args.ckpt} was not written by `python -m diffnotes train` (no net/precond config)")
    model = build_model(config)
    model.load_state_dict(state["model"] if args.no_ema else state["model_ema"])
    from .device import default_device

    device = torch.device(args.device) if args.device else default_device()
    model.to(device).eval()
    sigma_min = args.sigma_min if args.sigma_min is not None else max(model.sigma_min, 0.002)
    sigma_max = args.sigma_max if args.sigma_max is not None else min(model.sigma_max, 80.0)
    sigmas = sampling.sigma_schedule(args.schedule, args.steps, sigma_min, sigma_max).to(device)
    net = config["net"]
    if net["kind"] == "mlp":
        shape = (args.n or 2000, net["kwargs"].get("dim", 2))
    else:
        unet = model.backbone
        shape = (args.n or 64, unet.in_channels, unet.img_resolution, unet.img_resolution)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    x = torch.randn(shape, generator=generator, device=device, dtype=torch.float64) * sigmas[0]

    @torch.no_grad()
    def denoiser(x, sigma):
        return model(x.float(), sigma.float()).to(x.dtype)

    t0 = time.perf_counter()
    samples = sampling.sample(denoiser, x, sigmas, solver=args.solver, generator=generator)
    seconds = time.perf_counter() - t0
    title = f"{config.get('method')} on {config.get('data')}, step {state['step']}, {args.solver} x {args.steps}"
    _save_figure(samples, Path(args.out), title)
    torch.save(samples.float().cpu(), Path(args.out).with_suffix(".pt"))
    print(f"sampled {shape[0]} with {args.solver} ({args.steps} steps, sigma {sigma_max:g} -> {sigma_min:g}) "
          f"in {seconds:.1f} s; wrote {args.out}")
    return 0


# ----------------------------------------------------------------------------------------------
# bench
# ----------------------------------------------------------------------------------------------


def cmd_bench(args) -> int:
    from .tables import find_root

    folder = find_root() / "benchmarks"
    scripts = sorted(folder.glob("bench_*.py"))
    if args.names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.names}
        unknown = sorted(wanted - {s.stem for s in scripts})
        if unknown:
            raise _user_error(f"unknown benchmark(s) {unknown}; valid: {', '.join(s.stem for s in scripts)}")
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        raise _user_error(f"no benchmarks/bench_*.py scripts in {folder}")
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=folder.parent).returncode:
            failed.append(script.name)
    print(f"bench: {len(scripts) - len(failed)} ran, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------


def _sampling_choices():
    try:
        from .sampling import SCHEDULES, SOLVERS
    except ImportError:  # argparse then accepts any name and sampling reports the error
        return None, None
    return SOLVERS, SCHEDULES


def add_commands(sub) -> None:
    """Register ``train``, ``sample`` and ``bench`` on the CLI's subparsers."""
    from .profiles import PROFILES

    p = sub.add_parser("train", help="train a diffusion model (writes <out>/ckpt.pt and config.json; reruns resume)")
    p.add_argument("--method", required=True, choices=METHODS, help="loss and preconditioning (EDM Table 1)")
    p.add_argument("--data", required=True, choices=DATASETS, help="training data")
    p.add_argument("--data-root", help="folder with the MNIST / CIFAR-10 files (mnist, cifar10 only)")
    p.add_argument("--profile", choices=PROFILES, help="budget (default: $DIFFNOTES_PROFILE or full)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/x")
    p.add_argument("--steps", type=int, help="training steps (default: from the profile)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size (default: from the profile)")
    p.add_argument("--lr", type=float, help="learning rate (default: from the profile)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.set_defaults(func=cmd_train)

    solvers, schedules = _sampling_choices()
    p = sub.add_parser("sample", help="sample from a checkpoint and save a scatter plot or an image grid")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `train`, e.g. runs/x/ckpt.pt")
    p.add_argument("--solver", default="heun", choices=solvers)
    p.add_argument("--steps", type=int, default=18, help="number of noise levels (EDM used 18 for CIFAR-10)")
    p.add_argument("--schedule", default="karras", choices=schedules)
    p.add_argument("--sigma-min", dest="sigma_min", type=float)
    p.add_argument("--sigma-max", dest="sigma_max", type=float)
    p.add_argument("-n", type=int, help="number of samples (default: 2000 points or 64 images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--device", help="cpu, cuda (default: CUDA when present)")
    p.add_argument("--out", required=True, help="image file to write (e.g. grid.png); samples also go to .pt")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("bench", help="run the performance scripts in benchmarks/")
    p.add_argument("names", nargs="*", help="only these (e.g. train); default: all")
    p.set_defaults(func=cmd_bench)
