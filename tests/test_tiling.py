"""simplex_lib.ops.two_simplicial.tiling against brute-force simulations of the kernels' loops."""

import math

import pytest
import torch

from simplex_lib.ops.two_simplicial import tiling as T


def brute_listing(block_q, w1, w2, block_kv, q_start, n):
    """Run the paper's forward loops literally and count (row, j, k) products and kept ones."""
    computed = useful = 0
    q_end = q_start + block_q
    k1s, k2s = set(), set()
    for kv1 in range(max(0, q_start - w1), min(n, q_end)):
        k1s.add(kv1)
        for kv2_0 in range(max(0, q_start - w2), min(n, q_end), block_kv):
            for c in range(block_kv):
                kv2 = kv2_0 + c
                k2s.add(kv2)
                for r in range(block_q):
                    q = q_start + r
                    computed += 1
                    keep = (q < n) and (kv2 < n) and (q - w1 < kv1 <= q) and (q - w2 < kv2 <= q)
                    useful += keep
    return computed, useful, len(k1s), len(k2s)


def brute_packed(heads, positions, w1, w2, block_n, group, i0, n, tail=0):
    """Simulate the packed tile: rows (head slot, position), K1 in tiles ending at hi (the
    last one ``tail`` wide where at most that many keys are left), K2 rows."""
    hi = min(i0 + positions, n)
    lo1 = max(i0 - w1 + 1, 0)
    k2lo = max(i0 - w2 + 1, 0)
    tiles, top = [], hi
    while top > lo1:
        width = tail if top - lo1 <= tail else block_n
        tiles.append(range(top - width, top))
        top -= width
    computed = useful = 0
    for tile in tiles:
        for j in tile:
            for k in range(k2lo, hi):
                for p in range(positions):
                    for h in range(heads):
                        pos = i0 + p
                        computed += 1
                        ok = h < group and pos < n and j >= 0
                        ok = ok and pos - w1 < j <= pos and pos - w2 < k <= pos
                        useful += ok
    return computed, useful


def _draw(gen, lo, hi):
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def test_count_tile_small_example():
    t = T.count_tile([4, 5, None], range(2, 6), range(4, 6), 3, 2)
    assert (t.rows, t.k1_rows, t.k2_rows, t.computed) == (3, 4, 2, 24)
    assert t.useful == 3 * 1 + 3 * 2


@pytest.mark.parametrize("trial", range(6))
def test_listing_tile_matches_loops(gen, trial):
    block_q, block_kv = _draw(gen, 1, 9), _draw(gen, 1, 6)
    w1, w2 = _draw(gen, 1, 12), _draw(gen, 1, 12)
    n = _draw(gen, 1, 30)
    q_start = _draw(gen, 0, n - 1)
    t = T.listing_tile(block_q, w1, w2, block_kv=block_kv, q_start=q_start, n=n)
    c, u, k1, k2 = brute_listing(block_q, w1, w2, block_kv, q_start, n)
    assert (t.computed, t.useful, t.k1_rows, t.k2_rows) == (c, u, k1, k2)


def test_listing_steady_state_matches_the_performance_note():
    # A 64-query tile with w2 = 32 loads 96 K2 rows and w1 + 64 K1 rows; about 70% is masked.
    t = T.listing_tile(64, 512, 32)
    assert (t.k1_rows, t.k2_rows) == (512 + 64, 96)
    assert t.useful == 64 * 512 * 32
    assert abs(t.masked_fraction - 0.7037) < 1e-3
    c, u, *_ = brute_listing(16, 24, 8, 8, 40, 200)
    assert T.listing_tile(16, 24, 8, block_kv=8, q_start=40, n=200).computed == c


@pytest.mark.parametrize("bq,w1,w2,bkv", [(64, 512, 32, 32), (64, 256, 64, 32), (16, 7, 5, 4), (3, 1, 1, 1)])
def test_listing_closed_form(bq, w1, w2, bkv):
    t = T.listing_tile(bq, w1, w2, block_kv=bkv)
    assert math.isclose(t.useful_fraction, T.listing_useful_fraction(bq, w1, w2, block_kv=bkv))


@pytest.mark.parametrize("trial", range(6))
def test_packed_tile_matches_loops(gen, trial):
    heads, positions = _draw(gen, 1, 4), _draw(gen, 1, 4)
    group = _draw(gen, 1, heads)
    w1, w2, block_n = _draw(gen, 1, 10), _draw(gen, 1, 10), _draw(gen, 1, 5)
    n = _draw(gen, 1, 25)
    i0 = _draw(gen, 0, n - 1)
    t = T.packed_tile(heads, positions, w1, w2, block_n=block_n, group=group, i0=i0, n=n)
    assert (t.computed, t.useful) == brute_packed(heads, positions, w1, w2, block_n, group, i0, n)


