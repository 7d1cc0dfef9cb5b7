"""Argument checks shared by every operation (references, PyTorch paths and kernels).

Every user mistake becomes a ``ValueError`` that names the argument, never a silent wrong answer.
Batch and sequence may be empty (the operations then return empty results); heads and head_dim
may not.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "autocasting",
    "check_bshd",
    "check_qkv",
    "check_window",
    "check_causal",
    "check_head_dim3",
    "check_selection",
    "default_scale",
    "expand_kv",
    "nonfinite_rows",
    "zero_rows",
    "nan_rows",
]


def check_bshd(name: str, t) -> None:
    """``t`` must be a 4-D ``[batch, seq, heads, head_dim]`` floating tensor with ``heads, head_dim >= 1``.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    t : object
        The value to check; ``batch`` and ``seq`` may be 0.

    Raises
    ------
    ValueError
        If ``t`` is not a Tensor, not 4-D, not floating-point, or has ``heads`` or ``head_dim`` 0.

    Examples
    --------
    >>> check_bshd("q", torch.zeros(2, 3, 4))
    Traceback (most recent call last):
    ...
    ValueError: q must have shape [batch, seq, heads, head_dim], got (2, 3, 4)
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(
            f"{name} must have shape [batch, seq, heads, head_dim], got {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.shape[2] < 1 or t.shape[3] < 1:
        raise ValueError(f"{name} needs heads >= 1 and head_dim >= 1, got shape {tuple(t.shape)}")


def autocasting(t: torch.Tensor) -> bool:
    """True under ``torch.autocast`` for ``t``'s device: there mixed dtypes are intended (the
    autocast casts each op's operands), so the dtype checks stand aside.

    Parameters
    ----------
    t : Tensor
        Any tensor; only its device type (``"cpu"``, ``"cuda"``, ...) is read.

    Returns
    -------
    bool
    """
    return torch.is_autocast_enabled(t.device.type)


def check_qkv(q, named: dict) -> int:
    """Check a query against key/value tensors; return the GQA group size ``Hq // Hkv``.

    All of ``named`` must share batch, seq, heads and head_dim with each other, and batch, seq,
    head_dim, dtype and device with ``q``; their head count must divide ``q``'s.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    named : dict
        At least one key/value tensor ``[batch, seq, Hkv, head_dim]``, by argument name (the
        names appear in the errors). Under ``torch.autocast`` (:func:`autocasting`) dtypes may
        differ.

    Returns
    -------
    int, the group size ``Hq // Hkv`` (1 without grouped-query attention).

    Raises
    ------
    ValueError
        If a tensor fails :func:`check_bshd`, or the shapes, devices or dtypes disagree as above.

    Examples
    --------
    >>> check_qkv(torch.zeros(1, 5, 4, 8), {"k": torch.zeros(1, 5, 2, 8)})
    2
    """
    check_bshd("q", q)
    B, N, Hq, D = q.shape
    ref_name, ref = None, None
    for name, t in named.items():
        check_bshd(name, t)
        if t.shape[0] != B:
            raise ValueError(f"{name} has batch {t.shape[0]} but q has batch {B}")
        if t.shape[1] != N:
            raise ValueError(f"{name} has seq {t.shape[1]} but q has seq {N}")
        if t.shape[3] != D:
            raise ValueError(f"{name} has head_dim {t.shape[3]} but q has head_dim {D}")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
        if t.dtype != q.dtype and not autocasting(q):
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}; cast them to one dtype")
        if ref is None:
            ref_name, ref = name, t
        elif t.shape[2] != ref.shape[2]:
            raise ValueError(
                f"{name} has {t.shape[2]} heads but {ref_name} has {ref.shape[2]}; "
                "all key/value tensors must share one head count"
            )
    Hkv = ref.shape[2]
    if Hq % Hkv != 0:
        raise ValueError(
            f"q has {Hq} heads, which is not a multiple of the {Hkv} key/value heads of {ref_name}"
        )
    return Hq // Hkv


