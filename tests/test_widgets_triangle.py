"""The triangle explorer's callbacks, driven directly (no browser)."""

import itertools
import math

import pytest
import torch

from simplex_lib.ops.dot.reference import dot_attention
from simplex_lib.ops.n_simplicial.reference import n_simplicial_attention
from simplex_lib.ops.two_simplicial import reference as ref
from simplex_lib.widgets import TriangleExplorer
from simplex_lib.widgets import triangle_explorer as tx

f64 = torch.float64


def brute_slice(t, i, scale, w1=None, w2=None):
    """Loops: the softmax over the visible (j, k) of query i."""
    N = t["q"].shape[1]
    q, k1, k2 = t["q"][0, :, 0], t["k1"][0, :, 0], t["k2"][0, :, 0]
    cells = [(j, k) for j in range(N) for k in range(N)
             if j <= i and k <= i and (w1 is None or j > i - w1) and (w2 is None or k > i - w2)]
    logits = {c: scale * float((q[i] * k1[c[0]] * k2[c[1]]).sum()) for c in cells}
    m = max(logits.values())
    z = sum(math.exp(a - m) for a in logits.values())
    out = torch.zeros(N, N, dtype=f64)
    for (j, k), a in logits.items():
        out[j, k] = math.exp(a - m) / z
    return out


@pytest.mark.parametrize("L,d,temp,w1,w2,query", [
    (1, 3, 1.0, None, None, 0), (7, 4, 0.5, 3, None, 5), (9, 2, 2.0, 2, 4, None),
    (5, 5, 1.0, 12, 1, 4),
])
def test_heatmap_is_the_reference_slice(gen, L, d, temp, w1, w2, query):
    seed = int(torch.randint(0, 50, (), generator=gen))
    s = tx.triangle_state(seq_len=L, head_dim=d, temperature=temp, w1=w1, w2=w2, query=query,
                          seed=seed)
    i = L - 1 if query is None else query
    t = s["tokens"]
    scale = 1 / (math.sqrt(d) * temp)
    want = ref.two_simplicial_weights(t["q"], t["k1"], t["k2"], w1=w1, w2=w2, scale=scale)[0, 0, i]
    torch.testing.assert_close(s["slice"], want)
    torch.testing.assert_close(s["slice"], brute_slice(t, i, scale, w1, w2))
    assert torch.equal(s["visible"], brute_slice(t, i, scale, w1, w2) > 0)


@pytest.mark.parametrize("w1", [1, 2, 3, 5, 20])
def test_w1_removes_exactly_the_cells_left_of_the_window(w1):
    L, i = 10, 8
    full = tx.triangle_state(seq_len=L, query=i, seed=3)
    win = tx.triangle_state(seq_len=L, query=i, seed=3, w1=w1)
    removed = {(j, k) for j, k in itertools.product(range(L), repeat=2)
               if full["slice"][j, k] > 0 and win["slice"][j, k] == 0}
    expected = {(j, k) for j in range(L) for k in range(L) if j <= i - w1 and k <= i}
    assert removed == expected
    # Nothing appears that was not there, and the kept cells are renormalised, not changed in ratio.
    assert not ((win["slice"] > 0) & (full["slice"] == 0)).any()
    kept = win["slice"] > 0
    ratio = win["slice"][kept] / full["slice"][kept]
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0])))


@pytest.mark.parametrize("w1,w2", [(None, None), (3, 2), (None, 4)])
def test_outputs_equal_the_reference(w1, w2):
    L, d, i = 9, 4, 7
    for reducer in ("and", "or"):
        s = tx.triangle_state(seq_len=L, head_dim=d, w1=w1, w2=w2, query=i, reducer=reducer,
                              seed=11, temperature=0.8)
        t, scale = s["tokens"], s["scale"]
        if reducer == "and":
            want = ref.two_simplicial_attention(t["q"], t["k1"], t["k2"], t["v1"], t["v2"],
                                                w1=w1, w2=w2, scale=scale)[0, i, 0]
        else:  # brute force: sum over the slice of P * (v1_j + v2_k)
            P = brute_slice(t, i, scale, w1, w2)
            want = sum(P[j, k] * (t["v1"][0, j, 0] + t["v2"][0, k, 0])
                       for j in range(L) for k in range(L))
            if w1 is None and w2 is None:
                other = n_simplicial_attention(t["q"], [t["k1"], t["k2"]], [t["v1"], t["v2"]],
                                                   scale=scale, reducer="or")[0, i, 0]
                torch.testing.assert_close(s["output"], other)
        torch.testing.assert_close(s["output"], want)
        # dot-product attention over window w1: 2-simplicial attention with all-ones k', v'
        ones = torch.ones_like(t["k2"])
        dot = ref.two_simplicial_attention(t["q"], t["k1"], ones, t["v1"], ones, w1=w1, w2=w2,
                                           scale=scale)[0, i, 0]
        torch.testing.assert_close(s["dot_output"], dot)
        if w1 is None:
            plain = dot_attention(t["q"], t["k1"], t["v1"], scale=scale)[0, i, 0]
            torch.testing.assert_close(s["dot_output"], plain)


