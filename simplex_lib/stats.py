"""Small statistics for comparing runs over seeds: Student-t quantiles and paired intervals.

Experiments in the book compare two variants run with the same seeds (the same initial weights,
data order and evaluation sets), so the comparison is of paired differences: their mean and a
Student-t confidence interval. Used by the Match3 sweep (:mod:`simplex_lib.tasks.match3`) and the
training experiments (:mod:`simplex_lib.experiments`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["t_quantile", "paired_interval"]


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution with ``df`` degrees of freedom (``1/2 <= p < 1``).

    Computed by integrating the density numerically (no SciPy needed); accurate to about 1e-5.

    Parameters
    ----------
    p : float in ``[0.5, 1)``
        The probability below the quantile (0.975 for a two-sided 95 % interval).
    df : int >= 1

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``p`` or ``df`` is out of range.

    Examples
    --------
    >>> round(t_quantile(0.975, 4), 4), round(t_quantile(0.975, 30), 3)
    (2.7764, 2.042)
    """
    if not 0.5 <= p < 1 or isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"need 1/2 <= p < 1 and an int df >= 1, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    t = torch.linspace(0.0, 400.0, 800_001, dtype=torch.float64)
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    dens = torch.exp(logc - (df + 1) / 2 * torch.log1p(t * t / df))
    cdf = 0.5 + torch.cumulative_trapezoid(dens, t, dim=0)  # cdf[i] = P(T <= t[i + 1])
    i = int(torch.searchsorted(cdf, torch.tensor(p, dtype=torch.float64)))
    if i >= cdf.numel():
        raise ValueError(f"p={p} is too close to 1 for df={df}")
    c0 = 0.5 if i == 0 else float(cdf[i - 1])
    t0, t1, c1 = float(t[i]), float(t[i + 1]), float(cdf[i])
    return t0 + (t1 - t0) * (p - c0) / (c1 - c0)  # linear inside the grid cell


def paired_interval(a, b, level: float = 0.95) -> dict:
    """Mean of the paired differences ``a - b`` and its Student-t confidence interval.

    Parameters
    ----------
    a, b : sequences of float, the same length
        One value per seed for each variant, in the same seed order.
    level : float in ``(0, 1)``, default 0.95

    Returns
    -------
    dict with ``mean``, ``lo``, ``hi`` (the interval; infinite with one pair), ``sd`` (of the
    differences; 0 with one pair), ``pairs`` and ``level``.

    Raises
    ------
    ValueError
        If the sequences are empty or of different lengths, or ``level`` is out of range.

    Examples
    --------
    >>> d = paired_interval([0.8, 0.9, 0.85], [0.7, 0.8, 0.8])
    >>> round(d["mean"], 4), d["lo"] < d["mean"] < d["hi"], d["pairs"]
    (0.0833, True, 3)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"a and b must be non-empty and paired, got lengths {len(a)} and {len(b)}")
    diff = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    k = diff.numel()
    mean = float(diff.mean())
    sd = float(diff.std()) if k > 1 else 0.0
    half = t_quantile(0.5 + level / 2, k - 1) * sd / math.sqrt(k) if k > 1 else math.inf
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "sd": sd, "pairs": k, "level": level}
