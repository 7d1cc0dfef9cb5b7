"""Argument checks shared by the reference, determinant and kernel code.

Every user mistake becomes a ``ValueError`` that names the argument, never a silent wrong answer.
"""

from __future__ import annotations

import math

import torch


def check_bshd(name: str, t: torch.Tensor) -> None:
    """``t`` must be a 4-D ``[batch, seq, heads, head_dim]`` floating tensor."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(
            f"{name} must have shape [batch, seq, heads, head_dim], got {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_qkv(q: torch.Tensor, named: dict) -> int:
    """Check a query against key/value tensors; return the GQA group size ``Hq // Hkv``.

    All of ``named`` must share batch, seq, heads and head_dim with each other, and batch, seq
    and head_dim with ``q``; their head count must divide ``q``'s.
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
        if ref is None:
            ref_name, ref = name, t
        elif t.shape[2] != ref.shape[2]:
            raise ValueError(
                f"{name} has {t.shape[2]} heads but {ref_name} has {ref.shape[2]}; "
                "all key/value tensors must share one head count"
            )
    Hkv = ref.shape[2]
    if Hkv < 1 or Hq % Hkv != 0:
        raise ValueError(
            f"q has {Hq} heads, which is not a multiple of the {Hkv} key/value heads of {ref_name}"
        )
    return Hq // Hkv


def check_window(name: str, w) -> None:
    """A window is ``None`` (no window) or an integer >= 1."""
    if w is None:
        return
    if isinstance(w, bool) or not isinstance(w, int):
        raise ValueError(f"{name} must be an int >= 1 or None, got {w!r}")
    if w < 1:
        raise ValueError(f"{name} must be >= 1 (a window of {w} shows no keys), got {w}")


def default_scale(head_dim: int, scale) -> float:
    """``1/sqrt(head_dim)`` unless a scale is given."""
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


def expand_kv(t: torch.Tensor, group: int) -> torch.Tensor:
    """Repeat each KV head ``group`` times so that query head ``h`` reads KV head ``h // group``."""
    return t if group == 1 else t.repeat_interleave(group, dim=2)
