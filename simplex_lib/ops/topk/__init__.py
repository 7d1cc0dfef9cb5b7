"""Top-k 2-simplicial attention: each query attends to the pairs of its selected key rows.

- :mod:`.reference`  the masked float64 reference, :func:`topk_two_simplicial_attention`;
- :mod:`.triton`     the Triton kernels (forward and backward) behind
  :func:`topk_two_simplicial_attention_triton`, loaded on first use so that importing the
  reference never imports Triton.
- :mod:`.indexer`    a fused lightning indexer (ReLU scores and the top-k selection in one Triton
  kernel, ``O(seq * k)`` memory), :func:`~.indexer.indexer_topk_triton`.

Selections (which keys each query keeps) come from :mod:`simplex_lib.selection`; they are
validated by :func:`simplex_lib.masks.check_topk_index`.
"""

from .reference import topk_two_simplicial_attention

__all__ = ["topk_two_simplicial_attention", "topk_two_simplicial_attention_triton"]


def __getattr__(name):
    # Lazy: Triton is heavy and optional for everything but the kernels.
    if name == "topk_two_simplicial_attention_triton":
        from .triton import topk_two_simplicial_attention_triton

        return topk_two_simplicial_attention_triton
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
