"""Reference attention: the ground truth every kernel and chapter is checked against.

Einsum first, clarity over speed. Tensors are ``[batch, seq, heads, head_dim]``; key/value tensors
may have fewer heads than the query (grouped-query attention), query head ``h`` reading key/value
head ``h // (Hq // Hkv)``. The default logit scale is ``1/sqrt(head_dim)``.

The 2-simplicial form (Clift et al., 2019; Roy et al., 2025, eqs. 5-7) scores a query against
*pairs* of keys with a trilinear form and mixes the element-wise product of the two values:

.. math::

    A_{ijk} = s \\sum_l q_{il} k^{(1)}_{jl} k^{(2)}_{kl}, \\qquad
    P_{ijk} = \\operatorname{softmax}_{(j,k)} A_{ijk}, \\qquad
    o_i = \\sum_{j,k} P_{ijk}\\, v^{(1)}_j \\circ v^{(2)}_k .

Windows restrict the pairs: key ``j`` of the first set is visible to query ``i`` iff
``i - w1 < j <= i``, key ``k`` of the second set iff ``i - w2 < k <= i``.
"""

from __future__ import annotations

import string

import torch

from ._checks import check_qkv, check_window, default_scale, expand_kv

__all__ = [
    "dot_attention_weights",
    "dot_attention",
    "two_simplicial_logits",
    "two_simplicial_mask",
    "two_simplicial_weights",
    "two_simplicial_attention",
    "two_simplicial_attention_masked",
    "n_simplicial_attention",
]

# Elements of one chunk of the windowed logit tensor [batch, heads, chunk, w1, w2]; bounds the
# reference's memory on long sequences (N = 4096 with 64x16 windows runs on a laptop).
_CHUNK_ELEMENTS = 1 << 22


def _visible(n: int, w, causal: bool, device) -> torch.Tensor:
    """Bool [n, n]: key j visible to query i (causal, optionally windowed)."""
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    if not causal:
        return torch.ones(n, n, dtype=torch.bool, device=device)
    vis = j <= i
    if w is not None:
        vis = vis & (j > i - w)
    return vis


def _check_windows(w1, w2, causal: bool) -> None:
    check_window("w1", w1)
    check_window("w2", w2)
    if not causal and (w1 is not None or w2 is not None):
        raise ValueError(
            "w1/w2 define causal sliding windows (i - w < j <= i); they need causal=True"
        )


# --------------------------------------------------------------------------------------------
# Dot-product attention (the 1-simplex)
# --------------------------------------------------------------------------------------------


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
    Tensor ``[batch, Hq, seq_q, seq_k]``; every row sums to one.

    Examples
    --------
    >>> q = k = torch.randn(1, 4, 2, 8)
    >>> dot_attention_weights(q, k).shape
    torch.Size([1, 2, 4, 4])
    """
    group = check_qkv(q, {"k": k})
    s = default_scale(q.shape[-1], scale)
    k = expand_kv(k, group)
    logits = torch.einsum("bihd,bjhd->bhij", q, k) * s
    vis = _visible(q.shape[1], None, causal, q.device)
    return torch.softmax(logits.masked_fill(~vis, float("-inf")), dim=-1)


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
    return torch.einsum("bhij,bjhd->bihd", p, expand_kv(v, group))


# --------------------------------------------------------------------------------------------
# 2-simplicial attention
# --------------------------------------------------------------------------------------------


def two_simplicial_logits(q, k1, k2, *, scale=None) -> torch.Tensor:
    """The full trilinear logit tensor ``A[b, h, i, j, k] = s * sum_l q_il k1_jl k2_kl``.

    Materialises ``seq^3`` entries per head: for teaching and small inputs only.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]``
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, Hq, seq, seq, seq]`` (no mask applied)

    Examples
    --------
    >>> q = torch.randn(1, 3, 1, 4)
    >>> two_simplicial_logits(q, q, q).shape
    torch.Size([1, 1, 3, 3, 3])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2})
    s = default_scale(q.shape[-1], scale)
    return torch.einsum("bihd,bjhd,bkhd->bhijk", q, expand_kv(k1, group), expand_kv(k2, group)) * s


def two_simplicial_mask(n: int, *, w1=None, w2=None, causal: bool = True, device=None) -> torch.Tensor:
    """Bool ``[n, n, n]``: pair ``(j, k)`` visible to query ``i``.

    ``j`` is visible iff ``i - w1 < j <= i`` and ``k`` iff ``i - w2 < k <= i`` (``None`` = no
    window); without ``causal`` every pair is visible.

    Examples
    --------
    >>> int(two_simplicial_mask(4, w1=2, w2=1)[3].sum())  # j in {2, 3}, k = 3
    2
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _check_windows(w1, w2, causal)
    v1 = _visible(n, w1, causal, device)
    v2 = _visible(n, w2, causal, device)
    return v1[:, :, None] & v2[:, None, :]


def _masked_softmax_pairs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last two dims, restricted to ``mask``; rows with no visible pair give 0."""
    shape = logits.shape
    flat = logits.reshape(*shape[:-2], -1)
    m = mask.reshape(*mask.shape[:-2], -1).expand_as(flat)
    row_ok = m.any(dim=-1, keepdim=True)
    # Keep empty rows finite so that neither the values nor the gradients become NaN.
    flat = torch.where(m, flat, torch.full_like(flat, float("-inf")))
    flat = torch.where(row_ok, flat, torch.zeros_like(flat))
    p = torch.softmax(flat, dim=-1) * row_ok
    return p.reshape(shape)


