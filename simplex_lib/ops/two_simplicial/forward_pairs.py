"""The forward with (query, short-window key) pairs as the rows of a tile.

The kernel of :mod:`.forward` tiles rows of queries and walks two loops: the
long window in tiles of ``BLOCK_N`` keys, and inside each tile the short
window one key (or one offset) at a time, forming the operand ``q * k2``
again at every step. When few query heads share a KV head, a tile holds
several positions, and their short windows differ row by row.

Here a tile row is a pair ``(i, l)``: a query row and one key ``l = i - t`` of
its short window (offset ``t``). The operand ``a = q_i * k2_l`` of the pair is
formed once, and the only loop is the long window, as in FlashAttention: a
tile of ``BLOCK_M`` pairs meets a tile of ``BLOCK_N`` long-window keys in two
GEMMs and one online-softmax step. Each pair keeps its own running maximum,
sum and accumulator ``sum_j p_ijl v1_j``; since ``v2_l`` is constant over
``j``, it multiplies the accumulator once, at the end, and the pairs of one
query are then merged into its output and log-sum-exp (the merge of split
softmaxes, as in split-K decoding).

A tile's ``BLOCK_M = GH * POS * OS`` rows are ``GH`` heads of one KV group
times ``POS`` positions times ``OS`` offsets (:func:`pair_rows`). A short
window wider than ``OS`` is covered in ``cdiv(w2, OS)`` groups of offsets,
one after the other; their results merge into the same running output.

Names follow :mod:`.forward`. Lines stay within 78 columns.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .configs import pair_tiling
from .forward import scaled_softmax_step, tile_rows

__all__ = ["pair_rows", "merge_pairs", "forward_pairs"]


@triton.jit
def pair_rows(i0, i_hb, G, N, W2, og, GH: tl.constexpr, POS: tl.constexpr,
              OS: tl.constexpr):
    """The ``BLOCK_M = GH * POS * OS`` pairs of a tile in offset group
    ``og``: row ``r`` is position ``i0 + r // (GH * OS)``, head slot
    ``(r // OS) % GH`` of head block ``i_hb``, offset
    ``og * OS + r % OS``. The offsets of one query are adjacent rows, so
    that ``[BLOCK_M]`` reshapes to ``[GH * POS, OS]`` in the order of
    :func:`~.forward.tile_rows`.

    Parameters
    ----------
    i0, i_hb : int
        First position of the tile; its head block.
    G, N, W2 : int
        Query heads per KV head, sequence length, short window.
    og : int
        The group of offsets.
    GH, POS, OS : constexpr int
        Heads, positions and offsets per tile.

    Returns
    -------
    o_pos, o_hg, o_l : [BLOCK_M] int blocks
        The position, the head inside the group, the short-window key
        ``l = pos - offset``.
    m_row : [BLOCK_M] bool block
        Query rows inside the group and the sequence.
    m_pair : [BLOCK_M] bool block
        Pairs that exist (``offset < w2``, ``l >= 0``).
    """
    o_r = tl.arange(0, GH * POS * OS)
    o_pos = i0 + o_r // (GH * OS)
    o_hg = i_hb * GH + (o_r // OS) % GH
    o_t = og * OS + o_r % OS  # offset inside the short window
    o_l = o_pos - o_t
    m_row = (o_hg < G) & (o_pos < N)
    m_pair = m_row & (o_t < W2) & (o_l >= 0)
    return o_pos, o_hg, o_l, m_row, m_pair


@triton.jit
def _pairs_load_kv1(p_k1, p_v1, stride_kn, o_j, o_d, o_pos, lo, hi, W1,
                    b_bad, POS: tl.constexpr):
    """Load the keys ``o_j`` of ``K1`` and ``V1`` that some row sees
    (``lo <= j < hi``), ``[BLOCK_N, D]`` each. With several positions a
    row may not see a loaded key: a non-finite value row is zeroed and the
    rows that see it are marked in ``b_bad``, so no other row meets it as
    ``0 * NaN``. Returns ``(b_k1, b_v1, b_bad)``.
    """
    o_jd = o_j[:, None] * stride_kn + o_d[None, :]  # [BLOCK_N, D]
    m_j = ((o_j >= lo) & (o_j < hi))[:, None]
    b_k1 = tl.load(p_k1 + o_jd, mask=m_j, other=0.0)  # [BLOCK_N, D]
    b_v1 = tl.load(p_v1 + o_jd, mask=m_j, other=0.0)  # [BLOCK_N, D]
    if POS > 1:
        # [BLOCK_N, D]
        m_fin = (b_v1 == b_v1) & (tl.abs(b_v1.to(tl.float32)) < float("inf"))
        m_nf = tl.min(m_fin.to(tl.int32), 1) == 0  # [BLOCK_N]
        m_sees = ((o_j[None, :] > o_pos[:, None] - W1)
                  & (o_j[None, :] <= o_pos[:, None]))  # [BLOCK_M, BLOCK_N]
        b_bad = b_bad | (tl.max((m_sees & m_nf[None, :]).to(tl.int32), 1)
                         > 0)
        b_v1 = tl.where(m_fin, b_v1, tl.zeros_like(b_v1))
    return b_k1, b_v1, b_bad


@triton.jit
def _pairs_step(b_acc, b_m, b_l, b_a, b_k1, b_v1, o_j, o_pos, W1, qk_scale,
                MASK: tl.constexpr, PREC: tl.constexpr):
    """One long-window tile for every pair of the tile: ``s = a @ k1^T``,
    the online softmax of ``s * qk_scale``, ``acc += p @ v1``; with
    ``MASK``, keys outside a row's long window get ``-inf``."""
    # [BLOCK_M, BLOCK_N]
    b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
    if MASK:
        m_vis = ((o_j[None, :] > o_pos[:, None] - W1)
                 & (o_j[None, :] <= o_pos[:, None]) & (o_j >= 0)[None, :])
        b_s = tl.where(m_vis, b_s, float("-inf"))
    b_p, b_alpha, b_m, b_l = scaled_softmax_step(b_s, b_m, b_l, qk_scale)
    # [BLOCK_M, D]
    b_pv = tl.dot(b_p.to(b_a.dtype), b_v1, input_precision=PREC)
    return b_acc * b_alpha[:, None] + b_pv, b_m, b_l


@triton.jit
def merge_pairs(b_out, b_mo, b_lo, b_acc, b_m, b_l, b_v2, m_pair,
                U: tl.constexpr, OS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Merge the ``OS`` pairs of each of ``U`` queries into the queries'
    running output.

    A pair's share of its query's softmax is ``2^(m - M) * l`` under the
    query's maximum ``M``, its output ``2^(m - M) * v2 * acc``; pairs that
    do not exist (``m_pair`` false) weigh nothing.

    Parameters
    ----------
    b_out : [U, D] fp32 block
        Running unnormalised output of the queries.
    b_mo, b_lo : [U] fp32 blocks
        Their running maximum and sum.
    b_acc : [BLOCK_M, D] fp32 block
        Each pair's ``sum_j 2^(s - m) v1_j``.
    b_m, b_l : [BLOCK_M] fp32 blocks
        Each pair's maximum and sum.
    b_v2 : [BLOCK_M, D] block
        Each pair's ``v2`` row.
    m_pair : [BLOCK_M] bool block
        The pairs that exist.

    Returns
    -------
    b_out, b_mo, b_lo
        Updated.
    """
    b_m = tl.where(m_pair, b_m, float("-inf"))
    # [BLOCK_M, D]; a pair that does not exist may hold 0 * inf
    b_x = tl.where(m_pair[:, None], b_acc * b_v2.to(tl.float32), 0.0)
    b_m3 = tl.reshape(b_m, (U, OS))  # [U, OS]
    b_mn = tl.maximum(b_mo, tl.max(b_m3, 1))  # [U]
    b_ref = tl.where(b_mn == float("-inf"), 0.0, b_mn)
    b_w = tl.math.exp2(b_m3 - b_ref[:, None])  # [U, OS]
    b_alpha = tl.math.exp2(b_mo - b_ref)  # [U]
    b_lo = b_lo * b_alpha + tl.sum(b_w * tl.reshape(b_l, (U, OS)), 1)
    b_x3 = tl.reshape(b_x, (U, OS, HEAD_DIM))  # [U, OS, D]
    b_out = b_out * b_alpha[:, None] + tl.sum(b_x3 * b_w[:, :, None], 1)
    return b_out, b_mn, b_lo


@triton.jit
def _pairs_group(b_out, b_mo, b_lo, b_bad, Q, K1, K2, V1, V2, i_b, i_g, i0,
                 i_hb, og, stride_qb, stride_qn, stride_qh, stride_kn, o_kv,
                 N, G, W1, W2, qk_scale,
                 HEAD_DIM: tl.constexpr, GH: tl.constexpr, POS: tl.constexpr,
                 OS: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_A: tl.constexpr, PREC: tl.constexpr):
    """One group of ``OS`` offsets: form the pairs' operands, walk the
    long window, merge the pairs into the queries' running output
    ``(b_out, b_mo, b_lo)`` (:func:`merge_pairs`).

    The long window is walked down from the tile's first position ``i0``
    in tiles of ``BLOCK_N`` keys: first those inside every row's window
    (no mask), then the masked ones, then (several positions per tile) the
    keys ``(i0, i0 + POS)`` in one tile of ``BLOCK_A``.
    """
    o_pos, o_hg, o_l, m_row, m_pair = pair_rows(i0, i_hb, G, N, W2, og, GH,
                                                POS, OS)  # [BLOCK_M]
    o_d = tl.arange(0, HEAD_DIM)
    o_q = (i_b * stride_qb + o_pos[:, None] * stride_qn
           + (i_g * G + o_hg)[:, None] * stride_qh + o_d[None, :])
    b_q = tl.load(Q + o_q, mask=m_row[:, None], other=0.0)  # [BLOCK_M, D]
    b_k2 = tl.load(K2 + o_kv + o_l[:, None] * stride_kn + o_d[None, :],
                   mask=m_pair[:, None], other=0.0)  # [BLOCK_M, D]
    # [BLOCK_M, D]: the pairs' operands, formed once
    b_a = (b_q.to(tl.float32) * b_k2.to(tl.float32)).to(b_q.dtype)

    hi = tl.minimum(i0 + POS, N)  # one past the tile's last position
    lo = tl.maximum(i0 - W1 + 1, 0)  # the first key any row sees
    # long-window tiles [i0 + 1 - (t + 1) * BLOCK_N, i0 + 1 - t * BLOCK_N)
    n_tiles = (i0 + 1 - lo + BLOCK_N - 1) // BLOCK_N
    n_inner = tl.maximum(i0 + 1 - tl.maximum(hi - W1, 0), 0) // BLOCK_N
    o_n = tl.arange(0, BLOCK_N)
    b_m = tl.full([GH * POS * OS], float("-inf"), tl.float32)  # [BLOCK_M]
    b_l = tl.zeros([GH * POS * OS], tl.float32)  # [BLOCK_M]
    b_acc = tl.zeros([GH * POS * OS, HEAD_DIM], tl.float32)  # [BLOCK_M, D]
    for t in range(0, n_inner):  # inside every row's window
        o_j = i0 + 1 - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
        o_jd = o_kv + o_j[:, None] * stride_kn + o_d[None, :]
        b_k1 = tl.load(K1 + o_jd)  # [BLOCK_N, D]
        b_v1 = tl.load(V1 + o_jd)  # [BLOCK_N, D]
        b_acc, b_m, b_l = _pairs_step(b_acc, b_m, b_l, b_a, b_k1, b_v1, o_j,
                                      o_pos, W1, qk_scale, False, PREC)
    for t in range(n_inner, n_tiles):  # at a window's edge
        o_j = i0 + 1 - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
        b_k1, b_v1, b_bad = _pairs_load_kv1(
            K1 + o_kv, V1 + o_kv, stride_kn, o_j, o_d, o_pos, lo, hi, W1,
            b_bad, POS)
        b_acc, b_m, b_l = _pairs_step(b_acc, b_m, b_l, b_a, b_k1, b_v1, o_j,
                                      o_pos, W1, qk_scale, True, PREC)
    if POS > 1:  # keys past i0, which only the later positions see
        o_j = i0 + 1 + tl.arange(0, BLOCK_A)  # [BLOCK_A]
        b_k1, b_v1, b_bad = _pairs_load_kv1(
            K1 + o_kv, V1 + o_kv, stride_kn, o_j, o_d, o_pos, lo, hi, W1,
            b_bad, POS)
        b_acc, b_m, b_l = _pairs_step(b_acc, b_m, b_l, b_a, b_k1, b_v1, o_j,
                                      o_pos, W1, qk_scale, True, PREC)
    # [BLOCK_M, D], addressed afresh: nothing [BLOCK_M, D] lives across the
    # loops but the operands and the accumulator
    b_v2 = tl.load(V2 + o_kv + o_l[:, None] * stride_kn + o_d[None, :],
                   mask=m_pair[:, None], other=0.0)
    b_out, b_mo, b_lo = merge_pairs(b_out, b_mo, b_lo, b_acc, b_m, b_l, b_v2,
                                    m_pair, GH * POS, OS, HEAD_DIM)
    return b_out, b_mo, b_lo, b_bad


@triton.jit
def _fwd_pairs_kernel(Q, K1, K2, V1, V2, O, LSE,
                      stride_qb, stride_qn, stride_qh,
                      stride_kb, stride_kn, stride_kh,
                      N, Hq, Hkv, G, W1, W2, qk_scale, n_hblocks,
                      HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                      POS: tl.constexpr, OS: tl.constexpr,
                      N_GROUPS: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_A: tl.constexpr, PREC: tl.constexpr):
    """Sliding-window 2-simplicial attention, forward, one tile of pairs.

    Grid: ``(cdiv(N, POS) * n_hblocks, B * Hkv)``. One program owns the
    ``U = GH * POS`` query rows of :func:`~.forward.tile_rows` and writes
    their ``O`` and base-2 ``LSE``, from ``N_GROUPS = cdiv(w2, OS)`` groups
    of ``BLOCK_M = U * OS`` pairs (:func:`_pairs_group`). The groups are
    unrolled: a loop around the long-window loop keeps its values live and
    spills. FLOPs: ``4 * B * Hq * N * D * w1 * w2`` on tensor cores (ramp
    ignored).
    """
    U: tl.constexpr = GH * POS
    i_t, i_bg = tl.program_id(0), tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    i0 = (i_t // n_hblocks) * POS
    i_hb = i_t % n_hblocks
    o_kv = i_b * stride_kb + i_g * stride_kh

    b_out = tl.zeros([U, HEAD_DIM], tl.float32)  # [U, D]
    b_mo = tl.full([U], float("-inf"), tl.float32)  # [U]
    b_lo = tl.zeros([U], tl.float32)  # [U]
    b_bad = tl.zeros([U * OS], tl.int32) != 0  # [BLOCK_M]
    for og in tl.static_range(N_GROUPS):
        b_out, b_mo, b_lo, b_bad = _pairs_group(
            b_out, b_mo, b_lo, b_bad, Q, K1, K2, V1, V2, i_b, i_g, i0, i_hb,
            og, stride_qb, stride_qn, stride_qh, stride_kn, o_kv, N, G, W1,
            W2, qk_scale, HEAD_DIM, GH, POS, OS, BLOCK_N, BLOCK_A, PREC)

    o_d = tl.arange(0, HEAD_DIM)
    o_pos, o_h, m_row = tile_rows(i0, i_hb, i_g, G, N, GH, POS)  # [U]
    b_bad_u = tl.max(tl.reshape(b_bad.to(tl.int32), (U, OS)), 1) > 0
    b_lo = tl.where(b_lo > 0, b_lo, 1.0)
    b_o = b_out / b_lo[:, None]  # [U, D]
    b_o = tl.where(b_bad_u[:, None], float("nan"), b_o)
    o_o = (i_b * stride_qb + o_pos[:, None] * stride_qn
           + o_h[:, None] * stride_qh + o_d[None, :])  # [U, D]
    tl.store(O + o_o, b_o.to(O.dtype.element_ty), mask=m_row[:, None])
    tl.store(LSE + (i_b * Hq + o_h) * N + o_pos, b_mo + tl.math.log2(b_lo),
             mask=m_row)


def forward_pairs(args, D: int, G: int, w2: int, cfg, prec: str) -> None:
    """Launch :func:`_fwd_pairs_kernel`, writing ``O`` and ``LSE`` in place.

    Parameters
    ----------
    args : tuple
        The kernel's arguments up to ``qk_scale``, as
        :func:`~simplex_lib.ops.two_simplicial.forward.forward` builds them
        (``q, k1, k2, v1, v2, o, lse``, strides, sizes, windows, scale).
    D, G, w2 : int
        Head dimension, query heads per KV head, short window.
    cfg : FwdConfig
        With ``WALK="pairs"``: its ``BLOCK_M`` pairs, ``BLOCK_N``, warps
        and stages.
    prec : str
        ``tl.dot`` precision (``"tf32"`` or ``"ieee"``).
    """
    pt = pair_tiling(G, w2, cfg.BLOCK_M)
    q = args[0]
    B, N = q.shape[0], q.shape[1]
    Hkv = args[1].shape[2]
    grid = (triton.cdiv(N, pt.POS) * pt.n_hblocks, B * Hkv)
    # the keys past the tile's first position, one small tile
    block_a = max(16, triton.next_power_of_2(pt.POS - 1))
    _fwd_pairs_kernel[grid](
        *args, pt.n_hblocks, HEAD_DIM=D, GH=pt.GH, POS=pt.POS, OS=pt.OS,
        N_GROUPS=triton.cdiv(w2, pt.OS), BLOCK_N=cfg.BLOCK_N,
        BLOCK_A=block_a, PREC=prec, num_warps=cfg.num_warps,
        num_stages=cfg.num_stages)
