"""Reading and plotting the recorded kernel benchmarks (``benchmarks/results/*.json``).

The records are written on a GPU machine by :mod:`simplex_lib.bench` (``python -m
simplex_lib.bench``) and by the top-k benchmark. A result file is a JSON object
``{"meta": {...}, "records": [...]}``: ``meta`` names the GPU, the torch and Triton versions and
the date (older files as ``gpu``/``date``, newer ones in the schema of
:func:`simplex_lib.provenance.provenance`, ``device``/``date_utc``; both are read); each record is
one timed configuration with at least ``group`` (``"kernel"``,
``"sdpa"``, ``"reference"``, ...), ``mode`` (``"fwd"``, ``"bwd"``, ``"fwdbwd"``), the shape
(``B``, ``N``, ``Hq``, ``Hkv``, ``D``, and ``w1``, ``w2`` for windowed attention), ``ms`` and
``tflops``; a record that failed carries ``error`` instead of timings. Files of any other shape
(correctness logs, say) are skipped.

FLOP conventions are those of :mod:`simplex_lib.timing`: forward ``4 * B * Hq * N * D * w1 * w2``,
backward 2.5x, forward+backward 3.5x; causal dot attention ``4 * B * H * N^2 * D / 2``.
"""

from __future__ import annotations

import glob
import json
import os
import re
import statistics
import textwrap

import torch
from matplotlib.lines import Line2D

from . import timing, viz

__all__ = [
    "load_results",
    "provenance",
    "flat_records",
    "sweep_runs",
    "mean_by",
    "select",
    "time_ratios",
    "pair_sdpa",
    "plot_tflops_vs_seqlen",
    "plot_windows",
    "plot_head_dims",
    "plot_gqa_grid",
    "plot_memory",
    "plot_topk_vs_window",
    "summary_rows",
    "grid_rows",
    "markdown_table",
    "walk_comparison",
    "remeasure",
    "repeat_spread",
    "waves",
    "us_per_token",
    "sdpa_per_token",
    "slope_through_origin",
    "plot_per_token",
    "plot_occupancy",
    "ncu_metric",
]

_META_KEYS = ("gpu", "torch", "triton", "date")


def _meta_view(meta: dict) -> dict:
    """``meta`` with ``gpu`` and ``date`` filled in from the provenance schema's ``device`` and
    ``date_utc`` when only those are present.

    >>> _meta_view({"device": "NVIDIA H200", "date_utc": "2026-12-01T00:00:00Z"})["gpu"]
    'NVIDIA H200'
    """
    out = dict(meta)
    out.setdefault("gpu", meta.get("device"))
    out.setdefault("date", meta.get("date_utc"))
    return {k: v for k, v in out.items() if v is not None}


def load_results(root: str = "benchmarks/results", pattern: str = "*.json", recursive: bool = False) -> list:
    """Benchmark result files in ``root`` (sub-folders too with ``recursive``), sorted by path.

    Parameters
    ----------
    root : str
        Folder to search; a missing folder gives an empty list.
    pattern : str
        File-name pattern.
    recursive : bool
        Also search sub-folders (``raw/`` holds smoke tests and logs, left out by default).

    Returns
    -------
    list of dict
        Each ``{"path", "meta", "records", ...}`` (other top-level keys of the file, such as a
        ``correctness`` list, are kept); files that are not JSON, have no ``records`` list of
        dicts, or no record with ``group`` and ``mode`` (other experiments' logs) are skipped.

    Examples
    --------
    >>> load_results("/nonexistent")
    []
    """
    out = []
    where = os.path.join(root, "**", pattern) if recursive else os.path.join(root, pattern)
    for path in sorted(glob.glob(where, recursive=recursive)):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        recs = data.get("records") if isinstance(data, dict) else None
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            continue
        if not any("group" in r and "mode" in r for r in recs):  # another kind of record file
            continue
        meta = _meta_view(data.get("meta") if isinstance(data.get("meta"), dict) else {})
        out.append({**data, "path": path, "meta": meta, "records": recs})
    return out


def provenance(result: dict, width: int | None = None, indent: str = "") -> str:
    """One line naming where and when a result was measured.

    Parameters
    ----------
    result : dict
        A result file, from :func:`load_results` or read as it is (its ``meta``: ``gpu`` or
        ``device``, ``torch``, ``triton``, ``date`` or ``date_utc``, and ``git_commit`` when
        recorded; missing ones are named unknown).
    width : int, optional
        Wrap the line at this many columns (a chapter's output box holds about 84), the
        continuation lines indented two more spaces; default: one line.
    indent : str, default ""
        Put before the (first) line.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``width`` is given and leaves fewer than 20 columns after the indent.

    Examples
    --------
    A record merged from several calls (``meta["calls"]``, each with its ``git_commit`` and
    ``windows``) names each call's commit and the windows it measured.

    >>> provenance({"meta": {"gpu": "NVIDIA H100", "torch": "2.11", "triton": "3.6",
    ...                      "date": "2026-11-22T14:30:40"}})
    'NVIDIA H100, torch 2.11, Triton 3.6, measured 2026-11-22'
    >>> two = {"meta": {"gpu": "G", "torch": "t", "triton": "r", "date": "2026-12-04",
    ...                 "calls": [{"windows": "512x32", "git_commit": "46dec57"},
    ...                           {"windows": "128x128", "git_commit": "61d9799"}]}}
    >>> provenance(two)
    'G, torch t, Triton r, measured 2026-12-04, commits 46dec57 (512x32), 61d9799 (128x128)'
    >>> print(provenance(two, width=46))
    G, torch t, Triton r, measured 2026-12-04,
      commits 46dec57 (512x32), 61d9799 (128x128)
    """
    if width is not None and width - len(indent) < 20:
        raise ValueError(f"width must leave at least 20 columns after the indent, got {width!r}")
    m = _meta_view(result.get("meta", {}))
    date = str(m["date"])[:10] if m.get("date") else "unknown date"
    commit = f", commit {m['git_commit'][:7]}" if m.get("git_commit") else ""
    calls = [c for c in m.get("calls") or () if isinstance(c, dict) and c.get("git_commit")]
    if len({c["git_commit"] for c in calls}) > 1:
        by_commit: dict = {}
        for c in calls:
            by_commit.setdefault(c["git_commit"][:7], []).append(str(c.get("windows", "?")))
        commit = ", commits " + ", ".join(f"{k} ({', '.join(v)})" for k, v in by_commit.items())
    line = (f"{m.get('gpu', 'unknown GPU')}, torch {m.get('torch', '?')}, "
            f"Triton {m.get('triton', '?')}, measured {date}{commit}")
    if width is None:
        return indent + line
    return textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)


