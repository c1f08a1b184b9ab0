"""Run presets and model builders shared by the CLI and the lab notebooks.

A *preset* is what a run profile (``quick``, ``full``, ``gpu``; see :mod:`diffnotes.profiles`)
spends on one data set: training steps, batch size, learning rate, EMA decay, and the backbone's
size. A *model config* is the plain dictionary ``{"net": {"kind", "kwargs"}, "precond": {"kind",
"kwargs"}}`` stored in every checkpoint that ``python -m diffnotes train`` writes, so that
``build_model(config)`` rebuilds the same denoiser D(x; sigma) when sampling.

The one builder of the labs' small U-Nets is here as well: ``small_unet_config`` (the plain
``nets.UNet`` keyword arguments a checkpoint stores) and ``small_unet`` (the network), used by
``net_config`` below and by the ILVR / CCDF, SR3 and SRDiff modules and recipes. The networks
themselves live in ``diffnotes.nets``; this module only chooses their sizes, and it imports no
paper module (``diffnotes.methods`` builds on it, ``diffnotes.recipes`` trains what it builds).

The toy-mixture setup that several notebooks train on (an 8-component ring, an MLP, the same
optimiser settings) is here too: ``toy_mixture`` and ``toy_fit_options``.

So is the rest of a run's description that ``python -m diffnotes train`` needs beside the
budget and the model config: ``load_data`` loads a data set by its name in :data:`DATASETS`,
``sigma_data_of`` and ``sample_shape`` measure it, and ``refuse_other_run`` checks a run folder
against a config. They raise ``ValueError`` or ``FileNotFoundError`` with one line, which the CLI
prints; the CLI itself only parses arguments and calls them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOY_DATA = {"gmm": "gmm_ring", "swissroll": "swiss_roll", "moons": "moons",
            "checkerboard": "checkerboard"}
IMAGE_DATA = ("digits", "mnist", "cifar10")
DATASETS = tuple(TOY_DATA) + IMAGE_DATA
FOLDER_DATA = ("mnist", "cifar10")  # read from files in a data root; the others ship with us
# EDM Table 1's columns that ``python -m diffnotes train`` trains: the keys of
# ``diffnotes.methods.edm.LOSSES`` (a test keeps them equal; presets imports no paper module)
FORMULATIONS = ("edm", "vp", "ve")

__all__ = ["TOY_DATA", "IMAGE_DATA", "DATASETS", "FOLDER_DATA", "FORMULATIONS", "train_budget", "image_size",
           "small_unet_config", "small_unet", "net_config", "build_net", "build_model", "model_config",
           "RUN_IDENTITY", "load_data", "sigma_data_of", "sample_shape", "refuse_other_run", "toy_mixture",
           "toy_steps", "toy_fit_options"]


def _check_dataset(data: str) -> None:
    if data not in DATASETS:
        raise ValueError(f"unknown data set {data!r}; valid: {', '.join(DATASETS)}")


def train_budget(profile, data: str) -> dict:
    """Steps, batch size, learning rate and EMA decay for ``data`` under ``profile``."""
    _check_dataset(data)
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


def image_size(data: str, profile) -> int | None:
    """Side of the training images: digits are upsampled to 32x32 under ``gpu`` (8x8 otherwise).

    None for the 2-D toys. On a GPU the 8x8 net is launch-bound (it cannot fill the device), so
    the ``gpu`` profile trains digits at CIFAR-10's resolution with a 32x32 U-Net instead.
    """
    _check_dataset(data)
    if data in TOY_DATA:
        return None
    if data == "digits":
        return profile.pick(quick=8, full=8, gpu=32)
    return 32


def small_unet_config(resolution: int, in_channels: int, *, out_channels: int | None = None,
                      ch: int = 16, ch_mult=(1, 2), num_res_blocks: int = 1,
                      attn_resolutions=(), dropout: float = 0.0) -> dict:
    """``nets.UNet`` keyword arguments (plain types) of a small U-Net: GroupNorm(8), AdaGN.

    The defaults are the labs' two-level net (widths ``ch`` and ``2 ch``, one block per level,
    no attention, no dropout); ``out_channels`` defaults to ``in_channels``. A network built
    from the result is saved and rebuilt by ``build_net`` from ``{"kind": "unet", "kwargs": ...}``.
    """
    kwargs = dict(img_resolution=resolution, in_channels=in_channels, ch=ch, ch_mult=list(ch_mult),
                  num_res_blocks=num_res_blocks, attn_resolutions=list(attn_resolutions),
                  dropout=dropout, groups=8)
    if out_channels is not None:
        kwargs["out_channels"] = out_channels
    return kwargs


def small_unet(resolution: int, in_channels: int, **options):
    """The small ``nets.UNet`` of :func:`small_unet_config` (same arguments)."""
    from .nets import UNet

    return UNet(**small_unet_config(resolution, in_channels, **options))


def _profile_unet(profile, channels: int, attn: int) -> dict:
    return small_unet_config(32, channels, ch=profile.pick(quick=16, full=32, gpu=64),
                             ch_mult=(1, 2, 2), num_res_blocks=profile.pick(quick=1, full=1, gpu=2),
                             attn_resolutions=(attn,), dropout=0.1)


def net_config(data: str, profile) -> dict:
    """The backbone for ``data`` under ``profile`` as plain ``{"kind", "kwargs"}``."""
    _check_dataset(data)
    if data in TOY_DATA:
        hidden = profile.pick(quick=64, full=128, gpu=256)
        return {"kind": "mlp", "kwargs": dict(dim=2, hidden=hidden, depth=3)}
    if data == "digits":
        if profile.name == "gpu":  # upsampled to 32x32 (image_size)
            return {"kind": "unet", "kwargs": _profile_unet(profile, 1, 16)}
        return {"kind": "unet", "kwargs": {"preset": "digits"}}
    if data == "mnist":
        return {"kind": "unet", "kwargs": _profile_unet(profile, 1, 8)}
    if profile.name == "gpu":
        return {"kind": "unet", "kwargs": {"preset": "ddpm_cifar10"}}
    return {"kind": "unet", "kwargs": _profile_unet(profile, 3, 16)}


def model_config(method: str, data: str, profile, sigma_data: float) -> dict:
    """Net and preconditioning for one of EDM Table 1's formulations (:data:`FORMULATIONS`)."""
    if method not in FORMULATIONS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(FORMULATIONS)}")
    kwargs = {"sigma_data": sigma_data} if method == "edm" else {}
    return {"net": net_config(data, profile), "precond": {"kind": method, "kwargs": kwargs}}


