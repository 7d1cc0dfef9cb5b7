"""Face-normalised 2-simplicial attention and value reducers against explicit loops (float64)."""

import itertools
import math

import pytest
import torch

from simplex_lib.ops.n_simplicial import n_simplicial_attention
from simplex_lib.ops.two_simplicial import reference as ref
from simplex_lib.ops.two_simplicial import variants as var
from simplex_lib.testing import assert_close

TOL = 1e-10

f64 = torch.float64


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=f64)


def visible(i, j, w, causal):
    if not causal:
        return True
    return j <= i and (w is None or j > i - w)


def brute_face_weights(q, k1, k2, face="ij", w1=None, w2=None, causal=True, scale=None):
    """Loops: for each query, each visible edge gets 1/#edges, split by a softmax over its face."""
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    P = torch.zeros(B, Hq, N, N, N, dtype=f64)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        hk = h // g
        js = [j for j in range(N) if visible(i, j, w1, causal)]
        ks = [k for k in range(N) if visible(i, k, w2, causal)]
        outer, inner = (js, ks) if face == "ij" else (ks, js)
        for a in outer:
            logit = []
            for c in inner:
                j, k = (a, c) if face == "ij" else (c, a)
                logit.append(s * float((q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum()))
            m = max(logit)
            e = [math.exp(x - m) for x in logit]
            for c, ec in zip(inner, e):
                j, k = (a, c) if face == "ij" else (c, a)
                P[b, h, i, j, k] = ec / sum(e) / len(outer)
    return P


def brute_reduce(P, v1, v2, reducer):
    B, Hq, N = P.shape[:3]
    g = Hq // v1.shape[2]
    out = torch.zeros(B, N, Hq, v1.shape[3], dtype=f64)
    for b, h, i, j, k in itertools.product(range(B), range(Hq), range(N), range(N), range(N)):
        if P[b, h, i, j, k] == 0:
            continue  # a pair outside the query's faces contributes nothing (not 0 * value)
        f = v1[b, j, h // g] * v2[b, k, h // g] if reducer == "and" else v1[b, j, h // g] + v2[b, k, h // g]
        out[b, i, h] += P[b, h, i, j, k] * f
    return out


CASES = [  # (B, N, Hq, Hkv, D, w1, w2, causal)
    (1, 1, 1, 1, 3, None, None, True),      # length 1
    (2, 5, 2, 1, 4, None, None, True),      # GQA 2
    (1, 6, 4, 2, 3, 3, 2, True),            # windows
    (1, 4, 3, 1, 2, 9, 1, True),            # window longer than the sequence, GQA 3
    (1, 4, 2, 2, 5, None, None, False),     # no mask
]


@pytest.mark.parametrize("face", ["ij", "ik"])
@pytest.mark.parametrize("case", CASES)
def test_face_weights_match_loops(gen, case, face):
    B, N, Hq, Hkv, D, w1, w2, causal = case
    q, k1, k2 = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    got = var.face_normalised_weights(q, k1, k2, face=face, w1=w1, w2=w2, causal=causal)
    want = brute_face_weights(q, k1, k2, face, w1, w2, causal)
    assert_close("P", want, got, TOL)
    assert_close("sum", torch.ones(B, Hq, N, dtype=f64), got.sum((-1, -2)), TOL)


@pytest.mark.parametrize("face", ["ij", "ik"])
@pytest.mark.parametrize("case", CASES)
def test_marginal_edges_recover_the_reference(gen, case, face):
    B, N, Hq, Hkv, D, w1, w2, causal = case
    q, k1, k2 = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    got = var.face_normalised_weights(q, k1, k2, face=face, edges="marginal", w1=w1, w2=w2,
                                      causal=causal, scale=0.7)
    want = ref.two_simplicial_weights(q, k1, k2, w1=w1, w2=w2, causal=causal, scale=0.7)
    assert_close("out", want, got, TOL)


def test_each_face_carries_an_equal_share(gen):
    N = 6
    q, k1, k2 = (rand(gen, 1, N, 1, 4) for _ in range(3))
    p = var.face_normalised_weights(q, k1, k2, w1=3)
    for i in range(N):
        js = [j for j in range(N) if i - 3 < j <= i]
        share = p[0, 0, i].sum(-1)
        for j in range(N):
            assert math.isclose(float(share[j]), 1 / len(js) if j in js else 0.0, abs_tol=1e-12)


@pytest.mark.parametrize("reducer", ["and", "or"])
@pytest.mark.parametrize("case", CASES)
def test_face_attention_matches_loops(gen, case, reducer):
    B, N, Hq, Hkv, D, w1, w2, causal = case
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))
    got = var.face_normalised_attention(q, k1, k2, v1, v2, face="ik", w1=w1, w2=w2,
                                        causal=causal, reducer=reducer)
    want = brute_reduce(brute_face_weights(q, k1, k2, "ik", w1, w2, causal), v1, v2, reducer)
    assert_close("out", want, got, TOL)


