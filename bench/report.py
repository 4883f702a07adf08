"""Reading results directories into one table that reporters render.

Cells with the same (method, method params, task, task params) but different seeds are grouped; a
group's value is the mean over seeds with a 95 % t-interval across seeds (one seed: the metric's own
bootstrap CI). Failed and diverged cells stay in the table with their status — never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .params import stable_hash
from .scores import Scores, cell_scores, win_rates
from .store import ResultsStore, read_json


@dataclass
class Cell:
    """One group of seeds of a (method config, task config)."""

    method: str
    task: str
    config_hash: str
    method_params: dict[str, Any]
    results: list[dict[str, Any]]

    @property
    def method_key(self) -> str:
        """Method + its parameters: the same key on every task (used for rankings across tasks)."""
        return f"{self.method}@{stable_hash(self.method_params, 6)}"

    @property
    def label(self) -> str:
        return self.method

    def metrics(self, names: list[str]) -> dict[str, dict[str, Any] | None]:
        return {n: self.metric(n) for n in names}

    @property
    def seeds(self) -> list[int]:
        return sorted(r["spec"]["seed"] for r in self.results)

    @property
    def status(self) -> str:
        statuses = {r["status"] for r in self.results}
        return statuses.pop() if len(statuses) == 1 else "mixed: " + ", ".join(sorted(statuses))

    @property
    def reasons(self) -> list[str]:
        return [f"seed {r['spec']['seed']}: {r['reason']}" for r in self.results if r.get("reason")]

    def metric(self, name: str) -> dict[str, Any] | None:
        """Aggregate a metric over this group's finished seeds."""
        done = [r["metrics"][name] for r in self.results if r["status"] == "done" and name in r["metrics"]]
        if not done:
            return None
        if len(done) == 1:
            return dict(done[0], seeds=1)
        values = np.array([m["value"] for m in done])
        deltas = np.array([m["delta"] for m in done if m.get("delta") is not None])
        return {**done[0], "value": float(values.mean()), **_t_interval(values, "ci_low", "ci_high"),
                "delta": float(deltas.mean()) if deltas.size else None,
                **(_t_interval(deltas, "delta_ci_low", "delta_ci_high") if deltas.size else {}),
                "seeds": len(done)}


def _t_interval(values: np.ndarray, low_key: str, high_key: str) -> dict[str, float]:
    from scipy import stats

    n = values.size
    if n < 2:
        return {low_key: float(values[0]), high_key: float(values[0])}
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return {low_key: float(values.mean() - half), high_key: float(values.mean() + half)}


@dataclass
class ResultTable:
    cells: list[Cell]
    bases: dict[str, dict[str, Any]]
    sources: list[str] = field(default_factory=list)

    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.cells} | {b["spec"]["task"] for b in self.bases.values()})

    def cells_for(self, task: str) -> list[Cell]:
        return sorted((c for c in self.cells if c.task == task), key=lambda c: (c.method, c.config_hash))

    def base_for(self, task: str) -> dict[str, Any] | None:
        bases = [b for b in self.bases.values() if b["spec"]["task"] == task]
        return bases[0] if bases else None

    def metric_names(self, task: str) -> list[tuple[str, str]]:
        """(group, name) pairs for a task, forget first, in evaluation order."""
        base = self.base_for(task)
        source = base["metrics"] if base else next((r["metrics"] for c in self.cells_for(task)
                                                    for r in c.results if r["metrics"]), {})
        pairs = [(m["group"], name) for name, m in source.items()]
        return sorted(pairs, key=lambda p: p[0] != "forget")


    # -- rankings (formulas in bench.scores) -------------------------------------------------
    def label(self, cell: Cell) -> str:
        """The method name, plus its parameter hash when several configs of that method are shown."""
        keys = {c.method_key for c in self.cells if c.method == cell.method}
        return cell.method if len(keys) == 1 else cell.method_key

    def scores(self, task: str) -> dict[str, Scores | None]:
        """Normalised scores per cell label on ``task`` (None: failed/diverged or no base)."""
        base = self.base_for(task)
        names = [n for _, n in self.metric_names(task)]
        out: dict[str, Scores | None] = {}
        for cell in self.cells_for(task):
            done = cell.status == "done" and base is not None
            out[self.label(cell)] = cell_scores(cell.metrics(names), base["metrics"]) if done else None
        return out

    def headline(self) -> list[dict[str, Any]]:
        """One row per method config: combined score per task and mean win rate, best first."""
        per_task = {t: {label: (s.combined if s else None) for label, s in self.scores(t).items()}
                    for t in self.tasks()}
        wins = win_rates(per_task)
        labels = sorted({label for scores in per_task.values() for label in scores})
        rows = [{"method": label, "win_rate": wins.get(label, math.nan),
                 "scores": {t: self.scores(t).get(label) for t in self.tasks()},
                 "ran": {t: label in per_task[t] for t in self.tasks()}} for label in labels]
        return sorted(rows, key=lambda r: -(r["win_rate"] if math.isfinite(r["win_rate"]) else -1))


def _check_one_scorer(results: list[dict[str, Any]]) -> None:
    """Never compare across scorers: every result of a task must name the same scorer(s)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for r in results:
        for name, desc in (r.get("provenance") or {}).get("data_sources", {}).items():
            if "scorer" in name:
                seen.setdefault((r["spec"]["task"], name), set()).add(desc)
    for (task, name), descs in seen.items():
        if len(descs) > 1:
            raise UserError(f"results for task {task} were scored by different {name}s "
                            f"({' vs '.join(sorted(descs))}); report them separately (one --runs set per scorer)")


def load_table(run_dirs: list[str | Path]) -> ResultTable:
    groups: dict[tuple[str, str, str], Cell] = {}
    bases: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        root = Path(run_dir)
        if not (root / "manifest.json").exists():
            raise UserError(f"{root} is not an unlearn-bench results directory (no manifest.json); "
                            "pass the --out of a run")
        store = ResultsStore(root)
        store.open(create=False)
        for base in store.all_bases():
            bases[base["base_id"]] = base
        for result in store.all_cells():
            spec = result["spec"]
            key_obj = {"method_params": spec["method_params"], "task_params": spec["task_params"],
                       "model": spec["model"]}
            key = (spec["method"], spec["task"], stable_hash(key_obj, 8))
            if key not in groups:
                groups[key] = Cell(spec["method"], spec["task"], key[2], spec["method_params"], [])
            groups[key].results.append(result)
    _check_one_scorer([r for c in groups.values() for r in c.results] + list(bases.values()))
    if not groups and not bases:
        raise UserError(f"no results found in {', '.join(map(str, run_dirs))}; run `unlearn-bench run` first")
    return ResultTable(list(groups.values()), bases, [str(d) for d in run_dirs])


def read_samples(run_dirs: list[str | Path], ident: str, limit: int = 3, kind: str = "cells") -> list[dict[str, Any]]:
    """The first ``limit`` samples of a cell (``kind="cells"``) or a base evaluation (``kind="base"``)."""
    import json

    for run_dir in run_dirs:
        path = Path(run_dir) / kind / ident / "samples.jsonl"
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                return [json.loads(line) for _, line in zip(range(limit), fh)]
    return []


__all__ = ["Cell", "ResultTable", "load_table", "read_json", "read_samples"]
