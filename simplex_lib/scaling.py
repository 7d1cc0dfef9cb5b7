"""Power-law fits: the scaling-law argument of the paper, recomputed from its published data.

The scaling-law argument of Roy et al. (2025, Section 8) runs in three steps:
start from the Chinchilla form ``L(N, D) = E + A / N**alpha + B / D**beta``
(:func:`chinchilla_loss`); hold the token budget ``D`` fixed so that the last term is a
constant; then linearise ``-log L = alpha * log N + beta`` and fit a straight line through the
(log N, -log L) points of each model family (:func:`fit_power_law`).

The paper's printed numbers (Tables 2-4) are data in :mod:`simplex_lib.published`; the functions
here refit them (:func:`fit_table2`, :func:`table2_delta_percent`, :func:`params_reproducing`) and
draw the fits (:func:`plot_power_law_fits`) and the ratio of the two families' losses
(:func:`plot_loss_ratio`); :func:`local_slopes` and :func:`slope_standard_error` say how much
three points can tell. :func:`log_log_slope` is the plain exponent of
``y ~ x**p``, used to read scaling off measurements.

Logarithms are natural throughout and ``N`` is a raw parameter count (``1e9``, not ``1``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import FormatStrFormatter

from .published import ACTIVE_PARAMS, BENCHMARKS, MODELS, TABLE2_NLL, TABLE3
from .viz import PALETTE, label

__all__ = [
    "PowerLawFit",
    "fit_power_law",
    "log_log_slope",
    "fit_table2",
    "table2_delta_percent",
    "chinchilla_loss",
    "params_reproducing",
    "plot_power_law_fits",
    "local_slopes",
    "slope_standard_error",
    "plot_loss_ratio",
]

@dataclass(frozen=True)
class PowerLawFit:
    """A least-squares line ``-log L = alpha * log N + beta`` through points ``(N, L)``.

    Attributes
    ----------
    alpha : float
        The slope: the exponent of ``L ~ N**(-alpha)``. Larger means loss falls faster with size.
    beta : float
        The intercept, so that ``L(N) = exp(-beta) * N**(-alpha)``.
    r2 : float
        Coefficient of determination of the line in (log N, -log L) space (1 for a perfect fit;
        ``nan`` when all ``-log L`` are equal).
    residual : float
        Sum of squared residuals of ``-log L`` about the line (0 for a perfect fit).
    n_points : int
        How many points were fitted.

    Examples
    --------
    >>> fit = fit_power_law([1e9, 2e9, 4e9], [0.5, 0.25, 0.125])
    >>> round(fit.alpha, 6), round(fit.r2, 6)
    (1.0, 1.0)
    """

    alpha: float
    beta: float
    r2: float
    residual: float
    n_points: int

    def predict(self, N) -> np.ndarray:
        """The fitted loss ``exp(-(alpha log N + beta))`` at parameter counts ``N``.

        Parameters
        ----------
        N : float or array-like of float > 0
            Parameter counts.

        Returns
        -------
        numpy.ndarray of the shape of ``N``.
        """
        logn = np.log(np.asarray(N, dtype=np.float64))
        return np.exp(-(self.alpha * logn + self.beta))


def _positive_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive (its logarithm is taken), got {arr.tolist()}")
    return arr


def _positive_nd(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if np.any(np.isnan(arr)) or np.any(arr <= 0):  # +inf is the limit of an infinite N or D
        raise ValueError(f"{name} must be positive (inf allowed), got {values!r}")
    return arr


def fit_power_law(N, L) -> PowerLawFit:
    """Fit ``-log L = alpha * log N + beta`` by least squares (eqs. 18-20).

    Parameters
    ----------
    N : array-like, shape [n]
        Parameter counts (raw numbers, e.g. ``1e9``), all positive.
    L : array-like, shape [n]
        Losses (negative log-likelihoods), all positive.

    Returns
    -------
    PowerLawFit
        ``alpha``, ``beta``, ``r2`` and ``residual`` (sum of squared
        residuals of ``-log L``).

    Raises
    ------
    ValueError
        If ``N`` and ``L`` differ in length, hold fewer than 2 points,
        contain a non-positive or non-finite value, or if all ``N`` are
        equal (the slope is undefined).

    Examples
    --------
    >>> fit = fit_power_law([1e9, 2e9, 3.5e9], [0.3277, 0.2987, 0.2781])
    >>> round(fit.alpha, 4)
    0.1311
    """
    n = _positive_1d("N", N)
    loss = _positive_1d("L", L)
    if n.shape != loss.shape:
        raise ValueError(f"N and L must have the same length, "
                         f"got {n.size} and {loss.size}")
    if n.size < 2:
        raise ValueError(f"need at least 2 points for a line, got {n.size}")
    x, y = np.log(n), -np.log(loss)
    xc, yc = x - x.mean(), y - y.mean()
    sxx = float(xc @ xc)
    if sxx <= 0.0:
        raise ValueError("N must contain at least two distinct values")
    alpha = float(xc @ yc) / sxx
    beta = float(y.mean() - alpha * x.mean())
    resid = y - (alpha * x + beta)
    ssr = float(resid @ resid)
    syy = float(yc @ yc)
    r2 = 1.0 - ssr / syy if syy > 0 else float("nan")
    return PowerLawFit(alpha=alpha, beta=beta, r2=r2, residual=ssr,
                       n_points=int(n.size))



def log_log_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``p`` of ``y ~ x**p``.

    Parameters
    ----------
    x, y : sequences of positive numbers, same length >= 2

    Returns
    -------
    float

    Examples
    --------
    >>> round(log_log_slope([2, 4, 8], [12, 48, 192]), 6)
    2.0
    """
    xs = [float(a) for a in x]
    ys = [float(b) for b in y]
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("x and y must have the same length, at least 2")
    if min(xs) <= 0 or min(ys) <= 0 or not all(map(math.isfinite, xs + ys)):
        raise ValueError("x and y must be positive and finite (their logarithms are taken)")
    lx, ly = [math.log(a) for a in xs], [math.log(b) for b in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("x must contain at least two distinct values")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def fit_table2(params=ACTIVE_PARAMS) -> dict:
    """Refit every row of the paper's Table 2 with :func:`fit_power_law`.

    Parameters
    ----------
    params : sequence of 3 floats, or dict model -> sequence of 3 floats
        The parameter counts ``N`` used for the three sizes (default: the active parameters).
        A dict gives each model family its own counts.

    Returns
    -------
    dict
        ``{model: {benchmark: PowerLawFit}}`` for the models in :data:`~simplex_lib.published.MODELS`.

    Examples
    --------
    >>> fits = fit_table2()
    >>> fits["2-simplicial"]["GSM8k"].alpha > fits["Transformer"]["GSM8k"].alpha
    True
    """
    out = {}
    if isinstance(params, dict) and set(params) != set(MODELS):
        raise ValueError(f"params must have one entry per model {MODELS}, got {sorted(params)}")
    for model in MODELS:
        n = params[model] if isinstance(params, dict) else params
        if _positive_1d("params", n).size != len(ACTIVE_PARAMS):
            raise ValueError(f"params must hold {len(ACTIVE_PARAMS)} parameter counts per model, got {n!r}")
        out[model] = {b: fit_power_law(n, TABLE2_NLL[model][b]) for b in BENCHMARKS}
    return out


def table2_delta_percent() -> dict:
    """Recompute Table 2's ``Delta(%)`` rows from the printed losses.

    Returns
    -------
    dict
        ``{benchmark: (d_1B, d_2B, d_3.5B)}`` with ``d = 100 (L_simplicial - L_transformer) / L_transformer``.

    Examples
    --------
    >>> round(table2_delta_percent()["GSM8k"][2], 2)
    -2.27
    """
    out = {}
    for b in BENCHMARKS:
        t = np.asarray(TABLE2_NLL["Transformer"][b])
        s = np.asarray(TABLE2_NLL["2-simplicial"][b])
        out[b] = tuple(float(v) for v in 100.0 * (s - t) / t)
    return out


def chinchilla_loss(N, D, *, E: float, A: float, B: float, alpha: float,
                    beta: float):
    """The loss model ``E + A / N**alpha + B / D**beta`` (eqs. 1 and 17).

    Parameters
    ----------
    N, D : float or array-like
        Parameter count and training tokens (broadcast against each other).
    E, A, B, alpha, beta : float
        Irreducible loss, the two amplitudes and the two exponents.

    Returns
    -------
    numpy.ndarray or float
        The modelled loss.

    Examples
    --------
    >>> kw = dict(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)
    >>> float(chinchilla_loss(1e9, 1e12, **kw)) > 1.7
    True
    """
    for name, v in dict(E=E, A=A, B=B, alpha=alpha, beta=beta).items():
        if (isinstance(v, bool) or not isinstance(v, (int, float))
                or not np.isfinite(v)):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    N = _positive_nd("N", N)
    D = _positive_nd("D", D)
    return E + A / N**alpha + B / D**beta


def params_reproducing(losses, printed, start=ACTIVE_PARAMS, *, scale_beta: float = 10.0,
                       iters: int = 60) -> np.ndarray:
    """Find parameter counts ``N`` whose fits best reproduce a set of printed ``(alpha, beta)``.

    With the printed losses held fixed, the fitted slope and intercept depend only on the
    ``log N`` used. This solves for the three ``log N`` values (Gauss-Newton with a numerical
    Jacobian) that bring the fits of all benchmarks closest to the printed pairs, which shows
    which parameter counts a table was (probably) computed with.

    Parameters
    ----------
    losses : dict benchmark -> sequence of floats
        The losses of one model family (e.g. ``TABLE2_NLL["Transformer"]``).
    printed : dict benchmark -> (alpha, beta)
        The printed fits of the same family (e.g. ``TABLE3["Transformer"]``).
    start : sequence of floats
        Initial parameter counts.
    scale_beta : float
        ``beta`` errors are divided by this before squaring (``beta`` is about ten times larger
        than ``alpha``, so this weighs the two alike).
    iters : int
        Gauss-Newton iterations.

    Returns
    -------
    numpy.ndarray, shape [len(start)]
        The parameter counts.

    Examples
    --------
    >>> from simplex_lib.published import TABLE2_NLL, TABLE3
    >>> n = params_reproducing(TABLE2_NLL["Transformer"], TABLE3["Transformer"])
    >>> bool(abs(fit_power_law(n, TABLE2_NLL["Transformer"]["GSM8k"]).alpha - 0.1420) < 1e-4)
    True
    """
    if not isinstance(printed, dict) or not printed:
        raise ValueError("printed must be a non-empty dict benchmark -> (alpha, beta)")
    if not isinstance(losses, dict) or not set(printed) <= set(losses):
        raise ValueError(f"losses must be a dict with an entry for every benchmark of printed {sorted(printed)}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    if isinstance(scale_beta, bool) or not isinstance(scale_beta, (int, float)) or not scale_beta > 0:
        raise ValueError(f"scale_beta must be a number > 0, got {scale_beta!r}")
    _positive_1d("start", start)
    keys = list(printed)

    def mismatch(x):
        out = []
        for k in keys:
            f = fit_power_law(np.exp(x), losses[k])
            out += [f.alpha - printed[k][0], (f.beta - printed[k][1]) / scale_beta]
        return np.array(out)

    x = np.log(np.asarray(start, dtype=np.float64))
    for _ in range(iters):
        r = mismatch(x)
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            step = np.zeros_like(x)
            step[j] = 1e-6
            jac[:, j] = (mismatch(x + step) - r) / 1e-6
        x = x - np.linalg.lstsq(jac, r, rcond=None)[0]
    return np.exp(x)


def plot_power_law_fits(ax, benchmark: str, fits: dict | None = None, params=ACTIVE_PARAMS,
                        printed: bool = True) -> None:
    """Plot Table 2's losses of one benchmark with our fitted lines (and the printed ones).

    Parameters
    ----------
    ax : matplotlib Axes
        Where to draw (log-log axes are set here).
    benchmark : str
        One of :data:`~simplex_lib.published.BENCHMARKS`.
    fits : dict, optional
        Output of :func:`fit_table2`; computed from ``params`` when omitted.
    params : sequence of 3 floats
        The parameter counts used for the points and our fits.
    printed : bool
        Also draw the lines of the printed Table 3 (dashed).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    fits = fit_table2(params) if fits is None else fits
    n = np.asarray(params, dtype=np.float64)
    grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
    for model, colour in zip(MODELS, (PALETTE["dot"], PALETTE["simplicial"])):
        f = fits[model][benchmark]
        ax.plot(n, TABLE2_NLL[model][benchmark], "o", color=colour, label=f"{model} (Table 2)")
        ax.plot(grid, f.predict(grid), "-", color=colour, lw=1.5,
                label=rf"ours: $\alpha$={f.alpha:.4f}")
        if printed:
            a, b = TABLE3[model][benchmark]
            ax.plot(grid, np.exp(-(a * np.log(grid) + b)), "--", color=colour, lw=1.0,
                    label=rf"printed: $\alpha$={a:.4f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.yaxis,):  # plain decimals: the losses span less than a factor of two
        axis.set_major_formatter(FormatStrFormatter("%.2f"))
        axis.set_minor_formatter(FormatStrFormatter("%.2f"))
    label(ax, "active parameters N", "negative log-likelihood (nats)", benchmark)
    ax.legend(fontsize=9, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22))


def local_slopes(N, L) -> np.ndarray:
    """The slope of ``-log L`` against ``log N`` between each pair of consecutive points.

    Parameters
    ----------
    N, L : array-like, shape [n], n >= 2
        Parameter counts (increasing) and losses, all positive.

    Returns
    -------
    numpy.ndarray, shape [n - 1]
        ``log(L[s] / L[s+1]) / log(N[s+1] / N[s])``: the exponent of the power law through
        points ``s`` and ``s + 1`` alone.

    Examples
    --------
    >>> local_slopes([1e9, 2e9, 4e9], [0.5, 0.25, 0.125]).round(6).tolist()
    [1.0, 1.0]
    """
    n, loss = _positive_1d("N", N), _positive_1d("L", L)
    if n.shape != loss.shape or n.size < 2:
        raise ValueError(f"N and L must have the same length >= 2, got {n.size} and {loss.size}")
    if np.any(np.diff(n) <= 0):
        raise ValueError(f"N must be strictly increasing, got {n.tolist()}")
    return np.diff(-np.log(loss)) / np.diff(np.log(n))


def slope_standard_error(N, sigma: float) -> float:
    """Standard error of a least-squares slope in ``log N`` when each ``-log L`` has noise ``sigma``.

    ``sigma / sqrt(sum (log N_i - mean)^2)``. The difference of two independent slopes fitted at
    the same ``N`` has ``sqrt(2)`` times this standard error.

    Parameters
    ----------
    N : 1-D sequence of float > 0
        Parameter counts, at least two distinct.
    sigma : float > 0
        Standard deviation of the noise of each ``-log L``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``N`` is not positive and finite, has fewer than two distinct values, or ``sigma`` is
        not a number > 0.

    Examples
    --------
    >>> round(slope_standard_error([1e9, 2e9, 3.5e9], 0.005), 4)
    0.0056
    """
    x = np.log(_positive_1d("N", N))
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx <= 0:
        raise ValueError("N must contain at least two distinct values")
    return float(sigma) / math.sqrt(sxx)


def plot_loss_ratio(ax, params=ACTIVE_PARAMS, benchmarks=BENCHMARKS) -> dict:
    """Plot ``L_2-simplicial / L_Transformer`` of Table 2 against ``N``, one line per benchmark.

    On these axes a pure change of offset is a horizontal line and a change of exponent a
    straight sloped line (in ``log N``); below 1 the 2-simplicial model is better.

    Parameters
    ----------
    ax : matplotlib Axes
    params : sequence of float, default :data:`ACTIVE_PARAMS`
        The active parameter counts of Table 2's models.
    benchmarks : sequence of str, default :data:`BENCHMARKS`
        The Table 2 columns to draw (at most four).

    Returns
    -------
    dict
        ``{benchmark: ratios}`` as plotted.
    """
    colours = (PALETTE["accent"], PALETTE["accent2"], PALETTE["accent3"], PALETTE["reference"])
    n = np.asarray(params, dtype=np.float64)
    out = {}
    for b, colour in zip(benchmarks, colours):
        r = np.asarray(TABLE2_NLL["2-simplicial"][b]) / np.asarray(TABLE2_NLL["Transformer"][b])
        out[b] = r
        ax.plot(n, r, "o-", color=colour, label=b)
    ax.axhline(1.0, color="black", lw=1.0, ls=":", label="equal loss")
    ax.set_xscale("log")
    ax.set_xticks(n, [f"{v / 1e9:g}B" for v in n])
    ax.minorticks_off()
    label(ax, "active parameters N (log scale)", "NLL ratio, 2-simplicial / Transformer")
    ax.legend(fontsize=9)
    return out
