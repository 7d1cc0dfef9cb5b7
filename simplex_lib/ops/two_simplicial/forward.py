"""Forward kernel of sliding-window 2-simplicial attention.

Query ``i`` (head ``h``, KV head ``g = h // G``) attends jointly to the
pairs ``(j, k)`` with ``i - w1 < j <= i`` and ``i - w2 < k <= i``; the caller
orders the two key/value sets so that ``w1 >= w2`` (the logits and the output
are symmetric under swapping the sets).

Names follow one convention: ``b_`` block values, ``p_`` pointers, ``o_``
offsets, ``m_`` masks, ``i_`` program ids; a shape comment gives each block's
shape. The chapter "The forward kernel" reads the helpers below one by one.
Lines stay within 78 columns so that the chapters show them whole.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import (fwd_configs, interpreting, launch_with_fallback,
                      max_shared_memory, pair_tiling, row_tiling,
                      tma_available, tma_launch)

__all__ = ["LOG2E", "tile_program", "tile_rows", "tile_range", "window_mask",
           "tail_split", "carry_in", "inner_tiles", "online_softmax_step",
           "scaled_softmax_step",
           "as_gemm_product", "rows_of_positions", "offset_rows_source",
           "load_offset_rows",
           "pair_rows", "merge_pairs", "forward_pairs",
           "forward"]

LOG2E = 1.4426950408889634


@triton.jit
def tile_rows(i0, i_hb, i_g, G, N, GH: tl.constexpr, POS: tl.constexpr):
    """The ``BLOCK_M = GH * POS`` rows one program owns, as (position, head).

    Row ``r`` is head ``i_hb * GH + r % GH`` of KV group ``i_g`` at position
    ``i0 + r // GH``; rows past the group or the sequence are masked out of
    every load and store. Returns ``(o_pos, o_h, m_row)``, each
    ``[BLOCK_M]``.

    Parameters
    ----------
    i0 : int
        First position of the tile.
    i_hb : int
        Head block of the tile inside the KV group.
    i_g : int
        The KV head.
    G, N : int
        Query heads per KV head; sequence length.
    GH, POS : constexpr int
        Head slots and positions per tile.

    Returns
    -------
    o_pos : [BLOCK_M] int block
        Position of each row.
    o_h : [BLOCK_M] int block
        Query head of each row, ``i_g * G + i_hb * GH + r % GH``.
    m_row : [BLOCK_M] bool block
        Rows inside the group and the sequence.
    """
    o_r = tl.arange(0, GH * POS)
    o_hg = i_hb * GH + o_r % GH  # head inside the group
    o_pos = i0 + o_r // GH
    m_row = (o_hg < G) & (o_pos < N)
    return o_pos, i_g * G + o_hg, m_row


@triton.jit
def window_mask(o_j, o_pos, k, lo1, W1, W2, ONE_POS: tl.constexpr):
    """Which ``(row, j)`` of a tile see the pair ``(j, k)``: ``[1, BLOCK_N]``
    when every row is the same position (the window is a column range), else
    ``[BLOCK_M, BLOCK_N]``.

    Parameters
    ----------
    o_j : [BLOCK_N] int block
        Positions of the tile's long-window keys.
    o_pos : [BLOCK_M] int block
        Position of each row.
    k : int
        The short-window key.
    lo1 : int
        First key of the long window (used with ``ONE_POS``, where the
        loop bounds already keep ``k`` and ``j <= i`` inside the windows).
    W1, W2 : int
        The two windows.
    ONE_POS : constexpr bool
        Every row of the tile is the same position.

    Returns
    -------
    m_vis : bool block
        ``[1, BLOCK_N]`` with ``ONE_POS``, else ``[BLOCK_M, BLOCK_N]``.
    """
    if ONE_POS:
        m_vis = (o_j >= lo1)[None, :]
    else:
        m_vis = ((o_j[None, :] > o_pos[:, None] - W1)
                 & (o_j[None, :] <= o_pos[:, None]))
        m_k = (k > o_pos - W2) & (k <= o_pos)  # [BLOCK_M]
        m_vis = m_vis & (o_j >= 0)[None, :] & m_k[:, None]
    return m_vis


@triton.jit
def tile_program(N, Hkv, G, n_hblocks, stride_qb, stride_qn, stride_qh,
                 HEAD_DIM: tl.constexpr, GH: tl.constexpr,
                 POS: tl.constexpr):
    """The rows this program owns, for the grid
    ``(cdiv(N, POS) * n_hblocks, B * Hkv)`` of the forward and the dq
    kernel: program ``(i_t, i_bg)`` takes batch ``i_bg // Hkv``, KV group
    ``i_bg % Hkv``, positions from ``i0 = (i_t // n_hblocks) * POS`` and
    head block ``i_t % n_hblocks`` (:func:`tile_rows`).

    Parameters
    ----------
    N, Hkv, G, n_hblocks : int
        Sequence length, KV heads, query heads per KV head, head blocks per
        group.
    stride_qb, stride_qn, stride_qh : int
        Strides of ``Q`` (and ``O``, ``dO``, ``dQ``, laid out alike).
    HEAD_DIM, GH, POS : constexpr int
        ``D``, heads and positions per tile.

    Returns
    -------
    tuple
        ``(i_b, i_g, i0, o_pos, o_h, m_row, o_d, o_q)``: the batch, the KV
        group, the first position, the rows' positions, heads and mask
        ``[BLOCK_M]``, the head-dimension offsets ``[D]`` and the rows'
        offsets in ``Q`` ``[BLOCK_M, D]``.
    """
    i_t, i_bg = tl.program_id(0), tl.program_id(1)
    i_b, i_g = i_bg // Hkv, i_bg % Hkv
    i0 = (i_t // n_hblocks) * POS
    o_pos, o_h, m_row = tile_rows(i0, i_t % n_hblocks, i_g, G, N, GH, POS)
    o_d = tl.arange(0, HEAD_DIM)
    o_q = (i_b * stride_qb + o_pos[:, None] * stride_qn
           + o_h[:, None] * stride_qh + o_d[None, :])  # [BLOCK_M, D]
    return i_b, i_g, i0, o_pos, o_h, m_row, o_d, o_q


@triton.jit
def tile_range(i0, N, W1, W2, POS: tl.constexpr, BLOCK_N: tl.constexpr):
    """What a query tile's positions ``[i0, i0 + POS)`` see of the windows.

    Returns ``(hi, lo1, k_lo, n_tiles, n_full)``: one past the tile's last
    position, the first key of the long window and of the short one, the
    number of ``BLOCK_N`` tiles that cover ``[lo1, hi)`` walking down from
    ``hi``, and how many of them (the first ``n_full``) lie inside every
    row's window and need no mask (with several positions per tile: none).

    Parameters
    ----------
    i0 : int
        First position of the tile.
    N : int
        Sequence length.
    W1, W2 : int
        The long and the short window.
    POS : constexpr int
        Positions per tile.
    BLOCK_N : constexpr int
        Long-window keys per tile.

    Returns
    -------
    hi, lo1, k_lo, n_tiles, n_full : int
        As above.
    """
    hi = tl.minimum(i0 + POS, N)  # one past the last position of the tile
    lo1 = tl.maximum(i0 - W1 + 1, 0)
    k_lo = tl.maximum(i0 - W2 + 1, 0)
    n_tiles = (hi - lo1 + BLOCK_N - 1) // BLOCK_N
    # With one position per tile only the last (lowest) tile is partial.
    if POS == 1:
        n_full = (hi - lo1) // BLOCK_N
    else:
        n_full = 0
    return hi, lo1, k_lo, n_tiles, n_full


@triton.jit
def tail_split(hi, lo1, BLOCK_N: tl.constexpr, TAIL: tl.constexpr):
    """Split the keys ``[lo1, hi)`` into whole ``BLOCK_N`` tiles walked down
    from ``hi`` and at most one ``TAIL``-key tile below them.

    A tile of ``POS`` positions meets ``w1 + POS - 1`` keys: at 512x32 and
    GQA 4 (16 positions) that is four tiles of 128 and 15 keys, which a
    fifth whole tile would cover at 12% use. The narrower tile takes a
    remainder of at most ``TAIL`` keys; a larger one gets a whole tile, as
    without the split.

    Parameters
    ----------
    hi, lo1 : int
        One past the tile's last position, and its first long-window key
        (:func:`tile_range`).
    BLOCK_N, TAIL : constexpr int
        The two tile widths, ``TAIL < BLOCK_N``.

    Returns
    -------
    n_tiles, n_tail : int
        Whole tiles, and narrow ones (0 or 1).
    """
    n_keys = hi - lo1
    rem = n_keys % BLOCK_N
    n_tail = ((rem > 0) & (rem <= TAIL)).to(tl.int32)
    return (n_keys + BLOCK_N - 1) // BLOCK_N - n_tail, n_tail


@triton.jit
def inner_tiles(i0, hi, W1, W2, BLOCK_N: tl.constexpr):
    """Of the ``BLOCK_N`` tiles walked down from ``hi`` (:func:`tile_range`),
    the range ``[t_in, t_out)`` that needs no mask when the short window is
    walked by offset: no key past the tile's first position ``i0``, none
    before its last position's long window, none before the sequence, and
    (``i0 >= w2 - 1``) every row with a key at every offset. Empty
    (``t_out == t_in``) otherwise.

    Parameters
    ----------
    i0, hi : int
        The tile's first position and one past its last.
    W1, W2 : int
        The long and the short window.
    BLOCK_N : constexpr int
        Long-window keys per tile.

    Returns
    -------
    t_in, t_out : int
        As above.
    """
    t_in = (hi - 1 - i0 + BLOCK_N - 1) // BLOCK_N  # tiles holding keys past i0
    t_out = tl.maximum(tl.minimum(W1 // BLOCK_N, hi // BLOCK_N), t_in)
    return t_in, tl.where(i0 >= W2 - 1, t_out, t_in)


@triton.jit
def online_softmax_step(b_s, b_m, b_l):
    """One block of the online softmax, base 2.

    Returns ``(b_p, b_alpha, b_m, b_l)`` after block ``b_s``: ``b_m`` is the
    running row maximum, ``b_l`` the running sum of ``2^(s - m)``;
    ``b_alpha`` rescales what was accumulated under the old maximum.

    Parameters
    ----------
    b_s : [BLOCK_M, BLOCK_N] fp32 block
        Base-2 logits of the block, ``-inf`` where masked.
    b_m : [BLOCK_M] fp32 block
        Running maximum before the block (``-inf`` at the start).
    b_l : [BLOCK_M] fp32 block
        Running sum before the block.

    Returns
    -------
    b_p : [BLOCK_M, BLOCK_N] fp32 block
        ``2^(s - m)`` under the new maximum (zeros in a fully masked row).
    b_alpha : [BLOCK_M] fp32 block
        ``2^(m_old - m_new)``.
    b_m, b_l : [BLOCK_M] fp32 blocks
        The updated maximum and sum.
    """
    b_m_new = tl.maximum(b_m, tl.max(b_s, 1))  # [BLOCK_M]
    # A row with every logit masked so far keeps m = -inf: measure it
    # against 0 to get exact zeros.
    b_ref = tl.where(b_m_new == float("-inf"), 0.0, b_m_new)
    b_alpha = tl.math.exp2(b_m - b_ref)
    b_p = tl.math.exp2(b_s - b_ref[:, None])  # [BLOCK_M, BLOCK_N]
    b_l = b_l * b_alpha + tl.sum(b_p, 1)
    return b_p, b_alpha, b_m_new, b_l


@triton.jit
def scaled_softmax_step(b_s, b_m, b_l, qk_scale):
    """:func:`online_softmax_step` for logits ``b_s`` that still need the
    factor ``qk_scale`` (> 0): the forward keeps ``q`` as stored, not
    pre-scaled in fp32 (half the registers), and the backward recomputes
    the logits the same way. The factor rides on the block maximum and on
    the exponent's subtraction (one fused multiply-add).

    Parameters
    ----------
    b_s : [BLOCK_M, BLOCK_N] fp32 block
        Unscaled logits, ``-inf`` where masked.
    b_m, b_l : [BLOCK_M] fp32 blocks
        Running maximum (scaled, base 2) and sum, as in
        :func:`online_softmax_step`.
    qk_scale : float
        ``scale * log2(e)``.

    Returns
    -------
    b_p, b_alpha, b_m, b_l
        As :func:`online_softmax_step` returns them for ``qk_scale * b_s``.
    """
    b_m_new = tl.maximum(b_m, tl.max(b_s, 1) * qk_scale)  # [BLOCK_M]
    b_ref = tl.where(b_m_new == float("-inf"), 0.0, b_m_new)
    b_alpha = tl.math.exp2(b_m - b_ref)
    # [BLOCK_M, BLOCK_N]
    b_p = tl.math.exp2(b_s * qk_scale - b_ref[:, None])
    b_l = b_l * b_alpha + tl.sum(b_p, 1)
    return b_p, b_alpha, b_m_new, b_l


@triton.jit
def _fwd_load_kv1(p_k1, p_v1, stride_kn, o_j, o_d, o_pos, lo1, W1, b_bad,
                  POS: tl.constexpr):
    """Load the rows ``o_j`` of ``K1`` and ``V1`` (``[BLOCK_N, D]`` each).

    With one position per tile only the window itself is read. With several,
    rows of the tile see different keys: a non-finite value row is zeroed and
    the rows that see it are marked in ``b_bad``, so that no other row meets
    it as ``0 * NaN``. Returns ``(b_k1, b_v1, b_bad)``.
    """
    o_jd = o_j[:, None] * stride_kn + o_d[None, :]  # [BLOCK_N, D]
    if POS == 1:
        m_j = o_j >= lo1  # the exact window: nothing outside it is read
    else:
        m_j = o_j >= 0
    b_k1 = tl.load(p_k1 + o_jd, mask=m_j[:, None], other=0.0)  # [BLOCK_N, D]
    b_v1 = tl.load(p_v1 + o_jd, mask=m_j[:, None], other=0.0)  # [BLOCK_N, D]
    if POS > 1:
        # [BLOCK_N, D]
        m_fin = (b_v1 == b_v1) & (tl.abs(b_v1.to(tl.float32)) < float("inf"))
        m_nf = tl.min(m_fin.to(tl.int32), 1) == 0  # [BLOCK_N]
        m_sees = ((o_j[None, :] > o_pos[:, None] - W1)
                  & (o_j[None, :] <= o_pos[:, None]))  # [BLOCK_M, BLOCK_N]
        m_hit = (m_sees & m_nf[None, :]).to(tl.int32)
        b_bad = b_bad | (tl.max(m_hit, 1) > 0)
        b_v1 = tl.where(m_fin, b_v1, tl.zeros_like(b_v1))
    return b_k1, b_v1, b_bad


@triton.jit
def _fwd_tile(b_acc, b_m, b_l, b_bad, b_q, b_k1, b_v1, p_k2, p_v2,
              stride_kn, k_lo, k_hi, o_j, o_pos, lo1, o_d, W1, W2, qk_scale,
              MASK: tl.constexpr, ONE_POS: tl.constexpr, PREC: tl.constexpr):
    """The inner steps for one ``K1``/``V1`` tile: the short window's rows
    ``k`` one at a time.

    Each step: ``a = q * k2[k]`` (CUDA cores), ``s = a @ k1^T`` (tensor
    cores), the online softmax of ``s`` times ``scale * log2(e)``
    (:func:`scaled_softmax_step`), then ``acc += (p @ v1) * v2[k]``: the
    ``v2[k]`` factor is constant over ``j`` so it scales the ``[BLOCK_M, D]``
    product instead of the ``[BLOCK_N, D]`` value tile.
    """
    DT = b_k1.dtype
    for k in range(k_lo, k_hi):
        b_k2 = tl.load(p_k2 + k * stride_kn + o_d).to(tl.float32)  # [D]
        b_v2 = tl.load(p_v2 + k * stride_kn + o_d).to(tl.float32)  # [D]
        if not ONE_POS:
            # Rows of other positions may not see k: a non-finite v2[k] must
            # not reach them as 0 * NaN. Zero it, mark the rows that see it.
            m_fin = (b_v2 == b_v2) & (tl.abs(b_v2) < float("inf"))
            m_sees = (k > o_pos - W2) & (k <= o_pos)
            b_bad = b_bad | (m_sees & (tl.min(m_fin.to(tl.int32), 0) == 0))
            b_v2 = tl.where(m_fin, b_v2, 0.0)
        # -- logits, unscaled: the softmax step applies scale * log2(e)
        b_a = (b_q.to(tl.float32) * b_k2[None, :]).to(DT)  # [BLOCK_M, D]
        # [BLOCK_M, BLOCK_N]
        b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
        if MASK:
            m_vis = window_mask(o_j, o_pos, k, lo1, W1, W2, ONE_POS)
            b_s = tl.where(m_vis, b_s, float("-inf"))
        # -- update m, l and the accumulator
        b_p, b_alpha, b_m, b_l = scaled_softmax_step(b_s, b_m, b_l, qk_scale)
        # [BLOCK_M, D]
        b_pv = tl.dot(b_p.to(DT), b_v1, input_precision=PREC)
        b_acc = b_acc * b_alpha[:, None] + b_pv * b_v2[None, :]
    return b_acc, b_m, b_l, b_bad


@triton.jit
def as_gemm_product(b_x, o_d, PREC: tl.constexpr):
    """``b_x`` ``[BLOCK_M, D]`` times the identity on the tensor cores: the
    same values, held in the layout of a GEMM's product.

    The offset walk forms ``q * k2`` at every step and feeds it to a GEMM.
    With ``q`` held as loaded, the compiler multiplies in the load's layout
    and moves each product through shared memory into the GEMM's operand
    layout (a store, two barriers, a load). Held as a product, ``q`` meets
    each ``k2`` tile read from shared memory in that layout, and the GEMM
    takes ``q * k2`` from registers. Exact: one ``[BLOCK_M, D] x [D, D]``
    GEMM per program whose sums have one nonzero term.
    """
    # [D, D]
    b_eye = tl.where(o_d[:, None] == o_d[None, :], 1.0, 0.0).to(b_x.dtype)
    b_y = tl.dot(b_x, b_eye, input_precision=PREC)  # [BLOCK_M, D]
    return b_y.to(b_x.dtype)


@triton.jit
def rows_of_positions(b_x, GH: tl.constexpr):
    """A ``[POS, D]`` tile of consecutive positions as the ``[GH * POS, D]``
    rows of a tile (:func:`tile_rows`' order): row ``p`` repeated for the
    ``GH`` heads of position ``p``."""
    if GH == 1:
        return b_x
    else:
        POS: tl.constexpr = b_x.shape[0]
        D: tl.constexpr = b_x.shape[1]
        return tl.reshape(tl.broadcast_to(b_x[:, None, :], [POS, GH, D]),
                          [POS * GH, D])


@triton.jit
def offset_rows_source(X, N, stride_kn, POS: tl.constexpr,
                       HEAD_DIM: tl.constexpr, TMA: tl.constexpr):
    """What :func:`load_offset_rows` reads one key/value set from: ``X``, the
    set's pointer for this (batch, KV head), or with ``TMA`` a tensor
    descriptor of its ``[N, D]`` rows in ``[POS, D]`` blocks."""
    if TMA:
        return tl.make_tensor_descriptor(X, [N, stride_kn], [stride_kn, 1],
                                         [POS, HEAD_DIM])
    else:
        return X


@triton.jit
def load_offset_rows(p_x, s, i0, o_pos, m_row, o_d, stride_kn,
                     GH: tl.constexpr, TMA: tl.constexpr):
    """Step ``s`` of an offset walk: each row's row ``pos - s`` of one
    key/value set, ``[BLOCK_M, D]``, zeros outside the sequence.

    ``p_x`` is the set's pointer for this (batch, KV head), or with ``TMA``
    a tensor descriptor of its ``[N, D]`` rows with ``[POS, D]`` blocks: the
    rows of the tile's ``POS`` positions are then sequence rows
    ``i0 - s ... i0 - s + POS - 1``, one TMA copy (rows outside the
    sequence zero-filled by the copy), repeated for the ``GH`` heads.
    """
    if TMA:
        return rows_of_positions(p_x.load([i0 - s, 0]), GH)
    else:
        o_l = o_pos - s  # [BLOCK_M]
        m_l = (o_l >= 0) & m_row
        o_ld = o_l[:, None] * stride_kn + o_d[None, :]  # [BLOCK_M, D]
        return tl.load(p_x + o_ld, mask=m_l[:, None], other=0.0)


@triton.jit
def _fwd_tile_offset(b_acc, b_m, b_l, b_q, b_k1, b_v1, p_k2, p_v2,
                     stride_kn, o_j, o_pos, m_row, o_d, W1, W2, qk_scale,
                     i0, MASK: tl.constexpr, PREC: tl.constexpr,
                     GH: tl.constexpr, TMA: tl.constexpr):
    """The inner steps for one ``K1``/``V1`` tile, walking the short window
    by offset: step ``s`` pairs every row with its own key ``l = pos - s``.

    For a tile of several positions, :func:`_fwd_tile` walks the short
    window by absolute position: ``POS + w2 - 1`` steps, each visible to at
    most ``w2`` of the ``POS`` positions. Here every row loads its own
    ``K2``/``V2`` row (a gather, mostly cache hits: step ``s + 1`` reuses
    all but one of step ``s``'s rows; or with ``TMA`` one ``[POS, D]``
    tile, :func:`load_offset_rows`), so all ``w2`` steps are useful for
    every row. A non-finite ``v2`` row only reaches the row that sees it.
    ``v2`` is loaded after the first GEMM, and without ``MASK`` (a tile
    inside every row's windows, :func:`inner_tiles`) no logit is masked.
    """
    DT = b_k1.dtype
    # [BLOCK_M, BLOCK_N]: the long window of each row, the same at every step
    m_j = ((o_j[None, :] > o_pos[:, None] - W1)
           & (o_j[None, :] <= o_pos[:, None]) & (o_j >= 0)[None, :])
    for s in range(0, W2):
        o_l = o_pos - s  # [BLOCK_M] each row's key of the short window
        m_l = (o_l >= 0) & m_row
        b_k2 = load_offset_rows(p_k2, s, i0, o_pos, m_row, o_d, stride_kn, GH,
                                TMA)
        # [BLOCK_M, D]
        b_a = b_q * b_k2  # exact product, rounded once to DT
        # [BLOCK_M, BLOCK_N]
        b_s = tl.dot(b_a, tl.trans(b_k1), input_precision=PREC)
        if MASK:
            b_s = tl.where(m_j & m_l[:, None], b_s, float("-inf"))
        b_p, b_alpha, b_m, b_l = scaled_softmax_step(b_s, b_m, b_l, qk_scale)
        # [BLOCK_M, D]
        b_pv = tl.dot(b_p.to(DT), b_v1, input_precision=PREC)
        # loaded after the first GEMM: nothing holds it across that one
        b_v2 = load_offset_rows(p_v2, s, i0, o_pos, m_row, o_d, stride_kn, GH,
                                TMA)
        b_acc = b_acc * b_alpha[:, None] + b_pv * b_v2.to(tl.float32)
    return b_acc, b_m, b_l


@triton.jit
def _fwd_store(p_o, p_lse, b_acc, b_m, b_l, b_bad, m_row):
    """Normalise the rows, write them and their base-2 log-sum-exp (what the
    backward needs)."""
    b_l = tl.where(b_l > 0, b_l, 1.0)
    b_o = b_acc / b_l[:, None]  # [BLOCK_M, D]
    b_o = tl.where(b_bad[:, None], float("nan"), b_o)
    tl.store(p_o, b_o.to(p_o.dtype.element_ty), mask=m_row[:, None])
    tl.store(p_lse, b_m + tl.math.log2(b_l), mask=m_row)


@triton.jit
def carry_in(p_part, p_lse, m_row):
    """The online softmax's state after the narrow tile's pass
    (``_fwd_kernel`` with ``SPLIT`` 1), from its normalised rows ``o``
    and their LSE: ``m = lse``, ``l = 1``, ``acc = o`` stand for the same
    sum as the pass's ``(m, l, acc)``, since ``o = acc / l`` and
    ``lse = m + log2(l)``. A row that met no key (``lse = -inf``) starts
    empty; a row that met a non-finite value starts (and ends) NaN.

    Returns ``(b_acc, b_m, b_l)``: ``[BLOCK_M, D]``, ``[BLOCK_M]``,
    ``[BLOCK_M]``, float32.
    """
    b_m = tl.load(p_lse, mask=m_row, other=float("-inf"))  # [BLOCK_M]
    b_l = tl.where(b_m == float("-inf"), 0.0, 1.0)
    b_acc = tl.load(p_part, mask=m_row[:, None], other=0.0)  # [BLOCK_M, D]
    return b_acc, b_m, b_l


@triton.jit
def _fwd_kernel(Q, K1, K2, V1, V2, O, LSE,
                stride_qb, stride_qn, stride_qh,
                stride_kb, stride_kn, stride_kh,
                N, Hq, Hkv, G, W1, W2, qk_scale, n_hblocks, O_PART,
                HEAD_DIM: tl.constexpr, GH: tl.constexpr, POS: tl.constexpr,
                BLOCK_N: tl.constexpr, PREC: tl.constexpr,
                OFFSET: tl.constexpr = False, TMA: tl.constexpr = False,
                TAIL: tl.constexpr = 0, SPLIT: tl.constexpr = 0):
    """Sliding-window 2-simplicial attention, forward, saving the base-2 LSE.

    Grid: ``(cdiv(N, POS) * n_hblocks, B * Hkv)``. One program owns
    ``BLOCK_M = GH * POS`` query rows (:func:`tile_rows`) and writes their
    ``O`` and ``LSE``. It walks the long window from the query backwards in
    tiles of ``BLOCK_N`` keys (the GEMM's N dimension) and, for each tile,
    the short window one row ``k`` at a time (:func:`_fwd_tile`; with
    ``OFFSET`` and several positions per tile, one offset at a time,
    :func:`_fwd_tile_offset`, whose rows come as TMA tiles with ``TMA``:
    :func:`load_offset_rows`; and with ``TAIL`` the keys below the whole
    tiles as one ``TAIL``-key tile, :func:`tail_split`). With ``TAIL``,
    ``SPLIT`` 1 runs the narrow tile alone and writes its normalised rows
    to ``O`` (then an fp32 buffer) and their LSE; ``SPLIT`` 2 runs the
    whole tiles from that state, read from ``O_PART`` and ``LSE``
    (:func:`carry_in`): two launches, each compiled without the other's
    tile shape.
    FLOPs: ``4 * B * Hq * N * D * w1 * w2`` on tensor cores (two GEMMs per
    visible triple, ramp ignored; the offset walk adds one ``[BLOCK_M, D] x
    [D, D]`` GEMM per program, :func:`as_gemm_product`), plus ``2 * B * Hq *
    N * D * w2 * w1 / BLOCK_N`` multiplies on CUDA cores.
    """
    i_b, i_g, i0, o_pos, o_h, m_row, o_d, o_q = tile_program(
        N, Hkv, G, n_hblocks, stride_qb, stride_qn, stride_qh, HEAD_DIM, GH,
        POS)
    # [BLOCK_M, D], as stored: the softmax step applies scale * log2(e)
    b_q = tl.load(Q + o_q, mask=m_row[:, None], other=0.0)
    if OFFSET and b_q.dtype.primitive_bitwidth == 16:
        # not float32: its [D, D] identity takes 64 KB of shared memory at
        # D 128
        b_q = as_gemm_product(b_q, o_d, PREC)

    o_kv = i_b * stride_kb + i_g * stride_kh
    # the short set's rows, as [POS, D] TMA tiles with TMA
    p_k2 = offset_rows_source(K2 + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)
    p_v2 = offset_rows_source(V2 + o_kv, N, stride_kn, POS, HEAD_DIM, TMA)
    hi, lo1, k_lo, n_tiles, n_full = tile_range(i0, N, W1, W2, POS, BLOCK_N)
    # the offset walk's tiles that need no mask
    t_in, t_out = inner_tiles(i0, hi, W1, W2, BLOCK_N)
    if OFFSET and TAIL > 0:
        n_tiles, n_tail = tail_split(hi, lo1, BLOCK_N, TAIL)

    if SPLIT == 2:
        # after the narrow tile's pass
        b_acc, b_m, b_l = carry_in(
            O_PART + o_q, LSE + (i_b * Hq + o_h) * N + o_pos, m_row)
    else:
        # [BLOCK_M] running maximum and running sum of 2^(s - m)
        b_m = tl.full([GH * POS], float("-inf"), tl.float32)
        b_l = tl.zeros([GH * POS], tl.float32)
        b_acc = tl.zeros([GH * POS, HEAD_DIM], tl.float32)  # [BLOCK_M, D]
    # [BLOCK_M] rows that see a non-finite value
    b_bad = tl.zeros([GH * POS], tl.int32) != 0
    o_n = tl.arange(0, BLOCK_N)

    # The long window from the query down, BLOCK_N keys at a time (the GEMM's
    # N dimension); none in the narrow tile's own pass.
    if SPLIT != 1:
        for t in range(0, n_tiles):
            o_j = hi - (t + 1) * BLOCK_N + o_n  # [BLOCK_N]
            b_k1, b_v1, b_bad = _fwd_load_kv1(
                K1 + o_kv, V1 + o_kv, stride_kn, o_j, o_d, o_pos, lo1, W1,
                b_bad, POS)
            if OFFSET and (t >= t_in) and (t < t_out):
                # inside every row's windows: no mask
                b_acc, b_m, b_l = _fwd_tile_offset(
                    b_acc, b_m, b_l, b_q, b_k1, b_v1, p_k2, p_v2, stride_kn,
                    o_j, o_pos, m_row, o_d, W1, W2, qk_scale, i0, False, PREC,
                    GH, TMA)
            elif OFFSET:
                b_acc, b_m, b_l = _fwd_tile_offset(
                    b_acc, b_m, b_l, b_q, b_k1, b_v1, p_k2, p_v2, stride_kn,
                    o_j, o_pos, m_row, o_d, W1, W2, qk_scale, i0, True, PREC,
                    GH, TMA)
            elif t < n_full:
                b_acc, b_m, b_l, b_bad = _fwd_tile(
                    b_acc, b_m, b_l, b_bad, b_q, b_k1, b_v1, K2 + o_kv,
                    V2 + o_kv, stride_kn, k_lo, hi, o_j, o_pos, lo1, o_d, W1,
                    W2, qk_scale, False, POS == 1, PREC)
            else:
                b_acc, b_m, b_l, b_bad = _fwd_tile(
                    b_acc, b_m, b_l, b_bad, b_q, b_k1, b_v1, K2 + o_kv,
                    V2 + o_kv, stride_kn, k_lo, hi, o_j, o_pos, lo1, o_d, W1,
                    W2, qk_scale, True, POS == 1, PREC)
    if OFFSET and TAIL > 0 and SPLIT != 2:
        if n_tail > 0:
            # the keys below the whole tiles, at most TAIL of them
            o_j = hi - n_tiles * BLOCK_N - TAIL + tl.arange(0, TAIL)  # [TAIL]
            b_k1, b_v1, b_bad = _fwd_load_kv1(
                K1 + o_kv, V1 + o_kv, stride_kn, o_j, o_d, o_pos, lo1, W1,
                b_bad, POS)
            b_acc, b_m, b_l = _fwd_tile_offset(
                b_acc, b_m, b_l, b_q, b_k1, b_v1, p_k2, p_v2, stride_kn, o_j,
                o_pos, m_row, o_d, W1, W2, qk_scale, i0, True, PREC, GH, TMA)
    p_lse = LSE + (i_b * Hq + o_h) * N + o_pos  # [BLOCK_M]
    _fwd_store(O + o_q, p_lse, b_acc, b_m, b_l, b_bad, m_row)


# -- The pairs walk -----------------------------------------------------------
# The forward with (query, short-window key) pairs as the rows of a tile.
#
# The kernel of :mod:`.forward` tiles rows of queries and walks two loops: the
# long window in tiles of ``BLOCK_N`` keys, and inside each tile the short
# window one key (or one offset) at a time, forming the operand ``q * k2``
# again at every step. When few query heads share a KV head, a tile holds
# several positions, and their short windows differ row by row.
#
# Here a tile row is a pair ``(i, l)``: a query row and one key ``l = i - t`` of
# its short window (offset ``t``). The operand ``a = q_i * k2_l`` of the pair is
# formed once, and the only loop is the long window, as in FlashAttention: a
# tile of ``BLOCK_M`` pairs meets a tile of ``BLOCK_N`` long-window keys in two
# GEMMs and one online-softmax step. Each pair keeps its own running maximum,
# sum and accumulator ``sum_j p_ijl v1_j``; since ``v2_l`` is constant over
# ``j``, it multiplies the accumulator once, at the end, and the pairs of one
# query are then merged into its output and log-sum-exp (the merge of split
# softmaxes, as in split-K decoding).
#
# A tile's ``BLOCK_M = GH * POS * OS`` rows are ``GH`` heads of one KV group
# times ``POS`` positions times ``OS`` offsets (:func:`pair_rows`). A short
# window wider than ``OS`` is covered in ``cdiv(w2, OS)`` groups of offsets,
# one after the other; their results merge into the same running output.
#
# Names follow :mod:`.forward`. Lines stay within 78 columns.


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
    """Launch ``_fwd_pairs_kernel``, writing ``O`` and ``LSE`` in place.

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


def precision(q: torch.Tensor) -> str:
    """``tl.dot`` precision: exact fp32 products for fp32 on a GPU (tf32
    under the interpreter, where it means nothing)."""
    if q.dtype == torch.float32 and not interpreting():
        return "ieee"
    return "tf32"


def forward(q, k1, k2, v1, v2, w1: int, w2: int, scale: float, cfg=None):
    """Launch the forward kernel on contiguous ``[B, N, H, D]`` tensors with
    ``w1 >= w2``.

    ``cfg`` (a :class:`~simplex_lib.ops.two_simplicial.configs.FwdConfig`)
    defaults to the fastest configuration that fits the device's shared
    memory. Returns ``(o, lse)``: ``o`` like ``q``; ``lse`` ``[B, Hq, N]``
    float32, the base-2 log-sum-exp of ``scale * log2(e) * logits`` over the
    window.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]``
        ``Hq`` a multiple of ``Hkv``; all four with the same strides.
    w1, w2 : int
        The long and the short window, ``w1 >= w2``.
    scale : float
        Logit scale, any finite value.
    cfg : FwdConfig, optional
        Default: the candidates of ``fwd_configs``, the first the
        compiler accepts (``launch_with_fallback``).

    Returns
    -------
    o : Tensor ``[batch, seq, Hq, head_dim]``
        Output, dtype of ``q``.
    lse : float32 Tensor ``[batch, Hq, seq]``
        Base-2 log-sum-exp of each row, as above.
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    o = torch.empty_like(q)
    lse = torch.empty((B, Hq, N), device=q.device, dtype=torch.float32)

    def launch(c):
        rt = row_tiling(G, c.BLOCK_M)
        grid = (triton.cdiv(N, rt.POS) * rt.n_hblocks, B * Hkv)
        offset = c.WALK == "offset" and rt.POS > 1
        kk2, sc = k2, scale
        if scale <= 0:
            # the softmax step takes a positive factor: the sign (or the
            # zero) goes into a copy of k2, which gives the same logits
            kk2, sc = k2 * (-1.0 if scale < 0 else 0.0), abs(scale) or 1.0
        args = (q, k1, kk2, v1, v2, o, lse,
                q.stride(0), q.stride(1), q.stride(2),
                k1.stride(0), k1.stride(1), k1.stride(2),
                N, Hq, Hkv, G, w1, w2, sc * LOG2E, rt.n_hblocks)
        if c.WALK == "pairs":
            forward_pairs(args[:-1], D, G, w2, c, precision(q))
            return o, lse
        meta = dict(HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_N=c.BLOCK_N,
                    PREC=precision(q), num_warps=c.num_warps,
                    num_stages=c.num_stages)
        tma = tma_launch(offset, c.LOADS, kk2, v2)
        tail = c.BLOCK_TAIL if offset and c.BLOCK_TAIL < c.BLOCK_N else 0
        if tail and c.TAIL_PASS:
            # the narrow tile first, as a launch of its own, into an fp32
            # buffer laid out as q; then the whole tiles from its state
            part = torch.empty_strided(q.shape, q.stride(), device=q.device,
                                       dtype=torch.float32)
            _fwd_kernel[grid](*args[:5], part, *args[6:], O_PART=part,
                              OFFSET=True, TMA=tma, TAIL=tail, SPLIT=1,
                              **meta)
            _fwd_kernel[grid](*args, O_PART=part, OFFSET=True, TMA=tma,
                              TAIL=tail, SPLIT=2, **meta)
            return o, lse
        _fwd_kernel[grid](*args, O_PART=o, OFFSET=offset, TMA=tma, TAIL=tail,
                          **meta)
        return o, lse

    if cfg is not None:
        return launch(cfg)
    smem = max_shared_memory(q.device)
    cands = fwd_configs(D, G, w1, q.element_size(), smem, w2,
                        tma_available(k2, v2))
    key = ("fwd", q.device, q.dtype, D, G, min(w1, 128), w2, cands[0].WALK,
           cands[0].LOADS)
    return launch_with_fallback(key, cands, launch)
