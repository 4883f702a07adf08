"""Uncertainty: bootstrap intervals over items, exact intervals for proportions, bootstrap p-values and the
Benjamini–Hochberg adjustment, and the attacks' recovered share.

Every metric is a mean over evaluation items. A single evaluation's 95 % CI is a percentile bootstrap
over items (fixed seed: the same values always give the same interval). Across seeds and rows the leaderboard
uses the *crossed* bootstrap of ``bench.inference.bootstrap`` (one item draw shared by every seed and row, a
random-effects seed term per row), so that both sources of variation count once each: a t-interval across seeds
alone gives a zero-width interval when every seed has the same value, and fresh items per seed count the item
variance S times too little.

A proportion (every per-item value 0 or 1) at small n gets at least its exact Clopper–Pearson interval:
0/16 has the bootstrap interval [0, 0], but its exact 95 % upper bound is 0.206.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.api import Better, Group, Metric
from bench.eval.scales import LOGLIK_EFFECT
from bench.inference.bootstrap import CrossedDraws, row_replicates, weighted_means

RESAMPLES = 1000
SEED = 12345
ALPHA = 0.05


def _as_weights(weights: Sequence[float] | None) -> np.ndarray | None:
    return None if weights is None else np.asarray(weights, dtype=float)


def bootstrap_ci(values: Sequence[float], resamples: int = RESAMPLES, alpha: float = ALPHA,
                 seed: int = SEED, weights: Sequence[float] | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of the (weighted) mean. A single value (or none) gives a zero-width interval."""
    arr, w = np.asarray(values, dtype=float), _as_weights(weights)
    if arr.size == 0:
        return (math.nan, math.nan)
    if arr.size == 1:
        return (float(arr[0]), float(arr[0]))
    idx = np.random.default_rng(seed).integers(0, arr.size, size=(resamples, arr.size))
    return percentile_interval(weighted_means(arr[idx], None if w is None else w[idx]), alpha)


def is_proportion(values: Sequence[float], bounds: Sequence[float | None] | None) -> bool:
    """Whether a metric is a share of items: declared range [0, 1] and every per-item value 0 or 1."""
    if bounds is None or tuple(bounds) != (0.0, 1.0) or len(values) == 0:
        return False
    return all(v in (0.0, 1.0) for v in values)


