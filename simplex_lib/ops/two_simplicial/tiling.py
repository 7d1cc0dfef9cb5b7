"""How a kernel's tiles spend their work: counted, not estimated.

A Triton program of a 2-simplicial kernel owns a *tile* of query rows and multiplies them
against every first-set key row ``j`` and second-set key row ``k`` it loads. Each
``(row, j, k)`` triple costs the same multiply-adds whether or not the sliding windows let the
row's query see ``j`` and ``k``; the invisible ones are computed and then masked away. This
module counts, for the tilings the book discusses, how many triples a tile computes and how
many of them are *useful* (visible), plus two small teaching references used by the kernel
chapters: a block-by-block online softmax and the even/odd ownership of key rows in the
backward pass.

Windows follow the book's convention: query ``i`` sees key ``j`` iff ``i - w < j <= i``
(and ``j >= 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "TileWork",
    "count_tile",
    "listing_tile",
    "packed_tile",
    "listing_sequence",
    "packed_sequence",
    "listing_useful_fraction",
    "online_softmax",
    "chunk_key_range",
    "key_writers",
]


def _check_pos_int(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")


@dataclass(frozen=True)
class TileWork:
    """Work of one tile (or a sum of tiles).

    Attributes
    ----------
    rows : int
        Query rows of the tile (``(position, head)`` pairs, padding rows included).
    k1_rows : int
        Key rows of the first set the tile multiplies against.
    k2_rows : int
        Key rows of the second set the tile multiplies against.
    computed : int
        ``(row, j, k)`` triples whose logit the tile computes: ``rows * k1_rows * k2_rows``.
    useful : int
        Of those, the triples visible under the windows (the rest are masked away).
    """

    rows: int
    k1_rows: int
    k2_rows: int
    computed: int
    useful: int

    @property
    def useful_fraction(self) -> float:
        """``useful / computed`` (1.0 for an empty tile)."""
        return self.useful / self.computed if self.computed else 1.0

    @property
    def masked_fraction(self) -> float:
        """``1 - useful_fraction``: the share of the tile's arithmetic thrown away."""
        return 1.0 - self.useful_fraction

    def __add__(self, other: "TileWork") -> "TileWork":
        return TileWork(self.rows + other.rows, self.k1_rows + other.k1_rows,
                        self.k2_rows + other.k2_rows, self.computed + other.computed,
                        self.useful + other.useful)


def _visible_count(i: int, rows, w: int) -> int:
    """How many of the key positions ``rows`` query ``i`` sees with window ``w``."""
    lo, hi = i - w + 1, i  # inclusive
    return sum(1 for j in rows if lo <= j <= hi and j >= 0)


def count_tile(row_positions, k1_rows, k2_rows, w1: int, w2: int) -> TileWork:
    """Count the triples a tile computes and the visible ones among them.

    Parameters
    ----------
    row_positions : sequence of int or None
        The query position of each tile row; ``None`` marks a padding row (past the sequence
        end, or an empty head slot), which is computed but never useful.
    k1_rows, k2_rows : sequence of int
        Key positions the tile multiplies against (positions outside the sequence may appear:
        they are loaded as zeros and masked, never useful).
    w1, w2 : int
        Window lengths of the two key sets.

    Returns
    -------
    TileWork

    Examples
    --------
    >>> t = count_tile([4, 5], range(2, 6), range(4, 6), w1=3, w2=2)
    >>> t.computed, t.useful   # row 4 sees j in {2,3,4} x k in {4}; row 5: {3,4,5} x {4,5}
    (16, 9)
    """
    _check_pos_int("w1", w1)
    _check_pos_int("w2", w2)
    rows = list(row_positions)
    k1, k2 = list(k1_rows), list(k2_rows)
    useful = sum(_visible_count(i, k1, w1) * _visible_count(i, k2, w2) for i in rows if i is not None)
    return TileWork(len(rows), len(k1), len(k2), len(rows) * len(k1) * len(k2), useful)


