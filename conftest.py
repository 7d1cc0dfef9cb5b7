"""Set-up shared by the tests and the library's doctests (``pytest tests simplex_lib --doctest-modules``).

Triton kernels run on the CPU under ``TRITON_INTERPRET=1``, which must be set before anything
imports Triton: here, before any test module or library module is collected.
"""

import os

if os.environ.get("TRITON_INTERPRET") is None:
    try:
        import torch

        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    except ImportError:  # pragma: no cover - torch is installed by make
        pass
