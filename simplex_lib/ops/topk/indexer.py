"""A fused lightning indexer: ReLU scores of every past key and the top-k selection, in one
Triton kernel that never stores the ``n x n`` scores.

The reference path, ``topk_indices(indexer_scores(q_index, k_index, weights), k)``
(:mod:`simplex_lib.selection`), writes a score for every pair of positions and sorts every row:
``O(n^2)`` memory, and on an H200 it is over half of a top-k forward step at 8,192 tokens
(``benchmarks/results/h200/topk_h200.json``). Here one program owns ``BLOCK_Q`` queries and walks
their past keys in blocks of ``BLOCK_K``; per block it forms the scores
``S_ij = sum_h w_ih * ReLU(s <q_ih, k_j>)`` (one ``tl.dot`` per indexer head) and merges them into
a running top-``K`` per query with Triton's bitonic ``tl.topk``. Memory: ``O(n * k)``.

Exactness. A score and its key position are packed into one int64 sort key: the float's bits,
mapped so that integer order is float order, in the high 32 bits, and ``2^32 - 1 - j`` in the low
32 bits. Sorting those keys ranks by score and, among equal scores, puts the earlier key first,
the reference's tie rule; so on the same fp32 scores the selection is the reference's, bit for
bit. Non-causal and out-of-range keys get :data:`NO_KEY`, below every real key.

Names follow the windowed kernels' convention (``b_`` blocks, ``o_`` offsets, ``m_`` masks,
``i_`` program ids).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from simplex_lib.ops.two_simplicial.configs import interpreting
from simplex_lib.ops.two_simplicial.forward import precision

__all__ = ["MAX_K", "NO_KEY", "indexer_topk_triton"]

#: The largest ``k``: a program keeps ``2 * k`` sort keys per query in registers while it merges
#: a block into its running set (a larger ``k`` needs another selection scheme).
MAX_K = 256

#: The sort key of an empty slot (a non-causal or out-of-range key): the smallest int64, below
#: the key of every finite score.
NO_KEY = -(2 ** 63)


@triton.jit
def _sort_keys(b_s, o_k):
    """int64 keys whose order is (score, then earlier position) for scores
    ``b_s`` (fp32) of key positions ``o_k``: in the high 32 bits the IEEE bits
    as a signed integer, with the magnitude bits of negative floats inverted so
    that integer order is float order; in the low 32 bits ``2^32 - 1 - j``.
    Every key is above :data:`NO_KEY`."""
    b_s = tl.where(b_s == 0.0, 0.0, b_s)  # -0.0 and 0.0 are one score
    bits = b_s.to(tl.int32, bitcast=True)
    ordered = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (ordered.to(tl.int64) << 32) | (0xFFFFFFFF - o_k.to(tl.int64))


@triton.jit
def _block_scores(QI, W, KI, o_q, m_q, o_k, m_k, o_d, scale,
                  stride_qn, stride_qh, stride_wn, stride_kn,
                  HI: tl.constexpr, PREC: tl.constexpr):
    """``S[i, j] = sum_h w_ih * ReLU(scale * <q_ih, k_j>)`` for a block of queries
    ``o_q`` [BLOCK_Q] and keys ``o_k`` [BLOCK_K]: one product per indexer head.
    Returns ``[BLOCK_Q, BLOCK_K]`` fp32."""
    b_k = tl.load(KI + o_k[:, None] * stride_kn + o_d[None, :],
                  mask=m_k[:, None], other=0.0)  # [BLOCK_K, BLOCK_D]
    b_s = tl.zeros([o_q.shape[0], o_k.shape[0]], tl.float32)
    for h in range(HI):
        b_q = tl.load(QI + o_q[:, None] * stride_qn + h * stride_qh + o_d[None, :],
                      mask=m_q[:, None], other=0.0)  # [BLOCK_Q, BLOCK_D]
        b_w = tl.load(W + o_q * stride_wn + h, mask=m_q, other=0.0).to(tl.float32)
        b_l = tl.dot(b_q, tl.trans(b_k), input_precision=PREC) * scale
        b_s += b_w[:, None] * tl.maximum(b_l, 0.0)
    return b_s


@triton.jit
def _indexer_topk_kernel(QI, KI, W, IDX, N, K, scale,
                         stride_qb, stride_qn, stride_qh, stride_kb, stride_kn,
                         stride_wb, stride_wn,
                         HI: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_Q: tl.constexpr,
                         K_P2: tl.constexpr, PREC: tl.constexpr, NONE: tl.constexpr):
    """Top-``K`` past keys of ``BLOCK_Q`` queries by their ReLU indexer scores.

    Grid: ``(cdiv(N, BLOCK_Q), B)``. A program owns queries ``[i0, i0 + BLOCK_Q)`` of one
    sequence and writes their rows of ``IDX`` ``[B, N, K]`` (int64, positions sorted, ``-1``
    padded). It walks the key blocks of ``K_P2`` positions (``K`` rounded up to a power of
    two) up to its last query; per block it forms the scores (``_block_scores``,
    ``2 * HI * D_I`` FLOPs per pair on tensor cores), packs them into sort keys
    (``_sort_keys``) and keeps the best ``K_P2`` of the running set and the block
    (``tl.topk`` over ``2 * K_P2`` keys per query).
    """
    i_t, i_b = tl.program_id(0), tl.program_id(1)
    i0 = i_t * BLOCK_Q
    o_q = i0 + tl.arange(0, BLOCK_Q)
    m_q = o_q < N
    o_d = tl.arange(0, BLOCK_D)  # the host pads D_I to BLOCK_D with zeros
    QI += i_b * stride_qb
    KI += i_b * stride_kb
    W += i_b * stride_wb
    b_best = tl.full([BLOCK_Q, K_P2], NONE, tl.int64)  # [BLOCK_Q, K_P2]: nothing yet
    hi = tl.minimum(i0 + BLOCK_Q, N)
    for j0 in range(0, hi, K_P2):
        o_k = j0 + tl.arange(0, K_P2)
        m_k = o_k < N
        b_s = _block_scores(QI, W, KI, o_q, m_q, o_k, m_k, o_d, scale,
                            stride_qn, stride_qh, stride_wn, stride_kn, HI, PREC)
        m_vis = (o_k[None, :] <= o_q[:, None]) & m_k[None, :]  # causal, in range
        b_new = tl.where(m_vis, _sort_keys(b_s, o_k[None, :]), NONE)
        # the best K_P2 of the running set and this block, per query
        b_both = tl.reshape(tl.join(b_best, b_new), [BLOCK_Q, 2 * K_P2])
        b_best = tl.topk(b_both, K_P2)
    # positions of the first K (best first), -1 for empty slots, then sorted ascending
    o_r = tl.arange(0, K_P2)
    o_j = 0xFFFFFFFF - (b_best & 0xFFFFFFFF)
    keep = (b_best > NONE) & (o_r[None, :] < K)
    b_pos = tl.sort(tl.where(keep, o_j, N))  # N sorts after every position
    b_pos = tl.where(b_pos == N, -1, b_pos)
    o_out = (i_b * N + o_q).to(tl.int64)[:, None] * K + o_r[None, :]
    tl.store(IDX + o_out, b_pos, mask=m_q[:, None] & (o_r[None, :] < K))


def indexer_topk_triton(q_index, k_index, k: int, weights=None, *, scale=None) -> torch.Tensor:
    """Per query, the ``k`` past keys with the highest ReLU indexer scores, fused (Triton).

    The same selection as ``topk_indices(indexer_scores(q_index, k_index, weights), k)`` of
    :mod:`simplex_lib.selection` on the same fp32 scores (ties to the earlier key, positions
    sorted, ``-1`` padded), without the ``[batch, seq, seq]`` scores: ``O(seq * k)`` memory.

    Parameters
    ----------
    q_index : Tensor ``[batch, seq, H_I, D_I]``
        Indexer queries.
    k_index : Tensor ``[batch, seq, 1, D_I]``
        Indexer keys, one head shared by the indexer heads (as in DSA).
    k : int
        Keys per query, 1 to :data:`MAX_K` (``k > seq`` pads with ``-1``).
    weights : Tensor ``[batch, seq, H_I]``, optional
        Per-query head weights, default ``1 / H_I``.
    scale : float, optional
        Logit scale, default ``1 / sqrt(D_I)``.

    Returns
    -------
    int64 Tensor ``[batch, seq, 1, k]``
        One selection per query, for every head (the layout of
        :func:`simplex_lib.selection.topk_indices`).

    Raises
    ------
    ValueError
        For shapes that do not match, ``k`` outside ``[1, MAX_K]``, a key with more
        than one head, or non-finite inputs.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an int from 1 to {MAX_K}, got {k!r}")
    if not isinstance(q_index, torch.Tensor) or q_index.dim() != 4:
        raise ValueError("q_index must be a Tensor [batch, seq, H_I, D_I]")
    B, N, HI, DI = q_index.shape
    if not isinstance(k_index, torch.Tensor) or tuple(k_index.shape) != (B, N, 1, DI):
        got = tuple(k_index.shape) if isinstance(k_index, torch.Tensor) else type(k_index).__name__
        raise ValueError(f"k_index must have shape [batch, seq, 1, D_I] = {(B, N, 1, DI)}, got {got}")
    if weights is None:
        weights = torch.full((B, N, HI), 1.0 / HI, device=q_index.device)
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (B, N, HI):
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must have shape [batch, seq, H_I] = {(B, N, HI)}, got {got}")
    if scale is None:
        scale = DI ** -0.5
    for name, t in (("q_index", q_index), ("k_index", k_index), ("weights", weights)):
        if t.device != q_index.device:
            raise ValueError(f"{name} is on {t.device}, q_index on {q_index.device}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} has non-finite entries")
    out = torch.full((B, N, k), -1, dtype=torch.int64, device=q_index.device)
    if N == 0:
        return out[:, :, None]
    BLOCK_D = max(16, triton.next_power_of_2(DI))
    dtype = torch.float32 if interpreting() else q_index.dtype  # the interpreter's bf16 is wrong
    # pad D_I to a power of two (zeros change no score) and make the rows contiguous
    qi = torch.zeros(B, N, HI, BLOCK_D, device=q_index.device, dtype=dtype)
    ki = torch.zeros(B, N, BLOCK_D, device=q_index.device, dtype=dtype)
    qi[..., :DI] = q_index
    ki[..., :DI] = k_index[:, :, 0]
    w = weights.to(torch.float32).contiguous()
    K_P2 = max(16, triton.next_power_of_2(min(k, N)))
    # running sets of 128 keys or more: 16 queries per program keep every key in registers
    # (tools/sm90.py: no spills up to K_P2 = 256 with 64 indexer heads of 128)
    BLOCK_Q = 16 if interpreting() or K_P2 >= 128 else 32
    _indexer_topk_kernel[(triton.cdiv(N, BLOCK_Q), B)](
        qi, ki, w, out, N, k, float(scale),
        qi.stride(0), qi.stride(1), qi.stride(2), ki.stride(0), ki.stride(1),
        w.stride(0), w.stride(1),
        HI=HI, BLOCK_D=BLOCK_D, BLOCK_Q=BLOCK_Q, K_P2=K_P2, PREC=precision(qi), NONE=NO_KEY,
        num_warps=4,
    )
    return out[:, :, None]