@pytest.mark.parametrize("trial", range(6))
def test_packed_tile_with_a_narrow_last_tile_matches_loops(gen, trial):
    heads, positions = _draw(gen, 1, 3), _draw(gen, 1, 8)
    w1, w2, block_n = _draw(gen, 1, 12), _draw(gen, 1, 6), _draw(gen, 2, 6)
    tail, n = _draw(gen, 0, block_n - 1), _draw(gen, 1, 25)
    i0 = _draw(gen, 0, n - 1)
    t = T.packed_tile(heads, positions, w1, w2, block_n=block_n, i0=i0, n=n, tail=tail)
    assert (t.computed, t.useful) == brute_packed(heads, positions, w1, w2, block_n, heads,
                                                  i0, n, tail)


def test_packed_one_position_wastes_nothing_in_steady_state():
    t = T.packed_tile(64, 1, 512, 32, block_n=128)
    assert t.masked_fraction == 0.0 and (t.k1_rows, t.k2_rows) == (512, 32)
    # padding head slots are waste: 48 real heads in 64 slots
    assert T.packed_tile(64, 1, 512, 32, block_n=128, group=48).useful_fraction == 48 / 64


@pytest.mark.parametrize("n,w1,w2", [(1, 3, 2), (13, 5, 3), (20, 40, 7), (9, 1, 1)])
def test_sequences_count_every_visible_triple_once(n, w1, w2):
    visible = sum(min(w1, i + 1) * min(w2, i + 1) for i in range(n))
    assert T.listing_sequence(n, 4, w1, w2, block_kv=3).useful == visible
    assert T.packed_sequence(n, 4, 2, w1, w2, block_n=3, group=6).useful == 6 * visible


def test_online_softmax_with_masked_blocks(gen):
    s = torch.randn(5, 23, generator=gen, dtype=torch.float64) * 4
    s[:, :7] = -torch.inf  # the first block (and then some) masked for every row
    s[2, 10:] = -torch.inf
    v = torch.randn(23, 3, generator=gen, dtype=torch.float64)
    for block in (1, 4, 7, 23, 40):
        out, lse = T.online_softmax(s, v, block)
        torch.testing.assert_close(out, torch.softmax(s, -1) @ v)
        torch.testing.assert_close(lse, s.logsumexp(-1))


@pytest.mark.parametrize("n,chunk,w", [(64, 16, 17), (64, 16, 18), (37, 5, 3), (10, 3, 9), (1, 1, 1)])
def test_key_writers(n, chunk, w):
    kw = T.key_writers(n, chunk, w)
    for stage in (0, 1):
        brute = [0] * n
        for c0 in range(stage * chunk, n, 2 * chunk):
            touched = {k for i in range(c0, min(c0 + chunk, n)) for k in range(n) if i - w < k <= i}
            for k in touched:
                brute[k] += 1
        assert kw[f"stage{stage}"] == brute
    race_free = max(max(v) for v in kw.values()) <= 1
    # the schedule is race-free iff chunk >= w - 1 (when there are at least three chunks)
    if n >= 3 * chunk:
        assert race_free == (chunk >= w - 1)


def test_errors():
    with pytest.raises(ValueError, match="w1"):
        T.count_tile([0], [0], [0], 0, 1)
    with pytest.raises(ValueError, match="block_q"):
        T.listing_tile(0, 4, 4)
    with pytest.raises(ValueError, match="q_start"):
        T.listing_tile(4, 4, 4, q_start=10, n=5)
    with pytest.raises(ValueError, match="group"):
        T.packed_tile(4, 1, 4, 4, group=5)
    with pytest.raises(ValueError, match="i0"):
        T.packed_tile(4, 1, 4, 4, i0=-1, n=3)
    with pytest.raises(ValueError, match="tail"):
        T.packed_tile(4, 1, 4, 4, block_n=16, tail=16)
    with pytest.raises(ValueError, match="block"):
        T.online_softmax(torch.zeros(1, 2), torch.zeros(2, 1), 0)
    with pytest.raises(ValueError, match="scores"):
        T.online_softmax(torch.zeros(1, 2), torch.zeros(3, 1), 1)
    with pytest.raises(ValueError, match="chunk"):
        T.key_writers(4, 0, 1)
