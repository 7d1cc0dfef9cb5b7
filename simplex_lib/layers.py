"""Neural-network layers: dot-product and 2-simplicial attention, MLP and transformer blocks.

The modules own the projections; the attention arithmetic is delegated to a *backend*:

- ``"reference"``: :func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_attention`,
  the ground truth (``seq^3`` memory per head);
- ``"torch"``: :func:`simplex_lib.ops.two_simplicial.windowed.windowed_two_simplicial_attention`,
  which gathers each query's window (or top-k selection) of keys and runs one batched einsum.
  Memory ``O(seq * w1 * w2)`` per head; the default for training the small models on a GPU or CPU;
- ``"triton"``: the fused kernels (imported lazily; on a CPU they need ``TRITON_INTERPRET=1``):
  ``simplex_lib.ops.two_simplicial.interface.two_simplicial_attention`` for windowed layers,
  ``simplex_lib.ops.topk.triton.topk_two_simplicial_attention_triton`` for the top-k layer.

All backends compute the same function; ``tests/test_layers.py`` checks them against each other.
Tensors are ``[batch, seq, heads, head_dim]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ops.checks import check_window, expand_kv
from .ops.dot.reference import dot_attention
from .ops.two_simplicial.reference import two_simplicial_attention as reference_two_simplicial
from .ops.two_simplicial.windowed import gathered_two_simplicial_attention, windowed_two_simplicial_attention
from .ops.topk.reference import topk_two_simplicial_attention
from .selection import previous_layer_topk

__all__ = [
    "BACKENDS",
    "DotProductAttention",
    "TwoSimplicialAttention",
    "TopKTwoSimplicialAttention",
    "MLP",
    "Block",
    "init_weights",
]

#: Backends of :class:`TwoSimplicialAttention`.
BACKENDS = ("reference", "torch", "triton")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class DotProductAttention(nn.Module):
    """Causal multi-head (optionally grouped-query) dot-product attention with projections.

    Shapes: input and output ``[batch, seq, d_model]``.

    Parameters
    ----------
    d_model : int
        Width of the residual stream.
    n_heads : int
        Query heads.
    n_kv_heads : int, optional
        Key/value heads (default ``n_heads``); must divide ``n_heads``.
    head_dim : int, optional
        Default ``d_model // n_heads``.
    backend : ``"sdpa"`` or ``"reference"``
        ``torch.nn.functional.scaled_dot_product_attention`` or
        :func:`simplex_lib.ops.dot.reference.dot_attention`.

    Raises
    ------
    ValueError
        If a size is not a positive int, ``n_kv_heads`` does not divide ``n_heads``,
        ``d_model`` is not divisible by ``n_heads`` without a ``head_dim``, or the backend is unknown.

    Examples
    --------
    >>> att = DotProductAttention(32, 4, 2)
    >>> att(torch.randn(2, 7, 32)).shape
    torch.Size([2, 7, 32])
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 head_dim: int | None = None, *, backend: str = "sdpa"):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        head_dim = _resolve_head_dim(d_model, n_heads, head_dim)
        _check_heads(n_heads, n_kv_heads)
        if backend not in ("sdpa", "reference"):
            raise ValueError(f"backend must be 'sdpa' or 'reference', got {backend!r}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim, self.backend = head_dim, backend
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def project(self, x):
        """``x [batch, seq, d_model]`` -> ``(q, k, v)``, each ``[batch, seq, heads, head_dim]``.

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``

        Returns
        -------
        q : Tensor ``[batch, seq, n_heads, head_dim]``
        k, v : Tensor ``[batch, seq, n_kv_heads, head_dim]``

        Raises
        ------
        ValueError
            If ``x`` is not a floating tensor of shape ``[batch, seq, d_model]``.
        """
        _check_x(x, self.d_model)
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(B, N, self.n_kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, N, self.n_kv_heads, self.head_dim)
        return q, k, v

    def forward(self, x, return_qk: bool = False):
        """Attend; with ``return_qk`` also return the (detached) ``(q, k)`` for a top-k indexer.

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``
            The (normalised) residual stream; attention is causal.
        return_qk : bool, default False
            Also return this layer's queries and keys, detached from the graph (what
            :class:`TopKTwoSimplicialAttention` ranks keys with).

        Returns
        -------
        out : Tensor ``[batch, seq, d_model]``
            Or ``(out, (q, k))`` with ``return_qk``: ``q`` ``[batch, seq, n_heads, head_dim]``,
            ``k`` ``[batch, seq, n_kv_heads, head_dim]``.

        Raises
        ------
        ValueError
            If ``x`` is not a floating tensor of shape ``[batch, seq, d_model]``.
        """
        q, k, v = self.project(x)
        if self.backend == "reference":
            o = dot_attention(q, k, v, causal=True)
        else:
            group = self.n_heads // self.n_kv_heads
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), expand_kv(k, group).transpose(1, 2),
                expand_kv(v, group).transpose(1, 2), is_causal=True,
            ).transpose(1, 2)
        out = self.o_proj(o.reshape(x.shape[0], x.shape[1], self.n_heads * self.head_dim))
        return (out, (q.detach(), k.detach())) if return_qk else out