def two_simplicial_weights(q, k1, k2, *, w1=None, w2=None, causal: bool = True, scale=None) -> torch.Tensor:
    """Attention probabilities ``P[b, h, i, j, k]`` of 2-simplicial attention.

    Softmax is taken jointly over the visible pairs ``(j, k)`` of each query; masked entries are
    exactly zero. Materialises ``seq^3`` entries per head (teaching and small inputs).

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]``
    w1, w2 : int or None
        Sliding windows of the two key sets (``None`` = no window).
    causal : bool
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, Hq, seq, seq, seq]``; each ``[b, h, i]`` slice sums to one.

    Examples
    --------
    >>> q = torch.randn(1, 5, 2, 4)
    >>> p = two_simplicial_weights(q, q, q, w1=3, w2=2)
    >>> bool(torch.allclose(p.sum((-1, -2)), torch.ones(1, 2, 5)))
    True
    """
    _check_windows(w1, w2, causal)
    logits = two_simplicial_logits(q, k1, k2, scale=scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    return _masked_softmax_pairs(logits, mask)


def two_simplicial_attention_masked(q, k1, k2, v1, v2, mask, *, scale=None) -> torch.Tensor:
    """2-simplicial attention restricted to an arbitrary pair mask.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]``
    mask : bool Tensor broadcastable to ``[batch, Hq, seq, seq, seq]``
        ``mask[..., i, j, k]`` is True when query ``i`` may attend to the pair ``(j, k)``.
        A query with no visible pair outputs zeros.
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> x = torch.randn(1, 4, 1, 8)
    >>> m = two_simplicial_mask(4)  # plain causal
    >>> torch.allclose(two_simplicial_attention_masked(x, x, x, x, x, m),
    ...                two_simplicial_attention(x, x, x, x, x))
    True
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("mask must be a bool tensor broadcastable to [batch, heads, i, j, k]")
    B, N, H, _ = q.shape
    try:
        torch.broadcast_shapes(mask.shape, (B, H, N, N, N))
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to [batch, heads, i, j, k] = "
            f"{(B, H, N, N, N)}"
        ) from None
    logits = two_simplicial_logits(q, k1, k2, scale=scale)
    p = _masked_softmax_pairs(logits, mask)
    return torch.einsum("bhijk,bjhd,bkhd->bihd", p, expand_kv(v1, group), expand_kv(v2, group))


def _windowed_two_simplicial(q, k1, k2, v1, v2, w1: int, w2: int, s: float) -> torch.Tensor:
    """Causal windowed 2-simplicial attention, chunked over queries.

    Each query gathers exactly its ``w1`` and ``w2`` window rows (positions before the start of
    the sequence are masked), so memory is ``chunk * w1 * w2`` per head, never ``seq^3``.
    """
    B, N, H, D = q.shape
    dev = q.device
    per_query = max(1, B * H * w1 * w2)
    chunk = max(1, min(N, _CHUNK_ELEMENTS // per_query))
    a1 = torch.arange(w1, device=dev)
    a2 = torch.arange(w2, device=dev)
    outs = []
    for i0 in range(0, N, chunk):
        i = torch.arange(i0, min(N, i0 + chunk), device=dev)
        j = i[:, None] - (w1 - 1) + a1[None, :]  # [C, w1]: i - w1 < j <= i
        k = i[:, None] - (w2 - 1) + a2[None, :]
        ok = (j >= 0)[:, :, None] & (k >= 0)[:, None, :]  # [C, w1, w2]
        jc, kc = j.clamp(min=0), k.clamp(min=0)
        K1, V1 = k1[:, jc], v1[:, jc]  # [B, C, w1, H, D]
        K2, V2 = k2[:, kc], v2[:, kc]
        logits = torch.einsum("bchd,bcjhd,bckhd->bhcjk", q[:, i], K1, K2) * s
        p = _masked_softmax_pairs(logits, ok)
        outs.append(torch.einsum("bhcjk,bcjhd,bckhd->bchd", p, V1, V2))
    return torch.cat(outs, dim=1)


def two_simplicial_attention(q, k1, k2, v1, v2, *, w1=None, w2=None, causal: bool = True, scale=None) -> torch.Tensor:
    """2-simplicial (trilinear) attention, the paper's eqs. 5-7 and Algorithm 1.

    ``o_i = sum_{j,k} softmax_{(j,k)}(s * <q_i, k1_j, k2_k>) * (v1_j * v2_k)``, where
    ``<a, b, c> = sum_l a_l b_l c_l`` and the softmax runs jointly over the visible pairs.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    w1, w2 : int or None
        Sliding windows: ``j`` visible iff ``i - w1 < j <= i``, ``k`` iff ``i - w2 < k <= i``.
        ``None`` means no window. Windows need ``causal=True``. With windows the computation is
        chunked so that memory stays ``O(seq * w1 * w2)``.
    causal : bool
        Only pairs with ``j <= i`` and ``k <= i``.
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]`` in the input dtype.

    Examples
    --------
    >>> q = torch.randn(1, 6, 4, 8); kv = [torch.randn(1, 6, 2, 8) for _ in range(4)]
    >>> two_simplicial_attention(q, *kv, w1=4, w2=2).shape
    torch.Size([1, 6, 4, 8])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    _check_windows(w1, w2, causal)
    s = default_scale(q.shape[-1], scale)
    N = q.shape[1]
    if causal and (w1 is not None or w2 is not None):
        k1, k2, v1, v2 = (expand_kv(t, group) for t in (k1, k2, v1, v2))
        return _windowed_two_simplicial(q, k1, k2, v1, v2, min(w1 or N, N), min(w2 or N, N), s)
    p = two_simplicial_weights(q, k1, k2, causal=causal, scale=s)
    return torch.einsum("bhijk,bjhd,bkhd->bihd", p, expand_kv(v1, group), expand_kv(v2, group))


