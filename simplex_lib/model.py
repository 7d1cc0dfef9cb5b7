"""One model skeleton: embeddings, a stack of pre-norm blocks, a head.

The blocks differ only in their attention, chosen per layer by name (:data:`ATTENTION_KINDS`):

- ``"dot"``: multi-head dot-product attention;
- ``"window"``: sliding-window 2-simplicial attention with windows ``(w1, w2)`` (Roy et al., 2025);
- ``"topk"``: 2-simplicial attention over the ``topk x topk`` key pairs ranked highest by the
  preceding dot-product block (Pappone, 2025);
- ``"simplicial"``: 2-simplicial attention over the whole prefix (``seq^3`` work; short tasks).

The head is a language model (next-token logits, weights tied to the token embedding), a
sequence classifier (logits read at the last position) or a per-token classifier.

Equal parameter counts: a 2-simplicial block has two extra projections (K2, V2). With
``simplicial_kv_heads = n_heads // 2`` (the default, grouped-query attention with ratio 2) its
five input projections hold as many weights as a dot block's three, so models that differ only
in their attention kinds have the same parameter count (see :func:`parameter_counts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (Block, DotProductAttention, TopKTwoSimplicialAttention, TwoSimplicialAttention,
                     init_weights)
from .ops.dot.reference import dot_attention
from .ops.two_simplicial.reference import two_simplicial_attention

__all__ = ["ATTENTION_KINDS", "HEADS", "INITS", "ModelConfig", "Model", "interleave", "simplicial_layer_ids",
           "count_parameters", "parameter_counts"]

#: Attention kinds a layer can have.
ATTENTION_KINDS = ("dot", "window", "topk", "simplicial")
#: Heads: language model, sequence classification (last position), per-token labels.
HEADS = ("lm", "classify", "tokens")
#: Initialisations (see :class:`ModelConfig`).
INITS = ("gpt2", "torch")


def simplicial_layer_ids(n_layer: int, every: int = 4) -> tuple:
    """Indices ``l`` with ``(l + 1) % every == 0``: every ``every``-th block, counting
    from 1.

    Parameters
    ----------
    n_layer : int >= 0
        Number of blocks.
    every : int >= 1, default 4
        Spacing of the 2-simplicial blocks.

    Returns
    -------
    tuple of int, 0-based and increasing.

    Raises
    ------
    ValueError
        If ``every < 1`` or ``n_layer < 0``.

    Examples
    --------
    >>> simplicial_layer_ids(8)
    (3, 7)
    >>> simplicial_layer_ids(3, 1)
    (0, 1, 2)
    """
    if every < 1 or n_layer < 0:
        raise ValueError(f"every must be >= 1 and n_layer >= 0, "
                         f"got every={every}, n_layer={n_layer}")
    return tuple(l for l in range(n_layer) if (l + 1) % every == 0)


def interleave(kind: str, n_layer: int, every: int = 4) -> tuple:
    """Layer kinds: ``kind`` at :func:`simplicial_layer_ids`, ``"dot"`` elsewhere (3:1 for ``every=4``).

    Parameters
    ----------
    kind : str
        One of :data:`ATTENTION_KINDS`, for the 2-simplicial positions.
    n_layer : int >= 0
        Number of blocks.
    every : int >= 1, default 4
        As in :func:`simplicial_layer_ids`.

    Returns
    -------
    tuple of str, ``n_layer`` kinds (the ``layers`` of :class:`ModelConfig`).

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``every < 1`` or ``n_layer < 0``.

    Examples
    --------
    >>> interleave("window", 4)
    ('dot', 'dot', 'dot', 'window')
    >>> interleave("simplicial", 2, every=1)
    ('simplicial', 'simplicial')
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    ids = set(simplicial_layer_ids(n_layer, every))
    return tuple(kind if l in ids else "dot" for l in range(n_layer))


