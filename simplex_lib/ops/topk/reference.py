"""Top-k 2-simplicial attention in PyTorch: the reference the top-k kernels are checked against.

Each query attends to the ``k1 x k2`` pairs of its selected keys (the index convention is that of
:mod:`simplex_lib.masks`; selections come from :mod:`simplex_lib.selection`). Memory and time are
``O(seq * k1 * k2)`` per head, never ``seq^3``; the dense equivalent is
:func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_attention` under
:func:`simplex_lib.masks.topk_pair_mask`.
"""

from __future__ import annotations

import torch

from ..checks import check_qkv, default_scale, expand_kv
from ...masks import check_topk_index

__all__ = ["topk_two_simplicial_attention"]


def topk_two_simplicial_attention(q, k1, k2, v1, v2, idx, *, idx2=None,
                                  scale=None) -> torch.Tensor:
    """2-simplicial attention over the ``k x k`` pairs of selected keys of each query.

    Each query ``i`` gathers its selected rows ``idx[b, i, h]`` of K1/V1 and
    ``idx2[b, i, h]`` of K2/V2 and runs dense 2-simplicial attention over those pairs
    only: ``O(seq * k^2)`` time and memory per head, never ``seq^3``. Empty slots
    (``-1``) are masked; a query whose selection is empty outputs zeros.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    idx : int Tensor ``[batch or 1, seq, H, k]``
        Selected positions for K1/V1 (``-1`` = empty). ``H`` is 1 (one set for all
        heads), ``Hkv`` (query head ``h`` uses set ``h // (Hq // Hkv)``) or ``Hq``.
        Every position must be causal (``<= i``) and appear at most once per row.
    idx2 : int Tensor, optional
        Selection for K2/V2 (its own ``k`` allowed); default ``idx`` (the shared
        selection).
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> x = torch.randn(1, 6, 2, 8)
    >>> from simplex_lib.selection import previous_layer_topk
    >>> idx = previous_layer_topk(x, x, 3)
    >>> topk_two_simplicial_attention(x, x, x, x, x, idx).shape
    torch.Size([1, 6, 2, 8])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    B, N, Hq, D = q.shape
    Hkv = Hq // group
    idx1 = check_topk_index("idx", idx, batch=B, seq=N, heads=Hq, kv_heads=Hkv)
    if idx2 is None:
        idx2 = idx1
    else:
        idx2 = check_topk_index("idx2", idx2, batch=B, seq=N, heads=Hq, kv_heads=Hkv)
    s = default_scale(D, scale)
    b = torch.arange(B, device=q.device)[:, None, None, None]
    h = torch.arange(Hq, device=q.device)[None, None, :, None]

    def gather(t, ix):  # t [B, N, Hkv, D] -> [B, N(i), Hq, k, D]
        rows = expand_kv(t, group)[b, ix.clamp(min=0), h]
        # Empty slots hold exact zeros, so a NaN at position 0 cannot leak into them
        # (never 0 * NaN).
        zero = torch.zeros((), dtype=rows.dtype, device=rows.device)
        return torch.where((ix >= 0)[..., None], rows, zero)

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
