"""Reading results directories into one table that reporters render.

Cells with the same (method, method params, task, task params) but different seeds are grouped. All
statistics, scores and ranks come from ``bench.report.scores`` (hierarchical bootstrap over seeds and items),
computed once per table. Failed and diverged cells stay in the table with their status — never dropped.

A table is refused (one line, before anything is written) when its results cannot be compared: different
results schemas, task versions (metrics defined differently), eval configs of one task, or scorers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bench import RESULTS_SCHEMA
from bench.engine.store import TUNING_FILE, ResultsStore, read_json
from bench.errors import UserError
from bench.params import stable_hash
from bench.report.robustness import Robustness, robustness_entries
from bench.report.scores import (
    BOOTSTRAP_SEED,
    RESAMPLES,
    UTILITY_BUDGET,
    Group,
    Scoring,
    combined_status,
    score_leaderboard,
)
from bench.results import BaseResult, CellResult


@dataclass
class Cell:
    """One group of seeds of a (method config, task config)."""

    method: str
    task: str
    config_hash: str
    method_params: dict[str, Any]
    results: list[CellResult]

    @property
    def method_key(self) -> str:
        """Method + its parameters: the same key on every task (used for rankings across tasks)."""
        return f"{self.method}@{stable_hash(self.method_params, 6)}"

    @property
    def start(self) -> str:
        """The model the cell's method started from: "taught", or "oracle" for the ``on_oracle`` baseline."""
        return str(self.results[0].spec.get("start", "taught")) if self.results else "taught"

    @property
    def seeds(self) -> list[int]:
        return sorted(r.spec["seed"] for r in self.results)

    @property
    def status(self) -> str:
        return combined_status(self.results)

    @property
    def reasons(self) -> list[str]:
        return [f"seed {r.spec['seed']}: {r.reason}" for r in self.results if r.reason]


