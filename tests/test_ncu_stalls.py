"""tools/ncu_stalls.py: totals by opcode from an Nsight Compute source export, clear errors."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ncu_stalls", Path(__file__).resolve().parents[1] / "tools" / "ncu_stalls.py")
ncu_stalls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ncu_stalls)


def test_totals_by_opcode(tmp_path, capsys):
    csv = tmp_path / "rep.csv"
    csv.write_text('"Address","Source","Warp Stall Sampling (All Samples)","stall_wait"\n'
                   '"0x10","FFMA R1, R2, R3, R4","1,000","0"\n'
                   '"0x20","@!P1  BRA 0x10","3,000","0"\n'
                   '"0x30","FFMA R5, R6, R7, R8","1,000","0"\n')
    ncu_stalls.main([str(csv)])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "total samples 5000"
    assert out[1].split() == ["@!P1", "3000", "60.0%"]
    assert out[2].split() == ["FFMA", "2000", "40.0%"]


def test_usage_errors(tmp_path):
    with pytest.raises(SystemExit, match="usage"):
        ncu_stalls.main([])
    with pytest.raises(SystemExit, match="cannot read"):
        ncu_stalls.main([str(tmp_path / "missing.csv")])
    bad = tmp_path / "bad.csv"
    bad.write_text('"Address","Source"\n"0x10","NOP"\n')
    with pytest.raises(SystemExit, match="SourceCounters"):
        ncu_stalls.main([str(bad)])
