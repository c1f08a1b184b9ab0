"""Lossy compression with Gaussian diffusion (Theis et al. 2022), and a transform-coding baseline.

A sender who knows the image ``x0`` walks the forward chain backwards: ``x_T`` from
``q(x_T | x0)``, then each ``x_{t-1}`` from the posterior ``q(x_{t-1} | x_t, x0)``. The receiver
holds the trained model, so it knows ``p(x_T) = N(0, I)`` and ``p(x_{t-1} | x_t)``. Every step
is one channel-simulation problem (``diffnotes.coding``): send a sample of a Gaussian to a
receiver who holds another Gaussian, at about their KL in bits. Stopping after the message that
gives ``x_s`` costs ``L_T + sum_{t>s} L_{t-1}`` (proof ``diffusion_compression_rate``), and the
receiver reconstructs ``x0`` as the denoiser's guess ``D(x_s; sigma_s)``.

* :func:`mlp_digits_denoiser` — a flattened-MLP denoiser for 8x8 digits (EDM preconditioning).
* :func:`step_gaussians` — the two Gaussians of step t (posterior and model), DDPM coordinates.
* :func:`plan_groups` — the coding plan both sides agree on before any image is sent: at each
  step, coordinates grouped so that each group carries about ``target_bits`` of KL on average
  (from training images); each group is one channel-simulation message.
* :func:`compress` — the compressor for a batch: ideal rates (the KLs), optionally the coded
  rates from actual messages, and the reconstruction at each stopping step.
* :func:`dct_codec` — the baseline: 2-D DCT, uniform quantisation, and the rate of an adaptive
  per-coefficient code fitted on training images.

Used in the book by ``book/papers/theis2022lossy.md`` and its notebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffnotes import coding
from diffnotes import constants as K
from diffnotes.chain import DiscreteSchedule, gaussian_kl
from diffnotes.nets import FlatMLP
from diffnotes.precond import EDMPrecond

__all__ = ["mlp_digits_denoiser", "step_gaussians", "plan_groups", "group_budgets",
           "Compressed",
           "compress", "dct_codec", "LN2"]

LN2 = math.log(2.0)
ESCAPE_BITS = 64
"""What a coordinate that no channel simulation can afford costs: its value as a float64."""


def mlp_digits_denoiser(hidden: int = 256, depth: int = 3) -> EDMPrecond:
    """D(x; sigma) for 8x8 digits: EDM preconditioning around a flattened MLP (``nets.FlatMLP``)."""
    return EDMPrecond(FlatMLP(64, hidden, depth), sigma_data=K.EDM_SIGMA_DATA)


def _check_step(t: int, schedule: DiscreteSchedule) -> int:
    if isinstance(t, bool) or int(t) != t or not 1 <= t <= schedule.T:
        raise ValueError(f"step t must be an integer in 1..{schedule.T}, got {t!r}")
    return int(t)


@torch.no_grad()
def denoise_at(denoiser, schedule: DiscreteSchedule, x_t: torch.Tensor, t: int) -> torch.Tensor:
    """``D(x_t / sqrt(abar_t); sigma_t)``: the denoiser's guess of x0 from the chain's x_t
    (the chain's change of coordinates ``DiscreteSchedule.to_edm``)."""
    x, sigma = schedule.to_edm(x_t, _check_step(t, schedule))
    return denoiser(x.float(), torch.tensor(sigma)).double()


@torch.no_grad()
def step_gaussians(denoiser, schedule: DiscreteSchedule, x0: torch.Tensor, x_t: torch.Tensor,
                   t: int):
    """``(mean_q, mean_p, var)`` of step t >= 2: q(x_{t-1} | x_t, x0) and the model's
    p(x_{t-1} | x_t) = q(x_{t-1} | x_t, D(x_t)), both with variance beta_tilde_t (DDPM eq. 7)."""
    t = _check_step(t, schedule)
    if t < 2:
        raise ValueError("step 1 is the decoder; the coded chain stops at x_1")
    steps = torch.full((x0.shape[0],), t, dtype=torch.long)
    x0_hat = denoise_at(denoiser, schedule, x_t, t)
    mean_q, var = schedule.posterior(steps, x0.double(), x_t)
    mean_p, _ = schedule.posterior(steps, x0_hat, x_t)
    return mean_q, mean_p, var


def _prior_gaussians(schedule: DiscreteSchedule, x0: torch.Tensor):
    """(mean_q, mean_p, var_q, var_p): q(x_T | x0) = N(sqrt(abar_T) x0, 1 - abar_T) against
    p(x_T) = N(0, I)."""
    ab = float(schedule.alpha_bar[-1])
    x0 = x0.double()
    return math.sqrt(ab) * x0, torch.zeros_like(x0), torch.full_like(x0, 1 - ab), torch.ones_like(x0)


def plan_groups(kl_bits_per_dim: torch.Tensor, target_bits: float) -> list[list[torch.Tensor]]:
    """Per message (row of ``kl_bits_per_dim``, shape (messages, D): the *expected* KL of each
    coordinate, from training images), a list of index groups: coordinates sorted by expected
    KL and cut greedily into groups of about ``target_bits`` each (the rest joins the last
    group). Both sides compute it before any image is sent."""
    kl = torch.as_tensor(kl_bits_per_dim, dtype=torch.float64)
    if kl.ndim != 2 or not bool(torch.isfinite(kl).all()) or bool((kl < 0).any()):
        raise ValueError("kl_bits_per_dim must be a finite, non-negative (messages, D) array")
    if not (math.isfinite(target_bits) and target_bits > 0):
        raise ValueError(f"target_bits must be a positive number, got {target_bits!r}")
    plan = []
    for row in kl:
        order = torch.argsort(row, descending=True, stable=True)
        groups, current, acc = [], [], 0.0
        for i in order.tolist():
            current.append(i)
            acc += float(row[i])
            if acc >= target_bits:
                groups.append(current)
                current, acc = [], 0.0
        if current:
            if groups:
                groups[-1].extend(current)
            else:
                groups.append(current)
        plan.append([torch.tensor(g, dtype=torch.long) for g in groups])
    return plan


def group_budgets(kl_bits_per_dim: torch.Tensor, plan, extra_bits: float = 2.0,
                  max_log2: int = 20) -> list[list[int]]:
    """Fixed message lengths for minimal random coding, agreed in advance: each group of
    ``plan`` gets ``ceil(expected KL + extra_bits)`` bits (at most ``max_log2``), i.e. that
    many candidates as a power of two and an index of exactly that length, with no header.
    An image whose group carries more KL than planned gets a biased sample instead of a
    longer message (Havasi et al.'s fixed C_loc)."""
    kl = torch.as_tensor(kl_bits_per_dim, dtype=torch.float64)
    if len(plan) != kl.shape[0]:
        raise ValueError(f"plan has {len(plan)} messages but kl_bits_per_dim {kl.shape[0]}")
    return [[min(max_log2, max(0, math.ceil(float(kl[k, idx].sum()) + extra_bits - 1e-9)))
             for idx in groups] for k, groups in enumerate(plan)]


def _message_seed(seed: int, image: int, message: int, group: int) -> int:
    """The shared seed of one group's message (both sides derive it the same way)."""
    return int(np.random.SeedSequence([seed, image, message, group]).generate_state(1)[0])


def _code_group(mq, mp, std, seed, method, extra_bits, max_log2):
    """One group: (sample, bits, searched). A group whose KL would need more than 2^max_log2
    candidates is split in halves, each coded on its own; one flag bit per group tells the
    receiver whether it was split (so the receiver needs no knowledge of the KL). A single
    coordinate that is still too costly escapes: the sender draws it exactly and sends the
    64-bit float (``ESCAPE_BITS``); a trained model rarely needs it, an untrained one often."""
    kl = coding.kl_bits(mq, std, mp, std)
    if math.ceil(kl + extra_bits) > max_log2 and mq.numel() == 1:
        g = torch.Generator().manual_seed(seed % (1 << 63))
        sample = mq + std * torch.randn(1, generator=g, dtype=torch.float64)
        return sample, 1 + ESCAPE_BITS, 0
    if math.ceil(kl + extra_bits) > max_log2 and mq.numel() > 1:
        half = mq.numel() // 2
        parts = [_code_group(mq[sl], mp[sl], std[sl], _message_seed(seed, k, 0, 0), method,
                             extra_bits, max_log2)
                 for k, sl in enumerate((slice(0, half), slice(half, None)))]
        return (torch.cat([p[0] for p in parts]), 1 + sum(p[1] for p in parts),
                sum(p[2] for p in parts))
    coded = coding.simulate_gaussian(mq, std, mp, std, seed, method=method,
                                     extra_bits=extra_bits, max_log2_candidates=max_log2)
    return coded.sample, 1 + coded.bits, coded.searched


@dataclass
class Compressed:
    """What :func:`compress` measured for a batch of N images.

    ``message_kl`` (N, T): KL in bits of each message, column 0 for x_T, column k for
    x_{T-k} (the message of step T - k + 1). ``message_bits`` (N, T) the coded lengths (``None``
    for the ideal compressor, whose rate is the KL). ``stops`` the steps s at which the receiver
    reconstructs; ``kl_rate`` / ``coded_rate`` (N, len(stops)) the cumulative bits up to x_s;
    ``reconstructions`` (len(stops), N, ...) the receiver's D(x_s; sigma_s);
    ``kl_per_dim`` (T, D) each message's KL per coordinate in bits, averaged over the batch
    (what :func:`plan_groups` needs, measured on training images).
    """

    stops: list[int]
    message_kl: torch.Tensor
    message_bits: torch.Tensor | None
    kl_rate: torch.Tensor
    coded_rate: torch.Tensor | None
    reconstructions: torch.Tensor
    kl_per_dim: torch.Tensor
    searched: int = 0


@torch.no_grad()
def _check_coder_args(method, plan, budgets, T: int) -> None:
    """One clear line for a method, plan or budgets that :func:`compress` cannot use."""
    if method is not None and method not in coding.METHODS:
        raise ValueError(f"unknown method {method!r}; valid: None (ideal), "
                         f"{', '.join(coding.METHODS)}")
    if method is not None and (plan is None or len(plan) != T):
        raise ValueError(f"a coded run needs a plan with one list of groups per message ({T})")
    if budgets is not None and (method != "mrc" or len(budgets) != T
                                or any(len(b) != len(g) for b, g in zip(budgets, plan))):
        raise ValueError("budgets go with method='mrc' and need one length per group of the plan")


def compress(denoiser, x0: torch.Tensor, schedule: DiscreteSchedule, stops, *,
             method: str | None = None, plan=None, budgets=None, seed: int = 0,
             extra_bits: float = 2.0,
             max_log2_candidates: int = 20, generator: torch.Generator | None = None
             ) -> Compressed:
    """Send each image of ``x0`` through the diffusion compressor and reconstruct at ``stops``.

    ``method=None``: the ideal compressor, each x_{t-1} drawn exactly from the posterior with
    ``generator``, its cost the KL. ``method`` in ``coding.METHODS`` ("pfr", "mrc", or the
    broken control "prior"): every message is coded with that channel simulator group by group
    (``plan`` from :func:`plan_groups`, one list of groups per message, required), and the
    receiver's decoded sample is what the chain continues from. ``budgets`` (from
    :func:`group_budgets`, with ``method="mrc"`` only) fixes every group's message length in
    advance: exactly that many bits per group, no flag, no header.
    """
    T = schedule.T
    stops = [_check_step(s, schedule) for s in stops]
    _check_coder_args(method, plan, budgets, T)

    def code(k, g, mq, sq, mp, sp, group_seed):
        """(sample, bits, searched) of group g of message k."""
        if budgets is None:
            if k == 0:  # x_T: q is narrower than p, the coders need no split
                c = coding.simulate_gaussian(mq, sq, mp, sp, group_seed, method=method,
                                             extra_bits=extra_bits,
                                             max_log2_candidates=max_log2_candidates)
                return c.sample, 1 + c.bits, c.searched
            return _code_group(mq, mp, sq, group_seed, method, extra_bits, max_log2_candidates)
        m = budgets[k][g]
        c = coding.simulate_gaussian(mq, sq, mp, sp, group_seed, method="mrc",
                                     log2_candidates=m, max_log2_candidates=max(1, m))
        return c.sample, c.bits, c.searched
    n = x0.shape[0]
    flat0 = x0.reshape(n, -1).double()
    kl_msgs = torch.zeros(n, T, dtype=torch.float64)
    kl_dims = torch.zeros(T, flat0.shape[1], dtype=torch.float64)
    bits_msgs = torch.zeros(n, T, dtype=torch.float64) if method else None
    recon = torch.zeros(len(stops), *x0.shape, dtype=torch.float64)
    searched = 0

    def send(k, mean_q, mean_p, var_q, var_p):
        """Message k for every image: returns the receiver's sample, flat (n, D)."""
        nonlocal searched
        kl = gaussian_kl(mean_q, var_q, mean_p, var_p) / LN2
        kl_msgs[:, k], kl_dims[k] = kl.sum(1), kl.mean(0)
        if method is None:
            noise = torch.randn(mean_q.shape, generator=generator, dtype=torch.float64)
            return mean_q + var_q.sqrt() * noise
        out = torch.empty_like(mean_q)
        for i in range(n):
            for g, idx in enumerate(plan[k]):
                sample, bits, count = code(
                    k, g, mean_q[i, idx], var_q[i, idx].sqrt(), mean_p[i, idx],
                    var_p[i, idx].sqrt(), _message_seed(seed, i, k, g))
                out[i, idx] = sample
                bits_msgs[i, k] += bits
                searched += count
        return out

    # message 0: x_T against N(0, I); its q is narrower than p (1 - abar_T < 1)
    x_t = send(0, *(v.reshape(n, -1) for v in _prior_gaussians(schedule, x0)))
    for k, t in enumerate(range(T, 0, -1)):
        if t in stops:
            recon[stops.index(t)] = denoise_at(denoiser, schedule, x_t.reshape(x0.shape), t)
        if t == 1:
            break
        mean_q, mean_p, var = step_gaussians(denoiser, schedule, flat0.reshape(x0.shape),
                                             x_t.reshape(x0.shape), t)
        var = var.reshape(n, -1).expand(n, flat0.shape[1])
        x_t = send(k + 1, mean_q.reshape(n, -1), mean_p.reshape(n, -1), var, var)
    # cumulative rate up to the message that delivers x_s: messages 0 .. T - s
    kl_cum = kl_msgs.cumsum(1)
    cols = torch.tensor([T - s for s in stops])
    coded_rate = bits_msgs.cumsum(1)[:, cols] if method else None
    return Compressed(stops, kl_msgs, bits_msgs, kl_cum[:, cols], coded_rate, recon, kl_dims,
                      searched)


# ------------------------------------------------------------------------------ the baseline
def _dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix (rows are the basis vectors)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def dct_codec(train: torch.Tensor, test: torch.Tensor, step: float, *,
              pseudo_count: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """JPEG's recipe without its tables: 2-D DCT of each (square) image, uniform quantisation
    with bin width ``step``, and a static code per coefficient position whose probabilities are
    the training images' histogram of quantised values (``pseudo_count`` added to every value
    between the training minimum - 1 and maximum + 1; values outside that range cost an escape
    of log2 of the range plus an Elias-gamma-like 2 log2|v| + 1 bits).

    Returns ``(bits, reconstruction)`` for ``test``: bits per image (N,) and the dequantised,
    inverse-transformed images (same shape as ``test``)."""
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    if train.shape[1:] != test.shape[1:] or train.shape[-1] != train.shape[-2]:
        raise ValueError("train and test must be (N, ..., n, n) images of the same shape")
    c = _dct_matrix(train.shape[-1])

    def quantise(x):
        coef = c @ x.double() @ c.T
        return torch.round(coef / step).long()

    q_train, q_test = quantise(train), quantise(test)
    flat_train = q_train.reshape(len(train), -1)
    flat_test = q_test.reshape(len(test), -1)
    bits = torch.zeros(len(test), dtype=torch.float64)
    for j in range(flat_train.shape[1]):
        lo, hi = int(flat_train[:, j].min()) - 1, int(flat_train[:, j].max()) + 1
        counts = torch.bincount(flat_train[:, j] - lo, minlength=hi - lo + 1).double()
        probs = (counts + pseudo_count) / (counts.sum() + pseudo_count * (hi - lo + 1))
        v = flat_test[:, j]
        inside = (v >= lo) & (v <= hi)
        cost = torch.empty(len(test), dtype=torch.float64)
        cost[inside] = -torch.log2(probs[(v[inside] - lo)])
        outside = v[~inside].double()
        cost[~inside] = (math.log2(hi - lo + 2) + 2 * torch.log2(outside.abs() + 1) + 1)
        bits += cost
    recon = c.T @ (q_test.double() * step) @ c
    return bits, recon.to(test.dtype)
