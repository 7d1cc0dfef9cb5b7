"""simplex_lib.sparsity against brute-force loops and the dense masked reference (float64)."""

import json
import math

import pytest
import torch

from simplex_lib import reference as ref
from simplex_lib import sparsity as sp

F64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("n,w", [(1, None), (1, 3), (7, 1), (7, 3), (9, 20), (6, None)])
def test_sliding_window_mask_brute(n, w):
    m = sp.sliding_window_mask(n, w)
    for i in range(n):
        for j in range(n):
            expect = j <= i and (w is None or j > i - w)
            assert bool(m[i, j]) == expect


@pytest.mark.parametrize("n,w1,w2", [(1, 1, 1), (7, 3, 2), (9, 20, 4), (5, None, 2), (6, 2, None)])
def test_window_pair_mask_brute(n, w1, w2):
    full = sp.window_pair_mask(n, w1, w2)
    for i in range(n):
        per_q = sp.window_pair_mask(n, w1, w2, query=i)
        for j in range(n):
            for k in range(n):
                ok = j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2)
                assert bool(full[i, j, k]) == ok == bool(per_q[j, k])
        c1 = i + 1 if w1 is None else min(w1, i + 1)
        c2 = i + 1 if w2 is None else min(w2, i + 1)
        assert int(per_q.sum()) == c1 * c2
    torch.testing.assert_close(full, ref.two_simplicial_mask(n, w1=w1, w2=w2))


@pytest.mark.parametrize("n,w1,w2", [(1, 1, 1), (10, 3, 5), (13, 40, 2), (8, None, None)])
def test_visible_pairs_brute(n, w1, w2):
    count = sum(
        1
        for i in range(n)
        for j in range(n)
        for k in range(n)
        if j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2)
    )
    assert sp.visible_pairs(n, w1, w2) == count


# ---------------------------------------------------------------- cost model


def test_flop_formulas():
    B, H, N, D, w1, w2 = 2, 64, 8192, 128, 512, 32
    assert sp.two_simplicial_flops(N, w1, w2, batch=B, heads=H, head_dim=D) == 4 * B * H * N * D * w1 * w2
    assert sp.two_simplicial_flops(N, w1, w2, convention="paper") == 6 * N * w1 * w2
    assert sp.dot_attention_flops(N, batch=B, heads=H, head_dim=D) == 4 * B * H * N * N * D // 2
    assert sp.dot_attention_flops(N) == 2 * N * N  # the paper's 2 n^2
    # Exact counts: every visible triple / pair counted once.
    n, a, b = 11, 4, 3
    m = sp.window_pair_mask(n, a, b)
    assert sp.two_simplicial_flops(n, a, b, head_dim=5, exact=True) == 4 * 5 * int(m.sum())
    assert sp.dot_attention_flops(n, head_dim=5, exact=True) == 4 * 5 * int(sp.sliding_window_mask(n).sum())
    assert sp.topk_two_simplicial_flops(n, 3, exact=True) == sp.two_simplicial_flops(n, 3, 3, exact=True)
    assert sp.indexer_flops(n, indexer_heads=2, indexer_dim=3, key_sets=2) == 2 * 2 * 3 * n * n


def test_crossover_48k_claim():
    n = sp.crossover_length(512, 32, convention="paper")
    assert n == 49152 == 48 * 1024
    assert 6 * n * 512 * 32 == 2 * n * n
    n = sp.crossover_length(512, 32)
    assert n == 32768 and 4 * n * 512 * 32 == 2 * n * n


@pytest.mark.parametrize("w1,w2", [(1, 1), (5, 3), (2, 7), (8, 8)])
@pytest.mark.parametrize("convention", ["ours", "paper"])
def test_crossover_exact_brute(w1, w2, convention):
    c = {"ours": 4, "paper": 6}[convention]
    n = 2
    while True:
        tri = c * sum(min(w1, i + 1) * min(w2, i + 1) for i in range(n))
        if 4 * n * (n + 1) // 2 >= tri:
            break
        n += 1
    assert sp.crossover_length(w1, w2, convention=convention, exact=True) == n
    assert n <= sp.crossover_length(w1, w2, convention=convention)


