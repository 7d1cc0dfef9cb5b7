"""Determinant logits, Sarrus form, determinant attention and rotary encodings."""

import itertools

import pytest
import torch

from simplex_lib.ops.determinant import (
    det_logits,
    det_logits_sarrus,
    determinant_attention,
    levi_civita,
    random_so3,
    rope,
    rope_rotations,
    rope_so3,
    so3_generator,
    so3_rotations,
)
from simplex_lib.testing import assert_close

F64 = torch.float64
TOL = 1e-10


def test_random_so3_is_a_rotation(gen):
    for _ in range(20):
        R = random_so3(gen)
        assert_close("R R^T", torch.eye(3, dtype=F64), R @ R.T, TOL)
        assert_close("det", torch.tensor(1.0, dtype=F64), torch.linalg.det(R), TOL)


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


def brute_det_logits(q, k1, k2):
    """torch.linalg.det on stacked 3x3 chunks, head by head (independent of the einsums)."""
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    out = torch.zeros(B, Hq, N, N, N, dtype=q.dtype)
    for b, h, i, j, k in itertools.product(range(B), range(Hq), range(N), range(N), range(N)):
        for c in range(D // 3):
            sl = slice(3 * c, 3 * c + 3)
            m = torch.stack([q[b, i, h, sl], k1[b, j, h // g, sl], k2[b, k, h // g, sl]])
            out[b, h, i, j, k] += torch.linalg.det(m)
    return out


@pytest.mark.parametrize("B,N,Hq,Hkv,D", [(1, 1, 1, 1, 3), (2, 3, 2, 1, 6), (1, 4, 4, 2, 9), (1, 3, 4, 1, 3)])
def test_det_logits_vs_linalg_det(gen, B, N, Hq, Hkv, D):
    q, k1, k2 = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    want = brute_det_logits(q, k1, k2)
    assert_close("det_logits", want, det_logits(q, k1, k2), TOL)
    assert_close("sarrus", want, det_logits_sarrus(q, k1, k2), TOL)


def test_levi_civita_is_det(gen):
    m = rand(gen, 3, 3)
    got = torch.einsum("abc,a,b,c->", levi_civita(), m[0], m[1], m[2])
    assert_close("got", torch.linalg.det(m), got, TOL)


def test_sarrus_equals_det_large(gen):
    q, k1, k2 = (rand(gen, 2, 7, 3, 12) for _ in range(3))
    assert_close("sarrus", det_logits(q, k1, k2), det_logits_sarrus(q, k1, k2), TOL)


def test_det_invariant_under_shared_rotation_per_chunk(gen):
    q, k1, k2 = (rand(gen, 1, 5, 2, 9) for _ in range(3))
    Rs = torch.stack([random_so3(gen) for _ in range(3)])  # one rotation per chunk

    def rot(t):
        c = t.reshape(*t.shape[:-1], 3, 3)
        return torch.einsum("lab,znhlb->znhla", Rs, c).flatten(-2)

    assert_close("det_logits", det_logits(q, k1, k2), det_logits(rot(q), rot(k1), rot(k2)), TOL)


def test_plain_trilinear_not_rotation_invariant(gen):
    q, k1, k2 = (rand(gen, 1, 5, 1, 3) for _ in range(3))
    R = random_so3(gen)

    def tri(a, b, c):
        return torch.einsum("zihd,zjhd,zkhd->zhijk", a, b, c)

    before = tri(q, k1, k2)
    after = tri(q @ R.T, k1 @ R.T, k2 @ R.T)
    rel = float((after - before).norm() / before.norm())
    assert rel > 1e-2, rel  # measured: order one for a random rotation


def test_so3_generator_and_rotations(gen):
    G = so3_generator((0.3, -1.0, 2.0))
    assert_close("G^T", -G, G.T, TOL)
    pos = torch.tensor([0, 1, 5, -3])
    R = so3_rotations(pos, 6, base=100.0, axis=(0.3, -1.0, 2.0))
    theta = 100.0 ** (-torch.arange(2, dtype=F64) / 2)
    for a, t in enumerate(pos.tolist()):
        for c in range(2):
            assert_close("R", torch.linalg.matrix_exp(t * theta[c] * G), R[a, c], TOL)
            assert_close("R^T R", torch.eye(3, dtype=F64), R[a, c].T @ R[a, c], TOL)
            assert_close("det", torch.tensor(1.0, dtype=F64), torch.linalg.det(R[a, c]), TOL)


@pytest.mark.parametrize("shift", [1, 7, -4])
def test_rope_so3_relative_positions(gen, shift):
    N = 5
    q, k1, k2 = (rand(gen, 1, N, 2, 6) for _ in range(3))
    pos = torch.arange(N)

    def logits(p):
        return det_logits(rope_so3(q, p), rope_so3(k1, p), rope_so3(k2, p))

    # Shifting every position changes nothing ...
    assert_close("logits", logits(pos), logits(pos + shift), TOL)
    # ... and each entry equals the unrotated query against keys rotated by the offsets.
    A = logits(pos)
    R = so3_rotations(torch.arange(-N, N), 6)  # R[t + N] = R(t)
    for i, j, k in itertools.product(range(N), repeat=3):
        a = q[0, i].reshape(2, 2, 3)
        b = torch.einsum("lab,hlb->hla", R[j - i + N], k1[0, j].reshape(2, 2, 3))
        c = torch.einsum("lab,hlb->hla", R[k - i + N], k2[0, k].reshape(2, 2, 3))
        want = torch.linalg.det(torch.stack([a, b, c], -2)).sum(-1)
        assert_close("A", want, A[0, :, i, j, k], TOL)


def test_plain_trilinear_with_rope_so3_is_not_relative(gen):
    N = 4
    q, k1, k2 = (rand(gen, 1, N, 1, 6) for _ in range(3))
    pos = torch.arange(N)

    def tri(p):
        return torch.einsum("zihd,zjhd,zkhd->zhijk", rope_so3(q, p), rope_so3(k1, p), rope_so3(k2, p))

    assert not torch.allclose(tri(pos + 3), tri(pos), atol=1e-6)


def test_rope_dot_relative(gen):
    N = 6
    q, k = rand(gen, 1, N, 2, 8), rand(gen, 1, N, 2, 8)
    pos = torch.arange(N)

    def dots(p):
        return torch.einsum("zihd,zjhd->zhij", rope(q, p), rope(k, p))

    assert_close("dots", dots(pos), dots(pos + 11), TOL)
    R = rope_rotations(torch.tensor([3]), 8)[0]
    assert torch.allclose(R.transpose(-1, -2) @ R, torch.eye(2, dtype=F64).expand(4, 2, 2))


def brute_attention(q, k1, k2, v1, v2, w1, w2, causal, scale):
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    out = torch.zeros_like(q)
    for b, h, i in itertools.product(range(B), range(Hq), range(N)):
        pairs = [
            (j, k) for j in range(N) for k in range(N)
            if not causal or (j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2))
        ]
        logits = []
        for j, k in pairs:
            s = 0.0
            for c in range(D // 3):
                sl = slice(3 * c, 3 * c + 3)
                s = s + torch.linalg.det(torch.stack([q[b, i, h, sl], k1[b, j, h // g, sl], k2[b, k, h // g, sl]]))
            logits.append(s * scale)
        p = torch.softmax(torch.stack(logits), 0)
        for w, (j, k) in zip(p, pairs):
            out[b, i, h] += w * v1[b, j, h // g] * v2[b, k, h // g]
    return out


@pytest.mark.parametrize(
    "N,Hq,Hkv,w1,w2,causal",
    [(1, 1, 1, None, None, True), (5, 2, 1, 3, 2, True), (4, 4, 2, 9, None, True),
     (3, 4, 1, None, None, False), (6, 2, 2, 1, 4, True)],
)
def test_determinant_attention_vs_loop(gen, N, Hq, Hkv, w1, w2, causal):
    D = 6
    q = rand(gen, 1, N, Hq, D)
    k1, k2, v1, v2 = (rand(gen, 1, N, Hkv, D) for _ in range(4))
    got = determinant_attention(q, k1, k2, v1, v2, w1=w1, w2=w2, causal=causal, scale=0.7)
    assert_close("got", brute_attention(q, k1, k2, v1, v2, w1, w2, causal, 0.7), got, TOL)


def test_determinant_attention_default_scale(gen):
    q, k1, k2, v1, v2 = (rand(gen, 1, 3, 1, 3) for _ in range(5))
    got = determinant_attention(q, k1, k2, v1, v2)
    assert_close("got", brute_attention(q, k1, k2, v1, v2, None, None, True, 3 ** -0.5), got, TOL)


def test_gradcheck(gen):
    args = [rand(gen, 1, 3, 1, 3).requires_grad_() for _ in range(5)]
    assert torch.autograd.gradcheck(lambda *a: determinant_attention(*a, w1=2), args)
    assert torch.autograd.gradcheck(lambda a, b, c: det_logits_sarrus(a, b, c), args[:3])


def test_errors(gen):
    x6 = rand(gen, 1, 3, 2, 6)
    x4 = rand(gen, 1, 3, 2, 4)
    with pytest.raises(ValueError, match="head_dim"):
        det_logits(x4, x4, x4)
    with pytest.raises(ValueError, match="head_dim"):
        det_logits_sarrus(x4, x4, x4)
    with pytest.raises(ValueError, match="head_dim"):
        determinant_attention(x4, x4, x4, x4, x4)
    with pytest.raises(ValueError, match="head_dim"):
        rope_so3(x4)
    with pytest.raises(ValueError, match="head_dim"):
        so3_rotations(torch.arange(3), 4)
    with pytest.raises(ValueError, match="head_dim"):
        rope(rand(gen, 1, 3, 1, 3))
    with pytest.raises(ValueError, match="head_dim"):
        rope_rotations(torch.arange(3), 5)
    with pytest.raises(ValueError, match="k1"):
        det_logits(x6, rand(gen, 1, 4, 2, 6), x6)
    with pytest.raises(ValueError, match="heads"):
        det_logits(rand(gen, 1, 3, 3, 6), x6, x6)
    with pytest.raises(ValueError, match="q"):
        det_logits(torch.ones(1, 3, 2, 6, dtype=torch.long), x6, x6)
    with pytest.raises(ValueError, match="w1"):
        determinant_attention(x6, x6, x6, x6, x6, w1=0)
    with pytest.raises(ValueError, match="w2"):
        determinant_attention(x6, x6, x6, x6, x6, w2=1.5)
    with pytest.raises(ValueError, match="causal"):
        determinant_attention(x6, x6, x6, x6, x6, w1=2, causal=False)
    with pytest.raises(ValueError, match="axis"):
        so3_generator((0, 0, 0))
    with pytest.raises(ValueError, match="positions"):
        rope_so3(x6, torch.arange(4))
    with pytest.raises(ValueError, match="positions"):
        rope(x6, torch.arange(2))
    with pytest.raises(ValueError, match="base"):
        rope_so3(x6, base=-1.0)
    with pytest.raises(ValueError, match="x"):
        rope_so3(torch.ones(3, 6))


def test_determinant_attention_nan_stays_local(gen):
    N, p = 6, 2
    x = [rand(gen, 1, N, 2, 6)] + [rand(gen, 1, N, 1, 6) for _ in range(4)]
    for which in range(1, 5):
        bad = [t.clone() for t in x]
        bad[which][0, p] = float("nan")
        out = determinant_attention(*bad, w1=3, w2=2)
        for i in range(N):
            w = 3 if which in (1, 3) else 2
            assert torch.isnan(out[0, i]).all() == (i - w < p <= i), (which, i)


@pytest.mark.parametrize("B,N", [(0, 3), (2, 0)])
def test_determinant_empty(B, N):
    x = torch.randn(B, N, 2, 6, dtype=F64)
    assert determinant_attention(x, x, x, x, x).shape == (B, N, 2, 6)
    assert det_logits(x, x, x).shape == (B, 2, N, N, N)
    assert rope_so3(x).shape == rope(x).shape == x.shape


def test_more_errors(gen):
    x6 = rand(gen, 1, 3, 2, 6)
    with pytest.raises(ValueError, match="scale"):
        determinant_attention(x6, x6, x6, x6, x6, scale=float("nan"))
    with pytest.raises(ValueError, match="causal"):
        determinant_attention(x6, x6, x6, x6, x6, causal="no")
    with pytest.raises(ValueError, match="v2 has dtype"):
        determinant_attention(x6, x6, x6, x6, x6.float())
    with pytest.raises(ValueError, match="dtype"):
        random_so3(gen, dtype=torch.int64)
    with pytest.raises(ValueError, match="positions"):
        so3_rotations([[0, 1]], 6)
    with pytest.raises(ValueError, match="positions"):
        rope(x6, torch.tensor([0.0, float("nan"), 2.0]))
