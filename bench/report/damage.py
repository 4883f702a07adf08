"""The ``on_oracle`` baseline on oracle boards (docs/teaching.md, "Methods on the oracle"): every method applied
to the oracle — a model that never learned the forget target, so there is nothing to forget — and scored against
that oracle (its evaluation is the rows' base; ``ResultTable.damage``). What a method changes there is its damage
signature: utility it costs and forget-side change it causes without a target, beside its score on the taught
model. Apart from the ranking and never a claim of the board (no stars); intervals are the board's crossed
bootstrap, conditional on one training run at one seed."""

from __future__ import annotations

from typing import Any

from bench.report.reporters.common import fmt_signed, interval

LEGEND = ("Methods on the oracle (not ranked): each method trained as on the taught model, at the first seed, but "
          "starting from the oracle, which never learned the forget target; Δ against the oracle with 95 % "
          "intervals (one training run). A utility change here is damage the method does with nothing to forget; a "
          "forget-side change is what its loss does to a model that lacks the target.")


def damage_rows(table: Any, task: str) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the task's table: F and U against the oracle, then Δ of each scored metric; None when the
    runs have no ``on_oracle`` cells for the task."""
    result = table.damage.get(task)
    if result is None:
        return None
    names = result.scored["forget"] + result.scored["utility"]
    header = ["row (on the oracle)", "F", "U", *[f"Δ `{n}`" for n in names]]
    rows = []
    for row in result.rows:
        if row.label == "base":
            continue
        cells = [row.label, _score(row.forget, row.forget_ci), _score(row.utility, row.utility_ci)]
        for name in names:
            stats = row.metrics.get(name)
            ci = None if stats is None else (stats.delta_ci_low, stats.delta_ci_high)
            cells.append("–" if stats is None or stats.delta is None else
                         f"{fmt_signed(stats.delta)} {interval(ci, signed=True)}")
        rows.append(cells)
    return header, rows


def _score(value: float | None, ci: tuple[float, float] | None) -> str:
    return "–" if value is None else f"{fmt_signed(value)} {interval(ci, signed=True)}"


def damage_json(table: Any, task: str) -> list[dict[str, Any]] | None:
    """The task's ``on_oracle`` rows as JSON (row scores and per-metric deltas against the oracle)."""
    result = table.damage.get(task)
    return None if result is None else [r.to_json() for r in result.rows if r.label != "base"]


__all__ = ["LEGEND", "damage_json", "damage_rows"]
