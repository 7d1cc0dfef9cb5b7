"""GPU checks of the 2-simplicial kernels at realistic shapes (skipped without CUDA).

bf16/fp16 against the float64 reference (relative L2 error), determinism of the backward,
and ``torch.compile(fullgraph=True)`` through the custom op.
"""

import pytest
import torch

from simplex_lib.kernels import two_simplicial_attention as kernel_attention
from simplex_lib.reference import two_simplicial_attention as reference_attention

pytestmark = pytest.mark.gpu


def _rand(shape, dtype, g):
    return torch.randn(shape, device="cuda", dtype=dtype, generator=g)


@pytest.mark.parametrize(
    "B,N,Hq,Hkv,D,w1,w2,dtype",
    [
        (1, 256, 64, 1, 128, 512, 32, torch.bfloat16),  # headline layout, ring backward
        (1, 301, 4, 4, 64, 64, 16, torch.bfloat16),  # no GQA: sequence tiling
        (2, 257, 8, 2, 32, 33, 70, torch.float16),  # w2 > w1
        (1, 130, 128, 1, 64, 16, 16, torch.bfloat16),  # GQA 128: two head blocks
    ],
)
def test_matches_reference_on_gpu(B, N, Hq, Hkv, D, w1, w2, dtype):
    g = torch.Generator(device="cuda").manual_seed(N)
    xs = [_rand((B, N, Hq, D), dtype, g)] + [_rand((B, N, Hkv, D), dtype, g) for _ in range(4)]
    xs = [t.requires_grad_() for t in xs]
    out = kernel_attention(*xs, w1=w1, w2=w2)
    do = torch.randn_like(out)
    grads = torch.autograd.grad(out, xs, do)
    xr = [t.detach().double().requires_grad_() for t in xs]
    ref = reference_attention(*xr, w1=w1, w2=w2)
    gref = torch.autograd.grad(ref, xr, do.double())
    for name, a, b in zip(("o", "dq", "dk1", "dk2", "dv1", "dv2"), (out, *grads), (ref, *gref)):
        err = (a.double() - b).norm() / b.norm()
        assert err < 2e-2, f"{name}: {err:.2e}"
    again = torch.autograd.grad(kernel_attention(*xs, w1=w1, w2=w2), xs, do)
    assert all(torch.equal(a, b) for a, b in zip(grads, again)), "backward is not deterministic"


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    proj = torch.nn.Linear(64, 5 * 64, device="cuda", dtype=torch.bfloat16)

    def f(x):
        B, N, _ = x.shape
        q, k1, k2, v1, v2 = proj(x).view(B, N, 5, 4, 16).unbind(2)
        return kernel_attention(q, k1, k2, v1, v2, w1=32, w2=8).float().square().mean()

    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.bfloat16)
    loss = torch.compile(f, fullgraph=True)(x)
    loss.backward()
    assert torch.allclose(loss, f(x), rtol=1e-3)
