"""Match3 explorer: the Theorem 5.1 head on one input, one query token at a time.

Controls: sequence length ``n``, modulus ``M``, the logit scale ``c`` (as a multiple of the safe
value :func:`simplex_lib.tasks.match3.default_c`), the query token ``i``, the input (random with a
seed, or the adversarial all-equal input). Shown: the score landscape ``A[i, j1, j2] / c`` over
all pairs, the attention weights the head puts on them and on the blank pair, the output ``z``,
the thresholded prediction and the brute-force label.
"""

from __future__ import annotations

import torch

from ..tasks.match3 import (
    adversarial_no_match,
    c_lower_bound,
    default_c,
    match3_batch,
    match3_labels,
    theorem_5_1_details,
)
from .explorer import Explorer

__all__ = ["make_tokens", "explorer_state", "plot_state", "Match3Explorer"]

#: A pair counts as "attended" when it holds at least this share of the query's attention.
ATTENDED_SHARE = 0.01


def make_tokens(n: int, M: int, seed: int = 0, kind: str = "random") -> torch.Tensor:
    """The explorer's input: a seeded Match3 sequence or the adversarial no-match input.

    Parameters
    ----------
    n, M : sequence length and modulus
    seed : int (for ``kind="random"``)
    kind : ``"random"`` (:func:`simplex_lib.tasks.match3.match3_batch`) or ``"adversarial"``
        (:func:`simplex_lib.tasks.match3.adversarial_no_match`; needs ``3`` not dividing ``M``)

    Returns
    -------
    Long tensor ``[n]``.

    Examples
    --------
    >>> make_tokens(4, 7, kind="adversarial").tolist()
    [5, 5, 5, 5]
    """
    if kind == "random":
        return match3_batch(1, n, M, torch.Generator().manual_seed(seed))[0][0]
    if kind == "adversarial":
        return adversarial_no_match(n, M)
    raise ValueError(f"kind must be 'random' or 'adversarial', got {kind!r}")


def explorer_state(n: int, M: int, c_factor: float = 1.0, i: int = 0, seed: int = 0,
                   kind: str = "random") -> dict:
    """Everything the explorer shows, as plain data.

    Parameters
    ----------
    n, M : sequence length and modulus
    c_factor : ``c = c_factor * default_c(n, M)``
    i : query position in ``[0, n)``
    seed, kind : see :func:`make_tokens`

    Returns
    -------
    dict with ``x`` (list), ``i``, ``c``, ``c_star`` (the tight bound, :func:`~simplex_lib.tasks.match3.c_lower_bound`),
    ``scores`` (``[n, n]`` tensor ``A[i] / c``), ``weights`` (``[n, n]``), ``blank_weight``,
    ``z``, ``prediction``, ``label``, ``correct``, ``matches`` (pairs with
    ``x_i + x_j1 + x_j2 = 0 mod M``) and ``attended`` (pairs holding at least 1% of the
    attention, heaviest first).

    Examples
    --------
    >>> s = explorer_state(4, 7, kind="adversarial")
    >>> s["label"], s["prediction"], s["matches"]
    (0, 0, [])
    """
    if not isinstance(i, int) or not 0 <= i < n:
        raise ValueError(f"i must be a position in [0, n) = [0, {n}), got {i!r}")
    if not c_factor > 0:
        raise ValueError(f"c_factor must be > 0, got {c_factor!r}")
    x = make_tokens(n, M, seed, kind)
    c = c_factor * default_c(n, M)
    d = theorem_5_1_details(x, M, c)
    w = d["weights"][i]
    xi = x[i]
    match = ((xi + x[:, None] + x[None, :]) % M) == 0
    order = torch.argsort(w.flatten(), descending=True)
    attended = [divmod(int(t), n) for t in order if float(w.flatten()[t]) >= ATTENDED_SHARE]
    label = int(match3_labels(x, M)[i])
    pred = int(d["prediction"][i])
    return {
        "x": x.tolist(), "i": i, "n": n, "M": M, "c": c,
        "c_star": c_lower_bound(n, M) if n > 1 else 0.0,
        "scores": d["logits"][i] / c,
        "weights": w,
        "blank_weight": float(d["blank_weight"][i]),
        "z": float(d["z"][i]),
        "prediction": pred,
        "label": label,
        "correct": pred == label,
        "matches": [tuple(p) for p in match.nonzero().tolist()],
        "attended": attended,
    }


