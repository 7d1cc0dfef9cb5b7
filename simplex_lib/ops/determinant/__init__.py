"""Determinant (rotation-invariant) trilinear logits and their SO(3) rotary encoding.

The einsum reference and the rotary encodings are in :mod:`.reference`; this package exports
exactly its public names (the Triton form is :mod:`.triton`, imported on demand).
"""

from .reference import *  # noqa: F403 - the reference's __all__ is the package's
from .reference import __all__  # noqa: F401
