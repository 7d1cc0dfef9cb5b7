"""GPU checks of the 2-simplicial kernels at realistic shapes (skipped without CUDA).

Every dtype the kernels take (float32, float16, bfloat16) at every supported head_dim, forward
and backward, against the float64 reference; both backward paths (the ring kernel at a large GQA
ratio, the query-owned fallback without GQA); both walks of the short window (by position and
by offset) for tiles of several positions; determinism of the backward; and
``torch.compile(fullgraph=True)`` through the custom op. The configurations must fit the
device's shared memory (float32 at head_dim 128 did not, on an H200).
"""

import pytest
import torch

from simplex_lib.ops.two_simplicial.configs import bwd_configs, bwd_smem_bytes, max_shared_memory
from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel_attention
from simplex_lib.ops.two_simplicial.windowed import windowed_two_simplicial_attention as reference_attention
from simplex_lib.testing import assert_close

pytestmark = pytest.mark.gpu

TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def _rand(shape, dtype, g):
    return torch.randn(shape, device="cuda", dtype=dtype, generator=g)


def _check(B, N, Hq, Hkv, D, w1, w2, dtype, tol, determinism=True, scale=None):
    g = torch.Generator(device="cuda").manual_seed(N + D)
    xs = [_rand((B, N, Hq, D), dtype, g)] + [_rand((B, N, Hkv, D), dtype, g) for _ in range(4)]
    xs = [t.requires_grad_() for t in xs]
    out = kernel_attention(*xs, w1=w1, w2=w2, scale=scale)
    do = torch.randn_like(out)
    grads = torch.autograd.grad(out, xs, do)
    xr = [t.detach().double().requires_grad_() for t in xs]
    ref = reference_attention(*xr, w1=w1, w2=w2, scale=scale)
    gref = torch.autograd.grad(ref, xr, do.double())
    for name, a, b in zip(("o", "dq", "dk1", "dk2", "dv1", "dv2"), (out, *grads), (ref, *gref)):
        assert_close(f"{name} ({dtype}, D={D})", b, a, tol)
    if determinism:
        again = torch.autograd.grad(kernel_attention(*xs, w1=w1, w2=w2, scale=scale), xs, do)
        assert all(torch.equal(a, b) for a, b in zip(grads, again)), "backward is not deterministic"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("D", [16, 32, 64, 128])
@pytest.mark.parametrize("path", ["ring", "fallback"])
def test_every_dtype_and_head_dim(dtype, D, path):
    # ring: 64 query heads per KV head (one position per row block), long window > 128 so the
    # 128-row tiles are used; fallback: no GQA, sequence tiling and the query-owned dq kernel.
    if path == "ring":
        _check(1, 160, 64, 1, D, 150, 16, dtype, TOL[dtype])
    else:
        _check(2, 197, 4, 4, D, 140, 24, dtype, TOL[dtype])


def test_float32_head_dim_128_config_fits_this_device():
    smem = max_shared_memory("cuda")
    cfg = bwd_configs(128, 64, 512, 32, 4, smem)[0]
    assert bwd_smem_bytes(cfg, 128, 4) <= smem


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,D,w1,w2,dtype",
    [
        (1, 256, 64, 1, 128, 512, 32, torch.bfloat16),  # headline layout, ring backward
        (1, 301, 4, 4, 64, 64, 16, torch.bfloat16),  # no GQA: sequence tiling
        (2, 257, 8, 2, 32, 33, 70, torch.float16),  # w2 > w1
        (1, 130, 128, 1, 64, 16, 16, torch.bfloat16),  # GQA 128: two head blocks
        (1, 200, 64, 1, 128, 512, 32, torch.float32),  # chapter 9's float32 case
    ],
)
def test_matches_reference_on_gpu(B, N, Hq, Hkv, D, w1, w2, dtype):
    _check(B, N, Hq, Hkv, D, w1, w2, dtype, TOL[dtype] if dtype == torch.float32 else 2e-2)


