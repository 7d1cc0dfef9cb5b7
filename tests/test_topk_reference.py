"""simplex_lib.ops.topk.reference (masked top-k 2-simplicial attention) against the dense masked reference."""

import pytest
import torch

from simplex_lib import masks, selection
from simplex_lib.ops.two_simplicial import reference as ref
from simplex_lib.ops.topk.reference import topk_two_simplicial_attention
from simplex_lib.testing import assert_close
from test_masks import brute_mask, random_idx

F64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


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
        out = topk_two_simplicial_attention(q, k1, k2, v1, v2, a, idx2=b)
        mask = brute_mask(a, a if b is None else b, B, Hq, N)
        expect = ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask)
        assert_close("top-k attention", expect, out, 1e-10)
        torch.testing.assert_close(mask, masks.topk_pair_mask(a, b, heads=Hq).expand(B, Hq, N, N, N))


def test_topk_with_window_positions_equals_windowed_reference(gen):
    B, N, Hq, Hkv, D, w1, w2 = 2, 11, 4, 2, 5, 4, 3
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))

    def window_idx(w):
        return masks.window_indices(N, w)[None, :, None, :]

    out = topk_two_simplicial_attention(q, k1, k2, v1, v2, window_idx(w1), idx2=window_idx(w2))
    assert_close("window positions", ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2), out, 1e-12)
    # k >= N with a full selection is plain causal 2-simplicial attention.
    full = selection.topk_indices(rand(gen, B, N, N), N + 2)
    out = topk_two_simplicial_attention(q, k1, k2, v1, v2, full)
    assert_close("full selection", ref.two_simplicial_attention(q, k1, k2, v1, v2), out, 1e-12)


def test_topk_empty_rows_zero_and_finite_grads(gen):
    B, N, H, D = 1, 4, 1, 3
    q, k1, k2, v1, v2 = (rand(gen, B, N, H, D).requires_grad_() for _ in range(5))
    idx = torch.tensor([[[[-1, -1]], [[0, 1]], [[-1, -1]], [[3, 1]]]])
    out = topk_two_simplicial_attention(q, k1, k2, v1, v2, idx)
    assert torch.equal(out[0, 0], torch.zeros(H, D, dtype=F64))
    assert torch.equal(out[0, 2], torch.zeros(H, D, dtype=F64))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k1, k2, v1, v2))


def test_nan_stays_in_the_rows_that_select_it(gen):
    """A NaN key/value at position 0 reaches only queries that selected position 0 (-1 slots gather it)."""
    B, N, H, D = 1, 5, 1, 3
    q, k1, k2, v1, v2 = (rand(gen, B, N, H, D) for _ in range(5))
    for t in (k1, k2, v1, v2):
        t[0, 0] = float("nan")
    idx = torch.tensor([[[[-1, -1]], [[1, -1]], [[1, 2]], [[0, 3]], [[2, -1]]]])
    out = topk_two_simplicial_attention(q, k1, k2, v1, v2, idx)
    assert torch.isnan(out[0, 3]).all()
    assert torch.isfinite(out[0, [0, 1, 2, 4]]).all()


def test_topk_attention_scales_without_cubic_memory(gen):
    # N^3 = 6.9e10 logits would not fit; the gather form needs N * k^2.
    N, k = 4096, 4
    q = torch.randn(1, N, 1, 8, generator=gen)
    idx = selection.previous_layer_topk(q[:, :256], q[:, :256], k)  # any causal selection will do
    idx = torch.cat([idx, (torch.arange(256, N)[None, :, None, None] - torch.arange(k)).clone()], dim=1)
    out = topk_two_simplicial_attention(q, q, q, q, q, idx)
    assert out.shape == (1, N, 1, 8) and torch.isfinite(out).all()


def test_value_errors(gen):
    B, N, H, D = 1, 5, 2, 4
    q = rand(gen, B, N, H, D)
    kv = [rand(gen, B, N, 1, D) for _ in range(4)]
    good = selection.topk_indices(rand(gen, B, N, N), 2)
    with pytest.raises(ValueError, match="k >= 1"):
        topk_two_simplicial_attention(q, *kv, good[..., :0])
    with pytest.raises(ValueError, match="outside"):
        topk_two_simplicial_attention(q, *kv, torch.full_like(good, N))
    with pytest.raises(ValueError, match="outside"):
        topk_two_simplicial_attention(q, *kv, torch.full_like(good, -2))
    bad = good.clone()
    bad[0, 1, 0, 0] = 3  # query 1 may not see key 3
    with pytest.raises(ValueError, match="future"):
        topk_two_simplicial_attention(q, *kv, bad)
    dup = good.clone()
    dup[0, 4, 0] = torch.tensor([2, 2])
    with pytest.raises(ValueError, match="twice"):
        topk_two_simplicial_attention(q, *kv, dup)
    with pytest.raises(ValueError, match="seq"):
        topk_two_simplicial_attention(q, *kv, good[:, :3])
    with pytest.raises(ValueError, match="batch"):
        topk_two_simplicial_attention(q, *kv, good.expand(3, -1, -1, -1))
    with pytest.raises(ValueError, match="heads"):
        topk_two_simplicial_attention(q, *kv, good.expand(-1, -1, 3, -1))
    with pytest.raises(ValueError, match="integer"):
        topk_two_simplicial_attention(q, *kv, good.double())
    with pytest.raises(ValueError, match="idx2"):
        topk_two_simplicial_attention(q, *kv, good, idx2=good[:, :2])
    with pytest.raises(ValueError, match="k1"):
        topk_two_simplicial_attention(q, rand(gen, B, N + 1, 1, D), *kv[1:], good)
    with pytest.raises(ValueError, match="heads"):
        topk_two_simplicial_attention(rand(gen, B, N, 3, D), *[rand(gen, B, N, 2, D)] * 4, good)
    with pytest.raises(ValueError, match="head_dim"):
        topk_two_simplicial_attention(q, *kv[:3], rand(gen, B, N, 1, D + 1), good)
