"""Analytic cost counts against brute-force counting, and the measuring helpers."""

import itertools

import pytest
import torch

from simplex_lib import complexity as cx
from simplex_lib import reference as ref


@pytest.mark.parametrize("L", [1, 2, 5, 7])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_tuple_count_by_enumeration(L, n):
    tuples = list(itertools.product(range(L), repeat=n + 1))  # (i, j_1, ..., j_n)
    assert cx.tuple_count(L, n) == len(tuples)
    assert cx.tuple_count(L, n, causal=True) == sum(all(j <= t[0] for j in t[1:]) for t in tuples)


@pytest.mark.parametrize("L", [1, 6])
def test_causal_count_equals_the_reference_support(gen, L):
    # Positive weights of the reference (float64, random inputs) = the causal tuple count.
    x = [torch.randn(1, L, 1, 3, generator=gen, dtype=torch.float64) for _ in range(3)]
    assert int((ref.dot_attention_weights(x[0], x[1]) > 0).sum()) == cx.tuple_count(L, 1, causal=True)
    p = ref.two_simplicial_weights(*x)
    assert int((p > 0).sum()) == cx.tuple_count(L, 2, causal=True)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_flops_brute_force(n, causal):
    L, D, B, H = 4, 3, 2, 3
    per_entry = {"matmul": 0, "all": 0}
    count = 0
    for t in itertools.product(range(L), repeat=n + 1):
        if causal and not all(j <= t[0] for j in t[1:]):
            continue
        count += 1
        for _ in range(D):
            # logit: matmul convention counts one multiply-add (the last factor); "all" counts
            # every multiply (n of them) and the add; the value side likewise.
            per_entry["matmul"] += 2 + 2
            per_entry["all"] += (n + 1) + (n + 1)
    for conv in ("matmul", "all"):
        assert cx.dense_flops(L, n, D, batch=B, heads=H, causal=causal, convention=conv) \
            == B * H * per_entry[conv]


def test_flops_conventions_match_known_formulas():
    # Causal dot attention: 4 B H N^2 D / 2 up to the diagonal; the paper's 6 per entry for n=2.
    N, D = 512, 64
    assert cx.dense_flops(N, 1, D, causal=True) == 4 * D * N * (N + 1) // 2
    assert cx.dense_flops(N, 2, D, convention="all") == 6 * N**3 * D


def test_memory_bytes_brute_force():
    for L, n, D, B, H, bpe, copies in [(3, 1, 2, 1, 1, 4, 2), (5, 2, 3, 2, 2, 2, 3), (1, 3, 1, 1, 1, 8, 1)]:
        tensor = copies * bpe * sum(1 for _ in itertools.product(range(B), range(H),
                                                                    *[range(L)] * (n + 1)))
        io = bpe * (2 * n + 2) * B * L * H * D
        got = cx.dense_memory_bytes(L, n, D, batch=B, heads=H, bytes_per_element=bpe,
                                    live_copies=copies, breakdown=True)
        assert got == {"tensor": tensor, "io": io, "total": tensor + io}
        assert cx.dense_memory_bytes(L, n, D, batch=B, heads=H, bytes_per_element=bpe,
                                     live_copies=copies) == tensor + io


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("budget", [0, 100, 10_000, 3 * 2**20, 123_456_789])
def test_max_dense_length_by_linear_search(n, budget):
    L = 0
    while cx.dense_memory_bytes(L + 1, n, 8, heads=2) <= budget:
        L += 1
    assert cx.max_dense_length(budget, n, 8, heads=2) == L


def test_max_dense_length_large_budget():
    L = cx.max_dense_length(80 * cx.GIB, 2, 128)
    assert cx.dense_memory_bytes(L, 2, 128) <= 80 * cx.GIB < cx.dense_memory_bytes(L + 1, 2, 128)


def test_log_log_slope(gen):
    x = torch.rand(6, generator=gen, dtype=torch.float64) * 100 + 1
    y = 3.5 * x**2.7
    assert abs(cx.log_log_slope(x.tolist(), y.tolist()) - 2.7) < 1e-9


def test_memory_tracker_counts_allocations_not_views():
    x = torch.zeros(100)  # existed before: not counted
    with cx.TensorMemoryTracker() as mem:
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
    rows = cx.measure_dense(2, [4, 6], head_dim=4, heads=2, repeats=2)
    assert [r["L"] for r in rows] == [4, 6]
    for r in rows:
        L = r["L"]
        assert r["entries"] == 2 * L**3
        assert r["seconds"] > 0
        assert r["input_bytes"] == 5 * 2 * L * 4 * 4
        # The reference holds at least logits and probabilities (two float32 copies).
        assert r["peak_bytes"] >= cx.dense_memory_bytes(L, 2, 4, heads=2, breakdown=True)["tensor"]
        # Matmul FLOPs: the analytic count plus the lower-order final contraction over k.
        assert cx.dense_flops(L, 2, 4, heads=2) <= r["flops"] <= cx.dense_flops(L, 2, 4, heads=2) * 1.5


def test_measure_dense_custom_attention_and_threads():
    calls = []

    def fake(q, keys, values, reducer):
        calls.append(reducer)
        return q * 2

    before = torch.get_num_threads()
    rows = cx.measure_dense(1, [3], repeats=1, attention=fake, reducer="or", threads=1)
    assert torch.get_num_threads() == before
    assert calls == ["or"] * 4  # warm-up, one timed, memory, flops
    assert rows[0]["flops"] == 0 and rows[0]["peak_bytes"] == 3 * 8 * 4


def test_errors():
    with pytest.raises(ValueError, match="L"):
        cx.tuple_count(0, 2)
    with pytest.raises(ValueError, match="n"):
        cx.tuple_count(4, 0)
    with pytest.raises(ValueError, match="convention"):
        cx.dense_flops(4, 2, 8, convention="paper")
    with pytest.raises(ValueError, match="head_dim"):
        cx.dense_flops(4, 2, 0)
    with pytest.raises(ValueError, match="live_copies"):
        cx.dense_memory_bytes(4, 2, 8, live_copies=0)
    with pytest.raises(ValueError, match="budget_bytes"):
        cx.max_dense_length(-1, 2, 8)
    with pytest.raises(ValueError, match="x and y"):
        cx.log_log_slope([1], [1])
    with pytest.raises(ValueError, match="positive"):
        cx.log_log_slope([1, 0], [1, 2])
    with pytest.raises(ValueError, match="lengths"):
        cx.measure_dense(2, [])
    with pytest.raises(ValueError, match="repeats"):
        cx.measure_dense(2, [4], repeats=0)
    with pytest.raises(ValueError, match="threads"):
        cx.measure_dense(2, [4], threads=0)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_causal_count_closed_form_at_large_length(n):
    for L in (1, 2, 999, 12_345):
        assert cx.tuple_count(L, n, causal=True) == sum(m**n for m in range(1, L + 1))
    assert cx.tuple_count(10**9, 2, causal=True) == 10**9 * (10**9 + 1) * (2 * 10**9 + 1) // 6
