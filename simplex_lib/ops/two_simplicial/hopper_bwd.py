"""A Hopper-native backward for ``dq``, ``dk2`` and ``dv2`` of sliding-window 2-simplicial attention,
in Gluon.

:func:`hopper_backward` gives all five gradients: ``dq``, ``dk2`` and ``dv2`` from the kernel here
(:func:`hopper_backward_dq`), ``dk1`` and ``dv1`` from the portable key-tile kernel
(:func:`.backward.launch_kv`). ``two_simplicial_attention`` takes it on sm_90 wherever
:func:`hopper_bwd_supported` accepts the inputs (``interface.kernel_backend``). On an H200 (bf16,
B 2, N 8192, 64 query heads on one KV head, 512 x 32) the kernel takes about a third of the time
of the portable ring kernel it replaces (``results/h200/hopper_bwd_parts.json`` for the ring,
``hopper_bwd_regs.jsonl`` for this kernel). Its GPU tests check it
against float64 autograd; it does not run under the CPU interpreter, where the portable kernels
are the tested implementation (``python tools/sm90.py hopper-bwd`` compiles it for sm_90 on a
CPU and reports registers and spills).

What it covers: the shapes of :func:`.hopper.hopper_forward` (GQA 64, bf16, ``D`` 64 or 128,
contiguous ``[B, N, H, D]``) with ``BLOCK_N = 64`` and ``w2 <= 64``.

Grid and ownership: program ``(i, b * Hkv + g)`` owns the 64 query heads of KV head ``g`` at
position ``i`` (the 64 rows M of every tile), as the forward. It writes their ``dq`` once, and
its share of the ``dk2``/``dv2`` rows of the short window ``k_lo..i`` to its own slots of two
partial buffers, which a second launch adds in a fixed order (``w2`` programs share each key;
``deterministic=False`` adds them with fp32 atomics instead). The long window is walked in tiles ``J`` of ``BLOCK_N``
rows, from the query down; inside a tile, the short-window keys ``k``. Per ``(J, k)``, with
``a_k = q * k2[k]`` and ``b_k = do * v2[k]`` (``[64, D]`` bf16, formed by the consumers, step 0):

0. ``a_k``, ``b_k`` into a shared-memory ring, one step ahead of S;

1. ``S = a_k K1_J^T``, ``dP = b_k V1_J^T`` (``[64, BLOCK_N]``);
2. ``P = exp2(S * scale * log2 e - lse)`` (the operand is ``q * k2``, ``q`` as stored, rounded
   once from fp32 as every forward rounds it), ``dS = P * (dP - delta)`` (the gradient w.r.t. the
   logits ``scale * sum q k1 k2``, so everything downstream carries ``scale``, never
   ``log2(e)``);
3. ``X^T = K1_J^T dS^T`` and ``Y^T = V1_J^T P^T`` (``[D, 64]``: M = D, N = the 64 heads, K =
   ``BLOCK_N``; A = the ``K1``/``V1`` tile in shared memory read transposed, B = ``dS^T``/``P^T``
   from shared memory);
4. ``dq^T += X^T * k2[k][:, None]``, ``dk2[k] += rowsum(X^T * q^T)``, ``dv2[k] += rowsum(Y^T *
   do^T)``: with the heads on the N axis of the accumulator these sums stay inside a warp (each
   thread's own columns, then two shuffles within a quad).

FLOPs: four GEMMs of ``2 * 64 * BLOCK_N * D`` per ``(J, k)``, i.e. ``8 D`` per visible triple
``(h, j, k)``, all on tensor cores; the key-tile kernel adds its own for ``dk1``/``dv1``.

Partitions (``gl.warp_specialize``): three warp groups, 12 warps, launch cap 168 registers, so
the setmaxnreg budget is ``3 * 168 = 504`` a thread summed over the groups.

- Consumer S (the default partition) does steps 1-2 for all 64 heads (both GEMMs issued at
  once, ``a_k`` and ``b_k`` read from shared memory) and hands ``P`` and ``dS``
  (bf16) to the two others through a double-buffered shared-memory ring (a ``ready``/``empty``
  mbarrier pair per buffer and slot, so the readers of ``P`` and of ``dS`` run on their own). It
  also issues the TMA loads of the ``K1``/``V1`` tiles into a ``STAGES``-deep ring, as the
  forward's loader does (from the query down, rows before the sequence zero-filled by the
  per-batch descriptor), one tile ahead; a tile is free once all three groups released it.
- Consumers 0 and 1 do steps 3-4, and step 0 for the next ``(J, k)`` before each (``_operands``:
  ``a^T``/``b^T`` rows ``[D, 64]``, which S reads transposed; a ``ready``/``empty`` pair per slot
  of ``NA`` slots, :func:`operand_slots`). At D 128 each owns half of D: rows
  ``64 p .. 64 p + 63`` of ``X^T``, ``Y^T``, ``dq^T``, of ``a^T``, ``b^T`` and of the
  ``dk2``/``dv2`` rows (A = that column slice of the tile, transposed: M = 64). At D 64 a half
  would be a 32-row wgmma, below the instruction's 64, so consumer 0 takes ``dS`` (``X^T``,
  ``dq``, ``dk2``, ``a``) and consumer 1 takes ``P`` (``Y^T``, ``dv2``, ``b``).

Why the consumers form S's operands: timed alone on an H200 (the other side's work replaced by
the hand-offs), S took most of the kernel's time and the consumers well under half
(``results/h200/hopper_bwd_probe.jsonl``), so S's elementwise work moved to the side with slack.

No separate loader warp: one would add a fourth warp group (13 warps are padded to 16), lower the
launch cap to 128 and leave ``4 * 128 - 24 = 488`` registers for the three groups, where they
need 504 (below). The TMA issue costs S a few scalar registers; it runs at step ``NBUF`` of a
tile, when the slot it refills is certain to be free, so it does not wait (unless the short
window has at most ``NBUF`` keys: then at the tile's last key, and it may).

Register plan (a thread, D 128), as ``tools/sm90.py hopper-bwd`` finds it (wgmma not
serialised): S 152 (the ``S`` and ``dP`` accumulators 32 + 32, ``P`` and ``dS``); consumers 176
each (``dq^T`` half 32, ``q^T`` and ``do^T`` halves 32 + 32 held as fp32 only, ``X^T``
and ``Y^T`` 32 + 32, the operand being formed 32, partly overlapped). Two words, shared-memory
addresses both consumers use, are computed before the partitions start and saved across their
setmaxnreg (``tools/sm90.py`` counts them as 2 spilled; each consumer reloads one with a single
local load in its loop). At D 64 the split is 184 / 168 / 152, no spills. The ``dk2``/``dv2``
rows of the ``w2`` keys live in shared memory (``[W2P, D]`` fp32 each), summed over the ``J``
tiles there and written out at the end.

The ``w2`` rows of ``K2``/``V2`` a program uses are copied to shared memory once, before the
partitions start (``_stages_rows``; not at D 128 with ``w2 > 32``, where they would not fit, and
there every key loads its rows from global memory). Measured on an H200 this changed little
(``results/h200/ncu_hopper_bwd_staged.txt`` against ``ncu_hopper_bwd.txt``): the waits that
dominate the kernel's stall samples are the partitions' mbarrier waits for each other, not
global loads (``benchmarks/NOTES.md``).

Shared memory (D 128, w2 32, 2 stages): the ``K1``/``V1`` ring 64 KB, the ``P``/``dS`` ring
32 KB, the ``a``/``b`` ring 64 KB (32 with one slot, at w2 > 32), ``dk2``/``dv2`` 32 KB (64 at
w2 64), the staged ``K2``/``V2`` rows 16 KB, scratch: 212 KB. A third ``K1``/``V1`` stage fits
only at D 64.
"""

