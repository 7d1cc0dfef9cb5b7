"""Backward kernels of sliding-window 2-simplicial attention.

With ``s = scale * sum_l q_l k1_jl k2_kl``, ``P = softmax_(j,k)(s)`` and ``o = sum P v1_j * v2_k``:

- ``dP_ijk = sum_d do_id v1_jd v2_kd`` and ``dS = P * (dP - Delta_i)`` with
  ``Delta_i = sum_d do_id o_id`` (the softmax Jacobian, eqs. 12-13 of Roy et al.);
- ``dq_i  = scale * sum_jk dS_ijk k1_j * k2_k``      (reduced over the two windows),
- ``dk1_j = scale * sum_ik dS_ijk q_i * k2_k``, ``dv1_j = sum_ik P_ijk do_i * v2_k``,
- ``dk2_k``, ``dv2_k`` the same with the two key sets swapped.

The backward is deterministic and uses no atomics. ``Delta`` comes from a small Triton kernel
(``_bwd_delta_kernel``), then, with the long window ``w1 >= w2`` (the wrapper swaps the two key
sets otherwise):

1. ``_bwd_kv_kernel`` for ``(dk1, dv1)``: key-owned; a program keeps a tile of ``BLOCK_N`` rows
   of the long window in registers and visits every query (all heads of its group, so the GQA
   sum stays in registers) and every ``k`` that sees them.
2. ``_bwd_ring_kernel`` for ``(dq, dk2, dv2)`` when the query heads of one position fill a row
   block (GQA ratio >= ``BLOCK_M``) and ``next_pow2(w2) * D`` fits in registers: a program owns
   ``T`` consecutive positions and keeps the short window as a ring of ``R = next_pow2(w2)``
   slots (the ``k2``/``v2`` rows and their ``dk2``/``dv2`` accumulators), flushing a slot when
   its key leaves the window. Keys at a chunk edge belong to two neighbouring programs: even
   chunks run in a first launch and odd chunks in a second, both adding into a zeroed fp32
   buffer in a fixed order (the two-stage idea of the paper's Algorithm 2).
3. Otherwise (small GQA ratio, or a large ``w2 * D``): ``_bwd_dq_kernel`` (query-owned, the
   forward's tiling) and ``_bwd_kv_kernel`` once more with the two key sets swapped.

``P`` is recomputed from the saved base-2 log-sum-exp in each launch; without atomics every
owner recomputes ``S`` and ``dP``, which is why the fast path costs about ten GEMM passes where the
2.5x FLOP convention counts five (``benchmarks/NOTES.md``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import bwd_config, interpreting, row_tiling
from .forward import LOG2E


@triton.jit
def _bwd_dq_steps(dq, qs, do, lse, delta, k1t, v1t, K2g, V2g, stride_kn, klo, khi,
                  offs_j, pos, lo1, offs_d, W1, W2,
                  MASK: tl.constexpr, ONE_POS: tl.constexpr, PREC: tl.constexpr):
    """Steps over single short-window rows ``k`` for one long-window tile (see the dq kernel)."""
    DT = k1t.dtype
    for k in range(klo, khi):
        k2r = tl.load(K2g + k * stride_kn + offs_d).to(tl.float32)
        v2r = tl.load(V2g + k * stride_kn + offs_d).to(tl.float32)
        a = (qs * k2r[None, :]).to(DT)  # rounded exactly as in the forward
        s = tl.dot(a, tl.trans(k1t), input_precision=PREC) - lse[:, None]
        if MASK:
            if ONE_POS:
                s = tl.where((offs_j >= lo1)[None, :], s, float("-inf"))
            else:
                ok = (offs_j[None, :] > pos[:, None] - W1) & (offs_j[None, :] <= pos[:, None])
                ok = ok & (offs_j >= 0)[None, :] & ((k > pos - W2) & (k <= pos))[:, None]
                s = tl.where(ok, s, float("-inf"))
        p = tl.math.exp2(s)
        dov = (do * v2r[None, :]).to(DT)
        dp = tl.dot(dov, tl.trans(v1t), input_precision=PREC)
        ds = (p * (dp - delta[:, None])).to(DT)
        x = tl.dot(ds, k1t, input_precision=PREC)  # [M, D]: sum_j dS_ijk k1_j
        dq += x * k2r[None, :]
    return dq


@triton.jit
def _bwd_dq_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ,
                   stride_qb, stride_qn, stride_qh,
                   stride_kb, stride_kn, stride_kh,
                   N, Hq, Hkv, G, W1, W2, qk_scale, scale, n_hblocks,
                   HEAD_DIM: tl.constexpr, GH: tl.constexpr, POS: tl.constexpr,
                   BLOCK_N: tl.constexpr, PREC: tl.constexpr):
    """Gradient of the queries.

    Tiling: as the forward: a program owns ``GH * POS`` query rows (heads x positions), walks
    the long window in ``BLOCK_N`` tiles and the short window one row ``k`` at a time.
    One program computes ``dq`` for its rows: per step it recomputes ``P`` (one GEMM, the saved
    LSE), ``dP = (do * v2_k) @ v1^T`` (one GEMM) and ``(dS @ k1) * k2_k`` (one GEMM).
    FLOPs: ``6 * B * Hq * N * D * w1 * w2`` on tensor cores.
    """
    BLOCK_M: tl.constexpr = GH * POS
    pid = tl.program_id(0)
    bg = tl.program_id(1)
    b = bg // Hkv
    g = bg % Hkv
    i0 = (pid // n_hblocks) * POS
    hb = pid % n_hblocks

    r = tl.arange(0, BLOCK_M)
    hg = hb * GH + r % GH
    pos = i0 + r // GH
    row_ok = (hg < G) & (pos < N)
    h = g * G + hg
    offs_d = tl.arange(0, HEAD_DIM)
    row_ptrs = b * stride_qb + pos[:, None] * stride_qn + h[:, None] * stride_qh + offs_d[None, :]
    qs = tl.load(Q + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32) * qk_scale
    do = tl.load(DO + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
    # Padded rows get LSE = +inf, hence P = 0 and no contribution anywhere.
    lse = tl.load(LSE + (b * Hq + h) * N + pos, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + (b * Hq + h) * N + pos, mask=row_ok, other=0.0)

    kv_off = b * stride_kb + g * stride_kh
    hi = tl.minimum(i0 + POS, N)
    lo1 = tl.maximum(i0 - W1 + 1, 0)
    klo = tl.maximum(i0 - W2 + 1, 0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    offs_n = tl.arange(0, BLOCK_N)
    n_tiles = (hi - lo1 + BLOCK_N - 1) // BLOCK_N
    if POS == 1:
        n_full = (hi - lo1) // BLOCK_N
    else:
        n_full = 0
    for t in range(0, n_tiles):
        offs_j = hi - (t + 1) * BLOCK_N + offs_n
        kv_ptrs = kv_off + offs_j[:, None] * stride_kn + offs_d[None, :]
        jm = (offs_j >= 0)[:, None]
        k1t = tl.load(K1 + kv_ptrs, mask=jm, other=0.0)
        v1t = tl.load(V1 + kv_ptrs, mask=jm, other=0.0)
        if t < n_full:
            dq = _bwd_dq_steps(dq, qs, do, lse, delta, k1t, v1t, K2 + kv_off, V2 + kv_off,
                               stride_kn, klo, hi, offs_j, pos, lo1, offs_d, W1, W2,
                               False, POS == 1, PREC)
        else:
            dq = _bwd_dq_steps(dq, qs, do, lse, delta, k1t, v1t, K2 + kv_off, V2 + kv_off,
                               stride_kn, klo, hi, offs_j, pos, lo1, offs_d, W1, W2,
                               True, POS == 1, PREC)
    tl.store(DQ + row_ptrs, (dq * scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _bwd_kv_steps(dk, dv, kat, vat, qs, do, lse, delta, KBg, VBg, stride_kn, blo, bhi,
                  offs_d, a_vis, pos, WB, MASK: tl.constexpr, PREC: tl.constexpr):
    """Steps over single rows ``b`` of set B for one block of query rows (see the kv kernel)."""
    DT = kat.dtype
    for kb in range(blo, bhi):
        kbr = tl.load(KBg + kb * stride_kn + offs_d).to(tl.float32)
        vbr = tl.load(VBg + kb * stride_kn + offs_d).to(tl.float32)
        a = (qs * kbr[None, :]).to(DT)
        dov = (do * vbr[None, :]).to(DT)
        st = tl.dot(kat, tl.trans(a), input_precision=PREC) - lse[None, :]  # [BLOCK_A, M]
        if MASK:
            ok = a_vis & ((kb > pos - WB) & (kb <= pos))[None, :]
            st = tl.where(ok, st, float("-inf"))
        pt = tl.math.exp2(st)
        dpt = tl.dot(vat, tl.trans(dov), input_precision=PREC)
        dst = pt * (dpt - delta[None, :])
        dv += tl.dot(pt.to(DT), dov, input_precision=PREC)
        dk += tl.dot(dst.to(DT), a, input_precision=PREC)
    return dk, dv


@triton.jit
def _bwd_kv_kernel(Q, DO, LSE, DELTA, KA, VA, KB, VB, DKA, DVA,
                   stride_qb, stride_qn, stride_qh,
                   stride_kb, stride_kn, stride_kh,
                   N, Hq, Hkv, G, WA, WB, qk_scale, n_hblocks,
                   HEAD_DIM: tl.constexpr, GH: tl.constexpr, POS: tl.constexpr,
                   BLOCK_A: tl.constexpr, PREC: tl.constexpr):
    """Gradients of one key/value set ``A`` (window ``WA``); ``B`` is the other set.

    Tiling: a program owns ``BLOCK_A`` consecutive positions ``a`` of set ``A`` for one
    (batch, KV head) and keeps ``dkA``, ``dvA`` for them in registers. It visits every query
    position ``i`` in ``[a0, a0 + BLOCK_A - 1 + WA)`` in blocks of ``GH * POS`` rows (all heads of
    the KV group, so the GQA sum happens here) and, for each, the rows ``b`` of set ``B`` in its
    window one at a time. Per step: ``S^T = kA @ (q * kB_b)^T`` and ``dP^T = vA @ (do * vB_b)^T``
    (recomputation, two GEMMs), then ``dvA += P^T @ (do * vB_b)`` and
    ``dkA += dS^T @ (q * kB_b)`` (two GEMMs). With one position per row block, queries that see
    the whole tile skip the mask.
    FLOPs: ``8 * B * Hq * N * D * wA * wB`` on tensor cores, times the edge overhead
    ``(BLOCK_A + wA - 1) / wA`` of visiting queries that see only part of the tile.
    """
    BLOCK_M: tl.constexpr = GH * POS
    pid = tl.program_id(0)
    bg = tl.program_id(1)
    b = bg // Hkv
    g = bg % Hkv
    a0 = pid * BLOCK_A
    offs_a = a0 + tl.arange(0, BLOCK_A)
    offs_d = tl.arange(0, HEAD_DIM)
    kv_off = b * stride_kb + g * stride_kh
    a_ptrs = kv_off + offs_a[:, None] * stride_kn + offs_d[None, :]
    a_ok = (offs_a < N)[:, None]
    kat = tl.load(KA + a_ptrs, mask=a_ok, other=0.0)
    vat = tl.load(VA + a_ptrs, mask=a_ok, other=0.0)
    dk = tl.zeros([BLOCK_A, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_A, HEAD_DIM], tl.float32)

    i_end = tl.minimum(N, a0 + BLOCK_A - 1 + WA)  # one past the last query that sees the tile
    r = tl.arange(0, BLOCK_M)
    for hb in range(0, n_hblocks):
        hg = hb * GH + r % GH
        h = g * G + hg
        for pb in range(a0 // POS, (i_end + POS - 1) // POS):
            pos = pb * POS + r // GH
            row_ok = (hg < G) & (pos < N)
            row_ptrs = (b * stride_qb + pos[:, None] * stride_qn + h[:, None] * stride_qh
                        + offs_d[None, :])
            qs = tl.load(Q + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32) * qk_scale
            do = tl.load(DO + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
            lse = tl.load(LSE + (b * Hq + h) * N + pos, mask=row_ok, other=float("inf"))
            delta = tl.load(DELTA + (b * Hq + h) * N + pos, mask=row_ok, other=0.0)
            a_vis = (offs_a[:, None] <= pos[None, :]) & (offs_a[:, None] > pos[None, :] - WA)
            blo = tl.maximum(pb * POS - WB + 1, 0)
            bhi = tl.minimum(pb * POS + POS, N)
            # One position per block: the B loop bounds are exact, and if the query sees the
            # whole A tile there is nothing to mask.
            inside = (POS == 1) & (a0 + BLOCK_A - 1 <= pb) & (a0 > pb - WA)
            if inside:
                dk, dv = _bwd_kv_steps(dk, dv, kat, vat, qs, do, lse, delta, KB + kv_off,
                                       VB + kv_off, stride_kn, blo, bhi, offs_d, a_vis, pos, WB,
                                       False, PREC)
            else:
                dk, dv = _bwd_kv_steps(dk, dv, kat, vat, qs, do, lse, delta, KB + kv_off,
                                       VB + kv_off, stride_kn, blo, bhi, offs_d, a_vis, pos, WB,
                                       True, PREC)
    # `a` carried the factor scale*log2(e); dk wants scale alone.
    tl.store(DKA + a_ptrs, (dk * (1.0 / 1.4426950408889634)).to(DKA.dtype.element_ty), mask=a_ok)
    tl.store(DVA + a_ptrs, dv.to(DVA.dtype.element_ty), mask=a_ok)


@triton.jit
def _bwd_ring_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ, DK2, DV2,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, Hkv, G, W1, W2, qk_scale, scale, n_hblocks, STAGE,
                     HEAD_DIM: tl.constexpr, GH: tl.constexpr, R: tl.constexpr,
                     T: tl.constexpr, JP: tl.constexpr, PREC: tl.constexpr):
    """dq, dk2 and dv2 in one pass over the queries, for one position per row block.

    Tiling: a program owns ``T`` consecutive query positions (``T >= w2 - 1``) of one
    (batch, KV head) and, per position, every head of the group in blocks of ``GH`` rows. The
    short window lives in a ring of ``R >= w2`` slots: slot ``s`` holds key ``k = s (mod R)``, so
    moving to the next query replaces one slot and ``dk2``/``dv2`` for the whole ring stay in
    registers ``[R, D]``. A slot is flushed to memory when its key leaves the window. The long
    window is walked ``JP`` rows ``j`` at a time (``JP * GH`` GEMM rows). Per step: ``S = (q * k1_j) @ k2_ring^T`` and
    ``dP = (do * v1_j) @ v2_ring^T`` (recomputation), then ``dq += (dS @ k2_ring) * k1_j``,
    ``dk2 += dS^T @ (q * k1_j)``, ``dv2 += P^T @ (do * v1_j)``.

    Keys near a chunk edge get contributions from two neighbouring programs. Launching even
    chunks (``STAGE = 0``) then odd chunks (``STAGE = 1``), each adding into a zeroed fp32
    buffer, makes the sum race-free and deterministic with no atomics (the two-stage scheme of
    Roy et al., Algorithm 2). FLOPs: ``10 * B * Hq * N * D * w1 * R`` on tensor cores.
    """
    DT = K1.dtype.element_ty
    c0 = (2 * tl.program_id(0) + STAGE) * T
    if c0 >= N:
        return
    bg = tl.program_id(1)
    b = bg // Hkv
    g = bg % Hkv
    c1 = tl.minimum(c0 + T, N)
    k_first = tl.maximum(c0 - W2 + 1, 0)  # lowest key this program touches
    offs_d = tl.arange(0, HEAD_DIM)
    slots = tl.arange(0, R)
    M: tl.constexpr = JP * GH
    rr = tl.arange(0, M)
    jj = rr // GH  # which of the JP long-window rows of a step this GEMM row belongs to
    kv_off = b * stride_kb + g * stride_kh
    dk2 = tl.zeros([R, HEAD_DIM], tl.float32)
    dv2 = tl.zeros([R, HEAD_DIM], tl.float32)
    for i in range(c0, c1):
        # The slot of key i last held key i - R, which no query from i on can see: flush it.
        s_in = i % R
        k_out = i - R
        sel = (slots == s_in)[:, None]
        out_ptrs = kv_off + k_out * stride_kn + slots[:, None] * 0 + offs_d[None, :]
        fl = sel & (k_out >= k_first)
        tl.store(DK2 + out_ptrs, tl.load(DK2 + out_ptrs, mask=fl, other=0.0) + dk2, mask=fl)
        tl.store(DV2 + out_ptrs, tl.load(DV2 + out_ptrs, mask=fl, other=0.0) + dv2, mask=fl)
        dk2 = tl.where(sel, 0.0, dk2)
        dv2 = tl.where(sel, 0.0, dv2)

        ks = i - ((i - slots + R) % R)  # the key in each slot, in (i - R, i]
        k_ok = (ks > i - W2) & (ks >= 0)
        ring_ptrs = kv_off + ks[:, None] * stride_kn + offs_d[None, :]
        k2r = tl.load(K2 + ring_ptrs, mask=k_ok[:, None], other=0.0)
        v2r = tl.load(V2 + ring_ptrs, mask=k_ok[:, None], other=0.0)
        jlo = tl.maximum(i - W1 + 1, 0)
        for hb in range(0, n_hblocks):
            hg = hb * GH + rr % GH
            row_ok = hg < G
            h = g * G + hg
            row_ptrs = b * stride_qb + i * stride_qn + h[:, None] * stride_qh + offs_d[None, :]
            qs = tl.load(Q + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32) * qk_scale
            do = tl.load(DO + row_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32)
            lse = tl.load(LSE + (b * Hq + h) * N + i, mask=row_ok, other=float("inf"))
            delta = tl.load(DELTA + (b * Hq + h) * N + i, mask=row_ok, other=0.0)
            dq = tl.zeros([M, HEAD_DIM], tl.float32)
            for j in range(jlo, i + 1, JP):
                if JP == 1:
                    k1r = tl.load(K1 + kv_off + j * stride_kn + offs_d).to(tl.float32)[None, :]
                    v1r = tl.load(V1 + kv_off + j * stride_kn + offs_d).to(tl.float32)[None, :]
                    ok = k_ok[None, :]
                else:
                    jr = j + jj
                    jr_ptrs = kv_off + jr[:, None] * stride_kn + offs_d[None, :]
                    k1r = tl.load(K1 + jr_ptrs, mask=(jr <= i)[:, None], other=0.0).to(tl.float32)
                    v1r = tl.load(V1 + jr_ptrs, mask=(jr <= i)[:, None], other=0.0).to(tl.float32)
                    ok = k_ok[None, :] & (jr <= i)[:, None]
                a = (qs * k1r).to(DT)
                s = tl.dot(a, tl.trans(k2r), input_precision=PREC) - lse[:, None]  # [M, R]
                p = tl.math.exp2(tl.where(ok, s, float("-inf")))
                dov = (do * v1r).to(DT)
                dp = tl.dot(dov, tl.trans(v2r), input_precision=PREC)
                ds = (p * (dp - delta[:, None])).to(DT)
                dq += tl.dot(ds, k2r, input_precision=PREC) * k1r
                dk2 += tl.dot(tl.trans(ds), a, input_precision=PREC)
                dv2 += tl.dot(tl.trans(p.to(DT)), dov, input_precision=PREC)
            dq = dq * scale
            if JP == 1:
                tl.store(DQ + row_ptrs, dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])
            else:
                # Rows of the JP groups hold partial sums for the same heads: add them.
                dqh = tl.sum(tl.reshape(dq, [JP, GH, HEAD_DIM]), 0)
                hg1 = hb * GH + tl.arange(0, GH)
                ptr1 = (b * stride_qb + i * stride_qn + (g * G + hg1)[:, None] * stride_qh
                        + offs_d[None, :])
                tl.store(DQ + ptr1, dqh.to(DQ.dtype.element_ty), mask=(hg1 < G)[:, None])
    # Flush every slot still holding a key this program touched.
    i_last = c1 - 1
    ks = i_last - ((i_last - slots + R) % R)
    fl = ((ks >= k_first) & (ks > i_last - R))[:, None]
    out_ptrs = kv_off + ks[:, None] * stride_kn + offs_d[None, :]
    tl.store(DK2 + out_ptrs, tl.load(DK2 + out_ptrs, mask=fl, other=0.0) + dk2, mask=fl)
    tl.store(DV2 + out_ptrs, tl.load(DV2 + out_ptrs, mask=fl, other=0.0) + dv2, mask=fl)


@triton.jit
def _bwd_delta_kernel(O, DO, DELTA, n_rows, N, Hq, HEAD_DIM: tl.constexpr, BLOCK_R: tl.constexpr):
    """``Delta[b, h, n] = sum_d o[b, n, h, d] * do[b, n, h, d]`` in fp32 (one row per (b, n, h)).

    Tiling: ``BLOCK_R`` contiguous rows of the ``[B*N*Hq, D]`` view per program; reads o and do
    once and writes the ``[B, Hq, N]`` layout of the LSE, with no fp32 copy of o or do.
    FLOPs: ``2 * B * N * Hq * D`` on CUDA cores (memory-bound: reads o and do once).
    """
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    ok = rows < n_rows
    offs = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    o = tl.load(O + offs, mask=ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + offs, mask=ok[:, None], other=0.0).to(tl.float32)
    h = rows % Hq
    n = (rows // Hq) % N
    b = rows // (Hq * N)
    tl.store(DELTA + (b * Hq + h) * N + n, tl.sum(o * do, 1), mask=ok)


def compute_delta(o, do):
    """``[B, Hq, N]`` fp32 row sums of ``o * do`` (contiguous ``[B, N, Hq, D]`` inputs)."""
    B, N, Hq, D = o.shape
    delta = torch.empty((B, Hq, N), device=o.device, dtype=torch.float32)
    n_rows = B * N * Hq
    block_r = 16 if interpreting() else 64
    _bwd_delta_kernel[(triton.cdiv(n_rows, block_r),)](o, do, delta, n_rows, N, Hq,
                                                        HEAD_DIM=D, BLOCK_R=block_r)
    return delta


def _precision(q):
    return "ieee" if (q.dtype == torch.float32 and not interpreting()) else "tf32"


def launch_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg):
    """dq from the query-owned kernel (forward tiling)."""
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    dq = torch.empty_like(q)
    grid = (triton.cdiv(N, rt.POS) * rt.n_hblocks, B * Hkv)
    _bwd_dq_kernel[grid](
        q, k1, k2, v1, v2, do, lse, delta, dq,
        q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, Hkv, G, w1, w2, scale * LOG2E, scale, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N, PREC=_precision(q),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return dq


def launch_kv(q, ka, va, kb, vb, do, lse, delta, wa, wb, scale, cfg, block_a=None):
    """(dkA, dvA) from the key-owned kernel for key set A (window wa); B is the other set."""
    B, N, Hq, D = q.shape
    Hkv = ka.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    block_a = block_a or cfg.BLOCK_A
    dka, dva = torch.empty_like(ka), torch.empty_like(va)
    grid = (triton.cdiv(N, block_a), B * Hkv)
    _bwd_kv_kernel[grid](
        q, do, lse, delta, ka, va, kb, vb, dka, dva,
        q.stride(0), q.stride(1), q.stride(2), ka.stride(0), ka.stride(1), ka.stride(2),
        N, Hq, Hkv, G, wa, wb, scale * LOG2E, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_A=block_a, PREC=_precision(q),
        num_warps=cfg.kv_warps or cfg.num_warps, num_stages=cfg.kv_stages or cfg.num_stages,
    )
    return dka, dva


def ring_size(w2: int) -> int:
    """Slots of the short-window ring: a power of two >= w2 (and >= 16 for tl.dot)."""
    return max(16, triton.next_power_of_2(w2))


def use_ring(q, k1, w2, cfg) -> bool:
    """The ring kernel needs one position per row block and a ring that fits in registers."""
    G = q.shape[2] // k1.shape[2]
    return row_tiling(G, cfg.BLOCK_M).POS == 1 and ring_size(w2) * q.shape[-1] <= cfg.RING_MAX


def launch_ring(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg):
    """(dq, dk2, dv2) from the ring kernel: two launches (even, then odd chunks)."""
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    rt = row_tiling(G, cfg.BLOCK_M)
    R = ring_size(w2)
    T = R  # chunk length >= w2 - 1 keeps even chunks' key ranges disjoint
    dq = torch.empty_like(q)
    dk2 = torch.zeros(k2.shape, device=q.device, dtype=torch.float32)
    dv2 = torch.zeros(v2.shape, device=q.device, dtype=torch.float32)
    n_chunks = triton.cdiv(N, T)
    grid = (triton.cdiv(n_chunks, 2), B * Hkv)
    for stage in (0, 1):
        _bwd_ring_kernel[grid](
            q, k1, k2, v1, v2, do, lse, delta, dq, dk2, dv2,
            q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
            N, Hq, Hkv, G, w1, w2, scale * LOG2E, scale, rt.n_hblocks, stage,
            HEAD_DIM=D, GH=rt.GH, R=R, T=T, JP=cfg.ring_jp, PREC=_precision(q),
            num_warps=cfg.ring_warps or cfg.num_warps, num_stages=cfg.num_stages,
        )
    # dk2 accumulated the factor scale*log2(e) of q; dk2 wants scale alone.
    return dq, (dk2 * (1.0 / LOG2E)).to(k2.dtype), dv2.to(v2.dtype)


def backward(do, q, k1, k2, v1, v2, o, lse, w1: int, w2: int, scale: float, cfg=None):
    """All five gradients, on contiguous ``[B, N, H, D]`` tensors with ``w1 >= w2``.

    Returns ``(dq, dk1, dk2, dv1, dv2)`` in the dtypes of the inputs (GQA gradients summed over
    the query heads of each group). Each gradient row is written by one program (the ring
    kernel's shared edge keys by two programs in two ordered launches): deterministic, no atomics.
    """
    D = q.shape[-1]
    G = q.shape[2] // k1.shape[2]
    cfg = cfg or bwd_config(D, G, w1, w2)
    do, o = do.contiguous(), o.contiguous()
    delta = compute_delta(o, do)  # Delta_i = sum_d do_id o_id, laid out like the LSE
    dk1, dv1 = launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2, scale, cfg)
    if use_ring(q, k1, w2, cfg):
        dq, dk2, dv2 = launch_ring(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg)
    else:
        dq = launch_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg)
        dk2, dv2 = launch_kv(q, k2, v2, k1, v1, do, lse, delta, w2, w1, scale, cfg,
                             block_a=cfg.BLOCK_A2)
    return dq, dk1, dk2, dv1, dv2
