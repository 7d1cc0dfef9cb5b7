"""Tests for simplex_lib.layers: modules against the reference functions and a brute-force loop."""

import importlib
import os

import pytest
import torch

from simplex_lib import layers
from simplex_lib.layers import DotProductAttention, TopKTwoSimplicialAttention, TwoSimplicialAttention
from simplex_lib.ops.two_simplicial import reference
from simplex_lib.ops.two_simplicial.windowed import gathered_two_simplicial_attention
from simplex_lib.selection import previous_layer_topk
from simplex_lib.testing import assert_close

TOL = 1e-10


def _rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _brute(q, k1, k2, v1, v2, allowed):
    """Loops over (b, h, i): softmax over the allowed (j, k) pairs; allowed(b, i) -> (J, K)."""
    B, N, Hq, D = q.shape
    g = Hq // k1.shape[2]
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(Hq):
            hk = h // g
            for i in range(N):
                J, K = allowed(b, i)
                pairs = [(j, k) for j in J for k in K]
                logit = torch.stack([(q[b, i, h] * k1[b, j, hk] * k2[b, k, hk]).sum() for j, k in pairs])
                p = torch.softmax(logit / D**0.5, 0)
                for w, (j, k) in zip(p, pairs):
                    out[b, i, h] += w * v1[b, j, hk] * v2[b, k, hk]
    return out


def _window(i, w):
    return list(range(max(0, i - w + 1), i + 1))


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("Hq,Hkv,w1,w2", [(4, 2, 3, 2), (2, 2, 8, 1), (3, 1, 2, 5)])
def test_module_equals_reference_on_its_projections(gen, backend, Hq, Hkv, w1, w2):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    att = TwoSimplicialAttention(12, Hq, Hkv, head_dim=5, w1=w1, w2=w2, backend=backend).double()
    x = _rand(gen, 2, 6, 12)
    q, k1, k2, v1, v2 = att.project(x)
    assert q.shape == (2, 6, Hq, 5) and k1.shape == (2, 6, Hkv, 5)
    # projections are the plain linear maps
    assert_close("k2", (x @ att.k2_proj.weight.T).view(2, 6, Hkv, 5), k2, TOL)
    o = reference.two_simplicial_attention(q, k1, k2, v1, v2, w1=w1, w2=w2, causal=True)
    want = o.reshape(2, 6, -1) @ att.o_proj.weight.T
    assert_close("y", want, att(x), TOL)


def test_module_without_windows_is_full_causal(gen):
    att = TwoSimplicialAttention(8, 2, backend="reference").double()
    x = _rand(gen, 1, 5, 8)
    q, k1, k2, v1, v2 = att.project(x)
    want = _brute(q, k1, k2, v1, v2, lambda b, i: (range(i + 1), range(i + 1)))
    assert_close("o", want, att.attend(q, k1, k2, v1, v2), TOL)


def test_module_is_causal(gen):
    att = TwoSimplicialAttention(8, 2, 1, w1=3, w2=2, backend="torch").double()
    x = _rand(gen, 1, 6, 8)
    y = _rand(gen, 1, 6, 8)
    y[:, :4] = x[:, :4]  # same prefix, different future
    assert_close("att", att(y)[:, :4], att(x)[:, :4], TOL)


def _triton_available():
    try:
        importlib.import_module("simplex_lib.ops.two_simplicial.interface")
    except ImportError as err:
        return False, f"the Triton kernels are not importable ({err})"
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        return False, "no CUDA and TRITON_INTERPRET is not 1"
    return True, ""


def test_backends_agree_triton(gen):
    ok, why = _triton_available()
    if not ok:
        pytest.skip(why)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    ref = TwoSimplicialAttention(32, 4, 2, head_dim=16, w1=8, w2=4, backend="reference").to(dev)
    tri = TwoSimplicialAttention(32, 4, 2, head_dim=16, w1=8, w2=4, backend="triton").to(dev)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(1, 20, 32, generator=gen).to(dev)  # fp32: the interpreter miscomputes bf16
    y_tri, y_ref = tri(x), ref(x)
    assert_close("y", y_ref, y_tri, 2e-3)
    # the gradients of every projection agree too (the kernels have a backward)
    (y_tri ** 2).sum().backward()
    (y_ref ** 2).sum().backward()
    for (name, a), b in zip(tri.named_parameters(), ref.parameters()):
        assert_close(f"d{name}", b.grad, a.grad, 5e-3)


@pytest.mark.parametrize("n_heads,n_kv_heads,packed,det", [(4, 2, False, False), (32, 2, True, False),
                                                           (32, 2, True, True)])
