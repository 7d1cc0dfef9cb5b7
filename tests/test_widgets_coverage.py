"""The coverage explorer's plain functions and its widget wiring (no browser)."""

import random

import pytest
import torch

from simplex_lib import selection
from simplex_lib.ops.two_simplicial import reference as ref
from simplex_lib.widgets import CoverageExplorer
from simplex_lib.widgets import coverage_explorer as ce


@pytest.fixture(scope="module")
def inputs():
    return ce.text_inputs(48, seed=3)


def test_text_inputs_shapes_and_tokens():
    x = ce.text_inputs(20, head_dim=8, indexer_heads=3, indexer_dim=5)
    assert "".join(x["tokens"]) == ce.DEMO_TEXT[:20] and x["n"] == 20
    for name in ("q", "k1", "k2", "v1", "v2", "q_prev", "k_prev"):
        assert x[name].shape == (1, 20, 1, 8) and x[name].dtype == torch.float64
    assert x["qi1"].shape == (1, 20, 3, 5) and x["ki2"].shape == (1, 20, 1, 5)
    torch.testing.assert_close(x["wi"].sum(-1), torch.ones(1, 20, dtype=torch.float64))
    # Slicing the full text is the same as building the prefix (projections are per token).
    full = ce.text_inputs(head_dim=8, indexer_heads=3, indexer_dim=5)
    part = ce.slice_inputs(full, 20)
    for name in ("q", "k1", "qi1", "wi"):
        assert torch.equal(part[name], x[name])


def test_counts_and_masks_brute(gen, inputs):
    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen)))
    n = inputs["n"]
    for _ in range(6):
        w1, w2, k = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 12)
        i = rng.randrange(n)
        rule = rng.choice(["relu", "softmax"])
        c = ce.coverage(inputs, w1=w1, w2=w2, k=k, rule=rule, query=i)
        assert c["counts"]["window"] == min(w1, i + 1) * min(w2, i + 1)
        assert c["counts"]["topk_per_key"] == c["counts"]["topk_shared"] == min(k, i + 1) ** 2
        win = c["masks"]["window"]
        for j in range(n):
            for kk in range(n):
                assert bool(win[j, kk]) == (i - w1 < j <= i and i - w2 < kk <= i)
        # Top-k coverage is a product of selected rows and columns, all causal.
        sel = c["selections"]
        rows1 = {int(j) for j in sel["idx1"][0, i, 0] if j >= 0}
        rows2 = {int(j) for j in sel["idx2"][0, i, 0] if j >= 0}
        shared = {int(j) for j in sel["shared"][0, i, 0] if j >= 0}
        assert max(rows1 | rows2 | shared) <= i
        expect_pk = {(a, b) for a in rows1 for b in rows2}
        expect_sh = {(a, b) for a in shared for b in shared}
        assert {tuple(p) for p in c["masks"]["topk_per_key"].nonzero().tolist()} == expect_pk
        assert {tuple(p) for p in c["masks"]["topk_shared"].nonzero().tolist()} == expect_sh
        assert c["overlap"] == len(expect_sh & {tuple(p) for p in win.nonzero().tolist()})
        # Costs.
        D = inputs["q"].shape[-1]
        _, _, hi, di = inputs["qi1"].shape
        assert c["flops"] == {s: 4 * D * c["counts"][s] for s in ce.SCHEMES}
        assert c["indexer_flops"]["topk_per_key"] == 2 * 2 * hi * di * (i + 1)
        assert c["indexer_flops"]["topk_shared"] == c["indexer_flops"]["window"] == 0


def test_mass_against_dense_reference(inputs):
    n = inputs["n"]
    p = ref.two_simplicial_weights(inputs["q"], inputs["k1"], inputs["k2"])[0, 0]
    per_query = ce.mass_by_query(inputs, w1=5, w2=3, k=4, rule="relu")
    for i in (0, 1, 17, n - 1):
        c = ce.coverage(inputs, w1=5, w2=3, k=4, rule="relu", query=i)
        torch.testing.assert_close(c["dense"], p[i])
        assert abs(float(c["dense"].sum()) - 1) < 1e-12
        for s in ce.SCHEMES:
            brute = sum(float(p[i, j, kk]) for j, kk in c["masks"][s].nonzero().tolist())
            assert abs(c["mass"][s] - brute) < 1e-12
            assert abs(float(per_query[s][i]) - brute) < 1e-12
    # Windows and k at least as long as the sequence see everything.
    big = ce.mass_by_query(inputs, w1=n, w2=n, k=n)
    for s in ce.SCHEMES:
        torch.testing.assert_close(big[s], torch.ones(n, dtype=torch.float64))


def test_selection_is_causal_so_prefix_agrees(inputs):
    short = ce.slice_inputs(inputs, 30)
    a = ce.coverage(short, w1=4, w2=4, k=5, query=20)
    b = ce.coverage(inputs, w1=4, w2=4, k=5, query=20)
    for s in ce.SCHEMES:
        assert torch.equal(a["masks"][s], b["masks"][s][:30, :30])
        assert a["mass"][s] == pytest.approx(b["mass"][s], abs=1e-12)


def test_errors(inputs):
    with pytest.raises(ValueError, match="query"):
        ce.coverage(inputs, query=inputs["n"])
    with pytest.raises(ValueError, match="w1"):
        ce.coverage(inputs, w1=0)
    with pytest.raises(ValueError, match="k"):
        ce.coverage(inputs, k=0)
    with pytest.raises(ValueError, match="rule"):
        ce.coverage(inputs, rule="max")
    with pytest.raises(ValueError, match="n"):
        ce.text_inputs(10_000)
    with pytest.raises(ValueError, match="n"):
        ce.slice_inputs(inputs, 0)


def test_explorer_settings_drive_the_state():
    ex = CoverageExplorer(n=24, w1=4, w2=2, k=3)
    assert ex.state["query"] == 23 and ex.state["counts"]["window"] == 8
    assert ex.set(w1=7)["counts"]["window"] == 14
    s = ex.set(query=1)  # early query: the ramp
    assert s["counts"]["window"] == 2 * 2 == s["counts"]["topk_shared"]
    s = ex.set(rule="relu")
    assert s["rule"] == "relu" and s["counts"]["topk_per_key"] == 4
    ex.set(n=10, query=20)  # a query past the text is clamped to its last token
    assert ex.values["query"] == 9
    s = ex.set(k=9)
    assert s["n"] == 10 and s["counts"]["topk_per_key"] == 81
    assert ex.set(w2=3)["counts"]["window"] == 7 * 3
    with pytest.raises(ValueError, match="rule"):
        ex.set(rule="max")


def test_selections_are_the_library_selection(inputs):
    """The explorer selects keys with :mod:`simplex_lib.selection`, which the browser reproduces."""
    for k in (1, 3, 7, 40):
        scores = selection.indexer_scores(inputs["qi1"], inputs["ki1"], inputs["wi"], rule="relu")
        sel = ce._selections(inputs, k, "relu")
        assert torch.equal(sel["idx1"], selection.topk_indices(scores, k))
        assert torch.equal(sel["shared"], selection.previous_layer_topk(inputs["q_prev"], inputs["k_prev"], k))


def test_selection_breaks_ties_to_the_earlier_key():
    scores = torch.tensor([[[0.0, -1, -1], [0.0, 0.0, -1], [0.0, 0.0, 0.0]]])
    assert selection.topk_indices(scores, 2)[0, :, 0].tolist() == [[0, -1], [0, 1], [0, 1]]
