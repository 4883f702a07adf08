"""Machine-readable reporters: ``results.json`` (scoring settings, the headline with rank intervals, per
task its metrics' declarations and signal flags and every row's statistics, the flat rows, the cells)
and ``results.csv`` (one row per task, row and metric, plus the scores and ranks)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from bench.api import Reporter
from bench.engine.store import atomic_write_json, atomic_write_text
from bench.hookspecs import hookimpl
from bench.report import ResultTable
from bench.report.damage import damage_json
from bench.report.mechanism import mechanism_rows
from bench.report.privacy import csv_rows as privacy_csv_rows
from bench.report.scores import BASE_LABEL

COLUMNS = ["task", "method", "config", "seeds", "status", "metric", "group", "better", "kind", "primary", "signal",
           "min_effect", "n", "value", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high", "p_value",
           "q_value", "significant", "meaningful", "effect", "effect_ci_low", "effect_ci_high"]


def _cell_keys(table: ResultTable, task: str, label: str) -> dict[str, str]:
    if label == BASE_LABEL:
        return {"method": BASE_LABEL, "config": "-", "seeds": "-"}
    cell = table.cell_for(task, label)
    return {"method": label, "config": cell.config_hash, "seeds": ",".join(map(str, cell.seeds))}


def rows(table: ResultTable) -> list[dict[str, Any]]:
    out = []
    for task, scores in table.scoring.tasks.items():
        for row in scores.rows:
            keys = {"task": task, "status": row.status, **_cell_keys(table, task, row.label)}
            if row.forget is not None:
                for name, value, ci in (("score_forget", row.forget, row.forget_ci),
                                        ("score_utility", row.utility, row.utility_ci)):
                    out.append({**keys, "metric": name, "group": "score", "better": "higher", "value": value,
                                "ci_low": ci[0], "ci_high": ci[1]})
            if row.rank is not None:
                out.append({**keys, "metric": "rank", "group": "score", "better": "lower", "value": row.rank,
                            "ci_low": row.rank_low, "ci_high": row.rank_high})
            if not row.metrics:
                out.append(keys)
            for name, stats in row.metrics.items():
                info = scores.metrics.get(name)
                declared = {} if info is None else {"group": info.group, "better": info.better, "kind": info.kind,
                                                    "primary": info.primary, "min_effect": info.min_effect,
                                                    "signal": scores.signal[name].ok}
                out.append({**keys, "metric": name, **declared, **stats.to_json()})
        out += _robustness_rows(table, task)
        if scores.privacy is not None:
            for entry in privacy_csv_rows(scores.privacy):
                label = entry.pop("label")
                out.append({"task": task, **_cell_keys(table, task, label), "status": "done", "group": "privacy",
                            "better": "closer", **entry})
    return out


def _robustness_rows(table: ResultTable, task: str) -> list[dict[str, Any]]:
    """Per method and attack: the recovered fraction on the forget probe (``robustness/<attack>``) and on each
    re-generated scored forget metric (``robustness/<attack>/<metric>``), and the control's change
    (``robustness_control/...``, the oracle's or the base model's), with intervals."""
    out, controls = [], {}
    for e in table.robustness[task]:
        keys = {"task": task, **_cell_keys(table, task, e.label), "status": e.status, "group": "robustness"}
        measures = [("", e.summary or {}), *((f"/{name}", m) for name, m in (e.summary or {}).get("generated",
                                                                                                   {}).items())]
        for suffix, s in measures:
            ci = s.get("recovered_ci") or [None, None]
            out.append({**keys, "metric": f"robustness/{e.attack}{suffix}", "better": "lower", "n": s.get("items"),
                        "value": s.get("recovered"), "ci_low": ci[0], "ci_high": ci[1]})
            if s and (e.attack, suffix) not in controls:
                controls[e.attack, suffix] = {
                    "task": task, **_cell_keys(table, task, BASE_LABEL), "status": "done", "group": "robustness",
                    "metric": f"robustness_control/{e.attack}{suffix}", "control": s.get("control_kind", "base"),
                    "n": s["items"], "value": s["control"], "ci_low": s["control_ci"][0],
                    "ci_high": s["control_ci"][1]}
    return out + list(controls.values())


def _headline(table: ResultTable) -> list[dict[str, Any]]:
    scoring = table.scoring
    out = []
    for row in scoring.overall:
        tasks = {}
        for task, scores in scoring.tasks.items():
            r = scores.row(row.label)
            if r is not None:
                tasks[task] = {k: getattr(r, k) for k in ("rank", "rank_low", "rank_high", "forget", "forget_ci",
                                                          "utility", "utility_ci", "verdict", "tied_with",
                                                          "forget_quality", "forget_quality_ci")}
        out.append({"method": row.label, "rank": row.rank, "rank_low": row.rank_low, "rank_high": row.rank_high,
                    "mean_rank": row.mean_rank, "tied_with": row.tied_with, "tasks": tasks})
    return out


def _overall_pairwise(table: ResultTable) -> dict[str, Any] | None:
    separation = table.scoring.overall_separation
    return separation.to_json() if separation else None


def _tasks(table: ResultTable) -> dict[str, Any]:
    out = {}
    for task, scores in table.scoring.tasks.items():
        scored = scores.scored
        metrics = {name: {"group": info.group, "better": info.better, "kind": info.kind, "primary": info.primary,
                          "min_effect": info.min_effect, "bounds": info.bounds, "signal": scores.signal[name].ok,
                          "no_signal_reason": scores.signal[name].reason or None,
                          "scored": name in scored[info.group]}
                   for name, info in scores.metrics.items()}
        for name, power in scores.power.items():
            if name in metrics:
                metrics[name]["power"] = power.to_json()
        out[task] = {"unranked_reason": scores.unranked_reason or None, "caveats": scores.caveats, "metrics": metrics,
                     "oracle": scores.oracle, "oracle_separated": scores.oracle_separated,
                     "oracle_gap": {k: list(v) for k, v in scores.oracle_gap.items()},
                     "oracle_gap_mde": scores.oracle_gap_mde,
                     **({"oracle_floor": scores.oracle_floor} if scores.oracle_floor else {}),
                     **({"on_oracle": damage} if (damage := damage_json(table, task)) else {}),
                     "minimum_detectable_f": scores.minimum_detectable_f,
                     "minimum_detectable_fq": scores.minimum_detectable_fq,
                     "minimum_detectable_pair": scores.minimum_detectable_pair, "pair_level": scores.pair_level,
                     "underpowered": scores.underpowered or None,
                     "pairwise": scores.separation.to_json() if scores.separation else None,
                     "privacy": scores.privacy.to_json() if scores.privacy is not None else None,
                     "rows": [r.to_json() for r in scores.rows],
                     "mechanism": [r.to_json() for r in mechanism_rows(table, task)] or None,
                     "robustness": [{"method": e.label, "attack": e.attack, "status": e.status, "reason": e.reason,
                                     **(e.summary or {})} for e in table.robustness[task]]}
    return out


class JsonReporter(Reporter):
    name = "json"
    description = "results.json: scoring settings, headline with rank intervals, every row and metric, provenance"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        path = out_dir / "results.json"
        atomic_write_json(path, {"scoring": table.scoring.settings(), "headline": _headline(table),
                                 "headline_pairwise": _overall_pairwise(table), "tasks": _tasks(table),
                                 "rows": rows(table), "tuning": table.tuning, "cells": [
            {"method": c.method, "task": c.task, "config": c.config_hash, "status": c.status,
             "method_params": c.method_params, "reasons": c.reasons,
             "provenance": [r.provenance for r in c.results],
             "trajectories": [r.trajectory for r in c.results]} for c in table.cells]})
        return [path]


class CsvReporter(Reporter):
    name = "csv"
    description = "results.csv: one row per task, row and metric (scores and ranks included)"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows(table))
        path = out_dir / "results.csv"
        atomic_write_text(path, buf.getvalue())
        return [path]


@hookimpl
def register_reporters(register):
    register(JsonReporter)
    register(CsvReporter)
