"""Pairwise separation and rank confidence sets: which rows of a ranking the evidence actually orders.

A ranking is a set of pairwise claims ("A is ahead of B"). Each claim is tested on the bootstrap replicates of
the ranking key: for rows A and B, d_r = +1 where A is ahead of B in replicate r, −1 where B is ahead, 0 on a tie,
and the two-sided bootstrap p-value of "neither is ahead" is

    p = min(1, 2 · min(#{d ≤ 0} + 1, #{d ≥ 0} + 1) / (B + 1))

— the interval of the key difference excludes 0 exactly when one row is ahead in all but a tail of the
replicates. The keys are lexicographic (a utility class first, then a score), so the sign is what a difference
means across classes. The family is every pair of rows of one ranking (a task's, or the overall one), adjusted
by **Holm's step-down** procedure, which controls the family-wise error rate — the chance that *any* pair is
declared ordered when it is not — at α (Holm 1979).

**Rank confidence sets** follow from the separated pairs as in Mogstad, Romano, Shaikh & Wilhelm (2024,
"Inference for ranks with applications to mobility across neighbourhoods and academic achievement across
countries", Review of Economic Studies): a row's set runs from 1 + the rows surely ahead of it to R − the rows
surely behind it. Because the pairwise claims hold simultaneously with probability ≥ 1 − α, so do all the rank
sets. Two rows are *tied* when their pair is not separated — never because two marginal intervals overlap
(marginal rank intervals move with third rows: an unstable row widens the rank interval of every row it can
pass).

Holm needs p-values below α / m for its first step (m = R(R − 1)/2 pairs); the smallest bootstrap p-value is
2 / (B + 1), so ``min_resamples`` says how many replicates a ranking of R rows needs before any pair can separate.

Tested on synthetic rankings with known true order: family-wise error rate and rank-set coverage
(tests/test_inference_coverage.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ALPHA = 0.05


@dataclass
class PairTest:
    """One pair of rows: ``a`` is the row ahead at the point estimate (or the first given, on a tie)."""

    a: str
    b: str
    #: Share of replicates in which a is strictly ahead of b, and b of a.
    a_ahead: float
    b_ahead: float
    p_value: float
    #: Holm-adjusted p-value over the pairs of the ranking.
    p_holm: float = 1.0
    separated: bool = False
    #: a's key minus b's where both are in the same class at the point estimate (its 2.5/97.5 % percentiles over
    #: the replicates where they share that class); None across classes.
    key_diff: float | None = None
    key_diff_ci: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Separation:
    """All pairs of one ranking and the rank confidence sets they imply."""

    labels: list[str]
    pairs: list[PairTest] = field(default_factory=list)
    alpha: float = ALPHA
    resamples: int = 0

    def pair(self, x: str, y: str) -> PairTest | None:
        return next((p for p in self.pairs if {p.a, p.b} == {x, y}), None)

    def ahead_of(self, label: str) -> list[str]:
        """Rows surely ahead of ``label``."""
        return [p.a for p in self.pairs if p.separated and p.b == label]

    def behind(self, label: str) -> list[str]:
        return [p.b for p in self.pairs if p.separated and p.a == label]

    def tied_with(self, label: str) -> list[str]:
        return [p.b if p.a == label else p.a for p in self.pairs if label in (p.a, p.b) and not p.separated]

    def rank_set(self, label: str) -> tuple[int, int]:
        """(1 + rows surely ahead, R − rows surely behind)."""
        return 1 + len(self.ahead_of(label)), len(self.labels) - len(self.behind(label))

    def separated_count(self) -> int:
        return sum(p.separated for p in self.pairs)

    def resolvable(self) -> bool:
        """Whether the replicates can resolve Holm's first step at all."""
        return self.resamples >= min_resamples(len(self.labels), self.alpha)

    def to_json(self) -> dict[str, Any]:
        return {"family": "every pair of rows of this ranking", "correction": "Holm step-down (family-wise "
                f"error rate {self.alpha:g})", "resamples": self.resamples, "labels": self.labels,
                "pairs": [p.to_json() for p in self.pairs],
                "rank_sets": {label: list(self.rank_set(label)) for label in self.labels}}


def min_resamples(n_rows: int, alpha: float = ALPHA) -> int:
    """Smallest B at which the smallest bootstrap p-value, 2 / (B + 1), passes Holm's first step α / m."""
    m = max(1, n_rows * (n_rows - 1) // 2)
    return math.ceil(2 * m / alpha)


def holm(p_values: list[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in input order."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


def ahead(klass: np.ndarray, key: np.ndarray, i: int, j: int) -> np.ndarray:
    """Per replicate: +1 where row i is ahead of row j (lower class, or the same class and a higher key), −1
    where j is ahead of i, 0 on a tie (the caller drops replicates where either key is not finite)."""
    i_first = (klass[:, i] < klass[:, j]) | ((klass[:, i] == klass[:, j]) & (key[:, i] > key[:, j]))
    j_first = (klass[:, j] < klass[:, i]) | ((klass[:, i] == klass[:, j]) & (key[:, j] > key[:, i]))
    return i_first.astype(int) - j_first.astype(int)


def sign_p_value(signs: np.ndarray) -> float:
    b = signs.size
    return float(min(1.0, 2 * min(np.count_nonzero(signs <= 0) + 1, np.count_nonzero(signs >= 0) + 1) / (b + 1)))


def separate(labels: list[str], klass: np.ndarray, key: np.ndarray, alpha: float = ALPHA) -> Separation:
    """Test every pair of a ranking. ``klass`` and ``key`` are ``[B + 1, R]``: row 0 the point estimate, rows
    1.. the bootstrap replicates; a row is ahead with a lower class, or the same class and a higher key. A pair
    is tested on the replicates where both keys are finite (a non-finite replicate is counted on its row and
    never ranked)."""
    points, reps_k, reps_v = klass[0], klass[1:], key[1:]
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            first, second = (j, i) if ahead(klass[:1], key[:1], j, i)[0] > 0 else (i, j)
            usable = np.isfinite(reps_v[:, first]) & np.isfinite(reps_v[:, second])
            signs = ahead(reps_k[usable], reps_v[usable], first, second)
            test = PairTest(labels[first], labels[second], float(np.mean(signs > 0)), float(np.mean(signs < 0)),
                            sign_p_value(signs))
            if points[first] == points[second]:
                same = (reps_k[:, first] == points[first]) & (reps_k[:, second] == points[first])
                diffs = reps_v[same, first] - reps_v[same, second]
                diffs = diffs[np.isfinite(diffs)]
                test.key_diff = float(key[0, first] - key[0, second])
                if diffs.size > 1:
                    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
                    test.key_diff_ci = (float(low), float(high))
            pairs.append(test)
    for test, adjusted in zip(pairs, holm([t.p_value for t in pairs])):
        test.p_holm = adjusted
        test.separated = adjusted < alpha and test.a_ahead > test.b_ahead
    return Separation(list(labels), pairs, alpha, int(reps_k.shape[0]))


__all__ = ["ALPHA", "PairTest", "Separation", "ahead", "holm", "min_resamples", "separate", "sign_p_value"]
