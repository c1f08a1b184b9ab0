"""Backbones: noise embeddings, MLPs, a DDPM/ADM-style U-Net, and a single-level score wrapper.

Every network here is a *backbone* ``F(x_in, c_noise, class_labels=None)``: it knows nothing
about noise schedules. The wrappers in ``diffnotes.precond`` turn a backbone into a denoiser
``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` (EDM, Karras et al. 2022, eq. 7), so one
network class serves DDPM, SMLD/VE, iDDPM and EDM chapters alike.

* :class:`MLP` -- a residual MLP for 2-D toys (and any vector data), optionally class-conditional;
* :class:`FlatMLP` -- :class:`MLP` on images: flatten, run, restore the shape;
* :class:`VectorConditionedMLP` -- a residual MLP on flattened data whose condition is a real
  vector read beside the input (retrieved neighbours, CLIP-style embeddings, a learned code);
* :class:`UNet` -- the DDPM/ADM U-Net (its paper presets ``UNet.ddpm_cifar10`` and
  ``UNet.digits``; the labs' small configurations are built by ``diffnotes.presets.small_unet``);
* :class:`ScoreNet` -- one noise level, no conditioning: a backbone as a score model ``s(x)``;
* :func:`silu_mlp` -- a plain two-hidden-layer SiLU MLP (encoders and decoders, no noise input).

Every paper module builds its networks from these (``diffnotes.presets`` holds the builders
that several modules share), so a backbone is written once. Used in the book by the lab
notebooks of every paper chapter and by ``python -m diffnotes train``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "SinusoidalEmbedding",
    "FourierEmbedding",
    "make_noise_embedding",
    "MLP",
    "FlatMLP",
    "VectorConditionedMLP",
    "UNet",
    "ScoreNet",
    "silu_mlp",
    "count_parameters",
    "check_sizes",
]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (what papers report as the model size)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_sizes(**sizes) -> None:
    """Refuse, in one line, a layer size that is not a positive integer (``dim=0`` names ``dim``)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ----------------------------------------------------------------------------------------------
# Noise embeddings
# ----------------------------------------------------------------------------------------------


class SinusoidalEmbedding(nn.Module):
    """Transformer-style positional embedding of a scalar (DDPM, Ho et al. 2020, Sec. 4).

    Frequencies run geometrically from 1 down to ``1/max_period``; the output is
    ``[cos(c f_i), sin(c f_i)]``. DDPM feeds the integer step t in [0, 999]; EDM feeds
    ``c_noise = ln(sigma)/4``; both lie well inside the band the frequencies resolve.
    """

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be an even number >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        args = c_noise.reshape(-1, 1).float() * self.freqs
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar (NCSN++, Song et al. 2021; Tancik et al. 2020).

    Frequencies are drawn once from N(0, scale^2) and frozen (a buffer saved with the model,
    so a checkpoint reproduces them); the output is ``[cos(2 pi c f), sin(2 pi c f)]``.
    """

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be an even number >= 2, got {dim}")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim // 2, generator=gen) * scale)
        self.dim = dim

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        args = 2 * math.pi * c_noise.reshape(-1, 1).float() * self.freqs
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


EMBEDDINGS = ("sinusoidal", "fourier")


def make_noise_embedding(kind: str, dim: int) -> nn.Module:
    """``"sinusoidal"`` (DDPM/ADM/EDM) or ``"fourier"`` (NCSN++) embedding of ``c_noise``."""
    if kind == "sinusoidal":
        return SinusoidalEmbedding(dim)
    if kind == "fourier":
        return FourierEmbedding(dim)
    raise ValueError(f"unknown noise embedding {kind!r}; valid: {', '.join(EMBEDDINGS)}")


class _ClassEmbedding(nn.Module):
    """Class conditioning added to the noise embedding (ADM, Dhariwal & Nichol 2021).

    Accepts integer labels of shape (N,) or one-hot / soft labels of shape (N, num_classes);
    an all-zero soft label gives a zero embedding (the "unconditional" input of
    classifier-free guidance).
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * dim**-0.5)

    def forward(self, class_labels: torch.Tensor) -> torch.Tensor:
        if class_labels.ndim == 1 and not class_labels.is_floating_point():
            if bool((class_labels < 0).any()) or bool((class_labels >= self.num_classes).any()):
                raise ValueError(f"class labels must lie in [0, {self.num_classes}), got {class_labels.tolist()}")
            return self.weight[class_labels]
        if class_labels.ndim == 2 and class_labels.shape[1] == self.num_classes:
            return class_labels.to(self.weight.dtype) @ self.weight
        raise ValueError(
            f"class_labels must be integers of shape (N,) or one-hot of shape (N, {self.num_classes}), "
            f"got shape {tuple(class_labels.shape)}"
        )


