"""The ``k-diffusion`` package as a second peer: its samplers and sigma functions.

``k_diffusion/__init__.py`` imports the package's training code (CLIP, torchvision, wandb, ...);
its sampling module needs none of that. :func:`load_sampling` imports the installed
``k_diffusion/sampling.py`` and ``k_diffusion/utils.py`` as they are (no copy of their code),
under a private package name, without running ``__init__``; ``utils.py`` imports torchvision at
the top for image helpers that sampling never calls, so when torchvision is absent a stub stands
in for it while ``utils.py`` is executed, and is removed again. Install:
``pip install --no-deps -r requirements-bench.txt -c constraints.txt`` (k-diffusion,
torchdiffeq, torchsde, trampoline). A full ``pip install k-diffusion`` would pull torchvision,
clip-anytorch (which needs ``setuptools<81`` for ``pkg_resources``) and a newer torch.

Every sampler is driven with the benchmark's denoiser D(x; sigma) as k-diffusion's model
(``model(x, sigma) -> denoised``), on continuous noise levels (no quantisation to the training
table, as for diffusers). Deterministic samplers only: the SDE and ancestral ones run with
``eta = 0`` and a zero noise sampler. Samplers that stop at sigma_min (``sample_dpm_fast``,
``sample_dpm_adaptive``) return a state with noise of size sigma_0 left in it; the benchmark
finishes them with the model's denoising step D(x; sigma_0), as its reference does, and counts
that call.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

PACKAGE = "_kdiffusion_bench"


def load_sampling():
    """``k_diffusion.sampling`` without the package's ``__init__``; None when not installed."""
    if f"{PACKAGE}.sampling" in sys.modules:
        return sys.modules[f"{PACKAGE}.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder)]
    sys.modules[PACKAGE] = package
    stubs = []
    if importlib.util.find_spec("torchvision") is None:  # utils.py imports it for image helpers only
        for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
            sys.modules[name] = types.ModuleType(name)
            stubs.append(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
    try:
        for sub in ("utils", "sampling"):
            s = importlib.util.spec_from_file_location(f"{PACKAGE}.{sub}", folder / f"{sub}.py")
            module = importlib.util.module_from_spec(s)
            sys.modules[s.name] = module
            s.loader.exec_module(module)
            setattr(package, sub, module)
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return sys.modules[f"{PACKAGE}.sampling"]


def version() -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v("k-diffusion")
    except PackageNotFoundError:
        return None


def _zero_noise(sigma, sigma_next):
    return 0.0


# name: (function, options); every one takes a sigma sequence ending at 0
SAMPLERS = {
    "Euler": ("sample_euler", {}),
    "Heun": ("sample_heun", {}),
    "DPM2": ("sample_dpm_2", {}),
    "LMS (order 4)": ("sample_lms", {}),
    "DPM++ 2M": ("sample_dpmpp_2m", {}),
    "DPM++ 2M SDE (eta=0, midpoint)": ("sample_dpmpp_2m_sde", dict(eta=0.0, noise_sampler=_zero_noise)),
    "DPM++ 2M SDE (eta=0, heun)": ("sample_dpmpp_2m_sde", dict(eta=0.0, noise_sampler=_zero_noise,
                                                                 solver_type="heun")),
    "DPM++ 3M SDE (eta=0)": ("sample_dpmpp_3m_sde", dict(eta=0.0, noise_sampler=_zero_noise)),
    "DPM++ 2S ancestral (eta=0)": ("sample_dpmpp_2s_ancestral", dict(eta=0.0, noise_sampler=_zero_noise)),
    "DPM++ SDE (eta=0)": ("sample_dpmpp_sde", dict(eta=0.0, noise_sampler=_zero_noise)),
}
ONE_CALL_PER_LEVEL = ("Euler", "LMS (order 4)", "DPM++ 2M", "DPM++ 2M SDE (eta=0, midpoint)",
                      "DPM++ 2M SDE (eta=0, heun)", "DPM++ 3M SDE (eta=0)")  # these can run any n levels at NFE n


def sigma_functions(K, n: int, sigma_min: float, sigma_max: float):
    """k-diffusion's sigma functions over the model's range (n levels, then 0). ``get_sigmas_vp``
    is left out: its continuous VP parameters (beta_d = 19.9, beta_min = 0.1) give a largest
    level of about 152, not the DDPM table's sigma_999, so it does not start where the others do."""
    yield "Karras rho=7", K.get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0)
    yield "exponential", K.get_sigmas_exponential(n, sigma_min, sigma_max)
    yield "polyexponential rho=2", K.get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=2.0)


class Counter:
    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        return self.denoiser(x, sigma)


@torch.no_grad()
def run_sampler(K, name: str, denoiser, x: torch.Tensor, sigmas: torch.Tensor):
    """(final sample, NFE) of sampler ``name`` on ``sigmas`` (a sequence ending at 0)."""
    fn, options = SAMPLERS[name]
    model = Counter(denoiser)
    out = getattr(K, fn)(model, x.clone(), torch.as_tensor(sigmas, dtype=torch.float64), disable=True, **options)
    return out, model.calls


@torch.no_grad()
def run_dpm_fast(K, denoiser, x: torch.Tensor, nfe: int, sigma_min: float, sigma_max: float):
    """DPM-Solver-fast with ``nfe - 1`` calls to sigma_min, then D(x; sigma_min): ``nfe`` calls."""
    model = Counter(denoiser)
    out = K.sample_dpm_fast(model, x.clone(), sigma_min, sigma_max, nfe - 1, disable=True)
    out = model(out, torch.tensor(sigma_min, dtype=torch.float64))
    return out, model.calls


@torch.no_grad()
def run_dpm_adaptive(K, denoiser, x: torch.Tensor, budget: int, sigma_min: float, sigma_max: float, order: int):
    """DPM-Solver-12/23 with step-size control, at matched NFE: the tightest tolerance of a grid
    (rtol = atol = 10^-1 ... 10^-6 in half decades) whose run, plus the finishing D(x; sigma_min),
    stays within ``budget`` calls. Returns (sample, NFE, rtol) or None when none fits."""
    best = None
    for k in range(2, 13):
        tol = 10 ** (-k / 2)
        model = Counter(denoiser)
        out = K.sample_dpm_adaptive(model, x.clone(), sigma_min, sigma_max, order=order, rtol=tol, atol=tol,
                                    disable=True)
        if model.calls + 1 > budget:
            break
        best = (model(out, torch.tensor(sigma_min, dtype=torch.float64)), model.calls, tol)
    return best
