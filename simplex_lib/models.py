"""A compact GPT whose every fourth block is 2-simplicial (the paper's 3:1 interleaving).

Three variants share one skeleton (learned token and position embeddings, pre-norm blocks, tied
output head), as in the small nanoGPT experiment of Pappone (2025):

- ``"dot"``: every block uses causal dot-product attention (the baseline);
- ``"window"``: every ``simplicial_every``-th block uses sliding-window 2-simplicial attention
  with windows ``(w1, w2)`` (Roy et al., 2025, Section 6);
- ``"topk"``: those blocks instead attend to the ``topk x topk`` pairs of keys ranked highest by
  the preceding dot-product block (the blog's DeepSeek-Sparse-Attention-style selection).

Equal parameter counts: a 2-simplicial block has two extra projections (K2, V2). With
``simplicial_kv_heads = n_heads // 2`` (the default, grouped-query attention with ratio 2) its
five input projections hold exactly as many weights as the dot block's three, so all three
variants have the same parameter count (checked by :func:`parameter_counts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (Block, DotProductAttention, TopKTwoSimplicialAttention,
                     TwoSimplicialAttention, init_weights)

__all__ = ["VARIANTS", "GPTConfig", "simplicial_layer_ids", "GPT", "count_parameters",
           "variant_configs", "parameter_counts", "TASKS", "hop_batch", "match3_last_batch",
           "task_batch", "TaskNet", "train_task", "depth_sweep", "two_hop_construction"]

#: The three model variants.
VARIANTS = ("dot", "window", "topk")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPT`.

    Attributes
    ----------
    variant : ``"dot"``, ``"window"`` or ``"topk"``
    vocab_size : int
        256 for the byte-level corpus.
    block_size : int
        Longest sequence (context length).
    n_layer, d_model, n_heads : int
        Depth, width and query heads (``head_dim = d_model // n_heads`` unless given).
    head_dim : int or None
    mlp_ratio : int
        MLP hidden width is ``mlp_ratio * d_model``.
    simplicial_every : int
        Block ``l`` (0-based) is 2-simplicial iff ``(l + 1) % simplicial_every == 0``: 4 gives the
        3:1 interleaving, 1 makes every block 2-simplicial.
    w1, w2 : int
        Windows of the ``"window"`` variant.
    topk : int
        Keys per query of the ``"topk"`` variant.
    simplicial_kv_heads : int or None
        Key/value heads of 2-simplicial blocks; default ``n_heads // 2`` (parameter parity) when
        ``n_heads`` is even, else ``n_heads``.
    backend : str
        Backend of the 2-simplicial blocks (see :mod:`simplex_lib.layers`).

    Examples
    --------
    >>> GPTConfig(variant="window", n_layer=4).simplicial_layers
    (3,)
    """

    variant: str = "dot"
    vocab_size: int = 256
    block_size: int = 128
    n_layer: int = 4
    d_model: int = 128
    n_heads: int = 4
    head_dim: int | None = None
    mlp_ratio: int = 4
    simplicial_every: int = 4
    w1: int = 32
    w2: int = 32
    topk: int = 32
    simplicial_kv_heads: int | None = None
    backend: str = "torch"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        for name in ("vocab_size", "block_size", "n_layer", "d_model", "n_heads", "mlp_ratio",
                     "simplicial_every", "w1", "w2", "topk"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.variant != "dot" and not self.simplicial_layers:
            raise ValueError(
                f"variant {self.variant!r} with n_layer={self.n_layer} and simplicial_every="
                f"{self.simplicial_every} has no 2-simplicial block; raise n_layer or lower simplicial_every")

    @property
    def simplicial_layers(self) -> tuple:
        """0-based indices of the 2-simplicial blocks (empty for ``"dot"``)."""
        if self.variant == "dot":
            return ()
        return simplicial_layer_ids(self.n_layer, self.simplicial_every)

    @property
    def kv_heads_simplicial(self) -> int:
        """Resolved key/value heads of the 2-simplicial blocks."""
        if self.simplicial_kv_heads is not None:
            return self.simplicial_kv_heads
        return self.n_heads // 2 if self.n_heads % 2 == 0 else self.n_heads

    def to_dict(self) -> dict:
        """Plain dict (JSON- and checkpoint-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"unknown GPTConfig fields: {sorted(extra)}")
        return cls(**d)


def simplicial_layer_ids(n_layer: int, every: int = 4) -> tuple:
    """Indices ``l`` with ``(l + 1) % every == 0``: every ``every``-th block, counting from 1.

    Examples
    --------
    >>> simplicial_layer_ids(8)
    (3, 7)
    >>> simplicial_layer_ids(3, 1)
    (0, 1, 2)
    """
    if every < 1 or n_layer < 0:
        raise ValueError(f"every must be >= 1 and n_layer >= 0, got {every}, {n_layer}")
    return tuple(l for l in range(n_layer) if (l + 1) % every == 0)


class GPT(nn.Module):
    """Decoder-only language model with optional 2-simplicial blocks.

    ``forward(idx [batch, seq] int64, targets=None)`` returns ``(logits [batch, seq, vocab],
    loss)``, ``loss`` being the mean next-token cross-entropy in nats (``None`` without targets).

    Examples
    --------
    >>> m = GPT(GPTConfig(variant="topk", n_layer=4, d_model=32, n_heads=2, block_size=16, topk=4))
    >>> logits, loss = m(torch.zeros(2, 16, dtype=torch.long), torch.zeros(2, 16, dtype=torch.long))
    >>> logits.shape, loss.dim()
    (torch.Size([2, 16, 256]), 0)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.block_size, c.d_model)
        simp = set(c.simplicial_layers)
        blocks = []
        for l in range(c.n_layer):
            if l not in simp:
                attn = DotProductAttention(c.d_model, c.n_heads, head_dim=c.head_dim)
            elif c.variant == "window":
                attn = TwoSimplicialAttention(c.d_model, c.n_heads, c.kv_heads_simplicial, c.head_dim,
                                              w1=c.w1, w2=c.w2, backend=c.backend)
            else:
                backend = "reference" if c.backend == "reference" else "torch"
                attn = TopKTwoSimplicialAttention(c.d_model, c.n_heads, c.kv_heads_simplicial,
                                                  c.head_dim, topk=c.topk, backend=backend)
            blocks.append(Block(attn, c.d_model, c.mlp_ratio * c.d_model))
        self.blocks = nn.ModuleList(blocks)
        self.norm_f = nn.LayerNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied, as in GPT-2
        init_weights(self, c.n_layer)

    def forward(self, idx, targets=None):
        B, N = idx.shape
        if N > self.config.block_size:
            raise ValueError(f"idx has {N} positions but block_size is {self.config.block_size}")
        pos = torch.arange(N, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        qk = None
        for blk in self.blocks:
            x, qk = blk(x, qk)
        logits = self.lm_head(self.norm_f(x))
        loss = None
        if targets is not None:
            wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 loss under bf16
            loss = F.cross_entropy(wide.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def count_parameters(model: nn.Module) -> int:
    """Number of distinct trainable parameters (tied weights counted once).

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    seen, total = set(), 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def variant_configs(base: GPTConfig | None = None, variants=VARIANTS) -> dict:
    """One config per variant, identical except for ``variant``.

    Examples
    --------
    >>> sorted(variant_configs())
    ['dot', 'topk', 'window']
    """
    base = GPTConfig() if base is None else base
    return {v: replace(base, variant=v) for v in variants}


def parameter_counts(configs: dict) -> dict:
    """``{name: parameter count}`` of the models built from ``configs`` (on the meta device).

    Examples
    --------
    >>> counts = parameter_counts(variant_configs())
    >>> len(set(counts.values()))  # equal parameter counts
    1
    """
    out = {}
    for name, cfg in configs.items():
        with torch.device("meta"):
            out[name] = count_parameters(GPT(cfg))
    return out


# --------------------------------------------------------------------------------------------
# Depth probes: how many layers does each kind of attention need on a task?
# --------------------------------------------------------------------------------------------

#: The tasks of :func:`task_batch`.
TASKS = ("hop", "match3")


def hop_batch(batch: int, M: int, hops: int, generator: torch.Generator):
    """Pointer chasing: follow a random permutation ``hops`` times from a query symbol.

    Each sequence lists the ``M`` edges ``u -> f(u)`` of a fresh random permutation ``f`` of
    ``{0..M-1}`` in random order, one token per edge (id ``u * M + f(u)``), then one query token
    (id ``M * M + x``). The target is ``f^hops(x)``. Dot-product attention follows one edge per
    layer; a 2-simplicial layer can score a *pair* of edges ``(x -> a, a -> b)`` at once.

    Returns
    -------
    tokens : int64 ``[batch, M + 1]`` (vocabulary ``M * M + M``); target : int64 ``[batch]`` in ``[0, M)``

    Examples
    --------
    >>> t, y = hop_batch(2, 4, 2, torch.Generator().manual_seed(0))
    >>> t.shape, bool((y < 4).all())
    (torch.Size([2, 5]), True)
    """
    if M < 2 or hops < 1 or batch < 1:
        raise ValueError(f"need M >= 2, hops >= 1 and batch >= 1, got M={M}, hops={hops}, batch={batch}")
    perm = torch.argsort(torch.rand(batch, M, generator=generator), dim=1)  # f(u) = perm[u]
    u = torch.argsort(torch.rand(batch, M, generator=generator), dim=1)     # edge order
    x = torch.randint(0, M, (batch,), generator=generator)
    y = x.clone()
    for _ in range(hops):
        y = perm.gather(1, y[:, None])[:, 0]
    tokens = torch.cat([u * M + perm.gather(1, u), (M * M + x)[:, None]], dim=1)
    return tokens, y


def match3_last_batch(batch: int, n: int, M: int, generator: torch.Generator):
    """Match3 asked of the last token: is there a pair ``(j1, j2)`` with ``x_last + x_j1 + x_j2 = 0 mod M``?

    Tokens are uniform residues (so the classes are not balanced; compare with the majority rate).
    Labels come from :func:`simplex_lib.match3.match3_labels`.

    Returns
    -------
    tokens : int64 ``[batch, n]`` (vocabulary ``M``); target : int64 ``[batch]`` in ``{0, 1}``

    Examples
    --------
    >>> t, y = match3_last_batch(3, 5, 11, torch.Generator().manual_seed(0))
    >>> t.shape, y.shape
    (torch.Size([3, 5]), torch.Size([3]))
    """
    from .match3 import match3_labels

    x = torch.randint(0, M, (batch, n), generator=generator)
    return x, match3_labels(x, M)[:, -1]


def task_batch(task: str, batch: int, generator: torch.Generator, **kw):
    """``hop_batch(batch, M, hops)`` or ``match3_last_batch(batch, n, M)`` by name."""
    if task == "hop":
        return hop_batch(batch, kw["M"], kw["hops"], generator)
    if task == "match3":
        return match3_last_batch(batch, kw["n"], kw["M"], generator)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


class TaskNet(nn.Module):
    """A stack of ``n_layer`` blocks of one kind, classifying from the last position.

    ``kind="dot"``: causal dot-product attention; ``kind="simplicial"``: causal 2-simplicial
    attention over the whole prefix (the reference backend; sequences here are short) with
    ``n_heads // 2`` key/value heads, so that both kinds have the same parameter count. No position
    embedding: both tasks are about sets.

    Examples
    --------
    >>> net = TaskNet(vocab=20, n_classes=4, kind="simplicial", n_layer=2, d_model=16, n_heads=2)
    >>> net(torch.zeros(3, 5, dtype=torch.long)).shape
    torch.Size([3, 4])
    """

    def __init__(self, vocab: int, n_classes: int, kind: str, n_layer: int, d_model: int = 32, n_heads: int = 2):
        super().__init__()
        if kind not in ("dot", "simplicial"):
            raise ValueError(f"kind must be 'dot' or 'simplicial', got {kind!r}")
        if n_layer < 1:
            raise ValueError(f"n_layer must be >= 1, got {n_layer}")
        kv = n_heads // 2 if n_heads % 2 == 0 else n_heads

        def attention():
            if kind == "dot":
                return DotProductAttention(d_model, n_heads)
            return TwoSimplicialAttention(d_model, n_heads, kv, backend="reference")

        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList([Block(attention(), d_model, 4 * d_model) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens):
        x, qk = self.embed(tokens), None
        for blk in self.blocks:
            x, qk = blk(x, qk)
        return self.head(self.norm(x[:, -1]))


def train_task(task: str, kind: str, n_layer: int, *, steps: int = 500, batch: int = 64, lr: float = 3e-3,
               d_model: int = 32, n_heads: int = 2, seed: int = 0, eval_size: int = 1000,
               threads: int | None = 1, **task_kw) -> dict:
    """Train a :class:`TaskNet` on fresh batches of a task; return held-out accuracy.

    Parameters
    ----------
    task : ``"hop"`` (``M``, ``hops``) or ``"match3"`` (``n``, ``M``), with its keywords in ``task_kw``
    kind : ``"dot"`` or ``"simplicial"``
    n_layer : int
    steps, batch, lr : AdamW training with fresh data every step
    d_model, n_heads : model size
    seed : initialisation and data seed (evaluation data has its own fixed seed)
    eval_size : held-out examples
    threads : torch CPU threads while training (restored afterwards); ``None`` leaves them alone.
        Tiny models run faster on one thread than on several contended ones.

    Returns
    -------
    dict: ``task``, ``kind``, ``n_layer``, ``accuracy``, ``baseline`` (majority class or chance),
    ``params``, ``seconds`` and the task keywords.

    Examples
    --------
    >>> r = train_task("hop", "dot", 1, steps=2, batch=4, eval_size=8, M=4, hops=2)
    >>> 0.0 <= r["accuracy"] <= 1.0
    True
    """
    if task == "hop":
        vocab, n_classes = task_kw["M"] ** 2 + task_kw["M"], task_kw["M"]
    elif task == "match3":
        vocab, n_classes = task_kw["M"], 2
    else:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train_task(task, kind, n_layer, vocab, n_classes, steps, batch, lr, d_model, n_heads,
                           seed, eval_size, task_kw)
    finally:
        torch.set_num_threads(previous_threads)


def _train_task(task, kind, n_layer, vocab, n_classes, steps, batch, lr, d_model, n_heads, seed,
                eval_size, task_kw) -> dict:
    import time

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TaskNet(vocab, n_classes, kind, n_layer, d_model, n_heads)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(1_000 + seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = task_batch(task, batch, g, **task_kw)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    x, y = task_batch(task, eval_size, torch.Generator().manual_seed(424_242), **task_kw)
    with torch.no_grad():
        acc = float((net(x).argmax(-1) == y).float().mean())
    counts = torch.bincount(y, minlength=n_classes).float()
    baseline = float(counts.max() / counts.sum()) if task == "match3" else 1.0 / n_classes
    return {"task": task, "kind": kind, "n_layer": n_layer, "accuracy": acc, "baseline": baseline,
            "params": count_parameters(net), "seconds": time.perf_counter() - t0, "seed": seed, **task_kw}


def depth_sweep(task: str, depths=(1, 2), kinds=("dot", "simplicial"), seeds=(0,), **kw) -> list:
    """:func:`train_task` for every kind, depth and seed; a list of result dicts.

    Examples
    --------
    >>> rs = depth_sweep("hop", depths=(1,), steps=1, batch=2, eval_size=4, M=3, hops=1)
    >>> [(r["kind"], r["n_layer"]) for r in rs]
    [('dot', 1), ('simplicial', 1)]
    """
    return [train_task(task, kind, L, seed=s, **kw) for kind in kinds for L in depths for s in seeds]


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
    from .reference import two_simplicial_attention, two_simplicial_logits

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
