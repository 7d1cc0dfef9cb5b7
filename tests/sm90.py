"""Compile Triton kernels for Hopper (sm_90) on a machine without a GPU.

The interpreter runs kernels as NumPy and so misses what only the compiler checks (for example
a loop-carried value whose block shape changes between iterations). This runs Triton's whole
compile, front end to cubin, for given constexprs. It must run in a process without
``TRITON_INTERPRET`` (the test suite sets it), so the tests call it as a script:
``python tests/sm90.py topk`` compiles every block shape the top-k launchers can pick and
prints one line per kernel and shape.
"""
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

HOPPER = GPUTarget("cuda", 90, 32)


def compile_sm90(kernel, constexprs: dict, pointers: dict, *, num_warps: int = 4, num_stages: int = 2):
    """Compile ``kernel`` (a ``@triton.jit`` function) for sm_90; return the compiled kernel.

    ``pointers`` maps every pointer argument to its Triton type (``"*bf16"``, ``"*fp32"``,
    ``"*i32"``); other arguments are fp32 if their name has ``scale``, else int32. Constexprs
    not given take their defaults. Raises what Triton raises (``CompilationError`` for
    front-end errors).
    """
    const_names = {kernel.arg_names[i] for i in kernel.constexprs}
    sig = {n: "constexpr" if n in const_names else pointers.get(n, "fp32" if "scale" in n else "i32")
           for n in kernel.arg_names}
    defaults = {p.name: p.default for p in kernel.params}
    consts = {n: constexprs.get(n, defaults[n]) for n in const_names}
    src = ASTSource(kernel, sig, constexprs=consts)
    return triton.compile(src, target=HOPPER, options={"num_warps": num_warps, "num_stages": num_stages})


def topk_cases():
    """The top-k row kernels at every block shape ``_blocks`` gives for equal and unequal
    selections and both head sizes: ``(name, kernel, constexprs, warps)``."""
    from simplex_lib.ops.topk import triton as tk
    shapes = [(128, 128, 128), (128, 32, 128), (16, 64, 64), (64, 64, 64), (100, 7, 128)]  # (kA, kB, D)
    for bd, ba, bb in sorted({b for ka, kb, d in shapes for b in tk._blocks(ka, kb, d)}):
        meta = dict(BLOCK_D=bd, BLOCK_A=ba, BLOCK_B=bb, PREC="tf32")
        warps = 4 if bd <= 64 else 8  # as the launchers choose
        yield f"fwd {bd}x{ba}x{bb}", tk._topk_fwd_kernel, meta, warps
        for partial in (False, True):
            yield f"bwd {bd}x{ba}x{bb} partial={partial}", tk._topk_bwd_kernel, meta | {"PARTIAL": partial}, warps


POINTERS = dict.fromkeys(["Q", "K1", "K2", "V1", "V2", "O", "DO", "DQ"], "*bf16") | {
    "IA": "*i32", "IB": "*i32", "LSE": "*fp32", "DELTA": "*fp32",
    "DK1": "*fp32", "DK2": "*fp32", "DV1": "*fp32", "DV2": "*fp32"}


def main(argv):
    if argv != ["topk"]:
        sys.exit("usage: python tests/sm90.py topk")
    failed = 0
    for name, kernel, meta, warps in topk_cases():
        try:
            compile_sm90(kernel, meta, POINTERS, num_warps=warps, num_stages=1)
            print(f"ok      {name}")
        except Exception as e:  # report every failing shape, not just the first
            failed += 1
            print(f"FAILED  {name}: {str(e).strip().splitlines()[-1][:300]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
