"""Walks and diffusion on an attention graph: what ``k`` layers of attention can mix.

Powers of an attention matrix sum the weights of walks (:func:`k_hop`), their supports say who can
have heard from whom (:func:`reach`), and applying them to a value function is diffusion
(:func:`diffuse`, :func:`diffusion_trajectory`). A stack of different layers composes different
graphs (:func:`compose_layers`).
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import as_numpy, check_int, check_square

__all__ = ["k_hop", "reach", "diffuse", "diffusion_trajectory", "compose_layers"]


def k_hop(a, k: int):
    """``a`` to the power ``k``: the summed weights of all ``k``-step walks.

    For a 0/1 adjacency matrix this counts the walks ``i -> j`` of length
    ``k``; for a row-stochastic attention matrix it is the probability that a
    ``k``-step random walk from ``i`` (following the arrows, i.e. attending
    ``k`` times) ends at ``j``: the weight with which ``V[j]`` reaches ``i``
    after ``k`` attention steps. ``k = 0`` gives the identity.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    k : int >= 0

    Returns
    -------
    Same type, shape and dtype as ``a``.

    Examples
    --------
    >>> k_hop(np.array([[0, 1], [1, 0]]), 3)
    array([[0, 1],
           [1, 0]])
    """
    check_square("a", a)
    k = check_int("k", k, 0)
    if isinstance(a, torch.Tensor):
        return torch.linalg.matrix_power(a, k)
    return np.linalg.matrix_power(np.asarray(a), k)


def reach(a, k: int, *, tol: float = 0.0):
    """Which nodes a walk of *at most* ``k`` steps can reach: ``reach[i, j]`` iff ``j`` is within ``k`` hops of ``i``.

    Edges are the entries with ``|a[i, j]| > tol``. Since ``j`` at distance ``0`` is ``i``
    itself, the diagonal is always True. In attention terms: after ``k`` layers, token ``i`` can
    have received information from token ``j`` only if ``reach[i, j]``.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    k : int >= 0
    tol : float >= 0

    Returns
    -------
    Bool array of the same kind as ``a``, ``[n, n]``.

    Examples
    --------
    >>> path = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    >>> reach(path, 1).astype(int)
    array([[1, 1, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    check_square("a", a)
    k = check_int("k", k, 0)
    if isinstance(tol, bool) or not (float(tol) >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    arr = as_numpy(a)
    step = (np.abs(arr) > tol) | np.eye(arr.shape[0], dtype=bool)
    out = np.eye(arr.shape[0], dtype=bool)
    for _ in range(k):  # boolean products stay exact, unlike float powers
        out = (out.astype(np.int64) @ step.astype(np.int64)) > 0
    return torch.from_numpy(out) if isinstance(a, torch.Tensor) else out


def _check_values(a, f):
    n = a.shape[0]
    if not isinstance(f, type(a)):
        raise ValueError(f"f must be a {type(a).__name__} like a, got {type(f).__name__}")
    if f.ndim not in (1, 2) or f.shape[0] != n:
        raise ValueError(f"f must have shape [{n}] or [{n}, d], got {tuple(f.shape)}")


def diffuse(a, f, k: int = 1):
    """Diffuse a value function ``f`` over the graph ``k`` times: a^k @ f.

    With ``a`` an attention matrix ``P`` and ``f = V``, ``k = 1`` is one
    attention layer's output ``P V`` (node ``i`` averages the values of the
    nodes it attends to).

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    f : same kind as ``a``, ``[n]`` or ``[n, d]``
    k : int >= 0

    Returns
    -------
    Same shape as ``f``.

    Examples
    --------
    >>> a = np.array([[0.5, 0.5], [0.0, 1.0]])
    >>> diffuse(a, np.array([2.0, 4.0]), k=2)
    array([3.5, 4. ])
    """
    check_square("a", a)
    _check_values(a, f)
    return k_hop(a, k) @ f


def diffusion_trajectory(a, f, k: int):
    """The values after ``0, 1, ..., k`` diffusion steps, stacked: ``out[t] = a^t @ f``.

    Parameters
    ----------
    a : Tensor or ndarray ``[n, n]``
    f : same kind as ``a``, ``[n]`` or ``[n, d]``
    k : int >= 0

    Returns
    -------
    ``[k + 1, *f.shape]``, same kind as ``a``.

    Examples
    --------
    >>> diffusion_trajectory(np.eye(2), np.array([1.0, 2.0]), 2).shape
    (3, 2)
    """
    check_square("a", a)
    _check_values(a, f)
    k = check_int("k", k, 0)
    out = [f]
    for _ in range(k):
        out.append(a @ out[-1])
    return torch.stack(out) if isinstance(a, torch.Tensor) else np.stack(out)


def compose_layers(mats, *, residual: float = 0.0):
    """The token-mixing matrix of a stack of attention layers (value maps and MLPs left out).

    Layer ``l`` mixes tokens with ``M_l = (1 - residual) A_l + residual I`` (a residual
    connection keeps part of each token's own state); the stack applies ``M_1`` first, so the
    total is ``M_L ... M_2 M_1``. With one matrix repeated ``L`` times and ``residual = 0`` this
    is ``k_hop(A, L)``: depth buys walks of ``L`` hops, each hop through a different graph.

    Parameters
    ----------
    mats : sequence of ``[n, n]`` matrices (all Tensors or all ndarrays), at least one
    residual : float in ``[0, 1]``

    Returns
    -------
    ``[n, n]``, same kind as the inputs.

    Examples
    --------
    >>> a = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> compose_layers([a, a, a])
    array([[0., 1.],
           [1., 0.]])
    """
    mats = list(mats)
    if not mats:
        raise ValueError("mats must contain at least one matrix")
    for idx, m in enumerate(mats):
        check_square(f"mats[{idx}]", m)
        if type(m) is not type(mats[0]) or m.shape != mats[0].shape:
            raise ValueError(f"mats[{idx}] must match mats[0] in kind and shape")
    if isinstance(residual, bool) or not (0.0 <= float(residual) <= 1.0):
        raise ValueError(f"residual must be a number in [0, 1], got {residual!r}")
    r = float(residual)
    n = mats[0].shape[0]
    if isinstance(mats[0], torch.Tensor):
        eye = torch.eye(n, dtype=mats[0].dtype, device=mats[0].device)
    else:
        eye = np.eye(n, dtype=np.result_type(mats[0].dtype, np.float64) if r else mats[0].dtype)
    total = eye
    for m in mats:
        total = ((1 - r) * m + r * eye if r else m) @ total
    return total
