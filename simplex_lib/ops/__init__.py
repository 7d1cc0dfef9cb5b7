"""Attention operations, one package per operation.

Each package holds the float64 einsum ``reference`` (the ground truth) beside its fast paths
(a memory-efficient PyTorch path, Triton kernels) and exports the entry points:

- :mod:`simplex_lib.ops.dot`             dot-product attention (the 1-simplex)
- :mod:`simplex_lib.ops.two_simplicial`  2-simplicial attention: reference, windowed PyTorch path,
  face-normalised variants, kernels
- :mod:`simplex_lib.ops.n_simplicial`    attention over n-tuples of keys
- :mod:`simplex_lib.ops.determinant`     determinant (rotation-invariant) logits and SO(3) rotary
- :mod:`simplex_lib.ops.checks`          the argument checks every entry point shares

Dependencies run one way: ``ops`` imports only ``torch`` (and Triton in the kernel modules);
layers, models and training import ``ops``, never the reverse.
"""

__all__: list[str] = []