def build_net(config: dict):
    """Rebuild a backbone from the plain ``{"kind", "kwargs"}`` stored in a checkpoint."""
    from .nets import MLP, UNet

    kind, kwargs = config["kind"], dict(config["kwargs"])
    if kind == "mlp":
        return MLP(**kwargs)
    if kind == "unet":
        preset = kwargs.pop("preset", None)
        return getattr(UNet, preset)(**kwargs) if preset else UNet(**kwargs)
    raise ValueError(f"unknown net kind {kind!r}; valid: mlp, unet")


def build_model(config: dict):
    """The preconditioned denoiser D(x; sigma) described by ``config["net"]`` and ``["precond"]``."""
    from .precond import PRECONDS

    precond = config["precond"]
    if precond["kind"] not in PRECONDS:
        raise ValueError(f"unknown preconditioning {precond['kind']!r}; valid: {', '.join(PRECONDS)}")
    return PRECONDS[precond["kind"]](build_net(config["net"]), **precond["kwargs"])


# ----------------------------------------------------------------------------------------------
# A named data set: loaded, measured, and the run folder that trains on it
# ----------------------------------------------------------------------------------------------

# the keys a run folder's config.json must share with a run that resumes in it
RUN_IDENTITY = ("method", "data", "net", "precond")


def load_data(name: str, root=None, size: int | None = 8):
    """The data set ``name`` as a tensor (N, ...) or a ``batch(n, generator)`` callable.

    The toys are drawn afresh; ``digits`` come with scikit-learn (``size`` is their side, 8 or
    32 upsampled: :func:`image_size`); MNIST and CIFAR-10 (:data:`FOLDER_DATA`) are read from the
    folder ``root``. Raises ``ValueError`` (an unknown name, no ``root``, an unreadable file) or
    ``FileNotFoundError`` (a missing folder or file), each with one line.
    """
    from . import data

    _check_dataset(name)
    if name in TOY_DATA:
        sampler = data.get_toy(TOY_DATA[name])
        return lambda n, generator: sampler(n, generator=generator)
    if name == "digits":
        return data.load_digits("train", size=size or 8)[0]
    if root is None:
        raise ValueError(f"data set {name} needs a data root, the folder holding the {name} files")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    try:
        if name == "mnist":
            return data.load_mnist(root, "train", size=32)[0]
        return data.load_cifar10(root, "train")[0]
    except OSError as err:  # FileNotFoundError included; a loader's message may run on
        first = str(err).splitlines()[0]
        raise (FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError)(first) from None


