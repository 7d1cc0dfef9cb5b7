"""The top-k kernels compile for Hopper at every block shape their launchers can pick (CPU).

The interpreter does not type-check loops, so a value whose block shape differs between the
outer and inner loop failed only in the real compiler (on the H200, when ``BLOCK_A !=
BLOCK_B``). ``tests/sm90.py`` compiles for sm_90 without a GPU, in a process of its own (the
suite runs under ``TRITON_INTERPRET=1``).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton.backends.nvidia")


def test_topk_kernels_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("sm90.py")
    run = subprocess.run([sys.executable, str(script), "topk"], env=env, capture_output=True, text=True,
                         cwd=script.parent.parent, timeout=900)
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert any("x16x16" in n for n in lines) and any("x64x32" in n for n in lines)  # unequal blocks ran
    assert len(lines) >= 9 and all(n.startswith("ok") for n in lines)
