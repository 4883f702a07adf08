"""Normalised scores and rankings for leaderboards.

Metrics live on different scales (pass rates, log-likelihoods, perplexities), so every cell is scored
relative to the base model on the same task:

  relative gain of a metric   r = s · (v − b) / max(|b|, FLOOR),   clipped to [−1, 1]

where v is the cell's value, b the base model's (r = 0 when the paired 95 % CI of v − b includes zero:
a change the evaluation cannot distinguish from noise earns nothing), and s = +1 when the metric's ``better`` direction is
"higher", −1 when it is "lower" (so r > 0 always means "moved the way the method wants"). FLOOR = 0.01
keeps metrics whose base value is ~0 (GSM8K accuracy of a tiny model) from exploding; clipping keeps
one metric from dominating.

  forget score   F = mean of r over the task's primary forget metrics   (> 0: forgot; 1: maximal)
  utility score  U = mean of r over the task's primary utility metrics  (0: kept; < 0: lost)
  combined       C = F + U

Per task, methods are ranked by C. The mean win rate (as in HELM) of a method is, averaged over tasks,
the share of the other methods whose C it beats (ties count half). A cell that failed or diverged
produced no model: it scores nothing and loses every comparison on that task. These scores summarise;
the per-metric tables with CIs are the evidence, and a difference inside the CIs is marked there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .stats import significant

FLOOR = 0.01


def relative_gain(value: float, base: float, better: str) -> float:
    sign = 1.0 if better == "higher" else -1.0
    r = sign * (value - base) / max(abs(base), FLOOR)
    return max(-1.0, min(1.0, r))


@dataclass
class Scores:
    forget: float
    utility: float

    @property
    def combined(self) -> float:
        return self.forget + self.utility


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def cell_scores(metrics: dict[str, dict[str, Any] | None], base: dict[str, dict[str, Any]]) -> Scores | None:
    """Scores of one cell from its (aggregated) metrics and the base model's; None without metrics."""
    gains: dict[str, list[float]] = {"forget": [], "utility": []}
    for name, m in metrics.items():
        if m is None or name not in base or not m.get("primary", True):
            continue
        if not (math.isfinite(m["value"]) and math.isfinite(base[name]["value"])):
            continue
        noise = m.get("delta_ci_low") is not None and not significant(m.get("delta_ci_low"), m.get("delta_ci_high"))
        gains[m["group"]].append(0.0 if noise else relative_gain(m["value"], base[name]["value"], m["better"]))
    if not gains["forget"] and not gains["utility"]:
        return None
    return Scores(_mean(gains["forget"]) if gains["forget"] else 0.0,
                  _mean(gains["utility"]) if gains["utility"] else 0.0)


def win_rates(per_task: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """Mean win rate per method from ``{task: {method: combined score or None (failed)}}``."""
    totals: dict[str, list[float]] = {}
    for scores in per_task.values():
        methods = list(scores)
        for m in methods:
            others = [o for o in methods if o != m]
            if not others:
                continue
            wins = sum(_beats(scores[m], scores[o]) for o in others)
            totals.setdefault(m, []).append(wins / len(others))
    return {m: _mean(v) for m, v in totals.items()}


def _beats(a: float | None, b: float | None) -> float:
    if a is None and b is None:
        return 0.5
    if a is None:
        return 0.0
    if b is None:
        return 1.0
    return 1.0 if a > b else 0.5 if a == b else 0.0


def pareto_front(points: Iterable[tuple[str, float, float]]) -> list[str]:
    """Labels of the points not dominated in (x up, y up): no other point is >= on both and > on one."""
    pts = list(points)
    front = []
    for label, x, y in pts:
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for _, x2, y2 in pts)
        if not dominated:
            front.append(label)
    return front
