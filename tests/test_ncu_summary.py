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
    assert (r["w1"], r["w2"], r["B"], r["N"]) == (512, 32, 2, 8192)
    assert r["duration_ms"] == 7.57 and r["sm_active_cycles"] == 13727420.6
    assert r["warp_instructions"] == 3.099e9 and r["spill_requests"] == 2931072
    assert r["stall_share_pct"] == {"WARPGROUP.DEPBAR.LE": 15.2, "@!P2": 5.7}
    assert r["executed_share_pct"] == {"HGMMA": 50.0, "MUFU": 50.0}
    # without the metric: executed IPC x active cycles x SMs
    r = ncu_summary.summarise(REPORT.replace("smsp__inst", "other"))
    assert r["warp_instructions"] == pytest.approx(1.71 * 13727420.6 * 132)


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
