"""Execute the book's chapters in a plain Jupyter kernel, as a reader runs them, and record the outcome.

::

    python -m simplex_lib.check_chapters                  # every chapter, small sizes
    python -m simplex_lib.check_chapters --full           # full sizes (SIMPLEX_FULL=1), e.g. on a GPU
    python -m simplex_lib.check_chapters 03 09 --timeout 300 --out /tmp/chapters.json

Each chapter runs top to bottom in a fresh kernel started from this Python interpreter (so from
this environment, whatever other kernels are registered), with the chapter's folder as working
directory, as Colab, Binder or JupyterLab would run it. Nothing here needs the book's build
packages (jupyter-book, myst-nb): only ``nbclient`` and ``ipykernel`` (the ``notebooks`` extra).

The record (JSON) lists per chapter the status (``passed``, ``failed`` or ``timeout``), the seconds,
the first error (exception name, message and the index of the cell that raised) and the three
slowest code cells (index among all cells, seconds), with the
provenance of the run (device, versions, date, commit). The command exits with status 1 when any
chapter fails, 2 on bad arguments. Nothing in the library imports this module.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
import torch
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from .provenance import provenance
from .runtime import results_dir

__all__ = ["find_notebooks_dir", "list_chapters", "resolve_chapters", "device_slug", "default_out",
           "run_chapter", "check", "main"]

KERNEL_NAME = "simplex-check"
MESSAGE_CHARS = 500  # an error message is cut to this length in the record


def find_notebooks_dir() -> Path | None:
    """The chapters' folder: ``notebooks/`` under the working directory or beside the package."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        folder = root / "notebooks"
        if folder.is_dir() and any(folder.glob("[0-9]*.ipynb")):
            return folder
    return None


def list_chapters(folder: Path) -> list[Path]:
    """The chapter notebooks of ``folder`` (names starting with their number), in order.

    Parameters
    ----------
    folder : pathlib.Path or str
        Searched without descending (``[0-9]*.ipynb``).

    Returns
    -------
    list of pathlib.Path, sorted by name (empty when there is none).
    """
    return sorted(Path(folder).glob("[0-9]*.ipynb"))


def resolve_chapters(names: list[str], chapters: list[Path]) -> list[Path]:
    """Map names (``"3"``, ``"03"``, ``"03-two-simplicial"``, with or without ``.ipynb``) to chapters.

    Parameters
    ----------
    names : list of str
        Chapter numbers or file names (a leading folder is ignored); empty: every chapter.
    chapters : list of pathlib.Path
        The notebooks to choose from (:func:`list_chapters`).

    Returns
    -------
    list of pathlib.Path, in the order of ``names``, each chapter once.

    Raises
    ------
    ValueError
        For a name that matches no chapter, or more than one.
    """
    if not names:
        return list(chapters)
    picked = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [c for c in chapters if c.stem == stem]
        if not hits and stem.isdigit():
            hits = [c for c in chapters if c.stem.split("-")[0].isdigit()
                    and int(c.stem.split("-")[0]) == int(stem)]
        if len(hits) != 1:
            known = ", ".join(c.stem for c in chapters)
            raise ValueError(f"unknown chapter {name!r} (chapters: {known})")
        if hits[0] not in picked:
            picked.append(hits[0])
    return picked


def device_slug(name: str | None) -> str:
    """A file-name word for a device: ``"NVIDIA H200"`` -> ``"h200"``, ``None`` (no GPU) -> ``"cpu"``.

    Parameters
    ----------
    name : str or None
        A device name as ``torch.cuda.get_device_name`` gives it; a leading ``NVIDIA`` is dropped,
        and every run of other characters than letters and digits becomes one ``_``.

    Returns
    -------
    str, lower case (``"gpu"`` if nothing is left).

    Examples
    --------
    >>> device_slug("NVIDIA H100 80GB HBM3"), device_slug(None)
    ('h100_80gb_hbm3', 'cpu')
    """
    if not name:
        return "cpu"
    words = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I).lower()
    return re.sub(r"[^a-z0-9]+", "_", words).strip("_") or "gpu"


def default_out() -> Path:
    """``benchmarks/results/chapters_<gpu-or-cpu>.json`` in the book's repository."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    try:
        folder = results_dir()
    except FileNotFoundError:
        folder = Path.cwd() / "benchmarks" / "results"
    return folder / f"chapters_{device_slug(gpu)}.json"


def _kernel_manager(spec_root: Path, env: dict[str, str]) -> AsyncKernelManager:
    """A kernel manager whose only kernel is this interpreter's ipykernel, with ``env`` added."""
    spec = spec_root / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
        "env": env,
    }))
    return AsyncKernelManager(kernel_name=KERNEL_NAME,
                              kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)]))


