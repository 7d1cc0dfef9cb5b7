"""Determinant (rotation-invariant) trilinear forms and their rotary position encoding.

The plain trilinear form ``<q, k1, k2> = sum_l q_l k1_l k2_l`` of 2-simplicial attention changes
when the same rotation is applied to all three vectors, so RoPE does not carry over to it.
Roy et al. (2025, section 5) replace it with a sum of 3x3 determinants over consecutive
3-chunks of the head dimension (their eq. 9):

.. math::

    A^{\\det}_{ijk} = \\sum_{l=0}^{p-1} \\det\\big[\\, q_i^{(l)},\\; k^{(1)(l)}_j,\\; k^{(2)(l)}_k \\big],
    \\qquad x^{(l)} = (x_{3l}, x_{3l+1}, x_{3l+2}),\\; p = d/3 .

A determinant is unchanged by a common rotation ``R`` in SO(3) of its three rows
(``det(RA) = det(R) det(A) = det(A)`` with the rows as columns of ``A``), so rotating every chunk
of ``q_i`` by ``R(i)``, of ``k1_j`` by ``R(j)`` and of ``k2_k`` by ``R(k)`` gives logits that depend
on positions only through ``R(i)^T R(j) = R(j - i)`` and ``R(i)^T R(k) = R(k - i)``, provided that
``R(t) = exp(t * theta * G)`` for one fixed skew-symmetric generator ``G`` (a one-parameter
subgroup: ``R(a) R(b) = R(a + b)``).

By Sarrus' rule each determinant is the difference of two plain trilinear forms of cyclically
shifted chunks (the paper's eq. 8), so the determinant logits cost two trilinear einsums.
"""

from __future__ import annotations

import torch

from ..checks import check_bshd, check_head_dim3, check_qkv, default_scale, expand_kv
from ..two_simplicial.reference import masked_softmax_pairs, reduce_values, two_simplicial_mask

__all__ = [
    "levi_civita",
    "det_logits",
    "det_logits_sarrus",
    "determinant_attention",
    "random_so3",
    "so3_generator",
    "so3_rotations",
    "rope_so3",
    "rope_rotations",
    "rope",
]


def levi_civita(dtype=torch.float64, device=None) -> torch.Tensor:
    """The 3x3x3 Levi-Civita symbol ``eps[a, b, c]``: ``det[x, y, z] = eps_abc x_a y_b z_c``.

    Parameters
    ----------
    dtype : floating torch.dtype, default ``torch.float64``
    device : torch.device or str, optional
        Default: the CPU.

    Returns
    -------
    Tensor ``[3, 3, 3]`` with entries in ``{-1, 0, 1}``.

    Raises
    ------
    ValueError
        If ``dtype`` is not a floating-point torch dtype.

    Examples
    --------
    >>> eps = levi_civita()
    >>> float(eps[0, 1, 2]), float(eps[1, 0, 2]), float(eps[0, 0, 2])
    (1.0, -1.0, 0.0)
    """
    _check_float_dtype(dtype)
    eps = torch.zeros(3, 3, 3, dtype=dtype, device=device)
    for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[a, b, c] = 1.0  # even permutations
        eps[a, c, b] = -1.0  # odd permutations
    return eps


