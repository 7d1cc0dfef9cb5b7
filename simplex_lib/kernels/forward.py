"""Forward kernel of sliding-window 2-simplicial attention.

Query ``i`` (head ``h``, KV head ``g = h // G``) attends jointly to the pairs ``(j, k)`` with
``i - w1 < j <= i`` and ``i - w2 < k <= i``; the caller orders the two key/value sets so that
``w1 >= w2`` (the logits and the output are symmetric under swapping the sets).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .configs import fwd_config, interpreting, row_tiling

LOG2E = 1.4426950408889634


@triton.jit
def _fwd_steps(acc, m_i, l_i, qs, k1t, v1t, K2g, V2g, stride_kn, klo, khi,
               offs_j, pos, lo1, offs_d, W1, W2,
               MASK: tl.constexpr, ONE_POS: tl.constexpr, PREC: tl.constexpr):
    """Online-softmax steps over single rows ``k`` of the short window for one ``K1/V1`` tile.

    Each step: ``a = q * k2[k]`` (CUDA cores), ``s = a @ k1^T`` (tensor cores), then
    ``acc += (p @ v1) * v2[k]``: the ``v2[k]`` factor is constant over ``j`` so it is applied
    to the ``[M, D]`` product instead of to the ``[BLOCK_N, D]`` value tile.
    """
    DT = k1t.dtype
    for k in range(klo, khi):
        k2r = tl.load(K2g + k * stride_kn + offs_d).to(tl.float32)
        v2r = tl.load(V2g + k * stride_kn + offs_d).to(tl.float32)
        a = (qs * k2r[None, :]).to(DT)
        s = tl.dot(a, tl.trans(k1t), input_precision=PREC)  # log2-domain logits [M, BLOCK_N]
        if MASK:
            if ONE_POS:  # every row is the same position: a column mask
                s = tl.where((offs_j >= lo1)[None, :], s, float("-inf"))
            else:
                ok = (offs_j[None, :] > pos[:, None] - W1) & (offs_j[None, :] <= pos[:, None])
                ok = ok & (offs_j >= 0)[None, :]
                ok = ok & ((k > pos - W2) & (k <= pos))[:, None]
                s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        pv = tl.dot(p.to(DT), v1t, input_precision=PREC)  # [M, D]
        acc = acc * alpha[:, None] + pv * v2r[None, :]
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _fwd_kernel(Q, K1, K2, V1, V2, O, LSE,
                stride_qb, stride_qn, stride_qh,
                stride_kb, stride_kn, stride_kh,
                N, Hq, Hkv, G, W1, W2, qk_scale, n_hblocks,
                HEAD_DIM: tl.constexpr, GH: tl.constexpr, POS: tl.constexpr,
                BLOCK_N: tl.constexpr, PREC: tl.constexpr):
    """Sliding-window 2-simplicial attention, forward, with the log-sum-exp saved for backward.

    Tiling: one program owns ``BLOCK_M = GH * POS`` query rows: ``GH`` heads of one KV group
    at each of ``POS`` consecutive positions (``POS = 1`` when the GQA ratio fills the tile, so
    all rows share one window and no product is masked). It walks the long window ``w1`` in
    tiles of ``BLOCK_N`` keys (kept in shared memory, the GEMM's N dimension), and for each
    tile every position ``k`` of the short window ``w2`` one at a time.

    One program computes ``O`` and ``LSE`` (base 2, of the scaled logits) for its rows.
    FLOPs (tensor cores, whole launch, ramp ignored): ``4 * B * Hq * N * D * w1 * w2``;
    plus ``2 * B * Hq * N * D * w2 * (w1 / BLOCK_N)`` multiplies on CUDA cores.
    """
    BLOCK_M: tl.constexpr = GH * POS
    DT = Q.dtype.element_ty
    pid = tl.program_id(0)
    bg = tl.program_id(1)
    b = bg // Hkv
    g = bg % Hkv
    i0 = (pid // n_hblocks) * POS
    hb = pid % n_hblocks

    r = tl.arange(0, BLOCK_M)
    hg = hb * GH + r % GH  # head inside the group
    pos = i0 + r // GH
    row_ok = (hg < G) & (pos < N)
    h = g * G + hg
    offs_d = tl.arange(0, HEAD_DIM)
    q_ptrs = Q + b * stride_qb + pos[:, None] * stride_qn + h[:, None] * stride_qh + offs_d[None, :]
    # Pre-scaling q by scale*log2(e) makes the GEMM produce base-2 logits directly.
    qs = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0).to(tl.float32) * qk_scale

    kv_off = b * stride_kb + g * stride_kh
    K1g = K1 + kv_off
    V1g = V1 + kv_off
    K2g = K2 + kv_off
    V2g = V2 + kv_off

    hi = tl.minimum(i0 + POS, N)  # one past the last position of the tile
    lo1 = tl.maximum(i0 - W1 + 1, 0)
    klo = tl.maximum(i0 - W2 + 1, 0)

    # Finite start so that a row masked in every step so far gives exp2(-inf - m) = 0, not NaN.
    m_i = tl.full([BLOCK_M], -1.0e30, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    offs_n = tl.arange(0, BLOCK_N)

    # Tiles end at `hi`, so with one position per tile only the last (lowest) one is partial.
    n_tiles = (hi - lo1 + BLOCK_N - 1) // BLOCK_N
    if POS == 1:
        n_full = (hi - lo1) // BLOCK_N
    else:
        n_full = 0
    for t in range(0, n_tiles):
        j0 = hi - (t + 1) * BLOCK_N
        offs_j = j0 + offs_n
        kv_ptrs = offs_j[:, None] * stride_kn + offs_d[None, :]
        jm = (offs_j >= 0)[:, None]
        k1t = tl.load(K1g + kv_ptrs, mask=jm, other=0.0)
        v1t = tl.load(V1g + kv_ptrs, mask=jm, other=0.0)
        if t < n_full:
            acc, m_i, l_i = _fwd_steps(acc, m_i, l_i, qs, k1t, v1t, K2g, V2g, stride_kn, klo, hi,
                                       offs_j, pos, lo1, offs_d, W1, W2, False, POS == 1, PREC)
        else:
            acc, m_i, l_i = _fwd_steps(acc, m_i, l_i, qs, k1t, v1t, K2g, V2g, stride_kn, klo, hi,
                                       offs_j, pos, lo1, offs_d, W1, W2, True, POS == 1, PREC)

    l_safe = tl.where(l_i > 0, l_i, 1.0)
    out = acc / l_safe[:, None]
    o_ptrs = O + b * stride_qb + pos[:, None] * stride_qn + h[:, None] * stride_qh + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=row_ok[:, None])
    tl.store(LSE + (b * Hq + h) * N + pos, m_i + tl.math.log2(l_safe), mask=row_ok)


def forward(q, k1, k2, v1, v2, w1: int, w2: int, scale: float, cfg=None):
    """Launch the forward kernel on contiguous ``[B, N, H, D]`` tensors with ``w1 >= w2``.

    Returns ``(o, lse)``: ``o`` like ``q``; ``lse`` ``[B, Hq, N]`` float32, the base-2
    log-sum-exp of ``scale * log2(e) * logits`` over the window.
    """
    B, N, Hq, D = q.shape
    Hkv = k1.shape[2]
    G = Hq // Hkv
    cfg = cfg or fwd_config(D, G, w1)
    rt = row_tiling(G, cfg.BLOCK_M)
    o = torch.empty_like(q)
    lse = torch.empty((B, Hq, N), device=q.device, dtype=torch.float32)
    grid = (triton.cdiv(N, rt.POS) * rt.n_hblocks, B * Hkv)
    prec = "ieee" if (q.dtype == torch.float32 and not interpreting()) else "tf32"
    _fwd_kernel[grid](
        q, k1, k2, v1, v2, o, lse,
        q.stride(0), q.stride(1), q.stride(2),
        k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, Hkv, G, w1, w2, scale * LOG2E, rt.n_hblocks,
        HEAD_DIM=D, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N, PREC=prec,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )
    return o, lse
