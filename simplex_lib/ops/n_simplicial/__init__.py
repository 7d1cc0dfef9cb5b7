"""n-simplicial attention (a query against n-tuples of keys): the einsum reference in :mod:`.reference`."""

from .reference import n_simplicial_attention

__all__ = ["n_simplicial_attention"]