def sweep_runs(record: dict) -> list:
    """The runs of a launch-sweep record (``benchmarks.fwd_sweep`` / ``bwd_sweep``), flat.

    A sweep record holds ``rows`` (one per shape: ``G``, ``D``, ``w1``, ``w2``, ...), each with
    its ``runs`` (the default first, then each configuration or variant); a record merged from
    several calls holds them under ``calls``. Each returned run is a copy with its shape's keys
    added (the run's own keys win).

    Parameters
    ----------
    record : dict
        A sweep record as read from its JSON file.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> rec = {"calls": [{"rows": [{"G": 1, "D": 64, "runs": [{"cfg": "a", "tflops": 2.0}]}]}]}
    >>> sweep_runs(rec)
    [{'G': 1, 'D': 64, 'cfg': 'a', 'tflops': 2.0}]
    """
    calls = record.get("calls") or [record]
    out = []
    for call in calls:
        for row in call.get("rows", []):
            shape = {k: v for k, v in row.items() if k != "runs"}
            out.extend({**shape, **run} for run in row.get("runs", []))
    return out


def mean_by(runs: list, keys: tuple, value: str = "tflops") -> dict:
    """The mean of ``value`` over runs that share ``keys``, e.g. a probe's interleaved rounds.

    Runs without ``value`` (a launch that failed) are left out.

    Parameters
    ----------
    runs : list of dict
        Flat runs, e.g. from :func:`sweep_runs`.
    keys : tuple of str
        The fields that name a group.
    value : str, default ``"tflops"``

    Returns
    -------
    dict ``{tuple of key values: float}``

    Examples
    --------
    >>> mean_by([{"D": 64, "name": "a", "ms": 1.0}, {"D": 64, "name": "a", "ms": 3.0},
    ...          {"D": 64, "name": "b", "error": "out of memory"}], ("D", "name"), "ms")
    {(64, 'a'): 2.0}
    """
    groups: dict = {}
    for r in runs:
        if value in r:
            groups.setdefault(tuple(r[k] for k in keys), []).append(r[value])
    return {k: sum(v) / len(v) for k, v in groups.items()}


def flat_records(results: list, ok_only: bool = True) -> list:
    """All records of several result files, each tagged with its file's provenance.

    Each returned record is a copy with the keys ``path``, ``gpu``, ``torch``, ``triton`` and
    ``date`` added (from the file's ``meta``). With ``ok_only`` records carrying ``error`` or no
    ``tflops`` are dropped.

    Parameters
    ----------
    results : list of dict
        Result files from :func:`load_results`.
    ok_only : bool, default True
        Drop failed records (``error``, or no numeric ``tflops``).

    Returns
    -------
    list of dict
        The records of every file, in file order.

    Examples
    --------
    >>> res = [{"path": "a.json", "meta": {"gpu": "H100"},
    ...         "records": [{"group": "kernel", "tflops": 1.0}, {"group": "kernel", "error": "x"}]}]
    >>> [(r["gpu"], r["tflops"]) for r in flat_records(res)]
    [('H100', 1.0)]
    """
    out = []
    for res in results:
        meta = res.get("meta", {})
        for r in res.get("records", []):
            if ok_only and ("error" in r or not isinstance(r.get("tflops"), (int, float))):
                continue
            out.append({**r, "path": res.get("path"), **{k: meta.get(k) for k in _META_KEYS}})
    return out


def select(records: list, **where) -> list:
    """Records whose fields equal every ``where`` item (a missing field never matches).

    Parameters
    ----------
    records : list of dict
    **where
        Field values to match, e.g. ``group="kernel", mode="fwd"``.

    Returns
    -------
    list of dict
        The matching records, in their order.

    Examples
    --------
    >>> select([{"mode": "fwd", "D": 64}, {"mode": "bwd", "D": 64}], mode="fwd")
    [{'mode': 'fwd', 'D': 64}]
    """
    return [r for r in records if all(k in r and r[k] == v for k, v in where.items())]


def _gqa(r) -> int:
    return r["Hq"] // r["Hkv"] if r.get("Hkv") else 1