def test_table1_and_shapes():
    for row in sp.TABLE1:
        assert row["w1"] * row["w2"] == row["product"]
        assert (row["w1"], row["w2"]) in sp.window_shapes(row["product"], min_w=16)
    shapes = sp.window_shapes(64, min_w=4)
    assert shapes == [(4, 16), (8, 8), (16, 4)]
    assert len({sp.two_simplicial_flops(100, a, b) for a, b in sp.window_shapes(1024)}) == 1


def test_benchmark_records(tmp_path):
    assert sp.load_benchmark_records(str(tmp_path / "missing")) == []
    rec = {"device": "H100", "date": "2026-11-22",
           "results": [{"kind": "fwd", "w1": 512, "w2": 32, "median_ms": 27.9}, {"kind": "dot", "ms": 3.4}]}
    (tmp_path / "a.json").write_text(json.dumps(rec))
    (tmp_path / "bad.json").write_text("{not json")
    recs = sp.load_benchmark_records(str(tmp_path))
    assert len(recs) == 1
    rows = sp.window_latency_rows(recs)
    assert len(rows) == 1
    r = rows[0]
    assert (r["w1"], r["w2"], r["ms"], r["device"], r["kind"]) == (512, 32, 27.9, "H100", "fwd")


# ---------------------------------------------------------------- indexer and top-k


@pytest.mark.parametrize("rule", ["relu", "softmax"])
@pytest.mark.parametrize("kv_heads", [1, 3])
def test_indexer_scores_brute(gen, rule, kv_heads):
    B, N, HI, DI = 2, 7, 3, 5
    qi, ki = rand(gen, B, N, HI, DI), rand(gen, B, N, kv_heads, DI)
    w = rand(gen, B, N, HI).abs()
    s = sp.indexer_scores(qi, ki, w, rule=rule)
    scale = 1 / math.sqrt(DI)
    for b in range(B):
        for i in range(N):
            for j in range(N):
                if j > i:
                    assert s[b, i, j] == -math.inf
                    continue
                tot = 0.0
                for h in range(HI):
                    kh = ki[b, :, h if kv_heads > 1 else 0]
                    if rule == "relu":
                        tot += w[b, i, h] * max(0.0, float(qi[b, i, h] @ kh[j]) * scale)
                    else:
                        logits = torch.stack([qi[b, i, h] @ kh[jj] * scale for jj in range(i + 1)])
                        tot += w[b, i, h] * torch.softmax(logits, 0)[j]
                assert abs(float(s[b, i, j]) - float(tot)) < 1e-10


def brute_topk(row, i, k):
    order = sorted(range(i + 1), key=lambda j: -float(row[j]))[:k]
    return sorted(order) + [-1] * (k - len(order))


@pytest.mark.parametrize("N,k", [(1, 1), (1, 3), (7, 3), (9, 9), (5, 8)])
def test_topk_indices_brute(gen, N, k):
    s = rand(gen, 2, 3, N, N)
    s = s + 100 * torch.triu(torch.ones(N, N, dtype=F64), 1)  # huge future scores must be ignored
    idx = sp.topk_indices(s, k)
    assert idx.shape == (2, N, 3, k) and idx.dtype == torch.int64
    for b in range(2):
        for h in range(3):
            for i in range(N):
                assert idx[b, i, h].tolist() == brute_topk(s[b, h, i], i, k)
    assert sp.topk_indices(s[:, 0], k).shape == (2, N, 1, k)


def test_topk_indices_picks_past_minus_inf():
    s = torch.full((1, 3, 3), float("-inf"))
    assert sp.topk_indices(s, 3)[0, :, 0].tolist() == [[0, -1, -1], [0, 1, -1], [0, 1, 2]]


