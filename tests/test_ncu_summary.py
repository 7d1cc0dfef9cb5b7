"""tools/ncu_summary.py: one row per Nsight Compute report, clear errors."""
import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ncu_summary", Path(__file__).resolve().parents[1] / "tools" / "ncu_summary.py")
ncu_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ncu_summary)

REPORT = """\
# Nsight Compute, session 30, 2026-12-05, NVIDIA H100 80GB HBM3, commit 2713e70: forward D 64 \
GQA 4 512x32 B2 N8192 bf16, config offset+tma:64x128x4x3x16, launch-skip 1
# ncu ...
  _fwd_kernel (512, 16, 1)x(128, 1, 1), Context 1, Stream 7, Device 0, CC 9.0
    Duration                         ms          7.57
    SM Active Cycles              cycle 13,727,420.60
    Elapsed Cycles                cycle    13,850,381
    Eligible Warps Per Scheduler        warp         0.54
    INF   Shared is the highest-utilized pipeline (37.5%) based on elapsed cycles in the workload
    Issue Slots Busy               %        42.30
    Local Memory Spilling Requests                        2,931,072
    Registers Per Thread             register/thread             255
    Achieved Occupancy                        %        12.42
    Executed Ipc Active   inst/cycle         1.71
    # SMs                                         SM             132
    smsp__inst_executed.sum                    inst    3,099,000,000
total samples 1000
WARPGROUP.DEPBAR.LE                   152  15.2%
@!P2                                   57   5.7%
      152  15.2%        WARPGROUP.DEPBAR.LE gsb0, 0x0
instructions executed 400
HGMMA                                200  50.0%
MUFU                                 200  50.0%
"""


def test_one_row_per_report(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(REPORT)
    (tmp_path / "b.txt").write_text(REPORT.replace("D 64 GQA 4", "D 128 GQA 1"))
    out = tmp_path / "s.json"
    ncu_summary.main([str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["D"], r["G"]) for r in rows] == [(128, 1), (64, 4)]
    r = rows[1]
    assert r["gpu"] == "NVIDIA H100 80GB HBM3" and r["config"] == "offset+tma:64x128x4x3x16"
    assert r["kernel"] == "forward" and r["regions"] == []
    assert (r["w1"], r["w2"], r["B"], r["N"]) == (512, 32, 2, 8192)
    assert r["duration_ms"] == 7.57 and r["sm_active_cycles"] == 13727420.6
    assert r["elapsed_cycles"] == 13850381 and r["eligible_warps"] == 0.54
    assert (r["busiest_pipe"], r["busiest_pipe_pct"]) == ("Shared", 37.5)
    assert r["warp_instructions"] == 3.099e9 and r["spill_requests"] == 2931072
    assert r["stall_share_pct"] == {"WARPGROUP.DEPBAR.LE": 15.2, "@!P2": 5.7}
    assert r["executed_share_pct"] == {"HGMMA": 50.0, "MUFU": 50.0}
    # without the metric: executed IPC x active cycles x SMs
    r = ncu_summary.summarise(REPORT.replace("smsp__inst", "other"))
    assert r["warp_instructions"] == pytest.approx(1.71 * 13727420.6 * 132)


GLUON = """\
# Nsight Compute, session 31, 2026-12-05, NVIDIA H100 80GB HBM3, commit 61bac47: Gluon forward D 128 \
GQA 64 512x32 B2 N8192 bf16, default variant 128x2
""" + REPORT.split("\n", 1)[1] + """\
regions split at SETMAXREG: first address, instructions, ...
0x7f8e237aea00     8   0 /  0 /   0   0.1%   0.0%  (entry): LDC 0.0%, VIADD 0.0%
0x7f8e237aeba0  1583  16 /  0 /  66  32.4%  48.9%  USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xf0: \
WARPGROUP.DEPBAR.LE 5.3%, MUFU.EX2 4.7%, @!P0 1.0%
0x7f8e237b4ec0    75   0 /  4 /   0   4.6%       -  USETMAXREG.DEALLOC.CTAPOOL 0x18: NOP 4.1%
"""


def test_regions_of_a_warp_specialised_kernel():
    r = ncu_summary.summarise(GLUON)
    assert r["kernel"] == "Gluon forward" and r["config"] == "default variant 128x2"
    assert (r["D"], r["G"]) == (128, 64)
    entry, consumer, loader = r["regions"]
    assert entry["head"] == "(entry)" and entry["instructions"] == 8
    assert consumer == {"address": "0x7f8e237aeba0", "instructions": 1583, "hgmma": 16, "utmaldg": 0,
                        "mufu_ex2": 66, "stall_pct": 32.4, "executed_pct": 48.9,
                        "head": "USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xf0",
                        "stall_by_opcode_pct": {"WARPGROUP.DEPBAR.LE": 5.3, "MUFU.EX2": 4.7, "@!P0": 1.0}}
    assert loader["utmaldg"] == 4 and loader["executed_pct"] is None
    assert loader["stall_by_opcode_pct"] == {"NOP": 4.1}


def test_errors_name_the_report(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("not a profile\n")
    with pytest.raises(SystemExit):
        ncu_summary.main([str(bad), "--out", str(tmp_path / "s.json")])
    assert "bad.txt: the first line is not a profile header" in capsys.readouterr().err
    part = tmp_path / "part.txt"
    part.write_text(REPORT.replace("    Issue Slots Busy               %        42.30\n", ""))
    with pytest.raises(ValueError, match="part.txt: no 'Issue Slots Busy"):
        ncu_summary.summarise(part.read_text(), str(part))
    with pytest.raises(SystemExit):
        ncu_summary.main([str(tmp_path / "missing.txt"), "--out", str(tmp_path / "s.json")])
    assert "cannot read" in capsys.readouterr().err
