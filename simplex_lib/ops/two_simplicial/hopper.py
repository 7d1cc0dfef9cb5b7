"""A Hopper-native forward of sliding-window 2-simplicial attention, in Gluon (experimental).

Status: its GPU tests pass on an H200 (``tests/test_kernels_hopper.py``: output and LSE against
float64, and the gradients through the portable backward), but it is slower than the portable
forward there (NOTES.md), so ``two_simplicial_attention(backend="auto")`` does not pick it;
``backend="hopper"`` (or :func:`hopper_forward`) runs it.

What it covers: GQA 64 (the 64 query heads of one key/value head are the 64 rows of a tile),
one query position per program, bf16, ``D`` 64 or 128, ``w1`` a multiple of ``BLOCK_N``,
contiguous ``[B, N, H, D]`` tensors.

Why Gluon: the portable kernel runs each short-window step as GEMM, softmax, GEMM in one warp
group, so the tensor cores wait while the same warps compute ``exp2`` (chapter 10's profile).
Here three partitions of one program share the work (``gl.warp_specialize``):

- the loader (1 warp, 24 registers) streams the long window's ``K1``/``V1`` tiles, from the
  query down, with TMA into a ``STAGES``-deep shared-memory ring (``ready``/``empty`` mbarriers;
  a tile is free once both consumers are done with it);
- two consumers (4 warps each, 240 registers) own all 64 rows and split the short window by
  parity: consumer ``p`` takes the keys ``k_lo + p, k_lo + p + 2, ...``. While one warp group
  computes its softmax, the other's ``wgmma`` runs;
- at the end consumer 1 hands its ``(m, l, acc)`` to consumer 0 through shared memory, and
  consumer 0 merges the two online softmaxes and writes ``O`` and the base-2 LSE, as the
  portable kernel does.

With ``operands=True`` a third warp group (4 warps) replaces the loader: it forms every
operand ``a = q * k2[k]`` into a shared-memory ring of the consumer that takes ``k`` and issues
the TMA loads. The consumers then hold neither ``q`` nor ``a`` (64 registers a thread at D 128),
and each logits GEMM reads both operands from shared memory. The operand work that ran on the
consumers' CUDA cores between their GEMMs moves to warps that issue no GEMM. With
``scaled_values=True`` the group also forms each key's value tile ``V1 * v2[k]``, so that a
consumer's step is FlashAttention's: one logits GEMM, the softmax, and one GEMM that accumulates
``P (V1 * v2[k])`` into the output.

Launch: grid ``(N, B * Hkv)``, one program per query position and key/value head, 12 warps
(consumers 4 + 4 and the loader's 1, padded to whole warp groups for ``setmaxnreg``; with
``operands``, three groups of 4); a program owns the 64 rows of its position's output and LSE
and does ``4 * 64 * D * w1 * w2`` FLOPs.

Where it stands (an H100 profile, chapter 10's "Which warp group waits"): one program fills an
SM's registers, and each consumer step at D 128 takes about four times the cycles of its GEMMs:
the consumers wait on their own chain (logits GEMM, softmax, value GEMM, ``v2`` update), and two
of them cannot keep the tensor cores busy half of the time. ``benchmarks/NOTES.md`` lists the
directions left.
"""

from __future__ import annotations

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma,
                                                               warpgroup_mma, warpgroup_mma_wait)

__all__ = ["GH", "SHARED_LIMIT", "default_block_n", "hopper_forward", "hopper_supported",
           "operand_group_regs", "operand_shared_bytes", "operand_slots_fwd"]

LOG2E = 1.4426950408889634
#: Query heads per key/value head that the kernel packs into one tile (its 64 rows).
GH = gl.constexpr(64)


@gluon.constexpr_function
def _mma_layout(n, num_warps):
    """The accumulator layout of a ``[64, n]`` warp-group GEMM (wgmma, instruction 16 x n x 16)."""
    return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                     instr_shape=[16, n, 16])


@gluon.jit
def _logits(q, K2, off, k1, ASYNC: gl.constexpr, Q_SMEM: gl.constexpr):
    """``S = (q * k2) @ K1^T`` for one short-window key: ``[GH, BLOCK_N]``, not yet scaled
    (:func:`_softmax_accumulate` applies ``scale * log2(e)``; with ``ASYNC`` the wgmma is only
    issued: a token for
    :func:`warpgroup_mma_wait`). ``off`` is the element offset of the key's row in ``K2``; with
    ``Q_SMEM``, ``q`` is a shared-memory buffer, read here (registers for the pipelined loop).

    The operand is rounded to bf16 once, from the fp32 product of ``q`` as stored, as the
    portable kernels round theirs: the portable backward recomputes these logits, and its ``P =
    exp2(S * scale * log2(e) - lse)`` sums to one only if both kernels see the same ``S``."""
    BLOCK_N: gl.constexpr = k1.type.shape[0]
    D: gl.constexpr = k1.type.shape[1]
    s_layout: gl.constexpr = _mma_layout(BLOCK_N, 4)
    a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=s_layout, k_width=2)
    o_d = gl.arange(0, D, gl.SliceLayout(0, _mma_layout(D, 4)))
    if Q_SMEM:
        q = q.load(_mma_layout(D, 4))
    k2 = gl.load(K2 + off + o_d).to(gl.float32)  # [D]
    a = (q.to(gl.float32) * k2[None, :]).to(gl.bfloat16)  # [GH, D], the portable rounding
    return warpgroup_mma(gl.convert_layout(a, a_layout), k1.permute((1, 0)),
                         gl.zeros([GH, BLOCK_N], gl.float32, s_layout), use_acc=False, is_async=ASYNC)


