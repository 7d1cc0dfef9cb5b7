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


# --- chapter 03 ---


def _token(ax, xy, name: str, colour: str) -> None:
    """One token: a disc with its name (a helper of the chapter's diagrams)."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle(xy, 0.13, facecolor=colour, edgecolor="black", lw=1.2, zorder=3))
    ax.text(*xy, name, ha="center", va="center", fontsize=12, zorder=4)


def _message(ax, start, end, text: str, colour: str, offset=(0.0, 0.0), rad=-0.25,
             shrink=(20, 20), ha="center") -> None:
    """A curved arrow from ``start`` to ``end`` carrying ``text`` (a message sent to the query)."""
    ax.annotate("", xy=end, xytext=start, zorder=2,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=2.0, shrinkA=shrink[0],
                                shrinkB=shrink[1], mutation_scale=18,
                                connectionstyle=f"arc3,rad={rad}"))
    mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
    ax.text(*mid, text, ha=ha, va="center", fontsize=12, color=colour)


def query_and_keys_figure():
    """Dot-product attention next to 2-simplicial attention, drawn for one query.

    Left: the query ``i`` scores one key ``j`` (an edge, logit ``A_ij``) and receives ``v_j``.
    Right: the query scores a key pair ``(j, l)`` (a triangle, logit ``A_ijl``, a second key
    ``k'_l``) and receives the product ``v_j o v'_l`` of the two keys' values.
    Returns the figure (6 inches wide, drawn for the text column).
    """
    from matplotlib.patches import Polygon

    fig, (ax_d, ax_s) = new_figure(ncols=2, width=COLUMN_WIDTH, height=3.1)
    q_col, k_col = PALETTE["accent3"], "#dddddd"
    i, j, l = (0.5, 0.15), (0.1, 0.95), (0.95, 0.95)
    ax_d.plot(*zip(i, j), color=PALETTE["dot"], lw=3, zorder=1)
    ax_d.text(0.13, 0.5, "$A_{ij}$", fontsize=12, color=PALETTE["dot"], ha="center")
    _message(ax_d, j, i, "$v_j$", PALETTE["dot"], offset=(0.22, 0.02))
    _token(ax_d, i, "$q_i$", q_col)
    _token(ax_d, j, "$k_j$", k_col)
    ax_d.set_title("dot-product: an edge")
    ax_s.add_patch(Polygon([i, j, l], closed=True, facecolor=PALETTE["simplicial"], alpha=0.15,
                           edgecolor="none", zorder=0))
    ax_s.add_patch(Polygon([i, j, l], closed=True, fill=False, edgecolor=PALETTE["simplicial"],
                           lw=2.5, zorder=1))
    ax_s.text(0.33, 0.62, "$A_{ijl}$", fontsize=12, color=PALETTE["simplicial"], ha="center")
    mid = ((j[0] + l[0]) / 2, j[1])
    ax_s.plot(*mid, "o", color=PALETTE["simplicial"], ms=7, zorder=3)
    _message(ax_s, mid, i, "", PALETTE["simplicial"], rad=0.0, shrink=(4, 20))
    ax_s.text(mid[0], mid[1] + 0.14, "$v_j \\circ v'_l$", ha="center", va="center", fontsize=12,
              color=PALETTE["simplicial"])
    _token(ax_s, i, "$q_i$", q_col)
    _token(ax_s, j, "$k_j$", k_col)
    _token(ax_s, l, "$k'_l$", k_col)
    ax_s.set_title("2-simplicial: a triangle")
    for ax in (ax_d, ax_s):
        ax.set_xlim(-0.1, 1.25)
        ax.set_ylim(-0.05, 1.22)
        ax.set_aspect("equal")
        ax.axis("off")
    finish(fig)
    return fig


def key_pair_kinds(i: int):
    """The ``(j, l)`` key pairs of causal query ``i``, coloured by what they land on.

    Returns ``[i+1, i+1]`` int codes: 2 where ``i, j, l`` are three distinct tokens (a triangle
    ``{i, j, l}``), 1 where they are two distinct tokens (an edge), 0 for ``j = l = i``.
    """
    import numpy as np

    return np.array([[len({i, j, l}) - 1 for l in range(i + 1)] for j in range(i + 1)])


def key_pairs_figure(i: int):
    """Draw :func:`key_pair_kinds` of query ``i`` as a grid with a legend that counts each kind."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    kinds = key_pair_kinds(i)
    colours = ["#444444", PALETTE["dot"], PALETTE["simplicial"]]
    names = ["the query alone", "an edge {i, j}", "a triangle {i, j, l}"]
    fig, ax = new_figure(width=COLUMN_WIDTH, height=3.3)
    ax.imshow(kinds, cmap=ListedColormap(colours), vmin=-0.5, vmax=2.5, origin="upper")
    ax.set_xticks(np.arange(i + 1))
    ax.set_yticks(np.arange(i + 1))
    ax.grid(False)
    label(ax, "second key l (token index)", "first key j (token index)",
          f"the {(i + 1) ** 2} key pairs of query i = {i}")
    counts = [int((kinds == code).sum()) for code in range(3)]
    handles = [Patch(color=c, label=f"{n}: {m} key pair{'s' if m != 1 else ''}")
               for c, n, m in zip(colours, names, counts)]
    ax.legend(handles=handles[::-1], loc="center left", bbox_to_anchor=(1.04, 0.5),
              title="the key pair lands on")
    finish(fig)
    return fig


def heatmap_pair(arrays, titles, *, xlabel: str, ylabel: str, colorbar_label: str,
                 vmax: float | None = None, gamma: float = 0.5):
    """Two arrays side by side on ONE colour scale (0 to ``vmax``) with one colour bar.

    ``gamma`` < 1 shades with a power law (``PowerNorm``) so that small weights stay visible
    next to a dominant one; the colour bar shows the true values.
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


# --- chapter 04 ---


def simplex_growth_figure(lengths, counts: dict, *, xlabel: str, ylabel: str, title: str):
    """Counts against a common x count on log-log axes, one labelled line per entry.

    ``counts`` maps a legend label to ``(x_values, y_values, colour, linestyle)``; the top axis
    repeats the sequence lengths ``lengths`` at the x positions of the first entry.
    """
    fig, ax = new_figure(width=COLUMN_WIDTH, height=4.2)
    first_x = None
    for name, (xs, ys, colour, ls) in counts.items():
        ax.loglog(xs, ys, ls, color=colour, label=name)
        first_x = xs if first_x is None else first_x
    top = ax.secondary_xaxis("top")
    ticks = [L for L in lengths if L in (4, 16, 64, 256, 1024, 4096)]
    top.set_xticks([first_x[list(lengths).index(L)] for L in ticks], [str(L) for L in ticks])
    top.set_xlabel("sequence length L (tokens)")
    ax.legend(fontsize=9, loc="lower right")
    label(ax, xlabel, ylabel, title)
    finish(fig)
    return fig
