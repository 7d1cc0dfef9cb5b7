"""Argument checks shared by the modules of :mod:`simplex_lib.graph` (private to the package)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch

__all__ = ["check_square", "check_int", "as_numpy", "check_graph", "sorted_nodes"]


def check_square(name: str, a) -> None:
    if not isinstance(a, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(a).__name__}")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square [n, n] matrix, got shape {tuple(a.shape)}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row, got shape {tuple(a.shape)}")
    arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError(f"{name} must be finite (no nan or inf)")


def check_int(name: str, k, minimum: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {k!r}")
    if k < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {k}")
    return int(k)


def as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def check_graph(name: str, g) -> None:
    if not isinstance(g, nx.Graph):
        raise ValueError(f"{name} must be a networkx graph, got {type(g).__name__}")
    if g.is_directed():
        raise ValueError(f"{name} must be undirected (Weisfeiler-Lehman here is for simple graphs)")
    if g.is_multigraph():
        raise ValueError(f"{name} must not be a multigraph")


def sorted_nodes(nodes):
    try:
        return sorted(nodes)
    except TypeError:  # mixed node types: any fixed order will do
        return sorted(nodes, key=repr)
