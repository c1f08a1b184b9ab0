"""CCDF (Chung, Sim & Ye 2022, "Come-Closer-Diffuse-Faster"): start the reverse chain from a
forward-diffused initial estimate instead of pure noise.

Given a measurement and a cheap initial estimate x_hat of the clean image (the bicubic
up-sampling of a low-resolution image, the observed pixels of an image with a hole, the noisy
image itself), CCDF

1. diffuses the estimate forward to an intermediate level in one jump,
   x_{sigma_0} = x_hat + sigma_0 n (in the book's sigma coordinates; the paper's t_0 = N'/N is
   the fraction of an N-level chain that remains, sigma_0 = sigma_{N - N'});
2. runs only the last N' reverse steps of the chain from there, each followed by a
   non-expansive data-consistency map (here a projection: ILVR's low-frequency replacement for
   super-resolution, the mask's replacement of the observed pixels for inpainting; none for
   denoising, where the measurement already *is* a sample at level sigma_y).

The paper's Theorem 1 explains why a few steps suffice: the reverse steps with a non-expansive
consistency map contract the distance between two chains, so the error of the estimate shrinks
by a factor at each step (``ccdf_contraction`` in ``diffnotes.theory.proofs.inverse_proofs``
checks the Gaussian case exactly). :func:`coupled_distances` measures that contraction on a
trained model: two chains from two estimates, driven by the same noise.
"""

from __future__ import annotations

import math

import torch

from .. import degradations
from ..sampling import sample, sigma_schedule
from .ilvr import ProjectionRefine

__all__ = ["TASKS", "truncated_sigmas", "ccdf_start", "ccdf_sample", "make_task",
           "InverseTask", "smooth_fill", "coupled_distances"]

TASKS = ("denoise", "sr", "inpaint")


def truncated_sigmas(n_total: int, n_steps: int, sigma_min: float | None = None,
                     sigma_max: float | None = None) -> torch.Tensor:
    """The last ``n_steps`` levels (then 0) of EDM's ``n_total``-level chain: CCDF's N' of N
    (t_0 = n_steps / n_total). ``n_steps == n_total`` is the whole chain, from pure noise."""
    if not (isinstance(n_steps, int) and isinstance(n_total, int) and 1 <= n_steps <= n_total):
        raise ValueError(f"need integers 1 <= n_steps <= n_total, got n_steps={n_steps!r}, "
                         f"n_total={n_total!r}")
    sigmas = sigma_schedule("karras", n_total, sigma_min, sigma_max)
    return sigmas[n_total - n_steps:]


def ccdf_start(estimate: torch.Tensor, sigma0: float, generator=None,
               sigma_estimate: float = 0.0) -> torch.Tensor:
    """The forward jump: ``estimate`` (already carrying noise of level ``sigma_estimate``, e.g.
    a noisy measurement) diffused to level ``sigma0`` by adding the missing variance."""
    extra = sigma0**2 - sigma_estimate**2  # a schedule's rounding may leave -1e-17: that is 0
    if not (sigma_estimate >= 0 and extra >= -1e-9 * sigma_estimate**2):
        raise ValueError(f"need sigma0 >= sigma_estimate >= 0, got sigma0={sigma0!r}, "
                         f"sigma_estimate={sigma_estimate!r}")
    return degradations.add_noise(estimate, math.sqrt(max(extra, 0.0)), generator)


