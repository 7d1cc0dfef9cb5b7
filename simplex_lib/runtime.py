"""Where the code is running, and which problem sizes that affords.

Notebooks default to small sizes that run in seconds on a 2-core CPU. Full sizes switch on
automatically when a CUDA GPU is present, or on any machine with the one documented
environment variable ``SIMPLEX_FULL=1`` (``SIMPLEX_FULL=0`` forces small sizes on a GPU).
Recorded GPU results are found by :func:`results_dir` (``SIMPLEX_RESULTS`` names them explicitly).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FULL", "full_size", "pick", "default_device", "results_dir"]


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

    Decided at each call by :func:`full_size` (a CUDA GPU, or ``SIMPLEX_FULL``).

    Parameters
    ----------
    small : object
        The value for a CPU run (seconds on 2 cores).
    full : object
        The value at full size.

    Returns
    -------
    ``small`` or ``full``, unchanged.

    Examples
    --------
    >>> pick(small=64, full=4096) in (64, 4096)
    True
    """
    return full if full_size() else small


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if _has_cuda() else "cpu"


def results_dir():
    """The folder of recorded results (``benchmarks/results`` of the book's repository).

    Chapters read the recorded GPU runs from there. Looked up, in order: the folder named by the
    environment variable ``SIMPLEX_RESULTS`` (set by a chapter's first cell after it cloned the
    repository, e.g. on Colab); beside the imported package (an editable install of a checkout,
    as ``make`` does); the working directory and its parents (a chapter opened from a checkout's
    ``notebooks/``, e.g. on Binder). A bare ``pip install`` of the package does not carry them.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        When ``SIMPLEX_RESULTS`` names no folder, or none of the places holds the records.

    Examples
    --------
    >>> results_dir().name
    'results'
    """
    named = os.environ.get("SIMPLEX_RESULTS", "").strip()
    if named:
        folder = Path(named).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"SIMPLEX_RESULTS={named!r} is not a folder")
        return folder
    candidates = [Path(__file__).resolve().parents[1], Path.cwd(), *Path.cwd().parents]
    for root in candidates:
        folder = root / "benchmarks" / "results"
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "benchmarks/results not found: the recorded results live in the book's repository. Run the "
        "chapter's first cell (it clones the repository), open the chapter from a clone, or set "
        "SIMPLEX_RESULTS to a clone's benchmarks/results (see the README)"
    )
