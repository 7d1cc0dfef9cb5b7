"""Match2/Match3 labels, the Theorem 5.1 construction, the task, training and the sweep CLI."""

import math
import os
import pytest
import torch

from simplex_lib.model import Model, count_parameters
from simplex_lib.tasks.match3 import (
    Match3Task,
    adversarial_no_match,
    c_lower_bound,
    default_c,
    exact_threshold,
    match2_labels,
    match3_batch,
    match3_config,
    match3_labels,
    match3_sweep,
    match3_test_set,
    pairwise_witness_labels,
    summarize_sweep,
    theorem_5_1_attention,
    theorem_5_1_details,
    theorem_5_1_embeddings,
    theorem_5_1_logits,
    load_recorded,
    train_match3,
)
from simplex_lib.stats import paired_interval, t_quantile
from simplex_lib.tasks.match3 import main as match3_main


def loop_match3(xs, M):
    """Plain Python triple loop: the definition, independent of any tensor code."""
    n = len(xs)
    return [int(any((a + xs[j1] + xs[j2]) % M == 0 for j1 in range(n) for j2 in range(n))) for a in xs]


def loop_match2(xs, M):
    return [int(any((a + b) % M == 0 for b in xs)) for a in xs]


def residue_match3(xs, M):
    """A second independent oracle: the set of pair sums, then a membership test."""
    sums = {(a + b) % M for a in xs for b in xs}
    return [int((-a) % M in sums) for a in xs]


@pytest.mark.parametrize("n,M", [(1, 2), (1, 3), (2, 7), (5, 11), (9, 97), (12, 64)])
def test_labels_vs_loops(gen, n, M):
    for _ in range(5):
        x = torch.randint(0, M, (n,), generator=gen)
        xs = x.tolist()
        assert match3_labels(x, M).tolist() == loop_match3(xs, M) == residue_match3(xs, M)
        assert match2_labels(x, M).tolist() == loop_match2(xs, M)
    xb = torch.randint(0, M, (4, n), generator=gen)
    assert match3_labels(xb, M).tolist() == [loop_match3(r, M) for r in xb.tolist()]


def test_label_examples():
    # x_i may pair with itself: 2 + 2 + 3 = 7.
    assert match3_labels(torch.tensor([2, 3]), 7).tolist() == [1, 1]
    # Match2 with j = i: 0 + 0 = 0.
    assert match2_labels(torch.tensor([0, 1]), 5).tolist() == [1, 0]


def test_embeddings_give_cosine_logits(gen):
    M, c = 13, 2.5
    x = torch.randint(0, M, (6,), generator=gen)
    A, ab = theorem_5_1_logits(x, M, c)
    s = x[:, None, None] + x[None, :, None] + x[None, None, :]
    torch.testing.assert_close(A, c * torch.cos(2 * math.pi * s.double() / M))
    torch.testing.assert_close(ab, torch.full((6,), c, dtype=torch.float64))
    q, k1, k2, kb = theorem_5_1_embeddings(x, M, c)
    assert q.shape == k1.shape == k2.shape == (6, 7) and kb.shape == (7,)
    assert (k1[:, 6] == 0).all() and (k2[:, 6] == 0).all()


def test_eq21_identity(gen):
    t1, t2, t3 = (torch.rand(50, generator=gen, dtype=torch.float64) * 7 for _ in range(3))
    z = torch.zeros_like(t1)
    M1 = torch.stack([torch.stack([t1.cos(), t1.sin(), z], -1), torch.stack([t2.sin(), t2.cos(), z], -1),
                      torch.stack([z, z, t3.cos()], -1)], -2)
    M2n = torch.stack([torch.stack([-t1.sin(), t1.cos(), z], -1), torch.stack([-t2.sin(), -t2.cos(), z], -1),
                       torch.stack([z, z, -t3.sin()], -1)], -2)
    torch.testing.assert_close(torch.linalg.det(M1) + torch.linalg.det(M2n), torch.cos(t1 + t2 + t3))


