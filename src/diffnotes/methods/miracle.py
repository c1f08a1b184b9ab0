"""Minimal random code learning (MIRACLE) of {cite:t}`havasi2019minimal`, on a small classifier.

A factorised Gaussian q(w) = N(mu, sigma^2) over a network's weights is trained on
E_q[log p(D | w)] - sum_b beta_b KL(q(w_b) || p(w_b)) (the paper's eq. 3 with one penalty per
block), where the weights are split by a shared random permutation into blocks and each
beta_b is multiplied or divided by (1 + eps_beta) after every step, so that each block's KL
settles near the local coding goal C_loc (the paper's Algorithm 2). Each block is then sent with
minimal random coding (``diffnotes.coding``, 2^C_loc candidates, C_loc bits); after a block is
fixed to its coded value the not-yet-coded blocks are trained on for a few steps, which lets
them compensate (the paper's intermediate updates).

Here the network is multinomial logistic regression on 8x8 digits (650 weights), small enough
for a CPU notebook; the paper codes LeNet-5 and VGG-16. Used by
``notebooks/havasi2019minimal.ipynb``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .. import coding
from ..chain import gaussian_kl
from ..train import steps_cap

__all__ = ["GaussianWeights", "block_split", "block_kl_bits", "train_miracle", "code_weights",
           "CodedWeights", "accuracy"]


@dataclass
class GaussianWeights:
    """q(w) = N(mu, softplus(rho)^2) for logistic regression (classes x (features + 1)) and
    the coding prior p(w) = N(0, exp(log_sigma_p)^2), its scale learned too (as in the paper)."""

    mu: torch.Tensor
    rho: torch.Tensor
    log_sigma_p: torch.Tensor

    @classmethod
    def init(cls, features: int, classes: int, seed: int = 0) -> "GaussianWeights":
        g = torch.Generator().manual_seed(seed)
        shape = (classes, features + 1)
        mu = 0.01 * torch.randn(shape, generator=g, dtype=torch.float64)
        rho = torch.full(shape, -3.0, dtype=torch.float64)
        return cls(mu.requires_grad_(), rho.requires_grad_(),
                   torch.tensor(0.0, dtype=torch.float64, requires_grad=True))

    @property
    def sigma(self) -> torch.Tensor:
        return F.softplus(self.rho)

    @property
    def sigma_p(self) -> torch.Tensor:
        return self.log_sigma_p.exp()

    def parameters(self) -> list[torch.Tensor]:
        return [self.mu, self.rho, self.log_sigma_p]

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(self.mu.shape, generator=generator, dtype=torch.float64)
        return self.mu + self.sigma * noise


def logits(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logistic regression: x (n, features) and weights (classes, features + 1)."""
    return x.double() @ weights[:, :-1].T + weights[:, -1]


