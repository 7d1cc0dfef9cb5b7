"""Coverage explorer (chapter 7): which key pairs each sparsity scheme lets a query see, and at what cost.

Three schemes restrict the ``(j, k)`` pairs that query ``i`` of 2-simplicial attention scores:

- ``"window"``: sliding windows, ``i - w1 < j <= i`` and ``i - w2 < k <= i`` (a rectangle);
- ``"topk_per_key"``: one DSA-style indexer per key set picks ``k`` keys for K1 and ``k`` for K2;
- ``"topk_shared"``: one set of ``k`` keys, ranked by the previous dot-product layer, used for both.

The logic is in plain functions (:func:`text_inputs`, :func:`coverage`, :func:`mass_by_query`,
:func:`render`, the matplotlib picture); :class:`CoverageExplorer` is the interactive version,
drawn in the browser by ``js/coverage.js``.
"""

from __future__ import annotations

import math

import torch

from .. import masks, selection
from ..ops.two_simplicial import reference
from .explorer import Explorer, f64_base64

__all__ = ["DEMO_TEXT", "SCHEMES", "text_inputs", "slice_inputs", "coverage", "mass_by_query",
           "render", "CoverageExplorer"]

#: A short text with repeated words, so that content-based selection has distant matches to find.
DEMO_TEXT = (
    "A window sees only the last few tokens. A top-k indexer sees every past token and keeps "
    "the few it scores best, so a token that repeats far back in the text can still be found. "
    "The window is cheap and blind; the indexer is cheap and picky."
)

#: Scheme names, in display order.
SCHEMES = ("window", "topk_per_key", "topk_shared")

_TITLES = {
    "window": "sliding windows",
    "topk_per_key": "top-k, one indexer per key set",
    "topk_shared": "top-k, shared selection",
}


def text_inputs(n: int | None = None, *, text: str = DEMO_TEXT, head_dim: int = 16, model_dim: int = 32,
                indexer_heads: int = 4, indexer_dim: int = 8, seed: int = 0) -> dict:
    """Projections of a real text through a tiny random-init embedding (one head, float64).

    Tokens are the text's bytes. Each byte gets a random ``model_dim`` embedding plus a small
    random position embedding (so repeated bytes are similar, not identical); every projection
    below is an independent random matrix scaled by ``1/sqrt(model_dim)``. No training happens:
    the point is which pairs each scheme can reach, not what a trained model would pick.

    - ``q, k1, k2, v1, v2``: the 2-simplicial layer, ``[1, n, 1, head_dim]``;
    - ``q_prev, k_prev``: the preceding dot-product layer, with *tied* query and key projections
      so that its scores measure token similarity (a stand-in for a trained retrieval head);
    - ``qi1, ki1`` and ``qi2, ki2``: two indexers (for K1 and for K2), ``indexer_heads`` query
      heads and one shared key head each, also tied; ``wi`` ``[1, n, indexer_heads]`` their head
      weights (positive, summing to one).

    Parameters
    ----------
    n : int, optional
        Tokens to keep (default: the whole text); at most ``len(text.encode())``.
    text : str
    head_dim, model_dim, indexer_heads, indexer_dim, seed : int

    Returns
    -------
    dict of the Tensors above plus ``tokens`` (list of one-character strings) and ``n``.

    Examples
    --------
    >>> x = text_inputs(12)
    >>> x["q"].shape, "".join(x["tokens"])
    (torch.Size([1, 12, 1, 16]), 'A window see')
    """
    data = list(text.encode())
    n = len(data) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(data):
        raise ValueError(f"n must be an int in [1, {len(data)}] (the text's length), got {n!r}")
    g = torch.Generator().manual_seed(int(seed))
    f64 = torch.float64

    def proj(d_out):
        return torch.randn(model_dim, d_out, generator=g, dtype=f64) / math.sqrt(model_dim)

    table = torch.randn(256, model_dim, generator=g, dtype=f64)
    pos = 0.3 * torch.randn(len(data), model_dim, generator=g, dtype=f64)
    x = table[torch.tensor(data)] + pos  # [T, model_dim]
    out = {name: (x @ proj(head_dim))[None, :, None, :] for name in ("q", "k1", "k2", "v1", "v2")}
    shared = x @ proj(head_dim)
    out["q_prev"] = out["k_prev"] = shared[None, :, None, :]
    for s in ("1", "2"):
        wk = proj(indexer_dim)
        heads = [wk + 0.5 * proj(indexer_dim) for _ in range(indexer_heads)]  # near-tied queries
        out["qi" + s] = torch.stack([x @ w for w in heads], dim=1)[None]
        out["ki" + s] = (x @ wk)[None, :, None, :]
    out["wi"] = torch.softmax(torch.randn(1, len(data), indexer_heads, generator=g, dtype=f64), -1)
    out = slice_inputs({**out, "tokens": [chr(b) for b in data], "n": len(data)}, n)
    return out