@pytest.mark.parametrize("case", CASES)
def test_reduce_values_against_loops_and_reference(gen, case):
    B, N, Hq, Hkv, D, w1, w2, causal = case
    q = rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, B, N, Hkv, D) for _ in range(4))
    p = ref.two_simplicial_weights(q, k1, k2, w1=w1, w2=w2, causal=causal)
    for reducer in ("and", "or"):
        assert_close(reducer, brute_reduce(p, v1, v2, reducer), ref.reduce_values(p, v1, v2, reducer=reducer), TOL)
    assert_close("and", ref.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2, causal=causal),
                 ref.reduce_values(p, v1, v2), TOL)
    if w1 is None and w2 is None:
        assert_close("or", n_simplicial_attention(q, [k1, k2], [v1, v2], causal=causal, reducer="or"),
                     ref.reduce_values(p, v1, v2, reducer="or"), TOL)


def test_errors(gen):
    x = rand(gen, 1, 4, 2, 3)
    with pytest.raises(ValueError, match="face"):
        var.face_normalised_weights(x, x, x, face="jk")
    with pytest.raises(ValueError, match="edges"):
        var.face_normalised_weights(x, x, x, edges="max")
    with pytest.raises(ValueError, match="w1"):
        var.face_normalised_weights(x, x, x, w1=0)
    with pytest.raises(ValueError, match="k2"):
        var.face_normalised_weights(x, x, x[:, :3])
    with pytest.raises(ValueError, match="v1"):
        var.face_normalised_attention(x, x, x, x[:, :3], x)
    p = ref.two_simplicial_weights(x, x, x)
    with pytest.raises(ValueError, match="reducer"):
        ref.reduce_values(p, x, x, reducer="xor")
    with pytest.raises(ValueError, match="weights"):
        ref.reduce_values(p[0], x, x)
    with pytest.raises(ValueError, match="weights"):
        ref.reduce_values(p, x[:, :3], x[:, :3])
    with pytest.raises(ValueError, match="heads"):
        ref.reduce_values(p, rand(gen, 1, 4, 3, 3), rand(gen, 1, 4, 3, 3))
    with pytest.raises(ValueError, match="v2"):
        ref.reduce_values(p, x, x[..., 0])


@pytest.mark.parametrize("which", ["k1", "v2"])
def test_face_attention_nan_stays_local(gen, which):
    N, p = 6, 4
    x = {"q": rand(gen, 1, N, 2, 3), **{n: rand(gen, 1, N, 1, 3) for n in ("k1", "k2", "v1", "v2")}}
    x[which][0, p] = float("nan")
    for edges in ("uniform", "marginal"):
        out = var.face_normalised_attention(*x.values(), edges=edges, w1=3, w2=2)
        assert torch.isfinite(out[0, :p]).all()
        assert torch.isnan(out[0, p]).all()


def test_face_errors_dtype_scale_causal(gen):
    x = rand(gen, 1, 4, 2, 3)
    with pytest.raises(ValueError, match="k2 has dtype"):
        var.face_normalised_weights(x, x, x.float())
    with pytest.raises(ValueError, match="scale"):
        var.face_normalised_attention(x, x, x, x, x, scale=float("nan"))
    with pytest.raises(ValueError, match="causal"):
        var.face_normalised_weights(x, x, x, causal="no")
    with pytest.raises(ValueError, match="mask"):
        ref.reduce_values(ref.two_simplicial_weights(x, x, x), x, x, mask=torch.ones(4, 4))


@pytest.mark.parametrize("B,N", [(0, 3), (2, 0)])
def test_face_empty(B, N):
    x = torch.randn(B, N, 2, 3, dtype=f64)
    assert var.face_normalised_attention(x, x, x, x, x).shape == (B, N, 2, 3)
    assert var.face_normalised_weights(x, x, x, face="ik").shape == (B, 2, N, N, N)