@gluon.jit
def _softmax_step(sc, m, l, acc, m_vis, qk_scale):
    """One step of the online softmax over a block of logits ``sc``
    ``[GH, BLOCK_N]``, scaled here to base 2 by ``qk_scale = scale * log2(e)``
    (any sign). ``m_vis = (cols, masked)``: with ``masked`` the columns
    outside ``cols`` ``[1, BLOCK_N]`` are dropped (only a tile that reaches
    below the window has any). Returns ``(p, acc, m_new, l)``: the block's
    weights in bf16 as the next GEMM's A operand, the accumulator rescaled
    to the new maximum, the new maximum and sum."""
    o_layout: gl.constexpr = acc.type.layout
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout,
                                                 k_width=2)
    cols, masked = m_vis
    if masked:
        sc = gl.where(cols, sc * qk_scale, float("-inf"))
    else:
        sc = sc * qk_scale
    m_new = gl.maximum(m, gl.max(sc, 1))
    m_ref = gl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = gl.exp2(m - m_ref)
    p = gl.exp2(sc - m_ref[:, None])  # [GH, BLOCK_N]
    l = l * alpha + gl.sum(p, 1)
    # rescale before the GEMM, so that alpha is dead while its product lives
    acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, o_layout))[:, None]
    return gl.convert_layout(p.to(gl.bfloat16), p_layout), acc, m_new, l


@gluon.jit
def _softmax_accumulate(sc, m, l, acc, m_vis, v1, V2, off, qk_scale):
    """The online softmax of one block of logits (:func:`_softmax_step`),
    then ``acc = acc * alpha + (P @ V1) * v2``."""
    D: gl.constexpr = acc.type.shape[1]
    o_layout: gl.constexpr = acc.type.layout
    p, acc, m_new, l = _softmax_step(sc, m, l, acc, m_vis, qk_scale)
    pv = warpgroup_mma(p, v1, gl.zeros([GH, D], gl.float32, o_layout),
                       use_acc=False)
    o_d = gl.arange(0, D, gl.SliceLayout(0, o_layout))
    v2 = gl.load(V2 + off + o_d)  # [D] bf16: half the registers of fp32
    return m_new, l, acc + pv * v2.to(gl.float32)[None, :]


@gluon.jit
def _softmax_accumulate_scaled(sc, m, l, acc, m_vis, vs, qk_scale):
    """:func:`_softmax_accumulate` where the value tile comes already scaled,
    ``vs = V1 * v2[k]`` (``[BLOCK_N, D]`` bf16 in shared memory, formed by the
    operand group): ``acc = acc * alpha + P @ vs`` in one accumulating GEMM,
    with no product of its own and no epilogue."""
    p, acc, m_new, l = _softmax_step(sc, m, l, acc, m_vis, qk_scale)
    return m_new, l, warpgroup_mma(p, vs, acc)


