"""Multi-hop pointer chasing, and one hand-built 2-simplicial head that solves two hops.

Each sequence lists the ``M`` edges ``u -> f(u)`` of a fresh random permutation ``f`` of
``{0..M-1}`` in random order, then a query symbol ``x``; the answer is ``f^hops(x)``.
Dot-product attention follows one edge per layer; a 2-simplicial layer can score a *pair* of
edges ``(x -> a, a -> b)`` at once (:func:`two_hop_construction`). Neither needs one layer per
hop: :func:`pointer_doubling` repeats one hand-built dot-product layer so that every edge token
learns its ``2**l``-th successor, which answers ``2**(L-1)`` hops in ``L`` layers.
"""

from __future__ import annotations

import torch

from ..ops.two_simplicial.reference import two_simplicial_attention, two_simplicial_logits

__all__ = ["hop_batch", "HopTask", "two_hop_construction", "pointer_doubling"]


def hop_batch(batch: int, M: int, hops: int, generator: torch.Generator):
    """Pointer chasing: apply a random permutation ``hops`` times to ``x``.

    One token per edge ``u -> f(u)`` (id ``u * M + f(u)``), in random order,
    then one query token (id ``M * M + x``). The target is ``f^hops(x)``.

    Parameters
    ----------
    batch : int >= 1
        Sequences.
    M : int >= 2
        Nodes of the permutation (``M`` edges per sequence).
    hops : int >= 1
        How many times the permutation is applied.
    generator : torch.Generator
        The source of every random draw.

    Returns
    -------
    tokens : int64 ``[batch, M + 1]`` (vocabulary ``M * M + M``)
    target : int64 ``[batch]`` in ``[0, M)``

    Raises
    ------
    ValueError
        If ``M < 2``, ``hops < 1`` or ``batch < 1``.

    Examples
    --------
    >>> t, y = hop_batch(2, 4, 2, torch.Generator().manual_seed(0))
    >>> t.shape, bool((y < 4).all())
    (torch.Size([2, 5]), True)
    """
    if M < 2 or hops < 1 or batch < 1:
        raise ValueError(f"need M >= 2, hops >= 1 and batch >= 1, "
                         f"got M={M}, hops={hops}, batch={batch}")
    # f(u) = perm[u]; the edges are listed in the order u
    perm = torch.argsort(torch.rand(batch, M, generator=generator), dim=1)
    u = torch.argsort(torch.rand(batch, M, generator=generator), dim=1)
    x = torch.randint(0, M, (batch,), generator=generator)
    y = x.clone()
    for _ in range(hops):
        y = perm.gather(1, y[:, None])[:, 0]
    edges = u * M + perm.gather(1, u)
    tokens = torch.cat([edges, (M * M + x)[:, None]], dim=1)
    return tokens, y


class HopTask:
    """:func:`hop_batch` as a training task: classify the query's ``hops``-th successor.

    No position embedding (the edges are a set); causal attention, read at the query (the last
    position), which sees every edge.

    Parameters
    ----------
    M : int >= 2
        Nodes of the permutation.
    hops : int >= 1
        The successor to predict.

    Examples
    --------
    >>> task = HopTask(M=4, hops=2)
    >>> x, y = task.batch("train", 3, 0, torch.Generator().manual_seed(0))
    >>> x.shape, task.vocab_size, task.n_classes
    (torch.Size([3, 5]), 20, 4)
    """

    name = "hops"
    head = "classify"
    causal = True
    positions = False

    def __init__(self, M: int, hops: int):
        if M < 2 or hops < 1:
            raise ValueError(f"need M >= 2 and hops >= 1, got M={M}, hops={hops}")
        self.M, self.hops = M, hops
        self.vocab_size, self.n_classes = M * M + M, M
        self.info = {"task": "hops", "M": M, "hops": hops}

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator):
        """A fresh batch (``split`` and ``block_size`` do not matter: every batch is new).

        Parameters
        ----------
        split : str
            ``"train"`` or ``"val"``; unused.
        batch_size : int >= 1
        block_size : int
            Unused (the length is ``M + 1``).
        generator : torch.Generator

        Returns
        -------
        (tokens, target) : as :func:`hop_batch` returns.
        """
        return hop_batch(batch_size, self.M, self.hops, generator)


