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
def gen():
    """A fresh, differently seeded generator per test: checks must hold on any input."""
    seed = int.from_bytes(os.urandom(4), "little")
    g = torch.Generator().manual_seed(seed)
    g.seed_value = seed
    return g