def pair_sdpa(records: list) -> list:
    """Match each windowed-kernel record with the SDPA record timed at equal FLOPs.

    :func:`simplex_lib.timing.run_benchmark` times causal SDPA with the same batch, query heads,
    head dimension and mode at the context ``n = sqrt(2 N w1 w2)``, and tags it
    ``paired_with = [w1, w2]``. Returns ``(kernel_record, sdpa_record)`` pairs.

    Parameters
    ----------
    records : list of dict
        Kernel (``group="kernel"``) and SDPA records, e.g. from :func:`flat_records`.

    Returns
    -------
    list of tuple
        ``(kernel_record, sdpa_record)``, the first matching SDPA record (context within one
        token of ``n``) for each kernel record that has one.

    Examples
    --------
    >>> k = dict(group="kernel", mode="fwd", B=2, N=8192, Hq=64, Hkv=1, D=128, w1=512, w2=32, tflops=300.0)
    >>> s = dict(group="sdpa", mode="fwd", B=2, N=16384, Hq=64, Hkv=64, D=128, paired_with=[512, 32], tflops=320.0)
    >>> [(a["N"], b["N"]) for a, b in pair_sdpa([k, s])]
    [(8192, 16384)]
    """
    sd = [r for r in records if r.get("group") == "sdpa" and r.get("paired_with")]
    out = []
    for r in records:
        if r.get("group") != "kernel":
            continue
        n_eq = round((2.0 * r["N"] * r["w1"] * r["w2"]) ** 0.5)
        for s in sd:
            if (list(s["paired_with"]) == [r["w1"], r["w2"]] and s.get("mode") == r.get("mode")
                    and s.get("B") == r.get("B") and s.get("Hq") == r.get("Hq")
                    and s.get("D") == r.get("D") and abs(s.get("N", -10) - n_eq) <= 1):
                out.append((r, s))
                break
    return out


_COLORS = ("simplicial", "accent", "accent2", "accent3", "dot", "reference")


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no record of {what}", ha="center", va="center", transform=ax.transAxes)


def plot_tflops_vs_seqlen(ax, records: list, mode: str = "fwd", *, w1=None, w2=None, D=None) -> int:
    """TFLOPS of the kernel against sequence length, one line per (windows, D, GQA ratio), with
    equal-FLOP causal SDPA dashed in the same colour. Returns the number of lines drawn.

    The dashed SDPA lines share one legend entry (a grey proxy): each is drawn in the colour of
    the kernel line it is paired with.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Records from :func:`flat_records`.
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.
    w1, w2, D : int, optional
        Keep only these windows / head dimension.

    Returns
    -------
    int
        The number of kernel lines.
    """
    recs = [r for r in select(records, group="kernel", mode=mode)
            if (w1 is None or r.get("w1") == w1) and (w2 is None or r.get("w2") == w2)
            and (D is None or r.get("D") == D)]
    keys = sorted({(r["w1"], r["w2"], r["D"], _gqa(r)) for r in recs})
    pairs = pair_sdpa(records)
    any_sdpa = False
    for c, key in zip([viz.PALETTE[k] for k in _COLORS] * 8, keys):
        mine = sorted((r for r in recs if (r["w1"], r["w2"], r["D"], _gqa(r)) == key), key=lambda r: r["N"])
        ax.plot([r["N"] for r in mine], [r["tflops"] for r in mine], "o-", color=c,
                label=f"{key[0]}x{key[1]}, D={key[2]}, G={key[3]}")
        sd = sorted(((a["N"], b["tflops"]) for a, b in pairs if a in mine), key=lambda t: t[0])
        if sd:
            ax.plot(*zip(*sd), "s--", color=c, alpha=0.6)
            any_sdpa = True
    ax.set_xscale("log", base=2)
    viz.label(ax, "sequence length n (tokens)", "TFLOPS (tensor-core count)", f"{mode}, bf16")
    if keys:
        handles, labels = ax.get_legend_handles_labels()
        if any_sdpa:  # one entry for every dashed line: each has the colour of its kernel line
            handles.append(Line2D([], [], color="grey", ls="--", marker="s", alpha=0.6))
            labels.append("causal SDPA at equal FLOPs (dashed)")
        ax.legend(handles, labels, fontsize=7)
    else:
        _no_data(ax, f"{mode} kernel timings")
    return len(keys)


def plot_windows(ax, records: list, mode: str = "fwd", *, N=None, D=None) -> int:
    """Bars of kernel TFLOPS per window shape (largest GQA ratio, given ``N`` and ``D`` or the
    most common ones). Returns the number of bars.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Records from :func:`flat_records`.
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.
    N : int, optional
        Sequence length. Default: the length with the most kernel records of ``mode``.
    D : int, optional
        Head dimension. Default: the largest recorded.

    Returns
    -------
    int
        The number of bars.
    """
    recs = select(records, group="kernel", mode=mode)
    if recs:
        N = N if N is not None else max({r["N"] for r in recs}, key=lambda n: sum(r["N"] == n for r in recs))
        D = D if D is not None else max(r["D"] for r in recs)
        recs = [r for r in recs if r["N"] == N and r["D"] == D]
    if recs:
        G = max(_gqa(r) for r in recs)
        recs = sorted((r for r in recs if _gqa(r) == G), key=lambda r: (r["w1"] * r["w2"], r["w1"]))
        names = [f"{r['w1']}x{r['w2']}" for r in recs]
        ax.bar(range(len(recs)), [r["tflops"] for r in recs], color=viz.PALETTE["simplicial"])
        ax.set_xticks(range(len(recs)), names, rotation=30)
        viz.label(ax, "windows w1 x w2", "TFLOPS (tensor-core count)", f"{mode}, N={N}, D={D}, G={G}")
        return len(recs)
    viz.label(ax, "windows w1 x w2", "TFLOPS (tensor-core count)", mode)
    _no_data(ax, f"{mode} window sweeps")
    return 0


def plot_head_dims(ax, records: list, mode: str = "fwd", *, w1=512, w2=32) -> int:
    """Kernel TFLOPS against head dimension at windows ``w1 x w2``, one line per (N, GQA ratio).
    Returns the number of lines.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Records from :func:`flat_records`.
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.
    w1, w2 : int, default 512 and 32
        The windows.

    Returns
    -------
    int
        The number of lines.
    """
    recs = select(records, group="kernel", mode=mode, w1=w1, w2=w2)
    keys = sorted({(r["N"], _gqa(r)) for r in recs})
    for c, key in zip([viz.PALETTE[k] for k in _COLORS] * 8, keys):
        pts = sorted((r["D"], r["tflops"]) for r in recs if (r["N"], _gqa(r)) == key)
        ax.plot(*zip(*pts), "o-", color=c, label=f"N={key[0]}, G={key[1]}")
    viz.label(ax, "head dimension D", "TFLOPS (tensor-core count)", f"{mode}, {w1}x{w2}")
    if keys:
        ax.legend(fontsize=7)
    else:
        _no_data(ax, f"{mode} head-dimension sweeps")
    return len(keys)