def _chunks(t: torch.Tensor) -> torch.Tensor:
    """``[b, n, h, d] -> [b, n, h, d/3, 3]``."""
    return t.reshape(*t.shape[:-1], t.shape[-1] // 3, 3)


def det_logits(q, k1, k2) -> torch.Tensor:
    """Sum-of-determinants logits, the paper's eq. 9 (unscaled).

    ``A[b, h, i, j, k] = sum_l det([q_i^(l), k1_j^(l), k2_k^(l)])`` over the consecutive 3-chunks
    ``l`` of the head dimension, computed by contracting with the Levi-Civita symbol.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``, ``head_dim`` a multiple of 3
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0`` (GQA)

    Returns
    -------
    Tensor ``[batch, Hq, seq, seq, seq]`` (no scale, no mask).

    Raises
    ------
    ValueError
        Bad shapes (see :func:`simplex_lib.ops.checks.check_qkv`) or ``head_dim % 3 != 0``.

    Examples
    --------
    >>> e = torch.eye(3).reshape(1, 3, 1, 3)   # token t holds the basis vector e_t
    >>> float(det_logits(e, e, e)[0, 0, 0, 1, 2])  # det[e0, e1, e2] = 1
    1.0
    """
    group = check_qkv(q, {"k1": k1, "k2": k2})
    check_head_dim3(q.shape[-1])
    k1, k2 = expand_kv(k1, group), expand_kv(k2, group)
    eps = levi_civita(q.dtype, q.device)
    # Contract step by step so that each einsum is one batched product (a single three-operand
    # einsum may pick a path with a huge intermediate): q with eps, then k1, then k2.
    qe = torch.einsum("zihlx,xyw->zihlyw", _chunks(q), eps)  # [B, N, H, p, 3, 3]
    t = torch.einsum("zihlyw,zjhly->zhijlw", qe, _chunks(k1))  # [B, H, N, N, p, 3]
    return torch.einsum("zhijlw,zkhlw->zhijk", t, _chunks(k2))


def det_logits_sarrus(q, k1, k2) -> torch.Tensor:
    """Eq. 9 by Sarrus' rule: two plain trilinear einsums of cyclically shifted chunks.

    Per chunk, ``det[a, b, c] = <a, b', c''> - <a, b'', c'>`` where ``x'`` rotates the
    chunk's entries left by one (``(x1, x2, x0)``) and ``x''`` by two
    (``(x2, x0, x1)``), and ``<a, b, c> = sum_m a_m b_m c_m`` is the plain trilinear
    form (the paper's eq. 8).

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``, ``head_dim`` a multiple of 3
    k1, k2 : Tensor ``[batch, seq, Hkv, head_dim]``

    Returns
    -------
    Tensor ``[batch, Hq, seq, seq, seq]``, equal to :func:`det_logits`.

    Examples
    --------
    >>> q, a, b = (torch.randn(1, 4, 1, 6, dtype=torch.float64) for _ in range(3))
    >>> torch.allclose(det_logits_sarrus(q, a, b), det_logits(q, a, b))
    True
    """
    group = check_qkv(q, {"k1": k1, "k2": k2})
    check_head_dim3(q.shape[-1])
    k1, k2 = expand_kv(k1, group), expand_kv(k2, group)

    def shift(t, s):  # cyclic shift inside every 3-chunk, then back to [b, n, h, d]
        return torch.roll(_chunks(t), shifts=-s, dims=-1).flatten(-2)

    tri = "bihd,bjhd,bkhd->bhijk"
    return (torch.einsum(tri, q, shift(k1, 1), shift(k2, 2))
            - torch.einsum(tri, q, shift(k1, 2), shift(k2, 1)))


def determinant_attention(q, k1, k2, v1, v2, *, w1=None, w2=None, causal: bool = True, scale=None) -> torch.Tensor:
    """2-simplicial attention scored by the sum-of-determinants form (eq. 9).

    ``o_i = sum_{j,k} softmax_{(j,k)}(s * A^det_{ijk}) * (v1_j * v2_k)``, with the same windows,
    GQA and masking conventions as :func:`simplex_lib.ops.two_simplicial.reference.two_simplicial_attention`:
    ``j`` is visible iff ``i - w1 < j <= i`` and ``k`` iff ``i - w2 < k <= i``.

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``, ``head_dim`` a multiple of 3
    k1, k2, v1, v2 : Tensor ``[batch, seq, Hkv, head_dim]`` with ``Hq % Hkv == 0``
    w1, w2 : int or None
        Causal sliding windows (``None`` = no window); windows need ``causal=True``.
    causal : bool
    scale : float, optional (default ``1/sqrt(head_dim)``)

    Returns
    -------
    Tensor ``[batch, seq, Hq, head_dim]``. Materialises ``seq^3`` logits per head.

    Examples
    --------
    >>> q = torch.randn(1, 5, 4, 6); kv = [torch.randn(1, 5, 2, 6) for _ in range(4)]
    >>> determinant_attention(q, *kv, w1=3, w2=2).shape
    torch.Size([1, 5, 4, 6])
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    check_head_dim3(q.shape[-1])
    s = default_scale(q.shape[-1], scale)
    mask = two_simplicial_mask(q.shape[1], w1=w1, w2=w2, causal=causal, device=q.device)
    p = masked_softmax_pairs(det_logits(q, k1, k2) * s, mask)
    return reduce_values(p, v1, v2, mask=mask)


# --------------------------------------------------------------------------------------------
# Rotary encodings
# --------------------------------------------------------------------------------------------


def random_so3(generator=None, dtype=torch.float64) -> torch.Tensor:
    """A random rotation of R^3 (Haar-distributed on SO(3)).

    QR of a Gaussian matrix with the signs of ``R``'s diagonal moved into ``Q`` (which makes the
    draw uniform over O(3)), then one column flipped if needed so that ``det = +1``.

    Parameters
    ----------
    generator : torch.Generator, optional
    dtype : torch dtype

    Returns
    -------
    Tensor ``[3, 3]``, orthogonal with determinant 1.

    Examples
    --------
    >>> R = random_so3(torch.Generator().manual_seed(0))
    >>> torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype)), round(float(torch.linalg.det(R)), 6)
    (True, 1.0)
    """
    _check_float_dtype(dtype)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def so3_generator(axis=(1.0, 1.0, 1.0), dtype=torch.float64) -> torch.Tensor:
    """The skew-symmetric generator ``G = [u]_x`` of rotations about the unit axis ``u``.

    ``G @ x = u x x`` (cross product); ``exp(phi * G)`` rotates by ``phi`` radians about ``u``.

    Parameters
    ----------
    axis : 3 numbers, not all zero (normalised here)

    Returns
    -------
    Tensor ``[3, 3]`` with ``G.T == -G``.

    Examples
    --------
    >>> G = so3_generator((0, 0, 1))
    >>> (G + 0.0).tolist()   # + 0.0 turns -0.0 into 0.0
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    _check_float_dtype(dtype)
    try:
        u = torch.as_tensor(axis, dtype=dtype).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"axis must be 3 finite numbers, not all zero; got {axis!r}") from None
    if u.numel() != 3 or not torch.isfinite(u).all() or float(u.norm()) == 0.0:
        raise ValueError(f"axis must be 3 finite numbers, not all zero; got {axis!r}")
    u = u / u.norm()
    x, y, z = u.tolist()
    return torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=dtype)


