"""Determinant-form 2-simplicial attention on the trilinear Triton kernels.

The sum-of-determinants logits (the paper's eq. 9) are, chunk by chunk, a difference of two plain
trilinear forms (Sarrus' rule, :func:`simplex_lib.ops.determinant.reference.det_logits_sarrus`):

.. math::

    \\det[q_c, a_c, b_c] = \\langle q_c, a'_c, b''_c \\rangle - \\langle q_c, a''_c, b'_c \\rangle ,

where ``x'`` and ``x''`` rotate the entries of a 3-chunk left by one and by two. A difference of
two trilinear forms over ``D`` coordinates is *one* trilinear form over ``2D`` coordinates:

.. math::

    \\langle [q, q],\\; [a', a''],\\; [b'', -b'] \\rangle
    = \\langle q, a', b'' \\rangle - \\langle q, a'', b' \\rangle .

So the determinant form needs no kernel of its own: the operands are rearranged in PyTorch
(cheap, ``O(N D)``), the sliding-window trilinear kernels run at head dimension ``2D`` (padded
with zeros up to a supported size; zeros add nothing to any logit), and autograd carries the
gradients back through the rearrangement. The values are padded the same way, and the padded
half of the output, ``sum P * (0 * 0)``, is dropped. The price is the doubled head dimension:
about twice the work of the plain form at the same ``D``, as the determinant's six products per
chunk against the plain form's three suggest.
"""

from __future__ import annotations

import torch

from simplex_lib.ops.checks import check_qkv
from simplex_lib.ops.two_simplicial.interface import (SUPPORTED_HEAD_DIMS, check_scale,
                                                      two_simplicial_attention)

__all__ = ["det_trilinear_operands", "determinant_attention_triton"]


def _check_chunks(head_dim: int) -> None:
    if head_dim % 3 != 0:
        raise ValueError(f"head_dim must be a multiple of 3 for determinant logits (3-chunks), "
                         f"got head_dim={head_dim}")


def _rotate_chunks(t: torch.Tensor, s: int) -> torch.Tensor:
    """Rotate the entries of every consecutive 3-chunk of the last dim left by ``s``."""
    c = t.reshape(*t.shape[:-1], t.shape[-1] // 3, 3)
    return torch.roll(c, shifts=-s, dims=-1).flatten(-2)


def det_trilinear_operands(q, k1, k2):
    """Operands over ``2 * head_dim`` whose plain trilinear form equals the determinant
    logits.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``, ``head_dim`` a multiple of 3
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]``

    Returns
    -------
    (q2, k1_2, k2_2) : Tensors with last dimension ``2 * head_dim`` such that
    ``sum_l q2[i,l] k1_2[j,l] k2_2[k,l] == det_logits(q, k1, k2)[i, j, k]``.

    Examples
    --------
    >>> from simplex_lib.ops.determinant.reference import det_logits
    >>> from simplex_lib.ops.two_simplicial.reference import two_simplicial_logits
    >>> q, a, b = (torch.randn(1, 4, 1, 6, dtype=torch.float64) for _ in range(3))
    >>> ops = det_trilinear_operands(q, a, b)
    >>> torch.allclose(two_simplicial_logits(*ops, scale=1.0), det_logits(q, a, b))
    True
    """
    check_qkv(q, {"k1": k1, "k2": k2})
    _check_chunks(q.shape[-1])
    q2 = torch.cat([q, q], dim=-1)
    k1_2 = torch.cat([_rotate_chunks(k1, 1), _rotate_chunks(k1, 2)], dim=-1)
    k2_2 = torch.cat([_rotate_chunks(k2, 2), -_rotate_chunks(k2, 1)], dim=-1)
    return q2, k1_2, k2_2


def _pad_last(t: torch.Tensor, size: int) -> torch.Tensor:
    return t if t.shape[-1] == size else torch.nn.functional.pad(t, (0, size - t.shape[-1]))


def determinant_attention_triton(q, k1, k2, v1, v2, *, w1: int, w2: int, scale=None):
    """Sliding-window determinant-form 2-simplicial attention with the Triton kernels.

    Same semantics as :func:`simplex_lib.ops.determinant.reference.determinant_attention` with windows
    (``j`` visible iff ``i - w1 < j <= i``, ``k`` iff ``i - w2 < k <= i``), differentiable in all
    five inputs through the trilinear kernels' backward.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``; ``head_dim`` a multiple of 3 with
        ``2 * head_dim <= 128`` (it is padded up to a kernel head dimension)
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    w1, w2 : int >= 1
    scale : float, optional (default ``1/sqrt(head_dim)``, of the *original* head_dim)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]`` in ``q``'s dtype, differentiable once (a second
    derivative raises, as for the trilinear kernels).

    Raises
    ------
    ValueError
        Naming the argument, as :func:`two_simplicial_attention` does, and for a head_dim that is
        not a multiple of 3 or above half the largest kernel head dimension.

    Examples
    --------
    >>> q = torch.randn(1, 8, 2, 6); kv = [torch.randn(1, 8, 1, 6) for _ in range(4)]
    >>> determinant_attention_triton(q, *kv, w1=4, w2=2).shape  # doctest: +SKIP
    torch.Size([1, 8, 2, 6])
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    D = q.shape[-1]
    _check_chunks(D)
    width = next((d for d in SUPPORTED_HEAD_DIMS if d >= 2 * D), None)
    if width is None:
        raise ValueError(
            f"head_dim must be at most {max(SUPPORTED_HEAD_DIMS) // 2} for the determinant kernels "
            f"(they run at twice the head dimension), got {D}"
        )
    s = check_scale(scale, D)
    q2, k1_2, k2_2 = (_pad_last(t, width) for t in det_trilinear_operands(q, k1, k2))
    o = two_simplicial_attention(q2, k1_2, k2_2, _pad_last(v1, width), _pad_last(v2, width),
                                 w1=w1, w2=w2, scale=s)
    return o[..., :D]
