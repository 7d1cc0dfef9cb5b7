"""The benchmark's bookkeeping, without a GPU: repeats and their spread, the shape grid."""

from __future__ import annotations

import pytest

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


def test_topk_kernel_flag(capsys):
    assert bench.build_parser().parse_args(["--topk", "--topk-kernel", "row"]).topk_kernel == "row"
    assert bench.build_parser().parse_args(["--topk"]).topk_kernel is None  # $SIMPLEX_TOPK_KERNEL, else auto
    with pytest.raises(SystemExit) as e:
        bench.build_parser().parse_args(["--topk", "--topk-kernel", "fast"])
    assert e.value.code == 2 and "--topk-kernel" in capsys.readouterr().err