def test_previous_layer_topk_brute(gen):
    B, N, Hq, Hkv, D, k = 2, 8, 4, 2, 6, 3
    q, kk = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D)
    p = ref.dot_attention_weights(q, kk)  # [B, H, i, j]
    idx = sp.previous_layer_topk(q, kk, k)
    idx_h = sp.previous_layer_topk(q, kk, k, per_head=True)
    assert idx.shape == (B, N, 1, k) and idx_h.shape == (B, N, Hq, k)
    for b in range(B):
        for i in range(N):
            assert idx[b, i, 0].tolist() == brute_topk(p[b, :, i].mean(0), i, k)
            for h in range(Hq):
                assert idx_h[b, i, h].tolist() == brute_topk(p[b, h, i], i, k)


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


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,D,k,idx_heads",
    [
        (1, 1, 1, 1, 4, 1, 1),
        (1, 1, 2, 1, 3, 4, 2),  # N = 1 and k > N
        (2, 7, 2, 1, 5, 3, 1),  # GQA 2, one shared set
        (1, 9, 4, 1, 4, 4, 1),  # GQA 4
        (2, 6, 4, 2, 3, 2, 2),  # GQA 2, one set per KV head
        (1, 5, 4, 2, 4, 8, 4),  # a set per query head, k > N
    ],
)
def test_topk_attention_matches_dense_masked(gen, B, N, Hq, Hkv, D, k, idx_heads):
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))
    idx1 = random_idx(gen, B, N, idx_heads, k)
    idx2 = random_idx(gen, B, N, idx_heads, max(1, k - 1))
    for a, b in ((idx1, None), (idx1, idx2)):
        out = sp.topk_two_simplicial_attention(q, k1, k2, v1, v2, a, idx2=b)
        mask = brute_mask(a, a if b is None else b, B, Hq, N)
        expect = ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask)
        torch.testing.assert_close(out, expect, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(mask, sp.topk_pair_mask(a, b, heads=Hq).expand(B, Hq, N, N, N))


def test_topk_with_window_positions_equals_windowed_reference(gen):
    B, N, Hq, Hkv, D, w1, w2 = 2, 11, 4, 2, 5, 4, 3
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))

    def window_idx(w):
        i = torch.arange(N)[:, None]
        j = i - torch.arange(w)[None, :]
        return torch.where(j >= 0, j, torch.full_like(j, -1))[None, :, None, :]

    out = sp.topk_two_simplicial_attention(q, k1, k2, v1, v2, window_idx(w1), idx2=window_idx(w2))
    torch.testing.assert_close(out, ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2))
    # k >= N with a full selection is plain causal 2-simplicial attention.
    full = sp.topk_indices(rand(gen, B, N, N), N + 2)
    out = sp.topk_two_simplicial_attention(q, k1, k2, v1, v2, full)
    torch.testing.assert_close(out, ref.two_simplicial_attention(q, k1, k2, v1, v2))


def test_topk_empty_rows_zero_and_finite_grads(gen):
    B, N, H, D = 1, 4, 1, 3
    q, k1, k2, v1, v2 = (rand(gen, B, N, H, D).requires_grad_() for _ in range(5))
    idx = torch.tensor([[[[-1, -1]], [[0, 1]], [[-1, -1]], [[3, 1]]]])
    out = sp.topk_two_simplicial_attention(q, k1, k2, v1, v2, idx)
    assert torch.equal(out[0, 0], torch.zeros(H, D, dtype=F64))
    assert torch.equal(out[0, 2], torch.zeros(H, D, dtype=F64))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k1, k2, v1, v2))