def slice_inputs(inputs: dict, n: int) -> dict:
    """The first ``n`` tokens of :func:`text_inputs`'s output (exact: everything is causal).

    Parameters
    ----------
    inputs : dict from :func:`text_inputs`
        Tensors ``[1, N, ...]`` with the tokens on dimension 1, ``tokens`` and ``n`` (= ``N``).
    n : int in ``[1, inputs["n"]]``

    Returns
    -------
    dict of the same keys, every tensor cut to ``[1, n, ...]`` (views, not copies).

    Raises
    ------
    ValueError
        If ``n`` is not an int in ``[1, inputs["n"]]``.

    Examples
    --------
    >>> slice_inputs(text_inputs(20), 5)["k1"].shape[1]
    5
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= inputs["n"]:
        raise ValueError(f"n must be an int in [1, {inputs['n']}], got {n!r}")
    out = {k: (v[:, :n] if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    out["tokens"] = inputs["tokens"][:n]
    out["n"] = n
    return out


def _selections(inputs: dict, k: int, rule: str) -> dict:
    """Top-k index tensors ``[1, n, 1, k]``: per key set (indexers) and shared (previous layer)."""
    if rule not in ("relu", "softmax"):
        raise ValueError(f"rule must be 'relu' or 'softmax', got {rule!r}")
    idx1 = selection.topk_indices(selection.indexer_scores(inputs["qi1"], inputs["ki1"], inputs["wi"], rule=rule), k)
    idx2 = selection.topk_indices(selection.indexer_scores(inputs["qi2"], inputs["ki2"], inputs["wi"], rule=rule), k)
    shared = selection.previous_layer_topk(inputs["q_prev"], inputs["k_prev"], k)
    return {"idx1": idx1, "idx2": idx2, "shared": shared}


def _masks(inputs: dict, sel: dict, w1: int, w2: int, query: int) -> dict:
    n = inputs["n"]
    pm = masks.topk_pair_mask
    return {
        "window": masks.window_pair_mask(n, w1, w2, query=query),
        "topk_per_key": pm(sel["idx1"], sel["idx2"])[0, 0, query],
        "topk_shared": pm(sel["shared"])[0, 0, query],
    }


def coverage(inputs: dict, *, w1: int = 8, w2: int = 4, k: int = 6, rule: str = "softmax",
             query: int | None = None) -> dict:
    """What each scheme lets one query see, what it costs, and how much attention it keeps.

    Parameters
    ----------
    inputs : dict from :func:`text_inputs` (or :func:`slice_inputs`)
    w1, w2 : int >= 1
        Sliding windows of the two key sets.
    k : int >= 1
        Keys kept per query by the top-k schemes.
    rule : ``"relu"`` or ``"softmax"``
        Scoring rule of the per-key-set indexers (the shared scheme ranks by the previous
        layer's softmax weights).
    query : int, optional
        The query position ``i`` (default: the last token).

    Returns
    -------
    dict
        Per scheme name in :data:`SCHEMES`:

        - ``masks[scheme]``: bool ``[n, n]`` indexed ``[j, k]``, the pairs the query sees;
        - ``counts[scheme]``: number of those pairs (``min(w1, i+1) * min(w2, i+1)`` for windows,
          ``min(k, i+1)^2`` for top-k);
        - ``flops[scheme]``: this query's attention FLOPs in our convention (``4 * head_dim`` per
          pair);
        - ``indexer_flops[scheme]``: FLOPs spent choosing the keys (``2 * H_I * D_I * (i+1)`` per
          key set scored by an indexer; 0 for windows and for the shared shortcut, whose scores
          exist);
        - ``mass[scheme]``: the share of the *dense* causal 2-simplicial attention of this query
          (its probabilities over all ``(i+1)^2`` pairs, from
          :mod:`simplex_lib.ops.two_simplicial.reference`) that falls on the pairs the scheme keeps;

        plus ``dense`` ``[n, n]`` (those dense probabilities), ``selections`` (the index tensors),
        ``overlap`` (pairs common to the window and the shared selection) and the control values.

    Examples
    --------
    >>> c = coverage(text_inputs(20), w1=4, w2=2, k=3, query=10)
    >>> c["counts"]["window"], c["counts"]["topk_shared"]
    (8, 9)
    """
    n = inputs["n"]
    query = n - 1 if query is None else query
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < n:
        raise ValueError(f"query must be an int in [0, {n}), got {query!r}")
    for name, v in (("w1", w1), ("w2", w2), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    sel = _selections(inputs, k, rule)
    masks = _masks(inputs, sel, w1, w2, query)
    # Causal: the query's dense probabilities depend on the first query + 1 tokens only.
    m = query + 1
    dense = torch.zeros(n, n, dtype=inputs["q"].dtype)
    dense[:m, :m] = reference.two_simplicial_weights(
        inputs["q"][:, :m], inputs["k1"][:, :m], inputs["k2"][:, :m])[0, 0, query]
    _, _, hi, di = inputs["qi1"].shape
    per_set = 2 * hi * di * (query + 1)
    counts = {s: int(masks[s].sum()) for s in SCHEMES}
    return {
        "masks": masks,
        "counts": counts,
        "flops": {s: 4 * inputs["q"].shape[-1] * c for s, c in counts.items()},
        "indexer_flops": {"window": 0, "topk_per_key": 2 * per_set, "topk_shared": 0},
        "mass": {s: float(dense[masks[s]].sum()) for s in SCHEMES},
        "dense": dense,
        "selections": sel,
        "overlap": int((masks["window"] & masks["topk_shared"]).sum()),
        "tokens": inputs["tokens"], "n": n, "w1": w1, "w2": w2, "k": k, "rule": rule,
        "query": query,
    }


def mass_by_query(inputs: dict, *, w1: int = 8, w2: int = 4, k: int = 6, rule: str = "softmax") -> dict:
    """For every query, the share of its dense 2-simplicial attention that each scheme keeps.

    Parameters
    ----------
    inputs : dict from :func:`text_inputs` (or :func:`slice_inputs`), ``n`` tokens
    w1, w2 : int >= 1, default 8 and 4
        Sliding windows of the two key sets.
    k : int >= 1, default 6
        Keys kept per query by the top-k schemes.
    rule : ``"relu"`` or ``"softmax"`` (default)
        Scoring rule of the per-key-set indexers, as in :func:`coverage`.

    Returns
    -------
    dict scheme -> float64 Tensor ``[n]`` (1 wherever the scheme covers all ``(i+1)^2`` pairs).

    Raises
    ------
    ValueError
        If ``rule`` is neither ``"relu"`` nor ``"softmax"``.

    Examples
    --------
    >>> r = mass_by_query(text_inputs(10), w1=20, w2=20, k=20)
    >>> bool(torch.allclose(r["window"], torch.ones(10, dtype=torch.float64)))
    True
    """
    n = inputs["n"]
    p = reference.two_simplicial_weights(inputs["q"], inputs["k1"], inputs["k2"])[0, 0]  # [i, j, k]
    sel = _selections(inputs, k, rule)
    full = {
        "window": masks.window_pair_mask(n, w1, w2),
        "topk_per_key": masks.topk_pair_mask(sel["idx1"], sel["idx2"])[0, 0],
        "topk_shared": masks.topk_pair_mask(sel["shared"])[0, 0],
    }
    return {s: (p * full[s]).sum((-1, -2)) for s in SCHEMES}


def render(state: dict, fig=None):
    """Draw :func:`coverage`'s output: the dense attention of the query and each scheme's pairs.

    Parameters
    ----------
    state : dict from :func:`coverage`
    fig : matplotlib Figure, optional (cleared and reused; default: a new 15 x 3.8 inch figure)

    Returns
    -------
    matplotlib Figure with four panels indexed ``[j (first key), l (second key)]``.

    Examples
    --------
    >>> fig = render(coverage(text_inputs(16)))  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ..viz import heatmap, label, use_style

    use_style()
    if fig is None:
        fig = plt.figure(figsize=(15.0, 3.8))
    fig.clf()
    axes = fig.subplots(1, 4)
    i, n = state["query"], state["n"]
    tok = state["tokens"][i]
    heatmap(axes[0], state["dense"][: i + 1, : i + 1], xlabel="second key l (token)",
            ylabel="first key j (token)",
            title=f"dense weights, query {i} ({tok!r})", colorbar_label="probability", vmin=0)
    side = i + 1
    size = max(8.0, (150.0 / side) ** 2)  # points^2: one grid cell, but never too small to see
    for ax, s in zip(axes[1:], SCHEMES):
        # Every cell shown is causal (j, k <= i): light grey = skipped, dark = seen.
        ax.add_patch(plt.Rectangle((-0.5, -0.5), side, side, color="0.88", zorder=0))
        jj, kk = state["masks"][s][:side, :side].nonzero(as_tuple=True)
        ax.scatter(kk.numpy(), jj.numpy(), s=size, marker="s", color="black", linewidths=0)
        ax.set_xlim(-0.5, side - 0.5)
        ax.set_ylim(side - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.grid(False)
        label(ax, "second key l (token)", "first key j (token)",
              f"{_TITLES[s]}\n{state['counts'][s]} pairs, {100 * state['mass'][s]:.1f}% of the mass")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    fig.suptitle(f"n = {n}, windows {state['w1']} x {state['w2']}, k = {state['k']} "
                 f"({state['rule']} indexer); black = pair seen, grey = causal pair skipped; "
                 "mass = share of the dense attention",
                 fontsize=11)
    fig.tight_layout()
    return fig


class CoverageExplorer(Explorer):
    """Sliders for sequence length, windows, k, scoring rule and query, plus the picture.

    The front end (``js/coverage.js``) recomputes the dense weights of the query, the three
    schemes' selections, pair counts, FLOPs and kept mass from the projections of
    :func:`text_inputs` (the whole text, sent once; slicing is exact because everything is
    causal); ``state`` is :func:`coverage` at the current settings. The wiring is
    :class:`~simplex_lib.widgets.explorer.Explorer`'s.

    Parameters
    ----------
    n, w1, w2, k, rule, query : initial control values (``query=None``: the last token)
    text : str, the text whose bytes are the tokens

    Examples
    --------
    >>> ex = CoverageExplorer(n=32)
    >>> ex.set(w1=5)["counts"]["window"]
    20
    """

    name = "coverage"
    caption = ("Try: move the query i: the windows keep a square at the diagonal while top-k "
               "picks pairs far back; raise k and compare the share of the mass each keeps.")

    def __init__(self, n: int = 64, w1: int = 8, w2: int = 4, k: int = 6, rule: str = "softmax",
                 query: int | None = None, text: str = DEMO_TEXT):
        self.inputs = text_inputs(text=text)
        n = min(n, self.inputs["n"])
        query = n - 1 if query is None else min(query, n - 1)
        super().__init__({"n": n, "w1": w1, "w2": w2, "k": k, "rule": rule, "query": query})

    def controls(self, static: bool) -> list:
        return [
            {"name": "n", "label": "tokens n", "type": "int", "min": 1, "max": self.inputs["n"]},
            {"name": "query", "label": "query i", "type": "int", "min": 0, "max_from": "n"},
            {"name": "w1", "label": "window w1", "type": "int", "min": 1, "max": 64},
            {"name": "w2", "label": "window w2", "type": "int", "min": 1, "max": 64},
            {"name": "k", "label": "kept keys k_sel", "type": "int", "min": 1, "max": 64},
            {"name": "rule", "label": "indexer rule", "type": "choice",
             "options": [["softmax", "softmax"], ["relu", "relu"]]},
        ]

    def payload_key(self, values: dict) -> str:
        return "text"

    def payload(self, values: dict) -> dict:
        x = self.inputs
        _, n, hi, di = x["qi1"].shape
        out = {"tokens": x["tokens"], "head_dim": x["q"].shape[-1], "HI": hi, "DI": di}
        for name in ("q", "k1", "k2", "q_prev", "qi1", "ki1", "qi2", "ki2", "wi"):
            out[name] = f64_base64(x[name][0])
        return out

    def static_values(self) -> list:
        return [self.values]

    def compute(self, values: dict) -> dict:
        return coverage(slice_inputs(self.inputs, values["n"]), w1=values["w1"], w2=values["w2"],
                        k=values["k"], rule=values["rule"], query=values["query"])

    def figure(self, state: dict):
        from matplotlib.figure import Figure

        return render(state, Figure(figsize=(15.0, 3.8)))