def listing_tile(block_q: int, w1: int, w2: int, *, block_kv: int = 32,
                 q_start: int | None = None, n: int | None = None) -> TileWork:
    """Work of one tile of the paper's forward listing (sequence tiling, one head per
    tile).

    The tile holds ``block_q`` consecutive positions ``[q_start, q_start + block_q)``.
    It walks the first set one row at a time over ``[q_start - w1, q_start + block_q)``
    and the second set in blocks of ``block_kv`` rows starting at ``q_start - w2`` (both
    clipped to ``[0, n)``; a block reaching past ``n`` is still computed in full).

    Parameters
    ----------
    block_q : int
        Query positions per tile (64 in the paper's listing).
    w1, w2 : int
        Windows.
    block_kv : int
        Second-set rows per GEMM (32 in the listing).
    q_start : int, optional
        First position of the tile. Default: a tile far from the sequence start
        (``w1 + w2 + block_q``), the steady state.
    n : int, optional
        Sequence length. Default: long enough that the tile is not clipped at the end.

    Returns
    -------
    TileWork

    Examples
    --------
    >>> t = listing_tile(64, 512, 32)
    >>> t.k1_rows, t.k2_rows, round(t.masked_fraction, 3)
    (576, 96, 0.704)
    """
    sizes = (("block_q", block_q), ("w1", w1), ("w2", w2), ("block_kv", block_kv))
    for name, v in sizes:
        _check_pos_int(name, v)
    if q_start is None:
        q_start = w1 + w2 + block_q
    if n is None:
        n = q_start + 2 * block_q + block_kv
    if q_start < 0 or q_start >= n:
        raise ValueError(f"q_start must lie in [0, n), got q_start={q_start}, n={n}")
    q_end = q_start + block_q
    rows = [i if i < n else None for i in range(q_start, q_end)]
    k1 = range(max(0, q_start - w1), min(n, q_end))
    k2 = []
    for k0 in range(max(0, q_start - w2), min(n, q_end), block_kv):
        k2.extend(range(k0, k0 + block_kv))
    return count_tile(rows, k1, k2, w1, w2)


