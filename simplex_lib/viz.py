"""One plotting style for the whole book.

Every figure in the book goes through :func:`use_style` (readable fonts, a consistent palette)
and is drawn for the text column (:data:`COLUMN_WIDTH`), with labelled axes. Plots of data live
in the module of their concept, pictures of ideas in :mod:`simplex_lib.diagrams`; all of them
call :func:`new_figure` and :func:`finish`.
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

    Parameters
    ----------
    ncols, nrows : int, default 1
        The grid of axes.
    width : float, optional
        Inches; default ``min(4.2 * ncols + 0.8, COLUMN_WIDTH)`` (5.0 for one column, 6.0 for more).
    height : float, optional
        Inches; default ``3.6 * nrows + 0.4``.
    **kw
        Passed to ``plt.subplots`` (e.g. ``sharey=True``, ``squeeze=False``).

    Returns
    -------
    (fig, axes)
        A pyplot Figure and, as ``plt.subplots`` gives them, one Axes for a 1 x 1 grid, a 1-D
        array of Axes for one row or column, a 2-D array ``[nrows, ncols]`` otherwise.
    """
    use_style()
    w = width if width is not None else min(4.2 * ncols + 0.8, COLUMN_WIDTH)
    h = height if height is not None else 3.6 * nrows + 0.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), **kw)
    return fig, axes


def label(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Label both axes (always) and optionally title an axis.

    Parameters
    ----------
    ax : matplotlib Axes
    xlabel, ylabel : str
        Axis labels, with units (e.g. ``"sequence length n (tokens)"``).
    title : str, optional
        Set only when given and non-empty.
    """
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def heatmap(ax, data, *, xlabel: str, ylabel: str, title: str | None = None, signed: bool = False,
            colorbar_label: str | None = None, **kw):
    """Draw a 2-D array as an image with labelled axes and a colour bar; returns the image.

    Row 0 is at the top (``origin="upper"``), cells are not interpolated and fill the axes
    (``aspect="auto"``); the axes' grid is turned off.

    Parameters
    ----------
    ax : matplotlib Axes
        Its figure receives the colour bar.
    data : Tensor or array-like ``[rows, cols]``
        A tensor is detached and copied to the CPU; NaN cells are left blank.
    xlabel, ylabel : str
        Axis labels (keyword-only, required).
    title : str, optional
    signed : bool, default False
        A diverging map (:data:`CMAP_SIGNED`) centred on 0, limits ``±max |data|`` (ignoring
        NaN; 1 for an all-zero array). ``cmap``, ``vmin``, ``vmax`` in ``kw`` take precedence.
    colorbar_label : str, optional
        What the colours measure, with units.
    **kw
        Passed to ``ax.imshow`` (``vmin``, ``vmax``, ``cmap``, ...).

    Returns
    -------
    matplotlib.image.AxesImage
    """
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
    """Tighten the layout before display.

    Parameters
    ----------
    fig : matplotlib Figure
        Laid out in place (``fig.tight_layout()``).
    """
    fig.tight_layout()


# --- chapter 01 ---
def integer_ticks(*axes) -> None:
    """Put tick marks on whole numbers only (token indices, layer counts) on every axis given.

    Parameters
    ----------
    *axes : matplotlib Axes
        The axes whose x and y ticks become integers.
    """
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


# --- chapter 03 ---


def heatmap_pair(arrays, titles, *, xlabel: str, ylabel: str, colorbar_label: str,
                 vmax: float | None = None, gamma: float = 0.5):
    """Two arrays side by side on ONE colour scale (0 to ``vmax``) with one colour bar.

    ``gamma`` < 1 shades with a power law (``PowerNorm``) so that small weights stay visible
    next to a dominant one; the colour bar shows the true values.

    Parameters
    ----------
    arrays : pair of 2-D arrays or Tensors
    titles : pair of str
    xlabel, ylabel, colorbar_label : str
        Axis labels (the y label on the left panel only) and the colour bar's label.
    vmax : float, optional
        Top of the scale (default: the larger maximum of the two arrays).
    gamma : float, default 0.5
        Exponent of the power-law shading; 1 is linear.

    Returns
    -------
    matplotlib Figure, drawn for the text column.
    """
    import numpy as np
    from matplotlib.colors import PowerNorm

    arrs = [a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a) for a in arrays]
    vmax = vmax if vmax is not None else max(float(np.nanmax(a)) for a in arrs)
    norm = PowerNorm(gamma, vmin=0.0, vmax=vmax)
    fig, axes = new_figure(ncols=2, width=COLUMN_WIDTH, height=3.2, layout="constrained")
    for ax, arr, title in zip(axes, arrs, titles):
        im = ax.imshow(arr, norm=norm, cmap=CMAP, interpolation="nearest", origin="upper")
        ax.grid(False)
        label(ax, xlabel, ylabel if ax is axes[0] else "", title)
    fig.colorbar(im, ax=list(axes), fraction=0.05, pad=0.03, label=colorbar_label)
    return fig


