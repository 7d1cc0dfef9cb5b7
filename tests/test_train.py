"""Tests for simplex_lib.train and simplex_lib.tasks.corpus: corpus, schedule, resume, the CLI's
validation, interruption by signals, DDP with torchrun."""

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from simplex_lib import train as train_module
from simplex_lib.model import Model
from simplex_lib.tasks import corpus as data
from simplex_lib.testing import assert_close
from simplex_lib.train import (PRESETS, RunError, TrainConfig, build_parser, config_from_args, load_run, lr_at,
                               main, train)

TINY = replace(TrainConfig(), **PRESETS["tiny"], progress=False, threads=1)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """A tiny standard-library-like tree, so that tests do not read the whole library."""
    root = tmp_path_factory.mktemp("stdlib")
    files = {"a.py": b"import os\n" * 40, "pkg/b.py": b"def f():\n    return 1\n" * 30,
             "pkg/test/skip.py": b"x", "site-packages/z.py": b"y", "tests/t.py": b"z",
             "c.txt": b"not python", "d.py": b"print('hello')\n" * 50}
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    for name in ("v%d.py" % i for i in range(40)):  # enough files that some land in validation
        (root / name).write_bytes(b"# %s\n" % name.encode() * 30)
    return str(root)


def test_source_files_rule(small_corpus):
    files = data.stdlib_source_files(small_corpus)
    assert files == sorted(files)
    assert "a.py" in files and "pkg/b.py" in files and "d.py" in files
    assert not any("test" in f.split("/")[:-1] or "site-packages" in f for f in files)
    assert "c.txt" not in files
    with pytest.raises(ValueError, match="root"):
        data.stdlib_source_files(os.path.join(small_corpus, "missing"))


