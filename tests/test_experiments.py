"""simplex_lib.experiments (seed statistics of training runs) and the runner benchmarks.seeds."""

import json
import math

import pytest

from benchmarks import seeds
from simplex_lib import experiments as ex


def _run(variant, seed, vals, tokens_per_step=100, seconds_per_step=1.0, warm=25.0):
    log = []
    for i, v in enumerate(vals, start=1):
        log.append({"step": 10 * i, "tokens": 10 * i * tokens_per_step, "train_loss": v - 0.1,
                    "train_time_s": warm + 10 * (i - 1) * seconds_per_step, "val_loss": v})
    return {"config": {"variant": variant, "seed": seed}, "log": log, "tokens": log[-1]["tokens"],
            "corpus": {"train_bytes": 2000}}


@pytest.fixture
def runs():
    ln2 = math.log(2)
    return {"dot": {s: _run("dot", s, [2 * ln2, (1.0 + 0.1 * s) * ln2]) for s in range(3)},
            "window": {s: _run("window", s, [2 * ln2, (0.9 + 0.1 * s + 0.01 * s * s) * ln2],
                               seconds_per_step=2.0) for s in range(3)}}


def test_units_and_throughput(runs):
    r = runs["dot"][0]
    assert ex.bits_per_byte(math.log(2)) == pytest.approx(1.0)
    assert ex.steady_throughput(r) == pytest.approx(100.0)       # warm-up excluded
    assert r["tokens"] / r["log"][-1]["train_time_s"] < 100.0     # the all-in average is lower
    assert ex.epochs(r) == pytest.approx(1.0)
    assert ex.final_gap(r) == pytest.approx(0.1)
    assert ex.warmup_seconds(r) == (10, 25.0, 10.0)


def test_seed_table_pairs_by_seed(runs):
    rows = {r["variant"]: r for r in ex.seed_table(runs)}
    assert rows["dot"]["n"] == 3 and rows["dot"]["step"] == 20
    assert rows["dot"]["mean"] == pytest.approx(1.1) and rows["dot"]["sd"] == pytest.approx(0.1)
    diffs = [-0.1, -0.09, -0.06]                                 # window - dot, seed by seed
    w = rows["window"]
    assert w["diff_mean"] == pytest.approx(sum(diffs) / 3)
    sd = (sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2) ** 0.5
    assert w["diff_sd"] == pytest.approx(sd)
    assert w["diff_ci"] == pytest.approx(4.3027 * sd / 3 ** 0.5, rel=1e-4)  # t(0.975, df=2)
    assert w["bytes_per_s"] == pytest.approx(50.0)
    steps, m, s = ex.seed_curves(runs, "dot")["window"]
    assert steps == [10, 20] and m[0] == pytest.approx(0.0) and m[1] == pytest.approx(w["diff_mean"])


def test_load_seed_runs(tmp_path, runs):
    for v, by_seed in runs.items():
        for s, r in by_seed.items():
            (tmp_path / f"{v}_s{s}.json").write_text(json.dumps(r))
    (tmp_path / "manifest.json").write_text(json.dumps({"runs": []}))
    loaded = ex.load_seed_runs(str(tmp_path))
    assert {v: list(s) for v, s in loaded.items()} == {"dot": [0, 1, 2], "window": [0, 1, 2]}


def test_runner_jobs_and_resume_state(tmp_path):
    args = seeds.build_parser().parse_args(
        ["--preset", "gpu", "--variants", "dot,window", "--seeds", "0,1", "--window-backend", "triton",
         "--topk-backend", "reference",
         "--gpus", "0,1", "--out", str(tmp_path)])
    jobs = seeds.build_jobs(args)
    assert [(j["variant"], j["seed"]) for j in jobs] == [("dot", 0), ("dot", 1), ("window", 0), ("window", 1)]
    assert "--backend" not in jobs[0]["cmd"] and jobs[2]["cmd"][-2:] != ["--device", "cpu"]
    assert jobs[2]["cmd"][jobs[2]["cmd"].index("--backend") + 1] == "triton"
    assert jobs[0]["cmd"][jobs[0]["cmd"].index("--eval-every") + 1] == "100"
    # two seeds per run: the weights' and the batches' (a stream apart by default, or given)
    assert [(j["seed"], j["data_seed"]) for j in jobs[:2]] == [(0, 100), (1, 101)]
    assert jobs[1]["cmd"][jobs[1]["cmd"].index("--data-seed") + 1] == "101"
    given = seeds.build_parser().parse_args(["--seeds", "0,1", "--data-seeds", "7,9", "--out", str(tmp_path)])
    assert [j["data_seed"] for j in seeds.build_jobs(given)][:2] == [7, 9]
    short = seeds.build_parser().parse_args(["--seeds", "0,1", "--data-seeds", "7", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="one seed per --seeds entry"):
        seeds.build_jobs(short)
    folder = tmp_path / "dot_s0"
    assert seeds._run_state(folder, 1500) == "new"
    folder.mkdir()
    (folder / "log.jsonl").write_text("")
    assert seeds._run_state(folder, 1500) == "restart"
    (folder / "ckpt.pt").write_bytes(b"")
    assert seeds._run_state(folder, 1500) == "resume"
    (folder / "summary.json").write_text(json.dumps({"steps_done": 1500, "stopped_early": False}))
    assert seeds._run_state(folder, 1500) == "done"


def test_eval_record_finds_an_evaluation_or_says_there_is_none():
    run = {"log": [{"step": 25, "train_loss": 3.0},
                   {"step": 50, "train_loss": 2.5, "val_loss": 2.4, "tokens": 100},
                   {"step": 100, "train_loss": 2.0, "val_loss": 2.2, "tokens": 200}]}
    assert ex.eval_record(run)["step"] == 100 and ex.eval_record(run, 50)["val_loss"] == 2.4
    assert ex.final_gap(run) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no evaluation at step 25"):
        ex.eval_record(run, 25)
    with pytest.raises(ValueError, match="no evaluation"):
        ex.eval_record({"log": []})
