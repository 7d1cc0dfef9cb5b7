"""An attention matrix read as a weighted directed graph.

An attention matrix ``A`` (``[n, n]``, row ``i`` = query ``i``, each row a probability
distribution over keys) is the weighted adjacency matrix of a directed graph on the ``n`` tokens.

**Edge convention.** The edge ``i -> j`` carries ``weight = A[i, j]``: an arrow points from a
query to the key it *attends to*. Out-weights of every node sum to one, and
``networkx.to_numpy_array(G)`` gives back ``A``. Messages (values) travel against the arrows: in
``A @ V`` node ``i`` receives ``V[j]`` along its edge ``i -> j``. A node with a large total
*in*-weight (column sum, :func:`attention_received`) is an attention sink.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import torch

from ..ops.dot.reference import dot_attention_weights
from ._checks import as_numpy, check_int, check_square

__all__ = ["attention_matrix", "attention_graph", "effective_neighbours", "attention_received"]


def attention_matrix(q, k, *, temperature: float = 1.0, causal: bool = True, scale=None):
    """Attention weights of one head, ``softmax(scale * q k^T / temperature)``, as an ``[n, n]`` matrix.

    A thin wrapper over :func:`simplex_lib.ops.dot.reference.dot_attention_weights` for a single head:
    the temperature divides the logits (``temperature -> 0`` makes each row one-hot on its
    largest logit, ``temperature -> inf`` makes it uniform over the visible keys).

    Parameters
    ----------
    q, k : Tensor ``[n, head_dim]``
        Queries and keys of one head (rows are tokens).
    temperature : float > 0
    causal : bool
        Query ``i`` sees keys ``j <= i`` only (as in :func:`~simplex_lib.ops.dot.reference.dot_attention`).
    scale : float, optional
        Logit scale, default ``1/sqrt(head_dim)``.

    Returns
    -------
    Tensor ``[n, n]``; row ``i`` is query ``i``'s distribution over keys.

    Examples
    --------
    >>> q = torch.randn(5, 4); A = attention_matrix(q, q, temperature=0.5)
    >>> A.shape, bool(torch.allclose(A.sum(-1), torch.ones(5)))
    (torch.Size([5, 5]), True)
    """
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D torch.Tensor [n, head_dim], got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if q.shape != k.shape:
        raise ValueError(f"k has shape {tuple(k.shape)} but q has shape {tuple(q.shape)}")
    if isinstance(temperature, bool) or not (float(temperature) > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be True or False, got {causal!r}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                              or not math.isfinite(scale)):
        raise ValueError(f"scale must be a finite number or None, got {scale!r}")
    s = (1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)) / float(temperature)
    return dot_attention_weights(q[None, :, None], k[None, :, None], causal=causal, scale=s)[0, 0]


def attention_graph(a, *, threshold: float | None = None, top_k: int | None = None,
                    labels=None) -> nx.DiGraph:
    """The weighted directed graph of an attention matrix.

    Edge ``i -> j`` ("query ``i`` attends to key ``j``") carries ``weight = a[i, j]``; exact
    zeros (masked keys) give no edge, so ``nx.to_numpy_array(G)`` equals ``a``. ``threshold``
    and ``top_k`` thin the graph for drawing.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
        Rows are queries.
    threshold : float, optional
        Keep only edges with ``weight >= threshold``.
    top_k : int >= 1, optional
        Keep only the ``top_k`` heaviest out-edges of every node (ties: lower key index first).
    labels : sequence of ``n`` str, optional
        Stored as the node attribute ``"label"`` (default ``str(i)``).

    Returns
    -------
    networkx.DiGraph on nodes ``0..n-1`` with edge attribute ``"weight"`` (float).

    Examples
    --------
    >>> G = attention_graph(np.array([[1.0, 0.0], [0.25, 0.75]]))
    >>> sorted(G.edges(data="weight"))
    [(0, 0, 1.0), (1, 0, 0.25), (1, 1, 0.75)]
    """
    check_square("a", a)
    arr = as_numpy(a).astype(np.float64)
    n = arr.shape[0]
    if threshold is not None and (isinstance(threshold, bool) or not math.isfinite(float(threshold))):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    if top_k is not None:
        check_int("top_k", top_k, 1)
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but a has {n} rows")
    keep = arr != 0
    if threshold is not None:
        keep &= arr >= float(threshold)
    if top_k is not None and top_k < n:
        order = np.argsort(-arr, axis=1, kind="stable")[:, :top_k]
        top = np.zeros_like(keep)
        np.put_along_axis(top, order, True, axis=1)
        keep &= top
    g = nx.DiGraph()
    for i in range(n):
        g.add_node(i, label=str(i) if labels is None else str(labels[i]))
    for i, j in zip(*np.nonzero(keep)):
        g.add_edge(int(i), int(j), weight=float(arr[i, j]))
    return g


def effective_neighbours(a):
    """How many keys each query effectively attends to: ``exp(entropy)`` of every row.

    A one-hot row gives 1, a row uniform over ``m`` keys gives ``m``; the number measures how
    strongly softmax has sparsified each node's neighbourhood. Rows must be distributions.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]`` with non-negative rows summing to one

    Returns
    -------
    ``[n]``, same kind as ``a``, values in ``[1, n]``.

    Examples
    --------
    >>> effective_neighbours(np.array([[1.0, 0.0], [0.5, 0.5]]))
    array([1., 2.])
    """
    check_square("a", a)
    arr = as_numpy(a).astype(np.float64)
    if (arr < 0).any() or not np.allclose(arr.sum(1), 1.0, atol=1e-6):
        raise ValueError("a must have non-negative rows that sum to one")
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(arr > 0, arr * np.log(arr), 0.0)
    out = np.exp(-plogp.sum(1))
    return torch.from_numpy(out).to(a.dtype) if isinstance(a, torch.Tensor) else out


def attention_received(a):
    """Total attention each key receives, the column sums of ``a`` (in-weight of each node).

    Every query hands out a total weight of one, so the entries sum to ``n``; a node holding a
    large share is an attention sink.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``

    Returns
    -------
    ``[n]``, same kind as ``a``.

    Examples
    --------
    >>> attention_received(np.array([[1.0, 0.0], [0.9, 0.1]]))
    array([1.9, 0.1])
    """
    check_square("a", a)
    return a.sum(0)
