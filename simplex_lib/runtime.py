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


def results_dir():
    """The folder of recorded results: ``benchmarks/results`` of the checkout.

    Chapters read the recorded GPU runs from there. It is found beside the installed package
    (a clone installed with ``pip install -e .``, as ``make`` does) or above the working
    directory; a bare ``pip install`` of the package alone does not carry the records.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> results_dir().name
    'results'
    """
    from pathlib import Path

    candidates = [Path(__file__).resolve().parents[1], Path.cwd(), *Path.cwd().parents]
    for root in candidates:
        folder = root / "benchmarks" / "results"
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "benchmarks/results not found: the recorded results live in the book's repository; "
        "clone it and install with `pip install -e .` (see the README)"
    )
