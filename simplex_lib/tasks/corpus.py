"""A real text corpus available offline everywhere: the Python standard library's own source.

The corpus is byte-level (256 token ids, no tokenizer to download):

- **files**: every ``*.py`` file under ``sysconfig.get_paths()["stdlib"]`` of the running Python,
  skipping any directory named ``site-packages``, ``test`` or ``tests`` (third-party code and
  the large test suites with deliberately odd encodings);
- **order**: sorted by relative POSIX path; each file's raw bytes followed by one ``0`` byte as
  a document separator;
- **split**: by file, deterministically: a file is in the validation set iff the first byte of
  ``sha256(relative path)`` is below :data:`VAL_THRESHOLD` (26/256, about 10% of the files),
  so the split does not depend on how many files a Python version ships.

The corpus therefore depends on the Python version (recorded in ``Corpus.info``); the
token tensors are cached under :func:`cache_dir` (never in the repository).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sysconfig
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "VAL_THRESHOLD",
    "EXCLUDED_DIRS",
    "cache_dir",
    "stdlib_root",
    "stdlib_source_files",
    "is_validation_file",
    "Corpus",
    "stdlib_corpus",
    "sample_batch",
    "decode",
    "CorpusTask",
]

#: A file goes to validation iff ``sha256(relpath)[0] < VAL_THRESHOLD``.
VAL_THRESHOLD = 26
#: Directory names skipped anywhere under the standard library.
EXCLUDED_DIRS = ("site-packages", "test", "tests")
_SEPARATOR = b"\x00"
_FORMAT = 1  # bump when the corpus rule changes, so old caches are not reused


def cache_dir() -> str:
    """Where token tensors are cached: ``$SIMPLEX_CACHE`` or ``<tmp>/simplex_lib_cache``."""
    path = os.environ.get("SIMPLEX_CACHE") or os.path.join(tempfile.gettempdir(), "simplex_lib_cache")
    os.makedirs(path, exist_ok=True)
    return path


def stdlib_root() -> str:
    """The running interpreter's standard-library directory."""
    return sysconfig.get_paths()["stdlib"]


def stdlib_source_files(root: str | None = None) -> list:
    """Relative POSIX paths of the corpus files under ``root`` (default :func:`stdlib_root`), sorted.

    Every ``*.py`` file, skipping directories named in :data:`EXCLUDED_DIRS` at any depth.

    Parameters
    ----------
    root : str, optional
        The directory to walk (default: the running interpreter's standard library).

    Returns
    -------
    list of str, e.g. ``["__future__.py", ..., "json/decoder.py", ...]``.

    Raises
    ------
    ValueError
        If ``root`` is not a directory.

    Examples
    --------
    >>> files = stdlib_source_files()
    >>> "os.py" in files and files == sorted(files)
    True
    """
    root = stdlib_root() if root is None else root
    if not os.path.isdir(root):
        raise ValueError(f"root must be a directory, got {root!r}")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.endswith(".py"):
                path = name if rel == "." else os.path.join(rel, name)
                out.append(path.replace(os.sep, "/"))
    return sorted(out)


def is_validation_file(relpath: str) -> bool:
    """The deterministic split: True iff ``sha256(relpath)[0] < VAL_THRESHOLD``.

    Parameters
    ----------
    relpath : str
        A relative POSIX path from :func:`stdlib_source_files` (hashed as UTF-8).

    Returns
    -------
    bool

    Examples
    --------
    >>> isinstance(is_validation_file("os.py"), bool)
    True
    """
    return hashlib.sha256(relpath.encode()).digest()[0] < VAL_THRESHOLD


@dataclass
class Corpus:
    """Byte tokens of the corpus: ``train`` and ``val`` are uint8 tensors ``[n_bytes]``."""

    #: Training bytes, uint8 ``[n_train_bytes]``: the training files, each followed by a 0 byte.
    train: torch.Tensor
    #: Validation bytes, uint8 ``[n_val_bytes]``, laid out the same way.
    val: torch.Tensor
    #: How it was built (Python version, root, file counts, sizes, SHA-256 of both splits); may be empty.
    info: dict = field(default_factory=dict)


def _build(root: str, files: list):
    parts = {False: [], True: []}
    for rel in files:
        with open(os.path.join(root, rel), "rb") as fh:
            parts[is_validation_file(rel)].append(fh.read() + _SEPARATOR)
    train = np.frombuffer(b"".join(parts[False]), dtype=np.uint8)
    val = np.frombuffer(b"".join(parts[True]), dtype=np.uint8)
    return train, val, len(parts[False]), len(parts[True])


