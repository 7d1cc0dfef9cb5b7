"""The public entry point: argument checks, the torch custom ops and their autograd.

``two_simplicial_fwd`` and ``two_simplicial_bwd`` are registered as ``torch.library`` custom
ops (with fake implementations), so ``torch.compile`` traces a model through them without a
graph break; the backward is attached with ``register_autograd``.
"""

from __future__ import annotations

import torch

from .._checks import check_qkv, check_window, default_scale
from . import backward as _bwd
from . import forward as _fwd
from .configs import interpreting

SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)


def _prepare(q, k1, k2, v1, v2, w1, w2):
    """Contiguous inputs (fp32 under the interpreter), windows clipped to the sequence and
    ordered long-first. Returns the tensors, the windows and whether the sets were swapped."""
    N = q.shape[1]
    w1, w2 = min(w1, N), min(w2, N)  # a window longer than the sequence shows every key
    swap = w2 > w1  # the kernels walk the longer window in tiles, the shorter row by row
    if swap:
        k1, k2, v1, v2, w1, w2 = k2, k1, v2, v1, w2, w1
    ts = [t.contiguous() for t in (q, k1, k2, v1, v2)]
    if interpreting():
        ts = [t.float() for t in ts]  # the interpreter miscomputes bf16 dots (Triton #11584)
    return ts, w1, w2, swap


@torch.library.custom_op("simplex_lib::two_simplicial_fwd", mutates_args=())
def two_simplicial_fwd(q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, v1: torch.Tensor,
                       v2: torch.Tensor, w1: int, w2: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward custom op: ``(o, lse)`` with ``lse`` ``[B, Hq, N]`` float32 (base 2)."""
    (q_, k1_, k2_, v1_, v2_), w1_, w2_, _ = _prepare(q, k1, k2, v1, v2, w1, w2)
    o, lse = _fwd.forward(q_, k1_, k2_, v1_, v2_, w1_, w2_, scale)
    return o.to(q.dtype), lse


@two_simplicial_fwd.register_fake
def _(q, k1, k2, v1, v2, w1, w2, scale):
    B, N, Hq, _ = q.shape
    return torch.empty_like(q), q.new_empty((B, Hq, N), dtype=torch.float32)


@torch.library.custom_op("simplex_lib::two_simplicial_bwd", mutates_args=())
def two_simplicial_bwd(do: torch.Tensor, q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor,
                       v1: torch.Tensor, v2: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                       w1: int, w2: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backward custom op: ``(dq, dk1, dk2, dv1, dv2)`` in the inputs' dtypes."""
    (q_, k1_, k2_, v1_, v2_), w1_, w2_, swap = _prepare(q, k1, k2, v1, v2, w1, w2)
    do_, o_ = do.contiguous(), o.contiguous()
    if interpreting():
        do_, o_ = do_.float(), o_.float()
    dq, dk1, dk2, dv1, dv2 = _bwd.backward(do_, q_, k1_, k2_, v1_, v2_, o_, lse, w1_, w2_, scale)
    if swap:
        dk1, dk2, dv1, dv2 = dk2, dk1, dv2, dv1
    return dq.to(q.dtype), dk1.to(k1.dtype), dk2.to(k2.dtype), dv1.to(v1.dtype), dv2.to(v2.dtype)


@two_simplicial_bwd.register_fake
def _(do, q, k1, k2, v1, v2, o, lse, w1, w2, scale):
    return (torch.empty_like(q), torch.empty_like(k1), torch.empty_like(k2),
            torch.empty_like(v1), torch.empty_like(v2))


def _setup_context(ctx, inputs, output):
    q, k1, k2, v1, v2, w1, w2, scale = inputs
    o, lse = output
    ctx.save_for_backward(q, k1, k2, v1, v2, o, lse)
    ctx.w1, ctx.w2, ctx.scale = w1, w2, scale


def _backward(ctx, do, dlse):
    # dlse is never used: the public function returns only o.
    q, k1, k2, v1, v2, o, lse = ctx.saved_tensors
    grads = torch.ops.simplex_lib.two_simplicial_bwd(do, q, k1, k2, v1, v2, o, lse,
                                                      ctx.w1, ctx.w2, ctx.scale)
    return (*grads, None, None, None)


two_simplicial_fwd.register_autograd(_backward, setup_context=_setup_context)


class TwoSimplicialFunction(torch.autograd.Function):
    """The same forward and backward as a plain ``torch.autograd.Function`` (eager use).

    ``TwoSimplicialFunction.apply(q, k1, k2, v1, v2, w1, w2, scale)`` returns ``o``; its backward
    returns ``dq, dk1, dk2, dv1, dv2`` (GQA gradients summed over each group).
    """

    @staticmethod
    def forward(ctx, q, k1, k2, v1, v2, w1, w2, scale):
        o, lse = torch.ops.simplex_lib.two_simplicial_fwd(q, k1, k2, v1, v2, w1, w2, scale)
        ctx.save_for_backward(q, k1, k2, v1, v2, o, lse)
        ctx.w1, ctx.w2, ctx.scale = w1, w2, scale
        return o

    @staticmethod
    def backward(ctx, do):
        return _backward(ctx, do, None)


def check_kernel_inputs(q, named: dict, *, fallback: str) -> None:
    """Dtype and device checks shared by every kernel entry point.

    ``q`` must be float16, bfloat16 or float32 and every tensor of ``named`` must have its dtype;
    on a tensor that is not on a GPU the kernels only run under ``TRITON_INTERPRET=1``, and the
    error names ``fallback`` (the reference path to use instead).
    """
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q must be float16, bfloat16 or float32, got {q.dtype}")
    for name, t in named.items():
        if t.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}")
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"the Triton kernels need a CUDA GPU (q is on {q.device}); use {fallback} "
            "or set TRITON_INTERPRET=1 before importing triton"
        )


