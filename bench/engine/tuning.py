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
   seed (``trial_seed``), no attacks, no privacy details, in ``OUT/tune/`` — a results store of its own,
   resumable like any run, every trial kept, never part of the reported leaderboard. On a taught task the
   oracle is evaluated on the same validation items once (a reference cell in ``OUT/tune/``), because the
   headline rule of an oracle board measures every row against it.
3. **The headline's own rule, stated in advance** (``bench.report.ranking``, docs/scoring.md sections 4 and
   7), applied at the point estimates of the trials' validation board: trials that kept utility (every
   scored utility metric in its band between the taught model and the oracle) and whose forget output did
   not collapse first — on an oracle board by closeness to the oracle (1 − mean_m |1 − FQ_m|, so a trial
   that overshoots the oracle is as far from it as one that stops short), without an oracle by F; then
   trials that broke utility or collapsed, by U; failed trials last; a tie goes to the earlier trial. The
   class and key are the scoring's own (``TaskScores.keys``), not recomputed here.
4. **Report.** The selected configuration runs on the test split with the run's seeds into ``OUT``
   (``final_run: false`` stops after the selection, for a study that runs the selected values from its own
   config); ``OUT/tuning.json`` records every trial's parameters and validation scores and the selection
   (``python -m bench.engine.tuning selected OUT/tuning.json`` turns it into config YAML), and the
   leaderboards label the rows "tuned, N trials" with the selected parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.engine.config import REFERENCE_METHOD, CellSpec, RunConfig, plan_cells
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
    #: After the selection, run the selected configurations on the test split with the run's seeds into OUT.
    #: False stops after ``OUT/tuning.json``: the tuning is then a command and board of its own whose selected
    #: values another config runs (configs/study-tuning.yaml for configs/study.yaml), so the long reported run
    #: is not paid twice.
    final_run: bool = True

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


def space_text(space: dict[str, Any]) -> str:
    """A search space in one line, as docs/tuning.md's table of every method's ``tune_space`` writes it (a test
    compares the two, so the documented spaces cannot drift from the code): ``lr log-uniform [0.0001, 0.003];
    steps ∈ {6, 12, 24}``; "nothing to tune" for an empty space."""
    parts = []
    for name in sorted(space):
        spec = space[name]
        if isinstance(spec, list):
            parts.append(f"{name} ∈ {{{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in spec)}}}")
        else:
            (kind, (lo, hi)), = spec.items()
            parts.append(f"{name} {kind.replace('_', '-')} [{lo:g}, {hi:g}]")
    return "; ".join(parts) or "nothing to tune"


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


def _on_validation(spec: CellSpec, tune: TuneParams, **changes: Any) -> CellSpec:
    """A cell of the tuning store: the validation split, the trial seed, no attacks, no saved model, and no privacy
    details where the task has them (membership scoring and leak@k sampling cost a third of a coding evaluation and
    are no part of the selection rule, which they never enter: docs/scoring.md, section 10)."""
    task_params = {**spec.task_params, "eval_split": "validation"}
    if "privacy" in task_params:
        task_params["privacy"] = False
    return dataclasses.replace(spec, seed=tune.trial_seed, attacks=[], save_model="none", task_params=task_params,
                               **changes)


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
        if key in seen or spec.method == REFERENCE_METHOD:
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
            trials.append(Trial(spec.method, spec.task, i, overrides,
                                _on_validation(spec, tune, method_params=params)))
    return tune, trials, cells


def validation_oracles(cells: list[CellSpec], trials: list[Trial], tune: TuneParams) -> list[CellSpec]:
    """The oracle of every taught task the trials run on, on the validation split, once per (task, teaching
    recipe): the reference an oracle board's rule measures every trial against (closeness, utility bands,
    collapse). Untaught tasks have none; the untaught-base row is not needed for the selection."""
    wanted = {(t.task, repr(t.spec.teach)) for t in trials if t.spec.teach is not None}
    out: dict[tuple[str, str], CellSpec] = {}
    for spec in cells:
        key = (spec.task, repr(spec.teach))
        if spec.method == REFERENCE_METHOD and spec.method_params.get("role") == "oracle" and key in wanted:
            out.setdefault(key, _on_validation(spec, tune))
    return list(out.values())