def _resolve_head_dim(d_model: int, n_heads: int, head_dim):
    _check_positive("d_model", d_model)
    _check_positive("n_heads", n_heads)
    if head_dim is None:
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) is not divisible by n_heads ({n_heads}); give head_dim")
        head_dim = d_model // n_heads
    _check_positive("head_dim", head_dim)
    return head_dim


def _check_x(x, d_model: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [batch, seq, {d_model}], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")


def _check_heads(n_heads: int, n_kv_heads: int) -> None:
    _check_positive("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")


class TwoSimplicialAttention(nn.Module):
    """Causal 2-simplicial attention with its five projections (Q, K1, K2, V1, V2) and output.

    ``o_i = sum_{j,k} softmax_{(j,k)}(<q_i, k1_j, k2_k> / sqrt(head_dim)) (v1_j * v2_k)`` over the
    pairs with ``i - w1 < j <= i`` and ``i - w2 < k <= i`` (Roy et al., 2025, eqs. 5-7 with their
    sliding windows). No position encoding is applied here (the trilinear form is not rotation
    invariant); in the models, position enters through embeddings and the causal windows.

    Shapes: input and output ``[batch, seq, d_model]``.

    Parameters
    ----------
    d_model : int
        Width of the residual stream.
    n_heads : int
        Query heads.
    n_kv_heads : int, optional
        Heads of K1, K2, V1, V2 (default ``n_heads``); query head ``h`` uses ``h // (n_heads //
        n_kv_heads)``.
    head_dim : int, optional
        Default ``d_model // n_heads``.
    w1, w2 : int or None
        Windows of the two key sets (``None``: the whole causal prefix, ``seq^3`` work).
    backend : ``"reference"``, ``"torch"`` or ``"triton"``
        See the module docstring.

    Raises
    ------
    ValueError
        As :class:`DotProductAttention`, or if a window is not None or an int >= 1.

    Examples
    --------
    >>> att = TwoSimplicialAttention(32, 4, 2, w1=4, w2=2)
    >>> att(torch.randn(2, 6, 32)).shape
    torch.Size([2, 6, 32])
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 head_dim: int | None = None, w1=None, w2=None, *, backend: str = "reference"):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        head_dim = _resolve_head_dim(d_model, n_heads, head_dim)
        _check_heads(n_heads, n_kv_heads)
        w1, w2 = check_window("w1", w1), check_window("w2", w2)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.d_model, self.n_heads, self.n_kv_heads, self.head_dim = d_model, n_heads, n_kv_heads, head_dim
        self.w1, self.w2, self.backend = w1, w2, backend
        kv = n_kv_heads * head_dim
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k1_proj = nn.Linear(d_model, kv, bias=False)
        self.k2_proj = nn.Linear(d_model, kv, bias=False)
        self.v1_proj = nn.Linear(d_model, kv, bias=False)
        self.v2_proj = nn.Linear(d_model, kv, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def extra_repr(self) -> str:
        """The settings ``print(module)`` shows: heads, key/value heads, windows and backend."""
        return f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, w1={self.w1}, w2={self.w2}, backend={self.backend!r}"

    def project(self, x):
        """``x [batch, seq, d_model]`` -> ``(q, k1, k2, v1, v2)``, each ``[batch, seq, heads, head_dim]``.

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``

        Returns
        -------
        q : Tensor ``[batch, seq, n_heads, head_dim]``
        k1, k2, v1, v2 : Tensor ``[batch, seq, n_kv_heads, head_dim]``

        Raises
        ------
        ValueError
            If ``x`` is not a floating tensor of shape ``[batch, seq, d_model]``.
        """
        _check_x(x, self.d_model)
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.n_heads, self.head_dim)
        rest = [p(x).view(B, N, self.n_kv_heads, self.head_dim)
                for p in (self.k1_proj, self.k2_proj, self.v1_proj, self.v2_proj)]
        return (q, *rest)

    def attend(self, q, k1, k2, v1, v2):
        """The attention arithmetic on projected tensors, by the chosen backend.

        Causal, with the layer's windows ``w1``, ``w2`` and the scale ``1/sqrt(head_dim)``.

        Parameters
        ----------
        q : Tensor ``[batch, seq, n_heads, head_dim]``
        k1, k2, v1, v2 : Tensor ``[batch, seq, n_kv_heads, head_dim]``
            As :meth:`project` returns them.

        Returns
        -------
        Tensor ``[batch, seq, n_heads, head_dim]``
            The value products ``v1_j * v2_k`` mixed by the attention weights.

        Raises
        ------
        ValueError
            If the tensors' shapes, dtypes or devices disagree (the backends' checks);
            with ``backend="triton"``, also for inputs the kernel does not take
            (head_dim, dtype, a CPU tensor without ``TRITON_INTERPRET=1``).
        """
        if self.backend == "reference":
            return reference_two_simplicial(q, k1, k2, v1, v2, w1=self.w1, w2=self.w2,
                                            causal=True)
        if self.backend == "triton":
            # Imported here: Triton is an optional, heavy dependency that the other
            # backends never need.
            from .ops.two_simplicial.interface import two_simplicial_attention

            return two_simplicial_attention(q, k1, k2, v1, v2, w1=self.w1, w2=self.w2,
                                            scale=None)
        return windowed_two_simplicial_attention(q, k1, k2, v1, v2, w1=self.w1, w2=self.w2)

    def forward(self, x, prev_qk=None):
        """``x [batch, seq, d_model]`` -> ``[batch, seq, d_model]`` (``prev_qk`` is ignored).

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``
        prev_qk : optional
            Accepted and ignored, so that every 2-simplicial layer has the call signature of
            :meth:`TopKTwoSimplicialAttention.forward`.

        Returns
        -------
        Tensor ``[batch, seq, d_model]``

        Raises
        ------
        ValueError
            As :meth:`project` and :meth:`attend`.
        """
        o = self.attend(*self.project(x))
        return self.o_proj(o.reshape(x.shape[0], x.shape[1], self.n_heads * self.head_dim))


class TopKTwoSimplicialAttention(TwoSimplicialAttention):
    """2-simplicial attention over the ``topk x topk`` pairs of keys picked per query.

    The selection follows Pappone (2025): rank the past keys of query ``i`` by the head-averaged
    causal softmax of the *preceding dot-product layer* (``prev_qk``) and use the same ``topk``
    positions for K1 and K2 (``previous_layer_topk`` of the selection module). Without a
    preceding dot-product layer the layer ranks with its own ``(q, k1)``. The selection is not
    differentiated; gradients flow through the selected pairs only.

    How the selection learns: there is no indexer of its own to train. The library uses the
    blog's shortcut (Pappone, 2025): the ranking reuses the preceding dot-product layer's
    attention, whose ``q, k`` are trained by that layer's own loss gradient, so the selection
    improves as the model does. It does *not* implement DeepSeek Sparse Attention's separate
    lightning indexer with its KL warm-up against the dense attention.

    The selection is one set of ``topk`` positions per query, shared by all heads
    (``[batch, seq, 1, topk]``), so with ``backend="triton"`` and at least
    ``simplex_lib.ops.topk.triton.PACK_MIN_GROUP`` query heads per key/value head the kernel
    packs a KV group's heads into one tile (see ``topk_dispatch`` there).

    Parameters
    ----------
    d_model, n_heads, n_kv_heads, head_dim
        As in :class:`TwoSimplicialAttention`.
    topk : int
        Keys kept per query (``>= 1``); ``topk**2`` pairs.
    backend : ``"torch"``, ``"reference"`` or ``"triton"``
        Gathered einsum (:func:`simplex_lib.ops.two_simplicial.windowed.gathered_two_simplicial_attention`),
        the masked top-k reference ``topk_two_simplicial_attention``, or the Triton kernels
        ``simplex_lib.ops.topk.triton.topk_two_simplicial_attention_triton`` (float16, bfloat16
        or float32 on a GPU, or under ``TRITON_INTERPRET=1``; inputs the kernels do not take raise
        a ``ValueError`` naming the layer's backend, never a silent fallback).
    deterministic : bool, default False
        With ``backend="triton"``: bitwise-identical gradients on every run (the kernels'
        ``deterministic`` option: partial rows and a fixed-order sum instead of atomic adds).
        Must stay False for the other backends, which do not take it.

    Examples
    --------
    >>> att = TopKTwoSimplicialAttention(32, 4, 2, topk=3)
    >>> att(torch.randn(2, 6, 32)).shape
    torch.Size([2, 6, 32])
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 head_dim: int | None = None, *, topk: int, backend: str = "torch",
                 deterministic: bool = False):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} for the top-k variant, got {backend!r}")
        _check_positive("topk", topk)
        if not isinstance(deterministic, bool):
            raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
        if deterministic and backend != "triton":
            raise ValueError(f"deterministic=True needs backend='triton' (the top-k kernels' option), "
                             f"got backend={backend!r}")
        super().__init__(d_model, n_heads, n_kv_heads, head_dim, backend="reference")
        self.topk, self.backend, self.deterministic = topk, backend, deterministic

    def extra_repr(self) -> str:
        """The settings ``print(module)`` shows: heads, key/value heads, ``topk`` and backend."""
        return f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, topk={self.topk}, backend={self.backend!r}"

    def select(self, q, k1, prev_qk=None) -> torch.Tensor:
        """Top-k positions ``[batch, seq, 1, topk]`` (``-1`` padded) from ``prev_qk`` or ``(q, k1)``.

        Keys are ranked by the head-averaged causal softmax weights of the pair (computed in
        float32, without gradients); see :func:`simplex_lib.selection.previous_layer_topk`.

        Parameters
        ----------
        q : Tensor ``[batch, seq, n_heads, head_dim]``
        k1 : Tensor ``[batch, seq, n_kv_heads, head_dim]``
            Used only when ``prev_qk`` is None.
        prev_qk : tuple ``(q_prev, k_prev)``, optional
            Queries and keys of the preceding dot-product layer, ``[batch, seq, heads, head_dim]``
            each (their own head counts and head_dim).

        Returns
        -------
        int64 Tensor ``[batch, seq, 1, topk]``; query ``i`` has ``min(topk, i + 1)`` positions,
        the rest ``-1``.

        Raises
        ------
        ValueError
            If ``prev_qk`` is not a pair of tensors with ``q``'s batch and seq.
        """
        if prev_qk is not None and (
                not isinstance(prev_qk, (tuple, list)) or len(prev_qk) != 2
                or not all(isinstance(t, torch.Tensor) and t.shape[:2] == q.shape[:2] for t in prev_qk)):
            raise ValueError(f"prev_qk must be a pair (q, k) of [batch, seq, heads, head_dim] tensors with "
                             f"batch and seq {tuple(q.shape[:2])}")
        qs, ks = (q, k1) if prev_qk is None else prev_qk
        with torch.no_grad():
            return previous_layer_topk(qs.detach().float(), ks.detach().float(), self.topk)

    def attend(self, q, k1, k2, v1, v2, prev_qk=None):
        """Select the top-k keys (from ``prev_qk`` or ``(q, k1)``) and attend over their pairs.

        Parameters
        ----------
        q : Tensor ``[batch, seq, n_heads, head_dim]``
        k1, k2, v1, v2 : Tensor ``[batch, seq, n_kv_heads, head_dim]``
        prev_qk : tuple ``(q_prev, k_prev)``, optional
            As in :meth:`select`.

        Returns
        -------
        Tensor ``[batch, seq, n_heads, head_dim]``

        Raises
        ------
        ValueError
            As :meth:`select`, or if the tensors' shapes, dtypes or devices disagree; with
            ``backend="triton"``, also for inputs the top-k kernels do not take (a dtype other
            than float16, bfloat16 or float32, a CPU tensor without ``TRITON_INTERPRET=1``).
        """
        idx = self.select(q, k1, prev_qk)
        if self.backend == "reference":
            return topk_two_simplicial_attention(q, k1, k2, v1, v2, idx)
        if self.backend == "triton":
            # Imported here: Triton is an optional, heavy dependency that the other backends never need.
            from .ops.topk.triton import topk_two_simplicial_attention_triton

            try:
                return topk_two_simplicial_attention_triton(q, k1, k2, v1, v2, idx,
                                                            deterministic=self.deterministic)
            except ValueError as e:
                raise ValueError(f"backend 'triton' of the top-k variant (TopKTwoSimplicialAttention) "
                                 f"cannot take these inputs: {e}") from e
        return gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx[:, :, 0])

    def forward(self, x, prev_qk=None):
        """``x [batch, seq, d_model]`` -> ``[batch, seq, d_model]``.

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``
        prev_qk : tuple ``(q_prev, k_prev)``, optional
            The preceding dot-product layer's detached queries and keys (see :meth:`select`);
            None: the layer ranks keys with its own ``(q, k1)``.

        Returns
        -------
        Tensor ``[batch, seq, d_model]``

        Raises
        ------
        ValueError
            As :meth:`TwoSimplicialAttention.project` and :meth:`select`.
        """
        o = self.attend(*self.project(x), prev_qk=prev_qk)
        return self.o_proj(o.reshape(x.shape[0], x.shape[1], self.n_heads * self.head_dim))


