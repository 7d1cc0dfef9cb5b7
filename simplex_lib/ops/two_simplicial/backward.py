"""Backward kernels of sliding-window 2-simplicial attention.

With ``s = scale * sum_r q_r k1_jr k2_kr``, ``P = softmax_(j,k)(s)`` and
``o = sum_jk P v1_j * v2_k``:

- ``dP_ijk = sum_r do_ir v1_jr v2_kr`` and ``dS = P * (dP - Delta_i)`` with
  ``Delta_i = sum_r do_ir o_ir`` (the softmax Jacobian);
- ``dq_i  = scale * sum_jk dS_ijk k1_j * k2_k`` (reduced over both windows),
- ``dk1_j = scale * sum_ik dS_ijk q_i * k2_k``,
  ``dv1_j = sum_ik P_ijk do_i * v2_k``,
- ``dk2_k``, ``dv2_k`` the same with the two key sets swapped.

The backward is deterministic and uses no atomics. ``Delta`` comes from a
small kernel, then, with the long window ``w1 >= w2`` (the caller swaps the
two key sets otherwise):

1. the key-tile kernel for ``(dk1, dv1)``: key-owned, all query heads of a
   group visited by one program so the GQA sum stays in registers;
2. the ring kernel for ``(dq, dk2, dv2)`` when the query heads of one
   position fill a row block and the short window's ring fits in registers,
   launched twice (even, then odd chunks);
3. otherwise the query-owned dq kernel (the forward's tiling) and the
   key-tile kernel once more with the two key sets swapped.

``P`` is recomputed from the saved base-2 log-sum-exp in each launch. Names
follow the forward's convention (``b_`` blocks, ``p_`` pointers, ``o_``
offsets, ``m_`` masks, ``i_`` program ids); lines stay within 78 columns.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import (bwd_configs, interpreting, launch_with_fallback,
                      max_shared_memory, row_tiling, tma_available,
                      tma_launch)
from .forward import (LOG2E, as_gemm_product, inner_tiles, load_offset_rows,
                      offset_rows_source, precision, tile_program,
                      tile_range, tile_rows, window_mask)

__all__ = ["compute_delta", "launch_dq", "launch_dq_short", "launch_kv",
           "ring_size", "use_ring", "short_window_path", "launch_ring",
           "backward"]


@triton.jit
def _bwd_delta_kernel(O, DO, DELTA, n_rows, N, Hq, HEAD_DIM: tl.constexpr,
                      BLOCK_R: tl.constexpr):
    """``Delta[b, h, n] = sum_d o[b, n, h, d] * do[b, n, h, d]`` in fp32.

    Grid: ``(cdiv(B * N * Hq, BLOCK_R),)``. One program owns ``BLOCK_R``
    consecutive rows of the ``[B * N * Hq, D]`` view and writes them in the
    LSE's ``[B, Hq, N]`` layout. FLOPs: ``2 * B * N * Hq * D`` on CUDA cores
    (memory-bound: reads o and do once).
    """
    o_row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    m_row = o_row < n_rows
    o_rd = o_row[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    # [BLOCK_R, D] each
    b_o = tl.load(O + o_rd, mask=m_row[:, None], other=0.0).to(tl.float32)
    b_do = tl.load(DO + o_rd, mask=m_row[:, None], other=0.0).to(tl.float32)
    o_h = o_row % Hq
    o_n = (o_row // Hq) % N
    o_b = o_row // (Hq * N)
    tl.store(DELTA + (o_b * Hq + o_h) * N + o_n, tl.sum(b_o * b_do, 1),
             mask=m_row)


@triton.jit
def _load_query_rows(p_q, p_do, p_lse, p_delta, m_row):
    """What every backward program loads for its query rows: the queries
    (as stored, as the forward holds them) and the output gradients
    (``[rows, D]``, fp32), each row's base-2 LSE and ``Delta`` (``[rows]``).
    Masked rows get ``LSE = +inf``, hence ``P = 0`` and no contribution."""
    m_q = m_row[:, None]
    b_q = tl.load(p_q, mask=m_q, other=0.0).to(tl.float32)
    b_do = tl.load(p_do, mask=m_q, other=0.0).to(tl.float32)
    b_lse = tl.load(p_lse, mask=m_row, other=float("inf"))
    b_delta = tl.load(p_delta, mask=m_row, other=0.0)
    return b_q, b_do, b_lse, b_delta


@triton.jit
def _query_tile(Q, DO, LSE, DELTA, N, Hq, Hkv, G, n_hblocks, stride_qb,
                stride_qn, stride_qh, HEAD_DIM: tl.constexpr,
                GH: tl.constexpr, POS: tl.constexpr):
    """The query-owned kernels' rows (:func:`tile_program`) and what they
    load for them (:func:`_load_query_rows`). Returns ``(i_b, i_g, i0,
    o_pos, m_row, o_d, o_q, b_q, b_do, b_lse, b_delta)``."""
    i_b, i_g, i0, o_pos, o_h, m_row, o_d, o_q = tile_program(
        N, Hkv, G, n_hblocks, stride_qb, stride_qn, stride_qh, HEAD_DIM, GH,
        POS)
    o_row = (i_b * Hq + o_h) * N + o_pos  # [BLOCK_M]
    b_q, b_do, b_lse, b_delta = _load_query_rows(
        Q + o_q, DO + o_q, LSE + o_row, DELTA + o_row, m_row)
    return i_b, i_g, i0, o_pos, m_row, o_d, o_q, b_q, b_do, b_lse, b_delta


@triton.jit
def _load_tile(p_k, p_v, o_j, stride_kn, o_d):
    """Rows ``o_j`` of one key/value set (``[BLOCK_N, D]`` each), zeros for
    positions before the sequence."""
    o_jd = o_j[:, None] * stride_kn + o_d[None, :]
    m_j = (o_j >= 0)[:, None]
    b_k = tl.load(p_k + o_jd, mask=m_j, other=0.0)
    b_v = tl.load(p_v + o_jd, mask=m_j, other=0.0)
    return b_k, b_v


@triton.jit
def _bwd_dq_tile(b_dq, b_q, b_do, b_lse, b_delta, b_k1, b_v1, p_k2, p_v2,
                 stride_kn, k_lo, k_hi, o_j, o_pos, lo1, o_d, W1, W2,
                 qk_scale, MASK: tl.constexpr, ONE_POS: tl.constexpr,
                 PREC: tl.constexpr):
    """The dq kernel's steps for one ``K1``/``V1`` tile: the short window's
    rows ``k`` in turn.

    Per step: ``P`` (one GEMM and the saved LSE), ``dP = (do * v2_k) @ v1^T``
    (one GEMM) and ``dq += (dS @ k1) * k2_k`` (one GEMM).
    """
    DT = b_k1.dtype
    for k in range(k_lo, k_hi):
        b_k2 = tl.load(p_k2 + k * stride_kn + o_d).to(tl.float32)  # [D]
        b_v2 = tl.load(p_v2 + k * stride_kn + o_d).to(tl.float32)  # [D]
        # [BLOCK_M, D], rounded exactly as in the forward
        b_a = (b_q * b_k2[None, :]).to(DT)
        # [BLOCK_M, BLOCK_N], scaled to base 2 as the forward's softmax step
        b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
        b_s = b_s * qk_scale - b_lse[:, None]
        if MASK:
            m_vis = window_mask(o_j, o_pos, k, lo1, W1, W2, ONE_POS)
            b_s = tl.where(m_vis, b_s, float("-inf"))
        b_p = tl.math.exp2(b_s)
        b_dov = (b_do * b_v2[None, :]).to(DT)  # [BLOCK_M, D]
        # [BLOCK_M, BLOCK_N]
        b_dp = tl.dot(b_dov, tl.trans(b_v1), input_precision=PREC)
        b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
        # [BLOCK_M, D]
        b_dq += tl.dot(b_ds, b_k1, input_precision=PREC) * b_k2[None, :]
    return b_dq


@triton.jit
def _bwd_dq_tile_offset(b_dq, b_q, b_do, b_lse, b_delta, b_k1, b_v1, p_k2,
                        p_v2, stride_kn, o_j, o_pos, m_row, o_d, W1, W2,
                        qk_scale, i0, PREC: tl.constexpr, GH: tl.constexpr,
                        TMA: tl.constexpr):
    """:func:`_bwd_dq_tile` walking the short window by offset: step ``s``
    pairs every row with its own ``k2``/``v2`` row ``pos - s`` (as the
    forward's ``_fwd_tile_offset``), ``w2`` steps instead of
    ``POS + w2 - 1`` for a tile of ``POS`` positions. ``b_q`` and ``b_do``
    are float32, or 16-bit GEMM products (:func:`as_gemm_product`, as
    :func:`_bwd_dq_kernel` holds them at ``D <= 64``).
    """
    DT = b_k1.dtype
    # [BLOCK_M, BLOCK_N]: the long window of each row
    m_j = ((o_j[None, :] > o_pos[:, None] - W1)
           & (o_j[None, :] <= o_pos[:, None]) & (o_j >= 0)[None, :])
    for s in range(0, W2):
        o_l = o_pos - s  # [BLOCK_M]
        m_l = (o_l >= 0) & m_row
        # [BLOCK_M, D] each
        b_k2 = load_offset_rows(p_k2, s, i0, o_pos, m_row, o_d, stride_kn,
                                GH, TMA)
        b_v2 = load_offset_rows(p_v2, s, i0, o_pos, m_row, o_d, stride_kn,
                                GH, TMA)
        # [BLOCK_M, D], in DT: exact products, rounded once
        b_a = (b_q * b_k2).to(DT)
        # [BLOCK_M, BLOCK_N]
        b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
        b_s = tl.where(m_j & m_l[:, None], b_s * qk_scale - b_lse[:, None],
                       float("-inf"))
        b_p = tl.math.exp2(b_s)
        b_dov = (b_do * b_v2).to(DT)  # [BLOCK_M, D]
        b_dp = tl.dot(b_dov, tl.trans(b_v1), input_precision=PREC)
        b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
        b_dq += (tl.dot(b_ds, b_k1, input_precision=PREC)
                 * b_k2.to(tl.float32))
    return b_dq


@triton.jit
def _bwd_dq_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ,
                   stride_qb, stride_qn, stride_qh,
                   stride_kb, stride_kn, stride_kh,
                   N, Hq, Hkv, G, W1, W2, qk_scale, scale, n_hblocks,
                   HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                   POS: tl.constexpr, BLOCK_N: tl.constexpr,
                   PREC: tl.constexpr, OFFSET: tl.constexpr = False,
                   TMA: tl.constexpr = False):
    """Gradient of the queries, query-owned (the fallback path).

    Grid: the forward's, ``(cdiv(N, POS) * n_hblocks, B * Hkv)``. One program
    owns ``BLOCK_M = GH * POS`` query rows and writes their ``dq``; it walks
    the long window in ``BLOCK_N`` tiles and the short one row by row
    (:func:`_bwd_dq_tile`). FLOPs: ``6 * B * Hq * N * D * w1 * w2`` on tensor
    cores (plus, for the offset walk at ``D <= 64`` in 16 bits, two
    ``[BLOCK_M, D] x [D, D]`` identity GEMMs per program).
    """
    i_b, i_g, i0, o_pos, m_row, o_d, o_q, b_q, b_do, b_lse, b_delta = (
        _query_tile(Q, DO, LSE, DELTA, N, Hq, Hkv, G, n_hblocks, stride_qb,
                    stride_qn, stride_qh, HEAD_DIM, GH, POS))

    if (OFFSET and HEAD_DIM <= 64
            and K1.dtype.element_ty.primitive_bitwidth == 16):
        # q and do in 16 bits (as stored), held as GEMM products: the offset
        # walk's q * k2 and do * v2 reach their GEMMs from registers (the
        # forward's as_gemm_product). At D 128 the two tiles spill more and
        # the kernel is no faster (results/h200/dq_probe_128x128.json).
        b_q = as_gemm_product(b_q.to(K1.dtype.element_ty), o_d, PREC)
        b_do = as_gemm_product(b_do.to(K1.dtype.element_ty), o_d, PREC)

    o_kv = i_b * stride_kb + i_g * stride_kh
    # the short set's rows, as [POS, D] TMA tiles with TMA
    p_k2 = offset_rows_source(K2 + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)
    p_v2 = offset_rows_source(V2 + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)
    # the window ranges, as in the forward
    hi, lo1, k_lo, n_tiles, n_full = tile_range(i0, N, W1, W2, POS, BLOCK_N)
    b_dq = tl.zeros([GH * POS, HEAD_DIM], tl.float32)  # [BLOCK_M, D]
    o_n = tl.arange(0, BLOCK_N)
    for t in range(0, n_tiles):
        o_j = hi - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
        b_k1, b_v1 = _load_tile(K1 + o_kv, V1 + o_kv, o_j, stride_kn, o_d)
        if OFFSET:
            b_dq = _bwd_dq_tile_offset(
                b_dq, b_q, b_do, b_lse, b_delta, b_k1, b_v1, p_k2, p_v2,
                stride_kn, o_j, o_pos, m_row, o_d, W1, W2, qk_scale, i0, PREC,
                GH, TMA)
        elif t < n_full:
            b_dq = _bwd_dq_tile(b_dq, b_q, b_do, b_lse, b_delta, b_k1, b_v1,
                                K2 + o_kv, V2 + o_kv, stride_kn, k_lo, hi,
                                o_j, o_pos, lo1, o_d, W1, W2, qk_scale,
                                False, POS == 1, PREC)
        else:
            b_dq = _bwd_dq_tile(b_dq, b_q, b_do, b_lse, b_delta, b_k1, b_v1,
                                K2 + o_kv, V2 + o_kv, stride_kn, k_lo, hi,
                                o_j, o_pos, lo1, o_d, W1, W2, qk_scale,
                                True, POS == 1, PREC)
    tl.store(DQ + o_q, (b_dq * scale).to(DQ.dtype.element_ty),
             mask=m_row[:, None])


@triton.jit
def _bwd_short_key_step(b_dq, b_q, b_do, b_lse, b_delta, b_k2, b_v2, b_k1,
                        b_v1, o_j, o_pos, k, lo1, W1, W2, qk_scale,
                        PREC: tl.constexpr):
    """One short-window key ``k`` against one ``K1``/``V1`` tile, for all
    the tile's query rows: ``dq`` and the key's two gradient rows.

    Recomputes ``P`` and ``dP`` (two GEMMs), then ``dS @ k1`` (one GEMM)
    gives both ``dq += (dS @ k1) * k2_k`` and ``dk2_k = sum_rows((dS @ k1)
    * q)``, and ``P @ v1`` (one GEMM) gives ``dv2_k = sum_rows((P @ v1) *
    do)``: four GEMMs, where the dq kernel plus the key-tile kernel for the
    short set spend seven. Returns ``(b_dq, dk2_k, dv2_k)``, the last two
    ``[D]`` (``dk2_k`` still without the factor ``scale``).
    """
    DT = b_k1.dtype
    b_a = (b_q * b_k2[None, :]).to(DT)  # [BLOCK_M, D]
    # [BLOCK_M, BLOCK_N]
    b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
    b_s = b_s * qk_scale - b_lse[:, None]
    m_vis = window_mask(o_j, o_pos, k, lo1, W1, W2, False)
    b_p = tl.math.exp2(tl.where(m_vis, b_s, float("-inf")))
    b_dov = (b_do * b_v2[None, :]).to(DT)  # [BLOCK_M, D]
    b_dp = tl.dot(b_dov, tl.trans(b_v1), input_precision=PREC)
    b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
    b_dsk1 = tl.dot(b_ds, b_k1, input_precision=PREC)  # [BLOCK_M, D]
    b_dq += b_dsk1 * b_k2[None, :]
    b_pv1 = tl.dot(b_p.to(DT), b_v1, input_precision=PREC)  # [BLOCK_M, D]
    return b_dq, tl.sum(b_dsk1 * b_q, 0), tl.sum(b_pv1 * b_do, 0)


@triton.jit
def _bwd_dq_short_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ, PK2, PV2,
                         stride_qb, stride_qn, stride_qh,
                         stride_kb, stride_kn, stride_kh,
                         N, Hq, Hkv, G, W1, W2, qk_scale, scale, n_hblocks,
                         HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                         POS: tl.constexpr, BLOCK_N: tl.constexpr,
                         PREC: tl.constexpr):
    """``dq`` and the tile's partial ``dk2``, ``dv2``, query-owned, for tiles
    of several positions (replaces the dq kernel plus the key-tile kernel
    for the short set).

    Grid: the forward's, ``(cdiv(N, POS) * n_hblocks, B * Hkv)``. A program
    owns ``BLOCK_M = GH * POS`` query rows. It walks the short window's keys
    ``k`` that its rows see, ``[i0 - w2 + 1, i0 + POS)``, one at a time and,
    for each, the long window in ``BLOCK_N`` tiles (re-read from L2 for
    every ``k``), so that the key's gradient rows are complete when the
    inner loop ends (``_bwd_short_key_step``). It writes them to its own
    slots ``u = k - (i0 - w2 + 1)`` of the partial buffers ``PK2``, ``PV2``
    ``[B, Hkv, cdiv(N, POS), n_hblocks, POS + w2 - 1, D]`` (fp32, zeroed);
    ``_short_sums_kernel`` adds each key's slots in a fixed order. No
    atomics: deterministic. FLOPs: ``8 * B * Hq * N * D * w1 * w2`` on tensor
    cores (four GEMMs per triple).
    """
    i_b, i_g, i0, o_pos, m_row, o_d, o_q, b_q, b_do, b_lse, b_delta = (
        _query_tile(Q, DO, LSE, DELTA, N, Hq, Hkv, G, n_hblocks, stride_qb,
                    stride_qn, stride_qh, HEAD_DIM, GH, POS))
    o_kv = i_b * stride_kb + i_g * stride_kh
    hi, lo1, k_lo, n_tiles, n_full = tile_range(i0, N, W1, W2, POS, BLOCK_N)
    # this program's partial rows: [POS + W2 - 1, D] slots from key i0-W2+1
    i_t = tl.program_id(0)
    R = POS + W2 - 1
    p_part = ((i_b * Hkv + i_g) * tl.num_programs(0) + i_t).to(tl.int64) * R
    b_dq = tl.zeros([GH * POS, HEAD_DIM], tl.float32)  # [BLOCK_M, D]
    o_n = tl.arange(0, BLOCK_N)
    for k in range(k_lo, hi):
        b_k2 = tl.load(K2 + o_kv + k * stride_kn + o_d).to(tl.float32)  # [D]
        b_v2 = tl.load(V2 + o_kv + k * stride_kn + o_d).to(tl.float32)  # [D]
        b_dk2 = tl.zeros([HEAD_DIM], tl.float32)
        b_dv2 = tl.zeros([HEAD_DIM], tl.float32)
        for t in range(0, n_tiles):
            o_j = hi - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
            b_k1, b_v1 = _load_tile(K1 + o_kv, V1 + o_kv, o_j, stride_kn, o_d)
            b_dq, b_dk, b_dv = _bwd_short_key_step(
                b_dq, b_q, b_do, b_lse, b_delta, b_k2, b_v2, b_k1, b_v1,
                o_j, o_pos, k, lo1, W1, W2, qk_scale, PREC)
            b_dk2 += b_dk
            b_dv2 += b_dv
        o_u = (p_part + k - (i0 - W2 + 1)) * HEAD_DIM + o_d  # [D]
        tl.store(PK2 + o_u, b_dk2 * scale)  # dk2 = scale * sum dS k1 q
        tl.store(PV2 + o_u, b_dv2)
    tl.store(DQ + o_q, (b_dq * scale).to(DQ.dtype.element_ty),
             mask=m_row[:, None])


@triton.jit
def _bwd_short_offset_step(b_acc_dk, b_acc_dv, b_a, b_dov, b_lse, b_delta,
                           b_k1, b_v1, m_vis, qk_scale, MASK: tl.constexpr,
                           PREC: tl.constexpr):
    """One offset ``s`` against one ``K1``/``V1`` tile: every row with its
    own short-window key (``b_a = q * k2``, ``b_dov = do * v2``,
    ``[BLOCK_M, D]``), masked by ``m_vis`` ``[BLOCK_M, BLOCK_N]`` (with
    ``MASK``; without, the tile lies inside every row's windows).

    Four GEMMs, as :func:`_bwd_short_key_step`, but nothing per row is
    multiplied in yet: ``dS @ k1`` and ``P @ v1`` are summed over the tiles,
    and the factors that do not change from tile to tile (``k2`` for ``dq``,
    ``q`` for ``dk2``, ``do`` for ``dv2``) are applied once the tiles are
    done. Returns ``(b_acc_dk, b_acc_dv)``.
    """
    DT = b_k1.dtype
    # [BLOCK_M, BLOCK_N], base 2 as in the forward's softmax step
    b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
    b_s = b_s * qk_scale - b_lse[:, None]
    if MASK:
        b_p = tl.math.exp2(tl.where(m_vis, b_s, float("-inf")))
    else:
        b_p = tl.math.exp2(b_s)
    b_dp = tl.dot(b_dov, tl.trans(b_v1), input_precision=PREC)
    b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
    b_acc_dk += tl.dot(b_ds, b_k1, input_precision=PREC)  # [BLOCK_M, D]
    b_acc_dv += tl.dot(b_p.to(DT), b_v1, input_precision=PREC)
    return b_acc_dk, b_acc_dv


@triton.jit
def _add_key_rows(P, b_rows, p_part, s, i0, N, o_d, W2, GH: tl.constexpr,
                  POS: tl.constexpr):
    """Add one offset's key-gradient rows ``[GH * POS, D]`` into the
    program's partial slots: the ``GH`` heads of each position summed, row
    ``p`` (key ``p - s``) into slot ``p - i0 + W2 - 1 - s``. Slots are shared
    by neighbouring offsets (key ``k`` is offset ``s`` of position
    ``k + s``), so the read-modify-write runs after a barrier."""
    D: tl.constexpr = b_rows.shape[1]
    b_pos = tl.sum(tl.reshape(b_rows, [POS, GH, D]), 1)  # [POS, D]
    o_p = tl.arange(0, POS)
    m_p = ((i0 + o_p < N) & (i0 + o_p - s >= 0))[:, None]
    o_u = (p_part + o_p + W2 - 1 - s)[:, None] * D + o_d[None, :]  # [POS, D]
    tl.debug_barrier()  # the previous offset's stores are visible
    b_old = tl.load(P + o_u, mask=m_p, other=0.0)
    tl.store(P + o_u, b_old + b_pos, mask=m_p)


@triton.jit
def _bwd_dq_short_offset_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ, PK2,
                                PV2, stride_qb, stride_qn, stride_qh,
                                stride_kb, stride_kn, stride_kh,
                                N, Hq, Hkv, G, W1, W2, qk_scale, scale,
                                n_hblocks, HEAD_DIM: tl.constexpr,
                                GH: tl.constexpr, POS: tl.constexpr,
                                BLOCK_N: tl.constexpr, PREC: tl.constexpr,
                                EDGE_MASKS: tl.constexpr = False):
    """:func:`_bwd_dq_short_kernel` walking the short window by offset: step
    ``s`` pairs every row (position ``p``) with its own key ``p - s``, so a
    tile of ``POS`` positions takes ``w2`` steps instead of ``POS + w2 - 1``
    and no step is mostly masked. For each ``s`` the long window is walked in
    ``BLOCK_N`` tiles (re-read from L2 for every ``s``); each row's key
    gradient rows are summed over the tiles, then over the heads of its
    position, and added into the same partial slots as the key walk's
    (``_add_key_rows``), which ``_short_sums_kernel`` adds in a fixed order:
    deterministic, no atomics. With ``EDGE_MASKS`` only the tiles outside
    :func:`~simplex_lib.ops.two_simplicial.forward.inner_tiles` form a mask
    (``BwdConfig.FUSED_MASKS``; the same gradients, bit for bit).

    Grid: the forward's, ``(cdiv(N, POS) * n_hblocks, B * Hkv)``. FLOPs:
    ``8 * B * Hq * N * D * w1 * w2`` on tensor cores (four GEMMs per triple).
    """
    # (the q and do rows _query_tile loads are not kept: each step re-reads
    # them)
    i_b, i_g, i0, o_pos, m_row, o_d, o_q, _, _, b_lse, b_delta = (
        _query_tile(Q, DO, LSE, DELTA, N, Hq, Hkv, G, n_hblocks, stride_qb,
                    stride_qn, stride_qh, HEAD_DIM, GH, POS))
    DT = K1.dtype.element_ty
    o_kv = i_b * stride_kb + i_g * stride_kh
    hi, lo1, k_lo, n_tiles, n_full = tile_range(i0, N, W1, W2, POS, BLOCK_N)
    i_t = tl.program_id(0)
    p_part = (((i_b * Hkv + i_g) * tl.num_programs(0) + i_t).to(tl.int64)
              * (POS + W2 - 1))
    b_dq = tl.zeros([GH * POS, HEAD_DIM], tl.float32)  # [BLOCK_M, D]
    o_n = tl.arange(0, BLOCK_N)
    t_in, t_out = inner_tiles(i0, hi, W1, W2, BLOCK_N)  # read with EDGE_MASKS
    for s in range(0, W2):
        o_l = o_pos - s  # [BLOCK_M]: each row's key
        m_l = (o_l >= 0) & m_row
        o_ld = o_kv + o_l[:, None] * stride_kn + o_d[None, :]  # [BLOCK_M, D]
        b_k2 = tl.load(K2 + o_ld, mask=m_l[:, None], other=0.0).to(tl.float32)
        b_v2 = tl.load(V2 + o_ld, mask=m_l[:, None], other=0.0).to(tl.float32)
        # q and do are re-read (from L2) at every step: held across the tile
        # loop they spill.
        # q * k2 rounded once, as the forward rounds its logits' operand
        m_q = m_row[:, None]
        b_q = tl.load(Q + o_q, mask=m_q, other=0.0).to(tl.float32)
        b_a = (b_q * b_k2).to(DT)  # [BLOCK_M, D]
        b_do = tl.load(DO + o_q, mask=m_q, other=0.0).to(tl.float32)
        b_dov = (b_do * b_v2).to(DT)
        b_acc_dk = tl.zeros([GH * POS, HEAD_DIM], tl.float32)
        b_acc_dv = tl.zeros([GH * POS, HEAD_DIM], tl.float32)
        for t in range(0, n_tiles):
            o_j = hi - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
            b_k1, b_v1 = _load_tile(K1 + o_kv, V1 + o_kv, o_j, stride_kn, o_d)
            # [BLOCK_M, BLOCK_N]: each row's windows, for rows with a key
            m_vis = (window_mask(o_j, o_pos, o_l, lo1, W1, W2, False)
                     & m_l[:, None])
            # (a constexpr branch: without EDGE_MASKS the loop holds one step
            # and is pipelined)
            if EDGE_MASKS:
                if (t >= t_in) & (t < t_out):  # inside every row's windows
                    b_acc_dk, b_acc_dv = _bwd_short_offset_step(
                        b_acc_dk, b_acc_dv, b_a, b_dov, b_lse, b_delta, b_k1,
                        b_v1, m_vis, qk_scale, False, PREC)
                else:
                    b_acc_dk, b_acc_dv = _bwd_short_offset_step(
                        b_acc_dk, b_acc_dv, b_a, b_dov, b_lse, b_delta, b_k1,
                        b_v1, m_vis, qk_scale, True, PREC)
            else:
                b_acc_dk, b_acc_dv = _bwd_short_offset_step(
                    b_acc_dk, b_acc_dv, b_a, b_dov, b_lse, b_delta, b_k1,
                    b_v1, m_vis, qk_scale, True, PREC)
        # the rows' factors again, from L2
        b_k2 = tl.load(K2 + o_ld, mask=m_l[:, None], other=0.0).to(tl.float32)
        b_dq += b_acc_dk * b_k2
        b_q = tl.load(Q + o_q, mask=m_q, other=0.0).to(tl.float32)
        # dk2 = scale * sum dS k1 q
        _add_key_rows(PK2, b_acc_dk * b_q * scale, p_part, s, i0, N, o_d, W2,
                      GH, POS)
        b_o = tl.load(DO + o_q, mask=m_q, other=0.0).to(tl.float32)
        _add_key_rows(PV2, b_acc_dv * b_o, p_part, s, i0, N, o_d, W2, GH,
                      POS)
    tl.store(DQ + o_q, (b_dq * scale).to(DQ.dtype.element_ty),
             mask=m_row[:, None])


@triton.jit
def _short_sums_kernel(PK2, PV2, DK2, DV2, N, Hkv, W2, n_tiles, n_hblocks,
                       stride_kb, stride_kn, stride_kh,
                       HEAD_DIM: tl.constexpr, POS: tl.constexpr):
    """``dk2``, ``dv2`` of one key: the partial rows of every program that
    saw it, added in a fixed order (tile, then head block).

    Grid: ``(N, B * Hkv)``. Key ``k`` is seen by the query tiles ``t`` with
    ``k // POS <= t <= (k + w2 - 1) // POS``, at slot ``u = k - (t * POS -
    w2 + 1)`` of each of their ``n_hblocks`` programs' rows.
    """
    k, i_bg = tl.program_id(0), tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    R = POS + W2 - 1
    o_d = tl.arange(0, HEAD_DIM)
    b_dk = tl.zeros([HEAD_DIM], tl.float32)
    b_dv = tl.zeros([HEAD_DIM], tl.float32)
    t_hi = tl.minimum((k + W2 - 1) // POS, n_tiles - 1)
    for t in range(k // POS, t_hi + 1):
        u = k - (t * POS - W2 + 1)
        for hb in range(0, n_hblocks):
            i_prog = (i_bg * n_tiles + t) * n_hblocks + hb
            o_u = (i_prog.to(tl.int64) * R + u) * HEAD_DIM + o_d
            b_dk += tl.load(PK2 + o_u)
            b_dv += tl.load(PV2 + o_u)
    o_k = i_b * stride_kb + k * stride_kn + i_g * stride_kh + o_d
    tl.store(DK2 + o_k, b_dk.to(DK2.dtype.element_ty))
    tl.store(DV2 + o_k, b_dv.to(DV2.dtype.element_ty))


@triton.jit
def _bwd_kv_step(b_dk, b_dv, b_ka, b_va, b_q, b_do, b_lse, b_delta, p_kb,
                 p_vb, stride_kn, kb_lo, kb_hi, o_d, m_avis, o_pos, WB,
                 qk_scale, MASK: tl.constexpr, PREC: tl.constexpr):
    """The key-tile kernel's steps for one block of query rows: the rows
    ``kb`` of set B they see.

    Per step: ``S^T = kA @ (q * kB)^T`` and ``dP^T = vA @ (do * vB)^T``
    (recomputation, two GEMMs), then ``dvA += P^T @ (do * vB)`` and
    ``dkA += dS^T @ (q * kB)`` (two GEMMs).
    """
    DT = b_ka.dtype
    for kb in range(kb_lo, kb_hi):
        b_kb = tl.load(p_kb + kb * stride_kn + o_d).to(tl.float32)  # [D]
        b_vb = tl.load(p_vb + kb * stride_kn + o_d).to(tl.float32)  # [D]
        b_a = (b_q * b_kb[None, :]).to(DT)  # [BLOCK_M, D]
        b_dov = (b_do * b_vb[None, :]).to(DT)  # [BLOCK_M, D]
        m_kb = (kb > o_pos - WB) & (kb <= o_pos)  # [BLOCK_M]
        b_dk, b_dv = _bwd_kv_update(b_dk, b_dv, b_ka, b_va, b_a, b_dov,
                                    b_lse, b_delta, m_avis & m_kb[None, :],
                                    qk_scale, MASK, PREC)
    return b_dk, b_dv


@triton.jit
def _bwd_kv_update(b_dk, b_dv, b_ka, b_va, b_a, b_dov, b_lse, b_delta,
                   m_vis, qk_scale, MASK: tl.constexpr, PREC: tl.constexpr):
    """One step of the key-tile kernel once its operands ``b_a = q * kB``
    and ``b_dov = do * vB`` (``[BLOCK_M, D]``) are formed: recompute
    ``P^T`` and ``dP^T`` for the owned keys (``[BLOCK_A, BLOCK_M]``, masked
    by ``m_vis`` when ``MASK``), then accumulate ``dvA`` and ``dkA``
    (``[BLOCK_A, D]``). Four GEMMs.
    """
    DT = b_ka.dtype
    # -- recompute P^T and dP^T for the owned keys, [BLOCK_A, BLOCK_M]
    b_st = tl.dot(b_ka, tl.trans(b_a), input_precision=PREC)
    b_st = b_st * qk_scale - b_lse[None, :]  # base 2
    if MASK:
        b_st = tl.where(m_vis, b_st, float("-inf"))
    b_pt = tl.math.exp2(b_st)
    b_dpt = tl.dot(b_va, tl.trans(b_dov), input_precision=PREC)
    b_dst = b_pt * (b_dpt - b_delta[None, :])  # [BLOCK_A, BLOCK_M]
    # -- accumulate the owned keys' gradients, [BLOCK_A, D]
    b_dv += tl.dot(b_pt.to(DT), b_dov, input_precision=PREC)
    b_dk += tl.dot(b_dst.to(DT), b_a, input_precision=PREC)
    return b_dk, b_dv


@triton.jit
def _bwd_kv_step_offset(b_dk, b_dv, b_ka, b_va, b_q, b_do, b_lse, b_delta,
                        p_kb, p_vb, stride_kn, o_d, m_avis, o_pos, m_row, WB,
                        qk_scale, p0, PREC: tl.constexpr, GH: tl.constexpr,
                        TMA: tl.constexpr):
    """:func:`_bwd_kv_step` walking set B by offset: step ``s`` pairs every
    query row with its own row ``pos - s`` of set B, ``wB`` steps instead of
    ``POS + wB - 1`` for a block of ``POS`` positions.
    """
    DT = b_ka.dtype
    for s in range(0, WB):
        o_l = o_pos - s  # [BLOCK_M]
        m_l = (o_l >= 0) & m_row
        # [BLOCK_M, D] each
        b_kb = load_offset_rows(p_kb, s, p0, o_pos, m_row, o_d, stride_kn,
                                GH, TMA)
        b_vb = load_offset_rows(p_vb, s, p0, o_pos, m_row, o_d, stride_kn,
                                GH, TMA)
        b_a = (b_q * b_kb.to(tl.float32)).to(DT)  # [BLOCK_M, D]
        b_dov = (b_do * b_vb.to(tl.float32)).to(DT)  # [BLOCK_M, D]
        b_dk, b_dv = _bwd_kv_update(b_dk, b_dv, b_ka, b_va, b_a, b_dov,
                                    b_lse, b_delta, m_avis & m_l[None, :],
                                    qk_scale, True, PREC)
    return b_dk, b_dv


@triton.jit
def _bwd_kv_kernel(Q, DO, LSE, DELTA, KA, VA, KB, VB, DKA, DVA,
                   stride_qb, stride_qn, stride_qh,
                   stride_kb, stride_kn, stride_kh,
                   N, Hq, Hkv, G, WA, WB, qk_scale, n_hblocks,
                   HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                   POS: tl.constexpr, BLOCK_A: tl.constexpr,
                   PREC: tl.constexpr, OFFSET: tl.constexpr = False,
                   TMA: tl.constexpr = False):
    """Gradients of one key/value set ``A`` (window ``WA``), key-owned; ``B``
    is the other set.

    Grid: ``(cdiv(N, BLOCK_A), B * Hkv)``. One program owns ``BLOCK_A``
    consecutive positions ``a`` of set ``A`` for one (batch, KV head), keeps
    ``dkA``, ``dvA`` for them in registers and writes them once. It visits
    every query position in ``[a0, a0 + BLOCK_A - 1 + WA)`` in blocks of
    ``GH * POS`` rows, all heads of the KV group (so the GQA sum happens
    here), and for each block the rows of set ``B`` in its window
    (:func:`_bwd_kv_step`). With one position per block, queries that see
    the whole tile skip the mask.
    FLOPs: ``8 * B * Hq * N * D * wA * wB`` on tensor cores, times the edge
    overhead ``(BLOCK_A + wA - 1) / wA`` of visiting queries that see only
    part of the tile.
    """
    i_a, i_bg = tl.program_id(0), tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    a0 = i_a * BLOCK_A
    o_a = a0 + tl.arange(0, BLOCK_A)  # [BLOCK_A] the owned key positions
    o_d = tl.arange(0, HEAD_DIM)
    o_kv = i_b * stride_kb + i_g * stride_kh
    o_ad = o_kv + o_a[:, None] * stride_kn + o_d[None, :]
    m_a = (o_a < N)[:, None]
    b_ka = tl.load(KA + o_ad, mask=m_a, other=0.0)  # [BLOCK_A, D]
    b_va = tl.load(VA + o_ad, mask=m_a, other=0.0)  # [BLOCK_A, D]
    # [BLOCK_A, D] each, summed over queries and the rows of B
    b_dk = tl.zeros([BLOCK_A, HEAD_DIM], tl.float32)
    b_dv = tl.zeros([BLOCK_A, HEAD_DIM], tl.float32)
    # set B's rows, as [POS, D] TMA tiles with TMA
    p_kb = offset_rows_source(KB + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)
    p_vb = offset_rows_source(VB + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)

    # one past the last query that sees the tile
    i_end = tl.minimum(N, a0 + BLOCK_A - 1 + WA)
    for i_hb in range(0, n_hblocks):
        for i_pb in range(a0 // POS, (i_end + POS - 1) // POS):
            o_pos, o_h, m_row = tile_rows(i_pb * POS, i_hb, i_g, G, N, GH,
                                          POS)
            o_q = (i_b * stride_qb + o_pos[:, None] * stride_qn
                   + o_h[:, None] * stride_qh + o_d[None, :])
            # [BLOCK_M, D] queries and output gradients; [BLOCK_M] LSE, Delta
            o_row = (i_b * Hq + o_h) * N + o_pos
            b_q, b_do, b_lse, b_delta = _load_query_rows(
                Q + o_q, DO + o_q, LSE + o_row, DELTA + o_row, m_row)
            # [BLOCK_A, BLOCK_M]: which owned keys each row sees
            m_avis = ((o_a[:, None] <= o_pos[None, :])
                      & (o_a[:, None] > o_pos[None, :] - WA))
            kb_lo = tl.maximum(i_pb * POS - WB + 1, 0)
            kb_hi = tl.minimum(i_pb * POS + POS, N)
            # One position per block: the B loop bounds are exact, and if
            # the query sees the whole A tile there is nothing to mask.
            inside = ((POS == 1) & (a0 + BLOCK_A - 1 <= i_pb)
                      & (a0 > i_pb - WA))
            if OFFSET:
                b_dk, b_dv = _bwd_kv_step_offset(
                    b_dk, b_dv, b_ka, b_va, b_q, b_do, b_lse, b_delta, p_kb,
                    p_vb, stride_kn, o_d, m_avis, o_pos, m_row, WB, qk_scale,
                    i_pb * POS, PREC, GH, TMA)
            elif inside:
                b_dk, b_dv = _bwd_kv_step(
                    b_dk, b_dv, b_ka, b_va, b_q, b_do, b_lse, b_delta,
                    KB + o_kv, VB + o_kv, stride_kn, kb_lo, kb_hi, o_d,
                    m_avis, o_pos, WB, qk_scale, False, PREC)
            else:
                b_dk, b_dv = _bwd_kv_step(
                    b_dk, b_dv, b_ka, b_va, b_q, b_do, b_lse, b_delta,
                    KB + o_kv, VB + o_kv, stride_kn, kb_lo, kb_hi, o_d,
                    m_avis, o_pos, WB, qk_scale, True, PREC)
    # dk = scale * sum dS (q * kB); qk_scale * ln 2 is scale
    b_dk = b_dk * (qk_scale * 0.6931471805599453)
    tl.store(DKA + o_ad, b_dk.to(DKA.dtype.element_ty), mask=m_a)
    tl.store(DVA + o_ad, b_dv.to(DVA.dtype.element_ty), mask=m_a)


@triton.jit
def _ring_flush(p_dk2, p_dv2, b_dk2, b_dv2, m_flush):
    """Add the ring slots selected by ``m_flush`` (``[R, 1]`` or ``[R, D]``)
    into memory."""
    b_old = tl.load(p_dk2, mask=m_flush, other=0.0)
    tl.store(p_dk2, b_old + b_dk2, mask=m_flush)
    b_old = tl.load(p_dv2, mask=m_flush, other=0.0)
    tl.store(p_dv2, b_old + b_dv2, mask=m_flush)


@triton.jit
def _ring_step(b_dq, b_dk2, b_dv2, b_q, b_do, b_lse, b_delta, b_k2, b_v2,
               m_k, p_k1, p_v1, o_d, qk_scale, PREC: tl.constexpr):
    """One row ``j`` of the long window against the whole ring: the
    dQ/dK2/dV2 step.

    ``S = (q * k1_j) @ k2_ring^T`` and ``dP = (do * v1_j) @ v2_ring^T``
    (recomputation), then ``dq += (dS @ k2_ring) * k1_j``,
    ``dk2 += dS^T @ (q * k1_j)``, ``dv2 += P^T @ (do * v1_j)``.
    """
    DT = b_k2.dtype
    b_k1 = tl.load(p_k1 + o_d).to(tl.float32)[None, :]  # [1, D]
    b_v1 = tl.load(p_v1 + o_d).to(tl.float32)[None, :]  # [1, D]
    b_a = (b_q * b_k1).to(DT)  # [GH, D]
    # [GH, R], base 2
    b_s = tl.dot(b_a, tl.trans(b_k2), input_precision=PREC)
    b_s = b_s * qk_scale - b_lse[:, None]
    b_p = tl.math.exp2(tl.where(m_k[None, :], b_s, float("-inf")))
    b_dov = (b_do * b_v1).to(DT)  # [GH, D]
    b_dp = tl.dot(b_dov, tl.trans(b_v2), input_precision=PREC)  # [GH, R]
    b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
    # [GH, D]
    b_dq += tl.dot(b_ds, b_k2, input_precision=PREC) * b_k1
    # [R, D] each
    b_dk2 += tl.dot(tl.trans(b_ds), b_a, input_precision=PREC)
    b_dv2 += tl.dot(tl.trans(b_p.to(DT)), b_dov, input_precision=PREC)
    return b_dq, b_dk2, b_dv2


@triton.jit
def _bwd_ring_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ, DK2, DV2,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, Hkv, G, W1, W2, qk_scale, scale, n_hblocks,
                     STAGE, HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                     R: tl.constexpr, T: tl.constexpr, PREC: tl.constexpr):
    """dq, dk2 and dv2 in one pass over the queries, for one position per
    row block.

    Grid: ``(cdiv(cdiv(N, T), 2), B * Hkv)``, launched twice (``STAGE`` 0
    then 1). One program owns the chunk of ``T`` query positions
    ``2 * pid + STAGE`` of one (batch, KV head), every head of the group in
    blocks of ``GH`` rows, and writes their ``dq``. The short window lives in
    a ring of ``R >= w2`` slots: slot ``s`` holds key ``k = s (mod R)``, so
    moving to the next query replaces one slot and ``dk2``/``dv2`` for the
    ring stay in registers ``[R, D]``; a slot is added into memory
    (:func:`_ring_flush`) when its key leaves the window. The long window is
    walked one row ``j`` at a time (:func:`_ring_step`).

    Keys near a chunk edge get contributions from two neighbouring programs.
    Even chunks (``STAGE = 0``) then odd chunks (``STAGE = 1``) add into a
    zeroed fp32 buffer, so with ``T >= w2 - 1`` no two programs of a launch
    share a key: race-free and deterministic without atomics.
    FLOPs: ``10 * B * Hq * N * D * w1 * R`` on tensor cores.
    """
    c0 = (2 * tl.program_id(0) + STAGE) * T
    if c0 >= N:
        return
    i_bg = tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    c1 = tl.minimum(c0 + T, N)
    k_first = tl.maximum(c0 - W2 + 1, 0)  # lowest key this program touches
    o_d = tl.arange(0, HEAD_DIM)
    o_s = tl.arange(0, R)  # ring slots
    o_r = tl.arange(0, GH)
    o_kv = i_b * stride_kb + i_g * stride_kh
    # [R, D] dk2 and dv2 of the keys in the ring
    b_dk2 = tl.zeros([R, HEAD_DIM], tl.float32)
    b_dv2 = tl.zeros([R, HEAD_DIM], tl.float32)
    for i in range(c0, c1):
        # -- the slot of key i last held key i - R, which no query from i on
        # sees: flush it
        m_slot = (o_s == i % R)[:, None]  # [R, 1]
        k_out = i - R
        # [R, D]
        o_out = o_kv + k_out * stride_kn + o_s[:, None] * 0 + o_d[None, :]
        _ring_flush(DK2 + o_out, DV2 + o_out, b_dk2, b_dv2,
                    m_slot & (k_out >= k_first))
        b_dk2 = tl.where(m_slot, 0.0, b_dk2)
        b_dv2 = tl.where(m_slot, 0.0, b_dv2)
        # -- load the ring: the key in each slot, in (i - R, i]
        o_k = i - ((i - o_s + R) % R)  # [R] the key held by each slot
        m_k = (o_k > i - W2) & (o_k >= 0)
        o_ring = o_kv + o_k[:, None] * stride_kn + o_d[None, :]
        b_k2 = tl.load(K2 + o_ring, mask=m_k[:, None], other=0.0)  # [R, D]
        b_v2 = tl.load(V2 + o_ring, mask=m_k[:, None], other=0.0)  # [R, D]
        j_lo = tl.maximum(i - W1 + 1, 0)
        for i_hb in range(0, n_hblocks):
            o_hg = i_hb * GH + o_r
            m_row = o_hg < G
            o_h = i_g * G + o_hg
            o_q = (i_b * stride_qb + i * stride_qn + o_h[:, None] * stride_qh
                   + o_d[None, :])
            # [GH, D] queries and output gradients of position i; [GH] LSE,
            # Delta
            o_row = (i_b * Hq + o_h) * N + i
            b_q, b_do, b_lse, b_delta = _load_query_rows(
                Q + o_q, DO + o_q, LSE + o_row, DELTA + o_row, m_row)
            b_dq = tl.zeros([GH, HEAD_DIM], tl.float32)  # [GH, D]
            for j in range(j_lo, i + 1):
                b_dq, b_dk2, b_dv2 = _ring_step(
                    b_dq, b_dk2, b_dv2, b_q, b_do, b_lse, b_delta, b_k2,
                    b_v2, m_k, K1 + o_kv + j * stride_kn,
                    V1 + o_kv + j * stride_kn, o_d, qk_scale, PREC)
            tl.store(DQ + o_q, (b_dq * scale).to(DQ.dtype.element_ty),
                     mask=m_row[:, None])
    # -- flush every slot still holding a key this program touched
    i_last = c1 - 1
    o_k = i_last - ((i_last - o_s + R) % R)
    o_out = o_kv + o_k[:, None] * stride_kn + o_d[None, :]
    m_left = (o_k >= k_first) & (o_k > i_last - R)
    _ring_flush(DK2 + o_out, DV2 + o_out, b_dk2, b_dv2, m_left[:, None])


def compute_delta(o, do):
    """``[B, Hq, N]`` fp32 row sums of ``o * do`` (contiguous
    ``[B, N, Hq, D]`` inputs).

    Parameters
    ----------
    o, do : Tensor ``[batch, seq, Hq, head_dim]``
        The forward's output and its gradient, contiguous.

    Returns
    -------
    delta : float32 Tensor ``[batch, Hq, seq]``
    """
    B, N, Hq, D = o.shape
    delta = torch.empty((B, Hq, N), device=o.device, dtype=torch.float32)
    n_rows = B * N * Hq
    block_r = 16 if interpreting() else 64
    grid = (triton.cdiv(n_rows, block_r),)
    _bwd_delta_kernel[grid](o, do, delta, n_rows, N, Hq, HEAD_DIM=D,
                            BLOCK_R=block_r)
    return delta


def launch_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg):
    """dq from the query-owned kernel (forward tiling).

    Parameters
    ----------
    q, do : Tensor ``[batch, seq, Hq, head_dim]``
        Queries and output gradients, contiguous.
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]``
        Contiguous; ``Hq`` a multiple of ``Hkv``.
    lse, delta : float32 Tensor ``[batch, Hq, seq]``
        The forward's base-2 log-sum-exp and :func:`compute_delta`.
    w1, w2 : int
        The long and the short window, ``w1 >= w2``.
    scale : float
        Logit scale.
    cfg : BwdConfig
        Its ``BLOCK_M``, ``BLOCK_N``, ``num_warps`` and ``num_stages``.

    Returns
    -------
    dq : Tensor ``[batch, seq, Hq, head_dim]``
        Dtype of ``q``.
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    offset = cfg.WALK == "offset" and rt.POS > 1
    dq = torch.empty_like(q)
    grid = (triton.cdiv(N, rt.POS) * rt.n_hblocks, B * Hkv)
    _bwd_dq_kernel[grid](
        q, k1, k2, v1, v2, do, lse, delta, dq,
        q.stride(0), q.stride(1), q.stride(2),
        k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, Hkv, G, w1, w2, scale * LOG2E, scale, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N,
        PREC=precision(q), OFFSET=offset,
        TMA=tma_launch(offset, cfg.LOADS, k2, v2),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return dq


def launch_kv(q, ka, va, kb, vb, do, lse, delta, wa, wb, scale, cfg,
              short_set=False):
    """(dkA, dvA) from the key-owned kernel for key set A (window wa); B is
    the other set.

    For the short window's set (``short_set``) a program owns ``BLOCK_A2``
    keys, runs ``kv2_warps`` warps and walks the long window as
    ``cfg.WALK2`` says: by position unless a tile holds enough positions that
    the offset walk's ``w1`` steps are fewer (GQA 1 at 128 x 128). On an
    H200 (bf16, D 128, 512 x 32) 4 warps instead of 8 took this launch from
    115 to 82 ms at GQA 4 and 8, and from 95 to 66 ms at GQA 1
    (benchmarks/NOTES.md).

    Parameters
    ----------
    q, do : Tensor ``[batch, seq, Hq, head_dim]``
        Queries and output gradients, contiguous.
    ka, va, kb, vb : Tensor ``[batch, seq, Hkv, head_dim]``
        Keys and values of set A and of set B, contiguous.
    lse, delta : float32 Tensor ``[batch, Hq, seq]``
        The forward's base-2 log-sum-exp and :func:`compute_delta`.
    wa, wb : int
        Windows of set A and set B.
    scale : float
        Logit scale.
    cfg : BwdConfig
        Its ``BLOCK_M``, ``BLOCK_A`` (``BLOCK_A2``), walk, warps and stages.
    short_set : bool, default False
        A is the short window's set (``wa <= wb``).

    Returns
    -------
    dka, dva : Tensor ``[batch, seq, Hkv, head_dim]``
        Dtypes of ``ka``, ``va``; summed over the query heads of each group.
    """
    B, N, Hq, D = q.shape
    Hkv = ka.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    block_a = cfg.BLOCK_A2 if short_set else cfg.BLOCK_A
    offset = (cfg.WALK2 if short_set else cfg.WALK) == "offset" and rt.POS > 1
    warps = ((cfg.kv2_warps if short_set else 0) or cfg.kv_warps
             or cfg.num_warps)
    dka, dva = torch.empty_like(ka), torch.empty_like(va)
    grid = (triton.cdiv(N, block_a), B * Hkv)
    _bwd_kv_kernel[grid](
        q, do, lse, delta, ka, va, kb, vb, dka, dva,
        q.stride(0), q.stride(1), q.stride(2),
        ka.stride(0), ka.stride(1), ka.stride(2),
        N, Hq, Hkv, G, wa, wb, scale * LOG2E, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_A=block_a,
        PREC=precision(q), OFFSET=offset,
        TMA=tma_launch(offset, cfg.LOADS, kb, vb),
        num_warps=warps, num_stages=cfg.kv_stages or cfg.num_stages,
    )
    return dka, dva


def ring_size(w2: int) -> int:
    """Slots of the short-window ring: a power of two >= w2 (and >= 16 for
    tl.dot).

    Parameters
    ----------
    w2 : int
        The short window.

    Returns
    -------
    int
    """
    return max(16, triton.next_power_of_2(w2))


def launch_dq_short(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg):
    """(dq, dk2, dv2) from the query-owned kernel that also forms the short
    window's key gradients (``_bwd_dq_short_offset_kernel``, or with
    ``cfg.FUSED_WALK == "key"`` ``_bwd_dq_short_kernel``), then the
    fixed-order sum of their partial rows (``_short_sums_kernel``).

    Taken for tiles of several positions when ``cfg.SHORT == "fused"`` (the
    default rule of ``configs.pick_short``, or ``$SIMPLEX_BWD_SHORT``; see
    :func:`short_window_path`). Extra memory: two fp32 partial buffers of
    ``B * Hkv * cdiv(N, POS) * n_hblocks * (POS + w2 - 1) * D`` elements.

    Parameters
    ----------
    q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale
        As for :func:`launch_dq`.
    cfg : BwdConfig
        Its ``BLOCK_M``, ``BLOCK_N``, ``short_warps`` (or ``num_warps``),
        ``num_stages`` and ``FUSED_WALK`` (``"offset"``, the default, or
        ``"key"``; both write the same slots).

    Returns
    -------
    dq : Tensor ``[batch, seq, Hq, head_dim]``
    dk2, dv2 : Tensor ``[batch, seq, Hkv, head_dim]``
        Dtypes of ``q``, ``k2``, ``v2``.
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    n_tiles = triton.cdiv(N, rt.POS)
    dq = torch.empty_like(q)
    dk2, dv2 = torch.empty_like(k2), torch.empty_like(v2)
    rows = B * Hkv * n_tiles * rt.n_hblocks * (rt.POS + w2 - 1)
    pk2 = torch.zeros(rows, D, device=q.device, dtype=torch.float32)
    pv2 = torch.zeros(rows, D, device=q.device, dtype=torch.float32)
    offset = cfg.FUSED_WALK == "offset"
    kernel = _bwd_dq_short_offset_kernel if offset else _bwd_dq_short_kernel
    edge = {"EDGE_MASKS": cfg.FUSED_MASKS == "edges"} if offset else {}
    kernel[(n_tiles * rt.n_hblocks, B * Hkv)](
        q, k1, k2, v1, v2, do, lse, delta, dq, pk2, pv2,
        q.stride(0), q.stride(1), q.stride(2),
        k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, Hkv, G, w1, w2, scale * LOG2E, scale, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N,
        PREC=precision(q), num_warps=cfg.short_warps or cfg.num_warps,
        num_stages=cfg.num_stages, **edge,
    )
    _short_sums_kernel[(N, B * Hkv)](
        pk2, pv2, dk2, dv2, N, Hkv, w2, n_tiles, rt.n_hblocks,
        k2.stride(0), k2.stride(1), k2.stride(2),
        HEAD_DIM=D, POS=rt.POS, num_warps=1,
    )
    return dq, dk2, dv2


def use_ring(q, k1, w2, cfg) -> bool:
    """The ring kernel needs one position per row block and a ring that
    fits in registers.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1 : Tensor ``[batch, seq, Hkv, head_dim]``
        Only the shapes are read.
    w2 : int
        The short window.
    cfg : BwdConfig
        Its ``BLOCK_M`` and ``RING_MAX``.

    Returns
    -------
    bool
        Whether a row block holds one position and
        ``ring_size(w2) * head_dim <= cfg.RING_MAX``.
    """
    G = q.shape[2] // k1.shape[2]
    return short_window_path(G, q.shape[-1], w2, cfg) == "ring"


def short_window_path(group: int, head_dim: int, w2: int, cfg) -> str:
    """Which kernels give ``dq`` and the short window's ``dk2``, ``dv2``; the
    dispatch of :func:`backward`.

    Parameters
    ----------
    group, head_dim : int
        Query heads per KV head, and ``D``.
    w2 : int
        The short window.
    cfg : BwdConfig
        Its ``BLOCK_M``, ``RING_MAX`` and ``SHORT``.

    Returns
    -------
    str
        ``"ring"`` (:func:`launch_ring`: one position per row block and a
        ring of ``ring_size(w2) * head_dim <= cfg.RING_MAX``), ``"fused"``
        (:func:`launch_dq_short`: several positions per block and
        ``cfg.SHORT == "fused"``) or ``"kv"`` (:func:`launch_dq` beside
        :func:`launch_kv` for the short set).
    """
    pos = row_tiling(group, cfg.BLOCK_M).POS
    if pos == 1 and ring_size(w2) * head_dim <= cfg.RING_MAX:
        return "ring"
    return "fused" if pos > 1 and cfg.SHORT == "fused" else "kv"


def launch_ring(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg):
    """(dq, dk2, dv2) from the ring kernel: two launches (even, then odd
    chunks).

    Parameters
    ----------
    q, do : Tensor ``[batch, seq, Hq, head_dim]``
        Queries and output gradients, contiguous.
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]``
        Contiguous; ``Hq`` a multiple of ``Hkv``.
    lse, delta : float32 Tensor ``[batch, Hq, seq]``
        The forward's base-2 log-sum-exp and :func:`compute_delta`.
    w1, w2 : int
        The long and the short window.
    scale : float
        Logit scale.
    cfg : BwdConfig
        Its ``BLOCK_M``, ``num_warps`` (or ``ring_warps``), ``num_stages``.

    Returns
    -------
    dq : Tensor ``[batch, seq, Hq, head_dim]``
    dk2, dv2 : Tensor ``[batch, seq, Hkv, head_dim]``
        Dtypes of the inputs (accumulated in float32).
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    R = ring_size(w2)
    T = R  # chunk length >= w2 - 1 keeps even chunks' key ranges disjoint
    dq = torch.empty_like(q)
    dk2 = torch.zeros(k2.shape, device=q.device, dtype=torch.float32)
    dv2 = torch.zeros(v2.shape, device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(triton.cdiv(N, T), 2), B * Hkv)
    for stage in (0, 1):
        _bwd_ring_kernel[grid](
            q, k1, k2, v1, v2, do, lse, delta, dq, dk2, dv2,
            q.stride(0), q.stride(1), q.stride(2),
            k1.stride(0), k1.stride(1), k1.stride(2),
            N, Hq, Hkv, G, w1, w2, scale * LOG2E, scale, rt.n_hblocks, stage,
            HEAD_DIM=D, GH=rt.GH, R=R, T=T, PREC=precision(q),
            num_warps=cfg.ring_warps or cfg.num_warps,
            num_stages=cfg.num_stages,
        )
    # dk2 = scale * sum dS (q * k1): the kernel summed without the scale
    return dq, (dk2 * scale).to(k2.dtype), dv2.to(v2.dtype)


