"""Top-k Triton kernels (simplex_lib.ops.topk) against the float64 reference.

Under TRITON_INTERPRET=1 (set by conftest without CUDA), fp32, tiny shapes; on a GPU machine the
same tests run the compiled kernels. Every check compares the output and all five gradients
with :func:`simplex_lib.ops.topk.reference.topk_two_simplicial_attention` in float64.
"""

import pytest
import torch

from simplex_lib.ops.topk import topk_two_simplicial_attention_triton as topk_kernel
from simplex_lib.selection import previous_layer_topk
from simplex_lib.ops.topk.reference import topk_two_simplicial_attention as topk_reference
from simplex_lib.testing import assert_close, assert_gradients_close
from simplex_lib.cost import topk_flops

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def random_idx(gen, B, N, H, k, fill=0.7):
    """Random causal selections: distinct positions <= i, sorted, padded with -1."""
    idx = torch.full((B, N, H, k), -1, dtype=torch.int64)
    for b in range(B):
        for i in range(N):
            for h in range(H):
                drawn = int(torch.binomial(torch.tensor(float(k)), torch.tensor(fill), generator=gen))
                n_sel = min(k, i + 1, drawn + 1)
                sel = torch.randperm(i + 1, generator=gen)[:n_sel].sort().values
                idx[b, i, h, :n_sel] = sel
    return idx


def _inputs(gen, B, N, Hq, Hkv, D):
    return [torch.randn(B, N, h, D, generator=gen, dtype=torch.float64) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]


def _check(gen, x64, idx, idx2=None, scale=None, tol=2e-5):
    """Kernel (fp32) vs the float64 reference: output and the five gradients."""
    i1, i2 = idx.to(DEV), None if idx2 is None else idx2.to(DEV)
    assert_gradients_close(
        lambda *x: topk_kernel(*x, i1, idx2=i2, scale=scale),
        lambda *x: topk_reference(*x, idx, idx2=idx2, scale=scale),
        x64, names=("q", "k1", "k2", "v1", "v2"), tol=tol, device=DEV, generator=gen)


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
    assert topk_flops(8192, 128, batch=2, heads=64, head_dim=128) == 4 * 2 * 64 * 8192 * 128 * 128 * 128
    assert topk_flops(1, 4, 2, mode="bwd") == 2.5 * 4 * 8


def test_errors(gen):
    x = _inputs(gen, 1, 5, 2, 1, 16)
    xf = [t.float().to(DEV) for t in x]
    idx = random_idx(gen, 1, 5, 1, 2).to(DEV)
    with pytest.raises(ValueError, match="dtype"):
        topk_kernel(xf[0], xf[1].double(), *xf[2:], idx)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        topk_kernel(*[t.double().to(DEV) for t in x], idx)
    bad = idx.clone()
    bad[0, 1, 0, 0] = 4                     # a future key
    with pytest.raises(ValueError, match="future"):
        topk_kernel(*xf, bad)
    with pytest.raises(ValueError, match="idx2"):
        topk_kernel(*xf, idx, idx2=idx[:, :4])
    with pytest.raises(ValueError, match="heads"):
        topk_kernel(xf[0], xf[1][:, :, :0], *xf[2:], idx)
    with pytest.raises(ValueError, match="multiple"):  # Hq = 2, Hkv = 3
        topk_kernel(xf[0], *(t.expand(1, 5, 3, 16) for t in xf[1:]), idx)
    with pytest.raises(ValueError, match="idx .*integer"):
        topk_kernel(*xf, idx.float())
    with pytest.raises(ValueError, match="idx .*outside"):
        topk_kernel(*xf, idx - 2)
    with pytest.raises(ValueError, match="idx .*twice"):
        topk_kernel(*xf, torch.zeros_like(idx))
    with pytest.raises(ValueError, match="idx .*heads"):
        topk_kernel(*xf, idx.expand(1, 5, 3, 2))
    with pytest.raises(ValueError, match="idx"):
        topk_kernel(*xf, idx[0])
    with pytest.raises(ValueError, match="scale"):
        topk_kernel(*xf, idx, scale=float("inf"))


