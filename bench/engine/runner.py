"""Running cells and matrices: load -> unlearn -> evaluate -> write, with resume and a base cache.

``run_cell`` is a plain function of a JSON-serialisable ``CellSpec`` and an output directory, so any
executor (in-process loop, Ray task) can call it. Failures never escape a cell: they become
``status: failed`` with the traceback in the cell's log, and the matrix goes on.
"""

from __future__ import annotations

import logging
import os
import random
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.api import Metric, TrajectoryLogger, UnlearnContext
from bench.data.text import deployed_behind
from bench.engine.config import CellSpec, RunConfig, plan_cells
from bench.engine.progress import bar
from bench.engine.provenance import (
    PeakMemory,
    Timer,
    command_line,
    git_commit,
    machine,
    package_versions,
    portable,
)
from bench.engine.store import ResultsStore
from bench.errors import Diverged, UserError
from bench.eval.stats import attach_delta
from bench.lm.generation import BACKEND_ENV, resolve_backend
from bench.lm.models import ModelCache, ModelInfo
from bench.lm.precision import eval_precision, resolve_autocast, resolve_eval_autocast
from bench.params import build_params, stable_hash
from bench.plugins import Registry
from bench.results import BaseResult, CellResult

log = logging.getLogger("unlearn_bench")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextmanager
def cell_log(path: Path) -> Iterator[logging.Logger]:
    """Send the harness logger to ``path`` for the duration of a cell (or base evaluation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    previous = log.level
    log.setLevel(min(previous or logging.INFO, logging.INFO))
    try:
        yield log
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous)


def _provenance(spec: CellSpec, info: ModelInfo, sources: dict[str, str], registry: Registry,
                seconds: float, memory: dict[str, float], teach: dict[str, Any] | None = None) -> dict[str, Any]:
    method = registry.entries["method"].get(spec.method)
    task = registry.entries["task"].get(spec.task)
    # portable: no absolute path of this machine in a result (a committed board would carry it)
    return portable({
        "versions": package_versions(),
        "git": git_commit(),
        "plugins": {"method": f"{method.package} {method.version}" if method else None,
                    "task": f"{task.package} {task.version}" if task else None},
        "model": info.__dict__,
        "task_version": task_version(registry, spec.task) if task else None,
        "data_sources": sources,
        "seed": spec.seed,
        "preset": spec.preset,
        "device": info.device,
        "generation_backend": resolve_backend(info.device, spec.generation_backend),
        "eval_autocast": resolve_eval_autocast(spec.eval_autocast, info.device),
        "train_autocast": resolve_autocast(str(spec.method_params.get("autocast", "off")), info.device),
        "machine": machine(),
        "wall_time_s": round(seconds, 2),
        "memory": memory,
        "command": command_line(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"teach": teach} if teach else {}),
    })


@contextmanager
def generation_backend(name: str) -> Iterator[None]:
    """The run's generation backend for every ``generate`` inside a cell (tasks do not pass one)."""
    previous = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = previous


