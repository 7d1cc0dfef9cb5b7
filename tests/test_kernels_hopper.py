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
    assert [default_block_n(d, w) for d, w in ((64, 512), (128, 512), (128, 64), (128, 192))] == [
        128, 128, 64, 64]
    # with the operand group: 128-key tiles where their rings fit (session 28's compile report)
    assert [default_block_n(d, 512, operands=True, stages=st, scaled_values=v)
            for d, st, v in ((64, 3, True), (128, 2, False), (128, 3, False), (128, 2, True))] == [
        128, 128, 64, 64]
    xs = _inputs(1, 8, 1, 64, "cpu")
    with pytest.raises(ValueError, match="operands must be a bool"):
        hopper_forward(*xs, 128, 32, 0.125, operands=1)
    with pytest.raises(ValueError, match="operands=True needs stages >= 2"):
        hopper_forward(*xs, 128, 32, 0.125, stages=1, operands=True)
    with pytest.raises(ValueError, match="scaled_values=True needs operands=True"):
        hopper_forward(*xs, 128, 32, 0.125, scaled_values=True)
    with pytest.raises(ValueError, match="scaled_values must be a bool"):
        hopper_forward(*xs, 128, 32, 0.125, operands=True, scaled_values="yes")
    big = _inputs(1, 8, 1, 128, "cpu")
    with pytest.raises(ValueError, match=r"block_n=64 and stages=3 .* need \d+ bytes of shared memory"):
        hopper_forward(*big, 128, 32, 0.125, block_n=64, stages=3, operands=True, scaled_values=True)


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
@pytest.mark.parametrize("operands, scaled_values", [(False, False), (True, False), (True, True)],
                         ids=["consumers-form-a", "operand-group", "scaled-values"])
def test_matches_the_reference(B, N, Hkv, D, w1, w2, block_n, sign, pipeline, operands, scaled_values):
    if scaled_values and D == 128 and block_n == 128:
        pytest.skip("scaled values at D 128 fit in shared memory with 64-key tiles only")
    xs = _inputs(B, N, Hkv, D, "cuda")
    scale = sign * D ** -0.5
    o, lse = hopper_forward(*xs, w1, w2, scale, block_n=block_n, pipeline=pipeline, operands=operands,
                            scaled_values=scaled_values)
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


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
@pytest.mark.parametrize("D, block_n, w2, scaled_values", [
    (128, 64, 32, False), (64, 128, 5, False), (128, 64, 1, False), (64, 128, 32, True), (64, 64, 1, True)])
def test_operand_group_at_three_stages(D, block_n, w2, scaled_values):
    """The operand group issues the loads two tiles ahead with three stages; a short window of one
    key leaves consumer 1 without keys (it only releases tiles); with scaled values the group
    also reads every tile."""
    xs = _inputs(1, 700, 1, D, "cuda", seed=3)
    scale = D ** -0.5
    o, lse = hopper_forward(*xs, 512, w2, scale, block_n=block_n, stages=3, operands=True,
                            scaled_values=scaled_values)
    o_p, lse_p = portable.forward(*xs, 512, w2, scale)
    want = windowed_two_simplicial_attention(*(t.double() for t in xs), w1=512, w2=w2, scale=scale)
    err, err_p = ((t.double() - want).abs().max().item() for t in (o, o_p))
    assert err <= 2 * err_p + 2e-3, (err, err_p)
    torch.testing.assert_close(lse, lse_p, atol=1e-3, rtol=0)