from __future__ import annotations

import math

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier,
                                                               warpgroup_mma, warpgroup_mma_wait)

from .backward import _short_sums_kernel, compute_delta, launch_kv
from .configs import bwd_configs, max_shared_memory
from .hopper import GH, LOG2E, _load_tile, _mma_layout, _program, _tile_ring, hopper_supported

__all__ = ["BWD_BLOCK_N", "MAX_W2", "hopper_backward", "hopper_backward_dq", "hopper_bwd_supported",
           "operand_slots"]

#: Long-window keys per tile (the N of the logits GEMMs, the K of the gradient GEMMs).
BWD_BLOCK_N = 64
#: Largest short window: the per-program ``dk2``/``dv2`` buffers take ``2 * next_pow2(w2) * D * 4``
#: bytes of shared memory (64 KB at D 128).
MAX_W2 = 64
#: setmaxnreg of ``(consumer 0, consumer 1)`` per D; consumer S (the default partition) gets the
#: rest of ``3 * MAXNREG``. The fastest of the splits timed on the H200 without more spills
#: (``results/h200/hopper_bwd_regs.jsonl``).
REGS = {64: (168, 152), 128: (176, 176)}
#: Launch cap: 12 warps share the 64K-register file.
MAXNREG = 168
#: Slots of the P / dS hand-off ring.
NBUF = gl.constexpr(2)


@gluon.constexpr_function
def _stages_rows(W2P, D):
    """Whether the kernel copies the short window's ``K2``/``V2`` rows (``2 W2P D`` bf16) to shared
    memory: everywhere but D 128 at w2 > 32, where the program's buffers would reach 234 KB."""
    return W2P * D <= 32 * 128


@gluon.jit
def _short_row(x_rows, ROWS, k, k_lo, off0, stride_kn, o_d, D0: gl.constexpr, STAGED: gl.constexpr):
    """Key ``k``'s row of ``K2`` or ``V2``, columns ``o_d`` (from ``D0``), bf16: from the
    program's shared-memory copy (slot ``k - k_lo``) where it was staged, else from global memory."""
    if STAGED:
        row = x_rows.index(k - k_lo).slice(D0, o_d.type.shape[0]).load(o_d.type.layout)
    else:
        row = gl.load(ROWS + off0 + k * stride_kn + o_d)
    return row


@gluon.jit
def _row_slots(rows):
    """``rows`` ``[R, D]`` into shared memory as ``R`` slots of ``[D]`` (plain row-major, so the
    2-D layout that takes the store and the 1-D one of a slot address the same bytes)."""
    R: gl.constexpr = rows.type.shape[0]
    D: gl.constexpr = rows.type.shape[1]
    x = gl.allocate_shared_memory(rows.dtype, [R, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]), rows)
    return x._reinterpret(rows.dtype, [R, D], gl.SwizzledSharedLayout(1, 1, 1, [0]))