def check_window(name: str, w):
    """A window is ``None`` (no window) or an integer >= 1; returns it as a Python int (or None).

    Parameters
    ----------
    name : str
        The argument's name, for the error message (``"w1"``, ``"w2"``, ...).
    w : int >= 1 or None
        Any ``numbers.Integral`` except bool (numpy ints too).

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        If ``w`` is a bool, not an integer, or < 1.

    Examples
    --------
    >>> check_window("w1", 4), check_window("w2", None)
    (4, None)
    """
    if w is None:
        return None
    if isinstance(w, bool) or not isinstance(w, numbers.Integral):
        raise ValueError(f"{name} must be an int >= 1 or None, got {w!r}")
    if w < 1:
        raise ValueError(f"{name} must be >= 1 (a window of {w} shows no keys), got {w}")
    return int(w)


def check_causal(causal) -> None:
    """``causal`` must be a real bool: a string such as ``"no"`` is truthy and would run causal.

    Parameters
    ----------
    causal : bool

    Raises
    ------
    ValueError
        If ``causal`` is not a ``bool`` (``0``/``1`` included).
    """
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be True or False, got {causal!r}")


def check_head_dim3(head_dim: int, name: str = "q") -> None:
    """Determinant logits cut the head dimension of ``name`` into 3-chunks: ``head_dim % 3 == 0``.

    Parameters
    ----------
    head_dim : int
    name : str, default ``"q"``
        The tensor's name, for the error message.

    Raises
    ------
    ValueError
        If ``head_dim`` is not a multiple of 3.
    """
    if head_dim % 3 != 0:
        raise ValueError(
            f"head_dim of {name} must be a multiple of 3 for determinant logits (3-chunks), "
            f"got head_dim={head_dim}"
        )