def test_index_exactly_as_previous_layer_topk_returns_it(gen):
    # int64, one head for all, [B, N, 1, k], as issue 12's segfault used it: a correct result.
    x64 = _inputs(gen, 2, 9, 4, 2, 16)
    idx = previous_layer_topk(x64[0], x64[1], 3)
    assert idx.dtype == torch.int64 and idx.shape == (2, 9, 1, 3)
    _check(gen, x64, idx)
    # a non-contiguous view and a narrower integer type give the same result
    xs = [t.float().to(DEV) for t in x64]
    want = topk_kernel(*xs, idx.to(DEV))
    odd = idx.to(torch.int16).transpose(0, 1).contiguous().transpose(0, 1)
    assert not odd.is_contiguous()
    assert torch.equal(topk_kernel(*xs, odd.to(DEV)), want)


def test_second_derivative_is_refused(gen):
    x = [t.float().to(DEV).requires_grad_() for t in _inputs(gen, 1, 5, 2, 1, 16)]
    idx = random_idx(gen, 1, 5, 1, 3).to(DEV)
    # with a loss linear in the output too: the gradient would carry no graph (a silent 0)
    for loss in (lambda o: o.square().sum(), lambda o: o.sum()):
        out = topk_kernel(*x, idx)
        with pytest.raises(RuntimeError, match="no second derivative"):
            torch.autograd.grad(loss(out), x[0], create_graph=True)
    out = topk_kernel(*x, idx)
    torch.autograd.grad(out.sum(), x[0])  # a first derivative still works


@pytest.mark.parametrize("B,N", [(0, 4), (1, 0)])
def test_empty_batch_or_sequence(B, N):
    q = torch.randn(B, N, 2, 16, device=DEV, requires_grad=True)
    kv = [torch.randn(B, N, 1, 16, device=DEV, requires_grad=True) for _ in range(4)]
    idx = torch.zeros(B, N, 1, 2, dtype=torch.int64, device=DEV) - 1
    out = topk_kernel(q, *kv, idx)
    assert out.shape == q.shape
    grads = torch.autograd.grad(out.sum(), [q, *kv])
    assert [g.shape for g in grads] == [q.shape] + [kv[0].shape] * 4


@pytest.mark.fuzz
def test_fuzz_bad_indices(gen):
    """Random index tensors: a ValueError naming idx, or the reference's result."""
    x64 = _inputs(gen, 1, 7, 2, 1, 16)
    xs = [t.float().to(DEV) for t in x64]
    for _ in range(8):
        k = int(torch.randint(1, 5, (1,), generator=gen))
        h = (1, 2, 3)[int(torch.randint(0, 3, (1,), generator=gen))]
        idx = torch.randint(-2, 8, (1, 7, h, k), generator=gen)
        try:
            out = topk_kernel(*xs, idx.to(DEV))
        except ValueError as e:
            assert "idx" in str(e), str(e)
            continue
        assert_close("o", topk_reference(*x64, idx), out, 2e-5)


# --- the head-packed forward (selections shared by a KV group) ---------------------------------

def _count_packed(monkeypatch):
    """Count launches of the head-packed forward (to check the dispatch as well as the result);
    the head-packed backward's launches are appended as ``"bwd"``."""
    import simplex_lib.ops.topk.triton as tk

    calls = []
    fwd, bwd = tk._packed_forward, tk._packed_backward

    def spy_fwd(*a):
        calls.append("fwd")
        return fwd(*a)

    def spy_bwd(*a, **kw):
        calls.append("bwd")
        return bwd(*a, **kw)

    monkeypatch.setattr(tk, "_packed_forward", spy_fwd)
    monkeypatch.setattr(tk, "_packed_backward", spy_bwd)
    return calls


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,D,k,H_idx",
    [
        (1, 9, 16, 1, 16, 12, 1),   # GQA 16: one full tile of 16 heads; k > i: empty slots
        (2, 7, 32, 1, 16, 5, 1),    # GQA 32, batch 2
        (1, 11, 48, 2, 24, 6, 2),   # GQA 24: 32-row tiles with 8 padded rows; D = 24; Hkv sets
    ],
)
def test_packed_forward_matches_reference(gen, monkeypatch, B, N, Hq, Hkv, D, k, H_idx):
    calls = _count_packed(monkeypatch)
    x64 = _inputs(gen, B, N, Hq, Hkv, D)
    idx = random_idx(gen, B, N, H_idx, k)
    _check(gen, x64, idx)
    assert calls == ["fwd", "bwd"]  # the auto rule took the packed kernels


