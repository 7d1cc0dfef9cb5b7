"""The interface of the sliding-window kernels: argument checks, torch custom ops, autograd.

``torch.ops.simplex_lib.two_simplicial_fwd`` and ``two_simplicial_bwd`` are ``torch.library``
custom ops with fake implementations, so ``torch.compile`` traces a model through them without a
graph break; the backward is attached with ``register_autograd`` and refuses to be
differentiated again. The public entry point is :func:`two_simplicial_attention`, which checks
every argument; the ops check shapes as well, since ``torch.ops`` makes them reachable.

Two kernels sit behind each direction: the portable Triton kernels (:mod:`.forward`,
:mod:`.backward`: any GPU Triton supports, and the CPU interpreter) and the Gluon kernels for
Hopper (:mod:`.hopper`, :mod:`.hopper_bwd`: sm_90, the shapes their ``*_supported`` accept; the
Gluon backward gives ``dq``, ``dk2``, ``dv2`` and leaves ``dk1``, ``dv1`` to the portable key-tile
kernel). :func:`kernel_backend` picks one for each direction. Every
kernel rounds the logits' operand the same way, so either backward, which recomputes the logits,
agrees with the log-sum-exp of either forward.
"""

from __future__ import annotations

import math

import torch

from simplex_lib.ops.checks import check_qkv, check_window, nan_rows, nonfinite_rows, zero_rows

from . import backward as _bwd
from . import forward as _fwd
from .configs import interpreting

__all__ = ["SUPPORTED_HEAD_DIMS", "KERNEL_BACKENDS", "AUTO_PICKS_HOPPER", "AUTO_BWD_PICKS_HOPPER", "GLUON_TESTED",
           "two_simplicial_attention", "kernel_backend", "check_kernel_inputs",
           "check_scale"]

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
#: What ``two_simplicial_attention(backend=...)`` accepts; ``"auto"`` takes the picks of
#: :func:`kernel_backend` for each direction.
KERNEL_BACKENDS = ("auto", "portable", "hopper")
#: Whether ``"auto"`` takes the Gluon forward where it can run. Off: on an H200 it is slower than
#: the portable kernel at the shapes it takes (419 against 545 TFLOPS at D 128, 339 against 383 at
#: D 64; ``benchmarks/results/h200/hopper_s13.json``), so it runs only when asked for.
AUTO_PICKS_HOPPER = False
#: Whether ``"auto"`` takes the Gluon backward (``dq``, ``dk2``, ``dv2``) where it can run. On: on
#: an H200 its kernel takes 46 ms where the portable ring kernel takes 129 (D 128, 512 x 32, B 2,
#: N 8192, GQA 64; ``benchmarks/results/h200/hopper_bwd.json``), and it is deterministic as well.
AUTO_BWD_PICKS_HOPPER = True


def check_kernel_inputs(q: torch.Tensor, named: dict, *, fallback: str) -> None:
    """Dtype and device checks shared by every kernel entry point.

    ``q`` must be float16, bfloat16 or float32 and every tensor of ``named`` must have its dtype
    and device. On a tensor that is not on a GPU the kernels only run under
    ``TRITON_INTERPRET=1``, and the error names ``fallback`` (the reference path to use instead).

    Parameters
    ----------
    q : Tensor ``[batch, seq, Hq, head_dim]``
    named : dict
        The other inputs (keys, values, ...) by argument name; shapes are not checked here
        (:func:`simplex_lib.ops.checks.check_qkv` does that).
    fallback : str
        What the error suggests instead of the kernel, e.g. ``'backend="reference"'``.

    Raises
    ------
    ValueError
        If ``q``'s dtype is not float16, bfloat16 or float32, a tensor's dtype or device differs
        from ``q``'s, or ``q`` is not on a CUDA device and ``TRITON_INTERPRET`` is unset or 0.
    """
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q must be float16, bfloat16 or float32, got {q.dtype}")
    for name, t in named.items():
        if t.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}")
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"the Triton kernels need a CUDA GPU (q is on {q.device}); use {fallback} "
            "or set TRITON_INTERPRET=1 before importing triton"
        )


