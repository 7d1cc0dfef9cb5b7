"""Variants of 2-simplicial attention that the book compares with the reference.

The reference (:mod:`simplex_lib.ops.two_simplicial.reference`) normalises each query's whole ``(j, k)`` slice at
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

The values are mixed by :func:`simplex_lib.ops.two_simplicial.reference.reduce_values`, with the
product ("AND") or the sum ("OR") of the two value vectors of a triangle.
"""

from __future__ import annotations

import torch

from ..checks import check_qkv
from .reference import reduce_values, two_simplicial_logits, two_simplicial_mask

__all__ = ["face_normalised_weights", "face_normalised_attention"]


def face_normalised_weights(q, k1, k2, *, face: str = "ij", edges: str = "uniform", w1=None,
                            w2=None, causal: bool = True, scale=None) -> torch.Tensor:
    """2-simplicial weights normalised over the triangles that share a face with the query.

    With ``face="ij"`` the triangles ``(i, j, k)`` sharing the edge ``(i, j)`` (all visible
    ``k``) form one softmax; the edge ``(i, j)`` itself receives weight ``1/|J_i|`` over the
    ``|J_i|`` visible ``j`` (``edges="uniform"``) or its chain-rule marginal
    ``softmax_j logsumexp_k A_ijk`` (``edges="marginal"``, identical to
    :func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_weights`). ``face="ik"`` swaps the roles of the
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
        As in :func:`simplex_lib.ops.two_simplicial.reference.reduce_values`.

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``

    Examples
    --------
    >>> from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention
    >>> x = torch.randn(1, 5, 2, 4, dtype=torch.float64)
    >>> torch.allclose(face_normalised_attention(x, x, x, x, x, edges="marginal"),
    ...                two_simplicial_attention(x, x, x, x, x))
    True
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    p = face_normalised_weights(q, k1, k2, face=face, edges=edges, w1=w1, w2=w2, causal=causal,
                                scale=scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    return reduce_values(p, v1, v2, reducer=reducer, mask=mask)
