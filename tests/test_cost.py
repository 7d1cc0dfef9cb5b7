"""simplex_lib.cost: the FLOP and memory model against brute-force counting, and the measuring helpers."""

import itertools

import pytest
import torch

from simplex_lib import cost, masks, published
from simplex_lib.ops.dot import reference as dot_ref
from simplex_lib.ops.two_simplicial import reference as ref

# ---------------------------------------------------------------- counting tuples


@pytest.mark.parametrize("n,w1,w2", [(1, 1, 1), (10, 3, 5), (13, 40, 2), (8, None, None)])
def test_visible_triples_brute(n, w1, w2):
    count = sum(
        1
        for i in range(n)
        for j in range(n)
        for k in range(n)
        if j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2)
    )
    assert cost.visible_triples(n, w1, w2) == count


@pytest.mark.parametrize("L", [1, 2, 5, 7])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tuple_count_by_enumeration(L, n):
    tuples = list(itertools.product(range(L), repeat=n + 1))  # (i, j_1, ..., j_n)
    assert cost.tuple_count(L, n) == len(tuples)
    assert cost.tuple_count(L, n, causal=True) == sum(all(j <= t[0] for j in t[1:]) for t in tuples)


@pytest.mark.parametrize("L", [1, 6])
def test_causal_count_equals_the_reference_support(gen, L):
    # Positive weights of the reference (float64, random inputs) = the causal tuple count.
    x = [torch.randn(1, L, 1, 3, generator=gen, dtype=torch.float64) for _ in range(3)]
    assert int((dot_ref.dot_attention_weights(x[0], x[1]) > 0).sum()) == cost.tuple_count(L, 1, causal=True)
    p = ref.two_simplicial_weights(*x)
    assert int((p > 0).sum()) == cost.tuple_count(L, 2, causal=True)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_flops_brute_force(n, causal):
    L, D, B, H = 4, 3, 2, 3
    per_entry = {"ours": 0, "paper": 0}
    count = 0
    for t in itertools.product(range(L), repeat=n + 1):
        if causal and not all(j <= t[0] for j in t[1:]):
            continue
        count += 1
        for _ in range(D):
            # logit: our (matmul) convention counts one multiply-add (the last factor); the paper's
            # counts every multiply (n of them) and the add; the value side likewise.
            per_entry["ours"] += 2 + 2
            per_entry["paper"] += (n + 1) + (n + 1)
    for conv in ("ours", "paper"):
        assert cost.dense_flops(L, n, D, batch=B, heads=H, causal=causal, convention=conv) \
            == B * H * per_entry[conv]


def test_flops_conventions_match_known_formulas():
    # Causal dot attention: 4 B H N^2 D / 2 up to the diagonal; the paper's 6 per entry for n=2.
    N, D = 512, 64
    assert cost.dense_flops(N, 1, D, causal=True) == 4 * D * N * (N + 1) // 2
    assert cost.dense_flops(N, 2, D, convention="paper") == 6 * N**3 * D


def test_memory_bytes_brute_force():
    for L, n, D, B, H, bpe, copies in [(3, 1, 2, 1, 1, 4, 2), (5, 2, 3, 2, 2, 2, 3), (1, 3, 1, 1, 1, 8, 1)]:
        tensor = copies * bpe * sum(1 for _ in itertools.product(range(B), range(H),
                                                                    *[range(L)] * (n + 1)))
        io = bpe * (2 * n + 2) * B * L * H * D
        got = cost.dense_memory_bytes(L, n, D, batch=B, heads=H, bytes_per_element=bpe,
                                    live_copies=copies, breakdown=True)
        assert got == {"tensor": tensor, "io": io, "total": tensor + io}
        assert cost.dense_memory_bytes(L, n, D, batch=B, heads=H, bytes_per_element=bpe,
                                     live_copies=copies) == tensor + io


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("budget", [0, 100, 10_000, 3 * 2**20, 123_456_789])
def test_max_dense_length_by_linear_search(n, budget):
    L = 0
    while cost.dense_memory_bytes(L + 1, n, 8, heads=2) <= budget:
        L += 1
    assert cost.max_dense_length(budget, n, 8, heads=2) == L


def test_max_dense_length_large_budget():
    L = cost.max_dense_length(80 * cost.GIB, 2, 128)
    assert cost.dense_memory_bytes(L, 2, 128) <= 80 * cost.GIB < cost.dense_memory_bytes(L + 1, 2, 128)


