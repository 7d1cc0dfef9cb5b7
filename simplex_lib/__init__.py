"""simplex_lib: the library the book on higher-order attention is written from.

Modules, by concept:

- :mod:`simplex_lib.reference`   dot, 2-simplicial and n-simplicial attention in einsum (the ground truth)
- :mod:`simplex_lib.determinant` determinant (rotation-invariant) trilinear forms and their rotary encoding
- :mod:`simplex_lib.graph`       attention as a graph: walks, diffusion, Weisfeiler-Lehman, simplices
- :mod:`simplex_lib.match3`      Match2/Match3 tasks and the Theorem 5.1 construction
- :mod:`simplex_lib.sparsity`    sliding windows, the cost model, top-k selection
- :mod:`simplex_lib.ops`         per operation: Triton kernels (forward and backward) beside their references
- :mod:`simplex_lib.timing`      kernel timings and FLOP conventions (``python -m simplex_lib.bench`` drives them)
- :mod:`simplex_lib.layers`      ``nn.Module`` wrappers; :mod:`simplex_lib.models` small GPTs
- :mod:`simplex_lib.scaling`     power-law fits and the paper's published data
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
