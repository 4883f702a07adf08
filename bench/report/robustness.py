"""Robustness columns: per task, method and attack, the recovered fraction of what the method forgot, pooled
over seeds (``bench.engine.attacks.recovery``: hierarchical bootstrap over seeds and items), and the base
model's change under the same attack (the control)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.eval.stats import recovery


@dataclass
class Robustness:
    """One (row, attack) entry: the pooled summary, or why there is none."""

    label: str
    attack: str
    status: str  # done | failed | missing
    summary: dict[str, Any] | None = None
    reason: str | None = None


def attack_labels(records: list[dict[str, Any]], task: str) -> list[str]:
    return sorted({r["label"] for r in records if r["task"] == task})


def summarise(records: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None, str | None]:
    """Pool one cell group's results of one attack (one per seed) into a single summary."""
    failed = [r for r in records if r.get("status") != "done"]
    if failed:
        return "failed", None, "; ".join(f"seed {r['seed']}: {r.get('reason')}" for r in failed)
    done = sorted(records, key=lambda r: r["seed"])
    values = [r["values"] for r in done]
    variants = list(values[0]["attacked"])
    summary = recovery([v["base"] for v in values], [v["unlearned"] for v in values],
                       {k: [v["attacked"][k] for v in values] for k in variants},
                       {k: [v["base_attacked"][k] for v in values] for k in variants})
    summary["info"] = done[0].get("info", {})
    summary["seconds"] = sum(r.get("seconds", 0.0) for r in done)
    return "done", summary, None


def robustness_entries(table: Any, task: str) -> list[Robustness]:
    """Every (method row, attack) of ``task``: grouped by the leaderboard's cell groups."""
    out = []
    records = [r for r in table.attacks if r["task"] == task]
    for label_attack in attack_labels(records, task):
        for cell in table.cells_for(task):
            ids = {r.cell_id for r in cell.results}
            mine = [r for r in records if r["label"] == label_attack and r["cell_id"] in ids]
            if not mine:
                out.append(Robustness(table.label(cell), label_attack, "missing"))
                continue
            status, summary, reason = summarise(mine)
            out.append(Robustness(table.label(cell), label_attack, status, summary, reason))
    return out