def test_topk_backends_agree_triton(gen, monkeypatch, n_heads, n_kv_heads, packed, det):
    """backend='triton' against backend='reference': outputs and every gradient, with the
    layer's own selection and with a preceding layer's (q, k); a group of 16 heads takes the
    head-packed forward, a group of 2 the per-row kernel."""
    ok, why = _triton_available()
    if not ok:
        pytest.skip(why)
    import simplex_lib.ops.topk.triton as tk

    calls = []
    orig = tk._packed_forward
    monkeypatch.setattr(tk, "_packed_forward", lambda *a: calls.append(1) or orig(*a))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    kw = dict(head_dim=16, topk=4)
    ref = TopKTwoSimplicialAttention(32, n_heads, n_kv_heads, backend="reference", **kw).to(dev)
    tri = TopKTwoSimplicialAttention(32, n_heads, n_kv_heads, backend="triton", deterministic=det,
                                     **kw).to(dev)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(2, 11, 32, generator=gen).to(dev)  # fp32: the interpreter miscomputes bf16
    prev = tuple(torch.randn(2, 11, 2, 8, generator=gen).to(dev) for _ in range(2))
    for prev_qk in (None, prev):
        xs = [x.clone().requires_grad_() for _ in range(2)]
        y_tri, y_ref = tri(xs[0], prev_qk), ref(xs[1], prev_qk)
        assert_close("y", y_ref, y_tri, 2e-3)
        (y_tri ** 2).sum().backward()
        (y_ref ** 2).sum().backward()
        assert_close("dx", xs[1].grad, xs[0].grad, 5e-3)
        for (name, a), b in zip(tri.named_parameters(), ref.parameters()):
            assert_close(f"d{name}", b.grad, a.grad, 5e-3)
            a.grad, b.grad = None, None
    assert len(calls) == (2 if packed else 0)


def test_topk_triton_refuses_what_the_kernel_cannot_take(gen):
    ok, why = _triton_available()
    if not ok:
        pytest.skip(why)
    att = TopKTwoSimplicialAttention(8, 2, topk=2, backend="triton").double()
    with pytest.raises(ValueError, match="backend 'triton' of the top-k variant.*float16, bfloat16 or float32"):
        att(_rand(gen, 1, 5, 8))  # float64: no silent fallback to another backend
    with pytest.raises(ValueError, match="deterministic=True needs backend='triton'"):
        TopKTwoSimplicialAttention(8, 2, topk=2, deterministic=True)
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        TopKTwoSimplicialAttention(8, 2, topk=2, backend="triton", deterministic=1)


def test_topk_module_matches_brute_force(gen):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    att = TopKTwoSimplicialAttention(12, 4, 2, head_dim=3, topk=3).double()
    ref = TopKTwoSimplicialAttention(12, 4, 2, head_dim=3, topk=3, backend="reference").double()
    ref.load_state_dict(att.state_dict())
    x = _rand(gen, 2, 7, 12)
    q, k1, k2, v1, v2 = att.project(x)
    # independent selection: head-averaged causal softmax of q.k1, the best 3 past keys
    s = torch.einsum("bihd,bjhd->bhij", q, k1.repeat_interleave(2, dim=2)) / 3**0.5
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    p = torch.softmax(s.masked_fill(~mask, float("-inf")), -1).mean(1)
    chosen = {(b, i): p[b, i, : i + 1].topk(min(3, i + 1)).indices.tolist() for b in range(2) for i in range(7)}
    o = _brute(q, k1, k2, v1, v2, lambda b, i: (chosen[b, i], chosen[b, i]))
    want = o.reshape(2, 7, -1) @ att.o_proj.weight.T
    assert_close("torch", want, att(x), TOL)
    assert_close("reference", want, ref(x), TOL)


def test_topk_uses_previous_layer_scores(gen):
    att = TopKTwoSimplicialAttention(8, 2, topk=2).double()
    x = _rand(gen, 1, 6, 8)
    prev_q, prev_k = _rand(gen, 1, 6, 2, 4), _rand(gen, 1, 6, 2, 4)
    idx = att.select(*att.project(x)[:2], prev_qk=(prev_q, prev_k))
    assert torch.equal(idx, previous_layer_topk(prev_q, prev_k, 2))
    q, k1, k2, v1, v2 = att.project(x)
    o = gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx[:, :, 0])
    assert_close("att", att.o_proj(o.reshape(1, 6, -1)), att(x, (prev_q, prev_k)), TOL)


def test_topk_at_least_seq_is_full_causal(gen):
    att = TopKTwoSimplicialAttention(8, 2, topk=9).double()
    full = TwoSimplicialAttention(8, 2, backend="reference").double()
    full.load_state_dict(att.state_dict())
    x = _rand(gen, 2, 5, 8)
    assert_close("y", full(x), att(x), TOL)


