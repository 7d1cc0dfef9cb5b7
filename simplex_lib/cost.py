"""The one cost model: FLOPs and memory of dot, dense n-simplicial, windowed and top-k attention.

**What is counted.** An attention head scores tuples ``(i, j_1, ..., j_n)`` of one query and
``n`` keys (``n = 1``: dot-product attention, ``n = 2``: 2-simplicial). Every scored tuple costs
a fixed number of FLOPs per head-dimension unit, in one of two conventions:

- ``"ours"`` (the tensor-core count): the two contractions that run as matrix multiplications,
  logits then probabilities times values, 2 FLOPs per multiply-add, so ``4 * head_dim`` per tuple
  whatever ``n``;
- ``"paper"``: every multiplication of the naive formula, ``2 * (n + 1) * head_dim`` per tuple.
  For ``n = 2`` this is the ``6 * N * w1 * w2`` of Roy et al. (2025, Section 6); for ``n = 1``
  both conventions agree (``2 N^2`` per head-dim unit for causal dot attention).

The softmax (a few FLOPs per tuple, not multiplied by ``head_dim``) is left out. Backward passes
follow the benchmark convention: ``mode="bwd"`` counts 2.5 times the forward, ``"fwdbwd"`` 3.5 times.

**Which tuples.** Causal dot attention scores ``n (n + 1) / 2`` pairs (about ``n^2 / 2``); dense
causal n-simplicial attention ``sum_m m^n`` tuples (:func:`tuple_count`); sliding windows
``(w1, w2)`` (key ``j`` visible to query ``i`` iff ``i - w < j <= i``, see
:mod:`simplex_lib.masks`) about ``n * w1 * w2`` triples, exactly :func:`visible_triples`; top-k
selection ``k1 * k2`` pairs per query, plus the indexer that chose them (:func:`indexer_flops`).

Contents: :func:`windowed_flops`, :func:`topk_flops`, :func:`dot_flops`, :func:`dense_flops`,
:func:`indexer_flops`, :func:`crossover_length`, :func:`equal_cost_dot_length`,
:func:`window_shapes`; memory: :func:`dense_memory_bytes`, :func:`max_dense_length`; the model
against measurements: :func:`table1_model`, :func:`measured_crossover`, :func:`measure_dense`
(with :class:`TensorMemoryTracker`).
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from collections.abc import Callable
from fractions import Fraction

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .published import TABLE1
from .ops.n_simplicial.reference import n_simplicial_attention

__all__ = [
    "GIB",
    "TRIPLE_FLOPS",
    "PAIR_FLOPS",
    "MODE_FACTOR",
    "flops_per_tuple",
    "visible_triples",
    "tuple_count",
    "windowed_flops",
    "topk_flops",
    "dot_flops",
    "dense_flops",
    "indexer_flops",
    "crossover_length",
    "equal_cost_dot_length",
    "window_shapes",
    "block_flops_per_token",
    "dense_memory_bytes",
    "max_dense_length",
    "table1_model",
    "measured_crossover",
    "TensorMemoryTracker",
    "measure_dense",
    "H100_SXM",
    "forward_step_cycles",
    "forward_tflops_bounds",
]

#: Bytes in one gibibyte (2**30).
GIB = 1 << 30

#: FLOPs per visible (query, key, key) triple, per head-dim unit, in each convention.
TRIPLE_FLOPS = {"ours": 4, "paper": 6}
#: FLOPs per visible (query, key) pair of dot attention, per head-dim unit (both conventions).
PAIR_FLOPS = 4
#: Work of each pass relative to the forward (the benchmarks' convention).
MODE_FACTOR = {"fwd": Fraction(1), "bwd": Fraction(5, 2), "fwdbwd": Fraction(7, 2)}


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_int(name: str, x, minimum: int = 1) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {x!r}")


def _check_convention(convention) -> None:
    if convention not in TRIPLE_FLOPS:
        raise ValueError(f"convention must be 'ours' or 'paper', got {convention!r}")


def _check_mode(mode) -> Fraction:
    if mode not in MODE_FACTOR:
        raise ValueError(f"mode must be one of {sorted(MODE_FACTOR)}, got {mode!r}")
    return MODE_FACTOR[mode]


def _check_window(name: str, w) -> None:
    if w is not None:
        _check_int(name, w)


def _scaled(flops: int, mode: str) -> int:
    factor = _check_mode(mode)
    return flops * factor.numerator // factor.denominator  # exact: every count here is even


# --------------------------------------------------------------------------------------------
# Counting tuples
# --------------------------------------------------------------------------------------------


def flops_per_tuple(order: int, head_dim: int = 1, *, convention: str = "ours") -> int:
    """FLOPs one scored tuple ``(i, j_1, ..., j_order)`` costs: ``4 d`` (ours) or ``2 (order+1) d`` (paper).

    Parameters
    ----------
    order : int >= 1
        Keys per tuple: 1 = dot-product attention, 2 = 2-simplicial, ...
    head_dim : int >= 1, default 1
    convention : ``"ours"`` (default) or ``"paper"``
        FLOPs per tuple, see the module docstring.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``order`` or ``head_dim`` is not an int >= 1, or the convention is unknown.

    Examples
    --------
    >>> flops_per_tuple(2), flops_per_tuple(2, convention="paper"), flops_per_tuple(1, convention="paper")
    (4, 6, 4)
    """
    _check_int("order", order)
    _check_int("head_dim", head_dim)
    _check_convention(convention)
    per_unit = 4 if convention == "ours" else 2 * (order + 1)
    return per_unit * head_dim


def visible_triples(n: int, w1: int | None = None, w2: int | None = None) -> int:
    """Exact number of visible ``(i, j, k)`` triples of causal windowed 2-simplicial attention.

    ``sum_i min(w1, i+1) * min(w2, i+1)``: unlike the ``n * w1 * w2`` model it counts the ramp at
    the start of the sequence, where a query has fewer past keys than its window. ``None`` means
    no window (plain causal).

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    w1, w2 : int >= 1, optional
        Windows of the two key sets (default None: no window).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``n`` is not an int >= 1 or a window is neither None nor an int >= 1.

    Examples
    --------
    >>> visible_triples(3, 2, 2)  # 1*1 + 2*2 + 2*2
    9
    >>> visible_triples(4) == sum((i + 1) ** 2 for i in range(4))
    True
    """
    _check_int("n", n)
    _check_window("w1", w1)
    _check_window("w2", w2)
    i = torch.arange(1, n + 1, dtype=torch.int64)
    a = i if w1 is None else i.clamp(max=w1)
    b = i if w2 is None else i.clamp(max=w2)
    return int((a * b).sum())


def tuple_count(L: int, n: int, *, causal: bool = False) -> int:
    """Logit entries of one head of dense n-simplicial attention: tuples ``(i, j_1, ..., j_n)``.

    Dense: ``L**(n+1)``. Causal (every ``j_m <= i``): query ``i`` (0-based) sees ``(i+1)**n``
    tuples, so the count is ``sum_{m=1}^{L} m**n``.

    Parameters
    ----------
    L : int
        Sequence length, >= 1.
    n : int
        Order: 1 = dot-product attention, 2 = 2-simplicial, ...
    causal : bool
        Count only the tuples a causal mask keeps.

    Returns
    -------
    int

    Examples
    --------
    >>> tuple_count(4, 2), tuple_count(4, 2, causal=True)  # 4**3, 1 + 4 + 9 + 16
    (64, 30)
    """
    _check_int("L", L)
    _check_int("n", n)
    if not causal:
        return L ** (n + 1)
    return _power_sum(L, n)


def _power_sum(L: int, n: int) -> int:
    """``sum_{m=1}^{L} m**n`` exactly, in O(n**2) integer steps whatever ``L``.

    From the telescoping sum ``(L+1)**(n+1) - 1 = sum_{p=0}^{n} C(n+1, p) S_p(L)``.
    """
    sums = []
    for p in range(n + 1):
        rest = sum(math.comb(p + 1, r) * sums[r] for r in range(p))
        sums.append(((L + 1) ** (p + 1) - 1 - rest) // (p + 1))
    return sums[n]


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------


def windowed_flops(n: int, w1: int, w2: int, *, batch: int = 1, heads: int = 1, head_dim: int = 1,
                   convention: str = "ours", mode: str = "fwd", exact: bool = False) -> int:
    """FLOPs of causal sliding-window 2-simplicial attention (the one definition of the formula).

    ``flops_per_tuple(2) * batch * heads * n * w1 * w2``: ``4 B H N D w1 w2`` in our count (the two
    tensor-core GEMMs), ``6 B H N D w1 w2`` in the paper's. ``exact=True`` counts the ramp at the
    start of the sequence (:func:`visible_triples` instead of ``n * w1 * w2``). ``mode`` scales by
    :data:`MODE_FACTOR` (backward 2.5x, forward + backward 3.5x).

    Parameters
    ----------
    n : int
        Sequence length.
    w1, w2 : int
        Windows of the two key sets.
    batch, heads, head_dim : int
        Multipliers (``heads`` are query heads).
    convention : ``"ours"`` or ``"paper"``
    mode : ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``
    exact : bool

    Returns
    -------
    int

    Examples
    --------
    >>> windowed_flops(1000, 512, 32, convention="paper")  # 6 * n * w1 * w2
    98304000
    >>> windowed_flops(8192, 512, 32, batch=2, heads=64, head_dim=128) / 1e12  # the headline shape
    8.796093022208
    >>> windowed_flops(8, 4, 2, mode="bwd") == 5 * windowed_flops(8, 4, 2) // 2
    True
    """
    for name, v in (("n", n), ("batch", batch), ("heads", heads), ("head_dim", head_dim)):
        _check_int(name, v)
    for name, v in (("w1", w1), ("w2", w2)):
        if v is None:
            raise ValueError(f"{name} must be an int >= 1 (the cost model needs a window)")
        _check_int(name, v)
    triples = visible_triples(n, w1, w2) if exact else n * w1 * w2
    per = flops_per_tuple(2, head_dim, convention=convention)
    return _scaled(per * batch * heads * triples, mode)


def topk_flops(n: int, k1: int, k2: int | None = None, *, batch: int = 1, heads: int = 1,
               head_dim: int = 1, convention: str = "ours", mode: str = "fwd",
               exact: bool = False) -> int:
    """FLOPs of top-k 2-simplicial attention: ``k1 x k2`` selected pairs per query (``k2 = k1`` shared).

    The attention part costs what a ``k1 x k2`` window costs, ``O(n k1 k2)``; with ``exact=True``
    early queries score only ``min(k, i+1)`` keys per set. The indexer that picks the keys is
    counted separately by :func:`indexer_flops`.

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    k1 : int >= 1
        Keys selected per query from the first key set.
    k2 : int >= 1, optional
        From the second set (default: ``k1``, one shared selection).
    batch, heads, head_dim, convention, mode, exact
        As in :func:`windowed_flops` (defaults 1, 1, 1, ``"ours"``, ``"fwd"``, False).

    Returns
    -------
    int, ``windowed_flops(n, k1, k2, ...)``.

    Raises
    ------
    ValueError
        If a count is not an int >= 1, or ``convention``/``mode`` is unknown.

    Examples
    --------
    >>> topk_flops(512, 128) == windowed_flops(512, 128, 128)
    True
    >>> topk_flops(8192, 128, heads=64, head_dim=128) == windowed_flops(8192, 512, 32, heads=64, head_dim=128)
    True
    """
    k2 = k1 if k2 is None else k2
    for name, v in (("k1", k1), ("k2", k2)):
        _check_int(name, v)
    return windowed_flops(n, k1, k2, batch=batch, heads=heads, head_dim=head_dim,
                          convention=convention, mode=mode, exact=exact)


def dot_flops(n: int, *, batch: int = 1, heads: int = 1, head_dim: int = 1, mode: str = "fwd",
              exact: bool = False) -> int:
    """FLOPs of causal dot-product attention: ``4 * batch * heads * head_dim * n^2 / 2``.

    The same in both conventions (the paper writes ``2 n^2`` per head-dim unit). ``exact=True``
    counts the ``n (n + 1) / 2`` visible pairs (diagonal included) instead of ``n^2 / 2``.

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    batch, heads, head_dim : int >= 1, default 1
        Multipliers.
    mode : ``"fwd"`` (default), ``"bwd"`` or ``"fwdbwd"``
        Scales by :data:`MODE_FACTOR`.
    exact : bool, default False

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a count is not an int >= 1 or ``mode`` is unknown.

    Examples
    --------
    >>> dot_flops(1000)  # 2 n^2
    2000000
    >>> dot_flops(4, exact=True)  # 4 * (4 * 5 / 2)
    40
    >>> dot_flops(16384, heads=16, head_dim=128) == 4 * 16 * 16384**2 * 128 // 2
    True
    """
    for name, v in (("n", n), ("batch", batch), ("heads", heads), ("head_dim", head_dim)):
        _check_int(name, v)
    base = PAIR_FLOPS * batch * heads * head_dim
    return _scaled(base * n * (n + 1) // 2 if exact else base * n * n // 2, mode)


def block_flops_per_token(d_model: int, heads: int, head_dim: int, n: int, *,
                          window: int | None = None, mlp_ratio: int = 4) -> float:
    """Forward FLOPs per token of one transformer block, averaged over the ``n`` positions.

    Weights: ``2`` FLOPs per weight per token over the four attention projections and the MLP,
    ``2 * (4 + 2 * mlp_ratio) * d_model^2``. Attention: causal dot-product attention
    (:func:`dot_flops` with ``exact=True``, divided by ``n``) or, with ``window``, 2-simplicial
    attention over ``window x window`` key pairs (:func:`windowed_flops` divided by ``n``; its two
    extra projections, ``K'`` and ``V'``, are not counted, as in the model of chapter 12).

    Parameters
    ----------
    d_model : int >= 1
        Width of the residual stream.
    heads, head_dim : int >= 1
        Attention heads and their dimension.
    n : int >= 1
        Context length.
    window : int >= 1, optional
        Both windows of a 2-simplicial block; ``None`` for a dot-product block.
    mlp_ratio : int >= 1, default 4
        MLP hidden width over ``d_model``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a count is not an int >= 1.

    Examples
    --------
    >>> round(block_flops_per_token(768, 12, 64, 512, window=128) / 1e6)  # 2-simplicial block
    64
    >>> round(block_flops_per_token(768, 12, 64, 512) / 1e6, 1)  # dot-product block
    14.9
    """
    for name, v in (("d_model", d_model), ("mlp_ratio", mlp_ratio)):
        _check_int(name, v)
    weights = 2 * (4 + 2 * mlp_ratio) * d_model * d_model
    if window is None:
        attention = dot_flops(n, heads=heads, head_dim=head_dim, exact=True) / n
    else:
        attention = windowed_flops(n, window, window, heads=heads, head_dim=head_dim) / n
    return weights + attention


def dense_flops(L: int, n: int, head_dim: int, *, batch: int = 1, heads: int = 1,
                causal: bool = False, convention: str = "ours") -> int:
    """FLOPs of one forward pass of dense n-simplicial attention.

    ``flops_per_tuple(n, head_dim) * batch * heads * tuple_count(L, n, causal=causal)``.
    ``causal=False`` counts what a dense einsum computes (masked entries included);
    ``causal=True`` what a kernel that skips masked entries computes.

    Parameters
    ----------
    L, n, head_dim : int
    batch, heads : int
    causal : bool
    convention : ``"ours"`` (``4 d`` per tuple) or ``"paper"`` (``2 (n+1) d``)

    Returns
    -------
    int

    Examples
    --------
    >>> dense_flops(1024, 1, 128, causal=True) / (4 * 1024**2 * 128 / 2)  # dot attention
    1.0009765625
    >>> dense_flops(8, 2, 4, convention="paper") == 6 * 8**3 * 4
    True
    """
    for name, x in (("L", L), ("n", n), ("head_dim", head_dim), ("batch", batch), ("heads", heads)):
        _check_int(name, x)
    per = flops_per_tuple(n, head_dim, convention=convention)
    return per * batch * heads * tuple_count(L, n, causal=causal)


def indexer_flops(n: int, *, batch: int = 1, indexer_heads: int = 1, indexer_dim: int = 1,
                  key_sets: int = 1) -> int:
    """FLOPs of a DSA-style indexer over all past keys: ``2 * batch * H_I * D_I * n^2 / 2`` per key set.

    One multiply-add per (query, past key, head, dim). Still quadratic in ``n``, but with few small
    heads it is cheap next to the attention it prunes. ``key_sets=2`` scores K1 and K2
    separately; the shared-selection shortcut reuses scores that already exist (``key_sets=0``,
    see :func:`simplex_lib.selection.previous_layer_topk`).

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    batch : int >= 1, default 1
    indexer_heads, indexer_dim : int >= 1, default 1
        ``H_I`` and ``D_I``, the indexer's heads and their dimension.
    key_sets : int >= 0, default 1
        Key sets the indexer scores.

    Returns
    -------
    int, ``key_sets * batch * H_I * D_I * n^2`` (the model's ``n^2 / 2`` pairs, 2 FLOPs each).

    Raises
    ------
    ValueError
        If a count is not an int >= 1 (``key_sets``: >= 0).

    Examples
    --------
    >>> indexer_flops(1000, indexer_heads=4, indexer_dim=32)
    128000000
    """
    for name, v in (("n", n), ("batch", batch), ("indexer_heads", indexer_heads),
                    ("indexer_dim", indexer_dim)):
        _check_int(name, v)
    _check_int("key_sets", key_sets, 0)
    return key_sets * batch * indexer_heads * indexer_dim * n * n


def crossover_length(w1: int, w2: int, *, convention: str = "ours", exact: bool = False) -> int:
    """Sequence length at which windowed 2-simplicial attention costs as much as causal dot attention.

    Model (``exact=False``): ``c * n * w1 * w2 = 2 * n^2`` per head-dim unit, so
    ``n* = (c / 2) * w1 * w2`` with ``c = 4`` (ours, ``n* = 2 w1 w2``) or ``c = 6`` (the paper,
    ``n* = 3 w1 w2``; 49,152 = 48k for 512 x 32). Beyond ``n*`` the windowed form is cheaper.
    ``exact=True`` returns the smallest ``n`` at which the exact counts (ramp included) of dot
    attention reach those of the windowed form.

    Parameters
    ----------
    w1, w2 : int >= 1
        Windows of the two key sets.
    convention : ``"ours"`` (default) or ``"paper"``
        FLOPs per tuple, see the module docstring.
    exact : bool, default False

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If a window is not an int >= 1 or the convention is unknown.

    Examples
    --------
    >>> crossover_length(512, 32, convention="paper")
    49152
    >>> crossover_length(512, 32)
    32768
    """
    _check_convention(convention)
    for name, v in (("w1", w1), ("w2", w2)):
        if v is None:
            raise ValueError(f"{name} must be an int >= 1 for a crossover")
        _check_int(name, v)
    c = TRIPLE_FLOPS[convention]
    model = c * w1 * w2 // 2
    if not exact:
        return model
    # The windowed count grows at most linearly, dot attention quadratically: one crossing.
    hi = model + max(w1, w2) + 2
    i = torch.arange(1, hi + 1, dtype=torch.float64)
    tri = torch.cumsum(i.clamp(max=w1) * i.clamp(max=w2), 0) * c
    dot = PAIR_FLOPS * i * (i + 1) / 2
    ok = torch.nonzero((dot >= tri) & (i > 1)).flatten()
    return int(ok[0]) + 1


def equal_cost_dot_length(n: int, w1: int, w2: int, *, convention: str = "ours") -> float:
    """The causal dot-attention context whose FLOPs equal windowed attention's at length ``n``.

    Solves ``dot_flops(m) = windowed_flops(n, w1, w2)`` for ``m``: ``m = sqrt(c n w1 w2 / 2)``
    (``sqrt(2 n w1 w2)`` in our count), what a benchmark pairs each windowed run with.

    Parameters
    ----------
    n : int >= 1
        Sequence length of the windowed attention.
    w1, w2 : int >= 1
        Its windows.
    convention : ``"ours"`` (default) or ``"paper"``
        FLOPs per tuple, see the module docstring.

    Returns
    -------
    float (not rounded)

    Raises
    ------
    ValueError
        If ``n``, ``w1`` or ``w2`` is not an int >= 1 or the convention is unknown.

    Examples
    --------
    >>> equal_cost_dot_length(32768, 512, 32)  # at the crossover the two lengths agree
    32768.0
    """
    _check_convention(convention)
    for name, v in (("n", n), ("w1", w1), ("w2", w2)):
        _check_int(name, v)
    return math.sqrt(TRIPLE_FLOPS[convention] * n * w1 * w2 / 2)


def window_shapes(product: int, *, min_w: int = 16) -> list:
    """Power-of-two window shapes ``(w1, w2)`` with ``w1 * w2 == product`` and both ``>= min_w``.

    All have the same cost in the FLOP model; Table 1 of the paper compares some of them.

    Parameters
    ----------
    product : int >= 1, a power of two
        ``w1 * w2``.
    min_w : int >= 1, default 16
        Smallest window allowed on either side.

    Returns
    -------
    list of ``(w1, w2)`` tuples, ``w1`` increasing (empty when no shape fits).

    Raises
    ------
    ValueError
        If ``product`` is not a power-of-two int or ``min_w`` is not an int >= 1.

    Examples
    --------
    >>> window_shapes(16384, min_w=16)
    [(16, 1024), (32, 512), (64, 256), (128, 128), (256, 64), (512, 32), (1024, 16)]
    """
    _check_int("product", product)
    if product & (product - 1):
        raise ValueError(f"product must be a power of two, got {product}")
    _check_int("min_w", min_w)
    shapes = []
    w1 = 1
    while w1 <= product:
        w2 = product // w1
        if w1 >= min_w and w2 >= min_w:
            shapes.append((w1, w2))
        w1 *= 2
    return shapes


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def dense_memory_bytes(L: int, n: int, head_dim: int, *, batch: int = 1, heads: int = 1,
                       bytes_per_element: int = 4, live_copies: int = 2,
                       breakdown: bool = False):
    """Bytes a dense (materialising) implementation of n-simplicial attention holds at its peak.

    Two parts: the ``live_copies`` full tensors of ``batch * heads * L**(n+1)`` entries (an
    einsum implementation holds at least the logits and the probabilities at once, hence 2), and
    the inputs and the output: ``q``, ``n`` keys, ``n`` values and ``o``, i.e.
    ``(2n + 2) * batch * L * heads * head_dim`` elements. No grouped-query sharing is assumed.

    Parameters
    ----------
    L, n, head_dim : int
    batch, heads : int
    bytes_per_element : int
        4 for float32, 2 for bfloat16, 8 for float64.
    live_copies : int
        How many full ``L**(n+1)`` tensors are alive at once (>= 1).
    breakdown : bool
        Return a dict ``{"tensor": ..., "io": ..., "total": ...}`` instead of the total.

    Returns
    -------
    int, or dict of int

    Examples
    --------
    >>> dense_memory_bytes(1024, 2, 64) / 2**30  # two float32 copies of 1024**3 logits
    8.00146484375
    >>> dense_memory_bytes(4, 1, 2, breakdown=True)
    {'tensor': 128, 'io': 128, 'total': 256}
    """
    for name, x in (("L", L), ("n", n), ("head_dim", head_dim), ("batch", batch), ("heads", heads),
                    ("bytes_per_element", bytes_per_element), ("live_copies", live_copies)):
        _check_int(name, x)
    tensor = live_copies * batch * heads * L ** (n + 1) * bytes_per_element
    io = (2 * n + 2) * batch * L * heads * head_dim * bytes_per_element
    if breakdown:
        return {"tensor": tensor, "io": io, "total": tensor + io}
    return tensor + io


def max_dense_length(budget_bytes: float, n: int, head_dim: int, **kw) -> int:
    """The largest ``L`` whose :func:`dense_memory_bytes` fits ``budget_bytes`` (0 if none).

    Parameters
    ----------
    budget_bytes : float
        Memory budget in bytes (e.g. ``80 * GIB``).
    n, head_dim : int
    **kw
        Passed to :func:`dense_memory_bytes` (``batch``, ``heads``, ``bytes_per_element``,
        ``live_copies``).

    Returns
    -------
    int

    Examples
    --------
    >>> max_dense_length(80 * GIB, 2, 128)  # 2-simplicial, one head, float32
    2206
    """
    if not isinstance(budget_bytes, (int, float)) or isinstance(budget_bytes, bool) \
            or not math.isfinite(budget_bytes) or budget_bytes < 0:
        raise ValueError(f"budget_bytes must be a finite number >= 0, got {budget_bytes!r}")
    unknown = set(kw) - {"batch", "heads", "bytes_per_element", "live_copies"}
    if unknown:
        raise ValueError(f"unknown keyword {sorted(unknown)[0]!r} for dense_memory_bytes")

    def fits(L):
        return dense_memory_bytes(L, n, head_dim, **kw) <= budget_bytes

    if not fits(1):
        return 0
    hi = 2
    while fits(hi):  # memory grows at least like L**2, so this ends quickly
        hi *= 2
    lo = hi // 2  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# --------------------------------------------------------------------------------------------
# The model against measurements
# --------------------------------------------------------------------------------------------


def table1_model(anchor=(512, 32), rows=TABLE1, measured=None) -> list:
    """The paper's Table 1 next to the FLOP model's prediction: latency proportional to ``w1 * w2``.

    At fixed batch, sequence, heads and throughput, the model makes latency proportional to the
    window product. The prediction is anchored on one row of the table (default ``512 x 32``).

    Parameters
    ----------
    anchor : (w1, w2)
        The row the model is scaled to.
    rows : sequence of dicts with ``w1``, ``w2``, ``latency_ms`` (default
        :data:`simplex_lib.published.TABLE1`)
    measured : list of dicts, optional
        Benchmark records (e.g. ``bench_plots.flat_records(bench_plots.load_results())``); those of
        group ``"table1"`` in ``"fwd"`` mode (``python -m simplex_lib.bench --table1``) become the
        ``measured_ms`` column.

    Returns
    -------
    list of dict
        The row's fields plus ``model_ms``, ``ratio`` (paper / model) and, when a measurement of
        that shape exists, ``measured_ms``.

    Examples
    --------
    >>> r = table1_model()
    >>> [x["model_ms"] for x in r if x["product"] == 8192]
    [27.55]
    """
    if not (isinstance(anchor, (tuple, list)) and len(anchor) == 2):
        raise ValueError(f"anchor must be a pair (w1, w2), got {anchor!r}")
    ref = next((r for r in rows if (r["w1"], r["w2"]) == tuple(anchor)), None)
    if ref is None:
        raise ValueError(f"anchor {tuple(anchor)} is not a row of the table")
    per_pair = ref["latency_ms"] / (ref["w1"] * ref["w2"])
    ours = {}
    for m in measured or ():
        if m.get("group") == "table1" and m.get("mode") == "fwd" and isinstance(m.get("ms"), (int, float)):
            ours.setdefault((m["w1"], m["w2"]), m["ms"])
    out = []
    for r in rows:
        model = round(per_pair * r["w1"] * r["w2"], 4)
        row = {**r, "model_ms": model, "ratio": r["latency_ms"] / model}
        if (r["w1"], r["w2"]) in ours:
            row["measured_ms"] = ours[(r["w1"], r["w2"])]
        out.append(row)
    return out


_PROVENANCE = ("path", "gpu", "torch", "triton", "date")


def measured_crossover(records) -> list:
    """The crossover with dot attention in *time*, from benchmark records of both kernels.

    Uses the records of ``python -m simplex_lib.bench --claim48k``: a forward timing of the
    windowed kernel (group ``"claim-kernel"``) and of causal SDPA at some context ``n`` (group
    ``"claim-sdpa"``) with the same query heads and head dim, from the same file. Windowed
    attention costs the same per token at any length; causal dot attention costs per token in
    proportion to ``n``. At a constant throughput the per-token times are therefore equal at
    ``n* = n * t_kernel / t_sdpa(n)``.

    Parameters
    ----------
    records : list of dict
        Flat benchmark records (``bench_plots.flat_records(bench_plots.load_results(root))``):
        fields ``group``, ``mode``, ``B``, ``N``, ``Hq``, ``D``, ``ms`` (and ``w1``, ``w2``), plus
        the provenance fields ``path``, ``gpu``, ``torch``, ``triton``, ``date`` that are copied.

    Returns
    -------
    list of dict
        One per (kernel, SDPA) pair with keys ``w1``, ``w2``, ``D``, ``heads``, ``n_sdpa``,
        ``kernel_us_per_token``, ``sdpa_us_per_token``, ``crossover``, ``model_crossover`` and the
        provenance fields; empty when no such record exists.

    Examples
    --------
    >>> recs = [dict(path="r.json", gpu="X", group="claim-kernel", mode="fwd", B=1, N=8192, Hq=64,
    ...              D=128, w1=512, w2=32, ms=8.0),
    ...         dict(path="r.json", gpu="X", group="claim-sdpa", mode="fwd", B=1, N=32768, Hq=64,
    ...              D=128, ms=40.0)]
    >>> measured_crossover(recs)[0]["crossover"]
    26214.4
    """
    ok = [r for r in records if isinstance(r, dict) and r.get("mode") == "fwd"
          and isinstance(r.get("ms"), (int, float)) and "error" not in r]
    out = []
    for k in (r for r in ok if r.get("group") == "claim-kernel"):
        tk = 1e3 * k["ms"] / (k["B"] * k["N"])
        for s in (r for r in ok if r.get("group") == "claim-sdpa"):
            if (s.get("path"), s.get("Hq"), s.get("D")) != (k.get("path"), k.get("Hq"), k.get("D")):
                continue
            ts = 1e3 * s["ms"] / (s["B"] * s["N"])
            out.append({**{f: k[f] for f in _PROVENANCE if f in k}, "w1": k["w1"], "w2": k["w2"],
                        "D": k["D"], "heads": k["Hq"], "n_sdpa": s["N"], "kernel_us_per_token": tk,
                        "sdpa_us_per_token": ts, "crossover": s["N"] * tk / ts,
                        "model_crossover": crossover_length(k["w1"], k["w2"])})
    return out


class TensorMemoryTracker(TorchDispatchMode):
    """Peak bytes of tensor storage allocated while the mode is active.

    Every tensor an operation returns is looked at; a storage that is new (not one of the
    operation's inputs, so views and in-place results are not counted twice) is added to the
    live total and removed when it is freed. ``peak`` is the largest live total seen. Storage
    that existed before entering (the inputs) is not counted. CPU and GPU alike; it measures
    tensor sizes, not the allocator's cache.

    Examples
    --------
    >>> with TensorMemoryTracker() as mem:
    ...     a = torch.zeros(1000)           # 4000 bytes
    ...     b = a * 2                       # 8000 live
    ...     del a, b
    ...     c = torch.zeros(500)            # 2000 live
    >>> mem.peak, mem.current
    (8000, 2000)
    """

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, weakref.ref] = {}

    def _track(self, st) -> None:
        key = id(st)
        if key in self._live:
            return
        nbytes = st.nbytes()

        def freed(_ref, key=key, nbytes=nbytes):
            if self._live.pop(key, None) is not None:
                self.current -= nbytes

        self._live[key] = weakref.ref(st, freed)
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if id(st) not in inputs:
                    self._track(st)
        return out


def measure_dense(n: int, lengths, *, head_dim: int = 8, batch: int = 1, heads: int = 1,
                  repeats: int = 3, dtype=torch.float32, reducer: str = "and", seed: int = 0,
                  device="cpu", threads: int | None = 1,
                  attention: Callable | None = None) -> list[dict]:
    """Time, peak tensor memory and counted FLOPs of dense n-simplicial attention.

    For each ``L`` in ``lengths``: random inputs ``[batch, L, heads, head_dim]``, one warm-up
    call, then ``repeats`` timed calls (``time.perf_counter``; the median is kept). Peak memory is
    measured by :class:`TensorMemoryTracker` (bytes of tensors allocated during one call, inputs
    excluded) and matmul FLOPs by ``torch.utils.flop_counter.FlopCounterMode``. Runs under
    ``torch.no_grad()``. On a CPU shared with other work, one thread (the default) gives far
    steadier timings than several.

    Parameters
    ----------
    n : int
        Order (number of keys per tuple).
    lengths : iterable of int
        Sequence lengths ``L``.
    head_dim, batch, heads, repeats : int
    dtype : torch.dtype
    reducer : ``"and"`` or ``"or"``
    seed : int
        Seed of the random inputs.
    device : str or torch.device
        Where to run; CUDA timings synchronise before reading the clock.
    threads : int or None
        CPU threads for the measurement (restored afterwards); ``None`` leaves torch's setting.
    attention : callable, optional
        ``attention(q, keys, values, reducer=...)``; default
        :func:`simplex_lib.ops.n_simplicial.reference.n_simplicial_attention`.

    Returns
    -------
    list of dict
        One row per ``L`` with keys ``L``, ``n``, ``seconds`` (median), ``peak_bytes`` (measured),
        ``input_bytes``, ``flops`` (counted), ``entries`` (``batch * heads * L**(n+1)``).

    Examples
    --------
    >>> row = measure_dense(2, [8], repeats=1)[0]
    >>> row["entries"], row["flops"] >= dense_flops(8, 2, 8)
    (512, True)
    """
    for name, x in (("n", n), ("head_dim", head_dim), ("batch", batch), ("heads", heads),
                    ("repeats", repeats)):
        _check_int(name, x)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("lengths must hold at least one sequence length")
    for L in lengths:
        _check_int("lengths", L)
    if threads is not None:
        _check_int("threads", threads)
    if attention is None:
        attention = n_simplicial_attention
    elif not callable(attention):
        raise ValueError(f"attention must be callable, got {type(attention).__name__}")
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return [_measure_one(n, L, head_dim, batch, heads, repeats, dtype, reducer, seed, device,
                             sync, attention) for L in lengths]
    finally:
        torch.set_num_threads(old_threads)


def _measure_one(n, L, head_dim, batch, heads, repeats, dtype, reducer, seed, device, sync,
                 attention) -> dict:
    gen = torch.Generator().manual_seed(seed + L)

    def rand():
        return torch.randn(batch, L, heads, head_dim, generator=gen, dtype=dtype).to(device)

    q, keys, values = rand(), [rand() for _ in range(n)], [rand() for _ in range(n)]
    with torch.no_grad():
        attention(q, keys, values, reducer=reducer)  # warm-up
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            attention(q, keys, values, reducer=reducer)
            sync()
            times.append(time.perf_counter() - t0)
        with TensorMemoryTracker() as mem:
            out = attention(q, keys, values, reducer=reducer)
            del out
        with FlopCounterMode(display=False) as fc:
            attention(q, keys, values, reducer=reducer)
    return {
        "L": L, "n": n,
        "seconds": statistics.median(times),
        "peak_bytes": mem.peak,
        "input_bytes": sum(t.nelement() * t.element_size() for t in [q, *keys, *values]),
        "flops": fc.get_total_flops(),
        "entries": batch * heads * L ** (n + 1),
    }


# --------------------------------------------------------------------------------------------
# A cycle budget for one step of the forward kernel (chapter 8)
# --------------------------------------------------------------------------------------------

#: Per-SM rates per clock of an NVIDIA H100 SXM (Hopper), the GPU of the kernel records: dense
#: bf16 tensor-core FLOPs, exp2 on the special-function units (MUFU), fp32 lanes of the CUDA
#: cores, shared-memory bytes; 132 SMs and the dense bf16 peak in TFLOPS. The clock is the one
#: implied by the peak (989.4e12 / (132 * 4096) = 1.83 GHz), taken to be the same for every unit.
H100_SXM = {"sms": 132, "tensor_flops": 4096, "exp2": 16, "fp32": 128, "smem_bytes": 128,
            "peak_tflops": 989.4}


def forward_step_cycles(block_m: int, block_n: int, head_dim: int, *, elem_bytes: int = 2,
                        ops_per_logit: int = 4, ops_per_output: int = 4,
                        device: dict | None = None) -> dict:
    """Clock cycles one SM spends, unit by unit, on one step of the forward kernel.

    A step is one row ``k`` of the short window against one ``[block_n, D]`` tile of the long
    window for ``block_m`` query rows (``_fwd_tile`` in the forward kernel): two GEMMs of
    ``2 * block_m * block_n * D`` FLOPs each, ``block_m * block_n + block_m`` exponentials
    (the probabilities and the rescaling factors), fp32 work on the CUDA cores
    (``ops_per_logit`` per logit: row maximum, subtraction, row sum, conversion; ``ops_per_output``
    per accumulator entry: ``q * k2`` and its conversion, the rescaling, the ``* v2`` update) and
    shared-memory traffic (the two register-computed operands ``q * k2`` and ``P`` written and read
    back once, the ``K1`` and ``V1`` tiles read once by their GEMMs).

    Parameters
    ----------
    block_m, block_n, head_dim : int >= 1
        Query rows of the tile, keys of the long-window tile, head dimension ``D``.
    elem_bytes : int, default 2
        Bytes per element of the GEMM operands (2 for bf16).
    ops_per_logit, ops_per_output : int, default 4 and 4
        fp32 operations per logit and per accumulator entry (see above).
    device : dict, optional
        Per-SM rates per clock as in :data:`H100_SXM` (the default).

    Returns
    -------
    dict of cycles: ``tensor``, ``exp2``, ``fp32``, ``smem``; and ``useful_flops`` of the step.
    The units may overlap (the time is at least the largest entry) or run one after the other
    (at most the sum of the first three, shared memory being fed while the tensor cores work).

    Raises
    ------
    ValueError
        If a count is not an int >= 1.

    Examples
    --------
    >>> c = forward_step_cycles(64, 128, 128)
    >>> c["tensor"], c["exp2"], c["fp32"], c["smem"]
    (1024.0, 516.0, 512.0, 1024.0)
    """
    for name, v in (("block_m", block_m), ("block_n", block_n), ("head_dim", head_dim),
                    ("elem_bytes", elem_bytes), ("ops_per_logit", ops_per_logit),
                    ("ops_per_output", ops_per_output)):
        _check_int(name, v)
    dev = H100_SXM if device is None else device
    m, n, d = block_m, block_n, head_dim
    flops = 4 * m * n * d
    smem = elem_bytes * (2 * (m * d + m * n) + 2 * n * d)
    return {
        "tensor": flops / dev["tensor_flops"],
        "exp2": (m * n + m) / dev["exp2"],
        "fp32": (ops_per_logit * m * n + ops_per_output * m * d) / dev["fp32"],
        "smem": smem / dev["smem_bytes"],
        "useful_flops": flops,
    }


def forward_tflops_bounds(cycles: dict, device: dict | None = None) -> tuple:
    """``(overlapped, serial)`` TFLOPS implied by a step's cycle budget (:func:`forward_step_cycles`).

    ``overlapped``: every unit busy at once, the step takes its largest entry; ``serial``: the
    tensor cores, the exponentials and the fp32 work take turns. A kernel in which one program
    does its softmax between its GEMMs, with only the other programs on the SM to fill the gaps,
    lands near the serial figure.

    Parameters
    ----------
    cycles : dict
        As :func:`forward_step_cycles` returns.
    device : dict, optional
        Rates as in :data:`H100_SXM` (the default); its ``peak_tflops`` scales the result.

    Returns
    -------
    (overlapped, serial) : (float, float), TFLOPS.

    Examples
    --------
    >>> [round(t) for t in forward_tflops_bounds(forward_step_cycles(64, 128, 128))]
    [989, 494]
    """
    dev = H100_SXM if device is None else device
    peak = dev["peak_tflops"]
    units = ("tensor", "exp2", "fp32", "smem")
    overlapped = cycles["tensor"] / max(cycles[u] for u in units)
    serial = cycles["tensor"] / (cycles["tensor"] + cycles["exp2"] + cycles["fp32"])
    return peak * overlapped, peak * serial
