"""Triton kernels for sliding-window 2-simplicial attention, checked under TRITON_INTERPRET=1.

Every check compares the kernel's output and all five gradients with the float64 reference
(``simplex_lib.reference``) on fresh random inputs. Shapes are tiny: the interpreter runs each
program step in NumPy. On a GPU machine these same tests run the compiled kernels.
"""

import pytest
import torch

from simplex_lib.kernels import two_simplicial_attention as kernel_attention
from simplex_lib.kernels.configs import interpreting
from simplex_lib.reference import two_simplicial_attention as reference_attention

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(gen, B, N, Hq, Hkv, D, scale_q=1.0):
    q = torch.randn(B, N, Hq, D, generator=gen, dtype=torch.float64) * scale_q
    kv = [torch.randn(B, N, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(4)]
    return [q] + kv


def _check(gen, B, N, Hq, Hkv, D, w1, w2, *, scale=None, scale_q=1.0, grads=True, tol=2e-5):
    """Kernel (fp32) vs float64 reference: output and the five gradients, relative L2 error."""
    x64 = _inputs(gen, B, N, Hq, Hkv, D, scale_q)
    xs = [t.to(DEV, torch.float32).requires_grad_(grads) for t in x64]
    out = kernel_attention(*xs, w1=w1, w2=w2, scale=scale)
    xr = [t.clone().requires_grad_(grads) for t in x64]
    ref = reference_attention(*xr, w1=w1, w2=w2, causal=True, scale=scale)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    err = (out.double().cpu() - ref).norm() / ref.norm()
    assert err < tol, f"output rel. error {err:.2e}"
    if not grads:
        return
    do = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, xs, do.to(DEV, torch.float32))
    want = torch.autograd.grad(ref, xr, do)
    for name, g, w in zip(("dq", "dk1", "dk2", "dv1", "dv2"), got, want):
        assert g.shape == w.shape and torch.isfinite(g).all(), name
        e = (g.double().cpu() - w).norm() / w.norm().clamp_min(1e-12)
        # With N = 1 the exact dq, dk1, dk2 are 0 and only rounding is left: absolute check.
        vanishes = w.abs().max() < 1e-12
        assert e < tol or (vanishes and (g.double().cpu() - w).abs().max() < 1e-4), f"{name} rel. error {e:.2e}"


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,w1,w2",
    [
        (1, 19, 4, 2, 5, 3),  # GQA 2, odd length, several tiles of the long window
        (1, 13, 1, 1, 6, 4),  # no GQA: sequence tiling with 2-D masks
        (1, 9, 8, 2, 20, 30),  # GQA 4, both windows longer than the sequence
        (1, 11, 2, 2, 2, 7),  # w2 > w1: the wrapper swaps the two key/value sets
        (1, 1, 4, 1, 3, 3),  # a single position
    ],
)
def test_forward_and_gradients_match_reference(gen, B, N, Hq, Hkv, w1, w2):
    _check(gen, B, N, Hq, Hkv, 16, w1, w2)


def test_full_head_tile_one_position(gen):
    # GQA ratio 32 fills two tiles with heads of one position: the unmasked fast path, and the
    # ring kernel for dq/dk2/dv2 (w2 = 5 in a ring of 16 slots).
    _check(gen, 1, 9, 32, 1, 16, 4, 5)


def test_ring_chunks_and_batches(gen):
    # Three chunks of 16 queries (the last partial): keys at chunk edges get two programs'
    # contributions, summed in the even/odd launches.
    _check(gen, 1, 37, 16, 1, 16, 5, 3)


def test_custom_scale_and_large_logits_stay_finite(gen):
    # Logits of order 1e3: the online softmax must not overflow.
    _check(gen, 1, 10, 2, 1, 16, 4, 3, scale=2.0, scale_q=30.0, grads=False, tol=1e-4)


def test_non_contiguous_inputs(gen):
    q, k1, k2, v1, v2 = _inputs(gen, 1, 12, 4, 2, 16)
    # Heads and sequence swapped in memory, then viewed back: same values, other strides.
    qt, k1t, k2t, v1t, v2t = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k1, k2, v1, v2))
    assert not qt.is_contiguous()
    out = kernel_attention(*(t.to(DEV, torch.float32) for t in (qt, k1t, k2t, v1t, v2t)), w1=5, w2=3)
    ref = reference_attention(q, k1, k2, v1, v2, w1=5, w2=3)
    torch.testing.assert_close(out.double().cpu(), ref, rtol=1e-4, atol=1e-5)


def test_output_dtype_follows_q(gen):
    q, k1, k2, v1, v2 = (t.to(DEV, torch.bfloat16) for t in _inputs(gen, 1, 6, 2, 1, 16))
    out = kernel_attention(q, k1, k2, v1, v2, w1=3, w2=2)
    assert out.dtype == torch.bfloat16
    ref = reference_attention(*(t.double().cpu() for t in (q, k1, k2, v1, v2)), w1=3, w2=2)
    assert ((out.double().cpu() - ref).norm() / ref.norm()) < 2e-2


