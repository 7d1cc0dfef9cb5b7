"""n-simplicial attention in einsum: a query scored against n-tuples of keys (the ground truth).

``n = 1`` is dot-product attention (:mod:`simplex_lib.ops.dot`), ``n = 2`` with the ``"and"``
reducer is 2-simplicial attention (:mod:`simplex_lib.ops.two_simplicial`). Materialises
``seq^(n+1)`` logits per head: for teaching and small inputs only. Tensors are
``[batch, seq, heads, head_dim]`` with grouped-query key/value heads.
"""

from __future__ import annotations

import string

import torch

from ..checks import check_causal, check_qkv, default_scale, expand_kv
from ..dot.reference import causal_window_mask, per_query

__all__ = ["n_simplicial_attention"]


def n_simplicial_attention(q, keys, values, *, causal: bool = True, scale=None, reducer: str = "and") -> torch.Tensor:
    """n-simplicial attention: a query scored against n-tuples of keys.

    ``A[i, j_1..j_n] = s * sum_l q_il prod_m K^(m)_{j_m l}``, softmax jointly over the tuple, and
    the output mixes ``prod_m V^(m)_{j_m}`` (``reducer="and"``, element-wise product) or
    ``sum_m V^(m)_{j_m}`` (``reducer="or"``). ``n = 1`` is dot-product attention and ``n = 2``
    with ``"and"`` is 2-simplicial attention. Materialises ``seq^(n+1)`` logits per head.

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
    >>> from simplex_lib.ops.dot.reference import dot_attention
    >>> x = torch.randn(1, 4, 1, 8)
    >>> torch.allclose(n_simplicial_attention(x, [x], [x]), dot_attention(x, x, x))
    True
    """
    if isinstance(keys, torch.Tensor) or isinstance(values, torch.Tensor):
        raise ValueError("keys and values must be sequences (lists) of tensors, not one tensor")
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
    check_causal(causal)
    named = {f"keys[{m}]": t for m, t in enumerate(keys)}
    named.update({f"values[{m}]": t for m, t in enumerate(values)})
    group = check_qkv(q, named)
    s = default_scale(q.shape[-1], scale)
    N = q.shape[1]
    # Each query sees its own copy of every key and value set, zero at the keys it cannot see
    # (so a NaN there stays out of its row): [B, H, i, j, D].
    vis = causal_window_mask(N, causal=causal, device=q.device)
    keys = [per_query(expand_kv(t, group), vis) for t in keys]
    values = [per_query(expand_kv(t, group), vis) for t in values]

    idx = string.ascii_lowercase[10 : 10 + n]  # tuple index letters k, l, m, ...
    spec = ",".join(["bihd"] + [f"bhi{c}d" for c in idx]) + f"->bhi{idx}"
    logits = torch.einsum(spec, q, *keys) * s

    mask = torch.ones((N,) * (n + 1), dtype=torch.bool, device=q.device)
    for m in range(n):  # index m of the tuple must be visible to i
        shape = [N] + [1] * n
        shape[m + 1] = N
        mask = mask & vis.view(shape)
    # masked_fill drops a NaN at a masked entry too; no name for the filled copy, so that it is
    # freed before the values are contracted (peak memory stays two copies of the logits).
    p = torch.softmax(logits.masked_fill(~mask, float("-inf")).flatten(3), dim=-1).view_as(logits)

    if reducer == "and":
        spec = ",".join([f"bhi{idx}"] + [f"bhi{c}d" for c in idx]) + "->bihd"
        return torch.einsum(spec, p, *values)
    out = torch.zeros_like(q)
    for c, v in zip(idx, values):
        marginal = torch.einsum(f"bhi{idx}->bhi{c}", p)  # weight of V^(m)_{j_m}
        out = out + torch.einsum(f"bhi{c},bhi{c}d->bihd", marginal, v)
    return out