def accuracy(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((logits(weights, x).argmax(1) == y).double().mean())


def block_split(n_weights: int, n_blocks: int, seed: int) -> list[torch.Tensor]:
    """The shared random split of the flattened weights into ``n_blocks`` near-equal blocks
    (both sides draw it from ``seed``; only the number of blocks is sent)."""
    if not 1 <= n_blocks <= n_weights:
        raise ValueError(f"n_blocks must be in 1..{n_weights}, got {n_blocks}")
    perm = torch.randperm(n_weights, generator=torch.Generator().manual_seed(seed))
    return list(torch.tensor_split(perm, n_blocks))


def block_kl_bits(q: GaussianWeights, blocks) -> torch.Tensor:
    """KL(q(w_b) || p(w_b)) in bits for every block (differentiable)."""
    kl = gaussian_kl(q.mu.reshape(-1), q.sigma.reshape(-1) ** 2, torch.zeros(()),
                     q.sigma_p ** 2)
    ids = torch.empty(kl.numel(), dtype=torch.long)
    ids[torch.cat(blocks)] = torch.repeat_interleave(
        torch.arange(len(blocks)), torch.tensor([len(b) for b in blocks]))
    return torch.zeros(len(blocks), dtype=kl.dtype).index_add(0, ids, kl) / math.log(2)


def _step(q, opt, x, y, blocks, beta, c_loc_bits, eps_beta, g, fixed):
    """One step on E_q[log p(D|w)] - sum_b beta_b KL_b, then the beta update of Algorithm 2."""
    w = q.sample(g).reshape(-1)
    if fixed is not None:  # coded blocks keep their coded values
        w = torch.where(fixed[0], fixed[1], w)
    nll = F.cross_entropy(logits(w.reshape(q.mu.shape), x), y, reduction="sum")
    kl = block_kl_bits(q, blocks)
    open_blocks = torch.ones(len(blocks), dtype=torch.bool) if fixed is None else fixed[2]
    loss = nll + (beta * kl * open_blocks).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        beta *= torch.where(kl > c_loc_bits, 1 + eps_beta, 1 / (1 + eps_beta))


def train_miracle(x, y, *, n_blocks: int, c_loc_bits: float, steps: int, seed: int = 0,
                  lr: float = 0.02, eps_beta: float = 0.02, beta0: float = 1e-3):
    """Train q and the prior scale; returns (q, blocks, beta). ``$DIFFNOTES_TRAIN_STEPS`` caps
    ``steps`` (0 keeps q at its initial, untrained state)."""
    cap = steps_cap()
    steps = steps if cap is None else min(steps, cap)
    q = GaussianWeights.init(x.shape[1], int(y.max()) + 1, seed)
    blocks = block_split(q.mu.numel(), n_blocks, seed)
    beta = torch.full((n_blocks,), beta0, dtype=torch.float64)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    g = torch.Generator().manual_seed(10_000 + seed)
    for _ in range(steps):
        _step(q, opt, x, y, blocks, beta, c_loc_bits, eps_beta, g, None)
    return q, blocks, beta


@dataclass
class CodedWeights:
    weights: torch.Tensor  # what the receiver decodes
    indices: list[int]  # one MRC index per block
    bits: int  # message length: n_blocks * C_loc (+ the prior scale, sent as a float32)
    kl_bits: list[float]  # each block's KL when it was coded


def code_weights(q: GaussianWeights, blocks, x, y, beta, *, c_loc_bits: int, seed: int,
                 intermediate_steps: int = 0, lr: float = 0.02, eps_beta: float = 0.02,
                 method: str = "mrc") -> CodedWeights:
    """Send every block with ``coding`` (2^c_loc_bits candidates, c_loc_bits bits each), in a
    shared random order; between blocks, train the open ones for ``intermediate_steps``
    (training too: ``$DIFFNOTES_TRAIN_STEPS`` caps it)."""
    cap = steps_cap()
    intermediate_steps = intermediate_steps if cap is None else min(intermediate_steps, cap)
    flat_shape = q.mu.numel()
    done = torch.zeros(flat_shape, dtype=torch.bool)
    value = torch.zeros(flat_shape, dtype=torch.float64)
    open_blocks = torch.ones(len(blocks), dtype=torch.bool)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    g = torch.Generator().manual_seed(20_000 + seed)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed + 1))
    indices, kls = [0] * len(blocks), [0.0] * len(blocks)
    for b in order.tolist():
        with torch.no_grad():
            mu, sigma = q.mu.reshape(-1)[blocks[b]], q.sigma.reshape(-1)[blocks[b]]
            sigma_p = q.sigma_p.expand(len(blocks[b]))
            coded = coding.simulate_gaussian(mu, sigma, torch.zeros_like(mu), sigma_p,
                                             seed * 100_003 + b, method=method,
                                             log2_candidates=c_loc_bits)
        indices[b], kls[b] = coded.index[0], coded.kl_bits
        value[blocks[b]], done[blocks[b]] = coded.sample, True
        open_blocks[b] = False
        for _ in range(intermediate_steps if bool(open_blocks.any()) else 0):
            _step(q, opt, x, y, blocks, beta, c_loc_bits, eps_beta, g,
                  (done, value, open_blocks))
    bits = len(blocks) * c_loc_bits + 32
    return CodedWeights(value.reshape(q.mu.shape), indices, bits, kls)