def test_and_and_or_differ():
    a = tx.triangle_state(seq_len=8, reducer="and", seed=2)
    o = tx.triangle_state(seq_len=8, reducer="or", seed=2)
    torch.testing.assert_close(a["slice"], o["slice"])
    assert not torch.allclose(a["output"], o["output"])


def test_triangles_are_the_largest_cells():
    s = tx.triangle_state(seq_len=10, top=6, seed=5, w2=3)
    ws = [w for *_, w in s["triangles"]]
    assert ws == sorted(ws, reverse=True) and len(ws) == 6
    assert math.isclose(ws[0], float(s["slice"].max()))
    for i, j, k, w in s["triangles"]:
        assert i == 9 and w == float(s["slice"][j, k]) and s["visible"][j, k]
    # Fewer visible cells than requested: only the visible ones are listed.
    small = tx.triangle_state(seq_len=3, query=0, top=5)
    assert [(j, k) for _, j, k, _ in small["triangles"]] == [(0, 0)]


def test_low_temperature_picks_the_largest_logit():
    s = tx.triangle_state(seq_len=8, temperature=1e-3, seed=4)
    t = s["tokens"]
    logits = ref.two_simplicial_logits(t["q"], t["k1"], t["k2"])[0, 0, 7]
    j, k = divmod(int(logits.flatten().argmax()), 8)
    assert s["triangles"][0][1:3] == (j, k) and s["triangles"][0][3] > 0.99


def test_triangle_graph():
    s = tx.triangle_state(seq_len=6, top=3, seed=1)
    g = tx.triangle_graph(s)
    assert sorted(g.nodes) == list(range(6))
    assert [v for v in g.nodes if g.nodes[v]["query"]] == [5]
    total = {}
    for i, j, k, w in s["triangles"]:
        for e in {tuple(sorted(e)) for e in ((i, j), (i, k), (j, k)) if e[0] != e[1]}:
            total[e] = total.get(e, 0.0) + w
    assert {tuple(sorted(e)): d["weight"] for *e, d in g.edges(data=True)} == pytest.approx(total)


def test_render_labels_every_axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = tx.render(tx.triangle_state(seq_len=5, w1=2))
    heat, tri, bars = fig.axes[:3]
    for ax in (heat, bars):
        assert ax.get_xlabel() and ax.get_ylabel()
    assert fig.axes[3].get_ylabel()  # the colour bar
    plt.close(fig)


def test_explorer_settings_drive_the_state():
    ex = TriangleExplorer(seq_len=8, seed=3)
    assert ex.state["query"] == 7 and ex.state["w1"] is None
    s = ex.set(w1=2)
    assert s["w1"] == 2
    assert (s["slice"][:6] == 0).all() and s["slice"][6:].sum() > 0.999
    s = ex.set(reducer="or")
    torch.testing.assert_close(s["output"],
                               tx.triangle_state(seq_len=8, seed=3, w1=2, reducer="or")["output"])
    s = ex.set(seq_len=4)  # the query is clamped into the shorter sequence
    assert ex.values["query"] == 3 and s["query"] == 3 and s["slice"].shape == (4, 4)
    s = ex.set(w1=16)  # the top of the slider means "no window"
    assert ex.values["w1"] == 16 and s["w1"] is None
    with pytest.raises(ValueError, match="reducer"):
        ex.set(reducer="xor")


def test_errors():
    with pytest.raises(ValueError, match="query"):
        tx.triangle_state(seq_len=4, query=4)
    with pytest.raises(ValueError, match="reducer"):
        tx.triangle_state(reducer="xor")
    with pytest.raises(ValueError, match="temperature"):
        tx.triangle_state(temperature=0)
    with pytest.raises(ValueError, match="w1"):
        tx.triangle_state(w1=0)
    with pytest.raises(ValueError, match="seq_len"):
        tx.triangle_state(seq_len=0)
    with pytest.raises(ValueError, match="head_dim"):
        tx.make_tokens(0, 3, 0)
    with pytest.raises(ValueError, match="seq_len"):
        TriangleExplorer(seq_len=17)