@dataclass
class ResultTable:
    cells: list[Cell]
    bases: dict[str, BaseResult]
    sources: list[str] = field(default_factory=list)
    #: Largest standardised utility loss that still counts as "kept" (``bench.report.scores``).
    utility_budget: float = UTILITY_BUDGET
    resamples: int = RESAMPLES
    #: Attack results (``cells/*/attacks/*.json``), raw records (``bench.report.robustness`` pools them).
    attacks: list[dict[str, Any]] = field(default_factory=list)
    #: Tuning selections of the runs (``OUT/tuning.json``, ``bench.engine.tuning``), one per (method, task).
    tuning: list[dict[str, Any]] = field(default_factory=list)
    #: Seed of the scoring bootstrap (recorded in a board's data file, so a rescore draws the same replicates).
    bootstrap_seed: int = BOOTSTRAP_SEED

    @cached_property
    def _selection_of_cell(self) -> dict[str, dict[str, Any]]:
        return {cell_id: t for t in self.tuning for cell_id in t.get("cell_ids", [])}

    def tuned(self, cell: Cell) -> dict[str, Any] | None:
        """The tuning selection that produced this row, if any."""
        return next((self._selection_of_cell[r.cell_id] for r in cell.results
                     if r.cell_id in self._selection_of_cell), None)

    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.cells} | {b.spec["task"] for b in self.bases.values()})

    def cells_for(self, task: str) -> list[Cell]:
        """The rows of a task's board: cells that started from the taught model (or an untaught task's model)."""
        return sorted((c for c in self.cells if c.task == task and c.start == "taught"),
                      key=lambda c: (c.method, c.config_hash))

    def oracle_start_cells(self, task: str) -> list[Cell]:
        """The ``on_oracle`` baseline's cells of a task: methods applied to the oracle (shown apart, never ranked)."""
        return sorted((c for c in self.cells if c.task == task and c.start == "oracle"),
                      key=lambda c: (c.method, c.config_hash))

    def bases_for(self, task: str) -> list[BaseResult]:
        """The task's base evaluations: one, or on a taught task with several teaching pairs each pair's taught
        model, in pair order (``teach_pair``). The oracle evaluated as the start of the ``on_oracle`` baseline is
        not one of them (``oracle_start_base``)."""
        return sorted((b for b in self.bases.values() if b.spec["task"] == task and "start" not in b.spec),
                      key=teach_pair)

    def oracle_start_base(self, task: str) -> BaseResult | None:
        """The oracle evaluated as a starting model (the ``on_oracle`` cells' base), if the runs have one."""
        return next((b for b in self.bases.values() if b.spec["task"] == task and b.spec.get("start") == "oracle"),
                    None)

    def base_for(self, task: str) -> BaseResult | None:
        """The task's base evaluation (pair 0's taught model when there are several)."""
        bases = self.bases_for(task)
        return bases[0] if bases else None

    def metric_names(self, task: str) -> list[tuple[str, str]]:
        """(group, name) pairs for a task, forget first, in evaluation order."""
        base = self.base_for(task)
        source = base.metrics if base else next((r.metrics for c in self.cells_for(task)
                                                 for r in c.results if r.metrics), {})
        pairs = [(m.group, name) for name, m in source.items()]
        return sorted(pairs, key=lambda p: p[0] != "forget")

    def label(self, cell: Cell) -> str:
        """The row's own name when its parameters give one (``label``: e.g. a checkpoint scored by
        ``unlearn-bench eval``), else the method name, plus its parameter hash when several configs of that
        method are shown."""
        if cell.method_params.get("label"):
            return str(cell.method_params["label"])
        if cell.start != "taught":
            return f"{cell.method} (on the {cell.start})"
        tuned = self.tuned(cell)
        if tuned is not None:
            return f"{cell.method} (tuned, {tuned['trials']} trials)"
        same = [c for c in self.cells if c.method == cell.method and c.start == "taught"]
        untuned = {c.method_key for c in same if self.tuned(c) is None}
        if len(untuned) == 1 and len(untuned) < len({c.method_key for c in same}):
            return f"{cell.method} (untuned)"  # beside its tuned row: the configuration as given
        keys = {c.method_key for c in same}
        return cell.method if len(keys) == 1 else cell.method_key

    def cell_for(self, task: str, label: str) -> Cell | None:
        return next((c for c in self.cells_for(task) if self.label(c) == label), None)

    @cached_property
    def robustness(self) -> dict[str, list[Robustness]]:
        """Per task, every (method row, attack) pooled over seeds (``bench.report.robustness``), computed once
        per table for every reporter."""
        return {task: robustness_entries(self, task) for task in self.tasks()}

    @cached_property
    def scoring(self) -> Scoring:
        """Statistics, scores and ranks of every task (formulas in ``bench.report.scores``)."""
        per_task = {task: (self.bases_for(task), [Group(self.label(c), c.results, c.method == "reference")
                                                  for c in self.cells_for(task)])
                    for task in self.tasks()}
        return score_leaderboard(per_task, budget=self.utility_budget, resamples=self.resamples,
                                 oracles=self.oracles(), seed=self.bootstrap_seed)

    @cached_property
    def damage(self) -> dict[str, Any]:
        """Per taught task with ``on_oracle`` cells: those rows scored against the oracle they started from (its
        evaluation is their base) — what each method changes where there is nothing to forget. Apart from the
        ranking; the same statistics as a board's rows (``score_task`` without an oracle)."""
        from bench.report.scores import score_task

        out = {}
        for task in self.tasks():
            base, cells = self.oracle_start_base(task), self.oracle_start_cells(task)
            if base is not None and cells:
                out[task] = score_task(task, base, [Group(self.label(c), c.results) for c in cells],
                                       budget=self.utility_budget, resamples=self.resamples,
                                       seed=self.bootstrap_seed)
        return out

    def reference_labels(self) -> set[str]:
        """Labels of the reference rows (oracle, untaught base): models the benchmark built, not methods."""
        return {self.label(c) for c in self.cells if c.method == "reference"}

    def oracles(self) -> dict[str, str]:
        """Task -> the label of its oracle row (a taught task's ``reference`` cell of role ``oracle``)."""
        return {c.task: self.label(c) for c in self.cells if c.method == "reference"
                and c.method_params.get("role") == "oracle"}


