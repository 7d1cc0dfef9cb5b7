"""The windowed PyTorch path (gathered windows and selections) against brute force and the reference."""

import math

import pytest
import torch

from simplex_lib.ops.two_simplicial import reference, windowed
from simplex_lib.masks import window_indices
from simplex_lib.ops.two_simplicial.windowed import (gathered_two_simplicial_attention,
                                                     windowed_two_simplicial_attention)
from simplex_lib.ops.topk.reference import topk_two_simplicial_attention
from simplex_lib.testing import assert_close, assert_gradients_close

f64 = torch.float64
TOL = 1e-10


def _rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=f64)


def _brute(q, k1, k2, v1, v2, allowed, scale=None):
    """Loops over (b, h, i): softmax over the allowed (j, k) pairs; allowed(b, i) -> (J, K)."""
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    s = 1 / math.sqrt(D) if scale is None else scale
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(Hq):
            hk = h // g
            for i in range(N):
                J, K = allowed(b, i)
                pairs = [(j, k) for j in J for k in K]
                if not pairs:
                    continue
                logit = torch.stack([(q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum() for j, k in pairs])
                p = torch.softmax(logit * s, 0)
                for w, (j, k) in zip(p, pairs):
                    out[b, i, h] += w * v1[b, j, hk] * v2[b, k, hk]
    return out


def _window(i, w):
    return list(range(max(0, i - w + 1), i + 1))


def test_window_indices():
    assert window_indices(4, 2).tolist() == [[-1, 0], [0, 1], [1, 2], [2, 3]]
    assert window_indices(1, 5).tolist() == [[0]]  # window longer than the sequence is clipped
    assert window_indices(0, 3).shape == (0, 0)
    with pytest.raises(ValueError, match="w"):
        window_indices(4, 0)
    with pytest.raises(ValueError, match="n"):
        window_indices(-1, 2)


SHAPES = [  # (B, N, Hq, Hkv, D, w1, w2): length 1, odd lengths, windows > N, GQA > 1
    (1, 1, 1, 1, 4, 3, 2), (2, 7, 4, 2, 5, 3, 2), (1, 6, 3, 1, 4, 10, 4), (1, 5, 2, 2, 3, 1, 1),
    (2, 9, 6, 2, 3, None, 4), (1, 4, 2, 1, 3, None, None),
]


@pytest.mark.parametrize("B,N,Hq,Hkv,D,w1,w2", SHAPES)
def test_windowed_matches_brute_force_and_reference(gen, B, N, Hq, Hkv, D, w1, w2):
    q = _rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (_rand(gen, B, N, Hkv, D) for _ in range(4))
    got = windowed_two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2)
    want = _brute(q, k1, k2, v1, v2, lambda b, i: (_window(i, w1 or N), _window(i, w2 or N)))
    assert_close("o", want, got, TOL)
    assert_close("ref", reference.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2), got, TOL)
    if w1 is not None and w2 is not None:
        idx = window_indices(N, w1), window_indices(N, w2)
        assert_close("gathered", want, gathered_two_simplicial_attention(q, k1, k2, v1, v2, *idx), TOL)


def test_chunked_path_is_exact(gen, monkeypatch):
    monkeypatch.setattr(windowed, "_CHUNK_ELEMENTS", 7)  # many one-query chunks
    q = _rand(gen, 1, 13, 2, 4)
    k1, k2, v1, v2 = (_rand(gen, 1, 13, 1, 4) for _ in range(4))
    got = windowed_two_simplicial_attention(q, k1, k2, v1, v2, w1=5, w2=3, scale=0.3)
    want = reference.two_simplicial_attention(q, k1, k2, v1, v2, w1=5, w2=3, scale=0.3)
    assert_close("o", want, got, TOL)


