"""One training loop for every model of the book: language modelling, Match3, pointer chasing.

:func:`train` takes a :class:`TrainConfig` and a *task* (:mod:`simplex_lib.tasks`: the byte
corpus by default, or :class:`~simplex_lib.tasks.match3.Match3Task`,
:class:`~simplex_lib.tasks.hops.HopTask`), builds a :class:`~simplex_lib.model.Model` whose head
and vocabulary come from the task, and trains it with AdamW, a warm-up + cosine schedule, bf16
autocast on a GPU, DistributedDataParallel when started by ``torchrun``, periodic atomic
checkpoints, a JSON-lines log and a progress bar.

Command line (flags override a JSON config file, which overrides a preset)::

    python -m simplex_lib.train --preset tiny --variant window --out /tmp/run
    python -m simplex_lib.train --preset tiny --variant window --out /tmp/run --resume
    torchrun --nproc_per_node=2 -m simplex_lib.train --preset tiny --out /tmp/ddp   # DDP

What a run writes to ``--out`` (nothing is saved without it):

- ``log.jsonl``: one JSON record per logging step (step, tokens, train/val loss in nats,
  learning rate, training seconds, tokens per second; accuracy for classification tasks);
- ``summary.json``: the configuration, parameter count, provenance and the final numbers;
- ``ckpt.pt``: model, optimizer and counters, every ``ckpt_every`` steps (default: at every
  evaluation), at the end, and when SIGINT or SIGTERM stops the run. Loaded back with
  ``torch.load(weights_only=True)``; written to a temporary file and renamed, so a kill during a
  write never damages the previous checkpoint.

Resuming (``resume``) continues the same schedule and refuses a configuration that differs from
the checkpoint's (each change is named) unless ``allow_config_change``. An ``out`` folder that
already holds a run is refused unless ``resume`` or ``overwrite``.

Determinism: weights are initialised from ``seed``; the batch of step ``s`` on rank ``r`` is drawn
from a generator seeded by ``(data_seed, s, r)`` (``data_seed`` defaults to ``seed``), so a
resumed run is bitwise equal to an uninterrupted one (on the same device).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .model import ATTENTION_KINDS, INITS, Model, ModelConfig, count_parameters, interleave
from .provenance import provenance
from .tasks.corpus import Corpus, CorpusTask

__all__ = ["TrainConfig", "PRESETS", "VARIANTS", "RUN_CONTROL_FIELDS", "RunError", "lr_at", "config_changes",
           "read_log", "open_run", "train", "TOGETHER_FIELDS", "train_together", "load_run", "compare_runs",
           "plot_runs", "save_plots", "build_parser", "config_from_args", "main"]

PROG = "python -m simplex_lib.train"  # the name in usage lines and messages

#: The language-model variants the book compares (every fourth block 2-simplicial or not).
VARIANTS = ("dot", "window", "topk")
_BACKENDS = ("torch", "reference", "triton")


def _doc(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on, model shape included.

    Each field's ``metadata["help"]`` documents it, here and in the command line's ``--help``.
    Invalid values raise ``ValueError`` naming the field.

    Attributes
    ----------
<attributes>
    Examples
    --------
    >>> TrainConfig(variant="topk").model_config().layers
    ('dot', 'dot', 'dot', 'topk')
    >>> TrainConfig(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an int >= 1, got 0
    """

    # model
    variant: str = _doc("attention of the 2-simplicial blocks: dot (none), window, topk or simplicial "
                        "(whole prefix); the other blocks use dot-product attention", default="dot")
    n_layer: int = _doc("number of blocks", default=4)
    simplicial_every: int = _doc("block l (0-based) is 2-simplicial iff (l + 1) mod simplicial_every = 0: "
                                 "4 gives the 3:1 interleaving, 1 makes every block 2-simplicial", default=4)
    d_model: int = _doc("width of the residual stream", default=128)
    n_heads: int = _doc("query heads (2-simplicial blocks use n_heads // 2 key/value heads)", default=4)
    mlp_ratio: int = _doc("MLP hidden width is mlp_ratio * d_model", default=4)
    w: int = _doc("both windows (w1 = w2) of the window variant", default=32)
    topk: int = _doc("keys kept per query by the topk variant", default=32)
    backend: str = _doc("backend of the window and topk blocks: torch, reference or triton (the fused "
                        "kernels; on a CPU only under TRITON_INTERPRET=1)",
                        default="torch")
    init: str = _doc("initial weights: gpt2 (N(0, 0.02), scaled output projections) or torch (PyTorch's "
                     "defaults, which tiny task models learn faster from)", default="gpt2")
    block_size: int = _doc("context length of language-model batches (tokens)", default=128)
    # optimisation
    batch_size: int = _doc("sequences per step and process (a step sees batch_size * world_size)", default=16)
    steps: int = _doc("optimizer steps of the whole run", default=200)
    lr: float = _doc("peak learning rate (AdamW)", default=3e-3)
    min_lr_ratio: float = _doc("the cosine ends at min_lr_ratio * lr, in [0, 1]", default=0.1)
    warmup: int = _doc("steps of linear learning-rate warm-up", default=20)
    weight_decay: float = _doc("AdamW weight decay of the matrices (not of biases and norms)", default=0.1)
    grad_clip: float = _doc("gradient-norm clipping; 0 turns it off", default=1.0)
    seed: int = _doc("seed of the initial weights (and of the batches, unless data_seed is set)", default=0)
    data_seed: int = _doc("seed of the training and held-out batches; -1: the same as seed", default=-1)
    # evaluation and logging
    eval_every: int = _doc("steps between evaluations on held-out batches", default=50)
    eval_batches: int = _doc("held-out batches per evaluation (per run, spread over processes)", default=8)
    log_every: int = _doc("steps between log records", default=10)
    progress: bool = _doc("show a progress bar", default=True)
    # run control (may change when resuming)
    out: str = _doc("folder of the log, summary and checkpoints; empty: nothing is saved", default="")
    ckpt_every: int = _doc("steps between checkpoints; 0: at every evaluation", default=0)
    resume: bool = _doc("continue the run saved in out", default=False)
    overwrite: bool = _doc("replace a run already saved in out", default=False)
    allow_config_change: bool = _doc("let resume continue with a configuration that differs from the "
                                     "checkpoint's (the changes are recorded in the summary)", default=False)
    device: str = _doc("auto (the process's GPU if any, else CPU), cpu, cuda or cuda:N", default="auto")
    amp: bool = _doc("bf16 autocast on a GPU", default=True)
    compile: bool = _doc("torch.compile the model", default=False)
    max_minutes: float = _doc("stop (with a checkpoint) after this many minutes of training; 0: no limit",
                              default=0.0)
    stop_at: int = _doc("stop this invocation after this step (with a checkpoint), as a pre-emption "
                        "would; 0: run to the end", default=0)
    threads: int = _doc("torch CPU threads; 0 leaves the default", default=0)

    def __post_init__(self):
        for name, low in (("n_layer", 1), ("simplicial_every", 1), ("d_model", 1), ("n_heads", 1),
                          ("mlp_ratio", 1), ("w", 1), ("topk", 1), ("block_size", 1), ("batch_size", 1),
                          ("steps", 1), ("warmup", 0), ("seed", 0), ("eval_every", 1), ("eval_batches", 1),
                          ("log_every", 1), ("ckpt_every", 0), ("stop_at", 0), ("threads", 0),
                          ("data_seed", -1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        for name, low, high, open_low in (("lr", 0.0, math.inf, True), ("min_lr_ratio", 0.0, 1.0, False),
                                          ("weight_decay", 0.0, math.inf, False),
                                          ("grad_clip", 0.0, math.inf, False),
                                          ("max_minutes", 0.0, math.inf, False)):
            v = getattr(self, name)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  and (v > low if open_low else v >= low) and v <= high)
            if not ok:
                bound = f"> {low}" if open_low else f">= {low}"
                raise ValueError(f"{name} must be a finite number {bound}"
                                 + (f" and <= {high}" if math.isfinite(high) else "") + f", got {v!r}")
        if self.variant not in ATTENTION_KINDS:
            raise ValueError(f"variant must be one of {ATTENTION_KINDS}, got {self.variant!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("progress", "resume", "overwrite", "allow_config_change", "amp", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.out, str):
            raise ValueError(f"out must be a path string, got {self.out!r}")
        if self.resume and not self.out:
            raise ValueError("resume needs out (the folder of the run to continue)")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite contradict each other: give one")
        if self.variant != "dot" and not any(k != "dot" for k in self.layers()):
            raise ValueError(f"variant {self.variant!r} with n_layer={self.n_layer} and simplicial_every="
                             f"{self.simplicial_every} has no 2-simplicial block; raise n_layer or lower "
                             "simplicial_every")

    def layers(self) -> tuple:
        """Attention kind of each block."""
        return interleave(self.variant, self.n_layer, self.simplicial_every)

    @property
    def batch_seed(self) -> int:
        """The seed the batches are drawn from: ``data_seed``, or ``seed`` when it is -1."""
        return self.seed if self.data_seed < 0 else self.data_seed

    def model_config(self, task=CorpusTask) -> ModelConfig:
        """The :class:`~simplex_lib.model.ModelConfig` of this run on ``task`` (default: the corpus).

        Parameters
        ----------
        task : task class or object, default :class:`~simplex_lib.tasks.corpus.CorpusTask`
            Anything with the attributes ``head``, ``vocab_size``, ``n_classes``, ``positions``
            (learned position embeddings of ``block_size`` positions, else none) and ``causal``.

        Returns
        -------
        ModelConfig
            Windows ``w1 = w2 = w``; the layers from :meth:`layers`.

        Raises
        ------
        ValueError
            If the model's own checks fail (e.g. ``d_model`` not divisible by ``n_heads``).
        """
        return ModelConfig(layers=self.layers(), head=task.head, vocab_size=task.vocab_size,
                           n_classes=task.n_classes, block_size=self.block_size if task.positions else None,
                           causal=task.causal, d_model=self.d_model, n_heads=self.n_heads,
                           mlp_ratio=self.mlp_ratio, w1=self.w, w2=self.w, topk=self.topk, backend=self.backend,
                           init=self.init)


if TrainConfig.__doc__:  # absent under python -OO
    TrainConfig.__doc__ = TrainConfig.__doc__.replace("<attributes>\n", "".join(
        f"    {f.name} : {f.type}, default {f.default!r}\n        {f.metadata['help']}\n"
        for f in fields(TrainConfig)))

#: Fields that may differ between a run and its resumption: they change how a run is carried
#: out, not what it computes.
RUN_CONTROL_FIELDS = frozenset({"out", "ckpt_every", "resume", "overwrite", "allow_config_change", "device",
                                "compile", "max_minutes", "stop_at", "threads", "progress", "log_every"})

#: Named starting points. ``tiny``: seconds on a CPU (tests); ``book``: the CPU chapter run;
#: ``gpu``: the scaled-down version of the blog's Fig. 8 set-up used on one H100.
PRESETS = {
    "tiny": dict(block_size=32, n_layer=4, d_model=32, n_heads=2, w=8, topk=8, batch_size=4,
                 steps=6, warmup=2, eval_every=3, eval_batches=2, log_every=1),
    "book": dict(block_size=64, n_layer=4, d_model=64, n_heads=4, w=16, topk=16, batch_size=8,
                 steps=100, warmup=10, eval_every=25, eval_batches=4, log_every=5, lr=3e-3, threads=1),
    "gpu": dict(block_size=256, n_layer=8, d_model=384, n_heads=6, w=64, topk=64, batch_size=64,
                steps=1500, warmup=100, eval_every=250, eval_batches=20, log_every=25, lr=2e-3,
                ckpt_every=500),
}


class RunError(ValueError):
    """A run cannot start as configured (its ``out`` folder, its checkpoint or its log)."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine to ``min_lr_ratio * lr``.

    Warm-up: ``lr * (step + 1) / warmup`` for ``step < warmup``; then the cosine runs over the
    remaining ``steps - warmup`` steps and stays at its end value past ``steps``.

    Parameters
    ----------
    step : int >= 0
    cfg : TrainConfig
        Reads ``lr``, ``min_lr_ratio``, ``warmup`` and ``steps``.

    Returns
    -------
    float

    Examples
    --------
    >>> cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    >>> lr_at(0, cfg), lr_at(9, cfg), round(lr_at(100, cfg), 6)
    (0.1, 1.0, 0.1)
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, cfg.steps - cfg.warmup)
    t = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


# --------------------------------------------------------------------------------------------
# The run folder: checks before any work, atomic writes, checkpoints and the log
# --------------------------------------------------------------------------------------------

_RUN_FILES = ("ckpt.pt", "log.jsonl", "summary.json")


def _write_atomic(path: str, write) -> None:
    """``write(tmp)`` then rename over ``path``: a reader sees the old file or the new one, never half."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)
    _write_atomic(path, write)


def _save_atomic(obj, path: str) -> None:
    _write_atomic(path, lambda tmp: torch.save(obj, tmp))


def config_changes(saved: dict, cfg: TrainConfig) -> list:
    """``"name: old -> new"`` for every field (outside :data:`RUN_CONTROL_FIELDS`) that differs.

    Parameters
    ----------
    saved : dict
        A saved configuration (``asdict`` of a :class:`TrainConfig`, e.g. a checkpoint's
        ``config``); a field missing from it shows as ``'(absent)'``.
    cfg : TrainConfig
        The configuration now.

    Returns
    -------
    list of str, in field order (empty when nothing that matters changed).

    Examples
    --------
    >>> config_changes(asdict(TrainConfig()), TrainConfig(lr=0.5, out="x"))
    ['lr: 0.003 -> 0.5']
    """
    now = asdict(cfg)
    saved = {**_ADDED_LATER, **saved}  # a field added since the run was saved had its default then
    return [f"{k}: {saved.get(k, '(absent)')!r} -> {now[k]!r}" for k in now
            if k not in RUN_CONTROL_FIELDS and saved.get(k, "(absent)") != now[k]]


#: Fields added after runs were first saved, with the value that reproduces the older runs.
_ADDED_LATER = {"data_seed": -1}


def _load_checkpoint(path: str) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        first = (str(exc).splitlines() or [""])[0]
        why = ("the file is damaged or is not a checkpoint" if "Weights only load failed" in first
               else f"{type(exc).__name__}: {first[:160]}")
        raise RunError(f"cannot read checkpoint {path}: {why}") from None
    if not isinstance(ck, dict) or not {"model", "optimizer", "step", "config"} <= set(ck):
        raise RunError(f"checkpoint {path} is not a checkpoint of simplex_lib.train")
    return ck


def read_log(path: str, upto_step: int) -> list:
    """The records of ``log.jsonl`` up to ``upto_step``; a truncated last line is skipped with a warning.

    Parameters
    ----------
    path : str
        The log file (one JSON object per line); a missing file gives ``[]``.
    upto_step : int
        Keep records whose ``step`` is at most this (records without a step are dropped).

    Returns
    -------
    list of dict, in file order.

    Raises
    ------
    RunError
        (a ``ValueError``) If a line other than the last is not JSON.
    """
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        lines = fh.read().splitlines()
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: skipping a truncated last line ({line[:40]!r}...)", stacklevel=2)
                continue
            raise RunError(f"{path}: line {i + 1} is not JSON; the log is damaged")
    return [r for r in records if r.get("step", math.inf) <= upto_step]


def open_run(cfg: TrainConfig):
    """Check ``cfg.out`` before any work; return the checkpoint to resume from, or ``None``.

    Raises :class:`RunError` (a ``ValueError``) when ``out`` is a file or not writable, holds a
    run while neither ``resume`` nor ``overwrite`` is set, has no readable checkpoint to resume,
    or when the checkpoint's configuration differs from ``cfg`` (each change named) without
    ``allow_config_change``. With ``overwrite`` the old run's files are removed.

    Parameters
    ----------
    cfg : TrainConfig
        Reads ``out``, ``resume``, ``overwrite`` and ``allow_config_change``; ``out`` is created
        if missing.

    Returns
    -------
    dict or None
        The checkpoint (``model``, ``optimizer``, ``step``, ``config``, ... plus ``changes``, the
        list of :func:`config_changes`) when resuming, else None.

    Raises
    ------
    RunError
        In the cases above (also ``resume`` without ``out``).
    """
    out = cfg.out
    if not out:
        if cfg.resume:
            raise RunError("resume needs out (the folder of the run to continue)")
        return None
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"out {out!r} is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise RunError(f"out {out!r} is not writable: {exc.strerror or exc}")
    present = [f for f in _RUN_FILES if os.path.exists(os.path.join(out, f))]
    ckpt_path = os.path.join(out, "ckpt.pt")
    if not cfg.resume:
        if present and not cfg.overwrite:
            raise RunError(f"out {out!r} already holds a run ({', '.join(present)}); "
                           "resume it or overwrite it")
        for f in present:
            with contextlib.suppress(FileNotFoundError):  # another rank may have removed it
                os.remove(os.path.join(out, f))
        return None
    if not os.path.exists(ckpt_path):
        raise RunError(f"resume: there is no checkpoint at {ckpt_path}")
    ck = _load_checkpoint(ckpt_path)
    changes = config_changes(ck["config"], cfg)
    if changes and not cfg.allow_config_change:
        raise RunError(f"resume: the configuration differs from the checkpoint's ({'; '.join(changes)}); "
                       "restore it, or allow the change explicitly")
    ck["changes"] = changes
    return ck


# --------------------------------------------------------------------------------------------
# Distributed helpers and signals
# --------------------------------------------------------------------------------------------


def _setup_distributed():
    """``(rank, world_size, device)``; initialises the process group when run by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    return rank, world, device


def _all_mean(values: list, world: int, device) -> list:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(t)
        t /= world
    return t.tolist()


class _Stop:
    """Signal handler that asks the loop to stop after the current step (a second signal aborts)."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals(stop: _Stop):
    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, stop)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _evaluate(model, task, cfg, rank, world, device, amp):
    """Mean held-out loss (and accuracy and majority-class rate for classification heads)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, batches, correct, majority count
    labels = []
    with torch.no_grad(), amp:
        for i in range(rank, cfg.eval_batches, world):
            g = torch.Generator().manual_seed(10_000_019 + 7919 * i + cfg.batch_seed)
            x, y = task.batch("val", cfg.batch_size, cfg.block_size, g)
            x, y = x.to(device), y.to(device)
            logits, loss = model(x, y)
            sums[0] += float(loss)
            sums[1] += 1
            if task.head != "lm":
                sums[2] += float((logits.argmax(-1) == y).double().mean())
                labels.append(y.flatten().cpu())
    model.train()
    if labels:
        counts = torch.bincount(torch.cat(labels), minlength=task.n_classes).double()
        sums[3] = float(counts.max() / counts.sum()) * sums[1]
    total = _all_mean((sums * world).tolist(), world, device)  # sums over ranks
    rec = {"val_loss": total[0] / total[1]}
    if task.head != "lm":
        rec["val_accuracy"] = total[2] / total[1]
        rec["val_majority"] = total[3] / total[1]
    return rec


def _resolve_task(task):
    """The task object of ``task``: the byte corpus for ``None``, a Corpus wrapped as a task."""
    return CorpusTask(task) if isinstance(task, Corpus) else (CorpusTask() if task is None else task)


def train(cfg: TrainConfig, task=None) -> dict:
    """Train one model on ``task``; return the summary (also written to ``cfg.out/summary.json``).

    Parameters
    ----------
    cfg : TrainConfig
    task : task object of :mod:`simplex_lib.tasks`, or a :class:`~simplex_lib.tasks.corpus.Corpus`
        Default: the standard-library byte corpus.

    Returns
    -------
    dict
        ``config``, ``model`` (the ModelConfig), ``n_params``, ``provenance``, ``task`` (its info),
        ``log`` (the records), ``steps_done``, ``stopped_early``, ``interrupted`` (the signal's
        name or ``None``), ``tokens``, ``train_time_s``, ``tokens_per_s``, ``final_val_loss`` and,
        for classification tasks, ``final_val_accuracy`` and ``final_val_majority``.

    Examples
    --------
    >>> from simplex_lib.tasks.hops import HopTask
    >>> s = train(TrainConfig(variant="simplicial", simplicial_every=1, n_layer=1, d_model=16, n_heads=2,
    ...                       steps=2, warmup=0, eval_every=2, eval_batches=1, batch_size=4, progress=False),
    ...           HopTask(M=3, hops=1))
    >>> 0.0 <= s["final_val_accuracy"] <= 1.0
    True
    """
    task = _resolve_task(task)
    ck = open_run(cfg)  # before any work: a bad out folder or checkpoint fails at once
    mcfg = cfg.model_config(task)
    if cfg.threads > 0:  # small CPU runs are faster on one thread than fighting for shared cores
        torch.set_num_threads(cfg.threads)
    rank, world, device = _setup_distributed()
    if cfg.device != "auto":
        device = cfg.device
    on_gpu = str(device).startswith("cuda")
    if on_gpu:
        if torch.device(device).index is not None:  # plain "cuda" is the current device already
            torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)
    model = Model(mcfg).to(device)
    n_params = count_parameters(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)

    out = cfg.out
    ckpt_path = os.path.join(out, "ckpt.pt") if out else None
    log_path = os.path.join(out, "log.jsonl") if out else None
    step0, tokens, train_time, records, changes = 0, 0, 0.0, [], []
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step0, tokens, train_time = int(ck["step"]), int(ck["tokens"]), float(ck["train_time_s"])
        changes = list(ck.get("history", [])) + ck["changes"]
        records = read_log(log_path, step0)
    if rank == 0 and log_path:  # rewrite: drops records past the checkpoint on resume
        _atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in records))

    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[torch.device(device).index] if on_gpu else None)
    if cfg.compile:
        net = torch.compile(net)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if (on_gpu and cfg.amp)
           else contextlib.nullcontext())

    def checkpoint(done):
        if ckpt_path and rank == 0:
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": done,
                          "tokens": tokens, "train_time_s": train_time, "config": asdict(cfg),
                          "model_config": mcfg.to_dict(), "history": changes, "format": 2}, ckpt_path)

    bar = tqdm(total=cfg.steps, initial=step0, desc=cfg.variant, unit="step",
               disable=not (cfg.progress and rank == 0))
    ckpt_every = cfg.ckpt_every or cfg.eval_every
    running, n_running = 0.0, 0
    stopped_early, stop = False, _Stop()
    with _stop_on_signals(stop):
        for step in range(step0, cfg.steps):
            t0 = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            g = torch.Generator().manual_seed(cfg.batch_seed * 1_000_003 + step * 1_009 + rank)
            x, y = task.batch("train", cfg.batch_size, cfg.block_size, g)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with amp:
                _, loss = net(x, y)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            running += float(loss.detach())  # syncs, so the timing below is honest
            n_running += 1
            train_time += time.perf_counter() - t0
            tokens += x.numel() * world
            done = step + 1
            last = done == cfg.steps
            halt = (cfg.max_minutes > 0 and train_time > 60 * cfg.max_minutes) or stop.signum is not None
            if world > 1:  # every rank must stop at the same step
                halt = _all_mean([float(halt)], world, device)[0] > 0
            halt = (halt or done == cfg.stop_at) and not last
            if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or last or halt:
                (train_loss,) = _all_mean([running / n_running], world, device)
                running, n_running = 0.0, 0
                rec = {"step": done, "tokens": tokens, "train_loss": train_loss, "lr": lr,
                       "train_time_s": train_time, "tokens_per_s": tokens / max(train_time, 1e-9)}
                if done % cfg.eval_every == 0 or last or halt:
                    rec.update(_evaluate(model, task, cfg, rank, world, device, amp))
                records.append(rec)
                if rank == 0 and log_path:
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                bar.set_postfix({k[:7]: f"{rec[k]:.3f}" for k in ("train_loss", "val_loss", "val_accuracy")
                                 if k in rec})
            if done % ckpt_every == 0 or last or halt:
                checkpoint(done)
            bar.update(1)
            if halt:
                stopped_early = True
                break
    bar.close()

    final = next((r for r in reversed(records) if "val_loss" in r), {})
    summary = {
        "config": asdict(cfg),
        "model": mcfg.to_dict(),
        "simplicial_layers": list(mcfg.simplicial_layers),
        "n_params": n_params,
        "world_size": world,
        "provenance": provenance(device),
        "task": task.info,
        "config_changes": changes,
        "steps_done": records[-1]["step"] if records else step0,
        "stopped_early": stopped_early,
        "interrupted": signal.Signals(stop.signum).name if stop.signum is not None else None,
        "tokens": tokens,
        "train_time_s": train_time,
        "tokens_per_s": tokens / max(train_time, 1e-9),
        "final_val_loss": final.get("val_loss"),
        "final_val_accuracy": final.get("val_accuracy"),
        "final_val_majority": final.get("val_majority"),
        "log": records,
    }
    if task.name == "corpus":
        summary["corpus"] = task.info  # the name the recorded runs use
    if rank == 0 and out:
        _atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=1))
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


#: What may differ between the runs that :func:`train_together` trains in one step.
TOGETHER_FIELDS = ("lr", "seed", "data_seed")


def train_together(cfgs, task=None) -> tuple[list, list]:
    """Train several small models that differ only in seeds and learning rate, all in one step.

    Each step runs every model at once through :func:`torch.func.vmap` (weights stacked along a
    new leading axis): one launch sequence instead of one per model, which is what makes sweeps
    of tiny models fast on a GPU. Each run is the run :func:`train` makes of its configuration:
    the same initial weights (from its ``seed``), batches, learning-rate schedule, gradient
    clipping (per model), AdamW update and validation batches; the results agree with
    :func:`train`'s up to the rounding of the batched arithmetic (tested). No run folder, resume,
    DDP or ``torch.compile``.

    Parameters
    ----------
    cfgs : sequence of TrainConfig
        Variant ``dot`` or ``simplicial`` (the task models; the language models tie weights and
        select keys by value, which :func:`torch.func.vmap` cannot batch). Equal in every field
        except ``lr``, ``seed`` and ``data_seed`` (and the run-control fields
        ``progress``, ``log_every``, ``threads``); ``out`` unset, ``compile`` off, no
        ``max_minutes`` or ``stop_at``.
    task : task object of :mod:`simplex_lib.tasks`, or a Corpus, optional
        As for :func:`train` (default: the standard-library byte corpus).

    Returns
    -------
    summaries : list of dict
        One per configuration, with :func:`train`'s keys (``log``, ``final_val_loss``,
        ``final_val_accuracy``, ...) and ``trained_together`` (the number of models in the step);
        ``train_time_s`` is the time of the whole group.
    models : list of Model
        The trained models, in eval mode on the training device.

    Raises
    ------
    ValueError
        If ``cfgs`` is empty or its configurations differ in another field, or one asks for a
        feature this path lacks.

    Examples
    --------
    >>> from simplex_lib.tasks.hops import HopTask
    >>> base = TrainConfig(variant="simplicial", simplicial_every=1, n_layer=1, d_model=16, n_heads=2,
    ...                    steps=2, warmup=0, eval_every=2, eval_batches=1, batch_size=4, progress=False)
    >>> sums, models = train_together([base, replace(base, seed=1, lr=1e-2)], HopTask(M=3, hops=1))
    >>> [s["config"]["seed"] for s in sums], len(models)
    ([0, 1], 2)
    """
    from torch.func import functional_call, stack_module_state, vmap

    cfgs = list(cfgs)
    if not cfgs:
        raise ValueError("cfgs must hold at least one TrainConfig")
    task = _resolve_task(task)
    cfg = cfgs[0]
    free = set(TOGETHER_FIELDS) | {"progress", "log_every", "threads"}
    for other in cfgs[1:]:
        differ = [f.name for f in fields(TrainConfig)
                  if f.name not in free and getattr(other, f.name) != getattr(cfg, f.name)]
        if differ:
            raise ValueError(f"cfgs must differ only in lr, seed and data_seed; {differ[0]} differs")
    for name, bad in (("out", cfg.out), ("compile", cfg.compile), ("max_minutes", cfg.max_minutes),
                      ("stop_at", cfg.stop_at), ("resume", cfg.resume)):
        if bad:
            raise ValueError(f"train_together does not support {name} (got {bad!r}); use train()")
    # The language models tie weights and select keys by value, which vmap cannot batch.
    if task.head == "lm" or cfg.variant not in ("dot", "simplicial"):
        raise ValueError(f"train_together trains the task models (variant dot or simplicial, a "
                         f"classification head), got variant {cfg.variant!r} on a {task.head!r} task; "
                         f"use train()")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    on_gpu = str(device).startswith("cuda")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if on_gpu:
        if torch.device(device).index is not None:
            torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if (on_gpu and cfg.amp)
           else contextlib.nullcontext())
    mcfg = cfg.model_config(task)
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)  # the initial weights train() starts from
        models.append(Model(mcfg).to(device))
    params, buffers = stack_module_state(models)  # [R, ...] leaves
    shell = Model(mcfg).to("meta")

    def loss_and_logits(p, b, x, y):
        logits, loss = functional_call(shell, (p, b), (x, y))
        return loss, logits

    together = vmap(loss_and_logits)
    R = len(cfgs)
    seeds = sorted({c.batch_seed for c in cfgs})
    row = torch.tensor([seeds.index(c.batch_seed) for c in cfgs])  # model -> its batches

    def batches(split, seed_of):  # one batch per seed, stacked per model: [R, batch, ...]
        xs, ys = zip(*[task.batch(split, cfg.batch_size, cfg.block_size,
                                  torch.Generator().manual_seed(seed_of(s))) for s in seeds])
        return torch.stack(xs)[row].to(device), torch.stack(ys)[row].to(device)

    def per_model(t, like):  # a per-model [R] vector shaped to broadcast against [R, ...] ``like``
        return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    decays = {k: v.dim() > 2 for k, v in params.items()}  # matrices of the unstacked model
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in params.items()}
    beta1, beta2, eps = 0.9, 0.95, 1e-8

    def evaluate():
        shell.eval()
        sums = torch.zeros(2, R, dtype=torch.float64, device=device)  # loss, accuracy
        counts = 0  # label counts per model [R, classes]
        with torch.no_grad(), amp:
            for i in range(cfg.eval_batches):
                x, y = batches("val", lambda s: 10_000_019 + 7919 * i + s)
                loss, logits = together(params, buffers, x, y)
                sums[0] += loss.double()
                sums[1] += (logits.argmax(-1) == y).double().flatten(1).mean(1)
                counts = counts + torch.nn.functional.one_hot(y.flatten(1), task.n_classes).sum(1)
        shell.train()
        loss, acc = (sums / cfg.eval_batches).tolist()
        majority = (counts.max(1).values / counts.sum(1)).tolist()
        return [{"val_loss": v, "val_accuracy": a, "val_majority": mj}
                for v, a, mj in zip(loss, acc, majority)]

    records = [[] for _ in cfgs]
    running, n_running, train_time, tokens = torch.zeros(R, device=device), 0, 0.0, 0
    bar = tqdm(total=cfg.steps, desc=f"{cfg.variant} x{R}", unit="step", disable=not cfg.progress)
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        lr = torch.tensor([lr_at(step, c) for c in cfgs], device=device)
        x, y = batches("train", lambda s: s * 1_000_003 + step * 1_009)
        with amp:
            loss, _ = together(params, buffers, x, y)
        loss.sum().backward()  # the models share nothing: each slice gets its own gradient
        with torch.no_grad():
            grads = {k: v.grad for k, v in params.items()}
            if cfg.grad_clip > 0:  # clip_grad_norm_ per model
                norm = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads.values()]).sum(0).sqrt()
                coef = (cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)
            t = step + 1
            for k, p in params.items():  # AdamW, as torch.optim.AdamW computes it
                g, (m, v) = grads[k], state[k]
                if cfg.grad_clip > 0:
                    g = g * per_model(coef, g)
                if decays[k]:
                    p.mul_(1 - per_model(lr, p) * cfg.weight_decay)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.sub_(per_model(lr / (1 - beta1 ** t), p) * m / denom)
                p.grad = None
            running += loss.detach().float()
        n_running += 1
        train_time += time.perf_counter() - t0
        tokens += x[0].numel()
        done = step + 1
        last = done == cfg.steps
        if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or last:
            means = (running / n_running).tolist()
            running.zero_()
            n_running = 0
            evals = evaluate() if (done % cfg.eval_every == 0 or last) else [{}] * R
            for r, c, m, e in zip(records, cfgs, means, evals):
                r.append({"step": done, "tokens": tokens, "train_loss": m, "lr": lr_at(step, c),
                          "train_time_s": train_time, "tokens_per_s": tokens / max(train_time, 1e-9),
                          **e})
        bar.update(1)
    bar.close()

    out = []
    for i, (c, m, recs) in enumerate(zip(cfgs, models, records)):
        m.load_state_dict({k: v[i].detach() for k, v in {**params, **buffers}.items()})
        m.eval()
        final = next((r for r in reversed(recs) if "val_loss" in r), {})
        out.append({"config": asdict(c), "model": mcfg.to_dict(), "simplicial_layers": list(mcfg.simplicial_layers),
                    "n_params": count_parameters(m), "world_size": 1, "provenance": provenance(device),
                    "task": task.info, "config_changes": [], "steps_done": cfg.steps, "stopped_early": False,
                    "interrupted": None, "tokens": tokens, "train_time_s": train_time,
                    "tokens_per_s": tokens / max(train_time, 1e-9), "trained_together": R,
                    "final_val_loss": final.get("val_loss"), "final_val_accuracy": final.get("val_accuracy"),
                    "final_val_majority": final.get("val_majority"), "log": recs})
    return out, models


def load_run(path: str) -> dict:
    """Read a run's ``summary.json`` (a directory or the file itself).

    Parameters
    ----------
    path : str
        A run folder (``out`` of a :class:`TrainConfig`) or the path of a summary JSON file.

    Returns
    -------
    dict, the summary as :func:`train` returned it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "summary.json").write_text('{"log": []}')
    >>> load_run(str(d))
    {'log': []}
    """
    if os.path.isdir(path):
        path = os.path.join(path, "summary.json")
    with open(path) as fh:
        return json.load(fh)


def compare_runs(runs: dict) -> list:
    """One row per run: parameters, throughput and validation loss at the evaluation steps shared by all.

    Parameters
    ----------
    runs : dict name -> summary (from :func:`train` or :func:`load_run`)

    Returns
    -------
    list of dicts with ``name``, ``n_params``, ``steps_done``, ``stopped_early``, ``tokens_per_s``,
    ``common_step`` (the last evaluation step every run reached), ``tokens_at_common`` and
    ``val_at_common``.

    Examples
    --------
    >>> run = {"n_params": 1, "steps_done": 2, "stopped_early": False, "tokens_per_s": 9.0,
    ...        "log": [{"step": 2, "tokens": 8, "val_loss": 1.5}]}
    >>> compare_runs({"a": run})[0]["val_at_common"]
    1.5
    """
    evals = {n: {r["step"]: r for r in run["log"] if "val_loss" in r} for n, run in runs.items()}
    shared = set.intersection(*(set(e) for e in evals.values())) if evals else set()
    if not shared:
        raise ValueError("the runs share no evaluation step")
    step = max(shared)
    return [{"name": n, "n_params": run["n_params"], "steps_done": run["steps_done"],
             "stopped_early": run["stopped_early"], "tokens_per_s": run["tokens_per_s"],
             "common_step": step, "tokens_at_common": evals[n][step]["tokens"],
             "val_at_common": evals[n][step]["val_loss"]} for n, run in runs.items()]


def plot_runs(ax, runs: dict, x: str = "tokens", y: str = "val_loss") -> None:
    """Loss curves of several runs on one axis.

    Parameters
    ----------
    ax : matplotlib Axes
    runs : dict name -> summary (as returned by :func:`train` or :func:`load_run`)
    x : ``"tokens"``, ``"train_time_s"`` or ``"step"``
    y : ``"val_loss"`` or ``"train_loss"``
    """
    from .viz import PALETTE, label  # plotting only: the training CLI does not import matplotlib

    colours = {"dot": PALETTE["dot"], "window": PALETTE["simplicial"], "topk": PALETTE["accent"],
               "simplicial": PALETTE["simplicial"]}
    xlabels = {"tokens": "training tokens (bytes)", "train_time_s": "training wall-clock (s)",
               "step": "optimizer step"}
    if x not in xlabels or y not in ("val_loss", "train_loss"):
        raise ValueError(f"x must be one of {sorted(xlabels)} and y 'val_loss' or 'train_loss'")
    for name, run in runs.items():
        pts = [(r[x], r[y]) for r in run["log"] if y in r]
        if pts:
            xs, ys = zip(*pts)
            cfg = run["config"]
            ax.plot(xs, ys, marker="o" if y == "val_loss" else None, ms=3,
                    ls="--" if cfg.get("backend") == "triton" else "-",
                    color=colours.get(cfg["variant"]), label=f"{name} ({run['n_params']:,} params)")
    label(ax, xlabels[x], f"{'validation' if y == 'val_loss' else 'training'} loss (nats/byte)")
    ax.legend(fontsize=8)


def save_plots(folder: str, pattern: str = "train_*.json", filename: str = "train_curves.png") -> str:
    """Plot every ``train_*.json`` summary in ``folder`` (loss vs tokens and vs time) to a PNG.

    The figure's footer states the provenance (device, torch version, date) of the first run.
    Returns the path written.

    Parameters
    ----------
    folder : str
        Holds the summaries; the PNG is written there too.
    pattern : str, default ``"train_*.json"``
        Glob of the summary files; a run's name is its file name without the first 6 characters
        (``train_``) and the ``.json`` suffix.
    filename : str, default ``"train_curves.png"``

    Returns
    -------
    str, ``folder/filename``.

    Raises
    ------
    ValueError
        If no file matches ``pattern``.
    """
    import matplotlib  # plotting only: the training CLI does not need matplotlib

    matplotlib.use("Agg")
    from .viz import new_figure

    runs = {os.path.basename(p)[6:-5]: load_run(p) for p in sorted(glob.glob(os.path.join(folder, pattern)))}
    if not runs:
        raise ValueError(f"no files matching {pattern!r} in {folder!r}")
    fig, (a, b) = new_figure(ncols=2, width=11)
    plot_runs(a, runs, x="tokens")
    plot_runs(b, runs, x="train_time_s")
    prov = next(iter(runs.values()))["provenance"]
    fig.text(0.01, -0.02, f"{prov['device']} | torch {prov['torch']} | {prov['date_utc']}", fontsize=8)
    fig.tight_layout()
    path = os.path.join(folder, filename)
    fig.savefig(path)
    return path



def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m simplex_lib.train``: one flag per :class:`TrainConfig` field."""
    p = argparse.ArgumentParser(
        prog=PROG, usage="%(prog)s [--preset NAME] [--config FILE] [options]",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Precedence: a preset, then the --config file, then explicit flags. "
               "Exit status: 0 when done, 2 on a usage error, 128 + the signal's number when "
               "SIGINT or SIGTERM stopped the run (after writing a checkpoint to --out).")
    p.add_argument("--config", metavar="FILE", help="JSON object of TrainConfig fields (default: none)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="named starting configuration: " + "; ".join(
                       f"{k}: {', '.join(f'{a}={b}' for a, b in v.items())}" for k, v in PRESETS.items())
                   + " (default: none)")
    choices = {"variant": ATTENTION_KINDS, "backend": _BACKENDS, "init": INITS}
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        text = f"{f.metadata['help']} (default: {f.default!r})".replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, dest=f.name, type=kind, default=None, choices=choices.get(f.name),
                           metavar=None if f.name in choices else f.name.upper(), help=text)
    return p