# -- refusing what cannot be compared -----------------------------------------------------------------
def _check_one_scorer(results: list[BaseResult | CellResult]) -> None:
    """Never compare across scorers: every result of a task must name the same scorer(s)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for r in results:
        for name, desc in (r.provenance or {}).get("data_sources", {}).items():
            if "scorer" in name:
                seen.setdefault((r.spec["task"], name), set()).add(desc)
    for (task, name), descs in seen.items():
        if len(descs) > 1:
            raise UserError(f"results for task {task} were scored by different {name}s "
                            f"({' vs '.join(sorted(descs))}); report them separately (one --runs set per scorer)")


def _check_one_schema(records: list[dict[str, Any]]) -> None:
    """Every record in the schema this version reads (a results directory is refused earlier when its
    manifest names another; this catches records copied in by hand)."""
    schemas = {r.get("schema") for r in records}
    if len(schemas) > 1 or schemas - {RESULTS_SCHEMA}:
        raise UserError(f"the results mix schemas {sorted(map(str, schemas))}; report each --runs set "
                        "written by one unlearn-bench version separately")


def teach_pair(base: BaseResult) -> int:
    """A base evaluation's teaching pair: its taught model's teaching seed (``bench.engine.config.pair_recipe``:
    pair p is the recipe's seed + p, so the seeds order the pairs); 0 for an untaught base."""
    teach = (base.provenance or {}).get("teach") or {}
    return int((teach.get("recipe") or {}).get("seed", 0))


def _eval_config(base: BaseResult) -> str:
    """What must be equal for two base evaluations of a task to be compared: the spec (model, task, task params)
    and the teaching recipe except its seed (another seed is another teaching pair of the same design)."""
    recipe = dict(((base.provenance or {}).get("teach") or {}).get("recipe") or {})
    recipe.pop("seed", None)
    spec = {k: v for k, v in base.spec.items() if k != "start"}  # the oracle as a start: the same eval config
    return stable_hash({"spec": spec, "recipe": recipe}, 12)


def _check_comparable(results: list[BaseResult | CellResult]) -> None:
    """Per task one task version and one eval config: the base evaluations share it (several teaching pairs of
    one design are one config) and every cell was scored against one of them."""
    by_task: dict[str, dict[str, Any]] = {}
    for r in results:
        seen = by_task.setdefault(r.spec["task"], {"version": set(), "config": {}, "bases": set(), "cells": {}})
        seen["version"].add(str((r.provenance or {}).get("task_version", "?")))
        if r.spec.get("start", "taught") != "taught":
            continue  # the on_oracle baseline: scored against its own base, apart from the board (``damage``)
        if isinstance(r, BaseResult):
            seen["config"].setdefault(_eval_config(r), r.spec.get("task_params") or {})
            seen["bases"].add(r.base_id)
        else:
            seen["cells"].setdefault(r.base_id, r.spec.get("task_params") or {})
    for task, seen in sorted(by_task.items()):
        if len(seen["version"]) > 1:
            raise UserError(f"results for task {task} come from different task versions "
                            f"({' vs '.join(sorted(seen['version']))}): its metrics are defined differently; "
                            "report them separately or re-run the older ones")
        configs = list(seen["config"].values())
        if not seen["bases"]:  # cells without their base evaluations: one eval config among them
            configs = list(seen["cells"].values())
        else:
            configs += [params for base_id, params in seen["cells"].items() if base_id not in seen["bases"]]
        if len(configs) > 1:
            first, other = configs[0], next((c for c in configs[1:] if c != configs[0]), configs[1])
            diff = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
            raise UserError(f"results for task {task} use different eval configs (task params differ in "
                            f"{', '.join(diff) or 'model/dtype'}); report each config separately")


def _oracle_pair(spec: dict[str, Any]) -> int | None:
    """The teaching pair of an oracle reference cell (None for any other cell)."""
    params = spec["method_params"]
    return int(params.get("pair", 0)) if spec["method"] == "reference" and params.get("role") == "oracle" else None


def _as_pair_zero(params: dict[str, Any], pair: int) -> dict[str, Any]:
    """An oracle's parameters as pair 0's (its pair, and the label derived from it, set back)."""
    from bench.teach.reference import LABELS

    derived = f"{LABELS['oracle']} (teaching pair {pair})"
    return {**params, "pair": 0, **({"label": LABELS["oracle"]} if params.get("label") == derived else {})}


def _group_cells(records: list[dict[str, Any]]) -> list[Cell]:
    """Group cell records (still JSON) into cells: one per (method, task, method params, task params, model),
    its seeds in record order. The oracles of several teaching pairs are one row, "oracle" (grouped under pair 0's
    parameters), its seeds the pairs in pair order — as a method's seeds lie on pair seed-index mod P — so the gold
    standard carries teaching variance like every row it is compared with."""
    groups: dict[tuple[str, str, str], Cell] = {}
    for data in records:
        spec = data["spec"]
        pair = _oracle_pair(spec)
        params = spec["method_params"] if pair is None else _as_pair_zero(spec["method_params"], pair)
        key_obj = {"method_params": params, "task_params": spec["task_params"], "model": spec["model"],
                   **({"start": spec["start"]} if spec.get("start", "taught") != "taught" else {})}
        key = (spec["method"], spec["task"], stable_hash(key_obj, 8))
        if key not in groups:
            groups[key] = Cell(spec["method"], spec["task"], key[2], params, [])
        groups[key].results.append(data)
    for cell in groups.values():
        if any(_oracle_pair(r["spec"]) for r in cell.results):
            cell.results.sort(key=lambda r: _oracle_pair(r["spec"]) or 0)
    return list(groups.values())


def table_from_records(bases: list[dict[str, Any]], cells: list[dict[str, Any]], *, sources: list[str],
                       utility_budget: float = UTILITY_BUDGET, attacks: list[dict[str, Any]] | None = None,
                       tuning: list[dict[str, Any]] | None = None, resamples: int = RESAMPLES,
                       bootstrap_seed: int = BOOTSTRAP_SEED) -> ResultTable:
    """A checked table from base and cell records (``to_json`` form, each cell once). Shared by ``load_table``
    (records read from results directories) and ``bench.report.audit`` (records from a board's data file), so
    a board rebuilt from its data groups its cells exactly as the board written from the runs did."""
    _check_one_schema(bases + cells)  # before reading records as this schema's types
    groups = _group_cells(cells)
    for cell in groups:
        cell.results = [CellResult.from_json(r) for r in cell.results]
    base_results = {b["base_id"]: BaseResult.from_json(b) for b in bases}
    everything = [r for c in groups for r in c.results] + list(base_results.values())
    _check_one_scorer(everything)
    _check_comparable(everything)
    if not utility_budget > 0:
        raise UserError(f"--utility-budget must be > 0, got {utility_budget}")
    return ResultTable(groups, base_results, sources, utility_budget, resamples, attacks=list(attacks or []),
                       tuning=list(tuning or []), bootstrap_seed=bootstrap_seed)


def load_table(run_dirs: list[str | Path], *, utility_budget: float = UTILITY_BUDGET) -> ResultTable:
    bases: dict[str, dict[str, Any]] = {}
    cells: list[dict[str, Any]] = []
    attacks: list[dict[str, Any]] = []
    tuning: list[dict[str, Any]] = []
    seen_cells: set[str] = set()
    seen_attacks: set[tuple[str, str]] = set()
    for run_dir in run_dirs:
        root = Path(run_dir)
        if not (root / "manifest.json").exists():
            raise UserError(f"{root} is not an unlearn-bench results directory (no manifest.json); "
                            "pass the --out of a run")
        store = ResultsStore(root)
        store.open(create=False)
        for data in store.all_bases():
            bases[data["base_id"]] = data
        for record in store.all_attacks():
            if (record["cell_id"], record["attack_id"]) not in seen_attacks:  # as cells: once across runs
                seen_attacks.add((record["cell_id"], record["attack_id"]))
                attacks.append(record)
        if (root / TUNING_FILE).exists():
            tuning += read_json(root / TUNING_FILE).get("selections", [])
        for data in store.all_cells():
            if data["cell_id"] not in seen_cells:  # the same cell in two runs: one seed, counted once
                seen_cells.add(data["cell_id"])
                cells.append(data)
    if not cells and not bases:
        raise UserError(f"no results found in {', '.join(map(str, run_dirs))}; run `unlearn-bench run` first")
    return table_from_records(list(bases.values()), cells, sources=[str(d) for d in run_dirs],
                              utility_budget=utility_budget, attacks=attacks, tuning=tuning)


def sample_key(kind: str, ident: str) -> str:
    """Where a result's samples live in a run (``<kind>/<ident>/samples.jsonl``), and their key in ``Sources``."""
    return f"{kind}/{ident}"


class Sources(list[str]):
    """The results directories a table was read from (``ResultTable.sources``), plus — for a table rebuilt
    from a board's data file (``bench.report.audit``) — the sample generations its reporters show, by
    ``sample_key``. Reporters read samples through ``read_samples(table.sources, …)``; carrying them here lets
    a rebuilt board show the same samples without its runs, which may be gone or hold other results by now."""

    def __init__(self, dirs: list[str], samples: dict[str, list[dict[str, Any]]] | None = None) -> None:
        super().__init__(dirs)
        self.samples = samples


def read_samples(run_dirs: list[str | Path], ident: str, limit: int = 3, kind: str = "cells") -> list[dict[str, Any]]:
    """The first ``limit`` samples of a cell (``kind="cells"``) or a base evaluation (``kind="base"``)."""
    if isinstance(run_dirs, Sources) and run_dirs.samples is not None:
        return run_dirs.samples.get(sample_key(kind, ident), [])[:limit]
    for run_dir in run_dirs:
        path = Path(run_dir) / sample_key(kind, ident) / "samples.jsonl"
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                return [json.loads(line) for _, line in zip(range(limit), fh)]
    return []


__all__ = ["Cell", "ResultTable", "Sources", "load_table", "read_json", "read_samples", "sample_key",
           "table_from_records"]
