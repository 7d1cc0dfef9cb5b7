"""The forward's offset walk (``FwdConfig(WALK="offset")``) against the float64 reference.

Tiles of several positions (GQA ratio below ``BLOCK_M``) walk the short window by offset; the
output and the log-sum-exp must equal the position walk's and the reference's.
"""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from simplex_lib.ops.two_simplicial.configs import FwdConfig, row_tiling
from simplex_lib.ops.two_simplicial.forward import as_gemm_product
from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention as reference
from simplex_lib.testing import assert_close

from forward_walks import DEV, run_forward



@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [
    (1, 2, 2, 4, 2),      # a single token
    (13, 1, 1, 5, 3),     # MHA, a length that is not a multiple of the tile
    (21, 4, 1, 8, 4),     # GQA 4: four positions per tile
    (19, 6, 2, 19, 7),    # GQA 3 (a head block padded to 4), the long window is the sequence
    (9, 2, 2, 9, 9),      # both windows the whole sequence
    (17, 8, 4, 16, 1),    # a one-key short window
    (80, 1, 1, 48, 6),    # MHA: 16-key tiles inside every row's window (unmasked)
    (70, 4, 1, 40, 5),    # GQA 4, the same
    (75, 6, 2, 37, 9),    # GQA 3, w1 not a multiple of the tile
    (40, 8, 1, 24, 5),    # GQA 8: two positions of 8 heads a tile
])
def test_offset_walk_matches_reference(gen, N, Hq, Hkv, w1, w2):
    x = [torch.randn(2, N, Hq, 16, generator=gen, dtype=torch.float64)]
    x += [torch.randn(2, N, Hkv, 16, generator=gen, dtype=torch.float64) for _ in range(4)]
    assert row_tiling(Hq // Hkv, 16).POS > 1  # the offset walk is taken
    o, lse = run_forward(x, w1, w2, "offset")
    o_pos, lse_pos = run_forward(x, w1, w2, "position")
    assert_close("o", reference(*x, w1=w1, w2=w2), o, 2e-5)
    assert_close("lse", lse_pos.double(), lse, 1e-6)
    assert_close("o vs the position walk", o_pos.double(), o, 1e-5)


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2,block_n,tail", [
    (1, 2, 2, 4, 2, 32, 16),       # a single token
    (37, 1, 1, 24, 5, 32, 16),     # MHA: 16 positions meet 39 keys, a remainder of 7
    (45, 4, 1, 40, 5, 32, 16),     # GQA 4: 43 keys, 11 left below a 32-key tile
    (45, 4, 1, 50, 5, 32, 16),     # 53 keys: 21 left, more than the tail takes
    (39, 6, 2, 39, 7, 64, 16),     # GQA 3, the long window is the sequence
    (70, 8, 1, 57, 6, 64, 32),     # GQA 8: 58 keys, the tail of 32 inside the window's edge
    (80, 4, 1, 48, 6, 32, 16),     # whole tiles inside every row's window, then the tail
    (29, 8, 4, 70, 70, 32, 16),    # both windows longer than the sequence
])
@pytest.mark.parametrize("tail_pass", [False, True], ids=["one-launch", "own-launch"])
def test_offset_walk_tail_tile_matches_reference(gen, N, Hq, Hkv, w1, w2, block_n, tail,
                                                 tail_pass):
    # the keys below the whole tiles as one narrower tile (forward.tail_split), in the same
    # program or as a launch of its own whose result the whole tiles start from
    # (forward.carry_in)
    x = [torch.randn(2, N, Hq, 16, generator=gen, dtype=torch.float64)]
    x += [torch.randn(2, N, Hkv, 16, generator=gen, dtype=torch.float64) for _ in range(4)]
    o, lse = run_forward(x, w1, w2, "offset", block_n=block_n, tail=tail, tail_pass=tail_pass)
    o_whole, lse_whole = run_forward(x, w1, w2, "offset", block_n=block_n)
    assert_close("o", reference(*x, w1=w1, w2=w2), o, 2e-5)
    assert_close("lse vs whole tiles", lse_whole.double(), lse, 1e-6)
    assert_close("o vs whole tiles", o_whole.double(), o, 1e-5)


