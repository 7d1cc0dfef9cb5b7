"""simplex_lib.selection against brute-force loops (indexer scores, top-k picks, coverage)."""

import math

import pytest
import torch

from simplex_lib import masks, selection
from simplex_lib.ops.dot import reference as dot_ref
from simplex_lib.ops.two_simplicial import reference as ref
from simplex_lib.testing import assert_close

F64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


@pytest.mark.parametrize("rule", ["relu", "softmax"])
@pytest.mark.parametrize("kv_heads", [1, 3])
def test_indexer_scores_brute(gen, rule, kv_heads):
    B, N, HI, DI = 2, 7, 3, 5
    qi, ki = rand(gen, B, N, HI, DI), rand(gen, B, N, kv_heads, DI)
    w = rand(gen, B, N, HI).abs()
    s = selection.indexer_scores(qi, ki, w, rule=rule)
    scale = 1 / math.sqrt(DI)
    brute = torch.full((B, N, N), -math.inf, dtype=F64)
    for b in range(B):
        for i in range(N):
            for j in range(i + 1):
                tot = 0.0
                for h in range(HI):
                    kh = ki[b, :, h if kv_heads > 1 else 0]
                    if rule == "relu":
                        tot += w[b, i, h] * max(0.0, float(qi[b, i, h] @ kh[j]) * scale)
                    else:
                        logits = torch.stack([qi[b, i, h] @ kh[jj] * scale for jj in range(i + 1)])
                        tot += w[b, i, h] * torch.softmax(logits, 0)[j]
                brute[b, i, j] = tot
    future = torch.triu(torch.ones(N, N, dtype=torch.bool), 1)
    assert torch.isinf(s[:, future]).all() and (s[:, future] < 0).all()
    assert_close("indexer scores", brute[:, ~future], s[:, ~future], 1e-12)


def brute_topk(row, i, k):
    order = sorted(range(i + 1), key=lambda j: -float(row[j]))[:k]
    return sorted(order) + [-1] * (k - len(order))


@pytest.mark.parametrize("N,k", [(1, 1), (1, 3), (7, 3), (9, 9), (5, 8)])
def test_topk_indices_brute(gen, N, k):
    s = rand(gen, 2, 3, N, N)
    s = s + 100 * torch.triu(torch.ones(N, N, dtype=F64), 1)  # huge future scores must be ignored
    idx = selection.topk_indices(s, k)
    assert idx.shape == (2, N, 3, k) and idx.dtype == torch.int64
    for b in range(2):
        for h in range(3):
            for i in range(N):
                assert idx[b, i, h].tolist() == brute_topk(s[b, h, i], i, k)
    assert selection.topk_indices(s[:, 0], k).shape == (2, N, 1, k)
    masks.check_topk_index("idx", idx, batch=2, seq=N, heads=3)  # obeys the index convention


def test_topk_indices_picks_past_minus_inf():
    s = torch.full((1, 3, 3), float("-inf"))
    assert selection.topk_indices(s, 3)[0, :, 0].tolist() == [[0, -1, -1], [0, 1, -1], [0, 1, 2]]


def test_previous_layer_topk_brute(gen):
    B, N, Hq, Hkv, D, k = 2, 8, 4, 2, 6, 3
    q, kk = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D)
    p = dot_ref.dot_attention_weights(q, kk)  # [B, H, i, j]
    idx = selection.previous_layer_topk(q, kk, k)
    idx_h = selection.previous_layer_topk(q, kk, k, per_head=True)
    assert idx.shape == (B, N, 1, k) and idx_h.shape == (B, N, Hq, k)
    for b in range(B):
        for i in range(N):
            assert idx[b, i, 0].tolist() == brute_topk(p[b, :, i].mean(0), i, k)
            for h in range(Hq):
                assert idx_h[b, i, h].tolist() == brute_topk(p[b, h, i], i, k)


@pytest.mark.parametrize("N,w1,w2", [(1, 1, 1), (6, 3, 2), (5, 9, 9)])
def test_kept_mass_brute(gen, N, w1, w2):
    x = [rand(gen, 1, N, 2, 4) for _ in range(3)]
    p = ref.two_simplicial_weights(*x)  # [1, 2, i, j, k]
    m = masks.window_pair_mask(N, w1, w2)
    got = selection.kept_mass(p, m)
    brute = torch.zeros(1, 2, N, dtype=F64)
    for h in range(2):
        for i in range(N):
            brute[0, h, i] = sum(float(p[0, h, i, j, k]) for j in range(N) for k in range(N) if m[i, j, k])
    assert_close("kept mass", brute, got, 1e-12)
    full = selection.kept_mass(p, masks.window_pair_mask(N))
    assert_close("kept mass, everything", torch.ones_like(full), full, 1e-12)
    # A NaN on a pair the mask drops does not leak into the kept share.
    p = p.clone()
    p[..., 0, 0, 0] = float("nan")
    drop0 = m.clone()
    drop0[0, 0, 0] = False
    assert torch.isfinite(selection.kept_mass(p, drop0)).all()


def test_errors(gen):
    B, N, H, D = 1, 5, 2, 4
    q = rand(gen, B, N, H, D)
    kv = rand(gen, B, N, 1, D)
    with pytest.raises(ValueError, match="k"):
        selection.topk_indices(rand(gen, B, N, N), 0)
    with pytest.raises(ValueError, match="square"):
        selection.topk_indices(rand(gen, B, N, N + 1), 2)
    with pytest.raises(ValueError, match="NaN"):
        selection.topk_indices(torch.full((1, 2, 2), float("nan")), 1)
    with pytest.raises(ValueError, match="scores"):
        selection.topk_indices([[1.0]], 1)
    with pytest.raises(ValueError, match="rule"):
        selection.indexer_scores(q, kv, rule="gelu")
    with pytest.raises(ValueError, match="weights"):
        selection.indexer_scores(q, kv, torch.ones(B, N, 3))
    with pytest.raises(ValueError, match="k"):
        selection.previous_layer_topk(q, kv, 0)
    with pytest.raises(ValueError, match="per_head"):
        selection.previous_layer_topk(q, kv, 2, per_head="yes")
    with pytest.raises(ValueError, match="k"):
        selection.previous_layer_topk(q, rand(gen, B, N, 2, D + 1), 2)
    p = rand(gen, 1, 1, 3, 3, 3)
    with pytest.raises(ValueError, match="weights"):
        selection.kept_mass(p[0, 0, 0], torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        selection.kept_mass(p, torch.ones(3, 3, 3))
    with pytest.raises(ValueError, match="mask"):
        selection.kept_mass(p, torch.ones(4, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        selection.kept_mass(p, torch.ones(2, 1, 3, 3, 3, dtype=torch.bool))
