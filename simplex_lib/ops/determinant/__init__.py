"""Determinant (rotation-invariant) trilinear logits and their SO(3) rotary encoding.

The einsum reference and the rotary encodings are in :mod:`.reference`.
"""

from .reference import (det_logits, det_logits_sarrus, determinant_attention, levi_civita, random_so3, rope,
                        rope_rotations, rope_so3, so3_generator, so3_rotations)

__all__ = [
    "levi_civita",
    "det_logits",
    "det_logits_sarrus",
    "determinant_attention",
    "random_so3",
    "so3_generator",
    "so3_rotations",
    "rope_so3",
    "rope_rotations",
    "rope",
]