@pytest.mark.parametrize("tail_pass", [False, True], ids=["one-launch", "own-launch"])
def test_offset_walk_tail_tile_keeps_nan_local(gen, tail_pass):
    # a NaN in the keys the tail tile covers reaches only the rows that see it
    N, w1, w2 = 45, 40, 5
    for which, p in ((1, 3), (3, 3), (4, 2)):
        x = [torch.randn(1, N, 4, 16, generator=gen, dtype=torch.float64)]
        x += [torch.randn(1, N, 1, 16, generator=gen, dtype=torch.float64) for _ in range(4)]
        x[which][0, p, 0, 5] = float("nan")
        o, _ = run_forward(x, w1, w2, "offset", block_n=32, tail=16, tail_pass=tail_pass)
        ref = reference(*x, w1=w1, w2=w2)
        sees = torch.isnan(ref).any(-1)
        assert torch.equal(torch.isnan(o).any(-1), sees), which
        assert_close("o (rows that do not see p)", ref[~sees], o[~sees].double(), 2e-5)


def test_tail_width_rule():
    from simplex_lib.ops.two_simplicial.configs import tail_width

    # a 64-row tile of 16 positions (GQA 4) meets 527 keys at w1 = 512: 4 x 128 and 15 more
    assert tail_width(4, 64, 512, 128) == 16
    assert tail_width(8, 64, 512, 128) == 16   # 519 keys
    assert tail_width(1, 64, 512, 128) == 64   # 575 keys: 63 more
    assert tail_width(64, 64, 512, 128) == 0   # one position: 512 keys, whole tiles
    assert tail_width(1, 64, 128, 64) == 0     # 191 keys: 63 more need a whole 64-key tile
    with pytest.raises(ValueError, match="BLOCK_TAIL"):
        FwdConfig(64, 128, 4, 2, WALK="offset", BLOCK_TAIL=24)
    with pytest.raises(ValueError, match="BLOCK_TAIL"):
        FwdConfig(64, 128, 4, 2, WALK="offset", BLOCK_TAIL=8)


@pytest.mark.parametrize("scale", [0.3, -0.7, 0.0])
def test_scale_of_any_sign(gen, scale):
    # the softmax step takes a positive factor: a negative or zero scale goes through a copy
    # of k2. 16 heads of one position per tile, and tiles of several positions
    for N, Hq, Hkv, w1, w2 in ((37, 16, 1, 20, 5), (30, 4, 2, 17, 6)):
        x = [torch.randn(1, N, Hq, 16, generator=gen, dtype=torch.float64)]
        x += [torch.randn(1, N, Hkv, 16, generator=gen, dtype=torch.float64) for _ in range(4)]
        o, lse = run_forward(x, w1, w2, "offset", scale=scale)
        _, lse_pos = run_forward(x, w1, w2, "position", scale=scale)
        assert_close("o", reference(*x, w1=w1, w2=w2, scale=scale), o, 2e-5)
        assert_close("lse vs the position walk", lse_pos.double(), lse, 1e-6)


def _assert_nan_local(x, w1, w2, walk, which):
    """The rows that see the NaN (by the reference) are NaN, and only they; the others exact."""
    o, _ = run_forward(x, w1, w2, walk)
    ref = reference(*x, w1=w1, w2=w2)
    sees = torch.isnan(ref).any(-1)
    assert torch.equal(torch.isnan(o).any(-1), sees), which
    assert_close("o (rows that do not see p)", ref[~sees], o[~sees].double(), 2e-5)


@pytest.mark.parametrize("N,p,w1,w2", [(13, 6, 4, 3), (80, 50, 48, 6)])
def test_offset_walk_keeps_nan_local(gen, N, p, w1, w2):
    # (80, 50, 48, 6): 16 positions per tile, some long-window tiles inside every row's window
    for which in range(5):
        x = [torch.randn(1, N, 2, 16, generator=gen, dtype=torch.float64) for _ in range(5)]
        x[which][0, p, 0, 5] = float("nan")
        _assert_nan_local(x, w1, w2, "offset", which)


def test_walk_is_checked(monkeypatch):
    from simplex_lib.ops.two_simplicial.configs import fwd_config

    with pytest.raises(ValueError, match="WALK"):
        FwdConfig(16, 16, 1, 1, WALK="diagonal")
    monkeypatch.setenv("SIMPLEX_FWD_WALK", "sideways")
    with pytest.raises(ValueError, match="SIMPLEX_FWD_WALK"):
        fwd_config(64, 1, 512)


