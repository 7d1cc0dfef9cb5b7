"""Triton kernels for sliding-window 2-simplicial attention, checked under TRITON_INTERPRET=1.

Every check compares the kernel's output and all five gradients with the float64 reference on
seeded random inputs (``simplex_lib.testing``). Shapes are tiny: the interpreter runs each
program step in NumPy. On a GPU machine these same tests run the compiled kernels.
"""

import math

import pytest
import torch

from simplex_lib.ops.two_simplicial import configs as C
from simplex_lib.ops.two_simplicial.interface import SUPPORTED_HEAD_DIMS
from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel_attention
from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention as reference_attention
from simplex_lib.testing import assert_close, assert_gradients_close

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(gen, B, N, Hq, Hkv, D, scale_q=1.0):
    q = torch.randn(B, N, Hq, D, generator=gen, dtype=torch.float64) * scale_q
    kv = [torch.randn(B, N, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(4)]
    return [q] + kv


def _check(gen, B, N, Hq, Hkv, D, w1, w2, *, scale=None, scale_q=1.0, tol=2e-5):
    """Kernel (fp32) vs float64 reference: output and the five gradients, relative L2 error."""
    assert_gradients_close(
        lambda *x: kernel_attention(*x, w1=w1, w2=w2, scale=scale),
        lambda *x: reference_attention(*x, w1=w1, w2=w2, causal=True, scale=scale),
        _inputs(gen, B, N, Hq, Hkv, D, scale_q), names=("q", "k1", "k2", "v1", "v2"),
        tol=tol, device=DEV, generator=gen)


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,w1,w2",
    [
        (1, 19, 4, 2, 5, 3),  # GQA 2, odd length, several tiles of the long window
        (1, 13, 1, 1, 6, 4),  # no GQA: sequence tiling with 2-D masks
        (1, 9, 8, 2, 20, 30),  # GQA 4, both windows longer than the sequence
        (1, 11, 2, 2, 2, 7),  # w2 > w1: the wrapper swaps the two key/value sets
        (1, 1, 4, 1, 3, 3),  # a single position
        (2, 10, 3, 1, 4, 2),  # GQA 3 (not a power of two), batch 2
        (1, 12, 8, 1, 5, 3),  # GQA 8
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
    x = _inputs(gen, 1, 10, 2, 1, 16, scale_q=30.0)
    out = kernel_attention(*(t.to(DEV, torch.float32) for t in x), w1=4, w2=3, scale=2.0)
    assert_close("o", reference_attention(*x, w1=4, w2=3, scale=2.0), out, 1e-4)


def test_extreme_logits_give_the_softmax_not_zeros(gen):
    # Every logit near -1e30 (a huge negative scale): the softmax is still well defined.
    x = _inputs(gen, 1, 6, 2, 1, 16)
    x[0] = x[0].abs()
    x[1], x[2] = x[1].abs(), -x[2].abs()  # every q.k1.k2 < 0
    out = kernel_attention(*(t.to(DEV, torch.float32) for t in x), w1=3, w2=2, scale=1e29)
    ref = reference_attention(*x, w1=3, w2=2, scale=1e29)
    assert_close("o", ref, out, 1e-4)


@pytest.mark.parametrize("Hq,Hkv,which", [(4, 2, 0), (4, 2, 1), (4, 2, 4), (1, 1, 3), (1, 1, 2),
                                          (32, 1, 3)])
def test_nan_reaches_only_the_windows_that_contain_it(gen, Hq, Hkv, which):
    # A NaN at position p: outputs whose windows contain p are NaN (as in the reference), every
    # other output is exact; never 0 * NaN from a masked entry.
    N, p, w1, w2 = 13, 6, 4, 3
    x = [t.float() for t in _inputs(gen, 1, N, Hq, Hkv, 16)]
    x[which][0, p, 0, 5] = float("nan")
    out = kernel_attention(*(t.to(DEV) for t in x), w1=w1, w2=w2).cpu()
    ref = reference_attention(*(t.double() for t in x), w1=w1, w2=w2)
    sees = torch.isnan(ref).any(-1)
    assert torch.equal(torch.isnan(out).any(-1), sees)
    assert sees.any() and not sees[:, :p].any()
    assert_close("o (rows that do not see p)", ref[~sees], out[~sees], 2e-5)


def test_non_contiguous_inputs(gen):
    x = _inputs(gen, 1, 12, 4, 2, 16)
    # Heads and sequence swapped in memory, then viewed back: same values, other strides.
    xt = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in x]
    assert not xt[0].is_contiguous()
    out = kernel_attention(*(t.to(DEV, torch.float32) for t in xt), w1=5, w2=3)
    assert_close("o", reference_attention(*x, w1=5, w2=3), out, 2e-5)


def test_output_dtype_follows_q(gen):
    x = [t.to(DEV, torch.bfloat16) for t in _inputs(gen, 1, 6, 2, 1, 16)]
    out = kernel_attention(*x, w1=3, w2=2)
    assert out.dtype == torch.bfloat16
    assert_close("o", reference_attention(*(t.double().cpu() for t in x), w1=3, w2=2), out, 2e-2)


@pytest.mark.parametrize("shape", [(0, 5, 2, 16), (1, 0, 2, 16)])
def test_empty_batch_or_sequence_gives_an_empty_result(shape):
    q = torch.randn(shape, device=DEV, requires_grad=True)
    kv = [torch.randn(shape[0], shape[1], 1, 16, device=DEV, requires_grad=True) for _ in range(4)]
    out = kernel_attention(q, *kv, w1=2, w2=2)
    assert out.shape == q.shape
    grads = torch.autograd.grad(out.sum(), [q, *kv])
    assert [g.shape for g in grads] == [q.shape] + [kv[0].shape] * 4


def test_second_derivative_is_refused(gen):
    x = [t.float().to(DEV).requires_grad_() for t in _inputs(gen, 1, 5, 2, 1, 16)]
    out = kernel_attention(*x, w1=3, w2=2)
    (g,) = torch.autograd.grad(out.square().sum(), x[0], create_graph=True)
    with pytest.raises(RuntimeError, match="(?i)derivative|autograd|differentiate"):
        torch.autograd.grad(g.sum(), x[1])


@pytest.mark.parametrize("D", [8, 24, 256])
def test_unsupported_head_dim_is_a_value_error(D):
    x = torch.randn(1, 4, 1, D, device=DEV)
    with pytest.raises(ValueError, match="head_dim"):
        kernel_attention(x, x, x, x, x, w1=2, w2=2)


def test_bad_arguments_are_value_errors():
    q = torch.randn(1, 4, 4, 16, device=DEV)
    kv3 = torch.randn(1, 4, 3, 16, device=DEV)
    with pytest.raises(ValueError, match="multiple"):  # Hq = 4, Hkv = 3
        kernel_attention(q, kv3, kv3, kv3, kv3, w1=2, w2=2)
    with pytest.raises(ValueError, match="k1"):
        kernel_attention(q, q[:, :3], q, q, q, w1=2, w2=2)
    with pytest.raises(ValueError, match="w1"):
        kernel_attention(q, q, q, q, q, w1=0, w2=2)
    with pytest.raises(ValueError, match="w2"):
        kernel_attention(q, q, q, q, q, w1=2, w2=None)
    with pytest.raises(ValueError, match="w1"):
        kernel_attention(q, q, q, q, q, w1=2.5, w2=2)
    with pytest.raises(ValueError, match="dtype"):
        kernel_attention(q, q.double(), q, q, q, w1=2, w2=2)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        kernel_attention(*(q.double(),) * 5, w1=2, w2=2)
    for bad in (float("nan"), float("inf"), "0.5"):
        with pytest.raises(ValueError, match="scale"):
            kernel_attention(q, q, q, q, q, w1=2, w2=2, scale=bad)
    with pytest.raises(ValueError, match="q"):
        kernel_attention(q[0], q, q, q, q, w1=2, w2=2)


def test_custom_ops_check_their_inputs():
    # torch.ops makes the ops reachable without the public function: they check shapes too.
    q = torch.randn(1, 4, 4, 16, device=DEV)
    kv3 = torch.randn(1, 4, 3, 16, device=DEV)
    with pytest.raises(ValueError, match="multiple"):
        torch.ops.simplex_lib.two_simplicial_fwd(q, kv3, kv3, kv3, kv3, 2, 2, 0.25)
    with pytest.raises(ValueError, match="lse"):
        torch.ops.simplex_lib.two_simplicial_bwd(q, q, q, q, q, q, q, q[..., :3], 2, 2, 0.25)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_cpu_without_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not C.interpreting()
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


def test_configs_fit_the_shared_memory(monkeypatch):
    # Configurations as on a GPU (not the interpreter's 16-wide blocks).
    monkeypatch.setattr(C, "interpreting", lambda: False)
    h200 = 232448
    # Chapter 9's failure: fp32, D = 128, the key tile of 128 rows needed 264192 bytes.
    assert C.kv_smem_bytes(128, 64, 128, 4) > h200
    for D in SUPPORTED_HEAD_DIMS:
        for elem in (2, 4):
            for G in (1, 4, 64):
                for w1, w2 in ((512, 32), (128, 128), (16, 16), (3, 40)):
                    b = C.bwd_configs(D, G, w1, w2, elem, h200)[0]
                    assert C.bwd_smem_bytes(b, D, elem) <= h200, (D, elem, G, w1, w2, b)
                    for f in (C.fwd_configs(D, G, w1, elem, h200)[0],
                              C.fwd_configs(D, G, w1, elem, h200, w2)[0]):
                        assert C.fwd_smem_bytes(f, D, elem) <= h200, (D, elem, G, w1, w2, f)
    # bf16 at the headline shape keeps the fastest configuration; fp32 shrinks only the key tile
    assert C.bwd_configs(128, 64, 512, 32, 2, h200)[0] == C.bwd_config(128, 64, 512, 32)
    fp32 = C.bwd_configs(128, 64, 512, 32, 4, h200)[0]
    assert (fp32.BLOCK_A, fp32.BLOCK_M) == (64, 64)
    # a device with 100 KB still gets a configuration
    assert C.bwd_smem_bytes(C.bwd_configs(128, 1, 512, 32, 4, 100 * 1024)[0], 128, 4) <= 100 * 1024


def test_gpu_launch_choices_follow_the_h200_measurements(monkeypatch):
    # benchmarks/results/h200/configs.json: the short-window key-tile launch is fastest at 4 warps
    # (the long-window one at 8), and at D <= 64 the forward's offset walk wins from 2 positions
    monkeypatch.setattr(C, "interpreting", lambda: False)
    b = C.bwd_config(128, 4, 512, 32)
    assert (b.kv_warps, b.kv2_warps, b.num_warps) == (8, 4, 4)
    assert [C.fwd_config(64, g, 512).WALK for g in (1, 8, 64)] == ["offset", "offset", "position"]
    assert [C.fwd_config(128, g, 512).WALK for g in (1, 8, 64)] == ["offset", "offset", "position"]
    # results/h200/pairs_s14.json: with the short window known, the pairs forward wherever a
    # 64-row tile holds the whole short window of one position (GQA 2-32 at w2 = 32)
    assert [C.fwd_config(128, g, 512, 32).WALK for g in (1, 4, 8, 64)] == [
        "offset", "pairs", "pairs", "position"]
    assert C.fwd_config(128, 1, 256, 64) == C.FwdConfig(64, 64, 4, 2, WALK="pairs")
    assert C.fwd_config(64, 8, 512, 32) == C.FwdConfig(64, 64, 4, 3, WALK="pairs")
    # results/h200/fwd_sweep_128x128.json: at 128x128 the pairs walk in two groups of offsets
    # at D 128 below GQA 8, and the offset walk's key tiles of 64 at D <= 64
    assert [C.fwd_config(128, g, 128, 128) for g in (1, 4, 8)] == [
        C.FwdConfig(64, 64, 4, 2, WALK="pairs"), C.FwdConfig(64, 64, 4, 2, WALK="pairs"),
        C.FwdConfig(64, 128, 4, 2, WALK="offset")]
    # ... with a 16-key last tile from GQA 4 (fwd_tail_s26.json: 173 / 180 against 162 / 162)
    for d in (16, 32, 64):
        assert [C.fwd_config(d, g, 128, 128) for g in (1, 4, 8)] == [
            C.FwdConfig(64, 64, 4, 3, WALK="offset"),
            *[C.FwdConfig(64, 64, 4, 3, WALK="offset", BLOCK_TAIL=16)] * 2], d
    # with TMA tiles: the offset walk everywhere below GQA 64, 128-key tiles, the narrow last
    # tile in the program at D 64, 3 stages at D 128 from GQA 4 (fwd_tail_s26.json), and at
    # D 128 the narrow tile as a launch of its own (fwd_tail_pass_s29.json)
    tma = [C.fwd_config(64, g, 512, 32, tma=True) for g in (1, 4, 8)]
    assert [(c.WALK, c.LOADS, c.BLOCK_N, c.BLOCK_TAIL, c.TAIL_PASS) for c in tma] == [
        ("offset", "tma", 128, 64, False), ("offset", "tma", 128, 16, False),
        ("offset", "tma", 128, 16, False)]
    tma = [C.fwd_config(128, g, 512, 32, tma=True) for g in (1, 4, 8)]
    assert [(c.WALK, c.num_stages, c.BLOCK_TAIL, c.TAIL_PASS) for c in tma] == [
        ("offset", 2, 64, True), ("offset", 3, 16, True), ("offset", 3, 16, True)]
    # gathered rows (no TMA) at D 128 keep whole tiles: the tail pass was timed with TMA only
    assert C.fwd_config(128, 8, 128, 128).BLOCK_TAIL == 0
    # the rule stops at w1 = 128: at 512x32 128-key tiles (configs.json), and GQA 64 keeps them
    assert C.fwd_config(64, 1, 512, 32).BLOCK_N == 128
    assert C.fwd_config(64, 64, 128, 128) == C.FwdConfig(64, 128, 4, 3, WALK="position")


def test_gpu_backward_key_tile_launch_at_narrow_heads(monkeypatch):
    # results/h200/bwd_sweep_d64.json: at D <= 64 the long window's key tiles take 64 keys on
    # 4 warps, 3 stages deep, at every window pair; at D 128 they keep 128 keys on 8 warps
    monkeypatch.setattr(C, "interpreting", lambda: False)
    for d in (16, 32, 64):
        for w1, w2 in ((512, 32), (256, 64), (128, 128)):
            b = C.bwd_config(d, 4, w1, w2)
            assert (b.BLOCK_A, b.kv_warps, b.kv_stages) == (64, 4, 3), (d, w1, w2)
    b = C.bwd_config(128, 4, 128, 128)
    assert (b.BLOCK_A, b.kv_warps, b.kv_stages) == (128, 8, 2)
    # beside them at w2 > 64 (the key-tile short path) and GQA 4 to 32 the dq kernel takes 64-key
    # tiles, 3 stages (bwd_sweep_d64.json's session-21 call; GQA 1 read slower in the grid)
    assert [(C.bwd_config(64, g, 128, 128).BLOCK_N, C.bwd_config(64, g, 128, 128).num_stages)
            for g in (1, 4, 8, 64)] == [(128, 2), (64, 3), (64, 3), (128, 2)]
    # ... and at GQA 1 too with TMA tiles, two stages (bwd_sweep_d64_g1_s26.json)
    b = C.bwd_config(64, 1, 128, 128, tma=True)
    assert (b.BLOCK_N, b.num_stages, b.LOADS) == (64, 2, "tma")
    # at D 128 the dq kernel beside the key-tile short path takes 64-key tiles at two stages up
    # to GQA 8, and from GQA 4 the short set's key tiles take 32 keys
    # (bwd_sweep_d128_128x128.json); GQA 64 and the fused path's shapes keep theirs
    d128 = [C.bwd_config(128, g, 128, 128) for g in (1, 2, 4, 8, 64)]
    assert [(b.BLOCK_N, b.num_stages, b.BLOCK_A2) for b in d128] == (
        [(64, 2, 64)] * 2 + [(64, 2, 32)] * 2 + [(128, 2, 64)])
    assert C.bwd_config(128, 4, 512, 32).SHORT == "fused"


def test_out_of_resources_steps_down_and_remembers(monkeypatch):
    from triton.runtime.errors import OutOfResources

    tried = []

    def launch(cfg):
        tried.append(cfg)
        if cfg > 16:
            raise OutOfResources(cfg * 1000, 16000, "shared memory")
        return cfg

    monkeypatch.setattr(C, "_CHOSEN", {})
    assert C.launch_with_fallback("k", [64, 32, 16], launch) == 16
    assert tried == [64, 32, 16]
    tried.clear()
    assert C.launch_with_fallback("k", [64, 32, 16], launch) == 16 and tried == [16]
    with pytest.raises(OutOfResources):
        C.launch_with_fallback("other", [64, 32], launch)


@pytest.mark.fuzz
def test_fuzz_bad_inputs(gen):
    """Random shapes and values: a ValueError naming an argument, or the reference's result."""
    names = ("q", "k1", "k2", "v1", "v2", "w1", "w2", "scale", "head_dim", "multiple", "heads")

    def draw(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    for _ in range(6):
        B, N, Hkv, D = draw(0, 2), draw(0, 9), draw(1, 3), (16, 8, 32, 0)[draw(0, 3)]
        Hq = Hkv * draw(1, 3) + (draw(0, 4) == 0)
        shapes = [[B, N, Hq, D]] + [[B, N, Hkv, D] for _ in range(4)]
        if draw(0, 3) == 0:  # one tensor with a wrong size somewhere
            shapes[draw(0, 4)][draw(0, 3)] += 1
        x = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        w1 = (draw(-1, 12), None)[draw(0, 5) == 0]
        w2 = draw(-1, 12)
        scale = (None, 0.3, float("nan"), -2.0)[draw(0, 3)]
        try:
            out = kernel_attention(*(t.float().to(DEV) for t in x), w1=w1, w2=w2, scale=scale)
        except ValueError as e:
            assert any(n in str(e) for n in names), str(e)
            continue
        if out.numel() == 0:  # empty batch or sequence: an empty result
            assert out.shape == x[0].shape
            continue
        assert_close("o", reference_attention(*x, w1=w1, w2=w2, scale=scale), out, 1e-4)


def test_scale_default_is_inverse_sqrt_head_dim():
    from simplex_lib.ops.two_simplicial.interface import check_scale

    assert check_scale(None, 64) == 1 / math.sqrt(64)
    assert check_scale(2, 64) == 2.0
