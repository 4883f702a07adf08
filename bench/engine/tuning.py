"""Tuning with equal budgets, selected on validation data: ``tune:`` in a run config.

A leaderboard where each method runs one hand-set configuration partly ranks how well each default suits
the model. The protocol here (docs/tuning.md) gives every method the same search and keeps the selection
away from the reported numbers:

1. **Equal budgets.** For every (method, task), ``trials`` configurations are drawn from the method's search
   space (``space.<method>``, else the method's ``tune_space``) by seeded random search (Bergstra & Bengio,
   JMLR 2012) — the same number for every method; a space too small to give that many distinct
   configurations is refused. A method with nothing to tune (an empty space: the ``prompt`` baseline)
   runs as configured, with no trials, and is not labelled tuned.
2. **Validation data.** Each trial is a cell run on the task's validation split (``eval_split:
   validation``: eval items disjoint from the reported ones, same forget and retain data), one training
   seed (``trial_seed``), no attacks, in ``OUT/tune/`` — a results store of its own, resumable like any
   run, every trial kept, never part of the reported leaderboard.
3. **A rule stated in advance.** Among a method's trials the headline's own rule picks the winner (point
   estimates on validation, scored against the base model on the same split): trials that keep utility
   (U ≥ −budget) first, by forgetting F; then trials that broke utility, by U; failed trials last; a tie
   goes to the earlier trial.
4. **Report.** The selected configuration runs on the test split with the run's seeds into ``OUT``;
   ``OUT/tuning.json`` records every trial's parameters and validation scores and the selection, and the
   leaderboards label the rows "tuned, N trials" with the selected parameters.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.engine.config import CellSpec, RunConfig, plan_cells
from bench.errors import UserError, did_you_mean
from bench.params import build_params, params_dict
from bench.plugins import Registry

log = logging.getLogger("unlearn_bench")

TUNE_DIR = "tune"


@dataclass
class TuneParams:
    #: Configurations tried per (method, task): the same budget for every method.
    trials: int = 6
    #: Seed of the random search.
    seed: int = 0
    #: Training seed of every trial (trials compare configurations, not seeds).
    trial_seed: int = 0
    #: Per method, per parameter: a list (choose one), ``{log_uniform: [lo, hi]}``, ``{uniform: [lo, hi]}``
    #: or ``{int: [lo, hi]}``; a method not named here uses its ``tune_space``.
    space: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        if self.trials < 1:
            raise ValueError(f"trials must be >= 1, got {self.trials}")


def _draw(spec: Any, rng: random.Random, where: str) -> Any:
    if isinstance(spec, list) and spec:
        return rng.choice(spec)
    if isinstance(spec, dict) and len(spec) == 1:
        (kind, bounds), = spec.items()
        if kind in ("log_uniform", "uniform", "int") and isinstance(bounds, list) and len(bounds) == 2 \
                and all(isinstance(b, (int, float)) for b in bounds) and bounds[0] < bounds[1]:
            lo, hi = bounds
            if kind == "int":
                return rng.randint(int(lo), int(hi))
            if kind == "uniform":
                return rng.uniform(lo, hi)
            if lo > 0:
                return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")
    raise UserError(f"tune.space {where}: use a list of values, {{log_uniform: [lo, hi]}} (lo > 0), "
                    f"{{uniform: [lo, hi]}} or {{int: [lo, hi]}} with lo < hi; got {spec!r}")


def _size(spec: Any) -> float:
    if isinstance(spec, list):
        return len(set(map(repr, spec)))
    if isinstance(spec, dict) and "int" in spec:
        return spec["int"][1] - spec["int"][0] + 1
    return math.inf


def space_for(method: str, cls: type, tune: TuneParams) -> dict[str, Any]:
    """The method's search space, every name a parameter of the method."""
    space = tune.space.get(method, getattr(cls, "tune_space", {}))
    names = {f.name for f in dataclasses.fields(cls.Params)} if dataclasses.is_dataclass(cls.Params) else set()
    for name in space:
        if name not in names:
            raise UserError(f"tune.space.{method} has '{name}', which is not a parameter of {method}; "
                            f"{did_you_mean(name, names)}")
    return space


def sample_trials(method: str, task: str, space: dict[str, Any], tune: TuneParams) -> list[dict[str, Any]]:
    """``tune.trials`` distinct configurations (parameter overrides) for (method, task), reproducibly; none
    for an empty space (nothing to tune: the method runs as configured, e.g. the ``prompt`` baseline)."""
    if not space:
        return []
    distinct = math.prod(_size(s) for s in space.values())
    if distinct < tune.trials:
        raise UserError(f"tune.space.{method} has only {int(distinct)} distinct configurations, fewer than "
                        f"trials={tune.trials}: widen the space or lower trials (every method gets the same budget)")
    rng = random.Random(f"tune-{tune.seed}-{method}-{task}")
    trials: list[dict[str, Any]] = []
    while len(trials) < tune.trials:
        trial = {name: _draw(space[name], rng, f"{method}.{name}") for name in sorted(space)}
        if trial not in trials:
            trials.append(trial)
    return trials


@dataclass
class Trial:
    method: str
    task: str
    index: int
    overrides: dict[str, Any]
    spec: CellSpec


