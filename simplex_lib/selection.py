"""Top-k selection: which keys each query keeps, and how much attention the kept pairs hold.

Dense 2-simplicial attention scores every pair of past keys; top-k selection (Pappone, 2025, after
DeepSeek Sparse Attention) keeps ``k`` keys per query and attends to the ``k x k`` pairs of them.

- :func:`indexer_scores`: a cheap DSA-style indexer scores every past key of each query
  (``rule="relu"`` as in DSA, ``rule="softmax"`` as in the blog's variant);
- :func:`topk_indices`: the ``k`` best-scoring past keys, ``-1`` padded (the index convention of
  :mod:`simplex_lib.masks`);
- :func:`previous_layer_topk`: the shared-selection shortcut, ranking keys by the preceding
  dot-product layer's attention (no indexer at all);
- :func:`kept_mass`: a coverage measure, the share of each query's dense attention that falls on
  the pairs a mask keeps.

The attention over the selected pairs is
:func:`simplex_lib.ops.topk.reference.topk_two_simplicial_attention`; its cost is
:func:`simplex_lib.cost.topk_flops` plus :func:`simplex_lib.cost.indexer_flops`.
"""

from __future__ import annotations

import torch

from .ops.checks import check_qkv, default_scale, expand_kv
from .masks import sliding_window_mask

__all__ = ["indexer_scores", "topk_indices", "previous_layer_topk", "kept_mass"]


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
    vis = sliding_window_mask(N, device=q_index.device)
    if rule == "relu":
        per_head = torch.relu(logits)
    else:
        per_head = torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)
    scores = torch.einsum("bhij,bih->bij", per_head, weights.to(per_head.dtype))
    return scores.masked_fill(~vis, float("-inf"))


