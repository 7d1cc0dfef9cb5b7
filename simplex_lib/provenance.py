"""One provenance schema for every recorded result: benchmarks, training runs, sweeps, checks.

A record says where and with what it was produced, so that a number quoted in the book can be
traced to a machine, a software stack and a commit of this repository.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["provenance", "git_commit"]


def git_commit() -> str | None:
    """The 40-hex commit of the checkout this package was imported from, or ``None``.

    ``None`` when the package is not in a git checkout (a wheel install, a copy without history).
    A checkout with uncommitted changes gets ``"+dirty"`` appended. ``SIMPLEX_GIT_COMMIT``, when
    set, is taken as it is: for a copy of a checkout whose ``.git`` is not the source's (a run on
    a remote GPU machine, say).
    """
    if os.environ.get("SIMPLEX_GIT_COMMIT"):
        return os.environ["SIMPLEX_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(commit) != 40:
        return None
    return commit + ("+dirty" if dirty else "")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(device: str | torch.device | None = None) -> dict:
    """Where and with what a result was produced.

    Keys: ``device`` (the GPU's name, or the CPU's), ``cpu_count``, ``date_utc`` (ISO 8601),
    ``python``, ``torch``, ``triton``, ``cuda``, ``git_commit``.  ``device`` defaults to the
    current CUDA device when there is one.

    Parameters
    ----------
    device : str or torch.device, optional
        The device the result was produced on. A CUDA device gives the GPU's name (when CUDA is
        available); anything else the CPU's (``"CPU (<processor>)"``).

    Returns
    -------
    dict with the keys above (``triton`` and ``cuda`` None when absent; ``git_commit`` from
    :func:`git_commit`).

    Examples
    --------
    >>> p = provenance("cpu")
    >>> sorted(p)
    ['cpu_count', 'cuda', 'date_utc', 'device', 'git_commit', 'python', 'torch', 'triton']
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()})"
    return {
        "device": name,
        "cpu_count": os.cpu_count(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
    }
