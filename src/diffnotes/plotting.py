"""Figures the notebooks and the CLI share: image grids and 2-D scatter panels.

* ``image_grid(images)`` tiles a batch ``(n, c, h, w)`` into one array with white lines between
  the images (pure tensor code, tested); ``show_images`` draws it;
* ``scatter_panels({"name": points}, reference=data)`` draws one square panel per point set, each
  over the data in light grey;
* ``save_samples(samples, path, title)`` picks between the two for ``python -m diffnotes sample``.

matplotlib is imported inside the drawing functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

__all__ = ["image_grid", "show_images", "scatter_panels", "save_samples"]


def image_grid(images: torch.Tensor, cols: int | None = None, value_range=(-1.0, 1.0),
               pad: int = 1) -> torch.Tensor:
    """Tile ``images`` (n, c, h, w) into a (rows*(h+2pad), cols*(w+2pad), c) tensor in [0, 1].

    Values are clamped to ``value_range`` and mapped to [0, 1]; the padding and the unused cells
    of the last row are white. ``cols`` defaults to a square-ish grid.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, channels, height, width), got {tuple(images.shape)}")
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to draw")
    cols = math.ceil(math.sqrt(n)) if cols is None else int(cols)
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    rows = math.ceil(n / cols)
    x = (images.detach().float().cpu().clamp(lo, hi) - lo) / (hi - lo)
    x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=1.0)
    c, h, w = x.shape[1:]
    cells = x.new_ones(rows * cols, c, h, w)
    cells[:n] = x
    return cells.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)


def show_images(images: torch.Tensor, title: str | None = None, ax=None, cols: int | None = None,
                value_range=(-1.0, 1.0), cell_inches: float = 0.6):
    """Draw ``image_grid(images)`` (grey for one channel) and return the figure."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, cols=cols, value_range=value_range)
    if ax is None:
        n = images.shape[0]
        cols = math.ceil(math.sqrt(n)) if cols is None else cols
        rows = math.ceil(n / cols)
        _, ax = plt.subplots(figsize=(cols * cell_inches + 1, rows * cell_inches + 1))
    gray = grid.shape[-1] == 1
    ax.imshow((grid[..., 0] if gray else grid).numpy(), cmap="gray" if gray else None, vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax.figure


def scatter_panels(point_sets: dict, reference: torch.Tensor | None = None, lim: float | None = 2.0,
                   axes=None, size: float = 4.0, s: float = 2.0):
    """One square scatter panel per ``{title: (n, 2) points}``, over ``reference`` in light grey.

    ``lim`` sets both axes to [-lim, lim] (None: matplotlib's limits). Returns the figure.
    """
    import matplotlib.pyplot as plt

    if not point_sets:
        raise ValueError("point_sets is empty: give at least one {title: points}")
    for title, xs in point_sets.items():
        if xs.ndim != 2 or xs.shape[1] != 2:
            raise ValueError(f"{title!r}: points must have shape (n, 2), got {tuple(xs.shape)}")
    if axes is None:
        _, axes = plt.subplots(1, len(point_sets), figsize=(size * len(point_sets), size), squeeze=False)
        axes = axes[0]
    for ax, (title, xs) in zip(axes, point_sets.items()):
        if reference is not None:
            ref = reference.detach().cpu().double()
            ax.scatter(ref[:, 0].numpy(), ref[:, 1].numpy(), s=s, c="lightgray", label="data")
        pts = xs.detach().cpu().double()
        ax.scatter(pts[:, 0].numpy(), pts[:, 1].numpy(), s=s, alpha=0.6, label="samples")
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    return axes[0].figure


def save_samples(samples: torch.Tensor, path, title: str) -> Path:
    """Save a scatter plot of (n, 2) points or an image grid of (n, c, h, w) images to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if samples.ndim == 2 and samples.shape[1] == 2:
        fig = scatter_panels({title: samples}, lim=None)
    elif samples.ndim == 4:
        fig = show_images(samples, title=title)
    else:
        raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)}: "
                         "need (n, 2) points or (n, channels, height, width) images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
