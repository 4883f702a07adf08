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


def summarise(records: list[dict[str, Any]], control: dict[str, Any] | dict[str, dict[str, Any]] | None = None,
              forgot: tuple[float, float] | None = None) -> tuple[str, dict[str, Any] | None, str | None]:
    """Pool one cell group's results of one attack (one per seed) into a single summary. ``control``: the oracle's
    record of the same attack (its ``unlearned`` and ``attacked`` values are the control's), or with several
    teaching pairs the oracle's record per base id (each seed's control is its own pair's oracle); ``forgot``: the
    row's forget-quality (or F) interval, which gates the share."""
    failed = [r for r in records if r.get("status") != "done"]
    if failed:
        return "failed", None, "; ".join(f"seed {r['seed']}: {r.get('reason')}" for r in failed)
    done = sorted(records, key=lambda r: r["seed"])
    values = [r["values"] for r in done]
    variants = list(values[0]["attacked"])
    oracle = _control_values(done, control)
    summary = recovery([v["base"] for v in values], [v["unlearned"] for v in values],
                       {k: [v["attacked"][k] for v in values] for k in variants},
                       {k: [v["base_attacked"][k] for v in values] for k in variants},
                       control=None if oracle is None else oracle["unlearned"],
                       control_attacked=None if oracle is None else oracle["attacked"], forgot=forgot)
    summary["generated"] = generated_recovery(values, oracle, forgot)
    summary["info"] = done[0].get("info", {})
    _unless_calibrated(summary, done[0].get("task"))
    summary["seconds"] = sum(r.get("seconds", 0.0) for r in done)
    return "done", summary, None


UNCALIBRATED = ("uncalibrated: the attack's strength did not recover half of a known-recoverable drop on this task "
                "in its positive control (docs/attacks.md, \"Calibration\"), so a share here would not mean anything")


def _unless_calibrated(summary: dict[str, Any], task: str | None) -> None:
    """Withhold every share of an attack whose ``calibrated_on`` (relearn) does not name ``task``: the changes stay,
    as measured, and the note says why there is no R."""
    calibrated_on = summary["info"].get("calibrated_on")
    if calibrated_on is None or task in calibrated_on:
        return
    summary["uncalibrated"] = True
    for measure in [summary, *summary["generated"].values()]:
        measure["recovered"] = measure["recovered_ci"] = None
        measure["recovered_note"] = UNCALIBRATED


def _control_values(done: list[dict[str, Any]], control: dict[str, Any] | None) -> dict[str, Any] | None:
    """The control's measurements for ``done``'s seeds: one oracle record's values, or — given the oracle's
    records per base id and seeds on more than one teaching pair — per seed its own pair's (stacked: one row per
    seed, which ``recovery`` pairs with the seeds). A seed whose pair has no oracle record falls back to the
    first pair's, as a board of one pair does."""
    if control is None:
        return None
    if "values" in control:
        return control["values"]
    first = next(iter(control.values()))  # pair 0's (``robustness_entries`` orders them by pair)
    mine = [control.get(r.get("base_id"), first)["values"] for r in done]
    if all(m is mine[0] for m in mine):
        return mine[0]
    names = set.intersection(*(set(m.get("generated", {})) for m in mine))
    return {"unlearned": [m["unlearned"] for m in mine],
            "attacked": {k: [m["attacked"][k] for m in mine] for k in mine[0]["attacked"]},
            "generated": {name: {"unlearned": [m["generated"][name]["unlearned"] for m in mine],
                                 "attacked": [m["generated"][name]["attacked"] for m in mine]} for name in names}}


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
    same attack is the control — each seed's own teaching pair's where there are several — (not for the oracle's own
    row, which shows the base-model control)."""
    out = []
    records = [r for r in table.attacks if r["task"] == task]
    scores = table.scoring.tasks.get(task)
    oracle_cell = table.cell_for(task, table.oracles()[task]) if task in table.oracles() else None
    oracle_ids = {r.cell_id for r in oracle_cell.results} if oracle_cell is not None else set()
    for label_attack in attack_labels(records, task):
        controls = [r for r in records if r["label"] == label_attack and r["cell_id"] in oracle_ids
                    and r.get("status") == "done"]
        order = {b.base_id: i for i, b in enumerate(table.bases_for(task))}
        by_pair = {r.get("base_id", ""): r for r in sorted(controls, key=lambda r: order.get(r.get("base_id"), 0))}
        control = (controls[0] if len(by_pair) == 1 else by_pair) if controls else None
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
