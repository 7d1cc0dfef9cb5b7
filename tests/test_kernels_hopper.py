"""The Gluon Hopper forward (``simplex_lib.ops.two_simplicial.hopper``): input checks on the CPU;
on an sm_90 GPU, the output against the windowed float64 reference (itself checked against the
dense reference in ``tests/test_windowed.py``) and the LSE against the portable kernel.

Gluon kernels do not run under the interpreter; ``tests/test_kernels_compile.py`` compiles this
one for sm_90 on the CPU.
"""
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


def _sm90():
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="needs a Hopper GPU")
@pytest.mark.parametrize("B, N, Hkv, D, w1, w2, block_n", [
    (1, 1, 1, 128, 128, 32, 128),       # one position
    (2, 300, 1, 128, 128, 32, 128),     # N not a multiple of the tile; windows longer than the start
    (1, 333, 2, 64, 256, 16, 128),      # two KV heads, D 64
    (1, 260, 1, 128, 128, 7, 64),       # odd short window, BLOCK_N 64
    (1, 200, 1, 128, 256, 32, None),    # the default tile
    (1, 90, 1, 128, 512, 512, 128),     # both windows longer than the sequence
])
@pytest.mark.parametrize("pipeline", [False, True])
def test_matches_the_reference(B, N, Hkv, D, w1, w2, block_n, pipeline):
    xs = _inputs(B, N, Hkv, D, "cuda")
    scale = D ** -0.5
    o, lse = hopper_forward(*xs, w1, w2, scale, block_n=block_n, pipeline=pipeline)
    want = windowed_two_simplicial_attention(*(t.double() for t in xs), w1=w1, w2=w2, scale=scale)
    o_p, lse_p = portable.forward(*xs, w1, w2, scale)
    err, err_p = ((t.double() - want).abs().max().item() for t in (o, o_p))
    assert not torch.isnan(o).any()
    assert err <= 2 * err_p + 2e-3, (err, err_p)   # no worse than the portable kernel's bf16 error
    torch.testing.assert_close(lse, lse_p, atol=2e-2, rtol=0)
