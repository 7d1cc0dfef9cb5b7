"""2-simplicial attention: a query scored against pairs of keys.

- :mod:`.reference`  the float64 einsum ground truth (``seq^3`` per head) and its pieces;
- :mod:`.windowed`   the memory-efficient PyTorch path (gathered windows or selections);
- :mod:`.variants`   face-normalised weights, checked against the reference.

- :mod:`.interface`  the Triton kernels' checked entry point (:mod:`.forward`, :mod:`.backward`,
  :mod:`.configs`, :mod:`.tiling` behind it).

The reference stays in its module (``from simplex_lib.ops.two_simplicial import reference``) so
that the package's ``two_simplicial_attention`` names the fast entry point: the Triton kernels.
It is loaded on first use, so that importing the references never imports Triton.
"""

from .variants import face_normalised_attention, face_normalised_weights
from .windowed import gathered_two_simplicial_attention, windowed_two_simplicial_attention

__all__ = [
    "windowed_two_simplicial_attention",
    "gathered_two_simplicial_attention",
    "face_normalised_attention",
    "face_normalised_weights",
]
__all__ += ["two_simplicial_attention"]


def __getattr__(name):
    # Lazy: Triton is heavy and optional for everything but the kernels.
    if name == "two_simplicial_attention":
        from .interface import two_simplicial_attention

        return two_simplicial_attention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