def check_scale(scale, head_dim: int) -> float:
    """``1/sqrt(head_dim)`` for ``None``, else ``scale`` as a float; it must be finite.

    Parameters
    ----------
    scale : int, float or None
    head_dim : int >= 1

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``scale`` is a bool, not an int or float, or not finite.

    Examples
    --------
    >>> check_scale(None, 16), check_scale(2, 16)
    (0.25, 2.0)
    """
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a finite number or None, got {scale!r}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def _check_op_inputs(q, k1, k2, v1, v2, w1, w2, scale) -> None:
    """What the custom ops need to run safely (they are reachable through ``torch.ops``)."""
    named = {"k1": k1, "k2": k2, "v1": v1, "v2": v2}
    check_qkv(q, named)
    check_kernel_inputs(q, named, fallback='backend="reference"')
    if q.shape[-1] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {SUPPORTED_HEAD_DIMS} for the kernels, "
                         f"got {q.shape[-1]}")
    for name, w in (("w1", w1), ("w2", w2)):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{name} must be an int >= 1 for the kernels, got {w!r}")
    check_scale(scale, q.shape[-1])


def _hopper_reason(q, k1, w1, w2, direction: str = "forward") -> str | None:
    """Why the Hopper kernel of ``direction`` (``"forward"`` or ``"backward"``) cannot take these
    inputs (windows already clipped and ordered long-first), or ``None``."""
    if interpreting():
        return "the Gluon kernel does not run under TRITON_INTERPRET=1"
    if not q.is_cuda or torch.cuda.get_device_capability(q.device)[0] != 9:
        return "needs a Hopper GPU (sm_90)"
    try:  # Gluon's Hopper module: only on an sm_90 GPU, and only with a Triton that has it
        from .hopper import default_block_n, hopper_supported
        from .hopper_bwd import hopper_bwd_supported
    except ImportError as e:
        return f"needs a Triton with Gluon's Hopper module (import failed: {e})"
    if direction == "backward":
        return hopper_bwd_supported(q, k1, w1, w2)
    return hopper_supported(q, k1, w1, w2, default_block_n(q.shape[-1], w1))


#: Triton releases (major.minor) whose Gluon the Hopper kernels are tested with; ``"auto"`` takes
#: them only there (``"hopper"`` tries them anywhere).
GLUON_TESTED = ("3.6",)


def _gluon_tested() -> bool:
    import triton

    return ".".join(triton.__version__.split(".")[:2]) in GLUON_TESTED


def kernel_backend(direction: str, q, k1, w1: int, w2: int, scale=None, backend: str = "auto") -> str:
    """The kernels :func:`two_simplicial_attention` runs in ``direction``: ``"hopper"`` or
    ``"portable"``.

    ``"hopper"`` takes the Gluon kernel of that direction and raises where it cannot run. The
    forward (:func:`.hopper.hopper_forward`) accepts sm_90, bf16, 64 query heads per key/value
    head, ``D`` 64 or 128 and the long window a multiple of its tile; the backward
    (:func:`.hopper_bwd.hopper_backward`: ``dq``, ``dk2``, ``dv2`` from Gluon, ``dk1``, ``dv1``
    from the portable key-tile kernel) the same shapes with ``w2 <= 64`` and the long window a
    multiple of 64. ``"auto"`` takes the Gluon kernel wherever it accepts the inputs, if that
    direction's switch is on (:data:`AUTO_PICKS_HOPPER` for the forward, off: the measured Gluon
    forward is the slower one; :data:`AUTO_BWD_PICKS_HOPPER` for the backward, on) and Triton is
    a release the Gluon kernels are tested with (:data:`GLUON_TESTED`); the portable kernels,
    which are always correct, everywhere else. Every kernel is deterministic.

    Parameters
    ----------
    direction : ``"forward"`` or ``"backward"``
    q : Tensor ``[B, N, Hq, D]``
    k1 : Tensor ``[B, N, Hkv, D]``
    w1, w2 : int >= 1
        The windows as passed (clipped to ``N`` and ordered long-first here, as the kernels do).
    scale : float, optional
        The logit scale (``1/sqrt(D)`` when ``None``).
    backend : ``"auto"``, ``"portable"`` or ``"hopper"``

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``direction`` or ``backend`` is unknown, or ``backend`` is ``"hopper"`` for inputs the
        Hopper kernel of that direction cannot take (the message says why).
    """
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if backend not in KERNEL_BACKENDS:
        raise ValueError(f"backend must be one of {KERNEL_BACKENDS}, got {backend!r}")
    auto_picks = AUTO_PICKS_HOPPER if direction == "forward" else AUTO_BWD_PICKS_HOPPER
    if backend == "portable" or (backend == "auto" and not auto_picks):
        return "portable"
    wl, ws, _ = _kernel_windows(q.shape[1], w1, w2)
    check_scale(scale, q.shape[-1])
    why = _hopper_reason(q, k1, wl, ws, direction)
    if why is None and backend == "auto" and not _gluon_tested():
        return "portable"  # Gluon is experimental: its API moves between Triton releases
    if why is None:
        return "hopper"
    if backend == "hopper":
        raise ValueError(f"backend='hopper' cannot take these inputs ({direction}): {why}")
    return "portable"