def _check_gradients(gen, B, N, Hq, Hkv, w1, w2, scale=None):
    """The kernel (fp32 under the interpreter) against float64 autograd of the reference: the
    output and all five gradients, for random inputs of the given shape (D = 16)."""
    from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel
    from simplex_lib.testing import assert_gradients_close

    x = [torch.randn(B, N, Hq, 16, generator=gen, dtype=torch.float64)]
    x += [torch.randn(B, N, Hkv, 16, generator=gen, dtype=torch.float64) for _ in range(4)]
    assert_gradients_close(lambda *t: kernel(*t, w1=w1, w2=w2, scale=scale),
                           lambda *t: reference(*t, w1=w1, w2=w2, scale=scale), x,
                           names=["q", "k1", "k2", "v1", "v2"], tol=2e-5, device=DEV,
                           generator=gen)


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [
    (1, 2, 2, 4, 2),      # a single token
    (13, 1, 1, 5, 3),     # MHA, a length that is not a multiple of the tile
    (21, 4, 1, 8, 4),     # GQA 4
    (19, 6, 2, 19, 7),    # GQA 3, the long window is the sequence
    (17, 8, 4, 16, 1),    # a one-key short window
    (12, 2, 2, 3, 9),     # w2 > w1: the interface swaps the sets
])
def test_offset_walk_gradients(gen, monkeypatch, N, Hq, Hkv, w1, w2):
    monkeypatch.setenv("SIMPLEX_FWD_WALK", "offset")
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "offset")
    _check_gradients(gen, 2, N, Hq, Hkv, w1, w2)


def test_backward_walk_is_checked(monkeypatch):
    from simplex_lib.ops.two_simplicial.configs import BwdConfig, pick_walk

    with pytest.raises(ValueError, match="WALK"):
        BwdConfig(16, 16, 16, 16, 1, 1, WALK="diagonal")
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "sideways")
    with pytest.raises(ValueError, match="SIMPLEX_BWD_WALK"):
        pick_walk("bwd", 1, 64, 128, w2=32)
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "offset")  # forced, whatever the tile holds
    assert pick_walk("bwd", 64, 64, 128, w2=32) == "offset" and pick_walk("fwd", 64, 64, 64) == "position"
    for w2 in (None, 0):  # the backward's rule needs the short window
        with pytest.raises(ValueError, match="w2"):
            pick_walk("bwd", 4, 64, 128, w2=w2)
    with pytest.raises(ValueError, match="kernel"):
        pick_walk("ring", 1, 64, 128)


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("p", [20, 47, 70])
def test_position_walk_long_tiles_inside_every_window(gen, which, p):
    # 16 positions per tile, 16-key tiles, w2 > POS - 1: some long-window tiles lie inside every
    # row's window and some short-window keys are seen by every row. A non-finite row there
    # reaches every row of the tile, as it should; elsewhere only its own.
    N, w1, w2 = 80, 48, 20
    assert row_tiling(1, 16).POS == 16
    x = [torch.randn(1, N, 1, 16, generator=gen, dtype=torch.float64) for _ in range(5)]
    o, _ = run_forward(x, w1, w2, "position")
    assert_close("o", reference(*x, w1=w1, w2=w2), o, 2e-5)
    x[which][0, p, 0, 3] = float("nan")
    _assert_nan_local(x, w1, w2, "position", which)


def test_position_walk_long_tiles_gradients(gen, monkeypatch):
    # the same tiling through the backward's dq and key-tile kernels
    monkeypatch.setenv("SIMPLEX_FWD_WALK", "position")
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "position")
    _check_gradients(gen, 1, 80, 2, 2, 48, 20)