@pytest.mark.parametrize("walk", ["position", "offset", "pairs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("D", [64, 128])
def test_both_short_window_walks(monkeypatch, walk, dtype, D):
    # GQA 4 and no GQA: tiles of several positions, where the walk matters, forward and backward
    # (the backward has no pairs walk: its own default there)
    monkeypatch.setenv("SIMPLEX_FWD_WALK", walk)
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "auto" if walk == "pairs" else walk)
    tol = TOL[dtype] if dtype == torch.float32 else 2e-2
    _check(2, 333, 8, 2, D, 200, 32, dtype, tol)
    _check(1, 257, 4, 4, D, 64, 48, dtype, tol, determinism=False)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("Hq,Hkv", [(8, 8), (16, 4), (32, 4)], ids=["gqa1", "gqa4", "gqa8"])
def test_default_forward_at_128x128(monkeypatch, Hq, Hkv, D):
    # the defaults of configs.fwd_config at w1 = w2 = 128: the pairs walk in two groups of
    # offsets (D 128 below GQA 8), the offset walk's 64-key tiles (D 64); a length that is not
    # a multiple of any tile, and a second window pair with w2 > 128 (three groups: not pairs)
    from simplex_lib.ops.two_simplicial.configs import fwd_config

    monkeypatch.delenv("SIMPLEX_FWD_WALK", raising=False)
    walk = fwd_config(D, Hq // Hkv, 128, 128).WALK
    assert walk == ("pairs" if D == 128 and Hq // Hkv < 8 else "offset")
    _check(1, 461, Hq, Hkv, D, 128, 128, torch.bfloat16, 2e-2)
    _check(1, 300, Hq, Hkv, D, 150, 129, torch.bfloat16, 2e-2, determinism=False)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("Hq,Hkv", [(32, 8), (32, 4)], ids=["gqa4", "gqa8"])
def test_default_backward_walk_at_gqa_4_and_8(monkeypatch, Hq, Hkv, D):
    # the default backward at GQA 4 / 8 and w2 = 32: the key-tile kernel walks by offset
    # (configs.pick_walk counts the steps it saves), against float64 and bitwise on repeat
    from simplex_lib.ops.two_simplicial.configs import bwd_config

    monkeypatch.delenv("SIMPLEX_BWD_WALK", raising=False)
    assert bwd_config(D, Hq // Hkv, 512, 32).WALK == "offset"
    _check(1, 1000, Hq, Hkv, D, 512, 32, torch.bfloat16, 2e-2)


@pytest.mark.parametrize("scale", [-0.3, 0.0])
@pytest.mark.parametrize("D", [64, 128])
def test_negative_or_zero_scale(D, scale):
    # the forward takes the sign into a copy of k2; the backward scales the logits it
    # recomputes: GQA 4 (offset walks, fused path) and GQA 64 (ring / Gluon path)
    _check(2, 333, 8, 2, D, 200, 32, torch.bfloat16, 2e-2, scale=scale)
    _check(1, 256, 64, 1, D, 512, 32, torch.bfloat16, 2e-2, determinism=False, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("walk", ["key", "offset"])
def test_fused_short_window_backward(monkeypatch, dtype, D, walk):
    # SIMPLEX_BWD_SHORT=fused: the dq kernel forms dk2, dv2 too (tiles of several positions),
    # walking the short window by key or by offset; against float64 and bitwise on repeat
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", "fused")
    monkeypatch.setenv("SIMPLEX_FUSED_WALK", walk)
    tol = TOL[dtype] if dtype == torch.float32 else 2e-2
    _check(2, 333, 8, 2, D, 200, 32, dtype, tol)
    _check(1, 257, 4, 4, D, 64, 48, dtype, tol)


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    proj = torch.nn.Linear(64, 5 * 64, device="cuda", dtype=torch.bfloat16)

    def f(x):
        B, N, _ = x.shape
        q, k1, k2, v1, v2 = proj(x).view(B, N, 5, 4, 16).unbind(2)
        return kernel_attention(q, k1, k2, v1, v2, w1=32, w2=8).float().square().mean()

    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.bfloat16)
    loss = torch.compile(f, fullgraph=True)(x)
    loss.backward()
    assert torch.allclose(loss, f(x), rtol=1e-3)


@pytest.mark.parametrize("shared", [True, False], ids=["packed", "per-head"])
def test_topk_deterministic_backward_is_bitwise_repeatable(shared):
    """The top-k kernels' deterministic=True: the same gradients bit for bit on a repeat, and
    within bf16 rounding of the default (atomic) path, at a realistic shape."""
    from simplex_lib.ops.topk.triton import topk_two_simplicial_attention_triton as topk_kernel
    from simplex_lib.timing import random_causal_topk

    g = torch.Generator(device="cuda").manual_seed(7)
    B, N, Hq, Hkv, D, k = 1, 2048, 16, 1, 64, 64
    xs = [_rand((B, N, Hq, D), torch.bfloat16, g)] + [_rand((B, N, Hkv, D), torch.bfloat16, g) for _ in range(4)]
    xs = [t.requires_grad_() for t in xs]
    idx = random_causal_topk(B, N, 1 if shared else Hq, k, device="cuda", generator=g)
    do = torch.randn(B, N, Hq, D, device="cuda", dtype=torch.bfloat16, generator=g)
    runs = [torch.autograd.grad(topk_kernel(*xs, idx, deterministic=True), xs, do) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs)), "deterministic backward differs on repeat"
    atomic = torch.autograd.grad(topk_kernel(*xs, idx), xs, do)
    for name, a, b in zip(("dq", "dk1", "dk2", "dv1", "dv2"), runs[0], atomic):
        assert_close(name, b.float(), a.float(), 3e-2)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("Hq,Hkv", [(8, 8), (16, 4), (32, 4)], ids=["gqa1", "gqa4", "gqa8"])
def test_tma_offset_loads(monkeypatch, Hq, Hkv, D):
    # $SIMPLEX_OFFSET_LOADS=tma: the offset walks' rows as TMA tiles, forward and backward, at
    # 128x128 (the offset walks' shapes) and with a length that is not a multiple of any tile
    monkeypatch.setenv("SIMPLEX_OFFSET_LOADS", "tma")
    monkeypatch.setenv("SIMPLEX_FWD_WALK", "offset")
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "offset")
    _check(1, 461, Hq, Hkv, D, 128, 128, torch.bfloat16, 2e-2)
    _check(2, 333, Hq, Hkv, D, 200, 32, torch.bfloat16, 2e-2, determinism=False)


@pytest.mark.parametrize("tail_pass", [False, True], ids=["one-launch", "own-launch"])
@pytest.mark.parametrize("D,w1,w2", [(128, 512, 32), (128, 128, 128), (64, 512, 32), (64, 128, 128)])
@pytest.mark.parametrize("Hq,Hkv", [(8, 8), (16, 4), (32, 4)], ids=["gqa1", "gqa4", "gqa8"])
def test_forward_tail_tile(monkeypatch, Hq, Hkv, D, w1, w2, tail_pass):
    # the offset walk's narrower last tile (configs.tail_width, forward.tail_split), in the
    # same program or as a launch of its own (FwdConfig.TAIL_PASS, forward.carry_in), against
    # float64 and against whole tiles only, at a length that is no multiple of any tile; at
    # the default's launch otherwise
    import dataclasses

    from simplex_lib.ops.two_simplicial import forward as kfwd
    from simplex_lib.ops.two_simplicial.configs import fwd_config, tail_width, tma_available

    monkeypatch.setenv("SIMPLEX_FWD_WALK", "offset")
    g = torch.Generator(device="cuda").manual_seed(5)
    x = [_rand((1, 700, h, D), torch.bfloat16, g) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
    cfg = fwd_config(D, Hq // Hkv, w1, w2, tma_available(*x[1:]))
    tail = tail_width(Hq // Hkv, cfg.BLOCK_M, w1, cfg.BLOCK_N)
    if tail == 0:
        pytest.skip(f"no remainder for a narrow tile with {cfg.BLOCK_N}-key tiles")
    cfg = dataclasses.replace(cfg, BLOCK_TAIL=tail, TAIL_PASS=tail_pass)
    o, lse = kfwd.forward(*x, w1, w2, D ** -0.5, cfg=cfg)
    ref = reference_attention(*(t.double() for t in x), w1=w1, w2=w2)
    assert_close(f"o (D={D}, tail {cfg.BLOCK_TAIL})", ref, o, 2e-2)
    o_whole, lse_whole = kfwd.forward(*x, w1, w2, D ** -0.5,
                                      cfg=dataclasses.replace(cfg, BLOCK_TAIL=0,
                                                              TAIL_PASS=False))
    assert_close("o vs whole tiles", o_whole.double(), o, 1e-2)
    assert_close("lse vs whole tiles", lse_whole.double(), lse, 1e-4)


@pytest.mark.parametrize("D,Hq,Hkv,w1,w2", [(128, 16, 16, 512, 32), (128, 32, 8, 128, 128),
                                              (64, 16, 16, 512, 32), (64, 8, 8, 128, 128)])
def test_default_tma_loads_are_the_gathers_values(monkeypatch, D, Hq, Hkv, w1, w2):
    # where the default takes TMA tiles (pick_loads), forward and backward at the default's
    # launches give the gathers' values bit for bit (the default with TMA tiles may also change
    # the walk or the tiles, e.g. pairs -> offset; test_tma_offset_loads and
    # test_forward_tail_tile compare those against the reference)
    import dataclasses

    from simplex_lib.ops.two_simplicial import backward as kbwd
    from simplex_lib.ops.two_simplicial import forward as kfwd
    from simplex_lib.ops.two_simplicial.configs import bwd_config, fwd_config, tma_available

    g = torch.Generator(device="cuda").manual_seed(3)
    x = [_rand((2, 1000, h, D), torch.bfloat16, g) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
    do = _rand((2, 1000, Hq, D), torch.bfloat16, g)
    assert tma_available(*x[1:])
    monkeypatch.setenv("SIMPLEX_FWD_WALK", "offset")
    fcfg, bcfg = fwd_config(D, Hq // Hkv, w1, w2, True), bwd_config(D, Hq // Hkv, w1, w2, True)
    assert "tma" in (fcfg.LOADS, bcfg.LOADS)
    runs = []
    for loads in ("tma", "gather"):
        fc = fcfg if fcfg.LOADS == "gather" else dataclasses.replace(fcfg, LOADS=loads)
        bc = bcfg if bcfg.LOADS == "gather" else dataclasses.replace(bcfg, LOADS=loads)
        o, lse = kfwd.forward(*x, w1, w2, D ** -0.5, cfg=fc)
        runs.append([o, lse, *kbwd.backward(do, *x, o, lse, w1, w2, D ** -0.5, cfg=bc)])
    names = ["o", "lse", "dq", "dk1", "dk2", "dv1", "dv2"]
    assert [n for n, a, b in zip(names, *runs) if not torch.equal(a, b)] == []
