"""Weisfeiler-Lehman colour refinement: what message passing (and attention without positions) can tell apart.

- :func:`wl_colours`: 1-WL, and a triangle-aware refinement (``method="triangle"``);
- :func:`stable_partition`: the stable colour classes;
- :func:`folklore_wl_colours`: 2-dimensional folklore WL on node pairs;
- :func:`wl_distinguishes`: the refinement test on two graphs with one shared palette;
- :func:`cycle_vs_triangles`: the classic pair 1-WL cannot separate;
- :func:`message_passing`: message-passing layers, whose states 1-WL colours bound.
"""

from __future__ import annotations

import itertools
from collections import Counter

import networkx as nx
import torch

from ._checks import check_graph, check_int, sorted_nodes

__all__ = [
    "wl_colours",
    "stable_partition",
    "folklore_wl_colours",
    "colour_histogram",
    "wl_distinguishes",
    "cycle_vs_triangles",
    "message_passing",
]


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
                 for u, w in itertools.combinations(nbrs, 2)
                 if g.has_edge(u, w))
    return (col[v], tuple(sorted(col[u] for u in g[v])), tuple(tri))


def _clique_signature(g, col, v):
    # Like the triangle signature, one dimension further: the colours of the
    # other members of every triangle (2-simplex) and 4-clique (3-simplex)
    # through v.
    nbrs = sorted((u for u in g[v] if u != v), key=repr)
    cliques = [tuple(sorted(col[u] for u in c)) for size in (2, 3)
               for c in itertools.combinations(nbrs, size)
               if all(g.has_edge(a, b)
                      for a, b in itertools.combinations(c, 2))]
    return (col[v], tuple(sorted(col[u] for u in g[v])),
            tuple(sorted(cliques)))


def _fwl_signature(g, col, uv):
    u, v = uv
    return (col[uv], tuple(sorted((col[(u, w)], col[(w, v)]) for w in g)))


def _n_classes(maps: list[dict]) -> int:
    return len({c for m in maps for c in m.values()})


def _joint_refine(graphs, col0, signature, rounds):
    """Refine colourings of several graphs, one shared palette, until stable.

    Returns one history per graph: ``[colours_0, colours_1, ...]``. Every
    signature contains the old colour, so the partition only ever splits;
    once a round splits nothing, it never will again and the history stops
    (the stable colouring is the last entry).
    """
    cols = _compress(col0)
    hist = [[c] for c in cols]
    limit = rounds if rounds is not None else sum(len(c) for c in cols) + 1
    for _ in range(limit):
        sigs = [{x: signature(g, c, x) for x in c}
                for g, c in zip(graphs, cols)]
        new = _compress(sigs)
        if rounds is None and _n_classes(new) == _n_classes(cols):
            break
        cols = new
        for h, c in zip(hist, cols):
            h.append(c)
    return hist


_METHODS = {"wl": _wl_signature, "triangle": _triangle_signature, "clique": _clique_signature}


def _check_method(method, allowed):
    if method not in allowed:
        raise ValueError(f"method must be one of {sorted(allowed)}, got {method!r}")


