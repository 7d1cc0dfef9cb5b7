"""Match2 / Match3 (Sanford et al., 2023) and the one-head construction of Theorem 5.1.

Tasks. Tokens are residues ``x_0, ..., x_{n-1}`` in ``Z_M``. Every position gets a label:

* Match2: ``y_i = 1`` iff some ``j`` in ``[0, n)`` (``j = i`` allowed) has ``x_i + x_j = 0 (mod M)``;
* Match3: ``y_i = 1`` iff some pair ``(j1, j2)`` in ``[0, n)^2`` (any pair: ``j1 = j2`` and
  ``i`` itself allowed) has ``x_i + x_j1 + x_j2 = 0 (mod M)``.

Theorem 5.1 of Roy et al. (2025) computes Match3 with ONE attention head whose logits are the
sum-of-determinants form (their eq. 9) on 7-dimensional queries and keys. With
``theta_t = 2 pi x_t / M`` the construction (their Appendix A, re-derived here) is

* ``q_i  = c (cos th_i, sin th_i, 0, -sin th_i, cos th_i, 0, 1)``
* ``k_j  =   (sin th_j, cos th_j, 0, -sin th_j, -cos th_j, 0, 0)``
* ``k'_k =   (0, 0, cos th_k, 0, 0, -sin th_k, 0)``

so that the two determinants of the first six coordinates add up to
``c cos th_k cos(th_i + th_j) - c sin th_k sin(th_i + th_j) = c cos(th_i + th_j + th_k)``: the
logit is ``c`` exactly for matching triples and below ``c cos(2 pi / M)`` otherwise. One extra
"blank" pair scores ``q_i . (0, ..., 0, 1) = c`` through the seventh coordinate. Values are 1
for every regular pair and 0 for the blank pair, so the head outputs

``z_i = (beta e^c + S) / ((beta + 1) e^c + S)``, ``S = sum over non-matching pairs of e^{A}``,

where ``beta`` counts matching pairs. If ``beta >= 1`` then ``z_i >= beta / (beta + 1) >= 1/2``
for every ``c``. If ``beta = 0`` then ``z_i = S / (e^c + S) < 1/2`` iff ``S < e^c``; since at most
``n^2`` pairs each contribute at most ``e^{c cos(2 pi / M)}``, it suffices that

``c (1 - cos(2 pi / M)) > 2 ln n``.

This bound is tight: if every token equals ``v`` with ``3 v = 1 (mod M)`` (possible when
``3 \\nmid M``), no token matches and all ``n^2`` pairs sit at the nearest miss, so ``z_i >= 1/2``
for ``c <= 2 ln n / (1 - cos(2 pi / M))``. As ``1 - cos(2 pi / M) ~ 2 pi^2 / M^2``, the needed
``c`` grows like ``M^2 ln(n) / pi^2``: polynomial in ``n`` when ``M = n^{O(1)}``, as the theorem
assumes.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys

import torch
from tqdm.auto import tqdm

from .. import viz
from ..ops.determinant.reference import det_logits
from ..provenance import provenance
from ..runtime import default_device
from ..train import TrainConfig, train

__all__ = [
    "match2_labels",
    "match3_labels",
    "match3_batch",
    "theorem_5_1_embeddings",
    "theorem_5_1_logits",
    "theorem_5_1_attention",
    "theorem_5_1_details",
    "c_lower_bound",
    "default_c",
    "adversarial_no_match",
    "PSI_TOLERANCE",
    "Match3Task",
    "match3_config",
    "train_match3",
    "match3_sweep",
    "summarize_sweep",
    "plot_theorem_head",
    "plot_sweep",
    "RECORDED_LENGTHS",
    "RECORDED_MODULI",
    "run_recorded_sweep",
    "load_recorded",
    "main",
]

#: ``psi(z) = 1`` iff ``z >= 1/2 - PSI_TOLERANCE``. In exact arithmetic a token with exactly one
#: matching pair and no near misses has ``z`` a hair above 1/2; rounding of ``c cos(...)`` in
#: float64 (about ``c * 1e-16``) can put it a hair below. Non-matching tokens stay at
#: ``z <= 1/4`` with :func:`default_c`, so the tolerance cannot flip them.
PSI_TOLERANCE = 1e-9


def _check_tokens(x, M) -> torch.Tensor:
    if isinstance(M, bool) or not isinstance(M, int) or M < 2:
        raise ValueError(f"M must be an int >= 2, got {M!r}")
    x = torch.as_tensor(x)
    if x.dtype.is_floating_point or x.dtype == torch.bool or x.dim() not in (1, 2) or x.shape[-1] < 1:
        raise ValueError(f"x must be an integer tensor [n] or [batch, n] with n >= 1, got {x.dtype} {tuple(x.shape)}")
    if (x < 0).any() or (x >= M).any():
        raise ValueError(f"x must hold residues in [0, M) = [0, {M})")
    return x.long()


# --------------------------------------------------------------------------------------------
# Labels and data
# --------------------------------------------------------------------------------------------


def match2_labels(x, M: int) -> torch.Tensor:
    """Match2 labels: ``y_i = 1`` iff some ``j`` (``j = i`` allowed) has ``x_i + x_j = 0 mod M``.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2

    Returns
    -------
    Long tensor of the shape of ``x`` with entries 0/1.

    Examples
    --------
    >>> match2_labels(torch.tensor([1, 4, 2]), 5).tolist()   # 1 + 4 = 5
    [1, 1, 0]
    """
    x = _check_tokens(x, M)
    s = x[..., :, None] + x[..., None, :]
    return ((s % M) == 0).any(-1).long()


def match3_labels(x, M: int) -> torch.Tensor:
    """Match3 labels by brute force over all ``n^2`` pairs of every token.

    ``y_i = 1`` iff some ``(j1, j2)`` in ``[0, n)^2`` has ``x_i + x_j1 + x_j2 = 0 (mod M)``.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2

    Returns
    -------
    Long tensor of the shape of ``x`` with entries 0/1.

    Examples
    --------
    >>> match3_labels(torch.tensor([1, 2, 4]), 7).tolist()   # 1+2+4 = 7; 2+1+4; 4+1+2
    [1, 1, 1]
    >>> match3_labels(torch.tensor([1, 1]), 7).tolist()      # sums are all 3
    [0, 0]
    """
    x = _check_tokens(x, M)
    s = x[..., :, None, None] + x[..., None, :, None] + x[..., None, None, :]
    return ((s % M) == 0).flatten(-2).any(-1).long()


def _pair_sums_present(x: torch.Tensor, M: int) -> torch.Tensor:
    """Bool ``[batch, M]``: residue r is some ``x_j1 + x_j2``."""
    s = (x[:, :, None] + x[:, None, :]) % M
    out = torch.zeros(x.shape[0], M, dtype=torch.bool, device=x.device)
    return out.scatter_(1, s.flatten(1), True)


def match3_batch(batch: int, n: int, M: int, generator: torch.Generator, *, balance: bool = True):
    """A batch of Match3 sequences and their exact labels.

    Uniform tokens give mostly positive labels once ``n^2 >> M`` and mostly negative ones when
    ``n^2 << M``. With ``balance``, when the uniform draw of the batch has a positive rate
    ``r < 1/2``, a fraction ``f = (1/2 - r) / (3 (1 - r))`` of the positions is redrawn as
    ``x_i = -(x_j1 + x_j2) mod M`` for a random pair of positions that are NOT redrawn, which
    plants a match that also makes ``j1`` and ``j2`` positive (hence the 3). Labels are recomputed by
    :func:`match3_labels`. When ``r >= 1/2`` nothing is changed: for ``n^2 >> M`` the pair sums
    cover almost every residue and negatives are intrinsically rare ("balanced-ish").

    Parameters
    ----------
    batch, n : ints >= 1
    M : int >= 2
    generator : torch.Generator (the only source of randomness: same seed, same batch)
    balance : bool

    Returns
    -------
    ``(x, y)``: long tensors ``[batch, n]`` (tokens in ``[0, M)``, labels 0/1).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = match3_batch(4, 6, 31, g)
    >>> x.shape, bool((y == match3_labels(x, 31)).all())
    (torch.Size([4, 6]), True)
    """
    if batch < 1 or n < 1:
        raise ValueError(f"batch and n must be >= 1, got batch={batch}, n={n}")
    if M < 2:
        raise ValueError(f"M must be >= 2, got {M}")
    x = torch.randint(0, M, (batch, n), generator=generator)
    if balance:
        r = float(match3_labels(x, M).float().mean())
        # A planted triple makes all three of its tokens positive, hence the factor 3.
        f = (0.5 - r) / (3.0 * (1.0 - r)) if r < 0.5 else 0.0
        redraw = torch.rand(batch, n, generator=generator) < f
        kept = ~redraw
        # Two random kept positions per (sequence, position): argmax of uniform scores on kept.
        u = torch.rand(2, batch, n, n, generator=generator)
        u = torch.where(kept[None, :, None, :], u, torch.full_like(u, -1.0))
        j1, j2 = u.argmax(-1)
        planted = (-(x.gather(1, j1) + x.gather(1, j2))) % M
        ok = redraw & kept.any(-1, keepdim=True)
        x = torch.where(ok, planted, x)
    return x, match3_labels(x, M)


# --------------------------------------------------------------------------------------------
# Theorem 5.1: one head of determinant attention
# --------------------------------------------------------------------------------------------


def c_lower_bound(n: int, M: int) -> float:
    """The exactness threshold ``c* = 2 ln(n) / (1 - cos(2 pi / M))`` (see the module docstring).

    Any ``c > c*`` makes :func:`theorem_5_1_attention` exact for every input of length ``n``;
    for ``c <= c*`` the input :func:`adversarial_no_match` is misclassified (when ``3 ∤ M``).

    Examples
    --------
    >>> round(c_lower_bound(8, 97), 1)
    1983.1
    """
    return 2.0 * math.log(n) / (1.0 - math.cos(2.0 * math.pi / M))


def default_c(n: int, M: int) -> float:
    """A safe ``c``: ``(2 ln n + ln 3) / (1 - cos(2 pi / M))``.

    Then every non-matching token has ``S <= e^c / 3`` and so ``z <= 1/4``: a margin of 1/4 below
    the threshold 1/2 for any input, however its pairs fall.

    Examples
    --------
    >>> default_c(8, 97) > c_lower_bound(8, 97)
    True
    """
    return (2.0 * math.log(n) + math.log(3.0)) / (1.0 - math.cos(2.0 * math.pi / M))


def adversarial_no_match(n: int, M: int) -> torch.Tensor:
    """The worst input for a given ``(n, M)``: ``n`` copies of ``v`` with ``3 v = 1 (mod M)``.

    No token matches, and every one of the ``n^2`` pairs scores ``c cos(2 pi / M)``, the largest
    non-matching score. Needs ``M`` not divisible by 3.

    Examples
    --------
    >>> adversarial_no_match(3, 7).tolist()   # 3 * 5 = 15 = 1 (mod 7)
    [5, 5, 5]
    """
    if M % 3 == 0:
        raise ValueError(f"M must not be divisible by 3 (3v = 1 mod M has no solution), got M={M}")
    v = pow(3, -1, M)
    return torch.full((n,), v, dtype=torch.long)


def theorem_5_1_embeddings(x, M: int, c: float):
    """The 7-dimensional query and key vectors of the Theorem 5.1 head.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2
    c : float, the logit scale

    Returns
    -------
    ``(q, k1, k2, k_blank)``: float64 tensors ``[..., n, 7]`` (three) and ``[7]``.

    Examples
    --------
    >>> q, k1, k2, kb = theorem_5_1_embeddings(torch.tensor([0]), 5, 2.0)
    >>> q.tolist(), kb.tolist()
    ([[2.0, 0.0, 0.0, -0.0, 2.0, 0.0, 2.0]], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    """
    x = _check_tokens(x, M)
    th = 2.0 * math.pi * x.double() / M
    cs, sn, z = torch.cos(th), torch.sin(th), torch.zeros_like(th)
    q = c * torch.stack([cs, sn, z, -sn, cs, z, torch.ones_like(th)], -1)
    k1 = torch.stack([sn, cs, z, -sn, -cs, z, z], -1)
    k2 = torch.stack([z, z, cs, z, z, -sn, z], -1)
    k_blank = torch.zeros(7, dtype=torch.float64)
    k_blank[6] = 1.0
    return q, k1, k2, k_blank


def theorem_5_1_logits(x, M: int, c: float):
    """Regular-pair logits (sum of two determinants) and the blank-pair logit.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]``
    M : int >= 2
    c : float

    Returns
    -------
    ``(A, a_blank)``: ``A[..., i, j1, j2] = c cos(2 pi (x_i + x_j1 + x_j2) / M)`` computed as
    eq. 9 on the first six coordinates (float64 ``[..., n, n, n]``), and ``a_blank[..., i] = c``.

    Examples
    --------
    >>> A, ab = theorem_5_1_logits(torch.tensor([1, 2, 4]), 7, 1.0)
    >>> round(float(A[0, 1, 2]), 12), float(ab[0])    # 1 + 2 + 4 = 7
    (1.0, 1.0)
    """
    q, k1, k2, k_blank = theorem_5_1_embeddings(x, M, c)
    squeeze = q.dim() == 2
    if squeeze:
        q, k1, k2 = q[None], k1[None], k2[None]
    # [B, n, 7] -> [B, n, 1 head, 6]; the 7th coordinate is not part of any 3-chunk.
    A = det_logits(q[..., None, :6], k1[..., None, :6], k2[..., None, :6])[:, 0]
    a_blank = q @ k_blank
    return (A[0], a_blank[0]) if squeeze else (A, a_blank)


def theorem_5_1_details(x, M: int, c=None) -> dict:
    """Everything the Theorem 5.1 head computes, per query token.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]``
    M : int >= 2
    c : float, optional (default :func:`default_c`)

    Returns
    -------
    dict with ``logits [..., n, n, n]``, ``weights [..., n, n, n]`` (softmax over the ``n^2``
    regular pairs and the blank pair jointly), ``blank_weight [..., n]``, ``z [..., n]``
    (the head's output), ``prediction`` (``psi(z)``, long 0/1) and ``c``.

    Examples
    --------
    >>> d = theorem_5_1_details(torch.tensor([1, 2, 4, 3]), 7)
    >>> d["prediction"].tolist(), match3_labels(torch.tensor([1, 2, 4, 3]), 7).tolist()
    ([1, 1, 1, 1], [1, 1, 1, 1])
    """
    x = _check_tokens(x, M)
    n = x.shape[-1]
    if c is None:
        c = default_c(n, M)
    A, a_blank = theorem_5_1_logits(x, M, c)
    flat = A.flatten(-2)
    m = torch.maximum(flat.max(-1).values, a_blank)  # stabilise the softmax
    w = torch.exp(flat - m[..., None])
    wb = torch.exp(a_blank - m)
    regular = w.sum(-1)  # values are 1 on every regular pair ...
    denom = regular + wb  # ... and 0 on the blank pair
    z = regular / denom
    return {
        "logits": A,
        "weights": (w / denom[..., None]).view_as(A),
        "blank_weight": wb / denom,
        "z": z,
        "prediction": (z >= 0.5 - PSI_TOLERANCE).long(),
        "c": float(c),
    }


def theorem_5_1_attention(x, M: int, c=None) -> torch.Tensor:
    """Match3 by ONE determinant-attention head (Theorem 5.1 of Roy et al., 2025).

    7-dimensional embeddings (see the module docstring), sum-of-determinants logits for the
    ``n^2`` regular pairs, a blank pair scored ``c`` through the 7th coordinate, one softmax over
    all ``n^2 + 1`` pairs, values 1 (regular) and 0 (blank), and the threshold
    ``psi(z) = [z >= 1/2]`` (up to :data:`PSI_TOLERANCE` for float64 rounding).

    Choosing ``c``: a matching token has ``z >= 1/2`` for any ``c``. A non-matching token has
    ``z = S / (e^c + S)`` with ``S <= n^2 e^{c cos(2 pi / M)}``, so ``z < 1/2`` is guaranteed once
    ``c (1 - cos(2 pi / M)) > 2 ln n`` (:func:`c_lower_bound`; tight, see
    :func:`adversarial_no_match`). The cosine gap ``1 - cos(2 pi / M) ~ 2 pi^2 / M^2`` shrinks with
    ``M``, so large moduli need large ``c``; the ``n^2`` competing pairs add ``2 ln n``. The
    default (``c=None``) is :func:`default_c`, which adds ``ln 3`` for a margin (``z <= 1/4``).

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2
    c : float, optional

    Returns
    -------
    Long tensor of the shape of ``x``: the predicted Match3 labels.

    Examples
    --------
    >>> x = torch.tensor([1, 5, 9, 2])
    >>> theorem_5_1_attention(x, 11).tolist(), match3_labels(x, 11).tolist()
    ([1, 1, 1, 0], [1, 1, 1, 0])
    """
    return theorem_5_1_details(x, M, c)["prediction"]


# --------------------------------------------------------------------------------------------
# Learning Match3: one layer of dot-product vs one layer of 2-simplicial attention
# --------------------------------------------------------------------------------------------


class Match3Task:
    """Match3 as a training task for :func:`simplex_lib.train.train` (vocabulary: the ``M`` residues).

    Parameters
    ----------
    n, M : sequence length and modulus
    head : ``"tokens"`` (default) labels every token, with non-causal attention over the whole
        sequence and data from :func:`match3_batch`; ``"classify"`` asks only about the last
        token, with causal attention (the last position sees everything) and uniform tokens.
    balance : bool
        Passed to :func:`match3_batch` (``"tokens"`` only).

    No position embedding: Match3 ignores order.

    Examples
    --------
    >>> x, y = Match3Task(5, 11).batch("train", 3, 0, torch.Generator().manual_seed(0))
    >>> x.shape, y.shape
    (torch.Size([3, 5]), torch.Size([3, 5]))
    """

    name = "match3"
    n_classes = 2
    positions = False

    def __init__(self, n: int, M: int, head: str = "tokens", balance: bool = True):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if isinstance(M, bool) or not isinstance(M, int) or M < 2:
            raise ValueError(f"M must be an int >= 2, got {M!r}")
        if head not in ("tokens", "classify"):
            raise ValueError(f"head must be 'tokens' or 'classify', got {head!r}")
        self.n, self.M, self.head, self.balance = n, M, head, balance
        self.vocab_size, self.causal = M, head == "classify"
        self.info = {"task": "match3", "n": n, "M": M, "head": head, "balance": balance}

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator):
        """A fresh batch (``split`` and ``block_size`` do not matter: every batch is new)."""
        if self.head == "classify":
            x = torch.randint(0, self.M, (batch_size, self.n), generator=generator)
            return x, match3_labels(x, self.M)[:, -1]
        return match3_batch(batch_size, self.n, self.M, generator, balance=self.balance)


def match3_config(kind: str, *, width: int = 32, heads: int = 2, layers: int = 1, steps: int = 300,
                  batch: int = 64, lr: float = 1e-2, seed: int = 0, eval_size: int = 512,
                  device=None, progress: bool = False) -> TrainConfig:
    """The :class:`~simplex_lib.train.TrainConfig` of a Match3 run.

    ``kind`` ``"dot"`` or ``"simplicial"`` (every block 2-simplicial over the whole sequence,
    with ``heads // 2`` key/value heads: both kinds have the same parameter count), PyTorch's
    default initialisation. AdamW with weight decay 0.01, 10% warm-up, cosine to 0; ``eval_size``
    held-out sequences (rounded up to whole batches). ``device=None`` trains on the GPU when
    there is one.

    Examples
    --------
    >>> match3_config("simplicial", steps=10).variant
    'simplicial'
    """
    if kind not in ("dot", "simplicial"):
        raise ValueError(f"kind must be 'dot' or 'simplicial', got {kind!r}")
    return TrainConfig(variant=kind, n_layer=layers, simplicial_every=1, d_model=width, n_heads=heads,
                       init="torch",
                       batch_size=batch, steps=steps, lr=lr, warmup=steps // 10, min_lr_ratio=0.0,
                       weight_decay=0.01, eval_every=steps, eval_batches=-(-eval_size // batch),
                       log_every=steps, seed=seed, device=str(device or "auto"), progress=progress)


def train_match3(kind: str, n: int, M: int, **kw) -> dict:
    """Train on Match3 with fresh data every step; report held-out per-token accuracy.

    Deterministic for a given ``seed`` on a given device.

    Parameters
    ----------
    kind : ``"dot"`` or ``"simplicial"``
    n, M : sequence length and modulus
    **kw : keywords of :func:`match3_config` (``width``, ``heads``, ``layers``, ``steps``,
        ``batch``, ``lr``, ``seed``, ``eval_size``, ``device``, ``progress``)

    Returns
    -------
    dict with ``accuracy`` (held-out token accuracy), ``baseline`` (majority-class rate there),
    ``final_loss``, ``params``, ``seconds`` and the configuration.

    Examples
    --------
    >>> r = train_match3("dot", n=4, M=7, width=8, steps=3, batch=4, eval_size=8)
    >>> 0.0 <= r["accuracy"] <= 1.0
    True
    """
    cfg = match3_config(kind, **kw)
    s = train(cfg, Match3Task(n, M))
    return {"kind": kind, "n": n, "M": M, "width": cfg.d_model, "heads": cfg.n_heads, "layers": cfg.n_layer,
            "steps": cfg.steps, "batch": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
            "accuracy": s["final_val_accuracy"], "baseline": s["final_val_majority"],
            "final_loss": s["log"][-1]["train_loss"], "params": s["n_params"], "seconds": s["train_time_s"]}


def match3_sweep(configs, kinds=("dot", "simplicial"), seeds=(0, 1, 2), progress: bool = True, **kw) -> list:
    """Run :func:`train_match3` over ``(n, M)`` configs, model kinds and seeds.

    Parameters
    ----------
    configs : iterable of ``(n, M)``
    kinds : model kinds
    seeds : ints
    progress : tqdm bar over all runs
    **kw : passed to :func:`train_match3`

    Returns
    -------
    list of result dicts (one per run).

    Examples
    --------
    >>> rs = match3_sweep([(3, 5)], seeds=(0,), steps=2, batch=4, eval_size=4, width=8, progress=False)
    >>> sorted(r["kind"] for r in rs)
    ['dot', 'simplicial']
    """
    jobs = [(n, M, k, s) for (n, M) in configs for k in kinds for s in seeds]
    return [train_match3(k, n, M, seed=s, progress=False, **kw)
            for (n, M, k, s) in tqdm(jobs, desc="Match3 sweep", disable=not progress)]


def summarize_sweep(records) -> list:
    """Mean and standard deviation of accuracy over seeds, per ``(kind, n, M)``.

    Returns
    -------
    list of dicts ``{kind, n, M, mean, std, seeds, baseline}`` sorted by kind, n, M.

    Examples
    --------
    >>> summarize_sweep([{"kind": "dot", "n": 4, "M": 7, "accuracy": a, "baseline": 0.5}
    ...                  for a in (0.6, 0.8)])[0]["mean"]
    0.7
    """
    groups: dict = {}
    for r in records:
        groups.setdefault((r["kind"], r["n"], r["M"]), []).append(r)
    out = []
    for (kind, n, M), rs in sorted(groups.items()):
        acc = torch.tensor([r["accuracy"] for r in rs], dtype=torch.float64)
        out.append({
            "kind": kind, "n": n, "M": M, "seeds": len(rs),
            "mean": round(float(acc.mean()), 12),
            "std": float(acc.std()) if len(rs) > 1 else 0.0,
            "baseline": float(sum(r["baseline"] for r in rs) / len(rs)),
        })
    return out


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_theorem_head(x, M: int, i: int, c=None):
    """Two panels for query ``i``: the logit landscape over ``(j1, j2)`` and the attention weights.

    Returns
    -------
    ``(fig, details)`` with ``details`` from :func:`theorem_5_1_details`.
    """
    x = _check_tokens(x, M)
    d = theorem_5_1_details(x, M, c)
    fig, axes = viz.new_figure(2)
    viz.heatmap(axes[0], d["logits"][i] / d["c"], xlabel="second key position $j_2$",
                ylabel="first key position $j_1$", signed=True,
                title=f"logit / c = cos(2π(x_i+x_j1+x_j2)/M), i={i}", colorbar_label="logit / c")
    viz.heatmap(axes[1], d["weights"][i], xlabel="second key position $j_2$", ylabel="first key position $j_1$",
                title=f"weights (blank {float(d['blank_weight'][i]):.2f}), z={float(d['z'][i]):.2f}",
                colorbar_label="attention weight", vmin=0.0)
    viz.finish(fig)
    return fig, d


def plot_sweep(summary, x_key: str = "n", title: str | None = None, ax=None):
    """Accuracy (mean ± std over seeds) of each model kind against ``n`` or ``M``.

    Parameters
    ----------
    summary : output of :func:`summarize_sweep`
    x_key : ``"n"`` or ``"M"``
    """
    if ax is None:
        fig, ax = viz.new_figure()
    else:
        fig = ax.figure
    colors = {"dot": viz.PALETTE["dot"], "simplicial": viz.PALETTE["simplicial"]}
    for kind in sorted({s["kind"] for s in summary}):
        rows = sorted((s for s in summary if s["kind"] == kind), key=lambda s: s[x_key])
        ax.errorbar([s[x_key] for s in rows], [s["mean"] for s in rows], yerr=[s["std"] for s in rows],
                    marker="o", capsize=3, color=colors.get(kind), label=f"{kind} (1 layer)")
    rows = sorted((s for s in summary if s["kind"] == summary[0]["kind"]), key=lambda s: s[x_key])
    ax.plot([s[x_key] for s in rows], [s["baseline"] for s in rows], ls="--", color=viz.PALETTE["reference"],
            label="majority class")
    viz.label(ax, "sequence length n (tokens)" if x_key == "n" else "modulus M", "held-out token accuracy", title)
    ax.legend()
    return fig, ax


# --------------------------------------------------------------------------------------------
# Recorded runs (GPU): ``python -m simplex_lib.tasks.match3 --out results.json``
# --------------------------------------------------------------------------------------------

#: The recorded sweep: sequence lengths at a fixed modulus, and moduli at a fixed length.
RECORDED_LENGTHS = {"M": 97, "n": [4, 6, 8, 12, 16]}
RECORDED_MODULI = {"n": 8, "M": [13, 31, 61, 97, 127]}


def _job(args):
    n, M, kind, seed, threads, kw = args
    # One intra-op thread per worker: several workers with all cores each oversubscribe the CPU
    # (the first recorded GPU run lost most of its time this way).
    torch.set_num_threads(threads)
    return train_match3(kind, n, M, seed=seed, progress=False, **kw)


def _check_writable(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` can be written (without leaving a file behind)."""
    if os.path.isdir(path):
        raise ValueError(f"out {path!r} is a folder; give a JSON file name")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ValueError(f"out {path!r} is not writable: {exc.strerror or exc}") from None
    if not existed:
        os.remove(path)


def run_recorded_sweep(out_path: str, *, seeds=(0, 1, 2), workers: int = 4, threads: int = 1,
                       device: str | None = None, lengths=None, moduli=None, **kw) -> dict:
    """Run the length and modulus sweeps, writing JSON (with provenance) after every finished run.

    Parameters
    ----------
    out_path : JSON file to write (checked before the first job; rewritten as runs finish, so a
        cut-off run keeps its results)
    seeds : seeds per configuration
    workers : parallel worker processes (small models are launch-bound; processes overlap)
    threads : torch intra-op threads per worker
    device : default ``"cuda"`` when available
    lengths, moduli : override :data:`RECORDED_LENGTHS` / :data:`RECORDED_MODULI`
    **kw : passed to :func:`train_match3` (steps, batch, width, heads, lr, eval_size)

    Returns
    -------
    The record written: ``{"provenance", "config", "records"}``.
    """
    _check_writable(out_path)
    device = device or default_device()
    lengths = lengths or RECORDED_LENGTHS
    moduli = moduli or RECORDED_MODULI
    configs = sorted({(n, lengths["M"]) for n in lengths["n"]} | {(moduli["n"], M) for M in moduli["M"]})
    kw = dict(kw, device=device)
    jobs = [(n, M, k, s, threads, kw) for (n, M) in configs for k in ("dot", "simplicial") for s in seeds]
    record = {
        "provenance": provenance(device),
        "config": {"lengths": lengths, "moduli": moduli, "seeds": list(seeds), "train": {**kw},
                   "workers": workers, "threads_per_worker": threads,
                   "command": "python -m simplex_lib.tasks.match3"},
        "records": [],
    }
    with mp.get_context("spawn").Pool(workers) as pool:
        for r in pool.imap_unordered(_job, jobs):
            record["records"].append(r)
            tmp = f"{out_path}.tmp"
            with open(tmp, "w") as f:
                json.dump(record, f, indent=1)
            os.replace(tmp, out_path)
            print(f"{len(record['records'])}/{len(jobs)} {r['kind']} n={r['n']} M={r['M']} seed={r['seed']} "
                  f"acc={r['accuracy']:.3f} ({r['seconds']:.1f}s)", flush=True)
    return record


def load_recorded(path: str) -> dict:
    """Load a JSON written by :func:`run_recorded_sweep` (provenance, config and records)."""
    with open(path) as f:
        return json.load(f)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v
    return parse


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m simplex_lib.tasks.match3``."""
    ap = argparse.ArgumentParser(prog="python -m simplex_lib.tasks.match3",
                                 description="Recorded Match3 sweep (dot vs 2-simplicial, one layer).",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file to write (checked before any work)")
    ap.add_argument("--workers", type=_int_at_least(1), default=4, help="parallel worker processes")
    ap.add_argument("--steps", type=_int_at_least(1), default=4000, help="optimizer steps per run")
    ap.add_argument("--batch", type=_int_at_least(1), default=256, help="sequences per step")
    ap.add_argument("--width", type=_int_at_least(1), default=32, help="model width")
    ap.add_argument("--heads", type=_int_at_least(1), default=2, help="attention heads (divide --width)")
    ap.add_argument("--lr", type=_positive_float, default=1e-2, help="peak learning rate")
    ap.add_argument("--seeds", type=_int_at_least(1), default=3, help="seeds 0..SEEDS-1 per configuration")
    ap.add_argument("--threads", type=_int_at_least(1), default=1, help="torch threads per worker")
    ap.add_argument("--eval-size", type=_int_at_least(1), default=2048, help="held-out sequences per run")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--lengths", type=_int_at_least(1), nargs="*", default=RECORDED_LENGTHS["n"],
                    help="sequence lengths at the modulus --lengths-M")
    ap.add_argument("--lengths-M", type=_int_at_least(2), default=RECORDED_LENGTHS["M"],
                    help="modulus of the length sweep")
    ap.add_argument("--moduli", type=_int_at_least(2), nargs="*", default=RECORDED_MODULI["M"],
                    help="moduli at the length --moduli-n")
    ap.add_argument("--moduli-n", type=_int_at_least(1), default=RECORDED_MODULI["n"],
                    help="length of the modulus sweep")
    return ap


def main(argv=None) -> int:
    """Entry point of ``python -m simplex_lib.tasks.match3``."""
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.width % a.heads:
        ap.error(f"--width ({a.width}) must be divisible by --heads ({a.heads})")
    if a.device is not None and not (a.device in ("cpu", "cuda") or a.device.startswith("cuda:")):
        ap.error(f"--device must be cpu, cuda or cuda:N, got {a.device!r}")
    try:
        _check_writable(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    run_recorded_sweep(a.out, seeds=tuple(range(a.seeds)), workers=a.workers, threads=a.threads, device=a.device,
                       lengths={"M": a.lengths_M, "n": a.lengths or RECORDED_LENGTHS["n"]},
                       moduli={"n": a.moduli_n, "M": a.moduli or RECORDED_MODULI["M"]},
                       steps=a.steps, batch=a.batch, width=a.width, heads=a.heads, lr=a.lr, eval_size=a.eval_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
