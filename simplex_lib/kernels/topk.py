"""Triton kernels for top-k 2-simplicial attention with gathered key indices.

Each query row ``(b, i, h)`` attends to the ``kA x kB`` pairs formed by its selected rows
``idx[b, i, h]`` of K1/V1 and ``idx2[b, i, h]`` of K2/V2 (``-1`` = empty slot); same semantics as
:func:`simplex_lib.sparsity.topk_two_simplicial_attention`, the reference these kernels are
tested against.

For one query the trilinear logits are a *bilinear* form with ``diag(q)`` in the middle,
``S[k, j] = sum_d (k2_k,d * q_d) * k1_j,d``, i.e. ``S = (K2 * q) @ K1^T``: a matrix product
between the two gathered key tiles. So one program per query row runs ordinary GEMMs on its own
gathered tiles, with an online softmax over the ``(k, j)`` blocks. Queries do not share their
selections, so nothing is masked away except empty slots.

The backward recomputes ``P`` from the saved base-2 log-sum-exp. ``dq`` is owned by the query's
program; the key/value gradients of a position are sums over every query that selected it (an
arbitrary set), so they are accumulated with fp32 atomic adds into per-KV-head buffers (this
also sums the GQA group). Unlike the windowed backward, the result is therefore not bitwise
deterministic on a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._checks import check_qkv, default_scale
from .configs import interpreting
from .forward import LOG2E
from .op import check_kernel_inputs

__all__ = ["topk_two_simplicial_attention_triton", "TopkTwoSimplicialFunction", "topk_flops",
           "random_causal_topk", "check_topk_gpu", "bench_topk", "main"]


@triton.jit
def _topk_fwd_kernel(Q, K1, K2, V1, V2, IA, IB, O, LSE,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, G, D, KA, KB, qk_scale,
                     BLOCK_D: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
                     PREC: tl.constexpr):
    """Forward of top-k 2-simplicial attention; saves the base-2 log-sum-exp.

    Tiling: one program per query row ``(b, i, h)`` (grid ``(N, B * Hq)``). It walks the
    ``kB`` selected K2/V2 rows in blocks of ``BLOCK_B`` (outer loop) and the ``kA`` selected
    K1/V1 rows in blocks of ``BLOCK_A`` (inner loop), gathering each block through the index
    rows. Per step: ``a = K2_blk * q`` (CUDA cores), ``S = a @ K1_blk^T`` ``[BLOCK_B, BLOCK_A]``
    (tensor cores), an online-softmax update with a scalar running max and normaliser, and
    ``acc += sum_k ((P @ V1_blk) * V2_blk)[k]`` (one more GEMM).

    One program computes ``O[b, i, h]`` and ``LSE[b, i, h]``.
    FLOPs (tensor cores): ``4 * B * Hq * N * D * kA * kB`` (the windowed count with
    ``w1 * w2 = kA * kB``), plus ``B * Hq * N * D * kB * (kA / BLOCK_A)`` elementwise multiplies.
    """
    i = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // Hq
    h = bh % Hq
    g = h // G
    offs_d = tl.arange(0, BLOCK_D)
    dm = offs_d < D
    row = b * stride_qb + i * stride_qn + h * stride_qh
    qs = tl.load(Q + row + offs_d, mask=dm, other=0.0).to(tl.float32) * qk_scale
    kv = b * stride_kb + g * stride_kh
    irow = ((b * N + i) * Hq + h)
    DT = K1.dtype.element_ty

    m_i = tl.zeros([], tl.float32) - 1.0e30  # finite: all-masked blocks give exp2(-inf) = 0
    l_i = tl.zeros([], tl.float32)
    acc = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, KB, BLOCK_B):
        ob = b0 + tl.arange(0, BLOCK_B)
        ib = tl.load(IB + irow * KB + ob, mask=ob < KB, other=-1)
        okb = ib >= 0
        pb = kv + ib[:, None] * stride_kn + offs_d[None, :]
        mb = okb[:, None] & dm[None, :]
        k2 = tl.load(K2 + pb, mask=mb, other=0.0).to(tl.float32)
        v2 = tl.load(V2 + pb, mask=mb, other=0.0).to(tl.float32)
        a = (k2 * qs[None, :]).to(DT)
        for a0 in range(0, KA, BLOCK_A):
            oa = a0 + tl.arange(0, BLOCK_A)
            ia = tl.load(IA + irow * KA + oa, mask=oa < KA, other=-1)
            oka = ia >= 0
            pa = kv + ia[:, None] * stride_kn + offs_d[None, :]
            ma = oka[:, None] & dm[None, :]
            k1 = tl.load(K1 + pa, mask=ma, other=0.0)
            v1 = tl.load(V1 + pa, mask=ma, other=0.0)
            s = tl.dot(a, tl.trans(k1), input_precision=PREC)  # base-2 logits [BLOCK_B, BLOCK_A]
            s = tl.where(okb[:, None] & oka[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(tl.max(s, 1), 0))
            alpha = tl.math.exp2(m_i - m_new)
            p = tl.math.exp2(s - m_new)
            l_i = l_i * alpha + tl.sum(tl.sum(p, 1), 0)
            pv = tl.dot(p.to(DT), v1, input_precision=PREC)  # [BLOCK_B, BLOCK_D]
            acc = acc * alpha + tl.sum(pv * v2, 0)
            m_i = m_new
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    tl.store(O + row + offs_d, (acc / l_safe).to(O.dtype.element_ty), mask=dm)
    tl.store(LSE + irow, m_i + tl.math.log2(l_safe))


@triton.jit
def _topk_bwd_kernel(Q, K1, K2, V1, V2, IA, IB, DO, LSE, DELTA, DQ, DK1, DK2, DV1, DV2,
                     stride_qb, stride_qn, stride_qh,
                     stride_kb, stride_kn, stride_kh,
                     N, Hq, G, D, KA, KB, qk_scale, scale,
                     BLOCK_D: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr,
                     PREC: tl.constexpr):
    """Backward of top-k 2-simplicial attention: all five gradients.

    Tiling: as the forward, one program per query row ``(b, i, h)`` walking ``BLOCK_B`` blocks
    of its K2/V2 selection (outer) and ``BLOCK_A`` blocks of its K1/V1 selection (inner). Per
    step it recomputes ``P = exp2(S - LSE)`` (one GEMM) and ``dP = (V2 * do) @ V1^T`` (one GEMM),
    forms ``dS = P * (dP - Delta)``, and computes ``dq += sum_k ((dS @ K1) * K2)[k]``,
    ``dK1 += dS^T @ (K2 * q)``, ``dV1 += P^T @ (V2 * do)`` (atomic adds into the gathered
    rows), ``dK2 += dS @ (K1 * q)``, ``dV2 += (P @ V1) * do`` (kept in registers over the inner
    loop, then one atomic add per block).

    One program owns ``dq`` of its row; key/value gradients are fp32 buffers shared by all
    programs (``[B, N, Hkv, D]``, so GQA groups are summed by the atomics).
    FLOPs (tensor cores): ``12 * B * Hq * N * D * kA * kB`` (six GEMMs per step).
    """
    i = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // Hq
    h = bh % Hq
    g = h // G
    offs_d = tl.arange(0, BLOCK_D)
    dm = offs_d < D
    row = b * stride_qb + i * stride_qn + h * stride_qh
    qs = tl.load(Q + row + offs_d, mask=dm, other=0.0).to(tl.float32) * qk_scale
    do = tl.load(DO + row + offs_d, mask=dm, other=0.0).to(tl.float32)
    irow = ((b * N + i) * Hq + h)
    lse = tl.load(LSE + irow)
    delta = tl.load(DELTA + irow)
    kv = b * stride_kb + g * stride_kh
    DT = K1.dtype.element_ty

    dq = tl.zeros([BLOCK_D], tl.float32)
    for b0 in range(0, KB, BLOCK_B):
        ob = b0 + tl.arange(0, BLOCK_B)
        ib = tl.load(IB + irow * KB + ob, mask=ob < KB, other=-1)
        okb = ib >= 0
        pb = kv + ib[:, None] * stride_kn + offs_d[None, :]
        mb = okb[:, None] & dm[None, :]
        k2 = tl.load(K2 + pb, mask=mb, other=0.0).to(tl.float32)
        v2 = tl.load(V2 + pb, mask=mb, other=0.0).to(tl.float32)
        a = (k2 * qs[None, :]).to(DT)
        dov2 = (v2 * do[None, :]).to(DT)
        dk2 = tl.zeros([BLOCK_B, BLOCK_D], tl.float32)
        dv2 = tl.zeros([BLOCK_B, BLOCK_D], tl.float32)
        for a0 in range(0, KA, BLOCK_A):
            oa = a0 + tl.arange(0, BLOCK_A)
            ia = tl.load(IA + irow * KA + oa, mask=oa < KA, other=-1)
            oka = ia >= 0
            pa = kv + ia[:, None] * stride_kn + offs_d[None, :]
            ma = oka[:, None] & dm[None, :]
            k1 = tl.load(K1 + pa, mask=ma, other=0.0)
            v1 = tl.load(V1 + pa, mask=ma, other=0.0)
            s = tl.dot(a, tl.trans(k1), input_precision=PREC) - lse
            p = tl.math.exp2(tl.where(okb[:, None] & oka[None, :], s, float("-inf")))
            dp = tl.dot(dov2, tl.trans(v1), input_precision=PREC)  # [BLOCK_B, BLOCK_A]
            ds = (p * (dp - delta)).to(DT)
            dq += tl.sum(tl.dot(ds, k1, input_precision=PREC) * k2, 0)
            dk1 = tl.dot(tl.trans(ds), a, input_precision=PREC)  # carries scale*log2(e)
            dv1 = tl.dot(tl.trans(p.to(DT)), dov2, input_precision=PREC)
            tl.atomic_add(DK1 + pa, dk1 * (1.0 / 1.4426950408889634), mask=ma)
            tl.atomic_add(DV1 + pa, dv1, mask=ma)
            qk1 = (k1.to(tl.float32) * qs[None, :]).to(DT)
            dk2 += tl.dot(ds, qk1, input_precision=PREC)
            dv2 += tl.dot(p.to(DT), v1, input_precision=PREC) * do[None, :]
        tl.atomic_add(DK2 + pb, dk2 * (1.0 / 1.4426950408889634), mask=mb)
        tl.atomic_add(DV2 + pb, dv2, mask=mb)
    tl.store(DQ + row + offs_d, (dq * scale).to(DQ.dtype.element_ty), mask=dm)


def _blocks(ka: int, kb: int, d: int):
    """Block sizes: powers of two >= 16 (tl.dot), at most 64 keys per block."""
    bd = max(16, triton.next_power_of_2(d))
    ba = min(64, max(16, triton.next_power_of_2(ka)))
    bb = min(64 if bd <= 64 else 32, max(16, triton.next_power_of_2(kb)))
    return bd, ba, bb


def _precision(q):
    return "ieee" if (q.dtype == torch.float32 and not interpreting()) else "tf32"


def _forward(q, k1, k2, v1, v2, ia, ib, scale):
    B, N, Hq, D = q.shape
    G = Hq // k1.shape[2]
    KA, KB = ia.shape[-1], ib.shape[-1]
    bd, ba, bb = _blocks(KA, KB, D)
    o = torch.empty_like(q)
    lse = torch.empty((B, N, Hq), device=q.device, dtype=torch.float32)
    _topk_fwd_kernel[(N, B * Hq)](
        q, k1, k2, v1, v2, ia, ib, o, lse,
        q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, G, D, KA, KB, scale * LOG2E,
        BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC=_precision(q),
        num_warps=4 if bd <= 64 else 8, num_stages=1,
    )
    return o, lse


def _backward(do, q, k1, k2, v1, v2, ia, ib, o, lse, scale):
    B, N, Hq, D = q.shape
    G = Hq // k1.shape[2]
    KA, KB = ia.shape[-1], ib.shape[-1]
    bd, ba, bb = _blocks(KA, KB, D)
    delta = (do.float() * o.float()).sum(-1).contiguous()  # [B, N, Hq]
    dq = torch.empty_like(q)
    dk1, dk2, dv1, dv2 = (torch.zeros(k1.shape, device=q.device, dtype=torch.float32) for _ in range(4))
    _topk_bwd_kernel[(N, B * Hq)](
        q, k1, k2, v1, v2, ia, ib, do, lse, delta, dq, dk1, dk2, dv1, dv2,
        q.stride(0), q.stride(1), q.stride(2), k1.stride(0), k1.stride(1), k1.stride(2),
        N, Hq, G, D, KA, KB, scale * LOG2E, scale,
        BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC=_precision(q),
        num_warps=4 if bd <= 64 else 8, num_stages=1,
    )
    return dq, dk1, dk2, dv1, dv2


class TopkTwoSimplicialFunction(torch.autograd.Function):
    """Autograd wrapper of the top-k kernels.

    ``TopkTwoSimplicialFunction.apply(q, k1, k2, v1, v2, ia, ib, scale)`` with contiguous
    inputs and int32 index tensors ``ia`` ``[B, N, Hq, kA]``, ``ib`` ``[B, N, Hq, kB]`` (already
    validated and broadcast) returns ``o``; gradients flow to the five tensors.
    """

    @staticmethod
    def forward(ctx, q, k1, k2, v1, v2, ia, ib, scale):
        dtype = q.dtype
        xs = [t.contiguous() for t in (q, k1, k2, v1, v2)]
        if interpreting():
            xs = [t.float() for t in xs]  # the interpreter miscomputes bf16 dots
        o, lse = _forward(*xs, ia, ib, scale)
        ctx.save_for_backward(*xs, ia, ib, o, lse)
        ctx.scale, ctx.dtypes = scale, [t.dtype for t in (q, k1, k2, v1, v2)]
        return o.to(dtype)

    @staticmethod
    def backward(ctx, do):
        q, k1, k2, v1, v2, ia, ib, o, lse = ctx.saved_tensors
        do = do.contiguous().to(q.dtype)
        grads = _backward(do, q, k1, k2, v1, v2, ia, ib, o, lse, ctx.scale)
        grads = [g.to(dt) for g, dt in zip(grads, ctx.dtypes)]
        return (*grads, None, None, None)


def topk_flops(B: int, Hq: int, N: int, D: int, ka: int, kb: int | None = None, mode: str = "fwd") -> float:
    """Tensor-core FLOPs of top-k 2-simplicial attention in the project's convention.

    ``4 * B * Hq * N * D * kA * kB`` for the forward (the windowed count with
    ``w1 * w2 = kA * kB``); ``2.5x`` for the backward, ``3.5x`` for both.

    Examples
    --------
    >>> topk_flops(1, 64, 8192, 128, 128) == 4 * 64 * 8192 * 128 * 512 * 32
    True
    """
    kb = ka if kb is None else kb
    return {"fwd": 1.0, "bwd": 2.5, "fwdbwd": 3.5}[mode] * 4.0 * B * Hq * N * D * ka * kb


def topk_two_simplicial_attention_triton(q, k1, k2, v1, v2, idx, *, idx2=None, scale=None):
    """Top-k 2-simplicial attention with Triton kernels (forward and backward).

    Query ``(b, i, h)`` attends to the pairs of its selected rows ``idx[b, i, h]`` of K1/V1 and
    ``idx2[b, i, h]`` of K2/V2 (default: the same selection); ``-1`` marks an empty slot and a
    query with no pair outputs zeros. Same semantics and checks as
    :func:`simplex_lib.sparsity.topk_two_simplicial_attention`.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]`` with ``Hq % Hkv == 0``
    idx : int Tensor ``[B or 1, N, H, kA]``
        Selected positions for K1/V1, ``H`` in (1, ``Hkv``, ``Hq``); causal (``<= i``), each at
        most once per row, ``-1`` for empty slots.
    idx2 : int Tensor ``[B or 1, N, H, kB]``, optional
        Selection for K2/V2; default ``idx``.
    scale : float, optional
        Logit scale, ``1/sqrt(D)`` by default.

    Returns
    -------
    Tensor ``[B, N, Hq, D]`` in ``q``'s dtype, differentiable in ``q, k1, k2, v1, v2``.
    Extra memory: ``O(B * N * Hq)`` (the log-sum-exp) plus fp32 key/value gradient buffers.

    Examples
    --------
    >>> import torch
    >>> from simplex_lib.sparsity import previous_layer_topk
    >>> x = torch.randn(1, 6, 2, 16)
    >>> idx = previous_layer_topk(x, x, 3)
    >>> topk_two_simplicial_attention_triton(x, x, x, x, x, idx).shape  # doctest: +SKIP
    torch.Size([1, 6, 2, 16])
    """
    from ..sparsity import _check_idx

    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    B, N, Hq, D = q.shape
    Hkv = Hq // group
    check_kernel_inputs(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2},
                        fallback="simplex_lib.sparsity.topk_two_simplicial_attention")
    if isinstance(idx, torch.Tensor) and idx.device != q.device:
        raise ValueError(f"idx is on {idx.device} but q is on {q.device}")
    if isinstance(idx2, torch.Tensor) and idx2.device != q.device:
        raise ValueError(f"idx2 is on {idx2.device} but q is on {q.device}")
    ia = _check_idx("idx", idx, B, N, Hq, Hkv)
    ib = ia if idx2 is None else _check_idx("idx2", idx2, B, N, Hq, Hkv)
    s = default_scale(D, scale)
    if B == 0 or N == 0:
        return torch.zeros_like(q)
    ia = ia.to(torch.int32).contiguous()
    ib = ia if idx2 is None else ib.to(torch.int32).contiguous()
    return TopkTwoSimplicialFunction.apply(q, k1, k2, v1, v2, ia, ib, s)


# --------------------------------------------------------------------------------------------
# GPU check and benchmark: python -m simplex_lib.kernels.topk --out benchmarks/results
# --------------------------------------------------------------------------------------------


def random_causal_topk(B: int, N: int, H: int, k: int, *, device="cuda", generator=None) -> torch.Tensor:
    """Random causal selections ``[B, N, H, k]``: ``min(k, i + 1)`` distinct positions ``<= i``
    per query, sorted ascending, the rest ``-1`` (a worst case for memory locality).

    Examples
    --------
    >>> idx = random_causal_topk(1, 5, 1, 3, device="cpu")
    >>> idx[0, 0, 0].tolist(), bool((idx[0, :, 0] <= torch.arange(5)[:, None]).all())
    ([-1, -1, 0], True)
    """
    scores = torch.rand(B, H, N, N, device=device, generator=generator)
    causal = torch.ones(N, N, dtype=torch.bool, device=device).tril()
    scores = scores.masked_fill(~causal, -1.0)
    val, idx = scores.topk(min(k, N), dim=-1)
    idx = torch.where(val >= 0, idx, torch.full_like(idx, -1))
    if k > N:
        idx = torch.cat([idx, idx.new_full((B, H, N, k - N), -1)], dim=-1)
    return idx.sort(dim=-1).values.permute(0, 2, 1, 3).contiguous()


def check_topk_gpu(dtypes=(torch.bfloat16, torch.float32)) -> list:
    """Relative errors of the compiled kernels against the float64 reference (GPU)."""
    from ..sparsity import topk_two_simplicial_attention as reference

    out = []
    shapes = [(1, 300, 8, 2, 64, 32, 2, None), (2, 257, 4, 1, 128, 16, 4, 8), (1, 130, 64, 1, 128, 64, 1, None)]
    g = torch.Generator(device="cuda").manual_seed(0)
    for dtype in dtypes:
        for B, N, Hq, Hkv, D, k, Hi, k2 in shapes:
            x64 = [torch.randn(B, N, h, D, device="cuda", dtype=torch.float64, generator=g)
                   for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
            idx = random_causal_topk(B, N, Hi, k, generator=g)
            idx2 = None if k2 is None else random_causal_topk(B, N, Hi, k2, generator=g)
            xs = [t.to(dtype).requires_grad_() for t in x64]
            xr = [t.to(dtype).double().requires_grad_() for t in x64]
            o = topk_two_simplicial_attention_triton(*xs, idx, idx2=idx2)
            r = reference(*xr, idx, idx2=idx2)
            do = torch.randn(r.shape, device="cuda", dtype=torch.float64, generator=g)
            got = torch.autograd.grad(o, xs, do.to(dtype))
            want = torch.autograd.grad(r, xr, do)
            errs = {"o": float((o.detach().double() - r.detach()).norm() / r.detach().norm())}
            for n, a, w in zip(("dq", "dk1", "dk2", "dv1", "dv2"), got, want):
                errs[n] = float((a.double() - w).norm() / w.norm())
            out.append({"shape": [B, N, Hq, Hkv, D], "k": k, "k2": k2, "idx_heads": Hi, "dtype": str(dtype),
                        "errs": errs, "ok": max(errs.values()) < (3e-2 if dtype != torch.float32 else 1e-4)})
    return out


def bench_topk(seqlens=(2048, 4096, 8192), pairs=((128, (512, 32)), (64, (128, 32))), tokens=8192,
               Hq=64, Hkv=1, D=128, modes=("fwd", "bwd"), dtype=torch.bfloat16) -> list:
    """Time the top-k kernel (random causal selections shared by all heads) beside the windowed
    kernel at the same pair count ``k^2 = w1 * w2``; records in the format of
    :mod:`simplex_lib.bench_plots` (groups ``"topk-kernel"`` and ``"window-kernel"``)."""
    from ..bench import time_and_peak_memory
    from . import two_simplicial_attention

    recs = []
    for N in seqlens:
        B = max(1, tokens // N)
        xs = [torch.randn(B, N, h, D, device="cuda", dtype=dtype) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
        for k, (w1, w2) in pairs:
            idx = random_causal_topk(B, N, 1, k)
            runs = (("topk-kernel", lambda x: topk_two_simplicial_attention_triton(*x, idx), dict(k=k)),
                    ("window-kernel", lambda x: two_simplicial_attention(*x, w1=w1, w2=w2), dict(w1=w1, w2=w2)))
            for group, f, extra in runs:
                for mode in modes:
                    def make(f=f, mode=mode):
                        if mode == "fwd":
                            def fn():
                                with torch.no_grad():
                                    return f(xs)
                            return fn
                        leaves = [t.detach().requires_grad_() for t in xs]
                        o = f(leaves)
                        do = torch.randn_like(o)
                        return lambda: torch.autograd.grad(o, leaves, do, retain_graph=True)
                    try:
                        ms, peak = time_and_peak_memory(make)
                        F = topk_flops(B, Hq, N, D, k, mode=mode)
                        recs.append(dict(group=group, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, dtype=str(dtype),
                                         selection="random" if group == "topk-kernel" else "window",
                                         ms=ms, tflops=F / ms / 1e9, flops=F, peak_extra_bytes=peak, **extra))
                    except Exception as e:  # keep the run going; the record says what failed
                        recs.append(dict(group=group, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, error=repr(e)[:300], **extra))
                    print(recs[-1], flush=True)
                    torch.cuda.empty_cache()
    return recs


def main(argv=None) -> dict:
    """Command line: GPU correctness check and benchmark, written as one JSON file."""
    import argparse
    import json
    import os

    ap = argparse.ArgumentParser(description="top-k 2-simplicial Triton kernels: GPU check and benchmark")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default="topk_bench")
    ap.add_argument("--seqlens", default="2048,4096,8192")
    ap.add_argument("--tokens", type=int, default=8192)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    from ..bench import device_meta

    res = {"meta": device_meta(), "correctness": check_topk_gpu()}
    for c in res["correctness"]:
        print("OK  " if c["ok"] else "FAIL", c, flush=True)
    res["records"] = bench_topk(tuple(int(s) for s in a.seqlens.split(",")), tokens=a.tokens)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{a.name}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("json:", path)
    return res


if __name__ == "__main__":
    main()
