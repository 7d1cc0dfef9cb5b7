"""n-simplicial attention (a query against n-tuples of keys): :mod:`simplex_lib.ops.n_simplicial.reference`."""

from .reference import n_simplicial_attention

__all__ = ["n_simplicial_attention"]
