"""The notes' table, measured: the book's unconditional generative methods on one task, at equal
budget, scored with one set of metrics (issue 26).

Every row is a small adapter around the package functions its lab notebook calls (the losses
and samplers of :mod:`diffnotes.methods`, :func:`diffnotes.sampling.sample`); nothing here
rewrites a loss or a sampler. A row says

* how its model trains (:class:`ModelSpec`: the network, from the same U-Net family, and the
  loss; every model sees ``steps x batch_size`` training examples of the same split),
* how it samples at a requested number of network evaluations (NFE) and at its own default,
* its bits/dim where the method defines a likelihood bound.

Rows that share a model (DDIM and Analytic-DPM on the DDPM model; Gotta Go Fast and the VP
samplers on the VP model; both guidance rows on the class-conditional network) reuse one cached
checkpoint per seed. The two guidance rows ask for classes and add the digits judge's accuracy.

The run is cached under ``_build/leaderboard/<profile>/``: one checkpoint per (model, seed),
written atomically by :func:`diffnotes.checkpoints.save_checkpoint`, and one JSON of results per
(method, seed), written atomically as well. Every entry carries the digest of the configuration
that made it (and a JSON entry the digest of its own content), so a rerun resumes where the last
one stopped and a corrupted, partial or stale entry is rebuilt with one line saying which and why.

Scores: :func:`diffnotes.metrics.digits_report` (kernel distance, Fréchet distance, precision,
recall, each next to the real-vs-real band at the same N); NFE counted by wrapping the denoiser;
sampling CPU seconds per 100 samples and training CPU seconds (``time.process_time``, one thread).
Under ``full`` each row has three seeds, its mean with the 95% t-interval, and a rank that only
separates rows whose paired difference :func:`diffnotes.results.judge_pair` calls real. Under
``quick`` (one seed, tiny budgets) the table is marked "not judged at quick". Under ``gpu`` the
same rows train larger U-Nets on a local image folder (``data_root``) and are scored in a pixel
feature space (see :func:`pixel_report`), into a separate result set.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from . import constants as K
from .checkpoints import atomic_write

__all__ = ["Budget", "BUDGETS", "ModelSpec", "Row", "ROWS", "MODELS", "LEFT_OUT", "Task",
           "make_task", "run", "load_results", "summarise", "rank_rows", "render_table",
           "generated_table", "GENERATED_TABLES", "total_cpu_seconds", "figure_quality_vs_nfe", "figure_quality_vs_training",
           "pixel_report", "cache_dir", "STORED_FULL", "RESULTS_FORMAT"]

RESULTS_FORMAT = "diffnotes-leaderboard-1"
CACHE_VERSION = 2  # bump when a change to the code should retire every cached entry
STORED_FULL = Path(__file__).parent / "data" / "leaderboard_full.json"
LEVELS = 17  # the digits' grey levels (0..16): the discretized decoders' bins
EPS_ABS = 0.0078  # Gotta Go Fast's absolute tolerance for data in [-1, 1] (as its lab)
GGF_REL = 0.1  # the relative tolerance its lab uses on digits


# ----------------------------------------------------------------------------------------------
# Budgets per profile
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """What one profile spends on every row (the equal budget)."""

    seeds: int
    steps: int  # training steps of every model
    batch_size: int  # so every model sees steps * batch_size examples
    lr: float
    width: int  # U-Net base width (channels)
    n_samples: int  # samples per evaluation (the metrics' N)
    nfes: tuple[int, ...]  # the requested NFE besides each row's own default
    default_cap: int | None  # quick caps the rows' own defaults (None: the paper's default)
    n_bound: int  # held-out images for bits/dim (0: not computed)
    sd_T: int  # Sohl-Dickstein's chain length (its sampler has NFE = T)


BUDGETS = {
    "quick": Budget(seeds=1, steps=6, batch_size=16, lr=2e-3, width=8, n_samples=16, nfes=(10,),
                    default_cap=20, n_bound=0, sd_T=20),
    "full": Budget(seeds=3, steps=400, batch_size=64, lr=1e-3, width=16, n_samples=100,
                   nfes=(10, 50), default_cap=None, n_bound=16, sd_T=1000),
    "gpu": Budget(seeds=3, steps=20000, batch_size=128, lr=2e-4, width=64, n_samples=1000,
                  nfes=(10, 50), default_cap=None, n_bound=64, sd_T=1000),
}


# ----------------------------------------------------------------------------------------------
# The task: data, shape, scorer
# ----------------------------------------------------------------------------------------------
@dataclass
class Task:
    """Training images, evaluation images (for bounds) and the scorer of one run."""

    name: str
    train: torch.Tensor
    held_out: torch.Tensor
    score: Callable  # score(samples, seed, labels=None) -> metrics.DigitsReport
    device: str = "cpu"
    labels: torch.Tensor | None = None  # the training images' classes (digits only)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])

    @property
    def sigma_data(self) -> float:
        return round(float(self.train.double().std()), 3)

    def identity(self) -> str:
        """What the data is, for the configuration digest."""
        return f"{self.name}:{tuple(self.train.shape)}:{float(self.train.double().sum()):.6f}"


def _digits_score(samples, seed, labels=None):
    from .metrics import digits_report

    # the fixed halves (A the reference, B the band), as the page states: the rows are
    # compared with each other on the same reference per seed
    return digits_report(samples.clamp(-1, 1), labels, seed=seed, resplit=False)


def _pixel_features(images: torch.Tensor) -> torch.Tensor:
    """Images pooled to 8x8 per channel, flattened: the gpu profile's (crude) feature space."""
    pooled = torch.nn.functional.adaptive_avg_pool2d(images.float().cpu(), 8)
    return pooled.flatten(1).double()


def pixel_report(samples, reference, real, *, seed: int = 0):
    """Kernel distance, Fréchet distance, precision and recall in a pixel space (images pooled to
    8x8 per channel) against ``reference``, with ``real`` scored the same way as the band.

    Used where the digits classifier's features do not apply (the gpu profile's image folders):
    the numbers compare rows of one run, not other papers' FIDs.
    """
    from .metrics import DigitsReport, frechet_distance, kernel_distance, precision_recall

    n = min(samples.shape[0], reference.shape[0], real.shape[0])
    if n < 4:
        raise ValueError(f"pixel_report needs at least 4 images per set, got {n}")
    gen = torch.Generator().manual_seed(seed)
    pick = [torch.randperm(t.shape[0], generator=gen)[:n] for t in (samples, reference, real)]
    ref = _pixel_features(reference[pick[1]])

    def one(images):
        feats = _pixel_features(images)
        kd, kd_se = kernel_distance(ref, feats)
        precision, recall = precision_recall(ref, feats, k=min(3, n - 1))
        return DigitsReport(fd=frechet_distance(ref, feats), kd=kd, kd_se=kd_se, precision=precision,
                            recall=recall, class_accuracy=None, n=n)

    report = one(samples.clamp(-1, 1)[pick[0]])
    report.band = one(real[pick[2]])
    return report