def test_topk_attention_scales_without_cubic_memory(gen):
    # N^3 = 6.9e10 logits would not fit; the gather form needs N * k^2.
    N, k = 4096, 4
    q = torch.randn(1, N, 1, 8, generator=gen)
    idx = sp.previous_layer_topk(q[:, :256], q[:, :256], k)  # any causal selection will do
    idx = torch.cat([idx, (torch.arange(256, N)[None, :, None, None] - torch.arange(k)).clone()], dim=1)
    out = sp.topk_two_simplicial_attention(q, q, q, q, q, idx)
    assert out.shape == (1, N, 1, 8) and torch.isfinite(out).all()


# ---------------------------------------------------------------- errors


def test_value_errors(gen):
    B, N, H, D = 1, 5, 2, 4
    q = rand(gen, B, N, H, D)
    kv = [rand(gen, B, N, 1, D) for _ in range(4)]
    good = sp.topk_indices(rand(gen, B, N, N), 2)
    with pytest.raises(ValueError, match="k"):
        sp.topk_indices(rand(gen, B, N, N), 0)
    with pytest.raises(ValueError, match="square"):
        sp.topk_indices(rand(gen, B, N, N + 1), 2)
    with pytest.raises(ValueError, match="NaN"):
        sp.topk_indices(torch.full((1, 2, 2), float("nan")), 1)
    with pytest.raises(ValueError, match="k >= 1"):
        sp.topk_two_simplicial_attention(q, *kv, good[..., :0])
    with pytest.raises(ValueError, match="outside"):
        sp.topk_two_simplicial_attention(q, *kv, torch.full_like(good, N))
    with pytest.raises(ValueError, match="outside"):
        sp.topk_two_simplicial_attention(q, *kv, torch.full_like(good, -2))
    bad = good.clone()
    bad[0, 1, 0, 0] = 3  # query 1 may not see key 3
    with pytest.raises(ValueError, match="future"):
        sp.topk_two_simplicial_attention(q, *kv, bad)
    dup = good.clone()
    dup[0, 4, 0] = torch.tensor([2, 2])
    with pytest.raises(ValueError, match="twice"):
        sp.topk_two_simplicial_attention(q, *kv, dup)
    with pytest.raises(ValueError, match="seq"):
        sp.topk_two_simplicial_attention(q, *kv, good[:, :3])
    with pytest.raises(ValueError, match="batch"):
        sp.topk_two_simplicial_attention(q, *kv, good.expand(3, -1, -1, -1))
    with pytest.raises(ValueError, match="heads"):
        sp.topk_two_simplicial_attention(q, *kv, good.expand(-1, -1, 3, -1))
    with pytest.raises(ValueError, match="integer"):
        sp.topk_two_simplicial_attention(q, *kv, good.double())
    with pytest.raises(ValueError, match="idx2"):
        sp.topk_two_simplicial_attention(q, *kv, good, idx2=good[:, :2])
    with pytest.raises(ValueError, match="k1"):
        sp.topk_two_simplicial_attention(q, rand(gen, B, N + 1, 1, D), *kv[1:], good)
    with pytest.raises(ValueError, match="heads"):
        sp.topk_two_simplicial_attention(rand(gen, B, N, 3, D), *[rand(gen, B, N, 2, D)] * 4, good)
    with pytest.raises(ValueError, match="rule"):
        sp.indexer_scores(q, kv[0], rule="gelu")
    with pytest.raises(ValueError, match="weights"):
        sp.indexer_scores(q, kv[0], torch.ones(B, N, 3))
    with pytest.raises(ValueError, match="w"):
        sp.sliding_window_mask(4, 0)
    with pytest.raises(ValueError, match="n"):
        sp.sliding_window_mask(0, 2)
    with pytest.raises(ValueError, match="query"):
        sp.window_pair_mask(4, 2, 2, query=4)
    with pytest.raises(ValueError, match="convention"):
        sp.two_simplicial_flops(10, 2, 2, convention="fb")
    with pytest.raises(ValueError, match="w2"):
        sp.two_simplicial_flops(10, 2, None)
    with pytest.raises(ValueError, match="w1"):
        sp.crossover_length(0, 2)
    with pytest.raises(ValueError, match="product"):
        sp.window_shapes(48)
    with pytest.raises(ValueError, match="min_w"):
        sp.window_shapes(64, min_w=0)
    with pytest.raises(ValueError, match="key_sets"):
        sp.indexer_flops(10, key_sets=-1)
    with pytest.raises(ValueError, match="n"):
        sp.dot_attention_flops(0)
    with pytest.raises(ValueError, match="head_dim"):
        sp.two_simplicial_flops(10, 2, 2, head_dim=0)
    with pytest.raises(ValueError, match="w1 and w2"):
        sp.crossover_length(None, 2)
    with pytest.raises(ValueError, match="w2"):
        sp.visible_pairs(5, 2, 0)
    with pytest.raises(ValueError, match="scores"):
        sp.topk_indices([[1.0]], 1)
    with pytest.raises(ValueError, match="k"):
        sp.previous_layer_topk(q, kv[0], 0)
    with pytest.raises(ValueError, match="k"):
        sp.previous_layer_topk(q, rand(gen, B, N, 2, D + 1), 2)


