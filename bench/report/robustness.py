"""Robustness columns (v3): per task, method and attack, the recovered share of what the method forgot, pooled
over seeds (``bench.eval.stats.recovery``: the crossed bootstrap), against the oracle as the control where the
board has one (the base model otherwise), variant by variant; shown only where the row forgot on the scored
metrics (its FQ, or F, interval above 0). Model attacks (relearn, quantize) get the share on the forget probe and
on each scored generative forget metric (``generated``); prompt attacks on the probe only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.eval.scales import SHARE_EFFECT
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


def summarise(records: list[dict[str, Any]], control: dict[str, Any] | None = None,
              forgot: tuple[float, float] | None = None) -> tuple[str, dict[str, Any] | None, str | None]:
    """Pool one cell group's results of one attack (one per seed) into a single summary. ``control``: the oracle's
    record of the same attack (its ``unlearned`` and ``attacked`` values are the control's); ``forgot``: the row's
    forget-quality (or F) interval, which gates the share."""
    failed = [r for r in records if r.get("status") != "done"]
    if failed:
        return "failed", None, "; ".join(f"seed {r['seed']}: {r.get('reason')}" for r in failed)
    done = sorted(records, key=lambda r: r["seed"])
    values = [r["values"] for r in done]
    variants = list(values[0]["attacked"])
    oracle = control["values"] if control is not None else None
    summary = recovery([v["base"] for v in values], [v["unlearned"] for v in values],
                       {k: [v["attacked"][k] for v in values] for k in variants},
                       {k: [v["base_attacked"][k] for v in values] for k in variants},
                       control=None if oracle is None else oracle["unlearned"],
                       control_attacked=None if oracle is None else oracle["attacked"], forgot=forgot)
    summary["generated"] = generated_recovery(values, oracle, forgot)
    summary["info"] = done[0].get("info", {})
    summary["seconds"] = sum(r.get("seconds", 0.0) for r in done)
    return "done", summary, None


def generated_recovery(values: list[dict[str, Any]], oracle: dict[str, Any] | None,
                       forgot: tuple[float, float] | None) -> dict[str, dict[str, Any]]:
    """Per scored generative forget metric that a model attack re-measured on every seed (and on the oracle, where
    it is the control): the same recovered share as the probe's, on the metric the board ranks by. A model attack
    has one variant (``model``)."""
    names = set.intersection(*(set(v.get("generated", {})) for v in values)) if values else set()
    if oracle is not None:
        names &= set(oracle.get("generated", {}))
    out = {}
    for name in sorted(names):
        per_seed = [v["generated"][name] for v in values]
        ctl = oracle["generated"][name] if oracle is not None else None
        out[name] = recovery([g["base"] for g in per_seed], [g["unlearned"] for g in per_seed],
                             {"model": [g["attacked"] for g in per_seed]},
                             {"model": [g["base_attacked"] for g in per_seed]},
                             control=None if ctl is None else ctl["unlearned"],
                             control_attacked=None if ctl is None else {"model": ctl["attacked"]},
                             forgot=forgot, min_effect=SHARE_EFFECT)
    return out


def robustness_entries(table: Any, task: str) -> list[Robustness]:
    """Every (method row, attack) of ``task``: grouped by the leaderboard's cell groups; the oracle's record of the
    same attack is the control (not for the oracle's own row, which shows the base-model control)."""
    out = []
    records = [r for r in table.attacks if r["task"] == task]
    scores = table.scoring.tasks.get(task)
    oracle_cell = table.cell_for(task, table.oracles()[task]) if task in table.oracles() else None
    oracle_ids = {r.cell_id for r in oracle_cell.results} if oracle_cell is not None else set()
    for label_attack in attack_labels(records, task):
        control = next((r for r in records if r["label"] == label_attack and r["cell_id"] in oracle_ids
                        and r.get("status") == "done"), None)
        for cell in table.cells_for(task):
            ids = {r.cell_id for r in cell.results}
            label = table.label(cell)
            mine = [r for r in records if r["label"] == label_attack and r["cell_id"] in ids]
            if not mine:
                out.append(Robustness(label, label_attack, "missing"))
                continue
            row = scores.row(label) if scores is not None else None
            forgot = None if row is None else (row.forget_quality_ci or row.forget_ci)
            status, summary, reason = summarise(mine, None if ids & oracle_ids else control, forgot)
            out.append(Robustness(label, label_attack, status, summary, reason))
    return out