@pytest.mark.parametrize("M", [2, 3, 5, 7, 12, 31, 64, 97])
def test_construction_exact_on_random_inputs(gen, M):
    total = 0
    for n in (1, 2, 3, 5, 8, 13):
        x, y = match3_batch(16, n, M, gen)
        assert torch.equal(theorem_5_1_attention(x, M), y), (n, M)
        assert torch.equal(theorem_5_1_attention(x, M, c=1.01 * c_lower_bound(max(n, 2), M)), y)
        total += y.numel()
    assert total >= 400


def test_construction_uniform_inputs_and_margin(gen):
    for n, M in [(4, 97), (16, 97), (7, 50)]:
        x = torch.randint(0, M, (8, n), generator=gen)
        d = theorem_5_1_details(x, M)
        y = match3_labels(x, M)
        assert torch.equal(d["prediction"], y)
        assert (d["z"][y == 1] >= 0.5 - 1e-12).all()
        assert (d["z"][y == 0] <= 0.25 + 1e-12).all()  # the margin of default_c
        torch.testing.assert_close(d["weights"].flatten(-2).sum(-1) + d["blank_weight"],
                                   torch.ones_like(d["z"]))


@pytest.mark.parametrize("n,M", [(4, 7), (8, 97), (16, 50)])
def test_bound_is_tight(n, M):
    x = adversarial_no_match(n, M)
    assert match3_labels(x, M).sum() == 0
    cs = c_lower_bound(n, M)
    assert theorem_5_1_attention(x, M, c=0.99 * cs).tolist() == [1] * n  # wrong
    assert theorem_5_1_attention(x, M, c=1.01 * cs).tolist() == [0] * n  # right
    assert default_c(n, M) > cs


def test_small_c_fails_on_random_inputs(gen):
    M, n = 97, 16
    x, y = match3_batch(32, n, M, gen)
    wrong = (theorem_5_1_attention(x, M, c=10.0) != y).sum()
    assert wrong > 0


