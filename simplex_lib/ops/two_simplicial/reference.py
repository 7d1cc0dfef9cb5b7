"""2-simplicial attention in einsum: the float64 ground truth every fast path is checked against.

Clarity over speed: the logits of every query against every pair of keys are materialised
(``seq^3`` per head), and a pair mask says which ones count. Tensors are
``[batch, seq, heads, head_dim]``; key/value tensors may have fewer heads than the query
(grouped-query attention), query head ``h`` reading key/value head ``h // (Hq // Hkv)``. The
default logit scale is ``1/sqrt(head_dim)``.

The 2-simplicial form (Clift et al., 2019; Roy et al., 2025, eqs. 5-7) scores a query against
*pairs* of keys with a trilinear form and mixes the element-wise product of the two values:

.. math::

    A_{ijk} = s \\sum_l q_{il} k^{(1)}_{jl} k^{(2)}_{kl}, \\qquad
    P_{ijk} = \\operatorname{softmax}_{(j,k)} A_{ijk}, \\qquad
    o_i = \\sum_{j,k} P_{ijk}\\, v^{(1)}_j \\circ v^{(2)}_k .

Windows restrict the pairs: key ``j`` of the first set is visible to query ``i`` iff
``i - w1 < j <= i``, key ``k`` of the second set iff ``i - w2 < k <= i``. A key that query ``i``
cannot see is replaced by zero before any arithmetic, so a NaN there never reaches query ``i``.
For long sequences use :func:`simplex_lib.ops.two_simplicial.windowed.windowed_two_simplicial_attention`,
which is checked against this module.
"""

from __future__ import annotations

import torch

from ..checks import (autocasting, check_bshd, check_causal, check_qkv, check_window, default_scale,
                      expand_kv)
from ..dot.reference import causal_window_mask, per_query

__all__ = [
    "two_simplicial_logits",
    "two_simplicial_mask",
    "two_simplicial_weights",
    "two_simplicial_attention",
    "two_simplicial_attention_masked",
    "masked_softmax_pairs",
    "reduce_values",
]


def _broadcasts_to(shape, target) -> bool:
    """True when a tensor of ``shape`` broadcasts to exactly ``target``."""
    try:
        return tuple(torch.broadcast_shapes(shape, target)) == tuple(target)
    except RuntimeError:
        return False


def _check_windows(w1, w2, causal) -> tuple:
    check_causal(causal)
    w1, w2 = check_window("w1", w1), check_window("w2", w2)
    if not causal and (w1 is not None or w2 is not None):
        raise ValueError(
            "w1/w2 define causal sliding windows (i - w < j <= i); they need causal=True"
        )
    return w1, w2


def two_simplicial_logits(q, k1, k2, *, scale=None) -> torch.Tensor:
    """The full trilinear logit tensor
    ``A[b, h, i, j, k] = s * sum_l q_il k1_jl k2_kl``.

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
    k1, k2 = expand_kv(k1, group), expand_kv(k2, group)
    return torch.einsum("bihd,bjhd,bkhd->bhijk", q, k1, k2) * s


def two_simplicial_mask(n: int, *, w1=None, w2=None, causal: bool = True, device=None) -> torch.Tensor:
    """Bool ``[n, n, n]``: pair ``(j, k)`` visible to query ``i``.

    ``j`` is visible iff ``i - w1 < j <= i`` and ``k`` iff ``i - w2 < k <= i`` (``None`` = no
    window); without ``causal`` every pair is visible.

    Parameters
    ----------
    n : int >= 0
        Sequence length.
    w1, w2 : int >= 1, optional
        Windows of the first and second key set; None (default): no window.
    causal : bool, default True
    device : torch.device or str, optional
        Where to build the mask (default: the CPU).

    Returns
    -------
    bool Tensor ``[n, n, n]`` indexed ``[i, j, k]``.

    Raises
    ------
    ValueError
        If ``n`` is not an int >= 0, a window is not None or an int >= 1, ``causal`` is not a
        bool, or a window is given with ``causal=False``.

    Examples
    --------
    >>> int(two_simplicial_mask(4, w1=2, w2=1)[3].sum())  # j in {2, 3}, k = 3
    2
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    w1, w2 = _check_windows(w1, w2, causal)
    v1 = causal_window_mask(n, w1, causal=causal, device=device)
    v2 = causal_window_mask(n, w2, causal=causal, device=device)
    return v1[:, :, None] & v2[:, None, :]


