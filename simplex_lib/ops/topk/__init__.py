"""Top-k 2-simplicial attention: each query attends to the pairs of its selected key rows.

:func:`topk_two_simplicial_attention_triton` runs the Triton kernels (forward and backward);
:func:`check_topk_index` validates a selection as the kernels read it.
"""

from .triton import check_topk_index, topk_two_simplicial_attention_triton

__all__ = ["topk_two_simplicial_attention_triton", "check_topk_index"]