def make_task(profile: str, data_root: str | None = None) -> Task:
    """The digits model-training split (``quick``, ``full``) or a local image folder (``gpu``)."""
    from .data import load_digits, load_image_folder

    if profile == "gpu":
        if data_root is None:
            raise ValueError("the gpu profile needs --data-root, a folder of class subfolders of "
                             "images (an ImageFolder such as CIFAR-10's)")
        if not Path(data_root).is_dir():
            raise ValueError(f"data folder {data_root} does not exist")
        images, _ = load_image_folder(data_root, size=32)
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
        images = images[order]
        n_eval = max(4, images.shape[0] // 5)
        ref, real, train = images[:n_eval], images[n_eval:2 * n_eval], images[2 * n_eval:]
        if train.shape[0] < 2:
            raise ValueError(f"{data_root} holds {images.shape[0]} images; need at least 10")

        def score(samples, seed, labels=None):
            return pixel_report(samples, ref, real, seed=seed)

        from .device import default_device

        return Task(f"folder:{Path(data_root).name}", train, ref, score, str(default_device()))
    if data_root is not None:
        raise ValueError(f"--data-root is for the gpu profile only (got profile {profile!r}); "
                         "quick and full use the digits")
    train, labels = load_digits("train")
    held_out, _ = load_digits("eval")
    return Task("digits", train, held_out, _digits_score, labels=labels)


# ----------------------------------------------------------------------------------------------
# Models: the network and the loss, one per family of rows
# ----------------------------------------------------------------------------------------------
def _unet(task: Task, budget: Budget, *, resolution=None, in_channels=None, out_channels=None):
    """The common backbone: a two-level U-Net of ``budget.width`` channels, no attention (the
    labs' small net, :func:`diffnotes.presets.small_unet`)."""
    from .presets import small_unet

    c, h, _ = task.shape
    return small_unet(resolution or h, in_channels or c, ch=budget.width,
                      out_channels=out_channels)


def _ddpm_chain():
    from .methods.ddpm import DDPMSchedule

    return DDPMSchedule.linear()  # beta 1e-4 ... 0.02, T = 1000 (DDPM Sec. 4)


def _iddpm_chain():
    from .methods import iddpm

    return iddpm.cosine_schedule(K.DDPM_T)


def _sd_chain(budget: Budget):
    from .methods.ddpm import DDPMSchedule

    return DDPMSchedule.linear(budget.sd_T) if budget.sd_T != K.DDPM_T else _ddpm_chain()


def _ve_params() -> dict:
    return {"sigma_max": 10.0}  # as the NCSN digits lab's ladder top


@dataclass
class ModelSpec:
    """How one model is built and trained; ``build`` returns the untrained module (used to load a
    checkpoint too), ``loss`` the loss callable of the loss contract."""

    key: str
    build: Callable  # (task, budget) -> nn.Module
    loss: Callable | None  # (task, budget) -> loss_fn; None: ``train`` is custom
    note: str
    train: Callable | None = None  # (task, budget, seed, folder, log) -> (module, cpu_s, examples)


def _build_vp(task, budget):
    from .precond import VPPrecond

    return VPPrecond(_unet(task, budget))


def _build_edm(task, budget):
    from .precond import EDMPrecond

    return EDMPrecond(_unet(task, budget), sigma_data=task.sigma_data)


def _build_ncsn(task, budget):
    from .precond import VEPrecond

    return VEPrecond(_unet(task, budget), sigma_min=0.01, sigma_max=10.0)


def _build_iddpm(task, budget):
    from .methods import iddpm
    from .precond import VPPrecond

    return iddpm.LearnedVarianceModel(VPPrecond(_unet(task, budget)), _unet(task, budget))


def _build_vdm(task, budget):
    from .methods import vdm
    from .precond import VPPrecond

    c = task.shape[0]
    net = _unet(task, budget, in_channels=5 * c, out_channels=c)
    return vdm.VDM(VPPrecond(vdm.FourierInput(net, exponents=(3, 4))),
                   vdm.MonotoneGamma(hidden=16, speed=30))


def _build_sd(task, budget):
    from .methods import sohl_dickstein as sd

    return sd.ReverseKernel(_unet(task, budget), _unet(task, budget), _sd_chain(budget))


def _build_patch(task, budget):
    from .methods.patching import patched_unet
    from .precond import EDMPrecond
    from .presets import small_unet_config

    c, h, _ = task.shape
    kwargs = small_unet_config(h, c, ch=budget.width)
    for k in ("img_resolution", "in_channels"):
        kwargs.pop(k)
    return EDMPrecond(patched_unet(2, h, c, **kwargs), sigma_data=task.sigma_data)


def _subspace_parts(task, budget):
    from .methods.subspace import DownsampleSubspace, orthogonal_moments, switch_sigma

    space = DownsampleSubspace(2)
    coords = space.coords(task.train)
    sigma_switch = switch_sigma(*orthogonal_moments(space, task.train), 0.1)  # 0.1 nats, as the lab
    return space, coords, sigma_switch


def _build_subspace(task, budget):
    from .methods.subspace import SubspaceDenoiser
    from .precond import EDMPrecond

    space, coords, sigma_switch = _subspace_parts(task, budget)
    full = EDMPrecond(_unet(task, budget), sigma_data=task.sigma_data)
    sub = EDMPrecond(_unet(task, budget, resolution=coords.shape[-1]),
                     sigma_data=round(float(coords.double().std()), 3))
    return SubspaceDenoiser(full, sub, space, sigma_switch)


def _fit(model, loss, data, steps, budget, seed, device):
    from .train import fit

    start = time.process_time()
    result = fit(model, loss, data, max(int(steps), 1), lr=budget.lr, batch_size=budget.batch_size,
                 ema_halflife=max(steps / 20, 2), warmup=min(20, max(steps // 4, 0)),
                 progress=False, seed=seed, device=device)
    return result, time.process_time() - start


def _train_subspace(task, budget, seed, folder=None, log=None):
    """Two networks, the steps split as the lab splits them: the full-space net below the switch,
    the subspace net above it, in proportion to EDM's training draws on each side."""
    from .methods.subspace import BandEDMLoss, SubspaceDenoiser, band_probability

    model = _build_subspace(task, budget)
    space, coords, sigma_switch = _subspace_parts(task, budget)
    share = band_probability(sigma_switch, sigma_data=task.sigma_data)
    steps_sub = max(1, round(budget.steps * share))
    steps_full = max(1, budget.steps - steps_sub)
    torch.manual_seed(seed)
    low, cpu_low = _fit(model.full, BandEDMLoss(0.0, sigma_switch, sigma_data=task.sigma_data),
                        task.train, steps_full, budget, seed, task.device)
    high, cpu_high = _fit(model.sub, BandEDMLoss(sigma_switch, sigma_data=model.sub.sigma_data),
                          coords, steps_sub, budget, seed, task.device)
    trained = SubspaceDenoiser(low.model_ema, high.model_ema, space, sigma_switch)
    return trained, cpu_low + cpu_high, (steps_full + steps_sub) * budget.batch_size


def _loss_simple(task, budget):
    from .methods.ddpm import SimpleLoss

    return SimpleLoss(_ddpm_chain())


def _loss_hybrid(task, budget):
    from .methods import iddpm

    return iddpm.HybridLoss(_iddpm_chain())


def _loss_edm(task, budget):
    from .methods.edm import EDMLoss

    return EDMLoss(sigma_data=task.sigma_data)


def _loss_vp(task, budget):
    from .methods import score_sde

    return score_sde.ScoreSDELoss("vp")


def _loss_ve(task, budget):
    from .methods import score_sde

    return score_sde.ScoreSDELoss("ve", **_ve_params())


def _loss_ncsn(task, budget):
    from .methods import ncsn

    return ncsn.NCSNLoss(ncsn.ncsn_sigmas(K.NCSN_L, 10.0, 0.01))


def _loss_vdm(task, budget):
    from .methods import vdm

    return vdm.VDMLoss(LEVELS)


def _loss_sd(task, budget):
    from .methods import sohl_dickstein as sd

    return sd.BoundLoss()


def _build_cond(task, budget):
    """The book's class-conditional digits U-Net (label embedding, AdaGN) under EDM's
    preconditioning, at the budget's width."""
    from .methods.guidance import class_conditional_digits_denoiser

    return class_conditional_digits_denoiser(True, budget.width)


def _train_cond(task, budget, seed, folder=None, log=None):
    """EDM's loss with label dropout (the null label is the unconditional model), as the
    guidance labs' recipe (:func:`diffnotes.recipes.fit_digits_denoiser`) trains it."""
    from .methods.edm import EDMLoss
    from .methods.guidance import LabelDropout

    model = _build_cond(task, budget)
    result, cpu_s = _fit(model, LabelDropout(EDMLoss(), K.CFG_P_UNCOND), (task.train, task.labels),
                         budget.steps, budget, seed, task.device)
    return result.model_ema, cpu_s, result.steps_run * budget.batch_size


def _build_cond_guided(task, budget):
    from torch import nn

    from .methods.guidance import NoisyDigitsClassifier

    return nn.ModuleDict({"net": _build_cond(task, budget), "guide": NoisyDigitsClassifier(32)})


def _train_cond_guided(task, budget, seed, folder, log):
    """The class-conditional network (reused from its own cache entry) and a noise-aware
    classifier trained for the same steps: classifier guidance pays for both."""
    from torch import nn

    from .methods.guidance import ClassifierLoss

    net, cpu_net, examples, parts = _load_or_train(MODELS["cond"], task, budget, seed, folder, log)
    guide = _build_cond_guided(task, budget)["guide"]
    torch.manual_seed(seed)
    result, cpu_guide = _fit(guide, ClassifierLoss(), (task.train, task.labels), budget.steps, budget,
                             seed, task.device)
    trained = nn.ModuleDict({"net": net, "guide": result.model_ema})
    trained.train_parts = {**parts, "cond-guided": cpu_guide}  # the network's time is cond's
    return trained, cpu_net + cpu_guide, examples + result.steps_run * budget.batch_size


MODELS = {m.key: m for m in [
    ModelSpec("sd", _build_sd, _loss_sd, "two U-Nets (mean and variance of each reverse step; "
              "twice the parameters)"),
    ModelSpec("ncsn", _build_ncsn, _loss_ncsn, "VE preconditioning, 10 noise levels 10 -> 0.01"),
    ModelSpec("ddpm", _build_vp, _loss_simple, "VP preconditioning, L_simple, linear chain T = 1000"),
    ModelSpec("iddpm", _build_iddpm, _loss_hybrid, "a second U-Net for the variance (twice the "
              "parameters), L_hybrid, cosine chain T = 1000"),
    ModelSpec("vp", _build_edm, _loss_vp, "EDM preconditioning, Score SDE's VP loss"),
    ModelSpec("ve", _build_edm, _loss_ve, "EDM preconditioning, Score SDE's VE loss (sigma_max 10)"),
    ModelSpec("edm", _build_edm, _loss_edm, "EDM preconditioning and loss"),
    ModelSpec("vdm", _build_vdm, _loss_vdm, "Fourier features in (5x the input channels), a "
              "learned monotone schedule (a small extra network)"),
    ModelSpec("subspace", _build_subspace, None, "a full-space U-Net below the switch and one on "
              "the 2x2-block subspace above it; the steps split between them",
              train=_train_subspace),
    ModelSpec("patch", _build_patch, _loss_edm, "the U-Net on 2x2 patches (4x the channels in, "
              "half the side)"),
    ModelSpec("cond", _build_cond, None, "the class-conditional digits U-Net (label embedding, "
              "attention at 4x4), EDM's loss with label dropout 0.2", train=_train_cond),
    ModelSpec("cond-guided", _build_cond_guided, None, "the class-conditional U-Net above plus a "
              "noise-aware classifier trained for the same steps", train=_train_cond_guided),
]}


# ----------------------------------------------------------------------------------------------
# Rows: how each method samples, and its bits/dim
# ----------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One row of the table: a method on a model."""

    key: str
    label: str
    paper: str  # bib key of its chapter
    model: str  # key of MODELS
    default_nfe: int | None  # the method's own default (None: adaptive)
    default_note: str
    sample: Callable  # (model, task, n, nfe, generator) -> samples; nfe None = own default
    bpd: Callable | None = None  # (model, x_eval, generator, task) -> bits/dim per image
    fixed_nfe: bool = False  # True: the sampler has one NFE (the requested ones are skipped)
    conditional: bool = False  # asks for classes: scored with the judge's accuracy (digits only)


def _noise(task, n, generator):
    """Noise drawn on the CPU with ``generator`` and moved to the task's device (same samples
    on every device for a seed)."""
    return torch.randn((n, *task.shape), generator=generator).to(task.device)


def _sample_ddpm(model, task, n, nfe, generator):
    from .methods import ddpm

    return ddpm.sample(model, (n, *task.shape), _ddpm_chain(), steps=nfe, generator=generator,
                       device=task.device)


def _sample_ddim(model, task, n, nfe, generator):
    from .methods import ddim

    chain = _ddpm_chain()
    sigmas = chain.sampling_sigmas(nfe)
    return ddim.decode(model, _noise(task, n, generator) * chain.prior_scale(), sigmas)


def _analytic_tables(model, task, chain, K_steps, generator):
    from .methods import analytic_dpm

    short, kept = chain.respace(K_steps)
    pick = torch.randperm(task.train.shape[0], generator=generator)[:64]
    moments = analytic_dpm.score_norm_moments(_raw(model), task.train[pick].to(task.device), chain, kept,
                                              generator=generator)
    return short, analytic_dpm.analytic_variance(short, moments)["variance"]


def _sample_analytic(model, task, n, nfe, generator):
    from .methods import analytic_dpm

    short, variance = _analytic_tables(model, task, _ddpm_chain(), nfe, generator)
    return analytic_dpm.sample(model, (n, *task.shape), short, variance, generator=generator,
                               device=task.device)


def _sample_iddpm(model, task, n, nfe, generator):
    from .methods import iddpm

    return iddpm.sample(_raw(model), (n, *task.shape), _iddpm_chain(), steps=nfe,
                        generator=generator, device=task.device)


def _sample_sd(model, task, n, nfe, generator):
    from .methods import sohl_dickstein as sd

    return sd.sample(_raw(model), (n, *task.shape), generator=generator, device=task.device)


def _sample_ncsn(model, task, n, nfe, generator):
    from .methods import ncsn

    per_level = max(1, round((nfe - 1) / K.NCSN_L))  # L levels, then the final denoising step
    x = (torch.rand((n, *task.shape), generator=generator) * 2 - 1).to(task.device)
    return ncsn.annealed_langevin(model, x, ncsn.ncsn_sigmas(K.NCSN_L, 10.0, 0.01), epsilon=K.NCSN_EPSILON,
                                  n_steps_each=per_level, final_denoise=True, generator=generator)


def _sde_sampler(sde: str, solver: str):
    def run_it(model, task, n, nfe, generator):
        from . import sampling
        from .methods import score_sde

        params = _ve_params() if sde == "ve" else {}
        x = score_sde.prior_sample(sde, (n, *task.shape), generator, **params).to(task.device)
        levels = score_sde.time_sigmas(sde, max(2, (nfe + 1) // 2), **params).to(x.dtype)
        return sampling.sample(model, x, levels, solver, generator=generator)

    return run_it


def _sample_ggf(model, task, n, nfe, generator):
    from .methods import gotta_go_fast as ggf
    from .methods import score_sde

    x = score_sde.prior_sample("vp", (n, *task.shape), generator).to(task.device)
    xs, _ = ggf.adaptive_sample(model, "vp", x, eps_abs=EPS_ABS, eps_rel=GGF_REL,
                                generator=generator)
    return xs


def _karras(nfe):
    from .sampling import sigma_schedule

    return sigma_schedule("karras", max(2, (nfe + 1) // 2), K.EDM_SIGMA_MIN, K.EDM_SIGMA_MAX).float()


def _sample_heun(model, task, n, nfe, generator):
    from . import sampling

    sigmas = _karras(nfe)
    return sampling.sample(model, _noise(task, n, generator) * sigmas[0], sigmas, "heun")


CFG_WEIGHT = 1.0  # ours: a guidance weight inside the range the CFG lab sweeps (0 to 4)
CG_SCALE = 1 + CFG_WEIGHT  # classifier guidance at the matching scale, as the lab pairs them


def _sample_cfg(model, task, n, nfe, generator):
    from . import sampling
    from .methods.guidance import balanced_labels, classifier_free

    labels = balanced_labels(n)
    sigmas = _karras(nfe)
    x = _noise(task, n, generator) * sigmas[0]
    den = classifier_free(model, labels.to(task.device), CFG_WEIGHT)
    return sampling.sample(den, x, sigmas, "heun"), labels


def _sample_cg(model, task, n, nfe, generator):
    from . import sampling
    from .methods.gotta_go_fast import CountingDenoiser
    from .methods.guidance import balanced_labels, classifier_guided, null_labels

    parts = _raw(model)
    labels = balanced_labels(n)
    sigmas = _karras(nfe)
    x = _noise(task, n, generator) * sigmas[0]
    net = CountingDenoiser(parts["net"])
    den = classifier_guided(net, parts["guide"], labels.to(task.device), CG_SCALE,
                            null_labels(n, device=task.device))
    with torch.enable_grad():  # the classifier's gradient
        xs = sampling.sample(den, x, sigmas, "heun")
    if isinstance(model, CountingDenoiser):
        model.nfe += net.nfe
    return xs, labels


def _vdm_sigmas(model, nfe):
    """EDM's sigma = exp(gamma / 2) on a uniform time grid 1 -> 0 (VDM's SNR is exp(-gamma)),
    then 0."""
    device = next(model.parameters()).device
    t = torch.linspace(1.0, 0.0, nfe + 1)[:-1].to(device)
    with torch.no_grad():
        gamma = model.gamma(t).double().flatten().cpu()
    return torch.cat([torch.exp(gamma / 2), torch.zeros(1, dtype=torch.float64)])


def _sample_vdm(model, task, n, nfe, generator):
    from . import sampling

    sigmas = _vdm_sigmas(_raw(model), nfe)
    x = _noise(task, n, generator) * math.sqrt(1 + float(sigmas[0]) ** 2)
    return sampling.sample(model, x, sigmas, "ancestral", generator=generator)


def _bpd_ddpm(model, x, generator, task):
    from .methods.ddpm import nll_bound

    return nll_bound(model, x, _ddpm_chain(), decoder="discretized", levels=LEVELS,
                     generator=generator)["total"]


def _bpd_iddpm(model, x, generator, task):
    from .chain import to_bits_per_dim
    from .methods import iddpm

    nats = iddpm.nll_bound(model, x, _iddpm_chain(), decoder="discretized", levels=LEVELS,
                           generator=generator)
    return to_bits_per_dim(nats, x[0].numel())


def _bpd_vdm(model, x, generator, task):
    from .methods import vdm

    return vdm.nll_bound(model, x, LEVELS, n_times=100, generator=generator)["total"]


def _bpd_analytic(model, x, generator, task, K_steps=100):
    """The bound with the analytic variance at K steps, its moments estimated on training
    images (as the lab does), never on the held-out images it scores."""
    from .methods import analytic_dpm

    short, variance = _analytic_tables(model, task, _ddpm_chain(), K_steps, generator)
    return analytic_dpm.nll_bounds(model, x, short, {"analytic": variance}, levels=LEVELS,
                                   generator=generator)["analytic"]


def _bpd_pf_ode(sde: str | None):
    """Bits/dim through the probability-flow ODE (``metrics.pf_ode_log_likelihood``, adaptive
    RK45, Hutchinson's trace with one fixed probe) over the row's own noise range, of the digits
    dequantized by uniform noise across their grey-level bin: E[-log p(x + u)] minus the log bin
    volume, an upper bound on the discrete NLL. ``sde`` None: EDM's range."""

    def bpd(model, x, generator, task):
        from .methods import score_sde
        from .metrics import pf_ode_log_likelihood

        if sde is None:
            lo, hi = K.EDM_SIGMA_MIN, K.EDM_SIGMA_MAX
        else:
            levels = score_sde.time_sigmas(sde, 2, **(_ve_params() if sde == "ve" else {}))
            hi, lo = float(levels[0]), float(levels[1])
        width = 2.0 / (LEVELS - 1)  # the digits' grey levels in [-1, 1]
        u = (torch.rand(x.shape, generator=generator) - 0.5).to(x.device) * width
        return pf_ode_log_likelihood(model, x + u, hi, lo, rtol=1e-4, atol=1e-4,
                                     exact_trace=False, generator=generator,
                                     unit="bits_per_dim", bin_width=width)

    return bpd


ROWS = {r.key: r for r in [
    Row("sohl-dickstein", "Sohl-Dickstein (learned reverse kernel)", "sohldickstein2015deep", "sd",
        K.DDPM_T, "ours: its sampler runs every step of its chain (T = 1000 here)", _sample_sd,
        fixed_nfe=True),
    Row("ncsn", "NCSN (annealed Langevin)", "song2019generative", "ncsn", K.NCSN_L * K.NCSN_T + 1,
        "L = 10 levels x T = 100 steps (Sec. 4) + the lab's final denoising step", _sample_ncsn),
    Row("ddpm", "DDPM (ancestral)", "ho2020denoising", "ddpm", K.DDPM_T,
        "1000 ancestral steps (Table 1)", _sample_ddpm, _bpd_ddpm),
    Row("iddpm", "iDDPM (learned variances)", "nichol2021improved", "iddpm", K.DDPM_T,
        "ours: every step of its 1000-step cosine chain", _sample_iddpm, _bpd_iddpm),
    Row("ddim", "DDIM (eta = 0, DDPM model)", "song2021denoising", "ddpm", 100,
        "S = 100 (Table 1)", _sample_ddim),
    Row("vp-pc", "Score SDE VP (predictor-corrector)", "song2021score", "vp", 2000,
        "1000 predictor + 1000 corrector steps (PC1000, unconfirmed)",
        _sde_sampler("vp", "predictor_corrector")),
    Row("vp-ode", "Score SDE VP (PF-ODE, Heun)", "song2021score", "vp", 100,
        "ours: 100 (the paper's PF-ODE solver is adaptive, unconfirmed)", _sde_sampler("vp", "heun"),
        _bpd_pf_ode("vp")),
    Row("ve-pc", "Score SDE VE (predictor-corrector)", "song2021score", "ve", 2000,
        "1000 predictor + 1000 corrector steps (PC1000, unconfirmed)",
        _sde_sampler("ve", "predictor_corrector")),
    Row("ve-ode", "Score SDE VE (PF-ODE, Heun)", "song2021score", "ve", 100,
        "ours: 100 (the paper's PF-ODE solver is adaptive, unconfirmed)", _sde_sampler("ve", "heun"),
        _bpd_pf_ode("ve")),
    Row("edm", "EDM (Heun)", "karras2022elucidating", "edm", 35, "35 NFE (Table 2)", _sample_heun,
        _bpd_pf_ode(None)),
    Row("vdm", "VDM (ancestral on its learned schedule)", "kingma2021variational", "vdm", K.DDPM_T,
        "ours: 1000 steps", _sample_vdm, _bpd_vdm),
    Row("analytic-dpm", "Analytic-DPM (DDPM model)", "bao2022analytic", "ddpm", 100,
        "ours: K = 100, the lab's largest K", _sample_analytic, _bpd_analytic),
    Row("gotta-go-fast", "Gotta Go Fast (adaptive, VP model)", "jolicoeurmartineau2021gotta", "vp",
        None, f"adaptive: eps_rel {GGF_REL}, eps_abs {EPS_ABS} (as its lab)", _sample_ggf,
        fixed_nfe=True),
    Row("subspace", "Subspace diffusion (Heun)", "jing2022subspace", "subspace", 35,
        "EDM's 35 NFE (the sampler the lab uses)", _sample_heun),
    Row("patching", "Patching, p = 2 (Heun)", "luhman2022improving", "patch", 35,
        "EDM's 35 NFE (the sampler the lab uses)", _sample_heun),
    Row("cfg", f"Classifier-free guidance, w = {CFG_WEIGHT:g} (Heun)", "ho2022classifier", "cond",
        35, "EDM's 35 NFE (the lab's solver); each evaluation is one batch of twice the size",
        _sample_cfg, conditional=True),
    Row("adm-cg", f"ADM classifier guidance, s = {CG_SCALE:g} (Heun)", "dhariwal2021diffusion",
        "cond-guided", 35, "EDM's 35 NFE (the lab's solver); plus one classifier gradient per "
        "evaluation", _sample_cg, conditional=True),
]}

LEFT_OUT = {
    "Score SDE sub-VP": "its lab compares likelihoods, not samples",
}


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------
def cache_dir(profile: str, root: Path | None = None) -> Path:
    from .markdown import find_root

    if root is None:
        try:
            root = find_root()
        except FileNotFoundError:
            root = Path.cwd()
    return Path(root) / "_build" / "leaderboard" / profile


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _model_config(model_key: str, task: Task, budget: Budget, seed: int) -> dict:
    return {"model": model_key, "budget": asdict(budget), "seed": seed, "data": task.identity(),
            "format": RESULTS_FORMAT, "version": CACHE_VERSION}


def _row_config(row: Row, task: Task, budget: Budget, seed: int) -> dict:
    return {"row": row.key, "default_nfe": row.default_nfe,
            "model": _model_config(row.model, task, budget, seed)}


def _write_json(path: Path, payload: dict) -> None:
    """Atomic JSON write (checkpoints.atomic_write), carrying the digest of its own content."""
    body = dict(payload)
    body["digest"] = _digest({k: v for k, v in body.items() if k != "digest"})
    atomic_write(path, lambda fh: json.dump(body, fh, indent=1, sort_keys=True), mode="w")


def _read_json(path: Path, config_digest: str) -> tuple[dict | None, str | None]:
    """``(payload, None)`` for a sound entry, ``(None, why)`` for one to rebuild, ``(None, None)``
    when there is none."""
    if not path.exists():
        return None, None
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"unreadable ({type(err).__name__})"
    if not isinstance(body, dict) or "digest" not in body:
        return None, "not a leaderboard result (no digest)"
    if _digest({k: v for k, v in body.items() if k != "digest"}) != body["digest"]:
        return None, "content does not match its digest (edited or corrupted)"
    if body.get("config_digest") != config_digest:
        return None, "made with another configuration (budget, data or code version)"
    return body, None


class Log:
    """Where the run's lines go (one per finished (method, seed), one per rebuilt entry)."""

    def __init__(self, echo: Callable[[str], None] | None = print):
        self.lines: list[str] = []
        self.echo = echo

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            self.echo(line)


def _load_or_train(spec: ModelSpec, task: Task, budget: Budget, seed: int, folder: Path, log: Log):
    from .checkpoints import CKPT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint

    config = _model_config(spec.key, task, budget, seed)
    digest = _digest(config)
    path = folder / "models" / f"{spec.key}-seed{seed}.pt"
    why = None
    if path.exists():
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            why = f"unreadable ({str(err).split(':')[-1].strip()})"
        else:
            if state.get("config_digest") != digest:
                why = "made with another configuration (budget, data or code version)"
            else:
                model = spec.build(task, budget)
                try:
                    model.load_state_dict(state["model_ema"])
                except (RuntimeError, KeyError) as err:
                    why = f"weights do not fit the model ({type(err).__name__})"
                else:
                    parts = state.get("train_parts", {spec.key: state["train_cpu_s"]})
                    return model.eval(), state["train_cpu_s"], state["examples"], parts
    if why:
        log(f"rebuilt model {spec.key} seed {seed}: {path.name} {why}")
    torch.manual_seed(seed)
    if spec.train is not None:
        model, cpu_s, examples = spec.train(task, budget, seed, folder, log)
    else:
        model = spec.build(task, budget)
        result, cpu_s = _fit(model, spec.loss(task, budget), task.train, budget.steps, budget, seed,
                             task.device)
        model, examples = result.model_ema, result.steps_run * budget.batch_size
    parts = {k: float(v) for k, v in getattr(model, "train_parts", {spec.key: cpu_s}).items()}
    save_checkpoint(path, {"format": CKPT_FORMAT, "step": budget.steps, "config_digest": digest,
                           "config": json.loads(json.dumps(config)),
                           "model_ema": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                           "train_cpu_s": float(cpu_s), "examples": int(examples),
                           "train_parts": parts})
    return model.eval(), float(cpu_s), int(examples), parts


def _report_dict(report) -> dict:
    keys = ("fd", "kd", "kd_se", "precision", "recall", "n", "class_accuracy")
    out = {k: getattr(report, k) for k in keys}
    out["band"] = {k: getattr(report.band, k) for k in keys}
    return out


def _raw(model):
    """The model behind a :class:`~diffnotes.methods.gotta_go_fast.CountingDenoiser`."""
    from .methods.gotta_go_fast import CountingDenoiser

    return model.denoiser if isinstance(model, CountingDenoiser) else model


def _evaluate(row: Row, model, task: Task, budget: Budget, seed: int) -> dict:
    """Sample at each requested NFE and at the row's own default; score each; the bits/dim."""
    from .methods.gotta_go_fast import CountingDenoiser

    device = task.device
    model = model.to(device)
    requested = [] if row.fixed_nfe else list(budget.nfes)
    default = row.default_nfe
    if default is not None and budget.default_cap is not None:
        default = min(default, budget.default_cap)
    evals = []
    for nfe, own in [(nfe, False) for nfe in requested] + [(default, True)]:
        counter = CountingDenoiser(model)
        gen = torch.Generator().manual_seed(800 + seed)
        start = time.process_time()
        with torch.no_grad():
            xs = row.sample(counter, task, budget.n_samples, nfe, gen)
        cpu_s = time.process_time() - start
        xs, labels = xs if isinstance(xs, tuple) else (xs, None)
        report = task.score(xs.detach().float().cpu(), seed, labels)
        # samplers that call the model object's own methods (iDDPM's variance head,
        # Sohl-Dickstein's kernel) bypass the counter: one evaluation per step of their chain
        used = counter.nfe or (model.schedule.T if hasattr(model, "schedule") else nfe)
        evals.append({"requested": "default" if own else nfe, "nfe": int(used),
                      "sample_cpu_s_per_100": 100 * cpu_s / budget.n_samples,
                      **_report_dict(report)})
    bpd = None
    if row.bpd is not None and budget.n_bound > 0:
        gen = torch.Generator().manual_seed(600 + seed)
        pick = torch.randperm(task.held_out.shape[0], generator=gen)[:budget.n_bound]
        with torch.no_grad():
            bpd = float(row.bpd(model, task.held_out[pick].to(device), gen, task).double().mean())
    return {"evals": evals, "bpd": bpd}


def run(profile: str = "quick", only: list[str] | None = None, data_root: str | None = None, *,
        root: Path | None = None, budget: Budget | None = None, echo=print,
        store: bool | None = None) -> dict:
    """Train (or reuse) and score every row under ``profile``; return ``{row: [result per seed]}``.

    ``only`` restricts the rows (their keys, see :data:`ROWS`); ``budget`` overrides the
    profile's (tests); ``store`` writes :data:`STORED_FULL` (default: under ``full`` with every
    row). Each finished (method, seed) prints one line; each rebuilt cache entry one line.
    """
    if profile not in BUDGETS:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(BUDGETS)}")
    only = list(only or ROWS)
    unknown = [k for k in only if k not in ROWS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(ROWS)}")
    budget = budget or BUDGETS[profile]
    task = make_task(profile, data_root)
    folder = cache_dir(profile, root) if task.name == "digits" or profile != "gpu" else \
        cache_dir(profile, root) / task.name.replace(":", "-")
    log = Log(echo)
    stray = sorted(folder.rglob(".*.tmp")) if folder.is_dir() else []
    for path in stray:  # a write that a kill interrupted: the entry itself was never replaced
        path.unlink()
    if stray:
        log(f"removed {len(stray)} partial file(s) left by an interrupted run in {folder}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets on a shared CPU: one thread is fastest (as the labs)
    results: dict[str, list[dict]] = {}
    t0 = time.perf_counter()
    for key in [k for k in only if ROWS[k].conditional and task.name != "digits"]:
        log(f"skipped {key}: a class-conditional row needs the digits judge")
        only.remove(key)
    log(f"leaderboard {profile}: {len(only)} rows x {budget.seeds} seed(s), {budget.steps} "
        f"steps of batch {budget.batch_size} per model; cache {folder}")
    try:
        total, done = len(only) * budget.seeds, 0
        for seed in range(budget.seeds):
            models: dict[str, tuple] = {}
            for key in only:
                row = ROWS[key]
                config_digest = _digest(_row_config(row, task, budget, seed))
                path = folder / "results" / f"{key}-seed{seed}.json"
                cached, why = _read_json(path, config_digest)
                if why:
                    log(f"rebuilt {key} seed {seed}: {path.name} {why}")
                if cached is None:
                    if row.model not in models:
                        models[row.model] = _load_or_train(MODELS[row.model], task, budget, seed,
                                                           folder, log)
                    model, train_cpu_s, examples, parts = models[row.model]
                    eval_start = time.process_time()
                    scored = _evaluate(row, model, task, budget, seed)
                    cached = {"format": RESULTS_FORMAT, "row": key, "seed": seed, "profile": profile,
                              "data": task.name, "config_digest": config_digest, "model": row.model,
                              "train_cpu_s": train_cpu_s, "examples": examples, "train_parts": parts,
                              "eval_cpu_s": time.process_time() - eval_start, **scored}
                    _write_json(path, cached)
                    state = "done"
                else:
                    state = "cached"
                done += 1
                results.setdefault(key, []).append(cached)
                best = cached["evals"][-1]
                log(f"[{done}/{total}] {key} seed {seed} {state}: KD x 1000 {1e3 * best['kd']:.1f} "
                    f"at NFE {best['nfe']} ({time.perf_counter() - t0:.0f} s)")
    finally:
        torch.set_num_threads(threads)
    if store is None:
        store = profile == "full" and set(only) == set(ROWS) and budget == BUDGETS["full"]
    if store:  # atomically, like every cache entry: a kill leaves the old file or the new one
        stored = {"format": RESULTS_FORMAT, "profile": profile,
                  "cpu_s": round(total_cpu_seconds(results), 1), "results": results}
        atomic_write(STORED_FULL, lambda fh: fh.write(
            json.dumps(stored, indent=1, sort_keys=True) + "\n"), mode="w")
    return results


def total_cpu_seconds(results: dict[str, list[dict]]) -> float:
    """CPU seconds the whole table cost, over every invocation that built it: each (model, seed)
    trained once, plus every (method, seed)'s sampling, scoring and bounds."""
    train = {}  # (model, seed) -> the CPU seconds of training that model itself
    for key, seeds in results.items():
        for r in seeds:
            parts = r.get("train_parts") or {r.get("model", key): r["train_cpu_s"]}
            for model, seconds in parts.items():
                train[model, r["seed"]] = seconds
    scoring = sum(r.get("eval_cpu_s", 0.0) for seeds in results.values() for r in seeds)
    return sum(train.values()) + scoring


def load_results(profile: str = "quick", root: Path | None = None) -> dict[str, list[dict]]:
    """The cached results of ``profile`` (every sound entry), or the stored full results for
    ``profile="stored"``."""
    if profile == "stored":
        if not STORED_FULL.exists():
            return {}
        return json.loads(STORED_FULL.read_text())["results"]
    folder = cache_dir(profile, root) / "results"
    out: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if body.get("format") == RESULTS_FORMAT and body.get("row") in ROWS:
            out.setdefault(body["row"], []).append(body)
    for values in out.values():
        values.sort(key=lambda b: b["seed"])
    return out


# ----------------------------------------------------------------------------------------------
# Summaries, ranking, the table and the figures
# ----------------------------------------------------------------------------------------------
def _default_eval(result: dict) -> dict:
    return result["evals"][-1]


def summarise(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per row, per-seed lists of every column at the row's own default NFE (and per NFE)."""
    out = {}
    for key, seeds in results.items():
        evs = [_default_eval(r) for r in seeds]
        row = {"seeds": len(seeds),
               "kd": [1e3 * e["kd"] for e in evs], "fd": [e["fd"] for e in evs],
               "precision": [e["precision"] for e in evs], "recall": [e["recall"] for e in evs],
               "accuracy": [e.get("class_accuracy") for e in evs],
               "band_accuracy": [e["band"].get("class_accuracy") for e in evs],
               "band_kd": [1e3 * e["band"]["kd"] for e in evs], "band_fd": [e["band"]["fd"] for e in evs],
               "band_precision": [e["band"]["precision"] for e in evs],
               "band_recall": [e["band"]["recall"] for e in evs],
               "nfe": [e["nfe"] for e in evs],
               "sample_s": [e["sample_cpu_s_per_100"] for e in evs],
               "train_s": [r["train_cpu_s"] for r in seeds],
               "bpd": [r["bpd"] for r in seeds if r.get("bpd") is not None],
               "by_nfe": {}}
        for r in seeds:
            for e in r["evals"]:
                name = str(e["requested"])
                row["by_nfe"].setdefault(name, {"kd": [], "nfe": []})
                row["by_nfe"][name]["kd"].append(1e3 * e["kd"])
                row["by_nfe"][name]["nfe"].append(e["nfe"])
        out[key] = row
    return out


def rank_rows(per_row: dict[str, list[float]], better: str = "lower") -> dict[str, int | None]:
    """Competition ranks that separate only what the decision rule calls real: a row's rank is 1
    plus the number of rows :func:`diffnotes.results.judge_pair` judges better than it (paired
    by seed). Rows no pair separates share a rank (a tie); with fewer than two seeds nothing is
    judged and every rank is None."""
    from .results import HOLDS, judge_pair

    keys = list(per_row)
    if any(len(per_row[k]) < 2 for k in keys) or len({len(per_row[k]) for k in keys}) > 1:
        return {k: None for k in keys}
    return {k: 1 + sum(judge_pair(per_row[o], per_row[k], better=better) == HOLDS
                       for o in keys if o != k) for k in keys}


def _decimals(x: float) -> int:
    """Decimals that keep about three significant digits (none above 100)."""
    if not math.isfinite(x) or x == 0:
        return 2
    return max(0, min(3, 2 - math.floor(math.log10(abs(x)))))


def _fmt(values) -> str:
    """Mean ± the 95% t-interval's half-width (just the value for one seed; "–" for none)."""
    from .results import t_interval

    values = [float(v) for v in values if v is not None]
    if not values:
        return "–"
    mean, low, high = t_interval(values)
    d = _decimals(mean)
    if math.isnan(low):
        return f"{mean:.{d}f}"
    return f"{mean:.{d}f} ± {(high - low) / 2:.{d}f}"


def _fmt_nfe(values) -> str:
    """NFE: one integer when every seed used the same count (the fixed samplers)."""
    values = [int(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else _fmt(values)


def _band(summary: dict, order: list[str], name: str) -> list[float]:
    """The real-vs-real band per seed: every row of a seed is scored against the same real
    halves at the same N, so one row's band per seed is the band (the judge's accuracy on real
    digits only from a row that asked for classes)."""
    for key in order:
        values = summary[key][f"band_{name}"]
        if all(v is not None for v in values):
            return list(values)
    return []


def _table_markdown(results: dict[str, list[dict]], judged: bool) -> str:
    from .markdown import cell

    summary = summarise(results)
    order = [k for k in ROWS if k in summary]
    ranks = rank_rows({k: summary[k]["kd"] for k in order}) if judged else {k: None for k in order}
    band = {name: _band(summary, order, name)
            for name in ("kd", "fd", "precision", "recall", "accuracy")}
    head = ("| rank | method | NFE | KD ×10³ | Fréchet | precision | recall | accuracy | bits/dim | "
            "sample CPU s / 100 | train CPU s |")
    lines = [head, "|" + "---|" * 11]
    lines.append(f"| | *real vs real (band)* | | {_fmt(band['kd'])} | {_fmt(band['fd'])} | "
                 f"{_fmt(band['precision'])} | {_fmt(band['recall'])} | {_fmt(band['accuracy'])} "
                 "| | | |")
    for k in sorted(order, key=lambda k: (ranks[k] or 0, sum(summary[k]["kd"]) / len(summary[k]["kd"]))):
        s, row = summary[k], ROWS[k]
        rank = "–" if ranks[k] is None else str(ranks[k])
        lines.append(
            f"| {rank} | {cell(row.label)} ([{row.paper}](papers/{row.paper}.md)) | {_fmt_nfe(s['nfe'])} | "
            f"{_fmt(s['kd'])} | {_fmt(s['fd'])} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | "
            f"{_fmt(s['accuracy'])} | {_fmt(s['bpd'])} | {_fmt(s['sample_s'])} | {_fmt(s['train_s'])} |")
    numbers = sorted({int(n) for k in order for n in summary[k]["by_nfe"] if n != "default"})
    nfe_names = [str(n) for n in numbers] + ["default"]
    lines += ["", "Kernel distance ×10³ by NFE (\"default\": the row above):", "",
              "| method | " + " | ".join(f"NFE {n}" for n in nfe_names) + " |",
              "|---|" + "---|" * len(nfe_names)]
    for k in order:
        by = summary[k]["by_nfe"]
        lines.append(f"| {cell(ROWS[k].label)} | " + " | ".join(
            _fmt(by[n]["kd"]) if n in by else "–" for n in nfe_names) + " |")
    return "\n".join(lines) + "\n"


def render_table(*, include_quick: bool = True, root: Path | None = None) -> str:
    """The measured table as Markdown, from the stored full results; without them, one sentence
    saying the full run has not been made, and (``include_quick``) the quick table from the cache,
    marked "not judged at quick"."""
    from .results import UNJUDGED

    stored = load_results("stored")
    if stored:
        meta = json.loads(STORED_FULL.read_text())
        n = min(len(v) for v in stored.values())
        cpu_min = meta.get("cpu_s", float("nan")) / 60
        return (f"Measured under `full`: {n} seeds per row, mean ± the 95% t-interval half-width; "
                f"training and scoring took {cpu_min:.0f} CPU minutes in all (one thread).\n\n"
                + _table_markdown(stored, judged=True))
    text = ("The full run has not been made yet, so there is no measured table here. "
            "`python -m diffnotes leaderboard --profile full` makes it and stores "
            "`src/diffnotes/data/leaderboard_full.json`, from which this table is generated.\n")
    if include_quick:
        quick = load_results("quick", root)
        if quick:
            text += (f"\nThe `quick` smoke run from this machine's cache ({UNJUDGED}: one seed, "
                     "a few training steps; its numbers show that the machinery runs, not which "
                     "method is better, and none of them is a result):\n\n"
                     + _table_markdown(quick, judged=False))
    return text


def generated_table() -> str:
    """What ``book/_generated/leaderboard.md`` holds: :func:`render_table` from the stored full
    results only (the local quick cache would make the drift check depend on the machine)."""
    return render_table(include_quick=False)


def _generated_tables():
    from .markdown import GeneratedTable

    return [GeneratedTable("leaderboard", generated_table,
                           "src/diffnotes/data/leaderboard_full.json (python -m diffnotes leaderboard "
                           "--profile full)")]


GENERATED_TABLES = _generated_tables()
"""For the registry in :mod:`diffnotes.tables` (``book/_generated/leaderboard.md``)."""


def _series(results):
    summary = summarise(results)
    return summary, [k for k in ROWS if k in summary]


def figure_quality_vs_nfe(results: dict[str, list[dict]] | None = None):
    """Kernel distance ×10³ against measured NFE, one line per row (log NFE), drawn with
    :func:`diffnotes.plotting.book_figure`."""
    import matplotlib.pyplot as plt

    from .plotting import book_figure

    results = results if results is not None else load_results("stored")
    summary, order = _series(results)
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    for i, k in enumerate(order):
        pts = sorted((sum(v["nfe"]) / len(v["nfe"]), sum(v["kd"]) / len(v["kd"]))
                     for v in summary[k]["by_nfe"].values())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls="-" if i < 10 else "--",
                label=k)
    if order:
        band = _band(summary, order, "kd")
        ax.axhline(sum(band) / len(band), color="0.5", ls=":", label="real vs real")
    ax.set(xscale="log", xlabel="NFE (measured)", ylabel="KD ×10³ (lower is better)")
    ax.legend(fontsize=10, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              frameon=False)
    fig.tight_layout()
    fig.tight_layout()
    return book_figure(fig)


def figure_quality_vs_training(results: dict[str, list[dict]] | None = None):
    """Kernel distance ×10³ at each row's default NFE against its training CPU seconds."""
    import matplotlib.pyplot as plt

    from .plotting import book_figure

    results = results if results is not None else load_results("stored")
    summary, order = _series(results)
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for k in order:
        s = summary[k]
        x, y = sum(s["train_s"]) / len(s["train_s"]), sum(s["kd"]) / len(s["kd"])
        ax.plot([x], [y], "o")
        ax.annotate(k, (x, y), fontsize=10, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="training CPU s", ylabel="KD ×10³ at default NFE")
    fig.tight_layout()
    return book_figure(fig)
