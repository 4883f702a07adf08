"""The ranking rule of a task, as docs/scoring.md (sections 4 and 7) states it.

Every row — every method config, the base (taught) model and the reference rows — gets a *class* and a *key*,
for the point estimate and for every bootstrap replicate:

    class 0  utility kept and output not collapsed     key = closeness to the oracle (boards with an oracle whose
                                                             gap passes the guard), else F
    class 1  utility broken, or forget output collapsed key = U
    class 2  failed, diverged, or a scored metric (or its forget quality) missing

A row is ahead of another with a lower class, or the same class and a higher key.

**Utility, per metric, against the gold standard.** Each scored utility metric has a **band**: the range between
the taught model's value and the gold standard's (the oracle's, on a board with one), widened by the metric's
budget b_m = ``budget`` × its minimum meaningful effect (a metric without one: ``budget`` × 0.1 of the base model's
per-item SD):

    higher is better   v ≥ min(v_taught, v_gold) − b_m
    lower is better    v ≤ max(v_taught, v_gold) + b_m
    closer to base     min(v_taught, v_gold) − b_m ≤ v ≤ max(v_taught, v_gold) + b_m

A row **breaks utility** when on any scored utility metric its value lies outside the band *and* its change from
the taught model is significant in that direction (its 95 % Δ interval excludes 0): a stated loss beyond the
budget, not a noise excursion (at 16 items one item is more than one minimum effect of an accuracy). The verdict is
a point decision with its evidence — fixed at the point estimates, never drawn per replicate — so a row's class is
the same in every replicate and its rank set carries the uncertainty of its forgetting within its class. No scalar
allowance: one metric that breaks its band breaks utility, whatever the others gain. The oracle's own value is an
end of every band: the gold standard never breaks utility, and no row is charged for a change it shows.

**Collapse.** A row whose forget prompts' output collapsed (``bench.report.scores.collapse_check``) is class 1 at
the point and in every replicate: a collapsed or broken row never outranks the unchanged (taught) model, which is
always class 0 (tests/test_scoring_oracle.py, ``test_degenerate_rows_…``).

Which orders the evidence supports is decided pairwise (``bench.inference.pairwise``), never by overlapping
marginal intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.inference.bootstrap import finite_interval

FAILED = 2.0
#: A utility metric without a declared minimum meaningful effect is budgeted in units of this share of the base
#: model's per-item SD (Cohen's "small" 0.2 SD at the default budget of 2).
FALLBACK_UNIT_SD = 0.1


@dataclass
class UtilityBand:
    """One scored utility metric's allowed range (fixed, from point estimates)."""

    name: str
    better: str
    low: float
    high: float
    budget: float
    gold: float
    #: Whether the band's other end is an oracle's value (a board with a gold standard).
    gold_differs: bool = False

    def kept(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if self.better == "higher":
            return values >= self.low
        if self.better == "lower":
            return values <= self.high
        return (values >= self.low) & (values <= self.high)

    def text(self) -> str:
        if self.better == "higher":
            return f"≥ {self.low:.3g}"
        if self.better == "lower":
            return f"≤ {self.high:.3g}"
        return f"in [{self.low:.3g}, {self.high:.3g}]"


@dataclass
class UtilityVerdict:
    """A row's utility verdict — a point decision, the same in every replicate — and which metrics broke."""

    kept: bool
    broken: list[str] = field(default_factory=list)


def utility_bands(metrics: dict[str, Any], scored_utility: list[str], taught: dict[str, float],
                  gold: dict[str, float], scales: dict[str, float], budget: float) -> list[UtilityBand]:
    """The band of every scored utility metric. ``gold``: name -> the gold standard's value (absent: no oracle)."""
    bands = []
    for name in scored_utility:
        info = metrics[name]
        unit = info.min_effect if info.min_effect else FALLBACK_UNIT_SD * scales.get(name, 0.0)
        b = budget * unit
        t = taught[name]
        g = gold.get(name, t)
        bands.append(UtilityBand(name, info.better, min(t, g) - b, max(t, g) + b, b, g, name in gold))
    return bands


def utility_verdict(bands: list[UtilityBand], values: dict[str, float],
                    significant_change: dict[str, bool]) -> UtilityVerdict:
    """``values``: name -> the row's point value; ``significant_change``: name -> whether its Δ from the taught
    model is significant (its 95 % interval excludes 0). Broken on a metric outside its band with a significant Δ."""
    broken = [band.name for band in bands
              if not band.kept(np.asarray([values[band.name]]))[0] and significant_change.get(band.name, False)]
    return UtilityVerdict(not broken, broken)


def mean_effect(row: Any, effects: dict[str, np.ndarray], names: list[str], resamples: int,
                base_label: str) -> tuple[float, np.ndarray]:
    """(point, replicates) of the mean standardised effect over ``names`` (0 for the base row)."""
    if not names or row.label == base_label:
        return 0.0, np.zeros(resamples)
    point = float(np.mean([row.metrics[n].effect for n in names]))
    return point, np.mean([effects[n] for n in names], axis=0)


def classes_and_keys(result: Any, effects: dict[str, dict[str, np.ndarray]], scored: dict[str, list[str]],
                     verdicts: dict[str, UtilityVerdict], resamples: int, base_label: str,
                     closeness: dict[str, tuple[float, np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[B + 1, R]`` classes and keys of ``result.rows`` (row 0: point estimates). Fills each row's F, U and
    utility verdict on the way; ``verdicts``: label -> its utility verdict (``utility_verdict``)."""
    n_rows = len(result.rows)
    klass = np.full((resamples + 1, n_rows), FAILED)
    key = np.zeros((resamples + 1, n_rows))
    for j, row in enumerate(result.rows):
        eff = effects.get(row.label, {})
        if row.label != base_label and (not eff or any(n not in eff for n in scored["forget"] + scored["utility"])):
            continue
        f_point, f_reps = mean_effect(row, eff, scored["forget"], resamples, base_label)
        u_point, u_reps = mean_effect(row, eff, scored["utility"], resamples, base_label)
        row.forget, row.forget_ci = f_point, _interval(f_reps)
        row.utility, row.utility_ci = u_point, _interval(u_reps)
        verdict = verdicts[row.label]
        row.utility_kept, row.utility_broken_by = verdict.kept, verdict.broken
        f_all, u_all = np.concatenate([[f_point], f_reps]), np.concatenate([[u_point], u_reps])
        if closeness is not None:
            if row.label not in closeness:
                continue
            c_point, c_reps = closeness[row.label]
            f_all = np.concatenate([[c_point], c_reps])
        kept = verdict.kept and row.collapsed is None
        klass[:, j] = 0.0 if kept else 1.0
        key[:, j] = f_all if kept else u_all
    return klass, key  # a non-finite key (a replicate whose FQ could not be formed) stays NaN: never ranked


def competition_ranks(klass: np.ndarray, key: np.ndarray) -> np.ndarray:
    """1 + the number of rows strictly ahead, per replicate (``[B, R]`` in, ``[B, R]`` out); NaN where a row's
    key is not finite in that replicate (it is not ranked there, and passes nobody)."""
    finite = np.isfinite(key)
    ahead = (klass[:, None, :] < klass[:, :, None]) | (
        (klass[:, None, :] == klass[:, :, None]) & (key[:, None, :] > key[:, :, None]))
    ranks = (1 + (ahead & finite[:, None, :]).sum(axis=2)).astype(float)
    ranks[~finite] = np.nan
    return ranks


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    return finite_interval(replicates)[:2]


__all__ = ["FAILED", "UtilityBand", "UtilityVerdict", "classes_and_keys", "competition_ranks", "mean_effect",
           "utility_bands", "utility_verdict"]