def test_memory_tracker_counts_allocations_not_views():
    x = torch.zeros(100)  # existed before: not counted
    with cost.TensorMemoryTracker() as mem:
        v = x.view(10, 10)  # a view: no new storage
        x.add_(1)  # in place: no new storage
        a = torch.ones(200, dtype=torch.float64)  # 1600 bytes
        b = a[:50].clone()  # 400 bytes -> 2000 live
        del a  # 400 live
        c = torch.empty(300)  # 1200 -> 1600 live
    assert mem.peak == 2000
    assert mem.current == 1600
    assert v.shape == (10, 10) and b.numel() == 50 and c.numel() == 300


def test_measure_dense_rows():
    rows = cost.measure_dense(2, [4, 6], head_dim=4, heads=2, repeats=2)
    assert [r["L"] for r in rows] == [4, 6]
    for r in rows:
        L = r["L"]
        assert r["entries"] == 2 * L**3
        assert r["seconds"] > 0
        assert r["input_bytes"] == 5 * 2 * L * 4 * 4
        # The reference holds at least logits and probabilities (two float32 copies).
        assert r["peak_bytes"] >= cost.dense_memory_bytes(L, 2, 4, heads=2, breakdown=True)["tensor"]
        # Matmul FLOPs: the analytic count plus the lower-order final contraction over k.
        assert cost.dense_flops(L, 2, 4, heads=2) <= r["flops"] <= cost.dense_flops(L, 2, 4, heads=2) * 1.5


def test_measure_dense_custom_attention_and_threads():
    calls = []

    def fake(q, keys, values, reducer):
        calls.append(reducer)
        return q * 2

    before = torch.get_num_threads()
    rows = cost.measure_dense(1, [3], repeats=1, attention=fake, reducer="or", threads=1)
    assert torch.get_num_threads() == before
    assert calls == ["or"] * 4  # warm-up, one timed, memory, flops
    assert rows[0]["flops"] == 0 and rows[0]["peak_bytes"] == 3 * 8 * 4


def test_errors():
    with pytest.raises(ValueError, match="L"):
        cost.tuple_count(0, 2)
    with pytest.raises(ValueError, match="n"):
        cost.tuple_count(4, 0)
    with pytest.raises(ValueError, match="convention"):
        cost.dense_flops(4, 2, 8, convention="all")
    with pytest.raises(ValueError, match="head_dim"):
        cost.dense_flops(4, 2, 0)
    with pytest.raises(ValueError, match="live_copies"):
        cost.dense_memory_bytes(4, 2, 8, live_copies=0)
    with pytest.raises(ValueError, match="budget_bytes"):
        cost.max_dense_length(-1, 2, 8)
    with pytest.raises(ValueError, match="lengths"):
        cost.measure_dense(2, [])
    with pytest.raises(ValueError, match="repeats"):
        cost.measure_dense(2, [4], repeats=0)
    with pytest.raises(ValueError, match="threads"):
        cost.measure_dense(2, [4], threads=0)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_causal_count_closed_form_at_large_length(n):
    for L in (1, 2, 999, 12_345):
        assert cost.tuple_count(L, n, causal=True) == sum(m**n for m in range(1, L + 1))
    assert cost.tuple_count(10**9, 2, causal=True) == 10**9 * (10**9 + 1) * (2 * 10**9 + 1) // 6


# ---------------------------------------------------------------- windowed, top-k, dot, indexer


def test_flop_formulas():
    B, H, N, D, w1, w2 = 2, 64, 8192, 128, 512, 32
    assert cost.windowed_flops(N, w1, w2, batch=B, heads=H, head_dim=D) == 4 * B * H * N * D * w1 * w2
    assert cost.windowed_flops(N, w1, w2, convention="paper") == 6 * N * w1 * w2
    assert cost.dot_flops(N, batch=B, heads=H, head_dim=D) == 4 * B * H * N * N * D // 2
    assert cost.dot_flops(N) == 2 * N * N  # the paper's 2 n^2
    # Exact counts: every visible triple / pair counted once.
    n, a, b = 11, 4, 3
    m = masks.window_pair_mask(n, a, b)
    assert cost.windowed_flops(n, a, b, head_dim=5, exact=True) == 4 * 5 * int(m.sum())
    assert cost.dot_flops(n, head_dim=5, exact=True) == 4 * 5 * int(masks.sliding_window_mask(n).sum())
    assert cost.topk_flops(n, 3, exact=True) == cost.windowed_flops(n, 3, 3, exact=True)
    assert cost.indexer_flops(n, indexer_heads=2, indexer_dim=3, key_sets=2) == 2 * 2 * 3 * n * n


