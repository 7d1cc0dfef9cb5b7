"""Benchmarks of the 2-simplicial Triton kernels: the command line (nothing imports this module).

Run ``python -m simplex_lib.bench --help`` on a GPU machine. The measurements are
:mod:`simplex_lib.timing`'s; every record carries :func:`simplex_lib.timing.record_meta` (GPU,
versions, date, git commit and the FLOP convention). Example (a few minutes on an H100)::

    python -m simplex_lib.bench --windows 512x32 --dims 128 --gqa 64 --seqlens 8192 --table1

``--topk`` instead checks the top-k kernels against the float64 reference and times them beside
the windowed kernel at equal pair counts, with the indexer that would choose the keys (ReLU
scores of every past key and the top-k selection) timed per length::

    python -m simplex_lib.bench --topk --name topk_bench

With a selection shared by the heads (the benchmark's), the top-k forward is the head-packed
kernel for groups of at least ``PACK_MIN_GROUP`` heads; ``--topk-kernel row`` (or ``packed``)
times one kernel on every shape, so the two can be compared::

    python -m simplex_lib.bench --topk --topk-kernel row --name topk_bench_row
    python -m simplex_lib.bench --topk --topk-kernel packed --name topk_bench_packed
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from simplex_lib import timing, viz
from simplex_lib.cli import int_at_least, int_list
from simplex_lib.ops.two_simplicial.configs import (BWD_SHORT_PATHS, BWD_WALKS, FUSED_WALKS, FWD_WALKS,
                                                    OFFSET_LOADS)
from simplex_lib.ops.two_simplicial.interface import KERNEL_BACKENDS
from simplex_lib.ops.topk.triton import TOPK_KERNELS, topk_dispatch, topk_two_simplicial_attention_triton
from simplex_lib.ops.topk.reference import topk_two_simplicial_attention as topk_reference
from simplex_lib.testing import rel_error

PROG = "python -m simplex_lib.bench"


def check_topk_gpu(dtypes=(torch.bfloat16, torch.float32)) -> list:
    """Relative errors of the compiled top-k kernels against the float64 reference (GPU).

    Four fixed shapes (one with a second selection ``idx2``, several selection heads, long
    sequences with ``Hq=64, Hkv=1``, a group of 24 heads with one selection per KV head), random
    causal selections, seed 0; the output and all five input gradients are compared with
    :func:`simplex_lib.testing.rel_error`. The last two take the head-packed forward unless
    ``$SIMPLEX_TOPK_KERNEL`` says otherwise; each record names the forward it ran.

    Parameters
    ----------
    dtypes : sequence of torch.dtype, default ``(torch.bfloat16, torch.float32)``
        Input dtypes of the kernel; the reference runs in float64 on the same rounded inputs.

    Returns
    -------
    list of dict
        One per dtype and shape, with ``shape`` ``[B, N, Hq, Hkv, D]``, ``k``, ``k2``,
        ``idx_heads``, ``kernel`` (``"packed"`` or ``"row"``), ``dtype``, ``errs`` (``o``, ``dq``,
        ``dk1``, ``dk2``, ``dv1``, ``dv2``) and ``ok`` (every error below 3e-2, or 1e-4 for
        float32); a shape the forced kernel cannot take (``SIMPLEX_TOPK_KERNEL=packed`` with
        per-head selections) has ``skipped`` instead of ``errs``.
    """
    out = []
    shapes = [(1, 300, 8, 2, 64, 32, 2, None), (2, 257, 4, 1, 128, 16, 4, 8), (1, 130, 64, 1, 128, 64, 1, None),
              (1, 200, 48, 2, 64, 24, 2, 8)]
    g = torch.Generator(device="cuda").manual_seed(0)
    for dtype in dtypes:
        for B, N, Hq, Hkv, D, k, Hi, k2 in shapes:
            rec = {"shape": [B, N, Hq, Hkv, D], "k": k, "k2": k2, "idx_heads": Hi, "dtype": str(dtype)}
            try:
                rec["kernel"] = topk_dispatch(Hi, None if k2 is None else Hi, Hq, Hkv)
            except ValueError as e:  # SIMPLEX_TOPK_KERNEL=packed and a per-head selection
                out.append({**rec, "kernel": None, "skipped": str(e), "ok": True})
                continue
            x64 = [torch.randn(B, N, h, D, device="cuda", dtype=torch.float64, generator=g)
                   for h in (Hq, Hkv, Hkv, Hkv, Hkv)]
            idx = timing.random_causal_topk(B, N, Hi, k, generator=g)
            idx2 = None if k2 is None else timing.random_causal_topk(B, N, Hi, k2, generator=g)
            xs = [t.to(dtype).requires_grad_() for t in x64]
            xr = [t.to(dtype).double().requires_grad_() for t in x64]
            o = topk_two_simplicial_attention_triton(*xs, idx, idx2=idx2)
            r = topk_reference(*xr, idx, idx2=idx2)
            do = torch.randn(r.shape, device="cuda", dtype=torch.float64, generator=g)
            got = torch.autograd.grad(o, xs, do.to(dtype))
            want = torch.autograd.grad(r, xr, do)
            errs = {"o": rel_error(o, r)}
            for n, a, w in zip(("dq", "dk1", "dk2", "dv1", "dv2"), got, want):
                errs[n] = rel_error(a, w)
            out.append({**rec, "errs": errs,
                        "ok": max(errs.values()) < (3e-2 if dtype != torch.float32 else 1e-4)})
    return out


def print_table(result: dict) -> None:
    """A plain-text table of the records.

    Parameters
    ----------
    result : dict
        ``{"records": [...]}`` as :func:`simplex_lib.timing.run_benchmark` returns; printed one
        line per record (ms to 3 decimals, TFLOPS to 1, peak memory in MiB, a failed record's
        error at the end of its line).
    """
    cols = ("group", "backend", "mode", "B", "N", "Hq", "Hkv", "D", "w1", "w2", "ms", "tflops", "tflops_min",
            "tflops_max", "peak_extra_bytes")
    print(" ".join(f"{c:>9s}" for c in cols))
    for r in result["records"]:
        vals = []
        for c in cols:
            v = r.get(c, "")
            if isinstance(v, float):
                v = f"{v:.3f}" if c == "ms" else f"{v:.1f}"
            elif c == "peak_extra_bytes" and v != "":
                v = f"{v / 2**20:.0f}MiB"
            vals.append(f"{str(v):>9s}")
        print(" ".join(vals) + ("  ERROR " + r["error"][:80] if "error" in r else ""))


def print_compiled(rows: list) -> None:
    """One line per compiled kernel: warps, stages, shared memory, registers and spills.

    Parameters
    ----------
    rows : list of dict
        As :func:`simplex_lib.timing.compiled_kernels` returns.
    """
    if rows:
        print(f"{'kernel':28s} {'warps':>5s} {'stages':>6s} {'shared':>8s} {'regs':>5s} {'spills':>6s}  constexprs")
    for r in rows:
        consts = " ".join(f"{k}={v}" for k, v in r["constexprs"].items())
        print(f"{r['kernel']:28s} {r['num_warps']:5d} {r['num_stages']:6d} {r['shared_bytes']:8d} "
              f"{r['n_regs']:5d} {r['n_spills']:6d}  {consts}")


def plot_results(result: dict, out_dir: str) -> list:
    """Save the plots (TFLOPS vs length per window; Table 1 latencies); return their paths.

    Parameters
    ----------
    result : dict
        ``{"meta", "records"}`` from :func:`simplex_lib.timing.run_benchmark`; failed records
        are left out.
    out_dir : str
        Existing folder for ``kernel_tflops.png`` (when there are ``kernel``/``sdpa`` records)
        and ``table1_latency.png`` (when there are ``table1`` records).

    Returns
    -------
    list of str, the paths written (possibly empty).
    """
    paths = []
    recs = [r for r in result["records"] if "error" not in r]
    main = [r for r in recs if r["group"] in ("kernel", "sdpa")]
    gpu = result["meta"].get("device", result["meta"].get("gpu", ""))
    if main:
        modes = sorted({r["mode"] for r in main}, key=timing.MODES.index)
        fig, axes = viz.new_figure(ncols=len(modes))
        axes = axes if len(modes) > 1 else [axes]
        colors = [viz.PALETTE[k] for k in ("simplicial", "accent", "accent2", "accent3", "reference")]
        windows = sorted({(r["w1"], r["w2"]) for r in main if r["group"] == "kernel"})
        wcolor = {w: colors[i % len(colors)] for i, w in enumerate(windows)}
        dims = sorted({r["D"] for r in main})
        dstyle = {D: ("-", "o") if D == max(dims) else ("--", "^") for D in dims}
        for ax, mode in zip(axes, modes):
            keys = sorted({(r["w1"], r["w2"], r["D"], r["Hq"] // r["Hkv"]) for r in main
                           if r["group"] == "kernel" and r["mode"] == mode})
            for (w1, w2, D, G) in keys:
                pts = sorted((r["N"], r["tflops"]) for r in main if r["group"] == "kernel"
                             and r["mode"] == mode
                             and (r["w1"], r["w2"], r["D"], r["Hq"] // r["Hkv"]) == (w1, w2, D, G))
                ls, mk = dstyle[D]
                ax.plot(*zip(*pts), linestyle=ls, marker=mk, color=wcolor[(w1, w2)],
                        label=f"{w1}x{w2} D{D} G{G}")
            for D in dims:
                # SDPA at the context of equal FLOPs, drawn at the paired 2-simplicial length.
                by_n = {}
                for r in main:
                    if r["group"] == "sdpa" and r["mode"] == mode and r["D"] == D:
                        w1, w2 = r["paired_with"]
                        n = r.get("paired_N") or int(round(r["N"] ** 2 / (2 * w1 * w2) / 256)) * 256
                        by_n.setdefault(n, []).append(r["tflops"])
                if by_n:
                    xs = sorted(by_n)
                    ys = [sorted(by_n[x])[len(by_n[x]) // 2] for x in xs]
                    ax.plot(xs, ys, linestyle=dstyle[D][0], marker="s", color=viz.PALETTE["dot"],
                            label=f"SDPA causal D{D}, equal FLOPs")
            ax.set_xscale("log", base=2)
            viz.label(ax, "2-simplicial sequence length n (tokens)", "TFLOPS (tensor-core count)",
                      f"{mode} (bf16, {gpu})" if gpu else f"{mode} (bf16)")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7, ncol=2)
        viz.finish(fig)
        p = os.path.join(out_dir, "kernel_tflops.png")
        fig.savefig(p)
        paths.append(p)
    t1 = [r for r in recs if r["group"] == "table1"]
    if t1:
        fig, ax = viz.new_figure(width=7.5)
        names = []
        for r in t1:
            name = f"{r['w1']}x{r['w2']}"
            if name not in names:
                names.append(name)
        xs = range(len(names))
        for k, (mode, c) in enumerate((("fwd", viz.PALETTE["simplicial"]), ("fwdbwd", viz.PALETTE["accent2"]))):
            ms = [next((r["ms"] for r in t1 if f"{r['w1']}x{r['w2']}" == n and r["mode"] == mode), float("nan"))
                  for n in names]
            ax.bar([x + 0.4 * k - 0.2 for x in xs], ms, width=0.4, color=c, label=mode)
        ax.set_xticks(list(xs), names, rotation=30)
        viz.label(ax, "windows w1 x w2", "latency (ms), B2 N8192 Hq64 Hkv1 D128", "Table 1 sweep")
        ax.legend()
        viz.finish(fig)
        p = os.path.join(out_dir, "table1_latency.png")
        fig.savefig(p)
        paths.append(p)
    return paths


def _windows(s: str) -> tuple:
    try:
        wins = tuple(tuple(int(x) for x in w.split("x")) for w in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected windows like 512x32,256x64, got {s!r}") from None
    if any(len(w) != 2 or min(w) < 1 for w in wins):
        raise argparse.ArgumentTypeError(f"expected windows like 512x32 with both sizes >= 1, got {s!r}")
    return wins


def _modes(s: str) -> tuple:
    modes = tuple(s.split(","))
    bad = [m for m in modes if m not in timing.MODES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {bad}; choose from {list(timing.MODES)}")
    return modes




def _check_writable(ap: argparse.ArgumentParser, out: str, name: str) -> str:
    """Create ``out`` if needed and prove a file can be written there, before any GPU work."""
    if os.sep in name or name in ("", ".", ".."):
        ap.error(f"argument --name: must be a plain file name, got {name!r}")
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        ap.error(f"argument --out: {out!r} is not a writable folder ({e.strerror or e})")
    return os.path.join(out, f"{name}.json")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (``python -m simplex_lib.bench --help``)."""
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=_windows, default=None,
                    help="comma-separated w1xw2 pairs (default: 512x32,256x64,1024x16,128x128; "
                         "with --shapes: narrows the grid)")
    ap.add_argument("--dims", type=int_list(1), default=None,
                    help="head dims, e.g. 64,128 (default 64,128; with --shapes: narrows the grid)")
    ap.add_argument("--gqa", type=int_list(1), default=(64, 1), help="GQA ratios Hq/Hkv")
    ap.add_argument("--seqlens", type=int_list(1), default=None,
                    help="sequence lengths (default 4096,8192,16384; --topk: 2048,4096,8192)")
    ap.add_argument("--modes", type=_modes, default=timing.MODES, help="fwd,bwd,fwdbwd")
    ap.add_argument("--tokens", type=int_list(1), default=None,
                    help="B = tokens // N (default 16384; --topk: 8192)")
    ap.add_argument("--shapes", action="store_true",
                    help="the grid of model shapes: B2 N8192, GQA 1,4,8,64 (16,32,32,64 query heads), "
                         "D 64,128, windows 512x32,256x64,128x128 (overrides --gqa/--seqlens/--tokens; "
                         "--windows and --dims pick a part of it)")
    ap.add_argument("--repeats", type=int_at_least(1), default=3,
                    help="independent measurements per shape; records keep each and the spread (default 3)")
    ap.add_argument("--fwd-walk", choices=("auto", *FWD_WALKS), default=None,
                    help="the forward's short-window walk for tiles of several positions "
                         "(sets SIMPLEX_FWD_WALK; default: its value, else auto, which picks by GQA ratio)")
    ap.add_argument("--bwd-walk", choices=("auto", *BWD_WALKS), default=None,
                    help="the same for the backward's dq and key-tile kernels "
                         "(sets SIMPLEX_BWD_WALK; default: its value, else auto)")
    ap.add_argument("--bwd-short", choices=BWD_SHORT_PATHS, default=None,
                    help="how tiles of several positions get the short window's key gradients: kv (the "
                         "key-tile kernel) or fused (the dq kernel; sets SIMPLEX_BWD_SHORT; default: its "
                         "value, else the library's rule, configs.pick_short)")
    ap.add_argument("--fused-walk", choices=FUSED_WALKS, default=None,
                    help="how the fused short-window kernel walks the short window: key or offset "
                         "(sets SIMPLEX_FUSED_WALK; default: its value, else offset)")
    ap.add_argument("--offset-loads", choices=("auto", *OFFSET_LOADS), default=None,
                    help="how the offset walks load their rows: gather or tma (one TMA tile a step, "
                         "16-bit inputs on sm_90 and above; sets SIMPLEX_OFFSET_LOADS; default: its "
                         "value, else auto, the library's rule, configs.pick_loads)")
    ap.add_argument("--backend", choices=KERNEL_BACKENDS, default="auto",
                    help="the windowed kernels of each direction: auto (the faster one that takes the shape), "
                         "portable or hopper (the Gluon kernels, sm_90; default auto; records name those that ran)")
    ap.add_argument("--table1", action="store_true", help="the paper's Table 1 window sweep")
    ap.add_argument("--claim48k", action="store_true", help="512x32 vs dot attention at 32k/48k")
    ap.add_argument("--hopper", action="store_true",
                    help="also the Gluon Hopper kernels beside the portable ones, for each of --modes "
                         "(B2 N8192 Hq64 Hkv1 512x32, D 64,128; group 'hopper'; sm_90 only)")
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--reference-max-n", type=int_at_least(0), default=0)
    ap.add_argument("--topk", action="store_true",
                    help="check and time the top-k kernels instead of the windowed grid")
    ap.add_argument("--topk-kernel", choices=TOPK_KERNELS, default=None,
                    help="with --topk: the top-k forward to time, auto (packed for a shared selection and "
                         "a group of at least PACK_MIN_GROUP heads, else row), row or packed (sets "
                         "SIMPLEX_TOPK_KERNEL; default: its value, else auto)")
    ap.add_argument("--out", default="benchmarks/results", help="folder for the JSON and plots")
    ap.add_argument("--name", default=None, help="file name without .json "
                    "(default kernels_bench; --topk: topk_bench)")
    ap.add_argument("--no-plot", action="store_true")
    return ap


