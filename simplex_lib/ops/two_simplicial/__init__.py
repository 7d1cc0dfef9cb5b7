"""2-simplicial attention: a query scored against pairs of keys.

- :mod:`.reference`  the float64 einsum ground truth (``seq^3`` per head) and its pieces;
- :mod:`.windowed`   the memory-efficient PyTorch path (gathered windows or selections);
- :mod:`.variants`   face-normalised weights, checked against the reference.

The reference stays in its module (``from simplex_lib.ops.two_simplicial import reference``) so
that the package's ``two_simplicial_attention`` can name the fast entry point.
"""

from .variants import face_normalised_attention, face_normalised_weights
from .windowed import gathered_two_simplicial_attention, window_indices, windowed_two_simplicial_attention

__all__ = [
    "windowed_two_simplicial_attention",
    "gathered_two_simplicial_attention",
    "window_indices",
    "face_normalised_attention",
    "face_normalised_weights",
]
