"""Attention read as a graph: edges, walks, diffusion, Weisfeiler-Lehman and simplices.

An attention matrix ``A`` (``[n, n]``, row ``i`` = query ``i``, each row a probability
distribution over keys) is the weighted adjacency matrix of a directed graph on the ``n`` tokens.

**Edge convention.** This module draws the edge ``i -> j`` with ``weight = A[i, j]``: an arrow
points from a query to the key it *attends to*. Out-weights of every node sum to one, and
``networkx.to_numpy_array(G)`` gives back ``A``. Messages (values) travel against the arrows: in
``A @ V`` node ``i`` receives ``V[j]`` along its edge ``i -> j``. A node with a large total
*in*-weight (column sum) is an attention sink.

Contents:

- :func:`attention_matrix`, :func:`attention_graph`, :func:`draw_attention_graph`
- :func:`effective_neighbours` (how sparse each row is), :func:`draw_query_key_points`
- walks and diffusion: :func:`k_hop`, :func:`reach`, :func:`diffuse`, :func:`diffusion_trajectory`,
  :func:`compose_layers`, :func:`attention_received`
- Weisfeiler-Lehman: :func:`wl_colours` (1-WL and a triangle-aware refinement),
  :func:`stable_partition`, :func:`folklore_wl_colours` (2-FWL), :func:`wl_distinguishes`,
  :func:`cycle_vs_triangles`, :func:`draw_coloured_graph`, :func:`message_passing`
- simplices: :func:`simplices`, :func:`star`
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import networkx as nx
import numpy as np
import torch

__all__ = [
    "attention_matrix",
    "attention_graph",
    "draw_attention_graph",
    "k_hop",
    "reach",
    "diffuse",
    "diffusion_trajectory",
    "compose_layers",
    "attention_received",
    "effective_neighbours",
    "draw_query_key_points",
    "wl_colours",
    "stable_partition",
    "folklore_wl_colours",
    "colour_histogram",
    "wl_distinguishes",
    "cycle_vs_triangles",
    "draw_coloured_graph",
    "message_passing",
    "simplices",
    "star",
]


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_square(name: str, a) -> None:
    if not isinstance(a, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square [n, n] matrix, got shape {tuple(a.shape)}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(a.shape)}")
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError(f"{name} must be finite (no nan or inf)")


def _check_int(name: str, k, minimum: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {k!r}")
    if k < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {k}")
    return int(k)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_graph(name: str, g) -> None:
    if not isinstance(g, nx.Graph):
        raise ValueError(f"{name} must be a networkx graph, got {type(g).__name__}")
    if g.is_directed():
        raise ValueError(f"{name} must be undirected (Weisfeiler-Lehman here is for simple graphs)")
    if g.is_multigraph():
        raise ValueError(f"{name} must not be a multigraph")


def _sorted_nodes(nodes):
    try:
        return sorted(nodes)
    except TypeError:  # mixed node types: any fixed order will do
        return sorted(nodes, key=repr)


# --------------------------------------------------------------------------------------------
# Attention matrix -> graph
# --------------------------------------------------------------------------------------------


def attention_matrix(q, k, *, temperature: float = 1.0, causal: bool = True, scale=None):
    """Attention weights of one head, ``softmax(scale * q k^T / temperature)``, as an ``[n, n]`` matrix.

    A thin wrapper over :func:`simplex_lib.reference.dot_attention_weights` for a single head:
    the temperature divides the logits (``temperature -> 0`` makes each row one-hot on its
    largest logit, ``temperature -> inf`` makes it uniform over the visible keys).

    Parameters
    ----------
    q, k : Tensor ``[n, head_dim]``
        Queries and keys of one head (rows are tokens).
    temperature : float > 0
    causal : bool
        Query ``i`` sees keys ``j <= i`` only (as in :func:`~simplex_lib.reference.dot_attention`).
    scale : float, optional
        Logit scale, default ``1/sqrt(head_dim)``.

    Returns
    -------
    Tensor ``[n, n]``; row ``i`` is query ``i``'s distribution over keys.

    Examples
    --------
    >>> q = torch.randn(5, 4); A = attention_matrix(q, q, temperature=0.5)
    >>> A.shape, bool(torch.allclose(A.sum(-1), torch.ones(5)))
    (torch.Size([5, 5]), True)
    """
    from .reference import dot_attention_weights

    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D torch.Tensor [n, head_dim], got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if q.shape != k.shape:
        raise ValueError(f"k has shape {tuple(k.shape)} but q has shape {tuple(q.shape)}")
    if isinstance(temperature, bool) or not (float(temperature) > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    s = (1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)) / float(temperature)
    return dot_attention_weights(q[None, :, None], k[None, :, None], causal=causal, scale=s)[0, 0]


def attention_graph(a, *, threshold: float | None = None, top_k: int | None = None,
                    labels=None) -> nx.DiGraph:
    """The weighted directed graph of an attention matrix.

    Edge ``i -> j`` ("query ``i`` attends to key ``j``") carries ``weight = a[i, j]``; exact
    zeros (masked keys) give no edge, so ``nx.to_numpy_array(G)`` equals ``a``. ``threshold``
    and ``top_k`` thin the graph for drawing.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
        Rows are queries.
    threshold : float, optional
        Keep only edges with ``weight >= threshold``.
    top_k : int >= 1, optional
        Keep only the ``top_k`` heaviest out-edges of every node (ties: lower key index first).
    labels : sequence of ``n`` str, optional
        Stored as the node attribute ``"label"`` (default ``str(i)``).

    Returns
    -------
    networkx.DiGraph on nodes ``0..n-1`` with edge attribute ``"weight"`` (float).

    Examples
    --------
    >>> G = attention_graph(np.array([[1.0, 0.0], [0.25, 0.75]]))
    >>> sorted(G.edges(data="weight"))
    [(0, 0, 1.0), (1, 0, 0.25), (1, 1, 0.75)]
    """
    _check_square("a", a)
    arr = _numpy(a).astype(np.float64)
    n = arr.shape[0]
    if threshold is not None and (isinstance(threshold, bool) or not math.isfinite(float(threshold))):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    if top_k is not None:
        _check_int("top_k", top_k, 1)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but a has {n} rows")
    keep = arr != 0
    if threshold is not None:
        keep &= arr >= float(threshold)
    if top_k is not None and top_k < n:
        order = np.argsort(-arr, axis=1, kind="stable")[:, :top_k]
        top = np.zeros_like(keep)
        np.put_along_axis(top, order, True, axis=1)
        keep &= top
    g = nx.DiGraph()
    for i in range(n):
        g.add_node(i, label=str(i) if labels is None else str(labels[i]))
    for i, j in zip(*np.nonzero(keep)):
        g.add_edge(int(i), int(j), weight=float(arr[i, j]))
    return g


def draw_attention_graph(a, ax=None, *, threshold: float | None = None, top_k: int | None = None,
                         labels=None, node_values=None, highlight=None, title: str | None = None,
                         node_label: str = "attention received (column sum of A)",
                         max_width: float = 6.0, colorbar: bool = True):
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

    Returns
    -------
    networkx.DiGraph : the graph that was drawn.

    Examples
    --------
    >>> G = draw_attention_graph(np.full((3, 3), 1 / 3), top_k=2)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    from .viz import CMAP, PALETTE, new_figure

    g = attention_graph(a, threshold=threshold, top_k=top_k, labels=labels)
    n = g.number_of_nodes()
    if ax is None:
        _, ax = new_figure()
    vals = _numpy(attention_received(a) if node_values is None else node_values).astype(float)
    if vals.shape != (n,):
        raise ValueError(f"node_values must have shape ({n},), got {vals.shape}")
    pos = nx.circular_layout(range(n)) if n > 1 else {0: np.zeros(2)}
    norm = plt.Normalize(vmin=min(0.0, vals.min()), vmax=max(vals.max(), 1e-12))
    cmap = plt.get_cmap(CMAP)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=[cmap(norm(v)) for v in vals],
                                   node_size=520, edgecolors="black", linewidths=0.8)
    if highlight is not None:
        nx.draw_networkx_nodes(g, pos, nodelist=[int(highlight)], ax=ax, node_color="none",
                               node_size=820, edgecolors=PALETTE["simplicial"], linewidths=2.5)
    edges = list(g.edges(data="weight"))
    if edges:
        w = np.array([e[2] for e in edges])
        wmax = max(float(w.max()), 1e-12)
        nx.draw_networkx_edges(g, pos, edgelist=[e[:2] for e in edges], ax=ax, arrows=True,
                               width=[0.4 + max_width * x for x in w], arrowsize=12,
                               edge_color=[(0.1, 0.1, 0.3, 0.15 + 0.8 * x / wmax) for x in w],
                               node_size=520, connectionstyle="arc3,rad=0.08")
    nx.draw_networkx_labels(g, pos, labels=dict(g.nodes(data="label")), ax=ax, font_size=9,
                            font_color="white")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if colorbar:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        ax.figure.colorbar(sm, ax=ax, fraction=0.046, pad=0.04).set_label(node_label)
    return g


def effective_neighbours(a):
    """How many keys each query effectively attends to: ``exp(entropy)`` of every row.

    A one-hot row gives 1, a row uniform over ``m`` keys gives ``m``; the number measures how
    strongly softmax has sparsified each node's neighbourhood. Rows must be distributions.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]`` with non-negative rows summing to one

    Returns
    -------
    ``[n]``, same kind as ``a``, values in ``[1, n]``.

    Examples
    --------
    >>> effective_neighbours(np.array([[1.0, 0.0], [0.5, 0.5]]))
    array([1., 2.])
    """
    _check_square("a", a)
    arr = _numpy(a).astype(np.float64)
    if (arr < 0).any() or not np.allclose(arr.sum(1), 1.0, atol=1e-6):
        raise ValueError("a must have non-negative rows that sum to one")
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(arr > 0, arr * np.log(arr), 0.0)
    out = np.exp(-plogp.sum(1))
    return torch.from_numpy(out).to(a.dtype) if isinstance(a, torch.Tensor) else out


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
    from .viz import PALETTE, label, new_figure

    qa, ka = _numpy(q), _numpy(k)
    if qa.ndim != 2 or qa.shape[1] != 2 or ka.shape != qa.shape:
        raise ValueError(f"q and k must both have shape [n, 2], got {qa.shape} and {ka.shape}")
    if ax is None:
        _, ax = new_figure()
    for i, (a, b) in enumerate(zip(qa, ka)):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=PALETTE["reference"], lw=0.6, alpha=0.6)
        ax.annotate(str(i), a, textcoords="offset points", xytext=(4, 4), fontsize=8,
                    color=PALETTE["dot"])
        ax.annotate(str(i), b, textcoords="offset points", xytext=(4, 4), fontsize=8,
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


# --------------------------------------------------------------------------------------------
# Walks and diffusion
# --------------------------------------------------------------------------------------------


def k_hop(a, k: int):
    """``a`` to the power ``k``: entry ``[i, j]`` sums the weights of all ``k``-step walks ``i -> j``.

    For a 0/1 adjacency matrix this counts walks of length ``k``; for a row-stochastic attention
    matrix it is the probability that a ``k``-step random walk from ``i`` (following the arrows,
    i.e. attending ``k`` times) ends at ``j``, the weight with which ``V[j]`` reaches ``i`` after
    ``k`` attention steps. ``k = 0`` gives the identity.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    k : int >= 0

    Returns
    -------
    Same type, shape and dtype as ``a``.

    Examples
    --------
    >>> k_hop(np.array([[0, 1], [1, 0]]), 3)
    array([[0, 1],
           [1, 0]])
    """
    _check_square("a", a)
    k = _check_int("k", k, 0)
    if isinstance(a, torch.Tensor):
        return torch.linalg.matrix_power(a, k)
    return np.linalg.matrix_power(np.asarray(a), k)


def reach(a, k: int, *, tol: float = 0.0):
    """Which nodes a walk of *at most* ``k`` steps can reach: ``reach[i, j]`` iff ``j`` is within ``k`` hops of ``i``.

    Edges are the entries with ``|a[i, j]| > tol``. Since ``j`` at distance ``0`` is ``i``
    itself, the diagonal is always True. In attention terms: after ``k`` layers, token ``i`` can
    have received information from token ``j`` only if ``reach[i, j]``.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    k : int >= 0
    tol : float >= 0

    Returns
    -------
    Bool array of the same kind as ``a``, ``[n, n]``.

    Examples
    --------
    >>> path = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    >>> reach(path, 1).astype(int)
    array([[1, 1, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    _check_square("a", a)
    k = _check_int("k", k, 0)
    if isinstance(tol, bool) or not (float(tol) >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    arr = _numpy(a)
    step = (np.abs(arr) > tol) | np.eye(arr.shape[0], dtype=bool)
    out = np.eye(arr.shape[0], dtype=bool)
    for _ in range(k):  # boolean products stay exact, unlike float powers
        out = (out.astype(np.int64) @ step.astype(np.int64)) > 0
    return torch.from_numpy(out) if isinstance(a, torch.Tensor) else out


def _check_values(a, f):
    n = a.shape[0]
    if not isinstance(f, type(a)):
        raise ValueError(f"f must be a {type(a).__name__} like a, got {type(f).__name__}")
    if f.ndim not in (1, 2) or f.shape[0] != n:
        raise ValueError(f"f must have shape [{n}] or [{n}, d], got {tuple(f.shape)}")


def diffuse(a, f, k: int = 1):
    """Diffuse a value function ``f`` over the graph ``k`` times: ``a^k @ f``.

    With ``a`` an attention matrix and ``f = V``, ``k = 1`` is one attention layer's output
    ``A V`` (node ``i`` averages the values of the nodes it attends to).

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    f : same kind as ``a``, ``[n]`` or ``[n, d]``
    k : int >= 0

    Returns
    -------
    Same shape as ``f``.

    Examples
    --------
    >>> a = np.array([[0.5, 0.5], [0.0, 1.0]])
    >>> diffuse(a, np.array([2.0, 4.0]), k=2)
    array([3.5, 4. ])
    """
    _check_square("a", a)
    _check_values(a, f)
    return k_hop(a, k) @ f


def diffusion_trajectory(a, f, k: int):
    """The values after ``0, 1, ..., k`` diffusion steps, stacked: ``out[t] = a^t @ f``.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    f : same kind as ``a``, ``[n]`` or ``[n, d]``
    k : int >= 0

    Returns
    -------
    ``[k + 1, *f.shape]``, same kind as ``a``.

    Examples
    --------
    >>> diffusion_trajectory(np.eye(2), np.array([1.0, 2.0]), 2).shape
    (3, 2)
    """
    _check_square("a", a)
    _check_values(a, f)
    k = _check_int("k", k, 0)
    out = [f]
    for _ in range(k):
        out.append(a @ out[-1])
    return torch.stack(out) if isinstance(a, torch.Tensor) else np.stack(out)


def compose_layers(mats, *, residual: float = 0.0):
    """The token-mixing matrix of a stack of attention layers (value maps and MLPs left out).

    Layer ``l`` mixes tokens with ``M_l = (1 - residual) A_l + residual I`` (a residual
    connection keeps part of each token's own state); the stack applies ``M_1`` first, so the
    total is ``M_L ... M_2 M_1``. With one matrix repeated ``L`` times and ``residual = 0`` this
    is ``k_hop(A, L)``: depth buys walks of ``L`` hops, each hop through a different graph.

    Parameters
    ----------
    mats : sequence of ``[n, n]`` matrices (all Tensors or all ndarrays), at least one
    residual : float in ``[0, 1]``

    Returns
    -------
    ``[n, n]``, same kind as the inputs.

    Examples
    --------
    >>> a = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> compose_layers([a, a, a])
    array([[0., 1.],
           [1., 0.]])
    """
    mats = list(mats)
    if not mats:
        raise ValueError("mats must contain at least one matrix")
    for idx, m in enumerate(mats):
        _check_square(f"mats[{idx}]", m)
        if type(m) is not type(mats[0]) or m.shape != mats[0].shape:
            raise ValueError(f"mats[{idx}] must match mats[0] in kind and shape")
    if isinstance(residual, bool) or not (0.0 <= float(residual) <= 1.0):
        raise ValueError(f"residual must be a number in [0, 1], got {residual!r}")
    r = float(residual)
    n = mats[0].shape[0]
    if isinstance(mats[0], torch.Tensor):
        eye = torch.eye(n, dtype=mats[0].dtype, device=mats[0].device)
    else:
        eye = np.eye(n, dtype=np.result_type(mats[0].dtype, np.float64) if r else mats[0].dtype)
    total = eye
    for m in mats:
        total = ((1 - r) * m + r * eye if r else m) @ total
    return total


def attention_received(a):
    """Total attention each key receives, the column sums of ``a`` (in-weight of each node).

    Every query hands out a total weight of one, so the entries sum to ``n``; a node holding a
    large share is an attention sink.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``

    Returns
    -------
    ``[n]``, same kind as ``a``.

    Examples
    --------
    >>> attention_received(np.array([[1.0, 0.0], [0.9, 0.1]]))
    array([1.9, 0.1])
    """
    _check_square("a", a)
    return a.sum(0)


# --------------------------------------------------------------------------------------------
# Weisfeiler-Lehman colour refinement
# --------------------------------------------------------------------------------------------


def _initial(g, initial) -> dict:
    """Initial node labels: all equal, a node attribute name, or a dict node -> label."""
    if initial is None:
        return {v: 0 for v in g}
    if isinstance(initial, str):
        missing = [v for v in g if initial not in g.nodes[v]]
        if missing:
            raise ValueError(f"initial: node {missing[0]!r} has no attribute {initial!r}")
        return {v: g.nodes[v][initial] for v in g}
    if isinstance(initial, dict):
        missing = [v for v in g if v not in initial]
        if missing:
            raise ValueError(f"initial has no label for node {missing[0]!r}")
        return {v: initial[v] for v in g}
    raise ValueError(f"initial must be None, an attribute name or a dict, got {type(initial).__name__}")


def _compress(maps: list[dict]) -> list[dict]:
    """Replace arbitrary labels by small ints, with one palette shared by all graphs."""
    labels = sorted({repr(x) for m in maps for x in m.values()})
    palette = {s: i for i, s in enumerate(labels)}
    return [{v: palette[repr(x)] for v, x in m.items()} for m in maps]


def _wl_signature(g, col, v):
    return (col[v], tuple(sorted(col[u] for u in g[v])))


def _triangle_signature(g, col, v):
    nbrs = [u for u in g[v] if u != v]
    tri = sorted(tuple(sorted((col[u], col[w])))
                 for u, w in itertools.combinations(nbrs, 2) if g.has_edge(u, w))
    return (col[v], tuple(sorted(col[u] for u in g[v])), tuple(tri))


def _fwl_signature(g, col, uv):
    u, v = uv
    return (col[uv], tuple(sorted((col[(u, w)], col[(w, v)]) for w in g)))


def _n_classes(maps: list[dict]) -> int:
    return len({c for m in maps for c in m.values()})


def _joint_refine(graphs, col0, signature, rounds):
    """Refine colourings of several graphs with one shared palette; stop when stable.

    Returns one history per graph: ``[colours_0, colours_1, ...]``. Every signature contains the
    old colour, so the partition only ever splits; once a round splits nothing, it never will
    again and the history stops (the stable colouring is the last entry).
    """
    cols = _compress(col0)
    hist = [[c] for c in cols]
    limit = rounds if rounds is not None else sum(len(c) for c in cols) + 1
    for _ in range(limit):
        sigs = [{x: signature(g, c, x) for x in c} for g, c in zip(graphs, cols)]
        new = _compress(sigs)
        if rounds is None and _n_classes(new) == _n_classes(cols):
            break
        cols = new
        for h, c in zip(hist, cols):
            h.append(c)
    return hist


_METHODS = {"wl": _wl_signature, "triangle": _triangle_signature}


def _check_method(method, allowed):
    if method not in allowed:
        raise ValueError(f"method must be one of {sorted(allowed)}, got {method!r}")


def wl_colours(g, *, rounds: int | None = None, initial=None, method: str = "wl") -> list[dict]:
    """Colour refinement on an undirected graph: the history of node colourings.

    ``method="wl"`` is 1-WL: a node's new colour is determined by its old colour and the multiset
    of its neighbours' colours. ``method="triangle"`` also uses the multiset of colour pairs
    ``{c(u), c(w)}`` over the neighbours ``u, w`` that are adjacent to each other, i.e. over the
    triangles the node belongs to. Colours are small ints (the same signature gets the same int).

    Parameters
    ----------
    g : networkx.Graph (undirected)
    rounds : int >= 0, optional
        Run exactly this many rounds; default: until the partition is stable.
    initial : None, str or dict, optional
        Initial labels: all equal (default), a node attribute name, or ``{node: label}``.
    method : ``"wl"`` or ``"triangle"``

    Returns
    -------
    list of dict ``{node: int}``: round 0 (initial) first, the stable colouring last.

    Examples
    --------
    >>> hist = wl_colours(nx.path_graph(3))
    >>> [h[0] == h[2] != h[1] for h in hist[1:]]
    [True]
    """
    _check_graph("g", g)
    _check_method(method, _METHODS)
    if rounds is not None:
        rounds = _check_int("rounds", rounds, 0)
    return _joint_refine([g], [_initial(g, initial)], _METHODS[method], rounds)[0]


def stable_partition(g, *, initial=None, method: str = "wl") -> list[frozenset]:
    """The stable colour classes of :func:`wl_colours`, as sets of nodes (sorted, largest first).

    Parameters
    ----------
    g : networkx.Graph (undirected)
    initial, method : as in :func:`wl_colours`

    Returns
    -------
    list of frozenset

    Examples
    --------
    >>> stable_partition(nx.path_graph(3))
    [frozenset({0, 2}), frozenset({1})]
    """
    final = wl_colours(g, initial=initial, method=method)[-1]
    classes: dict[int, set] = {}
    for v, c in final.items():
        classes.setdefault(c, set()).add(v)
    return sorted((frozenset(s) for s in classes.values()),
                  key=lambda s: (-len(s), repr(_sorted_nodes(s))))


def _fwl_initial(g) -> dict:
    return {(u, v): (u == v, g.has_edge(u, v)) for u in g for v in g}


def folklore_wl_colours(g, *, rounds: int | None = None) -> list[dict]:
    """2-dimensional folklore Weisfeiler-Lehman (2-FWL, as strong as 3-WL): colours of node *pairs*.

    A pair ``(u, v)`` starts coloured by (``u == v``, ``u ~ v``); each round its new colour is its
    old colour with the multiset, over all nodes ``w``, of the colour pairs
    ``(c(u, w), c(w, v))``. Costs ``n^3`` per round: small graphs only.

    Parameters
    ----------
    g : networkx.Graph (undirected)
    rounds : int >= 0, optional (default: until stable)

    Returns
    -------
    list of dict ``{(u, v): int}``, round 0 first.

    Examples
    --------
    >>> len(folklore_wl_colours(nx.path_graph(3))[-1])
    9
    """
    _check_graph("g", g)
    if rounds is not None:
        rounds = _check_int("rounds", rounds, 0)
    return _joint_refine([g], [_fwl_initial(g)], _fwl_signature, rounds)[0]


def colour_histogram(colours: dict) -> Counter:
    """How many nodes (or pairs) carry each colour.

    Examples
    --------
    >>> colour_histogram({"a": 0, "b": 1, "c": 0})
    Counter({0: 2, 1: 1})
    """
    return Counter(colours.values())


def wl_distinguishes(g1, g2, *, method: str = "wl", initial1=None, initial2=None) -> bool:
    """Whether a refinement test tells two graphs apart (True means "certainly not isomorphic").

    Both graphs are refined together with one shared palette until the joint partition is
    stable; the test distinguishes them iff at some round their colour histograms differ.
    ``False`` means the test cannot tell them apart, not that they are isomorphic.

    Parameters
    ----------
    g1, g2 : networkx.Graph (undirected)
    method : ``"wl"`` (1-WL), ``"triangle"`` (triangle-aware) or ``"2fwl"`` (folklore 2-WL)
    initial1, initial2 : optional initial node labels (as ``initial`` in :func:`wl_colours`);
        not used by ``"2fwl"``.

    Returns
    -------
    bool

    Examples
    --------
    >>> c6, two_triangles = cycle_vs_triangles()
    >>> wl_distinguishes(c6, two_triangles), wl_distinguishes(c6, two_triangles, method="triangle")
    (False, True)
    """
    _check_graph("g1", g1)
    _check_graph("g2", g2)
    _check_method(method, {"wl", "triangle", "2fwl"})
    if method == "2fwl":
        hists = _joint_refine([g1, g2], [_fwl_initial(g1), _fwl_initial(g2)], _fwl_signature, None)
    else:
        hists = _joint_refine([g1, g2], [_initial(g1, initial1), _initial(g2, initial2)],
                              _METHODS[method], None)
    return any(colour_histogram(a) != colour_histogram(b) for a, b in zip(*hists))


def cycle_vs_triangles(n: int = 3) -> tuple[nx.Graph, nx.Graph]:
    """A classic pair 1-WL cannot separate: the cycle ``C_{2n}`` and two disjoint ``n``-cycles.

    Both are 2-regular on ``2n`` nodes, so every node always sees two neighbours of its own
    colour. With ``n = 3`` (the default) the second graph is two disjoint triangles.

    Parameters
    ----------
    n : int >= 3

    Returns
    -------
    (networkx.Graph, networkx.Graph) on nodes ``0..2n-1``.

    Examples
    --------
    >>> c6, tt = cycle_vs_triangles()
    >>> nx.is_isomorphic(c6, tt), c6.number_of_edges() == tt.number_of_edges()
    (False, True)
    """
    n = _check_int("n", n, 3)
    big = nx.cycle_graph(2 * n)
    two = nx.disjoint_union(nx.cycle_graph(n), nx.cycle_graph(n))
    return big, two


def draw_coloured_graph(g, colours: dict, ax=None, *, title: str | None = None, pos=None):
    """Draw an undirected graph with nodes filled by their (integer) colour classes.

    Parameters
    ----------
    g : networkx.Graph
    colours : dict ``{node: int}`` (e.g. one entry of :func:`wl_colours`)
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
    import matplotlib.pyplot as plt

    from .viz import new_figure

    if ax is None:
        _, ax = new_figure()
    if pos is None:
        pos = nx.spring_layout(g, seed=0) if g.number_of_nodes() > 1 else {v: np.zeros(2) for v in g}
    cmap = plt.get_cmap("tab10")
    nx.draw_networkx(g, pos, ax=ax, node_color=[cmap(colours[v] % 10) for v in g],
                     edgecolors="black", node_size=380, font_size=8, font_color="white")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return pos


def message_passing(g, x, weights, *, attention: bool = False):
    """Run a stack of message-passing layers (sum or attention aggregation) on a graph.

    Layer ``W`` maps node states ``h`` to ``tanh(h W_self + sum_{u in N(v)} a_vu h_u W_nbr)`` with
    ``a_vu = 1`` (sum aggregation, a GIN-like update) or, with ``attention=True``,
    ``a_vu = softmax_u(<h_v W_self, h_u W_nbr>)`` over the neighbours (attention restricted to the
    graph's edges, no positional information). Either way the update of ``v`` depends only on
    ``h_v`` and the multiset of neighbour states, which is exactly what 1-WL colours track.

    Parameters
    ----------
    g : networkx.Graph on nodes ``0..n-1``
    x : Tensor ``[n, d]`` initial node states
    weights : sequence of ``(W_self, W_nbr)`` pairs of Tensors ``[d, d]``
    attention : bool

    Returns
    -------
    Tensor ``[n, d]`` final node states.

    Examples
    --------
    >>> W = [(torch.eye(2), torch.eye(2))]
    >>> message_passing(nx.path_graph(3), torch.ones(3, 2), W).shape
    torch.Size([3, 2])
    """
    _check_graph("g", g)
    n = g.number_of_nodes()
    if set(g.nodes) != set(range(n)):
        raise ValueError("g must have nodes 0..n-1")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != n:
        raise ValueError(f"x must be a Tensor [{n}, d], got {getattr(x, 'shape', type(x).__name__)}")
    adj = torch.zeros(n, n, dtype=x.dtype)
    for u, v in g.edges:
        adj[u, v] = adj[v, u] = 1.0
    h = x
    for w_self, w_nbr in weights:
        own, msg = h @ w_self, h @ w_nbr
        if attention:
            logits = (own @ msg.T).masked_fill(adj == 0, float("-inf"))
            mix = torch.nan_to_num(torch.softmax(logits, dim=-1))  # isolated nodes: no messages
        else:
            mix = adj
        h = torch.tanh(own + mix @ msg)
    return h


# --------------------------------------------------------------------------------------------
# Simplices (cliques) and stars
# --------------------------------------------------------------------------------------------


def _undirected(g) -> nx.Graph:
    if not isinstance(g, nx.Graph):
        raise ValueError(f"g must be a networkx graph, got {type(g).__name__}")
    u = nx.Graph(g)  # a directed edge either way becomes one undirected edge
    u.remove_edges_from(nx.selfloop_edges(u))
    return u


def simplices(g, max_dim: int = 2) -> dict[int, list[tuple]]:
    """The simplices of a graph's clique complex, by dimension, up to ``max_dim``.

    A ``d``-simplex is a set of ``d + 1`` nodes that are pairwise adjacent: nodes (0), edges (1),
    triangles (2), tetrahedra (3), ... Directed graphs are read as undirected (an edge either way
    counts) and self-loops are ignored.

    Parameters
    ----------
    g : networkx.Graph or DiGraph
    max_dim : int >= 0

    Returns
    -------
    dict ``{d: sorted list of sorted node tuples}`` for ``d = 0..max_dim`` (empty lists included).

    Examples
    --------
    >>> simplices(nx.complete_graph(3))[2]
    [(0, 1, 2)]
    """
    max_dim = _check_int("max_dim", max_dim, 0)
    u = _undirected(g)
    out: dict[int, list[tuple]] = {d: [] for d in range(max_dim + 1)}
    for clique in nx.enumerate_all_cliques(u):  # yields cliques in order of size
        d = len(clique) - 1
        if d > max_dim:
            break
        out[d].append(tuple(_sorted_nodes(clique)))
    return {d: _sorted_nodes(s) for d, s in out.items()}


def star(g, node, max_dim: int = 2) -> dict[int, list[tuple]]:
    """The star of ``node``: every simplex (up to ``max_dim``) that contains it.

    The dimension-``d`` part lists the ``d``-simplices incident to ``node``; the 2-simplices are
    the triangles through it, the neighbourhood 2-simplicial attention aggregates over.

    Parameters
    ----------
    g : networkx.Graph or DiGraph
    node : a node of ``g``
    max_dim : int >= 0

    Returns
    -------
    dict ``{d: sorted list of node tuples}``.

    Examples
    --------
    >>> star(nx.complete_graph(4), 0, 2)[2]
    [(0, 1, 2), (0, 1, 3), (0, 2, 3)]
    """
    if not isinstance(g, nx.Graph):
        raise ValueError(f"g must be a networkx graph, got {type(g).__name__}")
    if node not in g:
        raise ValueError(f"node {node!r} is not in the graph")
    return {d: [s for s in simp if node in s] for d, simp in simplices(g, max_dim).items()}