def main(argv=None) -> dict:
    """Command-line entry point of ``python -m simplex_lib.bench``; returns the written record.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    dict
        The JSON written to ``<out>/<name>.json``, with ``meta`` and ``records`` (with ``--topk``
        also ``correctness``, :func:`check_topk_gpu`).

    Raises
    ------
    SystemExit
        Status 2 on a usage error (including an unwritable ``--out`` or a bad ``--name``), checked
        before any GPU work; status 1, with an error message, when no CUDA GPU is available.
    """
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.tokens is not None and len(a.tokens) != 1:
        ap.error("argument --tokens: expected one integer >= 1")
    path = _check_writable(ap, a.out, a.name or ("topk_bench" if a.topk else "kernels_bench"))
    if not torch.cuda.is_available():
        raise SystemExit(f"{PROG}: error: needs a CUDA GPU; recorded results are in benchmarks/results/")
    if a.fwd_walk:
        os.environ["SIMPLEX_FWD_WALK"] = a.fwd_walk  # read by every forward launch
    if a.bwd_walk:
        os.environ["SIMPLEX_BWD_WALK"] = a.bwd_walk  # read by every backward launch
    if a.bwd_short:
        os.environ["SIMPLEX_BWD_SHORT"] = a.bwd_short  # read by every backward launch
    if a.fused_walk:
        os.environ["SIMPLEX_FUSED_WALK"] = a.fused_walk  # read by every backward launch
    if a.offset_loads:
        os.environ["SIMPLEX_OFFSET_LOADS"] = a.offset_loads  # read by every windowed launch
    if a.topk_kernel:
        os.environ["SIMPLEX_TOPK_KERNEL"] = a.topk_kernel  # read by every top-k launch
    if a.topk:
        res = {"meta": timing.record_meta(), "correctness": check_topk_gpu()}
        for c in res["correctness"]:
            print("SKIP" if "skipped" in c else "OK  " if c["ok"] else "FAIL", c, flush=True)
        res["records"] = timing.bench_topk(a.seqlens or (2048, 4096, 8192),
                                           tokens=a.tokens[0] if a.tokens else 8192)
    else:
        if a.shapes:
            grid = dict(timing.SHAPE_GRID)
            grid.update({k: v for k, v in (("windows", a.windows), ("dims", a.dims)) if v is not None})
        else:
            grid = dict(windows=a.windows or timing.DEFAULT_WINDOWS, dims=a.dims or (64, 128), gqa=a.gqa,
                        heads=None, seqlens=a.seqlens or (4096, 8192, 16384),
                        tokens=a.tokens[0] if a.tokens else 16384)
        res = timing.run_benchmark(**grid, modes=a.modes, table1=a.table1, compare_sdpa=not a.no_sdpa,
                                   reference_max_n=a.reference_max_n, claim48k=a.claim48k,
                                   repeats=a.repeats, hopper=a.hopper, backend=a.backend)
    res["compiled"] = timing.compiled_kernels()
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print_compiled(res["compiled"])
    if not a.topk:
        print_table(res)
        if not a.no_plot:
            for p in plot_results(res, a.out):
                print("plot:", p)
    print("json:", path)
    return res


if __name__ == "__main__":
    main()
