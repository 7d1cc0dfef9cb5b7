"""The benchmark's bookkeeping, without a GPU: repeats and their spread, the shape grid."""

from __future__ import annotations

import pytest
import torch

from simplex_lib import bench, timing


def test_repeats_keep_each_measurement_and_the_spread(monkeypatch):
    times = iter([2.0, 1.0, 4.0])
    monkeypatch.setattr(timing, "time_and_peak_memory",
                        lambda make_fn, repeats: (2.0, 10, [next(times) for _ in range(repeats)]))
    rec = timing._timed(lambda: None, 3, flops=4e9)
    assert rec["ms"] == 2.0 and rec["ms_each"] == [2.0, 1.0, 4.0]
    assert rec["tflops"] == pytest.approx(2.0)  # 4e9 FLOPs in 2 ms
    assert (rec["tflops_min"], rec["tflops_max"]) == (pytest.approx(1.0), pytest.approx(4.0))


def test_heads_must_match_the_ratios():
    with pytest.raises(ValueError, match="heads"):
        timing.run_benchmark(gqa=(1, 8), heads=(16,), progress=False)
    with pytest.raises(ValueError, match="heads"):
        timing.run_benchmark(gqa=(1, 8), heads=(16, 12), progress=False)


def test_shape_grid_is_consistent():
    g = timing.SHAPE_GRID
    assert len(g["heads"]) == len(g["gqa"]) and all(h % r == 0 for h, r in zip(g["heads"], g["gqa"]))
    assert g["tokens"] // g["seqlens"][0] == 2  # B = 2


def test_cli_flags(capsys):
    args = bench.build_parser().parse_args(["--shapes", "--repeats", "5"])
    assert args.shapes and args.repeats == 5
    assert bench.build_parser().parse_args([]).repeats == 3
    with pytest.raises(SystemExit) as e:
        bench.build_parser().parse_args(["--repeats", "0"])
    assert e.value.code == 2 and "--repeats" in capsys.readouterr().err


def test_kernel_switch_flags_are_checked(capsys):
    for flag in ("--fused-walk", "--bwd-walk", "--bwd-short", "--fwd-walk", "--offset-loads"):
        with pytest.raises(SystemExit) as e:
            bench.build_parser().parse_args(["--shapes", flag, "sideways"])
        assert e.value.code == 2 and flag in capsys.readouterr().err
    assert bench.build_parser().parse_args(["--shapes", "--offset-loads", "tma"]).offset_loads == "tma"


def test_topk_kernel_flag(capsys):
    assert bench.build_parser().parse_args(["--topk", "--topk-kernel", "row"]).topk_kernel == "row"
    assert bench.build_parser().parse_args(["--topk"]).topk_kernel is None  # $SIMPLEX_TOPK_KERNEL, else auto
    with pytest.raises(SystemExit) as e:
        bench.build_parser().parse_args(["--topk", "--topk-kernel", "fast"])
    assert e.value.code == 2 and "--topk-kernel" in capsys.readouterr().err


def _kernel(X, BLOCK: "tl.constexpr"):  # noqa: F821  (only its signature is read)
    pass


def test_compiled_kernels_reads_every_cached_specialisation():
    from types import SimpleNamespace

    from triton.runtime.jit import JITFunction

    jf = JITFunction(_kernel)
    ck = SimpleNamespace(n_regs=168, n_spills=0, metadata=SimpleNamespace(num_warps=4, num_stages=2, shared=49152),
                         src=SimpleNamespace(constants={(1,): 64}))
    jf.device_caches = {0: ({"one specialisation": ck}, {}, None, None, None)}
    tuned = SimpleNamespace(fn=jf)  # what triton.autotune wraps
    rows = timing.compiled_kernels([SimpleNamespace(_kernel=jf, tuned=tuned, other=3)])
    assert [r["kernel"] for r in rows] == ["_kernel", "tuned"]
    assert rows[0] == dict(kernel="_kernel", num_warps=4, num_stages=2, shared_bytes=49152, n_regs=168,
                           n_spills=0, constexprs={"BLOCK": 64})