@gluon.jit
def _scores(args):
    """Consumer S (4 warps): ``P`` and ``dS`` of every ``(J, k)`` for the 64 heads, into the ring,
    and the TMA loads of the ``K1``/``V1`` tiles.

    Per key: once the consumers have put ``a = q * k2[k]`` and ``b = do * v2[k]`` into their ring
    slot (``_operands``), both GEMMs are issued at once with ``a`` and ``b`` read from shared
    memory; ``P``'s ``exp2`` runs under the ``dP`` GEMM, ``P`` is handed over as soon as it
    exists, and ``dS`` once ``dP`` is in.
    """
    (Q, K2, V2, DO, LSE, DELTA, bufs_k1, bufs_v1, ready, empty, p_buf, ds_buf, p_ready, p_empty,
     ds_ready, ds_empty, x_a, x_b, ab_ready, ab_empty, x_dk2, x_dv2, q_row0, kv_row0, col, i, lo1, k_lo,
     n_tiles, stride_kn, lse_row0, N, qk_scale, scale, DQ, DK2, DV2, k1_desc, v1_desc, part0, x_k2s,
     x_v2s) = args
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    BLOCK_N: gl.constexpr = bufs_k1.type.shape[1]
    NB: gl.constexpr = p_buf.type.shape[0]
    NA: gl.constexpr = x_a.type.shape[0]
    s_layout: gl.constexpr = _mma_layout(BLOCK_N, 4)  # [GH, BLOCK_N] logits

    o_rs = gl.arange(0, GH, gl.SliceLayout(1, s_layout))
    lse = gl.load(LSE + lse_row0 + o_rs * N)  # [GH] base 2
    delta = gl.load(DELTA + lse_row0 + o_rs * N)  # [GH]
    o_n = gl.arange(0, BLOCK_N, gl.SliceLayout(0, s_layout))
    for t0 in gl.static_range(STAGES - 1):  # the first tiles; the others are issued in the loop
        if t0 < n_tiles:
            _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t0, i, col)
    # tile t + STAGES - 1 goes into the slot of tile t - 1, issued at step NB of tile t: S has then
    # waited for the readers of step 0 of tile t, who release tile t - 1 before it, so the wait in
    # _load_tile does not block (with fewer than NB + 1 keys: at the last key, and it may)
    k_issue = gl.minimum(k_lo + NB, i)
    c = 0  # (J, k) steps so far: the rings' slots and phases
    for t in range(n_tiles):
        s = t % STAGES
        mbarrier.wait(ready.index(s), (t // STAGES) & 1)
        k1t = bufs_k1.index(s).permute((1, 0))  # [D, BLOCK_N]: B of S = a K1^T
        v1t = bufs_v1.index(s).permute((1, 0))  # [D, BLOCK_N]
        # rows of the tile before the window (only in the first tiles of the sequence, where
        # the descriptor zero-filled them) must not count
        m_vis = (i + 1 - (t + 1) * BLOCK_N + o_n >= lo1)[None, :]  # [1, BLOCK_N]
        # only the lowest tile of a position near the start reaches below the window
        masked = i + 1 - (t + 1) * BLOCK_N < lo1
        for k in range(k_lo, i + 1):
            ra = c % NA
            mbarrier.wait(ab_ready.index(ra), (c // NA) & 1)  # a and b of key k are in
            # [GH, D] each, stored transposed by the consumers: A read MN-major
            s_tok = warpgroup_mma(x_a.index(ra).permute((1, 0)), k1t, gl.zeros([GH, BLOCK_N], gl.float32, s_layout),
                                  use_acc=False, is_async=True)
            dp_tok = warpgroup_mma(x_b.index(ra).permute((1, 0)), v1t,
                                   gl.zeros([GH, BLOCK_N], gl.float32, s_layout), use_acc=False, is_async=True)
            sc = warpgroup_mma_wait(num_outstanding=1, deps=(s_tok, ))
            # base 2, as the forward's softmax step; under dP's GEMM
            if masked:
                p = gl.exp2(gl.where(m_vis, sc * qk_scale - lse[:, None], float("-inf")))
            else:
                p = gl.exp2(sc * qk_scale - lse[:, None])
            r = c % NB
            ph = (c // NB) & 1
            mbarrier.wait(p_empty.index(r), ph ^ 1)  # the slot's last P has been read
            p_buf.index(r).store(p.to(gl.bfloat16))
            fence_async_shared()  # generic-proxy stores, then the consumers' wgmma reads them
            mbarrier.arrive(p_ready.index(r), count=1)
            dp = warpgroup_mma_wait(num_outstanding=0, deps=(dp_tok, ))
            mbarrier.arrive(ab_empty.index(ra), count=1)  # both products have read a and b
            ds = p * (dp - delta[:, None])  # [GH, BLOCK_N]: d/d(logit), without scale
            mbarrier.wait(ds_empty.index(r), ph ^ 1)
            ds_buf.index(r).store(ds.to(gl.bfloat16))
            fence_async_shared()
            mbarrier.arrive(ds_ready.index(r), count=1)
            if k == k_issue:
                if t + STAGES - 1 < n_tiles:
                    _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t + STAGES - 1, i, col)
            c += 1
        mbarrier.arrive(empty.index(s), count=1)


@gluon.jit
def _operands(ring, c, k, q_t, do_t, o_d, D0: gl.constexpr, DO_X: gl.constexpr,
              DO_Y: gl.constexpr, STAGED: gl.constexpr):
    """A consumer's share of step ``c``'s GEMM operands for S (key ``k``), into
    ring slot ``c % NA``: ``a^T = q^T * k2[k]`` where it holds ``q``
    (``DO_X``; ``q`` as stored, rounded once from fp32, as the forward rounds
    its logits' operand, so that ``exp2(S * scale * log2 e - lse)`` is the
    forward's ``P``), and
    ``b^T = do^T * v2[k]`` where it holds ``do``; rows ``D0 ..`` of ``[D, GH]``.
    """
    # the operand ring and where the short window's rows are (_key_grads)
    x_a, x_b, ab_ready, ab_empty, x_k2s, x_v2s, K2, V2, off0, stride_kn, k_lo = ring
    NA: gl.constexpr = x_a.type.shape[0]
    DH: gl.constexpr = o_d.type.shape[0]
    r = c % NA
    # S has read the slot's last a and b
    mbarrier.wait(ab_empty.index(r), ((c // NA) & 1) ^ 1)
    if DO_X:
        k2 = _short_row(x_k2s, K2, k, k_lo, off0, stride_kn, o_d, D0, STAGED)
        a_t = q_t * k2.to(gl.float32)[:, None]  # [DH, GH]: exact, one rounding
        x_a.index(r).slice(D0, DH).store(a_t.to(gl.bfloat16))
    if DO_Y:
        v2 = _short_row(x_v2s, V2, k, k_lo, off0, stride_kn, o_d, D0, STAGED)
        b_t = do_t * v2.to(gl.float32)[:, None]  # [DH, GH]: exact, one rounding
        x_b.index(r).slice(D0, DH).store(b_t.to(gl.bfloat16))
    fence_async_shared()  # generic-proxy stores, then S's wgmma reads them
    mbarrier.arrive(ab_ready.index(r), count=1)


@gluon.jit
def _slot_add(row, part, first):
    """``row (+)= part`` for a ``[DH]`` fp32 shared-memory slot (``first``: store, no read)."""
    if first:
        row.store(part)
    else:
        row.store(row.load(part.type.layout) + part)


@gluon.jit
def _gradient_gemm(tile_t, ring, full, free, r, ph, DH: gl.constexpr):
    """``Z^T = tile^T ring[r]^T``, ``[DH, GH]`` fp32, once slot ``r`` of the
    P / dS ring is full (phase ``ph``); the slot is freed once the product is in.

    ``tile_t`` is this consumer's ``[DH, BLOCK_N]`` slice of the K1 / V1 tile,
    read transposed from shared memory (A); the ring slot is ``[GH, BLOCK_N]``
    (B, also read transposed). The heads lie on N, so a sum over heads stays
    inside a warp.
    """
    z_layout: gl.constexpr = _mma_layout(GH, 4)
    mbarrier.wait(full.index(r), ph)
    z = warpgroup_mma(tile_t, ring.index(r).permute((1, 0)),
                      gl.zeros([DH, GH], gl.float32, z_layout), use_acc=False)
    mbarrier.arrive(free.index(r), count=1)  # read: S may refill the slot
    return z


@gluon.jit
def _store_dq(DQ, q_row0, dq_t, D0: gl.constexpr, D: gl.constexpr):
    """``dq`` of the program's 64 heads, columns ``D0 .. D0 + DH``, from
    ``dq_t`` ``[DH, GH]``. Written through a layout with ``d`` fastest
    (coalesced) whose offsets are formed here: the loop's transposed offsets
    would keep ``DH * GH / 128`` addresses a thread live (and spilled) across
    the whole loop."""
    DH: gl.constexpr = dq_t.type.shape[0]
    st: gl.constexpr = gl.BlockedLayout([8, 1], [DH // 8, 256 // DH], [1, 4],
                                        [0, 1])
    dq_st = gl.convert_layout(dq_t.to(DQ.dtype.element_ty), st)  # [DH, GH]
    o_sd = D0 + gl.arange(0, DH, gl.SliceLayout(1, st))
    o_sh = gl.arange(0, GH, gl.SliceLayout(0, st))
    gl.store(DQ + q_row0 + o_sh[None, :] * D + o_sd[:, None], dq_st)


@gluon.jit
def _flush(ptrs, rows, PARTIAL: gl.constexpr):
    """A key's gradient rows out of shared memory: a plain store into this
    program's own slot (``PARTIAL``), or a relaxed fp32 atomic add into the
    gradient."""
    if PARTIAL:
        gl.store(ptrs, rows)
    else:
        gl.atomic_add(ptrs, rows, sem="relaxed")


@gluon.jit
def _key_grads(args, PART: gl.constexpr, PARTIAL: gl.constexpr):
    """Consumer ``PART`` (0 or 1, 4 warps): ``X^T = K1_J^T dS^T`` and
    ``Y^T = V1_J^T P^T``.

    D 128: each consumer owns half of D, rows ``D0 = 64 PART ..`` of ``X^T``
    and ``Y^T`` (M = 64), of ``dq^T`` and of the ``dk2`` / ``dv2`` rows. D 64:
    consumer 0 owns ``X^T`` (``dS``, ``K1``, ``dq``, ``dk2``), consumer 1
    ``Y^T`` (``P``, ``V1``, ``dv2``): a 32-row half would be below wgmma's M.

    Per ``(J, k)``: the product (heads on N), then ``dq^T += X^T * k2[k]`` and
    the row sums ``sum_h X^T * q^T``, ``sum_h Y^T * do^T`` into the key's slot
    of the program's shared-memory buffers. A row of the accumulator lives in
    one warp (a quad of lanes holds each sum), so no slot's read-modify-write
    crosses warps. At the end: ``dq``, and each key's rows to the partial
    buffers (``PARTIAL``) or, with atomics, to ``dk2`` / ``dv2``.
    """
    (Q, K2, V2, DO, LSE, DELTA, bufs_k1, bufs_v1, ready, empty, p_buf, ds_buf,
     p_ready, p_empty, ds_ready, ds_empty, x_a, x_b, ab_ready, ab_empty, x_dk2,
     x_dv2, q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, lse_row0, N,
     qk_scale, scale, DQ, DK2, DV2, k1_desc, v1_desc, part0, x_k2s, x_v2s) = args
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    D: gl.constexpr = bufs_k1.type.shape[2]
    NB: gl.constexpr = p_buf.type.shape[0]
    SPLIT: gl.constexpr = D > 64
    DH: gl.constexpr = D // 2 if SPLIT else D  # rows of X^T / Y^T it owns
    D0: gl.constexpr = PART * DH if SPLIT else 0
    DO_X: gl.constexpr = SPLIT or PART == 0
    DO_Y: gl.constexpr = SPLIT or PART == 1
    STAGED: gl.constexpr = _stages_rows(x_dk2.type.shape[0], D)
    z_layout: gl.constexpr = _mma_layout(GH, 4)  # [DH, GH]: heads as N
    row_layout: gl.constexpr = gl.SliceLayout(1, z_layout)  # [DH]: a lane quad
    o_d = D0 + gl.arange(0, DH, row_layout)
    o_h = gl.arange(0, GH, gl.SliceLayout(0, z_layout))
    o_ut = q_row0 + o_h[None, :] * D + o_d[:, None]  # [DH, GH]: q / do transposed
    q_t = 0  # stand-ins where this consumer does not hold them (D 64)
    do_t = 0
    if DO_X:
        # [DH, GH] fp32 only (bf16 copies would be kept beside them); q as
        # stored: S applies the scale to the logits. The factor is 1 (scale
        # is finite) but not known to the compiler: with a bare conversion
        # the D 128 consumers spill 48 words, with it 2 (tools/sm90.py
        # hopper-bwd)
        q_t = gl.load(Q + o_ut).to(gl.float32) * (scale * 0.0 + 1.0)
        dq_t = gl.zeros([DH, GH], gl.float32, z_layout)
    if DO_Y:
        do_t = gl.load(DO + o_ut).to(gl.float32)  # [DH, GH]
    off0 = kv_row0 + col
    # S's operands run one step ahead of the products: step c + 1's before
    # step c's P / dS
    ring = (x_a, x_b, ab_ready, ab_empty, x_k2s, x_v2s, K2, V2, off0, stride_kn,
            k_lo)
    _operands(ring, 0, k_lo, q_t, do_t, o_d, D0, DO_X, DO_Y, STAGED)
    c = 0
    for t in range(n_tiles):
        s = t % STAGES
        mbarrier.wait(ready.index(s), (t // STAGES) & 1)
        # [DH, BLOCK_N]: this consumer's columns of the tile, transposed (A)
        k1t = bufs_k1.index(s).slice(D0, DH, dim=1).permute((1, 0))
        v1t = bufs_v1.index(s).slice(D0, DH, dim=1).permute((1, 0))
        for k in range(k_lo, i + 1):
            if k < i:  # the next step's key: k + 1, or the next tile's first
                _operands(ring, c + 1, k + 1, q_t, do_t, o_d, D0, DO_X, DO_Y,
                          STAGED)
            elif t + 1 < n_tiles:
                _operands(ring, c + 1, k_lo, q_t, do_t, o_d, D0, DO_X, DO_Y,
                          STAGED)
            r = c % NB
            ph = (c // NB) & 1
            if DO_X:  # dq and dk2
                x_t = _gradient_gemm(k1t, ds_buf, ds_ready, ds_empty, r, ph, DH)
                k2 = _short_row(x_k2s, K2, k, k_lo, off0, stride_kn, o_d, D0,
                               STAGED).to(gl.float32)
                dq_t += x_t * k2[:, None]
                _slot_add(x_dk2.index(k - k_lo).slice(D0, DH),
                          gl.sum(x_t * q_t, 1), t == 0)
            if DO_Y:  # dv2
                y_t = _gradient_gemm(v1t, p_buf, p_ready, p_empty, r, ph, DH)
                _slot_add(x_dv2.index(k - k_lo).slice(D0, DH),
                          gl.sum(y_t * do_t, 1), t == 0)
            c += 1
        mbarrier.arrive(empty.index(s), count=1)
    if DO_X:
        _store_dq(DQ, q_row0, dq_t * scale, D0, D)
    # w2 programs share each key. PARTIAL: this program's own slots (key k at
    # row part0 + k), added in a fixed order by _short_sums_kernel; else
    # atomics, whose order (hence the last bits) varies from run to run
    for u in range(0, i + 1 - k_lo):
        if PARTIAL:
            o_u = (part0 + k_lo + u) * D + o_d  # [DH] int64
        else:
            o_u = off0 + (k_lo + u) * stride_kn + o_d  # [DH]
        if DO_X:  # dk2 = scale * sum dS q k1
            rows = x_dk2.index(u).slice(D0, DH).load(row_layout) * scale
            _flush(DK2 + o_u, rows, PARTIAL)
        if DO_Y:
            rows = x_dv2.index(u).slice(D0, DH).load(row_layout)
            _flush(DV2 + o_u, rows, PARTIAL)


@gluon.jit
def _consumer0(args, PARTIAL: gl.constexpr):
    _key_grads(args, 0, PARTIAL)


@gluon.jit
def _consumer1(args, PARTIAL: gl.constexpr):
    _key_grads(args, 1, PARTIAL)


@gluon.jit
def _hopper_bwd_dq_kernel(Q, K1, K2, V1, V2, DO, LSE, DELTA, DQ, DK2, DV2, N, Hq, Hkv, W1, W2, qk_scale, scale,
                          D: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr, W2P: gl.constexpr,
                          NA: gl.constexpr, REGS0: gl.constexpr, REGS1: gl.constexpr, PARTIAL: gl.constexpr):
    """``dq``, ``dk2``, ``dv2`` for GQA 64; grid ``(N, B * Hkv)``: program ``(i, b * Hkv + g)``
    owns the 64 query heads of KV head ``g`` at position ``i``. ``PARTIAL``: ``DK2``/``DV2`` are
    the fp32 partial buffers (``[B * Hkv * N * W2, D]``, key ``k`` of program ``i`` at row
    ``(b * Hkv + g) * N * W2 + i * W2 + k - (i - W2 + 1)``); else the fp32 gradients, zeroed
    (atomics add into them). ``W2P >= W2`` (a power of two) sizes the per-program
    ``dk2``/``dv2`` buffers; ``REGS0``/``REGS1`` are the consumers' setmaxnreg (:data:`REGS`).
    Warps: 4 (S, also the TMA issue) + 4 + 4. FLOPs: ``8 D`` per visible triple on tensor
    cores."""
    gl.static_assert(STAGES >= 2, "S loads tile t + STAGES - 1 while it works on tile t")
    i, b, g, lo1, k_lo, n_tiles, stride_kn, kv_row0, col, q_row0 = _program(N, Hq, Hkv, W1, W2, D, BLOCK_N)
    lse_row0 = (b * Hq + g * GH) * N + i  # LSE / Delta are [B, Hq, N]: head h at + h * N
    # PARTIAL: key k's row of this program's partial dk2 / dv2 slots (W2 a program, the layout of
    # backward._short_sums_kernel at one position a tile: slot k - (i - W2 + 1))
    part0 = ((b * Hkv + g) * N + i).to(gl.int64) * W2 - (i - W2 + 1)
    k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty = _tile_ring(K1, V1, kv_row0, N, stride_kn, D, BLOCK_N,
                                                                  STAGES, 3)  # S and both consumers release
    # the P / dS hand-off ring, [GH, BLOCK_N] bf16 a slot, swizzled for wgmma's B operand
    pds_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([GH, BLOCK_N], gl.bfloat16)
    p_buf = gl.allocate_shared_memory(gl.bfloat16, [NBUF, GH, BLOCK_N], pds_layout)
    ds_buf = gl.allocate_shared_memory(gl.bfloat16, [NBUF, GH, BLOCK_N], pds_layout)
    p_ready = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
    p_empty = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
    ds_ready = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
    ds_empty = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
    readers: gl.constexpr = 2 if D > 64 else 1  # consumers that read each P / dS (_key_grads)
    for r in gl.static_range(NBUF):
        mbarrier.init(p_ready.index(r), count=1)
        mbarrier.init(p_empty.index(r), count=readers)
        mbarrier.init(ds_ready.index(r), count=1)
        mbarrier.init(ds_empty.index(r), count=readers)
    # dk2 / dv2 of the short window's keys, slot k - k_lo, summed over the J tiles
    acc_layout: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [0])  # of a [D] slot
    x_dk2 = gl.allocate_shared_memory(gl.float32, [W2P, D], acc_layout)
    x_dv2 = gl.allocate_shared_memory(gl.float32, [W2P, D], acc_layout)
    # S's GEMM operands a^T = q^T k2[k], b^T = do^T v2[k] ([D, GH] bf16 a slot, read transposed
    # as wgmma's A), written by the consumers one step ahead (_operands)
    ab_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([D, GH], gl.bfloat16)
    x_a = gl.allocate_shared_memory(gl.bfloat16, [NA, D, GH], ab_layout)
    x_b = gl.allocate_shared_memory(gl.bfloat16, [NA, D, GH], ab_layout)
    ab_ready = gl.allocate_shared_memory(gl.int64, [NA, 1], mbarrier.MBarrierLayout())
    ab_empty = gl.allocate_shared_memory(gl.int64, [NA, 1], mbarrier.MBarrierLayout())
    for r in gl.static_range(NA):
        mbarrier.init(ab_ready.index(r), count=2)  # both consumers write a share
        mbarrier.init(ab_empty.index(r), count=1)
    ld_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    o_qd = gl.arange(0, D, gl.SliceLayout(0, ld_layout))
    # the short window's K2 / V2 rows, slot k - k_lo, loaded once, not at every (J, k) step
    if _stages_rows(W2P, D):
        o_u = gl.arange(0, W2P, gl.SliceLayout(1, ld_layout))
        o_r = kv_row0 + col + (k_lo + o_u)[:, None] * stride_kn + o_qd[None, :]  # [W2P, D]
        m_r = (o_u < i + 1 - k_lo)[:, None]
        x_k2s = _row_slots(gl.load(K2 + o_r, mask=m_r, other=0.0))
        x_v2s = _row_slots(gl.load(V2 + o_r, mask=m_r, other=0.0))
    else:  # unused one-row stand-ins; the rows come from global memory
        x_k2s = gl.allocate_shared_memory(gl.bfloat16, [1, D], acc_layout)
        x_v2s = gl.allocate_shared_memory(gl.bfloat16, [1, D], acc_layout)
    fence_async_shared()

    args = (Q, K2, V2, DO, LSE, DELTA, bufs_k1, bufs_v1, ready, empty, p_buf, ds_buf, p_ready, p_empty,
            ds_ready, ds_empty, x_a, x_b, ab_ready, ab_empty, x_dk2, x_dv2, q_row0, kv_row0, col, i, lo1, k_lo,
            n_tiles, stride_kn, lse_row0, N, qk_scale, scale, DQ, DK2, DV2, k1_desc, v1_desc, part0, x_k2s, x_v2s)
    gl.warp_specialize([(_scores, (args, )), (_consumer0, (args, PARTIAL)), (_consumer1, (args, PARTIAL))], [4, 4],
                       [REGS0, REGS1])


def operand_slots(head_dim: int, w2: int) -> int:
    """Slots of the ring of S's operands ``a``, ``b`` (``2 * D * 64`` bf16 a slot): two, one step
    of slack between the consumers that write them and S; one at D 128 with ``w2 > 32``, where
    the ``dk2``/``dv2`` buffers are twice as large and a second slot would not fit (228 KB).

    Parameters
    ----------
    head_dim : int
        ``D``.
    w2 : int
        The short window.

    Returns
    -------
    int
        1 or 2.

    Examples
    --------
    >>> operand_slots(128, 32), operand_slots(128, 64), operand_slots(64, 64)
    (2, 1, 2)
    """
    return 1 if head_dim > 64 and w2 > 32 else 2


def hopper_bwd_supported(q, k1, w1: int, w2: int) -> str | None:
    """``None`` when :func:`hopper_backward_dq` takes these inputs, else the reason it does not.

    The forward's conditions (:func:`.hopper.hopper_supported` at ``BLOCK_N = 64``) and
    ``w2 <= MAX_W2`` (the per-program ``dk2``/``dv2`` buffers live in shared memory).

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``
    k1 : Tensor ``[B, N, Hkv, D]``
    w1, w2 : int
        The long and the short window.

    Returns
    -------
    str or None
    """
    why = hopper_supported(q, k1, w1, w2, BWD_BLOCK_N)
    if why is not None:
        return why
    if w2 > MAX_W2:
        return f"needs w2 <= {MAX_W2} (its dk2/dv2 rows live in shared memory), got {w2}"
    return None


def hopper_backward_dq(q, k1, k2, v1, v2, do, lse, delta, w1: int, w2: int, scale: float, stages: int = 2,
                       deterministic: bool = True):
    """``(dq, dk2, dv2)`` of sliding-window 2-simplicial attention from the Gluon kernel.

    ``dk1``/``dv1`` are not computed here: the portable key-tile kernel gives them
    (:func:`.backward.launch_kv`).

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``, bf16, contiguous, ``Hq = 64 Hkv``
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]``, like ``q``
    do : Tensor like ``q``
        Gradient of the output.
    lse : float32 Tensor ``[B, Hq, N]``
        The forward's base-2 log-sum-exp.
    delta : float32 Tensor ``[B, Hq, N]``
        ``rowsum(do * o)`` (:func:`.backward.compute_delta`).
    w1, w2 : int
        The long and the short window (``w1 >= w2``, ``w1`` a multiple of 64, ``w2 <= 64``).
    scale : float
        Logit scale (finite).
    stages : int, default 2
        Depth of the K1/V1 ring (2 or 3; 3 fits in shared memory only at D 64).
    deterministic : bool, default True
        Each program writes its ``w2`` rows of ``dk2``/``dv2`` to its own slots of two fp32
        partial buffers (``B * Hkv * N * w2 * D`` elements each; the two take ``4 w2 / GH``
        times the bytes of a bf16 ``q``), and ``backward._short_sums_kernel`` adds each
        key's slots in a fixed order: bitwise-equal gradients on repeat. ``False``: fp32 atomics instead (no
        partial buffers; the order of the additions, hence the last bits, varies).

    Returns
    -------
    dq, dk2, dv2 : Tensors like ``q``, ``k2`` and ``v2``

    Raises
    ------
    ValueError
        If :func:`hopper_bwd_supported` gives a reason, or a tensor is not contiguous or of
        another shape or dtype than expected.
    """
    why = hopper_bwd_supported(q, k1, w1, w2)
    if why is not None:
        raise ValueError(f"hopper_backward_dq: {why}")
    if any(t.shape != k1.shape or t.dtype != q.dtype for t in (k2, v1, v2)):
        raise ValueError("hopper_backward_dq: k1, k2, v1 and v2 must have one shape and q's dtype")
    if do.shape != q.shape or do.dtype != q.dtype:
        raise ValueError(f"hopper_backward_dq: do must be like q, got {tuple(do.shape)} {do.dtype}")
    B, N, Hq, D = q.shape
    for name, t in (("lse", lse), ("delta", delta)):
        if tuple(t.shape) != (B, Hq, N) or t.dtype != torch.float32:
            raise ValueError(f"hopper_backward_dq: {name} must be float32 [B, Hq, N] = {(B, Hq, N)}, "
                             f"got {tuple(t.shape)} {t.dtype}")
    if not all(t.is_contiguous() for t in (q, k1, k2, v1, v2, do, lse, delta)):
        raise ValueError("hopper_backward_dq: every input must be contiguous")
    if q.numel() >= 2**31:  # the kernel's offsets are int32
        raise ValueError(f"hopper_backward_dq: q must have fewer than 2**31 elements, got {q.numel()}")
    if not math.isfinite(scale):
        raise ValueError(f"hopper_backward_dq: scale must be finite, got {scale!r}")
    if not isinstance(stages, int) or not 2 <= stages <= 3:
        raise ValueError(f"hopper_backward_dq: stages must be 2 or 3, got {stages!r}")
    if not isinstance(deterministic, bool):
        raise ValueError(f"hopper_backward_dq: deterministic must be a bool, got {deterministic!r}")
    if stages == 3 and q.shape[3] > 64:  # 249 KB of shared memory at w2 32, over the 227 KB
        raise ValueError("hopper_backward_dq: stages 3 needs head_dim 64 (shared memory)")
    Hkv = k1.shape[2]
    dq = torch.empty_like(q)
    if deterministic:  # every slot a program owns is written (keys 0..i of its short window)
        dk2 = torch.empty(B * Hkv * N * w2, D, device=q.device, dtype=torch.float32)
        dv2 = torch.empty_like(dk2)
    else:
        dk2 = torch.zeros(k2.shape, device=q.device, dtype=torch.float32)
        dv2 = torch.zeros(v2.shape, device=q.device, dtype=torch.float32)
    # the device-side TMA descriptors live in a scratch buffer Triton allocates through this
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device=q.device))
    _hopper_bwd_dq_kernel[(N, B * Hkv)](q, k1, k2, v1, v2, do, lse, delta, dq, dk2, dv2, N, Hq, Hkv, w1, w2,
                                        scale * LOG2E, scale, D=D, BLOCK_N=BWD_BLOCK_N, STAGES=stages,
                                        W2P=triton.next_power_of_2(w2), NA=operand_slots(D, w2),
                                        REGS0=REGS[D][0], REGS1=REGS[D][1],
                                        PARTIAL=deterministic, num_warps=4, maxnreg=MAXNREG)
    if not deterministic:
        return dq, dk2.to(k2.dtype), dv2.to(v2.dtype)
    sk2, sv2 = torch.empty_like(k2), torch.empty_like(v2)
    # one position a tile (POS 1), one head block: the fused portable kernel's slot layout
    _short_sums_kernel[(N, B * Hkv)](dk2, dv2, sk2, sv2, N, Hkv, w2, N, 1, k2.stride(0), k2.stride(1),
                                     k2.stride(2), HEAD_DIM=D, POS=1, num_warps=1)
    return dq, sk2, sv2


def hopper_backward(do, q, k1, k2, v1, v2, o, lse, w1: int, w2: int,
                    scale: float):
    """All five gradients ``(dq, dk1, dk2, dv1, dv2)``: ``dq``, ``dk2``, ``dv2``
    from the Gluon kernel (:func:`hopper_backward_dq`, deterministic), ``dk1``,
    ``dv1`` from the portable key-tile kernel (:func:`.backward.launch_kv`, its
    default configuration).

    Parameters
    ----------
    do, q, k1, k2, v1, v2, o : Tensor
        As :func:`hopper_backward_dq` takes them (``o``: the forward's output).
    lse : float32 Tensor ``[B, Hq, N]``
        The forward's base-2 log-sum-exp (either forward's: they round the logits
        alike).
    w1, w2 : int
        The long and the short window, ``w1 >= w2``.
    scale : float

    Returns
    -------
    dq, dk1, dk2, dv1, dv2 : Tensors like ``q``, ``k1``, ``k2``, ``v1``, ``v2``
    """
    why = hopper_bwd_supported(q, k1, w1, w2)
    if why is not None:
        raise ValueError(f"hopper_backward: {why}")
    D, G = q.shape[3], q.shape[2] // k1.shape[2]
    delta = compute_delta(o.contiguous(), do.contiguous())  # rowsum(do * o)
    smem = max_shared_memory(q.device)
    cfg = bwd_configs(D, G, w1, w2, q.element_size(), smem)[0]
    dk1, dv1 = launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2, scale, cfg)
    dq, dk2, dv2 = hopper_backward_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2,
                                      scale)
    return dq, dk1, dk2, dv1, dv2