@dataclass
class Engine:
    """What a process needs to run cells: the registry, the store and its in-memory base models."""

    registry: Registry
    store: ResultsStore
    models: ModelCache = field(default_factory=ModelCache)
    progress: bool = True
    #: Reveal results on the base model, shared by every method of a (task, seed, reveal config).
    revealed: dict[str, Any] = field(default_factory=dict)
    #: Probes of the base model per (base evaluation, seed): every method's trajectory starts there.
    base_probes: dict[tuple[str, int], dict[str, float] | None] = field(default_factory=dict)
    #: Taught tasks' (taught, oracle) pairs per (model, task, task params, recipe), built or found once.
    taught: dict[str, Any] = field(default_factory=dict)
    #: The teaching adapters' subspaces per pair key (``bench.eval.mechanism.TeachingSpan``), computed once.
    teaching_spans: dict[str, Any] = field(default_factory=dict)

    # -- teaching ----------------------------------------------------------------------------
    def taught_pair(self, spec: CellSpec) -> Any:
        """The (taught, oracle) pair of a taught cell's task (``bench.teach.ensure``: cached, shipped or
        trained now), once per process."""
        from bench.teach import ensure

        key = stable_hash([spec.model, spec.task, spec.task_params, spec.teach])
        if key not in self.taught:
            self.taught[key] = ensure(spec.model, self._task(spec), spec.teach, progress=self.progress)
        return self.taught[key]

    def model_ref(self, spec: CellSpec, role: str = "taught") -> str:
        """What to load for ``spec``: its model, or on a taught task the ``role``'s model folder (the taught
        model is every method's base; ``untaught`` is the model as given)."""
        if spec.teach is None or role == "untaught":
            return spec.model
        if role == "taught" and spec.start == "oracle":  # ``on_oracle``: the method starts from the oracle
            role = "oracle"
        return str(self.taught_pair(spec).model_dir(role))

    def mechanism(self, spec: CellSpec, model: Any) -> dict[str, Any]:
        """How much of the method's weight change lies in the teaching adapter's span (``bench.eval.mechanism``):
        ΔW = the unlearned weights − the taught model's (read from its folder: the resident copy may be the one
        the method changed in place). A diagnostic that cannot be computed is recorded as an error with its
        reason, never dropped silently, and does not fail the cell."""
        from bench.eval.mechanism import TeachingSpan, mechanism, projection_weights, taught_weights

        pair = self.taught_pair(spec)
        if not pair.adapter_dir("taught").exists():
            return {"error": "the task was taught by full fine-tuning (teach: finetune: full): there is no teaching "
                             "adapter whose span a change could lie in", "teach_key": pair.key}
        try:
            with Timer() as timer:
                if pair.key not in self.teaching_spans:
                    self.teaching_spans[pair.key] = TeachingSpan.from_adapter(pair.adapter_dir("taught"))
                record = mechanism(projection_weights(model), taught_weights(pair.model_dir("taught")),
                                   self.teaching_spans[pair.key])
            return {**record, "teach_key": pair.key, "seconds": round(timer.seconds, 2)}
        except (ValueError, OSError, KeyError) as err:
            log.warning("cell %s: mechanism diagnostics not computed: %s", spec.cell_id, err)
            return {"error": f"{type(err).__name__}: {err}".splitlines()[0][:300], "teach_key": pair.key}

    def teach_provenance(self, spec: CellSpec) -> dict[str, Any] | None:
        return self.taught_pair(spec).provenance() if spec.teach is not None else None

    def task_data(self, spec: CellSpec, task: Any) -> Any:
        """The task's data for the cell's seed; on a taught task, forget and retain data drawn from the
        teaching data (``Task.use_teaching``)."""
        data = task.load(spec.seed)
        return task.use_teaching(data, task.teach_data(), spec.seed) if spec.teach is not None else data

    def _evaluate(self, spec: CellSpec, task: Any, model: Any, tokenizer: Any, data: Any,
                  unlearned: bool = True) -> Any:
        """The task's evaluation, plus the run's ``utility_tasks`` (lm-eval) as utility metrics; their
        sources are added to ``data.sources``. A task that scores text under a reference model (toxicity's
        fluency) gets the untaught model as that reference — one independent of the forget target, the same for
        the taught model, the oracle and every method (under the taught, toxic model, benign continuations read
        as less fluent and the gold standard "lost" fluency) — and, on an untaught run, the base model (for an
        unlearned model a temporary copy: the resident one is the cell's)."""
        needs_reference = task.uses_reference and (unlearned or spec.teach is not None)
        reference = self.models.base(self.model_ref(spec, "untaught"), spec.device, spec.dtype).model \
            if needs_reference else None
        with self.evaluation_precision(spec, model):
            evaluation = task.evaluate(model, tokenizer, data, progress=self.progress, reference=reference)
        del reference
        if spec.utility_tasks:
            from bench.eval.lm_eval_bridge import UtilityTask, catalog, evaluate_utility_tasks

            tasks = [UtilityTask(**t) for t in spec.utility_tasks]
            with self.evaluation_precision(spec, model):
                metrics, samples, sources = evaluate_utility_tasks(model, tokenizer, tasks,
                                                                   catalog(tasks, spec.lm_eval_include_path))
            evaluation.metrics += metrics
            evaluation.samples += samples
            data.sources = {**data.sources, **sources}
        return evaluation

    def _base_probe(self, spec: CellSpec, task: Any, data: Any, base_result: dict[str, Any]) -> dict[str, float]:
        """The base model's probes: its evaluation's metrics of the same names (``Task.probe``'s contract)
        when the task exposes its probe items, else computed once per (base evaluation, seed)."""
        key = (spec.base_id, spec.seed)
        if key not in self.base_probes:
            self.base_probes[key] = probes_from_evaluation(task, data, base_result["metrics"])
        if self.base_probes[key] is None:  # computed once, then cached
            base = self.models.base(self.model_ref(spec), spec.device, spec.dtype)
            with self.evaluation_precision(spec, base.model):
                self.base_probes[key] = task.probe(base.model, base.tokenizer, data)
        return dict(self.base_probes[key])

    @staticmethod
    def evaluation_precision(spec: CellSpec, model: Any) -> Any:
        """The run's evaluation precision (``eval_autocast``) on the device ``model`` lives on: evaluation,
        probes and attacks all score in it, so every value a difference or a recovered fraction is taken
        over was computed alike."""
        device = str(next(model.parameters()).device)
        return eval_precision(resolve_eval_autocast(spec.eval_autocast, device), device)

    def _probe(self, spec: CellSpec, task: Any, model: Any, tokenizer: Any, data: Any) -> dict[str, float]:
        with self.evaluation_precision(spec, model):
            return task.probe(model, tokenizer, data)

    def _reveal(self, spec: CellSpec, task: Any, data: Any, autocast: str) -> Any:
        """Self-generated forget data for ``forget_data: reveal`` (computed once per process), in the method's
        training precision (``autocast``, its ``TrainParams.autocast``): Reveal is part of the method."""
        from bench.reveal import RevealParams, reveal, reveal_seeds

        base = self.models.base(self.model_ref(spec), spec.device, spec.dtype)
        precision = resolve_autocast(autocast, base.info.device)
        key = stable_hash([spec.model, spec.task, spec.task_params, spec.seed, spec.reveal_params, spec.dtype,
                           precision, spec.teach])
        if key not in self.revealed:
            params = build_params(RevealParams, spec.reveal_params, "reveal_params")
            seed_everything(spec.seed)
            with eval_precision(precision, base.info.device):
                self.revealed[key] = reveal(base.model, base.tokenizer, task, reveal_seeds(data, params), params,
                                             spec.seed)
        return self.revealed[key]

    def _task(self, spec: CellSpec) -> Any:
        cls = self.registry.get("task", spec.task).cls
        return cls(build_params(cls.Params, spec.task_params, f"task_params.{spec.task}"))

    def _method(self, spec: CellSpec) -> Any:
        cls = self.registry.get("method", spec.method).cls
        return cls(build_params(cls.Params, spec.method_params, f"method_params.{spec.method}"))

    # -- base evaluation -------------------------------------------------------------------
    def base_result(self, spec: CellSpec) -> dict[str, Any]:
        """The base model's evaluation for this cell's (model, task, eval config), computed once."""
        cached = self.store.base_result(spec.base_id)
        if cached is not None:
            check_base_version(cached, spec, self.registry, self.store)
            return cached
        folder = self.store.base_dir(spec.base_id)
        with cell_log(folder / "log.txt"), generation_backend(spec.generation_backend), PeakMemory() as memory, \
                Timer() as timer:
            log.info("evaluating base model %s on %s", spec.model, spec.task)
            task = self._task(spec)
            base = self.models.base(self.model_ref(spec), spec.device, spec.dtype)
            # on a taught task as the cells see it (``task_data``): a task may probe the taught capability there
            data = self.task_data(replace(spec, seed=0), task)
            evaluation = self._evaluate(spec, task, base.model, base.tokenizer, data, unlearned=False)
        described = {"model": spec.model, "task": spec.task, "task_params": spec.task_params,
                     **({"start": spec.start} if spec.start != "taught" else {})}
        result = BaseResult(spec.base_id, described,
                            {m.name: m for m in evaluation.metrics},
                            _provenance(spec, base.info, data.sources, self.registry, timer.seconds,
                                        memory.summary(), self.teach_provenance(spec))).to_json()
        self.store.write_base(spec.base_id, result, evaluation.samples)
        log.info("base evaluation of %s took %.1fs", spec.task, timer.seconds)
        return result

    # -- one cell --------------------------------------------------------------------------
    def run_cell(self, spec: CellSpec, attempt: int = 0) -> dict[str, Any]:
        """Run one cell and write its result; ``attempt`` > 0 marks an executor's retry."""
        folder = self.store.cell_dir(spec.cell_id)
        trajectory = TrajectoryLogger(echo=lambda line: log.info("trajectory %s", line))
        status, reason, metrics, samples = "done", None, {}, []
        extras: dict[str, Any] = {"attempts": attempt + 1} if attempt else {}
        info: ModelInfo | None = None
        sources: dict[str, str] = {}
        ctx: UnlearnContext | None = None
        staged: Path | None = None  # where a checkpoint is staged until the result is known
        with cell_log(folder / "log.txt"), generation_backend(spec.generation_backend), PeakMemory() as memory, \
                Timer() as timer:
            log.info("cell %s: %s on %s, seed %d", spec.cell_id, spec.method, spec.task, spec.seed)
            try:
                base = self.base_result(spec)
                task, method = self._task(spec), self._method(spec)
                seed_everything(spec.seed)
                data = self.task_data(spec, task)
                sources = data.sources
                # everything the base model provides is asked for before the cell borrows it
                if spec.forget_data == "reveal":
                    revealed = self._reveal(spec, task, data, str(getattr(method.params, "autocast", "off")))
                    data.forget = revealed.forget
                    extras["reveal"] = {"trajectory": revealed.trajectory, "stats": revealed.stats}
                    sources = dict(sources, forget="self-generated by Reveal on the base model "
                                                   f"({revealed.stats['forget_size']} responses)")
                base_probe = self._base_probe(spec, task, data, base)
                if spec.attacks:
                    from bench.engine.attacks import attack_controls, run_attacks

                    attack_controls(self, spec, task, data)
                with self.models.checkout(self.model_ref(spec, reference_role(spec)), spec.device,
                                          spec.dtype) as loaded:
                    info = loaded.info
                    ctx = UnlearnContext(
                        model=loaded.model, tokenizer=loaded.tokenizer, task=task, data=data, seed=spec.seed,
                        device=info.device, probe=lambda m: self._probe(spec, task, m, loaded.tokenizer, data),
                        log=trajectory, progress=self.progress, base_probe=lambda: dict(base_probe))
                    if spec.save_model == "adapter":
                        from bench.engine.checkpoints import save_weights, staging

                        staged = staging(folder, "adapter")
                        ctx.keep_adapter = lambda peft_model: save_weights(peft_model, staged)
                    seed_everything(spec.seed)
                    # everything a method computes (its training, Reveal's and ICU's generations, R&R's held-out
                    # measures) runs in its training precision; its probes in the evaluation's (``_probe``)
                    train_precision = resolve_autocast(str(getattr(method.params, "autocast", "off")), info.device)
                    with Timer() as unlearn_timer, eval_precision(train_precision, info.device):
                        model = method.unlearn(ctx)
                    extras.update(ctx.extras, unlearn_time_s=round(unlearn_timer.seconds, 2))
                    if spec.teach is not None and spec.method != "reference" and spec.start == "taught":
                        extras["mechanism"] = self.mechanism(spec, model)  # against the taught model's adapter
                    if staged is not None and not (staged / "adapter_config.json").exists():
                        raise RuntimeError("save_model: adapter, but the method handed over no adapter; it must "
                                           "end with bench.lm.training.merged(model, ctx)")
                    # a method may deploy the model behind a system prompt (the prompt baseline)
                    with deployed_behind(ctx.system_prompt):
                        with Timer() as eval_timer:
                            evaluation = self._evaluate(spec, task, model, loaded.tokenizer, data)
                            sources = {**sources, **data.sources}
                        extras["eval_time_s"] = round(eval_timer.seconds, 2)
                        fill_final_probe(trajectory.rows, evaluation.metrics)
                        if spec.attacks:
                            with Timer() as attack_timer:
                                run_attacks(self, spec, task, data, model, loaded.tokenizer, info.device,
                                            evaluation.metrics)
                            extras["attack_time_s"] = round(attack_timer.seconds, 2)
                    for metric in evaluation.metrics:
                        if metric.name in base["metrics"]:
                            attach_delta(metric, Metric.from_json(base["metrics"][metric.name]))
                    metrics = {m.name: m for m in evaluation.metrics}
                    samples = evaluation.samples
                    if spec.save_model != "none":
                        keep = (model, loaded.tokenizer)
                    # freed before the next cell (ctx stays: the except clause reads its extras)
                    model = loaded = ctx.model = None
            except Diverged as err:
                status, reason = "diverged", str(err)
                extras["diverged_step"] = err.step
                log.warning("cell %s diverged: %s", spec.cell_id, err)
            except Exception as err:  # noqa: BLE001 - a cell's failure must not stop the matrix
                status, reason = "failed", f"{type(err).__name__}: {err}".splitlines()[0][:500]
                if ctx is not None:  # what the method recorded before failing (e.g. Reveal's statistics)
                    extras.update(ctx.extras)
                log.error("cell %s failed:\n%s", spec.cell_id, traceback.format_exc())
        if info:
            provenance = _provenance(spec, info, sources, self.registry, timer.seconds, memory.summary(),
                                     self.teach_provenance(spec))
        else:  # failed before the model was loaded
            provenance = {"versions": package_versions(), "git": git_commit(), "wall_time_s": round(timer.seconds, 2)}
        result = CellResult(spec.cell_id, spec.base_id, status, spec.to_json(), reason, metrics, trajectory.rows,
                            extras, provenance).to_json()
        if status == "done" and spec.save_model != "none":
            from bench.engine.checkpoints import finish, save_weights, staging

            model, tokenizer = keep
            if spec.save_model == "merged":
                staged = staging(folder, "model")
                save_weights(model, staged)
            path = finish(staged, tokenizer, result, "adapter" if spec.save_model == "adapter" else "model")
            log.info("cell %s: unlearned %s saved to %s", spec.cell_id, spec.save_model, path)
            del keep, model
        self.store.write_cell(spec.cell_id, result, samples)
        log.info("cell %s: %s in %.1fs%s", spec.cell_id, status, timer.seconds, f" ({reason})" if reason else "")
        return result


