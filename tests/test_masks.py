"""simplex_lib.masks against brute-force loops (window visibility, pair masks, top-k indices)."""

import pytest
import torch

from simplex_lib import masks
from simplex_lib.ops.two_simplicial import reference as ref


def brute_window(n, w):
    return [[j <= i and (w is None or j > i - w) for j in range(n)] for i in range(n)]


@pytest.mark.parametrize("n,w", [(1, None), (1, 3), (7, 1), (7, 3), (9, 20), (6, None)])
def test_sliding_window_mask_brute(n, w):
    assert masks.sliding_window_mask(n, w).tolist() == brute_window(n, w)


@pytest.mark.parametrize("n,w1,w2", [(1, 1, 1), (7, 3, 2), (9, 20, 4), (5, None, 2), (6, 2, None)])
def test_window_pair_mask_brute(n, w1, w2):
    full = masks.window_pair_mask(n, w1, w2)
    for i in range(n):
        per_q = masks.window_pair_mask(n, w1, w2, query=i)
        for j in range(n):
            for k in range(n):
                ok = j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2)
                assert bool(full[i, j, k]) == ok == bool(per_q[j, k])
        c1 = i + 1 if w1 is None else min(w1, i + 1)
        c2 = i + 1 if w2 is None else min(w2, i + 1)
        assert int(per_q.sum()) == c1 * c2
    torch.testing.assert_close(full, ref.two_simplicial_mask(n, w1=w1, w2=w2))


def brute_mask(idx1, idx2, B, Hq, N):
    """Dense [B, Hq, i, j, k] mask of a selection, with explicit loops and the GQA rule."""
    m = torch.zeros(B, Hq, N, N, N, dtype=torch.bool)
    for b in range(B):
        for h in range(Hq):
            for i in range(N):
                sel = []
                for ix in (idx1, idx2):
                    hh = h * ix.shape[2] // Hq  # 1 head -> 0; Hkv heads -> h // group; Hq -> h
                    sel.append([int(j) for j in ix[b if ix.shape[0] > 1 else 0, i, hh] if j >= 0])
                for j in sel[0]:
                    for k in sel[1]:
                        m[b, h, i, j, k] = True
    return m


def random_idx(gen, B, N, H, k, pad_prob=0.3):
    """Random causal selections without repeats, with random -1 slots."""
    idx = torch.full((B, N, H, k), -1, dtype=torch.int64)
    for b in range(B):
        for i in range(N):
            for h in range(H):
                perm = torch.randperm(i + 1, generator=gen)[:k]
                keep = torch.rand(len(perm), generator=gen) > pad_prob
                vals = perm[keep]
                slots = torch.randperm(k, generator=gen)[: len(vals)]
                idx[b, i, h, slots] = vals
    return idx


@pytest.mark.parametrize("B,N,Hq,h1,h2,k1,k2", [
    (1, 1, 1, 1, 1, 1, 1),
    (1, 1, 2, 2, 1, 4, 2),   # seq 1 and k > seq
    (2, 7, 4, 1, 2, 3, 2),   # GQA spread of one set and of one set per KV head
    (1, 5, 4, 4, 4, 8, 1),   # a set per query head, k > seq
])
def test_topk_pair_mask_brute(gen, B, N, Hq, h1, h2, k1, k2):
    a, b = random_idx(gen, B, N, h1, k1), random_idx(gen, 1, N, h2, k2)
    got = masks.topk_pair_mask(a, b, heads=Hq)
    assert got.shape == (B, Hq, N, N, N)
    assert torch.equal(got, brute_mask(a, b, B, Hq, N))
    shared = masks.topk_pair_mask(a)
    assert torch.equal(shared, brute_mask(a, a, B, h1, N))


@pytest.mark.parametrize("n,w", [(1, 1), (1, 4), (6, 1), (6, 3), (5, 9)])
def test_window_indices_brute(n, w):
    idx = masks.window_indices(n, w)
    assert idx.shape == (n, min(w, n)) and idx.dtype == torch.int64
    for i in range(n):
        assert sorted(int(j) for j in idx[i] if j >= 0) == [j for j in range(n) if brute_window(n, w)[i][j]]
        assert int((idx[i] < 0).sum()) == min(w, n) - min(w, i + 1)


def test_topk_pair_mask_of_a_window_is_the_window_mask():
    n, w1, w2 = 9, 4, 2
    a, b = (masks.window_indices(n, w)[None, :, None, :] for w in (w1, w2))
    assert torch.equal(masks.topk_pair_mask(a, b)[0, 0], masks.window_pair_mask(n, w1, w2))