def _check_float_dtype(dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, got {dtype!r}")


def _positions(positions, dtype, device=None, n=None) -> torch.Tensor:
    """``positions`` as a finite 1-D tensor of ``dtype`` (``n`` entries if given)."""
    try:
        pos = torch.as_tensor(positions, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"positions must be a 1-D tensor of numbers, got {positions!r}") from None
    if pos.dim() != 1 or (n is not None and pos.numel() != n) or pos.is_complex() or pos.dtype == torch.bool:
        want = f"with seq={n} entries" if n is not None else "of numbers"
        raise ValueError(f"positions must be 1-D {want}, got shape {tuple(pos.shape)} ({pos.dtype})")
    pos = pos.to(dtype)
    if not torch.isfinite(pos).all():
        raise ValueError("positions must be finite")
    return pos


def _frequencies(n_pairs: int, base: float, dtype, device) -> torch.Tensor:
    if isinstance(base, bool) or not (isinstance(base, (int, float)) and 0 < base < float("inf")):
        raise ValueError(f"base must be a positive number, got {base!r}")
    return base ** (-torch.arange(n_pairs, dtype=dtype, device=device) / max(n_pairs, 1))


def so3_rotations(positions, head_dim: int, *, base: float = 10000.0, axis=(1.0, 1.0, 1.0),
                  dtype=torch.float64) -> torch.Tensor:
    """Per-chunk rotations ``R_l(t) = exp(t * theta_l * G)`` for every position ``t``.

    ``theta_l = base^(-l/p)`` for chunk ``l`` of ``p = head_dim / 3``, and one generator ``G``
    (:func:`so3_generator`) shared by all chunks and positions, computed in closed form by
    Rodrigues' formula ``exp(phi G) = I + sin(phi) G + (1 - cos(phi)) G^2``.

    Parameters
    ----------
    positions : 1-D integer or float tensor ``[n]``
    head_dim : int, a multiple of 3
    base : float
    axis : the rotation axis of ``G``

    Returns
    -------
    Tensor ``[n, head_dim / 3, 3, 3]`` of rotation matrices (``R^T R = I``, ``det R = 1``).

    Examples
    --------
    >>> R = so3_rotations(torch.arange(4), 6)
    >>> R.shape, torch.allclose(R[2] @ R[1], R[3])   # R(2) R(1) = R(3)
    (torch.Size([4, 2, 3, 3]), True)
    """
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 3 or head_dim % 3:
        raise ValueError(f"head_dim must be an int multiple of 3, got head_dim={head_dim!r}")
    _check_float_dtype(dtype)
    pos = _positions(positions, dtype)
    G = so3_generator(axis, dtype=dtype).to(pos.device)
    theta = _frequencies(head_dim // 3, base, dtype, pos.device)
    phi = pos[:, None] * theta[None, :]  # [n, p]
    s, c = torch.sin(phi)[..., None, None], torch.cos(phi)[..., None, None]
    eye = torch.eye(3, dtype=dtype, device=pos.device)
    return eye + s * G + (1 - c) * (G @ G)


def rope_so3(x, positions=None, *, base: float = 10000.0,
             axis=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Rotary encoding for determinant logits: rotate chunk ``l`` of token ``t`` by
    ``R_l(t)``.

    Applied to ``q``, ``k1`` and ``k2``, it makes :func:`det_logits` depend on positions
    only through the offsets ``(j - i, k - i)``:
    ``det[R(i) a, R(j) b, R(k) c] = det[a, R(j - i) b, R(k - i) c]``.

    Parameters
    ----------
    x : Tensor ``[batch, seq, heads, head_dim]``, ``head_dim`` a multiple of 3
    positions : optional 1-D tensor ``[seq]`` (default ``0, 1, ..., seq - 1``)
    base, axis : see :func:`so3_rotations`

    Returns
    -------
    Tensor of the shape and dtype of ``x``.

    Examples
    --------
    >>> x = torch.randn(1, 4, 2, 6)
    >>> torch.allclose(rope_so3(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # rotations
    True
    """
    check_bshd("x", x)
    N, D = x.shape[1], x.shape[-1]
    check_head_dim3(D, "x")
    if positions is None:
        positions = torch.arange(N, device=x.device)
    positions = _positions(positions, torch.float64, x.device, N)
    R = so3_rotations(positions, D, base=base, axis=axis).to(x.dtype)  # [N, p, 3, 3]
    return torch.einsum("nlac,znhlc->znhla", R, _chunks(x)).flatten(-2)


def rope_rotations(positions, head_dim: int, *, base: float = 10000.0, dtype=torch.float64) -> torch.Tensor:
    """The 2x2 rotations of ordinary RoPE (Su et al., 2024): pair ``l`` turns by ``t * theta_l``.

    Parameters
    ----------
    positions : 1-D tensor ``[n]``
    head_dim : even int
    base : float

    Returns
    -------
    Tensor ``[n, head_dim / 2, 2, 2]``.

    Examples
    --------
    >>> torch.equal(rope_rotations(torch.tensor([0]), 4)[0, 0], torch.eye(2, dtype=torch.float64))
    True
    """
    if not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be an even int for RoPE, got head_dim={head_dim!r}")
    _check_float_dtype(dtype)
    pos = _positions(positions, dtype)
    phi = pos[:, None] * _frequencies(head_dim // 2, base, dtype, pos.device)[None, :]
    c, s = torch.cos(phi), torch.sin(phi)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rope(x, positions=None, *, base: float = 10000.0) -> torch.Tensor:
    """Ordinary RoPE for dot products: rotate consecutive pairs of ``x`` by position.

    ``<rope(q)_i, rope(k)_j>`` depends on positions only through ``j - i``.

    Parameters
    ----------
    x : Tensor ``[batch, seq, heads, head_dim]``, ``head_dim`` even
    positions : optional 1-D tensor ``[seq]`` (default ``0, 1, ..., seq - 1``)
    base : float

    Returns
    -------
    Tensor of the shape and dtype of ``x``.

    Examples
    --------
    >>> x = torch.randn(1, 3, 1, 4)
    >>> torch.allclose(rope(x)[:, 0], x[:, 0])   # position 0 is not rotated
    True
    """
    check_bshd("x", x)
    N, D = x.shape[1], x.shape[-1]
    if D % 2:
        raise ValueError(f"head_dim of x must be even for RoPE, got head_dim={D}")
    if positions is None:
        positions = torch.arange(N, device=x.device)
    positions = _positions(positions, torch.float64, x.device, N)
    R = rope_rotations(positions, D, base=base).to(x.dtype)
    pairs = x.reshape(*x.shape[:-1], D // 2, 2)
    return torch.einsum("nlac,znhlc->znhla", R, pairs).flatten(-2)

