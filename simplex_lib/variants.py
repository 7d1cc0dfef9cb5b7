"""Variants of 2-simplicial attention that the book compares with the reference.

The reference (:mod:`simplex_lib.reference`) normalises each query's whole ``(j, k)`` slice at
once: every triangle ``(i, j, k)`` through query ``i`` competes with every other. Any such
slice distribution factorises by the chain rule into an *edge* weight and a *face* conditional,

.. math::

    P_{ijk} = \\underbrace{P(j \\mid i)}_{\\text{edge } (i,j)}\\;
              \\underbrace{P(k \\mid i, j)}_{\\text{triangles sharing the face } (i,j)},
    \\qquad P(k \\mid i, j) = \\operatorname{softmax}_k A_{ijk}, \\quad
    P(j \\mid i) = \\operatorname{softmax}_j \\operatorname{logsumexp}_k A_{ijk}.

Normalising over the triangles that share a face (the alternative suggested by Pappone, 2025)
keeps the face conditional and chooses the edge weight differently: ``edges="uniform"`` gives
every visible edge ``(i, j)`` the same share, ``edges="marginal"`` the chain-rule share above,
which recovers the reference exactly.

Also here: :func:`reduce_values`, the last step of 2-simplicial attention for any weights, with
the product ("AND") or the sum ("OR") of the two value vectors of a triangle.
"""

from __future__ import annotations

import torch

from ._checks import check_bshd, expand_kv
from .reference import two_simplicial_logits, two_simplicial_mask

__all__ = ["face_normalised_weights", "face_normalised_attention", "reduce_values"]


