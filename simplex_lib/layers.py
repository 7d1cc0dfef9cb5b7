"""Neural-network layers: dot-product and 2-simplicial attention, MLP and transformer blocks.

The modules own the projections; the attention arithmetic is delegated to a *backend*:

- ``"reference"``: :func:`simplex_lib.reference.two_simplicial_attention`, the ground truth;
- ``"torch"``: :func:`gathered_two_simplicial_attention`, which gathers each query's window (or
  top-k selection) of keys and runs one batched einsum. Memory ``O(seq * w1 * w2)`` per head, no
  Python loop; the default for training the small models on a GPU or CPU;
- ``"triton"``: :func:`simplex_lib.kernels.two_simplicial_attention`, the fused kernel (imported
  lazily; on a CPU it needs ``TRITON_INTERPRET=1``).

All backends compute the same function; ``tests/test_layers.py`` checks them against each other.
Tensors are ``[batch, seq, heads, head_dim]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_qkv, check_window, default_scale, expand_kv

__all__ = [
    "BACKENDS",
    "window_indices",
    "gathered_two_simplicial_attention",
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


def window_indices(n: int, w: int, *, device=None) -> torch.Tensor:
    """The key positions of each query's causal sliding window, ``-1`` padded.

    Row ``i`` holds ``i - w + 1, ..., i``; positions before the start of the sequence are ``-1``
    (the padding convention of :mod:`simplex_lib.sparsity`).

    Parameters
    ----------
    n : int
        Sequence length.
    w : int
        Window length (``>= 1``); a window longer than ``n`` is clipped to ``n``.

    Returns
    -------
    int64 Tensor ``[n, min(w, n)]``

    Examples
    --------
    >>> window_indices(3, 2).tolist()
    [[-1, 0], [0, 1], [1, 2]]
    """
    _check_positive("n", n)
    check_window("w", w)
    if w is None:
        raise ValueError("w must be an int >= 1 here (use w = n for a full causal window)")
    w = min(w, n)
    idx = torch.arange(n, device=device)[:, None] - (w - 1) + torch.arange(w, device=device)
    return torch.where(idx >= 0, idx, torch.full_like(idx, -1))


def gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx1, idx2=None, *, scale=None) -> torch.Tensor:
    """2-simplicial attention over per-query key selections, by gathering and one einsum.

    Query ``i`` attends to the pairs ``(j, k)`` with ``j`` in ``idx1[..., i, :]`` and ``k`` in
    ``idx2[..., i, :]``; ``-1`` marks an empty slot. One selection serves all heads. With
    :func:`window_indices` this is causal sliding-window attention; with the output of
    :func:`simplex_lib.sparsity.topk_indices` it is top-k 2-simplicial attention. Key/value heads
    are never expanded: query heads are grouped under their key/value head (GQA).

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    idx1 : int Tensor ``[seq, m1]`` (same for every batch row) or ``[batch, seq, m1]``
        Positions for K1/V1; every position must satisfy ``-1 <= j <= i``. Position ``i`` itself
        should be selected, so that every query sees at least one pair.
    idx2 : int Tensor, optional
        Positions for K2/V2 (default ``idx1``).
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``; a query with no visible pair outputs zeros.

    Examples
    --------
    >>> q = torch.randn(2, 5, 4, 8); kv = [torch.randn(2, 5, 2, 8) for _ in range(4)]
    >>> o = gathered_two_simplicial_attention(q, *kv, window_indices(5, 3), window_indices(5, 2))
    >>> o.shape
    torch.Size([2, 5, 4, 8])
    """
    group = check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    B, N, Hq, D = q.shape
    Hkv = Hq // group
    idx2 = idx1 if idx2 is None else idx2
    sel = []
    for name, ix in (("idx1", idx1), ("idx2", idx2)):
        if not isinstance(ix, torch.Tensor) or ix.dim() not in (2, 3) or ix.is_floating_point():
            raise ValueError(f"{name} must be an integer Tensor [seq, m] or [batch, seq, m]")
        if ix.dim() == 2:
            ix = ix[None]
        if ix.shape[0] not in (1, B) or ix.shape[1] != N or ix.shape[2] < 1:
            raise ValueError(f"{name} has shape {tuple(ix.shape)}; expected [1 or {B}, {N}, m >= 1]")
        sel.append(ix.to(device=q.device, dtype=torch.int64).expand(B, N, ix.shape[2]))
    s = default_scale(D, scale)
    b = torch.arange(B, device=q.device)[:, None, None]

    def gather(t, ix):  # [B, N, Hkv, D] -> [B, N(i), m, Hkv, D]
        return t[b, ix.clamp(min=0)]

    K1, V1 = gather(k1, sel[0]), gather(v1, sel[0])
    K2, V2 = gather(k2, sel[1]), gather(v2, sel[1])
    qg = q.view(B, N, Hkv, group, D)
    # (q * k1) first, then a batched matmul against k2: the tiling of the paper's Figure 2.
    logits = torch.einsum("bihgd,bijhd,bikhd->bihgjk", qg, K1, K2) * s
    ok = (sel[0] >= 0)[:, :, None, None, :, None] & (sel[1] >= 0)[:, :, None, None, None, :]
    flat = logits.masked_fill(~ok, float("-inf")).flatten(-2)
    row_ok = ok.flatten(-2).any(-1, keepdim=True)
    # Empty rows stay finite: zero output and no NaN in the gradients.
    p = torch.softmax(flat.masked_fill(~row_ok, 0.0), dim=-1) * row_ok
    p = p.view_as(logits)
    out = torch.einsum("bihgjk,bijhd,bikhd->bihgd", p, V1, V2)
    return out.reshape(B, N, Hq, D)


class DotProductAttention(nn.Module):
    """Causal multi-head (optionally grouped-query) dot-product attention with projections.

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
        :func:`simplex_lib.reference.dot_attention`.

    Shapes: input and output ``[batch, seq, d_model]``.

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
        self.n_heads, self.n_kv_heads, self.head_dim, self.backend = n_heads, n_kv_heads, head_dim, backend
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def project(self, x):
        """``x [batch, seq, d_model]`` -> ``(q, k, v)``, each ``[batch, seq, heads, head_dim]``."""
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(B, N, self.n_kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, N, self.n_kv_heads, self.head_dim)
        return q, k, v

    def forward(self, x, return_qk: bool = False):
        """Attend; with ``return_qk`` also return the (detached) ``(q, k)`` for a top-k indexer."""
        q, k, v = self.project(x)
        if self.backend == "reference":
            from .reference import dot_attention

            o = dot_attention(q, k, v, causal=True)
        else:
            group = self.n_heads // self.n_kv_heads
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), expand_kv(k, group).transpose(1, 2),
                expand_kv(v, group).transpose(1, 2), is_causal=True,
            ).transpose(1, 2)
        out = self.o_proj(o.reshape(x.shape[0], x.shape[1], -1))
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
        Windows of the two key sets (``None``: no window, ``seq^3`` work).
    backend : ``"reference"``, ``"torch"`` or ``"triton"``
        See the module docstring. ``"torch"`` needs both windows.

    Shapes: input and output ``[batch, seq, d_model]``.

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
        check_window("w1", w1)
        check_window("w2", w2)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "torch" and (w1 is None or w2 is None):
            raise ValueError("backend 'torch' gathers windows: give both w1 and w2")
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
        return f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, w1={self.w1}, w2={self.w2}, backend={self.backend!r}"

    def project(self, x):
        """``x [batch, seq, d_model]`` -> ``(q, k1, k2, v1, v2)``, each ``[batch, seq, heads, head_dim]``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape [batch, seq, {self.d_model}], got {shape}")
        B, N, _ = x.shape
        q = self.q_proj(x).view(B, N, self.n_heads, self.head_dim)
        rest = [p(x).view(B, N, self.n_kv_heads, self.head_dim)
                for p in (self.k1_proj, self.k2_proj, self.v1_proj, self.v2_proj)]
        return (q, *rest)

    def attend(self, q, k1, k2, v1, v2):
        """The attention arithmetic on projected tensors, by the chosen backend."""
        if self.backend == "reference":
            from .reference import two_simplicial_attention

            return two_simplicial_attention(q, k1, k2, v1, v2, w1=self.w1, w2=self.w2, causal=True)
        if self.backend == "triton":
            from .kernels import two_simplicial_attention  # lazy: Triton is heavy and optional

            return two_simplicial_attention(q, k1, k2, v1, v2, w1=self.w1, w2=self.w2, scale=None)
        n = q.shape[1]
        return gathered_two_simplicial_attention(
            q, k1, k2, v1, v2, window_indices(n, self.w1, device=q.device),
            window_indices(n, self.w2, device=q.device))

    def forward(self, x, prev_qk=None):
        """``x [batch, seq, d_model]`` -> ``[batch, seq, d_model]`` (``prev_qk`` is ignored)."""
        o = self.attend(*self.project(x))
        return self.o_proj(o.reshape(x.shape[0], x.shape[1], -1))


class TopKTwoSimplicialAttention(TwoSimplicialAttention):
    """2-simplicial attention over the ``topk x topk`` pairs of keys picked per query.

    The selection follows Pappone (2025): rank the past keys of query ``i`` by the head-averaged
    causal softmax of the *preceding dot-product layer* (``prev_qk``) and use the same ``topk``
    positions for K1 and K2 (:func:`simplex_lib.sparsity.previous_layer_topk`). Without a
    preceding dot-product layer the layer ranks with its own ``(q, k1)``. The selection is not
    differentiated (as in DeepSeek Sparse Attention); gradients flow through the selected pairs.

    Parameters
    ----------
    d_model, n_heads, n_kv_heads, head_dim
        As in :class:`TwoSimplicialAttention`.
    topk : int
        Keys kept per query (``>= 1``); ``topk**2`` pairs.
    backend : ``"torch"`` or ``"reference"``
        Gathered einsum, or :func:`simplex_lib.sparsity.topk_two_simplicial_attention`.

    Examples
    --------
    >>> att = TopKTwoSimplicialAttention(32, 4, 2, topk=3)
    >>> att(torch.randn(2, 6, 32)).shape
    torch.Size([2, 6, 32])
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 head_dim: int | None = None, *, topk: int, backend: str = "torch"):
        if backend not in ("torch", "reference"):
            raise ValueError(f"backend must be 'torch' or 'reference' for top-k, got {backend!r}")
        _check_positive("topk", topk)
        super().__init__(d_model, n_heads, n_kv_heads, head_dim, backend="reference")
        self.topk, self.backend = topk, backend

    def extra_repr(self) -> str:
        return f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, topk={self.topk}, backend={self.backend!r}"

    def select(self, q, k1, prev_qk=None) -> torch.Tensor:
        """Top-k positions ``[batch, seq, 1, topk]`` (``-1`` padded) from ``prev_qk`` or ``(q, k1)``."""
        from .sparsity import previous_layer_topk

        qs, ks = (q, k1) if prev_qk is None else prev_qk
        with torch.no_grad():
            return previous_layer_topk(qs.detach().float(), ks.detach().float(), self.topk)

    def attend(self, q, k1, k2, v1, v2, prev_qk=None):
        """Select the top-k keys (from ``prev_qk`` or ``(q, k1)``) and attend over their pairs."""
        idx = self.select(q, k1, prev_qk)
        if self.backend == "reference":
            from .sparsity import topk_two_simplicial_attention

            return topk_two_simplicial_attention(q, k1, k2, v1, v2, idx)
        return gathered_two_simplicial_attention(q, k1, k2, v1, v2, idx[:, :, 0])

    def forward(self, x, prev_qk=None):
        """``x [batch, seq, d_model]`` -> ``[batch, seq, d_model]``."""
        o = self.attend(*self.project(x), prev_qk=prev_qk)
        return self.o_proj(o.reshape(x.shape[0], x.shape[1], -1))


class MLP(nn.Module):
    """Position-wise feed-forward network ``Linear -> GELU -> Linear``.

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
        h = self.norm1(x)
        if isinstance(self.attn, DotProductAttention):
            a, qk = self.attn(h, return_qk=True)
        else:
            a, qk = self.attn(h, prev_qk), prev_qk
        x = x + a
        return x + self.mlp(self.norm2(x)), qk


def init_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 style initialisation: N(0, 0.02), output projections scaled by ``1/sqrt(2 n_layer)``."""
    for name, p in module.named_parameters():
        if p.dim() < 2:
            continue
        std = 0.02
        if name.endswith("o_proj.weight") or name.endswith("mlp.down.weight"):
            std = 0.02 / math.sqrt(2 * n_layer)
        nn.init.normal_(p, mean=0.0, std=std)
