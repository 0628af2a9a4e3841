"""Statistics over runs and the cells of the tables that show them: every report uses these (``rlnn compare``'s
summary, the suite's benchmark, the sweep's ranking), nothing here reads a file or knows a command.

Intervals over few runs: a percentile bootstrap of the mean of 1 or 2 values can only give back those
values, an interval that looks certain and says nothing, so below ``MIN_RUNS_FOR_CI`` runs there is no
interval (NaN, shown "–"). Below ``ENOUGH_RUNS`` a report adds ``few_runs_note``: Agarwal et al. (2021)
and their ``rliable`` recommend at least 5-10 runs per task for interval estimates.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_SAMPLES = 10_000
MIN_RUNS_FOR_CI = 3
ENOUGH_RUNS = 5


# ---------------------------------------------------------------------------------------------------
# Statistics


def bootstrap_ci(sample, confidence: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``sample`` (1-D); (nan, nan) with fewer than
    ``MIN_RUNS_FOR_CI`` values."""
    x = np.asarray(sample, dtype=np.float64)
    if x.size < MIN_RUNS_FOR_CI:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def bootstrap_band(curves: np.ndarray, confidence: float = 0.95, samples: int = 1_000, seed: int = 0):
    """(mean, low, high) over axis 0 of ``curves`` (runs × grid), resampling runs; low and high are None
    with fewer than ``MIN_RUNS_FOR_CI`` runs."""
    n = curves.shape[0]
    if n < MIN_RUNS_FOR_CI:
        return curves.mean(axis=0), None, None
    rng = np.random.default_rng(seed)
    means = curves[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return curves.mean(axis=0), np.quantile(means, alpha, axis=0), np.quantile(means, 1.0 - alpha, axis=0)


def median_iqr(x) -> tuple[float, float, float]:
    """(median, first quartile, third quartile); NaNs for an empty sample."""
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return float(med), float(q1), float(q3)


def area_under_curve(steps: np.ndarray, values: np.ndarray) -> float:
    """Mean evaluation return over the run: trapezoid area from the first to the last eval / the span."""
    if values.size == 0:
        return math.nan
    if values.size == 1:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def iqm(scores) -> float:
    """Interquartile mean of all of ``scores`` (any shape, e.g. runs × envs): the mean after dropping the
    lowest and the highest ``int(n / 4)`` values (``scipy.stats.trim_mean(x, 0.25, axis=None)``)."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def probability_of_improvement(x, y) -> float:
    """P(X > Y), stratified by task: ``x`` (runs of X × tasks) and ``y`` (runs of Y × tasks); per task the
    fraction of (run of X, run of Y) pairs where X's score is higher, ties counting half; the mean over tasks."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    diff = x[:, None, :] - y[None, :, :]
    per_task = (diff > 0).mean(axis=(0, 1)) + 0.5 * (diff == 0).mean(axis=(0, 1))
    return float(per_task.mean())


def few_runs_note(runs: int, what: str = "seed") -> str | None:
    """The line a report prints under a table whose intervals rest on ``runs`` runs each (``what``: singular,
    e.g. "seed per trial"); None when they are enough."""
    if runs >= ENOUGH_RUNS:
        return None
    noun, _, rest = what.partition(" ")
    what = " ".join(filter(None, (noun + ("" if runs == 1 else "s"), rest)))
    left_out = f" Intervals need at least {MIN_RUNS_FOR_CI} and are left out (–)." if runs < MIN_RUNS_FOR_CI else (
        " Read the intervals as rough.")
    return (f"Only {runs} {what}: too few for confident 95% intervals (rliable recommends at least "
            f"{ENOUGH_RUNS}-10 runs).{left_out} Run more: --seeds 10.")


# ---------------------------------------------------------------------------------------------------
# Table cells


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(x, digits: int = 0) -> str:
    """A table cell: ``x`` with thousands separators and ``digits`` decimals, "–" for a missing number."""
    return "–" if missing(x) else f"{x:,.{digits}f}"


def fmt_ci(mean, low, high, digits: int = 1) -> str:
    """``mean [low, high]``, or just the mean when there is no interval."""
    if missing(low) or missing(high):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def compact(x: float) -> str:
    """A count of steps as a plot's tick shows it: 500, 20k, 1.5M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{suffix}"
    return f"{x:.3g}"


def table_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def table_rule(columns: int) -> str:
    return "|" + "---|" * columns
