"""The reference against independent brute force: explicit loops over queries and key tuples."""

import itertools
import math

import pytest
import torch

from simplex_lib import reference as ref

f64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=f64)


def brute_dot(q, k, v, causal=True, scale=None):
    B, N, Hq, D = q.shape
    g = Hq // k.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        js = [j for j in range(N) if (j <= i or not causal)]
        a = torch.stack([s * (q[b, i, h] * k[b, j, h // g]).sum() for j in js])
        p = torch.exp(a - a.max())
        p = p / p.sum()
        out[b, i, h] = sum(p[t] * v[b, j, h // g] for t, j in enumerate(js))
    return out


def visible(i, j, w, causal):
    if not causal:
        return True
    return j <= i and (w is None or j > i - w)


def brute_two(q, k1, k2, v1, v2, w1=None, w2=None, causal=True, scale=None):
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        hk = h // g
        pairs = [(j, k) for j in range(N) for k in range(N)
                 if visible(i, j, w1, causal) and visible(i, k, w2, causal)]
        a = torch.stack([s * (q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum() for j, k in pairs])
        p = torch.exp(a - a.max())
        p = p / p.sum()
        out[b, i, h] = sum(p[t] * v1[b, j, hk] * v2[b, k, hk] for t, (j, k) in enumerate(pairs))
    return out


def brute_n(q, keys, values, causal=True, reducer="and"):
    B, N, Hq, D = q.shape
    g = Hq // keys[0].shape[2]
    s = 1 / math.sqrt(D)
    n = len(keys)
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        hk = h // g
        tuples = [t for t in itertools.product(range(N), repeat=n) if not causal or max(t) <= i]
        logits = []
        for t in tuples:
            prod = q[b, i, h].clone()
            for m, j in enumerate(t):
                prod = prod * keys[m][b, j, hk]
            logits.append(s * prod.sum())
        a = torch.stack(logits)
        p = torch.exp(a - a.max())
        p = p / p.sum()
        for w, t in zip(p, tuples):
            if reducer == "and":
                val = torch.ones(D, dtype=q.dtype)
                for m, j in enumerate(t):
                    val = val * values[m][b, j, hk]
            else:
                val = sum(values[m][b, j, hk] for m, j in enumerate(t))
            out[b, i, h] += w * val
    return out


SHAPES = [  # (B, N, Hq, Hkv, D)
    (1, 1, 1, 1, 4),
    (2, 5, 2, 1, 3),
    (1, 7, 4, 2, 5),
    (1, 6, 4, 4, 2),
    (2, 3, 4, 1, 6),
]


@pytest.mark.parametrize("B,N,Hq,Hkv,D", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_dot_attention_matches_loops(gen, B, N, Hq, Hkv, D, causal):
    q, k, v = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    torch.testing.assert_close(ref.dot_attention(q, k, v, causal=causal), brute_dot(q, k, v, causal))


def test_dot_attention_scale(gen):
    q, k, v = (rand(gen, 1, 4, 2, 4) for _ in range(3))
    torch.testing.assert_close(ref.dot_attention(q, k, v, scale=0.7), brute_dot(q, k, v, scale=0.7))


@pytest.mark.parametrize("B,N,Hq,Hkv,D", SHAPES)
@pytest.mark.parametrize("w1,w2", [(None, None), (1, 1), (2, 3), (3, None), (50, 2), (None, 100)])
def test_two_simplicial_matches_loops(gen, B, N, Hq, Hkv, D, w1, w2):
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2)
    torch.testing.assert_close(got, brute_two(q, k1, k2, v1, v2, w1, w2))


@pytest.mark.parametrize("N", [1, 4])
def test_two_simplicial_non_causal(gen, N):
    q = rand(gen, 1, N, 2, 3)
    k1, k2, v1, v2 = (rand(gen, 1, N, 1, 3) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, causal=False, scale=0.3)
    torch.testing.assert_close(got, brute_two(q, k1, k2, v1, v2, causal=False, scale=0.3))


def test_windowed_path_is_chunked_and_exact(gen, monkeypatch):
    # Force many small chunks: the chunked path must agree with the dense masked softmax.
    monkeypatch.setattr(ref, "_CHUNK_ELEMENTS", 7)
    q = rand(gen, 1, 13, 2, 4)
    k1, k2, v1, v2 = (rand(gen, 1, 13, 1, 4) for _ in range(4))
    got = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=5, w2=3)
    mask = ref.two_simplicial_mask(13, w1=5, w2=3)
    torch.testing.assert_close(got, ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask))


def test_windowed_long_sequence_runs_on_cpu():
    # N = 4096 with 64x16 windows must not materialise N^3 (that would be 5e10 floats).
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4096, 1, 16, generator=g)
    k1, k2, v1, v2 = (torch.randn(1, 4096, 1, 16, generator=g) for _ in range(4))
    out = ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=64, w2=16)
    assert out.shape == q.shape and torch.isfinite(out).all()
    # Spot-check a late query against loops restricted to its window.
    i = 4000
    sl = slice(i - 63, i + 1)
    qq = q[:, i : i + 1]
    a = torch.einsum("d,jd,kd->jk", qq[0, 0, 0], k1[0, sl, 0], k2[0, i - 15 : i + 1, 0]) / 4.0
    p = torch.softmax(a.flatten(), 0).view_as(a)
    expect = torch.einsum("jk,jd,kd->d", p, v1[0, sl, 0], v2[0, i - 15 : i + 1, 0])
    torch.testing.assert_close(out[0, i, 0], expect, rtol=1e-4, atol=1e-5)


def test_weights_are_a_distribution_with_exact_zeros(gen):
    q = rand(gen, 2, 6, 2, 3)
    k1, k2 = rand(gen, 2, 6, 1, 3), rand(gen, 2, 6, 1, 3)
    p = ref.two_simplicial_weights(q, k1, k2, w1=2, w2=4)
    torch.testing.assert_close(p.sum((-1, -2)), torch.ones(2, 2, 6, dtype=f64))
    mask = ref.two_simplicial_mask(6, w1=2, w2=4)
    assert (p[..., ~mask] == 0).all()
    assert (p[..., mask] > 0).all()


def test_mask_rule():
    m = ref.two_simplicial_mask(9, w1=3, w2=5)
    for i, j, k in itertools.product(range(9), repeat=3):
        assert bool(m[i, j, k]) == (i - 3 < j <= i and i - 5 < k <= i)


def test_masked_form_handles_empty_rows(gen):
    q = rand(gen, 1, 4, 1, 3)
    k1, k2, v1, v2 = (rand(gen, 1, 4, 1, 3) for _ in range(4))
    mask = ref.two_simplicial_mask(4).clone()
    mask[2] = False
    q.requires_grad_(True)
    out = ref.two_simplicial_attention_masked(q, k1, k2, v1, v2, mask)
    assert (out[0, 2] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("N,Hq,Hkv", [(1, 1, 1), (4, 2, 1), (3, 4, 2)])
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("reducer", ["and", "or"])
def test_n_simplicial_matches_loops(gen, N, Hq, Hkv, n, reducer):
    D = 3
    q = rand(gen, 1, N, Hq, D)
    keys = [rand(gen, 1, N, Hkv, D) for _ in range(n)]
    values = [rand(gen, 1, N, Hkv, D) for _ in range(n)]
    got = ref.n_simplicial_attention(q, keys, values, reducer=reducer)
    torch.testing.assert_close(got, brute_n(q, keys, values, reducer=reducer))


def test_n_simplicial_non_causal(gen):
    q = rand(gen, 1, 3, 1, 2)
    keys = [rand(gen, 1, 3, 1, 2) for _ in range(2)]
    values = [rand(gen, 1, 3, 1, 2) for _ in range(2)]
    torch.testing.assert_close(
        ref.n_simplicial_attention(q, keys, values, causal=False),
        brute_n(q, keys, values, causal=False),
    )


def test_n_equals_one_and_two_identities(gen):
    q = rand(gen, 2, 5, 4, 6)
    k1, k2, v1, v2 = (rand(gen, 2, 5, 2, 6) for _ in range(4))
    torch.testing.assert_close(ref.n_simplicial_attention(q, [k1], [v1]), ref.dot_attention(q, k1, v1))
    torch.testing.assert_close(
        ref.n_simplicial_attention(q, [k1, k2], [v1, v2]),
        ref.two_simplicial_attention(q, k1, k2, v1, v2),
    )


def test_gradcheck_references():
    g = torch.Generator().manual_seed(1)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=f64, requires_grad=True)  # noqa: E731
    q = mk(1, 4, 2, 3)
    k1, k2, v1, v2 = (mk(1, 4, 1, 3) for _ in range(4))
    assert torch.autograd.gradcheck(lambda *a: ref.dot_attention(*a[:3]), (q, k1, v1))
    assert torch.autograd.gradcheck(lambda *a: ref.two_simplicial_attention(*a), (q, k1, k2, v1, v2))
    assert torch.autograd.gradcheck(
        lambda *a: ref.two_simplicial_attention(*a, w1=2, w2=3), (q, k1, k2, v1, v2)
    )
    assert torch.autograd.gradcheck(
        lambda *a: ref.n_simplicial_attention(a[0], a[1:3], a[3:], reducer="or"), (q, k1, k2, v1, v2)
    )


def test_dtype_preserved(gen):
    q = torch.randn(1, 5, 2, 4, generator=gen)
    kv = [torch.randn(1, 5, 2, 4, generator=gen) for _ in range(4)]
    assert ref.two_simplicial_attention(q, *kv, w1=2, w2=2).dtype == torch.float32


# ---- errors -------------------------------------------------------------------------------


def _inputs(Hq=2, Hkv=1, N=4, D=4):
    return torch.randn(1, N, Hq, D), [torch.randn(1, N, Hkv, D) for _ in range(4)]


@pytest.mark.parametrize("w", [0, -3, 1.5, True])
def test_bad_windows(w):
    q, kv = _inputs()
    with pytest.raises(ValueError, match="w1"):
        ref.two_simplicial_attention(q, *kv, w1=w)
    with pytest.raises(ValueError, match="w2"):
        ref.two_simplicial_attention(q, *kv, w2=w)


def test_windows_need_causal():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="causal"):
        ref.two_simplicial_attention(q, *kv, w1=2, causal=False)


def test_gqa_ratio_must_divide():
    q, kv = _inputs(Hq=3, Hkv=2)
    with pytest.raises(ValueError, match="multiple"):
        ref.two_simplicial_attention(q, *kv)
    with pytest.raises(ValueError, match="multiple"):
        ref.dot_attention(q, kv[0], kv[1])


def test_mismatched_shapes():
    q, kv = _inputs()
    bad = torch.randn(1, 5, 1, 4)
    with pytest.raises(ValueError, match="k2 has seq"):
        ref.two_simplicial_attention(q, kv[0], bad, kv[2], kv[3])
    with pytest.raises(ValueError, match="head_dim"):
        ref.two_simplicial_attention(q, kv[0], kv[1], torch.randn(1, 4, 1, 3), kv[3])
    with pytest.raises(ValueError, match="heads"):
        ref.two_simplicial_attention(q, kv[0], kv[1], kv[2], torch.randn(1, 4, 2, 4))
    with pytest.raises(ValueError, match=r"\[batch, seq, heads, head_dim\]"):
        ref.dot_attention(torch.randn(4, 2, 4), kv[0], kv[1])


def test_n_simplicial_errors():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="keys"):
        ref.n_simplicial_attention(q, [], [])
    with pytest.raises(ValueError, match="values"):
        ref.n_simplicial_attention(q, kv[:2], kv[:1])
    with pytest.raises(ValueError, match="reducer"):
        ref.n_simplicial_attention(q, kv[:1], kv[1:2], reducer="xor")


def test_masked_form_errors():
    q, kv = _inputs()
    with pytest.raises(ValueError, match="mask"):
        ref.two_simplicial_attention_masked(q, *kv, torch.ones(4, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        ref.two_simplicial_attention_masked(q, *kv, torch.ones(3, 3, 3, dtype=torch.bool))
