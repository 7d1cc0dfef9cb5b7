"""Forward launch configurations timed beside the default, in one process on one GPU.

Each shape of the grid (``simplex_lib.timing.SHAPE_GRID``'s heads per GQA ratio, B 2, N 8192,
bf16) runs the default forward (``fwd_config``) and every configuration given, in turns, so a
clock drift reaches all of them alike; each is checked against the default's output and against
the default run in float32. Run on a GPU machine from the repository root::

    python -m benchmarks.fwd_sweep --gqa 4,8 --dims 128 \\
        --configs pairs:64x32x4x3,pairs:128x64x8x2,offset:64x128x4x2 \\
        --out benchmarks/results/h200/fwd_sweep.json

A configuration is ``WALK:BLOCK_MxBLOCK_NxWARPSxSTAGES``. A configuration a shape cannot take
(too much shared memory, a tile the compiler refuses) is recorded with its error, and the sweep
goes on.

``--ncu`` launches each configuration twice and times nothing, for Nsight Compute (the second
launch is the one to profile, after the compile)::

    ncu --clock-control none --launch-skip 1 --launch-count 1 -k regex:_fwd_pairs \
        python -m benchmarks.fwd_sweep --ncu --gqa 4 --dims 128 --configs pairs:64x32x4x3
"""

from __future__ import annotations

import argparse
import sys

import torch

from simplex_lib.cost import windowed_flops
from simplex_lib.ops.two_simplicial import forward as kfwd
from simplex_lib.ops.two_simplicial.configs import FWD_WALKS, OFFSET_LOADS, FwdConfig, fwd_config, tma_available
from simplex_lib.timing import record_meta

from benchmarks.sweep_grid import HEADS, add_grid_args, grid_shapes, sweep_to_record, time_in_turns



def parse_config(text: str) -> FwdConfig:
    """``"pairs:64x32x4x3"`` -> ``FwdConfig(64, 32, 4, 3, WALK="pairs")``;
    ``"offset+tma:64x128x4x2"`` -> the offset walk with its rows as TMA tiles;
    ``"offset+tma:64x128x4x2x16"`` -> and a last tile of 16 keys (``BLOCK_TAIL``);
    ``"offset+tma:64x128x4x2x16p"`` -> that tile as a launch of its own (``TAIL_PASS``).

    Parameters
    ----------
    text : str
        ``WALK[+LOADS]:BLOCK_MxBLOCK_NxWARPSxSTAGES[xTAIL[p]]``.

    Returns
    -------
    FwdConfig

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not of that form (the message names the form).
    """
    parts = text.split(":")
    usage = (f"expected WALK[+LOADS]:BMxBNxWARPSxSTAGES[xTAIL[p]] with WALK one of {FWD_WALKS} and "
             f"LOADS one of {OFFSET_LOADS}, got {text!r}")
    walk, _, loads = parts[0].partition("+")
    if len(parts) != 2 or walk not in FWD_WALKS or loads not in ("", *OFFSET_LOADS):
        raise argparse.ArgumentTypeError(usage)
    sizes = parts[1].split("x")
    tail_pass = len(sizes) == 5 and sizes[-1].endswith("p")
    if tail_pass:
        sizes[-1] = sizes[-1][:-1]
    try:
        bm, bn, warps, stages, *tail = (int(x) for x in sizes)
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if len(tail) > 1:
        raise argparse.ArgumentTypeError(usage)
    if min(bm, bn, warps, stages) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be >= 1")
    try:
        return FwdConfig(bm, bn, warps, stages, WALK=walk, LOADS=loads or "gather",
                         BLOCK_TAIL=tail[0] if tail else 0, TAIL_PASS=tail_pass)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def _configs(text: str) -> tuple:
    return tuple(parse_config(c) for c in text.split(","))


