"""Launch configurations (tile shapes, warps, pipeline depth) of the 2-simplicial kernels.

A tile's rows are ``(position, head)`` pairs: ``GH`` query heads of one KV group times ``POS``
consecutive positions. With a large GQA ratio (``G >= BLOCK_M``) a tile holds one position and
``BLOCK_M`` heads, so every row shares one window and nothing is masked away; with ``G = 1`` it
holds ``BLOCK_M`` consecutive positions (sequence tiling, as in FlashAttention).

Every configuration must fit the device's shared memory. :func:`fwd_configs` and
:func:`bwd_configs` list candidates from the fastest down, keep those whose estimate
(:func:`fwd_smem_bytes`, :func:`bwd_smem_bytes`) fits :func:`max_shared_memory`, and
:func:`launch_with_fallback` steps further down if the compiler still refuses one
(``OutOfResources``), remembering the choice per problem key.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import torch
import triton
from triton.runtime import driver
from triton.runtime.errors import OutOfResources

__all__ = [
    "interpreting", "RowTiling", "row_tiling", "PairTiling", "pair_tiling", "BWD_WALKS", "FWD_WALKS",
    "FWD_OFFSET_MIN_POS", "FWD_OFFSET_MIN_POS_SMALL_D", "pairs_fit",
    "BWD_OFFSET_MIN_EXCESS", "offset_walk_pays", "BWD_SHORT_PATHS", "FUSED_WALKS", "FUSED_MASK_RULES", "FUSED_LAUNCHES",
    "OFFSET_LOADS", "tma_tiles_fit", "tma_available", "pick_loads", "tma_launch",
    "fused_launch",
    "env_choice",
    "pick_short", "pick_walk", "FwdConfig",
    "tail_width", "fwd_config", "fwd_configs",
    "BwdConfig", "bwd_config", "bwd_configs", "fwd_smem_bytes", "kv_smem_bytes",
    "dq_smem_bytes", "bwd_smem_bytes",
    "max_shared_memory", "launch_with_fallback", "patch_interpreter_index",
]

# Shared memory the compiler adds beyond the operand tiles (barriers, reduction scratch):
# chapter 9's fp32 D=128 failure needed 264192 bytes for tiles estimated at 262144.
SMEM_SLACK = 4096


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class RowTiling:
    """How a tile's ``BLOCK_M = GH * POS`` rows map to (position, head) pairs.

    Attributes
    ----------
    GH : int
        Query heads of one KV group per tile (a power of two).
    POS : int
        Consecutive positions per tile.
    n_hblocks : int
        Head blocks needed to cover the group.
    BLOCK_M : int
        ``GH * POS`` (a property).
    """

    GH: int  # query heads of one KV group per tile (a power of two)
    POS: int  # consecutive positions per tile
    n_hblocks: int  # head blocks needed to cover the group

    @property
    def BLOCK_M(self) -> int:
        return self.GH * self.POS


def row_tiling(group: int, block_m: int) -> RowTiling:
    """Pack the ``group`` query heads that share a KV head into tiles of
    ``block_m`` rows.

    Parameters
    ----------
    group : int
        Query heads per KV head.
    block_m : int
        Rows per tile, a power of two.

    Returns
    -------
    RowTiling
        ``GH = min(next_power_of_2(group), block_m)``,
        ``POS = block_m // GH``.
    """
    gh = min(triton.next_power_of_2(group), block_m)
    return RowTiling(GH=gh, POS=block_m // gh, n_hblocks=triton.cdiv(group, gh))


@dataclass(frozen=True)
class PairTiling(RowTiling):
    """A :class:`RowTiling` whose rows are (query, short-window key) pairs (the pairs kernel of
    ``forward.py``): each of its ``GH * POS`` query rows holds ``OS`` offsets of the short window,
    so ``BLOCK_M = GH * POS * OS``.

    Attributes
    ----------
    OS : int
        Offsets of the short window per group of pairs (a power of two).
    """

    OS: int = 1

    @property
    def BLOCK_M(self) -> int:
        return self.GH * self.POS * self.OS


def pair_tiling(group: int, w2: int, block_m: int) -> PairTiling:
    """Split ``block_m`` pair rows into heads, positions and offsets.

    Offsets first (the whole short window, up to ``block_m``: more than one
    group of offsets costs registers, ``_fwd_pairs_kernel``), then
    heads of the group (up to what is left; the rest in further head
    blocks, which share the key tiles through the L2 cache), then
    positions.

    Parameters
    ----------
    group : int
        Query heads per KV head.
    w2 : int
        The short window.
    block_m : int
        Rows per tile, a power of two.

    Returns
    -------
    PairTiling

    Examples
    --------
    >>> [(t.GH, t.POS, t.OS, t.n_hblocks) for t in (pair_tiling(g, 32, 64) for g in (1, 4, 8))]
    [(1, 2, 32, 1), (2, 1, 32, 2), (2, 1, 32, 4)]
    """
    os_ = min(triton.next_power_of_2(w2), block_m)
    gh = min(triton.next_power_of_2(group), block_m // os_)
    return PairTiling(gh, block_m // (gh * os_), triton.cdiv(group, gh), OS=os_)


@functools.lru_cache(maxsize=None)
def _device_smem(index: int) -> int:
    try:
        return int(driver.active.utils.get_device_properties(index)["max_shared_mem"])
    except Exception:  # an older Triton or another driver: ask torch
        props = torch.cuda.get_device_properties(index)
        return int(getattr(props, "shared_memory_per_block_optin", 48 * 1024))


def max_shared_memory(device=None) -> int:
    """Shared memory one program may use on ``device`` (bytes), as the driver reports it.

    Under the interpreter there is no limit (returns a large number).

    Parameters
    ----------
    device : torch.device or str, optional
        A CUDA device. Default: the current one.

    Returns
    -------
    int
        Bytes; ``2**30`` under the interpreter or without CUDA.
    """
    if interpreting() or not torch.cuda.is_available():
        return 1 << 30
    device = torch.device("cuda" if device is None else device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _device_smem(index)


#: How the backward's dq and key-tile kernels walk the short window of a tile that holds
#: several positions (fewer query heads per KV head than BLOCK_M): "position" (every key of the
#: tile's union, masked per row) or "offset" (each row its own key at each step: w2 steps
#: instead of POS + w2 - 1, a third of them for 64 positions per tile and w2 = 32).
BWD_WALKS = ("position", "offset")
#: The forward's walks: those of :data:`BWD_WALKS`, and "pairs", where the short window is no
#: loop at all: a tile's rows are (query, short-window key) pairs, each with its operand
#: ``q * k2`` formed once, and the only loop is the long window (``forward.py``).
FWD_WALKS = BWD_WALKS + ("pairs",)

#: How the offset walks (forward, dq kernel, key-tile kernel) load the walked set's rows at
#: each step: "gather" (a ``[BLOCK_M, D]`` pointer gather) or "tma" (step ``s``'s rows are the
#: sequence rows ``p0 - s ...`` of the tile's ``POS`` positions: one ``[POS, D]`` TMA tile,
#: repeated for the heads of a position; 16-bit inputs, Hopper and later). The same values bit
#: for bit. ``$SIMPLEX_OFFSET_LOADS`` forces one; by default :func:`pick_loads` chooses.
OFFSET_LOADS = ("gather", "tma")

#: Positions per tile from which the forward's default ("auto") walk is "offset", for head
#: dimensions above 64. Measured on an H200 (bf16, D 128, 512 x 32, B2 N8192): the offset walk
#: ran 2.5x as fast as the position walk at 64 positions per tile (GQA 1), 1.32x at 16 (GQA 4)
#: and 1.23x at 8 (GQA 8) (benchmarks/results/h200/walks_s12.json; with the query tile held
#: as stored. Before that, with the tile pre-scaled in fp32, the offset walk lost 2% at 8:
#: walks.json).
FWD_OFFSET_MIN_POS = 8
#: The same for head dimensions up to 64: at D 64 the offset walk ran 2.7x, 1.46x and 1.20x
#: faster at 64, 16 and 8 positions per tile (benchmarks/results/h200/configs.json; why the balance
#: differs from D 128 is not profiled), so it is taken whenever a tile holds several positions.
FWD_OFFSET_MIN_POS_SMALL_D = 2
#: The backward's long-window key-tile kernel (and the dq kernel, where the short window is too
#: wide for the fused one) takes the offset walk when a block of ``POS`` positions would cost
#: the position walk at least this share more steps: ``POS - 1`` beyond the offset walk's ``w2``.
#: Measured on an H200 (bf16, 512 x 32, beside the fused short-window kernel,
#: benchmarks/results/h200/bwd_walk_s17.json): the whole backward 1.12x as fast at 16 positions
#: (D 128, GQA 4) and 1.06x at 8 (GQA 8); at 128 x 128 (D 64) 1.005x at 16 and 0.98x at 8.
#: (The first comparison, walks.json, before the fused kernel and the query tile as stored,
#: found it slower at 16 and 8 positions.)
BWD_OFFSET_MIN_EXCESS = 1 / 8


def pairs_fit(group: int, w2: int, block_m: int, head_dim: int | None = None) -> bool:
    """Whether the forward's default walk is ``"pairs"``: a tile of ``block_m`` pairs holds the
    whole short window of one position (:func:`pair_tiling`: ``POS == 1``, one group of
    offsets), and the group is smaller than ``block_m`` (else a tile of the position walk holds
    ``block_m`` heads of one position, which met every key tile once for all the short window's
    keys: 536 TFLOPS against the pairs' 297 at GQA 64).

    Given ``head_dim``, also two groups of offsets of one position (``block_m < w2 <= 2 *
    block_m``) at ``head_dim > 64`` and a group below 8: at D 128, 128x128, the pairs walk ran
    155.7 / 163.3 TFLOPS against the offset walk's 143.9 / 155.7 at GQA 1 / 4, and lost at GQA 8
    (162.9 against 172.3) and at D 64 (119-123 against 134-140)
    (``benchmarks/results/h200/fwd_sweep_128x128.json``, session 22).

    Measured on an H200 (bf16, B2 N8192, ``benchmarks/results/h200/pairs_s14.json``): where it
    holds, the pairs forward ran 1.16x (D 128) and 1.12x (D 64) as fast as the offset walk at
    GQA 4, 1.12x at GQA 8 and D 64, even at GQA 8 and D 128, and 1.23x at GQA 1, D 128, 256x64;
    where a tile needs several positions (GQA 1, w2 = 32) it lost 3% (D 128) and 19% (D 64).

    Parameters
    ----------
    group : int
        Query heads per KV head.
    w2 : int
        The short window.
    block_m : int
        Rows per tile.
    head_dim : int, optional
        ``D``: without it, one group of offsets only.

    Returns
    -------
    bool

    Examples
    --------
    >>> [pairs_fit(g, 32, 64) for g in (1, 2, 8, 32, 64)]
    [False, True, True, True, False]
    >>> pairs_fit(1, 64, 64), pairs_fit(8, 128, 64)
    (True, False)
    >>> [pairs_fit(g, 128, 64, head_dim=128) for g in (1, 4, 8)]
    [True, True, False]
    >>> pairs_fit(1, 128, 64, head_dim=64), pairs_fit(1, 256, 64, head_dim=128)
    (False, False)
    """
    t = pair_tiling(group, w2, block_m)
    if group >= block_m or t.POS != 1:
        return False
    if t.OS >= w2:
        return True
    return head_dim is not None and head_dim > 64 and group < 8 and w2 <= 2 * t.OS


@dataclass(frozen=True)
class FwdConfig:
    """Launch configuration of the forward kernel.

    Attributes
    ----------
    BLOCK_M : int
        Query rows (position, head) per tile.
    BLOCK_N : int
        Long-window keys per tile (the GEMM's N dimension).
    num_warps : int
        Triton's warps per program.
    num_stages : int
        Triton's pipeline depth.
    WALK : str
        How a tile of several positions walks the short window, one of
        :data:`FWD_WALKS` (default ``"position"``).
    LOADS : str
        How the offset walk loads the short window's rows, one of
        :data:`OFFSET_LOADS` (default ``"gather"``; ``"tma"`` falls back to
        gathers where :func:`tma_tiles_fit` does not hold).
    BLOCK_TAIL : int
        The offset walk's narrower last tile (``forward.tail_split``): 0
        (the default) for none, else a power of two >= 16; ignored unless
        below ``BLOCK_N``. :func:`fwd_config` takes :func:`tail_width`.
    TAIL_PASS : bool
        Run the narrow tile as a launch of its own before the whole tiles,
        which start from its result (``forward.carry_in``; an fp32 buffer
        the size of the output), so neither launch compiles both tile
        shapes. Default False: the narrow tile in the same program.

    Raises
    ------
    ValueError
        If ``WALK`` is not one of :data:`FWD_WALKS`, ``LOADS`` not one of
        :data:`OFFSET_LOADS`, or ``BLOCK_TAIL`` neither 0 nor a power of two
        >= 16.
    """
    BLOCK_M: int
    BLOCK_N: int
    num_warps: int
    num_stages: int
    WALK: str = "position"  # one of FWD_WALKS
    LOADS: str = "gather"  # one of OFFSET_LOADS
    BLOCK_TAIL: int = 0  # the offset walk's narrower last tile (0: none)
    TAIL_PASS: bool = False  # that tile as a launch of its own

    def __post_init__(self):
        t = self.BLOCK_TAIL
        if t != 0 and (t < 16 or t & (t - 1)):
            raise ValueError(f"BLOCK_TAIL must be 0 or a power of two >= 16, got {t!r}")
        if self.WALK not in FWD_WALKS:
            raise ValueError(f"WALK must be one of {FWD_WALKS}, got {self.WALK!r}")
        if self.LOADS not in OFFSET_LOADS:
            raise ValueError(f"LOADS must be one of {OFFSET_LOADS}, got {self.LOADS!r}")


def fwd_smem_bytes(cfg: FwdConfig, head_dim: int, elem_bytes: int) -> int:
    """Shared memory of the forward kernel (bytes, estimated).

    The ``K1``/``V1`` tiles ``[BLOCK_N, D]`` are loaded in a loop that holds another loop, so
    they are not multi-buffered (in the pairs walk, whose only loop is the long window, they
    are: ``num_stages`` of each); the GEMM operands ``q * k2`` ``[BLOCK_M, D]`` and ``P``
    ``[BLOCK_M, BLOCK_N]`` are staged through shared memory, and so are the offset walk's
    TMA tiles (``LOADS="tma"``).

    Parameters
    ----------
    cfg : FwdConfig
        Its ``BLOCK_M`` and ``BLOCK_N``.
    head_dim : int
        ``D``.
    elem_bytes : int
        Bytes per element of the inputs (2 for fp16/bf16, 4 for fp32).

    Returns
    -------
    int
        The estimate, ``SMEM_SLACK`` included.

    Examples
    --------
    >>> fwd_smem_bytes(FwdConfig(64, 128, 4, 2), 128, 4)
    200704
    """
    m, n, d = cfg.BLOCK_M, cfg.BLOCK_N, head_dim
    bufs = cfg.num_stages if cfg.WALK == "pairs" else 1
    # the TMA tiles of k2 and v2, [POS, D] each (at most BLOCK_M rows), num_stages deep
    tma = 2 * cfg.num_stages * m * d if cfg.LOADS == "tma" and cfg.WALK == "offset" else 0
    return elem_bytes * (2 * bufs * n * d + m * d + m * n + tma) + SMEM_SLACK


def env_choice(var: str, choices: tuple, default: str) -> str:
    """The value of the environment variable ``var``, one of ``choices`` (``default`` if unset).

    The kernels' measuring switches (``SIMPLEX_FWD_WALK``, ``SIMPLEX_TOPK_KERNEL``) read this
    way, so a benchmark can compare two implementations on one shape.

    Parameters
    ----------
    var : str
        The variable's name.
    choices : tuple of str
    default : str

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If the variable holds something other than one of ``choices``.
    """
    value = os.environ.get(var, default)
    if value not in choices:
        raise ValueError(f"{var} must be one of {choices}, got {value!r}")
    return value


def tma_tiles_fit(*xs) -> bool:
    """Whether the rows of these ``[batch, seq, heads, D]`` tensors can be loaded as TMA tiles:
    16-bit, ``D`` a power of two from 8, the last stride 1 and the other strides and the data
    pointer 16-byte aligned.

    Parameters
    ----------
    *xs : Tensor ``[batch, seq, heads, D]``
        The key/value sets an offset walk loads.

    Returns
    -------
    bool

    Examples
    --------
    >>> x = torch.zeros(1, 5, 2, 64, dtype=torch.bfloat16)
    >>> tma_tiles_fit(x), tma_tiles_fit(x.float()), tma_tiles_fit(x[..., :48])
    (True, False, False)
    """
    for x in xs:
        d = x.shape[-1]
        if x.element_size() != 2 or d < 8 or d & (d - 1) or x.stride(-1) != 1:
            return False
        if x.data_ptr() % 16 or any(2 * st % 16 for st in x.stride()[:-1]):
            return False
    return True


def tma_available(*xs) -> bool:
    """Whether the offset walks may load the rows of ``xs`` (the walked key/value sets) as TMA
    tiles: never if ``$SIMPLEX_OFFSET_LOADS`` is ``"gather"``; if it is ``"tma"``, wherever
    :func:`tma_tiles_fit` (the interpreter included); by default (``"auto"``) also only on a
    CUDA device with TMA (compute capability 9.0 or above) and not under the interpreter.

    Parameters
    ----------
    *xs : Tensor ``[batch, seq, heads, D]``
        The key/value sets the offset walks load (the first names the device).

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        If the variable names neither (nor ``auto``).
    """
    setting = env_choice("SIMPLEX_OFFSET_LOADS", ("auto", *OFFSET_LOADS), "auto")
    if setting == "gather" or not tma_tiles_fit(*xs):
        return False
    if setting == "tma":
        return True
    dev = xs[0].device
    return (not interpreting() and dev.type == "cuda"
            and torch.cuda.get_device_capability(dev)[0] >= 9)


def pick_loads(kernel: str, head_dim: int, group: int, block_n: int, tma: bool) -> str:
    """How a launch's offset walk loads the walked set's rows (:data:`OFFSET_LOADS`): what
    ``$SIMPLEX_OFFSET_LOADS`` forces, for measuring; by default ("auto") ``"tma"`` where
    :func:`tma_available` and the H200 measured it faster, else ``"gather"``:

    - the forward: at ``head_dim > 64``, and at 64 with 128-key tiles of the long window
      (``w1 > 128``); at D 64 with 64-key tiles it was no faster (128x128: 147-163 TFLOPS
      either way);
    - the backward (dq and key-tile kernels): at ``head_dim > 64``, and at GQA 1; at D 64
      from GQA 4 it lost 1-2% (``results/h200/tma_offset_probes.json``, session 25).

    Parameters
    ----------
    kernel : ``"fwd"`` or ``"bwd"``
    head_dim, group : int
        ``D`` and query heads per KV head.
    block_n : int
        The forward's long-window tile (``BLOCK_N``); the backward ignores it.
    tma : bool
        :func:`tma_available` for the inputs.

    Returns
    -------
    str
        One of :data:`OFFSET_LOADS`.

    Examples
    --------
    >>> [pick_loads("fwd", d, 4, n, True) for d, n in ((128, 128), (64, 128), (64, 64))]
    ['tma', 'tma', 'gather']
    >>> [pick_loads("bwd", d, g, 64, True) for d, g in ((128, 8), (64, 1), (64, 4))]
    ['tma', 'tma', 'gather']
    >>> pick_loads("fwd", 128, 4, 128, False)
    'gather'
    """
    if kernel not in ("fwd", "bwd"):
        raise ValueError(f"kernel must be 'fwd' or 'bwd', got {kernel!r}")
    if not tma:
        return "gather"
    forced = env_choice("SIMPLEX_OFFSET_LOADS", ("auto", *OFFSET_LOADS), "auto")
    if forced != "auto":
        return forced
    if kernel == "fwd":
        return "tma" if head_dim > 64 or block_n >= 128 else "gather"
    return "tma" if head_dim > 64 or group == 1 else "gather"


def tma_launch(offset: bool, loads: str, *xs) -> bool:
    """Whether a launch's offset walk loads the rows of ``xs`` as TMA tiles: it walks by
    offset, its config's ``loads`` is ``"tma"``, :func:`tma_tiles_fit` holds and the device
    has a TMA (compute capability 9.0 or above; any device under the interpreter). Else the
    gathers, which load the same values. If so, points Triton's allocator, where kernels that
    build tensor descriptors take their scratch memory, at the inputs' device.

    Parameters
    ----------
    offset : bool
        Whether the launch walks by offset.
    loads : str
        Its configuration's ``LOADS`` (:data:`OFFSET_LOADS`).
    *xs : Tensor ``[batch, seq, heads, D]``
        The key/value sets the walk loads.

    Returns
    -------
    bool
        The kernel's ``TMA`` flag.
    """
    if not (offset and loads == "tma" and tma_tiles_fit(*xs)):
        return False
    device = xs[0].device
    if not interpreting() and (device.type != "cuda"
                               or torch.cuda.get_device_capability(device)[0] < 9):
        return False
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8,
                                                                 device=device))
    return True


#: How the backward forms the short window's key gradients for blocks of several positions:
#: "kv" (the key-tile kernel with the sets swapped) or "fused" (the dq kernel forms them too).
#: ``$SIMPLEX_BWD_SHORT`` forces one; by default :func:`pick_short` chooses.
BWD_SHORT_PATHS = ("kv", "fused")

#: How the fused short-window kernel walks the short window: by key (one key for all the tile's
#: rows, ``POS + w2 - 1`` steps) or by offset (each row its own key, ``w2`` steps; the default).
#: ``$SIMPLEX_FUSED_WALK`` forces one. On the H200 at 512x32 the offset walk was faster at every
#: group and head_dim measured (``results/h200/shapes_fused_offset.json``, its launch sweep
#: ``fused_offset_sweep.json``, against the key walk in ``shapes_fused_key.json``).
FUSED_WALKS = ("key", "offset")


#: Which long-window tiles the fused kernel's offset walk masks: "every" one (the default) or
#: only the "edges", skipping the tiles inside every row's windows
#: (:func:`~simplex_lib.ops.two_simplicial.forward.inner_tiles`; the same gradients bit for bit,
#: not yet timed). ``$SIMPLEX_FUSED_MASKS`` forces one.
FUSED_MASK_RULES = ("every", "edges")

#: ``(short_warps, BLOCK_N)`` of the fused short-window kernel, by walk and head_dim (64: any
#: ``head_dim <= 64``; 128: larger). Each is the fastest launch measured on the H200 at 512x32:
#: the key walk's in ``results/h200/fused_sweep.json``, the offset walk's in
#: ``fused_offset_sweep.json`` (four warps and 32-wide long-window tiles at D 128, groups 1 and 8;
#: :func:`fused_launch` gives group 2 to 4 eight warps and 64-wide tiles, the fastest at group
#: 4).
FUSED_LAUNCHES = {"key": {64: (4, 128), 128: (8, 64)}, "offset": {64: (4, 64), 128: (4, 32)}}


def fused_launch(walk: str, head_dim: int, group: int) -> tuple:
    """The fused short-window kernel's ``(short_warps, BLOCK_N)`` for one shape.

    Parameters
    ----------
    walk : str
        One of :data:`FUSED_WALKS`.
    head_dim : int
        ``D``.
    group : int
        Query heads per KV head.

    Returns
    -------
    tuple of int
        Warps and the long-window tile width (:data:`FUSED_LAUNCHES`).

    Examples
    --------
    >>> [fused_launch("offset", 128, g) for g in (1, 4, 8)]
    [(4, 32), (8, 64), (4, 32)]
    >>> fused_launch("offset", 64, 4), fused_launch("key", 128, 4)
    ((4, 64), (8, 64))
    """
    if walk not in FUSED_WALKS:
        raise ValueError(f"walk must be one of {FUSED_WALKS}, got {walk!r}")
    if walk == "offset" and head_dim > 64 and 1 < group < 8:
        return (8, 64)
    return FUSED_LAUNCHES[walk][64 if head_dim <= 64 else 128]


#: Per kernel family, the environment variable that forces a walk and the positions per tile
#: from which the default ("auto") takes the offset walk, for D > 64 and for D <= 64 (the
#: backward's rule counts steps instead, with ``w2``: :data:`BWD_OFFSET_MIN_EXCESS`).
_WALK_RULES = {"fwd": ("SIMPLEX_FWD_WALK", FWD_OFFSET_MIN_POS, FWD_OFFSET_MIN_POS_SMALL_D),
               "bwd": ("SIMPLEX_BWD_WALK", None, None)}


def pick_short(group: int, head_dim: int, w2: int = 32) -> str:
    """How a backward of several positions per tile forms the short window's
    key gradients: what ``$SIMPLEX_BWD_SHORT`` forces, for measuring; by
    default ("auto") ``"fused"`` where the H200 shape grid measured it faster,
    else ``"kv"`` (:data:`BWD_SHORT_PATHS`): for ``w2 <= 64`` always (with its
    offset walk, :data:`FUSED_WALKS`; measured at 512x32 and 256x64), for wider
    short windows never (measured with the key walk at 128x128).

    Parameters
    ----------
    group : int
        Query heads per KV head.
    head_dim : int
        ``D``. Today's rule does not depend on it or on ``group`` (the
        measurements did not split by them); callers pass both so that a
        future measurement can.
    w2 : int, default 32
        The short window.

    Returns
    -------
    str
        One of :data:`BWD_SHORT_PATHS`.

    Raises
    ------
    ValueError
        If the variable names no path (nor ``auto``).

    Examples
    --------
    >>> [pick_short(g, d) for g in (1, 4, 8) for d in (64, 128)]
    ['fused', 'fused', 'fused', 'fused', 'fused', 'fused']
    >>> [pick_short(g, 128, w2=64) for g in (1, 4, 8)], pick_short(8, 64, w2=128)
    (['fused', 'fused', 'fused'], 'kv')
    """
    forced = env_choice("SIMPLEX_BWD_SHORT", BWD_SHORT_PATHS + ("auto",), "auto")
    if forced != "auto":
        return forced
    return "fused" if w2 <= 64 else "kv"


def offset_walk_pays(group: int, block_m: int, window: int) -> bool:
    """Whether a backward tile of several positions walks ``window`` by offset: when
    the position walk's ``POS + window - 1`` steps exceed the offset walk's ``window``
    by at least :data:`BWD_OFFSET_MIN_EXCESS` of them.

    Parameters
    ----------
    group, block_m : int
        Query heads per KV head and rows per tile, which give ``POS``
        (:func:`row_tiling`).
    window : int
        The window the kernel walks inside each tile: ``w2`` for the dq kernel and
        the long window's key-tile launch, ``w1`` for the short window's.

    Returns
    -------
    bool

    Examples
    --------
    >>> [offset_walk_pays(g, 64, 128) for g in (1, 4, 8)]
    [True, False, False]
    >>> offset_walk_pays(1, 64, 512)
    False
    """
    pos = row_tiling(group, block_m).POS
    return pos > 1 and pos - 1 >= BWD_OFFSET_MIN_EXCESS * window


def pick_walk(kernel: str, group: int, block_m: int, head_dim: int, w2: int | None = None,
              tma: bool = False) -> str:
    """The walk a launch takes: what ``$SIMPLEX_FWD_WALK`` (``kernel="fwd"``, the forward) or
    ``$SIMPLEX_BWD_WALK`` (``"bwd"``, the backward's dq and long-window key-tile kernels)
    forces, for measuring; by default ("auto"):

    - the forward: ``"pairs"`` where :func:`pairs_fit` (given ``w2``), except with
      ``tma``; else ``"offset"`` when a tile of ``block_m`` rows holds at least
      :data:`FWD_OFFSET_MIN_POS` positions (:data:`FWD_OFFSET_MIN_POS_SMALL_D` at
      ``head_dim <= 64``), else ``"position"``. With its rows as TMA tiles the offset walk
      beat the pairs walk at D 128 (on an H200: 352 against 290 TFLOPS at GQA 4, 512x32; 181
      and 217 against 155 and 163 at GQA 1 and 4, 128x128; ``tma_offset_probes.json``), and
      at D 64 once its last tile was narrow (:func:`tail_width`: 287 against 265 at GQA 4,
      512x32; ``fwd_tail_s26.json``);
    - the backward: ``"offset"`` when a tile holds several positions ``POS`` and the position
      walk's ``POS + w2 - 1`` steps per tile exceed the offset walk's ``w2`` by at least
      :data:`BWD_OFFSET_MIN_EXCESS` of them, else ``"position"``.

    Parameters
    ----------
    kernel : ``"fwd"`` or ``"bwd"``
    group : int
        Query heads per KV head.
    block_m : int
        Rows per tile.
    head_dim : int
        ``D``.
    w2 : int, optional
        The short window: the forward's pairs walk needs it (without it, the rule of the two
        other walks); the backward's rule always does.
    tma : bool, default False
        Whether the offset walk may load its rows as TMA tiles (:func:`tma_available`).

    Returns
    -------
    str
        One of :data:`FWD_WALKS` (of :data:`BWD_WALKS` for the backward).

    Raises
    ------
    ValueError
        If ``kernel`` is neither, the variable names no walk (nor ``auto``), or the backward's
        ``w2`` is missing or below 1.

    Examples
    --------
    >>> [pick_walk("fwd", g, 64, 128) for g in (1, 4, 8, 64)]
    ['offset', 'offset', 'offset', 'position']
    >>> [pick_walk("fwd", g, 64, 64) for g in (1, 4, 8, 64)]
    ['offset', 'offset', 'offset', 'position']
    >>> [pick_walk("fwd", g, 64, 128, w2=32) for g in (1, 4, 8, 64)]
    ['offset', 'pairs', 'pairs', 'position']
    >>> [pick_walk("fwd", g, 64, 128, w2=128) for g in (1, 4, 8, 64)]
    ['pairs', 'pairs', 'offset', 'position']
    >>> [pick_walk("fwd", g, 64, d, w2=128, tma=True) for g in (1, 4, 8, 64) for d in (64, 128)]
    ['offset', 'offset', 'offset', 'offset', 'offset', 'offset', 'position', 'position']
    >>> [pick_walk("bwd", g, 64, 128, w2=32) for g in (1, 4, 8, 64)]
    ['offset', 'offset', 'offset', 'position']
    >>> [pick_walk("bwd", g, 64, 64, w2=128) for g in (1, 4, 8)]
    ['offset', 'position', 'position']
    """
    if kernel not in _WALK_RULES:
        raise ValueError(f"kernel must be 'fwd' or 'bwd', got {kernel!r}")
    var, min_pos, min_pos_small_d = _WALK_RULES[kernel]
    if kernel == "bwd" and (w2 is None or w2 < 1):
        raise ValueError(f"w2 (the short window) must be an integer >= 1 for the backward's walk, got {w2!r}")
    setting = env_choice(var, ("auto", *(FWD_WALKS if kernel == "fwd" else BWD_WALKS)), "auto")
    if setting != "auto":
        return setting
    pos = row_tiling(group, block_m).POS
    if kernel == "bwd":
        return "offset" if offset_walk_pays(group, block_m, w2) else "position"
    if w2 is not None and not tma and pairs_fit(group, w2, block_m, head_dim):
        return "pairs"
    if head_dim <= 64:
        min_pos = min_pos_small_d
    return "offset" if pos >= min_pos else "position"


def tail_width(group: int, block_m: int, w1: int, block_n: int) -> int:
    """The offset walk's last tile: as narrow as the keys that fill no whole one.

    A tile of ``POS`` positions (:func:`row_tiling`) meets ``w1 + POS - 1``
    keys, walked down in tiles of ``block_n``; the remainder (15 keys at
    512x32 and GQA 4) gets a tile of its own width, rounded up to a power
    of two >= 16, instead of a whole one.

    Parameters
    ----------
    group : int
        Query heads per KV head.
    block_m : int
        Rows per tile.
    w1 : int
        The long window.
    block_n : int
        The whole tiles' width.

    Returns
    -------
    int
        ``FwdConfig.BLOCK_TAIL``: 0 where the remainder is nothing or needs
        a tile as wide as ``block_n``.

    Examples
    --------
    >>> [tail_width(group, 64, 512, 128) for group in (4, 1, 64)]
    [16, 64, 0]
    """
    pos = row_tiling(group, block_m).POS
    rem = (w1 + pos - 1) % block_n
    tail = max(16, triton.next_power_of_2(rem)) if rem else 0
    return tail if tail < block_n else 0


def fwd_config(head_dim: int, group: int, w1: int, w2: int | None = None,
               tma: bool = False) -> FwdConfig:
    """The fastest forward tile shape: ``BLOCK_N`` positions of the long window per GEMM.

    Parameters
    ----------
    head_dim : int
        ``D``: at most 64 gets three pipeline stages, more gets two.
    group : int
        Query heads per KV head: picks the walk (:func:`pick_walk`).
    w1 : int
        The long window: ``BLOCK_N`` is 128, or ``w1`` rounded up to a
        power of two (>= 16); at most 64 for the offset walk at
        ``head_dim <= 64`` and ``w1 <= 128``.
    w2 : int, optional
        The short window (``w2 <= w1``): with it the walk may be
        ``"pairs"`` (:func:`pick_walk`), 64 x 64 tiles at 4 warps (the
        fastest in ``pairs_s14.json``).
    tma : bool, default False
        Whether the offset walk may load its rows as TMA tiles
        (:func:`tma_available`); the loads are :func:`pick_loads`'.

    Returns
    -------
    FwdConfig
        With the walk of :func:`pick_walk`; all blocks 16 under the
        interpreter.

    Raises
    ------
    ValueError
        If ``$SIMPLEX_FWD_WALK`` or ``$SIMPLEX_OFFSET_LOADS`` names no
        choice.

    Examples
    --------
    >>> fwd_config(128, 4, 512, 32)  # doctest: +SKIP
    FwdConfig(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2, WALK='pairs', LOADS='gather')
    >>> fwd_config(128, 4, 512, 32, tma=True)  # doctest: +SKIP
    FwdConfig(BLOCK_M=64, BLOCK_N=128, num_warps=4, num_stages=2, WALK='offset', LOADS='tma')
    """
    block_m = 16 if interpreting() else 64
    walk = pick_walk("fwd", group, block_m, head_dim, w2, tma=tma)
    if interpreting():
        loads = pick_loads("fwd", head_dim, group, 16, tma) if walk == "offset" else "gather"
        return FwdConfig(16, 16, 1, 1, WALK=walk, LOADS=loads)
    if walk == "pairs":
        block_n = 64 if w1 >= 64 else max(16, triton.next_power_of_2(w1))
        return FwdConfig(64, block_n, 4, 3 if head_dim <= 64 else 2, WALK=walk)
    block_n = 128 if w1 >= 128 else max(16, triton.next_power_of_2(w1))
    if head_dim <= 64 and walk == "offset" and w1 <= 128 and not tma:
        # A tile of 64 positions meets w1 + 63 keys: at w1 = 128 three 64-key tiles
        # instead of two of 128; at D 64, 128x128, 136.4 / 148.2 / 151.6 TFLOPS against
        # 133.7 / 139.5 / 140.5 at GQA 1 / 4 / 8 (results/h200/fwd_sweep_128x128.json).
        # With TMA tiles and a narrow last tile, 128 keys: 148 / 207 / 205 against
        # 147 / 173 / 180 (results/h200/fwd_tail_s26.json).
        block_n = min(block_n, 64)
    stages = 3 if head_dim <= 64 else 2
    if walk != "offset":
        return FwdConfig(64, block_n, 4, stages, WALK=walk)
    loads = pick_loads("fwd", head_dim, group, block_n, tma)
    if loads == "tma" and row_tiling(group, 64).POS <= 16:
        # [POS, D] TMA tiles are small: at D 128, 512x32, 3 stages read 360 / 350 TFLOPS
        # against 352 / 345 at GQA 4 / 8; at GQA 1 (64 positions) 184 against 285, one
        # program an SM (results/h200/fwd_tail_s26.json)
        stages = 3
    # A narrow last tile (tail_width) gains at D 64 (287 against 265 TFLOPS for the pairs
    # walk at GQA 4, 512x32). At D 128 it spilled inside the program (302 against 351), so
    # there it is a launch of its own: 301 / 392 / 382 against 285 / 360 / 350 at GQA
    # 1 / 4 / 8 (results/h200/fwd_tail_pass_s29.json).
    tail = tail_width(group, 64, w1, block_n) if head_dim <= 64 or loads == "tma" else 0
    return FwdConfig(64, block_n, 4, stages, WALK=walk, LOADS=loads, BLOCK_TAIL=tail,
                     TAIL_PASS=bool(tail) and head_dim > 64)


def fwd_configs(head_dim: int, group: int, w1: int, elem_bytes: int, smem: int,
                w2: int | None = None, tma: bool = False) -> list:
    """Forward candidates, fastest first: :func:`fwd_config` with ``BLOCK_N`` (then ``BLOCK_M``)
    halved until the estimate fits ``smem``, then smaller ones for :func:`launch_with_fallback`.

    Parameters
    ----------
    head_dim, group, w1 : int
        As for :func:`fwd_config`.
    elem_bytes : int
        Bytes per element of the inputs.
    smem : int
        Shared memory available (bytes), e.g. :func:`max_shared_memory`.
    w2 : int, optional
        As for :func:`fwd_config`.
    tma : bool, default False
        As for :func:`fwd_config`.

    Returns
    -------
    list of FwdConfig
        The halvings whose estimate fits; if none fits, the smallest alone.

    Raises
    ------
    ValueError
        If ``$SIMPLEX_FWD_WALK`` names no walk.
    """
    cfg = fwd_config(head_dim, group, w1, w2, tma)
    out = [cfg]
    while cfg.BLOCK_N > 16 or cfg.BLOCK_M > 16:
        if cfg.BLOCK_N > 16:
            cfg = dataclasses.replace(cfg, BLOCK_N=cfg.BLOCK_N // 2)
        else:
            cfg = dataclasses.replace(cfg, BLOCK_M=cfg.BLOCK_M // 2)
        if cfg.BLOCK_TAIL:
            cfg = dataclasses.replace(
                cfg, BLOCK_TAIL=tail_width(group, cfg.BLOCK_M, w1, cfg.BLOCK_N))
        out.append(cfg)
    fits = [c for c in out if fwd_smem_bytes(c, head_dim, elem_bytes) <= smem]
    return fits or out[-1:]


@dataclass(frozen=True)
class BwdConfig:
    """Launch configuration of the backward kernels.

    Attributes
    ----------
    BLOCK_M : int
        Rows (position, head) per query block.
    BLOCK_A : int
        Key positions owned by one program of the key-tile kernel
        (long-window set).
    BLOCK_N : int
        Long-window tile of the dq kernel.
    BLOCK_A2 : int
        Key positions per program of the key-tile kernel for the
        short-window set.
    num_warps : int
        Triton's warps per program.
    num_stages : int
        Triton's pipeline depth.
    RING_MAX : int
        Largest ring (slots x head_dim) kept in registers (default 4096);
        0 turns the ring kernel off.
    kv_warps : int
        Warps of the key-tile kernel (default 0: ``num_warps``).
    kv2_warps : int
        Warps of its launch for the short window's set (default 0:
        ``kv_warps``).
    kv_stages : int
        Pipeline depth of the key-tile kernel (default 0: ``num_stages``).
    ring_warps : int
        Warps of the ring kernel (default 0: ``num_warps``).
    short_warps : int
        Warps of the fused short-window kernel (default 0: ``num_warps``).
    FUSED_WALK : str
        How the fused short-window kernel walks the short window
        (:data:`FUSED_WALKS`): ``"key"``, one key at a time for all the
        tile's rows, or ``"offset"`` (the default), each row its own key
        ``pos - s`` at step ``s`` (``$SIMPLEX_FUSED_WALK`` forces one).
    FUSED_MASKS : str
        Which tiles the offset walk masks (:data:`FUSED_MASK_RULES`):
        ``"every"`` (the default) or ``"edges"`` (``$SIMPLEX_FUSED_MASKS``).
    WALK : str
        How the dq and key-tile kernels walk a block of several positions
        (:data:`BWD_WALKS`; default ``"position"``).
    SHORT : str
        How blocks of several positions get the short window's key
        gradients (:data:`BWD_SHORT_PATHS`): ``"kv"`` (the dataclass's
        default), the key-tile kernel with the key sets swapped beside the
        dq kernel, or ``"fused"``, the dq kernel that also forms them
        (``launch_dq_short``). :func:`bwd_config` takes :func:`pick_short`.
    WALK2 : str
        How the key-tile kernel's launch for the short window's set walks the long window
        (:data:`BWD_WALKS`; default ``"position"``). :func:`bwd_config` takes the offset walk
        where :func:`offset_walk_pays` with ``w1`` (GQA 1 at 128x128: 128 steps per tile of 64
        positions instead of 191).
    LOADS : str
        How the offset walks of the dq and key-tile kernels load the walked set's rows
        (:data:`OFFSET_LOADS`; default ``"gather"``; ``"tma"`` falls back to gathers where
        :func:`tma_tiles_fit` does not hold).
    """
    BLOCK_M: int  # rows (position, head) per query block
    BLOCK_A: int  # key positions owned by one program of the key-tile kernel
    BLOCK_N: int  # long-window tile of the dq kernel
    BLOCK_A2: int  # key positions per program for the short-window set
    num_warps: int
    num_stages: int
    RING_MAX: int = 4096  # largest ring (slots x head_dim) kept in registers
    kv_warps: int = 0  # warps/stages of the key-tile kernel (0: as num_warps/num_stages)
    kv_stages: int = 0
    kv2_warps: int = 0  # warps of the key-tile kernel for the short window's set (0: kv_warps)
    ring_warps: int = 0  # warps of the ring kernel (0: as num_warps)
    short_warps: int = 0  # warps of the fused short-window kernel (0: as num_warps)
    FUSED_WALK: str = "offset"  # one of FUSED_WALKS
    FUSED_MASKS: str = "every"  # one of FUSED_MASK_RULES
    WALK: str = "position"  # one of BWD_WALKS, for blocks of several positions
    SHORT: str = "kv"  # one of BWD_SHORT_PATHS
    WALK2: str = "position"  # the short window's key-tile launch walking the long window
    LOADS: str = "gather"  # one of OFFSET_LOADS, for the offset walks

    def __post_init__(self):
        if self.WALK not in BWD_WALKS:
            raise ValueError(f"WALK must be one of {BWD_WALKS}, got {self.WALK!r}")
        if self.WALK2 not in BWD_WALKS:
            raise ValueError(f"WALK2 must be one of {BWD_WALKS}, got {self.WALK2!r}")
        if self.LOADS not in OFFSET_LOADS:
            raise ValueError(f"LOADS must be one of {OFFSET_LOADS}, got {self.LOADS!r}")
        if self.SHORT not in BWD_SHORT_PATHS:
            raise ValueError(f"SHORT must be one of {BWD_SHORT_PATHS}, got {self.SHORT!r}")
        if self.FUSED_WALK not in FUSED_WALKS:
            raise ValueError(f"FUSED_WALK must be one of {FUSED_WALKS}, got {self.FUSED_WALK!r}")
        if self.FUSED_MASKS not in FUSED_MASK_RULES:
            raise ValueError(f"FUSED_MASKS must be one of {FUSED_MASK_RULES}, got {self.FUSED_MASKS!r}")


def kv_smem_bytes(block_a: int, block_m: int, head_dim: int, elem_bytes: int) -> int:
    """Shared memory of the key-tile kernel (bytes, estimated).

    The owned ``kA``/``vA`` tiles ``[BLOCK_A, D]``, the operands ``q * kB`` and ``do * vB``
    ``[BLOCK_M, D]``, and ``P^T``, ``dS^T`` ``[BLOCK_A, BLOCK_M]``.

    Parameters
    ----------
    block_a, block_m, head_dim : int
        ``BLOCK_A``, ``BLOCK_M`` and ``D``.
    elem_bytes : int
        Bytes per element of the inputs.

    Returns
    -------
    int
        The estimate, ``SMEM_SLACK`` included.

    Examples
    --------
    >>> kv_smem_bytes(128, 64, 128, 4)  # chapter 9 on an H200 needed 264192 of 232448
    266240
    """
    a, m, d = block_a, block_m, head_dim
    return elem_bytes * (2 * a * d + 2 * m * d + 2 * a * m) + SMEM_SLACK


def dq_smem_bytes(block_n: int, block_m: int, head_dim: int, elem_bytes: int) -> int:
    """Shared memory of the query-owned dq kernel: the forward's tiles plus ``do * v2``.

    Parameters
    ----------
    block_n, block_m, head_dim : int
        ``BLOCK_N``, ``BLOCK_M`` and ``D``.
    elem_bytes : int
        Bytes per element of the inputs.

    Returns
    -------
    int
        The estimate in bytes, ``SMEM_SLACK`` included.

    Examples
    --------
    >>> dq_smem_bytes(128, 64, 128, 2)
    118784
    """
    n, m, d = block_n, block_m, head_dim
    return elem_bytes * (2 * n * d + 2 * m * d + m * n) + SMEM_SLACK


def bwd_smem_bytes(cfg, head_dim: int, elem_bytes: int) -> int:
    """Largest estimate over the kernels one backward configuration launches (the ring
    kernel's tiles hold at most ``RING_MAX`` elements each and are never the largest).

    Parameters
    ----------
    cfg : BwdConfig
    head_dim : int
        ``D``.
    elem_bytes : int
        Bytes per element of the inputs.

    Returns
    -------
    int
        The larger of :func:`kv_smem_bytes` (with the larger of
        ``BLOCK_A``, ``BLOCK_A2``) and :func:`dq_smem_bytes`.
    """
    return max(kv_smem_bytes(max(cfg.BLOCK_A, cfg.BLOCK_A2), cfg.BLOCK_M, head_dim, elem_bytes),
               dq_smem_bytes(cfg.BLOCK_N, cfg.BLOCK_M, head_dim, elem_bytes))


def bwd_config(head_dim: int, group: int, w1: int, w2: int, tma: bool = False) -> BwdConfig:
    """The fastest block sizes, warps and pipeline depths of the backward for one shape.

    Under the interpreter every block is 16 wide (fast, and exercises the multi-block paths on
    tiny inputs). On a GPU the long-window key tile is 128 wide (or the window, rounded up to a
    power of two) and the short-window key tile stays near ``w2``, since each such tile is seen by
    ``BLOCK_A2 + w2 - 1`` queries and a wider one would mostly be masked.

    Parameters
    ----------
    head_dim, group : int
        ``D`` and query heads per KV head, which pick the walk (:func:`pick_walk`).
    w1, w2 : int
        The long and the short window.
    tma : bool, default False
        Whether the offset walks may load their rows as TMA tiles (:func:`tma_available`);
        the loads are :func:`pick_loads`'.

    Returns
    -------
    BwdConfig

    Examples
    --------
    >>> bwd_config(128, 64, 512, 32).BLOCK_M  # doctest: +SKIP
    64
    """
    short = pick_short(group, head_dim, w2)
    fused_walk = env_choice("SIMPLEX_FUSED_WALK", FUSED_WALKS, "offset")
    masks = env_choice("SIMPLEX_FUSED_MASKS", FUSED_MASK_RULES, "every")
    rows = 16 if interpreting() else 64  # query rows per block
    walk = pick_walk("bwd", group, rows, head_dim, w2)
    # The short window's key tiles walk the long window, by offset where that saves steps
    # (results/h200/bwd_sweep_d64.json: GQA 1 at 128x128).
    walk2 = "offset" if offset_walk_pays(group, rows, w1) else "position"
    offset = "offset" in (walk, walk2)
    loads = pick_loads("bwd", head_dim, group, 0, tma) if offset else "gather"
    if interpreting():
        return BwdConfig(16, 16, 16, 16, 1, 1, WALK=walk, SHORT=short, FUSED_WALK=fused_walk,
                         FUSED_MASKS=masks, WALK2=walk2, LOADS=loads)
    block_n = 128 if w1 >= 128 else max(16, triton.next_power_of_2(w1))
    # A key tile of the short window is seen by BLOCK_A2 + w2 - 1 queries: keep it near w2.
    # At w2 <= 32 and group >= 4, 16 keys are faster still (the launch alone at D 128, 512x32,
    # group 4 and 8, results/h200/kv2_sweep.json); at group 1 they are slower (the whole
    # backward at D 128, results/h200/kv2_g1.json).
    small = w2 <= 32 and group >= 4
    block_a2 = 16 if small else min(64, max(16, triton.next_power_of_2(w2)))
    # At D <= 64 a key-tile program's [BLOCK_A, D] accumulators are small: 64 keys on 4 warps,
    # three stages deep, beat 128 keys on 8 (the whole backward at D 64, every window, GQA 1 to
    # 64: results/h200/bwd_sweep_d64.json); at D 128 they do not.
    narrow = head_dim <= 64
    cfg = BwdConfig(64, 64 if narrow else 128, block_n, block_a2, 4, 2,
                    kv_warps=4 if narrow else 8, kv_stages=3 if narrow else 2, kv2_warps=4,
                    ring_warps=8, WALK=walk, SHORT=short, FUSED_WALK=fused_walk,
                    FUSED_MASKS=masks, WALK2=walk2, LOADS=loads)
    if narrow and short == "kv" and 4 <= group < 64:
        # The dq kernel beside the key-tile path (w2 > 64): 64-key tiles three stages deep,
        # 125.0 / 124.1 TFLOPS against 120.5 / 121.4 at GQA 4 / 8, D 64, 128x128
        # (results/h200/bwd_sweep_d64.json, session 21); at GQA 1 one bench call read 111.7
        # (s21_shapes_d64_128x128_dq.json) against shapes.json's 113.7: 128 keys, 2 stages.
        cfg = dataclasses.replace(cfg, BLOCK_N=min(64, block_n), num_stages=3)
    elif narrow and short == "kv" and group == 1 and loads == "tma":
        # With TMA tiles, 64-key tiles at GQA 1 too: the dq kernel 6.28 ms against 7.05, the
        # backward 122.9 TFLOPS against 121.0 at D 64, 128x128 (bwd_sweep_d64_g1_s26.json)
        cfg = dataclasses.replace(cfg, BLOCK_N=min(64, block_n))
    elif not narrow and short == "kv" and group <= 8:
        # At D 128 the same kernel at GQA 1 / 4, 128x128: 64-key tiles (two stages) took 18.7 /
        # 23.0 ms against 23.6 / 36.6, the backward 70.4 / 85.2 TFLOPS against 66.4 / 76.8
        # (results/h200/bwd_sweep_d128_128x128.json, session 22). From GQA 4 the short set's
        # key tiles of 32 keys as well: 93.9 TFLOPS against 81.1 at GQA 8 (89.9 with the
        # 64-key dq tiles alone; session 23); at GQA 1 they lost (56.7 against 66.4).
        cfg = dataclasses.replace(cfg, BLOCK_N=min(64, block_n))
        if group >= 4:
            cfg = dataclasses.replace(cfg, BLOCK_A2=min(32, block_a2))
    if short == "fused":  # BLOCK_N is the fused kernel's alone on that path
        warps, n = fused_launch(fused_walk, head_dim, group)
        cfg = dataclasses.replace(cfg, short_warps=warps, BLOCK_N=min(n, block_n))
    return cfg


def bwd_configs(head_dim: int, group: int, w1: int, w2: int, elem_bytes: int, smem: int,
                tma: bool = False) -> list:
    """Backward candidates, fastest first.

    The first is :func:`bwd_config` with each kernel's block halved until that kernel's
    estimate fits ``smem`` (``BLOCK_A``/``BLOCK_A2`` for the key-tile kernel, ``BLOCK_N`` for
    the dq kernel). The next ones, for :func:`launch_with_fallback`, leave out the ring kernel,
    then the fused short-window path (if chosen), and then halve every block once more each.

    Parameters
    ----------
    head_dim, group, w1, w2 : int
        As for :func:`bwd_config`.
    elem_bytes : int
        Bytes per element of the inputs.
    smem : int
        Shared memory available (bytes), e.g. :func:`max_shared_memory`.
    tma : bool, default False
        As for :func:`bwd_config`.

    Returns
    -------
    list of BwdConfig
    """
    cfg = bwd_config(head_dim, group, w1, w2, tma)

    def shrink(c, name, fits):
        while getattr(c, name) > 16 and not fits(getattr(c, name)):
            c = dataclasses.replace(c, **{name: getattr(c, name) // 2})
        return c

    def kv_fits(a):
        return kv_smem_bytes(a, cfg.BLOCK_M, head_dim, elem_bytes) <= smem

    cfg = shrink(cfg, "BLOCK_A", kv_fits)
    cfg = shrink(cfg, "BLOCK_A2", kv_fits)
    cfg = shrink(cfg, "BLOCK_N", lambda n: dq_smem_bytes(n, cfg.BLOCK_M, head_dim, elem_bytes) <= smem)
    # Next: the same blocks without the ring kernel (its [R, D] tiles are not estimated), the
    # key-tile path for the short window where the fused one was chosen (its kernel needs the
    # most shared memory), then every block halved in turn.
    out = [cfg, dataclasses.replace(cfg, RING_MAX=0)]
    if cfg.SHORT == "fused":
        cfg = dataclasses.replace(cfg, RING_MAX=0, SHORT="kv")
        out.append(cfg)
    while max(cfg.BLOCK_A, cfg.BLOCK_A2, cfg.BLOCK_N) > 16:
        cfg = dataclasses.replace(cfg, BLOCK_A=max(16, cfg.BLOCK_A // 2),
                                  BLOCK_A2=max(16, cfg.BLOCK_A2 // 2),
                                  BLOCK_N=max(16, cfg.BLOCK_N // 2), RING_MAX=0)
        out.append(cfg)
    return out


_CHOSEN: dict = {}


def launch_with_fallback(key, candidates: list, launch):
    """Run ``launch(cfg)`` with the first candidate the compiler accepts; remember it per ``key``.

    A config that fails with ``OutOfResources`` (the estimate was too low for this compiler or
    device) is skipped and the next, smaller one tried; the last failure is re-raised.

    Parameters
    ----------
    key : hashable
        The problem (device, dtype, shape class); a later call with the
        same key starts at the candidate that worked.
    candidates : list
        Configurations, fastest first (at least one).
    launch : callable
        ``launch(cfg)`` runs the kernels with one configuration.

    Returns
    -------
    object
        What ``launch`` returns.

    Raises
    ------
    triton.runtime.errors.OutOfResources
        If the last candidate fails too.
    """
    start = _CHOSEN.get(key, 0)
    for i in range(min(start, len(candidates) - 1), len(candidates)):
        try:
            result = launch(candidates[i])
        except OutOfResources:
            if i == len(candidates) - 1:
                raise
            continue
        _CHOSEN[key] = i
        return result
    raise AssertionError("unreachable: no candidate configurations")


def patch_interpreter_index() -> None:
    """Let the interpreter use tensors derived from ``program_id`` as loop bounds.

    The interpreter holds scalars as 1-element arrays and turns them into Python ints with
    ``int(array)``, which NumPy >= 2.4 refuses for arrays of one dimension. We wrap its patcher
    so ``__index__`` reads the single element instead. Only active under ``TRITON_INTERPRET=1``.
    """
    from triton.runtime import interpreter as _it  # only importable for the interpreter's use

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
