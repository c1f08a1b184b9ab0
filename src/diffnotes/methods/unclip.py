"""unCLIP (Ramesh et al. 2022, "DALL·E 2") at the scale of 8x8 digits and two-word captions.

The system has three trained parts, each built here at toy scale:

* a **contrastive image/caption encoder pair** ("CLIP"): :class:`ToyCLIP` with
  :class:`ImageEncoder` (an MLP on the pixels) and :class:`CaptionEncoder` (a bag of word
  embeddings and an MLP; captions such as "a thick 3" have two informative words, so no
  transformer is needed), trained by :class:`InfoNCELoss`;
* a **diffusion prior** from the caption embedding ``z_t`` to the image embedding ``z_i``:
  :func:`prior_denoiser`, a ``nets.MLP`` on embedding vectors with the caption embedding as its
  (vector) condition;
* a **decoder**, a diffusion model of images conditioned on ``z_i``
  (``diffnotes.methods.embedding.embedding_denoiser``); the control arm conditions the same decoder on
  ``z_t`` directly.

Captions come from the label and a stroke property: :func:`ink` (the mean brightness, which
grows with stroke width), thresholded at each digit's median over the training split
(:func:`ink_thresholds`), gives "thin" or "thick" (:func:`stroke_labels`);
:func:`caption_tokens` / :func:`caption_text` build the captions, :func:`caption_accuracy`
reads them back from samples with the evaluation classifier and the same ink measure.

Embeddings live on the sphere of radius ``sqrt(dim)`` (:func:`embed_images`,
:func:`embed_captions`): unit vectors, scaled so that their coordinates are of order one, the
scale the denoisers expect.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import constants as K
from ..features import digits_classify
from ..nets import MLP, silu_mlp
from ..precond import EDMPrecond

__all__ = ["VOCAB", "ink", "ink_thresholds", "stroke_labels", "caption_tokens", "caption_text",
           "ImageEncoder", "CaptionEncoder", "ToyCLIP", "InfoNCELoss", "embed_images",
           "embed_captions", "prior_denoiser", "caption_accuracy"]

VOCAB = [str(d) for d in range(10)] + ["thin", "thick"]  # token ids 0..11
STROKE_WORDS = ("thin", "thick")


def ink(images: torch.Tensor) -> torch.Tensor:
    """Mean brightness (N,) of images in [-1, 1], mapped to [0, 1]: thicker strokes, more ink."""
    images = torch.as_tensor(images)
    if images.ndim < 2:
        raise ValueError(f"images must have a batch dimension, got shape {tuple(images.shape)}")
    return ((images.reshape(images.shape[0], -1).clamp(-1, 1) + 1) / 2).mean(dim=1)


def ink_thresholds(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-digit median ink (10,) of ``images`` with ``labels``: the thin/thick boundary."""
    values = ink(images)
    missing = [d for d in range(10) if not bool((labels == d).any())]
    if missing:
        raise ValueError(f"every digit 0-9 needs at least one image; missing {missing}")
    return torch.stack([values[labels == d].median() for d in range(10)])


