"""Variants of the Gluon forward timed beside the portable forward, in one process on one GPU.

At each shape (64 query heads on one KV head, B 2, N 8192, bf16) the portable forward at its
default launch and every variant of :func:`~simplex_lib.ops.two_simplicial.hopper.hopper_forward`
given run in turns, so a clock drift reaches all of them alike; each variant's output and LSE are
compared with the portable forward's. Run on an sm_90 GPU from the repository root::

    python -m benchmarks.hopper_sweep --dims 128,64 --variants 64x2,64x2o,64x3o,64x2po,128x2o \\
        --out benchmarks/results/h200/hopper_sweep.json

A variant is ``BLOCK_NxSTAGES`` followed by any of ``p`` (``pipeline=True``: the next key's logits
GEMM in flight under this key's softmax), ``o`` (``operands=True``: a third warp group forms the
logits' operands) and ``v`` (``scaled_values=True``: that group also forms ``V1 * v2[k]``). A
variant a shape cannot take (shared memory, a tile the kernel refuses) is recorded with its error,
and the sweep goes on.

``--ncu`` launches each variant twice and times nothing, for Nsight Compute (the second launch is
the one to profile, after the compile)::

    ncu --clock-control none --launch-skip 1 --launch-count 1 -k regex:_hopper_fwd \\
        python -m benchmarks.hopper_sweep --ncu --dims 128 --variants 128x2
"""

from __future__ import annotations

import argparse
import re
import sys

import torch

from simplex_lib.cost import windowed_flops
from simplex_lib.ops.two_simplicial import forward as kfwd
from simplex_lib.timing import record_meta

from benchmarks.sweep_grid import HEADS, add_grid_args, grid_shapes, sweep_to_record, time_in_turns

_VARIANT = re.compile(r"(\d+)x(\d+)([pov]*)")


def parse_variant(text: str) -> dict:
    """``"64x2po"`` -> ``dict(block_n=64, stages=2, pipeline=True, operands=True,
    scaled_values=False)``: the keyword arguments of ``hopper_forward`` that the variant sets
    (``v``: ``scaled_values``, which implies ``operands``).

    Parameters
    ----------
    text : str
        ``BLOCK_NxSTAGES`` and any of the letters ``p``, ``o``, ``v``, each at most once.

    Returns
    -------
    dict

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not of that form (the message names the form).
    """
    m = _VARIANT.fullmatch(text)
    if m is None or len(set(m[3])) != len(m[3]):
        raise argparse.ArgumentTypeError(
            f"expected BLOCK_NxSTAGES[p][o][v], e.g. 64x2 or 64x3o, got {text!r}")
    block_n, stages = int(m[1]), int(m[2])
    if block_n not in (64, 128) or not 1 <= stages <= 4:
        raise argparse.ArgumentTypeError(f"{text!r}: BLOCK_N must be 64 or 128 and STAGES 1 to 4")
    return dict(block_n=block_n, stages=stages, pipeline="p" in m[3], operands=bool({"o", "v"} & set(m[3])),
                scaled_values="v" in m[3])


def variant_name(v: dict) -> str:
    """The text :func:`parse_variant` reads back into ``v``."""
    letters = "p" * v["pipeline"] + ("v" if v["scaled_values"] else "o" * v["operands"])
    return f"{v['block_n']}x{v['stages']}{letters}"


def _variants(text: str) -> tuple:
    return tuple(parse_variant(v) for v in text.split(","))


def sweep_shape(G: int, D: int, w1: int, w2: int, variants, repeats: int, B: int = 2, N: int = 8192):
    """Time the portable default forward and each Gluon ``variants`` at one shape; returns the
    record's row (``triton.testing.do_bench``'s median of each repeat)."""
    from triton.testing import do_bench

    from simplex_lib.ops.two_simplicial.hopper import hopper_forward

    Hq = HEADS[G]
    g = torch.Generator(device="cuda").manual_seed(0)
    x = [torch.randn(B, N, h, D, device="cuda", dtype=torch.bfloat16, generator=g)
         for h in (Hq,) + (Hq // G,) * 4]
    scale = D ** -0.5
    flops = windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D)
    o_p, lse_p = kfwd.forward(*x, w1, w2, scale)
    runs = {"portable": dict(variant="portable")}
    calls = {"portable": lambda: kfwd.forward(*x, w1, w2, scale)}
    for v in variants:
        name = variant_name(v)
        try:  # the comparisons synchronise: a failure of the launch shows here
            o, lse = hopper_forward(*x, w1, w2, scale, **v)
            runs[name] = dict(variant=name, vs_portable=(o.float() - o_p.float()).abs().max().item(),
                              lse_vs_portable=(lse - lse_p).abs().max().item())
        except Exception as e:  # record it and go on: one bad launch must not end the sweep
            last = (str(e).strip().splitlines() or [""])[-1][:300]
            runs[name] = dict(variant=name, error=f"{type(e).__name__}: {last}")
            continue
        calls[name] = lambda v=v: hopper_forward(*x, w1, w2, scale, **v)
    time_in_turns(calls, runs, flops, repeats,
                  lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median"))
    return dict(G=G, Hq=Hq, D=D, w1=w1, w2=w2, B=B, N=N, runs=list(runs.values()))


def launch_twice(D: int, w1: int, w2: int, variant: dict, B: int = 2, N: int = 8192):
    """Run the Gluon forward at one GQA-64 shape twice with ``variant`` (for a profiler: no
    timing, no record)."""
    from simplex_lib.ops.two_simplicial.hopper import hopper_forward

    Hq = HEADS[64]
    x = [torch.randn(B, N, h, D, device="cuda", dtype=torch.bfloat16) for h in (Hq,) + (Hq // 64,) * 4]
    for _ in range(2):
        hopper_forward(*x, w1, w2, D ** -0.5, **variant)
    torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.hopper_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", type=_variants, required=True,
                    help="comma-separated BLOCK_NxSTAGES[p][o][v], e.g. 64x2,64x2o,64x3o,64x2v")
    add_grid_args(ap)
    ap.set_defaults(gqa=(64,))
    ap.add_argument("--out", default=None, help="the JSON record to write (needed unless --ncu)")
    ap.add_argument("--ncu", action="store_true",
                    help="launch each variant twice, time nothing (for Nsight Compute)")
    a = ap.parse_args(argv)
    shapes = grid_shapes(ap, a)
    if a.out is None and not a.ncu:
        ap.error("--out is needed (the JSON record), unless --ncu")
    if any(G != 64 for G, *_ in shapes):
        ap.error(f"--gqa must be 64 (the Gluon forward's one ratio), got {a.gqa}")
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        ap.error("needs an sm_90 (Hopper) GPU: the Gluon kernels compile for it alone")
    if a.ncu:
        for _, D, w1, w2 in shapes:
            for v in a.variants:
                launch_twice(D, w1, w2, v)
        return 0
    rec = dict(meta=record_meta(), variants=[variant_name(v) for v in a.variants], rows=[])
    sweep_to_record(rec, shapes, lambda *shape: sweep_shape(*shape, a.variants, a.repeats), "variant", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
