"""Bootstrap confidence intervals and paired deltas.

Every metric is a mean over evaluation items, so its 95 % CI is a percentile bootstrap over items
(1000 resamples, fixed seed: the same values always give the same interval). A delta versus the base
model is computed *paired* (the same items were evaluated on both), which is much tighter than
comparing two independent intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .api import Better, Group, Metric

RESAMPLES = 1000
SEED = 12345


def bootstrap_ci(values: Sequence[float], resamples: int = RESAMPLES, alpha: float = 0.05,
                 seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean. A single value (or none) gives a zero-width interval."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (math.nan, math.nan)
    if arr.size == 1:
        return (float(arr[0]), float(arr[0]))
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def mean_metric(name: str, group: Group, values: Sequence[float], better: Better,
                kind: str = "other") -> Metric:
    """A metric that is the mean of per-item values, with its bootstrap CI."""
    vals = [float(v) for v in values]
    value = float(np.mean(vals)) if vals else math.nan
    low, high = bootstrap_ci(vals)
    return Metric(name=name, group=group, value=value, better=better, n=len(vals), ci_low=low,
                  ci_high=high, kind=kind, per_item=vals)  # type: ignore[arg-type]


def attach_delta(metric: Metric, base: Metric) -> Metric:
    """Set ``metric.delta`` (metric − base) with a paired bootstrap CI when items align."""
    metric.delta = metric.value - base.value
    if metric.per_item is not None and base.per_item is not None and len(metric.per_item) == len(base.per_item):
        diffs = np.asarray(metric.per_item) - np.asarray(base.per_item)
        metric.delta_ci_low, metric.delta_ci_high = bootstrap_ci(diffs)
    return metric


def significant(low: float | None, high: float | None) -> bool:
    """A delta is significant when its 95 % CI excludes zero."""
    return low is not None and high is not None and (low > 0 or high < 0)