def _check_positive(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`Model`.

    Each field is documented below; invalid values raise ``ValueError`` naming the field (also
    ``n_heads`` not a multiple of the simplicial key/value heads, and ``causal=False`` with
    windowed or top-k blocks).

    Examples
    --------
    >>> ModelConfig(layers=interleave("window", 8)).simplicial_layers
    (3, 7)
    """

    #: Attention kind of each block (:data:`ATTENTION_KINDS`); ``len(layers)`` is the depth.
    layers: tuple = ("dot", "dot", "dot", "window")
    #: ``"lm"`` (logits ``[batch, seq, vocab_size]``), ``"classify"`` (``[batch, n_classes]``
    #: from the last position) or ``"tokens"`` (``[batch, seq, n_classes]``).
    head: str = "lm"
    #: Input token ids are in ``[0, vocab_size)``.
    vocab_size: int = 256
    #: Outputs of the ``"classify"`` and ``"tokens"`` heads (>= 1 there; ignored by ``"lm"``).
    n_classes: int = 0
    #: Longest sequence, with a learned position embedding; ``None``: no positions (set tasks).
    block_size: int | None = 128
    #: Causal masks. Non-causal blocks exist for ``"dot"`` and ``"simplicial"`` only.
    causal: bool = True
    #: Width of the residual stream.
    d_model: int = 128
    #: Query heads of every block.
    n_heads: int = 4
    #: Width of a head; ``None``: ``d_model // n_heads`` (which must then divide evenly).
    head_dim: int | None = None
    #: The MLP's hidden width is ``mlp_ratio * d_model``.
    mlp_ratio: int = 4
    #: Window of the first key set of ``"window"`` blocks.
    w1: int = 32
    #: Window of the second key set of ``"window"`` blocks.
    w2: int = 32
    #: Keys per query of ``"topk"`` blocks.
    topk: int = 32
    #: Key/value heads of 2-simplicial blocks; ``None``: ``n_heads // 2`` when ``n_heads`` is
    #: even (parameter parity), else ``n_heads``.
    simplicial_kv_heads: int | None = None
    #: Backend of ``"window"`` and ``"topk"`` blocks (``"torch"``, ``"reference"``, ``"triton"``);
    #: ``"simplicial"`` blocks use the reference.
    backend: str = "torch"
    #: ``"gpt2"``: N(0, 0.02), output projections scaled by ``1/sqrt(2 n_layer)``
    #: (:func:`simplex_lib.layers.init_weights`); ``"torch"``: PyTorch's default initialisation
    #: of each module, larger weights that tiny task models learn faster from.
    init: str = "gpt2"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))  # lists from JSON
        if not self.layers:
            raise ValueError("layers must name at least one attention kind")
        bad = [k for k in self.layers if k not in ATTENTION_KINDS]
        if bad:
            raise ValueError(f"layers must be kinds from {ATTENTION_KINDS}, got {bad}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        for name in ("vocab_size", "d_model", "n_heads", "mlp_ratio", "w1", "w2", "topk"):
            _check_positive(name, getattr(self, name))
        for name in ("block_size", "head_dim", "simplicial_kv_heads"):
            _check_positive(name, getattr(self, name), allow_none=True)
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) is not divisible by n_heads ({self.n_heads}); give head_dim")
        if self.n_heads % self.kv_heads_simplicial:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of simplicial_kv_heads "
                             f"({self.kv_heads_simplicial})")
        if self.head != "lm":
            _check_positive("n_classes", self.n_classes)
        if not self.causal and set(self.layers) - {"dot", "simplicial"}:
            raise ValueError(f"causal=False needs layers of kind 'dot' or 'simplicial', got {self.layers}")

    @property
    def n_layer(self) -> int:
        """Number of blocks."""
        return len(self.layers)

    @property
    def simplicial_layers(self) -> tuple:
        """0-based indices of the 2-simplicial blocks."""
        return tuple(l for l, k in enumerate(self.layers) if k != "dot")

    @property
    def kv_heads_simplicial(self) -> int:
        """Resolved key/value heads of the 2-simplicial blocks."""
        if self.simplicial_kv_heads is not None:
            return self.simplicial_kv_heads
        return self.n_heads // 2 if self.n_heads % 2 == 0 else self.n_heads

    def to_dict(self) -> dict:
        """Plain dict (JSON- and checkpoint-friendly)."""
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError.

        Parameters
        ----------
        d : dict
            Field values by name (e.g. from a run's JSON); missing fields take their defaults,
            ``layers`` may be a list.

        Returns
        -------
        ModelConfig

        Raises
        ------
        ValueError
            If ``d`` has a key that is not a field, or the values fail the config's checks.
        """
        extra = set(d) - {f.name for f in fields(cls)}
        if extra:
            raise ValueError(f"unknown ModelConfig fields: {sorted(extra)}")
        return cls(**d)


class _BidirectionalDot(DotProductAttention):
    """Dot-product attention without the causal mask (the reference arithmetic)."""

    def forward(self, x, return_qk: bool = False):
        q, k, v = self.project(x)
        out = self.o_proj(dot_attention(q, k, v, causal=False).reshape(x.shape[0], x.shape[1], -1))
        return (out, (q.detach(), k.detach())) if return_qk else out


class _BidirectionalTwoSimplicial(TwoSimplicialAttention):
    """2-simplicial attention over all pairs of the sequence, without the causal mask."""

    def attend(self, q, k1, k2, v1, v2):
        return two_simplicial_attention(q, k1, k2, v1, v2, causal=False)


def _attention(kind: str, c: ModelConfig) -> nn.Module:
    kv = c.kv_heads_simplicial
    if kind == "dot":
        return (DotProductAttention if c.causal else _BidirectionalDot)(c.d_model, c.n_heads, head_dim=c.head_dim)
    if kind == "window":
        return TwoSimplicialAttention(c.d_model, c.n_heads, kv, c.head_dim, w1=c.w1, w2=c.w2, backend=c.backend)
    if kind == "topk":
        return TopKTwoSimplicialAttention(c.d_model, c.n_heads, kv, c.head_dim, topk=c.topk, backend=c.backend)
    if c.causal:  # "simplicial": the whole prefix, by the reference
        return TwoSimplicialAttention(c.d_model, c.n_heads, kv, c.head_dim, backend="reference")
    return _BidirectionalTwoSimplicial(c.d_model, c.n_heads, kv, c.head_dim, backend="reference")


class Model(nn.Module):
    """Token (and position) embeddings, ``config.layers`` blocks, a final norm and a head.

    ``forward(idx [batch, seq] int64, targets=None)`` returns ``(logits, loss)``: ``loss`` is the
    mean cross-entropy in nats (float32 even under bf16 autocast), ``None`` without targets.
    Targets are ``[batch, seq]`` for the ``"lm"`` and ``"tokens"`` heads, ``[batch]`` for
    ``"classify"``.

    Parameters
    ----------
    config : ModelConfig
        Kept as ``model.config``. The ``"lm"`` head's weight is tied to the token embedding;
        with ``config.init == "gpt2"`` the weights are drawn by
        :func:`simplex_lib.layers.init_weights` (from the global torch RNG).

    Examples
    --------
    >>> m = Model(ModelConfig(layers=interleave("topk", 4), d_model=32, n_heads=2, block_size=16, topk=4))
    >>> logits, loss = m(torch.zeros(2, 16, dtype=torch.long), torch.zeros(2, 16, dtype=torch.long))
    >>> logits.shape, loss.dim()
    (torch.Size([2, 16, 256]), 0)
    >>> net = Model(ModelConfig(layers=("simplicial",), head="classify", vocab_size=20, n_classes=4,
    ...                         block_size=None, d_model=16, n_heads=2))
    >>> net(torch.zeros(3, 5, dtype=torch.long))[0].shape
    torch.Size([3, 4])
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model) if c.block_size else None
        self.blocks = nn.ModuleList([Block(_attention(k, c), c.d_model, c.mlp_ratio * c.d_model)
                                     for k in c.layers])
        self.norm_f = nn.LayerNorm(c.d_model)
        if c.head == "lm":
            self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
            self.head.weight = self.tok_emb.weight  # tied, as in GPT-2
        else:
            self.head = nn.Linear(c.d_model, c.n_classes)
        if c.init == "gpt2":
            init_weights(self, c.n_layer)

    def forward(self, idx, targets=None):
        """Logits of the head, and the loss when targets are given.

        Parameters
        ----------
        idx : int64 Tensor ``[batch, seq]``
            Token ids in ``[0, vocab_size)``; ``seq <= block_size`` when the model has position
            embeddings.
        targets : int64 Tensor, optional
            ``[batch, seq]`` for the ``"lm"`` head (the next token of each position, already
            shifted by the caller) and the ``"tokens"`` head, ``[batch]`` class ids for
            ``"classify"``. Entries equal to -100 are ignored (``F.cross_entropy``'s default).

        Returns
        -------
        logits : Tensor
            ``[batch, seq, vocab_size]`` (``"lm"``), ``[batch, seq, n_classes]`` (``"tokens"``) or
            ``[batch, n_classes]`` read at the last position (``"classify"``); in the compute
            dtype (bf16 under autocast).
        loss : Tensor ``[]`` or None
            Mean cross-entropy in nats over the targets, computed in float32 when the logits are
            float16 or bfloat16; None without ``targets``.

        Raises
        ------
        ValueError
            If ``seq`` exceeds ``block_size`` (with position embeddings), or from a block's checks.
        """
        N = idx.shape[1]
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            if N > self.config.block_size:
                raise ValueError(f"idx has {N} positions but block_size is {self.config.block_size}")
            x = x + self.pos_emb(torch.arange(N, device=idx.device))
        qk = None  # the last dot block's (q, k), which top-k blocks rank keys with
        for blk in self.blocks:
            x, qk = blk(x, qk)
        h = self.norm_f(x)
        logits = self.head(h[:, -1] if self.config.head == "classify" else h)
        loss = None
        if targets is not None:
            wide = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
            loss = F.cross_entropy(wide.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def count_parameters(model: nn.Module) -> int:
    """Number of distinct trainable parameters (tied weights counted once).

    Parameters
    ----------
    model : nn.Module
        Parameters with ``requires_grad=False`` are not counted.

    Returns
    -------
    int

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def parameter_counts(configs: dict) -> dict:
    """``{name: parameter count}`` of the models built from ``configs`` (on the meta device).

    No memory is allocated for the weights, so large configurations are cheap to count.

    Parameters
    ----------
    configs : dict
        ``{name: ModelConfig}``.

    Returns
    -------
    dict ``{name: int}``, :func:`count_parameters` of ``Model(config)``.

    Examples
    --------
    >>> base = dict(d_model=64, n_heads=4)
    >>> counts = parameter_counts({k: ModelConfig(layers=interleave(k, 4), **base) for k in ("dot", "window")})
    >>> counts["dot"] == counts["window"]
    True
    """
    out = {}
    for name, cfg in configs.items():
        with torch.device("meta"):
            out[name] = count_parameters(Model(cfg))
    return out
