"""tools/ncu_stalls.py: totals by opcode from an Nsight Compute source export, clear errors."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ncu_stalls", Path(__file__).resolve().parents[1] / "tools" / "ncu_stalls.py")
ncu_stalls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ncu_stalls)


def _report(tmp_path, capsys, header: str, rows: list) -> list:
    """The script's output lines for a source export with ``header`` and ``rows``."""
    csv = tmp_path / "rep.csv"
    csv.write_text("\n".join([header] + rows) + "\n")
    ncu_stalls.main([str(csv)])
    return capsys.readouterr().out.splitlines()


def test_totals_by_opcode(tmp_path, capsys):
    out = _report(tmp_path, capsys, '"Address","Source","Warp Stall Sampling (All Samples)","stall_wait"',
                  ['"0x10","FFMA R1, R2, R3, R4","1,000","0"', '"0x20","@!P1  BRA 0x10","3,000","0"',
                   '"0x30","FFMA R5, R6, R7, R8","1,000","0"'])
    assert out[0] == "total samples 5000"
    assert out[1].split() == ["@!P1", "3000", "60.0%"]
    assert out[2].split() == ["FFMA", "2000", "40.0%"]
    assert not any(line.startswith("instructions executed") for line in out)


def test_executed_instructions_by_mnemonic(tmp_path, capsys):
    out = _report(tmp_path, capsys,
                  '"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed"',
                  ['"0x10","HGMMA.64x128x16.F32.BF16 R24, R56, gdesc[UR4], R24","10","100"',
                   '"0x20","@!P1 HGMMA.64x64x16.F32.BF16 R24, R56, gdesc[UR8], R24","10","100"',
                   '"0x30","MUFU.EX2 R1, R1","30","200"'])
    i = out.index("instructions executed 400")
    assert out[i + 1].split() == ["HGMMA", "200", "50.0%"]
    assert out[i + 2].split() == ["MUFU", "200", "50.0%"]


def test_usage_errors(tmp_path):
    with pytest.raises(SystemExit, match="usage"):
        ncu_stalls.main([])
    with pytest.raises(SystemExit, match="cannot read"):
        ncu_stalls.main([str(tmp_path / "missing.csv")])
    bad = tmp_path / "bad.csv"
    bad.write_text('"Address","Source"\n"0x10","NOP"\n')
    with pytest.raises(SystemExit, match="SourceCounters"):
        ncu_stalls.main([str(bad)])


def test_regions_of_a_warp_specialised_kernel(tmp_path, capsys):
    # the SASS split at each SETMAXREG: the loader's region and the consumer's, with their shares
    out = _report(tmp_path, capsys,
                  '"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed"',
                  ['"0x00","MOV R1, R2","0","10"',
                   '"0x10","USETMAXREG.DEALLOC.CTAPOOL 0x18 ;","0","10"',
                   '"0x20","UTMALDG.2D [UR8], [UR4]","10","10"',
                   '"0x30","@!P1 BRA 0x20","30","30"',
                   '"0x40","USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xf0 ;","0","10"',
                   '"0x50","HGMMA.64x128x16.F32.BF16 R24, R56, gdesc[UR4], R24","20","10"',
                   '"0x60","MUFU.EX2 R1, R1","40","20"'])
    i = next(k for k, line in enumerate(out) if line.startswith("regions split at SETMAXREG"))
    entry, loader, consumer = out[i + 1:i + 4]
    assert entry.split()[:7] == ["0x00", "1", "0", "/", "0", "/", "0"]
    assert loader.split()[:9] == ["0x10", "3", "0", "/", "1", "/", "0", "40.0%", "50.0%"]
    assert "USETMAXREG.DEALLOC.CTAPOOL 0x18" in loader and "@!P1 30.0%" in loader
    assert consumer.split()[:9] == ["0x40", "3", "1", "/", "0", "/", "1", "60.0%", "40.0%"]
    assert consumer.endswith("MUFU.EX2 40.0%, HGMMA.64x128x16.F32.BF16 20.0%")  # every opcode, to 8
    assert len(out) == i + 4
