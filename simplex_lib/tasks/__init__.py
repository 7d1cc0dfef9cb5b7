"""Tasks the models train on, each with its data and, where one exists, a hand-built solution.

- :mod:`simplex_lib.tasks.corpus`: the byte-level corpus of the Python standard library
  (language modelling);
- :mod:`simplex_lib.tasks.hops`: multi-hop pointer chasing and its one-head two-hop construction;
- :mod:`simplex_lib.tasks.match3`: Match2/Match3 labels and data, the Theorem 5.1 head, and the
  recorded dot-versus-2-simplicial sweep (``python -m simplex_lib.tasks.match3``).

Every task object has the same small interface, which :func:`simplex_lib.train.train` uses:
``name``, ``vocab_size``, ``head`` and ``n_classes`` (of :class:`simplex_lib.model.ModelConfig`),
``causal``, ``positions`` (whether the model needs a position embedding), ``info`` (a JSON-able
description for the run's summary) and ``batch(split, batch_size, block_size, generator)``,
which returns CPU tensors ``(x, y)``.
"""

__all__: list = []