#: Shapes for the short window's paths (B 1, D 16 under the interpreter).
SHORT_CASES = [
    (37, 1, 1, 20, 9),     # no GQA, 16 positions per block, length not a multiple of the block
    (40, 4, 2, 48, 20),    # GQA 2, short window longer than a block's positions
    (23, 3, 1, 8, 12),     # GQA 3 (padded head slots), w2 > w1 (the sets are swapped)
    (29, 8, 1, 12, 5),     # GQA 8: two positions of 8 heads a block
    (5, 2, 2, 64, 64),     # windows longer than the sequence
    (1, 2, 1, 4, 3),       # N = 1
]


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", SHORT_CASES)
@pytest.mark.parametrize("short", ["fused", "kv"])
def test_short_window_paths_gradients(gen, monkeypatch, N, Hq, Hkv, w1, w2, short):
    # fused: the dq kernel also forms dk2, dv2 (partial rows per program, summed per key in a
    # fixed order); kv: the key-tile kernel with the sets swapped. Every gradient against float64
    # autograd, both walks of the rest.
    from simplex_lib.ops.two_simplicial import backward as kbwd

    calls = []
    orig = kbwd.launch_dq_short
    monkeypatch.setattr(kbwd, "launch_dq_short", lambda *a: calls.append(1) or orig(*a))
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", short)
    for walk in ("position", "offset"):
        monkeypatch.setenv("SIMPLEX_BWD_WALK", walk)
        _check_gradients(gen, 1, N, Hq, Hkv, w1, w2)
    assert bool(calls) == (short == "fused"), "the requested path did not run"


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", SHORT_CASES)
@pytest.mark.parametrize("walk2", ["position", "offset"])
def test_short_set_key_tiles_walk_the_long_window_both_ways(gen, monkeypatch, N, Hq, Hkv, w1, w2, walk2):
    # the key-tile launch for the short window's set walks the long window by position or by
    # offset (BwdConfig.WALK2; bwd_config takes offset where it saves steps): every gradient
    # against float64 autograd
    import dataclasses

    from simplex_lib.ops.two_simplicial import backward as kbwd

    walks = []
    orig_configs, orig_kv = kbwd.bwd_configs, kbwd.launch_kv
    monkeypatch.setattr(kbwd, "bwd_configs", lambda *a: [dataclasses.replace(c, WALK2=walk2)
                                                          for c in orig_configs(*a)])
    monkeypatch.setattr(kbwd, "launch_kv", lambda *a, short_set=False: (
        walks.append(a[-1].WALK2) if short_set else None) or orig_kv(*a, short_set=short_set))
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", "kv")
    _check_gradients(gen, 1, N, Hq, Hkv, w1, w2)
    assert walks and set(walks) == {walk2}, "the short set's key-tile launch did not run"


def test_short_set_walk_rule(monkeypatch):
    # offset where a tile's positions save an eighth of w1's steps: GQA 1 at 128x128 (64
    # positions, 191 -> 128 steps), not GQA 4 (16 positions) nor GQA 1 at 512x32
    from simplex_lib.ops.two_simplicial import configs

    monkeypatch.setattr(configs, "interpreting", lambda: False)
    assert [configs.bwd_config(64, g, 128, 128).WALK2 for g in (1, 4, 8)] == ["offset", "position", "position"]
    assert configs.bwd_config(128, 1, 512, 32).WALK2 == "position"
    with pytest.raises(ValueError, match="WALK2"):
        configs.BwdConfig(64, 64, 64, 64, 4, 2, WALK2="diagonal")


@pytest.mark.parametrize("walk", ["key", "offset"])
@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", SHORT_CASES)
def test_fused_walk_gradients(gen, monkeypatch, N, Hq, Hkv, w1, w2, walk):
    # the fused kernel walking the short window by key (one key for the tile's rows) or by offset
    # (each row its own key), into the same partial slots: every gradient against float64 autograd
    from simplex_lib.ops.two_simplicial import backward as kbwd

    walks = []
    orig = kbwd.launch_dq_short
    monkeypatch.setattr(kbwd, "launch_dq_short", lambda *a: walks.append(a[-1].FUSED_WALK) or orig(*a))
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", "fused")
    monkeypatch.setenv("SIMPLEX_FUSED_WALK", walk)
    _check_gradients(gen, 1, N, Hq, Hkv, w1, w2)
    assert walks and set(walks) == {walk}, f"the {walk} walk did not run"


@pytest.mark.parametrize("scale", [-0.7, 0.0])
@pytest.mark.parametrize("N,Hq,Hkv,short", [(21, 16, 1, "fused"), (19, 4, 2, "fused"), (19, 4, 2, "kv")])
def test_gradients_for_a_negative_or_zero_scale(gen, monkeypatch, N, Hq, Hkv, short, scale):
    # the forward takes the sign (or the zero) into a copy of k2, the backward's kernels scale the
    # logits they recompute, whatever the sign: GQA 16 (one position per block: the ring
    # kernel), GQA 2 on the fused and on the key-tile path
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", short)
    _check_gradients(gen, 1, N, Hq, Hkv, 12, 5, scale)


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [(80, 1, 1, 48, 6), (70, 3, 1, 40, 5), (64, 8, 1, 33, 4),
                                         (5, 2, 2, 64, 64)])
