"""Benchmarks of the 2-simplicial Triton kernels: timing, TFLOPS, JSON records and plots.

Run ``python -m simplex_lib.bench --help`` on a GPU machine. Every record carries the GPU name,
the torch and Triton versions and the date. Conventions (see ``PERFORMANCE.md``):

- forward FLOPs ``4 * B * Hq * N * D * w1 * w2`` (the two tensor-core GEMMs; the ramp at the
  start of the sequence is ignored), backward ``2.5x`` that, forward+backward ``3.5x``;
- causal dot-product attention ``4 * B * H * N^2 * D / 2`` (and ``2.5x`` for its backward);
- times are medians of ``triton.testing.do_bench``.

Example (a grid that runs in a few minutes on an H100)::

    python -m simplex_lib.bench --windows 512x32 --dims 128 --gqa 64 --seqlens 8192 --table1
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform

import torch

DEFAULT_WINDOWS = ((512, 32), (256, 64), (1024, 16), (128, 128))
TABLE1_WINDOWS = ((1024, 32), (512, 64), (128, 128), (256, 64), (512, 32), (1024, 16), (256, 32))
MODES = ("fwd", "bwd", "fwdbwd")
MODE_FACTOR = {"fwd": 1.0, "bwd": 2.5, "fwdbwd": 3.5}


def simplicial_flops(B, Hq, N, D, w1, w2, mode="fwd") -> float:
    """Tensor-core FLOPs of windowed 2-simplicial attention in the project's convention.

    >>> simplicial_flops(2, 64, 8192, 128, 512, 32) / 1e12  # the headline shape, TFLOP
    8.796093022208
    """
    return MODE_FACTOR[mode] * 4.0 * B * Hq * N * D * w1 * w2


def dot_flops(B, H, N, D, mode="fwd") -> float:
    """FLOPs of causal dot-product attention: ``4 * B * H * N^2 * D / 2`` for the forward.

    >>> dot_flops(1, 16, 16384, 128) / 1e12
    1.099511627776
    """
    return MODE_FACTOR[mode] * 4.0 * B * H * N * N * D / 2


def equal_flops_context(w1: int, w2: int, elementwise: bool = False) -> float:
    """Context length at which causal dot attention costs what windows ``w1 x w2`` cost.

    Per query and head-dim unit, dot attention does ``2 n`` FLOPs (causal average), the
    2-simplicial GEMMs ``4 w1 w2``; the paper's count adds the elementwise product (``6 w1 w2``).

    >>> equal_flops_context(512, 32), equal_flops_context(512, 32, elementwise=True)
    (32768.0, 49152.0)
    """
    return (6.0 if elementwise else 4.0) * w1 * w2 / 2.0


def device_meta() -> dict:
    """Provenance of a measurement: GPU name, torch/Triton/Python versions and the date.

    Every JSON record written by this module carries it under ``"meta"``.
    """
    import triton

    return {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "flops_convention": "fwd 4*B*Hq*N*D*w1*w2; bwd 2.5x; fwdbwd 3.5x; dot causal 4*B*H*N^2*D/2",
    }


def _inputs(B, N, Hq, Hkv, D, dtype, device, grad):
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(B, N, Hq, D, device=device, dtype=dtype, generator=g)
    kv = [torch.randn(B, N, Hkv, D, device=device, dtype=dtype, generator=g) for _ in range(4)]
    return [t.requires_grad_(grad) for t in [q] + kv]


def time_and_peak_memory(make_fn):
    """Median ms of ``fn = make_fn()`` (``triton.testing.do_bench``) and its peak extra memory.

    ``make_fn`` builds the callable (allocating its inputs or graph state); the peak counts
    every byte allocated above what existed before ``make_fn`` ran, during one call of ``fn``.

    Returns
    -------
    (ms, peak_bytes)
    """
    from triton.testing import do_bench

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn = make_fn()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
    return ms, peak


def _attention_fn(impl, xs, w1, w2, mode):
    """A zero-argument callable running ``mode`` for the given implementation."""
    if impl == "kernel":
        from .kernels import two_simplicial_attention as attn
    else:
        from .reference import two_simplicial_attention as attn
    if mode == "fwd":
        def fn():
            with torch.no_grad():
                return attn(*xs, w1=w1, w2=w2)
        return fn
    out = attn(*xs, w1=w1, w2=w2)
    do = torch.randn_like(out)
    if mode == "bwd":
        return lambda: torch.autograd.grad(out, xs, do, retain_graph=True)
    return lambda: torch.autograd.grad(attn(*xs, w1=w1, w2=w2), xs, do)


def bench_simplicial(B, N, Hq, Hkv, D, w1, w2, mode, impl="kernel", dtype=torch.bfloat16) -> dict:
    """One timing record of the kernel (or the reference) for one shape and mode."""
    xs = _inputs(B, N, Hq, Hkv, D, dtype, "cuda", grad=mode != "fwd")
    ms, peak = time_and_peak_memory(lambda: _attention_fn(impl, xs, w1, w2, mode))
    F = simplicial_flops(B, Hq, N, D, w1, w2, mode)
    return dict(impl=impl, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2,
                dtype=str(dtype).replace("torch.", ""), ms=ms, tflops=F / ms / 1e9,
                flops=F, peak_extra_bytes=int(peak), us_per_token=1e3 * ms / (B * N))


def bench_sdpa(B, N, H, D, mode, dtype=torch.bfloat16) -> dict:
    """Causal torch SDPA (flash) for comparison."""
    import torch.nn.functional as Fn

    g = mode != "fwd"
    q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=dtype, requires_grad=g) for _ in range(3))

    def make():
        if mode == "fwd":
            return lambda: Fn.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = Fn.scaled_dot_product_attention(q, k, v, is_causal=True)
        do = torch.randn_like(o)
        if mode == "bwd":
            return lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
        return lambda: torch.autograd.grad(Fn.scaled_dot_product_attention(q, k, v, is_causal=True),
                                           (q, k, v), do)

    ms, peak = time_and_peak_memory(make)
    F = dot_flops(B, H, N, D, mode)
    return dict(impl="sdpa", mode=mode, B=B, N=N, Hq=H, Hkv=H, D=D, ms=ms, tflops=F / ms / 1e9,
                flops=F, peak_extra_bytes=int(peak), us_per_token=1e3 * ms / (B * N))


def run_benchmark(windows=DEFAULT_WINDOWS, dims=(64, 128), gqa=(64, 1), seqlens=(4096, 8192, 16384),
                  modes=MODES, tokens=16384, heads_gqa=64, heads_mha=16, table1=False,
                  compare_sdpa=True, reference_max_n=0, claim48k=False, progress=True) -> dict:
    """Time the kernels over a grid; return ``{"meta", "records", ...}``.

    ``B = max(1, tokens // N)`` keeps the token count fixed across lengths. A GQA ratio of 1 uses
    ``heads_mha`` query heads (each with its own KV head), a larger ratio ``heads_gqa`` query
    heads sharing ``heads_gqa // ratio`` KV heads. With ``compare_sdpa`` each shape is paired with
    causal SDPA at the context of equal FLOPs (same B, heads, D; ``n = sqrt(2 N w1 w2)``).
    ``reference_max_n > 0`` also times the einsum reference up to that length (forward only).
    """
    from tqdm.auto import tqdm

    jobs = []
    for (w1, w2) in windows:
        for D in dims:
            for ratio in gqa:
                Hq = heads_mha if ratio == 1 else heads_gqa
                Hkv = Hq // ratio
                for N in seqlens:
                    B = max(1, tokens // N)
                    for mode in modes:
                        jobs.append(("kernel", B, N, Hq, Hkv, D, w1, w2, mode))
                        if compare_sdpa:
                            n_eq = int(round(math.sqrt(2.0 * N * w1 * w2)))
                            jobs.append(("sdpa", B, n_eq, Hq, Hq, D, w1, w2, mode))
                        if mode == "fwd" and N <= reference_max_n:
                            jobs.append(("reference", B, N, Hq, Hkv, D, w1, w2, mode))
    if table1:
        for (w1, w2) in TABLE1_WINDOWS:
            for mode in ("fwd", "fwdbwd"):
                jobs.append(("table1", 2, 8192, 64, 1, 128, w1, w2, mode))
    if claim48k:
        jobs.append(("claim-kernel", 1, 8192, 64, 1, 128, 512, 32, "fwd"))
        for n in (32768, 49152):
            jobs.append(("claim-sdpa", 1, n, 64, 64, 128, 0, 0, "fwd"))

    records = []
    it = tqdm(jobs, desc="bench", disable=not progress)
    for impl, B, N, Hq, Hkv, D, w1, w2, mode in it:
        it.set_postfix_str(f"{impl} {mode} N{N} D{D} {w1}x{w2} G{Hq // Hkv}")
        try:
            if impl in ("sdpa", "claim-sdpa"):
                rec = bench_sdpa(B, N, Hq, D, mode)
                rec["paired_with"] = [w1, w2]
                if impl == "sdpa":
                    rec["paired_N"] = int(round(N ** 2 / (2 * w1 * w2) / 256)) * 256
            else:
                rec = bench_simplicial(B, N, Hq, Hkv, D, w1, w2, mode,
                                       impl="reference" if impl == "reference" else "kernel")
            rec["group"] = impl
        except Exception as e:  # record and continue: one failing shape must not lose the run
            rec = dict(group=impl, mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2,
                       error=repr(e)[:400])
        records.append(rec)
        torch.cuda.empty_cache()
    return {"meta": device_meta(), "records": records}


def print_table(result: dict) -> None:
    """A plain-text table of the records."""
    cols = ("group", "mode", "B", "N", "Hq", "Hkv", "D", "w1", "w2", "ms", "tflops", "peak_extra_bytes")
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


def plot_results(result: dict, out_dir: str) -> list:
    """Save the plots (TFLOPS vs length per window; Table 1 latencies); return their paths."""
    from . import viz

    paths = []
    recs = [r for r in result["records"] if "error" not in r]
    main = [r for r in recs if r["group"] in ("kernel", "sdpa")]
    if main:
        modes = sorted({r["mode"] for r in main}, key=MODES.index)
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
                             and r["mode"] == mode and (r["w1"], r["w2"], r["D"], r["Hq"] // r["Hkv"]) == (w1, w2, D, G))
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
            viz.label(ax, "2-simplicial sequence length N (tokens)", "TFLOPS (tensor-core count)",
                      f"{mode} (bf16, H100)" if "H100" in result["meta"].get("gpu", "") else f"{mode} (bf16)")
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
            ms = [next((r["ms"] for r in t1 if f"{r['w1']}x{r['w2']}" == n and r["mode"] == mode), float("nan")) for n in names]
            ax.bar([x + 0.4 * k - 0.2 for x in xs], ms, width=0.4, color=c, label=mode)
        ax.set_xticks(list(xs), names, rotation=30)
        viz.label(ax, "windows w1 x w2", "latency (ms), B2 N8192 Hq64 Hkv1 D128", "Table 1 sweep")
        ax.legend()
        viz.finish(fig)
        p = os.path.join(out_dir, "table1_latency.png")
        fig.savefig(p)
        paths.append(p)
    return paths


def _parse_windows(s: str):
    return tuple(tuple(int(x) for x in w.split("x")) for w in s.split(","))


def _ints(s: str):
    return tuple(int(x) for x in s.split(","))


def main(argv=None) -> dict:
    """Command-line entry point of ``python -m simplex_lib.bench``; returns the written record.

    Run ``python -m simplex_lib.bench --help`` for the grid options.
    """
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", default=",".join(f"{a}x{b}" for a, b in DEFAULT_WINDOWS))
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--gqa", default="64,1", help="GQA ratios Hq/Hkv")
    ap.add_argument("--seqlens", default="4096,8192,16384")
    ap.add_argument("--modes", default="fwd,bwd,fwdbwd")
    ap.add_argument("--tokens", type=int, default=16384, help="B = tokens // N")
    ap.add_argument("--table1", action="store_true", help="the paper's Table 1 window sweep")
    ap.add_argument("--claim48k", action="store_true", help="512x32 vs dot attention at 32k/48k")
    ap.add_argument("--no-sdpa", action="store_true")
    ap.add_argument("--reference-max-n", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default="kernels_bench")
    ap.add_argument("--no-plot", action="store_true")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("simplex_lib.bench needs a CUDA GPU; recorded results are in benchmarks/results/")
    res = run_benchmark(_parse_windows(a.windows), _ints(a.dims), _ints(a.gqa), _ints(a.seqlens),
                        tuple(a.modes.split(",")), tokens=a.tokens, table1=a.table1,
                        compare_sdpa=not a.no_sdpa, reference_max_n=a.reference_max_n,
                        claim48k=a.claim48k)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{a.name}.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print_table(res)
    if not a.no_plot:
        for p in plot_results(res, a.out):
            print("plot:", p)
    print("json:", path)
    return res


if __name__ == "__main__":
    main()
