"""simplex_lib: the library the book on higher-order attention is written from.

Modules, by concept (dependencies run ops <- layers <- models <- training):

- :mod:`simplex_lib.ops`         one package per attention operation, the float64 einsum reference
  beside its fast paths: ``ops.dot``, ``ops.two_simplicial`` (reference, windowed PyTorch path,
  variants, Triton kernels), ``ops.n_simplicial``, ``ops.determinant`` (determinant logits and
  SO(3) rotary), ``ops.topk``; ``ops.checks`` holds the shared argument checks
- :mod:`simplex_lib.layers`      ``nn.Module`` attention layers and blocks over the ops
- :mod:`simplex_lib.graph`       attention as a graph: walks, diffusion, Weisfeiler-Lehman, simplices
- :mod:`simplex_lib.match3`      Match2/Match3 tasks and the Theorem 5.1 construction
- :mod:`simplex_lib.sparsity`    sliding windows, the cost model, top-k selection
- :mod:`simplex_lib.models`      small GPTs built from the layers
- :mod:`simplex_lib.scaling`     power-law fits and the paper's published data
- :mod:`simplex_lib.testing`     the one comparison helper (relative error against float64)
- :mod:`simplex_lib.viz`, :mod:`simplex_lib.widgets` one plotting style; interactive explorers

Tensors are ``[batch, seq, heads, head_dim]`` everywhere.
"""

from importlib import import_module

from .runtime import FULL, full_size, pick  # noqa: F401

__version__ = "0.1.0"

_LAZY = {"TwoSimplicialAttention": "simplex_lib.layers"}


def __getattr__(name):
    # Lazy so that `import simplex_lib` stays cheap and never imports Triton.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simplex_lib' has no attribute {name!r}")