def stroke_labels(images: torch.Tensor, digits: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """1 ("thick") where an image's ink exceeds its digit's threshold, else 0 ("thin")."""
    return (ink(images) > thresholds[digits]).long()


def caption_tokens(digits: torch.Tensor, thick: torch.Tensor) -> torch.Tensor:
    """Token ids (N, 2): the digit's word and "thin"/"thick"."""
    digits, thick = torch.as_tensor(digits).long(), torch.as_tensor(thick).long()
    if bool((digits < 0).any() | (digits > 9).any()) or bool((thick < 0).any() | (thick > 1).any()):
        raise ValueError("digits must lie in 0..9 and thick in {0, 1}")
    return torch.stack([digits, 10 + thick], dim=1)


def caption_text(tokens: torch.Tensor) -> list[str]:
    """The captions as text: "a thick 3"."""
    return [f"a {VOCAB[int(s)]} {VOCAB[int(d)]}" for d, s in torch.as_tensor(tokens).tolist()]


class ImageEncoder(nn.Module):
    """Flattened 8x8 image -> ``dim``-vector (``nets.silu_mlp``; the paper's CLIP uses a ViT or
    ResNet)."""

    def __init__(self, dim: int = 16, hidden: int = 128, pixels: int = 64):
        super().__init__()
        self.net = silu_mlp(pixels, hidden, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.reshape(images.shape[0], -1))


class CaptionEncoder(nn.Module):
    """Caption tokens (N, L) -> ``dim``-vector: the sum of word embeddings through an MLP."""

    def __init__(self, dim: int = 16, hidden: int = 128, vocab: int = len(VOCAB)):
        super().__init__()
        self.vocab = vocab
        self.words = nn.Embedding(vocab, hidden)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.is_floating_point():
            raise ValueError(f"tokens must be integers of shape (N, L), got {tuple(tokens.shape)}")
        if bool((tokens < 0).any() | (tokens >= self.vocab).any()):
            raise ValueError(f"token ids must lie in [0, {self.vocab})")
        return self.net(self.words(tokens).sum(dim=1))


class ToyCLIP(nn.Module):
    """An image encoder and a caption encoder with a learned temperature (CLIP's logit scale,
    initialised at 1 / ``constants.CLIP_TEMPERATURE_INIT`` (0.07) and capped at
    ``constants.CLIP_LOGIT_SCALE_MAX`` (100), as in CLIP)."""

    def __init__(self, dim: int = 16, hidden: int = 128):
        super().__init__()
        self.dim = dim
        self.image = ImageEncoder(dim, hidden)
        self.caption = CaptionEncoder(dim, hidden)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / K.CLIP_TEMPERATURE_INIT)))

    def logits(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, N) scaled cosine similarities of image i with caption j."""
        z_i = F.normalize(self.image(images), dim=1)
        z_t = F.normalize(self.caption(tokens), dim=1)
        return self.log_scale.clamp(max=math.log(K.CLIP_LOGIT_SCALE_MAX)).exp() * z_i @ z_t.T


class InfoNCELoss:
    """CLIP's symmetric InfoNCE loss, per sample: cross-entropy of each image over the batch's
    captions plus each caption over the batch's images, halved. Captions repeat in a batch
    (there are only 20), so the target spreads evenly over every entry with the same caption
    instead of treating the duplicates as negatives."""

    def __call__(self, model: ToyCLIP, x0: torch.Tensor, class_labels=None) -> torch.Tensor:
        if class_labels is None:
            raise ValueError("InfoNCELoss needs the captions' tokens as class_labels")
        logits = model.logits(x0, class_labels)
        same = (class_labels[:, None, :] == class_labels[None, :, :]).all(dim=2).to(logits.dtype)
        target = same / same.sum(dim=1, keepdim=True)
        images_to_captions = -(target * logits.log_softmax(dim=1)).sum(dim=1)
        captions_to_images = -(target * logits.log_softmax(dim=0)).sum(dim=0)
        return (images_to_captions + captions_to_images) / 2


def _on_sphere(z: torch.Tensor) -> torch.Tensor:
    return F.normalize(z, dim=1) * math.sqrt(z.shape[1])


@torch.no_grad()
def embed_images(model: ToyCLIP, images: torch.Tensor) -> torch.Tensor:
    """Image embeddings z_i (N, dim) on the sphere of radius sqrt(dim)."""
    return _on_sphere(model.image(images))


@torch.no_grad()
def embed_captions(model: ToyCLIP, tokens: torch.Tensor) -> torch.Tensor:
    """Caption embeddings z_t (N, dim) on the sphere of radius sqrt(dim)."""
    return _on_sphere(model.caption(tokens))


def prior_denoiser(dim: int = 16, hidden: int = 128, depth: int = 3) -> EDMPrecond:
    """The diffusion prior D(z_i; sigma, z_t): ``nets.MLP`` on embedding vectors, the caption
    embedding entering as a soft (vector) class label, EDM preconditioning with sigma_data = 1
    (embeddings on the sphere of radius sqrt(dim) have coordinates of unit mean square)."""
    return EDMPrecond(MLP(dim=dim, hidden=hidden, depth=depth, num_classes=dim), sigma_data=1.0)


def caption_accuracy(samples: torch.Tensor, tokens: torch.Tensor,
                     thresholds: torch.Tensor) -> dict[str, float]:
    """How often samples match their captions: ``digit`` (the evaluation classifier's label),
    ``stroke`` (thin/thick by :func:`ink` against the caption digit's threshold) and ``both``."""
    if len(samples) != len(tokens):
        raise ValueError(f"{len(samples)} samples for {len(tokens)} captions")
    digit_ok = digits_classify(samples) == tokens[:, 0]
    stroke_ok = stroke_labels(samples, tokens[:, 0], thresholds) == tokens[:, 1] - 10
    return {"digit": digit_ok.float().mean().item(), "stroke": stroke_ok.float().mean().item(),
            "both": (digit_ok & stroke_ok).float().mean().item()}
