"""Top-k Triton kernels (simplex_lib.kernels.topk) against the float64 reference.

Under TRITON_INTERPRET=1 (set by conftest without CUDA), fp32, tiny shapes; on a GPU machine the
same tests run the compiled kernels. Every check compares the output and all five gradients
with :func:`simplex_lib.sparsity.topk_two_simplicial_attention` in float64.
"""

import pytest
import torch

from simplex_lib.kernels.topk import topk_flops, topk_two_simplicial_attention_triton as topk_kernel
from simplex_lib.sparsity import topk_two_simplicial_attention as topk_reference

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def random_idx(gen, B, N, H, k, fill=0.7):
    """Random causal selections: distinct positions <= i, sorted, padded with -1."""
    idx = torch.full((B, N, H, k), -1, dtype=torch.int64)
    for b in range(B):
        for i in range(N):
            for h in range(H):
                n_sel = min(k, i + 1, int(torch.binomial(torch.tensor(float(k)), torch.tensor(fill), generator=gen)) + 1)
                sel = torch.randperm(i + 1, generator=gen)[:n_sel].sort().values
                idx[b, i, h, :n_sel] = sel
    return idx


def _inputs(gen, B, N, Hq, Hkv, D):
    return [torch.randn(B, N, h, D, generator=gen, dtype=torch.float64) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]


def _check(gen, x64, idx, idx2=None, scale=None, tol=2e-5):
    xs = [t.to(DEV, torch.float32).requires_grad_() for t in x64]
    xr = [t.clone().requires_grad_() for t in x64]
    out = topk_kernel(*xs, idx.to(DEV), idx2=None if idx2 is None else idx2.to(DEV), scale=scale)
    ref = topk_reference(*xr, idx, idx2=idx2, scale=scale)
    assert out.shape == ref.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    err = (out.double().cpu() - ref).norm() / ref.norm().clamp_min(1e-12)
    assert err < tol or (out.double().cpu() - ref).abs().max() < 1e-6, f"output rel. error {err:.2e}"
    do = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, xs, do.to(DEV, torch.float32))
    want = torch.autograd.grad(ref, xr, do)
    for name, g, w in zip(("dq", "dk1", "dk2", "dv1", "dv2"), got, want):
        assert g.shape == w.shape and torch.isfinite(g).all(), name
        e = (g.double().cpu() - w).norm() / w.norm().clamp_min(1e-12)
        # Where every query sees a single pair, P = 1 and dS = dP - Delta = 0: the exact dq, dk1,
        # dk2 vanish and only fp32 rounding of O(1) terms that cancel is left (seen up to 1.5e-6).
        vanishes = w.abs().max() < 1e-12
        assert e < tol or (vanishes and (g.double().cpu() - w).abs().max() < 1e-4), \
            f"{name} rel. error {e:.2e}"


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,D,k,H_idx",
    [
        (1, 1, 2, 1, 16, 1, 1),     # a single position, k = 1
        (1, 9, 2, 2, 16, 4, 2),     # no GQA, one selection per KV head
        (1, 17, 4, 2, 16, 16, 4),   # GQA 2, per-query-head selections, k = 16 (one full block)
        (2, 13, 2, 1, 32, 5, 1),    # batch 2, one selection shared by all heads, D = 32
        (1, 33, 2, 1, 16, 7, 2),    # length 33, GQA 2
        (1, 6, 2, 1, 24, 3, 1),     # head dimension not a power of two (masked lanes)
    ],
)
def test_matches_reference(gen, B, N, Hq, Hkv, D, k, H_idx):
    x64 = _inputs(gen, B, N, Hq, Hkv, D)
    _check(gen, x64, random_idx(gen, B, N, H_idx, k))


def test_two_selections_of_different_sizes_and_batch_broadcast(gen):
    x64 = _inputs(gen, 2, 11, 4, 2, 16)
    idx = random_idx(gen, 1, 11, 2, 6)      # batch 1: broadcast over the batch
    idx2 = random_idx(gen, 2, 11, 4, 3)     # per query head, k2 = 3
    _check(gen, x64, idx, idx2=idx2, scale=0.7)


def test_empty_rows_give_zeros_and_finite_gradients(gen):
    x64 = _inputs(gen, 1, 8, 2, 1, 16)
    idx = random_idx(gen, 1, 8, 1, 4)
    idx[0, 3] = -1                          # query 3 selects nothing
    xs = [t.float().to(DEV).requires_grad_() for t in x64]
    out = topk_kernel(*xs, idx.to(DEV))
    assert torch.equal(out[0, 3].cpu(), torch.zeros(2, 16))
    _check(gen, x64, idx)


@pytest.mark.slow
def test_several_blocks_of_keys(gen):
    # k = 70 > 64 keys per block: two blocks in each loop of both kernels.
    x64 = _inputs(gen, 1, 72, 1, 1, 16)
    idx = random_idx(gen, 1, 72, 1, 70, fill=1.0)
    _check(gen, x64, idx)


def test_flops_convention():
    assert topk_flops(2, 64, 8192, 128, 128) == 4 * 2 * 64 * 8192 * 128 * 128 * 128
    assert topk_flops(1, 1, 1, 1, 4, 2, mode="bwd") == 2.5 * 4 * 8


def test_errors(gen):
    x = _inputs(gen, 1, 5, 2, 1, 16)
    xf = [t.float().to(DEV) for t in x]
    idx = random_idx(gen, 1, 5, 1, 2)
    with pytest.raises(ValueError, match="dtype"):
        topk_kernel(xf[0], xf[1].double(), *xf[2:], idx.to(DEV))
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        topk_kernel(*[t.double().to(DEV) for t in x], idx.to(DEV))
    bad = idx.clone()
    bad[0, 1, 0, 0] = 4                     # a future key
    with pytest.raises(ValueError, match="future"):
        topk_kernel(*xf, bad.to(DEV))
    with pytest.raises(ValueError, match="idx2"):
        topk_kernel(*xf, idx.to(DEV), idx2=idx[:, :4].to(DEV))
    with pytest.raises(ValueError, match="heads"):
        topk_kernel(xf[0], xf[1][:, :, :0], *xf[2:], idx.to(DEV))