def two_hop_construction(tokens: torch.Tensor, M: int, c: float = 20.0):
    """One hand-built 2-simplicial head that answers :func:`hop_batch` with ``hops=2``.

    With head dimension ``2M`` and ``onehot`` vectors of length ``M``:

    * query token: ``q = c * [onehot(x), ones]``;
    * edge token ``u -> v`` as first key: ``k1 = [onehot(u), onehot(v)]``, value ``v1 = 1``;
    * edge token ``u -> v`` as second key: ``k2 = [ones, onehot(u)]``, value ``v2 = onehot(v)``;
    * the query token as a key: all zeros.

    The trilinear logit of the pair (edge ``j``, edge ``k``) is then
    ``c * ([u_j = x] + [v_j = u_k])``: ``2c`` for exactly one pair, the two chained edges
    ``x -> f(x) -> f(f(x))``, at most ``c`` for every other pair. The output at the query
    position is close to ``onehot(f(f(x)))``.

    Parameters
    ----------
    tokens : int64 ``[batch, M + 1]`` from :func:`hop_batch`
    M : int
    c : float
        Logit gap; larger is sharper.

    Returns
    -------
    (output ``[batch, M]`` at the query position, logits ``[batch, M + 1, M + 1]`` of the query)

    Examples
    --------
    >>> t, y = hop_batch(4, 5, 2, torch.Generator().manual_seed(0))
    >>> out, _ = two_hop_construction(t, 5)
    >>> bool((out.argmax(-1) == y).all())
    True
    """
    B, n = tokens.shape
    if n != M + 1:
        raise ValueError(f"tokens must have M + 1 = {M + 1} positions, got {n}")
    eye = torch.eye(M, dtype=torch.float64)
    src, dst = tokens[:, :-1] // M, tokens[:, :-1] % M
    x = tokens[:, -1] - M * M
    ones = torch.ones(B, M, M, dtype=torch.float64)
    q = torch.zeros(B, n, 1, 2 * M, dtype=torch.float64)
    q[:, -1, 0] = c * torch.cat([eye[x], torch.ones(B, M, dtype=torch.float64)], dim=-1)
    k1, k2, v1, v2 = (torch.zeros(B, n, 1, 2 * M, dtype=torch.float64) for _ in range(4))
    k1[:, :-1, 0] = torch.cat([eye[src], eye[dst]], dim=-1)
    k2[:, :-1, 0] = torch.cat([ones, eye[src]], dim=-1)
    v1[:, :-1, 0] = 1.0
    v2[:, :-1, 0, :M] = eye[dst]
    out = two_simplicial_attention(q, k1, k2, v1, v2, scale=1.0)[:, -1, 0, :M]
    logits = two_simplicial_logits(q, k1, k2, scale=1.0)[:, 0, -1]
    return out, logits


def pointer_doubling(tokens: torch.Tensor, M: int, n_layers: int,
                     c: float = 30.0):
    """``2**(n_layers - 1)`` hops of :func:`hop_batch` in ``n_layers``.

    Every edge token ``u -> v`` carries a one-hot *pointer*, first
    ``onehot(v) = f(u)``. In each of the first ``n_layers - 1`` dot-product
    layers, edge ``i`` attends (query: its pointer; keys: every edge's
    source ``onehot(u_j)``; logit gap ``c``) to the edge that leaves its
    pointer's node and copies that edge's pointer, so ``f^(2^l)`` becomes
    ``f^(2^(l+1))``: pointer doubling. Every such layer has the same
    weights (a looped layer). The last layer is the query's lookup: the
    query attends to the edge leaving ``x`` and reads its pointer,
    ``f^(2^(n_layers-1))(x)``.

    Parameters
    ----------
    tokens : int64 ``[batch, M + 1]`` from :func:`hop_batch`
    M : int
    n_layers : int, >= 1
    c : float
        Logit gap of every lookup; larger is sharper.

    Returns
    -------
    float64 ``[batch, M]``: the query's output, close to
    ``onehot(f^(2^(n_layers-1))(x))``.

    Examples
    --------
    >>> t, y = hop_batch(8, 5, 4, torch.Generator().manual_seed(0))
    >>> bool((pointer_doubling(t, 5, n_layers=3).argmax(-1) == y).all())
    True
    """
    B, n = tokens.shape
    if n != M + 1:
        raise ValueError(f"tokens must have M + 1 = {M + 1} positions, "
                         f"got {n}")
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    eye = torch.eye(M, dtype=torch.float64)
    source = eye[tokens[:, :-1] // M]   # [B, M edges, M]: keys, u
    pointer = eye[tokens[:, :-1] % M]   # [B, M edges, M]: f(u)
    for _ in range(n_layers - 1):       # one doubling layer, repeated
        logits = c * pointer @ source.transpose(1, 2)
        pointer = torch.softmax(logits, dim=-1) @ pointer  # f^(2^(l+1))
    query = c * eye[tokens[:, -1] - M * M]                 # [B, M]
    logits = torch.einsum("bm,bjm->bj", query, source)
    weights = torch.softmax(logits, dim=-1)
    return torch.einsum("bj,bjm->bm", weights, pointer)
