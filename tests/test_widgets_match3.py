"""Match3 explorer: callbacks checked as plain data, no browser."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from simplex_lib.tasks.match3 import match3_labels, theorem_5_1_attention  # noqa: E402
from simplex_lib.widgets.match3_explorer import Match3Explorer, explorer_state, make_tokens, plot_state  # noqa: E402


@pytest.mark.parametrize("n,M,seed", [(1, 5, 0), (6, 11, 3), (9, 31, 7)])
def test_state_matches_oracle(n, M, seed):
    x = make_tokens(n, M, seed)
    for i in range(n):
        s = explorer_state(n, M, 1.0, i, seed)
        assert s["x"] == x.tolist()
        assert s["label"] == int(match3_labels(x, M)[i]) == s["prediction"] and s["correct"]
        brute = [(a, b) for a in range(n) for b in range(n) if (x[i] + x[a] + x[b]) % M == 0]
        assert s["matches"] == brute
        # Matching pairs carry the top weight (equal to the blank's); with the safe c all
        # non-matching pairs together hold at most a third of the blank pair's weight.
        w = s["weights"]
        top = [tuple(p) for p in (w >= s["blank_weight"] * (1 - 1e-9)).nonzero().tolist()]
        assert top == brute
        is_match = torch.zeros(n, n, dtype=torch.bool)
        for a, b in brute:
            is_match[a, b] = True
        assert float(w[~is_match].sum()) <= s["blank_weight"] / 3 + 1e-12
        # n <= 9: at most 81 matches, each holding >= 1/83 > 1% of the attention.
        assert set(brute) <= set(s["attended"])
        total = float(s["weights"].sum()) + s["blank_weight"]
        assert abs(total - 1.0) < 1e-9
        assert abs(s["z"] - float(s["weights"].sum())) < 1e-9


def test_adversarial_fails_when_c_small():
    ok = explorer_state(6, 7, 1.0, 2, kind="adversarial")
    bad = explorer_state(6, 7, 0.3, 2, kind="adversarial")
    assert ok["correct"] and ok["label"] == 0
    assert not bad["correct"] and bad["prediction"] == 1
    assert bad["c"] < bad["c_star"] < ok["c"]


def test_scores_are_cosines():
    s = explorer_state(5, 13, 1.0, 1, seed=2)
    x = torch.tensor(s["x"])
    want = torch.cos(2 * torch.pi * (x[1] + x[:, None] + x[None, :]).double() / 13)
    torch.testing.assert_close(s["scores"], want)


def test_explorer_settings_drive_state():
    ex = Match3Explorer(n=6, M=11)
    assert ex.state["n"] == 6
    ex.set(n=4, i=5)  # the query is clamped into the shorter input
    assert ex.values["i"] == 3 and len(ex.state["x"]) == 4 and ex.state["i"] == 3
    assert ex.set(kind="adversarial")["x"] == [4, 4, 4, 4]  # 3 * 4 = 12 = 1 (mod 11)
    s = ex.set(c_factor=0.3)
    assert s["prediction"] == 1 and not s["correct"]
    s = ex.set(M=9)  # 3 | 9: no adversarial input, the random one is shown
    assert s["M"] == 9 and s["x"] == make_tokens(4, 9, 0).tolist()
    x = torch.tensor(s["x"])
    assert theorem_5_1_attention(x, 9).tolist() == match3_labels(x, 9).tolist()


def test_plot_state_labels_axes():
    fig = plot_state(explorer_state(5, 11, 1.0, 0, seed=1))
    axes = [a for a in fig.axes if a.get_xlabel()]
    assert len(axes) == 2 and all(a.get_ylabel() for a in axes)


def test_errors():
    with pytest.raises(ValueError, match="i"):
        explorer_state(4, 7, 1.0, 4)
    with pytest.raises(ValueError, match="c_factor"):
        explorer_state(4, 7, 0.0, 0)
    with pytest.raises(ValueError, match="kind"):
        make_tokens(4, 7, kind="sorted")
