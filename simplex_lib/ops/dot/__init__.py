"""Dot-product attention (the 1-simplex): the einsum reference in :mod:`simplex_lib.ops.dot.reference`."""

from .reference import dot_attention, dot_attention_weights

__all__ = ["dot_attention", "dot_attention_weights"]
