"""Graph-attention explorer (chapter 1): temperature, query token and k-hop power.

The logic is in plain functions that return data (:func:`make_tokens`, :func:`explorer_data`,
:func:`render`); :class:`GraphExplorer` only wires ipywidgets controls to them and shows the
rendered figure as a PNG, so the page keeps a picture of the widget's state when it is static.
"""

from __future__ import annotations

import math

import torch

from .. import graph
from .explorer import Explorer

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
    """Draw :func:`explorer_data`'s output: heatmap of ``A^k``, the query's row, the graph of ``A``.

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
            title=f"$A^{{{k}}}$ at temperature {data['temperature']:.2g}",
            colorbar_label="weight of i -> j walks")
    axes[0].axhline(qi, color=PALETTE["simplicial"], lw=1.5, alpha=0.8)
    idx = torch.arange(n).numpy()
    axes[1].bar(idx - 0.2, data["row"].numpy(), width=0.4, color=PALETTE["dot"], label="$A$ (one hop)")
    axes[1].bar(idx + 0.2, data["row_k"].numpy(), width=0.4, color=PALETTE["simplicial"],
                label=f"$A^{{{k}}}$ ({k} hops)")
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(loc="upper right")
    label(axes[1], "key token j", "attention weight (probability)", f"row of query {qi}")
    graph.draw_attention_graph(data["A"], axes[2], top_k=min(2, n), highlight=qi,
                               title="graph of $A$ (2 heaviest out-edges per node)")
    fig.tight_layout()
    return fig


class GraphExplorer(Explorer):
    """Sliders for seed, sequence length, temperature, query token and hop count, plus the figure.

    The controls call :func:`explorer_data` and :func:`render`; the latest data is kept in
    ``self.data`` (also ``self.state``; tests drive the sliders and check it) and the figure is
    shown as a PNG image widget, which keeps its picture on a static HTML page. The wiring is
    :class:`~simplex_lib.widgets.explorer.Explorer`'s.

    Parameters
    ----------
    seed, n, temperature, query, hops, causal, sink : initial control values (see
        :func:`explorer_data`)

    Examples
    --------
    >>> ex = GraphExplorer(n=6)   # doctest: +SKIP
    >>> ex.controls["temperature"].value = 0.1; ex.data["row"].max() > 0.9  # doctest: +SKIP
    """

    figsize, dpi = (13.5, 4.0), 80
    clamp = {"n": "query"}

    def __init__(self, seed: int = 0, n: int = 8, temperature: float = 1.0, query: int = 5,
                 hops: int = 1, causal: bool = True, sink: float = 2.0):
        import ipywidgets as w

        self.sink = sink
        style = {"description_width": "initial"}
        controls = {
            "seed": w.IntSlider(value=seed, min=0, max=20, description="seed", style=style),
            "n": w.IntSlider(value=n, min=1, max=16, description="tokens n", style=style),
            "temperature": w.FloatLogSlider(value=temperature, base=10, min=-2, max=1.3, step=0.05,
                                            description="temperature", style=style),
            "query": w.IntSlider(value=min(query, n - 1), min=0, max=n - 1, description="query i",
                                 style=style),
            "hops": w.IntSlider(value=hops, min=0, max=12, description="hops k", style=style),
            "causal": w.Checkbox(value=causal, description="causal mask"),
        }
        super().__init__(controls, [["seed", "n", "causal"], ["temperature", "query", "hops"]])

    @property
    def data(self) -> dict:
        """The latest :func:`explorer_data` result (the same dict as ``state``)."""
        return self.state

    def _compute(self, values: dict) -> dict:
        return explorer_data(**values, sink=self.sink)

    _render = staticmethod(render)
