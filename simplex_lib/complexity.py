"""What dense n-simplicial attention costs: analytic counts and a small measuring helper.

Dense n-simplicial attention scores every query against every n-tuple of keys, so one head holds
``L**(n+1)`` logits for a sequence of length ``L`` (``L**2`` for dot-product attention, ``L**3``
for 2-simplicial attention). This module counts those entries, the FLOPs and bytes they cost, the
largest sequence that fits a memory budget, and measures the reference implementation
(:func:`simplex_lib.reference.n_simplicial_attention`) so that the counts can be checked.

FLOP conventions (see ``PERFORMANCE.md`` of the project):

- ``"matmul"``: the two contractions that run as matrix multiplications (logits, then
  probabilities times values), 2 FLOPs per multiply-add, ``4 * head_dim`` FLOPs per logit entry.
  For ``n = 1`` and a causal mask this is the familiar ``4 * B * H * L**2 * D / 2``.
- ``"all"``: every multiplication of the naive formula as well: ``n`` multiplies and one add per
  feature for a logit, the same for the value product and its accumulation, i.e.
  ``2 * (n + 1) * head_dim`` FLOPs per entry. For ``n = 2`` this is the paper's ``6 * N * w1 * w2``
  per feature (Roy et al., 2025, section 6).

The softmax (a few FLOPs per entry, not multiplied by ``head_dim``) is left out of both.
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "GIB",
    "tuple_count",
    "dense_flops",
    "dense_memory_bytes",
    "max_dense_length",
    "log_log_slope",
    "TensorMemoryTracker",
    "measure_dense",
]

#: Bytes in one gibibyte (2**30).
GIB = 1 << 30


def _check_len_order(L, n) -> None:
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"L must be an int >= 1, got {L!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1 (1 = dot-product attention), got {n!r}")


def _check_positive_int(name: str, x) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or x < 1:
        raise ValueError(f"{name} must be an int >= 1, got {x!r}")


def tuple_count(L: int, n: int, *, causal: bool = False) -> int:
    """Logit entries of one head: the number of tuples ``(i, j_1, ..., j_n)``.

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
    _check_len_order(L, n)
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


def dense_flops(L: int, n: int, head_dim: int, *, batch: int = 1, heads: int = 1,
                causal: bool = False, convention: str = "matmul") -> int:
    """FLOPs of one forward pass of dense n-simplicial attention.

    ``flops_per_entry * batch * heads * tuple_count(L, n, causal=causal)``, where
    ``flops_per_entry`` is ``4 * head_dim`` (``convention="matmul"``) or
    ``2 * (n + 1) * head_dim`` (``convention="all"``); see the module docstring.
    ``causal=False`` counts what a dense einsum computes (masked entries included);
    ``causal=True`` what a kernel that skips masked entries computes.

    Parameters
    ----------
    L, n, head_dim : int
    batch, heads : int
    causal : bool
    convention : ``"matmul"`` or ``"all"``

    Returns
    -------
    int

    Examples
    --------
    >>> dense_flops(1024, 1, 128, causal=True) / (4 * 1024**2 * 128 / 2)  # dot attention
    1.0009765625
    >>> dense_flops(8, 2, 4, convention="all") == 6 * 8**3 * 4
    True
    """
    _check_len_order(L, n)
    for name, x in (("head_dim", head_dim), ("batch", batch), ("heads", heads)):
        _check_positive_int(name, x)
    if convention == "matmul":
        per_entry = 4 * head_dim
    elif convention == "all":
        per_entry = 2 * (n + 1) * head_dim
    else:
        raise ValueError(f"convention must be 'matmul' or 'all', got {convention!r}")
    return per_entry * batch * heads * tuple_count(L, n, causal=causal)


def dense_memory_bytes(L: int, n: int, head_dim: int, *, batch: int = 1, heads: int = 1,
                       bytes_per_element: int = 4, live_copies: int = 2,
                       breakdown: bool = False):
    """Bytes a dense (materialising) implementation holds at its peak.

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
    _check_len_order(L, n)
    for name, x in (("head_dim", head_dim), ("batch", batch), ("heads", heads),
                    ("bytes_per_element", bytes_per_element), ("live_copies", live_copies)):
        _check_positive_int(name, x)
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


def log_log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``p`` of ``y ~ x**p``.

    Examples
    --------
    >>> round(log_log_slope([2, 4, 8], [12, 48, 192]), 6)
    2.0
    """
    xs = [float(a) for a in x]
    ys = [float(b) for b in y]
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("x and y must have the same length, at least 2")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("x and y must be positive (their logarithms are taken)")
    lx, ly = [math.log(a) for a in xs], [math.log(b) for b in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("x must contain at least two distinct values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


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
        :func:`simplex_lib.reference.n_simplicial_attention`.

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
    _check_positive_int("n", n)
    for name, x in (("head_dim", head_dim), ("batch", batch), ("heads", heads),
                    ("repeats", repeats)):
        _check_positive_int(name, x)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("lengths must hold at least one sequence length")
    for L in lengths:
        _check_len_order(L, n)
    if attention is None:
        from .reference import n_simplicial_attention as attention

    if threads is not None:
        _check_positive_int("threads", threads)
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