def plot_gqa_grid(ax, records: list, mode: str = "fwd", *, D: int = 128, N: int = 8192,
                  legend: bool = True) -> int:
    """Bars of kernel TFLOPS per GQA ratio, one bar per window shape, with causal SDPA at equal
    FLOPs as a dashed line (the median over the same shapes). Returns the number of bars.

    The grid of ``python -m simplex_lib.bench --shapes`` (:data:`simplex_lib.timing.SHAPE_GRID`):
    how far a model's head layout moves the kernel from the paper's (GQA 64).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Kernel and SDPA records from :func:`flat_records`.
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.
    D : int, default 128
        Head dimension.
    N : int, default 8192
        Sequence length of the kernel records.
    legend : bool, default True
        Draw the legend (one panel of a grid of them is enough).

    Returns
    -------
    int
        The number of bars.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> recs = [dict(group="kernel", mode="fwd", B=2, N=8192, Hq=hq, Hkv=hkv, D=128, w1=512, w2=32,
    ...              tflops=t) for hq, hkv, t in ((16, 16, 190.0), (64, 1, 440.0))]
    >>> fig, ax = plt.subplots()
    >>> plot_gqa_grid(ax, recs)
    2
    >>> plt.close(fig)
    """
    recs = [r for r in select(records, group="kernel", mode=mode, D=D, N=N) if "tflops" in r]
    if not recs:
        viz.label(ax, "query heads per KV head", "TFLOPS (tensor-core count)", f"{mode}, d = {D}")
        _no_data(ax, f"{mode} shape grids at d = {D}")
        return 0
    ratios = sorted({_gqa(r) for r in recs})
    windows = sorted({(r["w1"], r["w2"]) for r in recs}, key=lambda w: (-w[0], w[1]))
    width = 0.8 / len(windows)
    sd = [b["tflops"] for a, b in pair_sdpa(recs + select(records, group="sdpa")) if "tflops" in b]
    if sd:
        ax.axhline(statistics.median(sd), color=viz.PALETTE["dot"], linestyle="--",
                   label="causal SDPA, equal FLOPs")
    bars = 0
    for i, (w1, w2) in enumerate(windows):
        pts = [(x, r["tflops"]) for x, G in enumerate(ratios) for r in recs
               if (r["w1"], r["w2"]) == (w1, w2) and _gqa(r) == G]
        xs, ys = zip(*pts)
        ax.bar([x + (i - (len(windows) - 1) / 2) * width for x in xs], ys, width=width,
               color=viz.PALETTE[_COLORS[i % len(_COLORS)]], label=f"{w1} x {w2}")
        bars += len(pts)
    ax.set_xticks(range(len(ratios)), [str(G) for G in ratios])
    viz.label(ax, "query heads per KV head", "TFLOPS (tensor-core count)", f"{mode}, d = {D}")
    if legend:
        ax.legend(fontsize=8, loc="upper left")
    return bars


def plot_memory(ax, records: list, mode: str = "fwd") -> int:
    """Horizontal bars of peak extra memory per token (KiB), one per configuration.

    The records' ``peak_extra_bytes`` (memory allocated above the inputs during the call) divided
    by the tokens of the run, ``B * N``; a configuration is (group, windows or top-k ``k``, head
    dimension, GQA ratio), and its bar is the median over its records (the value does not depend
    on how the tokens are split into batch and length). Returns the number of bars.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Records with ``peak_extra_bytes`` of the groups ``"kernel"``, ``"reference"``,
        ``"sdpa"`` or ``"topk-kernel"`` (others are left out).
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.

    Returns
    -------
    int
        The number of bars.

    Examples
    --------
    >>> from simplex_lib.viz import new_figure
    >>> fig, ax = new_figure()
    >>> r = dict(group="kernel", mode="fwd", B=2, N=512, Hq=4, Hkv=1, D=64, w1=16, w2=8,
    ...          peak_extra_bytes=1024 * 1024)
    >>> plot_memory(ax, [r], "fwd"), float(ax.patches[0].get_width())
    (1, 1.0)
    """
    groups = ("kernel", "reference", "sdpa", "topk-kernel")
    recs = [r for r in select(records, mode=mode) if isinstance(r.get("peak_extra_bytes"), (int, float))
            and r.get("group") in groups]
    per_key: dict = {}
    for r in recs:
        what = f"{r['w1']}x{r['w2']}" if r.get("w1") else (f"k={r['k']}" if r.get("k") else "causal")
        key = (groups.index(r["group"]), r["group"], what, r["D"], _gqa(r))
        per_key.setdefault(key, []).append(r["peak_extra_bytes"] / (r["B"] * r["N"]) / 1024)
    keys = sorted(per_key, key=lambda k: (k[0], k[2], k[3], k[4]))
    colours = {g: viz.PALETTE[c] for g, c in zip(groups, _COLORS)}
    for y, key in enumerate(keys):
        ax.barh(y, statistics.median(per_key[key]), color=colours[key[1]])
    ax.set_yticks(range(len(keys)), [f"{k[1]} {k[2]}, D={k[3]}, G={k[4]}" for k in keys], fontsize=9)
    ax.invert_yaxis()
    viz.label(ax, "peak extra memory per token (KiB)", "configuration", f"{mode}: memory above the inputs, bf16")
    if not keys:
        _no_data(ax, f"{mode} memory")
    return len(keys)


