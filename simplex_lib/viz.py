"""One plotting style for the whole book.

Every figure in the book goes through :func:`use_style` (readable fonts, a consistent palette)
and is expected to have labelled axes with units. Chapter-specific plots live in the module of
their concept and call :func:`new_figure` and :func:`finish`.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt

#: Colours used consistently: dot-product attention, 2-simplicial attention, and accents.
PALETTE = {
    "dot": "#1f77b4",
    "simplicial": "#d62728",
    "reference": "#7f7f7f",
    "accent": "#2ca02c",
    "accent2": "#9467bd",
    "accent3": "#ff7f0e",
}

#: Width in inches of the book's text column at the style's dpi (about 675 px on the page). A
#: figure drawn wider is shrunk to fit, and its text with it: draw at most this wide.
COLUMN_WIDTH = 6.0

#: The colour map for attention weights and logits.
CMAP = "viridis"
#: A diverging map for signed quantities (logits, differences).
CMAP_SIGNED = "RdBu_r"

_STYLE = {
    "figure.figsize": (6.0, 3.8),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
    "image.cmap": CMAP,
}


def use_style() -> None:
    """Apply the book's matplotlib style (idempotent)."""
    mpl.rcParams.update(_STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None, **kw):
    """A figure and axes in the book's style, drawn for the text column.

    Without ``width`` the figure is as wide as the column allows (:data:`COLUMN_WIDTH`), so
    text keeps the size it is drawn with; a grid of more than two columns is better split into
    several figures.
    """
    use_style()
    w = width if width is not None else min(4.2 * ncols + 0.8, COLUMN_WIDTH)
    h = height if height is not None else 3.6 * nrows + 0.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), **kw)
    return fig, axes


def label(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Label both axes (always) and optionally title an axis."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def heatmap(ax, data, *, xlabel: str, ylabel: str, title: str | None = None, signed: bool = False,
            colorbar_label: str | None = None, **kw):
    """Draw a 2-D array as an image with labelled axes and a colour bar; returns the image."""
    import numpy as np

    arr = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    if signed:
        lim = float(np.nanmax(np.abs(arr))) or 1.0
        kw.setdefault("cmap", CMAP_SIGNED)
        kw.setdefault("vmin", -lim)
        kw.setdefault("vmax", lim)
    kw.setdefault("interpolation", "nearest")
    kw.setdefault("aspect", "auto")
    im = ax.imshow(arr, origin="upper", **kw)
    ax.grid(False)
    label(ax, xlabel, ylabel, title)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if colorbar_label:
        cb.set_label(colorbar_label)
    return im


def finish(fig) -> None:
    """Tighten the layout before display."""
    fig.tight_layout()


# --- chapter 01 ---
def integer_ticks(*axes) -> None:
    """Put tick marks on whole numbers only (token indices, layer counts) on every axis given."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