#: The rule, as tuning.json records it.
RULE = ("validation split, the headline rule (bench.report.ranking) at the point estimates: utility kept (every "
        "scored utility metric in its band between the taught model and the oracle) and not collapsed first, by "
        "closeness to the oracle 1 - mean_m |1 - FQ_m| on taught tasks (no FQ metric passes the guard: the "
        "distance to the oracle in units of F), by F without an oracle; then utility broken or collapsed, by U; "
        "failed last; ties to the earlier trial")


@dataclass
class TrialScore:
    """One trial's validation scores and its place under the rule (what tuning.json records per trial)."""

    trial: int
    cell_id: str
    status: str
    params: dict[str, Any]
    forget: float | None = None
    utility: float | None = None
    #: Task-level forget quality and closeness to the oracle (taught tasks; None without an oracle).
    forget_quality: float | None = None
    closeness: float | None = None
    utility_kept: bool | None = None
    utility_broken_by: list[str] = field(default_factory=list)
    collapsed: str | None = None
    #: The ranking's class at the point estimate: 0 utility kept and not collapsed, 1 broken or collapsed,
    #: 2 failed (or not rankable), and its key (closeness, F or U); ``bench.report.ranking``.
    rank_class: int = 2
    rank_key: float | None = None
    verdict: str = ""


def selection_key(rank_class: int, rank_key: float | None, index: int) -> tuple[int, float, int]:
    """Smaller is better: (class, −key, trial index) — the headline's order (lower class first, then the higher
    key), a missing or non-finite key last within its class (the point rank treats it as −∞), ties to the
    earlier trial."""
    finite = rank_key is not None and math.isfinite(rank_key)
    return (int(rank_class), -rank_key if finite else math.inf, index)


def ranking_key_name(scores: Any) -> str:
    """What the task's class-0 rows are ordered by (``bench.report.scores.score_task``'s choice)."""
    if scores.oracle is None:
        return "F"
    if scores.oracle_separated:
        return "closeness to the oracle (1 - mean |1 - FQ_m|)"
    if any(r.closeness is not None for r in scores.rows):
        return "distance to the oracle in units of F (-mean |e_row - e_oracle|)"
    return "F"


def select(trials: list[Trial], tune_dir: Path, budget: float) -> dict[tuple[str, str], dict[str, Any]]:
    """The rule of step 3, applied per (method, task) to the trials' validation results in ``tune_dir``."""
    from bench.report import load_table

    return select_from_table(trials, load_table([tune_dir], utility_budget=budget))


