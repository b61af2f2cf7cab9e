"""Figures over repeats: means with 95 % intervals, spread, and differences beyond noise.

Numbers only; the wording lives in report.py and compare.py.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

# pyperf's rule: a standard deviation of 10 % of the mean or more makes a figure unstable.
UNSTABLE_CV = 0.10


@dataclass(frozen=True)
class Estimate:
    """The mean of `n` repeats with a 95 % confidence interval (Student's t)."""

    mean: float
    low: float
    high: float
    n: int
    cv: float  # standard deviation / mean; nan for fewer than 2 repeats

    @property
    def unstable(self) -> bool:
        return not math.isnan(self.cv) and self.cv >= UNSTABLE_CV


def _finite(values: "np.typing.ArrayLike") -> np.ndarray:
    """The values that were measured: a repeat without one (NaN) is left out."""
    data = np.asarray(values, dtype=float)
    return data[np.isfinite(data)]


def estimate(values: "np.typing.ArrayLike") -> Estimate:
    """Mean, 95 % interval and coefficient of variation of the finite values given."""
    data = _finite(values)
    n = len(data)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1, math.nan)
    cv = float(scipy_stats.variation(data, ddof=1)) if mean else math.nan
    if np.ptp(data) == 0:
        # Identical repeats: scipy's interval of no spread is nan, the exact one is the mean.
        return Estimate(mean, mean, mean, n, cv)
    low, high = scipy_stats.t.interval(0.95, n - 1, loc=mean, scale=scipy_stats.sem(data))
    return Estimate(mean, float(low), float(high), n, cv)


@dataclass(frozen=True)
class Change:
    """B's mean minus A's, with a 95 % Welch interval; beyond noise when it excludes 0."""

    a: Estimate
    b: Estimate
    diff: float
    low: float
    high: float

    @property
    def relative(self) -> float:
        return self.diff / self.a.mean if self.a.mean else math.nan

    @property
    def beyond_noise(self) -> bool:
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)


def change(a_values: "np.typing.ArrayLike", b_values: "np.typing.ArrayLike") -> Change:
    """B against A over their finite values; no interval with fewer than 2 repeats a side."""
    a, b = _finite(a_values), _finite(b_values)
    ea, eb = estimate(a), estimate(b)
    diff = eb.mean - ea.mean
    if len(a) < 2 or len(b) < 2:
        return Change(ea, eb, diff, math.nan, math.nan)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # No spread on either side: scipy's interval is nan, the difference is exact.
        return Change(ea, eb, diff, diff, diff)
    with warnings.catch_warnings():
        # One side's identical repeats (a hit rate of 1.0 every time) have an exact variance
        # of 0, which scipy's check for nearly identical data warns about all the same.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        interval = scipy_stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    return Change(ea, eb, diff, float(interval.low), float(interval.high))
