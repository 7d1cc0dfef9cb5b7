"""simplex_lib: the library the book on higher-order attention is written from.

Modules, by concept; dependencies run one way, ops <- layers <- model <- train:

- :mod:`simplex_lib.ops`         one package per operation (dot, two_simplicial, n_simplicial,
  determinant, topk): the float64 reference beside the PyTorch and Triton fast paths
- :mod:`simplex_lib.masks`       which keys a query sees: sliding windows, top-k pair masks
- :mod:`simplex_lib.selection`   top-k selection: indexers, previous-layer top-k, coverage
- :mod:`simplex_lib.cost`        the one cost model: FLOPs and memory of every form of attention
- :mod:`simplex_lib.graph`       attention as a graph: walks, Weisfeiler-Lehman, complexes, drawing
- :mod:`simplex_lib.tasks`       Match3 (with the Theorem 5.1 construction), hops, the byte corpus
- :mod:`simplex_lib.layers`      ``nn.Module`` attention layers; :mod:`simplex_lib.model` the one
  model skeleton; :mod:`simplex_lib.train` the one training loop and its command line
- :mod:`simplex_lib.scaling`     power-law fits; :mod:`simplex_lib.published` the paper's tables
- :mod:`simplex_lib.timing`      kernel timings (``python -m simplex_lib.bench`` drives them);
  :mod:`simplex_lib.bench_plots` reading and plotting the recorded benchmarks
- :mod:`simplex_lib.viz`, :mod:`simplex_lib.widgets` one plotting style; interactive explorers
- :mod:`simplex_lib.testing`, :mod:`simplex_lib.provenance`, :mod:`simplex_lib.book`,
  :mod:`simplex_lib.runtime`  the comparison helper, the record schema, chapter helpers, sizes

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