def topk_indices(scores, k: int) -> torch.Tensor:
    """Per query, the positions of the ``k`` best-scoring past keys (``-1`` padded).

    Query ``i`` has only ``i + 1`` past keys (``j <= i``); when ``i + 1 < k`` its row
    holds all of them followed by ``-1``. Future keys are never chosen, whatever their
    score. Equal scores go to the earlier key (``torch.topk`` leaves ties to the
    implementation; the ReLU indexer scores many keys exactly 0), so the selection is
    the same on every machine and in the browser's explorer. Positions in a row are
    sorted in increasing order (the order does not matter to attention).

    Parameters
    ----------
    scores : Tensor ``[batch, seq_q, seq_k]`` or ``[batch, heads, seq_q, seq_k]``
        Higher is better; entries with ``j > i`` are ignored.
    k : int
        Keys to keep per query (``>= 1``); ``k > seq`` is allowed.

    Returns
    -------
    int64 Tensor ``[batch, seq, heads, k]``
        ``heads = 1`` for 3-D scores; validity is ``idx >= 0``.

    Examples
    --------
    >>> s = torch.tensor([[[5., 0, 0], [1, 2, 0], [3, 1, 2]]])
    >>> topk_indices(s, 2)[0, :, 0].tolist()
    [[0, -1], [0, 1], [0, 2]]
    >>> # a tie: the earlier keys
    >>> topk_indices(torch.zeros(1, 3, 3), 2)[0, 2, 0].tolist()
    [0, 1]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if not isinstance(scores, torch.Tensor) or scores.dim() not in (3, 4):
        raise ValueError("scores must be a Tensor [batch, seq_q, seq_k] or "
                         "[batch, heads, seq_q, seq_k]")
    if scores.dim() == 3:
        scores = scores[:, None]
    B, H, N, M = scores.shape
    if N != M:
        raise ValueError(f"scores must be square in (seq_q, seq_k), got {N} x {M}")
    vis = sliding_window_mask(N, device=scores.device)
    past = scores.to(torch.float64)
    if torch.isnan(past).masked_select(vis).any():
        raise ValueError("scores has NaN at a causal position")
    # Every past key must outrank every future key, even a past key scored -inf.
    lowest = torch.finfo(torch.float64).min
    key = torch.where(vis, past.clamp(min=lowest), torch.full_like(past, float("-inf")))
    kk = min(k, N)
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices
    top = order[..., :kk]  # [B, H, N, kk]
    i = torch.arange(N, device=scores.device)[None, None, :, None]
    rank = torch.arange(kk, device=scores.device)
    valid = rank <= i  # query i has i + 1 past keys
    big = N  # sorts padding to the end
    top = torch.where(valid, top, torch.full_like(top, big)).sort(dim=-1).values
    top = torch.where(top == big, torch.full_like(top, -1), top)
    if kk < k:
        top = torch.cat([top, top.new_full((B, H, N, k - kk), -1)], dim=-1)
    return top.permute(0, 2, 1, 3).contiguous()


def previous_layer_topk(q, k, topk: int, *, per_head: bool = False,
                        scale=None) -> torch.Tensor:
    """The shared-selection shortcut: pick the top-k keys from a dot-product layer's
    scores.

    The blog's variant does not run a separate indexer for K1 and K2: it ranks keys by
    the causal attention of the preceding dot-product layer and uses the same ``k``
    positions for both key sets. With ``per_head=False`` the softmax weights are
    averaged over heads to one set per query; with ``per_head=True`` each head keeps its
    own set.

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
    int64 Tensor ``[batch, seq, 1 or Hq, topk]``
        With ``-1`` padding (see :func:`topk_indices`).

    Examples
    --------
    >>> q = torch.randn(1, 6, 2, 8)
    >>> previous_layer_topk(q, q, 3).shape
    torch.Size([1, 6, 1, 3])
    """
    if not isinstance(per_head, bool):
        raise ValueError(f"per_head must be True or False, got {per_head!r}")
    group = check_qkv(q, {"k": k})
    s = default_scale(q.shape[-1], scale)
    logits = torch.einsum("bihd,bjhd->bhij", q, expand_kv(k, group)) * s
    vis = sliding_window_mask(q.shape[1], device=q.device)
    p = torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)
    return topk_indices(p if per_head else p.mean(dim=1), topk)


def kept_mass(weights, mask) -> torch.Tensor:
    """Share of each query's attention probability that falls on the pairs a mask keeps.

    A coverage measure of a sparsity scheme: with ``weights`` the dense causal 2-simplicial
    probabilities of each query over all pairs ``(j, k)`` (they sum to one per query), the result
    is 1 where the scheme keeps every pair that matters and 0 where it keeps none. Masked-out
    entries contribute exact zeros (a NaN there does not leak).

    Parameters
    ----------
    weights : float Tensor ``[..., seq, seq, seq]`` indexed ``[..., i, j, k]``
        E.g. :func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_weights` (``[batch, heads, i, j, k]``).
    mask : bool Tensor broadcastable to ``weights``
        E.g. :func:`simplex_lib.masks.window_pair_mask` ``[i, j, k]`` or
        :func:`simplex_lib.masks.topk_pair_mask` ``[batch, heads, i, j, k]``.

    Returns
    -------
    Tensor ``[..., seq]``: the kept share per query.

    Examples
    --------
    >>> from simplex_lib.masks import window_pair_mask
    >>> p = torch.full((3, 3, 3), 1 / 9.0, dtype=torch.float64)
    >>> kept_mass(p, window_pair_mask(3, 2, 1)).tolist()
    [0.1111111111111111, 0.2222222222222222, 0.2222222222222222]
    """
    if not isinstance(weights, torch.Tensor) or weights.dim() < 3 or not weights.is_floating_point():
        raise ValueError("weights must be a float Tensor [..., seq, seq, seq]")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool Tensor")
    try:
        shape = torch.broadcast_shapes(weights.shape, mask.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to weights "
                         f"{tuple(weights.shape)}") from None
    if shape != weights.shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} would enlarge weights {tuple(weights.shape)}")
    kept = torch.where(mask, weights, torch.zeros((), dtype=weights.dtype, device=weights.device))
    return kept.sum((-1, -2))
