"""What the launch sweeps (``fwd_sweep``, ``bwd_sweep``) share: the shape grid's arguments, their
checks, the loop that times each shape and writes the record after every one, and the per-kernel
profile of one call (``--kernels``)."""

from __future__ import annotations

import json
import statistics

import torch

from simplex_lib.cli import int_at_least, int_list
from simplex_lib.timing import SHAPE_GRID

#: Query heads per GQA ratio in the benchmark's shape grid.
HEADS = dict(zip(SHAPE_GRID["gqa"], SHAPE_GRID["heads"]))


def add_grid_args(ap) -> None:
    """``--gqa``, ``--dims``, ``--windows`` and ``--repeats`` on an ``argparse`` parser."""
    ap.add_argument("--gqa", type=int_list(1), default=(1, 4, 8),
                    help=f"GQA ratios, of {tuple(HEADS)} (default 1,4,8)")
    ap.add_argument("--dims", type=int_list(16), default=(128, 64), help="head dims (default 128,64)")
    ap.add_argument("--windows", default="512x32", help="w1xw2 pairs, comma-separated (default 512x32)")
    ap.add_argument("--repeats", type=int_at_least(1), default=3)
    ap.add_argument("--kernels", action="store_true",
                    help="also record each run's time per kernel (torch.profiler, ms per call)")


def kernel_times(fn, calls: int = 5, warmup: int = 3, floor_ms: float = 0.01) -> dict:
    """Self time per kernel launch of one ``fn()`` call, in ms, largest first.

    ``fn`` runs ``warmup`` times, then ``calls`` times under ``torch.profiler``; each launch's
    time is divided by ``calls``. A kernel launched more than once per call gets one entry per
    launch, in launch order (``_bwd_kv_kernel#1``, ``#2``: the two key sets). Launches under
    ``floor_ms`` per call (the checks' small element-wise kernels) are summed into
    ``"(others)"``. Without CUDA the profile is of the CPU operators' self time, so the
    bookkeeping runs in the CPU test suite.
    """
    from collections import Counter, defaultdict

    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()
    kind = DeviceType.CUDA if cuda else DeviceType.CPU
    events = sorted((e for e in prof.events() if e.device_type == kind),
                    key=lambda e: e.time_range.start)
    count, seen, total = Counter(e.name for e in events), Counter(), defaultdict(float)
    for e in events:
        per_call = count[e.name] // calls if count[e.name] % calls == 0 else 1
        name = e.name[:80]
        if per_call > 1:
            name = f"{name}#{seen[e.name] % per_call + 1}"
        seen[e.name] += 1
        us = e.time_range.elapsed_us() if cuda else e.self_cpu_time_total
        total[name] += us / calls / 1e3
    out = {k: round(v, 3) for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v >= floor_ms}
    others = sum(v for v in total.values() if v < floor_ms)
    if others:
        out["(others)"] = round(others, 3)
    return out


def time_in_turns(calls: dict, runs: dict, flops: float, repeats: int, bench, kernels: bool = False) -> None:
    """Time each of ``calls`` (name -> function) ``repeats`` times with ``bench(fn) -> ms``, in turns,
    so that a drift of the clock reaches every entry alike; add to ``runs[name]`` the median ms,
    each repeat's ms and the TFLOPS of ``flops`` (median, slowest, fastest), and with ``kernels``
    the time per kernel (:func:`kernel_times`)."""
    each = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            each[k].append(bench(fn))
    for k, ms in each.items():
        med = statistics.median(ms)
        runs[k].update(ms=med, ms_each=ms, tflops=flops / med / 1e9,
                       tflops_min=flops / max(ms) / 1e9, tflops_max=flops / min(ms) / 1e9)
        if kernels:
            runs[k]["kernels"] = kernel_times(calls[k])


def grid_shapes(ap, a) -> list:
    """The ``(G, D, w1, w2)`` shapes the parsed arguments ``a`` ask for, in order; a one-line
    usage error through ``ap`` for a ratio outside the grid or a malformed window pair."""
    bad = [g for g in a.gqa if g not in HEADS]
    if bad:
        ap.error(f"--gqa must be among {tuple(HEADS)}, got {bad}")
    try:
        windows = [tuple(int(v) for v in w.split("x")) for w in a.windows.split(",")]
    except ValueError:
        windows = None
    if not windows or any(len(w) != 2 or w[0] < w[1] or w[1] < 1 for w in windows):
        ap.error(f"--windows must be like 512x32,256x64 with w1 >= w2 >= 1, got {a.windows!r}")
    return [(G, D, w1, w2) for G in a.gqa for D in a.dims for w1, w2 in windows]


def sweep_to_record(rec: dict, shapes, sweep, label: str, out: str) -> dict:
    """Run ``sweep(G, D, w1, w2)`` (a record row with ``runs``) at each shape, print each run's
    ``label`` and TFLOPS (or its error), and write ``rec`` to ``out`` after every shape, so a
    cut-off run keeps what it has."""
    for G, D, w1, w2 in shapes:
        row = sweep(G, D, w1, w2)
        rec["rows"].append(row)
        for r in row["runs"]:
            what = f"{r['tflops']:6.1f} TFLOPS" if "tflops" in r else r["error"]
            print(f"GQA {G:2d} D {D:3d} {w1}x{w2} {r[label]:32s} {what}", flush=True)
        with open(out, "w") as f:
            json.dump(rec, f, indent=1)
    return rec