def test_table1_model():
    rows = sp.table1_model()
    assert len(rows) == len(sp.TABLE1)
    anchor = next(r for r in rows if (r["w1"], r["w2"]) == (512, 32))
    assert anchor["model_ms"] == anchor["latency_ms"] and anchor["ratio"] == 1
    for r in rows:
        assert r["model_ms"] == pytest.approx(55.1 * r["w1"] * r["w2"] / 16384, abs=1e-3)
        assert r["ratio"] == pytest.approx(r["latency_ms"] / r["model_ms"])
    with pytest.raises(ValueError, match="anchor"):
        sp.table1_model(anchor=(3, 3))


def bench_format_record():
    """A record in the layout written by ``python -m simplex_lib.bench`` (made-up timings)."""
    return {
        "meta": {"gpu": "Test GPU", "torch": "2.x", "date": "2026-01-01"},
        "records": [
            {"group": "table1", "mode": "fwd", "B": 2, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128,
             "w1": 512, "w2": 32, "ms": 28.0},
            {"group": "table1", "mode": "fwdbwd", "B": 2, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128,
             "w1": 512, "w2": 32, "ms": 300.0},
            {"group": "table1", "mode": "fwd", "B": 2, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128,
             "w1": 128, "w2": 128, "error": "OOM"},
            {"group": "claim-kernel", "mode": "fwd", "B": 1, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128,
             "w1": 512, "w2": 32, "ms": 14.0},
            {"group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 32768, "Hq": 64, "Hkv": 64, "D": 128,
             "ms": 55.0, "paired_with": [0, 0]},
            {"group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 49152, "Hq": 64, "Hkv": 64, "D": 64,
             "ms": 99.0, "paired_with": [0, 0]},
        ],
    }


def test_bench_format_records(tmp_path):
    (tmp_path / "kernels_bench.json").write_text(json.dumps(bench_format_record()))
    recs = sp.load_benchmark_records(str(tmp_path))
    rows = sp.window_latency_rows(recs)
    assert len(rows) == 3 and all(r["gpu"] == "Test GPU" for r in rows)
    table = sp.table1_model(measured=rows)
    got = {(r["w1"], r["w2"]): r.get("measured_ms") for r in table}
    assert got[(512, 32)] == 28.0 and got[(128, 128)] is None and got[(1024, 16)] is None
    cross = sp.measured_crossover(recs)
    assert len(cross) == 1  # the D = 64 SDPA run does not pair with the D = 128 kernel
    c = cross[0]
    tk, ts = 14.0 / 8192, 55.0 / 32768  # ms per token
    assert c["crossover"] == pytest.approx(32768 * tk / ts)
    assert c["model_crossover"] == 32768 and c["gpu"] == "Test GPU" and c["n_sdpa"] == 32768
    assert sp.measured_crossover([("x.json", {"no": "records"})]) == []
