"""Tests for simplex_lib.model: layouts, parameter parity, heads, causality, and the forward pass."""

import math

import pytest
import torch

from simplex_lib.layers import DotProductAttention, TopKTwoSimplicialAttention, TwoSimplicialAttention
from simplex_lib.model import (ATTENTION_KINDS, Model, ModelConfig, count_parameters, interleave,
                               parameter_counts, simplicial_layer_ids)
from simplex_lib.testing import assert_close

SMALL = dict(block_size=12, d_model=16, n_heads=2, w1=4, w2=3, topk=4)


def lm(kind, n_layer=4, **kw):
    return ModelConfig(layers=interleave(kind, n_layer), **{**SMALL, **kw})


def brute_cross_entropy(logits, targets):
    """Mean of -log softmax at the target, in float64, one row at a time."""
    rows = logits.detach().double().reshape(-1, logits.shape[-1])
    t = targets.reshape(-1).tolist()
    return sum(math.log(float(r.exp().sum())) - float(r[k]) for r, k in zip(rows, t)) / len(t)


def test_simplicial_layer_ids_and_interleave():
    assert simplicial_layer_ids(8) == (3, 7)
    assert simplicial_layer_ids(12, 4) == (3, 7, 11)  # 3:1 interleaving
    assert simplicial_layer_ids(3) == ()
    assert simplicial_layer_ids(2, 1) == (0, 1)
    with pytest.raises(ValueError, match="every"):
        simplicial_layer_ids(4, 0)
    assert interleave("topk", 8) == ("dot",) * 3 + ("topk",) + ("dot",) * 3 + ("topk",)
    with pytest.raises(ValueError, match="kind"):
        interleave("sparse", 4)


@pytest.mark.parametrize("kind, cls", [("dot", DotProductAttention), ("window", TwoSimplicialAttention),
                                       ("topk", TopKTwoSimplicialAttention),
                                       ("simplicial", TwoSimplicialAttention)])
def test_layout_is_three_to_one(kind, cls):
    m = Model(lm(kind, 8))
    for l, blk in enumerate(m.blocks):
        assert type(blk.attn) is (cls if l in (3, 7) else DotProductAttention)
    if kind == "window":
        assert (m.blocks[3].attn.w1, m.blocks[3].attn.w2) == (4, 3)
    if kind == "simplicial":
        assert (m.blocks[3].attn.w1, m.blocks[3].attn.backend) == (None, "reference")
    assert m.config.simplicial_layers == (() if kind == "dot" else (3, 7))


@pytest.mark.parametrize("n_layer,d_model,n_heads", [(4, 16, 2), (8, 48, 6), (12, 64, 4)])
def test_equal_parameter_counts(n_layer, d_model, n_heads):
    configs = {k: ModelConfig(layers=interleave(k, n_layer), d_model=d_model, n_heads=n_heads, block_size=32)
               for k in ATTENTION_KINDS}
    counts = parameter_counts(configs)
    assert len(set(counts.values())) == 1, counts
    # independent count: embeddings (tied head) + per block 2 LayerNorms, attention, MLP + final norm
    d, L = d_model, n_layer
    want = 256 * d + 32 * d + L * (2 * 2 * d + 4 * d * d + 2 * 4 * d * d) + 2 * d
    assert counts["dot"] == want == count_parameters(Model(configs["window"]))


def test_parity_breaks_without_gqa():
    full = ModelConfig(layers=interleave("window", 4), simplicial_kv_heads=4, n_heads=4, d_model=32)
    dot = ModelConfig(layers=("dot",) * 4, n_heads=4, d_model=32)
    counts = parameter_counts({"w": full, "d": dot})
    assert counts["w"] == counts["d"] + 2 * 32 * 32  # K2 and V2 of one block, full width


def test_classification_heads_count():
    c = ModelConfig(layers=("simplicial", "dot"), head="classify", vocab_size=30, n_classes=5, block_size=None,
                    d_model=16, n_heads=2)
    d = 16
    want = 30 * d + 2 * (2 * 2 * d + 4 * d * d + 2 * 4 * d * d) + 2 * d + (d * 5 + 5)
    assert count_parameters(Model(c)) == want


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_forward_loss_and_causality(gen, kind):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    m = Model(lm(kind)).double()
    idx = torch.randint(0, 256, (2, 10), generator=gen)
    tgt = torch.randint(0, 256, (2, 10), generator=gen)
    logits, loss = m(idx, tgt)
    assert logits.shape == (2, 10, 256)
    assert abs(float(loss.detach()) - brute_cross_entropy(logits, tgt)) < 1e-10
    assert m(idx)[1] is None
    idx2 = idx.clone()  # changing the future does not change the past
    idx2[:, 6:] = torch.randint(0, 256, (2, 4), generator=gen)
    assert_close("past logits", logits[:, :6], m(idx2)[0][:, :6], 1e-12)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("head, shape", [("classify", (3, 4)), ("tokens", (3, 7, 4))])
