"""Figures the notebooks and the CLI share: image grids and 2-D scatter panels.

* ``image_grid(images)`` tiles a batch ``(n, c, h, w)`` into one array with white lines between
  the images (pure tensor code, tested); ``show_images`` draws it;
* ``image_rows({"title": images, ...})`` draws labelled image grids side by side (wrapping into
  more rows of panels, titles wrapped to the panel), sized for the book's column;
* ``scatter_panels({"name": points}, reference=data)`` draws one square panel per point set, each
  over the data in light grey;
* ``save_samples(samples, path, title)`` picks between the two for ``python -m diffnotes sample``;
* ``book_figure(fig)`` turns a figure drawn for a chapter into a PNG that is legible in the
  book's column: it refuses text under ``BOOK_MIN_FONT_PT`` or a width over ``BOOK_MAX_WIDTH_IN``
  and writes the smallest font size into the PNG, where the browser test reads it back;
* ``fit_figures_to_column()`` (called by every lab notebook's setup cell) makes every figure the
  notebook shows fit the same column: wider than ``BOOK_MAX_WIDTH_IN`` it is scaled down, text
  under ``BOOK_MIN_FONT_PT`` is raised to it, and the PNG carries its smallest font size too, so
  a test can read the stored outputs back.

matplotlib is imported inside the drawing functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

__all__ = ["image_grid", "show_images", "image_rows", "scatter_panels", "save_samples", "book_figure",
           "fit_figure", "fit_figures_to_column", "png_min_font",
           "BOOK_DPI", "BOOK_MIN_FONT_PT", "BOOK_MAX_WIDTH_IN", "MIN_FONT_KEY"]

BOOK_DPI = 100
"""Pixels per inch of the chapters' figures (the PNG's natural size is inches × BOOK_DPI)."""
BOOK_MIN_FONT_PT = 10.0
"""Smallest text a chapter figure may draw: 10 pt at 100 dpi is 13.9 px at natural size, so it
stays at or above 10 px on screen down to a 72% scale (the column at 1024 px is about 700 px)."""
BOOK_MAX_WIDTH_IN = 7.0
"""Widest chapter figure: 700 px at natural size."""
MIN_FONT_KEY = "diffnotes-min-font-pt"
"""The PNG text chunk that carries a chapter figure's smallest font size (points)."""


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


def _image_panels(panels, per_row, width, fontsize) -> list:
    """``image_rows``' arguments checked; its panels as a list of (title, images)."""
    items = list(panels.items()) if isinstance(panels, dict) else [tuple(p) for p in panels]
    if not items:
        raise ValueError("panels is empty: give at least one {title: images}")
    for title, images in items:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"panel {title!r}: images must be a non-empty (n, channels, height, "
                             f"width) tensor, got {shape}")
    if not 0 < width <= BOOK_MAX_WIDTH_IN:
        raise ValueError(f"width must be in (0, {BOOK_MAX_WIDTH_IN}] inches, got {width}")
    if fontsize < BOOK_MIN_FONT_PT:
        raise ValueError(f"fontsize must be at least {BOOK_MIN_FONT_PT:g} pt, got {fontsize}")
    if per_row is not None and (isinstance(per_row, bool) or int(per_row) != per_row or per_row < 1):
        raise ValueError(f"per_row must be a positive integer, got {per_row!r}")
    return items


