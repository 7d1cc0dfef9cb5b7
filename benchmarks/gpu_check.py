"""One device call: correctness at large shapes, a config sweep and timings of the kernels.

Run on a GPU machine from the repository root::

    PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check [--quick] [--sweep] [--compile]

Writes ``$OUT/gpu_check.json`` (or ``/tmp``) and prints a short table last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import torch
from triton.testing import do_bench

from simplex_lib.ops.two_simplicial import backward as K_bwd
from simplex_lib.ops.two_simplicial import forward as K_fwd
from simplex_lib.ops.two_simplicial.configs import BwdConfig, bwd_config, fwd_config
from simplex_lib.ops.two_simplicial.interface import two_simplicial_attention as tsa
from simplex_lib.cost import windowed_flops
from simplex_lib.testing import rel_error as rel
from simplex_lib.timing import record_meta
from simplex_lib.ops.two_simplicial.windowed import windowed_two_simplicial_attention as ref_attention

OUT = os.environ.get("OUT", "/tmp")
REC: dict = {"meta": {}, "correctness": [], "timings": [], "sweep": [], "notes": []}


def log(*a):
    print(*a, flush=True)


def rand_inputs(B, N, Hq, Hkv, D, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(B, N, Hq, D, device="cuda", dtype=dtype, generator=g)
    kv = [torch.randn(B, N, Hkv, D, device="cuda", dtype=dtype, generator=g) for _ in range(4)]
    return [q] + kv


def check_case(B, N, Hq, Hkv, D, w1, w2, dtype, seed, noncontig=False):
    xs = rand_inputs(B, N, Hq, Hkv, D, dtype, seed)
    if noncontig:
        xs = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in xs]
    xs = [t.requires_grad_() for t in xs]
    out = torch.full_like(xs[0], float("nan"))
    out = tsa(*xs, w1=w1, w2=w2)
    do = torch.randn_like(out)
    grads = torch.autograd.grad(out, xs, do)
    xr = [t.detach().double().requires_grad_() for t in xs]
    ref = ref_attention(*xr, w1=w1, w2=w2)
    gref = torch.autograd.grad(ref, xr, do.double())
    errs = {"o": rel(out, ref)}
    for n, a, b in zip(("dq", "dk1", "dk2", "dv1", "dv2"), grads, gref):
        errs[n] = rel(a, b)
    finite = bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(g).all()) for g in grads)
    # determinism: a second backward must be bitwise equal
    grads2 = torch.autograd.grad(tsa(*xs, w1=w1, w2=w2), xs, do)
    det = all(torch.equal(a, b) for a, b in zip(grads, grads2))
    tol = 3e-4 if dtype == torch.float32 else 2e-2
    # With N = 1 the exact dq, dk1, dk2 are 0 (one pair, P = 1): only rounding is left.
    small = N == 1 and all(g.abs().max() < 0.05 for g in grads[:3])
    ok = finite and det and all(e < tol or (small and k in ("dq", "dk1", "dk2")) for k, e in errs.items())
    row = dict(shape=[B, N, Hq, Hkv, D], w=[w1, w2], dtype=str(dtype), noncontig=noncontig,
               errs=errs, finite=finite, deterministic=det, ok=ok)
    REC["correctness"].append(row)
    log(("OK  " if ok else "FAIL"), row)
    return ok


def flops_fwd(B, Hq, N, D, w1, w2):
    return windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D)


def time_fwd(B, N, Hq, Hkv, D, w1, w2, cfg=None, dtype=torch.bfloat16, rep=200):
    q, k1, k2, v1, v2 = rand_inputs(B, N, Hq, Hkv, D, dtype, 1)
    scale = D ** -0.5
    fn = lambda: K_fwd.forward(q, k1, k2, v1, v2, w1, w2, scale, cfg)  # noqa: E731
    ms = do_bench(fn, warmup=50, rep=rep, return_mode="median")
    return ms


def time_bwd_parts(B, N, Hq, Hkv, D, w1, w2, cfg=None, dtype=torch.bfloat16, rep=300,
                   parts_ring_only=False):
    q, k1, k2, v1, v2 = rand_inputs(B, N, Hq, Hkv, D, dtype, 2)
    scale = D ** -0.5
    o, lse = K_fwd.forward(q, k1, k2, v1, v2, w1, w2, scale)
    do = torch.randn_like(o)
    cfg = cfg or bwd_config(D, Hq // Hkv, w1, w2)
    delta = (do.float() * o.float()).sum(-1).transpose(1, 2).contiguous()
    parts = {
        "kv1": lambda: K_bwd.launch_kv(q, k1, v1, k2, v2, do, lse, delta, w1, w2, scale, cfg),
        "total": lambda: K_bwd.backward(do, q, k1, k2, v1, v2, o, lse, w1, w2, scale, cfg),
    }
    if K_bwd.use_ring(q, k1, w2, cfg):
        parts["ring"] = lambda: K_bwd.launch_ring(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg)
    if not parts_ring_only:
        parts["dq"] = lambda: K_bwd.launch_dq(q, k1, k2, v1, v2, do, lse, delta, w1, w2, scale, cfg)
        parts["kv2"] = lambda: K_bwd.launch_kv(q, k2, v2, k1, v1, do, lse, delta, w2, w1, scale, cfg,
                                               short_set=True)
    return {k: do_bench(f, warmup=50, rep=rep, return_mode="median") for k, f in parts.items()}


def sdpa_ms(B, H, N, D, bwd=False):
    q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16, requires_grad=bwd)
               for _ in range(3))
    f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa
    if not bwd:
        return do_bench(f, warmup=50, rep=200, return_mode="median")
    o = f()
    do = torch.randn_like(o)
    return do_bench(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), warmup=50,
                    rep=200, return_mode="median")


def compile_check():
    """torch.compile(fullgraph=True) of a small model that calls the kernel, fwd + bwd."""
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(64, 64 * 5, device="cuda", dtype=torch.bfloat16)

        def forward(self, x):
            B, N, _ = x.shape
            q, k1, k2, v1, v2 = self.proj(x).view(B, N, 5, 4, 16).unbind(2)
            return tsa(q, k1, k2, v1, v2, w1=32, w2=8).sum()

    m = Tiny()
    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.bfloat16)
    torch._dynamo.reset()
    cm = torch.compile(m, fullgraph=True)
    loss = cm(x)
    loss.backward()
    eager = m(x)
    return {"fullgraph": True, "loss_compiled": float(loss), "loss_eager": float(eager)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer correctness cases")
    ap.add_argument("--sweep", action="store_true",
                    help="backward config sweep (the forward's: benchmarks/fwd_sweep.py)")
    ap.add_argument("--compile", action="store_true", help="torch.compile fullgraph check")
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    REC["meta"] = record_meta()
    log(REC["meta"])
    summary = []
    try:
        if not args.no_check:
            bf, fp16, f32 = torch.bfloat16, torch.float16, torch.float32
            cases = [
                (1, 256, 64, 1, 128, 512, 32, bf, 0, False),
                (1, 301, 4, 4, 64, 64, 16, bf, 1, False),
                (2, 257, 8, 2, 32, 33, 70, fp16, 2, True),
                (1, 200, 1, 1, 128, 128, 128, bf, 3, False),
                (1, 130, 128, 1, 64, 16, 16, bf, 4, False),
                (1, 100, 6, 2, 16, 17, 5, f32, 5, False),
                (1, 1, 4, 1, 64, 8, 8, bf, 6, False),
            ]
            if args.quick:
                cases = [cases[i] for i in (0, 1, 4, 6)]
            for c in cases:
                try:
                    check_case(*c)
                except Exception as e:  # keep going: report every case
                    log("FAIL (exception)", c, repr(e))
                    traceback.print_exc()
                    REC["correctness"].append(dict(case=str(c), error=repr(e), ok=False))
        if args.compile:
            try:
                REC["compile"] = compile_check()
                log("compile", REC["compile"])
            except Exception as e:
                traceback.print_exc()
                REC["compile"] = {"error": repr(e)}

        # headline timings
        B, N, Hq, Hkv, D, w1, w2 = 2, 8192, 64, 1, 128, 512, 32
        F = flops_fwd(B, Hq, N, D, w1, w2)
        ms = time_fwd(B, N, Hq, Hkv, D, w1, w2)
        summary.append(("fwd headline", ms, F / ms / 1e9))
        REC["timings"].append(dict(what="fwd", shape=[B, N, Hq, Hkv, D], w=[w1, w2], ms=ms,
                                   tflops=F / ms / 1e9, cfg=str(fwd_config(D, Hq // Hkv, w1, w2))))
        parts = time_bwd_parts(B, N, Hq, Hkv, D, w1, w2)
        REC["timings"].append(dict(what="bwd", shape=[B, N, Hq, Hkv, D], w=[w1, w2], ms=parts,
                                   tflops=2.5 * F / parts["total"] / 1e9))
        summary.append(("bwd headline (2.5x)", parts["total"], 2.5 * F / parts["total"] / 1e9))
        for k, v in parts.items():
            summary.append((f"  bwd part {k}", v, float("nan")))
        # D64 and GQA 1 variants
        for (B_, N_, Hq_, Hkv_, D_, a, b) in [(2, 8192, 64, 1, 64, 512, 32),
                                              (2, 8192, 64, 1, 128, 256, 64),
                                              (1, 8192, 16, 16, 128, 512, 32)]:
            F_ = flops_fwd(B_, Hq_, N_, D_, a, b)
            ms = time_fwd(B_, N_, Hq_, Hkv_, D_, a, b)
            summary.append((f"fwd {B_}x{N_} Hq{Hq_} Hkv{Hkv_} D{D_} {a}x{b}", ms, F_ / ms / 1e9))
            REC["timings"].append(dict(what="fwd", shape=[B_, N_, Hq_, Hkv_, D_], w=[a, b], ms=ms,
                                       tflops=F_ / ms / 1e9))
        s = sdpa_ms(1, 16, 16384, 128)
        summary.append(("sdpa causal fwd B1 H16 N16k D128", s, 4 * 16 * 16384 ** 2 * 128 / 2 / s / 1e9))
        REC["timings"].append(dict(what="sdpa_fwd", ms=s))

        if args.sweep:  # the forward's launches: benchmarks/fwd_sweep.py
            for cfg in [BwdConfig(64, 128, 128, 32, 4, 2, kv_warps=8, kv_stages=2, ring_warps=4),
                        BwdConfig(64, 128, 128, 32, 4, 2, kv_warps=8, kv_stages=2, ring_warps=8),
                        BwdConfig(64, 128, 128, 32, 4, 3, kv_warps=8, kv_stages=2, ring_warps=8)]:
                try:
                    parts = time_bwd_parts(B, N, Hq, Hkv, D, w1, w2, cfg=cfg, rep=150,
                                           parts_ring_only=True)
                    REC["sweep"].append(dict(kind="bwd", cfg=str(cfg), ms=parts))
                    summary.append((f"sweep bwd {cfg} {parts}", parts["total"], 2.5 * F / parts["total"] / 1e9))
                except Exception as e:
                    REC["sweep"].append(dict(kind="bwd", cfg=str(cfg), error=repr(e)[:300]))
                    log("sweep fail", cfg, repr(e)[:300])
    finally:
        with open(os.path.join(OUT, "gpu_check.json"), "w") as f:
            json.dump(REC, f, indent=1, default=str)
        log("\n=== summary (TFLOPS: fwd 4*B*Hq*N*D*w1*w2, bwd 2.5x) ===")
        for name, ms, tf in summary:
            log(f"{name:60s} {ms if isinstance(ms, float) else ms:>10.3f} ms {tf:8.1f} TFLOPS")
        nbad = sum(1 for r in REC["correctness"] if not r.get("ok"))
        log(f"correctness: {len(REC['correctness']) - nbad} ok, {nbad} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
