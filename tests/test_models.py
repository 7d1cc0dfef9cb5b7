"""Tests for simplex_lib.models: layout, parameter parity, causality, and the forward pass."""

import pytest
import torch
import torch.nn.functional as F

from simplex_lib import models
from simplex_lib.layers import DotProductAttention, TopKTwoSimplicialAttention, TwoSimplicialAttention
from simplex_lib.models import GPT, GPTConfig, count_parameters, parameter_counts, variant_configs

SMALL = dict(block_size=12, n_layer=4, d_model=16, n_heads=2, w1=4, w2=3, topk=4)


def test_simplicial_layer_ids():
    assert models.simplicial_layer_ids(8) == (3, 7)
    assert models.simplicial_layer_ids(12, 4) == (3, 7, 11)  # 3:1 interleaving
    assert models.simplicial_layer_ids(3) == ()
    assert models.simplicial_layer_ids(2, 1) == (0, 1)
    with pytest.raises(ValueError, match="every"):
        models.simplicial_layer_ids(4, 0)


@pytest.mark.parametrize("variant, kind", [("dot", DotProductAttention), ("window", TwoSimplicialAttention),
                                           ("topk", TopKTwoSimplicialAttention)])
def test_layout_is_three_to_one(variant, kind):
    m = GPT(GPTConfig(variant=variant, **{**SMALL, "n_layer": 8}))
    kinds = [type(b.attn) for b in m.blocks]
    for l, k in enumerate(kinds):
        if variant != "dot" and l in (3, 7):
            assert k is kind
        else:
            assert k is DotProductAttention
    if variant == "window":
        assert (m.blocks[3].attn.w1, m.blocks[3].attn.w2) == (4, 3)


@pytest.mark.parametrize("n_layer,d_model,n_heads", [(4, 16, 2), (8, 48, 6), (12, 64, 4)])
def test_equal_parameter_counts(n_layer, d_model, n_heads):
    base = GPTConfig(n_layer=n_layer, d_model=d_model, n_heads=n_heads, block_size=32)
    counts = parameter_counts(variant_configs(base))
    assert len(set(counts.values())) == 1, counts
    # independent count: embeddings (tied head) + per block 2 LayerNorms, attention, MLP + final norm
    d, L = d_model, n_layer
    want = 256 * d + 32 * d + L * (2 * 2 * d + 4 * d * d + 2 * 4 * d * d) + 2 * d
    assert counts["dot"] == want
    built = GPT(base)
    assert count_parameters(built) == want


def test_parity_breaks_without_gqa():
    base = GPTConfig(variant="window", simplicial_kv_heads=4, n_heads=4, d_model=32)
    dot = parameter_counts({"d": GPTConfig(n_heads=4, d_model=32)})["d"]
    assert parameter_counts({"w": base})["w"] == dot + 2 * 32 * 32  # K2 and V2 of one block, full width


@pytest.mark.parametrize("variant", models.VARIANTS)
def test_forward_loss_and_causality(gen, variant):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    m = GPT(GPTConfig(variant=variant, **SMALL)).double()
    idx = torch.randint(0, 256, (2, 10), generator=gen)
    tgt = torch.randint(0, 256, (2, 10), generator=gen)
    logits, loss = m(idx, tgt)
    assert logits.shape == (2, 10, 256)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1)))
    assert m(idx)[1] is None
    # changing the future does not change the past
    idx2 = idx.clone()
    idx2[:, 6:] = torch.randint(0, 256, (2, 4), generator=gen)
    torch.testing.assert_close(m(idx2)[0][:, :6], logits[:, :6])
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_window_model_reference_backend_agrees(gen):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    fast = GPT(GPTConfig(variant="window", **SMALL)).double()
    ref = GPT(GPTConfig(variant="window", backend="reference", **SMALL)).double()
    ref.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 256, (2, 12), generator=gen)
    torch.testing.assert_close(fast(idx)[0], ref(idx)[0], rtol=1e-10, atol=1e-10)


def test_topk_block_ranks_with_previous_dot_block(gen, monkeypatch):
    m = GPT(GPTConfig(variant="topk", **SMALL)).double()
    seen = {}
    orig = TopKTwoSimplicialAttention.select

    def spy(self, q, k1, prev_qk=None):
        seen["prev"] = prev_qk
        return orig(self, q, k1, prev_qk)

    monkeypatch.setattr(TopKTwoSimplicialAttention, "select", spy)
    m(torch.randint(0, 256, (1, 8), generator=gen))
    assert seen["prev"] is not None and seen["prev"][0].shape == (1, 8, 2, 8)


