"""The fused indexer kernel (simplex_lib.ops.topk.indexer, Triton interpreter) against a brute-force
loop over the ReLU indexer's scores and against the reference selection of simplex_lib.selection."""

import math

import pytest
import torch

from simplex_lib.ops.topk.indexer import MAX_K, indexer_topk_triton
from simplex_lib.selection import indexer_scores, topk_indices


def ints(gen, *shape, lo=-2, hi=3):
    # small integers: every score is exact in fp32 and float64, and many scores tie (at 0
    # after the ReLU, and between keys), so the tie rule is exercised
    return torch.randint(lo, hi, shape, generator=gen).float()


def brute_topk(qi, ki, w, k, scale):
    """Per query, the k best past keys by float64 score, ties to the earlier key, positions
    sorted, -1 padded: written out as loops."""
    B, N, HI, _ = qi.shape
    out = torch.full((B, N, 1, k), -1, dtype=torch.int64)
    q64, k64, w64 = qi.double(), ki.double(), w.double()
    for b in range(B):
        for i in range(N):
            scores = []
            for j in range(i + 1):
                s = sum(w64[b, i, h] * max(scale * float(q64[b, i, h] @ k64[b, j, 0]), 0.0)
                        for h in range(HI))
                scores.append((-s, j))  # sort ascending: highest score, then earliest key
            best = sorted(pos for _, pos in sorted(scores)[:k])
            out[b, i, 0, :len(best)] = torch.tensor(best)
    return out


@pytest.mark.parametrize("B,N,HI,DI,k", [
    (1, 37, 4, 32, 8),    # lengths not a multiple of the query block
    (2, 20, 2, 8, 32),    # k > N: every past key, then -1
    (1, 1, 1, 16, 3),     # N = 1
    (1, 70, 3, 20, 16),   # D_I not a power of two, several key blocks
    (1, 40, 2, 16, 5),    # k not a power of two
])
def test_equals_brute_force_with_ties(gen, B, N, HI, DI, k):
    qi, ki = ints(gen, B, N, HI, DI), ints(gen, B, N, 1, DI)
    w = ints(gen, B, N, HI, lo=-1, hi=3)  # negative weights give negative scores
    got = indexer_topk_triton(qi, ki, k, w, scale=1.0)
    assert torch.equal(got, brute_topk(qi, ki, w, k, 1.0))
    assert torch.equal(got, topk_indices(indexer_scores(qi, ki, w, scale=1.0), k))


def test_random_scores_select_the_best(gen):
    # real-valued inputs: the chosen keys outscore every key left out (float64 scores of the
    # same inputs; a margin allows for fp32 rounding of near-equal scores)
    B, N, HI, DI, k = 2, 45, 4, 24, 12
    qi = torch.randn(B, N, HI, DI, generator=gen)
    ki = torch.randn(B, N, 1, DI, generator=gen)
    w = torch.rand(B, N, HI, generator=gen)
    got = indexer_topk_triton(qi, ki, k, w)
    s = indexer_scores(qi.double(), ki.double(), w.double())
    for b in range(B):
        for i in range(N):
            sel = got[b, i, 0]
            sel = sel[sel >= 0]
            assert len(sel) == min(k, i + 1) and torch.equal(sel, sel.sort().values)
            rest = torch.ones(i + 1, dtype=torch.bool)
            rest[sel] = False
            if rest.any():
                assert s[b, i, sel].min() >= s[b, i, :i + 1][rest].max() - 1e-5


def test_default_weights_and_scale(gen):
    qi, ki = ints(gen, 1, 19, 4, 16), ints(gen, 1, 19, 1, 16)
    got = indexer_topk_triton(qi, ki, 6)
    w = torch.full((1, 19, 4), 0.25)
    assert torch.equal(got, brute_topk(qi, ki, w, 6, 1 / math.sqrt(16)))


@pytest.mark.parametrize("bad,match", [
    (dict(k=0), "k must be"),
    (dict(k=MAX_K + 1), "k must be"),
    (dict(k=True), "k must be"),
    (dict(ki_heads=2), "k_index must have shape"),
    (dict(w_shape=(1, 9, 3)), "weights must have shape"),
    (dict(nan="q_index"), "q_index has non-finite"),
    (dict(nan="weights"), "weights has non-finite"),
])
def test_bad_input_is_refused(gen, bad, match):
    qi, ki = torch.randn(1, 9, 2, 8, generator=gen), torch.randn(1, 9, bad.get("ki_heads", 1), 8)
    w = torch.ones(bad.get("w_shape", (1, 9, 2)))
    if bad.get("nan") == "q_index":
        qi[0, 3, 1, 2] = float("nan")
    if bad.get("nan") == "weights":
        w[0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match=match):
        indexer_topk_triton(qi, ki, bad.get("k", 4), w)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_the_reference_selection():
    g = torch.Generator(device="cuda").manual_seed(0)
    B, N, HI, DI, k = 2, 3000, 4, 32, 128
    qi = torch.randint(-2, 3, (B, N, HI, DI), device="cuda", generator=g).float()
    ki = torch.randint(-2, 3, (B, N, 1, DI), device="cuda", generator=g).float()
    w = torch.randint(0, 3, (B, N, HI), device="cuda", generator=g).float()
    got = indexer_topk_triton(qi, ki, k, w, scale=1.0)
    assert torch.equal(got, topk_indices(indexer_scores(qi, ki, w, scale=1.0), k))