def run_chapter(path: Path, *, full: bool = False, timeout: float = 600.0) -> dict:
    """Execute one notebook top to bottom in a fresh kernel; stop at the first error.

    Parameters
    ----------
    path : pathlib.Path
        The notebook; it runs with its folder as working directory.
    full : bool
        Full sizes (``SIMPLEX_FULL=1`` in the kernel) or small ones (``SIMPLEX_FULL=0``).
    timeout : float
        Seconds for the whole notebook, kernel start included.

    Returns
    -------
    dict
        ``chapter`` (file stem), ``status`` (``"passed"``, ``"failed"`` or ``"timeout"``),
        ``seconds``, ``cells`` (code cells run), ``error`` (``None`` or a dict with ``cell``,
        the index among all cells of the notebook, ``name`` and ``message``), ``slowest_cells``
        (up to three ``[index, seconds]`` pairs, slowest first: where a chapter's time goes).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    current = {"index": None, "code_cells": 0}

    def on_cell_execute(cell, cell_index):
        current["index"] = cell_index
        current["code_cells"] += 1

    start = time.monotonic()
    deadline = start + timeout
    status, error = "passed", None
    with tempfile.TemporaryDirectory(prefix="simplex-kernel-") as spec_root:
        km = _kernel_manager(Path(spec_root), {"SIMPLEX_FULL": "1" if full else "0"})
        client = NotebookClient(
            nb, km=km, allow_errors=False, startup_timeout=max(1, int(timeout)),
            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
            resources={"metadata": {"path": str(path.parent.resolve())}},
            on_cell_execute=on_cell_execute)
        stderr_path = Path(spec_root) / "kernel-stderr.txt"
        try:
            with open(stderr_path, "w") as stderr:  # the kernel's own chatter, read if it dies
                client.execute(stderr=stderr)
        except CellExecutionError as exc:
            status, error = "failed", {"name": exc.ename, "message": str(exc.evalue)}
        except CellTimeoutError:
            status = "timeout"
            error = {"name": "CellTimeoutError", "message": f"chapter ran past {timeout:g} s"}
        except (DeadKernelError, RuntimeError, OSError) as exc:  # kernel died or never started
            tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
            status = "failed"
            error = {"name": type(exc).__name__, "message": "\n".join([str(exc), *tail])}
    if status == "failed" and time.monotonic() >= deadline:  # e.g. the kernel did not start in time
        status = "timeout"
    if error is not None:
        error = {"cell": current["index"], "name": error["name"],
                 "message": error["message"][:MESSAGE_CHARS]}
    return {"chapter": path.stem, "status": status, "seconds": round(time.monotonic() - start, 1),
            "cells": current["code_cells"], "error": error, "slowest_cells": slowest_cells(nb)}


def slowest_cells(nb, top: int = 3) -> list:
    """The ``top`` slowest code cells of an executed notebook, as ``[index, seconds]`` pairs
    (index among all cells), from the timing nbclient writes into each cell's metadata."""
    timed = []
    for i, cell in enumerate(nb.cells):
        ex = cell.get("metadata", {}).get("execution", {})
        began, ended = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        if cell.cell_type == "code" and began and ended:
            seconds = (_when(ended) - _when(began)).total_seconds()
            timed.append([i, round(seconds, 1)])
    return sorted(timed, key=lambda t: -t[1])[:top]


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _progress(result: dict) -> str:
    line = f"{result['status']:<8}{result['seconds']:7.1f} s"
    if result["error"]:
        err = result["error"]
        first = err["message"].splitlines()[0] if err["message"] else ""
        line += f"  cell {err['cell']}: {err['name']}: {first[:120]}"
    return line