def test_check_topk_index_broadcasts():
    idx = torch.tensor([[[[0, -1], [0, -1]], [[1, 0], [0, -1]]]])  # [1, 2, 2, 2]
    out = masks.check_topk_index("idx", idx, batch=3, seq=2, heads=4, kv_heads=2)
    assert out.shape == (3, 2, 4, 2) and out.dtype == torch.int64
    for h in range(4):  # query head h uses set h // 2
        assert torch.equal(out[2, :, h], idx[0, :, h // 2])
    assert masks.check_topk_index("idx", idx.int(), batch=1, seq=2, heads=2).dtype == torch.int64


def test_topk_index_errors(gen):
    good = random_idx(gen, 1, 5, 1, 2, pad_prob=0.0)
    kw = dict(batch=1, seq=5, heads=2, kv_heads=1)
    cases = [
        (good[..., :0], "k >= 1"), (torch.full_like(good, 5), "outside"), (torch.full_like(good, -2), "outside"),
        (good[:, :3], "seq"), (good.expand(3, -1, -1, -1), "batch"), (good.expand(-1, -1, 3, -1), "heads"),
        (good.double(), "integer"), (good.bool(), "integer"), (good[0], "integer Tensor"), ([[0]], "integer Tensor"),
    ]
    for bad, match in cases:
        with pytest.raises(ValueError, match=match):
            masks.check_topk_index("idx", bad, **kw)
    future = good.clone()
    future[0, 1, 0, 0] = 3  # query 1 may not see key 3
    dup = good.clone()
    dup[0, 4, 0] = torch.tensor([2, 2])
    for bad, match in ((future, "future"), (dup, "twice")):
        with pytest.raises(ValueError, match=match):
            masks.check_topk_index("idx2", bad, **kw)
        with pytest.raises(ValueError, match="idx1"):
            masks.topk_pair_mask(bad)
        with pytest.raises(ValueError, match="idx2"):
            masks.topk_pair_mask(good, bad)
    with pytest.raises(ValueError, match="heads"):
        masks.check_topk_index("idx", good.expand(-1, -1, 3, -1), batch=1, seq=5, heads=4)
    with pytest.raises(ValueError, match="seq"):
        masks.check_topk_index("idx", good, batch=1, seq=0, heads=1)
    # empty batch or sequence: an empty selection, not an error
    assert masks.check_topk_index("idx", good[:, :0], batch=1, seq=0, heads=1).shape == (1, 0, 1, 2)
    assert masks.check_topk_index("idx", good, batch=0, seq=5, heads=1).shape == (0, 5, 1, 2)


def test_topk_pair_mask_errors(gen):
    good = random_idx(gen, 1, 4, 2, 2)
    with pytest.raises(ValueError, match="idx1"):
        masks.topk_pair_mask(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="idx1"):
        masks.topk_pair_mask(good.float())
    with pytest.raises(ValueError, match="idx2"):
        masks.topk_pair_mask(good, good[:, :3])
    with pytest.raises(ValueError, match="idx2"):
        masks.topk_pair_mask(good, "all")
    with pytest.raises(ValueError, match="heads"):
        masks.topk_pair_mask(good, heads=3)  # 2 sets cannot be spread over 3 query heads
    with pytest.raises(ValueError, match="heads"):
        masks.topk_pair_mask(good, heads=0)
    with pytest.raises(ValueError, match="idx1"):
        masks.topk_pair_mask(torch.arange(3)[None, None, None, :].expand(1, 3, 1, 3))  # row 0 selects key 2


def test_window_errors():
    with pytest.raises(ValueError, match="w"):
        masks.sliding_window_mask(4, 0)
    with pytest.raises(ValueError, match="n"):
        masks.sliding_window_mask(0, 2)
    with pytest.raises(ValueError, match="n"):
        masks.sliding_window_mask(2.0, 2)
    with pytest.raises(ValueError, match="query"):
        masks.window_pair_mask(4, 2, 2, query=4)
    with pytest.raises(ValueError, match="query"):
        masks.window_pair_mask(4, 2, 2, query=True)
    with pytest.raises(ValueError, match="w2"):
        masks.window_pair_mask(4, 2, -1)
    with pytest.raises(ValueError, match="n"):
        masks.window_pair_mask(0)
    with pytest.raises(ValueError, match="w"):
        masks.window_indices(4, 0)
    with pytest.raises(ValueError, match="w"):
        masks.window_indices(4, None)
    assert masks.window_indices(0, 2).shape == (0, 0)  # an empty sequence: an empty selection
    with pytest.raises(ValueError, match="n"):
        masks.window_indices(-1, 2)


@pytest.mark.fuzz
def test_topk_pair_mask_fuzz(gen):
    for _ in range(10):
        B, N, hk = (int(torch.randint(1, m, (), generator=gen)) for m in (3, 8, 3))
        Hq = hk * int(torch.randint(1, 3, (), generator=gen))
        k1, k2 = (int(torch.randint(1, N + 3, (), generator=gen)) for _ in range(2))
        a, b = random_idx(gen, B, N, hk, k1), random_idx(gen, B, N, 1, k2)
        assert torch.equal(masks.topk_pair_mask(a, b, heads=Hq), brute_mask(a, b, B, Hq, N))