def test_config_errors_and_roundtrip():
    with pytest.raises(ValueError, match="variant"):
        GPTConfig(variant="sparse")
    with pytest.raises(ValueError, match="no 2-simplicial block"):
        GPTConfig(variant="window", n_layer=3)
    with pytest.raises(ValueError, match="d_model"):
        GPTConfig(d_model=0)
    with pytest.raises(ValueError, match="unknown"):
        GPTConfig.from_dict({"variant": "dot", "depth": 3})
    c = GPTConfig(variant="topk", topk=5)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="block_size"):
        GPT(GPTConfig(block_size=4, d_model=8, n_heads=2))(torch.zeros(1, 5, dtype=torch.long))


# ---- depth probes ------------------------------------------------------------------------------


@pytest.mark.parametrize("M,hops", [(2, 1), (5, 2), (7, 3)])
def test_hop_batch_brute_force(gen, M, hops):
    tokens, y = models.hop_batch(16, M, hops, gen)
    assert tokens.shape == (16, M + 1) and tokens.max() < M * M + M
    for b in range(16):
        f = {int(t) // M: int(t) % M for t in tokens[b, :-1]}
        assert sorted(f) == list(range(M)) and sorted(f.values()) == list(range(M))  # a permutation
        x = int(tokens[b, -1]) - M * M
        for _ in range(hops):
            x = f[x]
        assert x == int(y[b])
    with pytest.raises(ValueError, match="hops"):
        models.hop_batch(2, 4, 0, gen)


def test_match3_last_batch_brute_force(gen):
    x, y = models.match3_last_batch(20, 5, 7, gen)
    for b in range(20):
        s = [int(v) for v in x[b]]
        want = any((s[-1] + s[i] + s[j]) % 7 == 0 for i in range(5) for j in range(5))
        assert int(y[b]) == int(want)
    with pytest.raises(ValueError, match="task"):
        models.task_batch("sort", 2, gen)


def test_task_net_parity_and_training(gen):
    dot = models.TaskNet(30, 5, "dot", 2, d_model=16, n_heads=2)
    simp = models.TaskNet(30, 5, "simplicial", 2, d_model=16, n_heads=2)
    assert count_parameters(dot) == count_parameters(simp)
    r = models.train_task("hop", "simplicial", 1, steps=3, batch=4, eval_size=16, M=4, hops=2)
    assert r["baseline"] == 0.25 and 0 <= r["accuracy"] <= 1 and r["params"] > 0
    r = models.train_task("match3", "dot", 1, steps=2, batch=4, eval_size=32, n=4, M=7)
    assert 0.5 <= r["baseline"] <= 1
    rs = models.depth_sweep("hop", depths=(1, 2), seeds=(0,), steps=1, batch=2, eval_size=4, M=3, hops=1)
    assert [(r["kind"], r["n_layer"]) for r in rs] == [("dot", 1), ("dot", 2), ("simplicial", 1), ("simplicial", 2)]
    with pytest.raises(ValueError, match="kind"):
        models.TaskNet(10, 2, "graph", 1)
    with pytest.raises(ValueError, match="n_layer"):
        models.TaskNet(10, 2, "dot", 0)
    with pytest.raises(ValueError, match="task"):
        models.train_task("sort", "dot", 1)


@pytest.mark.parametrize("M", [3, 6])
def test_two_hop_construction(gen, M):
    tokens, y = models.hop_batch(64, M, 2, gen)
    out, logits = models.two_hop_construction(tokens, M, c=20.0)
    assert torch.equal(out.argmax(-1), y)
    # exactly one pair at 2c (the chained edges), 2(M - 1) pairs at c, the rest at 0
    flat = logits.flatten(1)
    assert torch.all((flat == 40).sum(-1) == 1) and torch.all((flat == 20).sum(-1) == 2 * (M - 1))
    assert torch.all((flat == 0).sum(-1) == (M + 1) ** 2 - 1 - 2 * (M - 1))
    with pytest.raises(ValueError, match="positions"):
        models.two_hop_construction(tokens[:, 1:], M)
