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

When ``3`` does not divide ``M`` this bound is tight: if every token equals ``v`` with
``3 v = 1 (mod M)``, no token matches and all ``n^2`` pairs sit at the nearest miss, so
``z_i >= 1/2`` for ``c <= 2 ln n / (1 - cos(2 pi / M))``. When ``3 | M`` the pair ``(i, i)``
sums to a multiple of 3 and can never be a nearest miss, so the bound is sufficient but not
tight (:func:`exact_threshold`). As ``1 - cos(2 pi / M) ~ 2 pi^2 / M^2``, the needed
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
import tempfile
import time
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from .. import viz
from ..cli import int_at_least, positive_float
from ..stats import paired_interval
from ..ops.determinant.reference import det_logits
from ..model import Model
from ..provenance import provenance
from ..runtime import default_device
from ..train import TrainConfig, train, train_together

__all__ = [
    "match2_labels",
    "match3_labels",
    "pairwise_witness_labels",
    "match3_batch",
    "theorem_5_1_embeddings",
    "theorem_5_1_logits",
    "theorem_5_1_attention",
    "theorem_5_1_details",
    "c_lower_bound",
    "exact_threshold",
    "default_c",
    "adversarial_no_match",
    "PSI_TOLERANCE",
    "Match3Task",
    "match3_config",
    "TEST_SEED_BASE",
    "match3_test_set",
    "token_breakdown",
    "train_match3",
    "train_match3_group",
    "match3_sweep",
    "summarize_sweep",
    "sweep_table",
    "plot_circle",
    "plot_head_states",
    "plot_theorem_head",
    "plot_paired",
    "plot_sweep",
    "paired_table",
    "RECORDED_LENGTHS",
    "RECORDED_MODULI",
    "RECORDED_LRS",
    "run_recorded_sweep",
    "sweep_devices",
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


def match3_labels(x, M: int, distinct: bool = False) -> torch.Tensor:
    """Match3 labels by brute force over all ``n^2`` pairs of every token.

    ``y_i = 1`` iff some ``(j1, j2)`` in ``[0, n)^2`` has
    ``x_i + x_j1 + x_j2 = 0 (mod M)``. With ``distinct`` the three
    positions ``i, j1, j2`` must be pairwise different.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2
    distinct : bool, default False
        Count only triangles of three different positions.

    Returns
    -------
    Long tensor of the shape of ``x`` with entries 0/1.

    Examples
    --------
    >>> match3_labels(torch.tensor([1, 2, 4]), 7).tolist()  # 1 + 2 + 4 = 7
    [1, 1, 1]
    >>> match3_labels(torch.tensor([1, 1]), 7).tolist()     # all sums 3
    [0, 0]
    >>> match3_labels(torch.tensor([0, 0, 1]), 7).tolist()  # 0 + 0 + 0
    [1, 1, 0]
    >>> match3_labels(torch.tensor([0, 0, 1]), 7, distinct=True).tolist()
    [0, 0, 0]
    """
    x = _check_tokens(x, M)
    s = x[..., :, None, None] + x[..., None, :, None]   # x_i + x_j1
    hit = (s + x[..., None, None, :]) % M == 0            # + x_j2
    if distinct:
        e = torch.eye(x.shape[-1], dtype=torch.bool, device=x.device)
        same = e[:, :, None] | e[:, None, :] | e[None, :, :]  # a repeat
        hit = hit & ~same
    return hit.flatten(-2).any(-1).long()


def pairwise_witness_labels(x, M: int) -> torch.Tensor:
    """The pairwise shortcut: ``1`` iff some ``j`` has ``x_i + 2 x_j = 0`` or ``2 x_i + x_j = 0 (mod M)``.

    When repeated positions are allowed, ``(j1, j2) = (j, j)`` and ``(j1, j2) = (i, j)`` are
    pairs of :func:`match3_labels`, so a witness implies a match; each test compares token
    ``i`` with ONE other token ``j``, which a dot-product head can do. As a predictor of the
    Match3 label the rule is always right on negatives and on positives with a witness, and
    always wrong on the positives that need three different tokens.

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2

    Returns
    -------
    Long tensor of the shape of ``x`` with entries 0/1.

    Examples
    --------
    >>> x = torch.tensor([1, 2, 3, 7])   # M = 11: 2 + 2 + 7 = 11, while 1 + 3 + 7 needs 3 tokens
    >>> pairwise_witness_labels(x, 11).tolist(), match3_labels(x, 11).tolist()
    ([0, 1, 0, 1], [1, 1, 1, 1])
    """
    x = _check_tokens(x, M)
    one_two = (x[..., :, None] + 2 * x[..., None, :]) % M == 0
    two_one = (2 * x[..., :, None] + x[..., None, :]) % M == 0
    return (one_two | two_one).any(-1).long()


def _pair_sums_present(x: torch.Tensor, M: int) -> torch.Tensor:
    """Bool ``[batch, M]``: residue r is some ``x_j1 + x_j2``."""
    s = (x[:, :, None] + x[:, None, :]) % M
    out = torch.zeros(x.shape[0], M, dtype=torch.bool, device=x.device)
    return out.scatter_(1, s.flatten(1), True)


def _labels_from_pair_sums(x: torch.Tensor, M: int, distinct: bool) -> torch.Tensor:
    """:func:`match3_labels` of ``x [batch, n]`` in ``O(n^2 + M)`` per sequence instead of ``O(n^3)``.

    ``y_i = 1`` iff ``-x_i`` is the sum of some ordered pair: count the pairs of each residue
    once per sequence, then look up ``-x_i``. For ``distinct`` the count skips ``j1 = j2`` and
    drops the ``2 c_i`` pairs that use ``i`` itself (``x_i + x_j = -x_i`` needs ``x_j = -2 x_i``).
    """
    b, n = x.shape
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    sums = ((x[:, :, None] + x[:, None, :]) % M).flatten(1)  # [b, j1 * j2]
    if distinct:
        sums = sums.masked_fill(eye.flatten(), M)  # j1 = j2 go to a spare bin
    count = torch.zeros(b, M + 1, dtype=torch.long, device=x.device)
    have = count.scatter_add_(1, sums, torch.ones_like(sums)).gather(1, (-x) % M)
    if distinct:
        uses_i = (2 * x[:, :, None] + x[:, None, :]) % M == 0  # [b, i, j]: x_j = -2 x_i
        have = have - 2 * (uses_i & ~eye).sum(-1)
    return (have > 0).long()


def match3_batch(batch: int, n: int, M: int, generator: torch.Generator, *, balance: bool = True,
                 distinct: bool = False):
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
    generator : torch.Generator
        The only source of randomness: same seed, same batch.
    balance : bool
    distinct : bool
        Labels of the distinct-positions variant (:func:`match3_labels`); planted pairs then use
        two different kept positions. ``False`` draws exactly as before the option existed.

    Returns
    -------
    x, y : long Tensor ``[batch, n]``
        Tokens in ``[0, M)`` and their labels 0/1.

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
        r = float(_labels_from_pair_sums(x, M, distinct).float().mean())
        # A planted triple makes all three of its tokens positive, hence the factor 3.
        f = (0.5 - r) / (3.0 * (1.0 - r)) if r < 0.5 else 0.0
        redraw = torch.rand(batch, n, generator=generator) < f
        kept = ~redraw
        # Two random kept positions per (sequence, position): argmax of uniform scores on kept.
        u = torch.rand(2, batch, n, n, generator=generator)
        u = torch.where(kept[None, :, None, :], u, torch.full_like(u, -1.0))
        j1 = u[0].argmax(-1)
        if distinct:  # the second position must differ from the first
            u[1].scatter_(-1, j1[..., None], -1.0)
        j2 = u[1].argmax(-1)
        planted = (-(x.gather(1, j1) + x.gather(1, j2))) % M
        ok = redraw & (kept.sum(-1, keepdim=True) >= (2 if distinct else 1))
        x = torch.where(ok, planted, x)
    return x, _labels_from_pair_sums(x, M, distinct)


# --------------------------------------------------------------------------------------------
# Theorem 5.1: one head of determinant attention
# --------------------------------------------------------------------------------------------


def c_lower_bound(n: int, M: int) -> float:
    """The exactness threshold ``c* = 2 ln(n) / (1 - cos(2 pi / M))`` (see the module docstring).

    Any ``c > c*`` makes :func:`theorem_5_1_attention` exact for every input of length ``n``;
    for ``c <= c*`` the input :func:`adversarial_no_match` is misclassified (when ``3 ∤ M``).

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    M : int >= 2
        Modulus.

    Returns
    -------
    float
        ``c*``.

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

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    M : int >= 2
        Modulus.

    Returns
    -------
    float
        The logit scale ``c``, above :func:`c_lower_bound`.

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

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    M : int >= 2
        Modulus, not a multiple of 3.

    Returns
    -------
    long Tensor ``[n]``
        ``n`` copies of ``v = 3^-1 (mod M)``.

    Raises
    ------
    ValueError
        If ``M`` is divisible by 3.

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
    c : float
        The logit scale.

    Returns
    -------
    q, k1, k2 : float64 Tensor ``[..., n, 7]``
    k_blank : float64 Tensor ``[7]``

    Examples
    --------
    >>> q, k1, k2, kb = theorem_5_1_embeddings(torch.tensor([0]), 5, 2.0)
    >>> q.tolist()
    [[2.0, 0.0, 0.0, -0.0, 2.0, 0.0, 2.0]]
    >>> kb.tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
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
    A : float64 Tensor ``[..., n, n, n]``
        ``A[..., i, j1, j2] = c cos(2 pi (x_i + x_j1 + x_j2) / M)``, computed as eq. 9 on the
        first six coordinates.
    a_blank : float64 Tensor ``[..., n]``
        ``a_blank[..., i] = c``.

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
    details : dict
        ``logits [..., n, n, n]``, ``weights [..., n, n, n]``
        (softmax over the ``n^2`` regular pairs and the blank pair jointly),
        ``blank_weight [..., n]``, ``z [..., n]`` (the head's output),
        ``prediction`` (``psi(z)``, long 0/1) and ``c``.

    Examples
    --------
    >>> x = torch.tensor([1, 2, 4, 3])
    >>> theorem_5_1_details(x, 7)["prediction"].tolist()
    [1, 1, 1, 1]
    >>> match3_labels(x, 7).tolist()
    [1, 1, 1, 1]
    """
    x = _check_tokens(x, M)
    n = x.shape[-1]
    if c is None:
        c = default_c(n, M)
    A, a_blank = theorem_5_1_logits(x, M, c)
    flat = A.flatten(-2)
    m = torch.maximum(flat.max(-1).values, a_blank)  # stable softmax
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
    ``c (1 - cos(2 pi / M)) > 2 ln n`` (:func:`c_lower_bound`; tight when ``3`` does not divide
    ``M``, see :func:`adversarial_no_match` and :func:`exact_threshold`). The cosine gap
    ``1 - cos(2 pi / M) ~ 2 pi^2 / M^2`` shrinks with ``M``, so large moduli need large ``c``;
    the ``n^2`` competing pairs add ``2 ln n``. The
    default (``c=None``) is :func:`default_c`, which adds ``ln 3`` for a margin (``z <= 1/4``).

    Parameters
    ----------
    x : integer tensor ``[n]`` or ``[batch, n]`` of residues in ``[0, M)``
    M : int >= 2
    c : float, optional

    Returns
    -------
    long Tensor
        The predicted Match3 labels, shape of ``x``.

    Examples
    --------
    >>> x = torch.tensor([1, 5, 9, 2])
    >>> theorem_5_1_attention(x, 11).tolist(), match3_labels(x, 11).tolist()
    ([1, 1, 1, 0], [1, 1, 1, 0])
    """
    return theorem_5_1_details(x, M, c)["prediction"]


def exact_threshold(n: int, M: int, iters: int = 80) -> float:
    """The smallest ``c`` that makes the head exact on EVERY input of length ``n`` (exhaustive).

    A non-matching token is wrong iff ``sum_p exp(-c (1 - cos(2 pi s_p / M))) >= 1`` over its
    ``n^2`` pairs ``p`` (``s_p`` the pair's sum with ``x_i``); the left side falls with ``c``, so
    each token has one critical ``c``, found by bisection. The maximum over all ``M^n`` inputs is
    returned. When ``3`` does not divide ``M`` it equals :func:`c_lower_bound` (the input of
    :func:`adversarial_no_match` attains it); when ``3 | M`` it is smaller, because the pair
    ``(i, i)`` sums to ``3 x_i``, a multiple of 3, and cannot sit at the nearest miss.

    Only for small ``M^n`` (all inputs are enumerated).

    Parameters
    ----------
    n : int >= 2
        Sequence length.
    M : int >= 2
        Modulus; ``M^n`` at most 200000.
    iters : int, default 80
        Bisection steps, on ``[0, 1.01 c*]``.

    Returns
    -------
    float
        The upper end of the bisection interval of the hardest token.

    Raises
    ------
    ValueError
        If ``n < 2`` or ``M^n > 200000``.

    Examples
    --------
    >>> round(exact_threshold(2, 7) / c_lower_bound(2, 7), 6)
    1.0
    >>> exact_threshold(2, 9) < c_lower_bound(2, 9)
    True
    """
    if n < 2 or M ** n > 200_000:
        raise ValueError(f"need n >= 2 and M^n <= 200000 inputs, got n={n}, M={M}")
    x = torch.cartesian_prod(*[torch.arange(M)] * n).reshape(-1, n)
    s = (x[:, :, None, None] + x[:, None, :, None] + x[:, None, None, :]) % M
    gap = (1.0 - torch.cos(2.0 * math.pi * s.double() / M)).flatten(2)  # [inputs, n, n^2]
    gap = gap[(gap > 0).all(-1)]  # non-matching tokens only
    lo = torch.zeros(gap.shape[0], dtype=torch.float64)
    hi = torch.full_like(lo, 1.01 * c_lower_bound(n, M))  # c* is always enough
    for _ in range(iters):
        mid = (lo + hi) / 2
        wrong = torch.exp(-mid[:, None] * gap).sum(-1) >= 1.0
        lo, hi = torch.where(wrong, mid, lo), torch.where(wrong, hi, mid)
    return float(hi.max())


# --------------------------------------------------------------------------------------------
# Learning Match3: one layer of dot-product vs one layer of 2-simplicial attention
# --------------------------------------------------------------------------------------------


class Match3Task:
    """Match3 as a training task for :func:`simplex_lib.train.train` (vocabulary: the ``M`` residues).

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    M : int >= 2
        Modulus.
    head : str, default ``"tokens"``
        ``"tokens"`` labels every token, with non-causal attention over the whole
        sequence and data from :func:`match3_batch`; ``"classify"`` asks only about the last
        token, with causal attention (the last position sees everything) and uniform tokens.
    balance : bool, default True
        Passed to :func:`match3_batch` (``"tokens"`` only).
    distinct : bool, default False
        The distinct-positions variant of the labels (:func:`match3_labels`).

    Raises
    ------
    ValueError
        If ``n``, ``M`` or ``head`` is out of range.

    Notes
    -----
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

    def __init__(self, n: int, M: int, head: str = "tokens", balance: bool = True, distinct: bool = False):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if isinstance(M, bool) or not isinstance(M, int) or M < 2:
            raise ValueError(f"M must be an int >= 2, got {M!r}")
        if head not in ("tokens", "classify"):
            raise ValueError(f"head must be 'tokens' or 'classify', got {head!r}")
        self.n, self.M, self.head, self.balance, self.distinct = n, M, head, balance, bool(distinct)
        self.vocab_size, self.causal = M, head == "classify"
        self.info = {"task": "match3", "n": n, "M": M, "head": head, "balance": balance,
                     "distinct": self.distinct}

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator):
        """A fresh batch (``split`` and ``block_size`` do not matter: every batch is new).

        Parameters
        ----------
        split : str
            The split name (ignored).
        batch_size : int
            Sequences in the batch.
        block_size : int
            Ignored (the length is ``n``).
        generator : torch.Generator
            The only source of randomness.

        Returns
        -------
        x : long Tensor ``[batch_size, n]``
            Tokens in ``[0, M)``.
        y : long Tensor
            Labels 0/1: ``[batch_size, n]``, or ``[batch_size]`` (the last token) for
            ``head="classify"``.
        """
        if self.head == "classify":
            x = torch.randint(0, self.M, (batch_size, self.n), generator=generator)
            return x, match3_labels(x, self.M, self.distinct)[:, -1]
        return match3_batch(batch_size, self.n, self.M, generator, balance=self.balance, distinct=self.distinct)


def match3_config(kind: str, *, width: int = 32, heads: int = 2, layers: int = 1, steps: int = 300,
                  batch: int = 64, lr: float = 1e-2, seed: int = 0, eval_size: int = 512,
                  device=None, progress: bool = False) -> TrainConfig:
    """The :class:`~simplex_lib.train.TrainConfig` of a Match3 run.

    ``kind`` ``"dot"`` or ``"simplicial"`` (every block 2-simplicial over the whole sequence,
    with ``heads // 2`` key/value heads: both kinds have the same parameter count), PyTorch's
    default initialisation. AdamW with weight decay 0.01, 10% warm-up, cosine to 0; ``eval_size``
    held-out sequences (rounded up to whole batches) for the validation accuracy that
    :func:`summarize_sweep` picks learning rates with. ``device=None`` trains on the GPU when
    there is one.

    Parameters
    ----------
    kind : str
        ``"dot"`` or ``"simplicial"``.
    width : int, default 32
        Model width ``d_model``.
    heads : int, default 2
        Query heads per attention layer.
    layers : int, default 1
        Blocks.
    steps : int, default 300
        Optimizer steps (one evaluation and one log record at the end).
    batch : int, default 64
        Sequences per step.
    lr : float, default 0.01
        Peak learning rate.
    seed : int, default 0
    eval_size : int, default 512
        Validation sequences.
    device : str or torch.device, optional
        Default: ``"auto"``.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    TrainConfig

    Raises
    ------
    ValueError
        If ``kind`` is neither ``"dot"`` nor ``"simplicial"``.

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


#: Test sets are drawn from generators seeded ``TEST_SEED_BASE + seed``, far from the seeds of
#: the training batches and of the validation batches of :func:`simplex_lib.train.train`.
TEST_SEED_BASE = 1 << 40


def match3_test_set(n: int, M: int, seed: int, size: int, batch: int = 64, distinct: bool = False):
    """The test set of seed ``seed``: ``size`` sequences (whole batches of ``batch``, as in training).

    The same for every model and learning rate, so that results pair by seed.

    Parameters
    ----------
    n : int >= 1
        Sequence length.
    M : int >= 2
        Modulus.
    seed : int
        The test set's seed (its generator is seeded with ``2^40 + seed``, apart from the
        training seeds).
    size : int
        Sequences wanted.
    batch : int, default 64
        Sequences per :func:`match3_batch` draw (balanced batch by batch).
    distinct : bool, default False
        Labels of the distinct-positions variant.

    Returns
    -------
    x, y : long Tensor ``[size', n]``
        Tokens and labels, ``size'`` = ``size`` rounded up to whole batches.

    Examples
    --------
    >>> a, _ = match3_test_set(5, 11, seed=0, size=10, batch=4)
    >>> b, _ = match3_test_set(5, 11, seed=0, size=10, batch=4)
    >>> a.shape, bool((a == b).all())
    (torch.Size([12, 5]), True)
    """
    g = torch.Generator().manual_seed(TEST_SEED_BASE + seed)
    parts = [match3_batch(batch, n, M, g, distinct=distinct) for _ in range(-(-size // batch))]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def token_breakdown(pred, x, y, M: int) -> dict:
    """Accuracy of predictions ``pred`` overall and on three kinds of token.

    Kinds: ``neg`` (label 0), ``pair`` (label 1 with a pairwise witness,
    :func:`pairwise_witness_labels`) and ``triple`` (label 1 without one: only a triangle of
    three different positions makes the match). Also the token counts and the majority rate.

    Parameters
    ----------
    pred : integer Tensor ``[batch, n]``
        Predicted labels 0/1.
    x : integer Tensor ``[batch, n]``
        The tokens.
    y : integer Tensor ``[batch, n]``
        The true labels.
    M : int >= 2
        Modulus.

    Returns
    -------
    dict
        ``accuracy``, ``majority``, ``tokens``, and per kind ``count_{kind}`` and ``acc_{kind}``
        (``None`` when there is no token of that kind).

    Examples
    --------
    >>> x = torch.tensor([[1, 2, 3, 7]]); y = match3_labels(x, 11)
    >>> token_breakdown(pairwise_witness_labels(x, 11), x, y, 11)["acc_triple"]
    0.0
    """
    pred, y = pred.long().cpu(), y.long().cpu()
    w = pairwise_witness_labels(x.cpu(), M).bool()
    right = pred == y
    kinds = {"neg": y == 0, "pair": (y == 1) & w, "triple": (y == 1) & ~w}
    out = {"accuracy": float(right.double().mean()),
           "majority": float(max(y.double().mean(), 1 - y.double().mean())), "tokens": y.numel()}
    for k, m in kinds.items():
        out[f"count_{k}"] = int(m.sum())
        out[f"acc_{k}"] = float(right[m].double().mean()) if m.any() else None
    return out


def train_match3(kind: str, n: int, M: int, *, distinct: bool = False, test_size: int | None = None,
                 **kw) -> dict:
    """Train on Match3 with fresh data every step; report accuracies on a held-out test set.

    The model is trained by :func:`simplex_lib.train.train` (its validation accuracy is kept as
    ``val_accuracy``, for choosing learning rates), reloaded from its final checkpoint and run
    on :func:`match3_test_set` of the same seed. On that test set the record also holds the
    pairwise shortcut (:func:`pairwise_witness_labels`) and the majority class, so that every
    comparison is paired. Deterministic for a given ``seed`` on a given device.

    Parameters
    ----------
    kind : str
        ``"dot"`` or ``"simplicial"``.
    n, M : int
        Sequence length and modulus.
    distinct : bool, default False
        The distinct-positions variant of the task.
    test_size : int, optional
        Test sequences. Default: ``eval_size``.
    **kw
        Keywords of :func:`match3_config` (``width``, ``heads``, ``layers``, ``steps``,
        ``batch``, ``lr``, ``seed``, ``eval_size``, ``device``, ``progress``).

    Returns
    -------
    dict
        The configuration, ``params``, ``val_accuracy``, ``final_loss``, ``seconds``,
        ``model`` (:func:`token_breakdown` of the model on the test set), ``rule`` (the same
        for the pairwise shortcut) and ``accuracy`` / ``baseline`` (the model's test accuracy
        and the majority rate there).

    Examples
    --------
    >>> r = train_match3("dot", n=4, M=7, width=8, steps=3, batch=4, eval_size=8)
    >>> 0.0 <= r["accuracy"] <= 1.0 and r["rule"]["acc_neg"] in (None, 1.0)
    True
    """
    cfg = match3_config(kind, **kw)
    task = Match3Task(n, M, distinct=distinct)
    with tempfile.TemporaryDirectory(prefix="match3-") as tmp:
        s = train(replace(cfg, out=tmp), task)
        model = Model(cfg.model_config(task))
        model.load_state_dict(torch.load(os.path.join(tmp, "ckpt.pt"), map_location="cpu")["model"])
    device = default_device() if cfg.device == "auto" else cfg.device
    test = match3_test_set(n, M, cfg.seed, test_size or kw.get("eval_size", 512), cfg.batch_size, distinct)
    return _tested(kind, n, M, distinct, cfg, s, model.to(device), test)


def _tested(kind, n, M, distinct, cfg, summary, model, test) -> dict:
    """The record of one trained Match3 model: its run, and the model and the shortcut on ``test``."""
    x, y = test
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xb.to(device))[0].argmax(-1).cpu() for xb in x.split(cfg.batch_size)])
    m = token_breakdown(pred, x, y, M)
    return {"kind": kind, "n": n, "M": M, "distinct": bool(distinct), "width": cfg.d_model,
            "heads": cfg.n_heads, "layers": cfg.n_layer, "steps": cfg.steps, "batch": cfg.batch_size,
            "lr": cfg.lr, "seed": cfg.seed, "params": summary["n_params"],
            "val_accuracy": summary["final_val_accuracy"], "accuracy": m["accuracy"], "baseline": m["majority"],
            "model": m, "rule": token_breakdown(pairwise_witness_labels(x, M), x, y, M),
            "final_loss": summary["log"][-1]["train_loss"], "seconds": summary["train_time_s"],
            "trained_together": summary.get("trained_together", 1)}


def train_match3_group(kind: str, n: int, M: int, *, distinct: bool = False, lrs=(1e-2,), seeds=(0,),
                       test_size: int | None = None, **kw) -> list:
    """:func:`train_match3` for every learning rate and seed of one configuration, in one go.

    All ``len(lrs) * len(seeds)`` models train in the same steps
    (:func:`simplex_lib.train.train_together`): the runs are those :func:`train_match3` makes, up
    to rounding, at a fraction of the launches, which is what lets the recorded sweep of tiny models
    finish on one GPU in minutes.

    Parameters
    ----------
    kind : str
        ``"dot"`` or ``"simplicial"``.
    n, M : int
        Sequence length and modulus.
    distinct : bool, default False
        The distinct-positions variant of the task.
    lrs : tuple of float, default ``(1e-2,)``
        Peak learning rates.
    seeds : tuple of int, default ``(0,)``
        Seeds (each with its own test set, shared by the learning rates).
    test_size : int, optional
        Test sequences. Default: ``eval_size``.
    **kw
        Keywords of :func:`match3_config` other than ``lr`` and ``seed``.

    Returns
    -------
    list of dict
        One :func:`train_match3` record per ``(lr, seed)``, lr-major; ``seconds`` is the
        group's training time and ``trained_together`` its size.

    Examples
    --------
    >>> rs = train_match3_group("dot", 4, 7, lrs=(1e-2, 3e-2), seeds=(0,), width=8, steps=3, batch=4,
    ...                         eval_size=8)
    >>> [(r["lr"], r["seed"], r["trained_together"]) for r in rs]
    [(0.01, 0, 2), (0.03, 0, 2)]
    """
    cfgs = [match3_config(kind, lr=lr, seed=s, **kw) for lr in lrs for s in seeds]
    task = Match3Task(n, M, distinct=distinct)
    summaries, models = train_together(cfgs, task)
    size = test_size or kw.get("eval_size", 512)
    tests = {s: match3_test_set(n, M, s, size, cfgs[0].batch_size, distinct) for s in seeds}
    return [_tested(kind, n, M, distinct, c, s, m, tests[c.seed]) for c, s, m in zip(cfgs, summaries, models)]


def match3_sweep(configs, kinds=("dot", "simplicial"), seeds=(0, 1, 2), lrs=(1e-2,), variants=(False,),
                 progress: bool = True, **kw) -> list:
    """Run :func:`train_match3` over ``(n, M)`` configs, variants, model kinds, learning rates and seeds.

    Parameters
    ----------
    configs : iterable of tuple
        ``(n, M)`` pairs.
    kinds : tuple of str, default ``("dot", "simplicial")``
        Model kinds.
    seeds : tuple of int, default ``(0, 1, 2)``
    lrs : tuple of float, default ``(1e-2,)``
        Peak learning rates (the grid each kind is tuned on).
    variants : tuple of bool, default ``(False,)``
        Values of ``distinct`` (``False``: repeated positions allowed, as in Theorem 5.1).
    progress : bool, default True
        A tqdm bar over all runs.
    **kw
        Passed to :func:`train_match3`.

    Returns
    -------
    list of dict
        One result of :func:`train_match3` per run.

    Examples
    --------
    >>> rs = match3_sweep([(3, 5)], seeds=(0,), steps=2, batch=4, eval_size=4, width=8, progress=False)
    >>> sorted(r["kind"] for r in rs)
    ['dot', 'simplicial']
    """
    jobs = [(n, M, d, k, lr, s) for (n, M) in configs for d in variants for k in kinds for lr in lrs
            for s in seeds]
    return [train_match3(k, n, M, distinct=d, lr=lr, seed=s, progress=False, **kw)
            for (n, M, d, k, lr, s) in tqdm(jobs, desc="Match3 sweep", disable=not progress)]


def summarize_sweep(records) -> list:
    """One row per ``(distinct, n, M)``: each kind at its best learning rate, paired differences.

    For each kind the learning rate with the highest mean VALIDATION accuracy over seeds is
    chosen; at that rate the TEST accuracies (per seed) are compared with the other kind and with
    the pairwise shortcut rule on the same test sets (:func:`simplex_lib.stats.paired_interval`, 95%).

    Parameters
    ----------
    records : iterable of dict
        Run records of :func:`train_match3`, as :func:`match3_sweep` returns them.

    Returns
    -------
    rows : list of dict
        Sorted by ``(distinct, n, M)``. Keys ``distinct``, ``n``, ``M``, ``seeds``, ``majority``,
        ``rule`` (mean test accuracy of the rule; ``rule_neg``, ``rule_triple`` as below),
        ``triple_share`` (fraction of test tokens that are positives without a pairwise witness)
        and per kind ``{kind}_lr``, ``{kind}_lrs``, ``{kind}_acc``, ``{kind}_neg`` and
        ``{kind}_triple`` (accuracy on negatives and on those positives), ``{kind}_params``;
        ``{kind}_minus_rule``, ``{kind}_minus_majority`` and ``simplicial_minus_dot`` (dicts of
        :func:`simplex_lib.stats.paired_interval`).

    Examples
    --------
    >>> rs = match3_sweep([(3, 5)], seeds=(0, 1), lrs=(1e-2, 3e-2), steps=2, batch=4, eval_size=4,
    ...                   width=8, progress=False)
    >>> row = summarize_sweep(rs)[0]
    >>> row["seeds"], row["dot_lr"] in (1e-2, 3e-2), row["simplicial_minus_dot"]["pairs"]
    (2, True, 2)
    """
    groups: dict = {}
    for r in records:
        key = (bool(r.get("distinct", False)), r["n"], r["M"])
        groups.setdefault(key, {}).setdefault(r["kind"], {}).setdefault(r["lr"], {})[r["seed"]] = r
    out = []
    for (distinct, n, M), by_kind in sorted(groups.items()):
        row = {"distinct": distinct, "n": n, "M": M}
        chosen = {}
        for kind, by_lr in sorted(by_kind.items()):
            lr = max(sorted(by_lr), key=lambda v: sum(r["val_accuracy"] for r in by_lr[v].values()) / len(by_lr[v]))
            chosen[kind] = by_lr[lr]
            runs = list(by_lr[lr].values())
            row.update({f"{kind}_lr": lr, f"{kind}_acc": sum(r["accuracy"] for r in runs) / len(runs),
                        f"{kind}_params": runs[0]["params"], f"{kind}_lrs": sorted(by_lr)})
            for part in ("neg", "triple"):
                vals = [r["model"][f"acc_{part}"] for r in runs if r["model"].get(f"acc_{part}") is not None]
                row[f"{kind}_{part}"] = sum(vals) / len(vals) if vals else None
        seeds = sorted(set.intersection(*(set(c) for c in chosen.values())))
        first = chosen[sorted(chosen)[0]]
        row["seeds"] = len(seeds)
        row["majority"] = sum(first[s]["baseline"] for s in seeds) / len(seeds)
        row["rule"] = sum(first[s]["rule"]["accuracy"] for s in seeds) / len(seeds)
        for part in ("neg", "triple"):
            vals = [first[s]["rule"].get(f"acc_{part}") for s in seeds]
            vals = [v for v in vals if v is not None]
            row[f"rule_{part}"] = sum(vals) / len(vals) if vals else None
        row["triple_share"] = sum(first[s]["model"]["count_triple"] / first[s]["model"]["tokens"]
                                  for s in seeds) / len(seeds)
        for kind, runs in chosen.items():
            row[f"{kind}_minus_rule"] = paired_interval([runs[s]["accuracy"] for s in seeds],
                                                        [runs[s]["rule"]["accuracy"] for s in seeds])
            row[f"{kind}_minus_majority"] = paired_interval([runs[s]["accuracy"] for s in seeds],
                                                            [runs[s]["baseline"] for s in seeds])
        if {"dot", "simplicial"} <= set(chosen):
            row["simplicial_minus_dot"] = paired_interval([chosen["simplicial"][s]["accuracy"] for s in seeds],
                                                          [chosen["dot"][s]["accuracy"] for s in seeds])
        out.append(row)
    return out


def sweep_table(summary) -> str:
    """Two Markdown tables of :func:`summarize_sweep` rows: accuracies, and paired differences.

    Accuracies are in percent (means over seeds on the test sets); differences in percentage
    points with their 95% confidence intervals, one line per comparison (no comparison with the
    shortcut rule for the distinct variant, whose positives the rule does not define).

    Parameters
    ----------
    summary : list of dict
        Rows of :func:`summarize_sweep`.

    Returns
    -------
    str
        The two tables, separated by a blank line.

    Examples
    --------
    >>> rs = match3_sweep([(3, 5)], seeds=(0, 1), steps=2, batch=4, eval_size=4, width=8, progress=False)
    >>> sweep_table(summarize_sweep(rs)).count("|---") >= 2
    True
    """
    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}"

    def name(r):
        return f"{'distinct' if r['distinct'] else 'any'}, n={r['n']}, M={r['M']}"

    acc = ["| task | predictor | accuracy | on negatives | on positives without a witness |",
           "|---|---|---|---|---|"]
    diff = ["| task | comparison | mean difference [95% CI] |", "|---|---|---|"]
    names = {"simplicial_minus_dot": "2-simplicial − dot", "dot_minus_majority": "dot − majority",
             "simplicial_minus_majority": "2-simplicial − majority", "dot_minus_rule": "dot − rule",
             "simplicial_minus_rule": "2-simplicial − rule"}
    for r in summary:
        lines = [("majority class", r["majority"], None, None),
                 ("shortcut rule", r["rule"], r.get("rule_neg"), r.get("rule_triple"))]
        lines += [(f"{'2-simplicial' if k == 'simplicial' else k} (lr {r[f'{k}_lr']:g})", r[f"{k}_acc"],
                   r[f"{k}_neg"], r[f"{k}_triple"]) for k in ("dot", "simplicial") if f"{k}_acc" in r]
        for i, (who, a, neg, tri) in enumerate(lines):
            task = f"{name(r)}, {r['seeds']} seeds" if i == 0 else ""
            acc.append(f"| {task} | {who} | {pct(a)} | {pct(neg)} | {pct(tri)} |")
        first = True
        for key, label in names.items():
            if key in r and not (r["distinct"] and key.endswith("_rule")):  # no shortcut there
                d = r[key]
                diff.append(f"| {name(r) if first else ''} | {label} "
                            f"| {100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] |")
                first = False
    return "\n".join(acc) + "\n\n" + "\n".join(diff) + "\n"


def paired_table(summary) -> str:
    """One Markdown line per configuration: the paired test-accuracy differences that matter.

    Columns: 2-simplicial minus dot-product, 2-simplicial minus the shortcut rule, and dot minus
    the rule, in percentage points with 95% intervals over seeds ("–" where the rule is not a
    predictor: the distinct variant).

    Parameters
    ----------
    summary : list of dict
        Rows of :func:`summarize_sweep`.

    Returns
    -------
    str

    Examples
    --------
    >>> rs = match3_sweep([(3, 5)], seeds=(0, 1), steps=2, batch=4, eval_size=4, width=8, progress=False)
    >>> paired_table(summarize_sweep(rs)).splitlines()[0]
    '| variant | n | M | 2-simplicial − dot | 2-simplicial − rule | dot − rule |'
    """
    def cell(r, key):
        if key not in r or (r["distinct"] and key.endswith("_rule")):
            return "–"
        d = r[key]
        return f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"

    lines = ["| variant | n | M | 2-simplicial − dot | 2-simplicial − rule | dot − rule |",
             "|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {'distinct' if r['distinct'] else 'any'} | {r['n']} | {r['M']} | "
                     + " | ".join(cell(r, k) for k in ("simplicial_minus_dot", "simplicial_minus_rule",
                                                       "dot_minus_rule")) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def plot_theorem_head(x, M: int, i: int, c=None):
    """Two panels for query ``i``: the logit landscape over ``(j1, j2)`` and the attention weights.

    Parameters
    ----------
    x : integer Tensor ``[n]``
        Tokens in ``[0, M)``.
    M : int >= 2
        Modulus.
    i : int
        The query position.
    c : float, optional
        Logit scale. Default :func:`default_c`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    details : dict
        :func:`theorem_5_1_details` of ``x``.

    Raises
    ------
    ValueError
        If ``x`` does not hold residues of ``M`` (or ``M`` is not an int >= 2).
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


def plot_head_states(cases, M: int, i: int, floor: float = 1e-4):
    """The head of Theorem 5.1 for query ``i`` in several cases, one row each, on shared scales.

    Left: the scores ``A_ijl / c`` over all key pairs (from -1 to 1). Right: the attention
    weights, on one logarithmic scale from ``floor`` to 1 for every row (smaller weights are
    drawn at ``floor``), with matching pairs boxed. Each row's title gives the case, ``c``
    relative to the bound ``c*``, the blank pair's weight, ``z`` and whether the prediction is
    right.

    Parameters
    ----------
    cases : list of tuple
        ``(name, x, c)``: a title, a token tensor ``[n]`` and the logit scale.
    M : int >= 2
        Modulus.
    i : int
        The query position.
    floor : float, default 1e-4
        Lower end of the weights' logarithmic scale.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import LogNorm

    fig, axes = viz.new_figure(2, len(cases), width=viz.COLUMN_WIDTH, height=2.9 * len(cases) + 0.3,
                               squeeze=False)
    for row, (name, x, c) in zip(axes, cases):
        x = _check_tokens(x, M)
        d = theorem_5_1_details(x, M, c)
        cs = c_lower_bound(x.shape[-1], M)
        right = int(d["prediction"][i]) == int(match3_labels(x, M)[i])
        viz.heatmap(row[0], d["logits"][i] / c, xlabel="second key $l$", ylabel="first key $j$",
                    title=f"{name}: scores", signed=True, vmin=-1.0, vmax=1.0,
                    colorbar_label="$A_{ijl}/c$")
        w = d["weights"][i].clamp(min=floor)
        viz.heatmap(row[1], w, xlabel="second key $l$", ylabel="first key $j$",
                    title=f"c = {c / cs:.2f} c*, blank {float(d['blank_weight'][i]):.2f}, "
                          f"z = {float(d['z'][i]):.2f}: {'right' if right else 'WRONG'}",
                    colorbar_label="weight", norm=LogNorm(vmin=floor, vmax=1.0))
        s = (x[i] + x[:, None] + x[None, :]) % M == 0
        jj, ll = torch.nonzero(s, as_tuple=True)
        if len(jj):
            row[1].plot(ll.tolist(), jj.tolist(), ls="none", marker="s", mfc="none",
                        mec=viz.PALETTE["accent"], ms=8, mew=1.5, label="matching pair")
            row[1].legend(loc="lower left", fontsize=9, framealpha=0.9)
        for ax in row:
            ax.title.set_fontsize(10)
    viz.finish(fig)
    return fig


def plot_paired(summary, distinct: bool = False, title: str | None = None):
    """Paired test-accuracy differences (mean and 95% interval over seeds) per configuration.

    Two comparisons per ``(n, M)`` of one task variant: 2-simplicial minus dot-product, and
    2-simplicial minus the pairwise shortcut rule, both in percentage points on the same test
    sets. Returns ``(fig, ax)``.

    Parameters
    ----------
    summary : list of dict
        Rows of :func:`summarize_sweep`.
    distinct : bool, default False
        Which task variant to draw.
    title : str, optional
        Axes title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes
    """
    rows = [r for r in summary if r["distinct"] == distinct]
    fig, ax = viz.new_figure(width=viz.COLUMN_WIDTH, height=3.4)
    pos = torch.arange(len(rows), dtype=torch.float64)
    series = [("simplicial_minus_dot", "2-simplicial − dot", viz.PALETTE["dot"], -0.12),
              ("simplicial_minus_rule", "2-simplicial − shortcut rule", viz.PALETTE["accent3"], 0.12)]
    for key, name, color, shift in series:
        if not all(key in r for r in rows):
            continue
        mean = [100 * r[key]["mean"] for r in rows]
        err = [[100 * (r[key]["mean"] - r[key]["lo"]) for r in rows],
               [100 * (r[key]["hi"] - r[key]["mean"]) for r in rows]]
        ax.errorbar((pos + shift).tolist(), mean, yerr=err, fmt="o", capsize=4, color=color, label=name)
    ax.axhline(0.0, color=viz.PALETTE["reference"], lw=1)
    ax.set_xticks(pos.tolist(), [f"n={r['n']}, M={r['M']}" for r in rows])
    viz.label(ax, "configuration", "test accuracy difference (points)", title)
    ax.legend(loc="best")
    viz.finish(fig)
    return fig, ax


def plot_sweep(summary, *, length_M: int = 97, moduli_n: int = 8):
    """Test accuracy against the length ``n`` and the modulus ``M``, for both task variants.

    A 2 x 2 grid: rows are the variants (repeated positions allowed, distinct positions),
    columns the length sweep (at ``M = length_M``) and the modulus sweep (at ``n = moduli_n``).
    Each panel shows the mean over seeds of the dot-product and 2-simplicial models at their
    tuned learning rates, the shortcut rule (where it is a predictor) and the majority class.

    Parameters
    ----------
    summary : list of dict
        Rows of :func:`summarize_sweep`.
    length_M, moduli_n : int
        The fixed modulus of the length sweep and the fixed length of the modulus sweep.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : 2-D array of Axes ``[variant, sweep]``
    """
    fig, axes = viz.new_figure(ncols=2, nrows=2, width=viz.COLUMN_WIDTH, height=6.2, sharey="row",
                               squeeze=False)
    lines = [("dot_acc", "dot product", viz.PALETTE["dot"], "-o"),
             ("simplicial_acc", "2-simplicial", viz.PALETTE["simplicial"], "-s"),
             ("rule", "shortcut rule", viz.PALETTE["accent3"], "--^"),
             ("majority", "majority class", viz.PALETTE["reference"], ":")]
    for row, distinct in enumerate((False, True)):
        for col, (x, fixed, keep) in enumerate((("n", f"M = {length_M}", lambda r: r["M"] == length_M),
                                                 ("M", f"n = {moduli_n}", lambda r: r["n"] == moduli_n))):
            ax = axes[row, col]
            rows = sorted((r for r in summary if r["distinct"] == distinct and keep(r)), key=lambda r: r[x])
            for key, name, color, style in lines:
                if distinct and key == "rule":
                    continue  # the rule is no predictor without repeated positions
                pts = [(r[x], 100 * r[key]) for r in rows if key in r]
                if pts:
                    ax.plot(*zip(*pts), style, color=color, label=name, lw=1.6)
            variant = "distinct positions" if distinct else "repeats allowed"
            viz.label(ax, x, "test accuracy (%)" if col == 0 else "", f"{variant}, {fixed}")
            ax.set_xticks([r[x] for r in rows])
    viz.finish(fig)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 1.0), fontsize=10,
               frameon=False, handlelength=1.8, columnspacing=1.0)
    return fig, axes


def plot_circle(x, M: int, triple, *, ax=None):
    """Tokens as points on a circle of ``M`` positions, and a matching triple's angles end to end.

    Token ``x_t`` sits at angle ``theta_t = 2 pi x_t / M``. The three arcs of the triple
    ``(i, j1, j2)`` are drawn one after the other, from angle 0, at growing radii: they close
    the loop exactly when ``x_i + x_j1 + x_j2 = 0 (mod M)``. Returns ``(fig, ax)``.

    Parameters
    ----------
    x : integer Tensor ``[n]``
        Tokens in ``[0, M)``.
    M : int >= 2
        Modulus.
    triple : sequence of three int
        Positions ``(i, j1, j2)``.
    ax : matplotlib.axes.Axes, optional
        Where to draw. Default: a new square figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``x`` does not hold residues of ``M`` (or ``M`` is not an int >= 2).
    """
    import numpy as np

    x = _check_tokens(x, M).tolist()
    if ax is None:
        fig, ax = viz.new_figure(width=4.2, height=4.2)
    else:
        fig = ax.figure
    ang = 2 * np.pi * np.arange(M) / M
    ax.plot(np.cos(np.linspace(0, 2 * np.pi, 400)), np.sin(np.linspace(0, 2 * np.pi, 400)),
            color=viz.PALETTE["reference"], lw=1)
    ax.scatter(np.cos(ang), np.sin(ang), s=10, color=viz.PALETTE["reference"], zorder=2,
               label=f"the {M} residues")
    for r in range(M):
        ax.annotate(str(r), (1.13 * np.cos(ang[r]), 1.13 * np.sin(ang[r])), ha="center", va="center",
                    fontsize=9, color=viz.PALETTE["reference"])
    others = [t for t in range(len(x)) if t not in triple]
    ax.scatter([np.cos(2 * np.pi * x[t] / M) for t in others], [np.sin(2 * np.pi * x[t] / M) for t in others],
               s=60, color=viz.PALETTE["dot"], zorder=3, label="other tokens")
    colors = (viz.PALETTE["simplicial"], viz.PALETTE["accent"], viz.PALETTE["accent2"])
    start = 0.0
    for k, (t, color) in enumerate(zip(triple, colors)):
        th = 2 * np.pi * x[t] / M
        rad = 0.42 + 0.17 * k
        arc = np.linspace(start, start + th, 100)
        ax.plot(rad * np.cos(arc), rad * np.sin(arc), color=color, lw=2.5)
        ax.annotate("", xy=(rad * np.cos(arc[-1]), rad * np.sin(arc[-1])),
                    xytext=(rad * np.cos(arc[-3]), rad * np.sin(arc[-3])),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=2))
        ax.scatter([np.cos(th)], [np.sin(th)], s=90, color=color, zorder=4, edgecolor="black",
                   label=f"$x_{{{t}}} = {x[t]}$: arc of $\\theta_{{{t}}}$")
        start += th
    ax.set_aspect("equal")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    total = sum(x[t] for t in triple)
    ax.set_title(f"{' + '.join(str(x[t]) for t in triple)} = {total} = {total // M}·{M}: "
                 f"the arcs sum to {total // M}·2π", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    viz.finish(fig)
    return fig, ax


# --------------------------------------------------------------------------------------------
# Recorded runs: ``python -m simplex_lib.tasks.match3 --out results.json`` (see :func:`main`)
# --------------------------------------------------------------------------------------------

#: The recorded sweep: sequence lengths at a fixed modulus, and moduli at a fixed length.
RECORDED_LENGTHS = {"M": 97, "n": [4, 6, 8, 12, 16]}
RECORDED_MODULI = {"n": 8, "M": [13, 31, 61, 97, 127]}
#: The learning-rate grid each model kind is tuned on (best mean validation accuracy).
RECORDED_LRS = (1e-3, 3e-3, 1e-2, 3e-2)


def _job(args):
    n, M, distinct, kind, runs, threads, kw = args
    # One intra-op thread per worker: several workers with all cores each oversubscribe the CPU.
    torch.set_num_threads(threads)
    lrs, seeds = sorted({lr for lr, _ in runs}), sorted({s for _, s in runs})
    done = train_match3_group(kind, n, M, distinct=distinct, lrs=lrs, seeds=seeds, progress=False, **kw)
    return [{**r, "device": str(kw["device"])} for r in done if (r["lr"], r["seed"]) in runs]


def sweep_devices(device: str) -> list:
    """The devices a sweep spreads its runs over: every visible GPU for ``"cuda"``, else ``device``.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (one GPU).

    Returns
    -------
    list of str
        ``["cuda:0", ..., "cuda:{n-1}"]`` for ``"cuda"`` with ``n`` GPUs, else ``[device]``.

    Examples
    --------
    >>> sweep_devices("cpu")
    ['cpu']
    """
    n = torch.cuda.device_count() if device == "cuda" else 0
    return [f"cuda:{i}" for i in range(n)] if n > 0 else [device]


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


def _run_key(r) -> tuple:
    """What identifies one run of the sweep: configuration, variant, model kind, lr and seed."""
    return (r["n"], r["M"], bool(r["distinct"]), r["kind"], float(r["lr"]), r["seed"])


#: Parts of a sweep's ``config`` that may differ between the sessions of one resumed sweep.
_RESUMABLE_CHANGES = ("workers", "threads_per_worker", "devices", "command")


def run_recorded_sweep(out_path: str, *, seeds=(0, 1, 2, 3, 4), lrs=RECORDED_LRS, variants=(False, True),
                       workers: int = 4, threads: int = 1, device: str | None = None, lengths=None,
                       moduli=None, command: str | None = None, resume: bool = False,
                       time_limit: float | None = None, **kw) -> dict:
    """Run the length and modulus sweeps, writing JSON (with provenance) after every finished run.

    Every ``(n, M)`` configuration is trained for each task variant, model kind, learning rate
    of ``lrs`` and seed; the runs of one configuration, variant and kind train together
    (:func:`train_match3_group`, one job per group). :func:`summarize_sweep` turns the records
    into tuned, paired comparisons.

    Parameters
    ----------
    out_path : str
        JSON file to write (checked before the first job; rewritten as runs finish, so a
        cut-off run keeps its results).
    seeds : tuple of int, default ``(0, 1, 2, 3, 4)``
        Seeds per configuration (each seed has its own test set, shared by all models).
    lrs : tuple of float, default :data:`RECORDED_LRS`
        Learning-rate grid.
    variants : tuple of bool, default ``(False, True)``
        Values of ``distinct``.
    workers : int, default 4
        Parallel worker processes, each training one group at a time (small models are
        launch-bound; processes overlap).
    threads : int, default 1
        Torch intra-op threads per worker.
    device : str, optional
        Default ``"cuda"`` when available; ``"cuda"`` spreads the runs over every visible GPU
        (:func:`sweep_devices`), each run recording its ``device``.
    lengths, moduli : dict, optional
        Override :data:`RECORDED_LENGTHS` / :data:`RECORDED_MODULI`.
    command : str, optional
        The command line, stored in the record.
    resume : bool, default False
        Continue the sweep already in ``out_path``: its finished runs are kept and not run again.
        Its settings must be the same (workers, threads and the command may differ, and so may
        the device's name); each session's provenance is kept in ``sessions``.
    time_limit : float, optional
        Seconds after which no further run is started; the runs already started finish and are
        written, and ``resume`` continues from there (for machines that limit a command's time).
    **kw
        Passed to :func:`train_match3` (steps, batch, width, heads, eval_size, test_size).

    Returns
    -------
    dict
        The record written, ``{"provenance", "config", "records", "sessions", "wall_seconds"}``,
        with ``complete`` telling whether every run of the sweep is in it.

    Raises
    ------
    ValueError
        If ``out_path`` cannot be written, or ``resume`` finds a record of other settings.
    """
    _check_writable(out_path)
    device = device or default_device()
    lengths = lengths or RECORDED_LENGTHS
    moduli = moduli or RECORDED_MODULI
    configs = sorted({(n, lengths["M"]) for n in lengths["n"]} | {(moduli["n"], M) for M in moduli["M"]})
    kw = dict(kw, device=device)
    devices = sweep_devices(device)  # runs go round-robin over the GPUs
    grid = [(n, M, d, k, lr, s) for (n, M) in configs for d in variants
            for k in ("dot", "simplicial") for lr in lrs for s in seeds]
    config = {"lengths": lengths, "moduli": moduli, "configs": configs, "variants": list(variants),
              "seeds": list(seeds), "lrs": list(lrs), "train": {**kw}, "workers": workers,
              "threads_per_worker": threads, "devices": devices, "trainer": "train_together",
              "command": command or "python -m simplex_lib.tasks.match3"}
    config = json.loads(json.dumps(config))  # as it reads back from the file (tuples become lists)
    record = {"provenance": provenance(device), "config": config, "records": [], "sessions": [],
              "wall_seconds": 0.0}
    if resume and os.path.exists(out_path):
        old = load_recorded(out_path)
        same = lambda c: {k: v for k, v in c.items() if k not in _RESUMABLE_CHANGES}  # noqa: E731
        strip = lambda c: {**same(c), "train": {k: v for k, v in c["train"].items() if k != "device"}}  # noqa: E731
        if strip(old["config"]) != strip(config):
            diff = sorted(k for k in strip(config) if strip(old["config"]).get(k) != strip(config)[k])
            raise ValueError(f"resume: {out_path!r} holds a sweep with other settings ({', '.join(diff)})")
        record.update(records=old["records"], wall_seconds=old.get("wall_seconds", 0.0),
                      sessions=old.get("sessions") or [old["provenance"]])
    record["sessions"].append(record["provenance"])
    done = {_run_key(r) for r in record["records"]}
    todo = [g for g in grid if (g[0], g[1], bool(g[2]), g[3], float(g[4]), g[5]) not in done]
    print(f"{len(grid) - len(todo)} of {len(grid)} runs already recorded; {len(todo)} to run", flush=True)
    groups = {}  # the runs of one (n, M, variant, kind) train together
    for n, M, d, k, lr, s in todo:
        groups.setdefault((n, M, d, k), []).append((lr, s))
    parts = list(groups.items())
    if len(parts) < workers:  # few groups left: one job per learning rate keeps more workers busy
        parts = [(key, [r for r in runs if r[0] == lr]) for key, runs in parts for lr in dict(runs)]
    parts.sort(key=lambda part: -part[0][0])  # the longest sequences (slowest groups) first
    jobs = [(*key, runs, threads, dict(kw, device=devices[i % len(devices)]))
            for i, (key, runs) in enumerate(parts)]

    def write():
        record["complete"] = len(record["records"]) == len(grid)
        tmp = f"{out_path}.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, out_path)

    t0, wall0 = time.perf_counter(), record["wall_seconds"]
    pending = iter(jobs)
    with mp.get_context("spawn").Pool(workers) as pool:
        in_flight = []

        def submit():  # keep every worker busy until the time limit
            while len(in_flight) < workers and (time_limit is None or time.perf_counter() - t0 < time_limit):
                job = next(pending, None)
                if job is None:
                    return
                in_flight.append(pool.apply_async(_job, (job,)))

        submit()
        while in_flight:
            finished = next((a for a in in_flight if a.ready()), None)
            if finished is None:
                time.sleep(0.05)
                continue
            in_flight.remove(finished)
            rs = finished.get()
            record["records"].extend(rs)
            record["wall_seconds"] = wall0 + time.perf_counter() - t0
            write()
            r = rs[0]
            accs = " ".join(f"{x['accuracy']:.3f}" for x in rs)
            print(f"{len(record['records'])}/{len(grid)} {r['kind']} n={r['n']} M={r['M']} "
                  f"distinct={r['distinct']}: {len(rs)} runs in {r['seconds']:.1f}s, accuracy {accs} "
                  f"(rule {r['rule']['accuracy']:.3f})", flush=True)
            submit()
    write()
    if not record["complete"]:
        print(f"stopped at the time limit with {len(record['records'])} of {len(grid)} runs; "
              f"the same command with --resume continues", flush=True)
    return record


def load_recorded(path: str) -> dict:
    """Load a JSON written by :func:`run_recorded_sweep` (provenance, config and records).

    Parameters
    ----------
    path : str
        The JSON file.

    Returns
    -------
    dict
        ``{"provenance", "config", "records", ...}`` as written.
    """
    with open(path) as f:
        return json.load(f)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m simplex_lib.tasks.match3``."""
    ap = argparse.ArgumentParser(prog="python -m simplex_lib.tasks.match3",
                                 description="Recorded Match3 sweep: one layer of dot-product vs one layer of "
                                             "2-simplicial attention, each tuned on a learning-rate grid, "
                                             "compared per seed on shared test sets with the pairwise "
                                             "shortcut rule as a baseline.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file to write (checked before any work)")
    ap.add_argument("--workers", type=int_at_least(1), default=12, help="parallel worker processes")
    ap.add_argument("--steps", type=int_at_least(1), default=4000, help="optimizer steps per run")
    ap.add_argument("--batch", type=int_at_least(1), default=256, help="sequences per step")
    ap.add_argument("--width", type=int_at_least(1), default=32, help="model width")
    ap.add_argument("--heads", type=int_at_least(1), default=2, help="attention heads (divide --width)")
    ap.add_argument("--lrs", type=positive_float, nargs="+", default=list(RECORDED_LRS),
                    help="learning-rate grid; each model kind keeps its best (validation accuracy)")
    ap.add_argument("--seeds", type=int_at_least(2), default=5, help="seeds 0..SEEDS-1 per configuration")
    ap.add_argument("--variants", nargs="+", choices=("any", "distinct"), default=["any", "distinct"],
                    help="any: repeated positions allowed (Theorem 5.1); distinct: i, j1, j2 all different")
    ap.add_argument("--threads", type=int_at_least(1), default=1, help="torch threads per worker")
    ap.add_argument("--eval-size", type=int_at_least(1), default=2048,
                    help="validation sequences per run (learning-rate choice)")
    ap.add_argument("--test-size", type=int_at_least(1), default=4096, help="test sequences per seed")
    ap.add_argument("--device", default=None, help="cpu, cuda (every visible GPU, runs spread round-robin) or cuda:N "
                         "(default: cuda when available)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the sweep in --out (same settings): its finished runs are kept")
    ap.add_argument("--time-limit", type=positive_float, default=None,
                    help="seconds after which no run is started (those started finish); then --resume")
    ap.add_argument("--lengths", type=int_at_least(1), nargs="*", default=RECORDED_LENGTHS["n"],
                    help="sequence lengths at the modulus --lengths-M")
    ap.add_argument("--lengths-M", type=int_at_least(2), default=RECORDED_LENGTHS["M"],
                    help="modulus of the length sweep")
    ap.add_argument("--moduli", type=int_at_least(2), nargs="*", default=RECORDED_MODULI["M"],
                    help="moduli at the length --moduli-n")
    ap.add_argument("--moduli-n", type=int_at_least(1), default=RECORDED_MODULI["n"],
                    help="length of the modulus sweep")
    return ap


def main(argv=None) -> int:
    """Entry point of ``python -m simplex_lib.tasks.match3``.

    The full sweep (the defaults: 9 configurations x 2 variants x 2 kinds x 4 learning rates x
    5 seeds = 720 runs of 4000 steps) is a GPU job::

        python -m simplex_lib.tasks.match3 --out benchmarks/results/match3_gpu.json

    On a machine that limits a command's time, run it in parts: each part starts no run after
    ``--time-limit`` seconds, and the same command with ``--resume`` continues::

        python -m simplex_lib.tasks.match3 --out benchmarks/results/match3_gpu.json \\
            --time-limit 480 --resume

    A small CPU version of it (the committed ``match3_cpu_small.json``) is::

        python -m simplex_lib.tasks.match3 --out benchmarks/results/match3_cpu_small.json \\
            --device cpu --workers 1 --steps 300 --batch 64 --lrs 0.003 0.01 0.03 \\
            --eval-size 256 --test-size 1024 --lengths 8 --lengths-M 31 --moduli 31 --moduli-n 8

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments. Default: ``sys.argv[1:]``.

    Returns
    -------
    int
        0 once the sweep is written.

    Raises
    ------
    SystemExit
        From the argument parser, for ``--help`` or a bad argument (``--width`` not divisible
        by ``--heads``, an unknown device, an output path that cannot be written, an existing
        record without ``--resume``, or ``--resume`` with other settings than the record's).
    """
    ap = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    a = ap.parse_args(args)
    if a.width % a.heads:
        ap.error(f"--width ({a.width}) must be divisible by --heads ({a.heads})")
    if a.device is not None and not (a.device in ("cpu", "cuda") or a.device.startswith("cuda:")):
        ap.error(f"--device must be cpu, cuda or cuda:N, got {a.device!r}")
    try:
        _check_writable(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    if os.path.isfile(a.out) and os.path.getsize(a.out) and not a.resume:
        ap.error(f"--out {a.out} exists: --resume continues that sweep, or remove the file")
    try:
        run_recorded_sweep(a.out, seeds=tuple(range(a.seeds)), lrs=tuple(a.lrs),
                           variants=tuple(v == "distinct" for v in dict.fromkeys(a.variants)),
                           workers=a.workers, threads=a.threads, device=a.device,
                           lengths={"M": a.lengths_M, "n": a.lengths or RECORDED_LENGTHS["n"]},
                           moduli={"n": a.moduli_n, "M": a.moduli or RECORDED_MODULI["M"]},
                           command=" ".join(["python -m simplex_lib.tasks.match3", *args]),
                           resume=a.resume, time_limit=a.time_limit, steps=a.steps, batch=a.batch,
                           width=a.width, heads=a.heads, eval_size=a.eval_size, test_size=a.test_size)
    except ValueError as exc:  # a resumed record of other settings
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