def test_packed_forward_two_selections_and_batch_broadcast(gen, monkeypatch):
    calls = _count_packed(monkeypatch)
    x64 = _inputs(gen, 2, 10, 32, 2, 16)
    idx = random_idx(gen, 1, 10, 1, 7)       # batch 1, one set for all heads
    idx2 = random_idx(gen, 2, 10, 2, 3)      # one set per KV head, k2 = 3
    idx2[1, 4] = -1                          # query 4 of batch 1 has no K2 key: zeros
    _check(gen, x64, idx, idx2=idx2, scale=0.6)
    out = topk_kernel(*[t.float().to(DEV) for t in x64], idx.to(DEV), idx2=idx2.to(DEV))
    assert torch.equal(out[1, 4].cpu(), torch.zeros(32, 16))
    assert calls == ["fwd", "bwd", "fwd"]


def test_packed_forward_forced_for_a_small_group(gen, monkeypatch):
    """SIMPLEX_TOPK_KERNEL=packed: a group of 2 heads in a 16-row tile (14 padded rows)."""
    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", "packed")
    calls = _count_packed(monkeypatch)
    x64 = _inputs(gen, 1, 13, 4, 2, 16)
    _check(gen, x64, random_idx(gen, 1, 13, 2, 5))
    assert calls == ["fwd", "bwd"]
    x = [t.float().to(DEV) for t in x64]
    with pytest.raises(ValueError, match="shared"):  # per-query-head selections cannot be packed
        topk_kernel(*x, random_idx(gen, 1, 13, 4, 5).to(DEV))


def test_packed_and_row_kernels_agree(gen, monkeypatch):
    x = [t.float().to(DEV).requires_grad_() for t in _inputs(gen, 1, 12, 16, 1, 16)]
    idx = random_idx(gen, 1, 12, 1, 6).to(DEV)
    do = torch.randn(1, 12, 16, 16, generator=gen).to(DEV)
    calls = _count_packed(monkeypatch)
    results = {}
    for kernel in ("auto", "row"):
        monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", kernel)
        out = topk_kernel(*x, idx)
        results[kernel] = (out, *torch.autograd.grad(out, x, do))
    assert calls == ["fwd", "bwd"]  # auto: packed; row: the per-row kernels
    for name, row, packed in zip(("o", "dq", "dk1", "dk2", "dv1", "dv2"), results["row"], results["auto"]):
        assert_close(name, row.double(), packed, 1e-5)


def test_dispatch_rule(monkeypatch):
    from simplex_lib.ops.topk.triton import PACK_MIN_GROUP, topk_dispatch

    G = PACK_MIN_GROUP
    assert topk_dispatch(1, None, G, 1, "auto") == "packed"          # one set for all heads
    assert topk_dispatch(2, 1, 2 * G, 2, "auto") == "packed"         # per KV head and shared
    assert topk_dispatch(1, None, G - 1, 1, "auto") == "row"         # the group is too small
    assert topk_dispatch(G, None, G, 1, "auto") == "row"             # per query head
    assert topk_dispatch(1, G, G, 1, "auto") == "row"                # idx2 per query head
    assert topk_dispatch(1, None, G, 1, "row") == "row"
    assert topk_dispatch(1, None, 2, 1, "packed") == "packed"
    with pytest.raises(ValueError, match="shared"):
        topk_dispatch(2, None, 2, 1, "packed")
    with pytest.raises(ValueError, match="choice"):
        topk_dispatch(1, None, G, 1, "fast")
    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", "row")
    assert topk_dispatch(1, None, G, 1) == "row"
    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", "fast")
    with pytest.raises(ValueError, match="SIMPLEX_TOPK_KERNEL"):
        topk_dispatch(1, None, G, 1)


