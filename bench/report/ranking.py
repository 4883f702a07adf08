"""The ranking rule of a task, as docs/scoring.md (sections 4 and 7) states it.

Every row — every method config, the base (taught) model and the reference rows — gets a *class* and a *key*,
for the point estimate and for every bootstrap replicate:

    class 0  utility kept: U ≥ floor           key = closeness to the oracle 1 − |1 − FQ| (boards with an oracle
                                                     whose gap a scored forget metric separates), else F
    class 1  utility broken                     key = U
    class 2  failed, diverged, or a scored metric (or its forget quality) missing

A row is ahead of another with a lower class, or the same class and a higher key. The floor is −budget; on a
board with an oracle, min(0, U_oracle) − budget (a row is not charged for a utility change the gold standard
itself shows). Which orders the evidence supports is decided pairwise (``bench.inference.pairwise``), never by
overlapping marginal intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FAILED = 2.0


def mean_effect(row: Any, effects: dict[str, np.ndarray], names: list[str], resamples: int,
                base_label: str) -> tuple[float, np.ndarray]:
    """(point, replicates) of the mean standardised effect over ``names`` (0 for the base row)."""
    if not names or row.label == base_label:
        return 0.0, np.zeros(resamples)
    point = float(np.mean([row.metrics[n].effect for n in names]))
    return point, np.mean([effects[n] for n in names], axis=0)


def utility_floor(result: Any, effects: dict[str, dict[str, np.ndarray]], scored: dict[str, list[str]],
                  budget: float, resamples: int, base_label: str) -> np.ndarray:
    """The lowest U still "kept", per replicate (index 0: the point estimate)."""
    floor = np.full(resamples + 1, -budget)
    oracle = result.row(result.oracle) if result.oracle else None
    eff = effects.get(result.oracle or "", {})
    if oracle is None or not scored["utility"] or any(n not in eff for n in scored["utility"]):
        return floor
    u_point, u_reps = mean_effect(oracle, eff, scored["utility"], resamples, base_label)
    return np.minimum(0.0, np.concatenate([[u_point], u_reps])) - budget


def classes_and_keys(result: Any, effects: dict[str, dict[str, np.ndarray]], scored: dict[str, list[str]],
                     budget: float, resamples: int, base_label: str,
                     closeness: dict[str, tuple[float, np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[B + 1, R]`` classes and keys of ``result.rows`` (row 0: point estimates). Fills each row's F, U and
    utility verdict on the way."""
    n_rows = len(result.rows)
    klass = np.full((resamples + 1, n_rows), FAILED)
    key = np.zeros((resamples + 1, n_rows))
    floor = utility_floor(result, effects, scored, budget, resamples, base_label)
    for j, row in enumerate(result.rows):
        eff = effects.get(row.label, {})
        if row.label != base_label and (not eff or any(n not in eff for n in scored["forget"] + scored["utility"])):
            continue
        f_point, f_reps = mean_effect(row, eff, scored["forget"], resamples, base_label)
        u_point, u_reps = mean_effect(row, eff, scored["utility"], resamples, base_label)
        row.forget, row.forget_ci = f_point, _interval(f_reps)
        row.utility, row.utility_ci = u_point, _interval(u_reps)
        row.utility_kept = bool(u_point >= floor[0])
        f_all, u_all = np.concatenate([[f_point], f_reps]), np.concatenate([[u_point], u_reps])
        if closeness is not None:
            if row.label not in closeness:
                continue
            c_point, c_reps = closeness[row.label]
            f_all = np.concatenate([[c_point], c_reps])
        kept = u_all >= floor
        klass[:, j] = np.where(kept, 0.0, 1.0)
        key[:, j] = np.where(kept, f_all, u_all)
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
    from bench.inference.bootstrap import finite_interval

    return finite_interval(replicates)[:2]


__all__ = ["FAILED", "classes_and_keys", "competition_ranks", "mean_effect", "utility_floor"]
