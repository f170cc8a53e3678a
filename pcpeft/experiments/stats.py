"""Summary statistics over seeds and paired comparisons, with scipy's tests (no hand-written statistics).

Intervals are Student-t 95% intervals of the mean (n >= 2). A paired comparison uses the seeds two cells share:
the mean paired difference, its t interval, and a test: Wilcoxon's signed-rank test when n >= 6 (below that its
exact two-sided p-value cannot go under 0.05), the paired t-test otherwise; the result says which.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
MIN_WILCOXON = 6  # pairs: with fewer, the exact signed-rank test cannot reach p < 0.05


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation, n, a 95% t interval of the mean, min and max of a metric over replicates."""

    mean: float
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    min: float
    max: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Paired:
    """A cell against the baseline over the ``n`` replicates both have."""

    n: int
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    test: str
    p_value: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def t_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """The 95% Student-t interval of the mean of ``values`` (None with fewer than two)."""
    from scipy import stats

    if len(values) < 2:
        return None, None
    sem = stats.sem(values)
    if sem == 0 or not math.isfinite(sem):
        mean = float(np.mean(values))
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=float(np.mean(values)), scale=sem)
    return float(low), float(high)


def summarize(values: Sequence[float]) -> Summary:
    """:class:`Summary` of ``values`` (at least one)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("summarize needs at least one value")
    std = float(np.std(array, ddof=1)) if array.size > 1 else None
    low, high = t_interval(array)
    return Summary(float(array.mean()), std, int(array.size), low, high, float(array.min()), float(array.max()))


def paired(values: Sequence[float], baseline: Sequence[float]) -> Paired:
    """``values`` minus ``baseline`` pair by pair (same replicates, same order)."""
    from scipy import stats

    a, b = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired needs two equally long, non-empty sequences")
    diff = a - b
    low, high = t_interval(diff)
    if diff.size < 2 or np.all(diff == 0):
        return Paired(int(diff.size), float(diff.mean()), low, high, "none (too few pairs or no difference)", None)
    if diff.size >= MIN_WILCOXON:
        test, p_value = "Wilcoxon signed-rank", float(stats.wilcoxon(a, b).pvalue)
    else:
        test, p_value = "paired t-test", float(stats.ttest_rel(a, b).pvalue)
    return Paired(int(diff.size), float(diff.mean()), low, high, test, p_value)


__all__ = ["CONFIDENCE", "Paired", "Summary", "paired", "summarize", "t_interval"]
