"""Several seeds of several variants of the chapter-12 language model, in one command.

Each (variant, seed) is one ``python -m simplex_lib.train`` process writing its own folder
``OUT/<variant>_s<seed>/`` (log, checkpoints, ``summary.json`` with the run's provenance). Runs
are spread over the GPUs given (``--per-gpu`` at a time on each, through
``CUDA_VISIBLE_DEVICES``), or run ``--jobs`` at a time on the CPU. ``OUT/manifest.json`` records
the command, the git commit, the machine and, for every run, its device slot, exit status and
wall time. Invoking the same command again skips finished runs and resumes interrupted ones
from their checkpoints, so a run cut off by a time limit is continued, not restarted.

``--export DIR`` copies the summaries (``<variant>_s<seed>.json``) and the manifest, without
checkpoints, to a folder that can be committed; :func:`simplex_lib.experiments.load_seed_runs`
reads either folder.

The GPU re-run of chapter 12 (three seeds of the three variants, the full 1,500-step schedule,
an evaluation every 100 steps; the windowed and top-k models on the Triton kernels)::

    python -m benchmarks.seeds --preset gpu --variants dot,window,topk --seeds 0,1,2 \\
        --eval-every 100 --window-backend triton --topk-backend triton --gpus all --per-gpu 3 \\
        --out runs/seeds_gpu --export benchmarks/results/seeds_gpu

A tiny CPU version (the example committed in ``benchmarks/results/seeds_cpu_tiny``)::

    python -m benchmarks.seeds --preset tiny --steps 60 --eval-every 10 --log-every 5 \\
        --variants dot,window,topk --seeds 0,1,2 --jobs 2 --threads 1 \\
        --out /tmp/seeds_cpu_tiny --export benchmarks/results/seeds_cpu_tiny

Each run has two seeds: ``--seed`` for the initial weights and ``--data-seed`` for the order of the
batches (and the held-out batches). By default run ``s`` uses data seed ``DATA_SEED_OFFSET + s``, a
stream apart from the weights'; ``--data-seeds`` sets them one by one (the same list for every
variant, so that runs pair by seed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from simplex_lib.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]

#: Run ``s`` draws its batches from data seed ``DATA_SEED_OFFSET + s`` unless ``--data-seeds`` is given.
DATA_SEED_OFFSET = 100


def _run_state(folder: Path, steps: int) -> str:
    """``done``, ``resume`` (a checkpoint to continue from), ``restart`` (files of a run cut off
    before its first checkpoint, to be overwritten) or ``new``."""
    summary = folder / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        if s.get("steps_done") == steps and not s.get("stopped_early") and not s.get("interrupted"):
            return "done"
    if (folder / "ckpt.pt").exists():
        return "resume"
    return "restart" if (summary.exists() or (folder / "log.jsonl").exists()) else "new"


def build_jobs(args) -> list:
    jobs = []
    data_seeds = args.data_seeds or [DATA_SEED_OFFSET + s for s in args.seeds]
    if len(data_seeds) != len(args.seeds):
        raise SystemExit(f"--data-seeds needs one seed per --seeds entry ({len(args.seeds)}), "
                         f"got {len(data_seeds)}")
    for variant in args.variants:
        for seed, data_seed in zip(args.seeds, data_seeds):
            folder = Path(args.out) / f"{variant}_s{seed}"
            cmd = [sys.executable, "-m", "simplex_lib.train", "--preset", args.preset,
                   "--variant", variant, "--seed", str(seed), "--data-seed", str(data_seed),
                   "--eval-every", str(args.eval_every), "--no-progress", "--out", str(folder)]
            backend = {"window": args.window_backend, "topk": args.topk_backend}.get(variant)
            if backend:
                cmd += ["--backend", backend]
            for flag in ("steps", "log_every", "threads"):
                if getattr(args, flag):
                    cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
            if not args.gpus:
                cmd += ["--device", "cpu"]
            cmd += args.train_args
            jobs.append({"variant": variant, "seed": seed, "data_seed": data_seed, "folder": str(folder),
                         "cmd": cmd})
    return jobs


def _gpu_ids(spec: str) -> list:
    if spec == "all":
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    return [g for g in spec.split(",") if g]


def run_all(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = args.steps or _preset_steps(args.preset)
    jobs = build_jobs(args)
    gpus = _gpu_ids(args.gpus) if args.gpus else []
    slots = [g for g in gpus for _ in range(args.per_gpu)] if gpus else [None] * args.jobs
    if not slots:
        raise SystemExit("no GPU found: pass --gpus '' to run on the CPU")
    manifest = {"command": ["python", "-m", "benchmarks.seeds", *sys.argv[1:]],
                "provenance": provenance("cuda" if gpus else "cpu"), "gpus": gpus,
                "slots": len(slots), "runs": []}
    pending = []
    for job in jobs:
        state = _run_state(Path(job["folder"]), steps)
        job["state_before"] = state
        if state == "done":
            job.update(returncode=0, seconds=0.0, slot=None, cmd=["python", *job["cmd"][1:]])
            manifest["runs"].append(job)
            continue
        if state in ("resume", "restart"):
            job["cmd"] = job["cmd"] + ["--resume" if state == "resume" else "--overwrite"]
        pending.append(job)
    running: dict = {}
    free = list(range(len(slots)))
    while pending or running:
        while pending and free:
            job, i = pending.pop(0), free.pop(0)
            env = dict(os.environ)
            env["SIMPLEX_GIT_COMMIT"] = manifest["provenance"]["git_commit"] or ""
            if slots[i] is not None:
                env["CUDA_VISIBLE_DEVICES"] = slots[i]
            Path(job["folder"]).mkdir(parents=True, exist_ok=True)
            log = open(Path(job["folder"]) / "stdout.txt", "a")
            proc = subprocess.Popen(job["cmd"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            job.update(slot=slots[i], started=time.time())
            running[proc] = (job, i, log)
            print(f"start {job['variant']} seed {job['seed']} on {slots[i] or 'cpu'}", flush=True)
        time.sleep(0.5)
        for proc in [p for p in running if p.poll() is not None]:
            job, i, log = running.pop(proc)
            log.close()
            job.update(returncode=proc.returncode, seconds=round(time.time() - job.pop("started"), 1))
            job["cmd"] = ["python", *job["cmd"][1:]]  # as typed, not this machine's interpreter path
            manifest["runs"].append(job)
            free.append(i)
            print(f"done  {job['variant']} seed {job['seed']}: exit {proc.returncode}, "
                  f"{job['seconds']} s", flush=True)
    manifest["runs"].sort(key=lambda j: (j["variant"], j["seed"]))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if args.export:
        export(out, Path(args.export), manifest)
    return manifest


def _preset_steps(preset: str) -> int:
    from simplex_lib.train import PRESETS, TrainConfig

    return PRESETS[preset].get("steps", TrainConfig().steps)


def export(out: Path, dest: Path, manifest: dict) -> None:
    """Summaries and manifest only (no checkpoints), one ``<variant>_s<seed>.json`` per run."""
    dest.mkdir(parents=True, exist_ok=True)
    for job in manifest["runs"]:
        src = Path(job["folder"]) / "summary.json"
        if src.exists():
            shutil.copyfile(src, dest / f"{job['variant']}_s{job['seed']}.json")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="gpu", help="simplex_lib.train preset (default: gpu)")
    p.add_argument("--variants", default="dot,window,topk", type=lambda s: s.split(","),
                   help="comma-separated variants (default: dot,window,topk)")
    p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")],
                   help="comma-separated seeds of the initial weights (default: 0,1,2)")
    p.add_argument("--data-seeds", default="", type=lambda s: [int(x) for x in s.split(",") if x],
                   help=f"comma-separated seeds of the batches, one per --seeds entry "
                        f"(default: {DATA_SEED_OFFSET} + each seed)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between evaluations (default: 100)")
    p.add_argument("--steps", type=int, default=0, help="override the preset's steps")
    p.add_argument("--log-every", type=int, default=0, help="override the preset's log interval")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (CPU runs)")
    p.add_argument("--window-backend", default="", help="backend of the window variant (e.g. triton)")
    p.add_argument("--topk-backend", default="", help="backend of the topk variant (e.g. triton)")
    p.add_argument("--gpus", default="", help="'all', or comma-separated GPU ids; empty: CPU")
    p.add_argument("--per-gpu", type=int, default=1, help="runs at a time on each GPU (default: 1)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time on the CPU (default: 1)")
    p.add_argument("--out", required=True, help="folder of the runs (checkpoints included)")
    p.add_argument("--export", default="", help="also copy summaries + manifest here")
    p.add_argument("train_args", nargs="*", help="further simplex_lib.train flags, after --")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    manifest = run_all(args)
    failed = [j for j in manifest["runs"] if j["returncode"] != 0]
    for j in failed:
        print(f"FAILED {j['variant']} seed {j['seed']}: see {j['folder']}/stdout.txt", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
