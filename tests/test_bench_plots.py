"""simplex_lib.bench_plots on made-up records in the format simplex_lib.bench writes."""

import json

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from simplex_lib import bench, bench_plots as bp, cost, timing  # noqa: E402
from simplex_lib.viz import new_figure  # noqa: E402

META = {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", "triton": "3.6.0", "date": "2026-11-22T14:30:40"}


def kernel(N, mode="fwd", w1=512, w2=32, D=128, Hq=64, Hkv=1, ms=10.0, **kw):
    B = max(1, 16384 // N)
    F = cost.windowed_flops(N, w1, w2, batch=B, heads=Hq, head_dim=D, mode=mode)
    return dict(group="kernel", impl="kernel", mode=mode, B=B, N=N, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2,
                ms=ms, tflops=F / ms / 1e9, flops=F, peak_extra_bytes=1 << 20, **kw)


def sdpa_for(r, ms=5.0):
    n_eq = int(round(cost.equal_cost_dot_length(r["N"], r["w1"], r["w2"])))
    F = cost.dot_flops(n_eq, batch=r["B"], heads=r["Hq"], head_dim=r["D"], mode=r["mode"])
    return dict(group="sdpa", impl="sdpa", mode=r["mode"], B=r["B"], N=n_eq, Hq=r["Hq"], Hkv=r["Hq"], D=r["D"],
                ms=ms, tflops=F / ms / 1e9, flops=F, peak_extra_bytes=1 << 21, paired_with=[r["w1"], r["w2"]])


@pytest.fixture
def results_dir(tmp_path):
    recs = []
    for mode in ("fwd", "bwd"):
        for N in (4096, 8192, 16384):
            r = kernel(N, mode)
            recs += [r, sdpa_for(r)]
        recs.append(kernel(8192, mode, w1=256, w2=64))
        recs.append(kernel(8192, mode, D=64))
    recs.append(dict(group="kernel", mode="fwd", B=1, N=8192, Hq=64, Hkv=1, D=128, w1=64, w2=64, error="OOM"))
    (tmp_path / "kernels_bench.json").write_text(json.dumps({"meta": META, "records": recs}))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "check.json").write_text(json.dumps({"meta": META, "correctness": []}))
    (tmp_path / "raw" / "smoke.json").write_text(json.dumps({"meta": META, "records": [kernel(1024)]}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "match3.json").write_text(json.dumps({"provenance": {}, "records": [{"kind": "dot", "acc": 1.0}]}))
    topk = [dict(group="topk-kernel", mode="fwd", N=N, k=128, B=1, Hq=64, Hkv=1, D=128, ms=N / 1000,
                 tflops=1.0) for N in (2048, 4096)]
    topk += [dict(group="window-kernel", mode="fwd", N=N, w1=512, w2=32, B=1, Hq=64, Hkv=1, D=128,
                  ms=N / 2000, tflops=2.0) for N in (2048, 4096)]
    (tmp_path / "topk_bench.json").write_text(json.dumps({"meta": META, "records": topk}))
    return tmp_path


def test_load_skips_other_files(results_dir):
    res = bp.load_results(str(results_dir))
    assert [r["path"].split("/")[-1] for r in res] == ["kernels_bench.json", "topk_bench.json"]
    assert res[0]["meta"] == META
    assert bp.load_results(str(results_dir / "missing")) == []
    deep = bp.load_results(str(results_dir), recursive=True)
    assert [r["path"].split("/")[-1] for r in deep] == ["kernels_bench.json", "smoke.json", "topk_bench.json"]


def test_provenance_and_flat_records(results_dir):
    res = bp.load_results(str(results_dir))
    assert bp.provenance(res[0]) == "NVIDIA H100 80GB HBM3, torch 2.11.0, Triton 3.6.0, measured 2026-11-22"
    assert bp.provenance({}) == "unknown GPU, torch ?, Triton ?, measured unknown date"
    recs = bp.flat_records(res)
    assert all("error" not in r and r["gpu"] == META["gpu"] for r in recs)
    assert len(bp.flat_records(res, ok_only=False)) == len(recs) + 1


def test_select_and_pair(results_dir):
    recs = bp.flat_records(bp.load_results(str(results_dir)))
    fwd = bp.select(recs, group="kernel", mode="fwd")
    assert len(fwd) == 5 and all(r["mode"] == "fwd" for r in fwd)
    pairs = bp.pair_sdpa(recs)
    assert len(pairs) == 6
    for k, s in pairs:
        # equal FLOPs by construction of the pairing context
        assert abs(s["flops"] / k["flops"] - 1) < 1e-3
        assert (k["B"], k["Hq"], k["D"], k["mode"]) == (s["B"], s["Hq"], s["D"], s["mode"])


def test_plots_draw_what_exists(results_dir):
    recs = bp.flat_records(bp.load_results(str(results_dir)))
    fig, axes = new_figure(ncols=3, nrows=2)
    ax = axes.ravel()
    assert bp.plot_tflops_vs_seqlen(ax[0], recs, "fwd") == 3  # (512x32 D128), (256x64), (D64)
    assert len(ax[0].lines) == 3 + 1  # plus the paired SDPA line
    assert bp.plot_windows(ax[1], recs, "bwd") == 2
    assert bp.plot_head_dims(ax[2], recs, "fwd") == 3  # one line per N
    assert bp.plot_memory(ax[3], recs, "fwd") >= 1
    assert bp.plot_topk_vs_window(ax[4], recs, "fwd") == 2
    assert bp.plot_tflops_vs_seqlen(ax[5], [], "fwd") == 0  # empty: a message, no crash
    for a in ax:
        assert a.get_xlabel() and a.get_ylabel()


def test_summary_rows(results_dir):
    recs = bp.flat_records(bp.load_results(str(results_dir)))
    rows = bp.summary_rows(recs)
    assert rows[0][0] == "kernel" and rows[-1][0] == "sdpa"
    assert all(len(r) == 6 for r in rows)
    only = bp.summary_rows(recs, windows=(512, 32))
    assert len(only) == 14 and all(r[3] in ("512x32", "causal") for r in only)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_remeasure_needs_gpu():
    with pytest.raises(ValueError, match="CUDA"):
        bp.remeasure()


def test_memory_per_token_and_grid(results_dir):
    recs = bp.flat_records(bp.load_results(str(results_dir)))
    fig, ax = new_figure()
    n = bp.plot_memory(ax, recs, "fwd")
    # kernel 512x32 D128, 256x64 D128, 512x32 D64 and SDPA: 1 MiB / 16384 tokens, SDPA 2 MiB / (B n)
    assert n == 4 and len(ax.patches) == 4
    widths = sorted(float(p.get_width()) for p in ax.patches)
    assert widths[:3] == [1024 / 16384] * 3
    sd = [r for r in bp.select(recs, group="sdpa", mode="fwd")]
    assert widths[3] == pytest.approx(sorted(2048 / (r["B"] * r["N"]) for r in sd)[1])  # median
    rows = bp.grid_rows(recs, N=8192, G=64)
    assert [(r["w1"], r["w2"], r["D"]) for r in rows] == [(256, 64, 128), (512, 32, 64), (512, 32, 128)]
    head = rows[2]
    k = bp.select(recs, group="kernel", mode="bwd", N=8192, D=128, w1=512, w2=32)[0]
    assert head["bwd_tflops"] == k["tflops"] and head["sdpa_bwd_tflops"] is not None
    assert rows[0]["sdpa_fwd_tflops"] is None  # no SDPA record paired with 256x64
    assert bp.grid_rows(recs, N=8192, G=1) == []
    assert bp.markdown_table(["x"], [[1], [2]]).splitlines() == ["| x |", "| --- |", "| 1 |", "| 2 |"]


def test_record_meta():
    meta = timing.record_meta("cpu")
    assert meta["flops_convention"] == timing.FLOPS_CONVENTION and "git_commit" in meta


def test_cli_plots_and_table(tmp_path):
    recs = []
    for mode in ("fwd", "bwd"):
        for N in (4096, 8192):
            r = kernel(N, mode)
            recs += [r, sdpa_for(r)]
        recs.append(dict(kernel(8192, mode, w1=256, w2=64), group="table1"))
    res = {"meta": timing.record_meta("cpu"), "records": recs}
    paths = bench.plot_results(res, str(tmp_path))
    assert [p.split("/")[-1] for p in paths] == ["kernel_tflops.png", "table1_latency.png"]
    bench.print_table(res)
    # the provenance schema (device, date_utc) reads like the older one (gpu, date)
    assert bp.load_results(str(tmp_path)) == []
    (tmp_path / "new.json").write_text(json.dumps(res))
    assert bp.flat_records(bp.load_results(str(tmp_path)))[0]["gpu"] == res["meta"]["device"]


def test_cli_usage_and_argument_errors(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m simplex_lib.bench")
    for bad in (["--windows", "512x"], ["--dims", "0"], ["--modes", "fast"], ["--gqa", "a"],
                ["--tokens", "1,2"], ["--reference-max-n", "-1"], ["--name", "a/b"]):
        with pytest.raises(SystemExit) as e:
            bench.main(bad)
        assert e.value.code == 2, bad
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m simplex_lib.bench: error: "), err


def test_cli_checks_out_before_any_work(tmp_path, capsys, monkeypatch):
    # --out is checked before the GPU grid: a file where the folder should be is an error
    # even on a machine without a GPU, and nothing is timed.
    monkeypatch.setattr(timing, "run_benchmark", lambda *a, **k: pytest.fail("ran the grid"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as e:
        bench.main(["--out", str(blocker / "sub")])
    assert e.value.code == 2
    assert "argument --out" in capsys.readouterr().err


def test_the_library_never_imports_the_cli():
    # bench.py is only the command line: the modules it drives must not import it back.
    import os
    import subprocess
    import sys

    code = ("import sys, simplex_lib.timing, simplex_lib.bench_plots, simplex_lib.ops.topk, "
            "simplex_lib.ops.determinant.triton, simplex_lib.ops.two_simplicial.interface; "
            "assert 'simplex_lib.bench' not in sys.modules, 'simplex_lib.bench imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TRITON_INTERPRET": "1"})


def test_repeat_spread_finds_identical_calls(results_dir):
    recs = bp.flat_records(bp.load_results(str(results_dir)))
    extra = [dict(r, tflops=r["tflops"] * 1.1) for r in bp.select(recs, group="sdpa", mode="fwd", N=16384)]
    rows = bp.repeat_spread(recs + extra)
    assert [(r["mode"], r["N"], r["n"]) for r in rows] == [("fwd", 16384, 2)]
    r = rows[0]
    assert r["hi"] == pytest.approx(1.1 * r["lo"]) and r["mean"] == pytest.approx(1.05 * r["lo"])
    assert bp.repeat_spread(recs) == []          # every other SDPA call was timed once


def test_waves_and_occupancy_model():
    assert bp.waves(132) == (1, 1.0) and bp.waves(133) == (2, 133 / 264)
    assert bp.waves(264, per_sm=2) == (1, 1.0)
    fig, ax = new_figure()
    total = bp.plot_occupancy(ax, [(64, 50.0), (256, 30.0)], label="x", color="k", names=["a", "b"])
    assert total == 50.0 + 2 * 30.0
    ys = next(line for line in ax.lines if line.get_label() == "x").get_ydata()
    assert list(ys[:2]) == [64, 64] and max(ys) == 132 and list(ys[-2:]) == [124, 124]


def test_per_token_crossover():
    s = dict(group="sdpa", B=1, Hq=64, D=128)
    recs = [dict(s, mode="fwd", N=n, ms=n * n * 1e-6) for n in (1000, 2000)]
    recs += [dict(s, mode="fwd", N=1000, ms=2e-3), dict(s, mode="bwd", N=1000, ms=1.0)]
    pts = bp.sdpa_per_token(recs)               # repeats at n = 1000 are averaged
    assert pts == [(1000, pytest.approx((1.0 + 0.002) / 2)), (2000, pytest.approx(2.0))]
    assert bp.sdpa_per_token(recs, ("fwd", "bwd")) == [(1000, pytest.approx(0.501 + 1.0))]
    a = bp.slope_through_origin([(1000, 1.0), (2000, 2.0)])
    fig, ax = new_figure()
    assert bp.plot_per_token(ax, [(1000, 1.0), (2000, 2.0)], a, 3.0, what="forward") == pytest.approx(3000)


def test_time_ratios_pair_equal_arithmetic_and_shape():
    from simplex_lib.bench_plots import time_ratios

    recs = [dict(group="topk-kernel", mode="fwd", B=B, N=N, k=16, ms=ms)
            for B, N, ms in ((1, 512, 6.0), (2, 256, 4.0))]
    recs += [dict(group="window-kernel", mode="fwd", B=B, N=N, w1=64, w2=4, ms=ms)   # 16^2 pairs
             for B, N, ms in ((1, 512, 3.0), (2, 256, 2.0))]
    recs += [dict(group="window-kernel", mode="fwd", B=1, N=512, w1=32, w2=4, ms=1.0),  # other k
             dict(group="window-kernel", mode="bwd", B=1, N=512, w1=64, w2=4, ms=9.0),  # other mode
             dict(group="topk-kernel", mode="fwd", B=1, N=512, k=16, error="x")]        # no timing
    assert sorted(time_ratios(recs, "topk-kernel", "fwd", 16)) == [2.0, 2.0]
    assert time_ratios(recs, "topk-kernel", "bwd", 16) == []


def test_ncu_metric_reads_a_value_or_says_which_is_missing():
    from simplex_lib.bench_plots import ncu_metric

    report = ("    Duration                         ms         45.75\n"
              "    Registers Per Thread             register/thread               168\n"
              "    Local Memory Spilling Requests                        1,408,512\n")
    assert ncu_metric(report, "Duration") == 45.75
    assert ncu_metric(report, "Registers Per Thread") == 168
    assert ncu_metric(report, "Local Memory Spilling Requests") == 1408512
    with pytest.raises(ValueError, match="'Theoretical Occupancy'"):
        ncu_metric(report, "Theoretical Occupancy")
