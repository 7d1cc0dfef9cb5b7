"""Graph-attention explorer (chapter 1): temperature, query token and k-hop power.

The logic is in plain functions that return data (:func:`make_tokens`, :func:`explorer_data`,
:func:`render`, the matplotlib picture used in the chapter); :class:`GraphExplorer` is the
interactive version, drawn in the browser by ``js/graph.js`` from the same tokens.
"""

from __future__ import annotations

import math

import torch

from .. import graph
from .explorer import Explorer, f64_base64

__all__ = ["make_tokens", "explorer_data", "render", "GraphExplorer"]


def make_tokens(seed: int, n: int, d: int = 8, *, sink: float = 0.0) -> dict:
    """Random token embeddings and their query/key/value projections (one head, float64).

    ``x`` has ``n`` rows drawn from a standard normal; ``q, k, v = x W_q, x W_k, x W_v`` with
    random ``[d, d]`` projections scaled by ``1/sqrt(d)``. ``sink > 0`` plants an attention sink:
    every query gets ``sink * u`` added and key 0 gets ``sink * u`` too, for one random unit
    vector ``u``, so that every query's logit for key 0 grows by about ``sink**2 / sqrt(d)``.

    Parameters
    ----------
    seed : int
    n : int >= 1, number of tokens
    d : int >= 1, head dimension
    sink : float >= 0

    Returns
    -------
    dict with Tensors ``x, q, k, v`` of shape ``[n, d]`` and the unit vector ``u`` ``[d]``.

    Examples
    --------
    >>> t = make_tokens(0, 5, 4)
    >>> t["q"].shape, t["q"].dtype
    (torch.Size([5, 4]), torch.float64)
    """
    for name, val in (("n", n), ("d", d)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    if not (isinstance(sink, (int, float)) and sink >= 0 and math.isfinite(sink)):
        raise ValueError(f"sink must be a finite number >= 0, got {sink!r}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    wq, wk, wv = (torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d) for _ in range(3))
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u = u / u.norm()
    q, k, v = x @ wq, x @ wk, x @ wv
    q = q + sink * u
    k[0] = k[0] + sink * u
    return {"x": x, "q": q, "k": k, "v": v, "u": u}


def explorer_data(seed: int = 0, n: int = 8, temperature: float = 1.0, query: int = 0,
                  hops: int = 1, *, causal: bool = True, sink: float = 0.0, d: int = 8) -> dict:
    """Everything the explorer shows, for one setting of its controls.

    Parameters
    ----------
    seed, n, d, sink : as in :func:`make_tokens`
    temperature : float > 0, divides the logits
    query : int in ``[0, n)``, the token whose row is inspected
    hops : int >= 0, the power ``k`` of the attention matrix
    causal : bool

    Returns
    -------
    dict with ``tokens`` (from :func:`make_tokens`), ``A`` ``[n, n]`` (attention matrix),
    ``Ak`` ``[n, n]`` (``A`` to the power ``hops``), ``row`` and ``row_k`` ``[n]`` (the query's
    rows of ``A`` and ``Ak``), ``received`` ``[n]`` (column sums of ``A``), ``out`` ``[n, d]``
    (``Ak @ v``), and the control values.

    Examples
    --------
    >>> data = explorer_data(seed=1, n=4, query=2, hops=2)
    >>> bool(torch.allclose(data["row_k"], (data["A"] @ data["A"])[2]))
    True
    """
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < n:
        raise ValueError(f"query must be an int in [0, {n}), got {query!r}")
    tokens = make_tokens(seed, n, d, sink=sink)
    a = graph.attention_matrix(tokens["q"], tokens["k"], temperature=temperature, causal=causal)
    ak = graph.k_hop(a, hops)
    return {
        "tokens": tokens, "A": a, "Ak": ak, "row": a[query], "row_k": ak[query],
        "received": graph.attention_received(a), "out": ak @ tokens["v"],
        "seed": seed, "n": n, "temperature": float(temperature), "query": query, "hops": hops,
        "causal": causal, "sink": sink,
    }


def render(data: dict, fig=None):
    """Draw :func:`explorer_data`'s output: heatmap of ``P^k``, the query's row, the graph of ``P``.

    Parameters
    ----------
    data : dict from :func:`explorer_data`
    fig : matplotlib Figure, optional
        Cleared and drawn on (the explorer reuses one); default: a new 13.5 x 4 inch pyplot figure.

    Returns
    -------
    matplotlib Figure with three axes.

    Examples
    --------
    >>> fig = render(explorer_data(n=5))  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    from ..viz import PALETTE, heatmap, label, use_style

    use_style()
    if fig is None:
        fig = plt.figure(figsize=(13.5, 4.0))
    fig.clf()
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1.0, 1.1]})
    n, k, qi = data["n"], data["hops"], data["query"]
    heatmap(axes[0], data["Ak"], xlabel="key token j", ylabel="query token i", vmin=0, vmax=1,
            title=f"$P^{{{k}}}$ at temperature {data['temperature']:.2g}",
            colorbar_label="weight of i -> j walks")
    axes[0].axhline(qi, color=PALETTE["simplicial"], lw=1.5, alpha=0.8)
    idx = torch.arange(n).numpy()
    axes[1].bar(idx - 0.2, data["row"].numpy(), width=0.4, color=PALETTE["dot"], label="$P$ (one hop)")
    axes[1].bar(idx + 0.2, data["row_k"].numpy(), width=0.4, color=PALETTE["simplicial"],
                label=f"$P^{{{k}}}$ ({k} hops)")
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(loc="upper right")
    label(axes[1], "key token j", "attention weight (probability)", f"row of query {qi}")
    graph.draw_attention_graph(data["A"], axes[2], top_k=min(2, n), highlight=qi,
                               title="graph of $P$ (2 heaviest out-edges per node)")
    fig.tight_layout()
    return fig


class GraphExplorer(Explorer):
    """Seed, sequence length, temperature, query token, hop count and causal mask, plus the picture.

    The picture and its numbers are computed by the front end (``js/graph.js``) from the tokens
    of :func:`make_tokens`, which Python sends; ``state`` (also ``data``) is
    :func:`explorer_data` at the current settings, the numbers the front end reproduces. The
    static book page ships the tokens of seeds 0-4; a kernel offers seeds 0-20. The wiring is
    :class:`~simplex_lib.widgets.explorer.Explorer`'s.

    Parameters
    ----------
    seed, n, temperature, query, hops, causal, sink : initial settings (see
        :func:`explorer_data`; ``sink`` is fixed for the explorer's lifetime)

    Examples
    --------
    >>> ex = GraphExplorer(n=6)
    >>> float(ex.set(temperature=0.01)["row"].max()) > 0.9
    True
    """

    name = "graph"
    caption = ("Try: drag the temperature toward 0.01 and each row keeps one key; raise the hops k "
               "and watch the walks drain into the sink, token 0.")
    #: Head dimension of the explorer's tokens.
    d = 8
    #: Seeds whose tokens the static page ships.
    static_seeds = range(5)

    def __init__(self, seed: int = 0, n: int = 8, temperature: float = 1.0, query: int = 5,
                 hops: int = 1, causal: bool = True, sink: float = 2.0):
        self.sink = sink
        super().__init__({"seed": seed, "n": n, "temperature": temperature,
                          "query": min(query, n - 1), "hops": hops, "causal": causal})

    def controls(self, static: bool) -> list:
        seeds = sorted({*self.static_seeds, self.values.get("seed", 0)}) if static else None
        return [
            {"name": "seed", "label": "seed", "type": "values", "values": seeds} if static
            else {"name": "seed", "label": "seed", "type": "int", "min": 0, "max": 20},
            {"name": "n", "label": "tokens n", "type": "int", "min": 1, "max": 16},
            {"name": "temperature", "label": "temperature", "type": "log", "min": -2, "max": 1.3,
             "step": 0.05},
            {"name": "query", "label": "query i", "type": "int", "min": 0, "max_from": "n"},
            {"name": "hops", "label": "hops k", "type": "int", "min": 0, "max": 12},
            {"name": "causal", "label": "causal mask", "type": "bool"},
        ]

    def payload_key(self, values: dict) -> str:
        return f"{values['seed']}/{values['n']}"

    def payload(self, values: dict) -> dict:
        t = make_tokens(values["seed"], values["n"], self.d, sink=self.sink)
        return {"d": self.d, **{name: f64_base64(t[name]) for name in ("q", "k", "v")}}

    def static_values(self) -> list:
        seeds = sorted({*self.static_seeds, self.values["seed"]})
        return [{"seed": s, "n": n} for s in seeds for n in range(1, 17)]

    def compute(self, values: dict) -> dict:
        return explorer_data(**values, sink=self.sink, d=self.d)

    def figure(self, state: dict):
        from matplotlib.figure import Figure

        return render(state, Figure(figsize=(13.5, 4.0)))

    @property
    def data(self) -> dict:
        """The latest :func:`explorer_data` result (the same dict as ``state``)."""
        return self.state