def _name(cfg: FwdConfig) -> str:
    loads = "+tma" if cfg.LOADS == "tma" else ""
    tail = f"x{cfg.BLOCK_TAIL}{'p' if cfg.TAIL_PASS else ''}" if cfg.BLOCK_TAIL else ""
    return f"{cfg.WALK}{loads}:{cfg.BLOCK_M}x{cfg.BLOCK_N}x{cfg.num_warps}x{cfg.num_stages}{tail}"


def sweep_shape(G: int, D: int, w1: int, w2: int, configs, repeats: int, B: int = 2, N: int = 8192,
                device="cuda", dtype=torch.bfloat16, bench=None, kernels=False):
    """Time the default forward and ``configs`` at one shape; returns the record's row (with
    each run's time per kernel if ``kernels``).

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
    flops = windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D)
    o32, _ = kfwd.forward(*(t.float() for t in x), w1, w2, scale)
    o_def, lse_def = kfwd.forward(*x, w1, w2, scale)
    default = fwd_config(D, G, w1, w2, tma_available(*x[1:]))
    runs = {"default": dict(cfg=_name(default), err32=(o_def.float() - o32).abs().max().item())}
    calls = {"default": lambda: kfwd.forward(*x, w1, w2, scale)}
    for cfg in configs:
        try:  # the comparisons synchronise: a failure of the launch shows here
            o, lse = kfwd.forward(*x, w1, w2, scale, cfg=cfg)
            run = dict(cfg=_name(cfg), err32=(o.float() - o32).abs().max().item(),
                       vs_default=(o.float() - o_def.float()).abs().max().item(),
                       lse_vs_default=(lse - lse_def).abs().max().item())
        except Exception as e:  # record it and go on: one bad launch must not end the sweep
            last = (str(e).strip().splitlines() or [""])[-1][:300]  # Triton puts the cause last
            runs[_name(cfg)] = dict(cfg=_name(cfg), error=f"{type(e).__name__}: {last}")
            continue
        runs[_name(cfg)] = run
        calls[_name(cfg)] = lambda cfg=cfg: kfwd.forward(*x, w1, w2, scale, cfg=cfg)
    time_in_turns(calls, runs, flops, repeats, bench, kernels)
    return dict(G=G, Hq=Hq, D=D, w1=w1, w2=w2, B=B, N=N, runs=list(runs.values()))


def launch_twice(G: int, D: int, w1: int, w2: int, cfg: FwdConfig, B: int = 2, N: int = 8192):
    """Run the forward at one shape twice with ``cfg`` (for a profiler: no timing, no record)."""
    Hq = HEADS[G]
    x = [torch.randn(B, N, h, D, device="cuda", dtype=torch.bfloat16) for h in (Hq,) + (Hq // G,) * 4]
    for _ in range(2):
        kfwd.forward(*x, w1, w2, D ** -0.5, cfg=cfg)
    torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fwd_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=_configs, required=True,
                    help="comma-separated WALK[+LOADS]:BMxBNxWARPSxSTAGES[xTAIL[p]], e.g. pairs:64x32x4x3")
    add_grid_args(ap)
    ap.add_argument("--out", default=None, help="the JSON record to write (needed unless --ncu)")
    ap.add_argument("--ncu", action="store_true",
                    help="launch each configuration twice, time nothing (for Nsight Compute)")
    a = ap.parse_args(argv)
    shapes = grid_shapes(ap, a)
    if a.out is None and not a.ncu:
        ap.error("--out is needed (the JSON record), unless --ncu")
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the timings are of compiled kernels)")
    if a.ncu:
        for G, D, w1, w2 in shapes:
            for cfg in a.configs:
                launch_twice(G, D, w1, w2, cfg)
        return 0
    rec = dict(meta=record_meta(), configs=[_name(c) for c in a.configs], rows=[])
    sweep_to_record(rec, shapes, lambda *shape: sweep_shape(*shape, a.configs, a.repeats, kernels=a.kernels),
                    "cfg", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
