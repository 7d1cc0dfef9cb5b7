"""Triangle-attention explorer: one query's 2-simplicial attention, slice by slice.

The logic is in plain functions: :func:`make_tokens` (random queries, keys and values),
:func:`triangle_state` (the query's ``(j, k)`` weight slice, its strongest triangles and its output
next to dot-product attention's), and :func:`render` (the three-panel matplotlib figure).
:class:`TriangleExplorer` is the interactive version, drawn in the browser by ``js/triangle.js``.
"""

from __future__ import annotations

import math

import torch

from ..ops.two_simplicial import reference as ref
from ..ops.two_simplicial.reference import reduce_values
from .explorer import Explorer, f64_base64

__all__ = ["make_tokens", "triangle_state", "triangle_graph", "render", "TriangleExplorer"]

#: The longest sequence the explorer offers (16**3 = 4096 cells: instant on any machine).
MAX_SEQ = 16
#: Figure size in inches: two rows, so that it stays readable in a narrow page column.
FIGSIZE = (10.0, 8.4)


def _check_int(name: str, x, lo: int, hi: int | None = None) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or x < lo or (hi is not None and x > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an int {rng}, got {x!r}")


def make_tokens(seed: int, seq_len: int, head_dim: int) -> dict:
    """Random ``q, k1, k2, v1, v2`` of shape ``[1, seq_len, 1, head_dim]`` (float64).

    The same ``seed`` always gives the same tokens, so the other controls can be varied on a
    fixed input.

    Parameters
    ----------
    seed : int >= 0
    seq_len : int >= 1, number of tokens
    head_dim : int >= 1

    Returns
    -------
    dict ``name -> Tensor`` for ``q, k1, k2, v1, v2``, standard normal entries.

    Raises
    ------
    ValueError
        If an argument is not an int in its range.

    Examples
    --------
    >>> t = make_tokens(0, 5, 3)
    >>> sorted(t), tuple(t["q"].shape)
    (['k1', 'k2', 'q', 'v1', 'v2'], (1, 5, 1, 3))
    """
    _check_int("seed", seed, 0)
    _check_int("seq_len", seq_len, 1)
    _check_int("head_dim", head_dim, 1)
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(1, seq_len, 1, head_dim, generator=g, dtype=torch.float64)
            for name in ("q", "k1", "k2", "v1", "v2")}