def packed_tile(heads: int, positions: int, w1: int, w2: int, *, block_n: int = 1,
                group: int | None = None, i0: int | None = None, n: int | None = None,
                tail: int = 0) -> TileWork:
    """Work of one tile that packs query heads of one KV group (the GQA-packed tiling).

    The tile has ``heads * positions`` rows: ``heads`` query heads (sharing one key/value
    head) at each of ``positions`` consecutive positions ``[i0, i0 + positions)``. It
    multiplies against the first-set rows ``[i0 - w1 + 1, hi)`` (``hi = min(i0 + positions, n)``)
    walked in whole tiles of ``block_n`` rows that end at ``hi``, and the second-set rows
    ``[max(i0 - w2 + 1, 0), hi)``. With ``positions = 1`` every row shares one window.
    With ``tail``, a remainder of at most ``tail`` first-set rows below the whole tiles is
    walked as one narrower tile, as the forward's offset walk does
    (``forward.tail_split``).

    Parameters
    ----------
    heads : int
        Head slots per position in the tile.
    positions : int
        Consecutive positions per tile.
    w1, w2 : int
        Windows (first set walked in tiles, second row by row).
    block_n : int
        First-set rows per GEMM tile.
    group : int, optional
        Real query heads per KV head; slots beyond it are padding. Default ``heads``.
    i0 : int, optional
        First position. Default: the steady state far from the sequence start.
    n : int, optional
        Sequence length. Default: long enough that nothing is clipped at the end.
    tail : int, default 0
        Width of the narrower last tile (0: whole tiles only), below ``block_n``; e.g.
        :func:`~simplex_lib.ops.two_simplicial.configs.tail_width`.

    Returns
    -------
    TileWork

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``group`` exceeds ``heads``, ``i0`` lies outside
        ``[0, n)``, or ``tail`` is negative or not below ``block_n``.

    Examples
    --------
    >>> t = packed_tile(64, 1, 512, 32, block_n=128)
    >>> t.rows, t.k1_rows, t.k2_rows, t.masked_fraction
    (64, 512, 32, 0.0)
    >>> packed_tile(1, 16, 512, 32, block_n=128).k1_rows  # 527 keys: five whole tiles
    640
    >>> packed_tile(1, 16, 512, 32, block_n=128, tail=16).k1_rows  # four and 16 rows
    528
    """
    for name, v in (("heads", heads), ("positions", positions), ("w1", w1), ("w2", w2),
                    ("block_n", block_n)):
        _check_pos_int(name, v)
    if not isinstance(tail, int) or isinstance(tail, bool) or not 0 <= tail < block_n:
        raise ValueError(f"tail must be an int in [0, block_n={block_n}), got {tail!r}")
    group = heads if group is None else group
    _check_pos_int("group", group)
    if group > heads:
        raise ValueError(f"group ({group}) cannot exceed the head slots of the tile ({heads})")
    if i0 is None:
        i0 = w1 + w2 + block_n
    if n is None:
        n = i0 + positions
    if i0 < 0 or i0 >= n:
        raise ValueError(f"i0 must lie in [0, n), got i0={i0}, n={n}")
    hi = min(i0 + positions, n)
    lo1 = max(i0 - w1 + 1, 0)
    n_whole = -(-(hi - lo1) // block_n)
    narrow = tail if 0 < (hi - lo1) % block_n <= tail else 0
    if narrow:  # the remainder as one narrower tile instead of a whole one
        n_whole -= 1
    k1 = range(hi - n_whole * block_n - narrow, hi)
    k2 = range(max(i0 - w2 + 1, 0), hi)
    rows = [p if (h < group and p < n) else None
            for p in range(i0, i0 + positions) for h in range(heads)]
    return count_tile(rows, k1, k2, w1, w2)


def listing_sequence(n: int, block_q: int, w1: int, w2: int, *, block_kv: int = 32) -> TileWork:
    """Sum of :func:`listing_tile` over every tile of a sequence of length ``n`` (one head).

    Parameters
    ----------
    n : int
        Sequence length.
    block_q : int
        Query positions per tile.
    w1, w2 : int
        Windows.
    block_kv : int
        Second-set rows per GEMM.

    Returns
    -------
    TileWork
        The sum over the ``ceil(n / block_q)`` tiles.

    Raises
    ------
    ValueError
        If ``n`` is not an int >= 1, or :func:`listing_tile` rejects a
        tile's arguments.

    Examples
    --------
    >>> listing_sequence(8, 4, 2, 2, block_kv=4).useful   # = sum_i min(2, i+1)^2
    29
    """
    _check_pos_int("n", n)
    tot = TileWork(0, 0, 0, 0, 0)
    for q0 in range(0, n, block_q):
        tot = tot + listing_tile(block_q, w1, w2, block_kv=block_kv, q_start=q0, n=n)
    return tot


def packed_sequence(n: int, heads: int, positions: int, w1: int, w2: int, *, block_n: int = 1,
                    group: int | None = None) -> TileWork:
    """Sum of :func:`packed_tile` over every tile of a sequence of length ``n`` (one KV group,
    ``ceil(group / heads)`` head blocks when the group is larger than one tile).

    Parameters
    ----------
    n : int
        Sequence length.
    heads, positions : int
        Head slots and consecutive positions per tile.
    w1, w2 : int
        Windows.
    block_n : int
        First-set rows per GEMM tile.
    group : int, optional
        Query heads per KV head (may exceed ``heads``). Default ``heads``.

    Returns
    -------
    TileWork
        The sum over every head block and every tile of positions.

    Raises
    ------
    ValueError
        If ``n`` is not an int >= 1, or :func:`packed_tile` rejects a
        tile's arguments.

    Examples
    --------
    >>> packed_sequence(8, 4, 1, 2, 2, block_n=2).useful == 4 * sum(min(2, i + 1) ** 2 for i in range(8))
    True
    """
    _check_pos_int("n", n)
    group = heads if group is None else group
    tot = TileWork(0, 0, 0, 0, 0)
    for hb in range(-(-group // heads)):
        real = min(heads, group - hb * heads)
        for i0 in range(0, n, positions):
            tot = tot + packed_tile(heads, positions, w1, w2, block_n=block_n, group=real, i0=i0, n=n)
    return tot


def listing_useful_fraction(block_q: int, w1: int, w2: int, *, block_kv: int = 32) -> float:
    """Closed form of the steady-state useful fraction of :func:`listing_tile`.

    Every row sees ``w1 * w2`` triples; the tile computes ``(w1 + block_q)`` first-set rows times
    ``block_kv * ceil((w2 + block_q) / block_kv)`` second-set rows per row.

    Parameters
    ----------
    block_q : int
        Query positions per tile.
    w1, w2 : int
        Windows.
    block_kv : int
        Second-set rows per GEMM.

    Returns
    -------
    float
        ``useful / computed`` of a tile far from the sequence ends.

    Examples
    --------
    >>> round(listing_useful_fraction(64, 512, 32), 4)
    0.2963
    """
    k2 = block_kv * math.ceil((w2 + block_q) / block_kv)
    return w1 * w2 / ((w1 + block_q) * k2)


def online_softmax(scores: torch.Tensor, values: torch.Tensor, block: int):
    """Softmax-weighted sum computed block by block, as a FlashAttention-style kernel
    does.

    Walks the last axis of ``scores`` in blocks, keeping per row a running maximum
    ``m``, a running normaliser ``l`` (sum of ``exp(s - m)``) and an unnormalised
    accumulator; when the maximum grows, the old ``l`` and accumulator are rescaled by
    ``exp(m_old - m_new)``. Entries equal to ``-inf`` are masked.

    Parameters
    ----------
    scores : Tensor ``[rows, n]``
    values : Tensor ``[n, d]``
    block : int
        Columns per step.

    Returns
    -------
    (out, lse) : Tensor ``[rows, d]``, Tensor ``[rows]``
        ``softmax(scores) @ values`` and the natural log-sum-exp of each row.

    Examples
    --------
    >>> s = torch.randn(3, 10, dtype=torch.float64)
    >>> v = torch.randn(10, 4, dtype=torch.float64)
    >>> out, lse = online_softmax(s, v, block=4)
    >>> (torch.allclose(out, torch.softmax(s, -1) @ v),
    ...  torch.allclose(lse, s.logsumexp(-1)))
    (True, True)
    """
    _check_pos_int("block", block)
    if scores.dim() != 2 or values.dim() != 2 or scores.shape[1] != values.shape[0]:
        raise ValueError("scores must be [rows, n] and values [n, d]")
    rows = scores.shape[0]
    m = torch.full((rows,), -torch.inf, dtype=scores.dtype)
    l = torch.zeros(rows, dtype=scores.dtype)  # noqa: E741
    acc = torch.zeros(rows, values.shape[1], dtype=scores.dtype)
    for c in range(0, scores.shape[1], block):
        s = scores[:, c:c + block]
        m_new = torch.maximum(m, s.max(-1).values)
        # all-masked rows
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        alpha = torch.exp(m - safe)
        p = torch.exp(s - safe[:, None])
        l = l * alpha + p.sum(-1)  # noqa: E741
        acc = acc * alpha[:, None] + p @ values[c:c + block]
        m = m_new
    return acc / l[:, None], m + torch.log(l)


def chunk_key_range(c0: int, chunk: int, w: int, n: int) -> range:
    """Key positions touched by the queries ``[c0, c0 + chunk)`` through a window ``w``.

    Parameters
    ----------
    c0 : int
        First query position of the chunk.
    chunk : int
        Query positions per chunk.
    w : int
        Window.
    n : int
        Sequence length (keys past it are left out).

    Returns
    -------
    range
        ``[max(c0 - w + 1, 0), min(c0 + chunk, n))``.

    Examples
    --------
    >>> chunk_key_range(16, 16, 4, 100)
    range(13, 32)
    """
    return range(max(c0 - w + 1, 0), min(c0 + chunk, n))


def key_writers(n: int, chunk: int, w: int) -> dict:
    """For the even/odd schedule: how many programs of each stage write each key row.

    Queries are cut into chunks of ``chunk`` positions; stage 0 runs the even chunks, stage 1
    the odd ones. A chunk accumulates the gradient of every key in :func:`chunk_key_range`.

    Parameters
    ----------
    n : int
        Sequence length.
    chunk : int
        Query positions per chunk.
    w : int
        Window of the keys.

    Returns
    -------
    writers : dict
        ``"stage0"`` and ``"stage1"``, each a list of length ``n``: the
        number of programs of that stage writing key ``k``. The schedule is
        free of write races when no entry exceeds 1, which holds iff
        ``chunk >= w - 1``.

    Raises
    ------
    ValueError
        If ``n``, ``chunk`` or ``w`` is not an int >= 1.

    Examples
    --------
    >>> max(max(v) for v in key_writers(64, 16, 17).values())
    1
    >>> max(max(v) for v in key_writers(64, 16, 18).values())
    2
    """
    for name, v in (("n", n), ("chunk", chunk), ("w", w)):
        _check_pos_int(name, v)
    out = {"stage0": [0] * n, "stage1": [0] * n}
    for c, c0 in enumerate(range(0, n, chunk)):
        for k in chunk_key_range(c0, chunk, w, n):
            out[f"stage{c % 2}"][k] += 1
    return out
