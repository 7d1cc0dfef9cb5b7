"""Compile the library's Triton kernels for Hopper (sm_90) on a machine without a GPU.

The interpreter runs kernels as NumPy, so it misses what only the compiler sees: a loop-carried
value whose block shape changes between iterations fails to compile, and a tile too large for
the registers spills to local memory. This tool runs Triton's whole pipeline, front end to cubin,
for chosen constexprs and launch settings, and reads the registers, spills and shared memory of
the result with the ``cuobjdump`` that ships with Triton. Pointers and the int arguments that are
multiples of 16 at run time are marked as such, as Triton's launcher marks them, so the numbers
match a GPU compile (checked against the H200 record ``benchmarks/results/h200/shapes_fused.json``
by ``tests/test_kernels_compile.py``).

Run it in a process without ``TRITON_INTERPRET``::

    python tools/sm90.py topk                  # the top-k kernels at every block shape
    python tools/sm90.py fused --head-dim 128  # the fused short-window backward: warps x BLOCK_N
    python tools/sm90.py fwd --head-dim 128    # the forward's offset walk, either loop outside
    python tools/sm90.py tail --group 4        # its narrow last tile: in the program, or a launch
    python tools/sm90.py pairs --group 4       # the pairs forward, one tile or several a program
    python tools/sm90.py loops --head-dim 64 --group 4  # the forward's loops: instructions by mnemonic
    python tools/sm90.py sass --out a.json     # the forwards' SASS at their default launches...
    python tools/sm90.py sass --compare a.json # ...and after a change: which kernels it moved
    python tools/sm90.py hopper                # the Gluon forward (ops/two_simplicial/hopper.py), each variant
    python tools/sm90.py hopper-bwd            # the Gluon dq/dk2/dv2 backward (hopper_bwd.py)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)

# int arguments that are multiples of 16 at the benchmark shapes (strides of contiguous
# [B, N, H, D] tensors, lengths, windows)
DIVISIBLE = ("stride_qb", "stride_qn", "stride_qh", "stride_kb", "stride_kn", "stride_kh",
             "N", "Hq", "W1", "W2")


def compile_sm90(kernel, constexprs: dict, pointers: dict, *, num_warps: int = 4, num_stages: int = 2,
                 divisible: tuple = DIVISIBLE, maxnreg: int | None = None):
    """Compile ``kernel`` (a ``@triton.jit`` function) for sm_90; return the compiled kernel.

    ``pointers`` maps every pointer argument to its Triton type (``"*bf16"``, ``"*fp32"``,
    ``"*i32"``); other arguments are fp32 if their name has ``scale``, else int32. Constexprs
    not given take their defaults. An int argument given in ``constexprs`` is specialised to
    that value, as Triton's launcher specialises an int argument equal to 1 (``G`` without
    GQA). Pointers, and the int arguments named in ``divisible``, are marked as multiples of
    16. Raises what Triton raises (``CompilationError`` for front-end errors).
    """
    const_names = {kernel.arg_names[i] for i in kernel.constexprs} | (set(constexprs) & set(kernel.arg_names))
    sig = {n: "constexpr" if n in const_names else pointers.get(n, "fp32" if "scale" in n else "i32")
           for n in kernel.arg_names}
    defaults = {p.name: p.default for p in kernel.params}
    consts = {n: constexprs.get(n, defaults[n]) for n in const_names}
    div16 = [(i,) for i, n in enumerate(kernel.arg_names)
             if n not in const_names and (sig[n].startswith("*") or n in divisible)]
    attrs = {k: [["tt.divisibility", 16]] for k in div16}
    if getattr(kernel, "is_gluon", lambda: False)():
        from triton.experimental.gluon._runtime import GluonASTSource
        src = GluonASTSource(kernel, sig, constexprs=consts, attrs=attrs)
    else:
        src = ASTSource(kernel, sig, constexprs=consts, attrs=attrs)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    if maxnreg is not None:
        options["maxnreg"] = maxnreg
    return triton.compile(src, target=HOPPER, options=options)


NVIDIA_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"  # ships with Triton


def cuobjdump(compiled, flag: str = "-sass") -> str:
    """``cuobjdump FLAG`` of a compiled kernel's cubin (``-sass``, ``--dump-resource-usage``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(compiled.asm["cubin"])
        return subprocess.run([str(NVIDIA_BIN / "cuobjdump"), flag, str(path)], capture_output=True,
                              text=True, check=True).stdout