def stdlib_corpus(root: str | None = None, *, use_cache: bool = True) -> Corpus:
    """Load (building and caching on first use) the standard-library byte corpus.

    Parameters
    ----------
    root : str, optional
        Standard-library directory (default: the running interpreter's).
    use_cache : bool
        Read/write the ``.npz`` cache in :func:`cache_dir`.

    Returns
    -------
    Corpus
        ``train``/``val`` uint8 tensors and ``info`` (Python version, root, file counts, sizes,
        SHA-256 of both splits).

    Examples
    --------
    >>> c = stdlib_corpus()
    >>> c.train.dtype, c.info["n_val_files"] > 0
    (torch.uint8, True)
    """
    root = stdlib_root() if root is None else root
    files = stdlib_source_files(root)
    if not files:
        raise ValueError(f"no .py files under {root!r}")
    key = hashlib.sha256(
        json.dumps([_FORMAT, root] + [(f, os.path.getsize(os.path.join(root, f))) for f in files]).encode()
    ).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"stdlib-py{platform.python_version()}-{key}.npz")
    info = None
    if use_cache and os.path.exists(path):
        with np.load(path, allow_pickle=False) as z:
            train, val = z["train"], z["val"]
            info = json.loads(str(z["info"]))
    if info is None:
        train, val, n_train, n_val = _build(root, files)
        info = {
            "corpus": "python-stdlib-bytes",
            "rule": "*.py under sysconfig stdlib, skipping dirs " + "/".join(EXCLUDED_DIRS)
                    + "; sorted relative paths; 0 byte after each file; val iff sha256(path)[0] < "
                    + str(VAL_THRESHOLD),
            "python": platform.python_version(),
            "root": root,
            "n_files": len(files),
            "n_train_files": n_train,
            "n_val_files": n_val,
            "train_bytes": int(train.size),
            "val_bytes": int(val.size),
            "sha256_train": hashlib.sha256(train.tobytes()).hexdigest(),
            "sha256_val": hashlib.sha256(val.tobytes()).hexdigest(),
        }
        if use_cache:
            tmp = path + f".{os.getpid()}.tmp.npz"
            np.savez(tmp, train=train, val=val, info=np.array(json.dumps(info)))
            os.replace(tmp, path)
    return Corpus(torch.from_numpy(np.array(train)), torch.from_numpy(np.array(val)), info)


def sample_batch(tokens: torch.Tensor, batch_size: int, block_size: int,
                 generator: torch.Generator, device=None):
    """Random contiguous windows of ``tokens``: inputs and next-byte targets.

    Parameters
    ----------
    tokens : uint8 Tensor ``[n]`` with ``n > block_size``
    batch_size, block_size : int
    generator : torch.Generator
        Chooses the start positions (so that a run is reproducible step by step).
    device : optional
        Where the returned tensors live.

    Returns
    -------
    (x, y) : int64 Tensors ``[batch_size, block_size]``, ``y[:, t] = x[:, t + 1]`` in the stream.

    Examples
    --------
    >>> t = torch.arange(100, dtype=torch.uint8)
    >>> x, y = sample_batch(t, 2, 8, torch.Generator().manual_seed(0))
    >>> bool((y[:, :-1] == x[:, 1:]).all())
    True
    """
    if tokens.dim() != 1 or tokens.numel() <= block_size:
        raise ValueError(f"tokens must be 1-D and longer than block_size ({block_size})")
    if batch_size < 1 or block_size < 1:
        raise ValueError("batch_size and block_size must be >= 1")
    start = torch.randint(0, tokens.numel() - block_size, (batch_size,), generator=generator)
    offs = start[:, None] + torch.arange(block_size + 1)
    chunk = tokens[offs].long()
    x, y = chunk[:, :-1], chunk[:, 1:]
    if device is not None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


def decode(tokens) -> str:
    """Bytes back to text (invalid UTF-8 replaced), for looking at samples.

    Parameters
    ----------
    tokens : Tensor ``[n]`` or iterable of ints in ``[0, 256)``
        Byte values, e.g. a row of a batch.

    Returns
    -------
    str

    Examples
    --------
    >>> decode(torch.tensor([104, 105]))
    'hi'
    """
    return bytes(int(t) for t in tokens).decode("utf-8", errors="replace")


class CorpusTask:
    """Next-byte prediction on a :class:`Corpus` (the language-model task of :mod:`simplex_lib.train`).

    Parameters
    ----------
    corpus : Corpus, optional
        Default :func:`stdlib_corpus` (loaded on first use of :meth:`batch`).

    Examples
    --------
    >>> task = CorpusTask(Corpus(torch.arange(64, dtype=torch.uint8), torch.arange(64, dtype=torch.uint8)))
    >>> x, y = task.batch("val", 2, 8, torch.Generator().manual_seed(0))
    >>> x.shape, task.head
    (torch.Size([2, 8]), 'lm')
    """

    name = "corpus"
    vocab_size = 256
    head = "lm"
    n_classes = 0
    causal = True
    positions = True

    def __init__(self, corpus: Corpus | None = None):
        self._corpus = corpus

    @property
    def corpus(self) -> Corpus:
        """The corpus (loaded when first needed)."""
        if self._corpus is None:
            self._corpus = stdlib_corpus()
        return self._corpus

    @property
    def info(self) -> dict:
        """The corpus's ``info`` (Python version, file counts, hashes)."""
        return self.corpus.info

    def batch(self, split: str, batch_size: int, block_size: int, generator: torch.Generator):
        """``(x, y)`` int64 ``[batch_size, block_size]`` windows of the ``"train"`` or ``"val"`` split.

        Parameters
        ----------
        split : ``"train"`` or ``"val"``
        batch_size, block_size : int >= 1
            Windows per batch and bytes per window; the split must be longer than ``block_size``.
        generator : torch.Generator
            Chooses the windows' start positions.

        Returns
        -------
        (x, y) : int64 Tensors ``[batch_size, block_size]`` on the CPU, ``y`` the next bytes of ``x``.

        Raises
        ------
        ValueError
            If ``split`` is unknown, or as :func:`sample_batch` (split too short, sizes < 1).
        """
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return sample_batch(getattr(self.corpus, split), batch_size, block_size, generator)