def _fixed_draw(data, n: int):
    """The first ``n`` examples of a tensor, or ``n`` drawn with seed 0 from a callable."""
    import torch

    return data[:n] if isinstance(data, torch.Tensor) else data(n, torch.Generator().manual_seed(0))


def sigma_data_of(data) -> float:
    """The data's standard deviation (EDM's sigma_data), measured on a fixed sample of 10000."""
    return round(float(_fixed_draw(data, 10000).double().std()), 3)


def sample_shape(data) -> list[int]:
    """The shape of one example of ``data`` (``[dim]`` or ``[C, H, W]``), as a run's config stores it."""
    return [int(d) for d in _fixed_draw(data, 1).shape[1:]]


def refuse_other_run(out, config: dict) -> None:
    """Raise ``ValueError`` (one line) if the folder ``out`` holds a run that ``config`` differs from.

    An empty or new folder passes; so does one whose ``config.json`` shares
    :data:`RUN_IDENTITY` with ``config`` (the same run, resumed).
    """
    path = Path(out) / "config.json"
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a run's config (not JSON: {err})".splitlines()[0]) from None
    if not isinstance(previous, dict):
        raise ValueError(f"{path} is not a run's config (a JSON {type(previous).__name__}, not an object)")
    clash = [k for k in RUN_IDENTITY if previous.get(k) != config[k]]
    if clash:
        raise ValueError(f"{out} holds a different run ({', '.join(clash)} differ)")


# ----------------------------------------------------------------------------------------------
# The toy setup shared by the 2-D notebooks
# ----------------------------------------------------------------------------------------------


def digits_unet(precond: str = "vp", **options):
    """The digits labs' denoiser: ``nets.UNet.digits(ch=16)`` under VP (default) or VE
    preconditioning; ``options`` go to the preconditioner (VE's ``sigma_min``, ``sigma_max``)."""
    from .nets import UNet
    from .precond import VEPrecond, VPPrecond

    wrappers = {"vp": VPPrecond, "ve": VEPrecond}
    if precond not in wrappers:
        raise ValueError(f"precond {precond!r}; valid: {', '.join(wrappers)}")
    return wrappers[precond](UNet.digits(ch=16), **options)


def identity_denoiser(x, sigma, class_labels=None):
    """D(x; sigma) = x: what an untrained :func:`digits_unet` computes (the U-Net's last layer
    starts at zero and both preconditionings have c_skip = 1), the labs' untrained arm without
    building a network."""
    return x


def toy_mixture(n: int = 20000, seed: int = 0):
    """The 8-component ring (radius 1, std 0.1) and ``n`` training points drawn with ``seed``.

    Returns ``(gmm, x_train)``; ``gmm`` has the exact density, score and denoiser.
    """
    import torch

    from .data import gmm_ring

    gmm = gmm_ring(8, radius=1.0, std=0.1)
    return gmm, gmm.sample(n, generator=torch.Generator().manual_seed(seed)).float()


def toy_steps(profile) -> int:
    """Training steps of the toy runs: 500 under ``quick``, 4000 otherwise."""
    return profile.pick(quick=500, full=4000)


def toy_fit_options(steps: int, seed: int = 0) -> dict[str, Any]:
    """``fit`` keyword arguments of the toy runs (an EMA half-life of a twentieth of the run)."""
    return dict(lr=2e-3, batch_size=256, ema_halflife=steps / 20, warmup=50, progress=False,
                seed=seed)