def two_simplicial_attention(q, k1, k2, v1, v2, *, w1: int, w2: int, scale=None):
    """Sliding-window 2-simplicial attention with Triton kernels (forward and backward).

    Computes ``o[b,i,h] = sum_{j,k} P[i,j,k] * v1[b,j,g] * v2[b,k,g]`` where ``g = h // (Hq // Hkv)``,
    ``P`` is the softmax over the pairs ``(j, k)`` with ``i - w1 < j <= i`` and ``i - w2 < k <= i``
    of the logits ``scale * sum_l q[b,i,h,l] k1[b,j,g,l] k2[b,k,g,l]``. Same semantics as
    ``simplex_lib.reference.two_simplicial_attention(..., w1=w1, w2=w2, causal=True)``.

    Parameters
    ----------
    q : Tensor ``[B, N, Hq, D]``
    k1, k2, v1, v2 : Tensor ``[B, N, Hkv, D]`` with ``Hq % Hkv == 0``; ``D`` in 16, 32, 64, 128.
    w1, w2 : int >= 1
        Window lengths (any value; longer than ``N`` means the whole causal prefix).
    scale : float, optional
        Logit scale, ``1/sqrt(D)`` by default.

    Returns
    -------
    Tensor ``[B, N, Hq, D]`` in ``q``'s dtype, differentiable in all five inputs.
    Extra memory is ``O(B * N * Hq)`` (the log-sum-exp); nothing of size ``N * w1 * w2``.

    Examples
    --------
    >>> import torch
    >>> q = torch.randn(1, 8, 4, 16); k = torch.randn(1, 8, 1, 16)
    >>> two_simplicial_attention(q, k, k, k, k, w1=4, w2=2).shape  # doctest: +SKIP
    torch.Size([1, 8, 4, 16])
    """
    check_qkv(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2})
    for name, w in (("w1", w1), ("w2", w2)):
        check_window(name, w)
        if w is None:
            raise ValueError(f"{name} must be an int >= 1 for the kernels (use N for no window)")
    D = q.shape[-1]
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {SUPPORTED_HEAD_DIMS} for the kernels, got {D}")
    check_kernel_inputs(q, {"k1": k1, "k2": k2, "v1": v1, "v2": v2}, fallback='backend="reference"')
    scale = default_scale(D, scale)
    if q.shape[1] == 0 or q.shape[0] == 0:
        return torch.zeros_like(q)
    o, _ = torch.ops.simplex_lib.two_simplicial_fwd(q, k1, k2, v1, v2, int(w1), int(w2), float(scale))
    return o
