"""Pictures of the book's ideas, one function per idea, in the style of :mod:`simplex_lib.viz`.

Each function draws a concept, not data: a query with its edges or its triangles, the kinds of
key pairs a query sees, how counts of simplices grow, a rotation about a fixed axis, the forward
kernel's loop nest, and who owns which gradient in the backward. The chapters call them to draw
their opening pictures; the landing page's picture comes from :func:`edges_and_triangles`.
Sections follow the book: graphs and simplices, rotations, kernels.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Circle, FancyArrowPatch, Patch, Polygon, Rectangle

from .ops.two_simplicial.tiling import chunk_key_range
from .viz import COLUMN_WIDTH, PALETTE, finish, label, new_figure

__all__ = [
    "edges_and_triangles", "query_and_keys_figure", "key_pair_kinds", "key_pairs_figure",
    "simplex_growth_figure", "rotation_about_axis", "draw_forward_tiling", "draw_gradient_owners",
]


# --- graphs and simplices ---


def edges_and_triangles(axes, n: int = 6, pairs=None) -> None:
    """The landing page's picture: one query's edges (dot product) and its triangles (2-simplicial).

    ``axes`` is a pair of 2-D axes. Tokens ``0 .. n-1`` sit on an arc, the query ``i`` is the
    last of them. In the first axes it has one edge to every token it sees (itself included);
    in the second it spans a shaded triangle with each key pair ``(j, l)`` of ``pairs`` (three
    by default), and each triangle is scored as one unit.

    Parameters
    ----------
    axes : pair of matplotlib Axes
        Where the edges (first) and the triangles (second) are drawn.
    n : int, default 6
        Tokens on the arc, the query included.
    pairs : sequence of ``(j, l)``, optional
        The key pairs drawn as triangles (default: three spread over the arc).
    """

    i = n - 1
    pairs = pairs if pairs is not None else [(0, 2), (1, 4), (2, 3)]
    t = np.arange(n)
    xy = np.stack([t, 1.6 * np.sin(np.pi * t / (n - 1) * 0.85)], axis=1)
    shades = [PALETTE["simplicial"], PALETTE["accent2"], PALETTE["accent3"]]
    for ax, kind in zip(axes, ("edges", "triangles")):
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(-0.4, 1.9)
        ax.set_aspect("equal")
        ax.axis("off")
        if kind == "edges":
            for j in range(i):
                ax.plot(*xy[[i, j]].T, color=PALETTE["dot"], lw=1.6, zorder=1)
            ax.set_title("dot-product attention:\none key j per score (an edge)", fontsize=11)
        else:
            for c, (j, l) in enumerate(pairs):
                col = shades[c % len(shades)]
                tri = xy[[i, j, l]]
                ax.add_patch(Polygon(tri, closed=True, alpha=0.22, color=col, zorder=1))
                ax.add_patch(Polygon(tri, closed=True, fill=False, edgecolor=col, lw=1.6))
            ax.set_title("2-simplicial attention:\none key pair (j, l) per score (a triangle)",
                         fontsize=11)
        for x in t:
            q = x == i
            ax.scatter(*xy[x], s=340, zorder=3, edgecolors="black", linewidths=1.0,
                       color=PALETTE["simplicial"] if q else "white")
            ax.text(*xy[x], "i" if q else f"{x}", ha="center", va="center", fontsize=10,
                    zorder=4, color="white" if q else "black")


def _token(ax, xy, name: str, colour: str) -> None:
    """One token: a disc with its name (a helper of the chapter's diagrams)."""

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

    Parameters
    ----------
    i : int >= 0
        The query position; its key pairs are ``0 <= j, l <= i``.

    Examples
    --------
    >>> key_pair_kinds(1).tolist()
    [[1, 1], [1, 0]]
    """

    return np.array([[len({i, j, l}) - 1 for l in range(i + 1)] for j in range(i + 1)])


def key_pairs_figure(i: int):
    """Draw :func:`key_pair_kinds` of query ``i`` as a grid with a legend that counts each kind.

    Parameters
    ----------
    i : int >= 0
        The query position.

    Returns
    -------
    matplotlib Figure, drawn for the text column.
    """

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


def simplex_growth_figure(lengths, counts: dict, *, xlabel: str, ylabel: str, title: str):
    """Counts against a common x count on log-log axes, one labelled line per entry.

    ``counts`` maps a legend label to ``(x_values, y_values, colour, linestyle)``; the top axis
    repeats the sequence lengths ``lengths`` at the x positions of the first entry.

    Parameters
    ----------
    lengths : sequence of int
        Sequence lengths, one per point of every entry.
    counts : dict
        ``{legend label: (x_values, y_values, colour, linestyle)}``.
    xlabel, ylabel, title : str

    Returns
    -------
    matplotlib Figure, drawn for the text column.
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


# --- rotations ---


def rotation_about_axis(ax, axis, vectors, *, labels=None, color=None) -> None:
    """Draw vectors turned about one axis on a 3-D axes: the picture of a one-parameter rotation.

    ``axis`` is the fixed axis ``u`` (3 numbers), ``vectors`` the turned copies ``R(t) k`` (a
    ``[T, 3]`` array, one row per position ``t``). The axis is drawn through the origin, each
    vector as a line from the origin to a labelled dot, the circle its tip runs along (dashed)
    and the component along ``u`` that no rotation about ``u`` changes (dotted). ``ax`` must be
    a 3-D axes (``subplot_kw={"projection": "3d"}``).

    Parameters
    ----------
    ax : matplotlib 3-D Axes
    axis : sequence of 3 floats
        The fixed axis ``u`` (any length; it is normalised).
    vectors : array or Tensor ``[T, 3]``
        The turned copies, one row per position.
    labels : sequence of str, optional
        One label per vector (default ``t = 0, 1, ...``).
    color : str, optional
        Colour of the vectors (default the 2-simplicial colour of the palette).
    """

    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    v = np.asarray(vectors.detach().cpu() if hasattr(vectors, "detach") else vectors, dtype=float)
    color = color or PALETTE["simplicial"]
    along = float(v[0] @ u)  # the same for every row when the rows are rotations about u
    centre = along * u
    radial = v[0] - centre
    phi = np.linspace(0.0, 2.0 * np.pi, 200)[:, None]
    circle = centre + np.cos(phi) * radial + np.sin(phi) * np.cross(u, radial)
    reach = 1.15 * max(np.linalg.norm(v, axis=1).max(), 1.0)
    ax.plot(*np.stack([-0.3 * reach * u, reach * u]).T, color=PALETTE["dot"], lw=2.5)
    ax.text(*(1.05 * reach * u), "axis u", color=PALETTE["dot"], fontsize=11)
    ax.plot(*circle.T, color=PALETTE["reference"], ls="--", lw=1.2)
    ax.plot(*np.stack([centre, v[0]]).T, color=PALETTE["reference"], ls=":", lw=1.5)
    for t, p in enumerate(v):
        ax.plot(*np.stack([np.zeros(3), p]).T, color=color, lw=1.2, alpha=0.8)
        ax.scatter(*p, color=color, s=25, depthshade=False)
        text = labels[t] if labels is not None else f"t={t}"
        ax.text(*(p * 1.1), text, fontsize=10)
    ax.scatter(*centre, color=PALETTE["dot"], s=20, depthshade=False)
    for setter, name in ((ax.set_xlabel, "coordinate 1"), (ax.set_ylabel, "coordinate 2"),
                         (ax.set_zlabel, "coordinate 3")):
        setter(name, fontsize=10, labelpad=-2)
    ax.tick_params(labelsize=9, pad=0)
    ax.set_box_aspect((1, 1, 1))


# --- kernels ---


def draw_forward_tiling(ax, *, block_m: int = 64, block_n: int = 128, head_dim: int = 128,
                        w1: int = 512, w2: int = 32, tile: int = 1, row: int = 5) -> None:
    """Draw one step of the forward kernel's loop nest as a GEMM, on ``ax`` (axes switched off).

    The query tile ``[block_m, D]`` stays in registers; the outer loop walks the long window
    ``w1`` in tiles of ``block_n`` keys (the GEMM's N dimension), the inner loop the short
    window ``w2`` one row ``k`` at a time. ``tile`` and ``row`` pick the step that is drawn.

    Parameters
    ----------
    ax : matplotlib Axes
    block_m, block_n : int, default 64 and 128
        Query rows of the tile and keys of the long-window tile.
    head_dim : int, default 128
    w1, w2 : int, default 512 and 32
        The long and the short window.
    tile, row : int, default 1 and 5
        The long-window tile and the short-window row of the step drawn.
    """

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

    Parameters
    ----------
    ax : matplotlib Axes
    n : int, default 40
        Positions drawn.
    chunk : int, default 8
        Query positions per ring-kernel program.
    w1, w2 : int, default 12 and 6
        The two windows.
    block_a : int, default 8
        First-set keys per key-tile program.
    key_tile : int, default 2
        The key tile whose queries are bracketed.
    """


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