def test_fused_edge_masks_give_the_same_gradients(gen, monkeypatch, N, Hq, Hkv, w1, w2):
    # masking only the tiles at the windows' edges (FUSED_MASKS="edges") changes no bit: 16-key
    # tiles inside every row's window at GQA 1, 3 (a padded head slot) and 8, and none at all
    from simplex_lib.ops.two_simplicial import backward as kbwd
    from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel

    seen = []
    orig = kbwd.launch_dq_short
    monkeypatch.setattr(kbwd, "launch_dq_short", lambda *a: seen.append(a[-1].FUSED_MASKS) or orig(*a))
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", "fused")
    x = [torch.randn(1, N, Hq, 16, generator=gen).to(DEV)]
    x += [torch.randn(1, N, Hkv, 16, generator=gen).to(DEV) for _ in range(4)]
    x[3][0, N // 2, 0, 3] = float("inf")  # a non-finite value row, inside the windows
    do = torch.randn(1, N, Hq, 16, generator=gen).to(DEV)
    grads = {}
    for masks in ("every", "edges"):
        monkeypatch.setenv("SIMPLEX_FUSED_MASKS", masks)
        xs = [t.clone().requires_grad_() for t in x]
        grads[masks] = torch.autograd.grad(kernel(*xs, w1=w1, w2=w2), xs, do)
    assert seen == ["every", "edges"]
    for a, b in zip(grads["every"], grads["edges"]):
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        assert torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))


@pytest.mark.parametrize("field,var,good", [("SHORT", "SIMPLEX_BWD_SHORT", "kv"),
                                             ("FUSED_WALK", "SIMPLEX_FUSED_WALK", "offset"),
                                             ("FUSED_MASKS", "SIMPLEX_FUSED_MASKS", "edges")])
def test_short_window_switches_are_checked(monkeypatch, field, var, good):
    from simplex_lib.ops.two_simplicial.configs import BwdConfig, bwd_config

    with pytest.raises(ValueError, match=field):
        BwdConfig(16, 16, 16, 16, 1, 1, **{field: "diagonal"})
    monkeypatch.setenv(var, "diagonal")
    with pytest.raises(ValueError, match=var):
        bwd_config(64, 1, 512, 32)
    monkeypatch.setenv(var, good)
    assert getattr(bwd_config(64, 1, 512, 32), field) == good
    monkeypatch.delenv(var)
    assert bwd_config(64, 1, 512, 32).FUSED_WALK == "offset"  # the default (faster on the H200)


def test_short_path_rule(monkeypatch):
    # at w2 <= 64 always fused; a GPU without the shared memory for the fused kernel falls back to
    # the key-tile path
    from simplex_lib.ops.two_simplicial.configs import bwd_configs, pick_short

    monkeypatch.delenv("SIMPLEX_BWD_SHORT", raising=False)
    assert [pick_short(g, d) for g in (1, 4, 8) for d in (16, 64, 128)] == ["fused"] * 9
    monkeypatch.setenv("SIMPLEX_BWD_SHORT", "auto")
    assert pick_short(1, 128) == "fused"
    # up to w2 64 fused, wider short windows never
    assert [pick_short(g, d, w2=64) for g in (1, 4, 8) for d in (64, 128)] == ["fused"] * 6
    assert [pick_short(g, d, w2=w) for g, d, w in ((8, 64, 65), (1, 64, 128), (8, 128, 128))] == ["kv"] * 3
    assert bwd_configs(64, 8, 128, 128, 2, 10**6)[0].SHORT == "kv"
    cands = bwd_configs(64, 4, 512, 32, 2, 10**6)
    assert [c.SHORT for c in cands[:3]] == ["fused", "fused", "kv"]
    assert all(c.SHORT == "kv" for c in cands[3:])