def face_normalised_weights(q, k1, k2, *, face: str = "ij", edges: str = "uniform", w1=None,
                            w2=None, causal: bool = True, scale=None) -> torch.Tensor:
    """2-simplicial weights normalised over the triangles that share a face with the query.

    With ``face="ij"`` the triangles ``(i, j, k)`` sharing the edge ``(i, j)`` (all visible
    ``k``) form one softmax; the edge ``(i, j)`` itself receives weight ``1/|J_i|`` over the
    ``|J_i|`` visible ``j`` (``edges="uniform"``) or its chain-rule marginal
    ``softmax_j logsumexp_k A_ijk`` (``edges="marginal"``, identical to
    :func:`simplex_lib.reference.two_simplicial_weights`). ``face="ik"`` swaps the roles of the
    two key sets. Each query's slice still sums to one; masked entries are exactly zero.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    face : ``"ij"`` or ``"ik"``
        The edge of the query that defines a face group.
    edges : ``"uniform"`` or ``"marginal"``
        How the query's weight is split between its edges.
    w1, w2 : int or None
        Sliding windows as in the reference (``i - w < j <= i``); need ``causal=True``.
    causal : bool
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, Hq, seq, seq, seq]`` indexed ``[b, h, i, j, k]``.

    Examples
    --------
    >>> x = torch.randn(1, 4, 1, 8, dtype=torch.float64)
    >>> p = face_normalised_weights(x, x, x)
    >>> p[0, 0, 3].sum(-1)  # each of the 4 edges (3, j) carries 1/4
    tensor([0.2500, 0.2500, 0.2500, 0.2500], dtype=torch.float64)
    """
    if face not in ("ij", "ik"):
        raise ValueError(f"face must be 'ij' or 'ik', got {face!r}")
    if edges not in ("uniform", "marginal"):
        raise ValueError(f"edges must be 'uniform' or 'marginal', got {edges!r}")
    logits = two_simplicial_logits(q, k1, k2, scale=scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    if face == "ik":  # normalise over j instead of k: put j last
        logits, mask = logits.transpose(-1, -2), mask.transpose(-1, -2)
    neg_inf = torch.full_like(logits, float("-inf"))
    a = torch.where(mask, logits, neg_inf)
    edge_ok = mask.any(-1)  # [i, j]: does the face (i, j) have any visible triangle?
    # Softmax over the last index within each face; faces with nothing visible stay at zero.
    cond = torch.softmax(torch.where(edge_ok[..., None], a, torch.zeros_like(a)), dim=-1) * mask
    if edges == "uniform":
        count = edge_ok.sum(-1, keepdim=True).clamp(min=1)
        edge = edge_ok.to(logits.dtype) / count  # [i, j]
    else:
        lse = torch.logsumexp(torch.where(edge_ok[..., None], a, torch.zeros_like(a)), dim=-1)
        lse = torch.where(edge_ok, lse, torch.full_like(lse, float("-inf")))
        edge = torch.softmax(lse, dim=-1)  # the diagonal (i, i) is always visible when causal
    p = edge[..., None] * cond
    return p.transpose(-1, -2) if face == "ik" else p


def reduce_values(weights, v1, v2, *, reducer: str = "and") -> torch.Tensor:
    """Mix per-triangle values with given weights: ``o_i = sum_{j,k} P_ijk f(v1_j, v2_k)``.

    ``reducer="and"`` uses ``f = v1_j * v2_k`` (element-wise product, the paper's eq. 7);
    ``reducer="or"`` uses ``f = v1_j + v2_k``, which only needs the two marginals of ``P``.

    Parameters
    ----------
    weights : Tensor ``[batch, Hq, seq, seq, seq]`` indexed ``[b, h, i, j, k]``
    v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    reducer : ``"and"`` or ``"or"``

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
    if not isinstance(weights, torch.Tensor) or weights.dim() != 5:
        raise ValueError("weights must be a Tensor [batch, heads, seq, seq, seq]")
    check_bshd("v1", v1)
    check_bshd("v2", v2)
    B, Hq, N = weights.shape[:3]
    if weights.shape[3:] != (N, N) or v1.shape != v2.shape or v1.shape[:2] != (B, N):
        raise ValueError(
            f"weights {tuple(weights.shape)} must be [batch, heads, seq, seq, seq] matching "
            f"v1 {tuple(v1.shape)} and v2 {tuple(v2.shape)} [batch, seq, heads, head_dim]"
        )
    if Hq % v1.shape[2] != 0:
        raise ValueError(f"weights have {Hq} heads, not a multiple of the {v1.shape[2]} of v1/v2")
    group = Hq // v1.shape[2]
    v1, v2 = expand_kv(v1, group), expand_kv(v2, group)
    if reducer == "and":
        return torch.einsum("bhijk,bjhd,bkhd->bihd", weights, v1, v2)
    return (torch.einsum("bhij,bjhd->bihd", weights.sum(-1), v1)
            + torch.einsum("bhik,bkhd->bihd", weights.sum(-2), v2))


def face_normalised_attention(q, k1, k2, v1, v2, *, face: str = "ij", edges: str = "uniform",
                              w1=None, w2=None, causal: bool = True, scale=None,
                              reducer: str = "and") -> torch.Tensor:
    """2-simplicial attention with the face-normalised weights of :func:`face_normalised_weights`.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    face, edges, w1, w2, causal, scale
        As in :func:`face_normalised_weights`.
    reducer : ``"and"`` or ``"or"``
        As in :func:`reduce_values`.

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> from simplex_lib.reference import two_simplicial_attention
    >>> x = torch.randn(1, 5, 2, 4, dtype=torch.float64)
    >>> torch.allclose(face_normalised_attention(x, x, x, x, x, edges="marginal"),
    ...                two_simplicial_attention(x, x, x, x, x))
    True
    """
    p = face_normalised_weights(q, k1, k2, face=face, edges=edges, w1=w1, w2=w2, causal=causal,
                                scale=scale)
    check_bshd("v1", v1)
    check_bshd("v2", v2)
    if v1.shape != k1.shape or v2.shape != k2.shape:
        raise ValueError(f"v1 {tuple(v1.shape)} and v2 {tuple(v2.shape)} must have the shapes of "
                         f"k1 {tuple(k1.shape)} and k2 {tuple(k2.shape)}")
    return reduce_values(p, v1, v2, reducer=reducer)