def reference_role(spec: CellSpec) -> str:
    """The model a cell borrows: a reference cell's role (``bench.teach.reference``), else the taught one."""
    return str(spec.method_params.get("role", "taught")) if spec.method == "reference" else "taught"


def prepare_teaching(engine: Engine, cells: list[CellSpec]) -> None:
    """Build or find every taught task's (taught, oracle) pair before any cell runs: outside the cells' timers,
    and once (a parallel executor's workers then find them in the cache)."""
    for spec in {stable_hash([c.model, c.task, c.task_params, c.teach]): c for c in cells
                 if c.teach is not None}.values():
        engine.taught_pair(spec)


def probes_from_evaluation(task: Any, data: Any, metrics: dict[str, Any]) -> dict[str, float] | None:
    """``{"forget/x": value}`` for every probe of ``task`` from an evaluation's metrics (a result record's
    ``metrics``), or None when the task does not list its probes (``probe_items``) or a probe has no metric."""
    try:
        keys = list(task.probe_items(data))
    except NotImplementedError:
        return None
    values = {}
    for key in keys:
        group, _, name = key.partition("/")
        metric = metrics.get(name)
        if metric is None or metric["group"] != group:
            return None
        values[key] = float(metric["value"])
    return values


def fill_final_probe(rows: list[dict[str, Any]], metrics: list[Metric]) -> None:
    """Give the trajectory's last row the probe values of the final evaluation when it has none.

    Probe keys are ``probe/<kind>/<metric name>`` of likelihood metrics the evaluation also reports, so
    the end point of a trajectory costs nothing extra (methods log probes only where they need them).
    """
    if not rows or any(k.startswith("probe/") for k in rows[-1]):
        return
    probe_keys = {k for row in rows for k in row if k.startswith("probe/")}
    final = {f"probe/{m.group}/{m.name}": m.value for m in metrics}
    filled = {k: final[k] for k in sorted(probe_keys) if k in final}
    if filled:
        rows[-1].update(filled, probe_source="final evaluation")