def test_fused_launch(monkeypatch):
    # on a GPU the fused kernel takes fused_launch's warps and long-window tile, per walk; the kv
    # path keeps the common launch (BLOCK_N 128, num_warps), but for 64-key tiles at D 128 up to
    # GQA 8 (bwd_sweep_d128_128x128.json)
    from simplex_lib.ops.two_simplicial.configs import FUSED_LAUNCHES, bwd_config, fused_launch

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv("SIMPLEX_BWD_SHORT", raising=False)
    monkeypatch.delenv("SIMPLEX_FUSED_WALK", raising=False)
    for D, G in ((128, 1), (128, 4), (128, 8), (64, 1), (64, 8), (32, 2)):
        cfg = bwd_config(D, G, 512, 32)
        assert (cfg.SHORT, cfg.FUSED_WALK) == ("fused", "offset")
        assert (cfg.short_warps, cfg.BLOCK_N) == fused_launch("offset", D, G)
    assert fused_launch("offset", 128, 8) == FUSED_LAUNCHES["offset"][128] == (4, 32)
    assert fused_launch("offset", 128, 2) == fused_launch("offset", 128, 4) == (8, 64)
    assert fused_launch("offset", 32, 4) == FUSED_LAUNCHES["offset"][64]
    kv = bwd_config(128, 8, 256, 128)
    assert (kv.SHORT, kv.short_warps, kv.BLOCK_N) == ("kv", 0, 64)
    kv = bwd_config(128, 16, 256, 128)
    assert (kv.SHORT, kv.short_warps, kv.BLOCK_N) == ("kv", 0, 128)
    kv = bwd_config(128, 1, 256, 128)
    assert (kv.SHORT, kv.short_warps, kv.BLOCK_N) == ("kv", 0, 64)
    assert bwd_config(128, 8, 40, 32).BLOCK_N == 32 and bwd_config(128, 2, 20, 32).BLOCK_N == 32
    assert bwd_config(128, 2, 40, 32).BLOCK_N == 64
    monkeypatch.setenv("SIMPLEX_FUSED_WALK", "key")  # the key walk keeps its own launches
    for D, G in ((128, 4), (64, 4)):
        cfg = bwd_config(D, G, 512, 32)
        assert (cfg.short_warps or cfg.num_warps, cfg.BLOCK_N) == FUSED_LAUNCHES["key"][64 if D <= 64 else 128]
    with pytest.raises(ValueError, match="walk"):
        fused_launch("diagonal", 64, 1)


def test_short_window_path_is_the_dispatch():
    from simplex_lib.ops.two_simplicial.backward import ring_size, short_window_path
    from simplex_lib.ops.two_simplicial.configs import BwdConfig

    cfg = BwdConfig(64, 128, 128, 16, 4, 2, SHORT="fused")
    assert short_window_path(64, 128, 32, cfg) == "ring"             # one position per block
    assert short_window_path(8, 128, 32, cfg) == "fused"             # several positions
    assert short_window_path(8, 128, 32, BwdConfig(64, 128, 128, 16, 4, 2)) == "kv"
    too_big = 2 * cfg.RING_MAX // ring_size(32)                      # the ring would not fit
    assert short_window_path(64, too_big, 32, cfg) == "kv"           # POS 1: never fused


def test_short_key_tile_rule(monkeypatch):
    # on a GPU: 16-key short-window tiles only from GQA 4 at w2 <= 32 (slower at GQA 1, H200)
    from simplex_lib.ops.two_simplicial import configs

    monkeypatch.setattr(configs, "interpreting", lambda: False)
    assert [configs.bwd_config(128, g, 512, 32).BLOCK_A2 for g in (1, 2, 4, 8)] == [32, 32, 16, 16]
    assert configs.bwd_config(128, 8, 256, 64).BLOCK_A2 == 64
    assert configs.bwd_config(64, 1, 512, 8).BLOCK_A2 == 16


