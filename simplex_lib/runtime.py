"""Where the code is running, and which problem sizes that affords.

Notebooks default to small sizes that run in seconds on a 2-core CPU. Full sizes switch on
automatically when a CUDA GPU is present, or on any machine with the one documented
environment variable ``SIMPLEX_FULL=1`` (``SIMPLEX_FULL=0`` forces small sizes on a GPU).
"""

from __future__ import annotations

import os


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency in practice
        return False
    return torch.cuda.is_available()


def full_size() -> bool:
    """True when chapters should run at full size (a GPU, or ``SIMPLEX_FULL=1``)."""
    flag = os.environ.get("SIMPLEX_FULL", "").strip()
    if flag in ("0", "false", "False"):
        return False
    if flag in ("1", "true", "True"):
        return True
    return _has_cuda()


FULL = full_size()


def pick(small, full):
    """Return ``full`` when running at full size, else ``small``.

    >>> pick(small=64, full=4096) in (64, 4096)
    True
    """
    return full if full_size() else small


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if _has_cuda() else "cpu"