class MLP(nn.Module):
    """Position-wise feed-forward network ``Linear -> GELU -> Linear``.

    Parameters
    ----------
    d_model : int >= 1
        Input and output width.
    d_hidden : int >= 1
        Hidden width (both linear maps without bias).

    Raises
    ------
    ValueError
        If a width is not a positive int.

    Examples
    --------
    >>> MLP(16, 64)(torch.randn(2, 3, 16)).shape
    torch.Size([2, 3, 16])
    """

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        _check_positive("d_model", d_model)
        _check_positive("d_hidden", d_hidden)
        self.up = nn.Linear(d_model, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x):
        """Apply the network to every position.

        Parameters
        ----------
        x : floating Tensor ``[..., d_model]``, e.g. ``[batch, seq, d_model]``

        Returns
        -------
        Tensor of ``x``'s shape.
        """
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``.

    Parameters
    ----------
    attn : nn.Module
        A :class:`DotProductAttention`, :class:`TwoSimplicialAttention` or
        :class:`TopKTwoSimplicialAttention`.
    d_model, d_hidden : int
        Widths of the residual stream and the MLP.

    ``forward(x, prev_qk)`` returns ``(x, qk)``: ``qk`` is the detached ``(q, k)`` of a dot-product
    block (for a later top-k block to rank keys with) or the incoming ``prev_qk`` otherwise.

    Examples
    --------
    >>> blk = Block(DotProductAttention(16, 2), 16, 64)
    >>> y, qk = blk(torch.randn(1, 5, 16))
    >>> y.shape, qk[0].shape
    (torch.Size([1, 5, 16]), torch.Size([1, 5, 2, 8]))
    """

    def __init__(self, attn: nn.Module, d_model: int, d_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = attn
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_hidden)

    @property
    def is_simplicial(self) -> bool:
        """True for a 2-simplicial block (windowed or top-k)."""
        return isinstance(self.attn, TwoSimplicialAttention)

    def forward(self, x, prev_qk=None):
        """One block: attention then MLP, each on the layer-normalised stream and added back.

        Parameters
        ----------
        x : floating Tensor ``[batch, seq, d_model]``
            The residual stream.
        prev_qk : tuple ``(q, k)``, optional
            Detached queries and keys of the latest dot-product block, passed to a 2-simplicial
            attention (only the top-k variant uses them).

        Returns
        -------
        x : Tensor ``[batch, seq, d_model]``
        qk : tuple ``(q, k)`` or None
            This block's ``(q, k)`` (each ``[batch, seq, heads, head_dim]``, detached) if its
            attention is a :class:`DotProductAttention`, else ``prev_qk`` unchanged.
        """
        h = self.norm1(x)
        if isinstance(self.attn, DotProductAttention):
            a, qk = self.attn(h, return_qk=True)
        else:
            a, qk = self.attn(h, prev_qk), prev_qk
        x = x + a
        return x + self.mlp(self.norm2(x)), qk


def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 style initialisation: N(0, 0.02), output projections scaled by ``1/sqrt(2 n_layer)``.

    In place. Every parameter with at least 2 dimensions (weights and embeddings) is drawn from
    a normal of std 0.02; the residual-stream outputs (``o_proj.weight`` and ``mlp.down.weight``)
    use ``0.02 / sqrt(2 n_layer)``. Biases and LayerNorm parameters are left as they are.

    Parameters
    ----------
    module : nn.Module
        The model (or any module) whose parameters to draw; uses the global torch RNG.
    n_layer : int >= 1
        Number of blocks in the model.
    """
    for name, p in module.named_parameters():
        if p.dim() < 2:
            continue
        std = 0.02
        if name.endswith("o_proj.weight") or name.endswith("mlp.down.weight"):
            std = 0.02 / math.sqrt(2 * n_layer)
        nn.init.normal_(p, mean=0.0, std=std)
