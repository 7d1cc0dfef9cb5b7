"""The explorers' numbers in JavaScript against their Python state functions (shared by tests).

``EXPLORERS`` builds each explorer as its chapter shows it; ``MOVES`` lists the controls a test
moves, in order, with the values it moves them to; :func:`problems` compares one state computed
by the JavaScript module (the JSON it writes beside its picture) with the Python state function
at the same settings, to :data:`TOL` relative error.
"""

from __future__ import annotations

import torch

from simplex_lib.testing import rel_error
from simplex_lib.widgets import CoverageExplorer, GraphExplorer, Match3Explorer, TriangleExplorer
from simplex_lib.widgets import coverage_explorer as ce
from simplex_lib.widgets import graph_explorer as ge
from simplex_lib.widgets import match3_explorer as me
from simplex_lib.widgets import triangle_explorer as tx

TOL = 1e-6

#: The explorers as the chapters construct them (chapters 1, 3, 5, 7).
EXPLORERS = {
    "graph": lambda: GraphExplorer(seed=0, n=10, temperature=1.0, query=7, hops=1),
    "triangle": lambda: TriangleExplorer(seq_len=10, head_dim=4, temperature=0.5, w1=6, seed=1),
    "match3": lambda: Match3Explorer(n=8, M=31, c_factor=1.0, i=2, seed=3),
    "coverage": lambda: CoverageExplorer(n=96, w1=16, w2=8, k=12, query=90),
}

#: (control, value) moves, in order: every control, several values, the extremes.
MOVES = {
    "graph": [("temperature", 0.01), ("hops", 6), ("hops", 0), ("query", 2), ("n", 16),
              ("seed", 3), ("causal", False), ("temperature", 10 ** 1.3), ("n", 1), ("n", 9),
              ("hops", 12), ("causal", True), ("temperature", 10 ** -0.5)],
    "triangle": [("temperature", 10 ** -1.5), ("w1", 2), ("w1", 16), ("w2", 3), ("reducer", "or"),
                 ("query", 4), ("seq_len", 16), ("head_dim", 8), ("seed", 2), ("temperature", 10.0),
                 ("seq_len", 1), ("seq_len", 7), ("head_dim", 2), ("reducer", "and")],
    "match3": [("kind", "adversarial"), ("c_factor", 10 ** -0.3), ("c_factor", 0.01), ("M", 9),
               ("M", 127), ("n", 24), ("i", 20), ("kind", "random"), ("seed", 1),
               ("c_factor", 10.0), ("n", 1), ("n", 13), ("M", 7)],
    "coverage": [("query", 10), ("w1", 3), ("k", 1), ("rule", "relu"), ("k", 40), ("query", 95),
                 ("n", 239), ("query", 238), ("w2", 64), ("rule", "softmax"), ("n", 30),
                 ("k", 64), ("w1", 64)],
}


def _close(name: str, ref, out, shape=None) -> list[str]:
    ref = torch.as_tensor(ref, dtype=torch.float64)
    out = torch.as_tensor(out, dtype=torch.float64)
    if shape is not None or out.shape != ref.shape:
        out = out.reshape(ref.shape)
    err = rel_error(out, ref)
    return [] if err <= TOL else [f"{name}: relative error {err:.2e} > {TOL}"]


def _graph(values: dict, js: dict) -> list[str]:
    py = ge.explorer_data(**values, sink=2.0, d=GraphExplorer.d)
    return [p for key in ("A", "Ak", "row", "row_k", "received", "out")
            for p in _close(key, py[key], js[key])]


def _triangle(values: dict, js: dict) -> list[str]:
    py = tx.triangle_state(**TriangleExplorer.arguments(values))
    out = [p for key in ("slice", "output", "dot_output") for p in _close(key, py[key], js[key])]
    if js["visible"] != py["visible"].flatten().int().tolist():
        out.append("visible cells differ")
    out += _close("triangle weights", [t[3] for t in py["triangles"]], [t[3] for t in js["triangles"]])
    weights = [t[3] for t in py["triangles"]]
    for a, b in zip(py["triangles"], js["triangles"]):
        if weights.count(a[3]) == 1 and list(a[:3]) != list(b[:3]):  # ties may list in any order
            out.append(f"triangle {a[:3]} listed as {b[:3]}")
    return out


def _match3(values: dict, js: dict) -> list[str]:
    py = me.explorer_state(**Match3Explorer.arguments(values))
    out = [] if js["x"] == py["x"] else [f"input {js['x']} != {py['x']}"]
    out += [p for key in ("c", "c_star", "scores", "weights", "blank_weight", "z")
            for p in _close(key, py[key], js[key])]
    for key in ("prediction", "label", "correct"):
        if js[key] != py[key]:
            out.append(f"{key}: {js[key]} != {py[key]}")
    for key in ("matches", "attended"):  # equal weights (j1, j2) and (j2, j1): compare as sets
        if {tuple(p) for p in js[key]} != {tuple(p) for p in py[key]}:
            out.append(f"{key} differ")
    return out


_TEXT = {}


def _coverage(values: dict, js: dict) -> list[str]:
    if "inputs" not in _TEXT:
        _TEXT["inputs"] = ce.text_inputs()
    v = dict(values)
    py = ce.coverage(ce.slice_inputs(_TEXT["inputs"], v.pop("n")), **v)
    out = []
    for key in ("counts", "flops", "indexer_flops"):
        if js[key] != py[key]:
            out.append(f"{key}: {js[key]} != {py[key]}")
    if js["overlap"] != py["overlap"]:
        out.append(f"overlap: {js['overlap']} != {py['overlap']}")
    out += _close("mass", [py["mass"][s] for s in ce.SCHEMES], [js["mass"][s] for s in ce.SCHEMES])
    for key, sel in py["selections"].items():
        want = [j for j in sel[0, values["query"], 0].tolist() if j >= 0]
        if js["selections"][key] != want:
            out.append(f"selection {key}: {js['selections'][key]} != {want}")
    return out


_CHECKS = {"graph": _graph, "triangle": _triangle, "match3": _match3, "coverage": _coverage}


def problems(name: str, js: dict) -> list[str]:
    """Differences between a JavaScript state (with its ``values``) and the Python state function."""
    return _CHECKS[name](dict(js["values"]), js)