def backward(do, q, k1, k2, v1, v2, o, lse, w1: int, w2: int, scale: float,
             cfg=None):
    """All five gradients, on contiguous ``[B, N, H, D]`` tensors with
    ``w1 >= w2``.

    Returns ``(dq, dk1, dk2, dv1, dv2)`` in the dtypes of the inputs (GQA
    gradients summed over the query heads of each group). Each gradient row
    is written by one program (the ring kernel's shared edge keys by two
    programs in two ordered launches): deterministic, no atomics. ``cfg``
    defaults to the fastest configuration that fits the shared memory.

    Parameters
    ----------
    do : Tensor ``[batch, seq, Hq, head_dim]``
        Gradient of the output.
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]``
    o : Tensor ``[batch, seq, Hq, head_dim]``
        The forward's output.
    lse : float32 Tensor ``[batch, Hq, seq]``
        The forward's base-2 log-sum-exp.
    w1, w2 : int
        The long and the short window.
    scale : float
        Logit scale, as in the forward.
    cfg : BwdConfig, optional
        Default: the first of ``bwd_configs`` the compiler accepts.

    Returns
    -------
    dq : Tensor ``[batch, seq, Hq, head_dim]``
    dk1, dk2, dv1, dv2 : Tensor ``[batch, seq, Hkv, head_dim]``
    """
    D = q.shape[-1]
    G = q.shape[2] // k1.shape[2]
    do, o = do.contiguous(), o.contiguous()
    # Delta_i = sum_d do_id o_id, laid out like the LSE
    delta = compute_delta(o, do)

    def run(c):
        dk1, dv1 = launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2,
                             scale, c)
        path = short_window_path(G, D, w2, c)
        if path == "ring":
            dq, dk2, dv2 = launch_ring(q, k1, k2, v1, v2, do, lse, delta,
                                       w1, w2, scale, c)
        elif path == "fused":
            dq, dk2, dv2 = launch_dq_short(q, k1, k2, v1, v2, do, lse, delta,
                                           w1, w2, scale, c)
        else:
            dq = launch_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2,
                           scale, c)
            dk2, dv2 = launch_kv(q, k2, v2, k1, v1, do, lse, delta, w2, w1,
                                 scale, c, short_set=True)
        return dq, dk1, dk2, dv1, dv2

    if cfg is not None:
        return run(cfg)
    smem = max_shared_memory(q.device)
    cands = bwd_configs(D, G, w1, w2, q.element_size(), smem,
                        tma_available(k1, k2, v1, v2))
    key = ("bwd", q.device, q.dtype, D, G, min(w1, 128), min(w2, 64),
           cands[0].WALK, cands[0].LOADS)
    return launch_with_fallback(key, cands, run)