def resources(compiled) -> dict:
    """Registers per thread, spilled 32-bit words per thread (the local-memory stack frame / 4, as
    Triton's ``n_spills``) and shared memory in bytes of a compiled kernel."""
    out = cuobjdump(compiled, "--dump-resource-usage")
    regs, stack = (int(re.search(rf"{k}:(\d+)", out)[1]) for k in ("REG", "STACK"))
    return {"regs": regs, "spills": stack // 4, "shared": compiled.metadata.shared}


TOPK_POINTERS = dict.fromkeys(["Q", "K1", "K2", "V1", "V2", "O", "DO", "DQ"], "*bf16") | {
    "IA": "*i32", "IB": "*i32", "LSE": "*fp32", "DELTA": "*fp32",
    "DK1": "*fp32", "DK2": "*fp32", "DV1": "*fp32", "DV2": "*fp32",
    "QI": "*bf16", "KI": "*bf16", "W": "*fp32", "IDX": "*i64"}
FUSED_POINTERS = dict.fromkeys(["Q", "K1", "K2", "V1", "V2", "DO", "DQ"], "*bf16") | dict.fromkeys(
    ["LSE", "DELTA", "PK2", "PV2"], "*fp32")


def topk_cases():
    """The top-k row kernels at every block shape ``_blocks`` gives for equal and unequal
    selections and both head sizes, and the fused indexer: ``(name, kernel, constexprs,
    warps)``."""
    from simplex_lib.ops.topk import triton as tk
    shapes = [(128, 128, 128), (128, 32, 128), (16, 64, 64), (64, 64, 64), (100, 7, 128)]  # (kA, kB, D)
    for bd, ba, bb in sorted({b for ka, kb, d in shapes for b in tk._blocks(ka, kb, d)}):
        meta = dict(BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC="tf32")
        warps = 4 if bd <= 64 else 8  # as the launchers choose
        yield f"fwd {bd}x{ba}x{bb}", tk._topk_fwd_kernel, meta, warps
        for partial in (False, True):
            yield f"bwd {bd}x{ba}x{bb} partial={partial}", tk._topk_bwd_kernel, meta | {"PARTIAL": partial}, warps
    from simplex_lib.ops.topk import indexer as ix
    # the fused indexer: the small indexer and DeepSeek's (64 heads of 128), both k ranges
    for hi, bd, bq, kp2 in ((4, 32, 32, 64), (4, 32, 16, 128), (64, 128, 16, 256)):
        meta = dict(HI=hi, BLOCK_D=bd, BLOCK_Q=bq, K_P2=kp2, PREC="tf32", NONE=ix.NO_KEY)
        yield f"indexer {hi}x{bd} BLOCK_Q {bq} K {kp2}", ix._indexer_topk_kernel, meta, 4


def fused_report(head_dim: int, group: int, stages: int, walk: str = "key"):
    """Resources of the fused short-window backward kernel (``_bwd_dq_short_kernel``, or with
    ``walk="offset"`` ``_bwd_dq_short_offset_kernel``) at 4 and 8 warps and BLOCK_N 32, 64, 128,
    for one head size and GQA ratio (64-row tiles)."""
    from simplex_lib.ops.two_simplicial import backward as kb
    from simplex_lib.ops.two_simplicial.configs import row_tiling
    kernel = kb._bwd_dq_short_offset_kernel if walk == "offset" else kb._bwd_dq_short_kernel
    rt = row_tiling(group, 64)
    for warps in (4, 8):
        for block_n in (32, 64, 128):
            meta = dict(HEAD_DIM=head_dim, GH=rt.GH, POS=rt.POS, BLOCK_N=block_n, PREC="tf32")
            c = compile_sm90(kernel, meta, FUSED_POINTERS, num_warps=warps, num_stages=stages)
            r = resources(c)
            print(f"D {head_dim} GQA {group} (GH {rt.GH}, POS {rt.POS}) {walk} walk, warps {warps} "
                  f"BLOCK_N {block_n:3d} stages {stages}: {r['regs']} registers, {r['spills']} spilled, "
                  f"{r['shared']} B shared")


def fwd_report(head_dim: int, group: int, block_n: int = 128):
    """Resources of the forward's offset walk (``_fwd_kernel``) for one head size and GQA ratio
    (64-row tiles and the stages ``fwd_config`` gives, at 4 and 8 warps)."""
    from simplex_lib.ops.two_simplicial import forward as kf
    from simplex_lib.ops.two_simplicial.configs import row_tiling
    rt = row_tiling(group, 64)
    stages = 3 if head_dim <= 64 else 2
    meta = dict(HEAD_DIM=head_dim, GH=rt.GH, POS=rt.POS, BLOCK_N=block_n, PREC="tf32")
    meta |= {"G": 1} if group == 1 else {}  # the launcher specialises an int argument of 1
    for warps in (4, 8):
        c = compile_sm90(kf._fwd_kernel, meta | {"OFFSET": True}, HOPPER_POINTERS, num_warps=warps,
                         num_stages=stages)
        r = resources(c)
        print(f"D {head_dim} GQA {group} (GH {rt.GH}, POS {rt.POS}) offset walk, warps {warps} "
              f"BLOCK_N {block_n} stages {stages}: {r['regs']} registers, {r['spills']} spilled, "
              f"{r['shared']} B shared")


HOPPER_POINTERS = dict.fromkeys(["Q", "K1", "K2", "V1", "V2", "O"], "*bf16") | {"LSE": "*fp32"}


def tail_report(head_dim: int, group: int, w1: int = 512):
    """Resources of the forward's offset walk with TMA tiles at the launch ``fwd_config`` gives
    (128-key tiles, 4 warps), with whole tiles only, with the narrow last tile in the same
    program (``TAIL``), and with that tile as a launch of its own: the tail pass (``SPLIT`` 1,
    writing fp32) and the body (``SPLIT`` 2, starting from it)."""
    from simplex_lib.ops.two_simplicial import forward as kf
    from simplex_lib.ops.two_simplicial.configs import fwd_config, row_tiling, tail_width
    cfg = fwd_config(head_dim, group, w1, 32, tma=True)
    tail = tail_width(group, cfg.BLOCK_M, w1, cfg.BLOCK_N)
    rt = row_tiling(group, cfg.BLOCK_M)
    meta = dict(HEAD_DIM=head_dim, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N, PREC="tf32",
                OFFSET=True, TMA=True) | ({"G": 1} if group == 1 else {})
    ptr = HOPPER_POINTERS | {"O_PART": "*fp32"}
    cases = [("whole tiles", {}, ptr)]
    if tail:
        cases += [(f"narrow tile of {tail} in the program", {"TAIL": tail}, ptr),
                  ("tail pass", {"TAIL": tail, "SPLIT": 1}, ptr | {"O": "*fp32"}),
                  ("body pass", {"TAIL": tail, "SPLIT": 2}, ptr)]
    for name, extra, pointers in cases:
        c = compile_sm90(kf._fwd_kernel, meta | extra, pointers, num_warps=cfg.num_warps,
                         num_stages=cfg.num_stages)
        r = resources(c)
        print(f"D {head_dim} GQA {group} w1 {w1} ({cfg.BLOCK_M}x{cfg.BLOCK_N}, {cfg.num_warps} warps, "
              f"{cfg.num_stages} stages) {name}: {r['regs']} registers, {r['spills']} spilled, "
              f"{r['shared']} B shared, {len(_sass_lines(c))} SASS")


def pairs_report(head_dim: int, group: int, w2: int = 32):
    """Resources of the pairs forward (``_fwd_pairs_kernel``) as ``forward_pairs`` launches it,
    for 64 pairs at 4 warps and the stages ``fwd_config`` gives, and 128 pairs at 8 warps;
    64-key tiles."""
    from simplex_lib.ops.two_simplicial import forward as kf
    from simplex_lib.ops.two_simplicial.configs import pair_tiling
    stages = 3 if head_dim <= 64 else 2
    for block_m, warps in ((64, 4), (128, 8)):
        pt = pair_tiling(group, w2, block_m)
        meta = dict(HEAD_DIM=head_dim, GH=pt.GH, OS=pt.OS, BLOCK_N=64, PREC="tf32", POS=pt.POS,
                    N_GROUPS=triton.cdiv(w2, pt.OS), BLOCK_A=max(16, triton.next_power_of_2(pt.POS - 1)))
        r = resources(compile_sm90(kf._fwd_pairs_kernel, meta, HOPPER_POINTERS, num_warps=warps,
                                   num_stages=stages))
        print(f"D {head_dim} GQA {group} w2 {w2} pairs {block_m} ({pt.POS} positions x {pt.OS} offsets) "
              f"warps {warps} stages {stages}: {r['regs']} registers, {r['spills']} spilled, "
              f"{r['shared']} B shared")


def _serialised(compiled, maxnreg: int) -> bool:
    """Whether ptxas serialised the kernel's wgmmas: it does so, silently but for an info line of
    ``ptxas -v``, when a warp group runs short of registers."""
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "kernel.ptx"
        ptx.write_text(compiled.asm["ptx"])
        info = subprocess.run([str(NVIDIA_BIN / "ptxas"), "-arch=sm_90a", "-v", f"-maxrregcount={maxnreg}", str(ptx),
                               "-o", str(Path(tmp) / "again.cubin")], capture_output=True, text=True).stderr
    return "serialized" in info


def hopper_report(head_dim: int, block_n: int, stages: int, operands: bool = False,
                  pipeline: bool = False, scaled_values: bool = False) -> dict:
    """Resources of the Gluon forward (``_hopper_fwd_kernel``) as ``hopper_forward`` launches it
    (``operands``, ``pipeline``, ``scaled_values``: its arguments of those names), plus the number
    of ``HGMMA`` and ``SETMAXREG`` instructions in its SASS and whether ptxas serialised the
    wgmmas."""
    from simplex_lib.ops.two_simplicial import hopper as hp
    regs = hp.operand_group_regs(head_dim, pipeline, scaled_values) if operands else (240, 24)
    meta = dict(D=head_dim, BLOCK_N=block_n, STAGES=stages, PIPELINE=pipeline, OPERANDS=operands,
                NA=hp.operand_slots_fwd(head_dim, block_n),
                REGS_C=regs[0], REGS_W=regs[1], SCALED_V=scaled_values)
    c = compile_sm90(hp._hopper_fwd_kernel, meta, HOPPER_POINTERS, num_warps=4, num_stages=1, maxnreg=168)
    sass = cuobjdump(c)
    return resources(c) | {"hgmma": sass.count("HGMMA."), "setmaxnreg": sass.count("SETMAXREG"),
                           "serialised": _serialised(c, 168)}


HOPPER_BWD_POINTERS = dict.fromkeys(["Q", "K1", "K2", "V1", "V2", "DO", "DQ"], "*bf16") | dict.fromkeys(
    ["LSE", "DELTA", "DK2", "DV2"], "*fp32")


def hopper_bwd_report(head_dim: int, stages: int, w2: int = 32, partial: bool = True) -> dict:
    """Resources of the Gluon backward (``_hopper_bwd_dq_kernel``) as ``hopper_backward_dq``
    launches it (BLOCK_N 64, ``W2P = next_pow2(w2)``), plus its ``HGMMA`` instructions, the
    setmaxnreg of its three partitions (S, consumer 0, consumer 1) and whether ptxas serialised
    the wgmmas (it does so, silently but for an info line, when registers run short)."""
    from simplex_lib.ops.two_simplicial import hopper_bwd as hb
    regs = hb.REGS[head_dim]
    meta = dict(D=head_dim, BLOCK_N=hb.BWD_BLOCK_N, STAGES=stages, W2P=triton.next_power_of_2(w2),
                NA=hb.operand_slots(head_dim, w2), REGS0=regs[0], REGS1=regs[1], PARTIAL=partial)
    c = compile_sm90(hb._hopper_bwd_dq_kernel, meta, HOPPER_BWD_POINTERS, num_warps=4, num_stages=1,
                     maxnreg=hb.MAXNREG)
    r, sass = resources(c), cuobjdump(c)
    # the default partition (S) gets what the consumers leave of the warp groups' budget
    parts = (c.metadata.num_warps // 4 * hb.MAXNREG - sum(regs), *regs)
    found = {int(n) for n in re.findall(r"setmaxnreg\.\w+\.sync\.aligned\.u32\s+(\d+)", c.asm["ptx"])}
    if not set(parts) <= found:
        raise RuntimeError(f"expected setmaxnreg {parts} in the PTX, found {sorted(found)}")
    return r | {"hgmma": sass.count("HGMMA."), "partitions": parts, "warps": c.metadata.num_warps,
                "serialised": _serialised(c, hb.MAXNREG)}


def _sass_lines(compiled) -> list[str]:
    """The SASS of a compiled kernel, one instruction a line, without addresses."""
    lines = (re.sub(r"/\*[0-9a-f]{4}\*/", "", n).strip()
             for n in cuobjdump(compiled).splitlines() if "/*" in n)
    return [n for n in lines if n and not n.startswith("/* 0x")]


def sass_loops(sass: str, min_size: int = 8) -> list[dict]:
    """The loops of a kernel's SASS (``cuobjdump -sass`` text): one per conditional backward branch
    over at least ``min_size`` instructions.

    Unconditional backward branches are left out: they are the returns of out-of-line code (an
    mbarrier's retry loop jumps back to where it was called from), not loops. Each loop is
    ``{"start", "end"}`` (the addresses of its first instruction and of its branch),
    ``"instructions"`` and ``"mnemonics"`` (a ``Counter`` of the instructions' mnemonics, the
    predicate guard and the modifiers dropped: ``@P2 HGMMA.64x128x16.F32.BF16`` is ``HGMMA``);
    outer loops count their inner loops' instructions once.
    """
    import collections
    code = [(int(m[1], 16), m[2]) for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*?)\s*;", sass)]
    index = {a: i for i, (a, _) in enumerate(code)}
    loops = []
    for i, (addr, text) in enumerate(code):
        m = re.match(r"@!?U?P\w+\s+BRA\s+(?:`\()?(0x[0-9a-f]+)", text)
        if m is None or int(m[1], 16) not in index:
            continue
        start = index[int(m[1], 16)]
        if start < i and i - start + 1 >= min_size:
            words = (next((w for w in t.split() if not w.startswith("@")), "?") for _, t in code[start:i + 1])
            loops.append(dict(start=code[start][0], end=addr, instructions=i - start + 1,
                              mnemonics=collections.Counter(w.split(".")[0] for w in words)))
    return loops


def loops_report(head_dim: int, group: int, w1: int = 512) -> None:
    """The loops of the forward (``_fwd_kernel``) at the launch ``fwd_config`` gives on an H200
    (TMA tiles; with a tail pass, its body launch), with each loop's instructions by mnemonic."""
    from simplex_lib.ops.two_simplicial import forward as kf
    from simplex_lib.ops.two_simplicial.configs import fwd_config, row_tiling, tail_width
    cfg = fwd_config(head_dim, group, w1, 32, tma=True)
    rt = row_tiling(group, cfg.BLOCK_M)
    offset = cfg.WALK == "offset" and rt.POS > 1
    tail = tail_width(group, cfg.BLOCK_M, w1, cfg.BLOCK_N) if offset else 0
    meta = dict(HEAD_DIM=head_dim, GH=rt.GH, POS=rt.POS, BLOCK_N=cfg.BLOCK_N, PREC="tf32",
                OFFSET=offset, TMA=offset and cfg.LOADS == "tma", TAIL=tail,
                SPLIT=2 if tail and cfg.TAIL_PASS else 0) | ({"G": 1} if group == 1 else {})
    c = compile_sm90(kf._fwd_kernel, meta, HOPPER_POINTERS | {"O_PART": "*fp32" if meta["SPLIT"] else "*bf16"},
                     num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    r = resources(c)
    print(f"D {head_dim} GQA {group} w1 {w1}: {cfg} ({meta}): {r['regs']} registers, {r['spills']} spilled")
    for lp in sass_loops(cuobjdump(c)):
        top = ", ".join(f"{k} {v}" for k, v in lp["mnemonics"].most_common(12))
        print(f"  loop {lp['start']:#x}-{lp['end']:#x}: {lp['instructions']} instructions, "
              f"{lp['mnemonics']['HGMMA']} HGMMA: {top}")


def forward_sass() -> dict:
    """``{launch: SASS lines}`` of the forward kernels at the launches ``fwd_config`` picks on an
    H200 (bf16, 512x32 and 256x64 windows): the offset and position walks at D 64 / 128 and GQA
    1 / 4 / 8 / 64, and the pairs kernel where it is the default (and at GQA 1, w2 32, two
    positions a tile)."""
    from simplex_lib.ops.two_simplicial import forward as kf
    from simplex_lib.ops.two_simplicial.configs import pair_tiling, pairs_fit, row_tiling
    out = {}
    for d in (64, 128):
        stages = 3 if d <= 64 else 2
        for g in (1, 4, 8, 64):
            rt = row_tiling(g, 64)
            meta = dict(HEAD_DIM=d, GH=rt.GH, POS=rt.POS, BLOCK_N=128, PREC="tf32", OFFSET=rt.POS >= 8)
            meta |= {"G": 1} if g == 1 else {}
            out[f"_fwd_kernel D {d} GQA {g}"] = _sass_lines(compile_sm90(
                kf._fwd_kernel, meta, HOPPER_POINTERS, num_warps=4, num_stages=stages))
            for w2 in (32, 64):
                if not pairs_fit(g, w2, 64) and (g, w2) != (1, 32):
                    continue
                pt = pair_tiling(g, w2, 64)
                meta = dict(HEAD_DIM=d, GH=pt.GH, OS=pt.OS, BLOCK_N=64, PREC="tf32")
                one = meta | dict(POS=pt.POS, N_GROUPS=1, BLOCK_A=16)
                out[f"_fwd_pairs_kernel D {d} GQA {g} w2 {w2}"] = _sass_lines(compile_sm90(
                    kf._fwd_pairs_kernel, one, HOPPER_POINTERS, num_warps=4, num_stages=stages))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python tools/sm90.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["topk", "fused", "fwd", "tail", "loops", "pairs", "sass", "hopper",
                                     "hopper-bwd"])
    ap.add_argument("--head-dim", type=int, default=128, help="fused, fwd, tail, loops: D (default 128)")
    ap.add_argument("--group", type=int, default=8,
                    help="fused, fwd, tail, loops, pairs: query heads per KV head (default 8)")
    ap.add_argument("--stages", type=int, default=2, help="fused, hopper, hopper-bwd: pipeline depth (default 2)")
    ap.add_argument("--block-n", type=int, choices=(32, 64, 128), default=128,
                    help="fwd: long-window keys per tile (default 128, as fwd_config)")
    ap.add_argument("--w2", type=int, default=32,
                    help="hopper-bwd: short window, sizes its buffers; pairs: the short window (default 32)")
    ap.add_argument("--walk", choices=["key", "offset"], default="key",
                    help="fused: how the kernel walks the short window (default key)")
    ap.add_argument("--out", help="sass: write the forwards' SASS to this JSON file")
    ap.add_argument("--compare", help="sass: the JSON of an earlier `sass --out`, to compare with")
    a = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET"):
        ap.error("unset TRITON_INTERPRET: the kernels must be compiled, not interpreted")
    if a.what == "sass":
        if not (a.out or a.compare):
            ap.error("sass needs --out FILE, --compare FILE, or both")
        if a.compare and not Path(a.compare).is_file():
            ap.error(f"--compare: no such file {a.compare!r}")
        now = forward_sass()
        if a.out:
            Path(a.out).write_text(json.dumps(now))
        if a.compare:
            before = json.loads(Path(a.compare).read_text())
            moved = 0
            for name in sorted(set(before) | set(now)):
                if name not in before or name not in now:
                    state = "only before" if name in before else "new"
                else:
                    same = before[name] == now[name]
                    moved += not same
                    state = "identical" if same else f"MOVED ({len(before[name])} -> {len(now[name])} instructions)"
                print(f"{name}: {state}")
            sys.exit(1 if moved else 0)
        return
    if a.what == "hopper":
        for d, bn, how in ((64, 128, ""), (128, 64, ""), (128, 128, ""), (64, 128, "operands"),
                           (128, 64, "operands"), (128, 64, "operands, pipelined"),
                           (64, 128, "operands, scaled values"), (128, 64, "operands, scaled values"),
                           (128, 64, "operands, scaled values, pipelined")):
            r = hopper_report(d, bn, a.stages, operands="operands" in how, pipeline="pipelined" in how,
                              scaled_values="scaled" in how)
            print(f"D {d} BLOCK_N {bn} stages {a.stages}{' ' + how if how else ''}: {r['regs']} registers "
                  f"(launch cap), {r['spills']} spilled, {r['shared']} B shared, {r['hgmma']} HGMMA, "
                  f"{r['setmaxnreg']} SETMAXREG, wgmma {'serialised' if r['serialised'] else 'pipelined'}")
        return
    if a.what == "hopper-bwd":
        if not 1 <= a.w2 <= 64:
            ap.error("--w2 must be between 1 and 64 (hopper_bwd.MAX_W2)")
        for d in (64, 128):
            r = hopper_bwd_report(d, a.stages, a.w2)
            print(f"D {d} BLOCK_N 64 stages {a.stages} w2 {a.w2}: {r['regs']} registers (launch cap, {r['warps']} "
                  f"warps), {r['spills']} spilled, {r['shared']} B shared, {r['hgmma']} HGMMA, setmaxnreg S/0/1 "
                  f"{'/'.join(map(str, r['partitions']))}, wgmma {'serialised' if r['serialised'] else 'pipelined'}")
        return
    if a.what == "fwd":
        if a.head_dim not in (16, 32, 64, 128) or not 1 <= a.group < 64:
            ap.error("--head-dim must be 16, 32, 64 or 128 and --group between 1 and 63")
        fwd_report(a.head_dim, a.group, a.block_n)
        return
    if a.what == "tail":
        if a.head_dim not in (16, 32, 64, 128) or not 1 <= a.group < 64:
            ap.error("--head-dim must be 16, 32, 64 or 128 and --group between 1 and 63")
        tail_report(a.head_dim, a.group)
        return
    if a.what == "loops":
        if a.head_dim not in (16, 32, 64, 128) or not 1 <= a.group <= 128:
            ap.error("--head-dim must be 16, 32, 64 or 128 and --group between 1 and 128")
        loops_report(a.head_dim, a.group)
        return
    if a.what == "pairs":
        if a.head_dim not in (16, 32, 64, 128) or not 1 <= a.group < 64 or not 1 <= a.w2 <= 128:
            ap.error("--head-dim must be 16, 32, 64 or 128, --group between 1 and 63 and --w2 between 1 and 128")
        pairs_report(a.head_dim, a.group, a.w2)
        return
    if a.what == "fused":
        if a.head_dim not in (16, 32, 64, 128) or not 1 <= a.group < 64:
            ap.error("--head-dim must be 16, 32, 64 or 128 and --group between 1 and 63")
        fused_report(a.head_dim, a.group, a.stages, a.walk)
        return
    failed = 0
    for name, kernel, meta, warps in topk_cases():
        try:
            compile_sm90(kernel, meta, TOPK_POINTERS, num_warps=warps, num_stages=1)
            print(f"ok      {name}")
        except Exception as e:  # report every failing shape, not just the first
            failed += 1
            print(f"FAILED  {name}: {str(e).strip().splitlines()[-1][:300]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