def test_crossover_48k_claim():
    n = cost.crossover_length(512, 32, convention="paper")
    assert n == 49152 == 48 * 1024
    assert 6 * n * 512 * 32 == 2 * n * n
    n = cost.crossover_length(512, 32)
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
    assert cost.crossover_length(w1, w2, convention=convention, exact=True) == n
    assert n <= cost.crossover_length(w1, w2, convention=convention)


def test_table1_and_shapes():
    for row in published.TABLE1:
        assert row["w1"] * row["w2"] == row["product"]
        assert (row["w1"], row["w2"]) in cost.window_shapes(row["product"], min_w=16)
    shapes = cost.window_shapes(64, min_w=4)
    assert shapes == [(4, 16), (8, 8), (16, 4)]
    assert len({cost.windowed_flops(100, a, b) for a, b in cost.window_shapes(1024)}) == 1


def test_table1_model():
    rows = cost.table1_model()
    assert len(rows) == len(published.TABLE1)
    anchor = next(r for r in rows if (r["w1"], r["w2"]) == (512, 32))
    assert anchor["model_ms"] == anchor["latency_ms"] and anchor["ratio"] == 1
    for r in rows:
        assert r["model_ms"] == pytest.approx(55.1 * r["w1"] * r["w2"] / 16384, abs=1e-3)
        assert r["ratio"] == pytest.approx(r["latency_ms"] / r["model_ms"])




def test_one_formula_for_every_order():
    # Windows at least as long as the sequence: windowed = top-k = dense causal 2-simplicial.
    for n in (1, 5, 12):
        for conv in ("ours", "paper"):
            dense = cost.dense_flops(n, 2, 3, heads=2, causal=True, convention=conv)
            assert cost.windowed_flops(n, n, n, heads=2, head_dim=3, convention=conv, exact=True) == dense
            assert cost.topk_flops(n, n + 4, heads=2, head_dim=3, convention=conv, exact=True) == dense
        # Dot attention is the order-1 case, the same in both conventions.
        assert cost.dot_flops(n, head_dim=3, exact=True) == cost.dense_flops(n, 1, 3, causal=True)
        assert cost.dense_flops(n, 1, 3, convention="paper") == cost.dense_flops(n, 1, 3)
    assert [cost.flops_per_tuple(o, 2, convention="paper") for o in (1, 2, 3)] == [8, 12, 16]
    assert [cost.flops_per_tuple(o, 2) for o in (1, 2, 3)] == [8, 8, 8]


@pytest.mark.parametrize("mode,factor", [("fwd", 1.0), ("bwd", 2.5), ("fwdbwd", 3.5)])
def test_pass_factors(mode, factor):
    B, H, N, D, w1, w2 = 2, 64, 8192, 128, 512, 32
    want = factor * 4 * B * H * N * D * w1 * w2
    assert cost.windowed_flops(N, w1, w2, batch=B, heads=H, head_dim=D, mode=mode) == want
    assert cost.topk_flops(N, 128, batch=B, heads=H, head_dim=D, mode=mode) == factor * 4 * B * H * N * D * 128 * 128
    assert cost.topk_flops(N, 64, 32, mode=mode) == factor * 4 * N * 64 * 32
    assert cost.dot_flops(16384, heads=16, head_dim=128, mode=mode) == factor * 4 * 16 * 16384**2 * 128 / 2
    assert isinstance(cost.windowed_flops(7, 3, 1, mode=mode), int)


def test_equal_cost_dot_length():
    N, w1, w2 = 8192, 512, 32
    m = cost.equal_cost_dot_length(N, w1, w2)
    assert m == pytest.approx((2 * N * w1 * w2) ** 0.5)
    assert 2 * m * m == pytest.approx(4 * N * w1 * w2)  # dot FLOPs at m = windowed FLOPs at N
    assert cost.equal_cost_dot_length(49152, 512, 32, convention="paper") == pytest.approx(49152)
    for conv in ("ours", "paper"):
        n = cost.crossover_length(w1, w2, convention=conv)
        assert cost.equal_cost_dot_length(n, w1, w2, convention=conv) == pytest.approx(n)


