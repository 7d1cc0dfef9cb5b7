"""Reading recorded training runs: throughput without warm-up, bits per byte, epochs, and
mean ± sd and paired differences over seeds.

A run is the summary written by :func:`simplex_lib.train.train` (``summary.json``): its
``config``, ``corpus`` and ``log`` (one record every ``log_every`` steps with ``step``,
``tokens``, ``train_loss``, ``train_time_s``; every ``eval_every`` steps also ``val_loss``).
Several seeds of several variants, as written by ``python -m benchmarks.seeds``, are read with
:func:`load_seed_runs` into ``{variant: {seed: summary}}``.

Differences between variants are *paired*: the run of variant ``v`` with seed ``s`` is compared
with the baseline's run of the same seed, which started from the same weights (where the
architectures share them) and saw the same batches. The spread of those differences over seeds
is the noise a single comparison cannot show.
"""

from __future__ import annotations

import glob
import json
import math
import os
import statistics

from .stats import t_quantile


__all__ = [
    "bits_per_byte",
    "steady_throughput",
    "warmup_seconds",
    "epochs",
    "final_gap",
    "eval_record",
    "eval_points",
    "load_seed_runs",
    "common_eval_steps",
    "seed_table",
    "seed_curves",
    "plot_seed_curves",
    "plot_paired_differences",
    "plot_runs_bpb",
]

LN2 = math.log(2.0)

def bits_per_byte(nats: float) -> float:
    """A loss in nats per byte expressed in bits per byte (divide by ln 2).

    Parameters
    ----------
    nats : float
        A loss (cross-entropy) in nats per byte.

    Returns
    -------
    float
        The same loss in bits per byte.

    Examples
    --------
    >>> round(bits_per_byte(math.log(256)), 6)  # the uniform distribution over bytes: 8 bits
    8.0
    """
    return nats / LN2


def steady_throughput(run: dict, after_step: int | None = None) -> float:
    """Bytes (tokens) per second of training after warm-up.

    The summary's own ``tokens_per_s`` divides all tokens by all training time,
    including the first steps, where a GPU run compiles and autotunes its kernels. This
    rate is measured between the log record at ``after_step`` (default: the first
    record) and the last one.

    Parameters
    ----------
    run : dict
        A run summary with a ``log`` of records holding ``step``, ``tokens``,
        ``train_time_s``.
    after_step : int, optional
        The rate starts at the first record whose step is at least this one. Default:
        the first record.

    Returns
    -------
    float
        Tokens per second between the two records.

    Raises
    ------
    ValueError
        If no record follows the starting one.

    Examples
    --------
    >>> run = {"log": [{"step": 25, "tokens": 100, "train_time_s": 9.0},
    ...                {"step": 50, "tokens": 200, "train_time_s": 10.0},
    ...                {"step": 75, "tokens": 300, "train_time_s": 11.0}]}
    >>> steady_throughput(run)
    100.0
    """
    log = run["log"]
    start = (log[0] if after_step is None
             else next(r for r in log if r["step"] >= after_step))
    end = log[-1]
    if end["step"] <= start["step"]:
        raise ValueError("the run has no log records after its warm-up")
    return ((end["tokens"] - start["tokens"])
            / (end["train_time_s"] - start["train_time_s"]))


def warmup_seconds(run: dict) -> tuple:
    """``(steps, seconds)`` of the first log interval, which includes compilation and
    autotuning, and the median seconds of the same number of steps afterwards.

    Parameters
    ----------
    run : dict
        A run summary with a ``log`` of records holding ``step`` and ``train_time_s``.

    Returns
    -------
    steps : int
        Steps of the first interval (the step of the first record).
    seconds : float
        Training time at the first record.
    later : float
        Median seconds of the later intervals of the same length (a ``StatisticsError`` if
        there is none).

    Examples
    --------
    >>> run = {"log": [{"step": 25, "train_time_s": 9.0}, {"step": 50, "train_time_s": 10.0},
    ...                {"step": 75, "train_time_s": 11.0}]}
    >>> warmup_seconds(run)
    (25, 9.0, 1.0)
    """
    log = run["log"]
    later = [b["train_time_s"] - a["train_time_s"] for a, b in zip(log, log[1:])
             if b["step"] - a["step"] == log[0]["step"]]
    return log[0]["step"], log[0]["train_time_s"], statistics.median(later)


def epochs(run: dict) -> float:
    """Passes over the training split: tokens seen / training bytes of the corpus.

    Parameters
    ----------
    run : dict
        A run summary with ``tokens`` and ``corpus["train_bytes"]``.

    Returns
    -------
    float
    """
    return run["tokens"] / run["corpus"]["train_bytes"]


def final_gap(run: dict) -> float:
    """Validation minus training loss (nats) at the run's last evaluation.

    The training loss is the mean over the batches since the previous log record, so it lags
    the weights by a few steps; the gap it gives is a slight underestimate.

    Parameters
    ----------
    run : dict
        A run summary whose ``log`` has at least one record with ``val_loss``.

    Returns
    -------
    float
        ``val_loss - train_loss`` of the last record that has a ``val_loss``.
    """
    last = eval_record(run)
    return last["val_loss"] - last["train_loss"]


