"""Making 2-simplicial attention affordable: sliding windows, the cost model, top-k selection.

Dense 2-simplicial attention scores every pair of keys ``(j, k)`` for every query ``i``: ``seq^3``
logits per head. Two ways to cut that down are implemented here.

* **Sliding windows** (Roy et al., 2025): key ``j`` of the first set is visible to query ``i`` iff
  ``i - w1 < j <= i``, key ``k`` of the second set iff ``i - w2 < k <= i``. Each query sees a
  ``w1 x w2`` rectangle of pairs, so the cost is linear in ``seq``.
* **Top-k selection** (Pappone, 2025, after DeepSeek Sparse Attention): a cheap indexer scores the
  past keys of each query and keeps the best ``k``; the query then attends to the ``k x k`` pairs of
  selected keys. The *shared-selection* shortcut picks one set from the previous dot-product
  layer's scores and uses it for both key sets.

Index convention for top-k: ``idx`` is an integer tensor ``[batch, seq, heads, k]`` of key
positions; ``-1`` marks an empty slot. Early queries have fewer than ``k`` past keys (query ``i``
has ``i + 1``), so their rows hold ``min(k, i + 1)`` positions followed by ``-1`` padding. The
validity mask is simply ``idx >= 0``.

FLOP conventions follow ``PERFORMANCE.md``: a visible ``(i, j, k)`` triple costs ``4 * head_dim``
tensor-core FLOPs in our count (two GEMMs) and ``6 * head_dim`` in the paper's (it adds the
element-wise product); a visible ``(i, j)`` pair of causal dot attention costs ``4 * head_dim``.
"""

from __future__ import annotations

import glob
import json
import os

import torch

from ._checks import check_qkv, check_window, default_scale, expand_kv

__all__ = [
    "sliding_window_mask",
    "window_pair_mask",
    "visible_pairs",
    "two_simplicial_flops",
    "dot_attention_flops",
    "topk_two_simplicial_flops",
    "indexer_flops",
    "crossover_length",
    "TABLE1",
    "window_shapes",
    "table1_model",
    "measured_crossover",
    "load_benchmark_records",
    "window_latency_rows",
    "indexer_scores",
    "topk_indices",
    "previous_layer_topk",
    "topk_pair_mask",
    "topk_two_simplicial_attention",
]

#: FLOPs per visible (query, key, key) triple, per head-dim unit, in each convention.
TRIPLE_FLOPS = {"ours": 4, "paper": 6}
#: FLOPs per visible (query, key) pair of dot attention, per head-dim unit (both conventions).
PAIR_FLOPS = 4


