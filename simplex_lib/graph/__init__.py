"""Attention read as a graph: edges, walks and diffusion, Weisfeiler-Lehman, simplices, drawing.

An attention matrix ``A`` (``[n, n]``, rows are queries, each row a distribution over keys) is
the weighted adjacency matrix of a directed graph on the tokens; the edge ``i -> j`` carries
``A[i, j]`` (query ``i`` attends to key ``j``). The package is split by concept:

- :mod:`~simplex_lib.graph.attention`: :func:`attention_matrix`, :func:`attention_graph`,
  :func:`effective_neighbours`, :func:`attention_received`;
- :mod:`~simplex_lib.graph.walks`: :func:`k_hop`, :func:`reach`, :func:`diffuse`,
  :func:`diffusion_trajectory`, :func:`compose_layers`;
- :mod:`~simplex_lib.graph.weisfeiler_lehman`: :func:`wl_colours`, :func:`stable_partition`,
  :func:`folklore_wl_colours`, :func:`colour_histogram`, :func:`wl_distinguishes`,
  :func:`cycle_vs_triangles`, :func:`message_passing` (message passing, bounded by 1-WL);
- :mod:`~simplex_lib.graph.complexes`: :func:`simplices`, :func:`star`;
- :mod:`~simplex_lib.graph.drawing`: :func:`draw_attention_graph`, :func:`draw_query_key_points`,
  :func:`draw_coloured_graph`, :func:`persistent_class_colours`.

Every public name is re-exported here, so ``from simplex_lib import graph; graph.k_hop(...)``
works.
"""

from . import attention, complexes, drawing, walks, weisfeiler_lehman
from .attention import attention_graph, attention_matrix, attention_received, effective_neighbours
from .complexes import simplices, star
from .drawing import (
    draw_attention_graph,
    draw_coloured_graph,
    draw_query_key_points,
    persistent_class_colours,
)
from .walks import compose_layers, diffuse, diffusion_trajectory, k_hop, reach
from .weisfeiler_lehman import (
    colour_histogram,
    cycle_vs_triangles,
    folklore_wl_colours,
    message_passing,
    stable_partition,
    wl_colours,
    wl_distinguishes,
)

__all__ = [
    # modules
    "attention", "walks", "weisfeiler_lehman", "complexes", "drawing",
    # attention graphs
    "attention_matrix", "attention_graph", "effective_neighbours", "attention_received",
    # walks and diffusion
    "k_hop", "reach", "diffuse", "diffusion_trajectory", "compose_layers",
    # Weisfeiler-Lehman
    "wl_colours", "stable_partition", "folklore_wl_colours", "colour_histogram",
    "wl_distinguishes", "cycle_vs_triangles", "message_passing",
    # simplices
    "simplices", "star",
    # drawing
    "draw_attention_graph", "draw_query_key_points", "draw_coloured_graph",
    "persistent_class_colours",
]
