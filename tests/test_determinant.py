"""Determinant logits, Sarrus form, determinant attention and rotary encodings."""

import itertools

import pytest
import torch

from simplex_lib.determinant import (
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

F64 = torch.float64


def test_random_so3_is_a_rotation(gen):
    for _ in range(20):
        R = random_so3(gen)
        torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=F64))
        torch.testing.assert_close(torch.linalg.det(R), torch.tensor(1.0, dtype=F64))


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=F64)


def brute_det_logits(q, k1, k2):
    """torch.linalg.det on stacked 3x3 chunks, head by head (independent of the einsums)."""
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    out = torch.zeros(B, Hq, N, N, N, dtype=q.dtype)
    for b, h, i, j, k in itertools.product(range(B), range(Hq), range(N), range(N), range(N)):
        for l in range(D // 3):
            sl = slice(3 * l, 3 * l + 3)
            m = torch.stack([q[b, i, h, sl], k1[b, j, h // g, sl], k2[b, k, h // g, sl]])
            out[b, h, i, j, k] += torch.linalg.det(m)
    return out


@pytest.mark.parametrize("B,N,Hq,Hkv,D", [(1, 1, 1, 1, 3), (2, 3, 2, 1, 6), (1, 4, 4, 2, 9), (1, 3, 4, 1, 3)])
def test_det_logits_vs_linalg_det(gen, B, N, Hq, Hkv, D):
    q, k1, k2 = rand(gen, B, N, Hq, D), rand(gen, B, N, Hkv, D), rand(gen, B, N, Hkv, D)
    want = brute_det_logits(q, k1, k2)
    torch.testing.assert_close(det_logits(q, k1, k2), want)
    torch.testing.assert_close(det_logits_sarrus(q, k1, k2), want)


def test_levi_civita_is_det(gen):
    m = rand(gen, 3, 3)
    got = torch.einsum("abc,a,b,c->", levi_civita(), m[0], m[1], m[2])
    torch.testing.assert_close(got, torch.linalg.det(m))


def test_sarrus_equals_det_large(gen):
    q, k1, k2 = (rand(gen, 2, 7, 3, 12) for _ in range(3))
    torch.testing.assert_close(det_logits_sarrus(q, k1, k2), det_logits(q, k1, k2))


def test_det_invariant_under_shared_rotation_per_chunk(gen):
    q, k1, k2 = (rand(gen, 1, 5, 2, 9) for _ in range(3))
    Rs = torch.stack([random_so3(gen) for _ in range(3)])  # one rotation per chunk

    def rot(t):
        c = t.reshape(*t.shape[:-1], 3, 3)
        return torch.einsum("lab,znhlb->znhla", Rs, c).flatten(-2)

    torch.testing.assert_close(det_logits(rot(q), rot(k1), rot(k2)), det_logits(q, k1, k2))


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
    torch.testing.assert_close(G.T, -G)
    pos = torch.tensor([0, 1, 5, -3])
    R = so3_rotations(pos, 6, base=100.0, axis=(0.3, -1.0, 2.0))
    theta = 100.0 ** (-torch.arange(2, dtype=F64) / 2)
    for a, t in enumerate(pos.tolist()):
        for l in range(2):
            torch.testing.assert_close(R[a, l], torch.linalg.matrix_exp(t * theta[l] * G))
            torch.testing.assert_close(R[a, l].T @ R[a, l], torch.eye(3, dtype=F64))
            torch.testing.assert_close(torch.linalg.det(R[a, l]), torch.tensor(1.0, dtype=F64))


@pytest.mark.parametrize("shift", [1, 7, -4])
def test_rope_so3_relative_positions(gen, shift):
    N = 5
    q, k1, k2 = (rand(gen, 1, N, 2, 6) for _ in range(3))
    pos = torch.arange(N)

    def logits(p):
        return det_logits(rope_so3(q, p), rope_so3(k1, p), rope_so3(k2, p))

    # Shifting every position changes nothing ...
    torch.testing.assert_close(logits(pos + shift), logits(pos))
    # ... and each entry equals the unrotated query against keys rotated by the offsets.
    A = logits(pos)
    R = so3_rotations(torch.arange(-N, N), 6)  # R[t + N] = R(t)
    for i, j, k in itertools.product(range(N), repeat=3):
        a = q[0, i].reshape(2, 2, 3)
        b = torch.einsum("lab,hlb->hla", R[j - i + N], k1[0, j].reshape(2, 2, 3))
        c = torch.einsum("lab,hlb->hla", R[k - i + N], k2[0, k].reshape(2, 2, 3))
        want = torch.linalg.det(torch.stack([a, b, c], -2)).sum(-1)
        torch.testing.assert_close(A[0, :, i, j, k], want)


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

    torch.testing.assert_close(dots(pos + 11), dots(pos))
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
            for l in range(D // 3):
                sl = slice(3 * l, 3 * l + 3)
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
    torch.testing.assert_close(got, brute_attention(q, k1, k2, v1, v2, w1, w2, causal, 0.7))


def test_determinant_attention_default_scale(gen):
    q, k1, k2, v1, v2 = (rand(gen, 1, 3, 1, 3) for _ in range(5))
    got = determinant_attention(q, k1, k2, v1, v2)
    torch.testing.assert_close(got, brute_attention(q, k1, k2, v1, v2, None, None, True, 3 ** -0.5))


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