def test_corpus_bytes_and_split(small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPLEX_CACHE", str(tmp_path))
    c = data.stdlib_corpus(small_corpus)
    files = data.stdlib_source_files(small_corpus)
    val = [f for f in files if data.is_validation_file(f)]
    assert 0 < len(val) < len(files)
    want_val = b"".join(open(os.path.join(small_corpus, f), "rb").read() + b"\x00" for f in val)
    want_train = b"".join(open(os.path.join(small_corpus, f), "rb").read() + b"\x00"
                          for f in files if f not in val)
    assert bytes(c.val.tolist()) == want_val and bytes(c.train.tolist()) == want_train
    assert c.info["n_val_files"] == len(val) and c.info["n_files"] == len(files)
    assert any(n.endswith(".npz") for n in os.listdir(tmp_path))  # cached outside the repository
    again = data.stdlib_corpus(small_corpus)  # from the cache
    assert torch.equal(again.train, c.train) and again.info == c.info


def test_real_stdlib_corpus_is_available():
    files = data.stdlib_source_files()
    assert len(files) > 100 and "os.py" in files and "json/__init__.py" in files


def test_sample_batch(gen):
    t = torch.arange(200, dtype=torch.uint8)
    x, y = data.sample_batch(t, 3, 16, gen)
    assert x.shape == y.shape == (3, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    with pytest.raises(ValueError, match="longer than block_size"):
        data.sample_batch(t[:10], 1, 16, gen)
    assert data.decode(torch.tensor([0x63, 0x61, 0x66, 0xC3, 0xA9])) == "café"


def test_lr_schedule():
    cfg = TrainConfig(steps=110, warmup=10, lr=2.0, min_lr_ratio=0.01)
    lrs = [lr_at(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(0.2) and lrs[9] == pytest.approx(2.0)
    assert lrs[60] == pytest.approx(0.01 * 2 + 0.99 * 2 * 0.5)  # halfway down the cosine
    assert lrs[110] == pytest.approx(0.02) and lrs[119] == pytest.approx(0.02)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_config_from_args(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"steps": 7, "variant": "window", "lr": 0.5}))
    cfg = config_from_args(["--preset", "tiny", "--config", str(cfg_file), "--lr", "0.25", "--no-amp"])
    assert (cfg.steps, cfg.variant, cfg.lr, cfg.amp, cfg.block_size) == (7, "window", 0.25, False, 32)


def _state(path):
    return torch.load(os.path.join(path, "ckpt.pt"), weights_only=True)


@pytest.fixture
def corpus(small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMPLEX_CACHE", str(tmp_path / "cache"))
    return data.stdlib_corpus(small_corpus)


@pytest.mark.parametrize("variant", ["window", "topk"])
def test_resume_reproduces_uninterrupted_run(corpus, tmp_path, variant):
    straight = train(replace(TINY, variant=variant, out=str(tmp_path / "a")), corpus)
    first = train(replace(TINY, variant=variant, out=str(tmp_path / "b"), stop_at=4), corpus)
    assert first["stopped_early"] and first["steps_done"] == 4
    log = tmp_path / "b" / "log.jsonl"  # a kill while appending leaves half a line
    log.write_text(log.read_text() + '{"step": 5, "tokens": 6')
    with pytest.warns(UserWarning, match="truncated last line"):
        resumed = train(replace(TINY, variant=variant, out=str(tmp_path / "b"), resume=True), corpus)
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert a["step"] == b["step"] == TINY.steps and a["tokens"] == b["tokens"]
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    assert [r["train_loss"] for r in straight["log"]] == [r["train_loss"] for r in resumed["log"]]
    assert straight["final_val_loss"] == resumed["final_val_loss"]
    on_disk = [json.loads(line) for line in open(log)]
    assert [r["step"] for r in on_disk] == list(range(1, TINY.steps + 1))
    assert load_run(str(tmp_path / "b"))["n_params"] == straight["n_params"]
    with pytest.raises(RunError, match="no checkpoint"):
        train(replace(TINY, variant=variant, out=str(tmp_path / "none"), resume=True), corpus)


def test_periodic_checkpoints_by_default(corpus, tmp_path, monkeypatch):
    for name, preset in PRESETS.items():  # every preset checkpoints before its last step
        cfg = replace(TrainConfig(), **preset)
        assert (cfg.ckpt_every or cfg.eval_every) < cfg.steps, name
    saved = []
    real = train_module._save_atomic
    monkeypatch.setattr(train_module, "_save_atomic", lambda obj, path: (saved.append(obj["step"]), real(obj, path)))
    train(replace(TINY, out=str(tmp_path / "run")), corpus)
    assert saved == [3, 6]


def test_a_failed_checkpoint_write_keeps_the_previous_one(corpus, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    train(replace(TINY, out=out, stop_at=3), corpus)
    before = _state(out)

    def dies_midway(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        train(replace(TINY, out=out, resume=True), corpus)
    after = _state(out)
    assert after["step"] == before["step"] == 3
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert not [f for f in os.listdir(out) if ".tmp" in f]  # no temporary file left behind


def test_existing_run_needs_resume_or_overwrite(corpus, tmp_path):
    out = str(tmp_path / "run")
    train(replace(TINY, out=out, steps=2), corpus)
    with pytest.raises(RunError, match="already holds a run"):
        train(replace(TINY, out=out, steps=2), corpus)
    again = train(replace(TINY, out=out, steps=2, seed=1, overwrite=True), corpus)
    assert [r["step"] for r in map(json.loads, open(os.path.join(out, "log.jsonl")))] == [1, 2]
    assert _state(out)["config"]["seed"] == 1 and again["config_changes"] == []
    with pytest.raises(ValueError, match="resume and overwrite"):
        replace(TINY, out=out, resume=True, overwrite=True)


def test_resume_refuses_a_changed_configuration(corpus, tmp_path):
    out = str(tmp_path / "run")
    train(replace(TINY, out=out, stop_at=2), corpus)
    changed = replace(TINY, out=out, resume=True, lr=0.01, w=4, steps=8)
    with pytest.raises(RunError) as err:
        train(changed, corpus)
    msg = str(err.value)
    assert "lr: 0.003 -> 0.01" in msg and "w: 8 -> 4" in msg and "steps: 6 -> 8" in msg and "seed" not in msg
    # run-control fields may change; an explicit override allows the rest, and it is recorded
    assert train(replace(TINY, out=out, resume=True, stop_at=3, threads=1), corpus)["steps_done"] == 3
    s = train(replace(changed, allow_config_change=True), corpus)
    assert s["steps_done"] == 8 and any(c.startswith("lr:") for c in s["config_changes"])
    assert load_run(out)["config_changes"] == s["config_changes"]


def test_corrupt_checkpoint_is_one_line_error(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    train(replace(TINY, out=str(out), stop_at=2), corpus)
    (out / "ckpt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=f"cannot read checkpoint {out / 'ckpt.pt'}"):
        train(replace(TINY, out=str(out), resume=True), corpus)
    with pytest.raises(SystemExit) as exc:
        main(["--preset", "tiny", "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "ckpt.pt" in err[-1] and len(err) == 2  # usage line + one error line


def _bad_cases(tmp_path):
    (tmp_path / "bad.json").write_text("{steps: 3")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "keys.json").write_text('{"depth": 3}')
    (tmp_path / "type.json").write_text('{"steps": "many"}')
    (tmp_path / "file").write_text("x")
    return {
        "steps -5": (["--steps", "-5"], "steps must be an int >= 1"),
        "lr inf": (["--lr", "inf"], "lr must be a finite number > 0"),
        "lr nan": (["--lr", "nan"], "lr must be a finite number"),
        "lr 0": (["--lr", "0"], "lr must be"),
        "eval-every 0": (["--eval-every", "0"], "eval_every must be an int >= 1"),
        "eval-batches 0": (["--eval-batches", "0"], "eval_batches must be an int >= 1"),
        "log-every 0": (["--log-every", "0"], "log_every"),
        "min-lr-ratio 2": (["--min-lr-ratio", "2"], "min_lr_ratio"),
        "steps abc": (["--steps", "abc"], "invalid int value"),
        "variant": (["--variant", "sparse"], "invalid choice"),
        "device": (["--device", "tpu"], "device"),
        "head_dim": (["--d-model", "30", "--n-heads", "4"], "divisible"),
        "no simplicial block": (["--variant", "window", "--n-layer", "3"], "no 2-simplicial block"),
        "config missing": (["--config", str(tmp_path / "nope.json")], "nope.json"),
        "config malformed": (["--config", str(tmp_path / "bad.json")], "not valid JSON"),
        "config list": (["--config", str(tmp_path / "list.json")], "JSON object"),
        "config keys": (["--config", str(tmp_path / "keys.json")], "unknown config keys"),
        "config type": (["--config", str(tmp_path / "type.json")], "steps must be an int"),
        "out file": (["--out", str(tmp_path / "file")], "is a file"),
        "out unwritable": (["--out", "/proc/simplex-run"], "not writable"),
        "resume no out": (["--resume"], "resume needs out"),
        "resume overwrite": (["--out", str(tmp_path / "o"), "--resume", "--overwrite"], "contradict"),
    }


def test_bad_values_are_usage_errors_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_module, "Model", lambda *a: pytest.fail("built a model for a bad configuration"))
    for name, (argv, message) in _bad_cases(tmp_path).items():
        with pytest.raises(SystemExit) as exc:
            main(["--preset", "tiny", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2, name
        assert err[-1].startswith("python -m simplex_lib.train: error: ") and message in err[-1], (name, err)
        assert len(err) == 2, (name, err)  # one usage line, one error line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(SystemExit):
        main(["--preset", "tiny", "--out", str(ro / "run")])
    assert "not writable" in capsys.readouterr().err


def test_help_documents_every_flag_with_its_default():
    text = " ".join(build_parser().format_help().split())
    for f in train_module.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert f"{f.metadata['help']} (default: {f.default!r})" in text, flag


def test_without_out_nothing_is_saved(corpus, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(train_module, "CorpusTask", lambda: data.CorpusTask(corpus))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["--preset", "tiny", "--steps", "2", "--no-progress", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "nothing is saved" in captured.err and json.loads(captured.out)["steps_done"] == 2
    assert os.listdir(tmp_path / "cwd") == []


_RUN = """
import sys
from simplex_lib import train as t
from simplex_lib.tasks import corpus as d
c = d.stdlib_corpus(sys.argv[1])
t.CorpusTask = lambda: d.CorpusTask(c)
sys.exit(t.main(sys.argv[2:]))
"""


def _run_cli(small_corpus, tmp_path, *argv, **kw):
    env = {**os.environ, "SIMPLEX_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    return subprocess.Popen([sys.executable, "-c", _RUN, small_corpus, *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_checkpoint_and_exits_cleanly(small_corpus, tmp_path, sig):
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--steps", "100000", "--out", str(out), "--no-progress", "--threads", "1",
            "--log-every", "1"]
    proc = _run_cli(small_corpus, tmp_path, *argv)
    log = out / "log.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < 3):
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr[-2000:]
    assert "Traceback" not in stderr and f"stopped by {sig.name}" in stderr
    ck = _state(out)
    records = [json.loads(line) for line in open(log)]
    assert ck["step"] == records[-1]["step"] >= 3 and "val_loss" in records[-1]
    summary = load_run(str(out))
    assert summary["interrupted"] == sig.name and summary["stopped_early"]
    if sig == signal.SIGTERM:  # the run continues from there
        again = _run_cli(small_corpus, tmp_path, *argv, "--resume", "--stop-at", str(ck["step"] + 2))
        stdout, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr[-2000:]
        assert _state(out)["step"] == ck["step"] + 2


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_emulation(small_corpus, tmp_path, monkeypatch):
    """DDP with gloo: after training, the weights equal a one-process run on both ranks' batches."""
    out = tmp_path / "ddp"
    env = {**os.environ, "SIMPLEX_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": ROOT}
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    code = ("import sys, simplex_lib.tasks.corpus as d; from simplex_lib import train as t; "
            f"c = d.stdlib_corpus({small_corpus!r}); cfg = t.config_from_args(sys.argv[1:]); t.train(cfg, c)")
    script = tmp_path / "run.py"
    script.write_text(code)
    cmd = [torchrun, "--nproc_per_node=2", "--master_port", str(29500 + os.getpid() % 1000), str(script),
           "--preset", "tiny", "--variant", "window", "--steps", "3", "--out", str(out),
           "--no-progress", "--threads", "1"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = load_run(str(out))
    assert summary["world_size"] == 2
    assert summary["tokens"] == 3 * 2 * TINY.batch_size * TINY.block_size

    # emulate: one process, mean of the two ranks' losses per step (what DDP's averaging gives)
    monkeypatch.setenv("SIMPLEX_CACHE", str(tmp_path / "cache"))
    corpus = data.stdlib_corpus(small_corpus)
    cfg = replace(TINY, variant="window", steps=3)
    torch.manual_seed(cfg.seed)
    model = Model(cfg.model_config())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        losses = []
        for rank in range(2):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 1_009 + rank)
            x, y = data.sample_batch(corpus.train, cfg.batch_size, cfg.block_size, g)
            losses.append(model(x, y)[1])
        (sum(losses) / 2).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
    got = _state(out)["model"]
    for k, v in model.state_dict().items():
        assert_close(k, v, got[k], 1e-4)


def test_compare_runs():
    from simplex_lib.train import compare_runs

    def run(evals, n=7):
        return {"n_params": n, "steps_done": evals[-1], "stopped_early": False, "tokens_per_s": 1.0,
                "log": [{"step": s, "tokens": 10 * s, "val_loss": 1.0 / s} for s in evals]
                + [{"step": 99, "tokens": 990, "train_loss": 0.1}]}

    rows = compare_runs({"a": run([1, 2, 3]), "b": run([1, 2])})
    assert [r["common_step"] for r in rows] == [2, 2] and rows[0]["val_at_common"] == 0.5
    assert rows[1]["tokens_at_common"] == 20
    with pytest.raises(ValueError, match="share no evaluation"):
        compare_runs({"a": run([1]), "b": run([2])})


def test_save_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from simplex_lib.train import save_plots

    for name, variant in (("dot", "dot"), ("window", "window")):
        run = {"config": {"variant": variant, "backend": "torch"}, "n_params": 10,
               "provenance": {"device": "CPU", "torch": "x", "date_utc": "today"},
               "log": [{"step": s, "tokens": 8 * s, "train_time_s": 0.1 * s, "train_loss": 3.0 / s,
                        "val_loss": 3.1 / s} for s in (1, 2, 3)]}
        (tmp_path / f"train_{name}.json").write_text(json.dumps(run))
    path = save_plots(str(tmp_path))
    assert os.path.getsize(path) > 1000
    with pytest.raises(ValueError, match="no files"):
        save_plots(str(tmp_path / "missing"))


def test_full_size_chapter_cells_build(corpus):
    """The configurations of the cells that run only at full size (or on a GPU), at tiny sizes."""
    from simplex_lib.model import parameter_counts
    from simplex_lib.tasks.match3 import match3_config, train_match3

    # chapter 12's live cell: the gpu preset, shortened
    live_cfg = replace(TrainConfig(), **{**PRESETS["gpu"], "steps": 300, "eval_every": 100}, progress=False)
    assert (live_cfg.steps, live_cfg.eval_every, live_cfg.ckpt_every) == (300, 100, 500)
    counts = parameter_counts({v: replace(live_cfg, variant=v).model_config() for v in ("dot", "window", "topk")})
    assert set(counts.values()) == {14_365_440}
    tiny = replace(live_cfg, **{**PRESETS["tiny"], "steps": 2, "eval_every": 1, "threads": 1})
    assert train(replace(tiny, variant="topk"), corpus)["steps_done"] == 2
    # chapter 5's live cell at full size: these keywords, on the default device
    full = dict(n=8, M=61, steps=3000, batch=256)
    assert match3_config("simplicial", **{k: v for k, v in full.items() if k not in ("n", "M")}).device == "auto"
    r = train_match3("simplicial", seed=0, progress=False, **{**full, "steps": 2, "batch": 4, "eval_size": 4})
    assert (r["n"], r["M"], r["steps"]) == (8, 61, 2)


@pytest.mark.gpu
def test_full_size_chapter_cells_on_a_gpu(corpus):
    """Chapter 12's live cell and chapter 5's full-size live run, shortened, on the GPU (bf16 autocast)."""
    from simplex_lib.tasks.match3 import train_match3

    live_cfg = replace(TrainConfig(), **{**PRESETS["gpu"], "steps": 4, "eval_every": 2, "eval_batches": 2},
                       progress=False)
    for v in ("dot", "window", "topk"):
        s = train(replace(live_cfg, variant=v), corpus)
        assert s["steps_done"] == 4 and s["n_params"] == 14_365_440
        assert s["final_val_loss"] < 6 and not s["provenance"]["device"].startswith("CPU")
    r = train_match3("simplicial", n=8, M=61, steps=20, batch=256, seed=0, progress=False)
    assert 0.0 <= r["accuracy"] <= 1.0
    # a plain "cuda" (no index), as `python -m simplex_lib.tasks.match3 --device cuda` passes it
    r = train_match3("dot", n=4, M=61, steps=4, batch=64, seed=0, device="cuda", progress=False)
    assert 0.0 <= r["accuracy"] <= 1.0


def test_topk_variant_trains_with_the_triton_kernels(corpus, capsys, monkeypatch):
    """``--variant topk --backend triton``: the top-k blocks run the Triton kernels (under the
    interpreter without a GPU), forward and backward, for a few steps of the tiny preset."""
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no CUDA and TRITON_INTERPRET is not 1")
    import simplex_lib.ops.topk.triton as tk

    calls = []
    orig = tk.topk_two_simplicial_attention_triton
    monkeypatch.setattr(tk, "topk_two_simplicial_attention_triton", lambda *a, **k: calls.append(1) or orig(*a, **k))
    monkeypatch.setattr(train_module, "CorpusTask", lambda: data.CorpusTask(corpus))
    argv = ["--preset", "tiny", "--variant", "topk", "--backend", "triton", "--steps", "2", "--block-size", "16",
            "--batch-size", "2", "--eval-every", "2", "--eval-batches", "1", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps_done"] == 2 and torch.isfinite(torch.tensor(summary["final_val_loss"]))
    assert calls  # the top-k blocks ran the kernels, not another backend


def test_train_together_is_train_for_each_model(tmp_path):
    """Models trained in one vmapped step end where train() takes each of them, up to rounding."""
    from simplex_lib.tasks.match3 import Match3Task, match3_config
    from simplex_lib.train import train_together

    task = Match3Task(5, 11)
    for kind in ("dot", "simplicial"):
        base = match3_config(kind, width=16, steps=12, batch=8, eval_size=16, device="cpu")
        cfgs = [replace(base, seed=s, lr=lr) for s, lr in ((0, 1e-2), (1, 3e-3), (0, 3e-2))]
        sums, models = train_together(cfgs, task)
        for i, (cfg, s, model) in enumerate(zip(cfgs, sums, models)):
            ref = train(replace(cfg, out=str(tmp_path / f"{kind}{i}")), task)
            for key in ("final_val_loss", "final_val_accuracy", "final_val_majority"):
                assert s[key] == pytest.approx(ref[key], abs=1e-5), (kind, i, key)
            assert s["log"][-1]["train_loss"] == pytest.approx(ref["log"][-1]["train_loss"], abs=1e-5)
            assert s["n_params"] == ref["n_params"] and s["trained_together"] == 3
            weights = torch.load(tmp_path / f"{kind}{i}" / "ckpt.pt", map_location="cpu")["model"]
            for name, value in model.state_dict().items():
                torch.testing.assert_close(value, weights[name], atol=1e-5, rtol=1e-4)


def test_train_together_errors():
    from simplex_lib.tasks.match3 import Match3Task
    from simplex_lib.train import train_together

    base = TrainConfig(variant="dot", n_layer=1, d_model=8, n_heads=2, steps=1, warmup=0, eval_every=1,
                       eval_batches=1, batch_size=2, progress=False)
    task = Match3Task(3, 5)
    with pytest.raises(ValueError, match="at least one"):
        train_together([], task)
    with pytest.raises(ValueError, match="d_model differs"):
        train_together([base, replace(base, d_model=16)], task)
    with pytest.raises(ValueError, match="does not support out"):
        train_together([replace(base, out="/tmp/x")], task)
    with pytest.raises(ValueError, match="use train"):
        train_together([replace(TINY, variant="dot")])   # the byte corpus: a language model
    with pytest.raises(ValueError, match="variant 'window'"):
        train_together([replace(base, variant="window")], task)


def test_data_seed_moves_the_batches_not_the_weights(tmp_path):
    base = replace(TINY, steps=3, warmup=0, eval_every=3, log_every=3)
    a = train(base)
    b = train(replace(base, data_seed=base.seed))         # the default, spelt out
    c = train(replace(base, data_seed=base.seed + 1))     # other batches, same initial weights
    assert a["log"] == [{**r, "train_time_s": a["log"][i]["train_time_s"],
                         "tokens_per_s": a["log"][i]["tokens_per_s"]} for i, r in enumerate(b["log"])]
    assert c["final_val_loss"] != a["final_val_loss"]
    cfg = replace(base, data_seed=5)
    assert cfg.batch_seed == 5 and base.batch_seed == base.seed
    with pytest.raises(ValueError, match="data_seed must be an int >= -1"):
        replace(base, data_seed=-2)
    # a checkpoint saved before data_seed existed resumes as data_seed = -1
    from dataclasses import asdict

    from simplex_lib.train import config_changes
    old = {k: v for k, v in asdict(base).items() if k != "data_seed"}
    assert config_changes(old, base) == [] and config_changes(old, cfg) == ["data_seed: -1 -> 5"]