@pytest.mark.parametrize("D", [8, 24, 256])
def test_unsupported_head_dim_is_a_value_error(D):
    x = torch.randn(1, 4, 1, D, device=DEV)
    with pytest.raises(ValueError, match="head_dim"):
        kernel_attention(x, x, x, x, x, w1=2, w2=2)


def test_bad_arguments_are_value_errors():
    q = torch.randn(1, 4, 3, 16, device=DEV)
    kv = torch.randn(1, 4, 2, 16, device=DEV)
    with pytest.raises(ValueError, match="multiple"):
        kernel_attention(q, kv, kv, kv, kv, w1=2, w2=2)
    with pytest.raises(ValueError, match="w1"):
        kernel_attention(q, q, q, q, q, w1=0, w2=2)
    with pytest.raises(ValueError, match="w2"):
        kernel_attention(q, q, q, q, q, w1=2, w2=None)
    with pytest.raises(ValueError, match="dtype"):
        kernel_attention(q, q.double(), q, q, q, w1=2, w2=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_cpu_without_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not interpreting()
    x = torch.randn(1, 4, 1, 16)
    with pytest.raises(ValueError, match='backend="reference"'):
        kernel_attention(x, x, x, x, x, w1=2, w2=2)


def test_custom_op_has_fake_implementations():
    # Shapes propagate without running a kernel: what torch.compile needs to trace the op.
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(2, 8, 4, 16)
        kv = torch.empty(2, 8, 1, 16)
        o, lse = torch.ops.simplex_lib.two_simplicial_fwd(q, kv, kv, kv, kv, 4, 2, 0.25)
        grads = torch.ops.simplex_lib.two_simplicial_bwd(o, q, kv, kv, kv, kv, o, lse, 4, 2, 0.25)
    assert o.shape == q.shape and lse.shape == (2, 4, 8) and lse.dtype == torch.float32
    assert [g.shape for g in grads] == [q.shape] + [kv.shape] * 4


@pytest.mark.parametrize("jp", [2])
def test_ring_kernel_several_long_rows_per_step(gen, jp):
    # The ring kernel can stack `jp` long-window rows per step; the gradients must not change.
    import dataclasses

    from simplex_lib.kernels import backward as K_bwd
    from simplex_lib.kernels import forward as K_fwd
    from simplex_lib.kernels.configs import bwd_config

    B, N, Hq, Hkv, D, w1, w2 = 1, 20, 32, 2, 16, 5, 3
    x64 = _inputs(gen, B, N, Hq, Hkv, D)
    xs = [t.to(DEV, torch.float32) for t in x64]
    scale = D ** -0.5
    o, lse = K_fwd.forward(*xs, w1, w2, scale)
    do = torch.randn(o.shape, generator=gen, dtype=torch.float64)
    cfg = dataclasses.replace(bwd_config(D, Hq // Hkv, w1, w2), ring_jp=jp)
    assert K_bwd.use_ring(xs[0], xs[1], w2, cfg)
    got = K_bwd.backward(do.to(DEV, torch.float32), *xs, o, lse, w1, w2, scale, cfg)
    xr = [t.clone().requires_grad_() for t in x64]
    want = torch.autograd.grad(reference_attention(*xr, w1=w1, w2=w2), xr, do)
    for g, w in zip(got, want):
        assert ((g.double().cpu() - w).norm() / w.norm()) < 2e-5


def test_bench_flop_conventions_and_plots(tmp_path):
    # The benchmark's FLOP counts (PERFORMANCE.md) and its plots, on made-up records (no GPU).
    import matplotlib

    matplotlib.use("Agg")
    from simplex_lib import bench

    F = bench.simplicial_flops(2, 64, 8192, 128, 512, 32)
    assert F == 4 * 2 * 64 * 8192 * 128 * 512 * 32
    assert bench.simplicial_flops(2, 64, 8192, 128, 512, 32, "bwd") == 2.5 * F
    assert bench.dot_flops(1, 16, 16384, 128) == 4 * 16 * 16384**2 * 128 / 2
    # 512x32 costs what causal dot attention costs at 32k (GEMM count) or 48k (paper's count)
    assert bench.equal_flops_context(512, 32) == 32768
    assert bench.equal_flops_context(512, 32, elementwise=True) == 49152
    recs = []
    for mode in ("fwd", "bwd"):
        for N in (4096, 8192):
            B = 16384 // N
            recs.append(dict(group="kernel", mode=mode, B=B, N=N, Hq=64, Hkv=1, D=128, w1=512, w2=32,
                             ms=10.0, tflops=400.0))
            n_eq = int(round((2 * N * 512 * 32) ** 0.5))
            recs.append(dict(group="sdpa", mode=mode, B=B, N=n_eq, Hq=64, Hkv=64, D=128, ms=5.0,
                             tflops=500.0, paired_with=[512, 32]))
        recs.append(dict(group="table1", mode=mode, B=2, N=8192, Hq=64, Hkv=1, D=128, w1=256, w2=64,
                         ms=20.0, tflops=440.0))
    res = {"meta": {"gpu": "test"}, "records": recs}
    paths = bench.plot_results(res, str(tmp_path))
    assert [p.split("/")[-1] for p in paths] == ["kernel_tflops.png", "table1_latency.png"]
    bench.print_table(res)