@gluon.jit
def _consumer_start(BLOCK_N: gl.constexpr, D: gl.constexpr, k_lo, i, PARITY: gl.constexpr):
    """A consumer's empty online softmax (``m``, ``l`` ``[GH]``, ``acc`` ``[GH, D]``), the key
    columns of a tile (``o_n`` ``[BLOCK_N]``) and its first and last key: every other key of the
    short window, from ``k_lo + PARITY`` (``k_last < k_first``: it has none)."""
    s_layout: gl.constexpr = _mma_layout(BLOCK_N, 4)
    m = gl.full([GH], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l = gl.zeros([GH], gl.float32, gl.SliceLayout(1, s_layout))
    acc = gl.zeros([GH, D], gl.float32, _mma_layout(D, 4))
    o_n = gl.arange(0, BLOCK_N, gl.SliceLayout(0, s_layout))
    k_first = k_lo + PARITY
    k_last = i - (i - k_first) % 2
    return m, l, acc, o_n, k_first, k_last


@gluon.jit
def _consume(args, PARITY: gl.constexpr, PIPELINE: gl.constexpr):
    """One consumer warp group: the short-window keys of one parity against every K1/V1 tile.

    Per ``(tile, k)``: ``a = q * k2[k]`` in registers, ``S = a @ K1^T`` (wgmma, A from registers,
    B the tile in shared memory), the base-2 online softmax, ``acc = acc * alpha + (P @ V1) *
    v2[k]``. With ``PIPELINE`` the logits of the next key are issued before the softmax of this
    one, so that the softmax runs under that GEMM. Returns ``(m, l, acc)`` (consumer 1 also
    leaves them in shared memory).
    """
    (Q, K2, V2, bufs_k1, bufs_v1, ready, empty, x_acc, x_m, x_l, x_q, done,
     q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, qk_scale, k1_desc, v1_desc,
     x_a, a_ready, a_empty, x_vs) = args
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    BLOCK_N: gl.constexpr = bufs_k1.type.shape[1]
    D: gl.constexpr = bufs_k1.type.shape[2]
    o_layout: gl.constexpr = _mma_layout(D, 4)  # [GH, D] accumulator

    o_r = gl.arange(0, GH, gl.SliceLayout(1, o_layout))
    o_d = gl.arange(0, D, gl.SliceLayout(0, o_layout))
    if PIPELINE:  # the pipelined loop needs the registers: q stays in shared memory
        q = x_q
    else:
        q = gl.load(Q + q_row0 + o_r[:, None] * D + o_d[None, :])  # [GH, D] bf16
    m, l, acc, o_n, k_first, k_last = _consumer_start(BLOCK_N, D, k_lo, i, PARITY)
    off0 = kv_row0 + col  # the offset of row 0 of K2 / V2
    for t in range(n_tiles):
        s = t % STAGES
        mbarrier.wait(ready.index(s), (t // STAGES) & 1)
        k1 = bufs_k1.index(s)  # [BLOCK_N, D]
        v1 = bufs_v1.index(s)  # [BLOCK_N, D]
        j0 = i + 1 - (t + 1) * BLOCK_N  # the tile's lowest key
        cols = (j0 + o_n >= lo1)[None, :]  # [1, BLOCK_N]
        if PIPELINE:  # every step selects: with two logits blocks live, a branch costs spills
            m_vis = (cols, True)
        else:  # the select only where a column is out (tools/sm90.py hopper)
            m_vis = (cols, j0 < lo1)
        if PIPELINE:
            if k_first <= i:
                sc = _logits(q, K2, off0 + k_first * stride_kn, k1, False, True)
                for k in range(k_first, k_last, 2):
                    nxt = _logits(q, K2, off0 + (k + 2) * stride_kn, k1, True, True)  # in flight
                    m, l, acc = _softmax_accumulate(sc, m, l, acc, m_vis, v1, V2, off0 + k * stride_kn, qk_scale)
                    sc = warpgroup_mma_wait(num_outstanding=0, deps=(nxt, ))
                m, l, acc = _softmax_accumulate(sc, m, l, acc, m_vis, v1, V2, off0 + k_last * stride_kn, qk_scale)
        else:
            for k in range(k_first, i + 1, 2):
                sc = _logits(q, K2, off0 + k * stride_kn, k1, False, False)
                m, l, acc = _softmax_accumulate(sc, m, l, acc, m_vis, v1, V2, off0 + k * stride_kn, qk_scale)
        mbarrier.arrive(empty.index(s), count=1)
    if PARITY == 1:  # hand the state to consumer 0
        _handoff(x_acc, x_m, x_l, done, m, l, acc)
    return m, l, acc


@gluon.jit
def _handoff(x_acc, x_m, x_l, done, m, l, acc):
    """Consumer 1's online-softmax state into shared memory, for consumer 0 to merge."""
    x_acc.store(acc)
    x_m.store(m)
    x_l.store(l)
    mbarrier.arrive(done, count=1)


@gluon.jit
def _ring_step(sc, m, l, acc, m_vis, v1, x_vs, r, V2, off, qk_scale, SCALED_V: gl.constexpr):
    """One key's softmax step and value GEMM for a consumer of the operand group: with the values
    it scaled, from ring slot ``r`` (:func:`_softmax_accumulate_scaled`), else from the tile."""
    if SCALED_V:
        m, l, acc = _softmax_accumulate_scaled(sc, m, l, acc, m_vis, x_vs.index(r), qk_scale)
    else:
        m, l, acc = _softmax_accumulate(sc, m, l, acc, m_vis, v1, V2, off, qk_scale)
    return m, l, acc


@gluon.jit
def _ring_keys(ring, c, k1t, v1, m, l, acc, m_vis, k_first, k_last, i, off0, qk_scale,
               PARITY: gl.constexpr, PIPELINE: gl.constexpr, SCALED_V: gl.constexpr):
    """A consumer's keys against one tile (:func:`_consume_operands`), ``a`` from ring slot ``c``
    on: ``S = a @ K1^T``, then :func:`_ring_step`. A slot is freed once its last reader is done:
    after the logits GEMM, or with ``SCALED_V`` (the slot also holds ``V1 * v2[k]``) after the
    value GEMM. With ``PIPELINE`` the next key's logits GEMM runs under this key's softmax, so
    with ``SCALED_V`` two slots are held at once (the ring needs two). Returns
    ``(m, l, acc, c)``."""
    x_a, x_vs, a_ready, a_empty, V2, stride_kn = ring
    NA: gl.constexpr = x_a.type.shape[0] // 2
    BLOCK_N: gl.constexpr = k1t.type.shape[1]
    s_layout: gl.constexpr = _mma_layout(BLOCK_N, 4)  # [GH, BLOCK_N] logits
    if PIPELINE:
        gl.static_assert(NA >= 2 or not SCALED_V, "the pipelined loop holds two slots")
        if k_first <= i:
            r0 = PARITY * NA + c % NA
            mbarrier.wait(a_ready.index(r0), (c // NA) & 1)
            sc = warpgroup_mma(x_a.index(r0), k1t, gl.zeros([GH, BLOCK_N], gl.float32, s_layout),
                               use_acc=False)
            if not SCALED_V:
                mbarrier.arrive(a_empty.index(r0), count=1)  # read: the slot may be refilled
            c += 1
            for k in range(k_first, k_last, 2):
                r1 = PARITY * NA + c % NA
                mbarrier.wait(a_ready.index(r1), (c // NA) & 1)
                nxt = warpgroup_mma(x_a.index(r1), k1t, gl.zeros([GH, BLOCK_N], gl.float32, s_layout),
                                    use_acc=False, is_async=True)  # in flight under the softmax
                m, l, acc = _ring_step(sc, m, l, acc, m_vis, v1, x_vs, r0, V2, off0 + k * stride_kn,
                                       qk_scale, SCALED_V)
                if SCALED_V:
                    mbarrier.arrive(a_empty.index(r0), count=1)
                sc = warpgroup_mma_wait(num_outstanding=0, deps=(nxt, ))
                if not SCALED_V:
                    mbarrier.arrive(a_empty.index(r1), count=1)
                r0 = r1
                c += 1
            m, l, acc = _ring_step(sc, m, l, acc, m_vis, v1, x_vs, r0, V2, off0 + k_last * stride_kn,
                                   qk_scale, SCALED_V)
            if SCALED_V:
                mbarrier.arrive(a_empty.index(r0), count=1)
    else:
        for k in range(k_first, i + 1, 2):
            r = PARITY * NA + c % NA
            mbarrier.wait(a_ready.index(r), (c // NA) & 1)
            sc = warpgroup_mma(x_a.index(r), k1t, gl.zeros([GH, BLOCK_N], gl.float32, s_layout),
                               use_acc=False)
            if not SCALED_V:
                mbarrier.arrive(a_empty.index(r), count=1)
            m, l, acc = _ring_step(sc, m, l, acc, m_vis, v1, x_vs, r, V2, off0 + k * stride_kn,
                                   qk_scale, SCALED_V)
            if SCALED_V:
                mbarrier.arrive(a_empty.index(r), count=1)
            c += 1
    return m, l, acc, c


@gluon.jit
def _consume_operands(args, PARITY: gl.constexpr, PIPELINE: gl.constexpr):
    """:func:`_consume` with the operands ``a = q * k2[k]`` read from shared memory, where the
    operand warp group (:func:`_operand_group`) put them: ring ``PARITY``, one slot per key in
    this consumer's order. ``S = a @ K1^T`` then takes both operands from shared memory, and the
    consumer holds neither ``q`` nor ``a`` in registers. With ``PIPELINE`` the next key's logits
    GEMM is issued before this key's softmax (:func:`_ring_keys`). Returns ``(m, l, acc)``."""
    (Q, K2, V2, bufs_k1, bufs_v1, ready, empty, x_acc, x_m, x_l, x_q, done,
     q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, qk_scale, k1_desc, v1_desc,
     x_a, a_ready, a_empty, x_vs) = args
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    BLOCK_N: gl.constexpr = bufs_k1.type.shape[1]
    D: gl.constexpr = bufs_k1.type.shape[2]
    SCALED_V: gl.constexpr = x_vs.type.shape[0] > 1
    m, l, acc, o_n, k_first, k_last = _consumer_start(BLOCK_N, D, k_lo, i, PARITY)
    off0 = kv_row0 + col  # the offset of row 0 of K2 / V2
    c = 0  # keys taken from the ring so far: its slot and phase
    ring = (x_a, x_vs, a_ready, a_empty, V2, stride_kn)
    for t in range(n_tiles):
        s = t % STAGES
        mbarrier.wait(ready.index(s), (t // STAGES) & 1)
        k1t = bufs_k1.index(s).permute((1, 0))  # [D, BLOCK_N]: B of S = a K1^T
        v1 = bufs_v1.index(s)  # [BLOCK_N, D]
        j0 = i + 1 - (t + 1) * BLOCK_N  # the tile's lowest key
        cols = (j0 + o_n >= lo1)[None, :]  # [1, BLOCK_N]
        if PIPELINE and not SCALED_V:  # as in _consume
            m_vis = (cols, True)
        else:
            m_vis = (cols, j0 < lo1)
        m, l, acc, c = _ring_keys(ring, c, k1t, v1, m, l, acc, m_vis, k_first, k_last, i, off0, qk_scale,
                                  PARITY, PIPELINE, SCALED_V)
        mbarrier.arrive(empty.index(s), count=1)
    if PARITY == 1:
        _handoff(x_acc, x_m, x_l, done, m, l, acc)
    return m, l, acc


@gluon.jit
def _consumer0(args, PIPELINE: gl.constexpr, OPERANDS: gl.constexpr):
    if OPERANDS:  # a = q * k2[k] from the operand group's ring
        m, l, acc = _consume_operands(args, 0, PIPELINE)
    else:
        m, l, acc = _consume(args, 0, PIPELINE)
    return m, l, acc


@gluon.jit
def _consumer1(args, PIPELINE: gl.constexpr, OPERANDS: gl.constexpr):
    if OPERANDS:
        _consume_operands(args, 1, PIPELINE)
    else:
        _consume(args, 1, PIPELINE)


@gluon.jit
def _operand_group(args, PIPELINE: gl.constexpr, OPERANDS: gl.constexpr):
    """The operand warp group (4 warps, with ``OPERANDS``): ``a = q * k2[k]`` (``[GH, D]``, rounded
    to bf16 once from the fp32 product, as every kernel rounds it) for every ``(tile, k)``, into
    ring ``k``'s parity (the consumer that takes ``k``), and the TMA loads of the ``K1``/``V1``
    tiles. With scaled values (``x_vs`` has slots) it also reads each ``V1`` tile once, as a third
    reader of the tile ring, and puts ``V1 * v2[k]`` beside each ``a``.

    Tile ``t + STAGES - 1`` goes into the slot of tile ``t - 1``. It is issued once this group
    has waited for step ``2 NA + 1`` of tile ``t`` to be free (both consumers are then past tile
    ``t - 1``, so the load does not wait), or at the tile's last key if it has fewer; every
    operand of tile ``t - 1`` is already in, so a wait there cannot deadlock.
    """
    (Q, K2, V2, bufs_k1, bufs_v1, ready, empty, x_acc, x_m, x_l, x_q, done,
     q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, qk_scale, k1_desc, v1_desc,
     x_a, a_ready, a_empty, x_vs) = args
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    D: gl.constexpr = bufs_k1.type.shape[2]
    NA: gl.constexpr = x_a.type.shape[0] // 2
    SCALED_V: gl.constexpr = x_vs.type.shape[0] > 1
    ld_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    o_r = gl.arange(0, GH, gl.SliceLayout(1, ld_layout))
    o_d = gl.arange(0, D, gl.SliceLayout(0, ld_layout))
    q = gl.load(Q + q_row0 + o_r[:, None] * D + o_d[None, :])  # [GH, D] bf16, as stored
    off0 = kv_row0 + col
    for t0 in gl.static_range(STAGES - 1):  # the first tiles; the others are issued in the loop
        if t0 < n_tiles:
            _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t0, i, col)
    nk = i + 1 - k_lo  # keys in the short window
    u_issue = gl.minimum(2 * NA + 1, nk - 1)
    for t in range(n_tiles):
        if SCALED_V:  # this tile's values, read once and released: the group holds a copy
            s = t % STAGES
            mbarrier.wait(ready.index(s), (t // STAGES) & 1)
            v1 = bufs_v1.index(s).load(ld_layout).to(gl.float32)  # [BLOCK_N, D]
            mbarrier.arrive(empty.index(s), count=1)
        for u in range(0, nk):
            par = u % 2
            # this key's step in its ring: keys of its parity per tile, times the tiles before
            c = t * ((nk + 1 - par) // 2) + u // 2
            r = par * NA + c % NA
            mbarrier.wait(a_empty.index(r), ((c // NA) & 1) ^ 1)  # its last a has been read
            k2 = gl.load(K2 + off0 + (k_lo + u) * stride_kn + o_d).to(gl.float32)  # [D]
            a = (q.to(gl.float32) * k2[None, :]).to(gl.bfloat16)  # [GH, D]: exact, one rounding
            x_a.index(r).store(a)
            if SCALED_V:  # V1 * v2[k], [BLOCK_N, D]: the values the consumer's P meets
                v2 = gl.load(V2 + off0 + (k_lo + u) * stride_kn + o_d).to(gl.float32)  # [D]
                x_vs.index(r).store((v1 * v2[None, :]).to(gl.bfloat16))
            fence_async_shared()  # generic-proxy stores, then the consumer's wgmma reads them
            mbarrier.arrive(a_ready.index(r), count=1)
            if u == u_issue:
                if t + STAGES - 1 < n_tiles:
                    _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t + STAGES - 1, i, col)


@gluon.jit
def _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t, i, col):
    """TMA loads of the long window's tile ``t`` (counted from the query
    down) into its ring slot, once every warp group that reads the ring has
    released the slot's previous tile."""
    STAGES: gl.constexpr = bufs_k1.type.shape[0]
    BLOCK_N: gl.constexpr = bufs_k1.type.shape[1]
    s = t % STAGES
    mbarrier.wait(empty.index(s), ((t // STAGES) & 1) ^ 1)
    mbarrier.expect(ready.index(s), 2 * k1_desc.block_type.nbytes)
    j0 = i + 1 - (t + 1) * BLOCK_N  # < 0: the descriptor zero-fills those rows
    tma.async_copy_global_to_shared(k1_desc, [j0, col], ready.index(s),
                                    bufs_k1.index(s))
    tma.async_copy_global_to_shared(v1_desc, [j0, col], ready.index(s),
                                    bufs_v1.index(s))


@gluon.jit
def _loader(args, PIPELINE: gl.constexpr, OPERANDS: gl.constexpr):
    """TMA loads of the long window's tiles, from the query down, into the ring."""
    (Q, K2, V2, bufs_k1, bufs_v1, ready, empty, x_acc, x_m, x_l, x_q, done,
     q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, qk_scale,
     k1_desc, v1_desc, x_a, a_ready, a_empty, x_vs) = args
    for t in range(n_tiles):
        _load_tile(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty, t, i, col)


@gluon.jit
def _program(N, Hq, Hkv, W1, W2, D: gl.constexpr, BLOCK_N: gl.constexpr):
    """What program ``(i, b * Hkv + g)`` owns (position ``i``, the 64 query heads of KV head ``g``)
    and its windows: ``(i, b, g, lo1, k_lo, n_tiles, stride_kn, kv_row0, col, q_row0)``, the first
    long- and short-window keys, the long window's tiles, and element offsets into ``[B, N, H,
    D]`` tensors (``kv_row0 + col``: row 0 of the key/value head, ``q_row0``: the first head)."""
    i = gl.program_id(0)
    i_bg = gl.program_id(1)
    b = i_bg // Hkv
    g = i_bg % Hkv
    lo1 = gl.maximum(i - W1 + 1, 0)
    k_lo = gl.maximum(i - W2 + 1, 0)
    n_tiles = (i + 1 - lo1 + BLOCK_N - 1) // BLOCK_N
    stride_kn = Hkv * D
    kv_row0 = b * N * stride_kn
    col = g * D
    q_row0 = ((b * N + i) * Hq + g * GH) * D
    return i, b, g, lo1, k_lo, n_tiles, stride_kn, kv_row0, col, q_row0


@gluon.jit
def _tile_ring(K1, V1, kv_row0, N, stride_kn, D: gl.constexpr, BLOCK_N: gl.constexpr,
               STAGES: gl.constexpr, READERS: gl.constexpr):
    """The TMA descriptors of one batch's ``K1``/``V1`` and a ``STAGES``-deep shared-memory ring
    of ``[BLOCK_N, D]`` tiles with its ``ready`` (one TMA arrival) and ``empty`` (``READERS``
    releases) mbarriers: ``(k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty)``."""
    tile_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, D], gl.bfloat16)
    # one descriptor per batch: rows before the sequence are zero-filled, never another batch's
    k1_desc = tma.make_tensor_descriptor(K1 + kv_row0, [N, stride_kn], [stride_kn, 1], [BLOCK_N, D],
                                         tile_layout)
    v1_desc = tma.make_tensor_descriptor(V1 + kv_row0, [N, stride_kn], [stride_kn, 1], [BLOCK_N, D],
                                         tile_layout)
    bufs_k1 = gl.allocate_shared_memory(gl.bfloat16, [STAGES, BLOCK_N, D], tile_layout)
    bufs_v1 = gl.allocate_shared_memory(gl.bfloat16, [STAGES, BLOCK_N, D], tile_layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for s in gl.static_range(STAGES):
        mbarrier.init(ready.index(s), count=1)
        mbarrier.init(empty.index(s), count=READERS)
    return k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty


@gluon.jit
def _hopper_fwd_kernel(Q, K1, K2, V1, V2, O, LSE, N, Hq, Hkv, W1, W2, qk_scale,
                       D: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
                       PIPELINE: gl.constexpr = False, OPERANDS: gl.constexpr = False,
                       NA: gl.constexpr = 2, REGS_C: gl.constexpr = 240, REGS_W: gl.constexpr = 24,
                       SCALED_V: gl.constexpr = False):
    """Forward for GQA 64; grid ``(N, B * Hkv)``: program ``(i, b * Hkv + g)`` owns the 64 query
    heads of KV head ``g`` at position ``i`` and writes their ``O`` and LSE. Warps: 4 (consumer
    0) + 4 (consumer 1) + 1 (loader); with ``OPERANDS``, 4 + 4 + 4 (the operand group, which
    also issues the loads; ``NA`` ring slots per consumer). ``REGS_C`` / ``REGS_W``: setmaxnreg
    of consumer 1 and of the third group (consumer 0 gets the rest of ``3 * 168``). FLOPs as the
    portable kernel: ``4 D`` per visible triple on tensor cores."""
    i, b, g, lo1, k_lo, n_tiles, stride_kn, kv_row0, col, q_row0 = _program(N, Hq, Hkv, W1, W2, D, BLOCK_N)
    # both consumers release a tile, and the operand group where it scales the values
    k1_desc, v1_desc, bufs_k1, bufs_v1, ready, empty = _tile_ring(K1, V1, kv_row0, N, stride_kn, D, BLOCK_N,
                                                                  STAGES, 3 if OPERANDS and SCALED_V else 2)
    done = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(done, count=1)
    x_acc = gl.allocate_shared_memory(gl.float32, [GH, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]))
    x_m = gl.allocate_shared_memory(gl.float32, [GH], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    x_l = gl.allocate_shared_memory(gl.float32, [GH], gl.SwizzledSharedLayout(1, 1, 1, [0]))
    # q for the pipelined consumers, which read it from shared memory at every key
    q_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
    o_qr = gl.arange(0, GH, gl.SliceLayout(1, q_layout))
    o_qd = gl.arange(0, D, gl.SliceLayout(0, q_layout))
    if OPERANDS:  # the operand group reads q from global memory; rings of a, one per consumer
        x_q = gl.allocate_shared_memory(gl.bfloat16, [1, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]))
        a_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([GH, D], gl.bfloat16)
        x_a = gl.allocate_shared_memory(gl.bfloat16, [2 * NA, GH, D], a_layout)
        a_ready = gl.allocate_shared_memory(gl.int64, [2 * NA, 1], mbarrier.MBarrierLayout())
        a_empty = gl.allocate_shared_memory(gl.int64, [2 * NA, 1], mbarrier.MBarrierLayout())
        for r in gl.static_range(2 * NA):
            mbarrier.init(a_ready.index(r), count=1)
            mbarrier.init(a_empty.index(r), count=1)
        if SCALED_V:  # V1 * v2[k] beside each a, in the same slot
            v_layout: gl.constexpr = gl.NVMMASharedLayout.get_default_for([BLOCK_N, D], gl.bfloat16)
            x_vs = gl.allocate_shared_memory(gl.bfloat16, [2 * NA, BLOCK_N, D], v_layout)
        else:  # a one-slot stand-in says "not scaled"
            x_vs = gl.allocate_shared_memory(gl.bfloat16, [1, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]))
    else:
        x_q = gl.allocate_shared_memory(gl.bfloat16, [GH, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]),
                                        gl.load(Q + q_row0 + o_qr[:, None] * D + o_qd[None, :]))
        x_a = x_q  # unused stand-ins
        a_ready = done
        a_empty = done
        x_vs = gl.allocate_shared_memory(gl.bfloat16, [1, D], gl.SwizzledSharedLayout(1, 1, 1, [1, 0]))
    fence_async_shared()

    args = (Q, K2, V2, bufs_k1, bufs_v1, ready, empty, x_acc, x_m, x_l, x_q, done,
            q_row0, kv_row0, col, i, lo1, k_lo, n_tiles, stride_kn, qk_scale, k1_desc, v1_desc,
            x_a, a_ready, a_empty, x_vs)
    if OPERANDS:
        m0, l0, acc0 = gl.warp_specialize(
            [(_consumer0, (args, PIPELINE, OPERANDS)), (_consumer1, (args, PIPELINE, OPERANDS)),
             (_operand_group, (args, PIPELINE, OPERANDS))], [4, 4], [REGS_C, REGS_W])
    else:
        m0, l0, acc0 = gl.warp_specialize(
            [(_consumer0, (args, PIPELINE, OPERANDS)), (_consumer1, (args, PIPELINE, OPERANDS)),
             (_loader, (args, PIPELINE, OPERANDS))], [4, 1], [REGS_C, REGS_W])

    # merge consumer 1's online softmax into consumer 0's
    s_layout: gl.constexpr = _mma_layout(BLOCK_N, 4)
    o_layout: gl.constexpr = _mma_layout(D, 4)
    mbarrier.wait(done, 0)
    acc1 = x_acc.load(o_layout)
    m1 = x_m.load(gl.SliceLayout(1, s_layout))
    l1 = x_l.load(gl.SliceLayout(1, s_layout))
    m = gl.maximum(m0, m1)
    a0 = gl.exp2(m0 - m)
    a1 = gl.exp2(m1 - m)
    l = l0 * a0 + l1 * a1
    a0o = gl.convert_layout(a0, gl.SliceLayout(1, o_layout))
    a1o = gl.convert_layout(a1, gl.SliceLayout(1, o_layout))
    lo = gl.convert_layout(l, gl.SliceLayout(1, o_layout))
    out = (acc0 * a0o[:, None] + acc1 * a1o[:, None]) / lo[:, None]
    o_r = gl.arange(0, GH, gl.SliceLayout(1, o_layout))
    o_d = gl.arange(0, D, gl.SliceLayout(0, o_layout))
    gl.store(O + q_row0 + o_r[:, None] * D + o_d[None, :], out.to(gl.bfloat16))
    o_rs = gl.arange(0, GH, gl.SliceLayout(1, s_layout))
    gl.store(LSE + (b * Hq + g * GH + o_rs) * N + i, m + gl.log2(l))


def hopper_supported(q, k1, w1: int, w2: int, block_n: int = 128) -> str | None:
    """``None`` when :func:`hopper_forward` takes these inputs, else the reason it does not.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``
    k1 : Tensor ``[B, N, Hkv, D]``
    w1, w2 : int
        The long and the short window.
    block_n : int, default 128
        Long-window keys per tile.

    Returns
    -------
    str or None
    """
    if q.dim() != 4 or k1.dim() != 4:
        return "q and k1 must be [B, N, H, D]"
    if q.shape[2] != GH.value * k1.shape[2]:
        return f"needs {GH.value} query heads per key/value head, got {q.shape[2]} / {k1.shape[2]}"
    if q.dtype != torch.bfloat16:
        return f"needs bfloat16, got {q.dtype}"
    if q.shape[3] not in (64, 128):
        return f"needs head_dim 64 or 128, got {q.shape[3]}"
    if block_n not in (64, 128) or w1 % block_n or w1 < w2 or w2 < 1:
        return f"needs w1 >= w2 >= 1 and w1 a multiple of block_n in (64, 128), got {w1}, {w2}, {block_n}"
    if not q.is_cuda or torch.cuda.get_device_capability(q.device)[0] != 9:
        return "needs a Hopper GPU (sm_90)"
    return None


def default_block_n(head_dim: int, w1: int | None = None, *, operands: bool = False,
                    stages: int = 2, scaled_values: bool = False) -> int:
    """Long-window keys per tile: 128 where it divides ``w1`` and fits in shared memory, else 64.

    At D 128, GQA 64, 512x32 on an H200, 128-key tiles run at 448 TFLOPS against 426 for 64
    (``results/h200/hopper_sweep_s29.json``), although they spill 24 words a thread where
    64-key tiles spill none (``python tools/sm90.py hopper``). As the default, on an H100: 458
    TFLOPS at D 128 and 349 at D 64, against the portable forward's 536 and 391 in the same run
    (``results/h100/hopper_s30.json``).

    Parameters
    ----------
    head_dim : int
        ``D``.
    w1 : int, optional
        The long window, which a tile must divide (:func:`hopper_supported`); without it, the
        tile for a ``w1`` that 128 divides.
    operands, stages, scaled_values : optional
        As for :func:`hopper_forward`: with ``operands`` the operand rings must fit
        (:func:`operand_shared_bytes`), which at D 128 they do only with 64-key tiles.

    Returns
    -------
    int

    Examples
    --------
    >>> default_block_n(128, 512), default_block_n(128, 192), default_block_n(64, 512)
    (128, 64, 128)
    >>> default_block_n(128, 512, operands=True, scaled_values=True)
    64
    """
    if w1 is not None and w1 % 128:
        return 64
    if operands and operand_shared_bytes(head_dim, 128, stages, scaled_values) > SHARED_LIMIT:
        return 64
    return 128


def operand_group_regs(head_dim: int, pipeline: bool = False,
                       scaled_values: bool = False) -> tuple[int, int]:
    """setmaxnreg of ``(each consumer, the operand group)`` with ``operands=True``; the three warp
    groups share ``3 * 168`` registers a thread. The operand group holds ``q`` (``[64, D]`` bf16,
    32 registers a thread at D 128) and forms one ``a`` at a time; with ``scaled_values`` it also
    holds a value tile and the consumers hold no product of ``P V1``, so registers move to the
    group. Each split is one that compiles without spills (``python tools/sm90.py hopper``), but
    for 4 words at D 128 pipelined without ``scaled_values``.

    Parameters
    ----------
    head_dim : int
        ``D`` (64 or 128).
    pipeline : bool, default False
        The pipelined consumers (two logits accumulators live at once).
    scaled_values : bool, default False
        The operand group also forms ``V1 * v2[k]``.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> operand_group_regs(128), operand_group_regs(128, pipeline=True)
    ((216, 72), (224, 56))
    >>> operand_group_regs(128, scaled_values=True)
    (200, 104)
    """
    if scaled_values:
        return (200, 104)
    return (224, 56) if head_dim > 64 and pipeline else (216, 72)


#: Shared memory a program may take on an H200 (227 KB).
SHARED_LIMIT = 232448


def operand_shared_bytes(head_dim: int, block_n: int, stages: int, scaled_values: bool = False) -> int:
    """Shared memory of the Gluon forward with ``operands=True``: the ``K1``/``V1`` ring, consumer
    1's state for the merge, the two operand rings (``operand_slots_fwd`` slots each, ``a`` and with
    ``scaled_values`` a value tile a slot), the mbarriers and small stand-ins. At most 250 bytes
    above what the compiler allocates (``python tools/sm90.py hopper``).

    Parameters
    ----------
    head_dim, block_n, stages : int
        ``D``, the long-window keys per tile and the depth of the tile ring.
    scaled_values : bool, default False

    Returns
    -------
    int

    Examples
    --------
    >>> operand_shared_bytes(128, 64, 2) <= SHARED_LIMIT < operand_shared_bytes(128, 64, 3, True)
    True
    """
    na = operand_slots_fwd(head_dim, block_n)
    slot = GH.value * head_dim * 2 + (block_n * head_dim * 2 if scaled_values else 0)
    small = 8 * (2 * stages + 1 + 4 * na) + 512  # mbarriers, one-row stand-ins, alignment
    return stages * 4 * block_n * head_dim + GH.value * (head_dim + 2) * 4 + 2 * na * slot + small


def operand_slots_fwd(head_dim: int, block_n: int) -> int:
    """Ring slots per consumer with ``operands=True`` (``64 * D`` bf16 a slot): two, one key of
    slack between the operand group and each consumer; one at D 128 with 128-key tiles, where a
    second would leave 2 KB of the H200's 227 KB of shared memory (``tools/sm90.py hopper``).

    Parameters
    ----------
    head_dim, block_n : int
        ``D`` and the long-window keys per tile.

    Returns
    -------
    int

    Examples
    --------
    >>> operand_slots_fwd(128, 64), operand_slots_fwd(128, 128), operand_slots_fwd(64, 128)
    (2, 1, 2)
    """
    return 1 if head_dim > 64 and block_n > 64 else 2


def hopper_forward(q, k1, k2, v1, v2, w1: int, w2: int, scale: float, block_n: int | None = None,
                   stages: int = 2, pipeline: bool = False, operands: bool = False,
                   scaled_values: bool = False):
    """Forward of the Gluon kernel: ``(o, lse)`` as :func:`~simplex_lib.ops.two_simplicial.forward.forward`.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``, bf16, contiguous, ``Hq = 64 Hkv``
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]``, like ``q``
    w1, w2 : int
        The long and the short window (``w1 >= w2``, ``w1`` a multiple of ``block_n``).
    scale : float
        Logit scale.
    block_n : int, optional
        Long-window keys per tile (64 or 128); default :func:`default_block_n`.
    stages : int, default 2
        Depth of the K1/V1 ring.
    pipeline : bool, default False
        Issue the next key's logits GEMM before this key's softmax (q then lives in shared
        memory). At D128 it compiles with spills (22 words a thread at BLOCK_N 64), at D64
        without.
    operands : bool, default False
        A third warp group forms the logits' operands ``a = q * k2[k]`` into shared memory for
        both consumers and issues the TMA loads (``_operand_group``), so that a consumer
        holds neither ``q`` nor ``a`` and its logits GEMM reads both operands from shared
        memory. Compiles without spills at D 64 (BLOCK_N 128) and D 128 (BLOCK_N 64). On an
        H200 (GQA 64, 512x32, ``results/h200/hopper_sweep_s29.json``) it is slower than
        without at D 128 (408.6 against 425.6 TFLOPS with 64-key tiles); see
        ``scaled_values``.
    scaled_values : bool, default False
        With ``operands``: the operand group also forms each key's value tile ``V1 * v2[k]``
        (``[block_n, D]``, rounded once to bf16 from the fp32 product), so that a consumer's
        second GEMM accumulates ``P @ (V1 * v2[k])`` into the output directly, with no product
        of its own to scale and add. The output rounds the values once more than the other
        variants (the log-sum-exp is unchanged). At D 128 it fits in shared memory with 64-key
        tiles and two stages only. On the H200 of ``operands``: 445.9 TFLOPS at D 128 (64-key
        tiles), and 378.9 at D 64 with ``pipeline=True`` and 128-key tiles, the fastest Gluon
        forward there (the portable forward: 532.8 and 384.9).

    Returns
    -------
    o : Tensor like ``q``
    lse : float32 Tensor ``[B, Hq, N]``, base 2

    Raises
    ------
    ValueError
        If :func:`hopper_supported` gives a reason, or a tensor is not contiguous or of another
        shape than ``k1``.
    """
    if not isinstance(operands, bool):
        raise ValueError(f"hopper_forward: operands must be a bool, got {operands!r}")
    if not isinstance(scaled_values, bool):
        raise ValueError(f"hopper_forward: scaled_values must be a bool, got {scaled_values!r}")
    if scaled_values and not operands:
        raise ValueError("hopper_forward: scaled_values=True needs operands=True (the operand group "
                         "forms the scaled values)")
    if operands and stages == 1:
        raise ValueError("hopper_forward: operands=True needs stages >= 2 (the operand group "
                         "loads tile t + 1 while the consumers work on tile t)")
    if block_n is None:
        block_n = default_block_n(q.shape[-1], w1, operands=operands, stages=stages,
                                  scaled_values=scaled_values) if q.dim() == 4 else 128
    if operands and q.dim() == 4:
        need = operand_shared_bytes(q.shape[-1], block_n, stages, scaled_values)
        if need > SHARED_LIMIT:
            raise ValueError(f"hopper_forward: block_n={block_n} and stages={stages} with operands=True"
                             f"{' and scaled_values=True' if scaled_values else ''} need {need} bytes of "
                             f"shared memory at head_dim {q.shape[-1]}, over the {SHARED_LIMIT} a program has")
    why = hopper_supported(q, k1, w1, w2, block_n)
    if why is not None:
        raise ValueError(f"hopper_forward: {why}")
    if any(t.shape != k1.shape or t.dtype != q.dtype for t in (k2, v1, v2)):
        raise ValueError("hopper_forward: k1, k2, v1 and v2 must have one shape and q's dtype")
    if not all(t.is_contiguous() for t in (q, k1, k2, v1, v2)):
        raise ValueError("hopper_forward: every input must be contiguous")
    if not isinstance(stages, int) or not 1 <= stages <= 4:
        raise ValueError(f"stages must be an int in [1, 4], got {stages!r}")

    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    o = torch.empty_like(q)
    lse = torch.empty((B, Hq, N), device=q.device, dtype=torch.float32)
    # the device-side TMA descriptors live in a scratch buffer Triton allocates through this
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device=q.device))
    regs = operand_group_regs(D, bool(pipeline), scaled_values) if operands else (240, 24)
    _hopper_fwd_kernel[(N, B * Hkv)](q, k1, k2, v1, v2, o, lse, N, Hq, Hkv, w1, w2, scale * LOG2E,
                                     D=D, BLOCK_N=block_n, STAGES=stages, PIPELINE=bool(pipeline),
                                     OPERANDS=operands, NA=operand_slots_fwd(D, block_n),
                                     REGS_C=regs[0], REGS_W=regs[1], SCALED_V=scaled_values,
                                     num_warps=4, maxnreg=168)
    return o, lse
