"""The memory-efficient PyTorch path of 2-simplicial attention: gather each query's keys, one einsum.

Each query ``i`` gathers the rows of K1/V1 and K2/V2 it may see (its causal window, or any causal
selection such as a top-k set) and attends over their ``m1 x m2`` pairs. Queries are processed
in chunks, so memory is ``O(seq * m1 * m2)`` per head, never ``seq^3``; key/value heads are never
expanded for grouped-query attention (query heads are grouped under their key/value head).
Empty slots (``-1``) are replaced by zero keys and values with ``where`` before any arithmetic:
a NaN at position ``p`` reaches only the queries that select ``p``.

This is the default ``"torch"`` backend of :class:`simplex_lib.layers.TwoSimplicialAttention`;
:mod:`simplex_lib.ops.two_simplicial.reference` is the ground truth it is tested against.
"""

from __future__ import annotations

import torch

from ..checks import check_qkv, check_selection, check_window, default_scale
from ...masks import window_indices
from .reference import masked_softmax_pairs

__all__ = ["gathered_two_simplicial_attention", "windowed_two_simplicial_attention"]

# Elements of one chunk's logit tensor [batch, chunk, heads, m1, m2]; bounds the memory of one
# step (N = 4096 with 64x16 windows runs on a laptop).
_CHUNK_ELEMENTS = 1 << 22
_CHUNK_ELEMENTS_GPU = 1 << 26  # 256 MiB of float32 logits


def _gathered(q, k1, k2, v1, v2, sel1, sel2, s: float) -> torch.Tensor:
    """Attention over validated selections ``sel1 [B, N, m1]``, ``sel2 [B, N, m2]``, by query chunks."""
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    if B == 0 or N == 0:
        return q * 0  # empty, and still part of the autograd graph
    m1, m2 = sel1.shape[-1], sel2.shape[-1]
    # A GPU is launch-bound long before it runs out of memory: larger chunks there.
    budget = _CHUNK_ELEMENTS if q.device.type == "cpu" else _CHUNK_ELEMENTS_GPU
    chunk = max(1, min(N, budget // max(1, B * Hq * m1 * m2)))
    b = torch.arange(B, device=q.device)[:, None, None]
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    outs = []
    for i0 in range(0, N, chunk):
        ix1, ix2 = sel1[:, i0 : i0 + chunk], sel2[:, i0 : i0 + chunk]  # [B, C, m]
        ok1 = (ix1 >= 0)[..., None, None]  # [B, C, m1, 1, 1]
        ok2 = (ix2 >= 0)[..., None, None]
        # Gather each query's rows; empty slots read row 0 and are then zeroed (never 0 * NaN).
        K1 = torch.where(ok1, k1[b, ix1.clamp(min=0)], zero)  # [B, C, m1, Hkv, D]
        V1 = torch.where(ok1, v1[b, ix1.clamp(min=0)], zero)
        K2 = torch.where(ok2, k2[b, ix2.clamp(min=0)], zero)  # [B, C, m2, Hkv, D]
        V2 = torch.where(ok2, v2[b, ix2.clamp(min=0)], zero)
        qg = q[:, i0 : i0 + chunk].reshape(B, -1, Hkv, G, D)  # [B, C, Hkv, G, D]
        # (q * k1) first, then a batched matmul against k2: the tiling of the paper's Figure 2.
        logits = torch.einsum("bihgd,bijhd,bikhd->bihgjk", qg, K1, K2) * s  # [B, C, Hkv, G, m1, m2]
        ok = (ix1 >= 0)[:, :, None, None, :, None] & (ix2 >= 0)[:, :, None, None, None, :]
        p = masked_softmax_pairs(logits, ok)
        out = torch.einsum("bihgjk,bijhd,bikhd->bihgd", p, V1, V2)
        outs.append(out.reshape(B, -1, Hq, D))
    return torch.cat(outs, dim=1)


def gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx1, idx2=None, *, scale=None) -> torch.Tensor:
    """2-simplicial attention over per-query key selections.

    Query ``i`` attends to the pairs ``(j, k)`` with ``j`` in ``idx1[..., i, :]`` and ``k`` in
    ``idx2[..., i, :]``; ``-1`` marks an empty slot. One selection serves all heads. With
    :func:`simplex_lib.masks.window_indices` this is causal sliding-window attention; with a top-k selection
    (``-1`` padded, as the selection module returns it) it is top-k 2-simplicial attention.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    idx1 : int Tensor ``[seq, m1]`` (same for every batch row) or ``[batch, seq, m1]``
        Positions for K1/V1. Every position must satisfy ``-1 <= j <= i`` (a future key raises
        ``ValueError``) and appear at most once per row.
    idx2 : int Tensor, optional
        Positions for K2/V2 (default ``idx1``).
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``; a query with no visible pair outputs zeros.

    Examples
    --------
    >>> q = torch.randn(2, 5, 4, 8); kv = [torch.randn(2, 5, 2, 8) for _ in range(4)]
    >>> o = gathered_two_simplicial_attention(q, *kv, window_indices(5, 3), window_indices(5, 2))
    >>> o.shape
    torch.Size([2, 5, 4, 8])
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    B, N = q.shape[:2]
    sel1 = check_selection("idx1", idx1, B, N).to(q.device)
    sel2 = sel1 if idx2 is None else check_selection("idx2", idx2, B, N).to(q.device)
    return _gathered(q, k1, k2, v1, v2, sel1, sel2, default_scale(q.shape[-1], scale))


def windowed_two_simplicial_attention(q, k1, k2, v1, v2, *, w1, w2, scale=None) -> torch.Tensor:
    """Causal sliding-window 2-simplicial attention: ``j`` visible iff ``i - w1 < j <= i``, ``k``
    iff ``i - w2 < k <= i``. Same function as the reference with ``causal=True``, in
    ``O(seq * w1 * w2)`` memory per head.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    w1, w2 : int or None
        Window lengths (``>= 1``; ``None`` = the whole causal prefix, ``seq`` keys).
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention
    >>> q = torch.randn(1, 9, 4, 8, dtype=torch.float64)
    >>> kv = [torch.randn(1, 9, 2, 8, dtype=torch.float64) for _ in range(4)]
    >>> torch.allclose(windowed_two_simplicial_attention(q, *kv, w1=4, w2=2),
    ...                two_simplicial_attention(q, *kv, w1=4, w2=2))
    True
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    w1, w2 = check_window("w1", w1), check_window("w2", w2)
    B, N = q.shape[:2]
    s = default_scale(q.shape[-1], scale)
    if N == 0:
        return q * 0
    sel1 = window_indices(N, N if w1 is None else w1, device=q.device).expand(B, N, -1)
    sel2 = window_indices(N, N if w2 is None else w2, device=q.device).expand(B, N, -1)
    return _gathered(q, k1, k2, v1, v2, sel1, sel2, s)