def _wrap_title(title: str, chars: int) -> str:
    """``title`` broken at spaces into lines of at most ``chars`` visible characters (a
    mathtext command such as ``$\\sigma_0$`` counts as the one or two glyphs it draws)."""
    import re

    def visible(text: str) -> int:
        return len(re.sub(r"[${}_^]", "", re.sub(r"\\[A-Za-z]+", "x", text)))

    lines: list[str] = []
    for word in title.split(" "):
        if lines and visible(lines[-1] + " " + word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _draw_grid(ax, grid: torch.Tensor) -> None:
    """An ``image_grid`` on ``ax`` with no ticks or frame (the axis stays on for a label)."""
    gray = grid.shape[-1] == 1
    ax.imshow((grid[..., 0] if gray else grid).numpy(), cmap="gray" if gray else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def image_rows(panels, *, per_row: int | None = None, cols: int | None = None,
               row_labels=None, label_left: bool = False, value_range=(-1.0, 1.0),
               width: float = BOOK_MAX_WIDTH_IN, fontsize: float = BOOK_MIN_FONT_PT,
               suptitle: str | None = None):
    """Labelled image grids side by side, drawn for the book's column; returns the figure.

    ``panels`` is ``{title: images}`` or a sequence of ``(title, images)``, each ``images`` a
    batch (n, c, h, w) tiled by :func:`image_grid` with ``cols`` images per row (default:
    square-ish). At most ``per_row`` panels share a row of the figure (default: as many as
    leave each panel about 1.4 in); the rest wrap onto further rows. The figure is ``width``
    inches wide (at most :data:`BOOK_MAX_WIDTH_IN`) and its text ``fontsize`` points (at least
    :data:`BOOK_MIN_FONT_PT`); titles are wrapped to their panel's width.
    ``label_left`` writes each title left of its panel instead of above it (for panels stacked
    one per row). ``row_labels`` names the image rows inside the panels (e.g. ``("truth",
    "estimate", "sample")``), written left of the first panel of each row of the figure.
    """
    import matplotlib.pyplot as plt

    items = _image_panels(panels, per_row, width, fontsize)
    grids = [image_grid(images, cols=cols, value_range=value_range) for _, images in items]
    n_img_rows = {math.ceil(images.shape[0] / (cols or math.ceil(math.sqrt(images.shape[0]))))
                  for _, images in items}
    if row_labels is not None:
        row_labels = list(row_labels)
        if len(n_img_rows) != 1 or len(row_labels) != next(iter(n_img_rows)):
            raise ValueError(f"row_labels has {len(row_labels)} labels; each panel must have as "
                             f"many image rows, and they have {sorted(n_img_rows)}")
    left = 0.0
    side_texts = row_labels or ([t for t, _ in items] if label_left else [])
    if side_texts:  # room for the labels left of the panels: about 0.6 em per character
        left = min(0.4 * width, max(len(t) for t in side_texts) * fontsize * 0.6 / 72 + 0.15)
    n = len(items)
    if per_row is None:
        per_row = max(1, min(n, int((width - left) // 1.4)))
    per_row = int(min(per_row, n))
    rows = math.ceil(n / per_row)
    panel_w = (width - left) / per_row
    aspect = max(g.shape[0] / g.shape[1] for g in grids)
    chars = max(8, int(panel_w * 72 / (fontsize * 0.6)))  # characters a title line holds
    titles = [str(t) if label_left else _wrap_title(str(t), chars) for t, _ in items]
    title_lines = 0 if label_left else max(t.count("\n") + 1 for t in titles)
    title_h = title_lines * fontsize * 1.5 / 72
    row_h = panel_w * 0.95 * aspect + title_h + 0.08
    height = rows * row_h + (0.35 if suptitle else 0.0) + 0.05
    fig, axes = plt.subplots(rows, per_row, figsize=(width, height), squeeze=False,
                             gridspec_kw={"left": left / width, "right": 0.995, "wspace": 0.05,
                                          "bottom": 0.05 / height,
                                          "top": 1 - ((0.35 if suptitle else 0.0) + title_h) / height,
                                          "hspace": title_h / (row_h - title_h) if rows > 1 else 0.0})
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        _draw_grid(ax, grids[i])
        if label_left:
            ax.set_ylabel(titles[i], fontsize=fontsize, rotation=0, ha="right", va="center")
        else:
            ax.set_title(titles[i], fontsize=fontsize)
        if row_labels and i % per_row == 0:
            for r, label in enumerate(row_labels):
                ax.text(-0.03, 1 - (r + 0.5) / len(row_labels), label, fontsize=fontsize,
                        ha="right", va="center", transform=ax.transAxes)
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize, y=1 - 0.05 / height, va="top")
    return fig


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


def _visible_texts(fig):
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.figure is not None:
            yield t


def book_figure(fig, *, close: bool = True):
    """A chapter's figure as an ``IPython.display.Image`` at :data:`BOOK_DPI`, legible in the column.

    Raises ``ValueError`` when a visible text is smaller than :data:`BOOK_MIN_FONT_PT` or the
    figure is wider than :data:`BOOK_MAX_WIDTH_IN`, naming the offending text. The smallest
    font size is stored in the PNG under :data:`MIN_FONT_KEY`.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    width = fig.get_size_inches()[0]
    if width > BOOK_MAX_WIDTH_IN + 1e-9:
        raise ValueError(f"chapter figure is {width:.2f} in wide; at most {BOOK_MAX_WIDTH_IN} in "
                         "fits the column")
    sizes = [(t.get_fontsize(), t.get_text()) for t in _visible_texts(fig)]
    small = [(s, txt) for s, txt in sizes if s < BOOK_MIN_FONT_PT - 1e-9]
    if small:
        s, txt = min(small)
        raise ValueError(f"chapter figure text {txt[:40]!r} is {s:g} pt; at least "
                         f"{BOOK_MIN_FONT_PT:g} pt stays legible in the column")
    smallest = min((s for s, _ in sizes), default=BOOK_MIN_FONT_PT)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=BOOK_DPI,
                metadata={MIN_FONT_KEY: f"{smallest:g}", "Software": None})
    if close:
        plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def _tighten(fig) -> None:
    import warnings

    if fig.get_constrained_layout():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fig.tight_layout()
        except (ValueError, RuntimeError):  # e.g. axes that cannot be laid out; keep as drawn
            pass


def _wrap_wide_texts(fig) -> None:
    """Wrap a title wider than its axes, or any text wider than the figure, onto more lines."""
    import textwrap

    fig.draw_without_rendering()
    titles = {id(ax.title): ax for ax in fig.axes}
    fig_width = fig.bbox.width
    for t in _visible_texts(fig):
        ax = titles.get(id(t))
        room = ax.get_window_extent().width * 1.05 if ax is not None else 0.98 * fig_width
        width = t.get_window_extent().width
        text = t.get_text()
        if width > room and len(text) > 12 and "$" not in text:
            chars = max(12, int(len(text) * room / width) - 1)
            t.set_text("\n".join(textwrap.wrap(text.replace("\n", " "), chars)))


def fit_figure(fig) -> float:
    """Make ``fig`` fit the book's column in place and return its smallest font size (points).

    A figure wider than :data:`BOOK_MAX_WIDTH_IN` is scaled to that width with its aspect kept;
    every visible text under :data:`BOOK_MIN_FONT_PT` is raised to it; a title wider than its
    axes (or any text wider than the figure) is wrapped onto more lines; the layout is then
    tightened (unless the figure uses constrained layout) so the larger text does not overlap.
    """
    fig.draw_without_rendering()  # tick labels hold their text only once drawn
    width, height = fig.get_size_inches()
    if width > BOOK_MAX_WIDTH_IN:
        fig.set_size_inches(BOOK_MAX_WIDTH_IN, height * BOOK_MAX_WIDTH_IN / width)
    texts = list(_visible_texts(fig))
    for t in texts:
        if t.get_fontsize() < BOOK_MIN_FONT_PT:
            t.set_fontsize(BOOK_MIN_FONT_PT)
    _tighten(fig)
    _wrap_wide_texts(fig)
    _tighten(fig)
    return min((t.get_fontsize() for t in texts), default=BOOK_MIN_FONT_PT)


def _fitted_png(fig) -> bytes:
    """The PNG of :func:`fit_figure`'s result, cropped to what is drawn (nothing clipped) and
    narrowed until that crop is at most :data:`BOOK_MAX_WIDTH_IN` wide."""
    import io

    from PIL import Image

    smallest = fit_figure(fig)
    for _ in range(4):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=BOOK_DPI, bbox_inches="tight", pad_inches=0.05,
                    metadata={MIN_FONT_KEY: f"{smallest:g}", "Software": None})
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            drawn = im.size[0] / BOOK_DPI
        if im.size[0] <= round(BOOK_MAX_WIDTH_IN * BOOK_DPI):
            break
        width, height = fig.get_size_inches()
        # a little under the exact ratio: the crop rounds to whole pixels
        fig.set_size_inches(width * 0.995 * BOOK_MAX_WIDTH_IN / drawn, height)
        _tighten(fig)
    return buf.getvalue()


def fit_figures_to_column() -> bool:
    """Render every figure this IPython kernel shows through :func:`fit_figure` at :data:`BOOK_DPI`.

    Registers a PNG formatter for matplotlib figures (after pyplot has set up its own), so a
    notebook's stored figures are at most 700 px wide with text of at least 10 pt, and each PNG
    names its smallest font size under :data:`MIN_FONT_KEY`. Returns False (and does nothing)
    outside IPython, e.g. in a plain script.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with every notebook kernel
        return False
    shell = get_ipython()
    if shell is None:
        return False
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # pyplot loads its backend at the first figure; the inline backend then registers its own
    # formatter, so load it now and register ours after it
    plt.close(plt.figure())

    shell.display_formatter.formatters["image/png"].for_type(Figure, _fitted_png)
    return True


def png_min_font(data: bytes) -> float | None:
    """The smallest font size a PNG written by this module declares (None when it declares none)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        value = im.info.get(MIN_FONT_KEY)
    return None if value is None else float(value)
