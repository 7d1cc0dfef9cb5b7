"""Simplices of a graph's clique complex and the star of a node.

A ``d``-simplex is a set of ``d + 1`` pairwise adjacent nodes; the 2-simplices through a node (its
star) are the triangles 2-simplicial attention aggregates over.
"""

from __future__ import annotations

import networkx as nx

from ._checks import check_int, sorted_nodes

__all__ = ["simplices", "star"]


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
    max_dim = check_int("max_dim", max_dim, 0)
    u = _undirected(g)
    out: dict[int, list[tuple]] = {d: [] for d in range(max_dim + 1)}
    for clique in nx.enumerate_all_cliques(u):  # yields cliques in order of size
        d = len(clique) - 1
        if d > max_dim:
            break
        out[d].append(tuple(sorted_nodes(clique)))
    return {d: sorted_nodes(s) for d, s in out.items()}


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