def masked_softmax_pairs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last two dims, restricted to ``mask``.

    Masked entries are exactly zero (``where``, so a NaN logit there is dropped); rows with no
    visible pair give all zeros and finite gradients.

    Parameters
    ----------
    logits : floating Tensor ``[..., j, k]``
        E.g. :func:`two_simplicial_logits` ``[batch, heads, i, j, k]``.
    mask : bool Tensor ``[..., j, k]``
        Visible pairs; must broadcast to ``logits`` (e.g. :func:`two_simplicial_mask` ``[i, j, k]``).

    Returns
    -------
    Tensor of ``logits``' shape and dtype; each ``[j, k]`` slice sums to 1 over its visible
    entries (0 where none is visible).

    Raises
    ------
    ValueError
        If ``logits`` is not a floating tensor with at least 2 dimensions, ``mask`` not a bool
        tensor with at least 2, or ``mask`` does not broadcast to ``logits``.

    Examples
    --------
    >>> a = torch.tensor([[float("nan"), 0.0], [0.0, 0.0]])
    >>> masked_softmax_pairs(a, torch.tensor([[False, True], [True, False]]))
    tensor([[0.0000, 0.5000],
            [0.5000, 0.0000]])
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 2:
        raise ValueError("logits must be a floating Tensor [..., j, k]")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() < 2:
        raise ValueError("mask must be a bool Tensor [..., j, k]")
    if not _broadcasts_to(mask.shape, logits.shape):
        raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to logits {tuple(logits.shape)}")
    shape = logits.shape
    flat = logits.flatten(-2)
    m = mask.flatten(-2).expand_as(flat)
    row_ok = m.any(dim=-1, keepdim=True)
    flat = flat.masked_fill(~m, float("-inf"))  # replaces a NaN at a masked entry too
    # Keep empty rows finite so that neither the values nor the gradients become NaN.
    flat = flat.masked_fill(~row_ok, 0.0)
    # Masked entries are exact zeros even in a row that a visible NaN turns into NaN.
    return torch.softmax(flat, dim=-1).masked_fill(~m, 0.0).reshape(shape)


def _pair_logits(q, k1, k2, mask, s, group) -> torch.Tensor:
    """Logits ``[b, h, i, j, k]`` with each query's own copy of the keys, zero outside the keys
    its visible pairs use (so a NaN key reaches only the queries that see it, gradients included).
    """
    K1 = per_query(expand_kv(k1, group), mask.any(-1))  # [B, H, i, j, D]
    K2 = per_query(expand_kv(k2, group), mask.any(-2))  # [B, H, i, k, D]
    return torch.einsum("bihd,bhijd,bhikd->bhijk", q, K1, K2) * s