@pytest.mark.parametrize("kind", ["dot", "simplicial"])
def test_classification_heads(gen, head, shape, kind):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    m = Model(ModelConfig(layers=(kind, kind), head=head, vocab_size=11, n_classes=4, block_size=None,
                          causal=head == "classify", d_model=16, n_heads=2)).double()
    x = torch.randint(0, 11, (3, 7), generator=gen)
    y = torch.randint(0, 4, shape[:-1], generator=gen)
    logits, loss = m(x, y)
    assert logits.shape == shape
    assert abs(float(loss.detach()) - brute_cross_entropy(logits, y)) < 1e-10


@pytest.mark.parametrize("kind", ["dot", "simplicial"])
def test_non_causal_set_model_is_permutation_equivariant(gen, kind):
    """Without positions and masks, permuting the tokens permutes the per-token outputs."""
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    m = Model(ModelConfig(layers=(kind,), head="tokens", vocab_size=13, n_classes=2, block_size=None,
                          causal=False, d_model=16, n_heads=2)).double()
    x = torch.randint(0, 13, (2, 6), generator=gen)
    perm = torch.randperm(6, generator=gen)
    out = m(x)[0]
    assert_close("permuted outputs", out[:, perm], m(x[:, perm])[0], 1e-12)
    x2 = x.clone()  # the first token sees the last one
    x2[:, -1] = (x2[:, -1] + 1) % 13
    assert (m(x2)[0][:, 0] - out[:, 0]).abs().max() > 1e-9


def test_non_causal_dot_matches_brute_force(gen):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    m = Model(ModelConfig(layers=("dot",), head="tokens", vocab_size=5, n_classes=2, block_size=None,
                          causal=False, d_model=8, n_heads=2)).double()
    att = m.blocks[0].attn
    h = torch.randn(1, 5, 8, generator=gen, dtype=torch.float64)
    q, k, v = att.project(h)
    want = torch.zeros(1, 5, 2, 4, dtype=torch.float64)
    for i in range(5):
        for hd in range(2):
            s = torch.stack([q[0, i, hd] @ k[0, j, hd] / 2.0 for j in range(5)])
            want[0, i, hd] = (torch.softmax(s, 0)[:, None] * v[0, :, hd]).sum(0)
    assert_close("non-causal dot", att.o_proj(want.reshape(1, 5, 8)), att(h), 1e-12)


def test_window_model_reference_backend_agrees(gen):
    torch.manual_seed(int(torch.randint(0, 2**30, (1,), generator=gen)))
    fast = Model(lm("window")).double()
    ref = Model(lm("window", backend="reference")).double()
    ref.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 256, (2, 12), generator=gen)
    assert_close("window torch vs reference", ref(idx)[0], fast(idx)[0], 1e-10)


def test_topk_block_ranks_with_previous_dot_block(gen, monkeypatch):
    m = Model(lm("topk")).double()
    seen = {}
    orig = TopKTwoSimplicialAttention.select

    def spy(self, q, k1, prev_qk=None):
        seen["prev"] = prev_qk
        return orig(self, q, k1, prev_qk)

    monkeypatch.setattr(TopKTwoSimplicialAttention, "select", spy)
    m(torch.randint(0, 256, (1, 8), generator=gen))
    assert seen["prev"] is not None and seen["prev"][0].shape == (1, 8, 2, 8)


def test_config_errors_and_roundtrip():
    with pytest.raises(ValueError, match="layers"):
        ModelConfig(layers=("sparse",))
    with pytest.raises(ValueError, match="layers"):
        ModelConfig(layers=())
    with pytest.raises(ValueError, match="d_model"):
        ModelConfig(d_model=0)
    with pytest.raises(ValueError, match="head"):
        ModelConfig(head="regress")
    with pytest.raises(ValueError, match="n_classes"):
        ModelConfig(head="classify")
    with pytest.raises(ValueError, match="causal"):
        ModelConfig(layers=("window",), causal=False)
    assert ModelConfig(layers=("dot", "topk"), backend="triton").backend == "triton"  # the top-k kernels
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"layers": ["dot"], "depth": 3})
    c = lm("topk", topk=5)
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="block_size"):
        Model(ModelConfig(layers=("dot",), block_size=4, d_model=8, n_heads=2))(torch.zeros(1, 5, dtype=torch.long))


def test_init_options(gen):
    torch.manual_seed(0)
    gpt2 = Model(lm("window"))
    torch.manual_seed(0)
    default = Model(lm("window", init="torch"))
    assert count_parameters(gpt2) == count_parameters(default)
    assert abs(float(gpt2.tok_emb.weight.detach().std()) - 0.02) < 0.002  # N(0, 0.02)
    assert abs(float(default.tok_emb.weight.detach().std()) - 1.0) < 0.05  # nn.Embedding's N(0, 1)
    with pytest.raises(ValueError, match="init"):
        ModelConfig(init="xavier")
