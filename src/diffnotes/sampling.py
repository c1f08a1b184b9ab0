"""Sampling from a denoiser: the one place to import schedules and solvers from.

Everything here works in the EDM coordinates with s(t) = 1: x = x0 + sigma n, and a model is a
*denoiser* ``D(x; sigma) ~ E[x0 | x]``. The score is ``(D - x) / sigma**2`` and the
probability-flow ODE in sigma-time is ``dx/dsigma = (x - D(x; sigma)) / sigma`` (Karras et al.
2022, eq. 4 with s = 1, sigma(t) = t). VP-trained networks enter through the preconditioning
wrappers of ``diffnotes.precond``, which already return ``D`` in these coordinates: x_VE =
x_VP / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar).

The samplers are stateless pure functions in the style of k-diffusion,
``sample_xxx(denoiser, x, sigmas, ...)``: ``x`` is the starting point at ``sigmas[0]`` (usually
``sigmas[0] * randn``), ``sigmas`` a strictly decreasing 1-D sequence that ends at 0, and the
return value the sample at sigma = 0. There is no scheduler object and no hidden step counter.

This module writes nothing itself; it gathers three modules under one name:

* :mod:`diffnotes.schedules`: the noise levels, ``sigma_schedule(kind, n, ...)`` for the kinds
  in ``SCHEDULES`` and ``ddpm_sigmas`` for DDPM's discrete timesteps;
* :mod:`diffnotes.solvers`: the solvers below, the registry ``SOLVERS`` and
  ``sample(denoiser, x, sigmas, solver=name)``, which runs one by name;
* :mod:`diffnotes.schedule_fitting`: schedules fitted to one model (``fit_schedule``,
  ``FitRule``), which the sampler benchmark compares with the general-purpose ones.

The solvers, in the order of ``SOLVERS`` (``tests/test_sampling_layout.py`` checks this list
against the registry):

* ``euler``: Euler's method on the PF-ODE; with DDPM's sigmas it is DDIM with eta = 0
  (:func:`sample_euler`).
* ``heun``: Heun's second-order method, EDM's Algorithm 1 (:func:`sample_heun`).
* ``edm_stochastic``: EDM's stochastic sampler, Algorithm 2 (:func:`sample_edm_stochastic`).
* ``dpmpp_2m``: DPM-Solver++(2M), Lu et al. 2022b (:func:`sample_dpmpp_2m`).
* ``dpmpp_3m``: a third-order multistep DPM-Solver++ (:func:`sample_dpmpp_3m`).
* ``ddim``: DDIM with any eta, Song et al. 2021 (:func:`sample_ddim`).
* ``euler_maruyama``: Euler-Maruyama on the reverse VE SDE, Score SDE
  (:func:`sample_euler_maruyama`).
* ``predictor_corrector``: Score SDE's predictor-corrector sampler
  (:func:`sample_predictor_corrector`).
* ``ancestral``: DDPM's ancestral step, Ho et al. 2020 (:func:`sample_ancestral`).
* ``annealed_langevin``: NCSN's annealed Langevin dynamics, Song & Ermon 2019
  (:func:`sample_annealed_langevin`).
* ``unipc``: UniPC's predictor with its corrector, Zhao et al. 2023 (:func:`sample_unipc`).
* ``deis``: DEIS's multistep exponential integrator "tAB", Zhang & Chen 2023
  (:func:`sample_deis`).

Used in the book by the chapters on SMLD (annealed Langevin), DDPM (ancestral), Score SDE
(Euler-Maruyama, predictor-corrector), DDIM, DPM-Solver++ (2M, 3M) and EDM (Heun, stochastic
sampler), and by ``benchmarks/bench_samplers.py``, which runs every deterministic solver,
UniPC and DEIS included.
"""

from __future__ import annotations

from . import schedule_fitting, schedules, solvers
from .schedule_fitting import (FIT_SOLVERS, RULE_FULL, CountingDenoiser, FitRule, fit_schedule, knot_sigmas,
                               optimize_sigmas, refine_sigmas, warped_sigmas)
from .schedules import DDPM_SPACINGS, SCHEDULES, ddpm_sigmas, sigma_schedule
from .solvers import (SOLVERS, posterior_variance, sample, sample_ancestral, sample_annealed_langevin, sample_ddim,
                      sample_deis, sample_dpmpp_2m, sample_dpmpp_3m, sample_edm_stochastic, sample_euler,
                      sample_euler_maruyama, sample_heun, sample_predictor_corrector, sample_unipc, to_d)
# re-exported for old imports; their home is the numeric bridge
from .theory.numeric import vp_sigma, vp_sigma_inv

# each part lists its own names once; this facade only gathers them
__all__ = [*schedules.__all__, "vp_sigma", "vp_sigma_inv", *solvers.__all__,
           *schedule_fitting.__all__]
