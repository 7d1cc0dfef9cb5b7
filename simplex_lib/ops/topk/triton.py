"""Triton kernels for top-k 2-simplicial attention with gathered key indices.

Each query row ``(b, i, h)`` attends to the ``kA x kB`` pairs formed by its selected rows
``idx[b, i, h]`` of K1/V1 and ``idx2[b, i, h]`` of K2/V2 (``-1`` = empty slot); same semantics as
the masked float64 reference ``simplex_lib.ops.topk.reference.topk_two_simplicial_attention``.

For one query the trilinear logits are a *bilinear* form with ``diag(q)`` in the middle,
``S[k, j] = sum_d (k2_k,d * q_d) * k1_j,d``, i.e. ``S = (K2 * q) @ K1^T``: a matrix product
between the two gathered key tiles. So one program per query row runs ordinary GEMMs on its own
gathered tiles, with an online softmax over the ``(k, j)`` blocks. Queries do not share their
selections, so nothing is masked away except empty slots.

Head-packed kernels for a selection shared by a KV group (``idx`` given with 1 or ``Hkv``
heads, as :class:`simplex_lib.layers.TopKTwoSimplicialAttention` selects): all the group's query
heads at one position gather the same rows, so one program owns ``GH`` heads of the group at one
position, exactly like the window kernel's one-position tiles (``BLOCK_M = GH`` rows, at least
16, padded rows masked). The gathered ``K1`` rows form the GEMM's N dimension (``[BLOCK_A, D]``)
and the selected ``K2`` rows are walked one at a time, with the window kernel's
:func:`~simplex_lib.ops.two_simplicial.forward.online_softmax_step`. In the backward the GEMMs
sum the key/value gradients over the tile's heads before one atomic add per gathered row block
(``G`` times fewer atomics than one program per query row). :func:`topk_dispatch` chooses between
the two kinds (:data:`PACK_MIN_GROUP`); both write the log-sum-exp as ``[B, N, Hq]``.

Expected effect (a PREDICTION, NOT YET MEASURED on a GPU): for ``Hq = 64, Hkv = 1`` the packed
forward runs ``[64, D] x [D, BLOCK_A]`` GEMMs on rows gathered once per 64 heads, where the
per-row kernel runs ``[kB, D] x [D, kA]`` GEMMs per head and gathers every row 64 times. It
should close most of the gap to the window kernel (the per-row forward took 5.6x the window
kernel's time at ``k = 128`` against ``512 x 32`` on an H100,
``benchmarks/results/topk_bench.json``); what remains is the dependent index load before each
``K2`` row and the gathered, not contiguous, ``K1`` rows. The packed backward should likewise
cut the atomic traffic by ``G``.

The backward recomputes ``P`` from the saved base-2 log-sum-exp. ``dq`` is owned by the query's
program; the key/value gradients of a position are sums over every query that selected it (an
arbitrary set), so they are accumulated with fp32 atomic adds into per-KV-head buffers (this
also sums the GQA group). Unlike the windowed backward, the result is therefore not bitwise
deterministic on a GPU, unless ``deterministic=True`` asks for partial rows per program and a
second kernel that adds each key's rows in a fixed order (``_slot_sums``).

Names follow the windowed kernels' convention (``b_`` blocks, ``p_`` pointers, ``o_`` offsets,
``m_`` masks, ``i_`` program ids).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from simplex_lib.masks import check_topk_index
from simplex_lib.ops.checks import check_qkv, nan_rows, nonfinite_rows, zero_rows
from simplex_lib.ops.two_simplicial.configs import (FwdConfig, env_choice, fwd_smem_bytes,
                                                    interpreting, kv_smem_bytes, launch_with_fallback,
                                                    max_shared_memory)
from simplex_lib.ops.two_simplicial.forward import (LOG2E, online_softmax_step, precision,
                                                    tile_rows)
from simplex_lib.ops.two_simplicial.interface import check_kernel_inputs, check_scale

__all__ = ["PACK_MIN_GROUP", "TOPK_KERNELS", "DETERMINISTIC_CHUNK_BYTES", "topk_kernel_choice",
           "topk_dispatch", "topk_two_simplicial_attention_triton"]

#: Smallest GQA group (query heads per KV head) for which a selection shared by the group takes
#: the head-packed kernel. 16 is where a group fills one ``tl.dot`` tile without padded rows; it
#: is a starting point, TO BE TUNED ON A GPU (``python -m simplex_lib.bench --topk
#: --topk-kernel row`` against ``packed``): the padded tiles of smaller groups may still beat the
#: per-row kernel, which runs its GEMMs on ``[kB, kA]`` tiles of one query.
PACK_MIN_GROUP = 16

#: Values of ``$SIMPLEX_TOPK_KERNEL`` (:func:`topk_kernel_choice`).
TOPK_KERNELS = ("auto", "row", "packed")


@triton.jit
def _gather(X1, X2, IDX, o_idx, o_slot, K, o_kv, stride_kn, o_d, m_d):
    """Gather the selected rows ``IDX[o_idx + o_slot]`` of two tensors sharing one selection.

    Returns ``(b_x1, b_x2, m_sel, o_rows)``: the rows ``[BLOCK, BLOCK_D]`` (zeros for empty
    slots), which slots hold a key, and the rows' offsets (for atomic adds into gradients).
    """
    b_idx = tl.load(IDX + o_idx + o_slot, mask=o_slot < K, other=-1)  # [BLOCK]
    m_sel = b_idx >= 0
    o_rows = o_kv + b_idx[:, None] * stride_kn + o_d[None, :]  # [BLOCK, BLOCK_D]
    m_rows = m_sel[:, None] & m_d[None, :]
    b_x1 = tl.load(X1 + o_rows, mask=m_rows, other=0.0)
    b_x2 = tl.load(X2 + o_rows, mask=m_rows, other=0.0)
    return b_x1, b_x2, m_sel, o_rows


@triton.jit
def _query_row(Q, stride_qb, stride_qn, stride_qh, stride_kb, stride_kh, N, Hq, G, D, qk_scale,
               BLOCK_D: tl.constexpr):
    """The query row ``(b, i, h)`` this program owns (grid ``(N, B * Hq)``).

    Returns ``(o_d, m_d, o_q, o_kv, i_row, b_qs)``: the head-dimension offsets and mask, the
    offset of the row in Q/O/dO, the offset of its KV head in K1/K2/V1/V2, its flat index in the
    selections and the log-sum-exp, and ``q * qk_scale`` in fp32 ``[BLOCK_D]``.
    """
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // Hq, i_bh % Hq
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    o_q = i_b * stride_qb + i_n * stride_qn + i_h * stride_qh
    b_qs = tl.load(Q + o_q + o_d, mask=m_d, other=0.0).to(tl.float32) * qk_scale  # [BLOCK_D]
    o_kv = i_b * stride_kb + (i_h // G) * stride_kh  # the KV head of query head i_h
    i_row = (i_b * N + i_n) * Hq + i_h
    return o_d, m_d, o_q, o_kv, i_row, b_qs


@triton.jit
def _topk_fwd_kernel(Q, K1, K2, V1, V2, IA, IB, O, LSE,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, G, D, KA, KB, qk_scale,
                     BLOCK_D: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
                     PREC: tl.constexpr):
    """Forward of top-k 2-simplicial attention; saves the base-2 log-sum-exp.

    Grid: ``(N, B * Hq)``. One program owns one query row ``(b, i, h)`` and writes its ``O`` and
    ``LSE``. It walks the ``kB`` selected K2/V2 rows in blocks of ``BLOCK_B`` (outer loop) and
    the ``kA`` selected K1/V1 rows in blocks of ``BLOCK_A`` (inner loop). Per step:
    ``a = K2_blk * q`` (CUDA cores), ``S = a @ K1_blk^T`` ``[BLOCK_B, BLOCK_A]`` (tensor cores),
    the online softmax over all entries, and ``acc += sum_k ((P @ V1_blk) * V2_blk)[k]``.
    FLOPs (tensor cores): ``4 * B * Hq * N * D * kA * kB``, plus
    ``B * Hq * N * D * kB * kA / BLOCK_A`` elementwise multiplies.
    """
    o_d, m_d, o_q, o_kv, i_row, b_qs = _query_row(Q, stride_qb, stride_qn, stride_qh, stride_kb, stride_kh,
                                                  N, Hq, G, D, qk_scale, BLOCK_D)
    DT = K1.dtype.element_ty

    b_m = tl.zeros([], tl.float32) + float("-inf")  # running maximum of the whole row
    b_l = tl.zeros([], tl.float32)
    b_acc = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, KB, BLOCK_B):
        # the row offsets are unused here; distinct names, as the two blocks' shapes may differ
        b_k2, b_v2, m_b, _o_rb = _gather(K2, V2, IB, i_row * KB + b0, tl.arange(0, BLOCK_B), KB - b0,
                                         o_kv, stride_kn, o_d, m_d)
        b_a = (b_k2.to(tl.float32) * b_qs[None, :]).to(DT)  # [BLOCK_B, BLOCK_D]
        b_v2 = b_v2.to(tl.float32)
        for a0 in range(0, KA, BLOCK_A):
            b_k1, b_v1, m_a, _o_ra = _gather(K1, V1, IA, i_row * KA + a0, tl.arange(0, BLOCK_A),
                                             KA - a0, o_kv, stride_kn, o_d, m_d)
            b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)  # [BLOCK_B, BLOCK_A]
            b_s = tl.where(m_b[:, None] & m_a[None, :], b_s, float("-inf"))
            # -- online softmax with one (scalar) maximum and normaliser for the row
            b_m_new = tl.maximum(b_m, tl.max(tl.max(b_s, 1), 0))
            b_ref = tl.where(b_m_new == float("-inf"), 0.0, b_m_new)  # all masked so far: zeros
            b_alpha = tl.math.exp2(b_m - b_ref)
            b_p = tl.math.exp2(b_s - b_ref)
            b_l = b_l * b_alpha + tl.sum(tl.sum(b_p, 1), 0)
            b_pv = tl.dot(b_p.to(DT), b_v1, input_precision=PREC)  # [BLOCK_B, BLOCK_D]
            b_acc = b_acc * b_alpha + tl.sum(b_pv * b_v2, 0)
            b_m = b_m_new
    b_l = tl.where(b_l > 0, b_l, 1.0)
    tl.store(O + o_q + o_d, (b_acc / b_l).to(O.dtype.element_ty), mask=m_d)
    tl.store(LSE + i_row, b_m + tl.math.log2(b_l))


@triton.jit
def _packed_tile(b_acc, b_m, b_l, b_qs, b_k1, b_v1, m_a, K2, V2, IB, o_sel, KB, o_kv, stride_kn,
                 o_d, m_d, PREC: tl.constexpr):
    """The inner steps of the head-packed forward for one gathered ``K1``/``V1`` tile: the
    ``kB`` selected ``K2``/``V2`` rows one at a time (the window kernel's one-position steps,
    with the short window's row read from the selection instead of counted down).

    Each step: ``a = q * k2[l]`` ``[BLOCK_M, D]`` (CUDA cores), ``s = a @ k1^T``
    ``[BLOCK_M, BLOCK_A]`` (tensor cores), the online softmax, ``acc += (p @ v1) * v2[l]``.
    Every row of the tile sees the same pairs, so only empty slots are masked.
    """
    DT = b_k1.dtype
    for kb in range(0, KB):
        i_l = tl.load(IB + o_sel + kb)  # the selected K2 row, or -1
        m_l = m_d & (i_l >= 0)
        b_k2 = tl.load(K2 + o_kv + i_l * stride_kn + o_d, mask=m_l, other=0.0).to(tl.float32)
        b_v2 = tl.load(V2 + o_kv + i_l * stride_kn + o_d, mask=m_l, other=0.0).to(tl.float32)
        b_a = (b_qs * b_k2[None, :]).to(DT)  # [BLOCK_M, BLOCK_D]
        b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)  # [BLOCK_M, BLOCK_A]
        b_s = tl.where(m_a[None, :] & (i_l >= 0), b_s, float("-inf"))
        b_p, b_alpha, b_m, b_l = online_softmax_step(b_s, b_m, b_l)
        b_pv = tl.dot(b_p.to(DT), b_v1, input_precision=PREC)  # [BLOCK_M, BLOCK_D]
        b_acc = b_acc * b_alpha[:, None] + b_pv * b_v2[None, :]
    return b_acc, b_m, b_l


@triton.jit
def _packed_rows(Q, stride_qb, stride_qn, stride_qh, N, Hkv, G, D, qk_scale, n_hblocks,
                 BLOCK_D: tl.constexpr, GH: tl.constexpr):
    """The rows a head-packed program owns (grid ``(N * n_hblocks, B * Hkv)``): ``GH`` query
    heads of KV group ``i_g`` at position ``i_n`` (:func:`tile_rows` with one position).

    Returns ``(i_b, i_g, i_n, o_pos, o_h, m_row, o_d, m_d, m_q, o_q, b_qs)``: the program's
    batch, group and position, the rows' positions, heads and mask ``[BLOCK_M]``, the head
    dimension's offsets and mask ``[BLOCK_D]``, the rows' mask and offsets in Q/O/dO
    ``[BLOCK_M, BLOCK_D]``, and ``q * qk_scale`` in fp32 ``[BLOCK_M, BLOCK_D]``.
    """
    i_t, i_bg = tl.program_id(0), tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    i_n = i_t // n_hblocks
    o_pos, o_h, m_row = tile_rows(i_n, i_t % n_hblocks, i_g, G, N, GH, 1)
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    m_q = m_row[:, None] & m_d[None, :]
    o_q = (i_b * stride_qb + o_pos[:, None] * stride_qn + o_h[:, None] * stride_qh
           + o_d[None, :])  # [BLOCK_M, BLOCK_D]
    b_qs = tl.load(Q + o_q, mask=m_q, other=0.0).to(tl.float32) * qk_scale
    return i_b, i_g, i_n, o_pos, o_h, m_row, o_d, m_d, m_q, o_q, b_qs


@triton.jit
def _topk_packed_fwd_kernel(Q, K1, K2, V1, V2, IA, IB, O, LSE,
                            stride_qb, stride_qn, stride_qh,
                            stride_kb, stride_kn, stride_kh,
                            N, Hq, Hkv, G, D, KA, KB, qk_scale, n_hblocks,
                            BLOCK_D: tl.constexpr, GH: tl.constexpr, BLOCK_A: tl.constexpr,
                            PREC: tl.constexpr):
    """Forward of top-k 2-simplicial attention for a selection shared by a KV group.

    Grid: ``(N * n_hblocks, B * Hkv)``. One program owns position ``i`` of KV group ``g`` and a
    block of ``GH`` of the group's query heads (:func:`tile_rows` with one position; rows past
    the group are masked), and writes their ``O`` and ``LSE`` (``[B, N, Hq]``, as the per-row
    kernel, so one backward serves both). The group's selections ``IA``, ``IB`` are
    ``[B, N, Hkv, k]``: every row of the tile gathers the same ``K1``/``V1`` rows, in tiles of
    ``BLOCK_A`` (the GEMM's N dimension), and walks the same ``kB`` selected ``K2``/``V2`` rows
    (:func:`_packed_tile`). FLOPs as the per-row kernel (``4 * B * Hq * N * D * kA * kB`` on
    tensor cores), but on ``[GH, D] x [D, BLOCK_A]`` tiles instead of ``[BLOCK_B, D] x [D,
    BLOCK_A]`` tiles of one query, and each gathered row is read once per ``GH`` heads.
    """
    i_b, i_g, i_n, o_pos, o_h, m_row, o_d, m_d, m_q, o_q, b_qs = _packed_rows(
        Q, stride_qb, stride_qn, stride_qh, N, Hkv, G, D, qk_scale, n_hblocks, BLOCK_D, GH)
    o_kv = i_b * stride_kb + i_g * stride_kh
    i_sel = (i_b * N + i_n) * Hkv + i_g  # the group's row of the selections

    b_m = tl.full([GH], float("-inf"), tl.float32)
    b_l = tl.zeros([GH], tl.float32)
    b_acc = tl.zeros([GH, BLOCK_D], tl.float32)
    for a0 in range(0, KA, BLOCK_A):
        b_k1, b_v1, m_a, _ = _gather(K1, V1, IA, i_sel * KA + a0, tl.arange(0, BLOCK_A), KA - a0,
                                     o_kv, stride_kn, o_d, m_d)
        b_acc, b_m, b_l = _packed_tile(b_acc, b_m, b_l, b_qs, b_k1, b_v1, m_a, K2, V2, IB,
                                       i_sel * KB, KB, o_kv, stride_kn, o_d, m_d, PREC)
    b_l = tl.where(b_l > 0, b_l, 1.0)
    tl.store(O + o_q, (b_acc / b_l[:, None]).to(O.dtype.element_ty), mask=m_q)
    tl.store(LSE + (i_b * N + o_pos) * Hq + o_h, b_m + tl.math.log2(b_l), mask=m_row)


@triton.jit
def _key_grads_out(DK, DV, o_grad, o_part, b_dk, b_dv, m_x, PARTIAL: tl.constexpr,
                   AGAIN: tl.constexpr):
    """Hand over a block of key/value gradient rows: atomic adds at their rows ``o_grad`` of the
    shared fp32 buffers, or with ``PARTIAL`` the program's own slots ``o_part`` of the partial
    buffers, which no other program touches: stored, or with ``AGAIN`` (slots the program visits
    more than once) added to by a plain load and store in program order, so that the sum does
    not depend on scheduling."""
    if PARTIAL:
        if AGAIN:
            b_dk += tl.load(DK + o_part, mask=m_x, other=0.0)
            b_dv += tl.load(DV + o_part, mask=m_x, other=0.0)
        tl.store(DK + o_part, b_dk, mask=m_x)
        tl.store(DV + o_part, b_dv, mask=m_x)
    else:
        tl.atomic_add(DK + o_grad, b_dk, mask=m_x, sem="relaxed")
        tl.atomic_add(DV + o_grad, b_dv, mask=m_x, sem="relaxed")


@triton.jit
def _slot_sums_kernel(PART, ORDER, START, OUT, D, BLOCK_D: tl.constexpr):
    """Sum the partial rows of every key in a fixed order: the deterministic reduction.

    Grid: ``(number of key rows,)``. Program ``t`` owns row ``t`` of ``OUT`` (a ``[rows, D]``
    view of a key/value gradient) and adds to it the partial rows ``ORDER[START[t]:START[t+1]]``
    of ``PART`` (``[slots, D]``), one after another in that order. No two programs write the
    same row. FLOPs: one add per partial element.
    """
    t = tl.program_id(0)
    o_d = tl.arange(0, BLOCK_D)
    m_d = o_d < D
    lo = tl.load(START + t)
    hi = tl.load(START + t + 1)
    b_acc = tl.zeros([BLOCK_D], tl.float32)
    for e in range(lo, hi):
        slot = tl.load(ORDER + e).to(tl.int64)
        b_acc += tl.load(PART + slot * D + o_d, mask=m_d, other=0.0)
    p_out = OUT + t.to(tl.int64) * D + o_d
    tl.store(p_out, tl.load(p_out, mask=m_d, other=0.0) + b_acc, mask=m_d)


@triton.jit
def _topk_bwd_kernel(Q, K1, K2, V1, V2, IA, IB, DO, LSE, DELTA, DQ, DK1, DK2, DV1, DV2,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, G, D, KA, KB, qk_scale, scale,
                     BLOCK_D: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
                     PREC: tl.constexpr, PARTIAL: tl.constexpr = False):
    """Backward of top-k 2-simplicial attention: all five gradients.

    Grid: ``(N, B * Hq)``, as the forward. One program owns ``dq`` of its query row; key/value
    gradients are fp32 buffers ``[B, N, Hkv, D]`` shared by all programs (atomic adds, which also
    sum the GQA groups). Per step it recomputes ``P = exp2(S - LSE)`` (one GEMM) and
    ``dP = (V2 * do) @ V1^T`` (one GEMM), forms ``dS = P * (dP - Delta)``, and computes
    ``dq += sum_k ((dS @ K1) * K2)[k]``, ``dK1 += dS^T @ (K2 * q)``, ``dV1 += P^T @ (V2 * do)``,
    ``dK2 += dS @ (K1 * q)``, ``dV2 += (P @ V1) * do`` (the last two kept in registers over the
    inner loop). FLOPs (tensor cores): ``12 * B * Hq * N * D * kA * kB`` (six GEMMs per step).
    With ``PARTIAL`` the key/value gradients go instead to this row's own slots of partial
    buffers (``DK1``/``DV1`` ``[rows, kA, D]``, ``DK2``/``DV2`` ``[rows, kB, D]``, fp32, zeroed),
    which ``_slot_sums`` adds up in a fixed order (the deterministic path).
    """
    o_d, m_d, o_q, o_kv, i_row, b_qs = _query_row(Q, stride_qb, stride_qn, stride_qh, stride_kb, stride_kh,
                                                  N, Hq, G, D, qk_scale, BLOCK_D)
    b_do = tl.load(DO + o_q + o_d, mask=m_d, other=0.0).to(tl.float32)  # [BLOCK_D]
    b_lse = tl.load(LSE + i_row)
    b_delta = tl.load(DELTA + i_row)
    DT = K1.dtype.element_ty

    b_dq = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, KB, BLOCK_B):
        b_k2, b_v2, m_b, o_rb = _gather(K2, V2, IB, i_row * KB + b0, tl.arange(0, BLOCK_B),
                                        KB - b0, o_kv, stride_kn, o_d, m_d)
        m_rb = m_b[:, None] & m_d[None, :]
        b_k2 = b_k2.to(tl.float32)
        b_a = (b_k2 * b_qs[None, :]).to(DT)  # [BLOCK_B, BLOCK_D]
        b_dov2 = (b_v2.to(tl.float32) * b_do[None, :]).to(DT)  # [BLOCK_B, BLOCK_D]
        b_dk2 = tl.zeros([BLOCK_B, BLOCK_D], tl.float32)
        b_dv2 = tl.zeros([BLOCK_B, BLOCK_D], tl.float32)
        for a0 in range(0, KA, BLOCK_A):
            b_k1, b_v1, m_a, o_ra = _gather(K1, V1, IA, i_row * KA + a0, tl.arange(0, BLOCK_A),
                                            KA - a0, o_kv, stride_kn, o_d, m_d)
            m_ra = m_a[:, None] & m_d[None, :]
            # -- recompute P and dP
            b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC) - b_lse  # [BLOCK_B, BLOCK_A]
            b_p = tl.math.exp2(tl.where(m_b[:, None] & m_a[None, :], b_s, float("-inf")))
            b_dp = tl.dot(b_dov2, tl.trans(b_v1), input_precision=PREC)  # [BLOCK_B, BLOCK_A]
            b_ds = (b_p * (b_dp - b_delta)).to(DT)
            # -- dq in registers; dK1, dV1 of the gathered rows by atomic adds
            b_dq += tl.sum(tl.dot(b_ds, b_k1, input_precision=PREC) * b_k2, 0)
            b_dk1 = tl.dot(tl.trans(b_ds), b_a, input_precision=PREC)  # [BLOCK_A, BLOCK_D]
            b_dv1 = tl.dot(tl.trans(b_p.to(DT)), b_dov2, input_precision=PREC)  # [BLOCK_A, BLOCK_D]
            # `b_a` carried scale * log2(e); the key gradients want scale alone (x ln 2)
            # this row's slots a0.. (added to once per block of K2 rows)
            o_pa = (i_row * KA + a0 + tl.arange(0, BLOCK_A))[:, None] * D + o_d[None, :]
            _key_grads_out(DK1, DV1, o_ra, o_pa, b_dk1 * 0.6931471805599453, b_dv1, m_ra,
                           PARTIAL, True)
            b_qk1 = (b_k1.to(tl.float32) * b_qs[None, :]).to(DT)  # [BLOCK_A, BLOCK_D]
            b_dk2 += tl.dot(b_ds, b_qk1, input_precision=PREC)
            b_dv2 += tl.dot(b_p.to(DT), b_v1, input_precision=PREC) * b_do[None, :]
        o_pb = (i_row * KB + b0 + tl.arange(0, BLOCK_B))[:, None] * D + o_d[None, :]
        _key_grads_out(DK2, DV2, o_rb, o_pb, b_dk2 * 0.6931471805599453, b_dv2, m_rb,
                       PARTIAL, False)
    tl.store(DQ + o_q + o_d, (b_dq * scale).to(DQ.dtype.element_ty), mask=m_d)


@triton.jit
def _topk_packed_bwd_kernel(Q, K1, K2, V1, V2, IA, IB, DO, LSE, DELTA, DQ, DK1, DK2, DV1, DV2,
                            stride_qb, stride_qn, stride_qh,
                            stride_kb, stride_kn, stride_kh,
                            N, Hq, Hkv, G, D, KA, KB, qk_scale, scale, n_hblocks,
                            BLOCK_D: tl.constexpr, GH: tl.constexpr, BLOCK_A: tl.constexpr,
                            PREC: tl.constexpr, PARTIAL: tl.constexpr = False):
    """Backward of top-k 2-simplicial attention for a selection shared by a KV group.

    Grid and rows as :func:`_topk_packed_fwd_kernel`: one program owns position ``i`` of KV
    group ``g`` and ``GH`` of its query heads. ``dq`` of its rows stays in registers and is
    stored once. Per gathered ``K1``/``V1`` tile and selected ``K2``/``V2`` row ``l`` it
    recomputes ``P = exp2(S - LSE)`` ``[BLOCK_M, BLOCK_A]`` and ``dP = (do * v2[l]) @ V1^T``,
    forms ``dS = P * (dP - Delta)``, and accumulates ``dq += (dS @ K1) * k2[l]``,
    ``dK1 += dS^T @ (q * k2[l])``, ``dV1 += P^T @ (do * v2[l])`` (``[BLOCK_A, D]``: the GEMMs sum
    the tile's heads), ``dk2[l] = sum_rows((dS @ K1) * q)`` and ``dv2[l] = sum_rows((P @ V1) *
    do)``. The key/value gradients go to the fp32 buffers by atomic adds: one ``[BLOCK_A, D]``
    add per ``K1`` tile and one ``[D]`` row per ``(tile, l)`` for ``K2``/``V2``, i.e. one add
    per gathered row for all ``GH`` heads where the per-row kernel makes one per head. FLOPs
    (tensor cores): ``12 * B * Hq * N * D * kA * kB``, as the per-row kernel. With ``PARTIAL``
    they go to the program's own slots of partial buffers (row ``i_sel * n_hblocks + i_hb``,
    ``[rows, kA, D]`` and ``[rows, kB, D]``), as in :func:`_topk_bwd_kernel`.
    """
    i_b, i_g, i_n, o_pos, o_h, m_row, o_d, m_d, m_q, o_q, b_qs = _packed_rows(
        Q, stride_qb, stride_qn, stride_qh, N, Hkv, G, D, qk_scale, n_hblocks, BLOCK_D, GH)
    b_do = tl.load(DO + o_q, mask=m_q, other=0.0).to(tl.float32)
    o_r = (i_b * N + o_pos) * Hq + o_h  # [BLOCK_M] rows of LSE and Delta
    # padded rows: LSE = +inf makes their weights exact zeros
    b_lse = tl.load(LSE + o_r, mask=m_row, other=float("inf"))
    b_delta = tl.load(DELTA + o_r, mask=m_row, other=0.0)
    o_kv = i_b * stride_kb + i_g * stride_kh
    i_sel = (i_b * N + i_n) * Hkv + i_g
    i_part = i_sel * n_hblocks + tl.program_id(0) % n_hblocks  # this program's partial row
    DT = K1.dtype.element_ty

    b_dq = tl.zeros([GH, BLOCK_D], tl.float32)
    for a0 in range(0, KA, BLOCK_A):
        b_k1, b_v1, m_a, o_ra = _gather(K1, V1, IA, i_sel * KA + a0, tl.arange(0, BLOCK_A), KA - a0,
                                        o_kv, stride_kn, o_d, m_d)
        b_dk1 = tl.zeros([BLOCK_A, BLOCK_D], tl.float32)
        b_dv1 = tl.zeros([BLOCK_A, BLOCK_D], tl.float32)
        for kb in range(0, KB):
            i_l = tl.load(IB + i_sel * KB + kb)  # the selected K2 row, or -1
            m_l = m_d & (i_l >= 0)
            o_l = o_kv + i_l * stride_kn + o_d  # [BLOCK_D]
            b_k2 = tl.load(K2 + o_l, mask=m_l, other=0.0).to(tl.float32)
            b_v2 = tl.load(V2 + o_l, mask=m_l, other=0.0).to(tl.float32)
            # -- recompute P and dP
            b_a = (b_qs * b_k2[None, :]).to(DT)  # [BLOCK_M, BLOCK_D]
            b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC) - b_lse[:, None]
            b_p = tl.math.exp2(tl.where(m_a[None, :] & (i_l >= 0), b_s, float("-inf")))
            b_dov2 = (b_do * b_v2[None, :]).to(DT)  # [BLOCK_M, BLOCK_D]
            b_dp = tl.dot(b_dov2, tl.trans(b_v1), input_precision=PREC)  # [BLOCK_M, BLOCK_A]
            b_ds = (b_p * (b_dp - b_delta[:, None])).to(DT)
            b_pt = b_p.to(DT)
            # -- dq in registers; dK1, dV1 summed over the heads by the GEMMs
            b_dsk1 = tl.dot(b_ds, b_k1, input_precision=PREC)  # [BLOCK_M, BLOCK_D]
            b_dq += b_dsk1 * b_k2[None, :]
            b_dk1 += tl.dot(tl.trans(b_ds), b_a, input_precision=PREC)
            b_dv1 += tl.dot(tl.trans(b_pt), b_dov2, input_precision=PREC)
            # -- the K2/V2 row l: one [D] row for all the tile's heads
            b_dk2 = tl.sum(b_dsk1 * b_qs, 0)
            b_dv2 = tl.sum(tl.dot(b_pt, b_v1, input_precision=PREC) * b_do, 0)
            # `b_qs` carried scale * log2(e); the key gradients want scale alone (x ln 2)
            # slot kb of this program's row, added to once per K1 tile
            o_pl = (i_part * KB + kb) * D + o_d  # [BLOCK_D]
            _key_grads_out(DK2, DV2, o_l, o_pl, b_dk2 * 0.6931471805599453, b_dv2, m_l,
                           PARTIAL, True)
        m_ra = m_a[:, None] & m_d[None, :]
        o_pa = (i_part * KA + a0 + tl.arange(0, BLOCK_A))[:, None] * D + o_d[None, :]
        _key_grads_out(DK1, DV1, o_ra, o_pa, b_dk1 * 0.6931471805599453, b_dv1, m_ra,
                       PARTIAL, False)
    tl.store(DQ + o_q, (b_dq * scale).to(DQ.dtype.element_ty), mask=m_q)


def _blocks(ka: int, kb: int, d: int) -> list:
    """Block sizes ``(BLOCK_D, BLOCK_A, BLOCK_B)``, fastest first: powers of two >= 16 (for
    ``tl.dot``), at most 64 keys per block; smaller key blocks follow as fallbacks."""
    bd = max(16, triton.next_power_of_2(d))
    ba = min(64, max(16, triton.next_power_of_2(ka)))
    bb = min(64 if bd <= 64 else 32, max(16, triton.next_power_of_2(kb)))
    out = [(bd, ba, bb)]
    while ba > 16 or bb > 16:
        ba, bb = max(16, ba // 2), max(16, bb // 2)
        out.append((bd, ba, bb))
    return out


def _smem_bytes(blocks, elem: int) -> int:
    """Shared memory of the backward (the larger kernel): the gathered K1/V1 rows and ``K1 * q``
    ``[BLOCK_A, BLOCK_D]``, the K2-side operands ``[BLOCK_B, BLOCK_D]`` and ``P``, ``dS``."""
    bd, ba, bb = blocks
    return elem * (3 * ba * bd + 2 * bb * bd + 2 * ba * bb) + 4096


def _candidates(q, ka: int, kb: int) -> list:
    cands = _blocks(ka, kb, q.shape[-1])
    smem = max_shared_memory(q.device)
    return [c for c in cands if _smem_bytes(c, q.element_size()) <= smem] or cands[-1:]


def _forward(q, k1, k2, v1, v2, ia, ib, scale):
    B, N, Hq, D = q.shape
    G = Hq // k1.shape[2]
    KA, KB = ia.shape[-1], ib.shape[-1]
    o = torch.empty_like(q)
    lse = torch.empty((B, N, Hq), device=q.device, dtype=torch.float32)

    def launch(blocks):
        bd, ba, bb = blocks
        _topk_fwd_kernel[(N, B * Hq)](
            q, k1, k2, v1, v2, ia, ib, o, lse,
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
            N, Hq, G, D, KA, KB, scale * LOG2E,
            BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC=precision(q),
            num_warps=4 if bd <= 64 else 8, num_stages=1,
        )
        return o, lse

    key = ("topk_fwd", q.device, q.dtype, D, min(KA, 64), min(KB, 64))
    return launch_with_fallback(key, _candidates(q, KA, KB), launch)


def _packed_shapes(q, group: int, ka: int, *, max_block_a: int, max_gh: int = 64) -> list:
    """Tile shapes ``(BLOCK_D, GH, BLOCK_A)`` of a head-packed kernel, largest first: ``GH``
    heads (at least 16 rows, ``tl.dot``'s smallest tile; at most ``max_gh``), at most
    ``max_block_a`` gathered rows; then ``BLOCK_A``, and after it ``GH``, halved down to 16 as
    fallbacks."""
    bd = max(16, triton.next_power_of_2(q.shape[-1]))
    gh = max(16, min(triton.next_power_of_2(group), max_gh))
    ba = min(max_block_a, max(16, triton.next_power_of_2(ka)))
    out = [(bd, gh, ba)]
    while ba > 16 or gh > 16:
        if ba > 16:
            ba //= 2
        else:
            gh //= 2
        out.append((bd, gh, ba))
    return out


def _packed_candidates(q, group: int, ka: int) -> list:
    """Tile shapes ``(BLOCK_D, GH, BLOCK_A)`` of the head-packed forward, fastest first.

    ``GH = min(next_pow2(G), 64)`` heads, at least 16 rows (``tl.dot``'s smallest tile; extra
    rows are masked); ``BLOCK_A`` up to 128 gathered ``K1`` rows, as the window kernel's
    ``BLOCK_N``. Smaller ``BLOCK_A``, then ``GH``, follow as fallbacks; those whose shared
    memory (:func:`~simplex_lib.ops.two_simplicial.configs.fwd_smem_bytes`) exceeds the device's
    are dropped.
    """
    out = _packed_shapes(q, group, ka, max_block_a=128)
    smem = max_shared_memory(q.device)
    fits = [c for c in out if fwd_smem_bytes(FwdConfig(c[1], c[2], 4, 2), c[0], q.element_size()) <= smem]
    return fits or out[-1:]


def _packed_forward(q, k1, k2, v1, v2, ia, ib, scale):
    """The head-packed forward: ``ia``, ``ib`` are the group-level selections ``[B, N, Hkv, k]``.

    Returns ``(o, lse)`` with ``lse`` ``[B, N, Hq]``, as :func:`_forward`.
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    KA, KB = ia.shape[-1], ib.shape[-1]
    o = torch.empty_like(q)
    lse = torch.empty((B, N, Hq), device=q.device, dtype=torch.float32)

    def launch(blocks):
        bd, gh, ba = blocks
        n_hblocks = triton.cdiv(G, gh)
        _topk_packed_fwd_kernel[(N * n_hblocks, B * Hkv)](
            q, k1, k2, v1, v2, ia, ib, o, lse,
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
            N, Hq, Hkv, G, D, KA, KB, scale * LOG2E, n_hblocks,
            BLOCK_D=bd, GH=gh, BLOCK_A=ba, PREC=precision(q),
            num_warps=4, num_stages=2,
        )
        return o, lse

    key = ("topk_packed_fwd", q.device, q.dtype, D, min(G, 64), min(KA, 128))
    return launch_with_fallback(key, _packed_candidates(q, G, KA), launch)


#: Bytes of the partial buffers one chunk of positions may hold on the deterministic path
#: (``_deterministic_chunks``): the backward runs chunk by chunk below this bound.
DETERMINISTIC_CHUNK_BYTES = 1 << 30


def _deterministic_chunks(N: int, rows_per_position: int, KA: int, KB: int, D: int) -> list:
    """Position ranges ``[(n0, n1), ...]`` whose partial buffers (``rows x (2 kA + 2 kB) x D``
    fp32) stay within :data:`DETERMINISTIC_CHUNK_BYTES` (at least one position each)."""
    per_position = rows_per_position * (2 * KA + 2 * KB) * D * 4
    step = max(1, DETERMINISTIC_CHUNK_BYTES // max(per_position, 1))
    return [(n0, min(N, n0 + step)) for n0 in range(0, N, step)]


def _slot_sums(part, keys, out, n_keys: int) -> None:
    """``out[t] += sum of part[e] over the slots e with keys[e] == t``, in slot order.

    ``part`` ``[E, D]`` fp32 partial rows, ``keys`` ``[E]`` int64 row of ``out`` each belongs to
    (``-1``: an empty slot), ``out`` ``[n_keys, D]`` fp32. A stable sort groups the slots by key
    and ``_slot_sums_kernel`` adds each group in order, so the result is the same on every
    run (floating-point addition is not associative; atomics add in arrival order).
    """
    valid = keys >= 0
    order = torch.argsort(torch.where(valid, keys, n_keys), stable=True)
    counts = torch.bincount(keys[valid], minlength=n_keys)
    start = torch.zeros(n_keys + 1, dtype=torch.int64, device=keys.device)
    start[1:] = torch.cumsum(counts, 0)
    D = part.shape[-1]
    _slot_sums_kernel[(n_keys,)](part, order, start, out, D,
                                 BLOCK_D=max(16, triton.next_power_of_2(D)), num_warps=1)


def _key_rows(idx, N: int, Hkv: int, G: int) -> torch.Tensor:
    """Row ``(b * N + j) * Hkv + g`` of a ``[B, N, Hkv, D]`` gradient that each selected slot of
    ``idx`` ``[B, n, H, k]`` adds to, ``-1`` for empty slots. ``H`` is ``Hq`` (one selection
    per query head; ``G`` query heads per KV head) or ``Hkv`` (one per group; ``G = 1``)."""
    B, _, H, _ = idx.shape
    b = torch.arange(B, device=idx.device).view(B, 1, 1, 1)
    g = (torch.arange(H, device=idx.device) // G).view(1, 1, H, 1)
    rows = (b * N + idx.long()) * Hkv + g
    return torch.where(idx >= 0, rows, -1)


def _chunk_args(q, k1, k2, v1, v2, ia, ib, do, lse, delta, dq, n0: int, n1: int) -> list:
    """The backward kernels' tensor arguments for positions ``[n0, n1)``: views of ``q``,
    ``do``, ``dq`` (the kernels take their strides), contiguous slices of the selections,
    ``lse`` and ``delta``, and the whole key/value tensors."""
    return [q[:, n0:n1], k1, k2, v1, v2, ia[:, n0:n1].contiguous(), ib[:, n0:n1].contiguous(),
            do[:, n0:n1], lse[:, n0:n1].contiguous(), delta[:, n0:n1].contiguous(), dq[:, n0:n1]]


def _add_partials(parts, rows_a, rows_b, grads, n_keys: int) -> None:
    """Add the partial rows of ``dk1, dk2, dv1, dv2`` (``parts``, in that order) into
    ``grads``: the first set's slots belong to the key rows ``rows_a``, the second's to
    ``rows_b`` (:func:`_slot_sums`, a fixed order)."""
    for part, grad, rows in zip(parts, grads, (rows_a, rows_b, rows_a, rows_b)):
        _slot_sums(part.view(-1, grad.shape[-1]), rows, grad.view(-1, grad.shape[-1]), n_keys)


def _backward(do, q, k1, k2, v1, v2, ia, ib, o, lse, scale, deterministic=False):
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    KA, KB = ia.shape[-1], ib.shape[-1]
    delta = (do.float() * o.float()).sum(-1).contiguous()  # [B, N, Hq]
    dq = torch.empty_like(q)

    def run(blocks, n0, n1, grads):
        bd, ba, bb = blocks
        n = n1 - n0
        args = _chunk_args(q, k1, k2, v1, v2, ia, ib, do, lse, delta, dq, n0, n1)
        if deterministic:
            parts = [torch.zeros(B * n * Hq, kk, D, device=q.device, dtype=torch.float32)
                     for kk in (KA, KB, KA, KB)]
        _topk_bwd_kernel[(n, B * Hq)](
            *args, *(parts if deterministic else grads),
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
            n, Hq, G, D, KA, KB, scale * LOG2E, scale,
            BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC=precision(q), PARTIAL=deterministic,
            num_warps=4 if bd <= 64 else 8, num_stages=1,
        )
        if deterministic:
            rows = [_key_rows(args[i], N, Hkv, G).view(-1) for i in (5, 6)]
            _add_partials(parts, *rows, grads, B * N * Hkv)

    def launch(blocks):
        grads = [torch.zeros(k1.shape, device=q.device, dtype=torch.float32) for _ in range(4)]
        chunks = _deterministic_chunks(N, B * Hq, KA, KB, D) if deterministic else [(0, N)]
        for n0, n1 in chunks:
            run(blocks, n0, n1, grads)
        return (dq, *grads)

    key = ("topk_bwd", q.device, q.dtype, D, min(KA, 64), min(KB, 64))
    return launch_with_fallback(key, _candidates(q, KA, KB), launch)


def _packed_bwd_candidates(q, group: int, ka: int) -> list:
    """Tile shapes ``(BLOCK_D, GH, BLOCK_A)`` of the head-packed backward, fastest first.

    As :func:`_packed_candidates`, with at most 64 gathered rows per tile, and at most 32 heads
    for ``D > 64``: the program keeps ``dK1``, ``dV1`` ``[BLOCK_A, D]`` and ``dq`` ``[GH, D]`` in
    registers. On an H200 (D 128, GQA 64, k 128; every tile spills) 32 heads x 64 rows was the
    fastest tile, ahead of 64 x 64, 32 x 32 and 64 x 32
    (``benchmarks/results/h200/topk_bwd_tiles.json``). Shared memory as the windowed key-tile
    kernel (:func:`~simplex_lib.ops.two_simplicial.configs.kv_smem_bytes`).
    """
    out = _packed_shapes(q, group, ka, max_block_a=64, max_gh=64 if q.shape[-1] <= 64 else 32)
    smem = max_shared_memory(q.device)
    fits = [c for c in out if kv_smem_bytes(c[2], c[1], c[0], q.element_size()) <= smem]
    return fits or out[-1:]


def _packed_backward(do, q, k1, k2, v1, v2, ia, ib, o, lse, scale, deterministic=False):
    """The head-packed backward: ``ia``, ``ib`` are the group-level selections ``[B, N, Hkv, k]``.

    Returns ``(dq, dk1, dk2, dv1, dv2)`` as :func:`_backward` (key/value gradients in fp32).
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    KA, KB = ia.shape[-1], ib.shape[-1]
    delta = (do.float() * o.float()).sum(-1).contiguous()  # [B, N, Hq]
    dq = torch.empty_like(q)

    def run(blocks, n0, n1, grads):
        bd, gh, ba = blocks
        n_hblocks = triton.cdiv(G, gh)
        n = n1 - n0
        args = _chunk_args(q, k1, k2, v1, v2, ia, ib, do, lse, delta, dq, n0, n1)
        if deterministic:
            parts = [torch.zeros(B * n * Hkv * n_hblocks, kk, D, device=q.device, dtype=torch.float32)
                     for kk in (KA, KB, KA, KB)]
        _topk_packed_bwd_kernel[(n * n_hblocks, B * Hkv)](
            *args, *(parts if deterministic else grads),
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
            n, Hq, Hkv, G, D, KA, KB, scale * LOG2E, scale, n_hblocks,
            BLOCK_D=bd, GH=gh, BLOCK_A=ba, PREC=precision(q), PARTIAL=deterministic,
            num_warps=4 if bd <= 64 else 8, num_stages=1,
        )
        if deterministic:  # every head block of a position has its own partial row
            rows = [_key_rows(args[i], N, Hkv, 1).unsqueeze(3).expand(-1, -1, -1, n_hblocks, -1)
                    .reshape(-1) for i in (5, 6)]
            _add_partials(parts, *rows, grads, B * N * Hkv)

    def launch(blocks):
        grads = [torch.zeros(k1.shape, device=q.device, dtype=torch.float32) for _ in range(4)]
        n_hblocks = triton.cdiv(G, blocks[1])
        chunks = (_deterministic_chunks(N, B * Hkv * n_hblocks, KA, KB, D) if deterministic
                  else [(0, N)])
        for n0, n1 in chunks:
            run(blocks, n0, n1, grads)
        return (dq, *grads)

    key = ("topk_packed_bwd", q.device, q.dtype, D, min(G, 64), min(KA, 64))
    return launch_with_fallback(key, _packed_bwd_candidates(q, G, KA), launch)


def _backward_checked(do, q, k1, k2, v1, v2, ia, ib, o, lse, scale, packed=False,
                      deterministic=False):
    """:func:`_backward`, with NaN and infinity kept where they belong.

    A query is poisoned when its ``q`` or ``do`` row, or a row it selected, is not finite. The
    kernel then runs on inputs with those rows zeroed (and ``lse = +inf`` for the poisoned
    queries, so their weights are exact zeros), and NaN is put back on ``dq`` of the poisoned
    queries and on every key/value row they selected; every other gradient is exact. Without a
    non-finite input this costs one check (a device-to-host sync).

    With ``packed``, ``ia``, ``ib`` are the group-level selections ``[B, N, Hkv, k]`` and the
    head-packed backward runs (:func:`_packed_backward`); else the per-row one on
    ``[B, N, Hq, k]`` selections. ``deterministic`` takes the partial-buffer path.
    """
    kernels = _packed_backward if packed else _backward

    def backward(*args):
        return kernels(*args, deterministic=deterministic)

    rows = nonfinite_rows(do, q, k1, k2, v1, v2)  # [B, N, H] each
    if rows is None:
        return backward(do, q, k1, k2, v1, v2, ia, ib, o, lse, scale)
    bad_do, bad_q, bad_k1, bad_k2, bad_v1, bad_v2 = rows
    B, N, Hq, _ = q.shape
    G = Hq // k1.shape[2]
    kernel_ia, kernel_ib = ia, ib
    if packed:  # the bookkeeping below reads one selection per query head
        ia, ib = (t.repeat_interleave(G, dim=2) for t in (ia, ib))

    def selected_bad(bad_kv, idx):  # [B, N, Hq]: does the query select a bad row?
        bad = bad_kv.repeat_interleave(G, dim=2)[..., None].expand(*idx.shape)
        return (torch.gather(bad, 1, idx.clamp(min=0).long()) & (idx >= 0)).any(-1)

    poisoned = bad_q | bad_do | selected_bad(bad_k1 | bad_v1, ia) | selected_bad(bad_k2 | bad_v2, ib)

    def read_by_poisoned(idx):  # [B, N, Hkv]: rows a poisoned query selected
        out = torch.zeros_like(bad_k1)
        b, i, h, slot = (poisoned[..., None] & (idx >= 0)).nonzero(as_tuple=True)
        out[b, idx[b, i, h, slot].long(), h // G] = True
        return out

    read1, read2 = read_by_poisoned(ia), read_by_poisoned(ib)

    grads = backward(zero_rows(do, poisoned), zero_rows(q, bad_q), zero_rows(k1, bad_k1),
                     zero_rows(k2, bad_k2), zero_rows(v1, bad_v1), zero_rows(v2, bad_v2), kernel_ia,
                     kernel_ib, zero_rows(o, poisoned), lse.masked_fill(poisoned, float("inf")), scale)
    return list(nan_rows(grads, (poisoned, read1, read2, read1, read2)))


class _TopkFunction(torch.autograd.Function):
    """Autograd of the top-k kernels; reached only through the checked public function.

    ``apply(q, k1, k2, v1, v2, ia, ib, scale, packed, deterministic)`` with int32 contiguous
    indices already
    validated by :func:`kernel_index`: ``[B, N, Hq, k]`` for the per-row kernel, the group-level
    ``[B, N, Hkv, k]`` with ``packed`` (the head-packed forward). Both forwards write the
    log-sum-exp as ``[B, N, Hq]``, the layout the backward reads.
    """

    @staticmethod
    def forward(ctx, q, k1, k2, v1, v2, ia, ib, scale, packed, deterministic):
        dtype = q.dtype
        xs = [t.contiguous() for t in (q, k1, k2, v1, v2)]
        if interpreting():
            xs = [t.float() for t in xs]  # the interpreter miscomputes bf16 dots
        o, lse = (_packed_forward if packed else _forward)(*xs, ia, ib, scale)
        ctx.save_for_backward(*xs, ia, ib, o, lse)
        ctx.scale, ctx.packed, ctx.deterministic = scale, packed, deterministic
        ctx.dtypes = [t.dtype for t in (q, k1, k2, v1, v2)]
        return o.to(dtype)

    @staticmethod
    def backward(ctx, do):
        if torch.is_grad_enabled():
            # create_graph=True: the gradients would carry no graph back to q, k, v, and a second
            # derivative (a gradient penalty, say) would silently miss this term. Refuse instead.
            raise RuntimeError("the top-k Triton kernels have no second derivative (create_graph=True); "
                               "use simplex_lib.ops.topk.reference.topk_two_simplicial_attention")
        q, k1, k2, v1, v2, ia, ib, o, lse = ctx.saved_tensors
        do = do.contiguous().to(q.dtype)
        grads = _backward_checked(do, q, k1, k2, v1, v2, ia, ib, o, lse, ctx.scale, ctx.packed,
                                  ctx.deterministic)
        grads = [g.to(dt) for g, dt in zip(grads, ctx.dtypes)]
        return (*grads, None, None, None, None, None)


def kernel_index(name: str, idx, B: int, N: int, Hq: int, Hkv: int, device, *,
                 shared: bool = False) -> torch.Tensor:
    """A selection as the kernels read it: validated by :func:`simplex_lib.masks.check_topk_index`
    (any integer dtype and layout, as ``previous_layer_topk`` returns it), on ``q``'s device,
    as an int32 contiguous ``[B, N, Hq, k]`` tensor; with ``shared`` (a selection given with
    1 or ``Hkv`` heads) the group-level ``[B, N, Hkv, k]`` the head-packed kernel reads.
    """
    if isinstance(idx, torch.Tensor) and idx.device != torch.device(device):
        raise ValueError(f"{name} is on {idx.device} but q is on {device}")
    heads = Hkv if shared else Hq
    full = check_topk_index(name, idx, batch=B, seq=N, heads=heads, kv_heads=Hkv)
    return full.to(torch.int32).contiguous()


def topk_kernel_choice() -> str:
    """Which forward :func:`topk_two_simplicial_attention_triton` runs (:data:`TOPK_KERNELS`):
    ``$SIMPLEX_TOPK_KERNEL``, for measuring both kernels on one shape, else ``"auto"``
    (:func:`topk_dispatch`'s rule).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If the variable names no kernel.
    """
    return env_choice("SIMPLEX_TOPK_KERNEL", TOPK_KERNELS, "auto")


def topk_dispatch(idx_heads: int, idx2_heads: int | None, n_heads: int, n_kv_heads: int,
                  choice: str | None = None) -> str:
    """The forward kernel for a selection: ``"packed"`` or ``"row"``.

    The head-packed kernel needs one selection per KV group (``idx`` and ``idx2`` given with 1
    or ``Hkv`` heads): all the group's query heads then gather the same rows. ``"auto"`` takes
    it when, in addition, the group has at least :data:`PACK_MIN_GROUP` query heads; otherwise
    (per-head selections, small groups) the per-row kernel, one program per query row.

    Parameters
    ----------
    idx_heads : int
        Heads of ``idx`` (its third dimension).
    idx2_heads : int or None
        Heads of ``idx2``; None when ``idx2`` is not given (the shared ``idx``).
    n_heads, n_kv_heads : int
        Query heads ``Hq`` and key/value heads ``Hkv``.
    choice : str, optional
        One of :data:`TOPK_KERNELS`; default :func:`topk_kernel_choice`.

    Returns
    -------
    str
        ``"packed"`` or ``"row"``.

    Raises
    ------
    ValueError
        If ``choice`` is unknown, or ``"packed"`` for selections not shared by the KV groups.

    Examples
    --------
    >>> topk_dispatch(1, None, 64, 1, "auto"), topk_dispatch(64, None, 64, 1, "auto")
    ('packed', 'row')
    >>> topk_dispatch(2, 2, 8, 2, "auto")  # shared, but a group of 4 heads
    'row'
    """
    choice = topk_kernel_choice() if choice is None else choice
    if choice not in TOPK_KERNELS:
        raise ValueError(f"choice must be one of {TOPK_KERNELS}, got {choice!r}")
    heads = (idx_heads, idx_heads if idx2_heads is None else idx2_heads)
    shared = all(h in (1, n_kv_heads) for h in heads)
    if choice == "packed" and not shared:
        raise ValueError(f"the head-packed top-k kernel (SIMPLEX_TOPK_KERNEL=packed) needs selections shared "
                         f"by each KV group (1 or {n_kv_heads} heads), got idx/idx2 with {heads} heads")
    if choice == "row":
        return "row"
    return "packed" if shared and (choice == "packed" or n_heads // n_kv_heads >= PACK_MIN_GROUP) else "row"


def topk_two_simplicial_attention_triton(q, k1, k2, v1, v2, idx, *, idx2=None, scale=None,
                                         deterministic: bool = False):
    """Top-k 2-simplicial attention with Triton kernels (forward and backward).

    Query ``(b, i, h)`` attends to the pairs of its selected rows ``idx[b, i, h]`` of K1/V1 and
    ``idx2[b, i, h]`` of K2/V2 (default: the same selection); ``-1`` marks an empty slot and a
    query with no pair outputs zeros. Same semantics as the masked reference
    ``simplex_lib.ops.topk.reference.topk_two_simplicial_attention``.

    Selections given with 1 or ``Hkv`` heads are shared by each KV group; with at least
    :data:`PACK_MIN_GROUP` query heads per KV head they run the head-packed kernels (one program
    per position and block of a group's heads), otherwise one program per query row
    (:func:`topk_dispatch`; ``$SIMPLEX_TOPK_KERNEL`` forces either). Both compute the same
    function.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``, float16, bfloat16 or float32
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]`` with ``Hq % Hkv == 0``, ``q``'s dtype and device
    idx : integer Tensor ``[B or 1, N, H, kA]``
        Selected positions for K1/V1 (see :func:`simplex_lib.masks.check_topk_index`).
    idx2 : integer Tensor ``[B or 1, N, H, kB]``, optional
        Selection for K2/V2; default ``idx``.
    scale : float, optional
        Logit scale, ``1/sqrt(D)`` by default; must be finite.
    deterministic : bool, default False
        Bitwise-identical gradients on every run. By default the key/value gradients are summed
        with fp32 atomic adds (a key's gradient gathers over every query that selected it, an
        arbitrary set), whose order, and so whose last bits, vary from run to run. With
        ``deterministic=True`` every program writes its own partial rows instead and a second
        kernel adds each key's rows in a fixed order (``_slot_sums``), in chunks of positions
        whose partial buffers stay under :data:`DETERMINISTIC_CHUNK_BYTES`: more memory traffic,
        and extra memory up to that bound.

    Returns
    -------
    Tensor ``[B, N, Hq, D]`` in ``q``'s dtype, differentiable once in ``q, k1, k2, v1, v2`` (a
    second derivative raises). Extra memory: ``O(B * N * Hq)`` (the log-sum-exp), the int32
    selections (``[B, N, Hkv, k]`` for the head-packed kernels, ``[B, N, Hq, k]`` for the
    per-row ones) plus fp32 key/value gradient buffers (and, with ``deterministic``, the partial
    buffers above). An empty batch or sequence gives an empty result.

    Raises
    ------
    ValueError
        Naming the argument: shapes, heads, dtypes, devices, scale, the index tensors or
        ``deterministic`` (a bool).

    Examples
    --------
    >>> import torch
    >>> from simplex_lib.selection import previous_layer_topk
    >>> x = torch.randn(1, 6, 2, 16)
    >>> idx = previous_layer_topk(x, x, 3)
    >>> topk_two_simplicial_attention_triton(x, x, x, x, x, idx).shape  # doctest: +SKIP
    torch.Size([1, 6, 2, 16])
    """
    named = {"k1": k1, "k2": k2, "v1": v1, "v2": v2}
    group = check_qkv(q, named)
    B, N, Hq, D = q.shape
    Hkv = Hq // group
    check_kernel_inputs(q, named, fallback="simplex_lib.ops.topk.reference.topk_two_simplicial_attention")
    heads = [t.shape[2] if isinstance(t, torch.Tensor) and t.dim() == 4 else None for t in (idx, idx2)]
    packed = False
    if heads[0] is not None and (idx2 is None or heads[1] is not None):
        packed = topk_dispatch(heads[0], heads[1], Hq, Hkv) == "packed"
    ia = kernel_index("idx", idx, B, N, Hq, Hkv, q.device, shared=packed)
    ib = ia if idx2 is None else kernel_index("idx2", idx2, B, N, Hq, Hkv, q.device, shared=packed)
    s = check_scale(scale, D)
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
    if q.numel() == 0:
        # keep the graph: gradients of an empty result are empty zeros
        return q * 0.0 + sum(t.sum() for t in named.values()) * 0.0
    return _TopkFunction.apply(q, k1, k2, v1, v2, ia, ib, s, packed, deterministic)