def reduce_values(weights, v1, v2, *, reducer: str = "and", mask=None) -> torch.Tensor:
    """Mix per-triangle values with given weights: ``o_i = sum_{j,k} P_ijk f(v1_j, v2_k)``.

    ``reducer="and"`` uses ``f = v1_j * v2_k`` (element-wise product, the paper's eq. 7);
    ``reducer="or"`` uses ``f = v1_j + v2_k``, which only needs the two marginals of ``P``.

    Parameters
    ----------
    weights : Tensor ``[batch, Hq, seq, seq, seq]`` indexed ``[b, h, i, j, k]``
    v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    reducer : ``"and"`` or ``"or"``
    mask : bool Tensor broadcastable to ``weights``, optional
        The visible pairs. A value that query ``i`` cannot see is zeroed for that query before
        any product, so masked pairs contribute exact zeros even where a value is NaN or inf.
        Without a mask the contraction is a plain einsum (``0 * nan = nan``).

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> p = torch.zeros(1, 1, 2, 2, 2); p[0, 0, :, 1, 0] = 1.0  # every query picks (j, k) = (1, 0)
    >>> v1 = torch.tensor([[1.0], [2.0]]).view(1, 2, 1, 1); v2 = 3 * v1
    >>> reduce_values(p, v1, v2)[0, :, 0, 0], reduce_values(p, v1, v2, reducer="or")[0, :, 0, 0]
    (tensor([6., 6.]), tensor([5., 5.]))
    """
    if reducer not in ("and", "or"):
        raise ValueError(f"reducer must be 'and' or 'or', got {reducer!r}")
    if not isinstance(weights, torch.Tensor) or weights.dim() != 5 or not weights.is_floating_point():
        raise ValueError("weights must be a floating Tensor [batch, heads, seq, seq, seq]")
    check_bshd("v1", v1)
    check_bshd("v2", v2)
    B, Hq, N = weights.shape[:3]
    if weights.shape[3:] != (N, N) or v1.shape != v2.shape or v1.shape[:2] != (B, N):
        raise ValueError(
            f"weights {tuple(weights.shape)} must be [batch, heads, seq, seq, seq] matching "
            f"v1 {tuple(v1.shape)} and v2 {tuple(v2.shape)} [batch, seq, heads, head_dim]"
        )
    for name, v in (("v1", v1), ("v2", v2)):
        if (v.dtype != weights.dtype and not autocasting(v)) or v.device != weights.device:
            raise ValueError(f"{name} is {v.dtype} on {v.device} but weights are "
                             f"{weights.dtype} on {weights.device}")
    if Hq % v1.shape[2] != 0:
        raise ValueError(f"weights have {Hq} heads, not a multiple of the {v1.shape[2]} of v1/v2")
    group = Hq // v1.shape[2]
    v1, v2 = expand_kv(v1, group), expand_kv(v2, group)
    if mask is None:
        mask = torch.ones(N, N, N, dtype=torch.bool, device=weights.device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() < 3:
        raise ValueError("mask must be a bool Tensor broadcastable to weights [b, h, i, j, k]")
    if mask.device != weights.device:
        raise ValueError(f"mask is on {mask.device} but weights are on {weights.device}")
    if not _broadcasts_to(mask.shape, weights.shape):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to weights {tuple(weights.shape)}")
    mask = mask.expand_as(weights)
    V1, V2 = per_query(v1, mask.any(-1)), per_query(v2, mask.any(-2))  # [b, h, i, j, d]
    if reducer == "and":
        return torch.einsum("bhijk,bhijd,bhikd->bihd", weights, V1, V2)
    return (torch.einsum("bhij,bhijd->bihd", weights.sum(-1), V1)
            + torch.einsum("bhik,bhikd->bihd", weights.sum(-2), V2))


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
    group = check_qkv(q, {"k1": k1, "k2": k2})
    w1, w2 = _check_windows(w1, w2, causal)
    s = default_scale(q.shape[-1], scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    return masked_softmax_pairs(_pair_logits(q, k1, k2, mask, s, group), mask)


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
    if mask.device != q.device:
        raise ValueError(f"mask is on {mask.device} but q is on {q.device}")
    B, N, H, _ = q.shape
    if mask.dim() < 3 or not _broadcasts_to(mask.shape, (B, H, N, N, N)):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to [batch, heads, i, j, k] = "
            f"{(B, H, N, N, N)}"
        )
    mask = mask.expand(B, H, N, N, N)  # a view: every query's own slice, for the per-query keys
    s = default_scale(q.shape[-1], scale)
    p = masked_softmax_pairs(_pair_logits(q, k1, k2, mask, s, group), mask)
    return reduce_values(p, v1, v2, mask=mask)


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
        ``None`` means no window. Windows need ``causal=True``.
    causal : bool
        Only pairs with ``j <= i`` and ``k <= i``.
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]`` in the input dtype. Memory ``O(seq^3)`` per head.

    Examples
    --------
    >>> q = torch.randn(1, 6, 4, 8); kv = [torch.randn(1, 6, 2, 8) for _ in range(4)]
    >>> two_simplicial_attention(q, *kv, w1=4, w2=2).shape
    torch.Size([1, 6, 4, 8])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    w1, w2 = _check_windows(w1, w2, causal)
    s = default_scale(q.shape[-1], scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    p = masked_softmax_pairs(_pair_logits(q, k1, k2, mask, s, group), mask)
    return reduce_values(p, v1, v2, mask=mask)
