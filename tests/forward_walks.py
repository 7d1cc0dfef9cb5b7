"""The forward kernel with a forced walk, for the walk tests (test_kernels_offset, _pairs)."""

from __future__ import annotations

import torch

from simplex_lib.ops.two_simplicial import forward as fwd
from simplex_lib.ops.two_simplicial.configs import FwdConfig

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def run_forward(x, w1, w2, walk, block_m=16, scale=None, block_n=16, tail=0, tail_pass=False):
    """``(o, lse)`` on the CPU from float32 copies of ``x = (q, k1, k2, v1, v2)``, with
    ``block_m``-row tiles of ``block_n``-key tiles (the offset walk's last one ``tail`` keys
    wide, where given, and run as a launch of its own with ``tail_pass``) and the walk
    forced."""
    xs = [t.float().to(DEV).contiguous() for t in x]
    cfg = FwdConfig(block_m, block_n, 4 if DEV == "cuda" else 1, 1, WALK=walk, BLOCK_TAIL=tail,
                    TAIL_PASS=tail_pass)
    scale = x[0].shape[-1] ** -0.5 if scale is None else scale
    o, lse = fwd.forward(*xs, w1, w2, scale, cfg=cfg)
    return o.cpu(), lse.cpu()
