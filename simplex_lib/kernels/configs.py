"""Launch configurations (tile shapes, warps, pipeline depth) for the 2-simplicial kernels.

A tile's rows are ``(position, head)`` pairs: ``GH`` query heads of one KV group times ``POS``
consecutive positions. With a large GQA ratio (``G >= BLOCK_M``) a tile holds one position and
``BLOCK_M`` heads, so every row shares one window and nothing is masked away; with ``G = 1`` it
holds ``BLOCK_M`` consecutive positions (sequence tiling, as in FlashAttention).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import triton


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class RowTiling:
    """How a tile's ``BLOCK_M = GH * POS`` rows map to (position, head) pairs."""

    GH: int  # query heads of one KV group per tile (a power of two)
    POS: int  # consecutive positions per tile
    n_hblocks: int  # head blocks needed to cover the group

    @property
    def BLOCK_M(self) -> int:
        return self.GH * self.POS


def row_tiling(group: int, block_m: int) -> RowTiling:
    """Pack the ``group`` query heads that share a KV head into tiles of ``block_m`` rows."""
    gh = min(triton.next_power_of_2(group), block_m)
    return RowTiling(GH=gh, POS=block_m // gh, n_hblocks=triton.cdiv(group, gh))


@dataclass(frozen=True)
class FwdConfig:
    BLOCK_M: int
    BLOCK_N: int
    num_warps: int
    num_stages: int


def fwd_config(head_dim: int, group: int, w1: int) -> FwdConfig:  # noqa: ARG001
    """Forward tile shape: ``BLOCK_N`` positions of the long window per GEMM."""
    if interpreting():
        return FwdConfig(16, 16, 1, 1)
    block_n = 128 if w1 >= 128 else max(16, triton.next_power_of_2(w1))
    if head_dim <= 64:
        return FwdConfig(64, block_n, 4, 3)
    return FwdConfig(64, block_n, 4, 2)


@dataclass(frozen=True)
class BwdConfig:
    BLOCK_M: int  # rows (position, head) per query block
    BLOCK_A: int  # key positions owned by one program of the key-tile kernel
    BLOCK_N: int  # long-window tile of the dq kernel
    BLOCK_A2: int  # key positions per program for the short-window set
    num_warps: int
    num_stages: int
    RING_MAX: int = 4096  # largest ring (slots x head_dim) kept in registers
    kv_warps: int = 0  # warps/stages of the key-tile kernel (0: as num_warps/num_stages)
    kv_stages: int = 0
    ring_warps: int = 0  # warps of the ring kernel (0: as num_warps)
    ring_jp: int = 1  # long-window rows per ring step (GEMM rows = ring_jp * heads per tile)


def bwd_config(head_dim: int, group: int, w1: int, w2: int) -> BwdConfig:
    """Block sizes, warps and pipeline depths of the backward kernels for one problem shape.

    Under the interpreter every block is 16 wide (fast, and exercises the multi-block paths on
    tiny inputs). On a GPU the long-window key tile is 128 wide (or the window, rounded up to a
    power of two) and the short-window key tile stays near ``w2``, since each such tile is seen by
    ``BLOCK_A2 + w2 - 1`` queries and a wider one would mostly be masked.

    Examples
    --------
    >>> bwd_config(128, 64, 512, 32).BLOCK_M  # doctest: +SKIP
    64
    """
    if interpreting():
        return BwdConfig(16, 16, 16, 16, 1, 1)
    block_n = 128 if w1 >= 128 else max(16, triton.next_power_of_2(w1))
    # A key tile of the short window is seen by BLOCK_A2 + w2 - 1 queries: keep it near w2.
    block_a2 = min(64, max(16, triton.next_power_of_2(w2)))
    return BwdConfig(64, 128, block_n, block_a2, 4, 2, kv_warps=8, kv_stages=2, ring_warps=8)


def patch_interpreter_index() -> None:
    """Let the interpreter use tensors derived from ``program_id`` as loop bounds.

    The interpreter holds scalars as 1-element arrays and turns them into Python ints with
    ``int(array)``, which NumPy >= 2.4 refuses for arrays of one dimension. We wrap its patcher
    so ``__index__`` reads the single element instead. Only active under ``TRITON_INTERPRET=1``.
    """
    from triton.runtime import interpreter as _it

    orig = _it._patch_lang_tensor
    if getattr(orig, "_simplex_patched", False):
        return

    def patched(tensor, scope):
        orig(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched._simplex_patched = True
    _it._patch_lang_tensor = patched


if interpreting():
    patch_interpreter_index()
