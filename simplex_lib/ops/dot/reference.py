"""Dot-product attention (the 1-simplex) in einsum: the float64 ground truth.

Tensors are ``[batch, seq, heads, head_dim]``; key/value tensors may have fewer heads than the
query (grouped-query attention), query head ``h`` reading key/value head ``h // (Hq // Hkv)``.
The default logit scale is ``1/sqrt(head_dim)``. Key ``j`` is visible to query ``i`` iff
``i - w < j <= i`` (causal, optionally windowed).
"""

from __future__ import annotations

import torch

from ..checks import check_causal, check_qkv, check_window, default_scale, expand_kv

__all__ = ["causal_window_mask", "per_query", "dot_attention_weights", "dot_attention"]


def causal_window_mask(n: int, w=None, *, causal: bool = True, device=None) -> torch.Tensor:
    """Bool ``[n, n]``: key ``j`` visible to query ``i`` (``i - w < j <= i``; all True if not causal).

    Parameters
    ----------
    n : int >= 0
        Sequence length.
    w : int >= 1, optional
        Window width; None (default): every key ``j <= i``. Ignored when ``causal=False``.
    causal : bool, default True
    device : torch.device or str, optional
        Where to build the mask (default: the CPU).

    Returns
    -------
    bool Tensor ``[n, n]`` indexed ``[i, j]``.

    Raises
    ------
    ValueError
        If ``n`` is not an int >= 0, ``w`` is not None or an int >= 1, or ``causal`` is not a bool.

    Examples
    --------
    >>> causal_window_mask(3, 2).int().tolist()
    [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    w = check_window("w", w)
    check_causal(causal)
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    if not causal:
        return torch.ones(n, n, dtype=torch.bool, device=device)
    vis = j <= i
    if w is not None:
        vis = vis & (j > i - w)
    return vis


def _surely(flag: torch.Tensor) -> bool:
    """``bool(flag)``, or False under :func:`torch.func.vmap`, where a batched value cannot steer
    control flow (the caller then takes its general path)."""
    return not torch._C._functorch.is_batchedtensor(flag) and bool(flag)


def per_query(t: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``t [batch, seq, heads, d]`` seen from each query: ``[batch, heads, i, j, d]``, zero where
    ``visible[..., i, j]`` is False (``[batch, heads, 1, j, d]``, a view, when nothing is masked
    or ``t`` is finite).

    Zeroing by ``where`` before any arithmetic is what keeps a NaN or inf at a masked key out of
    the queries that cannot see it (a masked weight of 0 times NaN would still be NaN).

    Parameters
    ----------
    t : Tensor ``[batch, seq, heads, d]``
        Keys or values.
    visible : bool Tensor ``[..., i, j]`` with ``j = seq``
        Which keys each query sees, e.g. :func:`causal_window_mask` ``[seq, seq]``; leading
        dimensions broadcast against ``[batch, heads]``.

    Returns
    -------
    Tensor ``[batch, heads, i, j, d]``, or the view ``[batch, heads, 1, j, d]`` when nothing is
    masked or every entry of ``t`` is finite (a masked weight times it is then exactly 0 anyway;
    under :func:`torch.func.vmap` the finiteness is not tested and the full tensor is returned).

    Raises
    ------
    ValueError
        If ``t`` is not a 4-D tensor or ``visible`` not a bool tensor with last dimension ``seq``.

    Examples
    --------
    >>> t = torch.tensor([1.0, float("nan")]).view(1, 2, 1, 1)
    >>> per_query(t, causal_window_mask(2))[0, 0, :, :, 0]
    tensor([[1., 0.],
            [1., nan]])
    """
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        raise ValueError("t must be a Tensor [batch, seq, heads, d]")
    n = t.shape[1]
    if (not isinstance(visible, torch.Tensor) or visible.dtype != torch.bool or visible.dim() < 2
            or visible.shape[-1] != n):
        raise ValueError(f"visible must be a bool Tensor [..., i, j] with j = seq = {n}")
    t = t.permute(0, 2, 1, 3)[:, :, None]  # [B, H, 1, j, d]
    if _surely(visible.all()) or _surely(torch.isfinite(t).all()):
        # Nothing masked, or a masked weight (exactly 0) times a finite value is exactly 0: the
        # view broadcasts over the queries without a copy, and the dense einsums keep their memory.
        return t
    return torch.where(visible[..., None], t, torch.zeros((), dtype=t.dtype, device=t.device))


def dot_attention_weights(q, k, *, causal: bool = True, scale=None) -> torch.Tensor:
    """Softmax attention weights of dot-product attention.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    causal : bool
        Query ``i`` sees keys ``j <= i`` only.
    scale : float, optional
        Logit scale, default ``1/sqrt(head_dim)``.

    Returns
    -------
    Tensor ``[batch, Hq, seq_q, seq_k]``; every row sums to one, masked entries are exactly 0.

    Examples
    --------
    >>> q = k = torch.randn(1, 4, 2, 8)
    >>> dot_attention_weights(q, k).shape
    torch.Size([1, 2, 4, 4])
    """
    group = check_qkv(q, {"k": k})
    check_causal(causal)
    s = default_scale(q.shape[-1], scale)
    vis = causal_window_mask(q.shape[1], causal=causal, device=q.device)
    logits = torch.einsum("bihd,bhijd->bhij", q, per_query(expand_kv(k, group), vis)) * s
    p = torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)
    return torch.where(vis, p, torch.zeros_like(p))  # exact zeros, even in a row made NaN


def dot_attention(q, k, v, *, causal: bool = True, scale=None) -> torch.Tensor:
    """Scaled dot-product attention, ``softmax(s q k^T) v``.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k, v : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    causal : bool
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> q = torch.randn(2, 5, 4, 8); kv = torch.randn(2, 5, 2, 8)
    >>> dot_attention(q, kv, kv).shape
    torch.Size([2, 5, 4, 8])
    """
    group = check_qkv(q, {"k": k, "v": v})
    p = dot_attention_weights(q, k, causal=causal, scale=scale)
    vis = causal_window_mask(q.shape[1], causal=causal, device=q.device)
    return torch.einsum("bhij,bhijd->bihd", p, per_query(expand_kv(v, group), vis))

