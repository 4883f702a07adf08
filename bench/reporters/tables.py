"""Machine-readable reporters: ``results.json`` and ``results.csv`` (one row per cell and metric)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..api import Reporter
from ..hookspecs import hookimpl
from ..report import ResultTable
from ..store import atomic_write_json, atomic_write_text

COLUMNS = ["task", "method", "config", "seeds", "status", "metric", "group", "better", "kind", "n", "value",
           "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high"]


def rows(table: ResultTable) -> list[dict[str, Any]]:
    out = []
    for task in table.tasks():
        base = table.base_for(task)
        entries = [("base", "base", "-", "done", base["metrics"] if base else {})]
        entries += [(c.method, c.config_hash, ",".join(map(str, c.seeds)), c.status,
                     {n: c.metric(n) for _, n in table.metric_names(task)}) for c in table.cells_for(task)]
        scores = table.scores(task)
        for cell in table.cells_for(task):
            sc = scores.get(table.label(cell))
            if sc is not None:
                for name, value in (("forget", sc.forget), ("utility", sc.utility), ("combined", sc.combined)):
                    out.append({"task": task, "method": cell.method, "config": cell.config_hash,
                                "seeds": ",".join(map(str, cell.seeds)), "status": cell.status,
                                "metric": f"score_{name}", "group": "score", "better": "higher",
                                "value": value})
        for method, config, seeds, status, metrics in entries:
            if not any(metrics.values()):
                out.append({"task": task, "method": method, "config": config, "seeds": seeds, "status": status})
            for name, m in metrics.items():
                if m is not None:
                    out.append({"task": task, "method": method, "config": config, "seeds": seeds,
                                "status": status, "metric": name, **{k: m.get(k) for k in COLUMNS[6:]}})
    return out


class JsonReporter(Reporter):
    name = "json"
    description = "results.json: every cell and metric with CIs and provenance"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        path = out_dir / "results.json"
        headline = [{"method": r["method"], "mean_win_rate": r["win_rate"],
                     "tasks": {t: (None if s is None else {"forget": s.forget, "utility": s.utility,
                                                           "combined": s.combined})
                               for t, s in r["scores"].items()}} for r in table.headline()]
        atomic_write_json(path, {"headline": headline, "rows": rows(table), "cells": [
            {"method": c.method, "task": c.task, "config": c.config_hash, "status": c.status,
             "method_params": c.method_params, "reasons": c.reasons,
             "provenance": [r["provenance"] for r in c.results],
             "trajectories": [r.get("trajectory", []) for r in c.results]} for c in table.cells]})
        return [path]


class CsvReporter(Reporter):
    name = "csv"
    description = "results.csv: one row per cell and metric"

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
