"""Mechanism columns on oracle boards (docs/teaching.md, "Mechanism diagnostics"): per method row and module kind,
the share of the row's weight change that lies inside the teaching adapter's span (``bench.eval.mechanism``, recorded
by the runner in each taught cell's ``extras.mechanism``), pooled over seeds.

Why on the board: a reviewer asks whether a method does more than move back along the adapter that taught the target.
A share near 1 says the change lives in the teaching adapter's row and column spaces (a partial revert is possible);
near the chance level (the share an isotropic random change would have) says it does not. The share alone is not a
verdict on forgetting: a method can forget through the span or around it; read it beside FQ.

Interval over seeds: the mean of the seeds' values ± t_{S−1, 0.975} · sd / √S (the seeds are independent training
runs; the value is a deterministic function of the trained weights, so items do not enter), clipped to the share's
range [0, 1]; with one seed no interval is formed (shown as such). Coverage simulated in
``tests/test_mechanism_report.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

#: The kinds shown, in this order: every module the teaching adapter changed, then each projection kind.
KINDS_SHOWN = ("all", "q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class SeedMean:
    """A value pooled over seeds: the mean and its t-interval (``None`` with one seed)."""

    mean: float
    low: float | None
    high: float | None
    seeds: int

    @classmethod
    def of(cls, values: list[float], bounds: tuple[float, float] | None = None) -> SeedMean:
        n = len(values)
        mean = sum(values) / n
        if n < 2:
            return cls(mean, None, None, n)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        if bounds is not None:
            low, high = max(bounds[0], low), min(bounds[1], high)
        return cls(mean, low, high, n)

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "seeds": self.seeds}


@dataclass
class MechanismRow:
    """One method row of a task: per kind its share inside the teaching span, the chance level, the size of its
    change beside the teaching adapter's (``norm_ratio``), or the reason nothing was computed."""

    label: str
    share: dict[str, SeedMean] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    norm_ratio: SeedMean | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"row": self.label, "share": {k: v.to_json() for k, v in self.share.items()},
                "chance": self.chance, "norm_ratio": None if self.norm_ratio is None else self.norm_ratio.to_json(),
                "errors": self.errors}


def mechanism_rows(table: Any, task: str) -> list[MechanismRow]:
    """Every method row of ``task`` whose cells recorded the diagnostics (reference rows have none)."""
    out = []
    for cell in table.cells_for(task):
        records = [r.extras.get("mechanism") for r in cell.results if r.status == "done"]
        records = [m for m in records if m is not None]
        if not records:
            continue
        row = MechanismRow(table.label(cell), errors=[m["error"] for m in records if "error" in m])
        done = [m["kinds"] for m in records if "kinds" in m]
        for kind in KINDS_SHOWN:
            values = [k[kind]["share"] for k in done if kind in k and k[kind]["share"] is not None]
            if values:
                row.share[kind] = SeedMean.of(values, (0.0, 1.0))
                row.chance[kind] = max(k[kind]["chance"] for k in done if kind in k and k[kind]["chance"] is not None)
        ratios = [k["all"]["norm_ratio"] for k in done if "all" in k and k["all"]["norm_ratio"] is not None]
        row.norm_ratio = SeedMean.of(ratios) if ratios else None
        out.append(row)
    return out


def cell_text(value: SeedMean | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if value.low is None:
        return f"{value.mean:.{digits}f} (1 seed)"
    return f"{value.mean:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}]"


LEGEND = ("Mechanism (docs/teaching.md): per method row, the share of its weight change ΔW = W_row − W_taught that "
          "lies inside the teaching adapter's column and row spaces, ‖P_U ΔW P_V‖² / ‖ΔW‖², energy-weighted over the "
          "layers of each module kind (all = every module the adapter changed); chance = the share of an isotropic "
          "random change; size = ‖ΔW‖ / ‖ΔW_teach‖ over all modules. Mean over seeds with its 95 % t-interval (none "
          "with one seed). Near 1: the change lives in the teaching adapter's span (moving back along it is "
          "possible); near chance: it does not. Not part of the ranking.")


def table_rows(rows: list[MechanismRow]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of the mechanism table: row, one column per kind, chance (all), size."""
    header = ["row", *(f"share {k}" for k in KINDS_SHOWN), "chance (all)", "size"]
    cells = []
    for r in rows:
        chance = r.chance.get("all")
        cells.append([r.label, *(cell_text(r.share.get(k)) for k in KINDS_SHOWN),
                      "–" if chance is None else f"{chance:.1e}", cell_text(r.norm_ratio)])
        if r.errors:
            cells[-1][0] += f" ({len(r.errors)} not computed: {r.errors[0]})"
    return header, cells


__all__ = ["KINDS_SHOWN", "LEGEND", "MechanismRow", "SeedMean", "cell_text", "mechanism_rows", "table_rows"]
