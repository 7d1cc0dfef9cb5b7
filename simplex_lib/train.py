"""Train the small GPTs of :mod:`simplex_lib.models` on the standard-library byte corpus.

Command line (flags override a JSON config file, which overrides a preset)::

    python -m simplex_lib.train --preset tiny --variant window --out /tmp/run
    python -m simplex_lib.train --config my.json --resume
    torchrun --nproc_per_node=2 -m simplex_lib.train --preset tiny --out /tmp/ddp   # DDP

What a run writes to ``--out``:

- ``log.jsonl``: one JSON record per logging step (step, tokens, train/val loss in nats per
  byte, learning rate, training seconds, tokens per second);
- ``summary.json``: the configuration, parameter count, provenance (device, versions, date,
  corpus) and the final numbers;
- ``ckpt.pt``: model, optimizer and counters, loaded back with ``torch.load(weights_only=True)``.

Determinism: weights are initialised from ``seed``; the batch of step ``s`` on rank ``r`` is drawn
from a generator seeded by ``(seed, s, r)``, so a resumed run sees exactly the batches of an
uninterrupted one. On a GPU the forward pass runs under bf16 autocast; several processes
started by ``torchrun`` train with DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.distributed as dist

from .data import sample_batch, stdlib_corpus
from .models import GPT, GPTConfig, count_parameters

__all__ = ["TrainConfig", "PRESETS", "lr_at", "provenance", "train", "load_run", "plot_runs", "save_plots",
           "compare_runs", "config_from_args", "main"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (model shape included).

    The model fields mirror :class:`simplex_lib.models.GPTConfig`; ``w`` sets both windows of the
    ``"window"`` variant. ``threads > 0`` sets torch's CPU thread count; ``stop_at > 0``
    ends this invocation after that step (with a checkpoint), as a pre-emption would, so that a
    later ``resume`` continues the same schedule. ``batch_size`` is per process: a step sees ``batch_size * block_size *
    world_size`` tokens. The learning rate warms up linearly for ``warmup`` steps, then follows a
    cosine down to ``min_lr_ratio * lr`` at ``steps``.

    Examples
    --------
    >>> TrainConfig(variant="topk").model_config().variant
    'topk'
    """

    variant: str = "dot"
    block_size: int = 128
    n_layer: int = 4
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: int = 4
    simplicial_every: int = 4
    w: int = 32
    topk: int = 32
    backend: str = "torch"
    batch_size: int = 16
    steps: int = 200
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batches: int = 8
    log_every: int = 10
    ckpt_every: int = 0
    seed: int = 0
    out: str = ""
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    max_minutes: float = 0.0
    threads: int = 0
    stop_at: int = 0
    progress: bool = True
    resume: bool = False

    def model_config(self) -> GPTConfig:
        """The :class:`GPTConfig` of this run."""
        return GPTConfig(variant=self.variant, block_size=self.block_size, n_layer=self.n_layer,
                         d_model=self.d_model, n_heads=self.n_heads, mlp_ratio=self.mlp_ratio,
                         simplicial_every=self.simplicial_every, w1=self.w, w2=self.w,
                         topk=self.topk, backend=self.backend)


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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine to ``min_lr_ratio * lr``.

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


def _version(dist_name: str):
    try:
        from importlib.metadata import version

        return version(dist_name)
    except Exception:  # noqa: BLE001 - absent packages are simply not reported
        return None