def check_selection(name: str, idx, batch: int, seq: int) -> torch.Tensor:
    """Validate per-query key positions; return them as int64 ``[batch, seq, m]``.

    ``idx`` is ``[seq, m]`` (one selection for every batch row) or ``[batch or 1, seq, m]``.
    Every entry ``j`` of row ``i`` must satisfy ``-1 <= j <= i`` (``-1`` marks an empty slot; a
    future key would break causality) and no key may appear twice in a row.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    idx : integer Tensor ``[seq, m]`` or ``[batch or 1, seq, m]``
        Key positions selected for each query; ``m >= 1`` unless ``seq == 0``.
    batch, seq : int
        The batch size and sequence length of the queries.

    Returns
    -------
    int64 Tensor ``[batch, seq, m]`` (a batch of 1 is expanded, not copied).

    Raises
    ------
    ValueError
        If ``idx`` is not an integer tensor of one of those shapes, holds an entry below -1 or a
        future key, or selects a key twice in a row.

    Examples
    --------
    >>> check_selection("idx1", torch.tensor([[0, -1], [0, 2]]), 1, 2)
    Traceback (most recent call last):
    ...
    ValueError: idx1 selects a future key (j > i) for query 1: selections must be causal
    """
    if (not isinstance(idx, torch.Tensor) or idx.dim() not in (2, 3) or idx.is_floating_point()
            or idx.is_complex() or idx.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer Tensor [seq, m] or [batch, seq, m]")
    if idx.dim() == 2:
        idx = idx[None]
    if idx.shape[0] not in (1, batch) or idx.shape[1] != seq or (idx.shape[2] < 1 and seq > 0):
        raise ValueError(f"{name} has shape {tuple(idx.shape)}; expected [1 or {batch}, {seq}, m >= 1]")
    idx = idx.to(torch.int64)
    if (idx < -1).any():
        raise ValueError(f"{name} holds positions below -1 (-1 marks an empty slot)")
    future = idx > torch.arange(seq, device=idx.device)[None, :, None]
    if future.any():
        i = int(future.any(-1).any(0).nonzero()[0])
        raise ValueError(f"{name} selects a future key (j > i) for query {i}: selections must be causal")
    srt = idx.sort(dim=-1).values
    if ((srt[..., 1:] == srt[..., :-1]) & (srt[..., 1:] >= 0)).any():
        raise ValueError(f"{name} selects the same key twice for one query")
    return idx.expand(batch, seq, idx.shape[2])


def default_scale(head_dim: int, scale) -> float:
    """``1/sqrt(head_dim)`` unless a finite real ``scale`` is given.

    Parameters
    ----------
    head_dim : int >= 1
    scale : float or None
        The logits' multiplier; None means ``1/sqrt(head_dim)``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``scale`` is a bool, not a real number, or not finite.

    Examples
    --------
    >>> default_scale(16, None), default_scale(16, 2)
    (0.25, 2.0)
    """
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite real number or None, got {scale!r}")
    return float(scale)


def expand_kv(t: torch.Tensor, group: int) -> torch.Tensor:
    """Repeat each KV head ``group`` times so that query head ``h`` reads KV head ``h // group``.

    Parameters
    ----------
    t : Tensor ``[batch, seq, Hkv, head_dim]``
    group : int >= 1
        The group size from :func:`check_qkv`.

    Returns
    -------
    Tensor ``[batch, seq, Hkv * group, head_dim]`` (``t`` itself when ``group == 1``).

    Examples
    --------
    >>> expand_kv(torch.arange(2.0).reshape(1, 1, 2, 1), 2).flatten().tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    return t if group == 1 else t.repeat_interleave(group, dim=2)


def nonfinite_rows(*tensors: torch.Tensor) -> list[torch.Tensor] | None:
    """Which rows of each ``[B, N, H, D]`` tensor hold a NaN or an infinity.

    The kernels' backwards use it to keep a bad value local: they run on inputs with these rows
    zeroed (:func:`zero_rows`) and put NaN back on the gradients the bad rows reach
    (:func:`nan_rows`). One device-to-host sync; when every value is finite (the usual case)
    the check reads each tensor once, for its minimum and maximum.

    Parameters
    ----------
    *tensors : Tensor ``[B, N, H, D]``

    Returns
    -------
    list of bool Tensors ``[B, N, H]``, one per tensor, or ``None`` when every value is finite.

    Examples
    --------
    >>> x = torch.zeros(1, 3, 1, 2); x[0, 1, 0, 1] = float("nan")
    >>> nonfinite_rows(x)[0].flatten().tolist(), nonfinite_rows(torch.zeros(1, 3, 1, 2))
    ([False, True, False], None)
    """
    if not _any_nonfinite(tensors):
        return None
    return [~torch.isfinite(t).all(-1) for t in tensors]


def _any_nonfinite(tensors) -> bool:
    """Whether any value of ``tensors`` is NaN or infinite, from one reduction each: a NaN makes
    both the minimum and the maximum NaN, an infinity shows as one of them. (``isfinite`` per
    element took several passes and ~0.8 ms of a 46 ms backward at 16 heads, D 128, N 8192.)"""
    ends = [torch.stack(torch.aminmax(t)).float() for t in tensors if t.numel()]
    return bool(ends) and not bool(torch.isfinite(torch.cat(ends)).all())


def zero_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``t`` ``[B, N, H, D]`` with the rows marked in ``rows`` ``[B, N, H]`` set to zero.

    Parameters
    ----------
    t : Tensor ``[B, N, H, D]``
    rows : bool Tensor ``[B, N, H]``

    Returns
    -------
    Tensor like ``t``
    """
    return t.masked_fill(rows[..., None], 0)


def nan_rows(tensors, rows) -> tuple:
    """Each tensor ``[B, N, H, D]`` with its marked rows ``[B, N, H]`` set to NaN.

    Parameters
    ----------
    tensors, rows : sequences of Tensors, paired one to one

    Returns
    -------
    tuple of Tensors
    """
    return tuple(t.masked_fill(r[..., None], float("nan")) for t, r in zip(tensors, rows))