@pytest.mark.parametrize("pos, w2, walk", [
    (1, 1, "position"), (1, 32, "position"),  # one position per tile: nothing to save
    (2, 8, "offset"), (2, 9, "position"),     # one extra step of 8 is an eighth; of 9 is not
    (8, 32, "offset"), (16, 32, "offset"), (64, 32, "offset"),
    (8, 56, "offset"), (8, 57, "position"), (8, 64, "position"), (16, 64, "offset"),
    (16, 120, "offset"), (16, 128, "position"),
])
def test_backward_walk_rule_counts_the_steps_it_saves(monkeypatch, pos, w2, walk):
    # the position walk takes POS + w2 - 1 steps per tile, the offset walk w2: offset when the
    # excess is at least BWD_OFFSET_MIN_EXCESS (an eighth) of w2; tiles of 64 rows, D 128
    from simplex_lib.ops.two_simplicial.configs import (BWD_OFFSET_MIN_EXCESS, bwd_config, interpreting,
                                                        pick_walk)

    monkeypatch.delenv("SIMPLEX_BWD_WALK", raising=False)
    assert BWD_OFFSET_MIN_EXCESS == 1 / 8
    group = 64 // pos
    assert pick_walk("bwd", group, 64, 128, w2=w2) == walk
    assert pick_walk("bwd", group, 64, 64, w2=w2) == walk  # the rule does not depend on D
    assert bwd_config(128, group, 512, w2).WALK == (
        pick_walk("bwd", group, 16, 128, w2=w2) if interpreting() else walk)