def plot_topk_vs_window(ax, records: list, mode: str = "fwd") -> int:
    """Milliseconds of the top-k kernel (``group="topk-kernel"``, field ``k``) beside the
    sliding-window kernel at equal pair count ``k^2 = w1 * w2`` (``group="window-kernel"``),
    against sequence length. Returns the number of lines.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled; a note on the axes when nothing matches).
    records : list of dict
        Records of the top-k benchmark (groups ``"topk-kernel"`` and ``"window-kernel"``).
    mode : str, default ``"fwd"``
        ``"fwd"``, ``"bwd"`` or ``"fwdbwd"``.

    Returns
    -------
    int
        The number of lines (top-k and window together).
    """
    tk = select(records, group="topk-kernel", mode=mode)
    win = [r for r in records if r.get("mode") == mode and r.get("group") in ("window-kernel",)]
    n = 0
    for c, kk in zip([viz.PALETTE[k] for k in _COLORS] * 8, sorted({r["k"] for r in tk})):
        pts = sorted((r["N"], r["ms"]) for r in tk if r["k"] == kk)
        ax.plot(*zip(*pts), "o-", color=c, label=f"top-k, k={kk} ({kk * kk} pairs)")
        n += 1
        same = sorted((r["N"], r["ms"]) for r in win if r["w1"] * r["w2"] == kk * kk)
        if same:
            w = next(r for r in win if r["w1"] * r["w2"] == kk * kk)
            ax.plot(*zip(*same), "s--", color=c, label=f"window {w['w1']}x{w['w2']} (same pairs)")
            n += 1
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    viz.label(ax, "sequence length n (tokens)", "time (ms, median)", f"{mode}, bf16")
    if n:
        ax.legend(fontsize=7, loc="best")
    else:
        _no_data(ax, f"{mode} top-k timings")
    return n


def time_ratios(records: list, group: str, mode: str, k: int, base: str = "window-kernel") -> list:
    """Time of ``group`` over time of ``base`` at ``k^2`` pairs per query, one ratio per
    ``(group, base)`` pair of records with the same batch and length (the top-k benchmark's
    comparison at equal arithmetic).

    A record is at ``k`` when its field ``k`` equals ``k`` (top-k groups) or its windows have
    ``w1 * w2 = k^2`` (window groups); records without ``ms`` are left out.

    Parameters
    ----------
    records : list of dict
        Records of the top-k benchmark (:func:`simplex_lib.timing.bench_topk`).
    group, base : str
        The timed group and the one it is divided by.
    mode : str
        ``"fwd"`` or ``"bwd"``.
    k : int
        Selected keys per query (``k^2`` pairs).

    Returns
    -------
    list of float

    Examples
    --------
    >>> recs = [dict(group="topk-kernel", mode="fwd", B=1, N=64, k=8, ms=3.0),
    ...         dict(group="window-kernel", mode="fwd", B=1, N=64, w1=16, w2=4, ms=2.0)]
    >>> time_ratios(recs, "topk-kernel", "fwd", 8)
    [1.5]
    """
    def at(g):
        return [r for r in select(records, group=g, mode=mode)
                if "ms" in r and (r.get("k") == k or r.get("w1", 0) * r.get("w2", 0) == k * k)]

    return [t["ms"] / b["ms"] for t in at(group) for b in at(base) if (t["B"], t["N"]) == (b["B"], b["N"])]


def summary_rows(records: list, groups=("kernel", "sdpa"), modes=("fwd", "bwd", "fwdbwd"), windows=None) -> list:
    """Short table rows ``(group, mode, shape, windows, ms, TFLOPS)`` sorted for printing.

    ``windows = (w1, w2)`` keeps only records of those windows (SDPA records: those paired with
    them).

    Parameters
    ----------
    records : list of dict
        Records from :func:`flat_records`.
    groups : tuple of str, default ``("kernel", "sdpa")``
        Groups to keep, in the order of the rows.
    modes : tuple of str, default ``("fwd", "bwd", "fwdbwd")``
        Modes to keep, in the order of the rows.
    windows : tuple of int, optional
        ``(w1, w2)``. Default: every window.

    Returns
    -------
    list of tuple
        Sorted by group, mode, ``D``, ``N`` and windows.

    Examples
    --------
    >>> summary_rows([dict(group="kernel", mode="fwd", B=2, N=8192, Hq=64, Hkv=1, D=128, w1=512, w2=32,
    ...                    ms=27.9, tflops=315.3)])
    [('kernel', 'fwd', 'B2 N8192 Hq64 Hkv1 D128', '512x32', 27.9, 315.3)]
    """
    keyed = []
    order = {m: i for i, m in enumerate(modes)}
    for r in records:
        if r.get("group") in groups and r.get("mode") in modes:
            mine = r.get("paired_with") if r.get("group") == "sdpa" else [r.get("w1"), r.get("w2")]
            if windows is not None and list(mine or []) != list(windows):
                continue
            win = f"{r['w1']}x{r['w2']}" if r.get("w1") else "causal"
            shape = f"B{r['B']} N{r['N']} Hq{r['Hq']} Hkv{r['Hkv']} D{r['D']}"
            key = (groups.index(r["group"]), order[r["mode"]], r["D"], r["N"], win)
            keyed.append((key, (r["group"], r["mode"], shape, win, r["ms"], r["tflops"])))
    return [row for _, row in sorted(keyed, key=lambda t: t[0])]


