"""Ring-kernel variants (warps) timed at the headline shape, and one small launch of each
backward kernel for Nsight Compute.

    python3 -m benchmarks.profile_ring            # timings
    python3 -m benchmarks.profile_ring --small    # one small launch of each kernel (for ncu)
"""

import dataclasses
import sys

import torch
from triton.testing import do_bench

from simplex_lib.ops.two_simplicial import backward as K_bwd
from simplex_lib.ops.two_simplicial import forward as K_fwd
from simplex_lib.cost import windowed_flops
from simplex_lib.testing import rel_error
from simplex_lib.ops.two_simplicial.configs import bwd_config


def setup(B, N, Hq=64, Hkv=1, D=128, w1=512, w2=32):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, N, Hq, D, device="cuda", dtype=torch.bfloat16, generator=g)
    ks = [torch.randn(B, N, Hkv, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4)]
    o, lse = K_fwd.forward(q, *ks, w1, w2, D ** -0.5)
    do = torch.randn_like(o)
    return q, ks, o, lse, do, K_bwd.compute_delta(o, do)


def main():
    small = "--small" in sys.argv
    B, N = (1, 2048) if small else (2, 8192)
    w1, w2, D = 512, 32, 128
    q, (k1, k2, v1, v2), o, lse, do, delta = setup(B, N)
    base = bwd_config(D, 64, w1, w2)
    F = windowed_flops(N, w1, w2, batch=B, heads=64, head_dim=D)
    variants = [("w8", dataclasses.replace(base, ring_warps=8)),
                ("w4", dataclasses.replace(base, ring_warps=4))]
    ref = None
    for name, cfg in variants:
        try:
            f = lambda: K_bwd.launch_ring(q, k1, k2, v1, v2, do, lse, delta, w1, w2, D ** -0.5, cfg)  # noqa
            out = f()
            if ref is None:
                ref = out
            err = max(rel_error(a, b) for a, b in zip(out, ref))
            if small:
                print(name, "ran", flush=True)
                continue
            ms = do_bench(f, warmup=50, rep=300, return_mode="median")
            print(f"ring {name:8s} {ms:8.2f} ms  (5 passes = {2.5 * F / ms / 1e9:6.1f} TFLOPS-eq)  "
                  f"max rel diff vs w8 {err:.1e}", flush=True)
        except Exception as e:
            print("ring", name, "failed", repr(e)[:300], flush=True)
    K_bwd.launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2, D ** -0.5, base)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