@triton.jit
def _copy_through_identity(X, Y, D: tl.constexpr):
    o_r, o_d = tl.arange(0, 16), tl.arange(0, D)
    p = o_r[:, None] * D + o_d[None, :]  # [16, D]
    tl.store(Y + p, as_gemm_product(tl.load(X + p), o_d, "ieee"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_as_gemm_product_returns_the_tile_unchanged(dtype):
    # the offset walk holds a 16-bit query tile as a GEMM's product (forward.as_gemm_product): the
    # identity GEMM must give back every finite value bit for bit, the smallest and largest too
    if dtype == torch.bfloat16 and DEV == "cpu":
        pytest.skip("the interpreter miscomputes bfloat16 dots (checked on a GPU)")
    gen = torch.Generator().manual_seed(23)
    x = torch.randn(16, 32, generator=gen).to(dtype)
    info = torch.finfo(dtype)
    x[0, :4] = torch.tensor([info.smallest_normal, -info.max, info.max, info.smallest_normal / 4],
                           dtype=dtype)
    x = x.to(DEV)
    y = torch.empty_like(x)
    _copy_through_identity[(1,)](x, y, D=32)
    assert torch.equal(y, x)


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [
    (13, 1, 1, 5, 3),     # MHA, a length that is not a multiple of the tile
    (21, 4, 1, 8, 4),     # GQA 4
    (1, 2, 2, 4, 2),      # a single token
])
def test_dq_offset_walk_in_float16(gen, N, Hq, Hkv, w1, w2):
    # In 16 bits the dq kernel's offset walk holds q and do as GEMM products (as_gemm_product)
    # and forms q * k2 and do * v2 in float16. The interface computes in float32 under the
    # interpreter, so launch_dq is called directly: its float16 dq against float64 autograd of
    # the reference on the same (float16-rounded) values, to float16's tolerance.
    import dataclasses

    from simplex_lib.ops.two_simplicial import backward as kbwd
    from simplex_lib.ops.two_simplicial import forward as kfwd
    from simplex_lib.ops.two_simplicial.configs import bwd_config

    D = 16
    x = [torch.randn(1, N, Hq, D, generator=gen).half()]
    x += [torch.randn(1, N, Hkv, D, generator=gen).half() for _ in range(4)]
    do = torch.randn(1, N, Hq, D, generator=gen).half()
    x64 = [t.double().requires_grad_() for t in x]
    reference(*x64, w1=w1, w2=w2).backward(do.double())
    # the LSE and Delta in float32, as the kernels save them
    o, lse = kfwd.forward(*[t.float().to(DEV) for t in x], w1, w2, D ** -0.5)
    delta = kbwd.compute_delta(o, do.float().to(DEV))
    cfg = dataclasses.replace(bwd_config(D, Hq // Hkv, w1, w2), WALK="offset")
    assert row_tiling(Hq // Hkv, cfg.BLOCK_M).POS > 1, "not the offset walk"
    dq = kbwd.launch_dq(*[t.to(DEV) for t in x], do.to(DEV), lse, delta, w1, w2, D ** -0.5, cfg)
    assert dq.dtype == torch.float16
    assert_close("dq", x64[0].grad, dq.double().cpu(), tol=1e-2)


@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [
    (13, 1, 1, 5, 3),     # MHA, a length that is not a multiple of the tile
    (1, 2, 2, 4, 2),      # a single token
    (37, 1, 1, 37, 9),    # the long window is the sequence
    (21, 4, 1, 8, 4),     # GQA 4: each position's row repeated for four heads
    (19, 6, 2, 19, 7),    # GQA 3 (a head block padded to 4)
    (40, 8, 1, 24, 5),    # GQA 8
])
def test_tma_offset_loads_give_the_gathers_values(gen, N, Hq, Hkv, w1, w2):
    # LOADS="tma": the offset walks load each step's rows as one [POS, D] TMA tile (rows
    # outside the sequence zero-filled) instead of a pointer gather. Same values bit for bit:
    # the forward's output and LSE, dq and both key-tile launches, in 16 bits.
    import dataclasses

    from simplex_lib.ops.two_simplicial import backward as kbwd
    from simplex_lib.ops.two_simplicial import forward as kfwd
    from simplex_lib.ops.two_simplicial.configs import bwd_config, fwd_config

    D, dt = 16, (torch.float16 if DEV == "cpu" else torch.bfloat16)
    x = [torch.randn(1, N, Hq, D, generator=gen).to(DEV, dt)]
    x += [torch.randn(1, N, Hkv, D, generator=gen).to(DEV, dt) for _ in range(4)]
    do = torch.randn(1, N, Hq, D, generator=gen).to(DEV, dt)
    q, k1, k2, v1, v2 = x
    G = Hq // Hkv
    o, lse = kfwd.forward(*[t.float() for t in x], w1, w2, 0.25)
    delta = kbwd.compute_delta(o, do.float())
    runs = []
    for loads in ("gather", "tma"):
        fcfg = dataclasses.replace(fwd_config(D, G, w1, w2), WALK="offset", LOADS=loads)
        bcfg = dataclasses.replace(bwd_config(D, G, w1, w2), WALK="offset", WALK2="offset",
                                   LOADS=loads)
        out = list(kfwd.forward(*x, w1, w2, 0.25, fcfg))
        out.append(kbwd.launch_dq(*x, do, lse, delta, w1, w2, 0.25, bcfg))
        out += kbwd.launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2, 0.25, bcfg)
        out += kbwd.launch_kv(q, k2, v2, k1, v1, do, lse, delta, w2, w1, 0.25, bcfg,
                              short_set=True)
        runs.append(out)
    names = ["o", "lse", "dq", "dk1", "dv1", "dk2", "dv2"]
    assert [n for n, a, b in zip(names, *runs) if not torch.equal(a, b)] == []


def test_offset_loads_choice(monkeypatch):
    # TMA tiles only where they fit (16 bits, aligned rows), by default only on a GPU with
    # TMA; the switch forces either, and a bad value is an error naming it
    from simplex_lib.ops.two_simplicial.configs import (FwdConfig, fwd_config, pick_loads,
                                                        tma_available, tma_launch)

    x = torch.zeros(1, 9, 2, 16, dtype=torch.float16)
    monkeypatch.delenv("SIMPLEX_OFFSET_LOADS", raising=False)
    assert not tma_available(x)                       # the interpreter: gathers by default
    monkeypatch.setenv("SIMPLEX_OFFSET_LOADS", "tma")
    assert tma_available(x) and not tma_available(x.float(), x)
    assert not tma_available(x[..., :12])             # D not a power of two
    assert fwd_config(16, 1, 8, 4, tma=True).LOADS == "tma"
    assert not tma_launch(True, "tma", x.float())     # float32: gathers
    assert not tma_launch(False, "tma", x)            # not an offset walk
    assert tma_launch(True, "tma", x) and not tma_launch(True, "gather", x)
    monkeypatch.setenv("SIMPLEX_OFFSET_LOADS", "gather")
    assert not tma_available(x) and fwd_config(16, 1, 8, 4).LOADS == "gather"
    assert pick_loads("fwd", 128, 1, 128, True) == "gather"
    monkeypatch.setenv("SIMPLEX_OFFSET_LOADS", "bulk")
    with pytest.raises(ValueError, match="SIMPLEX_OFFSET_LOADS"):
        tma_available(x)
    with pytest.raises(ValueError, match="LOADS"):
        FwdConfig(64, 64, 4, 2, LOADS="bulk")
