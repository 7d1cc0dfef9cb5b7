"""Shared test set-up.

Triton kernels run on the CPU under TRITON_INTERPRET=1 (set before anything imports Triton).
GPU tests carry the ``gpu`` marker and are skipped without CUDA.
"""

import os

import pytest

if os.environ.get("TRITON_INTERPRET") is None:
    try:
        import torch

        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    except ImportError:  # pragma: no cover
        pass

import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def gen(request):
    """A fresh, differently seeded generator per test: checks must hold on any input.

    The seed is printed on failure (``g.initial_seed()``) so that a failing draw can be replayed.
    """
    seed = int.from_bytes(os.urandom(4), "little")
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return torch.Generator().manual_seed(seed)
