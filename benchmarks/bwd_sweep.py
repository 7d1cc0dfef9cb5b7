"""Portable backward launches timed beside the default, in one process on one GPU.

Each shape of the grid (``simplex_lib.timing.SHAPE_GRID``'s heads per GQA ratio, B 2, N 8192,
bf16) runs the default backward (``bwd_config``) and every variant given, in turns, so a clock
drift reaches all of them alike; each variant's five gradients are checked against the
default's and against the default run in float32. Run on a GPU machine from the repository
root::

    python -m benchmarks.bwd_sweep --gqa 4,8 --dims 128 \\
        --variants WALK=offset,short_warps=4+BLOCK_N=32,FUSED_MASKS=edges \\
        --out benchmarks/results/h200/bwd_sweep.json

A variant is ``FIELD=VALUE[+FIELD=VALUE...]``: fields of ``BwdConfig`` replaced in the shape's
default (``short_warps=4+BLOCK_N=32`` gives the fused short-window kernel four warps and
32-key long-window tiles where that kernel runs). A variant a shape cannot take is recorded
with its error, and the sweep goes on. The times are of the portable backward alone
(``ops.two_simplicial.backward.backward``), not of the Hopper-native one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from simplex_lib.cost import windowed_flops
from simplex_lib.ops.two_simplicial import backward as kbwd
from simplex_lib.ops.two_simplicial import forward as kfwd
from simplex_lib.ops.two_simplicial.configs import BwdConfig, bwd_config, tma_available
from simplex_lib.timing import record_meta

from benchmarks.sweep_grid import HEADS, add_grid_args, grid_shapes, sweep_to_record, time_in_turns

FIELDS = {f.name: f.type for f in dataclasses.fields(BwdConfig)}
GRADS = ("dq", "dk1", "dk2", "dv1", "dv2")


def parse_variant(text: str) -> dict:
    """``"short_warps=4+BLOCK_N=32"`` -> ``{"short_warps": 4, "BLOCK_N": 32}``.

    Parameters
    ----------
    text : str
        ``FIELD=VALUE[+FIELD=VALUE...]`` with fields of ``BwdConfig``.

    Returns
    -------
    dict
        The replacements, integers where the field is one.

    Raises
    ------
    argparse.ArgumentTypeError
        If a part is not ``FIELD=VALUE``, names no field, or gives an integer field a value
        that is not an integer >= 1 (``*_warps``, ``kv_stages`` and ``RING_MAX`` take 0).
    """
    out = {}
    for part in text.split("+"):
        name, eq, value = part.partition("=")
        if not eq or not value:
            raise argparse.ArgumentTypeError(f"expected FIELD=VALUE[+FIELD=VALUE...], got {text!r}")
        if name not in FIELDS:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a BwdConfig field; fields: {', '.join(FIELDS)}")
        if FIELDS[name] in (int, "int"):
            least = 0 if name.endswith("_warps") or name in ("kv_stages", "RING_MAX") else 1
            if not value.isdigit() or int(value) < least:
                raise argparse.ArgumentTypeError(f"{name} must be an integer >= {least}, got {value!r}")
            out[name] = int(value)
        else:
            out[name] = value
    return out


def _variants(text: str) -> tuple:
    return tuple((v, parse_variant(v)) for v in text.split(","))


def sweep_shape(G: int, D: int, w1: int, w2: int, variants, repeats: int, B: int = 2,
                N: int = 8192, device="cuda", dtype=torch.bfloat16, bench=None, kernels=False):
    """Time the default backward and ``variants`` (``(name, replacements)`` pairs) at one
    shape; returns the record's row (with each run's time per kernel if ``kernels``).

    ``bench(fn) -> ms`` defaults to ``triton.testing.do_bench``'s median (the tests pass a
    stand-in, to run the bookkeeping on a CPU under the interpreter)."""
    if bench is None:
        from triton.testing import do_bench

        def bench(fn):
            return do_bench(fn, warmup=25, rep=100, return_mode="median")

    Hq = HEADS[G]
    g = torch.Generator(device=device).manual_seed(0)
    x = [torch.randn(B, N, h, D, device=device, dtype=dtype, generator=g)
         for h in (Hq,) + (Hq // G,) * 4]
    scale = D ** -0.5
    flops = 2.5 * windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D)
    o, lse = kfwd.forward(*x, w1, w2, scale)
    do = torch.randn(o.shape, device=device, dtype=dtype, generator=g)
    x32 = [t.float() for t in x]
    o32, lse32 = kfwd.forward(*x32, w1, w2, scale)
    g32 = kbwd.backward(do.float(), *x32, o32, lse32, w1, w2, scale)
    default = bwd_config(D, G, w1, w2, tma_available(*x[1:]))

    def run(cfg):
        return kbwd.backward(do, *x, o, lse, w1, w2, scale, cfg)

    def errors(grads, against):
        return {n: (a.float() - b.float()).abs().max().item() for n, a, b in zip(GRADS, grads, against)}

    g_def = run(default)
    runs = {"default": dict(variant="default", cfg=repr(default), err32=errors(g_def, g32))}
    calls = {"default": lambda: run(default)}
    for name, repl in variants:
        try:  # the comparisons synchronise: a failure of the launch shows here
            cfg = dataclasses.replace(default, **repl)
            grads = run(cfg)
            runs[name] = dict(variant=name, cfg=repr(cfg), err32=errors(grads, g32),
                              vs_default=errors(grads, g_def))
        except Exception as e:  # record it and go on: one bad launch must not end the sweep
            last = (str(e).strip().splitlines() or [""])[-1][:300]  # Triton puts the cause last
            runs[name] = dict(variant=name, error=f"{type(e).__name__}: {last}")
            continue
        calls[name] = lambda cfg=cfg: run(cfg)
    time_in_turns(calls, runs, flops, repeats, bench, kernels)
    return dict(G=G, Hq=Hq, D=D, w1=w1, w2=w2, B=B, N=N, runs=list(runs.values()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bwd_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", type=_variants, required=True,
                    help="comma-separated FIELD=VALUE[+FIELD=VALUE...] of BwdConfig, e.g. WALK=offset")
    add_grid_args(ap)
    ap.add_argument("--out", required=True, help="the JSON record to write")
    a = ap.parse_args(argv)
    shapes = grid_shapes(ap, a)
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the timings are of compiled kernels)")
    rec = dict(meta=record_meta(), variants=[n for n, _ in a.variants], rows=[])
    sweep_to_record(rec, shapes, lambda *shape: sweep_shape(*shape, a.variants, a.repeats,
                                                             kernels=a.kernels), "variant", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