def _check_labels(num_classes, class_labels):
    if class_labels is not None and num_classes is None:
        raise ValueError("class_labels given but the network was built with num_classes=None")
    if class_labels is None and num_classes is not None:
        raise ValueError(f"this network is class-conditional (num_classes={num_classes}); pass class_labels")


# ----------------------------------------------------------------------------------------------
# MLP for 2-D data
# ----------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Residual MLP backbone for low-dimensional toys (Gaussian mixtures, swiss roll, moons).

    ``h = W_in x``, then ``depth`` blocks ``h <- h + W2 silu(W1 silu(h) + E_i(emb))`` where
    ``emb`` is the embedded ``c_noise`` (plus a class embedding), then a zero-initialised
    output layer so that the untrained denoiser is exactly ``c_skip x``.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        emb_dim: int = 64,
        embedding: str = "sinusoidal",
        num_classes: int | None = None,
    ):
        super().__init__()
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"dim, hidden and depth must be >= 1, got {dim}, {hidden}, {depth}")
        self.dim, self.num_classes = dim, num_classes
        self.noise_embed = make_noise_embedding(embedding, emb_dim)
        self.emb_mlp = nn.Sequential(nn.Linear(emb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.class_embed = _ClassEmbedding(num_classes, hidden) if num_classes else None
        self.inp = nn.Linear(dim, hidden)
        self.emb_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.fc1 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.fc2 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None = None):
        if x_in.ndim != 2 or x_in.shape[1] != self.dim:
            raise ValueError(f"MLP expects x of shape (N, {self.dim}), got {tuple(x_in.shape)}")
        _check_labels(self.num_classes, class_labels)
        emb = self.emb_mlp(self.noise_embed(c_noise.reshape(-1).expand(x_in.shape[0])).to(x_in.dtype))
        if self.class_embed is not None:
            emb = emb + self.class_embed(class_labels).to(emb.dtype)
        h = self.inp(x_in)
        emb = F.silu(emb)
        for fc1, fc2, proj in zip(self.fc1, self.fc2, self.emb_proj):
            h = h + fc2(F.silu(fc1(F.silu(h)) + proj(emb)))
        return self.out(F.silu(h))


def silu_mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """``Linear -> SiLU -> Linear -> SiLU -> Linear``: two hidden layers of width ``hidden``, the
    plain feature map the method modules' encoders and decoders use (no noise input)."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                         nn.SiLU(), nn.Linear(hidden, d_out))


class FlatMLP(nn.Module):
    """:class:`MLP` for images: flatten each image to ``dim`` values, run the MLP, restore the shape.

    Unconditional (``class_labels`` is accepted and ignored, as the preconditioners pass it).
    """

    def __init__(self, dim: int = 64, hidden: int = 256, depth: int = 3):
        super().__init__()
        self.mlp = MLP(dim=dim, hidden=hidden, depth=depth)

    def forward(self, x_in, c_noise, class_labels=None):
        return self.mlp(x_in.reshape(x_in.shape[0], -1), c_noise).reshape(x_in.shape)


class VectorConditionedMLP(nn.Module):
    """Backbone ``F(x_in, c_noise, c)`` for flattened data with a real-vector condition ``c``.

    The input layer reads the flattened ``x_in`` (``dim`` values), the condition (``cond_dim``
    values, passed in the ``class_labels`` slot so that ``diffnotes.precond`` wraps it
    unchanged) and the sinusoidal embedding of ``c_noise`` side by side; ``depth`` residual
    blocks ``h <- h + W2 silu(W1 silu(h))`` follow; the output layer starts at zero, so the
    untrained denoiser is ``c_skip x`` (as with :class:`MLP`). A missing condition is the zero
    vector: the unconditional input. Used for retrieval-augmented diffusion's and unCLIP's
    decoders (``diffnotes.methods.embedding``) and for the representation-learning denoiser
    (``diffnotes.methods.representation``, whose condition is an encoder's code).
    """

    def __init__(self, dim: int = 64, cond_dim: int = 8, hidden: int = 256, depth: int = 3,
                 emb_dim: int = 64):
        super().__init__()
        check_sizes(dim=dim, cond_dim=cond_dim, hidden=hidden, depth=depth, emb_dim=emb_dim)
        self.dim, self.cond_dim = dim, cond_dim
        self.noise_embed = make_noise_embedding("sinusoidal", emb_dim)
        self.inp = nn.Linear(dim + cond_dim + emb_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        n = x_in.shape[0]
        flat = x_in.reshape(n, -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"VectorConditionedMLP expects {self.dim} values per sample, "
                             f"got {flat.shape[1]}")
        cond = class_labels
        if cond is None:
            cond = flat.new_zeros(n, self.cond_dim)
        if cond.shape != (n, self.cond_dim):
            raise ValueError(f"the condition must have shape ({n}, {self.cond_dim}), "
                             f"got {tuple(cond.shape)}")
        emb = self.noise_embed(c_noise.reshape(-1).expand(n)).to(flat.dtype)
        h = self.inp(torch.cat([flat, cond.to(flat.dtype), emb], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.silu(h)).reshape(x_in.shape)


# ----------------------------------------------------------------------------------------------
# U-Net (DDPM, Ho et al. 2020, App. B; ADM, Dhariwal & Nichol 2021, Sec. 3)
# ----------------------------------------------------------------------------------------------


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer that ends a residual branch (ADM): every block starts as identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, inject the embedding, GroupNorm -> SiLU -> dropout -> conv3x3.

    ``scale_shift=False`` adds a projection of the embedding to the features (DDPM);
    ``scale_shift=True`` is AdaGN, ``GN(h) (1 + scale) + shift`` with (scale, shift) projected
    from the embedding (ADM, Sec. 3 "adaptive group normalization").
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int, scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb_proj(emb)[:, :, None, None].to(h.dtype)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Self-attention over the H*W positions (DDPM at 16x16; ADM with several heads).

    q, k, v and the output projection are linear maps of each position's channels (1x1
    convolutions in the papers' code: the same parameters, applied as matrix products, which is
    faster on CPU for the small spatial sizes used here).
    """

    def __init__(self, ch: int, groups: int, num_heads: int = 1):
        super().__init__()
        if ch % num_heads:
            raise ValueError(f"channels {ch} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = _zero(nn.Linear(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hgt, wid = x.shape
        h = self.norm(x).reshape(n, c, hgt * wid).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.qkv(h).reshape(n, hgt * wid, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v, (N, heads, HW, C/heads)
        h = self.proj(h.transpose(1, 2).reshape(n, hgt * wid, c))
        return x + h.transpose(1, 2).reshape(n, c, hgt, wid)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """DDPM/ADM U-Net backbone ``F(x_in, c_noise, class_labels=None)``.

    Parameters
    ----------
    img_resolution, in_channels, out_channels: image size (square) and channels.
    ch, ch_mult: base width and the multiplier per resolution level (``ch * ch_mult[i]``
        channels at level i; the resolution halves between levels).
    num_res_blocks: residual blocks per level on the way down (one more on the way up, DDPM).
    attn_resolutions: resolutions (e.g. ``(16,)``) whose blocks are followed by self-attention.
    dropout: inside each residual block (DDPM used 0.1 on CIFAR-10).
    num_classes: if given, a class embedding is added to the noise embedding (ADM).
    scale_shift: AdaGN (ADM) instead of DDPM's additive embedding.
    embedding: ``"sinusoidal"`` or ``"fourier"`` for ``c_noise``.
    groups: GroupNorm groups (32 in DDPM/ADM; smaller for narrow nets).
    num_heads: attention heads.
    """

    def __init__(
        self,
        img_resolution: int = 32,
        in_channels: int = 3,
        out_channels: int | None = None,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        num_classes: int | None = None,
        scale_shift: bool = True,
        embedding: str = "sinusoidal",
        groups: int = 32,
        num_heads: int = 1,
    ):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        ch_mult = tuple(int(m) for m in ch_mult)
        attn_resolutions = tuple(int(r) for r in attn_resolutions)
        if img_resolution % 2 ** (len(ch_mult) - 1):
            raise ValueError(
                f"img_resolution {img_resolution} must be divisible by 2**(len(ch_mult)-1) = {2 ** (len(ch_mult) - 1)}"
            )
        widths = [ch] + [ch * m for m in ch_mult]
        bad = [w for w in widths if w % groups]
        if bad:
            raise ValueError(f"channel widths {sorted(set(bad))} are not divisible by groups={groups}")
        levels = [img_resolution // 2**i for i in range(len(ch_mult))]
        if any(r not in levels for r in attn_resolutions):
            raise ValueError(f"attn_resolutions {attn_resolutions} must be among the levels' resolutions {levels}")
        self.config = dict(
            img_resolution=img_resolution, in_channels=in_channels, out_channels=out_channels, ch=ch,
            ch_mult=list(ch_mult), num_res_blocks=num_res_blocks, attn_resolutions=list(attn_resolutions),
            dropout=dropout, num_classes=num_classes, scale_shift=scale_shift, embedding=embedding,
            groups=groups, num_heads=num_heads,
        )  # plain types: saved in checkpoints to rebuild the net
        self.img_resolution, self.in_channels, self.num_classes = img_resolution, in_channels, num_classes
        emb_dim = 4 * ch

        # Noise embedding: sinusoid(c_noise) -> Linear -> SiLU -> Linear (DDPM App. B).
        self.noise_embed = make_noise_embedding(embedding, ch)
        self.emb_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = _ClassEmbedding(num_classes, emb_dim) if num_classes else None

        def res(i, o):
            return ResBlock(i, o, emb_dim, dropout, groups, scale_shift)

        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs, cur = [ch], ch
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                blocks = [res(cur, ch * mult)]
                cur = ch * mult
                if levels[level] in attn_resolutions:
                    blocks.append(AttnBlock(cur, groups, num_heads))
                self.down.append(nn.ModuleList(blocks))
                skip_chs.append(cur)
            if level != len(ch_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(cur)]))
                skip_chs.append(cur)

        self.mid = nn.ModuleList([res(cur, cur), AttnBlock(cur, groups, num_heads), res(cur, cur)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                blocks = [res(cur + skip_chs.pop(), ch * mult)]
                cur = ch * mult
                if levels[level] in attn_resolutions:
                    blocks.append(AttnBlock(cur, groups, num_heads))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(cur)]))

        self.norm_out = nn.GroupNorm(groups, cur)
        self.conv_out = _zero(nn.Conv2d(cur, out_channels, 3, padding=1))

    # -- presets -------------------------------------------------------------------------------
    @classmethod
    def ddpm_cifar10(cls, **overrides) -> "UNet":
        """The DDPM CIFAR-10 network (Ho et al. 2020, App. B): about 35.7M parameters.

        ch=128, ch_mult=(1,2,2,2), 2 res blocks per resolution, attention at 16x16, dropout 0.1,
        additive time embedding (DDPM predates AdaGN).
        """
        kw = dict(img_resolution=32, in_channels=3, ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                  attn_resolutions=(16,), dropout=0.1, scale_shift=False, groups=32)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def digits(cls, **overrides) -> "UNet":
        """A small U-Net for sklearn's 8x8 digits: widths 32/64, one block per level, attention at 4x4."""
        kw = dict(img_resolution=8, in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                  attn_resolutions=(4,), dropout=0.0, scale_shift=True, groups=8)
        kw.update(overrides)
        return cls(**kw)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None = None):
        if x_in.ndim != 4 or x_in.shape[1] != self.in_channels or x_in.shape[-1] % 2 ** (len(self.config["ch_mult"]) - 1):
            raise ValueError(
                f"UNet expects x of shape (N, {self.in_channels}, H, W) with H, W divisible by "
                f"{2 ** (len(self.config['ch_mult']) - 1)}, got {tuple(x_in.shape)}"
            )
        _check_labels(self.num_classes, class_labels)
        emb = self.emb_mlp(self.noise_embed(c_noise.reshape(-1).expand(x_in.shape[0])).to(x_in.dtype))
        if self.class_embed is not None:
            emb = emb + self.class_embed(class_labels).to(emb.dtype)
        emb = F.silu(emb)  # every block's projection starts with the nonlinearity (DDPM/ADM)

        h = self.conv_in(x_in)
        skips = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            skips.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    @staticmethod
    def _run(blocks, h, emb):
        for block in blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return h


# ----------------------------------------------------------------------------------------------
# One noise level: a backbone as a score model
# ----------------------------------------------------------------------------------------------


class ScoreNet(nn.Module):
    """A single-level score model ``s(x)`` from any backbone of this module.

    The backbone's signature is ``backbone(x_in, c_noise, class_labels=None)``; here there is one
    noise level (none, for exact and sliced score matching), so ``c_noise`` is a constant. The
    backbone must be twice differentiable in ``x`` (:class:`MLP` uses SiLU): exact and sliced
    score matching differentiate its Jacobian with respect to the weights
    (``diffnotes.methods.score_matching``, whose ``score_mlp`` builds the notebooks' model).
    """

    def __init__(self, backbone: nn.Module, c_noise: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.c_noise = float(c_noise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_noise = torch.full((x.shape[0],), self.c_noise, dtype=x.dtype, device=x.device)
        return self.backbone(x, c_noise)
