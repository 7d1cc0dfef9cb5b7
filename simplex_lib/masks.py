"""The one mask module: which keys (and key pairs) a query may see.

Conventions used everywhere in the library:

- **Windows.** Key ``j`` is visible to query ``i`` iff ``i - w < j <= i`` (:func:`sliding_window_mask`;
  ``w = None`` is plain causal). 2-simplicial attention with windows ``(w1, w2)`` lets query ``i``
  see the pairs ``(j, k)`` of a ``w1 x w2`` rectangle ending at the diagonal
  (:func:`window_pair_mask`).
- **Top-k indices.** A selection is an integer tensor ``[batch, seq, heads, k]`` of key positions;
  ``-1`` marks an empty slot. Query ``i`` has only ``i + 1`` past keys, so early rows hold
  ``min(k, i + 1)`` positions followed by ``-1`` padding; validity is ``idx >= 0``. Positions are
  causal (``<= i``) and appear at most once per row (:func:`check_topk_index`). The selected key
  pairs of each query form :func:`topk_pair_mask`; a sliding window written as such a selection
  is :func:`window_indices`.
"""

from __future__ import annotations

import torch

__all__ = ["sliding_window_mask", "window_pair_mask", "window_indices", "check_topk_index", "topk_pair_mask"]


def _check_int(name: str, x, minimum: int = 1) -> None:
    if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {x!r}")


def _check_window(name: str, w) -> None:
    if w is not None:
        _check_int(name, w)


