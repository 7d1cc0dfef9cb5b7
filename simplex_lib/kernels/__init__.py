"""Triton kernels for sliding-window 2-simplicial attention (forward and backward).

:func:`two_simplicial_attention` is the entry point; it is backed by the torch custom ops
``torch.ops.simplex_lib.two_simplicial_fwd`` / ``two_simplicial_bwd`` so that ``torch.compile``
traces through it. On a machine without a GPU the kernels run under ``TRITON_INTERPRET=1``.
"""

from .op import SUPPORTED_HEAD_DIMS, TwoSimplicialFunction, two_simplicial_attention  # noqa: F401

__all__ = ["two_simplicial_attention", "TwoSimplicialFunction", "SUPPORTED_HEAD_DIMS"]
from .topk import topk_two_simplicial_attention_triton  # noqa: F401,E402
from .determinant import determinant_attention_triton  # noqa: F401,E402