def test_batch_determinism_and_balance():
    a = match3_batch(64, 8, 64, torch.Generator().manual_seed(3))
    b = match3_batch(64, 8, 64, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    rate = float(a[1].float().mean())
    assert 0.3 < rate < 0.7, rate
    assert torch.equal(a[1], match3_labels(a[0], 64))


def test_training_deterministic_tiny():
    kw = dict(n=4, M=11, width=8, heads=2, steps=4, batch=8, eval_size=16, progress=False)
    for kind in ("dot", "simplicial"):
        r1, r2 = train_match3(kind, seed=5, **kw), train_match3(kind, seed=5, **kw)
        assert r1["accuracy"] == r2["accuracy"] and r1["final_loss"] == r2["final_loss"]
        assert r1["model"] == r2["model"] and r1["rule"]["acc_neg"] in (None, 1.0)
        assert 0.0 <= r1["accuracy"] <= 1.0 and r1["baseline"] >= 0.5
    task = Match3Task(4, 11)
    dot, simp = (Model(match3_config(k, width=8, heads=2).model_config(task)) for k in ("dot", "simplicial"))
    assert count_parameters(dot) == count_parameters(simp)  # K2, V2 paid for by grouped key/value heads
    assert not simp.config.causal and simp.config.head == "tokens" and simp.pos_emb is None


def test_task_batches(gen):
    x, y = Match3Task(5, 7).batch("train", 6, 0, gen)
    assert x.shape == y.shape == (6, 5) and torch.equal(y, match3_labels(x, 7))
    x, y = Match3Task(5, 7, head="classify").batch("val", 20, 0, gen)
    assert y.shape == (20,)
    for b in range(20):
        s = [int(v) for v in x[b]]
        assert int(y[b]) == int(any((s[-1] + s[i] + s[j]) % 7 == 0 for i in range(5) for j in range(5)))
    with pytest.raises(ValueError, match="head"):
        Match3Task(5, 7, head="pairs")
    with pytest.raises(ValueError, match="M"):
        Match3Task(5, 1)


def test_sweep_and_summary():
    rs = match3_sweep([(3, 5)], seeds=(0, 1), lrs=(1e-2, 3e-2), variants=(False, True), steps=2, batch=4,
                      eval_size=4, width=8, progress=False)
    assert len(rs) == 16
    s = summarize_sweep(rs)
    assert [(r["distinct"], r["seeds"]) for r in s] == [(False, 2), (True, 2)]
    for row in s:
        assert row["dot_lr"] in (1e-2, 3e-2) and row["dot_params"] == row["simplicial_params"]
        d = row["simplicial_minus_dot"]
        assert d["lo"] <= d["mean"] <= d["hi"] and d["pairs"] == 2
    # the test set is shared by every model of a seed: the rule scores the same on it
    same = {(r["distinct"], r["seed"]): r["rule"]["accuracy"] for r in rs}
    assert all(same[(r["distinct"], r["seed"])] == r["rule"]["accuracy"] for r in rs)


def test_learning_rate_chosen_on_validation_not_test():
    base = {"n": 4, "M": 7, "params": 10, "model": {"acc_triple": None, "count_triple": 0, "tokens": 4},
            "rule": {"accuracy": 0.5}, "baseline": 0.5}
    rs = [dict(base, kind=k, lr=lr, seed=s, val_accuracy=0.9 if lr == 0.1 else 0.1,
               accuracy=0.2 if lr == 0.1 else 1.0) for k in ("dot", "simplicial") for lr in (0.1, 0.2)
          for s in (0, 1, 2)]
    row = summarize_sweep(rs)[0]
    assert row["dot_lr"] == row["simplicial_lr"] == 0.1 and abs(row["dot_acc"] - 0.2) < 1e-12


def test_pairwise_witness_implies_match_and_distinct_variant(gen):
    for n, M in [(2, 5), (6, 31), (9, 97), (12, 12)]:
        x = torch.randint(0, M, (32, n), generator=gen)
        w, y, yd = pairwise_witness_labels(x, M), match3_labels(x, M), match3_labels(x, M, distinct=True)
        assert (w <= y).all() and (yd <= y).all()
        for row, wr, ydr in zip(x.tolist()[:8], w.tolist()[:8], yd.tolist()[:8]):
            assert wr == [int(any((a + 2 * b) % M == 0 or (2 * a + b) % M == 0 for b in row)) for a in row]
            assert ydr == [int(any((row[i] + row[j] + row[k]) % M == 0 for j in range(n) for k in range(n)
                                   if len({i, j, k}) == 3)) for i in range(n)]


def test_distinct_batches_balanced_and_default_unchanged():
    x, y = match3_batch(64, 8, 61, torch.Generator().manual_seed(1), distinct=True)
    assert torch.equal(y, match3_labels(x, 61, distinct=True)) and 0.3 < float(y.float().mean()) < 0.7
    a = match3_batch(8, 6, 31, torch.Generator().manual_seed(2))
    b = match3_batch(8, 6, 31, torch.Generator().manual_seed(2), distinct=False)
    assert torch.equal(a[0], b[0])
    t1, _ = match3_test_set(6, 31, seed=3, size=20, batch=8)
    t2, _ = match3_test_set(6, 31, seed=3, size=20, batch=8)
    assert torch.equal(t1, t2) and t1.shape == (24, 6)


@pytest.mark.parametrize("n,M", [(2, 7), (3, 5), (3, 9), (2, 12)])
def test_exact_threshold(n, M):
    ratio = exact_threshold(n, M) / c_lower_bound(n, M)
    if M % 3:
        assert abs(ratio - 1) < 1e-9  # tight: the constant input 3v = 1 attains c*
    else:
        assert ratio < 0.99  # 3 | M: the pair (i, i) cannot be a nearest miss


def test_t_quantile_and_interval():
    assert abs(t_quantile(0.975, 4) - 2.776445) < 1e-4
    assert abs(t_quantile(0.975, 1) - 12.7062) < 1e-2
    d = paired_interval([1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5)
    assert abs(d["mean"] - 3) < 1e-12 and abs(d["hi"] - 3 - 2.776445 * math.sqrt(2.5 / 5)) < 1e-3


def test_errors():
    with pytest.raises(ValueError, match="M"):
        match3_labels(torch.tensor([1, 2]), 1)
    with pytest.raises(ValueError, match="x"):
        match3_labels(torch.tensor([1.0, 2.0]), 5)
    with pytest.raises(ValueError, match="x"):
        match3_labels(torch.tensor([1, 7]), 5)
    with pytest.raises(ValueError, match="x"):
        match2_labels(torch.zeros(2, 2, 2, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="M"):
        theorem_5_1_attention(torch.tensor([1]), True)
    with pytest.raises(ValueError, match="M"):
        adversarial_no_match(4, 9)
    with pytest.raises(ValueError, match="kind"):
        match3_config("cubic")
    with pytest.raises(ValueError, match="d_model"):
        train_match3("dot", 4, 5, width=10, heads=3, steps=1)
    with pytest.raises(ValueError, match="batch"):
        match3_batch(0, 3, 5, torch.Generator())


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        match3_main(list(args))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [(["--steps", "0"], "--steps"), (["--lr", "inf"], "--lr"),
                                           (["--lengths", "4", "-1"], "--lengths"),
                                           (["--width", "10", "--heads", "3"], "divisible")])
def test_sweep_cli_rejects_bad_flags(tmp_path, capsys, args, message):
    code, err = _cli(capsys, "--out", str(tmp_path / "r.json"), *args)
    assert code == 2 and message in err and err.strip().splitlines()[-1].count("error:") == 1
    assert not (tmp_path / "r.json").exists()


def test_sweep_cli_checks_out_before_work(tmp_path, capsys):
    code, err = _cli(capsys, "--out", str(tmp_path / "missing" / "r.json"), "--steps", "1")
    assert code == 2 and "not writable" in err
    code, err = _cli(capsys, "--out", str(tmp_path), "--steps", "1")
    assert code == 2 and "folder" in err


def test_sweep_cli_tiny_run(tmp_path):
    out = tmp_path / "r.json"
    assert match3_main(["--out", str(out), "--workers", "1", "--steps", "2", "--batch", "4", "--width", "8",
                        "--eval-size", "4", "--test-size", "4", "--seeds", "2", "--lrs", "0.01",
                        "--variants", "any", "--lengths", "3", "--moduli", "5", "--moduli-n", "3",
                        "--lengths-M", "5", "--device", "cpu"]) == 0
    rec = load_recorded(str(out))
    assert sorted(r["kind"] for r in rec["records"]) == ["dot", "dot", "simplicial", "simplicial"]
    assert {"device", "date_utc", "torch", "git_commit"} <= set(rec["provenance"])
    assert rec["config"]["command"].startswith("python -m simplex_lib.tasks.match3 --out")
    assert not os.path.exists(f"{out}.tmp")
    assert summarize_sweep(rec["records"])[0]["seeds"] == 2


TINY_SWEEP = ["--workers", "1", "--steps", "2", "--batch", "4", "--width", "8", "--eval-size", "4",
              "--test-size", "4", "--seeds", "2", "--lrs", "0.01", "--variants", "any", "--lengths", "3",
              "--moduli", "5", "--moduli-n", "3", "--lengths-M", "5", "--device", "cpu"]


def test_sweep_in_parts_with_time_limit_and_resume(tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert match3_main(["--out", out, *TINY_SWEEP, "--time-limit", "1e-9", "--resume"]) == 0
    part = load_recorded(out)
    assert part["records"] == [] and part["complete"] is False
    assert "--resume continues" in capsys.readouterr().out
    code, err = _cli(capsys, "--out", out, *TINY_SWEEP)  # an existing record needs --resume
    assert code == 2 and "--resume" in err
    assert match3_main(["--out", out, *TINY_SWEEP, "--resume"]) == 0
    whole = load_recorded(out)
    assert whole["complete"] and len(whole["records"]) == 4 and len(whole["sessions"]) == 2
    assert {r["device"] for r in whole["records"]} == {"cpu"} and whole["config"]["devices"] == ["cpu"]
    assert match3_main(["--out", out, *TINY_SWEEP, "--resume", "--workers", "2"]) == 0  # nothing left
    again = load_recorded(out)
    assert again["records"] == whole["records"] and len(again["sessions"]) == 3
    assert "4 of 4 runs already recorded; 0 to run" in capsys.readouterr().out
    code, err = _cli(capsys, "--out", out, *TINY_SWEEP, "--resume", "--steps", "3")
    assert code == 2 and "other settings (train)" in err


def test_figures_and_table():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simplex_lib.tasks.match3 import plot_circle, plot_head_states, plot_paired, sweep_table

    fig, ax = plot_circle(torch.tensor([2, 9, 4, 11, 7]), 13, triple=(0, 2, 4))
    assert "1·2π" in ax.get_title()
    fig2 = plot_head_states([("random", torch.tensor([1, 2, 4, 3]), default_c(4, 7)),
                             ("adversarial", adversarial_no_match(4, 7), 0.5 * c_lower_bound(4, 7))], 7, 0)
    assert len(fig2.axes) == 8 and "right" in fig2.axes[1].get_title() and "WRONG" in fig2.axes[3].get_title()
    rs = match3_sweep([(3, 5), (4, 7)], seeds=(0, 1), steps=2, batch=4, eval_size=4, width=8, progress=False)
    rows = summarize_sweep(rs)
    fig3, _ = plot_paired(rows)
    table = sweep_table(rows)
    assert table.count("shortcut rule") == 2 and "2-simplicial − dot" in table
    for f in (fig, fig2, fig3):
        plt.close(f)


def test_sweep_spreads_runs_over_every_gpu(monkeypatch):
    from simplex_lib.tasks.match3 import sweep_devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert sweep_devices("cuda") == ["cuda:0", "cuda:1", "cuda:2"]
    assert sweep_devices("cuda:1") == ["cuda:1"] and sweep_devices("cpu") == ["cpu"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert sweep_devices("cuda") == ["cuda:0"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert sweep_devices("cuda") == ["cuda"]


def test_group_training_gives_the_single_runs_records():
    """train_match3_group: every record is train_match3's for its (lr, seed), up to rounding."""
    from simplex_lib.tasks.match3 import train_match3_group

    kw = dict(width=8, steps=6, batch=8, eval_size=16, test_size=32, device="cpu")
    group = train_match3_group("simplicial", 4, 7, lrs=(1e-2, 3e-2), seeds=(0, 1), **kw)
    assert [(r["lr"], r["seed"]) for r in group] == [(1e-2, 0), (1e-2, 1), (3e-2, 0), (3e-2, 1)]
    for r in group:
        one = train_match3("simplicial", 4, 7, lr=r["lr"], seed=r["seed"], **kw)
        assert r["trained_together"] == 4 and one["trained_together"] == 1
        assert r["final_loss"] == pytest.approx(one["final_loss"], abs=1e-5)
        assert r["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-9)
        assert r["model"] == one["model"] and r["rule"] == one["rule"]


@pytest.mark.parametrize("distinct", [False, True])
def test_batch_labels_by_pair_sums_equal_brute_force(distinct):
    from simplex_lib.tasks.match3 import _labels_from_pair_sums

    g = torch.Generator().manual_seed(0)
    for M in (2, 3, 5, 7, 13, 97):
        for n in (1, 2, 3, 5, 8, 16):
            x = torch.randint(0, M, (200, n), generator=g)
            assert torch.equal(_labels_from_pair_sums(x, M, distinct), match3_labels(x, M, distinct)), (M, n)