@pytest.mark.parametrize("B,N,Hq,Hkv,D,w1,w2", [(1, 1, 2, 1, 4, 2, 2), (2, 11, 4, 2, 8, 4, 3), (1, 9, 3, 3, 5, 12, 1)])
def test_gradients_float32_against_float64_reference(gen, B, N, Hq, Hkv, D, w1, w2):
    inputs = [_rand(gen, B, N, h, D) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
    assert_gradients_close(
        lambda *x: windowed_two_simplicial_attention(*x, w1=w1, w2=w2),
        lambda *x: reference.two_simplicial_attention(*x, w1=w1, w2=w2),
        inputs, names=["q", "k1", "k2", "v1", "v2"], tol=1e-5, generator=gen)


def test_long_sequence_runs_on_cpu(gen):
    # N = 4096 with 64x16 windows must not materialise N^3 (that would be 5e10 floats).
    q = torch.randn(1, 4096, 1, 16, generator=gen)
    k1, k2, v1, v2 = (torch.randn(1, 4096, 1, 16, generator=gen) for _ in range(4))
    out = windowed_two_simplicial_attention(q, k1, k2, v1, v2, w1=64, w2=16)
    assert out.shape == q.shape and torch.isfinite(out).all()
    i = 4000  # a late query against the dense reference restricted to its window
    a = torch.einsum("d,jd,kd->jk", q[0, i, 0], k1[0, i - 63 : i + 1, 0], k2[0, i - 15 : i + 1, 0]) / 4.0
    p = torch.softmax(a.flatten(), 0).view_as(a)
    expect = torch.einsum("jk,jd,kd->d", p, v1[0, i - 63 : i + 1, 0], v2[0, i - 15 : i + 1, 0])
    assert_close("o[4000]", expect, out[0, i, 0], 1e-5)


def test_gathered_per_batch_selection_matches_brute_force(gen):
    B, N, Hq, Hkv, D, m = 2, 6, 4, 2, 3, 3
    q = _rand(gen, B, N, Hq, D)
    k1, k2, v1, v2 = (_rand(gen, B, N, Hkv, D) for _ in range(4))
    idx = torch.full((B, N, m), -1, dtype=torch.long)
    chosen = {}
    for b in range(B):
        for i in range(N):
            pick = torch.randperm(i + 1, generator=gen)[:m].sort().values
            idx[b, i, : pick.numel()] = pick
            chosen[b, i] = pick.tolist()
    got = gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx)
    want = _brute(q, k1, k2, v1, v2, lambda b, i: (chosen[b, i], chosen[b, i]))
    assert_close("o", want, got, TOL)
    assert_close("topk", topk_two_simplicial_attention(q, k1, k2, v1, v2, idx[:, :, None]), got, TOL)


def test_gathered_empty_rows_and_gradients(gen):
    q = _rand(gen, 1, 3, 2, 4).requires_grad_()
    kv = [_rand(gen, 1, 3, 2, 4) for _ in range(4)]
    idx = torch.tensor([[-1, -1], [0, 1], [-1, 2]])
    out = gathered_two_simplicial_attention(q, *kv, idx)
    assert torch.all(out[0, 0] == 0)
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("which", ["k1", "k2", "v1", "v2"])
def test_nan_reaches_only_the_windows_that_hold_it(gen, which):
    N, p, w1, w2 = 8, 3, 3, 2
    x = {"q": _rand(gen, 1, N, 2, 3), **{n: _rand(gen, 1, N, 1, 3) for n in ("k1", "k2", "v1", "v2")}}
    clean = windowed_two_simplicial_attention(*x.values(), w1=w1, w2=w2)
    x[which][0, p] = float("nan")
    out = windowed_two_simplicial_attention(*x.values(), w1=w1, w2=w2)
    w = w1 if which in ("k1", "v1") else w2
    for i in range(N):
        if i - w < p <= i:
            assert torch.isnan(out[0, i]).all(), i
        else:
            assert torch.equal(out[0, i], clean[0, i]), i
    # Position 0 is what empty slots gather: a NaN there must not leak into later windows.
    x[which][0, p] = 0.0
    x[which][0, 0] = float("nan")
    out = windowed_two_simplicial_attention(*x.values(), w1=w1, w2=w2)
    assert torch.isnan(out[0, :w]).all() and torch.isfinite(out[0, w:]).all()