# --------------------------------------------------------------------------------------------
# n-simplicial attention
# --------------------------------------------------------------------------------------------


def n_simplicial_attention(q, keys, values, *, causal: bool = True, scale=None, reducer: str = "and") -> torch.Tensor:
    """n-simplicial attention: a query scored against n-tuples of keys.

    ``A[i, j_1..j_n] = s * sum_l q_il prod_m K^(m)_{j_m l}``, softmax jointly over the tuple, and
    the output mixes ``prod_m V^(m)_{j_m}`` (``reducer="and"``, element-wise product) or
    ``sum_m V^(m)_{j_m}`` (``reducer="or"``). ``n = 1`` is :func:`dot_attention` and ``n = 2`` with
    ``"and"`` is :func:`two_simplicial_attention`. Materialises ``seq^(n+1)`` logits per head.

    The blog post writes an extra ``1/sqrt(d)`` on the output; that is a notational variant and
    is not applied here.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    keys, values : sequences of n Tensors ``[batch, seq, Hkv, head_dim]``
    causal : bool
        Every index of the tuple must be ``<= i``.
    scale : float, optional (default ``1/sqrt(head_dim)``)
    reducer : ``"and"`` or ``"or"``

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> x = torch.randn(1, 4, 1, 8)
    >>> torch.allclose(n_simplicial_attention(x, [x], [x]), dot_attention(x, x, x))
    True
    """
    keys, values = list(keys), list(values)
    n = len(keys)
    if n < 1:
        raise ValueError("keys must hold at least one tensor (n >= 1)")
    if len(values) != n:
        raise ValueError(f"values must hold as many tensors as keys ({n}), got {len(values)}")
    if reducer not in ("and", "or"):
        raise ValueError(f"reducer must be 'and' or 'or', got {reducer!r}")
    if n > 8:
        raise ValueError(f"n = {n} is too large for a dense reference (seq^(n+1) logits)")
    named = {f"keys[{m}]": t for m, t in enumerate(keys)}
    named.update({f"values[{m}]": t for m, t in enumerate(values)})
    group = check_qkv(q, named)
    s = default_scale(q.shape[-1], scale)
    keys = [expand_kv(t, group) for t in keys]
    values = [expand_kv(t, group) for t in values]
    N = q.shape[1]

    idx = string.ascii_lowercase[10 : 10 + n]  # tuple index letters k, l, m, ...
    spec = ",".join(["bihd"] + [f"b{c}hd" for c in idx]) + f"->bhi{idx}"
    logits = torch.einsum(spec, q, *keys) * s

    mask = torch.ones((N,) * (n + 1), dtype=torch.bool, device=q.device)
    if causal:
        ar = torch.arange(N, device=q.device)
        for m in range(n):
            shape_i = [N] + [1] * n
            shape_j = [1] * (n + 1)
            shape_j[m + 1] = N
            mask = mask & (ar.view(shape_j) <= ar.view(shape_i))
    p = torch.softmax(logits.masked_fill(~mask, float("-inf")).flatten(3), dim=-1).view_as(logits)

    if reducer == "and":
        spec = ",".join([f"bhi{idx}"] + [f"b{c}hd" for c in idx]) + "->bihd"
        return torch.einsum(spec, p, *values)
    out = torch.zeros_like(q)
    for m, (c, v) in enumerate(zip(idx, values)):
        marginal = torch.einsum(f"bhi{idx}->bhi{c}", p)  # weight of V^(m)_{j_m}
        out = out + torch.einsum(f"bhi{c},b{c}hd->bihd", marginal, v)
    return out