def provenance(device: str = "cpu") -> dict:
    """Where and with what a result was produced: device, versions, date, git commit.

    Examples
    --------
    >>> {"device", "torch", "date_utc"} <= set(provenance())
    True
    """
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"CPU ({platform.processor() or platform.machine()})"
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        commit = ""
    if len(commit) != 40:  # a copy without history answers "HEAD" or nothing
        commit = None
    return {
        "device": name,
        "cpu_count": os.cpu_count(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda,
        "git_commit": commit,
    }


def _setup_distributed():
    """``(rank, world_size, device)``; initialises the process group when run by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    return rank, world, device


def _all_mean(values: list, world: int, device) -> list:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(t)
        t /= world
    return t.tolist()


def _save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, corpus=None) -> dict:
    """Train one model; return the summary dict (also written to ``cfg.out/summary.json``).

    Parameters
    ----------
    cfg : TrainConfig
    corpus : simplex_lib.data.Corpus, optional
        Default :func:`simplex_lib.data.stdlib_corpus`.

    Returns
    -------
    dict
        ``config``, ``model``, ``n_params``, ``provenance``, ``corpus``, ``log`` (the records) and
        final numbers (``final_val_loss``, ``tokens``, ``train_time_s``, ``tokens_per_s``).
    """
    if cfg.threads > 0:  # small CPU runs are faster on one thread than fighting for shared cores
        torch.set_num_threads(cfg.threads)
    rank, world, device = _setup_distributed()
    if cfg.device != "auto":
        device = cfg.device
    on_gpu = str(device).startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    corpus = stdlib_corpus() if corpus is None else corpus
    mcfg = cfg.model_config()

    torch.manual_seed(cfg.seed)
    model = GPT(mcfg).to(device)
    n_params = count_parameters(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)

    out = cfg.out
    if out and rank == 0:
        os.makedirs(out, exist_ok=True)
    ckpt_path = os.path.join(out, "ckpt.pt") if out else None
    log_path = os.path.join(out, "log.jsonl") if out else None
    step0, tokens, train_time, records = 0, 0, 0.0, []
    if cfg.resume:
        if not ckpt_path or not os.path.exists(ckpt_path):
            raise ValueError(f"resume=True but there is no checkpoint at {ckpt_path!r}")
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ck["config"]["variant"] != cfg.variant:
            raise ValueError("the checkpoint was written by a run of another variant")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step0, tokens, train_time = int(ck["step"]), int(ck["tokens"]), float(ck["train_time_s"])
        if log_path and os.path.exists(log_path):
            with open(log_path) as fh:
                records = [r for r in map(json.loads, fh) if r["step"] <= step0]

    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[torch.device(device).index] if on_gpu else None)
    if cfg.compile:
        net = torch.compile(net)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if (on_gpu and cfg.amp)
           else contextlib.nullcontext())

    def evaluate():
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad(), amp:
            for i in range(rank, cfg.eval_batches, world):
                g = torch.Generator().manual_seed(10_000_019 + 7919 * i + cfg.seed)
                x, y = sample_batch(corpus.val, cfg.batch_size, cfg.block_size, g, device)
                total += float(model(x, y)[1])
                count += 1
        model.train()
        s, c = _all_mean([total, count], world, device)
        return s / max(c, 1e-12)

    if rank == 0 and log_path:
        with open(log_path, "w") as fh:  # rewrite: drops records past the checkpoint on resume
            fh.writelines(json.dumps(r) + "\n" for r in records)

    bar = None
    if cfg.progress and rank == 0:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=step0, desc=cfg.variant, unit="step")
        except ImportError:  # pragma: no cover - tqdm is a dependency, but keep runs alive
            bar = None

    tokens_per_step = cfg.batch_size * cfg.block_size * world
    running, n_running = 0.0, 0
    stopped_early = False
    step = step0
    for step in range(step0, cfg.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 1_009 + rank)
        x, y = sample_batch(corpus.train, cfg.batch_size, cfg.block_size, g, device)
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
        tokens += tokens_per_step
        done = step + 1
        last = done == cfg.steps
        over_time = cfg.max_minutes > 0 and train_time > 60 * cfg.max_minutes
        if cfg.max_minutes > 0 and world > 1:  # every rank must stop at the same step
            over_time = _all_mean([float(over_time)], world, device)[0] > 0
        over_time = over_time or done == cfg.stop_at
        if done % cfg.log_every == 0 or last or over_time or done % cfg.eval_every == 0:
            (train_loss,) = _all_mean([running / n_running], world, device)
            running, n_running = 0.0, 0
            rec = {"step": done, "tokens": tokens, "train_loss": train_loss, "lr": lr,
                   "train_time_s": train_time, "tokens_per_s": tokens / max(train_time, 1e-9)}
            if done % cfg.eval_every == 0 or last or over_time:
                rec["val_loss"] = evaluate()
            records.append(rec)
            if rank == 0 and log_path:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", **({"val": f"{rec['val_loss']:.3f}"} if "val_loss" in rec else {}))
        if ckpt_path and rank == 0 and ((cfg.ckpt_every and done % cfg.ckpt_every == 0) or last or over_time):
            _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": done,
                          "tokens": tokens, "train_time_s": train_time,
                          "config": asdict(cfg), "format": 1}, ckpt_path)
        if bar is not None:
            bar.update(1)
        if over_time and not last:
            stopped_early = True
            break
    if bar is not None:
        bar.close()

    final_val = next((r["val_loss"] for r in reversed(records) if "val_loss" in r), None)
    summary = {
        "config": asdict(cfg),
        "model": mcfg.to_dict(),
        "simplicial_layers": list(mcfg.simplicial_layers),
        "n_params": n_params,
        "world_size": world,
        "provenance": provenance(device),
        "corpus": corpus.info,
        "steps_done": records[-1]["step"] if records else step0,
        "stopped_early": stopped_early,
        "tokens": tokens,
        "train_time_s": train_time,
        "tokens_per_s": tokens / max(train_time, 1e-9),
        "final_val_loss": final_val,
        "log": records,
    }
    if rank == 0 and out:
        with open(os.path.join(out, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=1)
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


def load_run(path: str) -> dict:
    """Read a run's ``summary.json`` (a directory or the file itself).

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
    from .viz import PALETTE, label

    colours = {"dot": PALETTE["dot"], "window": PALETTE["simplicial"], "topk": PALETTE["accent"]}
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
    """
    import glob

    import matplotlib

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


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m simplex_lib.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file of TrainConfig fields")
    p.add_argument("--preset", choices=sorted(PRESETS), help="named starting configuration")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            p.add_argument(flag, dest=f.name, type=kind, default=None)
    return p.parse_args(argv)


def config_from_args(argv=None) -> TrainConfig:
    """Preset, then the ``--config`` file, then explicit flags (later wins)."""
    args = _parse_args(argv)
    values = {}
    if args.preset:
        values.update(PRESETS[args.preset])
    if args.config:
        with open(args.config) as fh:
            values.update(json.load(fh))
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return replace(TrainConfig(), **values)


def main(argv=None) -> int:
    """Entry point of ``python -m simplex_lib.train``."""
    cfg = config_from_args(argv)
    summary = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("n_params", "tokens", "train_time_s",
                                                   "tokens_per_s", "final_val_loss", "stopped_early")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