def _config(parser: argparse.ArgumentParser, args) -> TrainConfig:
    values = {}
    if args.preset:
        values.update(PRESETS[args.preset])
    if args.config:
        try:
            with open(args.config) as fh:
                loaded = json.load(fh)
        except OSError as exc:
            parser.error(f"--config {args.config}: {exc.strerror or exc}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            parser.error(f"--config {args.config}: not valid JSON ({exc})")
        if not isinstance(loaded, dict):
            parser.error(f"--config {args.config}: must hold a JSON object of TrainConfig fields")
        unknown = set(loaded) - {f.name for f in fields(TrainConfig)}
        if unknown:
            parser.error(f"--config {args.config}: unknown config keys {sorted(unknown)}")
        values.update(loaded)
    names = {f.name for f in fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    try:
        cfg = replace(TrainConfig(), **values)
        cfg.model_config()  # the model's own checks (head_dim, windows, backends), without building it
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    return cfg


def config_from_args(argv=None) -> TrainConfig:
    """Preset, then the ``--config`` file, then explicit flags (later wins); usage errors exit 2.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    TrainConfig, checked (including the model configuration it implies).

    Raises
    ------
    SystemExit
        With status 2 (and the message on stderr) for an unknown flag, an unreadable or invalid
        ``--config`` file, or values the configuration refuses; with status 0 after ``--help``.

    Examples
    --------
    >>> config_from_args(["--preset", "tiny", "--lr", "0.01"]).lr
    0.01
    """
    parser = build_parser()
    return _config(parser, parser.parse_args(argv))


def _cli_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line of the CLI's output, without the source line that raised it."""
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """Entry point of ``python -m simplex_lib.train``.

    Parses the arguments (:func:`config_from_args`), trains, and prints the summary's main
    numbers as one JSON line (on rank 0).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, 0 when done, ``128 + signal number`` when SIGINT or SIGTERM stopped the
        run.

    Raises
    ------
    SystemExit
        With status 2 on a usage error or a :class:`RunError` (bad ``out`` folder or checkpoint).
    """
    parser = build_parser()
    cfg = _config(parser, parser.parse_args(argv))
    lead = int(os.environ.get("RANK", "0")) == 0
    if not cfg.out and lead:
        print("note: no --out given, so nothing is saved (no checkpoint, log or summary)", file=sys.stderr)
    with warnings.catch_warnings():  # restores showwarning when main returns
        warnings.showwarning = _cli_warning
        try:
            summary = train(cfg)
        except RunError as exc:
            parser.error(str(exc))
    if lead:
        print(json.dumps({k: summary[k] for k in ("n_params", "steps_done", "tokens", "train_time_s",
                                                  "tokens_per_s", "final_val_loss", "stopped_early")}))
    if summary["interrupted"]:
        if lead:
            where = f"checkpoint written to {cfg.out}; continue with --resume" if cfg.out else "nothing saved"
            print(f"stopped by {summary['interrupted']} after step {summary['steps_done']}: {where}",
                  file=sys.stderr)
        return 128 + int(getattr(signal, summary["interrupted"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
