"""Determinant-form attention on the trilinear kernels, under TRITON_INTERPRET=1 on a CPU.

Checked against the float64 determinant reference (``simplex_lib.ops.determinant.reference``): output and all
five gradients, GQA, odd lengths, windows longer than the sequence, a single position.
"""

import pytest
import torch

from simplex_lib.ops.determinant.reference import det_logits, determinant_attention
from simplex_lib.ops.determinant.triton import det_trilinear_operands, determinant_attention_triton
from simplex_lib.ops.two_simplicial.reference import two_simplicial_logits
from simplex_lib.testing import assert_close, assert_gradients_close

DEV = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("Hq,Hkv,D", [(1, 1, 3), (4, 2, 6), (2, 1, 9)])
def test_operands_reproduce_det_logits(gen, Hq, Hkv, D):
    q = torch.randn(2, 5, Hq, D, generator=gen, dtype=torch.float64)
    k1, k2 = (torch.randn(2, 5, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(2))
    ops = det_trilinear_operands(q, k1, k2)
    assert all(t.shape[-1] == 2 * D for t in ops)
    torch.testing.assert_close(two_simplicial_logits(*ops, scale=1.0), det_logits(q, k1, k2))


@pytest.mark.parametrize(
    "N,Hq,Hkv,D,w1,w2",
    [
        (13, 4, 2, 6, 5, 3),   # GQA 2, odd length; 2D = 12 padded to 16
        (9, 2, 1, 12, 20, 4),  # window longer than the sequence; 2D = 24 padded to 32
        (1, 2, 2, 3, 2, 2),    # a single position
    ],
)
def test_matches_determinant_reference(gen, N, Hq, Hkv, D, w1, w2):
    x64 = [torch.randn(1, N, Hq, D, generator=gen, dtype=torch.float64)]
    x64 += [torch.randn(1, N, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(4)]
    assert_gradients_close(lambda *x: determinant_attention_triton(*x, w1=w1, w2=w2),
                           lambda *x: determinant_attention(*x, w1=w1, w2=w2), x64,
                           names=("q", "k1", "k2", "v1", "v2"), tol=2e-5, device=DEV, generator=gen)


def test_second_derivative_is_refused(gen):
    x = [torch.randn(1, 5, 2, 6, generator=gen, device=DEV).requires_grad_() for _ in range(5)]
    out = determinant_attention_triton(*x, w1=3, w2=2)
    (g,) = torch.autograd.grad(out.square().sum(), x[0], create_graph=True)
    with pytest.raises(RuntimeError, match="(?i)derivative|autograd|differentiate"):
        torch.autograd.grad(g.sum(), x[1])


def test_errors():
    q = torch.randn(1, 4, 1, 8)
    with pytest.raises(ValueError, match="head_dim"):
        determinant_attention_triton(q, q, q, q, q, w1=2, w2=2)  # not a multiple of 3
    q = torch.randn(1, 4, 1, 66)
    with pytest.raises(ValueError, match="head_dim"):
        determinant_attention_triton(q, q, q, q, q, w1=2, w2=2)  # 2 * 66 > 128
    q = torch.randn(1, 4, 1, 6)
    with pytest.raises(ValueError, match="w1"):
        determinant_attention_triton(q, q, q, q, q, w1=0, w2=2)
    with pytest.raises(ValueError, match="scale"):
        determinant_attention_triton(q, q, q, q, q, w1=2, w2=2, scale=float("nan"))
    with pytest.raises(ValueError, match="dtype"):
        determinant_attention_triton(q, q.double(), q, q, q, w1=2, w2=2)


@pytest.mark.gpu
def test_gpu_bf16_large():
    g = torch.Generator().manual_seed(0)
    B, N, Hq, Hkv, D = 1, 1024, 16, 1, 48  # 2D = 96, padded to 128
    x64 = [torch.randn(B, N, Hq, D, generator=g, dtype=torch.float64) * 0.5]
    x64 += [torch.randn(B, N, Hkv, D, generator=g, dtype=torch.float64) * 0.5 for _ in range(4)]
    out = determinant_attention_triton(*(t.cuda().bfloat16() for t in x64), w1=128, w2=16)
    ref = determinant_attention(*(t[:, :256] for t in x64), w1=128, w2=16)  # the first 256 queries
    assert_close("o", ref, out[:, :256], 2e-2)


@pytest.mark.fuzz
def test_fuzz_bad_inputs(gen):
    """Random shapes, windows and scales: a ValueError naming an argument, or the reference."""
    def draw(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    for _ in range(5):
        B, N, Hkv, D = draw(1, 2), draw(1, 7), draw(1, 2), (3, 6, 4, 66)[draw(0, 3)]
        Hq = Hkv * draw(1, 2) + (draw(0, 3) == 0)
        x64 = [torch.randn(B, N, Hq, D, generator=gen, dtype=torch.float64)]
        x64 += [torch.randn(B, N, Hkv, D, generator=gen, dtype=torch.float64) for _ in range(4)]
        w1, w2 = draw(0, 8), draw(1, 8)
        scale = (None, 0.5, float("inf"))[draw(0, 2)]
        try:
            out = determinant_attention_triton(*(t.float().to(DEV) for t in x64), w1=w1, w2=w2,
                                               scale=scale)
        except ValueError as e:
            assert any(n in str(e) for n in ("head_dim", "w1", "scale", "q", "multiple")), str(e)
            continue
        assert_close("o", determinant_attention(*x64, w1=w1, w2=w2, scale=scale), out, 1e-4)