def _kernel_windows(N: int, w1: int, w2: int) -> tuple:
    """The windows the kernels walk: ``(long, short, swapped)``, each clipped to the sequence
    (a window longer than it shows every key). The kernels walk the longer window in tiles and
    the shorter one row by row, so ``swapped`` says the two key/value sets trade places."""
    w1, w2 = min(w1, N), min(w2, N)
    return max(w1, w2), min(w1, w2), w2 > w1


def _prepare(q, k1, k2, v1, v2, w1, w2):
    """Contiguous inputs (fp32 under the interpreter), windows clipped to the sequence and
    ordered long-first. Returns the tensors, the windows and whether the sets were swapped."""
    w1, w2, swap = _kernel_windows(q.shape[1], w1, w2)
    if swap:
        k1, k2, v1, v2 = k2, k1, v2, v1
    ts = [t.contiguous() for t in (q, k1, k2, v1, v2)]
    if interpreting():
        ts = [t.float() for t in ts]  # the interpreter miscomputes bf16 dots (Triton #11584)
    return ts, w1, w2, swap


@torch.library.custom_op("simplex_lib::two_simplicial_fwd", mutates_args=())
def two_simplicial_fwd(q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, v1: torch.Tensor,
                       v2: torch.Tensor, w1: int, w2: int, scale: float, backend: str = "portable"
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward custom op: ``(o, lse)`` with ``lse`` ``[B, Hq, N]`` float32 (base 2); ``backend``
    as :func:`kernel_backend` takes it."""
    _check_op_inputs(q, k1, k2, v1, v2, w1, w2, scale)
    if q.numel() == 0:
        kernel_backend("forward", q, k1, w1, w2, scale, backend)  # a bad name fails here too
        return torch.zeros_like(q), q.new_zeros((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)
    (q_, k1_, k2_, v1_, v2_), w1_, w2_, _ = _prepare(q, k1, k2, v1, v2, w1, w2)
    if kernel_backend("forward", q_, k1_, w1_, w2_, scale, backend) == "hopper":
        from .hopper import hopper_forward

        return hopper_forward(q_, k1_, k2_, v1_, v2_, w1_, w2_, scale)
    o, lse = _fwd.forward(q_, k1_, k2_, v1_, v2_, w1_, w2_, scale)
    return o.to(q.dtype), lse


@two_simplicial_fwd.register_fake
def _(q, k1, k2, v1, v2, w1, w2, scale, backend="portable"):
    B, N, Hq, _ = q.shape
    return torch.empty_like(q), q.new_empty((B, Hq, N), dtype=torch.float32)


@torch.library.custom_op("simplex_lib::two_simplicial_bwd", mutates_args=())
def two_simplicial_bwd(do: torch.Tensor, q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor,
                       v1: torch.Tensor, v2: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                       w1: int, w2: int, scale: float, backend: str = "portable"
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward custom op: ``(dq, dk1, dk2, dv1, dv2)`` in the inputs' dtypes; ``backend`` as
    :func:`kernel_backend` takes it."""
    _check_op_inputs(q, k1, k2, v1, v2, w1, w2, scale)
    B, N, Hq, _ = q.shape
    for name, t, shape in (("do", do, q.shape), ("o", o, q.shape), ("lse", lse, (B, Hq, N))):
        if tuple(t.shape) != tuple(shape) or t.device != q.device:
            raise ValueError(f"{name} must have shape {tuple(shape)} on {q.device}, "
                             f"got {tuple(t.shape)} on {t.device}")
    if q.numel() == 0:
        kernel_backend("backward", q, k1, w1, w2, scale, backend)  # a bad name fails here too
        return tuple(torch.zeros_like(t) for t in (q, k1, k2, v1, v2))
    rows = nonfinite_rows(do, q, k1, k2, v1, v2)
    if rows is not None:  # rare: run on zeroed rows, then put NaN back where it belongs
        return _backward_nonfinite(rows, do, q, k1, k2, v1, v2, o, lse, w1, w2, scale, backend)
    (q_, k1_, k2_, v1_, v2_), w1_, w2_, swap = _prepare(q, k1, k2, v1, v2, w1, w2)
    do_, o_ = do.contiguous(), o.contiguous()
    if interpreting():
        do_, o_ = do_.float(), o_.float()
    lse_ = lse.float().contiguous()
    if kernel_backend("backward", q_, k1_, w1_, w2_, scale, backend) == "hopper":
        from .hopper_bwd import hopper_backward

        dq, dk1, dk2, dv1, dv2 = hopper_backward(do_, q_, k1_, k2_, v1_, v2_, o_, lse_, w1_, w2_, scale)
    else:
        dq, dk1, dk2, dv1, dv2 = _bwd.backward(do_, q_, k1_, k2_, v1_, v2_, o_, lse_, w1_, w2_, scale)
    if swap:
        dk1, dk2, dv1, dv2 = dk2, dk1, dv2, dv1
    return dq.to(q.dtype), dk1.to(k1.dtype), dk2.to(k2.dtype), dv1.to(v1.dtype), dv2.to(v2.dtype)


def _any_in_window(x: torch.Tensor, w: int, *, ahead: bool = False) -> torch.Tensor:
    """``out[:, i] = any(x[:, i - w + 1 : i + 1])`` over the sequence dim of ``x`` ``[B, N, H]``
    (``x[:, i : i + w]`` when ``ahead``): which queries see a row, or which rows a query reads."""
    if ahead:
        return _any_in_window(x.flip(1), w).flip(1)
    c = x.int().cumsum(1)
    before = torch.nn.functional.pad(c, (0, 0, w, 0))[:, : x.shape[1]]  # c[i - w]
    return (c - before) > 0


def _backward_nonfinite(rows, do, q, k1, k2, v1, v2, o, lse, w1, w2, scale, backend):
    """The backward when some input row is not finite, with NaN kept where it belongs.

    A query is poisoned when its own ``q`` or ``do`` row, or a K1/V1 row in its ``w1`` window, or
    a K2/V2 row in its ``w2`` window is not finite (its output is then NaN). Its ``dq`` is NaN, and
    so is the gradient of every key/value row it reads. Every other gradient only sums over
    clean queries, so it is computed exactly from the inputs with the bad rows zeroed (the
    kernels multiply whole tiles, where a masked ``0 * NaN`` would otherwise spread); a poisoned
    query gets ``lse = +inf``, so its weights are exact zeros.
    """
    bad_do, bad_q, bad_k1, bad_k2, bad_v1, bad_v2 = rows
    B, N, Hq, _ = q.shape
    G = Hq // k1.shape[2]
    w1, w2 = min(w1, N), min(w2, N)
    seen1 = _any_in_window(bad_k1 | bad_v1, w1).repeat_interleave(G, dim=2)
    seen2 = _any_in_window(bad_k2 | bad_v2, w2).repeat_interleave(G, dim=2)
    poisoned = bad_q | bad_do | seen1 | seen2  # [B, N, Hq]
    by_kv = poisoned.view(B, N, -1, G).any(-1)  # [B, N, Hkv]: a poisoned query of the group
    read1, read2 = _any_in_window(by_kv, w1, ahead=True), _any_in_window(by_kv, w2, ahead=True)

    grads = two_simplicial_bwd(zero_rows(do, poisoned), zero_rows(q, bad_q), zero_rows(k1, bad_k1),
                               zero_rows(k2, bad_k2), zero_rows(v1, bad_v1), zero_rows(v2, bad_v2),
                               zero_rows(o, poisoned),
                               lse.masked_fill(poisoned.transpose(1, 2), float("inf")), w1, w2, scale,
                               backend)
    return nan_rows(grads, (poisoned, read1, read2, read1, read2))


@two_simplicial_bwd.register_fake
def _(do, q, k1, k2, v1, v2, o, lse, w1, w2, scale, backend="portable"):
    return (torch.empty_like(q), torch.empty_like(k1), torch.empty_like(k2),
            torch.empty_like(v1), torch.empty_like(v2))


def _setup_context(ctx, inputs, output):
    q, k1, k2, v1, v2, w1, w2, scale, backend = inputs
    o, lse = output
    ctx.save_for_backward(q, k1, k2, v1, v2, o, lse)
    ctx.w1, ctx.w2, ctx.scale, ctx.backend = w1, w2, scale, backend


def _backward(ctx, do, dlse):
    # dlse is never used: the public function returns only o.
    q, k1, k2, v1, v2, o, lse = ctx.saved_tensors
    grads = torch.ops.simplex_lib.two_simplicial_bwd(do, q, k1, k2, v1, v2, o, lse,
                                                      ctx.w1, ctx.w2, ctx.scale, ctx.backend)
    return (*grads, None, None, None, None)


# The backward op has no derivative of its own: a second derivative raises
# "derivative for simplex_lib::two_simplicial_bwd is not implemented".
two_simplicial_fwd.register_autograd(_backward, setup_context=_setup_context)


def two_simplicial_attention(q, k1, k2, v1, v2, *, w1: int, w2: int, scale=None, backend: str = "auto"):
    """Sliding-window 2-simplicial attention with Triton kernels (forward and backward).

    Computes ``o[b,i,h] = sum_{j,k} P[i,j,k] * v1[b,j,g] * v2[b,k,g]`` where ``g = h // (Hq // Hkv)``,
    ``P`` is the softmax over the pairs ``(j, k)`` with ``i - w1 < j <= i`` and ``i - w2 < k <= i``
    of the logits ``scale * sum_l q[b,i,h,l] k1[b,j,g,l] k2[b,k,g,l]``. Same semantics as the
    float64 reference ``two_simplicial_attention(..., w1=w1, w2=w2, causal=True)``.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``, float16, bfloat16 or float32, on a CUDA GPU (or any device
        under ``TRITON_INTERPRET=1``)
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]`` with ``Hq % Hkv == 0``; ``D`` in 16, 32, 64, 128;
        same dtype and device as ``q``.
    w1, w2 : int >= 1
        Window lengths (longer than ``N`` means the whole causal prefix).
    scale : float, optional
        Logit scale, ``1/sqrt(D)`` by default; must be finite.
    backend : ``"auto"`` (default), ``"portable"`` or ``"hopper"``
        The kernels of each direction (:func:`kernel_backend`):
        ``"hopper"`` the Gluon kernels for H100/H200 (raises where either cannot run),
        ``"portable"`` the Triton kernels that run everywhere, ``"auto"`` the faster one that
        takes the inputs (today the portable forward and, where it runs, the Gluon backward).

    Returns
    -------
    Tensor ``[B, N, Hq, D]`` in ``q``'s dtype, differentiable once in all five inputs (a second
    derivative raises). The forward keeps ``O(B * N * Hq)`` extra (the log-sum-exp). The
    backward's paths that sum the short window's key gradients in a fixed order (the Gluon
    backward, and the fused portable one at several positions a tile) hold two fp32 partial
    buffers of at most ``B * Hkv * N * w2 * D`` elements each while they run; nothing is of size
    ``N * w1 * w2``. An empty batch or sequence gives an empty result.

    Raises
    ------
    ValueError
        Naming the argument: a shape, head count (``Hq % Hkv``), dtype, device, window, scale,
        head_dim or backend the kernels do not support.

    Examples
    --------
    >>> import torch
    >>> q = torch.randn(1, 8, 4, 16); k = torch.randn(1, 8, 1, 16)
    >>> two_simplicial_attention(q, k, k, k, k, w1=4, w2=2).shape  # doctest: +SKIP
    torch.Size([1, 8, 4, 16])
    """
    if backend not in KERNEL_BACKENDS:  # a misspelt name first, whatever the inputs
        raise ValueError(f"backend must be one of {KERNEL_BACKENDS}, got {backend!r}")
    named = {"k1": k1, "k2": k2, "v1": v1, "v2": v2}
    check_qkv(q, named)
    for name, w in (("w1", w1), ("w2", w2)):
        check_window(name, w)
        if w is None:
            raise ValueError(f"{name} must be an int >= 1 for the kernels (use N for no window)")
    D = q.shape[-1]
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {SUPPORTED_HEAD_DIMS} for the kernels, got {D}")
    check_kernel_inputs(q, named, fallback='backend="reference"')
    scale = check_scale(scale, D)
    # an unknown or impossible backend fails here, not in the backward
    kernel_backend("forward", q, k1, int(w1), int(w2), scale, backend)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k1, k2, v1, v2)):
        kernel_backend("backward", q, k1, int(w1), int(w2), scale, backend)
    o, _ = torch.ops.simplex_lib.two_simplicial_fwd(q, k1, k2, v1, v2, int(w1), int(w2), scale, backend)
    return o