def grid_rows(records: list, N: int = 8192, G: int = 64) -> list:
    """One row per (windows, head dimension) of the kernel at length ``N`` and GQA ratio ``G``.

    Parameters
    ----------
    records : list of dict
        Kernel and SDPA records from :func:`flat_records`.
    N : int, default 8192
        Sequence length of the kernel records.
    G : int, default 64
        GQA ratio ``Hq / Hkv`` of the kernel records.

    Returns
    -------
    list of dict
        ``w1``, ``w2``, ``D``, then ``fwd_ms``, ``fwd_tflops``, ``bwd_ms``, ``bwd_tflops`` of the
        kernel and ``sdpa_fwd_tflops``, ``sdpa_bwd_tflops`` of causal SDPA at equal FLOPs (``None``
        where a record is missing), sorted by ``w1 * w2``, ``w1`` and ``D``.

    Examples
    --------
    >>> k = dict(group="kernel", mode="fwd", B=2, N=8192, Hq=64, Hkv=1, D=128, w1=512, w2=32,
    ...          ms=20.0, tflops=440.0)
    >>> row = grid_rows([k])[0]
    >>> row["fwd_tflops"], row["bwd_tflops"]
    (440.0, None)
    """
    recs = [r for r in select(records, group="kernel", N=N) if _gqa(r) == G]
    sdpa = {(a["mode"], a["w1"], a["w2"], a["D"]): b for a, b in pair_sdpa(recs + select(records, group="sdpa"))}
    rows = []
    for w1, w2, D in sorted({(r["w1"], r["w2"], r["D"]) for r in recs}, key=lambda t: (t[0] * t[1], t[0], t[2])):
        row = dict(w1=w1, w2=w2, D=D)
        for mode in ("fwd", "bwd"):
            r = next((r for r in recs if (r["mode"], r["w1"], r["w2"], r["D"]) == (mode, w1, w2, D)), None)
            s = sdpa.get((mode, w1, w2, D))
            row[f"{mode}_ms"] = r["ms"] if r else None
            row[f"{mode}_tflops"] = r["tflops"] if r else None
            row[f"sdpa_{mode}_tflops"] = s["tflops"] if s else None
        rows.append(row)
    return rows


