"""Tests for simplex_lib.tasks.hops: the pointer-chasing data, its task object and the two-hop head."""

import pytest
import torch

from simplex_lib.model import Model, count_parameters
from simplex_lib.tasks.hops import HopTask, hop_batch, pointer_doubling, two_hop_construction
from simplex_lib.train import TrainConfig, train


@pytest.mark.parametrize("M,hops", [(2, 1), (5, 2), (7, 3)])
def test_hop_batch_brute_force(gen, M, hops):
    tokens, y = hop_batch(16, M, hops, gen)
    assert tokens.shape == (16, M + 1) and tokens.max() < M * M + M
    for b in range(16):
        f = {int(t) // M: int(t) % M for t in tokens[b, :-1]}
        assert sorted(f) == list(range(M)) and sorted(f.values()) == list(range(M))  # a permutation
        x = int(tokens[b, -1]) - M * M
        for _ in range(hops):
            x = f[x]
        assert x == int(y[b])
    with pytest.raises(ValueError, match="hops"):
        hop_batch(2, 4, 0, gen)
    with pytest.raises(ValueError, match="M"):
        HopTask(1, 2)


def test_hop_task_trains_with_parity():
    task = HopTask(M=4, hops=2)
    cfgs = {k: TrainConfig(variant=k, n_layer=2, simplicial_every=1, d_model=16, n_heads=2, batch_size=4,
                           steps=3, warmup=0, eval_every=3, eval_batches=2, progress=False, threads=1)
            for k in ("dot", "simplicial")}
    models = {k: Model(c.model_config(task)) for k, c in cfgs.items()}
    assert count_parameters(models["dot"]) == count_parameters(models["simplicial"])
    assert models["dot"].pos_emb is None and models["dot"].config.head == "classify"
    s = train(cfgs["simplicial"], task)
    assert 0 <= s["final_val_accuracy"] <= 1 and 0 < s["final_val_majority"] <= 1
    assert s["task"] == {"task": "hops", "M": 4, "hops": 2} and s["tokens"] == 3 * 4 * 5
    again = train(cfgs["simplicial"], task)
    assert again["final_val_loss"] == s["final_val_loss"]  # seeded: the same run twice


@pytest.mark.parametrize("M", [3, 6])
def test_two_hop_construction(gen, M):
    tokens, y = hop_batch(64, M, 2, gen)
    out, logits = two_hop_construction(tokens, M, c=20.0)
    assert torch.equal(out.argmax(-1), y)
    # exactly one pair at 2c (the chained edges), 2(M - 1) pairs at c, the rest at 0
    flat = logits.flatten(1)
    assert torch.all((flat == 40).sum(-1) == 1) and torch.all((flat == 20).sum(-1) == 2 * (M - 1))
    assert torch.all((flat == 0).sum(-1) == (M + 1) ** 2 - 1 - 2 * (M - 1))
    with pytest.raises(ValueError, match="positions"):
        two_hop_construction(tokens[:, 1:], M)


@pytest.mark.parametrize("M,layers", [(5, 1), (6, 2), (7, 3), (9, 4)])
def test_pointer_doubling_follows_two_to_the_layers_minus_one_hops(M, layers):
    tokens, target = hop_batch(64, M, 2 ** (layers - 1), torch.Generator().manual_seed(M))
    out = pointer_doubling(tokens, M, layers)
    assert torch.equal(out.argmax(-1), target)
    assert float(out.max(-1).values.min()) > 0.99


def test_pointer_doubling_rejects_bad_shapes():
    tokens, _ = hop_batch(2, 4, 1, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError):
        pointer_doubling(tokens, 5, 2)
    with pytest.raises(ValueError):
        pointer_doubling(tokens, 4, 0)
