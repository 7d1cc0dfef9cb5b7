"""The Gluon Hopper forward (``simplex_lib.ops.two_simplicial.hopper``): input checks on the CPU;
on an sm_90 GPU, the output against the windowed float64 reference (itself checked against the
dense reference in ``tests/test_windowed.py``), the LSE against a float64 loop over positions,
each no less accurate than the portable kernel's.

Gluon kernels do not run under the interpreter; ``tests/test_kernels_compile.py`` compiles this
one for sm_90 on the CPU.
"""
import math

import pytest
import torch

from simplex_lib.ops.two_simplicial import forward as portable
from simplex_lib.ops.two_simplicial.hopper import default_block_n, hopper_forward, hopper_supported
from simplex_lib.ops.two_simplicial.windowed import windowed_two_simplicial_attention


def _inputs(B, N, Hkv, D, device, dtype=torch.bfloat16, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(B, N, 64 * Hkv, D, device=device, dtype=dtype, generator=g)
    return (q, *[torch.randn(B, N, Hkv, D, device=device, dtype=dtype, generator=g) for _ in range(4)])


def test_supported_names_what_it_lacks():
    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert "Hopper GPU" in hopper_supported(q, k1, 128, 32)
    assert "64 query heads" in hopper_supported(q[:, :, :32], k1, 128, 32)
    assert "bfloat16" in hopper_supported(q.float(), k1, 128, 32)
    assert "head_dim" in hopper_supported(q[..., :32], k1[..., :32], 128, 32)
    assert "multiple of block_n" in hopper_supported(q, k1, 100, 32)
    assert "w1 >= w2" in hopper_supported(q, k1, 128, 256)
    with pytest.raises(ValueError, match="hopper_forward: needs a Hopper GPU"):
        hopper_forward(*_inputs(1, 8, 1, 64, "cpu"), 128, 32, 0.125)
    assert (default_block_n(64), default_block_n(128)) == (128, 64)


def _lse_reference(q, k1, k2, w1, w2, scale):
    """Base-2 log-sum-exp of every query row's visible logits, in float64: ``[B, Hq, N]``."""
    B, N, Hq, _ = q.shape
    G = Hq // k1.shape[2]
    q, k1, k2 = q.double(), k1.double().repeat_interleave(G, 2), k2.double().repeat_interleave(G, 2)
    out = torch.empty(B, Hq, N, dtype=torch.float64, device=q.device)
    for i in range(N):
        j0, k0 = max(0, i - w1 + 1), max(0, i - w2 + 1)
        s = torch.einsum("bhd,bjhd,bkhd->bhjk", q[:, i], k1[:, j0:i + 1], k2[:, k0:i + 1])
        out[:, :, i] = torch.logsumexp(scale * s.flatten(2), -1) / math.log(2)
    return out


def _sm90():
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
@pytest.mark.parametrize("B, N, Hkv, D, w1, w2, block_n, sign", [
    (1, 1, 1, 128, 128, 32, 128, 1),       # one position
    (2, 300, 1, 128, 128, 32, 128, 1),     # N not a multiple of the tile; windows longer than the start
    (1, 333, 2, 64, 256, 16, 128, 1),      # two KV heads, D 64
    (1, 260, 1, 128, 128, 7, 64, -1),      # odd short window, BLOCK_N 64, a negative scale
    (1, 200, 1, 128, 256, 32, None, 1),    # the default tile
    (1, 90, 1, 128, 512, 512, 128, 1),     # both windows longer than the sequence
])
@pytest.mark.parametrize("pipeline", [False, True])
def test_matches_the_reference(B, N, Hkv, D, w1, w2, block_n, sign, pipeline):
    xs = _inputs(B, N, Hkv, D, "cuda")
    scale = sign * D ** -0.5
    o, lse = hopper_forward(*xs, w1, w2, scale, block_n=block_n, pipeline=pipeline)
    want = windowed_two_simplicial_attention(*(t.double() for t in xs), w1=w1, w2=w2, scale=scale)
    o_p, lse_p = portable.forward(*xs, w1, w2, scale)
    err, err_p = ((t.double() - want).abs().max().item() for t in (o, o_p))
    assert not torch.isnan(o).any()
    assert err <= 2 * err_p + 2e-3, (err, err_p)   # no worse than the portable kernel's bf16 error
    lse_want = _lse_reference(*xs[:3], w1, w2, scale)
    lse_err, lse_err_p = ((t.double() - lse_want).abs().max().item() for t in (lse, lse_p))
    assert lse_err <= 2 * lse_err_p + 1e-2, (lse_err, lse_err_p)
    # the same rounded logits as the portable kernels (whose backward recomputes them): only the
    # order of the sums differs
    torch.testing.assert_close(lse, lse_p, atol=1e-3, rtol=0)


def test_forward_backend_names_its_pick_and_refuses_what_cannot_run():
    from simplex_lib.ops.two_simplicial.interface import forward_backend, two_simplicial_attention

    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert forward_backend(q, k1, 128, 32, None, "portable") == "portable"
    assert forward_backend(q, k1, 128, 32) == "portable"  # no Hopper GPU here: the portable kernel
    with pytest.raises(ValueError, match="backend must be one of"):
        forward_backend(q, k1, 128, 32, None, "cuda")
    with pytest.raises(ValueError, match="backend='hopper' cannot take these inputs"):
        forward_backend(q, k1, 128, 32, None, "hopper")
    with pytest.raises(ValueError, match="backend must be one of"):
        two_simplicial_attention(q, k1, k1, k1, k1, w1=4, w2=2, backend="gluon")


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
def test_backend_hopper_takes_the_gluon_forward_and_the_portable_backward():
    from simplex_lib.ops.two_simplicial.interface import forward_backend, two_simplicial_attention

    from simplex_lib.ops.two_simplicial import interface

    xs = [t.requires_grad_() for t in _inputs(1, 300, 1, 128, "cuda")]
    assert forward_backend(xs[0], xs[1], 256, 32, None, "hopper") == "hopper"
    assert forward_backend(xs[0], xs[1], 256, 32) == ("hopper" if interface.AUTO_PICKS_HOPPER else "portable")
    with pytest.raises(ValueError, match="multiple of block_n"):  # w1 not a multiple of the tile
        forward_backend(xs[0], xs[1], 200, 32, None, "hopper")
    assert forward_backend(xs[0], xs[1], 256, 32, -1.0, "hopper") == "hopper"  # any finite scale
    o = two_simplicial_attention(*xs, w1=256, w2=32, backend="hopper")
    o_h, _ = hopper_forward(*(t.detach() for t in xs), 256, 32, 128 ** -0.5)
    assert torch.equal(o.detach(), o_h)
    do = torch.randn_like(o)
    grads = torch.autograd.grad(o, xs, do)
    o_p = two_simplicial_attention(*xs, w1=256, w2=32, backend="portable")
    grads_p = torch.autograd.grad(o_p, xs, do)
    xd = [t.detach().double().requires_grad_() for t in xs]
    want = torch.autograd.grad(windowed_two_simplicial_attention(*xd, w1=256, w2=32), xd, do.double())
    for name, g, g_p, g_w in zip(("q", "k1", "k2", "v1", "v2"), grads, grads_p, want):
        err, err_p = (g.double() - g_w).abs().max().item(), (g_p.double() - g_w).abs().max().item()
        assert err <= 2 * err_p + 2e-3, (name, err, err_p)


def test_backward_draft_names_what_it_lacks():
    from simplex_lib.ops.two_simplicial.hopper_bwd import hopper_bwd_supported

    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert "Hopper GPU" in hopper_bwd_supported(q, k1, 128, 32)
    assert "multiple of block_n" in hopper_bwd_supported(q, k1, 96, 32)


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
@pytest.mark.parametrize("N, Hkv, D, w1, w2", [
    (1, 1, 128, 128, 32),      # one position
    (300, 1, 128, 128, 32),    # i < w1 and i < w2 at the start
    (333, 2, 64, 256, 16),     # two KV heads, D 64
    (200, 1, 128, 64, 2),      # the shortest windows the TMA issue order handles
    (150, 1, 64, 128, 64),     # the largest short window
    (97, 1, 128, 128, 1),      # one short-window key
])
def test_backward_draft_matches_the_reference(N, Hkv, D, w1, w2):
    """The Gluon dq/dk2/dv2 kernel against float64 autograd, with the forward's LSE and the
    portable backward's gradients as the bf16 yardstick."""
    from simplex_lib.ops.two_simplicial import backward as portable_bwd
    from simplex_lib.ops.two_simplicial.hopper_bwd import hopper_backward_dq

    xs = _inputs(1, N, Hkv, D, "cuda")
    scale = D ** -0.5
    o, lse = portable.forward(*xs, w1, w2, scale)
    do = torch.randn_like(o)
    delta = (do.float() * o.float()).sum(-1).transpose(1, 2).contiguous()  # [B, Hq, N]
    dq, dk2, dv2 = hopper_backward_dq(*xs, do, lse, delta, w1, w2, scale)
    xd = [t.double().requires_grad_() for t in xs]
    want = torch.autograd.grad(windowed_two_simplicial_attention(*xd, w1=w1, w2=w2, scale=scale),
                               xd, do.double())
    port = portable_bwd.backward(do, *xs, o, lse, w1, w2, scale)
    for name, got, p, w in (("dq", dq, port[0], want[0]), ("dk2", dk2, port[2], want[2]),
                            ("dv2", dv2, port[4], want[4])):
        err, err_p = (got.double() - w).abs().max().item(), (p.double() - w).abs().max().item()
        assert err <= 2 * err_p + 2e-3, (name, err, err_p)