def select_from_table(trials: list[Trial], table: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The selection from a results table holding the trials (and, on taught tasks, the validation oracle).

    Every trial of a task is a row of one board, scored by ``bench.report.scores`` exactly as the headline
    scores rows; the class and key of each row at the point estimate are read from that scoring
    (``TaskScores.keys``), so the selection cannot drift from the board's rule. A row's class and key depend
    only on itself, the taught model and the oracle (one-seed rows draw no seed multipliers), so selecting
    task by task, or with other methods' trials absent, gives the same choice."""
    scoring = table.scoring
    cell_of = {r.cell_id: (c, r) for c in table.cells for r in c.results}  # a trial is one cell, one seed
    for task in sorted({t.task for t in trials if t.spec.teach is not None}):
        found = [r for c in table.cells_for(task) if c.method == REFERENCE_METHOD
                 and c.method_params.get("role") == "oracle" for r in c.results]
        if not any(r.status == "done" for r in found):
            state = "none" if not found else "; ".join(f"{r.status}{': ' + r.reason if r.reason else ''}"
                                                       for r in found)
            raise UserError(f"tuning: taught task {task} has no finished oracle on its validation split (oracle "
                            f"cell: {state}), so the headline rule cannot be applied; fix its cause and run the "
                            "same command again (finished trials are kept)")
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for (method, task) in sorted({(t.method, t.task) for t in trials}):
        scores = scoring.tasks.get(task)
        unranked = "no validation results" if scores is None else (scores.unranked_reason or "")
        entries = [_trial_score(trial, cell_of.get(trial.spec.cell_id), table, scores)
                   for trial in trials if trial.method == method and trial.task == task]
        if unranked:
            log.warning("tuning: %s on %s cannot be ranked on the validation split (%s): the earliest finished "
                        "trial is selected", method, task, unranked)
        # an unrankable task (no base, no forget metric with signal) has no rule to apply: the earliest finished
        # trial, recorded as such ("unranked"), never a silent choice by some other rule
        best = min(entries, key=lambda e: (0 if e.status == "done" else 1, 0.0, e.trial) if unranked
                   else selection_key(e.rank_class, e.rank_key, e.trial))
        chosen[(method, task)] = {
            "method": method, "task": task, "trials": len(entries), "selected": best.trial,
            "selected_params": best.params, "rule": RULE,
            "ranking_key": ranking_key_name(scores) if scores is not None and not unranked else "",
            "oracle": table.oracles().get(task), "unranked": unranked,
            "trial_results": [asdict(e) for e in entries]}
    return chosen


def _trial_score(trial: Trial, found: tuple[Any, Any] | None, table: Any, scores: Any) -> TrialScore:
    """A trial's row of the validation board: its scores, class and key at the point estimate."""
    if found is None:
        return TrialScore(trial.index, trial.spec.cell_id, "missing", trial.overrides, verdict="missing")
    cell, result = found
    out = TrialScore(trial.index, trial.spec.cell_id, result.status, trial.overrides, verdict=result.status)
    row = scores.row(table.label(cell)) if scores is not None else None
    if row is None:
        return out
    out.forget, out.utility, out.forget_quality, out.closeness = (row.forget, row.utility, row.forget_quality,
                                                                  row.closeness)
    out.utility_kept, out.utility_broken_by, out.collapsed, out.verdict = (row.utility_kept,
                                                                           list(row.utility_broken_by),
                                                                           row.collapsed, row.verdict)
    if scores.keys is not None:
        j = scores.rows.index(row)
        klass, key = scores.keys
        out.rank_class, out.rank_key = int(klass[0, j]), float(key[0, j])
    return out


def tuned_cells(cells: list[CellSpec], chosen: dict[tuple[str, str], dict[str, Any]],
                trials: list[Trial]) -> list[CellSpec]:
    """The run's cells with each (method, task)'s selected parameters (as configured where nothing was tuned)."""
    params = {(t.method, t.task, t.index): t.spec.method_params for t in trials}
    return [dataclasses.replace(c, method_params=params[(c.method, c.task, chosen[(c.method, c.task)]["selected"])])
            if (c.method, c.task) in chosen else c for c in cells]


def merged_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` plus the selections an earlier run of the same protocol wrote to ``path`` for other (method,
    task) pairs: a grid run piece by piece (``--tasks coding``, then ``--tasks ner``, ...) into one OUT ends
    with one tuning.json, as the whole grid in one invocation would (each task's selection is independent of
    the others'). Selections made under another protocol are replaced, not mixed."""
    from bench.engine.store import read_json

    if not path.exists():
        return record
    old = read_json(path)
    if old.get("protocol") != record["protocol"]:
        log.warning("tuning: %s held selections of another protocol; replaced", path)
        return record
    mine = {(s["method"], s["task"]) for s in record["selections"]}
    kept = [s for s in old.get("selections", []) if (s["method"], s["task"]) not in mine]
    return {**record, "selections": sorted(kept + record["selections"], key=lambda s: (s["task"], s["method"]))}


def run_tuned(config: RunConfig, registry: Registry, force: bool = False) -> Any:
    """Trials and the validation oracles (``OUT/tune``), selection (``OUT/tuning.json``, also in ``OUT/tune`` so
    the trials' board shows it), then — unless ``final_run: false`` — the selected configurations on the test
    split with the run's seeds (``OUT``). Resumable at every step: finished trials and cells are skipped."""
    from bench.engine.executors import execute
    from bench.engine.store import TUNING_FILE, ResultsStore, atomic_write_json
    from bench.report.scores import UTILITY_BUDGET

    tune, trials, cells = plan_tuning(config, registry)
    oracles = validation_oracles(cells, trials, tune)
    ResultsStore(config.out).open()  # OUT is the run's results directory before the trials go inside it
    tune_dir = Path(config.out) / TUNE_DIR
    log.info("tuning: %d trials (%d per method and task) and %d validation oracles in %s", len(trials),
             tune.trials, len(oracles), tune_dir)
    summary = execute(dataclasses.replace(config, out=str(tune_dir)), registry, force=force,
                      cells=[t.spec for t in trials] + oracles)
    chosen = select(trials, tune_dir, UTILITY_BUDGET)
    final = tuned_cells(cells, chosen, trials)
    record = {"protocol": {**params_dict(tune), "rule": RULE, "utility_budget": UTILITY_BUDGET},
              "selections": [{**entry, "cell_ids": [c.cell_id for c in final if (c.method, c.task) == key]}
                             for key, entry in chosen.items()]}
    for where in (Path(config.out) / TUNING_FILE, tune_dir / TUNING_FILE):
        atomic_write_json(where, merged_record(where, record))
    for entry in chosen.values():
        best = next(t for t in entry["trial_results"] if t["trial"] == entry["selected"])
        log.info("tuning: %s on %s -> trial %d of %d %s (%s)", entry["method"], entry["task"], entry["selected"],
                 entry["trials"], entry["selected_params"], best["verdict"])
    if not tune.final_run:
        return summary
    return execute(config, registry, force=force, cells=final)


# -- from a tuning.json to a config ---------------------------------------------------------------------------
def selected_yaml(record: dict[str, Any], source: str, base: dict[str, dict[str, Any]] | None = None,
                  task: str | None = None) -> str:
    """Config YAML holding the selected values, with where they came from as comments.

    Without ``task``: ``task_method_params: {task: {method: overrides}}`` — per task, since each (method, task)
    is tuned on its own (needs per-task method params in ``bench.engine.config``; docs/tuning.md). With
    ``task``: that task's selection as a plain ``method_params`` block merged over ``base`` (the config's own
    ``method_params``), for a one-task config that ``extends:`` the study."""
    import yaml

    selections = sorted(record.get("selections", []), key=lambda s: (s["task"], s["method"]))
    if task is not None:
        tasks = sorted({s["task"] for s in selections})
        if task not in tasks:
            raise UserError(f"{source} has no selection for task '{task}'; {did_you_mean(task, tasks)}")
        selections = [s for s in selections if s["task"] == task]
    if not selections:
        raise UserError(f"{source} holds no selections; run the tuning config first (docs/tuning.md)")
    protocol = record.get("protocol", {})
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:12] if Path(source).is_file() else "-"
    lines = [f"# Selected by equal-budget tuning (docs/tuning.md) in {source} (sha256 {digest}): "
             f"{protocol.get('trials')} trials per method and task, search seed {protocol.get('seed')}, trial "
             f"seed {protocol.get('trial_seed')}, on each task's validation split.",
             f"# Rule: {protocol.get('rule', RULE)}."]
    for s in selections:
        best = next(t for t in s["trial_results"] if t["trial"] == s["selected"])
        score = ", ".join(f"{name} {best[name]:+.3f}" for name in ("closeness", "forget", "utility")
                          if best.get(name) is not None)
        how = (f"by {s['ranking_key']}" if s.get("ranking_key") else
               f"UNRANKED: {s.get('unranked') or 'no ranking'}; the earliest finished trial")
        lines.append(f"# {s['task']}/{s['method']}: trial {s['selected']} of {s['trials']} ({best['verdict']}"
                     f"{'; ' + score if score else ''}; {how})")
    if task is None:
        body: dict[str, Any] = {"task_method_params": {}}
        for s in selections:
            body["task_method_params"].setdefault(s["task"], {})[s["method"]] = s["selected_params"]
    else:
        merged = {name: dict(params) for name, params in (base or {}).items()}
        for s in selections:
            merged[s["method"]] = {**merged.get(s["method"], {}), **s["selected_params"]}
        body = {"method_params": merged}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=True, default_flow_style=None, width=110)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.engine.tuning selected OUT/tuning.json [--task T --config CFG]``: the selected values as
    config YAML on stdout (docs/tuning.md, "From the selection to the study")."""
    parser = argparse.ArgumentParser(prog="python -m bench.engine.tuning")
    sub = parser.add_subparsers(dest="command", required=True)
    sel = sub.add_parser("selected", help="print the selected values of a tuning.json as config YAML")
    sel.add_argument("tuning_json")
    sel.add_argument("--task", help="one task's selection as method_params (merged over --config's)")
    sel.add_argument("--config", help="the config whose method_params the selection is merged over (with --task)")
    args = parser.parse_args(argv)
    try:
        from bench.engine.config import load_config
        from bench.engine.store import read_json

        path = Path(args.tuning_json)
        if not path.is_file():
            raise UserError(f"{path} does not exist; pass the tuning.json of a tuning run's --out")
        if args.config and not args.task:
            raise UserError("--config is merged into one task's method_params: add --task TASK")
        base = load_config(args.config).method_params if args.config else None
        sys.stdout.write(selected_yaml(read_json(path), str(path), base, args.task))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