def task_version(registry: Registry, task: str) -> str:
    """The registered task's ``version`` (``"1"`` when it declares none): recorded with every result and
    compared with a stored base evaluation's."""
    return str(getattr(registry.get("task", task).cls, "version", "1"))


@dataclass
class MatrixSummary:
    planned: int
    skipped: int
    ran: dict[str, str]  # cell id -> status

    def line(self) -> str:
        counts: dict[str, int] = {}
        for s in self.ran.values():
            counts[s] = counts.get(s, 0) + 1
        ran = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to run"
        return f"{self.planned} cells: {self.skipped} already finished, {ran}"


def check_base_version(cached: dict[str, Any], spec: CellSpec, registry: Registry, store: ResultsStore) -> None:
    """A stored base evaluation is the reference of every delta: one made by another version of the task (whose
    metrics may be defined differently) is refused, never reused silently."""
    version = task_version(registry, spec.task)
    stored = str(cached.get("provenance", {}).get("task_version", version))
    if stored != version:
        raise UserError(f"{store.root} holds a base evaluation of task {spec.task} version {stored}; this is "
                        f"version {version}: use a new --out directory")


def check_cached_bases(cells: list[CellSpec], registry: Registry, store: ResultsStore) -> None:
    """Before any cell runs (exit 2, nothing written): every stored base evaluation the cells would reuse."""
    for spec in {c.base_id: c for c in cells}.values():
        cached = store.base_result(spec.base_id)
        if cached is not None:
            check_base_version(cached, spec, registry, store)


def run_matrix(config: RunConfig, registry: Registry, force: bool = False,
               cells: list[CellSpec] | None = None) -> MatrixSummary:
    """Plan, validate and run every cell of ``config`` in this process (the local executor); ``cells``: run
    these instead of ``config``'s matrix (tuning trials and tuned runs)."""
    cells = plan_cells(config, registry) if cells is None else cells
    store = ResultsStore(config.out)
    store.open()
    check_cached_bases(cells, registry, store)
    engine = Engine(registry, store, progress=config.progress)
    engine.models.base(config.model, config.device, config.dtype)  # a bad model fails before any cell
    prepare_teaching(engine, cells)
    todo = [c for c in cells if force or not store.is_complete(c.cell_id, c.attack_ids)]
    ran: dict[str, str] = {}
    for spec in bar(todo, config.progress, "cells", unit="cell"):
        try:  # base evaluation outside the cell's timer; on failure the cell records the error itself
            engine.base_result(spec)
        except Exception:  # noqa: BLE001
            log.exception("base evaluation for %s failed", spec.task)
        ran[spec.cell_id] = engine.run_cell(spec)["status"]
    return MatrixSummary(len(cells), len(cells) - len(todo), ran)
