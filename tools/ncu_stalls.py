"""Where a kernel's warps stall, by SASS opcode and instruction, from an Nsight Compute report.

Profile with the SourceCounters section, export the source page, then read it::

    ncu --section SourceCounters -o rep python script.py
    ncu -i rep.ncu-rep --page source --csv --print-source sass > rep_sass.csv
    python tools/ncu_stalls.py rep_sass.csv

Prints the total of "Warp Stall Sampling (All Samples)", the 15 opcodes (or predicate guards,
such as the ``@!P1 BRA`` of an mbarrier wait loop) with most samples, and the 25 instructions
with most samples. Where the export has the "Instructions Executed" column, it then prints the
executed (warp-level) instructions by mnemonic, the predicate guard and the modifiers dropped
(``@!P1 HGMMA.64x128x16.F32.BF16`` counts as ``HGMMA``): where a kernel's instructions go, beside
where its warps wait.

For a warp-specialised kernel (its SASS has ``SETMAXREG`` instructions: each partition of a
Gluon ``warp_specialize`` starts by setting its register budget), it last prints the code split
at every ``SETMAXREG`` into regions, with each region's share of the samples and of the executed
instructions, what it holds (``HGMMA``, TMA loads, ``MUFU.EX2``) and its 8 opcodes with most
samples: which warp group waits, and for what. The split follows the code's layout, so a region
is a partition's body only where the compiler laid it out in one piece; read the table beside
the SASS.
"""
import collections
import csv
import sys


def _num(x: str) -> float:
    try:
        return float(x.replace(",", ""))
    except ValueError:
        return 0.0


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python tools/ncu_stalls.py REPORT_SASS.csv")
    try:
        with open(argv[0], errors="replace") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        sys.exit(f"ncu_stalls: cannot read {argv[0]}: {e.strerror}")
    try:
        h = next(i for i, r in enumerate(rows) if any(c.startswith("Warp Stall Sampling (All") for c in r))
    except StopIteration:
        sys.exit(f"ncu_stalls: {argv[0]} has no 'Warp Stall Sampling (All Samples)' column "
                 "(profile with --section SourceCounters)")
    hdr, body = rows[h], [r for r in rows[h + 1:] if len(r) == len(rows[h])]
    col = next(i for i, c in enumerate(hdr) if c.startswith("Warp Stall Sampling (All"))
    src = next(i for i, c in enumerate(hdr) if c.strip() == "Source")
    total = sum(_num(r[col]) for r in body) or 1.0
    print(f"total samples {total:.0f}")
    by_op = collections.Counter()
    for r in body:
        by_op[(r[src].split() or ["?"])[0]] += _num(r[col])
    for op, v in by_op.most_common(15):
        print(f"{op:30s} {v:10.0f} {100 * v / total:5.1f}%")
    for r in sorted(body, key=lambda r: -_num(r[col]))[:25]:
        print(f"{_num(r[col]):9.0f} {100 * _num(r[col]) / total:5.1f}%  {r[src][:110]}")
    ex = next((i for i, c in enumerate(hdr) if c.strip() == "Instructions Executed"), None)
    if ex is not None:
        _executed(body, src, ex)
    addr = next((i for i, c in enumerate(hdr) if c.strip() == "Address"), None)
    if addr is not None and any("SETMAXREG" in r[src] for r in body):
        _regions(body, src, col, ex, addr, total)


def _executed(body, src, ex) -> None:
    executed = collections.Counter()
    for r in body:
        words = [w for w in r[src].split() if not w.startswith("@")] or ["?"]
        executed[words[0].split(".")[0]] += _num(r[ex])
    n = sum(executed.values()) or 1.0
    print(f"instructions executed {n:.0f}")
    for op, v in executed.most_common(20):
        print(f"{op:30s} {v:12.0f} {100 * v / n:5.1f}%")


def _regions(body, src, col, ex, addr, total) -> None:
    """The SASS split at every SETMAXREG: one line per region with any samples or executed
    instructions."""
    cuts = [i for i, r in enumerate(body) if "SETMAXREG" in r[src]]
    bounds = [0] + cuts + [len(body)]
    n_ex = sum(_num(r[ex]) for r in body) if ex is not None else 0.0
    print("regions split at SETMAXREG: first address, instructions, HGMMA / UTMALDG / MUFU.EX2 in "
          "it, share of stall samples, share of executed instructions, top opcodes by samples")
    for a, b in zip(bounds, bounds[1:]):
        seg = body[a:b]
        if not seg:
            continue
        samples = sum(_num(r[col]) for r in seg)
        executed = sum(_num(r[ex]) for r in seg) if ex is not None else 0.0
        if samples == 0 and executed == 0:
            continue
        ops = collections.Counter()
        for r in seg:
            ops[(r[src].split() or ["?"])[0]] += _num(r[col])
        count = {k: sum(k in r[src] for r in seg) for k in ("HGMMA", "UTMALDG", "MUFU.EX2")}
        head = seg[0][src].split(";")[0].strip() if "SETMAXREG" in seg[0][src] else "(entry)"
        top = ", ".join(f"{op} {100 * v / total:.1f}%" for op, v in ops.most_common(8) if v)
        ex_share = f"{100 * executed / n_ex:5.1f}%" if n_ex else "    -"
        print(f"{seg[0][addr]:>8s} {len(seg):5d} {count['HGMMA']:3d} / {count['UTMALDG']:2d} / "
              f"{count['MUFU.EX2']:3d} {100 * samples / total:5.1f}% {ex_share}  {head[:40]}: {top}")


if __name__ == "__main__":
    main()