def eval_record(run: dict, step: int | None = None) -> dict:
    """The log record of the evaluation at ``step`` (default: the last evaluation).

    Parameters
    ----------
    run : dict
        A run summary; its ``log`` records with a ``val_loss`` are the evaluations.
    step : int, optional
        The optimizer step. Default: the run's last evaluation.

    Returns
    -------
    dict
        The record, with ``step``, ``tokens``, ``train_loss`` (the mean over the steps since the
        previous record) and ``val_loss`` (nats).

    Raises
    ------
    ValueError
        If the run has no evaluation at ``step``, or none at all.
    """
    evals = [r for r in run["log"] if "val_loss" in r and (step is None or r["step"] == step)]
    if not evals:
        raise ValueError(f"the run has no evaluation{'' if step is None else f' at step {step}'}")
    return evals[-1]


def eval_points(run: dict) -> list:
    """``(step, tokens, val_loss)`` of every evaluation of a run.

    Parameters
    ----------
    run : dict
        A run summary; its ``log`` records with a ``val_loss`` are the evaluations.

    Returns
    -------
    list of tuple
        ``(step, tokens, val_loss)`` in log order, the loss in nats.
    """
    return [(r["step"], r["tokens"], r["val_loss"]) for r in run["log"] if "val_loss" in r]


def load_seed_runs(folder: str) -> dict:
    """``{variant: {seed: summary}}`` from the ``*.json`` summaries (or ``*/summary.json``
    folders) in ``folder``; the variant and seed are read from each summary's ``config``.

    JSON files without a ``config`` or a ``log`` (a manifest, another record) are skipped.

    Parameters
    ----------
    folder : str
        The folder to read; a missing folder gives an empty dict.

    Returns
    -------
    dict
        ``{variant: {seed: summary}}``, the seeds of each variant in increasing order.

    Examples
    --------
    >>> load_seed_runs("/nonexistent")
    {}
    """
    paths = sorted(glob.glob(os.path.join(folder, "*", "summary.json"))
                   + glob.glob(os.path.join(folder, "*.json")))
    out: dict = {}
    for path in paths:
        with open(path) as fh:
            run = json.load(fh)
        cfg = run.get("config") if isinstance(run, dict) else None
        if not cfg or "log" not in run:
            continue  # a manifest or another record
        out.setdefault(cfg["variant"], {})[cfg["seed"]] = run
    return {v: dict(sorted(s.items())) for v, s in out.items()}


def common_eval_steps(runs: dict) -> list:
    """Evaluation steps present in every run of every variant, sorted.

    Parameters
    ----------
    runs : dict
        ``{variant: {seed: summary}}`` as from :func:`load_seed_runs`.

    Returns
    -------
    list of int
        Empty when there are no runs or they share no step.
    """
    sets = [{s for s, _, _ in eval_points(r)} for seeds in runs.values() for r in seeds.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _val_at(run: dict, step: int) -> float:
    return eval_record(run, step)["val_loss"]


def _mean_sd(xs: list) -> tuple:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def seed_table(runs: dict, baseline: str = "dot", step: int | None = None) -> list:
    """One row per variant at evaluation ``step`` (default: the last one all share).

    Losses are in bits per byte. Each row: ``variant``, ``n`` (seeds), ``step``,
    ``mean``, ``sd`` (over seeds), ``diff_mean``, ``diff_sd`` and ``diff_ci`` (the
    half-width of a 95 % t interval) of the paired difference ``variant - baseline``
    over the seeds both have (``None`` for the baseline itself, or with fewer than two
    pairs), and ``bytes_per_s`` (mean steady-state throughput).

    Parameters
    ----------
    runs : dict
        ``{variant: {seed: summary}}`` as from :func:`load_seed_runs`.
    baseline : str, default ``"dot"``
        The variant the others are compared with, seed by seed.
    step : int, optional
        The evaluation step. Default: the last step every run has.

    Returns
    -------
    list of dict
        One row per variant, in the order of ``runs``.

    Raises
    ------
    ValueError
        If the runs share no evaluation step.
    """
    steps = common_eval_steps(runs)
    if not steps:
        raise ValueError("the runs share no evaluation step")
    step = steps[-1] if step is None else step
    rows = []
    for variant, seeds in runs.items():
        vals = {s: bits_per_byte(_val_at(r, step)) for s, r in seeds.items()}
        mean, sd = _mean_sd(list(vals.values()))
        rate = statistics.fmean(steady_throughput(r) for r in seeds.values())
        row = {"variant": variant, "n": len(vals), "step": step, "mean": mean, "sd": sd,
               "diff_mean": None, "diff_sd": None, "diff_ci": None, "bytes_per_s": rate}
        if variant != baseline and baseline in runs:
            diffs = [vals[s] - bits_per_byte(_val_at(runs[baseline][s], step))
                     for s in vals if s in runs[baseline]]
            if len(diffs) >= 2:
                dm, dsd = _mean_sd(diffs)
                half = t_quantile(0.975, len(diffs) - 1) * dsd / math.sqrt(len(diffs))
                row.update(diff_mean=dm, diff_sd=dsd, diff_ci=half)
        rows.append(row)
    return rows


def seed_curves(runs: dict, baseline: str | None = None) -> dict:
    """``{variant: (steps, mean, sd)}`` of validation bits per byte over the common steps; with
    ``baseline``, of the paired differences ``variant - baseline`` instead (baseline left out).

    Parameters
    ----------
    runs : dict
        ``{variant: {seed: summary}}`` as from :func:`load_seed_runs`.
    baseline : str, optional
        The variant to subtract, seed by seed. Default: none (the losses themselves).

    Returns
    -------
    dict
        ``{variant: (steps, means, sds)}``, three lists over :func:`common_eval_steps`; the sd
        over seeds is 0.0 where there is a single seed.
    """
    steps = common_eval_steps(runs)
    out = {}
    for variant, seeds in runs.items():
        if baseline is not None and variant == baseline:
            continue
        means, sds = [], []
        for step in steps:
            if baseline is None:
                xs = [bits_per_byte(_val_at(r, step)) for r in seeds.values()]
            else:
                xs = [bits_per_byte(_val_at(r, step)) - bits_per_byte(_val_at(runs[baseline][s], step))
                      for s, r in seeds.items() if s in runs[baseline]]
            m, sd = _mean_sd(xs)
            means.append(m)
            sds.append(0.0 if math.isnan(sd) else sd)
        out[variant] = (steps, means, sds)
    return out


def _colour(variant: str) -> str:
    from .viz import PALETTE

    return {"dot": PALETTE["dot"], "window": PALETTE["simplicial"]}.get(variant, PALETTE["accent"])


def plot_seed_curves(ax, runs: dict) -> None:
    """Validation bits per byte against step: the mean over seeds, a band of ± one sd.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled, with a legend).
    runs : dict
        ``{variant: {seed: summary}}`` as from :func:`load_seed_runs`.
    """
    from .viz import label

    for variant, (steps, m, sd) in seed_curves(runs).items():
        n = len(runs[variant])
        ax.plot(steps, m, color=_colour(variant), marker="o", ms=3, label=f"{variant} (n={n})")
        ax.fill_between(steps, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)],
                        color=_colour(variant), alpha=0.2, lw=0)
    label(ax, "optimizer step", "validation loss (bits/byte)")
    ax.legend(fontsize=9)


