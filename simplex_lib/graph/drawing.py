"""Drawing attention graphs, query/key points and colour classes in the book's style (:mod:`simplex_lib.viz`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np

from ..viz import CMAP, PALETTE, label, new_figure
from ._checks import as_numpy
from .attention import attention_graph, attention_received

__all__ = ["draw_attention_graph", "draw_query_key_points", "draw_coloured_graph",
           "persistent_class_colours", "CLASS_CMAP"]

#: Categorical colours for colour classes (ten distinct hues, cycled).
CLASS_CMAP = "tab10"


def _luminance(rgba) -> float:
    """Relative luminance of a colour (0 black .. 1 white), for choosing a readable text colour."""
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def draw_attention_graph(a, ax=None, *, threshold: float | None = None, top_k: int | None = None,
                         labels=None, node_values=None, highlight=None, title: str | None = None,
                         node_label: str = "attention received (column sum of P)",
                         max_width: float = 6.0, colorbar: bool = True, node_range=None,
                         node_size: float = 520):
    """Draw an attention matrix as a graph (circular layout, edge width and shade ~ weight).

    Arrows point from a query to the keys it attends to; values flow the other way. Nodes are
    coloured by ``node_values`` (default: :func:`attention_received`, the column sums, so that
    sinks stand out).

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    ax : matplotlib Axes, optional (a new figure is made if omitted)
    threshold, top_k, labels : as in :func:`attention_graph`
    node_values : array ``[n]``, optional
    highlight : int, optional
        A node to outline (e.g. the query being inspected).
    title, node_label : str
        Axes title and colour-bar label.
    max_width : float
        Line width (points) of an edge of weight 1.
    colorbar : bool
    node_range : (float, float), optional
        The colour scale of the nodes, ``(vmin, vmax)``; pass the same range to panels that are
        compared. Default: from ``min(0, values)`` to the largest value.
    node_size : float
        Marker area of a node (points squared).

    Returns
    -------
    networkx.DiGraph : the graph that was drawn.

    Examples
    --------
    >>> G = draw_attention_graph(np.full((3, 3), 1 / 3), top_k=2)  # doctest: +SKIP
    """
    g = attention_graph(a, threshold=threshold, top_k=top_k, labels=labels)
    n = g.number_of_nodes()
    if highlight is not None and (isinstance(highlight, bool) or not isinstance(highlight, int)
                                  or not 0 <= highlight < n):
        raise ValueError(f"highlight must be a node index in [0, {n}), got {highlight!r}")
    if not (isinstance(max_width, (int, float)) and max_width > 0):
        raise ValueError(f"max_width must be a number > 0, got {max_width!r}")
    if ax is None:
        _, ax = new_figure()
    vals = as_numpy(attention_received(a) if node_values is None else node_values).astype(float)
    if vals.shape != (n,):
        raise ValueError(f"node_values must have shape ({n},), got {vals.shape}")
    pos = nx.circular_layout(range(n)) if n > 1 else {0: np.zeros(2)}
    if node_range is None:
        node_range = (min(0.0, vals.min()), max(vals.max(), 1e-12))
    if len(node_range) != 2 or not float(node_range[0]) < float(node_range[1]):
        raise ValueError(f"node_range must be (vmin, vmax) with vmin < vmax, got {node_range!r}")
    if not (isinstance(node_size, (int, float)) and node_size > 0):
        raise ValueError(f"node_size must be a number > 0, got {node_size!r}")
    norm = plt.Normalize(vmin=float(node_range[0]), vmax=float(node_range[1]))
    cmap = plt.get_cmap(CMAP)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=[cmap(norm(v)) for v in vals],
                           node_size=node_size, edgecolors="black", linewidths=0.8)
    if highlight is not None:
        nx.draw_networkx_nodes(g, pos, nodelist=[int(highlight)], ax=ax, node_color="none",
                               node_size=1.6 * node_size, edgecolors=PALETTE["simplicial"], linewidths=2.5)
    edges = list(g.edges(data="weight"))
    if edges:
        w = np.array([e[2] for e in edges])
        wmax = max(float(w.max()), 1e-12)
        nx.draw_networkx_edges(g, pos, edgelist=[e[:2] for e in edges], ax=ax, arrows=True,
                               width=[0.4 + max_width * x for x in w], arrowsize=12,
                               edge_color=[(0.1, 0.1, 0.3, 0.15 + 0.8 * x / wmax) for x in w],
                               node_size=node_size, connectionstyle="arc3,rad=0.08")
    # white on dark nodes, black on light ones (viridis turns yellow at the top)
    labels = dict(g.nodes(data="label"))
    light = {v for v, x in zip(g.nodes, vals) if _luminance(cmap(norm(x))) > 0.5}
    for colour, keep in (("black", True), ("white", False)):
        nx.draw_networkx_labels(g, pos, labels={v: t for v, t in labels.items() if (v in light) == keep},
                                ax=ax, font_size=9, font_color=colour)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if colorbar:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        ax.figure.colorbar(sm, ax=ax, fraction=0.046, pad=0.04).set_label(node_label)
    return g


def draw_query_key_points(q, k, ax=None, *, title: str | None = None):
    """Plot 2-D queries and keys of the same tokens as two point clouds in one plane.

    Token ``i`` appears twice: as query ``q_i`` (circle) and key ``k_i`` (triangle), joined by a
    thin line. The logit ``<q_i, k_j>`` is large when ``q_i`` points along ``k_j``.

    Parameters
    ----------
    q, k : Tensor or ndarray ``[n, 2]``
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = draw_query_key_points(np.eye(2), np.eye(2))  # doctest: +SKIP
    """
    qa, ka = as_numpy(q), as_numpy(k)
    if qa.ndim != 2 or qa.shape[1] != 2 or ka.shape != qa.shape:
        raise ValueError(f"q and k must both have shape [n, 2], got {qa.shape} and {ka.shape}")
    if ax is None:
        _, ax = new_figure()
    for i, (a, b) in enumerate(zip(qa, ka)):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=PALETTE["reference"], lw=0.6, alpha=0.6)
        ax.annotate(str(i), a, textcoords="offset points", xytext=(4, 4), fontsize=9,
                    color=PALETTE["dot"])
        ax.annotate(str(i), b, textcoords="offset points", xytext=(4, 4), fontsize=9,
                    color=PALETTE["simplicial"])
    ax.scatter(qa[:, 0], qa[:, 1], marker="o", color=PALETTE["dot"], label="queries $q_i$", zorder=3)
    ax.scatter(ka[:, 0], ka[:, 1], marker="^", color=PALETTE["simplicial"], label="keys $k_i$",
               zorder=3)
    ax.axhline(0, color="black", lw=0.5)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best")
    label(ax, "coordinate 1 (dimensionless)", "coordinate 2 (dimensionless)", title)
    return ax


def draw_coloured_graph(g, colours: dict, ax=None, *, title: str | None = None, pos=None):
    """Draw an undirected graph with nodes filled by their (integer) colour classes.

    Parameters
    ----------
    g : networkx.Graph
    colours : dict ``{node: int}`` (e.g. one entry of :func:`simplex_lib.graph.weisfeiler_lehman.wl_colours`)
    ax : matplotlib Axes, optional
    title : str, optional
    pos : dict, optional (default: a spring layout with a fixed seed)

    Returns
    -------
    dict: the node positions used.

    Examples
    --------
    >>> pos = draw_coloured_graph(nx.path_graph(3), {0: 0, 1: 1, 2: 0})  # doctest: +SKIP
    """
    if not isinstance(g, nx.Graph):
        raise ValueError(f"g must be a networkx graph, got {type(g).__name__}")
    if not isinstance(colours, dict) or any(v not in colours for v in g):
        raise ValueError("colours must be a dict with an int colour for every node of g")
    if any(isinstance(colours[v], bool) or not isinstance(colours[v], int) for v in g):
        raise ValueError("colours must map every node to an int colour class")
    if pos is not None and (not isinstance(pos, dict) or any(v not in pos for v in g)):
        raise ValueError("pos must be a dict with a position for every node of g")
    if ax is None:
        _, ax = new_figure()
    if pos is None:
        pos = nx.spring_layout(g, seed=0) if g.number_of_nodes() > 1 else {v: np.zeros(2) for v in g}
    cmap = plt.get_cmap(CLASS_CMAP)
    nx.draw_networkx(g, pos, ax=ax, node_color=[cmap(colours[v] % 10) for v in g],
                     edgecolors="black", node_size=380, font_size=9, font_color="white")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return pos


def persistent_class_colours(history: list[dict]) -> list[dict]:
    """Renumber a refinement history so that a colour class keeps its colour from round to round.

    Refinement only splits classes. In every round, the largest part of each old class (ties:
    the part holding the smallest node) inherits the old class's number, and the other parts get
    new numbers, so that drawn with :data:`CLASS_CMAP` the reader sees classes *split*.

    Parameters
    ----------
    history : list of dict ``{node: int}`` (as returned by :func:`~simplex_lib.graph.weisfeiler_lehman.wl_colours`)

    Returns
    -------
    list of dict ``{node: int}``, the same partitions, renumbered from 0.

    Examples
    --------
    >>> persistent_class_colours([{0: 5, 1: 5, 2: 5}, {0: 1, 1: 0, 2: 1}])
    [{0: 0, 1: 0, 2: 0}, {0: 0, 1: 1, 2: 0}]
    """
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        raise ValueError("history must be a non-empty list of dicts {node: colour}")
    nodes = set(history[0])
    if any(set(h) != nodes for h in history):
        raise ValueError("every round of history must colour the same nodes")
    order = sorted(nodes, key=repr)
    first = {}
    for v in order:
        first.setdefault(history[0][v], len(first))
    out = [{v: first[history[0][v]] for v in order}]
    for h in history[1:]:
        prev, new, used = out[-1], {}, len(set(out[-1].values()))
        parts: dict = {}
        for v in order:
            parts.setdefault((prev[v], h[v]), []).append(v)
        for old in sorted(set(prev.values())):
            children = [p for key, p in parts.items() if key[0] == old]
            children.sort(key=lambda p: (-len(p), order.index(p[0])))
            for rank, part in enumerate(children):
                label_ = old if rank == 0 else used
                used += rank > 0
                new.update({v: label_ for v in part})
        out.append({v: new[v] for v in order})
    return out
