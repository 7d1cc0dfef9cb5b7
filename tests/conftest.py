"""Shared test set-up.

Triton kernels run on the CPU under TRITON_INTERPRET=1 (set before anything imports Triton).
GPU tests carry the ``gpu`` marker and are skipped without CUDA.
"""

import os
import zlib

import pytest

import torch  # noqa: E402  (TRITON_INTERPRET is set by the root conftest.py)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _draw_seed(request) -> int:
    """The seed of one test.

    Default suite: fixed by the test's id, so every run draws the same inputs.  Tests marked
    ``fuzz`` (``make fuzz``) draw a fresh seed each run, or take ``SIMPLEX_SEED`` to replay one.
    The seed is printed, and pytest shows it with a failure.
    """
    if "fuzz" in request.node.keywords:
        env = os.environ.get("SIMPLEX_SEED")
        seed = int(env) if env else int.from_bytes(os.urandom(4), "little")
    else:
        seed = zlib.crc32(request.node.nodeid.encode())
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed} (replay: SIMPLEX_SEED={seed})")
    return seed


@pytest.fixture
def seed(request) -> int:
    """This test's seed (see :func:`_draw_seed`)."""
    return _draw_seed(request)


@pytest.fixture
def gen(seed):
    """A generator seeded with this test's seed: fixed in the default suite, fresh under fuzz."""
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _seed_global_rngs(seed):
    """Seed the global generators too (torch, NumPy, random) for tests that use them."""
    import random

    import numpy

    torch.manual_seed(seed)
    numpy.random.seed(seed % 2**32)
    random.seed(seed)
