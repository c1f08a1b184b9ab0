"""Score matching in its three classic forms: exact, denoising and sliced.

* exact (implicit) score matching, {cite:t}`hyvarinen2005estimation` — chapter
  ``book/papers/hyvarinen2005estimation.md`` and ``notebooks/hyvarinen2005estimation.ipynb``;
* denoising score matching, {cite:t}`vincent2011connection` — ``vincent2011connection``;
* sliced score matching and its variance-reduced form, {cite:t}`song2019sliced` — ``song2019sliced``.

A *score model* here is any callable ``score(x) -> s`` mapping a batch ``x`` of shape (N, D) to
scores of the same shape (one noise level, no conditioning; the noise-conditional version is the
business of the later chapters). Every loss returns one number per sample, shape (N,), so a
training loop can average it and a test can compare its mean with a closed form.

All three estimate the same thing up to a constant that does not depend on the model: the Fisher
divergence ``1/2 E_p ||s(x) - grad log p(x)||^2`` (to the data for the exact and sliced forms, to
the data blurred by ``N(0, sigma^2 I)`` for the denoising form). ``tests/test_score_matching.py``
checks those constants on Gaussians, where every expectation is known in closed form.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from diffnotes.nets import MLP, ScoreNet
from diffnotes.parameterization import append_dims

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

PROJECTIONS = ("gaussian", "rademacher", "sphere")


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must be a batch of vectors with shape (N, D), got shape {tuple(x.shape)}")


def jacobian_trace(score: ScoreFn, x: torch.Tensor, create_graph: bool = True):
    """``(s(x), tr grad_x s(x))`` per sample, the trace computed exactly with D backward passes.

    This is the expensive part of exact score matching: row ``i`` of the Jacobian needs one
    vector-Jacobian product, so the cost grows linearly with the dimension D (the Hessian of
    ``log p`` when ``s = grad log p``). ``create_graph=True`` keeps the graph so that the trace
    itself can be differentiated with respect to the model's parameters during training.
    """
    _check_batch(x)
    x = x.detach().requires_grad_(True)
    s = score(x)
    if s.shape != x.shape:
        raise ValueError(f"score(x) must have the shape of x {tuple(x.shape)}, got {tuple(s.shape)}")
    trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
    for i in range(x.shape[1]):
        (row,) = torch.autograd.grad(s[:, i].sum(), x, retain_graph=True, create_graph=create_graph)
        trace = trace + row[:, i]
    return s, trace


def esm_loss(score: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    r"""Exact (implicit) score matching, per sample (Hyvärinen 2005, Theorem 1).

    .. math:: J(\theta) = \mathbb E_{p(x)}\Big[\operatorname{tr}\nabla_x s_\theta(x)
              + \tfrac12\lVert s_\theta(x)\rVert^2\Big]

    equals the Fisher divergence :math:`\tfrac12\mathbb E_p\lVert s_\theta - \nabla\log p\rVert^2`
    minus :math:`\tfrac12\mathbb E_p\lVert\nabla\log p\rVert^2` (integration by parts), so it needs
    samples of ``p`` but never its score. Cost: D backward passes (:func:`jacobian_trace`).
    """
    s, trace = jacobian_trace(score, x)
    return trace + 0.5 * s.pow(2).sum(dim=1)


def dsm_loss(
    score: ScoreFn,
    x0: torch.Tensor,
    sigma: float | torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching with Gaussian noise, per sample (Vincent 2011, eq. for J_DSM).

    With :math:`\tilde x = x_0 + \sigma n`, :math:`n\sim\mathcal N(0, I)`, the kernel's score is
    :math:`\nabla_{\tilde x}\log q_\sigma(\tilde x\mid x_0) = (x_0-\tilde x)/\sigma^2 = -n/\sigma`, and

    .. math:: J_\mathrm{DSM}(\theta) = \tfrac12\,\mathbb E\,\big\lVert s_\theta(\tilde x) + n/\sigma\big\rVert^2 ,

    which equals the Fisher divergence to the blurred density :math:`q_\sigma = p * \mathcal N(0,
    \sigma^2 I)` plus a constant, so its optimum is :math:`\nabla\log q_\sigma`, not
    :math:`\nabla\log p` (the gap closes as sigma -> 0, at the price of a target whose variance grows
    like 1/sigma^2). One forward and one backward pass, whatever D.
    """
    _check_batch(x0)
    sigma = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device)
    if bool((sigma <= 0).any()):
        raise ValueError(f"sigma must be positive, got {sigma.tolist()}")
    sigma = append_dims(sigma, x0)
    if noise is None:
        gen_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, dtype=x0.dtype, device=gen_device, generator=generator).to(x0.device)
    x_tilde = x0 + sigma * noise
    return 0.5 * (score(x_tilde) + noise / sigma).pow(2).sum(dim=1)


