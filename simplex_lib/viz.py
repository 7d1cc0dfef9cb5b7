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


# --- chapter 08 ---


def draw_forward_tiling(ax, *, block_m: int = 64, block_n: int = 128, head_dim: int = 128,
                        w1: int = 512, w2: int = 32, tile: int = 1, row: int = 5) -> None:
    """Draw one step of the forward kernel's loop nest as a GEMM, on ``ax`` (axes switched off).

    The query tile ``[block_m, D]`` stays in registers; the outer loop walks the long window
    ``w1`` in tiles of ``block_n`` keys (the GEMM's N dimension), the inner loop the short
    window ``w2`` one row ``k`` at a time. ``tile`` and ``row`` pick the step that is drawn.
    """
    from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

    reg, smem, out, cur = PALETTE["dot"], PALETTE["accent"], PALETTE["accent2"], PALETTE["simplicial"]

    def box(x, y, w, h, colour, text=None, alpha=0.25, fs=9, **kw):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=colour, alpha=alpha, edgecolor=colour, lw=1.2))
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, lw=1.2))
        if text:
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fs, **kw)

    def arrow(p, q, colour="black"):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=10, lw=1.2, color=colour))

    n_tiles = -(-w1 // block_n)
    # -- the long window: tiles of block_n keys, walked from the query down (outer loop t)
    x0, x1, yb = 2.9, 10.9, 6.8
    tw = (x1 - x0) / n_tiles
    for t in range(n_tiles):
        x = x1 - (t + 1) * tw
        box(x, yb, tw, 0.45, cur if t == tile else smem, f"t = {t}", alpha=0.35 if t == tile else 0.12)
    ax.text(x0 - 0.1, yb + 0.22, f"keys $k_j$,\n$w_1$ = {w1}", ha="right", va="center", fontsize=9)
    ax.text(x1 + 0.1, yb + 0.22, "query $i$", ha="left", va="center", fontsize=9)
    arrow((x1 - 0.1, yb + 0.65), (x0 + 0.1, yb + 0.65))
    ax.text((x0 + x1) / 2, yb + 0.75, f"outer loop: {n_tiles} tiles of $B_N$ = {block_n} keys, "
            "from the query down", ha="center", va="bottom", fontsize=9)
    # -- the GEMM: A = q * k'_k [M, D], B = K1 tile^T [D, N], S [M, N]
    ya, ha = 0.3, 4.1
    box(1.0, ya, 1.6, ha, reg, "$q \\odot k'_l$\n" + f"[{block_m}, {head_dim}]")
    box(2.9, 4.75, 4.0, 1.3, smem, f"$K_j^{{\\top}}$ tile  [{head_dim}, {block_n}]")
    xt = x1 - (tile + 1) * tw
    ax.plot([xt, 2.9], [yb, 6.05], ls=":", color=cur, lw=1.2)
    ax.plot([xt + tw, 6.9], [yb, 6.05], ls=":", color=cur, lw=1.2)
    box(2.9, ya, 4.0, ha, out, f"$A = (q \\odot k'_l)\\,K_j^{{\\top}}$\n[M = {block_m}, N = {block_n}]"
        "\n\nonline softmax:\n$P = 2^{A - m}$")
    box(7.6, ya, 1.8, ha, reg, "acc\n" + f"[{block_m}, {head_dim}]\n\n" + "+= $(P V_j)$\n$\\odot\\, v'_l$")
    arrow((6.95, ya + ha / 2), (7.55, ya + ha / 2))
    # -- the short window: one row l at a time (inner loop)
    xs, rows = 0.1, 8
    rh = ha / rows
    for r in range(rows):
        box(xs, ya + ha - (r + 1) * rh, 0.55, rh, cur if r == row else smem, alpha=0.4 if r == row else 0.12)
    arrow((xs + 0.28, ya - 0.05), (xs + 0.28, ya - 0.45))
    ax.text(xs, ya - 0.5, f"inner loop: the {w2} rows $l$\nof $w_2$, one at a time",
            ha="left", va="top", fontsize=9)
    ax.text(xs + 0.28, ya + ha + 0.15, "$k'_l$", ha="center", va="bottom", fontsize=9)
    ax.text(10.0, 2.4, f"one step:\n{4 * block_m * block_n * head_dim / 1e6:.1f} MFLOP\non tensor cores,\n"
            f"{block_m * block_n:,} exp2", ha="left", va="center", fontsize=9)
    ax.legend(handles=[Patch(facecolor=reg, alpha=0.4, label="registers"),
                       Patch(facecolor=smem, alpha=0.4, label="loaded key rows"),
                       Patch(facecolor=cur, alpha=0.5, label="this step"),
                       Patch(facecolor=out, alpha=0.4, label="GEMM output")],
              loc="upper left", bbox_to_anchor=(0.0, -0.02), ncols=4, fontsize=9, frameon=False,
              handlelength=1.2, columnspacing=1.0)
    ax.set_xlim(0, 12.2)
    ax.set_ylim(-1.3, 8.1)
    ax.set_axis_off()


# --- chapter 09 ---


def draw_gradient_owners(ax, *, n: int = 40, chunk: int = 8, w1: int = 12, w2: int = 6,
                         block_a: int = 8, key_tile: int = 2) -> None:
    """Who writes which gradient in the library's backward, on ``ax`` (positions in tokens).

    Top: query chunks of ``chunk`` positions, one ring-kernel program each, alternating between
    the even launch (stage 0) and the odd one (stage 1); each writes its chunk's ``dq`` alone.
    Middle: the second-set keys each chunk adds ``dk'``, ``dv'`` into (``chunk_key_range``);
    where neighbouring chunks overlap, two partial sums meet in memory: stage 0 stores, stage 1
    adds. Bottom: tiles of ``block_a`` first-set keys, one key-tile program each, which write
    ``dk``, ``dv`` once; the bracket on the query axis marks the queries that tile ``key_tile``
    visits.
    """
    from matplotlib.patches import Patch, Rectangle

    from .ops.two_simplicial.tiling import chunk_key_range

    s0, s1, kt = PALETTE["simplicial"], PALETTE["accent"], PALETTE["dot"]
    yq, yk2, yk1 = 4.0, 2.0, 0.0

    def bar(x0, x1, y, colour, h=0.5, alpha=0.35, hatch=None):
        ax.add_patch(Rectangle((x0 - 0.5, y), x1 - x0, h, facecolor=colour, alpha=alpha,
                               edgecolor=colour, lw=1.0, hatch=hatch))

    for c, c0 in enumerate(range(0, n, chunk)):
        colour = s0 if c % 2 == 0 else s1
        bar(c0, min(c0 + chunk, n), yq, colour)
        ax.text(c0 + chunk / 2 - 0.5, yq + 0.25, f"dq, c={c}", ha="center", va="center", fontsize=9)
        r = chunk_key_range(c0, chunk, w2, n)
        bar(r.start, r.stop, yk2 + (0.55 if c % 2 == 0 else 0.0), colour, h=0.45)
    # where an odd chunk's keys overlap its even neighbours' keys: the partial sums meet
    for c, c0 in enumerate(range(0, n, chunk)):
        if c == 0:
            continue
        prev = chunk_key_range(c0 - chunk, chunk, w2, n)
        cur = chunk_key_range(c0, chunk, w2, n)
        lo, hi = max(prev.start, cur.start), min(prev.stop, cur.stop)
        if hi > lo:
            ax.add_patch(Rectangle((lo - 0.5, yk2 - 0.1), hi - lo, 1.2, fill=False, hatch="///",
                                   edgecolor="black", lw=0.8))
    for a, a0 in enumerate(range(0, n, block_a)):
        bar(a0, min(a0 + block_a, n), yk1, kt, alpha=0.6 if a == key_tile else 0.15)
    a0 = key_tile * block_a
    q_end = min(n, a0 + block_a - 1 + w1)
    ax.annotate("", xy=(a0 - 0.5, yq - 0.25), xytext=(q_end - 0.5, yq - 0.25),
                arrowprops=dict(arrowstyle="|-|", color=kt, lw=1.2, mutation_scale=4))
    ax.text((a0 + q_end) / 2 - 0.5, yq - 0.35, f"queries key tile {key_tile} visits", ha="center",
            va="top", fontsize=9, color=kt)
    ax.text(a0 + block_a / 2 - 0.5, yk1 + 0.25, "dk, dv", ha="center", va="center", fontsize=9)
    ax.set_yticks([yq + 0.25, yk2 + 0.5, yk1 + 0.25],
                  ["queries $i$\n(ring kernel)", "keys $k'_l$\n(ring kernel)",
                   "keys $k_j$\n(key-tile kernel)"])
    ax.set_xlabel(f"position (tokens); chunk T = {chunk}, $w_1$ = {w1}, $w_2$ = {w2}, "
                  f"key tile $B_A$ = {block_a}")
    ax.set_xlim(-1, n)
    ax.set_ylim(-0.4, 5.0)
    ax.grid(False)
    ax.legend(handles=[Patch(facecolor=s0, alpha=0.4, label="stage 0 (even chunks)"),
                       Patch(facecolor=s1, alpha=0.4, label="stage 1 (odd chunks)"),
                       Patch(facecolor=kt, alpha=0.6, label="one key-tile program"),
                       Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="two partial sums meet")],
              loc="upper center", bbox_to_anchor=(0.45, -0.28), ncols=2, fontsize=9, frameon=False)