def test_kernel_backend_names_its_forward_pick_and_refuses_what_cannot_run():
    from simplex_lib.ops.two_simplicial.interface import kernel_backend, two_simplicial_attention

    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert kernel_backend("forward", q, k1, 128, 32, None, "portable") == "portable"
    assert kernel_backend("forward", q, k1, 128, 32) == "portable"  # no Hopper GPU here: the portable kernel
    with pytest.raises(ValueError, match="backend must be one of"):
        kernel_backend("forward", q, k1, 128, 32, None, "cuda")
    with pytest.raises(ValueError, match="backend='hopper' cannot take these inputs"):
        kernel_backend("forward", q, k1, 128, 32, None, "hopper")
    with pytest.raises(ValueError, match="backend must be one of"):
        two_simplicial_attention(q, k1, k1, k1, k1, w1=4, w2=2, backend="gluon")


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
def test_backend_hopper_takes_the_gluon_kernels_both_ways():
    from simplex_lib.ops.two_simplicial import interface
    from simplex_lib.ops.two_simplicial.interface import kernel_backend, two_simplicial_attention

    xs = [t.requires_grad_() for t in _inputs(1, 300, 1, 128, "cuda")]
    assert kernel_backend("forward", xs[0], xs[1], 256, 32, None, "hopper") == "hopper"
    assert kernel_backend("forward", xs[0], xs[1], 256, 32) == ("hopper" if interface.AUTO_PICKS_HOPPER else "portable")
    assert kernel_backend("backward", xs[0], xs[1], 256, 32) == ("hopper" if interface.AUTO_BWD_PICKS_HOPPER
                                                       else "portable")
    with pytest.raises(ValueError, match="multiple of block_n"):  # w1 not a multiple of the tile
        kernel_backend("forward", xs[0], xs[1], 200, 32, None, "hopper")
    with pytest.raises(ValueError, match=r"\(backward\): needs w2 <= 64"):
        two_simplicial_attention(*xs, w1=256, w2=128, backend="hopper")
    assert kernel_backend("backward", xs[0], xs[1], 256, 128) == "portable"  # auto: the portable backward
    assert kernel_backend("forward", xs[0], xs[1], 256, 32, -1.0, "hopper") == "hopper"  # any finite scale
    o = two_simplicial_attention(*xs, w1=256, w2=32, backend="hopper")
    o_h, _ = hopper_forward(*(t.detach() for t in xs), 256, 32, 128 ** -0.5)
    assert torch.equal(o.detach(), o_h)
    do = torch.randn_like(o)
    grads = torch.autograd.grad(o, xs, do)
    o_p = two_simplicial_attention(*xs, w1=256, w2=32, backend="portable")
    grads_p = torch.autograd.grad(o_p, xs, do)
    xd = [t.detach().double().requires_grad_() for t in xs]
    want = torch.autograd.grad(windowed_two_simplicial_attention(*xd, w1=256, w2=32), xd, do.double())
    # and each forward's log-sum-exp serves the other backward (the rounding is shared)
    xt, sc = [t.detach() for t in xs], 128 ** -0.5
    ops = torch.ops.simplex_lib
    o_h, lse_h = ops.two_simplicial_fwd(*xt, 256, 32, sc, "hopper")
    o_p, lse_p = ops.two_simplicial_fwd(*xt, 256, 32, sc, "portable")
    mixed = (ops.two_simplicial_bwd(do, *xt, o_h, lse_h, 256, 32, sc, "portable"),
             ops.two_simplicial_bwd(do, *xt, o_p, lse_p, 256, 32, sc, "hopper"))
    for got in (grads, *mixed):
        for name, g, g_p, g_w in zip(("q", "k1", "k2", "v1", "v2"), got, grads_p, want):
            err, err_p = (g.double() - g_w).abs().max().item(), (g_p.double() - g_w).abs().max().item()
            assert err <= 2 * err_p + 2e-3, (name, err, err_p)


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
@pytest.mark.parametrize("D", [64, 128])
def test_hopper_backward_is_deterministic_and_agrees_at_a_large_shape(D):
    """B 2, N 4096, GQA 64, 512 x 32 through the public entry point: the default (auto) backward
    twice bitwise equal; its five gradients of the last 64 positions against float64 autograd
    on the slice of the sequence they depend on, no worse than the portable backward's; the
    atomic variant of the kernel close to the fixed-order one."""
    from simplex_lib.ops.two_simplicial.backward import compute_delta
    from simplex_lib.ops.two_simplicial.hopper_bwd import hopper_backward_dq
    from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention

    N, T, w1, w2 = 4096, 64, 512, 32
    xs = [t.requires_grad_() for t in _inputs(2, N, 1, D, "cuda")]
    o = two_simplicial_attention(*xs, w1=w1, w2=w2)
    do = torch.randn_like(o)
    g1 = torch.autograd.grad(o, xs, do, retain_graph=True)
    g2 = torch.autograd.grad(o, xs, do)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    o_p = two_simplicial_attention(*xs, w1=w1, w2=w2, backend="portable")
    gp = torch.autograd.grad(o_p, xs, do)
    # a query's gradients, and those of the keys of the last T positions, depend only on the
    # positions from N - T - w1 + 1 on: float64 on that slice (batch 0) is exact for them
    sl = slice(N - T - w1 + 1, N)
    xd = [t.detach()[:1, sl].double().requires_grad_() for t in xs]
    want = torch.autograd.grad(windowed_two_simplicial_attention(*xd, w1=w1, w2=w2), xd, do[:1, sl].double())
    for name, a, b, w in zip(("q", "k1", "k2", "v1", "v2"), g1, gp, want):
        assert not torch.isnan(a).any(), name
        err, err_p = ((t[:1, N - T:].double() - w[:, -T:]).abs().max().item() for t in (a, b))
        assert err <= 2 * err_p + 2e-3, (name, err, err_p)
    q, k1, k2, v1, v2 = (t.detach() for t in xs)
    o_f, lse = portable.forward(q, k1, k2, v1, v2, 512, 32, D ** -0.5)
    delta = compute_delta(o_f, do)
    fixed = hopper_backward_dq(q, k1, k2, v1, v2, do, lse, delta, 512, 32, D ** -0.5)
    atomic = hopper_backward_dq(q, k1, k2, v1, v2, do, lse, delta, 512, 32, D ** -0.5, deterministic=False)
    assert torch.equal(fixed[0], atomic[0])  # dq has one writer either way
    for a, b in zip(fixed[1:], atomic[1:]):
        torch.testing.assert_close(a.float(), b.float(), atol=1e-2 * b.float().abs().max().item(), rtol=0)