def random_projections(
    n: int, dim: int, n_projections: int = 1, kind: str = "gaussian", *, dtype=torch.float32,
    device=None, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projection vectors ``v`` of shape (M, N, D) with ``E[v v^T] = I`` (what sliced SM needs)."""
    if kind not in PROJECTIONS:
        raise ValueError(f"unknown projection kind {kind!r}; valid kinds: {', '.join(PROJECTIONS)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    gen_device = generator.device if generator is not None else device
    v = torch.randn(n_projections, n, dim, dtype=dtype, device=gen_device, generator=generator).to(device)
    if kind == "rademacher":
        v = v.sign()
    elif kind == "sphere":  # uniform on the sphere of radius sqrt(D), so that E[v v^T] = I
        v = v / v.norm(dim=-1, keepdim=True) * dim**0.5
    return v


def ssm_loss(
    score: ScoreFn,
    x: torch.Tensor,
    n_projections: int = 1,
    variance_reduction: bool = False,
    projection: str = "gaussian",
    generator: torch.Generator | None = None,
    v: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Sliced score matching, per sample (Song et al. 2019; "SSM" and its variance-reduced "SSM-VR").

    For random directions ``v`` with :math:`\mathbb E[vv^\top]=I`,

    .. math:: J_\mathrm{SSM}(\theta) = \mathbb E_{p(x)}\mathbb E_{v}\Big[v^\top\nabla_x s_\theta(x)\,v
              + \tfrac12\big(v^\top s_\theta(x)\big)^2\Big],

    and since :math:`\mathbb E_v[(v^\top s)^2] = \lVert s\rVert^2` the second term may be replaced
    by its mean :math:`\tfrac12\lVert s\rVert^2` (``variance_reduction=True``, "SSM-VR"); that
    step needs only :math:`\mathbb E[vv^\top]=I`, which holds for all three ``projection`` kinds.
    The authors' released code (ermongroup/sliced_score_matching, ``losses/sliced_sm.py``) draws
    Rademacher directions by default in the one-projection losses its DKEF and NICE runs call
    (the NICE configs set ``noise_type: "radermacher"``), Gaussian ones in its multi-projection
    SSM-VR, and Gaussian draws scaled to unit length in its multi-projection plain SSM, where
    :math:`\mathbb E[vv^\top]=I/D` and the objective is the exact one divided by D (same
    minimiser). Both forms here are unbiased for the exact objective :func:`esm_loss`. The
    quadratic form needs one extra backward pass per projection, using
    :math:`v^\top\nabla_x s\,v = v\cdot\nabla_x(s\cdot v)`.
    """
    _check_batch(x)
    n, dim = x.shape
    if v is None:
        v = random_projections(n, dim, n_projections, projection, dtype=x.dtype, device=x.device,
                               generator=generator)
    if v.ndim != 3 or v.shape[1:] != x.shape:
        raise ValueError(f"v must have shape (M, {n}, {dim}), got {tuple(v.shape)}")
    m = v.shape[0]
    # Each sample is repeated once per projection, so one backward pass serves all M of them
    # (this assumes the model treats samples independently, as an MLP does; not BatchNorm).
    x_rep = x.detach().repeat(m, 1).requires_grad_(True)  # (M*N, D)
    s = score(x_rep)
    if s.shape != x_rep.shape:
        raise ValueError(f"score(x) must have the shape of x {tuple(x_rep.shape)}, got {tuple(s.shape)}")
    v = v.reshape(m * n, dim)
    sv = (s * v).sum(dim=-1)  # v^T s
    # v . grad_x (s . v) = v^T (grad_x s) v: a Hessian-vector product, one extra backward pass.
    (grad_sv,) = torch.autograd.grad(sv.sum(), x_rep, create_graph=True)
    quad = (grad_sv * v).sum(dim=-1)
    second = 0.5 * s.pow(2).sum(dim=-1) if variance_reduction else 0.5 * sv.pow(2)
    return (quad + second).reshape(m, n).mean(dim=0)


# -- loss objects for a training loop: loss_fn(model, x0, class_labels=None) -> (N,) ------------
# The random losses draw their noise / projections from their own generator when given ``seed``:
# a loss must never share a random stream with the data it is fed (if both draw normals from
# generators seeded alike, the "noise" equals the data and DSM learns to read it off).


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(int(seed))


class ExactSMLoss:
    """:func:`esm_loss` in the training-loop signature ``loss_fn(model, x0, class_labels=None)``."""

    def __call__(self, model, x0, class_labels=None):
        return esm_loss(model, x0)


class DSMLoss:
    """:func:`dsm_loss` at one fixed noise level ``sigma`` (a single-level score model)."""

    def __init__(self, sigma: float, seed: int | None = None):
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.generator = _generator(seed)

    def __call__(self, model, x0, class_labels=None):
        return dsm_loss(model, x0, self.sigma, generator=self.generator)


class SlicedSMLoss:
    """:func:`ssm_loss`; ``variance_reduction=True`` gives SSM-VR."""

    def __init__(self, n_projections: int = 1, variance_reduction: bool = False, projection: str = "gaussian",
                 seed: int | None = None):
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection kind {projection!r}; valid kinds: {', '.join(PROJECTIONS)}")
        self.n_projections = int(n_projections)
        self.variance_reduction = bool(variance_reduction)
        self.projection = projection
        self.generator = _generator(seed)

    def __call__(self, model, x0, class_labels=None):
        return ssm_loss(model, x0, self.n_projections, self.variance_reduction, self.projection,
                        generator=self.generator)


LOSSES = {"esm": ExactSMLoss, "dsm": DSMLoss, "ssm": SlicedSMLoss}


# -- a score network and the measure of its error --------------------------------------------


def score_mlp(dim: int, hidden: int = 128, depth: int = 2) -> ScoreNet:
    """``nets.ScoreNet`` around ``nets.MLP`` (residual SiLU MLP), the notebooks' score model."""
    return ScoreNet(MLP(dim=dim, hidden=hidden, depth=depth))


def relative_score_error(score: ScoreFn, true_score: ScoreFn, x: torch.Tensor) -> float:
    """``sqrt(E||s - s*||^2 / E||s*||^2)`` on the points ``x`` (the notebooks' accuracy measure)."""
    with torch.no_grad():
        s = score(x.to(torch.get_default_dtype())).double()
        s_true = true_score(x).double()
    return float(((s - s_true).pow(2).sum(1).mean() / s_true.pow(2).sum(1).mean()).sqrt())


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_per_step(model: nn.Module, loss_fn, x: torch.Tensor, repeats: int = 5,
                  clock: str = "wall") -> float:
    """Median seconds of one loss + backward pass on the batch ``x`` (after one warm-up step).

    ``clock="cpu"`` counts this process's CPU time instead of wall time: on a shared machine the
    time spent waiting for a core then does not count (with one torch thread it is the compute).
    """
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; valid: {', '.join(CLOCKS)}")
    now = CLOCKS[clock]
    times = []
    for i in range(repeats + 1):
        start = now()
        loss = loss_fn(model, x).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(now() - start)
    times.sort()
    return times[len(times) // 2]
