"""A small CNN trained on sklearn's 8x8 digits, used as the feature space of a Fréchet distance.

FID (Heusel et al., 2017) measures the Fréchet distance between Gaussian fits to Inception-v3
features of real and generated images. Inception needs downloaded weights and 299x299 inputs; the
CPU notebooks work on 8x8 digits instead, so the book uses the same recipe with a feature
extractor it trains itself: :class:`DigitsClassifier`, whose penultimate layer (64 ReLU units)
gives :func:`digits_features`, and :func:`diffnotes.metrics.frechet_digits_distance` ("FDD")
compares two image sets in that space. Numbers in this space are comparable with each other, not
with published FIDs.

The weights ship in ``diffnotes/data/digits_classifier.pt`` (a ``state_dict``, about 100 kB),
written by ``scripts/train_digits_classifier.py`` with :func:`train_digits_classifier`
(seeded, CPU, well under a minute).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS_PATH = Path(__file__).parent / "data" / "digits_classifier.pt"
FEATURE_DIM = 64


class DigitsClassifier(nn.Module):
    """Three 3x3 conv layers (8x8 -> 4x4 -> 2x2), a 64-unit feature layer and 10 logits."""

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width // 2, 3, padding=1)
        self.conv2 = nn.Conv2d(width // 2, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width * 2 * 2, feature_dim)
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations, shape (N, feature_dim)."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _as_digits_batch(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) images in [-1, 1], H = W a multiple of 8 -> (N, 1, 8, 8) float32.

    Larger images (the 16x16 / 32x32 upsampled digits) are area-averaged back to 8x8.
    """
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3] or images.shape[2] % 8:
        raise ValueError(
            f"digits images must have shape (N, 1, H, H) or (N, H, H) with H in 8, 16, 32, ...; "
            f"got {tuple(images.shape)}"
        )
    images = images.to(torch.float32)
    if images.shape[-1] != 8:
        images = F.adaptive_avg_pool2d(images, 8)
    return images


@lru_cache(maxsize=4)
def _load_classifier(device_str: str) -> DigitsClassifier:
    if not WEIGHTS_PATH.is_file():
        raise FileNotFoundError(
            f"digits classifier weights not found at {WEIGHTS_PATH}; "
            "run `python scripts/train_digits_classifier.py` to create them"
        )
    model = DigitsClassifier()
    model.load_state_dict(torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False).to(device_str)


def load_digits_classifier(device=None) -> DigitsClassifier:
    """The stored classifier in eval mode on ``device`` (default CPU); cached per device."""
    return _load_classifier(str(torch.device(device or "cpu")))


@torch.no_grad()
def digits_features(images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Penultimate-layer features (N, 64) of the stored digits classifier for images in [-1, 1]."""
    images = _as_digits_batch(images)
    model = load_digits_classifier(images.device)
    return torch.cat([model.features(chunk) for chunk in images.split(batch_size)])


@torch.no_grad()
def digits_predict(images: torch.Tensor) -> torch.Tensor:
    """Predicted class (N,) of the stored classifier: a check that samples look like digits."""
    images = _as_digits_batch(images)
    return load_digits_classifier(images.device)(images).argmax(dim=1)


def train_digits_classifier(epochs: int = 40, seed: int = 0, lr: float = 3e-3, batch_size: int = 64,
                            shift_augment: bool = True, log=None) -> DigitsClassifier:
    """Train :class:`DigitsClassifier` on the ``train`` split of :func:`diffnotes.data.load_digits`.

    Deterministic for a given seed and thread count (CPU; data order and initialisation come
    from one ``torch.Generator``). ``shift_augment`` shifts each batch by up to one pixel, which
    makes the features less sensitive to the small misalignments of generated digits.
    """
    from .data import load_digits

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # module initialisation uses the global generator
    model = DigitsClassifier()
    x_train, y_train = load_digits("train")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x_train.shape[0], generator=generator)
        total = 0.0
        for idx in order.split(batch_size):
            x, y = x_train[idx], y_train[idx]
            if shift_augment:
                dx, dy = torch.randint(-1, 2, (2,), generator=generator).tolist()
                # pad with background (-1) so a shift never wraps ink around the border
                x = F.pad(x, (1, 1, 1, 1), value=-1.0)[:, :, 1 + dy: 9 + dy, 1 + dx: 9 + dx]
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * idx.shape[0]
        scheduler.step()
        if log is not None:
            log(f"epoch {epoch + 1:3d}/{epochs}  loss {total / x_train.shape[0]:.4f}")
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: nn.Module, split: str = "test") -> float:
    """Fraction of the digits ``split`` that ``model`` classifies correctly."""
    from .data import load_digits

    x, y = load_digits(split)
    return (model(x).argmax(dim=1) == y).float().mean().item()
