"""Channel simulation: send a *sample* of q with about KL(q‖p) bits when both sides share a seed.

The sender knows q, the receiver knows only p, and both can draw the same stream of candidates
Z_1, Z_2, ... ~ p from a shared seed. The sender picks one index and sends it; the receiver
regenerates that candidate. What differs between the coders is how the index is picked and how
long its code is:

``mrc`` (Havasi et al. 2019, minimal random coding)
    N = 2^m candidates with m = ceil(KL + t) bits (``extra_bits`` = t); the index is drawn with
    probabilities proportional to the importance weights w(Z_i) = q(Z_i)/p(Z_i) and sent with m
    bits. The sample is *approximately* q: the bias falls as t grows.
``pfr`` (Li & El Gamal 2018, the Poisson functional representation) the index
    K = argmin_i T_i / w(Z_i) over the arrival times T_1 < T_2 < ... of a unit-rate Poisson
    process; Z_K is an *exact* sample of q, and E log2 K <= KL + 1. Three bounds on the cost of
    such a sample, each with its owner: Harsha et al. 2007 (abstract) prove I + 2 log2(I + 1)
    + O(1) bits suffice on average, I = I(X;Y); Li & El Gamal 2018 (abstract) tighten the
    overhead to log2(I + 1) + 4 bits of conditional entropy of the sample given the shared
    randomness, so an optimal prefix code needs at most one bit more; and this engine sends K
    with an Elias delta code (a prefix code of length log2 K + 2 log2(log2 K + 1) + 1 at most),
    whose mean length the book bounds by KL + 2 log2(KL + 1) + 4 (the proof
    ``pfr_code_length``: the book's bound for the book's code, simpler and looser than Li & El
    Gamal's). The search stops as soon as no later candidate can win, which needs a bound on w
    and about sup w candidates; when q is as wide as p in some direction w has no bound, and
    when the bound is far above the KL (a diffusion step, whose posterior is barely narrower
    than the model's Gaussian) waiting for it is unaffordable: then the search stops after
    2^(KL + t) candidates and the sample is approximate, as in MRC (``ChannelSample.exact``
    says which).
``prior``
    ignores q and sends a candidate drawn from p: a coder that does not work, kept as the control
    that the notebooks' checks must reject.

Greedy rejection sampling for *discrete* q and p (:func:`grs_encode`, Harsha et al. 2007) and the
plain rejection sampler (:func:`rejection_encode`, which needs log2 max(q/p) bits, not KL) sit
next to the continuous coders.

The Gaussian API that a diffusion compressor calls once per reverse step:

``encode_gaussian(mu_q, sigma_q, mu_p, sigma_p, seed, ...) -> (index, bits)``
``decode_gaussian(index, mu_p, sigma_p, seed, ...) -> sample``
``kl_bits(mu_q, sigma_q, mu_p, sigma_p) -> float``

``sigma_*`` are standard deviations (scalars or tensors broadcasting to the mean's shape). The
variables are split into blocks of ``block_dims`` consecutive coordinates (flattened order), each
coded on its own; ``index`` is a tuple of one int per block and ``bits`` the total message length.
Used in the book by the chapters on Havasi 2019, Harsha 2007 and Theis 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .chain import gaussian_kl

__all__ = [
    "METHODS", "kl_bits", "kl_bits_discrete", "encode_gaussian", "decode_gaussian",
    "simulate_gaussian", "ChannelSample", "candidates", "elias_delta_bits",
    "elias_delta_encode", "elias_delta_decode", "mrc_select", "pfr_select",
    "gaussian_log_ratio", "gaussian_log_ratio_max", "mrc_total_variation", "mrc_tv_bound",
    "grs_encode", "grs_decode",
    "grs_acceptance", "rejection_encode", "discrete_candidates", "prior_encode",
]

METHODS = ("mrc", "pfr", "prior")
LN2 = math.log(2.0)
MAX_LOG2_CANDIDATES = 24
"""The most candidates any block may search, as a power of two (about 16.8 million)."""

_STREAM_CANDIDATES, _STREAM_SENDER, _STREAM_UNIFORM = 0, 1, 2


# ----------------------------------------------------------------------------- shared randomness
def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _generator(seed: int, *words: int) -> torch.Generator:
    """A torch generator for the stream (seed, *words); the same words give the same stream."""
    state = np.random.SeedSequence([seed, *words]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _chunk_rows(dims: int) -> int:
    """Candidates per generator call: a power of two near 2^14 numbers per chunk."""
    return 1 << max(4, int(math.log2(max(1, (1 << 14) // dims))))


def candidates(seed: int, start: int, count: int, dims: int, block: int = 0) -> torch.Tensor:
    """Rows ``start .. start+count-1`` of the shared stream of N(0, I_dims) candidates
    (float64, shape ``(count, dims)``) for ``block``. Row i is the same whichever slice asks."""
    seed = _check_seed(seed)
    rows = _chunk_rows(dims)
    out, i = [], start
    while i < start + count:
        chunk, offset = divmod(i, rows)
        g = _generator(seed, _STREAM_CANDIDATES, block, chunk)
        z = torch.randn(rows, dims, generator=g, dtype=torch.float64)
        take = min(rows - offset, start + count - i)
        out.append(z[offset:offset + take])
        i += take
    if not out:
        return torch.zeros(0, dims, dtype=torch.float64)
    return torch.cat(out)


# ----------------------------------------------------------------------------- divergences
def kl_bits(mu_q, sigma_q, mu_p, sigma_p) -> float:
    """KL(N(mu_q, sigma_q^2 I) ‖ N(mu_p, sigma_p^2 I)) in bits, summed over all coordinates."""
    mu_q, sigma_q, mu_p, sigma_p = _as_gaussians(mu_q, sigma_q, mu_p, sigma_p)
    return float(gaussian_kl(mu_q, sigma_q**2, mu_p, sigma_p**2).sum()) / LN2


def kl_bits_discrete(q, p) -> float:
    """KL(q ‖ p) in bits for probability vectors (terms with q = 0 contribute 0)."""
    q, p = _as_pmfs(q, p)
    mask = q > 0
    return float((q[mask] * np.log2(q[mask] / p[mask])).sum())


def _as_gaussians(mu_q, sigma_q, mu_p, sigma_p):
    mu_q = torch.as_tensor(mu_q, dtype=torch.float64)
    mu_p = torch.as_tensor(mu_p, dtype=torch.float64)
    if mu_q.shape != mu_p.shape:
        raise ValueError(f"mu_q has shape {tuple(mu_q.shape)} but mu_p {tuple(mu_p.shape)}; "
                         "they must match")
    out = [mu_q]
    for name, s in (("sigma_q", sigma_q), ("sigma_p", sigma_p)):
        s = torch.as_tensor(s, dtype=torch.float64)
        if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
            raise ValueError(f"{name} must be finite and > 0 (a standard deviation)")
        try:
            s = s.expand(mu_q.shape)
        except RuntimeError:
            raise ValueError(f"{name} of shape {tuple(s.shape)} does not broadcast to the mean's "
                             f"shape {tuple(mu_q.shape)}") from None
        out.append(s)
    mu_q, sigma_q, sigma_p = out
    return mu_q, sigma_q, mu_p, sigma_p


def _as_pmfs(q, p):
    q, p = np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if q.ndim != 1 or q.shape != p.shape:
        raise ValueError(f"q and p must be 1-D of equal length, got {q.shape} and {p.shape}")
    for name, v in (("q", q), ("p", p)):
        if (v < 0).any() or abs(v.sum() - 1) > 1e-9:
            raise ValueError(f"{name} must be a probability vector (>= 0, sums to 1)")
    if ((q > 0) & (p == 0)).any():
        raise ValueError("q puts mass where p has none: KL(q‖p) is infinite, nothing to send")
    return q, p


def gaussian_log_ratio(z, mu_q, sigma_q, mu_p, sigma_p) -> torch.Tensor:
    """log q(z)/p(z) for diagonal Gaussians, summed over the last axis (z: (n, dims))."""
    lq = -0.5 * ((z - mu_q) / sigma_q) ** 2 - torch.log(sigma_q)
    lp = -0.5 * ((z - mu_p) / sigma_p) ** 2 - torch.log(sigma_p)
    return (lq - lp).sum(-1)


def gaussian_log_ratio_max(mu_q, sigma_q, mu_p, sigma_p) -> float:
    """sup_z log q(z)/p(z) in nats (``inf`` unless sigma_q < sigma_p in every coordinate):
    per coordinate log(sigma_p/sigma_q) + (mu_q - mu_p)^2 / (2 (sigma_p^2 - sigma_q^2))."""
    if not bool((sigma_q < sigma_p).all()):
        return math.inf
    per = torch.log(sigma_p / sigma_q) + (mu_q - mu_p) ** 2 / (2 * (sigma_p**2 - sigma_q**2))
    return float(per.sum())


# ----------------------------------------------------------------------------- index codes
def elias_delta_bits(n: int) -> int:
    """Length of the Elias delta code of the positive integer n: L + 2 floor(log2(L+1)) + 1,
    with L = floor(log2 n); at most u + 2 log2(u + 1) + 1 with u = log2 n (the proof
    ``pfr_code_length`` checks this for every n)."""
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"Elias delta codes positive integers, got {n!r}")
    big_l = int(n).bit_length() - 1
    return big_l + 2 * ((big_l + 1).bit_length() - 1) + 1


def elias_delta_encode(n: int) -> str:
    """The Elias delta code word of n >= 1 as a string of '0'/'1'."""
    elias_delta_bits(n)  # validates n
    binary = bin(int(n))[3:]  # n without its leading 1
    length = bin(len(binary) + 1)[2:]
    return "0" * (len(length) - 1) + length + binary


def elias_delta_decode(code: str) -> tuple[int, str]:
    """Read one code word from the front of ``code``; returns (n, the rest)."""
    zeros = len(code) - len(code.lstrip("0"))
    if len(code) < 2 * zeros + 1:
        raise ValueError(f"truncated Elias delta code word: {code!r}")
    length = int(code[zeros:2 * zeros + 1], 2) - 1
    start = 2 * zeros + 1
    if len(code) < start + length:
        raise ValueError(f"truncated Elias delta code word: {code!r}")
    return int("1" + code[start:start + length], 2), code[start + length:]


# ----------------------------------------------------------------------------- selection rules
def mrc_select(log_w: torch.Tensor, generator: torch.Generator) -> int:
    """Minimal random coding: draw an index with probability proportional to exp(log_w)."""
    probs = torch.softmax(log_w.double(), 0)
    return int(torch.multinomial(probs, 1, generator=generator))


def pfr_select(log_w_chunks, generator: torch.Generator, log_w_max: float = math.inf):
    """Poisson functional representation over a stream of log-weight chunks.

    ``log_w_chunks`` yields 1-D tensors of log w(Z_i) in stream order. The arrival times
    T_i = E_1 + ... + E_i (E ~ Exp(1), from ``generator``) are private to the sender. Returns
    (index, searched, exact): the 0-based index of argmin T_i / w(Z_i), the candidates looked
    at, and whether the search stopped because no later candidate could win (a certificate
    that needs ``log_w_max`` finite); otherwise the stream ran out first.
    """
    best_score, best_index, t_last, seen = math.inf, -1, 0.0, 0
    for log_w in log_w_chunks:
        e = torch.empty(len(log_w), dtype=torch.float64).exponential_(generator=generator)
        times = t_last + torch.cumsum(e, 0)
        score = torch.log(times) - log_w  # log(T_i / w_i)
        i = int(torch.argmin(score))
        if float(score[i]) < best_score:
            best_score, best_index = float(score[i]), seen + i
        # T grows, w is at most w_max: once log T - log w_max passes the best, nothing can win
        stop = torch.nonzero(torch.log(times) - log_w_max >= best_score)
        if len(stop):
            return best_index, seen + int(stop[0]) + 1, True
        t_last, seen = float(times[-1]), seen + len(log_w)
    return best_index, seen, False


# ----------------------------------------------------------------------------- MRC's bias
def mrc_total_variation(log_w_q: torch.Tensor, log_w_rest: torch.Tensor) -> float:
    """Total variation between the law of MRC's output and q, from the output density
    q(z) N E[1 / (w(z) + S_{N-1})] (proof ``mrc_output_law``). TV = E_q[(1 - factor)_+], the
    form whose integrand is bounded by 1 (1/2 E_q|1 - factor| is the same number but its Monte
    Carlo estimate is heavy-tailed where p outweighs q).

    ``log_w_q``: log w at draws from q, shape (a,); ``log_w_rest``: log w of the other N - 1
    candidates, one independent set per row, shape (m, N - 1) (zero columns when N = 1).
    """
    if log_w_q.dim() != 1 or log_w_rest.dim() != 2:
        raise ValueError("log_w_q must be 1-D (draws from q) and log_w_rest 2-D (m, N - 1)")
    n = log_w_rest.shape[1] + 1
    log_rest = torch.logsumexp(log_w_rest.double(), 1)  # log S_{N-1}, -inf when N = 1
    log_factor = math.log(n) - torch.logaddexp(log_w_q.double()[:, None], log_rest[None, :])
    factor = torch.exp(log_factor).mean(1)
    return float((1 - factor).clamp(min=0).mean())


def mrc_tv_bound(t_nats: float, tail: float) -> float:
    """An upper bound on that total variation from Havasi et al.'s Theorem 3.2, for
    N = exp(KL + t) candidates (t in nats) and tail = P_q(log w > KL + t/2):
    eps = (exp(-t/4) + 2 sqrt(tail))^(1/2) and TV <= min(1, eps/(1 - eps) + 2 eps)."""
    if t_nats < 0 or not 0 <= tail <= 1:
        raise ValueError(f"need t_nats >= 0 and tail in [0, 1], got {t_nats!r}, {tail!r}")
    eps = math.sqrt(math.exp(-t_nats / 4) + 2 * math.sqrt(tail))
    return min(1.0, eps / (1 - eps) + 2 * eps) if eps < 1 else 1.0


# ----------------------------------------------------------------------------- Gaussian coder
@dataclass
class ChannelSample:
    """One coded Gaussian sample: the message and what it cost."""

    index: tuple[int, ...]  # one 0-based candidate index per block
    bits: float  # total message length, all blocks
    sample: torch.Tensor  # what the receiver decodes (shape of mu_q, float64)
    kl_bits: float  # KL(q ‖ p) in bits, all blocks
    searched: int  # candidates the sender evaluated, all blocks
    exact: bool  # every block's sample is exactly distributed as q (pfr with a certificate)
    block_bits: tuple[float, ...] = ()
    block_kl_bits: tuple[float, ...] = ()


def _blocks(numel: int, block_dims: int | None) -> list[slice]:
    if block_dims is None:
        return [slice(0, numel)]
    if isinstance(block_dims, bool) or int(block_dims) != block_dims or block_dims < 1:
        raise ValueError(f"block_dims must be a positive int or None, got {block_dims!r}")
    return [slice(i, min(i + block_dims, numel)) for i in range(0, numel, int(block_dims))]


def _check_options(method: str, extra_bits: float, max_log2_candidates: int):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if not math.isfinite(extra_bits):
        raise ValueError(f"extra_bits must be finite, got {extra_bits!r}")
    if not 1 <= max_log2_candidates <= MAX_LOG2_CANDIDATES:
        raise ValueError(f"max_log2_candidates must be in 1..{MAX_LOG2_CANDIDATES}, "
                         f"got {max_log2_candidates!r}")


def _log_w_stream(seed, block, n_max, mq, sq, mp, sp):
    """Log-weights of the shared candidates of one block, chunk by chunk, up to n_max."""
    rows, start = _chunk_rows(len(mq)), 0
    while start < n_max:
        count = min(rows - start % rows, n_max - start)
        z = mp + sp * candidates(seed, start, count, len(mq), block)
        yield gaussian_log_ratio(z, mq, sq, mp, sp)
        start += count


def _mrc_log2_n(kl: float, extra_bits: float, max_log2: int, fixed: int | None) -> int:
    if fixed is not None:
        return int(fixed)
    m = max(0, math.ceil(kl + extra_bits - 1e-9))  # a KL of 3 + 1e-15 needs 3 bits
    if m > max_log2:
        raise ValueError(f"a block needs 2^{m} candidates (KL {kl:.1f} bits + {extra_bits:g}); "
                         f"the limit is 2^{max_log2}: use a smaller block_dims")
    return m


def _code_block(method, seed, block, mq, sq, mp, sp, extra_bits, max_log2, log2_n):
    """One block: (index, bits, searched, exact)."""
    kl = float(gaussian_kl(mq, sq**2, mp, sp**2).sum()) / LN2
    sender = _generator(seed, _STREAM_SENDER, block)
    if method == "pfr":
        log_w_max = gaussian_log_ratio_max(mq, sq, mp, sp)
        # the certificate needs about sup w candidates: affordable, search for it; otherwise
        # (no bound, or one far above the KL as in a diffusion step) stop at 2^(KL + t)
        if log_w_max / LN2 + extra_bits <= max_log2:
            n_max = 1 << max_log2
        elif kl <= max_log2:  # the index is variable-length: cap the search at the limit
            n_max = 1 << min(max_log2, max(0, math.ceil(kl + extra_bits - 1e-9)))
        else:
            raise ValueError(f"a block's KL is {kl:.1f} bits, beyond the 2^{max_log2}-candidate "
                             "search limit: use a smaller block_dims")
        index, searched, exact = pfr_select(
            _log_w_stream(seed, block, n_max, mq, sq, mp, sp), sender, log_w_max)
        return index, elias_delta_bits(index + 1), searched, exact
    m = _mrc_log2_n(kl, extra_bits, max_log2, log2_n)
    header = 0 if log2_n is not None else elias_delta_bits(m + 1)  # receiver must learn N
    if method == "prior":  # ignores q: a uniform index is a sample of p
        return int(torch.randint(1 << m, (), generator=sender)), m + header, 0, False
    log_w = torch.cat(list(_log_w_stream(seed, block, 1 << m, mq, sq, mp, sp)))
    return mrc_select(log_w, sender), m + header, 1 << m, False


def simulate_gaussian(mu_q, sigma_q, mu_p, sigma_p, seed: int, *, method: str = "pfr",
                      block_dims: int | None = None, extra_bits: float = 2.0,
                      log2_candidates: int | None = None,
                      max_log2_candidates: int = 20) -> ChannelSample:
    """Code one sample of N(mu_q, sigma_q^2) against the prior N(mu_p, sigma_p^2) with the
    shared ``seed`` and return everything (message, cost, decoded sample).

    ``extra_bits`` (t): MRC searches 2^ceil(KL + t) candidates per block and sends
    ceil(KL + t) bits plus an Elias delta header telling the receiver that number, unless
    ``log2_candidates`` fixes it in advance for every block (Havasi's C_loc; no header).
    PFR sends an Elias delta code of its index; ``extra_bits`` only matters when its search
    has no stopping certificate.
    """
    _check_options(method, extra_bits, max_log2_candidates)
    seed = _check_seed(seed)
    mu_q, sigma_q, mu_p, sigma_p = _as_gaussians(mu_q, sigma_q, mu_p, sigma_p)
    flat = [t.reshape(-1) for t in (mu_q, sigma_q, mu_p, sigma_p)]
    index, bits, kls, searched, exact = [], [], [], 0, True
    for block, sl in enumerate(_blocks(flat[0].numel(), block_dims)):
        mq, sq, mp, sp = (t[sl] for t in flat)
        i, b, n, ok = _code_block(method, seed, block, mq, sq, mp, sp, extra_bits,
                                  max_log2_candidates, log2_candidates)
        index.append(i)
        bits.append(float(b))
        kls.append(float(gaussian_kl(mq, sq**2, mp, sp**2).sum()) / LN2)
        searched += n
        exact = exact and ok
    sample = decode_gaussian(tuple(index), mu_p, sigma_p, seed, block_dims=block_dims)
    return ChannelSample(tuple(index), sum(bits), sample, sum(kls), searched, exact,
                         tuple(bits), tuple(kls))


def encode_gaussian(mu_q, sigma_q, mu_p, sigma_p, seed: int, **options) -> tuple[tuple, float]:
    """(index, bits): the message that lets a receiver holding ``seed`` and the prior draw a
    sample of N(mu_q, sigma_q^2). Options as in :func:`simulate_gaussian`."""
    coded = simulate_gaussian(mu_q, sigma_q, mu_p, sigma_p, seed, **options)
    return coded.index, coded.bits


def decode_gaussian(index, mu_p, sigma_p, seed: int, *,
                    block_dims: int | None = None) -> torch.Tensor:
    """The sample the message ``index`` designates: candidate ``index[b]`` of each block's
    shared stream, mapped through the prior N(mu_p, sigma_p^2). float64, shape of ``mu_p``."""
    seed = _check_seed(seed)
    mu_p = torch.as_tensor(mu_p, dtype=torch.float64)
    _, _, mu_p, sigma_p = _as_gaussians(mu_p, 1.0, mu_p, sigma_p)
    blocks = _blocks(mu_p.numel(), block_dims)
    index = (index,) if isinstance(index, (int, np.integer)) else tuple(index)
    if len(index) != len(blocks):
        raise ValueError(f"the message has {len(index)} block indices but the prior splits "
                         f"into {len(blocks)} blocks (block_dims={block_dims})")
    n = torch.empty(mu_p.numel(), dtype=torch.float64)
    for block, (sl, i) in enumerate(zip(blocks, index)):
        if int(i) < 0:
            raise ValueError(f"block {block}: index {i} is negative")
        n[sl] = candidates(seed, int(i), 1, sl.stop - sl.start, block)[0]
    return mu_p + sigma_p * n.reshape(mu_p.shape)


# ----------------------------------------------------------------------------- discrete coders
def discrete_candidates(p, seed: int, start: int, count: int) -> np.ndarray:
    """Symbols ``start .. start+count-1`` of the shared i.i.d. stream X_i ~ p."""
    rows, out, i = 1 << 12, [], start
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    while i < start + count:
        chunk, offset = divmod(i, rows)
        u = torch.rand(rows, generator=_generator(seed, _STREAM_CANDIDATES, 0, chunk),
                       dtype=torch.float64).numpy()
        x = np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)
        take = min(rows - offset, start + count - i)
        out.append(x[offset:offset + take])
        i += take
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _shared_uniforms(seed: int, start: int, count: int) -> np.ndarray:
    rows, out, i = 1 << 12, [], start
    while i < start + count:
        chunk, offset = divmod(i, rows)
        u = torch.rand(rows, generator=_generator(seed, _STREAM_UNIFORM, 0, chunk),
                       dtype=torch.float64).numpy()
        take = min(rows - offset, start + count - i)
        out.append(u[offset:offset + take])
        i += take
    return np.concatenate(out)


def grs_acceptance(q, p, tol: float = 1e-12, max_steps: int = 1 << 20) -> np.ndarray:
    """Greedy rejection sampling's acceptance table alpha[i, x] (Harsha et al. 2007).

    Step i accepts the candidate x ~ p with probability alpha_i(x), chosen so that the mass
    accepted at x so far, P_i(x), grows greedily towards q(x):
    P_i(x) = P_{i-1}(x) + min(q(x) - P_{i-1}(x), (1 - S_{i-1}) p(x)), S = sum_x P(x).
    Rows stop once 1 - S_i < ``tol``."""
    q, p = _as_pmfs(q, p)
    accepted, rows = np.zeros_like(q), []
    for _ in range(max_steps):
        left = 1.0 - accepted.sum()
        if left < tol:
            return np.array(rows)
        step = np.minimum(q - accepted, left * p).clip(min=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append(np.where(p > 0, step / (left * p), 0.0))
        accepted += step
    raise ValueError(f"greedy rejection sampling did not converge in {max_steps} steps")


def grs_encode(q, p, seed: int, table: np.ndarray | None = None) -> tuple[int, int]:
    """(index, symbol): the first shared candidate that greedy rejection sampling accepts; the
    symbol is exactly distributed as q (up to the ``tol`` of the table)."""
    seed = _check_seed(seed)
    alpha = grs_acceptance(q, p) if table is None else table
    x = discrete_candidates(p, seed, 0, len(alpha))
    u = _shared_uniforms(seed, 0, len(alpha))
    hits = np.nonzero(u < alpha[np.arange(len(alpha)), x])[0]
    if not len(hits):
        raise ValueError("greedy rejection sampling accepted nothing within its table")
    return int(hits[0]), int(x[hits[0]])


def grs_decode(index: int, p, seed: int) -> int:
    """The symbol a receiver holding ``seed`` and p reads from the index."""
    return int(discrete_candidates(p, _check_seed(seed), int(index), 1)[0])


def rejection_encode(q, p, seed: int, max_steps: int = 1 << 24) -> tuple[int, int]:
    """Plain rejection sampling with the bound M = max q/p: accept X_i ~ p with probability
    q(X_i) / (M p(X_i)). Each step accepts with probability 1/M, so the index is geometric
    with mean M and costs about log2 M bits, the max-divergence, not the KL."""
    q, p = _as_pmfs(q, p)
    seed = _check_seed(seed)
    support = p > 0
    ratio = np.zeros_like(q)
    ratio[support] = q[support] / p[support]
    m = ratio.max()
    start, rows = 0, 1 << 12
    while start < max_steps:
        x = discrete_candidates(p, seed, start, rows)
        u = _shared_uniforms(seed, start, rows)
        hits = np.nonzero(u < ratio[x] / m)[0]
        if len(hits):
            return start + int(hits[0]), int(x[hits[0]])
        start += rows
    raise ValueError(f"rejection sampling accepted nothing in {max_steps} steps")


def prior_encode(q, p, seed: int) -> tuple[int, int]:
    """The discrete control that does not work: send index 0, whatever q is, so the receiver
    reads a sample of p. Notebooks swap it in (``DIFFNOTES_BROKEN=1``) to see their checks fail."""
    _as_pmfs(q, p)
    return 0, int(discrete_candidates(p, _check_seed(seed), 0, 1)[0])
