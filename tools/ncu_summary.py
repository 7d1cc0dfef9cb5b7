"""One JSON record from several Nsight Compute reports of the forward, for a chapter to plot.

Each input is a profile's text: a first line naming the session, date, GPU, commit, shape and
launch (``# Nsight Compute, session 30, 2026-12-05, NVIDIA H100 80GB HBM3, commit 2713e70:
forward D 64 GQA 4 512x32 B2 N8192 bf16, config offset+tma:64x128x4x3x16, launch-skip 1``),
then what ``ncu -i REPORT`` prints, then ``tools/ncu_stalls.py``'s tables. Run from the
repository root::

    python tools/ncu_summary.py --out benchmarks/results/h100/ncu_fwd_s30.json \\
        benchmarks/results/h100/ncu_fwd_*_s30.txt

Each row holds the kernel named in the header (``forward``, ``Gluon forward``, ...), the launch's
duration, its executed warp instructions (``smsp__inst_executed.sum`` where the report has it,
else executed IPC x active cycles x SMs), elapsed cycles, the issue slots' busy share, eligible
warps per scheduler, the busiest pipe and its share, registers, occupancy, spill requests, the
shares of warp-stall samples and of executed instructions by opcode (``ncu_stalls.py``'s first
15 and 20 rows) and, for a warp-specialised kernel, its regions (``ncu_stalls.py``'s SASS split
at each SETMAXREG: instructions, HGMMA, TMA loads and MUFU.EX2 in each, its shares of the
samples and of the executed instructions, its opcodes with most samples).
"""
import argparse
import json
import re
import sys
from pathlib import Path

from simplex_lib.bench_plots import ncu_metric

_HEADER = re.compile(r"^# Nsight Compute, session (?P<session>\d+), (?P<date>[\d-]+), (?P<gpu>[^,]+), "
                     r"commit (?P<commit>\w+): (?P<kernel>.*?)\s*D (?P<D>\d+) GQA (?P<G>\d+) "
                     r"(?P<w1>\d+)x(?P<w2>\d+) B(?P<B>\d+) N(?P<N>\d+) \w+, (?:config )?(?P<config>.+?)"
                     r"(?:, launch-skip \d+)?\s*$")
_REGION = re.compile(r"^\s*(?P<address>\S+)\s+(?P<instructions>\d+)\s+(?P<hgmma>\d+) /\s*(?P<utmaldg>\d+) /"
                     r"\s*(?P<mufu_ex2>\d+)\s+(?P<stall_pct>[\d.]+)%\s+(?:(?P<executed_pct>[\d.]+)%|-)\s+"
                     r"(?P<head>.*?): (?P<top>.*)$")
_METRICS = {  # key: the metric's name as `ncu -i` prints it
    "duration_ms": "Duration",
    "sm_active_cycles": "SM Active Cycles",
    "elapsed_cycles": "Elapsed Cycles",
    "eligible_warps": "Eligible Warps Per Scheduler",
    "issue_busy_pct": "Issue Slots Busy",
    "registers": "Registers Per Thread",
    "achieved_occupancy_pct": "Achieved Occupancy",
    "spill_requests": "Local Memory Spilling Requests",
    "ipc_active": "Executed Ipc Active",
    "sms": "# SMs",
}


def _table(lines, start: str) -> dict:
    """The ``name count share%`` rows under the line that starts with ``start``."""
    i = next((k for k, line in enumerate(lines) if line.startswith(start)), None)
    out = {}
    if i is None:
        return out
    for line in lines[i + 1:]:
        m = re.match(r"^(\S+)\s+(\d+)\s+([\d.]+)%$", line.strip())
        if not m or line.startswith(" "):
            break
        out[m[1]] = float(m[3])
    return out


def summarise(text: str, name: str = "report") -> dict:
    """One report's row (see the module's docstring).

    Raises
    ------
    ValueError
        If ``text`` lacks the header line or one of the metrics (the message names it and ``name``).
    """
    lines = text.splitlines()
    head = _HEADER.match(lines[0]) if lines else None
    if head is None:
        raise ValueError(f"{name}: the first line is not a profile header ('# Nsight Compute, session ...')")
    row = {k: (v if k in ("date", "gpu", "commit", "kernel", "config") else int(v))
           for k, v in head.groupdict().items()}
    for key, label in _METRICS.items():
        try:
            row[key] = ncu_metric(text, label)
        except ValueError:
            raise ValueError(f"{name}: no '{label}' line (profile with the sections of the "
                             "module's docstring)") from None
    try:
        row["warp_instructions"] = ncu_metric(text, "smsp__inst_executed.sum")
    except ValueError:
        row["warp_instructions"] = row["ipc_active"] * row["sm_active_cycles"] * row["sms"]
    # the pipe Nsight Compute names busiest ("Shared": a sum dominated by the tensor pipe)
    pipe = re.search(r"(\w+) is the highest-utilized pipeline \(([\d.]+)%\)", text)
    row["busiest_pipe"], row["busiest_pipe_pct"] = (pipe[1], float(pipe[2])) if pipe else (None, None)
    row["stall_share_pct"] = _table(lines, "total samples")
    row["executed_share_pct"] = _table(lines, "instructions executed")
    row["regions"] = _regions(lines)
    return row


def _regions(lines) -> list:
    """``ncu_stalls.py``'s regions of a warp-specialised kernel (the SASS split at each
    SETMAXREG), one dict each; empty for other kernels."""
    i = next((k for k, line in enumerate(lines) if line.startswith("regions split at SETMAXREG")), None)
    out = []
    for line in lines[i + 1:] if i is not None else []:
        m = _REGION.match(line)
        if m is None:
            break
        r = m.groupdict()
        top = {}
        for item in r.pop("top").split(", "):
            op, _, pct = item.rpartition(" ")
            if op and pct.endswith("%"):
                top[op] = float(pct[:-1])
        out.append({k: (v if k in ("address", "head") else None if v is None else
                        float(v) if k.endswith("_pct") else int(v)) for k, v in r.items()}
                   | {"stall_by_opcode_pct": top})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/ncu_summary.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="profile texts (header, ncu -i, ncu_stalls.py)")
    ap.add_argument("--out", required=True, help="the JSON record to write")
    a = ap.parse_args(argv)
    rows = []
    for p in a.reports:
        try:
            rows.append(summarise(Path(p).read_text(), p))
        except OSError as e:
            ap.error(f"cannot read {p}: {e.strerror}")
        except ValueError as e:
            ap.error(str(e))
    rows.sort(key=lambda r: (-r["D"], r["G"]))
    Path(a.out).write_text(json.dumps({"what": "Nsight Compute, one launch each",
                                       "rows": rows}, indent=1) + "\n")
    print(f"{len(rows)} report(s) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
