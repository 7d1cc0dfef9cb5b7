"""The graph-attention explorer: its data functions and the widget's callbacks, without a browser."""

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from simplex_lib.ops.dot.reference import dot_attention, dot_attention_weights  # noqa: E402
from simplex_lib.widgets import GraphExplorer  # noqa: E402
from simplex_lib.widgets import graph_explorer as ge  # noqa: E402


def brute_softmax_rows(q, k, temperature, causal):
    n, d = q.shape
    a = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        vis = [j for j in range(n) if j <= i or not causal]
        z = [math.exp(float(q[i] @ k[j]) / math.sqrt(d) / temperature) for j in vis]
        for j, e in zip(vis, z):
            a[i, j] = e / sum(z)
    return a


@pytest.mark.parametrize("n", [1, 5, 9])
@pytest.mark.parametrize("causal", [True, False])
def test_explorer_data_matches_reference(gen, n, causal):
    seed = int(torch.randint(0, 1000, (), generator=gen))
    temperature = float(torch.rand((), generator=gen)) * 3 + 0.2
    hops = int(torch.randint(0, 5, (), generator=gen))
    query = int(torch.randint(0, n, (), generator=gen))
    data = ge.explorer_data(seed, n, temperature, query, hops, causal=causal, sink=1.5, d=4)
    t = data["tokens"]
    q, k, v = (t[x][None, :, None] for x in "qkv")
    ref = dot_attention_weights(q, k, causal=causal, scale=0.5 / temperature)[0, 0]
    torch.testing.assert_close(data["A"], ref)
    torch.testing.assert_close(data["A"], brute_softmax_rows(t["q"], t["k"], temperature, causal))
    ak = torch.eye(n, dtype=torch.float64)
    for _ in range(hops):
        ak = ak @ data["A"]
    torch.testing.assert_close(data["Ak"], ak)
    torch.testing.assert_close(data["row"], data["A"][query])
    torch.testing.assert_close(data["row_k"], ak[query])
    torch.testing.assert_close(data["received"], data["A"].sum(0))
    torch.testing.assert_close(data["out"], ak @ t["v"])


def test_one_hop_output_is_dot_attention(gen):
    data = ge.explorer_data(int(torch.randint(0, 99, (), generator=gen)), 7, 1.0, 3, 1, causal=True, d=4)
    q, k, v = (data["tokens"][x][None, :, None] for x in "qkv")
    torch.testing.assert_close(data["out"], dot_attention(q, k, v)[0, :, 0])


def test_temperature_to_zero_gives_one_hot_rows(gen):
    seed = int(torch.randint(0, 1000, (), generator=gen))
    tokens = ge.explorer_data(seed, 8, 1.0, 0, 1, causal=False)["tokens"]
    logits = tokens["q"] @ tokens["k"].T
    # "Cold" is relative to the closest runner-up: put the smallest top-2 gap of any row (in
    # logits divided by the temperature) at 100, so every runner-up weighs below e^-100 * 8.
    top2 = logits.topk(2, dim=-1).values
    gap = float((top2[:, 0] - top2[:, 1]).min() / tokens["q"].shape[-1] ** 0.5)
    a = ge.explorer_data(seed, 8, gap / 100, 0, 1, causal=False)["A"]
    torch.testing.assert_close(a, torch.nn.functional.one_hot(logits.argmax(-1), 8).double(),
                               atol=1e-6, rtol=0)
    hot = ge.explorer_data(seed, 8, 1e4, 0, 1, causal=False)["A"]
    torch.testing.assert_close(hot, torch.full((8, 8), 1 / 8, dtype=torch.float64), atol=1e-3, rtol=0)


def test_planted_sink_draws_attention(gen):
    seed = int(torch.randint(0, 1000, (), generator=gen))
    plain = ge.make_tokens(seed, 10, 8)
    sunk = ge.make_tokens(seed, 10, 8, sink=4.0)
    torch.testing.assert_close(sunk["x"], plain["x"])
    torch.testing.assert_close(sunk["k"][1:], plain["k"][1:])
    torch.testing.assert_close(sunk["q"] - plain["q"], 4.0 * sunk["u"].expand(10, 8))
    torch.testing.assert_close(sunk["u"].norm(), torch.tensor(1.0, dtype=torch.float64))
    # Relative to every other key, key 0's logit for query i moves by
    # sink^2 + sink * (u.k0 + q_i.u - u.k_j): positive for every (i, j) once sink exceeds the
    # sum of those projections' largest sizes, so every query then attends more to token 0.
    u = plain["u"]
    sink = 1.0 + float((plain["k"] @ u).abs().max() * 2 + (plain["q"] @ u).abs().max())
    rec = ge.explorer_data(seed, 10, 1.0, 0, 1, causal=False, sink=sink)["received"]
    rec0 = ge.explorer_data(seed, 10, 1.0, 0, 1, causal=False, sink=0.0)["received"]
    assert rec[0] > rec0[0]


def test_errors():
    with pytest.raises(ValueError, match="query"):
        ge.explorer_data(0, 4, 1.0, 4, 1)
    with pytest.raises(ValueError, match="query"):
        ge.explorer_data(0, 4, 1.0, -1, 1)
    with pytest.raises(ValueError, match="n must"):
        ge.make_tokens(0, 0)
    with pytest.raises(ValueError, match="sink"):
        ge.make_tokens(0, 3, sink=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        ge.explorer_data(0, 4, 0.0, 0, 1)
    with pytest.raises(ValueError, match="k must"):
        ge.explorer_data(0, 4, 1.0, 0, -1)


def test_render_axes():
    import matplotlib.pyplot as plt

    fig = ge.render(ge.explorer_data(2, 6, 0.5, 4, 3))
    axes = fig.axes
    assert axes[0].get_xlabel() == "key token j" and axes[0].get_ylabel() == "query token i"
    assert axes[1].get_ylabel().startswith("attention weight")
    assert axes[0].images[0].get_array().shape == (6, 6)
    plt.close(fig)


def test_explorer_settings_drive_the_data():
    ex = GraphExplorer(seed=3, n=6, temperature=1.0, query=5, hops=1)
    ex.set(hops=3)
    torch.testing.assert_close(ex.data["Ak"], torch.linalg.matrix_power(ex.data["A"], 3))
    ex.set(temperature=0.01)
    expect = ge.explorer_data(3, 6, 0.01, 5, 3, causal=True, sink=ex.sink)
    torch.testing.assert_close(ex.data["A"], expect["A"])
    with pytest.raises(ValueError, match="hops"):
        ex.set(hops=13)
    with pytest.raises(ValueError, match="temperature"):
        ex.set(temperature=0)


def test_explorer_sequence_length_and_mask():
    ex = GraphExplorer(seed=1, n=4, query=3, hops=2, causal=True)
    ex.set(n=3)  # shrinking the sequence clamps the query
    assert ex.values["query"] == 2 and ex.data["A"].shape == (3, 3)
    assert ex.data["query"] == 2
    ex.set(causal=False)
    assert ex.data["causal"] is False and bool((ex.data["A"] > 0).all())
    ex.set(n=1)
    assert ex.data["A"].shape == (1, 1) and ex.data["A"].item() == 1.0
