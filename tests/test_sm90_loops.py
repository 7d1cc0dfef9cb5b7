"""tools/sm90.py's loop finder on SASS text (no compile: the text is written here)."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("triton.backends.compiler")
_spec = importlib.util.spec_from_file_location(
    "sm90", Path(__file__).resolve().parents[1] / "tools" / "sm90.py")
sm90 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sm90)


def _sass(lines):
    return "\n".join(f"        /*{16 * i:04x}*/                   {t} ;   /* 0x0 */"
                     for i, t in enumerate(lines))


def test_loops_are_conditional_backward_branches():
    body = ["HGMMA.64x128x16.F32.BF16 R24, R104, gdesc[UR40], RZ, !UPT", "MUFU.EX2 R72, R72",
            "@P1 FSEL R1, R2, RZ, P0", "FMNMX R1, R2, R3, !PT"]
    code = (["S2R R0, SR_TID.X"] + body * 2            # 0x10 .. 0x80: the loop's body
            + ["@P2 BRA 0x10",                         # 0x90: its back edge
               "SYNCS.PHASECHK.TRANS64.TRYWAIT P3, [UR8], R2", "@!P3 BRA 0xa0",  # a retry: too small
               "BRA 0x10",                             # a return from out-of-line code: no loop
               "EXIT"])
    loops = sm90.sass_loops(_sass(code))
    assert len(loops) == 1
    lp = loops[0]
    assert (lp["start"], lp["end"], lp["instructions"]) == (0x10, 0x90, 9)
    assert lp["mnemonics"] == {"HGMMA": 2, "MUFU": 2, "FSEL": 2, "FMNMX": 2, "BRA": 1}
    assert sm90.sass_loops(_sass(code), min_size=2)[1]["instructions"] == 2  # the retry loop