def plan_tuning(config: RunConfig, registry: Registry) -> tuple[TuneParams, list[Trial], list[CellSpec]]:
    """(tune settings, every trial, the untuned cells of the run): names, spaces and values checked up front."""
    tune = build_params(TuneParams, dict(config.tune or {}), "tune")
    for name in tune.space:
        registry.get("method", name)  # a typo: did you mean
    cells = plan_cells(config, registry)
    trials: list[Trial] = []
    seen: set[tuple[str, str]] = set()
    for spec in cells:
        key = (spec.method, spec.task)
        if key in seen:
            continue
        seen.add(key)
        task_cls = registry.get("task", spec.task).cls
        if "eval_split" not in {f.name for f in dataclasses.fields(task_cls.Params)}:
            raise UserError(f"task '{spec.task}' has no validation split (no eval_split parameter), so it cannot "
                            "be tuned; drop it from this run or add one (docs/tuning.md)")
        method_cls = registry.get("method", spec.method).cls
        space = space_for(spec.method, method_cls, tune)
        for i, overrides in enumerate(sample_trials(spec.method, spec.task, space, tune)):
            params = params_dict(build_params(method_cls.Params, {**spec.method_params, **overrides},
                                              f"tune.space.{spec.method}"))
            trial_spec = dataclasses.replace(spec, method_params=params, seed=tune.trial_seed, attacks=[],
                                             save_model="none",
                                             task_params={**spec.task_params, "eval_split": "validation"})
            trials.append(Trial(spec.method, spec.task, i, overrides, trial_spec))
    return tune, trials, cells


def select(trials: list[Trial], tune_dir: Path, budget: float) -> dict[tuple[str, str], dict[str, Any]]:
    """The rule of step 3, applied per (method, task) to the trials' validation results."""
    from bench.report import load_table

    table = load_table([tune_dir], utility_budget=budget)
    cell_of = {r.cell_id: (c, r) for c in table.cells for r in c.results}  # a trial is one cell, one seed
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for (method, task) in sorted({(t.method, t.task) for t in trials}):
        scores = table.scoring.tasks.get(task)
        entries = []
        for trial in (t for t in trials if t.method == method and t.task == task):
            cell, result = cell_of[trial.spec.cell_id]
            row = scores.row(table.label(cell)) if scores is not None else None
            forget = row.forget if row is not None else None
            utility = row.utility if row is not None else None
            entries.append({"trial": trial.index, "cell_id": trial.spec.cell_id, "status": result.status,
                            "params": trial.overrides, "forget": forget, "utility": utility,
                            "utility_kept": None if utility is None else utility >= -budget,
                            "key": selection_key(result.status, forget, utility, budget, trial.index)})
        best = min(entries, key=lambda e: e["key"])
        chosen[(method, task)] = {"method": method, "task": task, "trials": len(entries), "selected": best["trial"],
                                  "selected_params": best["params"], "rule": RULE, "trial_results": entries}
    return chosen


RULE = ("validation split, headline rule on point estimates: utility kept (U >= -budget) first by F (higher "
        "better), then utility broken by U (higher better), failed last; ties to the earlier trial")


def selection_key(status: str, forget: float | None, utility: float | None, budget: float,
                  index: int) -> tuple[int, float, int]:
    """Smaller is better: (class, −score, trial index); class 0 = utility kept, 1 = broken, 2 = failed."""
    if status != "done" or forget is None or utility is None:
        return (2, 0.0, index)
    if utility >= -budget:
        return (0, -forget, index)
    return (1, -utility, index)


def tuned_cells(cells: list[CellSpec], chosen: dict[tuple[str, str], dict[str, Any]],
                trials: list[Trial]) -> list[CellSpec]:
    """The run's cells with each (method, task)'s selected parameters (as configured where nothing was tuned)."""
    params = {(t.method, t.task, t.index): t.spec.method_params for t in trials}
    return [dataclasses.replace(c, method_params=params[(c.method, c.task, chosen[(c.method, c.task)]["selected"])])
            if (c.method, c.task) in chosen else c for c in cells]


def run_tuned(config: RunConfig, registry: Registry, force: bool = False) -> Any:
    """Trials (``OUT/tune``), selection (``OUT/tuning.json``), then the selected configurations on the test
    split with the run's seeds (``OUT``). Resumable at every step: finished trials and cells are skipped."""
    from bench.engine.executors import execute
    from bench.engine.store import TUNING_FILE, ResultsStore, atomic_write_json
    from bench.report.scores import UTILITY_BUDGET

    tune, trials, cells = plan_tuning(config, registry)
    ResultsStore(config.out).open()  # OUT is the run's results directory before the trials go inside it
    tune_dir = Path(config.out) / TUNE_DIR
    log.info("tuning: %d trials (%d per method and task) on validation splits in %s", len(trials), tune.trials,
             tune_dir)
    execute(dataclasses.replace(config, out=str(tune_dir)), registry, force=force, cells=[t.spec for t in trials])
    chosen = select(trials, tune_dir, UTILITY_BUDGET)
    final = tuned_cells(cells, chosen, trials)
    atomic_write_json(Path(config.out) / TUNING_FILE, {
        "protocol": {**params_dict(tune), "rule": RULE, "utility_budget": UTILITY_BUDGET},
        "selections": [{**entry, "cell_ids": [c.cell_id for c in final
                                              if (c.method, c.task) == key]} for key, entry in chosen.items()]})
    for entry in chosen.values():
        log.info("tuning: %s on %s -> trial %d of %d %s", entry["method"], entry["task"], entry["selected"],
                 entry["trials"], entry["selected_params"])
    return execute(config, registry, force=force, cells=final)