def check(chapters: list[Path], out: Path, *, full: bool = False, timeout: float = 600.0,
          update: bool = False) -> dict:
    """Run ``chapters`` one after the other and write the record to ``out`` after each one.

    With ``update``, chapters already in the record at ``out`` and not run now are kept.
    Prints one progress line per chapter. Returns the record (see the module docstring).

    Parameters
    ----------
    chapters : list of pathlib.Path
        Notebooks to run, in this order.
    out : pathlib.Path
        The JSON record, rewritten after each chapter (its folder must exist).
    full : bool, default False
        Full sizes (``SIMPLEX_FULL=1`` in the kernel).
    timeout : float, default 600
        Seconds per chapter, kernel start included.
    update : bool, default False

    Returns
    -------
    dict with ``what``, ``full_size``, ``timeout_s``, ``kernel_python``, ``provenance``,
    ``passed``, ``total``, ``seconds`` and ``chapters`` (:func:`run_chapter`'s results plus
    ``date_utc``, sorted by chapter); empty when ``chapters`` is.

    Raises
    ------
    ValueError
        If ``timeout`` is not positive.
    """
    kept = []
    if update and out.is_file():
        try:
            kept = json.loads(out.read_text()).get("chapters", [])
        except (json.JSONDecodeError, AttributeError):
            kept = []
    names = {c.stem for c in chapters}
    kept = [r for r in kept if r.get("chapter") not in names]
    results: list[dict] = []
    record: dict = {}
    for i, path in enumerate(chapters, 1):
        print(f"[{i:2d}/{len(chapters)}] {path.stem:<28} ", end="", flush=True)
        result = run_chapter(path, full=full, timeout=timeout)
        result["date_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result["git_commit"] = provenance()["git_commit"]  # rows kept by --update may be older
        results.append(result)
        print(_progress(result), flush=True)
        rows = sorted(kept + results, key=lambda r: r["chapter"])
        record = {
            "what": "every chapter executed top to bottom in a plain Jupyter kernel",
            "full_size": full,
            "timeout_s": timeout,
            "kernel_python": sys.executable,
            "provenance": provenance(),
            "passed": sum(r["status"] == "passed" for r in rows),
            "total": len(rows),
            "seconds": round(sum(r["seconds"] for r in rows), 1),
            "chapters": rows,
        }
        out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _writable(out: Path) -> str | None:
    """Why ``out`` cannot be written, or ``None``; creates its folder when missing."""
    if out.is_dir():
        return f"--out {out} is a folder"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out {out}: cannot create its folder ({exc.strerror})"
    existed = out.exists()
    try:  # try it: permission bits say nothing for root, nor for /proc-like folders
        with open(out, "a"):
            pass
    except OSError as exc:
        return f"--out {out} is not writable ({exc.strerror})"
    if not existed:
        out.unlink()
    return None


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status, 1 if a chapter failed.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``); see ``--help``.

    Returns
    -------
    int, 0 when every chapter in the record passed, else 1.

    Raises
    ------
    SystemExit
        Status 2 on bad arguments (unknown chapter, no chapters folder, a non-positive
        ``--timeout``, an unwritable ``--out``), before any chapter runs.
    """
    parser = argparse.ArgumentParser(
        prog="python -m simplex_lib.check_chapters",
        description="Execute the book's chapters in a plain Jupyter kernel (no jupyter-book needed) "
                    "and record per chapter the status, seconds and first error as JSON.")
    parser.add_argument("chapters", nargs="*",
                        help="chapters to run: number (3 or 03) or file name; default: all")
    parser.add_argument("--full", action="store_true",
                        help="full sizes (SIMPLEX_FULL=1); default: small sizes (SIMPLEX_FULL=0)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per chapter, kernel start included (default: 600)")
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="folder of the chapters (default: ./notebooks, else beside the package)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON record (default: benchmarks/results/chapters_<gpu-or-cpu>.json)")
    parser.add_argument("--update", action="store_true",
                        help="keep the chapters already in --out that are not run now")
    args = parser.parse_args(argv)

    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    folder = args.notebooks or find_notebooks_dir()
    if folder is None or not folder.is_dir():
        parser.error(f"no chapters folder {'at ' + str(folder) if folder else 'found'}: "
                     "run from the repository or pass --notebooks")
    chapters = list_chapters(folder)
    if not chapters:
        parser.error(f"no chapter notebooks in {folder}")
    try:
        chapters = resolve_chapters(args.chapters, chapters)
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or default_out()
    problem = _writable(out)
    if problem:
        parser.error(problem)

    size = "full" if args.full else "small"
    print(f"{len(chapters)} chapter(s) from {folder}, {size} sizes, kernel {sys.executable}", flush=True)
    record = check(chapters, out, full=args.full, timeout=args.timeout, update=args.update)
    print(f"record: {out}")
    failed = record["total"] - record["passed"]
    print(f"{record['passed']} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