def plot_state(state: dict, fig=None):
    """Draw a state from :func:`explorer_state`: score landscape and attention weights.

    Parameters
    ----------
    state : dict from :func:`explorer_state`
    fig : matplotlib Figure, optional
        Cleared and drawn on (two panels); default: a new 10.5 x 4.2 inch figure from
        :func:`simplex_lib.viz.new_figure`.

    Returns
    -------
    matplotlib Figure
        The scores ``A[i] / c`` and the weights, both ``[j1, j2]``, with the matching pairs marked.
    """
    from .. import viz

    if fig is None:
        fig, axes = viz.new_figure(2, width=10.5, height=4.2)
    else:
        fig.clear()
        axes = fig.subplots(1, 2)
    i, x = state["i"], state["x"]
    viz.heatmap(axes[0], state["scores"], signed=True, xlabel="second key $l$ (token)",
                ylabel="first key $j$ (token)", colorbar_label="logit / c",
                title=f"scores of query i={i} (x_i={x[i]}, M={state['M']})")
    viz.heatmap(axes[1], state["weights"], xlabel="second key $l$ (token)", ylabel="first key $j$ (token)",
                colorbar_label="attention weight", vmin=0.0, vmax=max(float(state["weights"].max()), 1e-12),
                title=f"weights; blank {state['blank_weight']:.2f}, z={state['z']:.2f}")
    for (j1, j2) in state["matches"]:
        axes[1].plot(j2, j1, marker="s", mfc="none", mec=viz.PALETTE["accent"], ms=9, mew=1.5)
    verdict = "correct" if state["correct"] else "WRONG"
    fig.suptitle(f"c = {state['c']:.3g} (tight bound c* = {state['c_star']:.3g}): predicted "
                 f"{state['prediction']}, true label {state['label']} ({verdict}); green squares = matching pairs")
    viz.finish(fig)
    return fig


class Match3Explorer(Explorer):
    """Controls for ``n``, ``M``, ``c / c_safe``, the query ``i``, the seed and the input kind.

    The front end (``js/match3.js``) recomputes the head's scores and weights, ``z``, the
    prediction and the brute-force label from the input tokens (random inputs come from Python,
    the adversarial one is computed in the browser); ``state`` is :func:`explorer_state` at the
    current settings. An adversarial input with ``3 | M`` does not exist: the explorer then
    shows the random input, and says so. The static book page ships seeds 0-3 for ``M`` in
    2-31, 61 and 127; a kernel offers seeds 0-50 and every ``M`` up to 127. The wiring is
    :class:`~simplex_lib.widgets.explorer.Explorer`'s.

    Parameters
    ----------
    n, M, c_factor, i, seed, kind : initial values (see :func:`explorer_state`)

    Examples
    --------
    >>> ex = Match3Explorer(n=5, M=11)
    >>> ex.set(kind="adversarial")["label"]
    0
    """

    name = "match3"
    caption = ("Try: switch the input to adversarial, then drag c / c_safe below the tight bound "
               "c* (about 0.8 of it) and watch the blank pair lose and the answer turn wrong.")
    #: Seeds and moduli whose random inputs the static page ships.
    static_seeds = range(4)
    static_moduli = (*range(2, 32), 61, 127)

    def __init__(self, n: int = 8, M: int = 31, c_factor: float = 1.0, i: int = 0, seed: int = 0,
                 kind: str = "random"):
        super().__init__({"n": n, "M": M, "c_factor": c_factor, "i": i, "seed": seed, "kind": kind})

    def controls(self, static: bool) -> list:
        def offered(name, kernel, values):
            if static:
                return {"name": name, "label": kernel["label"], "type": "values",
                        "values": sorted({*values, self.values.get(name, 0)})}
            return kernel

        return [
            {"name": "n", "label": "length n", "type": "int", "min": 1, "max": 24},
            offered("M", {"name": "M", "label": "modulus M", "type": "int", "min": 2, "max": 127},
                    self.static_moduli),
            {"name": "c_factor", "label": "c / c_safe", "type": "log", "min": -2, "max": 1,
             "step": 0.05},
            {"name": "i", "label": "query i", "type": "int", "min": 0, "max_from": "n"},
            offered("seed", {"name": "seed", "label": "seed", "type": "int", "min": 0, "max": 50},
                    self.static_seeds),
            {"name": "kind", "label": "input", "type": "choice",
             "options": [["random", "random"], ["adversarial", "adversarial"]]},
        ]

    @staticmethod
    def arguments(values: dict) -> dict:
        """Settings as keyword arguments of :func:`explorer_state` (adversarial needs 3 not dividing M).

        Parameters
        ----------
        values : dict
            The explorer's settings (``n``, ``M``, ``c_factor``, ``i``, ``seed``, ``kind``).

        Returns
        -------
        dict, a copy of ``values`` with ``kind="random"`` where ``kind="adversarial"`` and 3
        divides ``M`` (the adversarial input does not exist then).
        """
        v = dict(values)
        if v["kind"] == "adversarial" and v["M"] % 3 == 0:
            v["kind"] = "random"
        return v

    def payload_key(self, values: dict) -> str:
        return f"random/{values['seed']}/{values['n']}/{values['M']}"

    def payload(self, values: dict) -> dict:
        return {"x": make_tokens(values["n"], values["M"], values["seed"]).tolist()}

    def static_values(self) -> list:
        seeds = sorted({*self.static_seeds, self.values["seed"]})
        moduli = sorted({*self.static_moduli, self.values["M"]})
        return [{"seed": s, "n": n, "M": m} for s in seeds for m in moduli for n in range(1, 25)]

    def compute(self, values: dict) -> dict:
        return explorer_state(**self.arguments(values))

    def figure(self, state: dict):
        from matplotlib.figure import Figure

        return plot_state(state, Figure(figsize=(10.5, 4.2)))