def ccdf_sample(denoiser, estimate: torch.Tensor, sigmas, *, refine=None, sigma_estimate=0.0,
                generator=None, callback=None) -> torch.Tensor:
    """CCDF: jump ``estimate`` to ``sigmas[0]``, then ancestral steps down to 0, each followed by
    ``refine`` (data consistency; None for none). ``sigmas[0]`` large (80) is the pure-noise
    start: the estimate is then swamped by the noise."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    x = ccdf_start(estimate, float(sigmas[0]), generator, sigma_estimate)
    return sample(denoiser, x, sigmas, "ancestral", refine=refine, generator=generator,
                  callback=callback)


def smooth_fill(measurement: torch.Tensor, mask: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """Inpainting's cheap estimate: start the missing pixels at the observed mean, then replace
    them ``iterations`` times by a Gaussian blur (1 pixel) of the current image, keeping the
    observed ones: a discrete heat-equation fill from the hole's border."""
    fill = measurement.sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True)
    z = measurement + (1 - mask) * fill
    for _ in range(iterations):
        z = measurement + (1 - mask) * degradations.gaussian_blur(z, 1.0)
    return z


class InverseTask:
    """One inverse problem on a batch of clean images ``x``: the measurement, the initial
    estimate, and the data-consistency map (a fresh :class:`ProjectionRefine` per run)."""

    def __init__(self, name: str, x: torch.Tensor, generator: torch.Generator, *,
                 noise_std: float = 0.5, factor: int = 4, box: int | None = None):
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
        self.name, self.x, self.factor = name, x, factor
        self.sigma_estimate = 0.0
        if name == "denoise":  # y = x + sigma_y n: itself a sample at level sigma_y
            self.measurement = degradations.add_noise(x, noise_std, generator)
            self.estimate, self.sigma_estimate = self.measurement, float(noise_std)
            self.project, self.reference = None, None
        elif name == "sr":  # y = box down-sampling by factor (A = mean over each block)
            self.measurement = degradations.block_downsample(x, factor)
            self.estimate = degradations.upsample(self.measurement, factor)  # bicubic
            self.reference = degradations.block_upsample(self.measurement, factor)
            self.project = lambda z: degradations.block_lowpass(z, factor)
        else:  # inpaint: a missing central box, filled smoothly from its border
            side = box or x.shape[-1] // 2
            self.mask = degradations.box_mask(x.shape, side, side).to(x.dtype)
            self.measurement = self.mask * x
            self.estimate = smooth_fill(self.measurement, self.mask)
            self.reference = self.measurement
            self.project = lambda z: self.mask * z

    def refine(self, generator=None):
        """The data-consistency map for one run (None for denoising)."""
        if self.project is None:
            return None
        return ProjectionRefine(self.project, self.reference, 0.0, generator)

    def run(self, denoiser, sigmas, seed: int, estimate: torch.Tensor | None = None,
            callback=None) -> torch.Tensor:
        """CCDF from ``estimate`` (default: the task's) along ``sigmas``; all noise from ``seed``."""
        g = torch.Generator().manual_seed(seed)
        start = self.estimate if estimate is None else estimate
        return ccdf_sample(denoiser, start, sigmas, refine=self.refine(g),
                           sigma_estimate=self.sigma_estimate, generator=g, callback=callback)


def make_task(name: str, x: torch.Tensor, seed: int, **options) -> InverseTask:
    """:class:`InverseTask` with its measurement noise / mask drawn from ``seed``."""
    return InverseTask(name, x, torch.Generator().manual_seed(seed), **options)


def coupled_distances(task: InverseTask, denoiser, sigmas, estimate_b: torch.Tensor,
                      seed: int) -> torch.Tensor:
    """Synchronous coupling: CCDF from the task's estimate and from ``estimate_b`` with the same
    noise draws. Returns the per-image RMS distance (per pixel) between the two chains at each
    level of ``sigmas`` (after the forward jump and after each step): shape (levels, N)."""
    states = {"a": [], "b": []}

    def keep(which):
        return lambda info: states[which].append(info["x"].detach().clone())

    end_a = task.run(denoiser, sigmas, seed, callback=keep("a"))
    end_b = task.run(denoiser, sigmas, seed, estimate=estimate_b, callback=keep("b"))
    xs_a, xs_b = states["a"] + [end_a], states["b"] + [end_b]
    return torch.stack([(a - b).flatten(1).pow(2).mean(dim=1).sqrt()
                        for a, b in zip(xs_a, xs_b)])