def test_kernel_backend_names_its_backward_pick_and_refuses_what_cannot_run():
    from simplex_lib.ops.two_simplicial.interface import kernel_backend

    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert kernel_backend("backward", q, k1, 128, 32) == "portable"  # no Hopper GPU here
    with pytest.raises(ValueError, match="backend must be one of"):
        kernel_backend("backward", q, k1, 128, 32, None, "gluon")
    with pytest.raises(ValueError, match="direction must be 'forward' or 'backward'"):
        kernel_backend("sideways", q, k1, 128, 32)
    with pytest.raises(ValueError, match=r"cannot take these inputs \(backward\): (needs a Hopper|the Gluon)"):
        kernel_backend("backward", q, k1, 128, 32, None, "hopper")
    with pytest.raises(ValueError, match="hopper_backward: needs a Hopper GPU"):
        from simplex_lib.ops.two_simplicial.hopper_bwd import hopper_backward

        hopper_backward(q, q, k1, k1, k1, k1, q, None, 128, 32, 0.125)


def test_hopper_backward_names_what_it_lacks():
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
@pytest.mark.parametrize("deterministic", [True, False])
def test_hopper_backward_dq_matches_the_reference(N, Hkv, D, w1, w2, deterministic):
    """The Gluon dq/dk2/dv2 kernel against float64 autograd, with the forward's LSE and the
    portable backward's gradients as the bf16 yardstick; both ways of summing dk2 / dv2."""
    from simplex_lib.ops.two_simplicial import backward as portable_bwd
    from simplex_lib.ops.two_simplicial.hopper_bwd import hopper_backward_dq

    xs = _inputs(1, N, Hkv, D, "cuda")
    scale = D ** -0.5
    o, lse = portable.forward(*xs, w1, w2, scale)
    do = torch.randn_like(o)
    delta = (do.float() * o.float()).sum(-1).transpose(1, 2).contiguous()  # [B, Hq, N]
    dq, dk2, dv2 = hopper_backward_dq(*xs, do, lse, delta, w1, w2, scale, deterministic=deterministic)
    xd = [t.double().requires_grad_() for t in xs]
    want = torch.autograd.grad(windowed_two_simplicial_attention(*xd, w1=w1, w2=w2, scale=scale),
                               xd, do.double())
    port = portable_bwd.backward(do, *xs, o, lse, w1, w2, scale)
    for name, got, p, w in (("dq", dq, port[0], want[0]), ("dk2", dk2, port[2], want[2]),
                            ("dv2", dv2, port[4], want[4])):
        err, err_p = (got.double() - w).abs().max().item(), (p.double() - w).abs().max().item()
        assert err <= 2 * err_p + 2e-3, (name, err, err_p)


def test_auto_takes_gluon_only_with_a_tested_triton(monkeypatch):
    """Gluon's API moves between Triton releases: "auto" takes the Hopper kernels only with a
    release they are tested with, and a GPU without Gluon gets a reason, not an ImportError."""
    import triton

    from simplex_lib.ops.two_simplicial import interface

    assert interface._gluon_tested()  # the pinned Triton
    monkeypatch.setattr(triton, "__version__", "3.9.1")
    assert not interface._gluon_tested()
    monkeypatch.setattr(interface, "_hopper_reason", lambda *a: None)  # as on an H100 / H200
    q, k1, *_ = _inputs(1, 8, 1, 64, "cpu")
    assert interface.kernel_backend("backward", q, k1, 128, 32) == "portable"
    assert interface.kernel_backend("backward", q, k1, 128, 32, None, "hopper") == "hopper"
    monkeypatch.setattr(triton, "__version__", "3.6.0")
    assert interface.kernel_backend("backward", q, k1, 128, 32) == "hopper"