def _check_n(name: str, n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")


def _check_convention(convention: str) -> None:
    if convention not in TRIPLE_FLOPS:
        raise ValueError(f"convention must be 'ours' or 'paper', got {convention!r}")


# --------------------------------------------------------------------------------------------
# Sliding windows
# --------------------------------------------------------------------------------------------


def sliding_window_mask(n: int, w=None, *, device=None) -> torch.Tensor:
    """Bool ``[n, n]``: key ``j`` is visible to query ``i`` iff ``i - w < j <= i``.

    Parameters
    ----------
    n : int
        Sequence length.
    w : int or None
        Window length (``>= 1``); ``None`` means plain causal (no window).
    device : torch device, optional

    Returns
    -------
    Bool Tensor ``[n, n]`` indexed ``[i, j]``.

    Examples
    --------
    >>> sliding_window_mask(4, 2).int()
    tensor([[1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    _check_n("n", n)
    check_window("w", w)
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    vis = j <= i
    if w is not None:
        vis = vis & (j > i - w)
    return vis


def window_pair_mask(n: int, w1=None, w2=None, *, query=None, device=None) -> torch.Tensor:
    """Which key pairs ``(j, k)`` sliding windows ``(w1, w2)`` let a query see.

    Parameters
    ----------
    n : int
        Sequence length.
    w1, w2 : int or None
        Windows of the first and second key set (``None`` = causal, no window).
    query : int, optional
        If given, return the 2-D mask ``[j, k]`` of this query only (a ``min(w1, i+1) x
        min(w2, i+1)`` rectangle ending at the diagonal); otherwise the full ``[i, j, k]`` mask.
    device : torch device, optional

    Returns
    -------
    Bool Tensor ``[n, n]`` (with ``query``) or ``[n, n, n]``.

    Examples
    --------
    >>> int(window_pair_mask(8, 3, 2, query=5).sum())
    6
    >>> window_pair_mask(8, 3, 2).shape
    torch.Size([8, 8, 8])
    """
    m1 = sliding_window_mask(n, w1, device=device)
    m2 = sliding_window_mask(n, w2, device=device)
    if query is None:
        return m1[:, :, None] & m2[:, None, :]
    if isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < n:
        raise ValueError(f"query must be an int in [0, {n}), got {query!r}")
    return m1[query][:, None] & m2[query][None, :]


def visible_pairs(n: int, w1=None, w2=None) -> int:
    """Exact number of visible ``(i, j, k)`` triples of causal windowed 2-simplicial attention.

    ``sum_i min(w1, i+1) * min(w2, i+1)``: unlike the ``n * w1 * w2`` model it counts the ramp at
    the start of the sequence, where a query has fewer past keys than its window.

    Examples
    --------
    >>> visible_pairs(3, 2, 2)  # 1*1 + 2*2 + 2*2
    9
    >>> visible_pairs(4) == sum((i + 1) ** 2 for i in range(4))
    True
    """
    _check_n("n", n)
    check_window("w1", w1)
    check_window("w2", w2)
    i = torch.arange(1, n + 1, dtype=torch.int64)
    a = i if w1 is None else i.clamp(max=w1)
    b = i if w2 is None else i.clamp(max=w2)
    return int((a * b).sum())


# --------------------------------------------------------------------------------------------
# Cost model
# --------------------------------------------------------------------------------------------


def two_simplicial_flops(n: int, w1: int, w2: int, *, batch: int = 1, heads: int = 1, head_dim: int = 1,
                         convention: str = "ours", exact: bool = False) -> int:
    """Forward FLOPs of causal sliding-window 2-simplicial attention.

    ``convention="ours"``: ``4 * batch * heads * n * head_dim * w1 * w2`` (two GEMMs, the
    tensor-core count of ``PERFORMANCE.md``). ``convention="paper"``: ``6 * n * w1 * w2`` per
    head-dim unit (Roy et al., 2025, Sec. 6). With ``exact=True`` the ramp at the start of the
    sequence is counted (:func:`visible_pairs` instead of ``n * w1 * w2``).

    Parameters
    ----------
    n : int
        Sequence length.
    w1, w2 : int
        Windows of the two key sets.
    batch, heads, head_dim : int
        Multipliers (``heads`` are query heads).
    convention : ``"ours"`` or ``"paper"``
    exact : bool

    Returns
    -------
    int

    Examples
    --------
    >>> two_simplicial_flops(1000, 512, 32, convention="paper")  # 6 * n * w1 * w2
    98304000
    """
    _check_convention(convention)
    for name, v in (("n", n), ("batch", batch), ("heads", heads), ("head_dim", head_dim)):
        _check_n(name, v)
    for name, v in (("w1", w1), ("w2", w2)):
        if v is None:
            raise ValueError(f"{name} must be an int >= 1 (the cost model needs a window)")
        check_window(name, v)
    triples = visible_pairs(n, w1, w2) if exact else n * w1 * w2
    return TRIPLE_FLOPS[convention] * batch * heads * head_dim * triples


def dot_attention_flops(n: int, *, batch: int = 1, heads: int = 1, head_dim: int = 1, exact: bool = False) -> int:
    """Forward FLOPs of causal dot-product attention: ``4 * batch * heads * n^2 * head_dim / 2``.

    The same in both conventions (the paper writes ``2 n^2`` per head-dim unit). ``exact=True``
    counts the ``n (n + 1) / 2`` visible pairs (diagonal included) instead of ``n^2 / 2``.

    Examples
    --------
    >>> dot_attention_flops(1000)  # 2 n^2
    2000000
    >>> dot_attention_flops(4, exact=True)  # 4 * (4 * 5 / 2)
    40
    """
    for name, v in (("n", n), ("batch", batch), ("heads", heads), ("head_dim", head_dim)):
        _check_n(name, v)
    base = PAIR_FLOPS * batch * heads * head_dim
    return base * n * (n + 1) // 2 if exact else base * n * n // 2


def topk_two_simplicial_flops(n: int, k: int, *, batch: int = 1, heads: int = 1, head_dim: int = 1,
                              convention: str = "ours", exact: bool = False) -> int:
    """Forward FLOPs of top-k 2-simplicial attention (``k x k`` selected pairs per query).

    The attention part costs what a ``k x k`` window costs: ``O(n k^2)``. The indexer that picks
    the keys is counted separately by :func:`indexer_flops`.

    Examples
    --------
    >>> topk_two_simplicial_flops(512, 128) == two_simplicial_flops(512, 128, 128)
    True
    """
    return two_simplicial_flops(n, k, k, batch=batch, heads=heads, head_dim=head_dim,
                                convention=convention, exact=exact)


def indexer_flops(n: int, *, batch: int = 1, indexer_heads: int = 1, indexer_dim: int = 1,
                  key_sets: int = 1) -> int:
    """FLOPs of a DSA-style indexer over all past keys: ``2 * batch * H_I * D_I * n^2 / 2`` per key set.

    One multiply-add per (query, past key, head, dim). Still quadratic in ``n``, but with few small
    heads it is cheap next to the attention it prunes. ``key_sets=2`` scores K1 and K2
    separately; the shared-selection shortcut reuses scores that already exist (0 extra FLOPs,
    see :func:`previous_layer_topk`).

    Examples
    --------
    >>> indexer_flops(1000, indexer_heads=4, indexer_dim=32)
    128000000
    """
    for name, v in (("n", n), ("batch", batch), ("indexer_heads", indexer_heads),
                    ("indexer_dim", indexer_dim)):
        _check_n(name, v)
    if not isinstance(key_sets, int) or key_sets < 0:
        raise ValueError(f"key_sets must be an int >= 0, got {key_sets!r}")
    return key_sets * batch * indexer_heads * indexer_dim * n * n


def crossover_length(w1: int, w2: int, *, convention: str = "ours", exact: bool = False) -> int:
    """Sequence length at which windowed 2-simplicial attention costs as much as causal dot attention.

    Model (``exact=False``): ``c * n * w1 * w2 = 2 * n^2`` per head-dim unit, so
    ``n* = (c / 2) * w1 * w2`` with ``c = 4`` (ours, ``n* = 2 w1 w2``) or ``c = 6`` (the paper,
    ``n* = 3 w1 w2``; 49,152 = 48k for 512 x 32). Beyond ``n*`` the windowed form is cheaper.
    ``exact=True`` returns the smallest ``n`` at which the exact counts (ramp included) of dot
    attention reach those of the windowed form.

    Examples
    --------
    >>> crossover_length(512, 32, convention="paper")
    49152
    >>> crossover_length(512, 32)
    32768
    """
    _check_convention(convention)
    check_window("w1", w1)
    check_window("w2", w2)
    if w1 is None or w2 is None:
        raise ValueError("w1 and w2 must be ints >= 1 for a crossover")
    c = TRIPLE_FLOPS[convention]
    model = c * w1 * w2 // 2
    if not exact:
        return model
    # The windowed count grows at most linearly, dot attention quadratically: one crossing.
    hi = model + max(w1, w2) + 2
    i = torch.arange(1, hi + 1, dtype=torch.float64)
    tri = torch.cumsum(i.clamp(max=w1) * i.clamp(max=w2), 0) * c
    dot = PAIR_FLOPS * i * (i + 1) / 2
    ok = torch.nonzero((dot >= tri) & (i > 1)).flatten()
    return int(ok[0]) + 1


#: Table 1 of Roy et al. (2025): forward latency of their kernel for window shapes
#: (the batch/sequence/head shape of the measurement is not stated in the paper).
TABLE1 = (
    {"product": 32768, "w1": 1024, "w2": 32, "latency_ms": 104.1},
    {"product": 32768, "w1": 512, "w2": 64, "latency_ms": 110.7},
    {"product": 16384, "w1": 128, "w2": 128, "latency_ms": 59.2},
    {"product": 16384, "w1": 256, "w2": 64, "latency_ms": 55.8},
    {"product": 16384, "w1": 512, "w2": 32, "latency_ms": 55.1},
    {"product": 16384, "w1": 1024, "w2": 16, "latency_ms": 55.1},
    {"product": 8192, "w1": 256, "w2": 32, "latency_ms": 28.3},
)


def window_shapes(product: int, *, min_w: int = 16) -> list:
    """Power-of-two window shapes ``(w1, w2)`` with ``w1 * w2 == product`` and both ``>= min_w``.

    All have the same cost in the FLOP model; Table 1 compares some of them.

    Examples
    --------
    >>> window_shapes(16384, min_w=16)
    [(16, 1024), (32, 512), (64, 256), (128, 128), (256, 64), (512, 32), (1024, 16)]
    """
    _check_n("product", product)
    if product & (product - 1):
        raise ValueError(f"product must be a power of two, got {product}")
    _check_n("min_w", min_w)
    shapes = []
    w1 = 1
    while w1 <= product:
        w2 = product // w1
        if w1 >= min_w and w2 >= min_w:
            shapes.append((w1, w2))
        w1 *= 2
    return shapes


def table1_model(anchor=(512, 32), rows=TABLE1, measured=None) -> list:
    """Table 1 next to the FLOP model's prediction: latency proportional to ``w1 * w2``.

    At fixed batch, sequence, heads and throughput, the model makes latency proportional to the
    window product. The prediction is anchored on one row of the table (default ``512 x 32``).

    Parameters
    ----------
    anchor : (w1, w2)
        The row the model is scaled to.
    rows : sequence of dicts with ``w1``, ``w2``, ``latency_ms`` (default :data:`TABLE1`)
    measured : list of dicts, optional
        Rows from :func:`window_latency_rows`; those of the ``"table1"`` group in ``"fwd"`` mode
        (``python -m simplex_lib.bench --table1``) become the ``measured_ms`` column.

    Returns
    -------
    list of dicts: the row's fields plus ``model_ms``, ``ratio`` (paper / model) and, when a
    measurement of that shape exists, ``measured_ms``.

    Examples
    --------
    >>> r = table1_model()
    >>> [x["model_ms"] for x in r if x["product"] == 8192]
    [27.55]
    """
    ref = next((r for r in rows if (r["w1"], r["w2"]) == tuple(anchor)), None)
    if ref is None:
        raise ValueError(f"anchor {anchor} is not a row of the table")
    per_pair = ref["latency_ms"] / (ref["w1"] * ref["w2"])
    ours = {}
    for m in measured or ():
        if m.get("group") == "table1" and m.get("mode") == "fwd":
            ours.setdefault((m["w1"], m["w2"]), m["ms"])
    out = []
    for r in rows:
        model = round(per_pair * r["w1"] * r["w2"], 4)
        row = {**r, "model_ms": model, "ratio": r["latency_ms"] / model}
        if (r["w1"], r["w2"]) in ours:
            row["measured_ms"] = ours[(r["w1"], r["w2"])]
        out.append(row)
    return out


def measured_crossover(records) -> list:
    """The crossover with dot attention in *time*, from benchmark records of both kernels.

    Uses records written by ``python -m simplex_lib.bench --claim48k``: a forward timing of the
    windowed kernel (group ``"claim-kernel"``) and of causal SDPA at some context ``n`` (group
    ``"claim-sdpa"``) with the same query heads and head dim. Windowed attention costs the same
    per token at any length; causal dot attention costs per token in proportion to ``n``. At a
    constant throughput the two per-token times are therefore equal at
    ``n* = n * t_kernel / t_sdpa(n)`` (per-token times).

    Parameters
    ----------
    records : list of ``(path, record)`` from :func:`load_benchmark_records`

    Returns
    -------
    list of dict
        One dict per window shape with keys ``w1``, ``w2``, ``D``, ``heads``, ``n_sdpa``,
        ``kernel_us_per_token``, ``sdpa_us_per_token``, ``crossover``, ``model_crossover`` and the
        record's ``meta`` fields; empty when no such record exists.

    Examples
    --------
    >>> rec = {"meta": {"gpu": "X"}, "records": [
    ...     {"group": "claim-kernel", "mode": "fwd", "B": 1, "N": 8192, "Hq": 64, "D": 128,
    ...      "w1": 512, "w2": 32, "ms": 8.0},
    ...     {"group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 32768, "Hq": 64, "D": 128, "ms": 40.0}]}
    >>> measured_crossover([("r.json", rec)])[0]["crossover"]
    26214.4
    """
    out = []
    for path, rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("records"), list):
            continue
        meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
        rs = [r for r in rec["records"] if isinstance(r, dict) and r.get("mode") == "fwd"
              and isinstance(r.get("ms"), (int, float)) and "error" not in r]
        for k in (r for r in rs if r.get("group") == "claim-kernel"):
            tk = 1e3 * k["ms"] / (k["B"] * k["N"])
            for s in (r for r in rs if r.get("group") == "claim-sdpa"):
                if (s.get("Hq"), s.get("D")) != (k.get("Hq"), k.get("D")):
                    continue
                ts = 1e3 * s["ms"] / (s["B"] * s["N"])
                out.append({**meta, "path": path, "w1": k["w1"], "w2": k["w2"], "D": k["D"],
                            "heads": k["Hq"], "n_sdpa": s["N"], "kernel_us_per_token": tk,
                            "sdpa_us_per_token": ts, "crossover": s["N"] * tk / ts,
                            "model_crossover": crossover_length(k["w1"], k["w2"])})
    return out


def load_benchmark_records(root: str = "benchmarks/results", pattern: str = "*.json",
                           recursive: bool = False) -> list:
    """Load the JSON benchmark records in ``root`` (missing folder: empty list).

    Only the top level by default: ``raw/`` holds smoke tests and per-call logs, which would
    otherwise appear twice beside the final records (``recursive=True`` includes them).

    Returns
    -------
    list of ``(path, record)`` pairs, sorted by path; files that are not valid JSON are skipped.

    Examples
    --------
    >>> load_benchmark_records("/nonexistent")
    []
    """
    out = []
    where = os.path.join(root, "**", pattern) if recursive else os.path.join(root, pattern)
    for path in sorted(glob.glob(where, recursive=recursive)):
        try:
            with open(path) as f:
                out.append((path, json.load(f)))
        except (OSError, ValueError):
            continue
    return out


_MS_KEYS = ("ms", "latency_ms", "median_ms", "time_ms", "fwd_ms")


def window_latency_rows(records) -> list:
    """Pull ``(w1, w2, ms, context)`` rows out of benchmark records, whatever their nesting.

    Any dict with integer ``w1`` and ``w2`` and a time in milliseconds (``ms``, ``latency_ms``,
    ``median_ms``, ``time_ms`` or ``fwd_ms``) is a row; the remaining scalar fields of that dict
    of the dicts enclosing it and of the record's ``meta`` dict (device, versions, date) are kept.

    Parameters
    ----------
    records : list of ``(path, record)`` from :func:`load_benchmark_records`

    Returns
    -------
    list of dicts with keys ``path``, ``w1``, ``w2``, ``ms`` and the scalar context fields.

    Examples
    --------
    >>> window_latency_rows([("r.json", {"device": "H100", "rows": [{"w1": 512, "w2": 32, "ms": 27.9}]})])
    [{'device': 'H100', 'w1': 512, 'w2': 32, 'ms': 27.9, 'path': 'r.json'}]
    """
    rows = []

    def scalars(d):
        return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool)) or v is None}

    def walk(node, ctx):
        if isinstance(node, dict):
            here = {**ctx, **scalars(node)}
            ms_key = next((k for k in _MS_KEYS if isinstance(node.get(k), (int, float))), None)
            if isinstance(node.get("w1"), int) and isinstance(node.get("w2"), int) and ms_key:
                row = {**here, "ms": float(node[ms_key])}
                rows.append(row)
                return
            for v in node.values():
                walk(v, here)
        elif isinstance(node, list):
            for v in node:
                walk(v, ctx)

    for path, rec in records:
        start = len(rows)
        meta = rec.get("meta") if isinstance(rec, dict) and isinstance(rec.get("meta"), dict) else {}
        walk(rec, scalars(meta))
        for r in rows[start:]:
            r["path"] = path
    return rows


# --------------------------------------------------------------------------------------------
# Top-k selection
# --------------------------------------------------------------------------------------------


def _causal(n: int, device) -> torch.Tensor:
    return sliding_window_mask(n, None, device=device)


def indexer_scores(q_index, k_index, weights=None, *, rule: str = "relu", scale=None) -> torch.Tensor:
    """Scores of a DSA-style indexer: how much query ``i`` wants past key ``j``.

    ``rule="relu"`` (DeepSeek Sparse Attention): ``S_ij = sum_h w_ih * ReLU(s <q_ih, k_jh>)``.
    ``rule="softmax"`` (the blog's variant): ``S_ij = sum_h w_ih * softmax_j(s <q_ih, k_jh>)``, the
    softmax running over the causal keys ``j <= i`` of each indexer head. Future keys get ``-inf``.

    Parameters
    ----------
    q_index : Tensor ``[batch, seq, H_I, D_I]``
        Indexer queries (``H_I`` small heads).
    k_index : Tensor ``[batch, seq, 1 or H_I, D_I]``
        Indexer keys; one head is shared by all indexer heads, as in DSA.
    weights : Tensor ``[batch, seq, H_I]``, optional
        Per-query head weights ``w_ih``; default ``1 / H_I``.
    rule : ``"relu"`` or ``"softmax"``
    scale : float, optional
        Logit scale, default ``1/sqrt(D_I)``. For ``"relu"`` a positive scale does not change
        which keys win.

    Returns
    -------
    Tensor ``[batch, seq_q, seq_k]``, ``-inf`` where ``j > i``.

    Examples
    --------
    >>> qi = torch.randn(1, 5, 4, 8); ki = torch.randn(1, 5, 1, 8)
    >>> s = indexer_scores(qi, ki, rule="softmax")
    >>> s.shape, bool(torch.isinf(s[0, 0, 1]))
    (torch.Size([1, 5, 5]), True)
    """
    if rule not in ("relu", "softmax"):
        raise ValueError(f"rule must be 'relu' or 'softmax', got {rule!r}")
    group = check_qkv(q_index, {"k_index": k_index})
    B, N, HI, DI = q_index.shape
    if weights is None:
        weights = torch.full((B, N, HI), 1.0 / HI, dtype=q_index.dtype, device=q_index.device)
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (B, N, HI):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must have shape [batch, seq, H_I] = {(B, N, HI)}, got {shape}")
    s = default_scale(DI, scale)
    logits = torch.einsum("bihd,bjhd->bhij", q_index, expand_kv(k_index, group)) * s
    vis = _causal(N, q_index.device)
    if rule == "relu":
        per_head = torch.relu(logits)
    else:
        per_head = torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)
    scores = torch.einsum("bhij,bih->bij", per_head, weights.to(per_head.dtype))
    return scores.masked_fill(~vis, float("-inf"))


def topk_indices(scores, k: int) -> torch.Tensor:
    """Per query, the positions of the ``k`` best-scoring past keys (``-1`` padded).

    Query ``i`` has only ``i + 1`` past keys (``j <= i``); when ``i + 1 < k`` its row holds all of
    them followed by ``-1``. Future keys are never chosen, whatever their score. Positions in a
    row are sorted in increasing order (the order does not matter to attention).

    Parameters
    ----------
    scores : Tensor ``[batch, seq_q, seq_k]`` or ``[batch, heads, seq_q, seq_k]``
        Higher is better; entries with ``j > i`` are ignored.
    k : int
        Keys to keep per query (``>= 1``); ``k > seq`` is allowed.

    Returns
    -------
    int64 Tensor ``[batch, seq, heads, k]`` (``heads = 1`` for 3-D scores); validity is ``idx >= 0``.

    Examples
    --------
    >>> s = torch.tensor([[[5., 0, 0], [1, 2, 0], [3, 1, 2]]])
    >>> topk_indices(s, 2)[0, :, 0].tolist()
    [[0, -1], [0, 1], [0, 2]]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (3, 4):
        raise ValueError("scores must be a Tensor [batch, seq_q, seq_k] or [batch, heads, seq_q, seq_k]")
    if scores.dim() == 3:
        scores = scores[:, None]
    B, H, N, M = scores.shape
    if N != M:
        raise ValueError(f"scores must be square in (seq_q, seq_k), got {N} x {M}")
    vis = _causal(N, scores.device)
    past = scores.to(torch.float64)
    if torch.isnan(past).masked_select(vis).any():
        raise ValueError("scores has NaN at a causal position")
    # Every past key must outrank every future key, even a past key scored -inf.
    lowest = torch.finfo(torch.float64).min
    key = torch.where(vis, past.clamp(min=lowest), torch.full_like(past, float("-inf")))
    kk = min(k, N)
    top = key.topk(kk, dim=-1).indices  # [B, H, N, kk]
    i = torch.arange(N, device=scores.device)[None, None, :, None]
    rank = torch.arange(kk, device=scores.device)
    valid = rank <= i  # query i has i + 1 past keys
    big = N  # sorts padding to the end
    top = torch.where(valid, top, torch.full_like(top, big)).sort(dim=-1).values
    top = torch.where(top == big, torch.full_like(top, -1), top)
    if kk < k:
        top = torch.cat([top, top.new_full((B, H, N, k - kk), -1)], dim=-1)
    return top.permute(0, 2, 1, 3).contiguous()


def previous_layer_topk(q, k, topk: int, *, per_head: bool = False, scale=None) -> torch.Tensor:
    """The shared-selection shortcut: pick the top-k keys from a dot-product layer's scores.

    The blog's variant does not run a separate indexer for K1 and K2: it ranks keys by the causal
    attention of the preceding dot-product layer and uses the same ``k`` positions for both key
    sets. With ``per_head=False`` the softmax weights are averaged over heads to one set per query;
    with ``per_head=True`` each head keeps its own set.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
        Queries of the previous dot-product layer.
    k : Tensor ``[batch, seq, Hkv, head_dim]``
        Its keys.
    topk : int
        Keys per query (``>= 1``).
    per_head : bool
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    int64 Tensor ``[batch, seq, 1 or Hq, topk]`` with ``-1`` padding (see :func:`topk_indices`).

    Examples
    --------
    >>> q = torch.randn(1, 6, 2, 8)
    >>> previous_layer_topk(q, q, 3).shape
    torch.Size([1, 6, 1, 3])
    """
    group = check_qkv(q, {"k": k})
    s = default_scale(q.shape[-1], scale)
    logits = torch.einsum("bihd,bjhd->bhij", q, expand_kv(k, group)) * s
    vis = _causal(q.shape[1], q.device)
    p = torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)
    return topk_indices(p if per_head else p.mean(dim=1), topk)


def _check_idx(name: str, idx, B: int, N: int, Hq: int, Hkv: int) -> torch.Tensor:
    """Validate a top-k index tensor; return it broadcast to ``[B, N, Hq, k]``."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 4:
        raise ValueError(f"{name} must be an integer Tensor [batch, seq, heads, k]")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer positions, got {idx.dtype}")
    b, n, h, kk = idx.shape
    if b not in (1, B):
        raise ValueError(f"{name} has batch {b} but q has batch {B}")
    if n != N:
        raise ValueError(f"{name} has seq {n} but q has seq {N}")
    if h not in (1, Hkv, Hq):
        raise ValueError(f"{name} has {h} heads; expected 1, the {Hkv} key/value heads or the {Hq} query heads")
    if kk < 1:
        raise ValueError(f"{name} must select k >= 1 keys per query, got k = {kk}")
    idx = idx.to(torch.int64)
    if (idx < -1).any() or (idx >= N).any():
        raise ValueError(f"{name} holds positions outside [-1, {N}) (-1 marks an empty slot)")
    i = torch.arange(N, device=idx.device)[None, :, None, None]
    if (idx > i).any():
        raise ValueError(f"{name} selects a future key (j > i): top-k selection must be causal")
    srt = idx.sort(dim=-1).values
    if ((srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] >= 0)).any():
        raise ValueError(f"{name} selects the same key twice for one query")
    if h == 1:
        idx = idx.expand(B, N, Hq, kk)
    elif h != Hq:
        idx = idx.repeat_interleave(Hq // h, dim=2)
    return idx.expand(B, N, Hq, kk)


def topk_pair_mask(idx1, idx2=None, n: int | None = None, *, heads: int | None = None) -> torch.Tensor:
    """The dense pair mask equivalent to a top-k selection (small ``n`` only: ``n^3`` entries).

    ``mask[b, h, i, j, k]`` is True iff ``j`` is among ``idx1[b, i, h]`` and ``k`` among
    ``idx2[b, i, h]`` (``idx2`` defaults to ``idx1``, the shared selection).

    Parameters
    ----------
    idx1, idx2 : int Tensor ``[batch, seq, heads, k]`` with ``-1`` padding
    n : int, optional
        Sequence length (default ``idx1.shape[1]``).
    heads : int, optional
        Query heads ``Hq``: selections with fewer heads are spread by the GQA rule (set ``h // (Hq
        // H)`` for query head ``h``), as in :func:`topk_two_simplicial_attention`.

    Returns
    -------
    Bool Tensor ``[batch, heads, seq, seq, seq]`` (``heads`` = ``Hq`` if given, else the larger
    head count of the two selections)

    Examples
    --------
    >>> idx = torch.tensor([[[[0, -1]], [[0, 1]]]])  # [1, 2, 1, 2]
    >>> topk_pair_mask(idx).sum().item()  # 1 pair for query 0, 4 for query 1
    5
    """
    idx2 = idx1 if idx2 is None else idx2
    n = idx1.shape[1] if n is None else n
    if heads is not None:
        idx1, idx2 = (
            ix if ix.shape[2] in (1, heads) else ix.repeat_interleave(heads // ix.shape[2], dim=2)
            for ix in (idx1, idx2)
        )

    def one_hot(idx):
        sel = torch.zeros(*idx.shape[:3], n + 1, dtype=torch.bool, device=idx.device)
        sel.scatter_(-1, torch.where(idx >= 0, idx, torch.full_like(idx, n)), True)
        return sel[..., :n].permute(0, 2, 1, 3)  # [B, H, i, j]

    s1, s2 = one_hot(idx1), one_hot(idx2)
    return s1[..., :, None] & s2[..., None, :]


def topk_two_simplicial_attention(q, k1, k2, v1, v2, idx, *, idx2=None, scale=None) -> torch.Tensor:
    """2-simplicial attention over the ``k x k`` pairs of selected keys of each query.

    Each query ``i`` gathers its selected rows ``idx[b, i, h]`` of K1/V1 and ``idx2[b, i, h]`` of
    K2/V2 and runs dense 2-simplicial attention over those pairs only: ``O(seq * k^2)`` time and
    memory per head, never ``seq^3``. Empty slots (``-1``) are masked; a query whose selection is
    empty outputs zeros.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    idx : int Tensor ``[batch or 1, seq, H, k]``
        Selected positions for K1/V1 (``-1`` = empty). ``H`` is 1 (one set for all heads), ``Hkv``
        (query head ``h`` uses set ``h // (Hq // Hkv)``) or ``Hq``. Every position must be causal
        (``<= i``) and appear at most once per row.
    idx2 : int Tensor, optional
        Selection for K2/V2 (its own ``k`` allowed); default ``idx`` (the shared selection).
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> x = torch.randn(1, 6, 2, 8)
    >>> idx = previous_layer_topk(x, x, 3)
    >>> topk_two_simplicial_attention(x, x, x, x, x, idx).shape
    torch.Size([1, 6, 2, 8])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    B, N, Hq, D = q.shape
    Hkv = Hq // group
    idx1 = _check_idx("idx", idx, B, N, Hq, Hkv)
    idx2 = idx1 if idx2 is None else _check_idx("idx2", idx2, B, N, Hq, Hkv)
    s = default_scale(D, scale)
    b = torch.arange(B, device=q.device)[:, None, None, None]
    h = torch.arange(Hq, device=q.device)[None, None, :, None]

    def gather(t, ix):  # t [B, N, Hkv, D] -> [B, N(i), Hq, k, D]
        return expand_kv(t, group)[b, ix.clamp(min=0), h]

    K1, V1 = gather(k1, idx1), gather(v1, idx1)
    K2, V2 = gather(k2, idx2), gather(v2, idx2)
    logits = torch.einsum("bihd,bihjd,bihkd->bihjk", q, K1, K2) * s
    ok = (idx1 >= 0)[..., :, None] & (idx2 >= 0)[..., None, :]
    flat = logits.flatten(-2)
    okf = ok.flatten(-2)
    row_ok = okf.any(-1, keepdim=True)
    # Empty rows stay finite (zeros out, no NaN in values or gradients).
    flat = torch.where(okf, flat, torch.full_like(flat, float("-inf")))
    flat = torch.where(row_ok, flat, torch.zeros_like(flat))
    p = (torch.softmax(flat, dim=-1) * row_ok).view_as(logits)
    return torch.einsum("bihjk,bihjd,bihkd->bihd", p, V1, V2)