def test_extreme_logits(gen):
    N, D = 6, 4
    q = torch.full((1, N, 1, D), -1.0, dtype=f64)
    ones = torch.ones(1, N, 1, D, dtype=f64)
    v1, v2 = _rand(gen, 1, N, 1, D), _rand(gen, 1, N, 1, D)
    s = 1e30 / D  # every visible logit is exactly -1e30: uniform weights, not zeros
    got = windowed_two_simplicial_attention(q, ones, ones, v1, v2, w1=3, w2=2, scale=s)
    assert_close("o", _brute(q, ones, ones, v1, v2, lambda b, i: (_window(i, 3), _window(i, 2)), s), got, TOL)


@pytest.mark.parametrize("B,N", [(0, 5), (3, 0)])
def test_empty_batch_or_sequence(B, N):
    q = torch.randn(B, N, 2, 4, requires_grad=True)
    kv = [torch.randn(B, N, 1, 4) for _ in range(4)]
    out = windowed_two_simplicial_attention(q, *kv, w1=3, w2=2)
    assert out.shape == (B, N, 2, 4)
    out.sum().backward()
    assert q.grad.shape == q.shape
    assert gathered_two_simplicial_attention(q, *kv, window_indices(N, 2)).shape == (B, N, 2, 4)


def test_errors(gen):
    q = _rand(gen, 1, 4, 2, 4)
    kv = [_rand(gen, 1, 4, 2, 4) for _ in range(4)]
    with pytest.raises(ValueError, match="idx1"):
        gathered_two_simplicial_attention(q, *kv, torch.zeros(4, 2))  # float positions
    with pytest.raises(ValueError, match="idx1"):
        gathered_two_simplicial_attention(q, *kv, torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="idx2"):
        gathered_two_simplicial_attention(q, *kv, window_indices(4, 2), torch.zeros(4, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="heads"):
        gathered_two_simplicial_attention(_rand(gen, 1, 4, 3, 4), *kv, window_indices(4, 2))
    future = window_indices(4, 2).clone()
    future[1, 0] = 3
    with pytest.raises(ValueError, match="idx1 selects a future key"):
        gathered_two_simplicial_attention(q, *kv, future)
    with pytest.raises(ValueError, match="idx2 selects a future key"):
        gathered_two_simplicial_attention(q, *kv, window_indices(4, 2), future)
    with pytest.raises(ValueError, match="idx1 selects the same key twice"):
        gathered_two_simplicial_attention(q, *kv, torch.tensor([[0, 0]] * 4))
    with pytest.raises(ValueError, match="below -1"):
        gathered_two_simplicial_attention(q, *kv, torch.full((4, 2), -2))
    with pytest.raises(ValueError, match="scale"):
        windowed_two_simplicial_attention(q, *kv, w1=2, w2=2, scale=float("nan"))
    with pytest.raises(ValueError, match="w1"):
        windowed_two_simplicial_attention(q, *kv, w1=0, w2=2)
    with pytest.raises(ValueError, match="v2 has dtype"):
        windowed_two_simplicial_attention(q, *kv[:3], kv[3].float(), w1=2, w2=2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_windowed_on_gpu_against_the_reference(gen, dtype, tol):
    # Output and gradients on CUDA against the float64 reference on the CPU; peak memory stays
    # O(seq * w1 * w2) (a dense seq^3 path would need about 2 GiB here).
    B, N, Hq, Hkv, D, w1, w2 = 1, 257, 4, 2, 32, 32, 8
    inputs = [_rand(gen, B, N, h, D) for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
    torch.cuda.reset_peak_memory_stats()
    assert_gradients_close(
        lambda *x: windowed_two_simplicial_attention(*x, w1=w1, w2=w2),
        lambda *x: reference.two_simplicial_attention(*x, w1=w1, w2=w2),
        inputs, names=["q", "k1", "k2", "v1", "v2"], tol=tol, dtype=dtype, device="cuda", generator=gen)
    assert torch.cuda.max_memory_allocated() < 2**28