def test_shapes_narrowed_by_windows_and_dims(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(timing, "run_benchmark", lambda **kw: seen.update(kw) or {"meta": {}, "records": []})
    monkeypatch.setattr(timing, "compiled_kernels", lambda: [])
    monkeypatch.setenv("SIMPLEX_BWD_WALK", "position")
    bench.main(["--shapes", "--windows", "512x32", "--dims", "128", "--bwd-walk", "offset", "--no-plot",
                "--out", str(tmp_path)])
    assert list(seen["windows"]) == [(512, 32)] and list(seen["dims"]) == [128]
    assert list(seen["gqa"]) == list(timing.SHAPE_GRID["gqa"]) and list(seen["heads"]) == [16, 32, 32, 64]
    assert bench.os.environ["SIMPLEX_BWD_WALK"] == "offset"
    monkeypatch.setenv("SIMPLEX_FUSED_WALK", "offset")
    bench.main(["--shapes", "--fused-walk", "key", "--no-plot", "--out", str(tmp_path)])
    assert bench.os.environ["SIMPLEX_FUSED_WALK"] == "key"
    bench.main(["--shapes", "--no-plot", "--out", str(tmp_path)])
    assert seen["windows"] == timing.SHAPE_GRID["windows"] and seen["dims"] == timing.SHAPE_GRID["dims"]


def test_indexer_record(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(timing, "time_and_peak_memory",
                        lambda make_fn, repeats=1: (calls.append(make_fn()()) or 2.0, 64))
    recs = timing._bench_indexer(1, 12, 5, 4, 8, torch.float32, device="cpu")
    # the reference path and the fused kernel, on the same inputs: the same selection
    assert [r["group"] for r in recs] == ["topk-indexer", "topk-indexer-fused"]
    assert calls[0].shape == calls[1].shape == (1, 12, 1, 5) and torch.equal(calls[0], calls[1])
    for rec in recs:
        assert rec["ms"] == 2.0 and rec["flops"] == 4 * 8 * 12 ** 2
        assert rec["tflops"] == rec["flops"] / 2.0 / 1e9


def test_hopper_jobs_sit_beside_the_portable_forward(monkeypatch):
    """--hopper times the Gluon forward and the portable one at the same shapes, in one group, and
    each record names its backend; the pipelined Gluon variant has no backward; --backend reaches
    the grid's records."""
    seen, bench_simplicial = [], timing.bench_simplicial
    monkeypatch.setattr(timing, "bench_simplicial",
                        lambda *a, impl="kernel", **kw: seen.append((a, impl)) or dict(impl=impl))
    res = timing.run_benchmark(windows=(), hopper=True, modes=("fwd",), compare_sdpa=False, progress=False)
    assert [impl for _, impl in seen] == ["hopper", "hopper-pipelined", "portable"] * 2
    assert {a[:8] for a, _ in seen} == {(2, 8192, 64, 1, D, 512, 32, "fwd") for D in (64, 128)}
    seen.clear()  # with a backward: both Gluon kernels beside the portable ones, no pipelined one
    timing.run_benchmark(windows=(), hopper=True, modes=("fwd", "bwd"), compare_sdpa=False, progress=False)
    assert [(a[4], a[7], impl) for a, impl in seen] == [
        (D, m, impl) for D in (64, 128) for m, impls in (("fwd", ("hopper", "hopper-pipelined", "portable")),
                                                         ("bwd", ("hopper", "portable"))) for impl in impls]
    assert {r["group"] for r in res["records"]} == {"hopper"}
    assert bench.build_parser().parse_args(["--hopper"]).hopper
    assert set(timing.BACKENDS) == set(timing.IMPLS) == {"kernel", "portable", "hopper", "hopper-pipelined",
                                                         "reference"}
    with pytest.raises(ValueError, match="forward only"):
        bench_simplicial(1, 8, 64, 1, 64, 128, 32, "bwd", impl="hopper-pipelined")
    with pytest.raises(ValueError, match="impl must be one of"):
        bench_simplicial(1, 8, 64, 1, 64, 128, 32, "fwd", impl="fast")
    seen.clear()
    timing.run_benchmark(windows=((512, 32),), dims=(128,), gqa=(64,), seqlens=(8192,), modes=("fwd",),
                         compare_sdpa=False, progress=False, backend="portable")
    assert [impl for _, impl in seen] == ["portable"]
    assert bench.build_parser().parse_args(["--backend", "hopper"]).backend == "hopper"


def test_forward_sweep_reads_configs_and_refuses_bad_input(capsys):
    # benchmarks/fwd_sweep.py: the configuration strings, and a one-line usage error for bad
    # input (before any GPU is needed)
    from benchmarks import fwd_sweep
    from simplex_lib.ops.two_simplicial.configs import FwdConfig

    assert fwd_sweep.parse_config("pairs:64x32x4x3") == FwdConfig(64, 32, 4, 3, WALK="pairs")
    assert fwd_sweep.parse_config("offset:64x128x4x2") == FwdConfig(64, 128, 4, 2, WALK="offset")
    tma = fwd_sweep.parse_config("offset+tma:64x128x4x2")
    assert tma == FwdConfig(64, 128, 4, 2, WALK="offset", LOADS="tma")
    assert fwd_sweep._name(tma) == "offset+tma:64x128x4x2"
    tail = fwd_sweep.parse_config("offset+tma:64x128x4x3x16")
    assert tail == FwdConfig(64, 128, 4, 3, WALK="offset", LOADS="tma", BLOCK_TAIL=16)
    assert fwd_sweep._name(tail) == "offset+tma:64x128x4x3x16"
    own = fwd_sweep.parse_config("offset+tma:64x128x4x3x16p")
    assert own == FwdConfig(64, 128, 4, 3, WALK="offset", LOADS="tma", BLOCK_TAIL=16,
                            TAIL_PASS=True)
    assert fwd_sweep._name(own) == "offset+tma:64x128x4x3x16p"
    for bad, says in (("--configs pairs:64x64x4", "expected WALK[+LOADS]:BMxBNxWARPSxSTAGES"),
                      ("--configs diagonal:64x64x4x2", "expected WALK"),
                      ("--configs offset+bulk:64x64x4x2", "LOADS one of"),
                      ("--configs offset:64x64x4x0", "every size must be >= 1"),
                      ("--configs offset:64x64x4x2x24", "BLOCK_TAIL must be 0 or a power"),
                      ("--configs offset:64x64x4x2x16x2", "expected WALK"),
                      ("--configs offset:64x64x4x2p", "expected WALK"),
                      ("--configs offset:64x64x4x2x16q", "expected WALK"),
                      ("--configs pairs:64x64x4x2:p2", "expected WALK"),
                      ("--configs pairs:64x64x4x2 --gqa 2", "--gqa must be among"),
                      ("--configs pairs:64x64x4x2 --windows 32x512", "w1 >= w2")):
        with pytest.raises(SystemExit) as e:
            fwd_sweep.main(bad.split() + ["--out", "/dev/null"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert says in err, (bad, err)
    with pytest.raises(SystemExit):
        fwd_sweep.main(["--configs", "pairs:64x64x4x2"])
    assert "--out is needed" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            fwd_sweep.main(["--configs", "pairs:64x64x4x2", "--out", "/dev/null"])
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_hopper_sweep_reads_variants_and_refuses_bad_input(capsys):
    # benchmarks/hopper_sweep.py: the variant strings read back into hopper_forward's keyword
    # arguments, and a one-line usage error for bad input (before any GPU is needed)
    from benchmarks import hopper_sweep

    v = hopper_sweep.parse_variant("64x2po")
    assert v == dict(block_n=64, stages=2, pipeline=True, operands=True, scaled_values=False)
    assert hopper_sweep.variant_name(v) == "64x2po"
    assert hopper_sweep.parse_variant("64x2v") == dict(block_n=64, stages=2, pipeline=False,
                                                       operands=True, scaled_values=True)
    for text in ("64x2", "128x3o", "64x2p", "64x2pv"):
        assert hopper_sweep.variant_name(hopper_sweep.parse_variant(text)) == text
    for bad, says in (("--variants 64x2q", "expected BLOCK_NxSTAGES[p][o][v]"),
                      ("--variants 64x2oo", "expected BLOCK_NxSTAGES[p][o][v]"),
                      ("--variants 64", "expected BLOCK_NxSTAGES[p][o][v]"),
                      ("--variants 32x2", "BLOCK_N must be 64 or 128"),
                      ("--variants 64x5", "STAGES 1 to 4"),
                      ("--variants 64x2 --gqa 8", "--gqa must be 64"),
                      ("--variants 64x2 --windows 32x512", "w1 >= w2")):
        with pytest.raises(SystemExit) as e:
            hopper_sweep.main(bad.split() + ["--out", "/dev/null"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert says in err, (bad, err)
    with pytest.raises(SystemExit) as e:  # a record is asked for unless --ncu
        hopper_sweep.main(["--variants", "64x2"])
    assert e.value.code == 2 and "--out is needed" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            hopper_sweep.main(["--variants", "64x2", "--ncu"])
        assert "needs an sm_90" in capsys.readouterr().err


def test_forward_sweep_records_each_launch_or_its_error():
    # the sweep's bookkeeping under the interpreter, with a stand-in for do_bench: every launch
    # is checked against the default and float32, timed `repeats` times, and a launch the shape
    # cannot take (a tile of 24 rows: not a power of two) is recorded with its error
    import itertools

    from benchmarks import fwd_sweep

    clock = itertools.count(1.0)
    cfgs = fwd_sweep._configs("pairs:16x16x1x1,position:16x16x1x1,position:24x16x1x1")
    row = fwd_sweep.sweep_shape(4, 16, 8, 4, cfgs, repeats=2, B=1, N=9, device="cpu",
                                dtype=torch.float32, bench=lambda fn: (fn(), next(clock))[1])
    runs = {r["cfg"]: r for r in row["runs"]}
    assert [r["cfg"] for r in row["runs"]][1:] == ["pairs:16x16x1x1", "position:16x16x1x1",
                                                   "position:24x16x1x1"]
    assert "power of 2" in runs["position:24x16x1x1"]["error"]
    timed = [r for r in row["runs"] if "error" not in r]
    assert [r["ms_each"] for r in timed] == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]  # in turns
    assert all(r["err32"] < 1e-5 for r in timed)
    assert all(r["vs_default"] < 1e-5 and r["lse_vs_default"] < 1e-5 for r in timed[1:])


def test_backward_sweep_reads_variants_and_refuses_bad_input(capsys):
    # benchmarks/bwd_sweep.py: the variant strings, and a one-line usage error for bad input
    # (before any GPU is needed)
    from benchmarks import bwd_sweep

    assert bwd_sweep.parse_variant("WALK=offset") == {"WALK": "offset"}
    assert bwd_sweep.parse_variant("short_warps=4+BLOCK_N=32") == {"short_warps": 4, "BLOCK_N": 32}
    assert bwd_sweep.parse_variant("kv_stages=0") == {"kv_stages": 0}
    for bad, says in (("--variants WALK", "expected FIELD=VALUE"),
                      ("--variants warps=4", "'warps' is not a BwdConfig field"),
                      ("--variants BLOCK_N=0", "BLOCK_N must be an integer >= 1"),
                      ("--variants short_warps=four", "short_warps must be an integer >= 0"),
                      ("--variants WALK=offset --gqa 2", "--gqa must be among"),
                      ("--variants WALK=offset --windows 32x512", "w1 >= w2")):
        with pytest.raises(SystemExit) as e:
            bwd_sweep.main(bad.split() + ["--out", "/dev/null"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert says in err, (bad, err)
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bwd_sweep.main(["--variants", "WALK=offset", "--out", "/dev/null"])
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_backward_sweep_records_each_variant_or_its_error():
    # the sweep's bookkeeping under the interpreter, with a stand-in for do_bench: every variant
    # is checked against the default and float32 (all five gradients), timed `repeats` times in
    # turns, and a variant the shape cannot take (a tile of 24 rows) is recorded with its error
    import itertools

    from benchmarks import bwd_sweep

    clock = itertools.count(1.0)
    variants = bwd_sweep._variants("WALK=offset,FUSED_MASKS=edges,BLOCK_M=24")
    row = bwd_sweep.sweep_shape(4, 16, 8, 4, variants, repeats=2, B=1, N=9, device="cpu",
                                dtype=torch.float32, bench=lambda fn: (fn(), next(clock))[1])
    runs = {r["variant"]: r for r in row["runs"]}
    assert list(runs) == ["default", "WALK=offset", "FUSED_MASKS=edges", "BLOCK_M=24"]
    assert "error" in runs["BLOCK_M=24"]
    timed = [r for r in row["runs"] if "error" not in r]
    assert [r["ms_each"] for r in timed] == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]  # in turns
    assert "WALK='offset'" in runs["WALK=offset"]["cfg"]
    for r in timed:
        assert set(r["err32"]) == set(bwd_sweep.GRADS) and max(r["err32"].values()) < 1e-4, r
    for r in timed[1:]:
        assert max(r["vs_default"].values()) < 1e-4, r


def test_sweeps_time_each_kernel_of_a_call():
    # --kernels: a run's self time per launch (here the CPU operators, without CUDA), largest
    # first, a kernel launched twice a call as two entries, the ones under the floor summed
    # into "(others)"; the backward sweep records it for the default and each variant
    from benchmarks import bwd_sweep
    from benchmarks.sweep_grid import kernel_times

    a, b = torch.randn(64, 64), torch.randn(64, 64)
    times = kernel_times(lambda: (a @ b).relu() @ b, calls=2, warmup=1, floor_ms=0.0)
    assert times and all(v >= 0 for v in times.values())
    assert list(times.values()) == sorted(times.values(), reverse=True)
    assert {"aten::mm#1", "aten::mm#2", "aten::relu"} <= set(times), times  # two launches a call
    lumped = kernel_times(lambda: (a @ b).relu(), calls=2, warmup=1, floor_ms=1e9)
    assert list(lumped) == ["(others)"]
    variants = bwd_sweep._variants("WALK=offset")
    row = bwd_sweep.sweep_shape(4, 16, 8, 4, variants, repeats=1, B=1, N=9, device="cpu",
                                dtype=torch.float32, bench=lambda fn: (fn(), 1.0)[1], kernels=True)
    assert all(r["kernels"] for r in row["runs"])
