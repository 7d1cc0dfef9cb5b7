"""The pairs forward (``FwdConfig(WALK="pairs")``: a tile's rows are (query, short-window key)
pairs) against the float64 reference, and its outputs feeding the backward.

Every shape runs at two tile sizes: 16 rows (several groups of offsets where ``w2 > 16``, or
several positions per tile) and 32.
"""

from __future__ import annotations

import pytest
import torch

from simplex_lib.ops.two_simplicial.configs import pair_tiling, pairs_fit
from simplex_lib.ops.two_simplicial.reference import two_simplicial_attention as reference
from simplex_lib.testing import assert_close

from forward_walks import DEV, run_forward



def _inputs(gen, B, N, Hq, Hkv, D=16):
    x = [torch.randn(B, N, Hq, D, generator=gen, dtype=torch.float64)]
    return x + [torch.randn(B, N, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(4)]


@pytest.mark.parametrize("block_m", [16, 32])
@pytest.mark.parametrize("N,Hq,Hkv,w1,w2", [
    (1, 2, 2, 4, 2),      # a single token
    (13, 1, 1, 5, 3),     # MHA, a length that is not a multiple of the tile
    (21, 4, 1, 8, 4),     # GQA 4
    (19, 6, 2, 19, 7),    # GQA 3 (a head slot of four left empty), w1 the whole sequence
    (9, 2, 2, 30, 9),     # both windows longer than the sequence
    (17, 8, 4, 16, 1),    # a one-key short window: one offset, many positions per tile
    (80, 1, 1, 48, 6),    # MHA, key tiles inside every row's window (unmasked)
    (75, 6, 2, 37, 9),    # GQA 3, w1 not a multiple of the key tile
    (40, 8, 1, 24, 5),    # GQA 8
    (50, 1, 1, 40, 40),   # w2 > block_m: several groups of offsets
    (64, 2, 1, 33, 17),   # w2 > 16: two groups at 16 rows, one at 32
])
def test_pairs_forward_matches_reference(gen, block_m, N, Hq, Hkv, w1, w2):
    x = _inputs(gen, 2, N, Hq, Hkv)
    o, lse = run_forward(x, w1, w2, "pairs", block_m)
    _, lse_pos = run_forward(x, w1, w2, "position")
    assert_close("o", reference(*x, w1=w1, w2=w2), o, 2e-5)
    assert_close("lse vs the position walk", lse_pos.double(), lse, 1e-6)


@pytest.mark.parametrize("scale", [0.3, -0.7, 0.0])
def test_pairs_forward_scale_of_any_sign(gen, scale):
    for N, Hq, Hkv, w1, w2 in ((37, 4, 1, 20, 4), (30, 1, 1, 17, 6)):
        x = _inputs(gen, 1, N, Hq, Hkv)
        o, lse = run_forward(x, w1, w2, "pairs", scale=scale)
        _, lse_pos = run_forward(x, w1, w2, "position", scale=scale)
        assert_close("o", reference(*x, w1=w1, w2=w2, scale=scale), o, 2e-5)
        assert_close("lse vs the position walk", lse_pos.double(), lse, 1e-6)


@pytest.mark.parametrize("N,p,w1,w2", [(13, 6, 4, 3), (80, 50, 48, 6), (60, 40, 20, 2)])
def test_pairs_forward_keeps_nan_local(gen, N, p, w1, w2):
    # (60, 40, 20, 2): eight positions per 16-row tile, so a loaded key or value row is outside
    # some rows' windows; a non-finite one must reach only the rows that see it
    for which in range(5):
        x = [torch.randn(1, N, 2, 16, generator=gen, dtype=torch.float64) for _ in range(5)]
        x[which][0, p, 0, 5] = float("nan")
        o, _ = run_forward(x, w1, w2, "pairs")
        ref = reference(*x, w1=w1, w2=w2)
        sees = torch.isnan(ref).any(-1)
        assert torch.equal(torch.isnan(o).any(-1), sees), which
        assert_close("o (rows that do not see the NaN)", ref[~sees], o[~sees].double(), 2e-5)


def test_pairs_forward_large_logits_stay_finite(gen):
    x = _inputs(gen, 1, 40, 4, 1)
    x[0] = x[0] * 300.0  # logits in the thousands
    o, lse = run_forward(x, 24, 8, "pairs")
    assert torch.isfinite(o).all() and torch.isfinite(lse).all()
    assert_close("o", reference(*x, w1=24, w2=8), o, 2e-5)


def test_pairs_forward_feeds_the_backward(gen, monkeypatch):
    # the default walk where pairs_fit holds: the backward runs from its o and lse
    from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as kernel
    from simplex_lib.testing import assert_gradients_close

    monkeypatch.setenv("SIMPLEX_FWD_WALK", "pairs")
    for N, Hq, Hkv, w1, w2 in ((23, 4, 1, 9, 4), (12, 2, 2, 3, 9)):  # the second swaps the sets
        x = _inputs(gen, 2, N, Hq, Hkv)
        assert_gradients_close(lambda *t: kernel(*t, w1=w1, w2=w2),
                               lambda *t: reference(*t, w1=w1, w2=w2), x,
                               names=["q", "k1", "k2", "v1", "v2"], tol=2e-5, device=DEV,
                               generator=gen)


def test_pair_tiling_covers_the_group_and_the_window():
    for g in (1, 2, 3, 4, 8, 64, 128):
        for w2 in (1, 5, 32, 64, 200):
            for bm in (16, 64, 128):
                t = pair_tiling(g, w2, bm)
                assert t.GH * t.POS * t.OS == bm and t.GH * t.n_hblocks >= g
                assert t.OS == min(bm, 1 << (w2 - 1).bit_length())
    assert not pairs_fit(64, 32, 64) and pairs_fit(2, 32, 64) and not pairs_fit(1, 32, 64)