def sliding_window_mask(n: int, w: int | None = None, *, device=None) -> torch.Tensor:
    """Bool ``[n, n]``: key ``j`` is visible to query ``i`` iff ``i - w < j <= i``.

    Parameters
    ----------
    n : int
        Sequence length (``>= 1``).
    w : int or None
        Window length (``>= 1``); ``None`` means plain causal (no window).
    device : torch device, optional

    Returns
    -------
    Bool Tensor ``[n, n]`` indexed ``[i, j]``.

    Examples
    --------
    >>> sliding_window_mask(4, 2).int()
    tensor([[1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    _check_int("n", n)
    _check_window("w", w)
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    vis = j <= i
    if w is not None:
        vis = vis & (j > i - w)
    return vis


def window_pair_mask(n: int, w1: int | None = None, w2: int | None = None, *, query: int | None = None,
                     device=None) -> torch.Tensor:
    """Which key pairs ``(j, k)`` sliding windows ``(w1, w2)`` let a query see.

    Parameters
    ----------
    n : int
        Sequence length.
    w1, w2 : int or None
        Windows of the first and second key set (``None`` = causal, no window).
    query : int, optional
        If given, return the 2-D mask ``[j, k]`` of this query only (a ``min(w1, i+1) x
        min(w2, i+1)`` rectangle ending at the diagonal); otherwise the full ``[i, j, k]`` mask.
    device : torch device, optional

    Returns
    -------
    Bool Tensor ``[n, n]`` (with ``query``) or ``[n, n, n]``.

    Examples
    --------
    >>> int(window_pair_mask(8, 3, 2, query=5).sum())
    6
    >>> window_pair_mask(8, 3, 2).shape
    torch.Size([8, 8, 8])
    """
    _check_int("n", n)
    _check_window("w1", w1)
    _check_window("w2", w2)
    if query is not None and (isinstance(query, bool) or not isinstance(query, int) or not 0 <= query < n):
        raise ValueError(f"query must be an int in [0, {n}), got {query!r}")
    m1 = sliding_window_mask(n, w1, device=device)
    m2 = sliding_window_mask(n, w2, device=device)
    if query is None:
        return m1[:, :, None] & m2[:, None, :]
    return m1[query][:, None] & m2[query][None, :]



def window_indices(n: int, w: int, *, device=None) -> torch.Tensor:
    """The key positions of each query's causal sliding window, as a top-k selection (``-1`` padded).

    Row ``i`` holds ``i - w + 1, ..., i``; positions before the start of the sequence are ``-1``.
    Add batch and head axes (``idx[None, :, None, :]``) for the ``[batch, seq, heads, k]`` layout.

    Parameters
    ----------
    n : int
        Sequence length (``>= 0``; an empty sequence gives an empty ``[0, 0]`` selection).
    w : int
        Window length (``>= 1``); a window longer than ``n`` is clipped to ``n``.

    Returns
    -------
    int64 Tensor ``[n, min(w, n)]``

    Examples
    --------
    >>> window_indices(3, 2).tolist()
    [[-1, 0], [0, 1], [1, 2]]
    >>> tuple(window_indices(0, 3).shape)
    (0, 0)
    """
    _check_int("n", n, minimum=0)
    if w is None:
        raise ValueError("w must be an int >= 1 here (use w = n for a full causal window)")
    _check_int("w", w)
    w = min(w, n)
    idx = torch.arange(n, device=device)[:, None] - (w - 1) + torch.arange(w, device=device)
    return torch.where(idx >= 0, idx, torch.full_like(idx, -1))


def check_topk_index(name: str, idx, *, batch: int, seq: int, heads: int,
                     kv_heads: int | None = None) -> torch.Tensor:
    """Validate a top-k index tensor and return it as int64, broadcast to ``[batch, seq, heads, k]``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    idx : int Tensor ``[batch or 1, seq, h, k]``
        Selected key positions, ``-1`` for an empty slot (see the module docstring).
    batch, seq, heads : int
        The batch, the sequence length and the number of query heads ``Hq``.
    kv_heads : int, optional
        Key/value heads ``Hkv``. With it, ``h`` must be 1, ``Hkv`` or ``Hq``; without it, 1 or any
        divisor of ``Hq``. A selection with ``h`` heads is spread by the GQA rule: query head ``g``
        uses set ``g // (Hq // h)``.

    Returns
    -------
    int64 Tensor ``[batch, seq, heads, k]`` (an expanded view where possible).

    Raises
    ------
    ValueError
        naming ``name``: not an integer 4-D tensor, a mismatched batch, sequence or head count,
        ``k < 1``, a position outside ``[-1, seq)``, a future key (``j > i``) or a repeated key.

    Examples
    --------
    >>> idx = torch.tensor([[[[0, -1]], [[1, 0]]]])  # [1, 2, 1, 2]
    >>> check_topk_index("idx", idx, batch=3, seq=2, heads=4).shape
    torch.Size([3, 2, 4, 2])
    """
    for arg, v, least in (("batch", batch, 0), ("seq", seq, 0), ("heads", heads, 1)):
        _check_int(arg, v, minimum=least)
    if kv_heads is not None:
        _check_int("kv_heads", kv_heads)
    if not isinstance(idx, torch.Tensor) or idx.dim() != 4:
        raise ValueError(f"{name} must be an integer Tensor [batch, seq, heads, k], got "
                         f"{tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer positions, got {idx.dtype}")
    b, n, h, kk = idx.shape
    if b not in (1, batch):
        raise ValueError(f"{name} has batch {b}; expected 1 or {batch}")
    if n != seq:
        raise ValueError(f"{name} has seq {n}; expected {seq}")
    allowed = (h in (1, kv_heads, heads)) if kv_heads is not None else (heads % h == 0 if h else False)
    if not allowed:
        expect = (f"1, the {kv_heads} key/value heads or the {heads} query heads" if kv_heads is not None
                  else f"1 or a divisor of the {heads} query heads")
        raise ValueError(f"{name} has {h} heads; expected {expect}")
    if kk < 1:
        raise ValueError(f"{name} must select k >= 1 keys per query, got k = {kk}")
    idx = idx.to(torch.int64)
    if (idx < -1).any() or (idx >= seq).any():
        raise ValueError(f"{name} holds positions outside [-1, {seq}) (-1 marks an empty slot)")
    i = torch.arange(seq, device=idx.device)[None, :, None, None]
    if (idx > i).any():
        raise ValueError(f"{name} selects a future key (j > i): top-k selection must be causal")
    srt = idx.sort(dim=-1).values
    if ((srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] >= 0)).any():
        raise ValueError(f"{name} selects the same key twice for one query")
    if h not in (1, heads):
        idx = idx.repeat_interleave(heads // h, dim=2)
    return idx.expand(batch, seq, heads, kk)


def topk_pair_mask(idx1, idx2=None, *, heads: int | None = None) -> torch.Tensor:
    """The dense pair mask equivalent to a top-k selection (small ``seq`` only: ``seq^3`` entries).

    ``mask[b, h, i, j, k]`` is True iff ``j`` is among ``idx1[b, i, h]`` and ``k`` among
    ``idx2[b, i, h]`` (``idx2`` defaults to ``idx1``, the shared selection). Both selections are
    validated by :func:`check_topk_index`.

    Parameters
    ----------
    idx1, idx2 : int Tensor ``[batch or 1, seq, h, k]`` with ``-1`` padding (their own ``k`` each)
    heads : int, optional
        Query heads ``Hq`` (default: the larger head count of the two selections); a selection
        with fewer heads is spread by the GQA rule (set ``g // (Hq // h)`` for query head ``g``),
        as in :func:`simplex_lib.ops.topk.reference.topk_two_simplicial_attention`.

    Returns
    -------
    Bool Tensor ``[batch, heads, seq, seq, seq]`` (``batch`` the larger of the two batches).

    Examples
    --------
    >>> idx = torch.tensor([[[[0, -1]], [[0, 1]]]])  # [1, 2, 1, 2]
    >>> topk_pair_mask(idx).sum().item()  # 1 pair for query 0, 4 for query 1
    5
    """
    idx2 = idx1 if idx2 is None else idx2
    for name, ix in (("idx1", idx1), ("idx2", idx2)):
        if not isinstance(ix, torch.Tensor) or ix.dim() != 4:
            raise ValueError(f"{name} must be an integer Tensor [batch, seq, heads, k], got "
                             f"{tuple(ix.shape) if isinstance(ix, torch.Tensor) else type(ix).__name__}")
    if heads is None:
        heads = max(idx1.shape[2], idx2.shape[2])
    _check_int("heads", heads)
    batch, seq = max(idx1.shape[0], idx2.shape[0]), idx1.shape[1]
    if seq < 1:
        raise ValueError("idx1 must have seq >= 1")
    a = check_topk_index("idx1", idx1, batch=batch, seq=seq, heads=heads)
    b = check_topk_index("idx2", idx2, batch=batch, seq=seq, heads=heads)

    def one_hot(idx):  # [B, N, H, k] -> [B, H, i, j]; the padding slot n is dropped
        sel = torch.zeros(*idx.shape[:3], seq + 1, dtype=torch.bool, device=idx.device)
        sel.scatter_(-1, torch.where(idx >= 0, idx, torch.full_like(idx, seq)), True)
        return sel[..., :seq].permute(0, 2, 1, 3)

    return one_hot(a)[..., :, None] & one_hot(b)[..., None, :]