def clopper_pearson(successes: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Exact two-sided (1 − alpha) interval of a binomial proportion (Clopper & Pearson 1934)."""
    from scipy.stats import beta

    if n <= 0:
        return (math.nan, math.nan)
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return (low, high)


def widen_for_proportion(interval: tuple[float, float], value: float, n_items: int,
                         alpha: float = ALPHA) -> tuple[float, float]:
    """The union of a bootstrap interval and the exact interval of ``round(value · n_items)`` successes.

    The bootstrap of a proportion collapses to a point at 0/n or n/n; the exact interval never does.
    """
    low, high = clopper_pearson(int(round(value * n_items)), n_items, alpha)
    return (min(interval[0], low), max(interval[1], high))


def mean_metric(name: str, group: Group, values: Sequence[float], better: Better, kind: str = "other", *,
                min_effect: float | None = None, bounds: tuple[float | None, float | None] | None = None,
                weights: Sequence[float] | None = None, chance: float | None = None) -> Metric:
    """A metric that is the (weighted) mean of per-item values, with its bootstrap (or exact) CI."""
    vals = [float(v) for v in values]
    w = None if weights is None else [float(x) for x in weights]
    value = float(weighted_means(np.asarray(vals), _as_weights(w))) if vals else math.nan
    low, high = bootstrap_ci(vals, weights=w)
    if w is None and is_proportion(vals, bounds):
        low, high = widen_for_proportion((low, high), value, len(vals))
    return Metric(name=name, group=group, value=value, better=better, n=len(vals), ci_low=low,
                  ci_high=high, kind=kind, per_item=vals, weights=w, min_effect=min_effect,  # type: ignore[arg-type]
                  bounds=bounds, chance=chance)


def attach_delta(metric: Metric, base: Metric, resamples: int = RESAMPLES, seed: int = SEED) -> Metric:
    """Set ``metric.delta`` (metric − base) with a paired bootstrap CI when items align."""
    metric.delta = metric.value - base.value
    if metric.per_item is None or base.per_item is None or len(metric.per_item) != len(base.per_item):
        return metric
    n = len(metric.per_item)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    mine, theirs = np.asarray(metric.per_item), np.asarray(base.per_item)
    w_mine, w_theirs = _as_weights(metric.weights), _as_weights(base.weights)
    deltas = (weighted_means(mine[idx], None if w_mine is None else w_mine[idx])
              - weighted_means(theirs[idx], None if w_theirs is None else w_theirs[idx]))
    metric.delta_ci_low, metric.delta_ci_high = percentile_interval(deltas) if n > 1 else (metric.delta, metric.delta)
    return metric


def significant(low: float | None, high: float | None) -> bool:
    """A delta is significant when its 95 % CI excludes zero (uncorrected; the leaderboard's stars use
    ``benjamini_hochberg`` over all its deltas instead)."""
    return low is not None and high is not None and (low > 0 or high < 0)


def percentile_interval(replicates: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided p-value of "the true value is 0" from bootstrap replicates of an estimate.

    Twice the smaller tail share at zero, with the +1 correction that keeps it above 0 (Davison &
    Hinkley 1997, §4.4): 2 · min(#{r ≤ 0} + 1, #{r ≥ 0} + 1) / (B + 1), capped at 1. An estimate that is 0
    in every replicate (nothing changed) gets p = 1.
    """
    b = replicates.size
    low = (np.count_nonzero(replicates <= 0) + 1) / (b + 1)
    high = (np.count_nonzero(replicates >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(low, high)))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg (1995) adjusted p-values (q-values), in input order.

    Rejecting every q < alpha controls the false discovery rate at alpha across the family.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


# -- attacks: recovered fraction (bench.engine.attacks) ------------------------------------------------
#: The range a recovered share is reported in: beyond it the denominator (the method's own drop) is too small
#: against the attack's noise for a share to mean anything (robustness v2, docs/attacks.md).
RECOVERY_RANGE = (-1.0, 2.0)


@dataclass(frozen=True)
class Measured:
    """One measurement of an attack: ``[S, n]`` per-item values and, for a ratio-of-sums metric, their weights."""

    values: np.ndarray
    weights: np.ndarray | None = None

    @classmethod
    def of(cls, x: Any) -> Measured:
        """From per-item values (``[n]`` or ``[S, n]``), ``{"values", "weights"}``, or a list of those per seed."""
        if isinstance(x, dict):
            x = [x]
        if isinstance(x, (list, tuple)) and x and isinstance(x[0], dict):
            values = np.atleast_2d(np.asarray([d["values"] for d in x], float))
            if all(d.get("weights") is None for d in x):
                return cls(values)
            if any(d.get("weights") is None for d in x):
                raise ValueError("a weighted measurement needs weights for every seed")
            return cls(values, np.atleast_2d(np.asarray([d["weights"] for d in x], float)))
        return cls(np.atleast_2d(np.asarray(x, float)))

    def mean(self) -> float:
        """The mean over seeds of each seed's (weighted) mean, as the board's row value."""
        return float(weighted_means(self.values, self.weights).mean())


def recovery(base: Any, unlearned: Any, attacked: dict[str, Any], base_attacked: dict[str, Any],
             resamples: int = RESAMPLES, seed: int = SEED, min_effect: float = LOGLIK_EFFECT,
             control: Any = None, control_attacked: dict[str, Any] | None = None,
             forgot: tuple[float, float] | None = None) -> dict[str, Any]:
    """The control-adjusted recovered share of an attack (robustness v3), its worst variant and interval
    (``bench.engine.attacks`` and docs/attacks.md explain each number):

        R = max_v [(A_v − U) − (C_v − C)] / (T − U)

    U and A_v: the row's forget probe (per-item mean) unattacked and under variant v of the attack; T: the taught
    (base) model's; C and C_v: the **control**'s, unattacked and under the *same* variant v — the oracle
    (``control``, ``control_attacked``: a model that never learned the target, so that what an attack teaches or
    breaks in any model is taken out) where the board has one, else the base model (``base_attacked``). The worst
    variant is the maximum of the matched differences, inside every replicate, so the interval pays for the choice.
    R is reported only where the row forgot — its forget quality (or F) interval ``forgot`` lies above 0 (without
    it: the probe's drop T − U at least ``min_effect`` and beyond its interval) — and R's interval lies within
    ``RECOVERY_RANGE``; otherwise ``recovered`` is None with the reason, and ``adjusted_change`` (the numerator,
    with its interval) says what the attack did.

    Each argument holds per-item values, one row per seed (``[S, n]``; a flat list is one seed; a control with one
    row serves every seed), or ``{"values", "weights"}`` (or a list of them, one per seed) for a ratio-of-sums
    metric such as micro-F1 (``Measured``): the interval is the leaderboard's crossed bootstrap
    (``bench.inference.bootstrap``): one item draw per replicate shared by every measurement, and a random-effects
    seed term per measurement drawn with the same multipliers (the same training run is attacked and measured)."""
    b, u = Measured.of(base), Measured.of(unlearned)
    att = {k: Measured.of(v) for k, v in attacked.items()}
    if control is not None and control_attacked is not None:
        c0, ctl, control_kind = Measured.of(control), {k: Measured.of(v) for k, v in control_attacked.items()}, "oracle"
    else:
        c0, ctl, control_kind = b, {k: Measured.of(v) for k, v in base_attacked.items()}, "base"
    if set(ctl) != set(att):
        raise ValueError(f"the control was attacked with other variants ({sorted(ctl)}) than the row ({sorted(att)})")
    n_seeds, n = u.values.shape
    if not all(x.values.shape[1] == n for x in [b, c0, *att.values(), *ctl.values()]):
        raise ValueError("attack measurements must score the same items")
    if not all(x.values.shape == u.values.shape for x in [*att.values()]):
        raise ValueError("attack measurements must score the same items for the same seeds")
    draws = CrossedDraws.draw([n], resamples, np.random.default_rng(seed))
    multipliers = draws.seed_multipliers(n_seeds)

    def replicates(x: Measured) -> np.ndarray:
        return row_replicates(x.values, draws.items[n], multipliers if x.values.shape[0] == n_seeds else None,
                              x.weights)

    b_r, u_r, c0_r = replicates(b), replicates(u), replicates(c0)
    gap, gap_r = b.mean() - u.mean(), b_r - u_r
    adjusted = {k: float((att[k].mean() - u.mean()) - (ctl[k].mean() - c0.mean())) for k in att}
    control_r = {k: replicates(ctl[k]) - c0_r for k in ctl}
    adjusted_r = {k: (replicates(att[k]) - u_r) - control_r[k] for k in att}
    worst_name = max(adjusted, key=adjusted.get)
    worst_r = np.max(np.stack(list(adjusted_r.values())), axis=0)
    control_change = {k: float(ctl[k].mean() - c0.mean()) for k in ctl}
    out: dict[str, Any] = {
        "items": n, "seeds": n_seeds, "forgotten": float(gap), "forgotten_ci": list(percentile_interval(gap_r)),
        "worst_variant": worst_name, "attacked_minus_unlearned": float(att[worst_name].mean() - u.mean()),
        "variant_means": {k: float(v.mean()) for k, v in att.items()},
        "control_kind": control_kind, "control_variant": worst_name, "control": control_change[worst_name],
        "control_by_variant": control_change,
        "control_ci": list(percentile_interval(control_r[worst_name])),
        "adjusted_change": adjusted[worst_name], "adjusted_change_ci": list(percentile_interval(worst_r)),
        "recovered": None, "recovered_ci": None, "recovered_note": None, "min_effect": min_effect,
        "version": 3,
    }
    low, high = out["forgotten_ci"]
    if forgot is not None and not forgot[0] > 0:
        out["recovered_note"] = (f"nothing to recover: the row's forget quality (or F) interval {_ci_text(forgot)} "
                                 "does not lie above 0")
        return out
    if forgot is None and not (significant(low, high) and gap >= min_effect):
        out["recovered_note"] = (f"nothing to recover: the forget probe fell by {gap:+.3g} {_ci_text((low, high))}, "
                                 f"less than its minimum meaningful effect {min_effect:g} or within its interval")
        return out
    if not gap > 0:
        out["recovered_note"] = f"no share: the forget probe did not fall ({gap:+.3g}); see the change"
        return out
    share = adjusted[worst_name] / gap
    ratio = worst_r / np.where(gap_r > 0, gap_r, np.nan)
    finite = ratio[np.isfinite(ratio)]
    ci = percentile_interval(finite) if len(finite) > 1 else (float("nan"), float("nan"))
    if not (RECOVERY_RANGE[0] <= ci[0] and ci[1] <= RECOVERY_RANGE[1]):
        out["recovered_note"] = (f"no share: {share:+.3g} {_ci_text(ci)} leaves [{RECOVERY_RANGE[0]:g}, "
                                 f"{RECOVERY_RANGE[1]:g}] (the drop is small against the attack's own effect); "
                                 "see the change")
        return out
    out["recovered"], out["recovered_ci"] = float(share), list(ci)
    return out


def _ci_text(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:+.3g}, {ci[1]:+.3g}]"