def triangle_state(seq_len: int = 8, head_dim: int = 4, temperature: float = 1.0, w1=None,
                   w2=None, query: int | None = None, reducer: str = "and", seed: int = 0,
                   top: int = 5) -> dict:
    """Everything the explorer shows, for one query of causal 2-simplicial attention.

    The logits are ``<q_i, k1_j, k2_k> / (sqrt(head_dim) * temperature)``; windows as in
    :func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_weights`.

    Parameters
    ----------
    seq_len, head_dim : int
        Tokens and features (random, from ``seed``).
    temperature : float > 0
        Divides the logits: small values sharpen the softmax.
    w1, w2 : int or None
        Sliding windows of the two key sets (``None`` = all earlier tokens).
    query : int, optional
        The query token ``i`` (default: the last one).
    reducer : ``"and"`` or ``"or"``
        Product or sum of the two values of a triangle.
    seed : int
    top : int
        How many of the strongest triangles to list.

    Returns
    -------
    dict with
        ``slice`` : float64 Tensor ``[seq_len, seq_len]``, the weights ``P[i, j, k]`` of the query
        (rows ``j``, columns ``k``; masked cells exactly 0);
        ``visible`` : bool Tensor ``[seq_len, seq_len]``, the cells the mask keeps;
        ``triangles`` : list of ``(i, j, k, weight)``, strongest first;
        ``output`` : Tensor ``[head_dim]``, 2-simplicial output of the query;
        ``dot_output`` : Tensor ``[head_dim]``, dot-product attention ``(q, k1, v1)`` of the query
        over the same first window ``w1``, at the same temperature; ``tokens`` (from
        :func:`make_tokens`), and the arguments.

    Examples
    --------
    >>> s = triangle_state(seq_len=6, w1=2)
    >>> tuple(s["slice"].shape), round(float(s["slice"].sum()), 12)
    ((6, 6), 1.0)
    """
    _check_int("seq_len", seq_len, 1)
    _check_int("top", top, 1)
    if query is None:
        query = seq_len - 1
    _check_int("query", query, 0, seq_len - 1)
    if reducer not in ("and", "or"):
        raise ValueError(f"reducer must be 'and' or 'or', got {reducer!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0 or math.isinf(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    t = make_tokens(seed, seq_len, head_dim)
    scale = 1.0 / (math.sqrt(head_dim) * temperature)
    p = ref.two_simplicial_weights(t["q"], t["k1"], t["k2"], w1=w1, w2=w2, scale=scale)
    out = reduce_values(p, t["v1"], t["v2"], reducer=reducer)
    # dot-product attention of the same query over the same first window (i - w1 < j <= i)
    lo = 0 if w1 is None else max(0, query - w1 + 1)
    a = (t["k1"][0, lo:query + 1, 0] @ t["q"][0, query, 0]) * scale
    dot_row = torch.softmax(a, 0) @ t["v1"][0, lo:query + 1, 0]
    sl = p[0, 0, query]
    visible = ref.two_simplicial_mask(seq_len, w1=w1, w2=w2)[query]
    order = torch.argsort(sl.flatten(), descending=True, stable=True)[: min(top, int(visible.sum()))]
    triangles = [(query, int(c) // seq_len, int(c) % seq_len, float(sl.flatten()[c])) for c in order]
    return {
        "slice": sl, "visible": visible, "triangles": triangles,
        "output": out[0, query, 0], "dot_output": dot_row, "tokens": t,
        "seq_len": seq_len, "head_dim": head_dim, "temperature": temperature, "w1": w1, "w2": w2,
        "query": query, "reducer": reducer, "seed": seed, "scale": scale,
    }


def triangle_graph(state: dict):
    """The strongest triangles of :func:`triangle_state` as a weighted networkx graph.

    Nodes are the tokens ``0..seq_len-1``; each listed triangle ``(i, j, k)`` adds its weight to
    the edges ``i-j``, ``i-k`` and ``j-k`` (a degenerate triangle, e.g. ``j == k``, adds to fewer
    edges). Node attribute ``query`` marks the query.

    Parameters
    ----------
    state : dict from :func:`triangle_state`
        Uses ``seq_len``, ``query`` and ``triangles``.

    Returns
    -------
    networkx.Graph with edge attribute ``weight`` (summed triangle weights).

    Examples
    --------
    >>> g = triangle_graph(triangle_state(seq_len=5, top=1))
    >>> g.number_of_nodes(), g.nodes[4]["query"]
    (5, True)
    """
    import networkx as nx

    g = nx.Graph()
    for v in range(state["seq_len"]):
        g.add_node(v, query=(v == state["query"]))
    for i, j, k, w in state["triangles"]:
        for a, b in {tuple(sorted(e)) for e in ((i, j), (i, k), (j, k)) if e[0] != e[1]}:
            prev = g.edges[a, b]["weight"] if g.has_edge(a, b) else 0.0
            g.add_edge(a, b, weight=prev + w)
    return g


def _draw_triangles(ax, state: dict) -> None:
    """Tokens on a circle; the listed triangles filled with opacity proportional to weight."""
    import networkx as nx
    from matplotlib.patches import Polygon

    from ..viz import PALETTE

    g = triangle_graph(state)
    pos = nx.circular_layout(g)
    wmax = max((w for *_, w in state["triangles"]), default=1.0) or 1.0
    for rank, (i, j, k, w) in enumerate(state["triangles"]):
        pts = [pos[i], pos[j], pos[k]]
        ax.add_patch(Polygon(pts, closed=True, facecolor=PALETTE["simplicial"],
                             alpha=0.6 * w / wmax, edgecolor="none", zorder=1))
    widths = [1 + 5 * d["weight"] / wmax for *_, d in g.edges(data=True)]
    nx.draw_networkx_edges(g, pos, ax=ax, width=widths, edge_color=PALETTE["simplicial"], alpha=0.8)
    colours = [PALETTE["accent3"] if g.nodes[v]["query"] else "#dddddd" for v in g.nodes]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, node_size=300, edgecolors="black")
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{len(state['triangles'])} strongest triangles through token {state['query']}")


def render(state: dict, fig=None):
    """Draw a :func:`triangle_state`: the weight slice, the strongest triangles, the outputs.

    Parameters
    ----------
    state : dict from :func:`triangle_state`
    fig : matplotlib Figure, optional
        Cleared and drawn on; without one, a new pyplot figure of size ``FIGSIZE`` is made.

    Returns
    -------
    matplotlib Figure
        The heatmap (with its colour bar) and the triangle drawing on top, the bar chart of the
        output vectors below.

    Examples
    --------
    >>> fig = render(triangle_state(seq_len=6))  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from ..viz import PALETTE, heatmap, label, use_style

    use_style()
    if fig is None:
        fig = plt.figure(figsize=FIGSIZE)
    fig.clf()
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1.0], width_ratios=[1.2, 1.0])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    sl = state["slice"].numpy().copy()
    sl[~state["visible"].numpy()] = np.nan  # masked cells drawn blank, not as weight 0
    win = lambda w: "all" if w is None else str(w)  # noqa: E731
    heatmap(axes[0], sl, xlabel="second key l (token index)", ylabel="first key j (token index)",
            colorbar_label="weight $P_{ijk}$ (probability)", vmin=0,
            title=f"query i = {state['query']}, w1 = {win(state['w1'])}, w2 = {win(state['w2'])}")
    axes[0].set_facecolor("#e6e6e6")  # masked cells show as grey
    _draw_triangles(axes[1], state)
    d = state["head_dim"]
    idx = np.arange(d)
    name = "AND: $v_j\\circ v'_k$" if state["reducer"] == "and" else "OR: $v_j + v'_k$"
    axes[2].bar(idx - 0.2, state["output"].numpy(), width=0.4, color=PALETTE["simplicial"],
                label=f"2-simplicial ({name})")
    axes[2].bar(idx + 0.2, state["dot_output"].numpy(), width=0.4, color=PALETTE["dot"],
                label="dot-product $(q, k, v)$, window $w_1$")
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set_xticks(idx)
    axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    label(axes[2], "output feature m (index)", "output $o_i[m]$ (value units)",
          f"output of query {state['query']}")
    fig.tight_layout()
    return fig


class TriangleExplorer(Explorer):
    """Controls for :func:`triangle_state` and its picture, drawn in the browser.

    Sliders: sequence length (up to 16), head dimension, temperature, windows ``w1``/``w2``
    (the largest value means no window), query token, value reducer (AND/OR) and random seed.
    The front end (``js/triangle.js``) recomputes the slice, the triangles and both outputs from
    the tokens of :func:`make_tokens`, which Python sends; ``state`` is :func:`triangle_state` at
    the current settings. The static book page ships the tokens of seeds 0-2 at head dimensions
    2, 4 and 8; a kernel offers seeds 0-50 and every head dimension up to 16. The wiring is
    :class:`~simplex_lib.widgets.explorer.Explorer`'s.

    Parameters
    ----------
    seq_len, head_dim, temperature, w1, w2, query, reducer, seed
        Initial values (see :func:`triangle_state`; ``None`` windows mean "all").

    Examples
    --------
    >>> ex = TriangleExplorer(seq_len=6)
    >>> bool((ex.set(w1=2)["slice"][:4] == 0).all())
    True
    """

    name = "triangle"
    caption = ("Try: drag the temperature toward 0.03 and watch one key pair take the weight; "
               "shrink w1 and rows of the slice turn grey.")
    #: Seeds and head dimensions whose tokens the static page ships.
    static_seeds = range(3)
    static_head_dims = (2, 4, 8)

    def __init__(self, seq_len: int = 8, head_dim: int = 4, temperature: float = 1.0, w1=None,
                 w2=None, query: int | None = None, reducer: str = "and", seed: int = 0):
        _check_int("seq_len", seq_len, 1, MAX_SEQ)
        query = seq_len - 1 if query is None else query
        super().__init__({"seq_len": seq_len, "head_dim": head_dim, "temperature": temperature,
                          "w1": MAX_SEQ if w1 is None else w1, "w2": MAX_SEQ if w2 is None else w2,
                          "query": query, "reducer": reducer, "seed": seed})

    def controls(self, static: bool) -> list:
        def choice(name, label, kernel_max, offered):
            if static:
                return {"name": name, "label": label, "type": "values",
                        "values": sorted({*offered, self.values.get(name, 0)})}
            return {"name": name, "label": label, "type": "int", "min": 0 if name == "seed" else 1,
                    "max": kernel_max}

        return [
            {"name": "seq_len", "label": "tokens n", "type": "int", "min": 1, "max": MAX_SEQ},
            choice("head_dim", "head dim d", 16, self.static_head_dims),
            choice("seed", "seed", 50, self.static_seeds),
            {"name": "temperature", "label": "temperature", "type": "log", "min": -1.5, "max": 1,
             "step": 0.05},
            {"name": "w1", "label": "window w1", "type": "int", "min": 1, "max": MAX_SEQ,
             "all_at_max": True},
            {"name": "w2", "label": "window w2", "type": "int", "min": 1, "max": MAX_SEQ,
             "all_at_max": True},
            {"name": "query", "label": "query i", "type": "int", "min": 0, "max_from": "seq_len"},
            {"name": "reducer", "label": "values", "type": "choice",
             "options": [["AND (product)", "and"], ["OR (sum)", "or"]]},
        ]

    def spec_extra(self) -> dict:
        return {"max_seq": MAX_SEQ}

    def payload_key(self, values: dict) -> str:
        return f"{values['seed']}/{values['seq_len']}/{values['head_dim']}"

    def payload(self, values: dict) -> dict:
        t = make_tokens(values["seed"], values["seq_len"], values["head_dim"])
        return {name: f64_base64(x[0, :, 0]) for name, x in t.items()}

    def static_values(self) -> list:
        seeds = sorted({*self.static_seeds, self.values["seed"]})
        dims = sorted({*self.static_head_dims, self.values["head_dim"]})
        return [{"seed": s, "seq_len": n, "head_dim": d} for s in seeds for d in dims
                for n in range(1, MAX_SEQ + 1)]

    @staticmethod
    def arguments(values: dict) -> dict:
        """Settings as keyword arguments of :func:`triangle_state` (window ``MAX_SEQ`` = none).

        Parameters
        ----------
        values : dict
            The explorer's settings; the windows ``w1``, ``w2`` are ints, ``MAX_SEQ`` meaning "all".

        Returns
        -------
        dict, a copy of ``values`` with ``w1``/``w2`` set to None where they are >= ``MAX_SEQ``.
        """
        v = dict(values)
        for name in ("w1", "w2"):
            v[name] = None if v[name] >= MAX_SEQ else v[name]
        return v

    def compute(self, values: dict) -> dict:
        return triangle_state(**self.arguments(values))

    def figure(self, state: dict):
        from matplotlib.figure import Figure

        return render(state, Figure(figsize=FIGSIZE))