def test_packed_kernels_with_several_key_tiles(gen, monkeypatch):
    """16 gathered K1 rows per tile (forced) and kA = 37: three tiles in both packed kernels, the
    last one partly empty; idx2 keeps its own kB = 5."""
    import simplex_lib.ops.topk.triton as tk

    small = lambda q, group, ka: [(16, 16, 16)]  # noqa: E731  (BLOCK_D, GH, BLOCK_A)
    monkeypatch.setattr(tk, "_packed_candidates", small)
    monkeypatch.setattr(tk, "_packed_bwd_candidates", small)
    calls = _count_packed(monkeypatch)
    x64 = _inputs(gen, 1, 40, 16, 1, 16)
    _check(gen, x64, random_idx(gen, 1, 40, 1, 37, fill=0.9), idx2=random_idx(gen, 1, 40, 1, 5))
    assert calls == ["fwd", "bwd"]


@pytest.mark.parametrize("kernel,H_idx", [("row", 2), ("row", 1), ("packed", 1)])
def test_deterministic_backward_matches_reference(gen, monkeypatch, kernel, H_idx):
    # deterministic=True: partial rows per program, added per key in a fixed order; tiny chunks
    # (a few positions each) so that the chunked path and its views of q, do, dq are exercised
    from simplex_lib.ops.topk import triton as topk_triton

    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", kernel)
    monkeypatch.setattr(topk_triton, "DETERMINISTIC_CHUNK_BYTES", 3 * 2 * (2 * 5 + 2 * 5) * 16 * 4)
    assert len(topk_triton._deterministic_chunks(13, 2 * 2, 5, 5, 16)) > 3
    x64 = _inputs(gen, 2, 13, 2, 1, 16)
    idx = random_idx(gen, 2, 13, H_idx, 5)
    idx[1, 4] = -1                          # a query that selects nothing
    i1 = idx.to(DEV)
    assert_gradients_close(
        lambda *x: topk_kernel(*x, i1, deterministic=True),
        lambda *x: topk_reference(*x, idx),
        x64, names=("q", "k1", "k2", "v1", "v2"), tol=2e-5, device=DEV, generator=gen)


def test_deterministic_backward_repeats_bitwise(gen):
    x = [t.float().to(DEV).requires_grad_() for t in _inputs(gen, 1, 11, 4, 2, 16)]
    idx = random_idx(gen, 1, 11, 2, 4).to(DEV)
    do = torch.randn(1, 11, 4, 16, generator=gen).to(DEV)
    runs = [torch.autograd.grad(topk_kernel(*x, idx, deterministic=True), x, do) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    with pytest.raises(ValueError, match="deterministic"):
        topk_kernel(*x, idx, deterministic="yes")


def test_deterministic_packed_backward_with_two_head_blocks(gen, monkeypatch):
    # 80 query heads per KV head: two head blocks of 64 per position, each with its own partial rows
    monkeypatch.setenv("SIMPLEX_TOPK_KERNEL", "packed")
    x64 = _inputs(gen, 1, 5, 80, 1, 16)
    idx = random_idx(gen, 1, 5, 1, 3)
    i1 = idx.to(DEV)
    assert_gradients_close(
        lambda *x: topk_kernel(*x, i1, deterministic=True),
        lambda *x: topk_reference(*x, idx),
        x64, names=("q", "k1", "k2", "v1", "v2"), tol=2e-5, device=DEV, generator=gen)


def test_packed_backward_tile_rule():
    # the head-packed backward takes at most 32 heads at D > 64 and 64 gathered rows (H200 sweep)
    from simplex_lib.ops.topk import triton as tk

    q128, q64 = torch.empty(1, 1, 64, 128), torch.empty(1, 1, 64, 64)
    assert tk._packed_shapes(q128, 64, 128, max_block_a=64, max_gh=32)[0] == (128, 32, 64)
    assert tk._packed_bwd_candidates(q128, 64, 128)[0] == (128, 32, 64)
    assert tk._packed_bwd_candidates(q64, 64, 128)[0] == (64, 64, 64)
    assert tk._packed_bwd_candidates(q128, 8, 16)[0] == (128, 16, 16)
