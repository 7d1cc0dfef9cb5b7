"""The kernels compile for Hopper on the CPU (``tools/sm90.py``), and the compile's register and
spill report matches the one recorded on the H200.

The interpreter does not type-check loops, so a value whose block shape differs between the outer
and inner loop failed only in the real compiler (on the H200, the top-k row forward when
``BLOCK_A != BLOCK_B``). The tool runs in a process of its own: the suite runs under
``TRITON_INTERPRET=1``.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton.backends.nvidia")

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "sm90.py"


def _run(args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=900, **kw)


def test_topk_kernels_compile_for_sm90():
    run = _run([str(TOOL), "topk"])
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert any("x16x16" in n for n in lines) and any("x64x32" in n for n in lines)  # unequal blocks ran
    assert len(lines) >= 9 and all(n.startswith("ok") for n in lines)


def test_cpu_compile_report_matches_the_h200_record():
    # the fused short-window backward (offset walk) at every launch of the H200 grid, as the H200
    # compiled it: registers, spills and shared memory, word for word (its launcher specialised
    # n_hblocks, which is 1 at these ratios, and G where it is 1)
    rec = json.loads((ROOT / "benchmarks" / "results" / "h200" / "shapes.json").read_text())
    want = [c for c in rec["compiled"] if c["kernel"] == "_bwd_dq_short_offset_kernel"]
    assert len(want) == 6  # D 64 / 128 x GQA 1 / 4 / 8
    code = (
        "import json, sys; sys.path.insert(0, 'tools'); import sm90\n"
        "from simplex_lib.ops.two_simplicial import backward as kb\n"
        "out = []\n"
        "for c in json.loads(sys.argv[1]):\n"
        "    meta = dict(c['constexprs'], n_hblocks=1)\n"
        "    k = sm90.compile_sm90(kb._bwd_dq_short_offset_kernel, meta, sm90.FUSED_POINTERS,\n"
        "                          num_warps=c['num_warps'], num_stages=c['num_stages'])\n"
        "    out.append(sm90.resources(k))\n"
        "print(json.dumps(out))\n")
    run = _run(["-c", code, json.dumps(want)])
    assert run.returncode == 0, run.stderr[-2000:]
    for c, got in zip(want, json.loads(run.stdout)):
        assert got == {"regs": c["n_regs"], "spills": c["n_spills"], "shared": c["shared_bytes"]}, (got, c)


def test_fused_offset_walk_compiles_for_sm90():
    # the offset walk of the fused kernel at D 64 with 8 warps and 64-wide tiles: no spills there
    # (the default launch, 4 warps, spills and was faster on the H200); the report names the walk
    run = _run([str(TOOL), "fused", "--head-dim", "64", "--group", "1", "--walk", "offset"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    line = next(n for n in run.stdout.splitlines() if "warps 8 BLOCK_N  64" in n)
    assert "offset walk" in line and " 0 spilled" in line, line


def test_forward_offset_walk_compiles_for_sm90():
    # the forward's offset walk at 4 and 8 warps, D 64 GQA 8: both compile, and with 8 warps
    # nothing spills (the default, 4 warps, spills a little and was faster on the H200)
    run = _run([str(TOOL), "fwd", "--head-dim", "64", "--group", "8"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all("offset walk" in n for n in lines)
    eight = next(n for n in lines if "warps 8" in n)
    assert int(eight.split(" spilled")[0].rsplit(" ", 1)[1]) == 0, eight


def test_forward_tail_pass_compiles_without_the_other_tile():
    # the narrow last tile as a launch of its own (FwdConfig.TAIL_PASS), D 128 GQA 4, 512x32:
    # in the same program it raises the spills; as its own pass it spills nothing, and the body
    # (the whole tiles from its state) spills no more than whole tiles alone
    run = _run([str(TOOL), "tail", "--head-dim", "128", "--group", "4"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 4, lines
    spills = {n.split(") ", 1)[1].split(":")[0]: int(n.split(" spilled")[0].rsplit(" ", 1)[1])
              for n in lines}
    assert spills["tail pass"] == 0, spills
    assert spills["body pass"] <= spills["whole tiles"] < spills["narrow tile of 16 in the program"]


def test_pairs_forward_compiles_for_sm90_without_spills():
    # the pairs forward at the headline tile (64 pairs of one position, 4 warps, D 128, GQA 4):
    # no spills, so two programs per SM
    run = _run([str(TOOL), "pairs", "--head-dim", "128", "--group", "4"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2, lines
    line = next(n for n in lines if "pairs 64 (1 positions x 32 offsets) warps 4" in n)
    assert " 0 spilled" in line, line


def test_sass_report_compares_two_builds(tmp_path):
    # `sass --out` then `sass --compare` on the same tree: every forward launch identical (rc 0);
    # one instruction changed in the record shows as moved (rc 1); bad arguments get a usage line
    out = tmp_path / "sass.json"
    run = _run([str(TOOL), "sass", "--out", str(out)])
    assert run.returncode == 0, run.stderr[-2000:]
    run = _run([str(TOOL), "sass", "--compare", str(out)])
    rec = json.loads(out.read_text())
    assert len(rec) == 20  # _fwd_kernel at 8 launches, the pairs kernel at 12
    assert run.returncode == 0 and run.stdout.count(": identical") == len(rec), run.stdout
    rec["_fwd_kernel D 128 GQA 4"][-1] += " (edited)"
    out.write_text(json.dumps(rec))
    run = _run([str(TOOL), "sass", "--compare", str(out)])
    assert run.returncode == 1 and "_fwd_kernel D 128 GQA 4: MOVED" in run.stdout, run.stdout
    run = _run([str(TOOL), "sass"])
    assert run.returncode == 2 and "sass needs --out FILE" in run.stderr.splitlines()[-1]


def test_tool_refuses_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(TOOL), "topk"], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "unset TRITON_INTERPRET" in run.stderr.splitlines()[-1]


def test_hopper_forward_compiles_for_sm90():
    """The Gluon forward (not runnable under the interpreter) builds for Hopper, each variant:
    warp-group GEMMs that ptxas keeps pipelined, per-partition register budgets, and its shared
    memory within the H200's 227 KB. With the operand warp group (``operands=True``) the
    consumers hold neither ``q`` nor its products, and the plain variants spill nothing; nor do
    those whose group also scales the values (``scaled_values=True``)."""
    from simplex_lib.ops.two_simplicial.hopper import operand_shared_bytes

    run = _run([str(TOOL), "hopper"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 9, lines
    for line in lines:
        shared = int(line.split(" B shared")[0].rsplit(" ", 1)[1])
        hgmma = int(line.split(" HGMMA")[0].rsplit(" ", 1)[1])
        spilled = int(line.split(" spilled")[0].rsplit(" ", 1)[1])
        assert shared <= 227 * 1024 and hgmma >= 16 and " 0 SETMAXREG" not in line, line
        assert "wgmma pipelined" in line, line
        how = line.split(":")[0]
        if "operands" in how:
            d, bn = int(how.split()[1]), int(how.split()[3])
            # the launcher's shared-memory check agrees with the compiler
            assert 0 <= operand_shared_bytes(d, bn, 2, "scaled" in how) - shared <= 250, line
        if how.endswith("operands") or "scaled" in how:
            assert spilled == 0, line


def test_hopper_backward_compiles_for_sm90_without_spills():
    """The Gluon dq/dk2/dv2 backward (not runnable under the interpreter) builds for Hopper at D 64
    and 128: no spills, shared memory within the H200's 227 KB, and ptxas keeps its wgmmas
    pipelined (it serialises them all when a warp group runs out of registers). At D 128 two
    words are spilled: shared-memory addresses both consumers use, computed before the
    partitions start and kept across their setmaxnreg, each consumer reloading one with a single
    local load in its loop (the module docstring's register plan)."""
    run = _run([str(TOOL), "hopper-bwd"])
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 2, lines
    for line, most in zip(lines, (0, 2)):
        assert line.startswith(f"D {64 if most == 0 else 128} "), line
        shared = int(line.split(" B shared")[0].rsplit(" ", 1)[1])
        spilled = int(line.split(" spilled")[0].rsplit(" ", 1)[1])
        assert shared <= 227 * 1024 and spilled <= most and "wgmma pipelined" in line, line