def plot_paired_differences(ax, runs: dict, baseline: str = "dot") -> None:
    """Paired differences ``variant - baseline`` (bits per byte) against step: one thin line per
    seed, the mean over seeds thick; below zero the variant is ahead.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled, with a legend).
    runs : dict
        ``{variant: {seed: summary}}`` as from :func:`load_seed_runs`.
    baseline : str, default ``"dot"``
        The variant subtracted; it must be a key of ``runs``.
    """
    from .viz import label

    for variant, (steps, m, _) in seed_curves(runs, baseline).items():
        for s, run in runs[variant].items():
            if s in runs[baseline]:
                d = [bits_per_byte(_val_at(run, t)) - bits_per_byte(_val_at(runs[baseline][s], t))
                     for t in steps]
                ax.plot(steps, d, color=_colour(variant), lw=1, alpha=0.45)
        ax.plot(steps, m, color=_colour(variant), lw=2.5, label=f"{variant} - {baseline}, mean")
    ax.axhline(0.0, color="0.3", lw=1, ls=":")
    label(ax, "optimizer step", f"difference to {baseline} (bits/byte)")
    ax.legend(fontsize=9)


def plot_runs_bpb(ax, runs: dict, x: str = "step", marks: int | None = None) -> None:
    """Validation loss (bits per byte) of several named runs against ``x`` (``"step"`` or
    ``"tokens"``); a run on the Triton backend is dashed. ``marks`` draws a dotted vertical line
    at that step (a comparison point).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw on (labelled, with a legend).
    runs : dict
        ``{name: summary}``: each run summary needs a ``config`` (``variant``, optional
        ``backend``) and at least one evaluation.
    x : str, default ``"step"``
        The horizontal axis: ``"step"`` or ``"tokens"`` (training bytes).
    marks : int, optional
        Where to draw the vertical line, in the units of ``x``. Default: none.

    Raises
    ------
    ValueError
        If ``x`` is neither ``"step"`` nor ``"tokens"``.
    """
    from .viz import label

    xlabels = {"step": "optimizer step", "tokens": "training bytes"}
    if x not in xlabels:
        raise ValueError(f"x must be 'step' or 'tokens', got {x!r}")
    for name, run in runs.items():
        pts = [(s if x == "step" else t, bits_per_byte(v)) for s, t, v in eval_points(run)]
        xs, ys = zip(*pts)
        cfg = run["config"]
        ax.plot(xs, ys, marker="o", ms=3, color=_colour(cfg["variant"]),
                ls="--" if cfg.get("backend") == "triton" else "-", label=name)
    if marks is not None:
        ax.axvline(marks, color="0.4", lw=1, ls=":")
    label(ax, xlabels[x], "validation loss (bits/byte)")
    ax.legend(fontsize=9)