def markdown_table(header: list, rows: list) -> str:
    """A Markdown (MyST) table from a header and rows of cells (already formatted strings).

    Parameters
    ----------
    header : list of str
        Column titles.
    rows : list of list
        Cells of each row (each converted with ``str``).

    Returns
    -------
    str
        The table's lines, without a final newline.

    Examples
    --------
    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    | --- | --- |
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def walk_comparison(records: list, mode: str = "fwd", block_m: int = 64) -> list:
    """The two short-window walks side by side, one row per shape: what ``bench --fwd-walk``
    and ``--bwd-walk`` recorded (``benchmarks/results/h200/walks.json``).

    Parameters
    ----------
    records : list of dict
        Kernel records carrying ``fwd_walk`` / ``bwd_walk`` (the walk that ran).
    mode : ``"fwd"`` or ``"bwd"``
        Which pass; its walk key is ``fwd_walk`` or ``bwd_walk``.
    block_m : int, default 64
        Rows per tile on the GPU, for ``pos_per_tile``
        (:func:`simplex_lib.ops.two_simplicial.configs.row_tiling`).

    Returns
    -------
    list of dict
        Sorted by GQA ratio: ``G``, ``Hq``, ``Hkv``, ``D``, ``w1``, ``w2``, ``pos_per_tile`` (positions
        in a tile of ``block_m`` rows), ``position`` and ``offset`` (TFLOPS) and ``speedup`` (offset / position).
        Shapes with only one walk recorded are left out.

    Examples
    --------
    >>> recs = [dict(mode="fwd", Hq=16, Hkv=16, D=128, w1=512, w2=32, tflops=t, fwd_walk=w)
    ...         for t, w in ((80.0, "position"), (200.0, "offset"))]
    >>> [(r["G"], r["pos_per_tile"], r["speedup"]) for r in walk_comparison(recs)]
    [(1, 64, 2.5)]
    """
    from .ops.two_simplicial.configs import row_tiling

    if mode not in ("fwd", "bwd"):
        raise ValueError(f"mode must be 'fwd' or 'bwd', got {mode!r}")
    by_shape: dict = {}
    for r in records:
        if r.get("mode") != mode or f"{mode}_walk" not in r or "tflops" not in r:
            continue
        key = (r["Hq"], r["Hkv"], r["D"], r["w1"], r["w2"])
        by_shape.setdefault(key, {})[r[f"{mode}_walk"]] = r["tflops"]
    rows = []
    for (Hq, Hkv, D, w1, w2), t in by_shape.items():
        if {"position", "offset"} <= t.keys():
            G = Hq // Hkv
            rows.append(dict(G=G, Hq=Hq, Hkv=Hkv, D=D, w1=w1, w2=w2, pos_per_tile=row_tiling(G, block_m).POS,
                             position=t["position"], offset=t["offset"], speedup=t["offset"] / t["position"]))
    return sorted(rows, key=lambda r: (r["G"], r["D"], r["w1"]))


def remeasure(windows=((512, 32),), dims=(128,), gqa=(64,), seqlens=(4096, 8192), modes=("fwd", "bwd"),
              tokens=16384) -> dict:
    """Time the kernels on the reader's GPU with :func:`simplex_lib.timing.run_benchmark`.

    A small grid (a minute or two on an H100) in the same record format as the recorded files.

    Parameters
    ----------
    windows : tuple of (int, int), default ``((512, 32),)``
        Window shapes ``(w1, w2)``.
    dims : tuple of int, default ``(128,)``
        Head dimensions.
    gqa : tuple of int, default ``(64,)``
        Query heads per key/value head.
    seqlens : tuple of int, default ``(4096, 8192)``
        Sequence lengths.
    modes : tuple of str, default ``("fwd", "bwd")``
    tokens : int, default 16384
        ``B * N`` of every shape.

    Returns
    -------
    dict
        ``{"path": None, "meta", "records"}`` ready for :func:`flat_records`.

    Raises
    ------
    ValueError
        When no CUDA GPU is available.
    """
    if not torch.cuda.is_available():
        raise ValueError("remeasure needs a CUDA GPU (torch.cuda.is_available() is False)")
    res = timing.run_benchmark(windows=windows, dims=dims, gqa=gqa, seqlens=seqlens, modes=modes,
                        tokens=tokens, progress=False)
    return {"path": None, **res, "meta": _meta_view(res["meta"])}


# ----------------------------------------------------------------------------------------------
# Repeats, occupancy and the crossover with dense attention (chapter 10)
# ----------------------------------------------------------------------------------------------

_CONFIG_KEYS = ("group", "mode", "B", "N", "Hq", "Hkv", "D", "w1", "w2")


def repeat_spread(records: list, group: str = "sdpa", min_repeats: int = 2) -> list:
    """Spread of TFLOPS over records that time one identical configuration.

    Records are grouped by group, mode and shape (``B``, ``N``, ``Hq``, ``Hkv``, ``D`` and the
    windows where present); a group with at least ``min_repeats`` records is a set of repeats.
    The equal-FLOP SDPA runs of a window grid are such repeats: every window shape with the
    same product pairs SDPA with the same context, so the same call is timed once per shape.

    Parameters
    ----------
    records : list of dict
        Successful records (with ``tflops``), e.g. from :func:`flat_records`.
    group : str, default ``"sdpa"``
        The group to read.
    min_repeats : int, default 2
        Fewest records of a configuration to report it (at least 2 for an ``sd``).

    Returns
    -------
    list of dict
        The configuration's fields plus ``n``, ``mean``, ``sd`` (sample standard deviation),
        ``lo``, ``hi`` and ``values`` (TFLOPS, in record order), sorted by mode and shape.

    Examples
    --------
    >>> r = dict(group="sdpa", mode="fwd", B=2, N=16384, Hq=64, Hkv=64, D=128)
    >>> row = repeat_spread([{**r, "tflops": 600.0}, {**r, "tflops": 560.0}])[0]
    >>> row["n"], row["mean"], row["lo"], row["hi"]
    (2, 580.0, 560.0, 600.0)
    """
    by: dict = {}
    for r in select(records, group=group):
        by.setdefault(tuple(r.get(k) for k in _CONFIG_KEYS), []).append(r["tflops"])
    out = []
    for key, vals in by.items():
        if len(vals) >= min_repeats:
            row = {k: v for k, v in zip(_CONFIG_KEYS, key) if v is not None}
            row.update(n=len(vals), mean=statistics.fmean(vals), sd=statistics.stdev(vals),
                       lo=min(vals), hi=max(vals), values=list(vals))
            out.append(row)
    return sorted(out, key=lambda r: (r["mode"], r["D"], r["N"]))


def waves(programs: int, sms: int = 132, per_sm: int = 1) -> tuple:
    """``(waves, busy)``: how many rounds a launch of ``programs`` equal programs takes on ``sms``
    streaming multiprocessors running ``per_sm`` programs each, and the fraction of the SM slots
    that are busy averaged over those rounds. (132 SMs: the H100 SXM and the H200.)

    Parameters
    ----------
    programs : int
        Programs of the launch (its grid size).
    sms : int, default 132
        Streaming multiprocessors.
    per_sm : int, default 1
        Programs resident per SM at once.

    Returns
    -------
    waves : int
        ``ceil(programs / (sms * per_sm))``.
    busy : float
        ``programs / (waves * sms * per_sm)``.

    Examples
    --------
    >>> waves(128), waves(64)
    ((1, 0.9696969696969697), (1, 0.48484848484848486))
    >>> waves(256)[0]
    2
    """
    slots = sms * per_sm
    w = -(-programs // slots)
    return w, programs / (w * slots)


def us_per_token(r: dict) -> float:
    """Microseconds per token of a record: ``ms / (B * N) * 1000``.

    Parameters
    ----------
    r : dict
        A record with ``ms``, ``B`` and ``N``.

    Returns
    -------
    float

    Examples
    --------
    >>> us_per_token(dict(ms=16.384, B=2, N=8192))
    1.0
    """
    return 1e3 * r["ms"] / (r["B"] * r["N"])


def sdpa_per_token(records: list, modes=("fwd",), Hq: int = 64, D: int = 128) -> list:
    """``(n, microseconds per token)`` of causal SDPA with ``Hq`` heads and head dimension ``D``,
    one point per context ``n``: the mean over repeats of each mode, summed over ``modes``
    (``("fwd", "bwd")`` gives a training step). Only contexts timed in every mode are kept.

    Parameters
    ----------
    records : list of dict
        Records of any group ending in ``"sdpa"`` with a numeric ``ms`` are read.
    modes : tuple of str, default ``("fwd",)``
    Hq : int, default 64
        Query heads.
    D : int, default 128
        Head dimension.

    Returns
    -------
    list of tuple
        ``(n, microseconds)`` sorted by ``n``.

    Examples
    --------
    >>> s = dict(group="sdpa", B=1, N=1000, Hq=64, D=128)
    >>> sdpa_per_token([{**s, "mode": "fwd", "ms": 1.0}, {**s, "mode": "bwd", "ms": 2.0}], ("fwd", "bwd"))
    [(1000, 3.0)]
    """
    by: dict = {}
    for r in records:
        if r.get("group", "").endswith("sdpa") and r.get("Hq") == Hq and r.get("D") == D \
                and r.get("mode") in modes and isinstance(r.get("ms"), (int, float)):
            by.setdefault(r["N"], {}).setdefault(r["mode"], []).append(us_per_token(r))
    return [(n, sum(statistics.fmean(m[k]) for k in modes)) for n, m in sorted(by.items())
            if all(k in m for k in modes)]


def slope_through_origin(points: list) -> float:
    """Least-squares ``a`` of ``t = a * n`` (causal attention's cost per token grows as ``n``).

    Parameters
    ----------
    points : list of tuple
        ``(n, t)`` pairs, e.g. from :func:`sdpa_per_token`.

    Returns
    -------
    float
        ``sum(n t) / sum(n^2)``.

    Examples
    --------
    >>> slope_through_origin([(1, 2.0), (2, 4.0)])
    2.0
    """
    return sum(n * t for n, t in points) / sum(n * n for n, _ in points)


def plot_per_token(ax, points: list, slope: float, kernel_us: float, *, what: str,
                   n_max: float | None = None) -> float:
    """Per-token time of causal SDPA against its context (measured points and the line
    ``slope * n``) beside the windowed kernel's constant per-token time; returns the crossing
    ``n* = kernel_us / slope`` and marks it.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on.
    points : list of tuple
        Measured ``(n, microseconds per token)`` of SDPA, from :func:`sdpa_per_token`.
    slope : float
        Microseconds per token per unit of context, from :func:`slope_through_origin`.
    kernel_us : float
        The windowed kernel's microseconds per token (the line is labelled as the
        ``512x32`` kernel).
    what : str
        What is timed, for the vertical axis label (e.g. ``"forward"``).
    n_max : float, optional
        Right end of the axis in tokens. Default: 1.25 times the larger of ``n*`` and the
        largest measured context.

    Returns
    -------
    float
        The crossing ``n*`` in tokens.
    """
    cross = kernel_us / slope
    n_max = n_max or 1.25 * max(cross, max(n for n, _ in points))
    xs = [0.0, n_max]
    ax.plot([n / 1e3 for n in xs], [slope * n for n in xs], color=viz.PALETTE["dot"], lw=1.5,
            label="causal SDPA, fit t = a n")
    ax.plot([n / 1e3 for n, _ in points], [t for _, t in points], "o", color=viz.PALETTE["dot"],
            label="causal SDPA, measured")
    ax.axhline(kernel_us, color=viz.PALETTE["simplicial"], lw=2, label="windowed 512x32 kernel")
    ax.axvline(cross / 1e3, color="0.4", lw=1, ls=":")
    ax.annotate(f"n* = {cross / 1e3:.0f}k", (cross / 1e3, 0.5 * kernel_us), xytext=(6, 0),
                textcoords="offset points", fontsize=9)
    viz.label(ax, "context n of dense attention (thousand tokens)", f"{what} time per token (us)")
    ax.set_xlim(0, n_max / 1e3)
    ax.set_ylim(0, None)
    ax.legend(fontsize=9, loc="upper left")
    return cross


def plot_occupancy(ax, launches: list, *, sms: int = 132, label: str, color: str,
                   names=None) -> float:
    """SMs busy against time for a sequence of launches, in the wave model of :func:`waves`.

    ``launches`` is a list of ``(programs, wave_ms)``: each launch runs its programs in waves of
    ``sms``, every wave taking ``wave_ms``; the last wave keeps only the remaining programs' SMs
    busy (the tail). Draws the step curve filled, each launch's name from ``names`` above it,
    and returns the total time (ms).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on.
    launches : list of tuple
        ``(programs, wave_ms)`` of each launch, in order.
    sms : int, default 132
        Streaming multiprocessors (the axis ticks are drawn at 0, 66 and 132).
    label : str
        Legend entry of the curve.
    color : str
        Matplotlib colour of the curve.
    names : list of str, optional
        A name for each launch, written above it with a separating line. Default: none.

    Returns
    -------
    float
        Total time of the launches (ms).

    Examples
    --------
    >>> from simplex_lib.viz import new_figure
    >>> fig, ax = new_figure()
    >>> plot_occupancy(ax, [(200, 10.0), (64, 5.0)], label="x", color="k", names=["a", "b"])
    25.0
    """
    t, xs, ys = 0.0, [], []
    for i, (programs, wave_ms) in enumerate(launches):
        start, left = t, programs
        while left > 0:
            busy = min(sms, left)
            xs += [t, t + wave_ms]
            ys += [busy, busy]
            t += wave_ms
            left -= busy
        if names:
            ax.axvline(start, color="0.5", lw=0.8)
            ax.text((start + t) / 2, sms * 1.07, names[i], ha="center", va="bottom", fontsize=9)
    ax.fill_between(xs, ys, color=color, alpha=0.35, lw=0)
    ax.plot(xs, ys, color=color, lw=1.5, label=label)
    ax.axhline(sms, color="0.4", lw=1, ls=":")
    viz.label(ax, "time in the wave model (ms)", "SMs busy")
    ax.set_ylim(0, sms * 1.3)
    ax.set_yticks([0, 66, 132])
    ax.legend(fontsize=9, loc="lower right")
    return t


def ncu_metric(report: str, name: str) -> float:
    r"""The first value of metric ``name`` in the text of an Nsight Compute report
    (``ncu`` without ``--csv``), thousands separators removed.

    A metric line is the name, an optional unit and the value; the first line whose name
    matches is read, so pass one launch's part of a report with several.

    Parameters
    ----------
    report : str
        The report's text, or one launch's block of it.
    name : str
        The metric as ncu prints it, e.g. ``"Duration"`` or ``"Registers Per Thread"``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If no line of ``report`` carries ``name`` with a value.

    Examples
    --------
    >>> ncu_metric("    Duration          ms        45.75\n", "Duration")
    45.75
    >>> ncu_metric("    Local Memory Spilling Requests      1,408,512\n",
    ...            "Local Memory Spilling Requests")
    1408512.0
    """
    m = re.search(rf"^\s*{re.escape(name)}\s+(?:\S+\s+)?([\d,]+(?:\.\d+)?)\s*$", report, re.M)
    if m is None:
        raise ValueError(f"ncu_metric: no metric {name!r} with a value in the report")
    return float(m[1].replace(",", ""))