@pytest.mark.parametrize("backend", ["sdpa", "reference"])
def test_dot_attention_module(gen, backend):
    att = DotProductAttention(12, 4, 2, head_dim=3, backend=backend).double()
    x = _rand(gen, 2, 5, 12)
    q, k, v = att.project(x)
    # brute force: per query, softmax over past keys
    o = torch.zeros(2, 5, 4, 3, dtype=torch.float64)
    for b in range(2):
        for h in range(4):
            for i in range(5):
                w = torch.softmax(torch.stack([q[b, i, h] @ k[b, j, h // 2] for j in range(i + 1)]) / 3**0.5, 0)
                o[b, i, h] = sum(w[j] * v[b, j, h // 2] for j in range(i + 1))
    out, (qd, kd) = att(x, return_qk=True)
    assert_close("out", o.reshape(2, 5, -1) @ att.o_proj.weight.T, out, TOL)
    assert not qd.requires_grad and torch.equal(qd, q.detach()) and torch.equal(kd, k.detach())


def test_blocks_and_mlp(gen):
    blk = layers.Block(TwoSimplicialAttention(8, 2, 1, w1=2, w2=2, backend="torch"), 8, 16).double()
    x = _rand(gen, 1, 4, 8)
    marker = (torch.zeros(1), torch.ones(1))
    y, qk = blk(x, marker)
    assert y.shape == x.shape and qk is marker and blk.is_simplicial
    want = x + blk.attn(blk.norm1(x))
    want = want + blk.mlp.down(torch.nn.functional.gelu(blk.mlp.up(blk.norm2(want))))
    assert_close("y", want, y, TOL)
    dot = layers.Block(DotProductAttention(8, 2), 8, 16)
    assert not dot.is_simplicial


def test_module_errors():
    with pytest.raises(ValueError, match="n_kv_heads"):
        TwoSimplicialAttention(16, 4, 3)
    with pytest.raises(ValueError, match="n_heads"):
        TwoSimplicialAttention(16, 0)
    with pytest.raises(ValueError, match="head_dim"):
        TwoSimplicialAttention(10, 4)
    with pytest.raises(ValueError, match="w1"):
        TwoSimplicialAttention(16, 4, w1=0)
    with pytest.raises(ValueError, match="w2"):
        TwoSimplicialAttention(16, 4, w1=2, w2=1.5)
    with pytest.raises(ValueError, match="backend"):
        TwoSimplicialAttention(16, 4, backend="cuda")
    with pytest.raises(ValueError, match="topk"):
        TopKTwoSimplicialAttention(16, 4, topk=0)
    with pytest.raises(ValueError, match="backend"):
        TopKTwoSimplicialAttention(16, 4, topk=2, backend="cuda")
    with pytest.raises(ValueError, match="backend"):
        DotProductAttention(16, 4, backend="flash")
    with pytest.raises(ValueError, match="x must have shape"):
        TwoSimplicialAttention(16, 4, w1=2, w2=2)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="x must have shape"):
        DotProductAttention(16, 4)(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="x must be a floating"):
        DotProductAttention(16, 4)(torch.ones(2, 3, 16, dtype=torch.long))


def test_topk_checks_prev_qk(gen):
    att = TopKTwoSimplicialAttention(8, 2, topk=2).double()
    x = _rand(gen, 1, 6, 8)
    with pytest.raises(ValueError, match="prev_qk"):
        att(x, (_rand(gen, 1, 5, 2, 4), _rand(gen, 1, 5, 2, 4)))
    with pytest.raises(ValueError, match="prev_qk"):
        att(x, _rand(gen, 1, 6, 2, 4))


def test_torch_backend_refuses_future_keys(gen, monkeypatch):
    att = TopKTwoSimplicialAttention(8, 2, topk=2).double()
    x = _rand(gen, 1, 5, 8)
    future = torch.tensor([[-1, 0], [0, 1], [1, 4], [2, 3], [3, 4]]).view(1, 5, 1, 2)
    monkeypatch.setattr(att, "select", lambda *a, **k: future)
    with pytest.raises(ValueError, match="future key"):
        att(x)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_windowless_layer_is_full_causal(gen, backend):
    att = TwoSimplicialAttention(8, 2, 1, w1=None, w2=3, backend=backend).double()
    x = _rand(gen, 1, 6, 8)
    q, k1, k2, v1, v2 = att.project(x)
    want = _brute(q, k1, k2, v1, v2, lambda b, i: (range(i + 1), _window(i, 3)))
    assert_close("o", want, att.attend(q, k1, k2, v1, v2), TOL)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_layer_nan_in_a_later_token_stays_later(gen, backend):
    att = TwoSimplicialAttention(8, 2, 1, w1=3, w2=2, backend=backend).double()
    x = _rand(gen, 1, 7, 8)
    y = x.clone()
    y[0, 4] = float("nan")
    out = att(y)
    assert_close("clean rows", att(x)[0, :4], out[0, :4], TOL)  # finite: another einsum path
    assert torch.isnan(out[0, 4:]).all()


def test_package_level_export():
    import simplex_lib

    assert simplex_lib.TwoSimplicialAttention is TwoSimplicialAttention