def flat_record_set():
    """Flat benchmark records (as ``bench_plots.flat_records`` returns them; made-up timings)."""
    tag = {"path": "r.json", "gpu": "Test GPU", "torch": "2.x", "triton": "3.x", "date": "2026-01-01"}
    shape = {"B": 2, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128}
    return [
        {**tag, **shape, "group": "table1", "mode": "fwd", "w1": 512, "w2": 32, "ms": 28.0},
        {**tag, **shape, "group": "table1", "mode": "fwdbwd", "w1": 512, "w2": 32, "ms": 300.0},
        {**tag, **shape, "group": "table1", "mode": "fwd", "w1": 128, "w2": 128, "error": "OOM"},
        {**tag, "group": "claim-kernel", "mode": "fwd", "B": 1, "N": 8192, "Hq": 64, "Hkv": 1, "D": 128,
         "w1": 512, "w2": 32, "ms": 14.0},
        {**tag, "group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 32768, "Hq": 64, "Hkv": 64, "D": 128, "ms": 55.0},
        {**tag, "group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 49152, "Hq": 64, "Hkv": 64, "D": 64, "ms": 99.0},
        {**tag, "path": "other.json", "group": "claim-sdpa", "mode": "fwd", "B": 1, "N": 32768, "Hq": 64,
         "Hkv": 64, "D": 128, "ms": 1.0},
    ]


def test_model_against_records():
    recs = flat_record_set()
    table = cost.table1_model(measured=recs)
    got = {(r["w1"], r["w2"]): r.get("measured_ms") for r in table}
    assert got[(512, 32)] == 28.0 and got[(128, 128)] is None and got[(1024, 16)] is None
    cross = cost.measured_crossover(recs)
    assert len(cross) == 1  # the D = 64 run and the other file's run do not pair with the kernel
    c = cross[0]
    tk, ts = 14.0 / 8192, 55.0 / 32768  # ms per token
    assert c["crossover"] == pytest.approx(32768 * tk / ts)
    assert c["model_crossover"] == 32768 and c["gpu"] == "Test GPU" and c["n_sdpa"] == 32768
    assert c["date"] == "2026-01-01" and c["path"] == "r.json"
    assert cost.measured_crossover([{"no": "records"}, "junk"]) == []


def test_cost_errors():
    cases = [
        (lambda: cost.windowed_flops(10, 2, 2, convention="fb"), "convention"),
        (lambda: cost.windowed_flops(10, 2, None), "w2"),
        (lambda: cost.windowed_flops(10, 2, 2, head_dim=0), "head_dim"),
        (lambda: cost.windowed_flops(10, 2, 2, mode="both"), "mode"),
        (lambda: cost.windowed_flops(10.0, 2, 2), "n"),
        (lambda: cost.topk_flops(10, 0), "k1"),
        (lambda: cost.topk_flops(10, 2, True), "k2"),
        (lambda: cost.dot_flops(0), "n"),
        (lambda: cost.dot_flops(4, mode="bwd2"), "mode"),
        (lambda: cost.indexer_flops(10, key_sets=-1), "key_sets"),
        (lambda: cost.indexer_flops(10, indexer_dim=0), "indexer_dim"),
        (lambda: cost.crossover_length(0, 2), "w1"),
        (lambda: cost.crossover_length(None, 2), "w1"),
        (lambda: cost.crossover_length(2, 2, convention="x"), "convention"),
        (lambda: cost.equal_cost_dot_length(0, 2, 2), "n"),
        (lambda: cost.window_shapes(48), "product"),
        (lambda: cost.window_shapes(64, min_w=0), "min_w"),
        (lambda: cost.visible_triples(5, 2, 0), "w2"),
        (lambda: cost.visible_triples(0), "n"),
        (lambda: cost.flops_per_tuple(0), "order"),
        (lambda: cost.max_dense_length(100, 2, 8, heads=0), "heads"),
        (lambda: cost.max_dense_length(100, 2, 8, dtype=4), "dtype"),
        (lambda: cost.table1_model(anchor=(3, 3)), "anchor"),
        (lambda: cost.table1_model(anchor=512), "anchor"),
        (lambda: cost.measure_dense(2, [4], attention="sdpa"), "attention"),
        (lambda: cost.measure_dense(2, [0]), "lengths"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_block_flops_per_token_counts_weights_and_attention():
    from simplex_lib.cost import block_flops_per_token

    d, H, dh, n, w = 96, 3, 32, 10, 4
    weights = 2 * (4 * d * d + 2 * 4 * d * d)  # Q, K, V, O and an MLP of width 4d
    dot = sum(4 * H * dh * (i + 1) for i in range(n)) / n  # each query sees i + 1 keys
    assert block_flops_per_token(d, H, dh, n) == weights + dot
    assert block_flops_per_token(d, H, dh, n, window=w) == weights + 4 * H * dh * w * w
    with pytest.raises(ValueError, match="d_model"):
        block_flops_per_token(0, H, dh, n)