def wl_colours(g, *, rounds: int | None = None, initial=None, method: str = "wl") -> list[dict]:
    """Colour refinement on an undirected graph: the history of node colourings.

    ``method="wl"`` is 1-WL: a node's new colour is determined by its old colour and the multiset
    of its neighbours' colours. ``method="triangle"`` also uses the multiset of colour pairs
    ``{c(u), c(w)}`` over the neighbours ``u, w`` that are adjacent to each other, i.e. over the
    triangles the node belongs to. ``method="clique"`` reads, besides the neighbours, the colours
    of the other members of every triangle and every 4-clique through the node: a node-level
    simplification of the simplicial WL test of Bodnar et al. (2021) on the clique complex up to
    dimension 3. Colours are small ints (the same signature gets the same int).

    Parameters
    ----------
    g : networkx.Graph (undirected)
    rounds : int >= 0, optional
        Run exactly this many rounds; default: until the partition is stable.
    initial : None, str or dict, optional
        Initial labels: all equal (default), a node attribute name, or ``{node: label}``.
    method : ``"wl"``, ``"triangle"`` or ``"clique"``

    Returns
    -------
    history : list of dict
        ``{node: int}`` per round, round 0 (initial) first, the stable colouring last.

    Examples
    --------
    >>> hist = wl_colours(nx.path_graph(3))
    >>> [h[0] == h[2] != h[1] for h in hist[1:]]
    [True]
    """
    check_graph("g", g)
    _check_method(method, _METHODS)
    if rounds is not None:
        rounds = check_int("rounds", rounds, 0)
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
                  key=lambda s: (-len(s), repr(sorted_nodes(s))))


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
    history : list of dict
        ``{(u, v): int}`` per round, round 0 first.

    Examples
    --------
    >>> len(folklore_wl_colours(nx.path_graph(3))[-1])
    9
    """
    check_graph("g", g)
    if rounds is not None:
        rounds = check_int("rounds", rounds, 0)
    return _joint_refine([g], [_fwl_initial(g)], _fwl_signature, rounds)[0]


def colour_histogram(colours: dict) -> Counter:
    """How many nodes (or pairs) carry each colour.

    Parameters
    ----------
    colours : dict
        ``{node: colour}`` (or ``{pair: colour}``), e.g. one round of :func:`wl_colours`.

    Returns
    -------
    collections.Counter
        ``{colour: count}``.

    Raises
    ------
    ValueError
        If ``colours`` is not a dict.

    Examples
    --------
    >>> colour_histogram({"a": 0, "b": 1, "c": 0})
    Counter({0: 2, 1: 1})
    """
    if not isinstance(colours, dict):
        raise ValueError(f"colours must be a dict {{node: colour}}, got {type(colours).__name__}")
    return Counter(colours.values())


def wl_distinguishes(g1, g2, *, method: str = "wl", initial1=None, initial2=None) -> bool:
    """Whether a refinement test tells two graphs apart (True means "certainly not isomorphic").

    Both graphs are refined together with one shared palette until the joint partition is
    stable; the test distinguishes them iff at some round their colour histograms differ.
    ``False`` means the test cannot tell them apart, not that they are isomorphic.

    Parameters
    ----------
    g1, g2 : networkx.Graph
        Undirected graphs.
    method : str, default ``"wl"``
        ``"wl"`` (1-WL), ``"triangle"`` (triangle-aware), ``"clique"`` (triangles and
        4-cliques) or ``"2fwl"`` (folklore 2-WL).
    initial1, initial2 : optional
        Initial node labels (as ``initial`` in :func:`wl_colours`); not used by ``"2fwl"``.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If a graph is not a simple undirected networkx graph, ``method`` is not one of the
        four, or an initial labelling is invalid.

    Examples
    --------
    >>> c6, two_triangles = cycle_vs_triangles()
    >>> wl_distinguishes(c6, two_triangles), wl_distinguishes(c6, two_triangles, method="triangle")
    (False, True)
    """
    check_graph("g1", g1)
    check_graph("g2", g2)
    _check_method(method, {"wl", "triangle", "clique", "2fwl"})
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
    n = check_int("n", n, 3)
    big = nx.cycle_graph(2 * n)
    two = nx.disjoint_union(nx.cycle_graph(n), nx.cycle_graph(n))
    return big, two


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
    check_graph("g", g)
    n = g.number_of_nodes()
    if set(g.nodes) != set(range(n)):
        raise ValueError("g must have nodes 0..n-1")
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != n:
        raise ValueError(f"x must be a Tensor [{n}, d], got {getattr(x, 'shape', type(x).__name__)}")
    weights = list(weights)
    d = x.shape[1]
    for idx, pair in enumerate(weights):
        ok = (isinstance(pair, (tuple, list)) and len(pair) == 2
              and all(isinstance(m, torch.Tensor) and tuple(m.shape) == (d, d) for m in pair))
        if not ok:
            raise ValueError(f"weights[{idx}] must be a pair (W_self, W_nbr) of Tensors [{d}, {d}]")
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
