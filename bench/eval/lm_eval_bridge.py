"""lm-evaluation-harness tasks as utility metrics, run in-process on the live model.

A run config's ``utility_tasks:`` names lm-eval tasks (``arc_easy``, ``mmlu``, a user's own YAML task, …).
Each is evaluated on every unlearned model and on the base model through an ``HFLM`` wrapped around the
model object already in memory — the batch size is set on the ``HFLM``, since ``simple_evaluate`` ignores
the one it is given when the model is an object — with ``log_samples=True``, so every metric comes back
with one value per document and its delta against the base is paired and bootstrapped like the tasks' own.

Offline form: ``data_files:`` on a utility task writes a task YAML that ``include``-s the installed task and
swaps its dataset for local JSON lines (for example GSM8K from a local folder); ``lm_eval_include_path``
adds a folder of the user's own YAML tasks. Online form: hub tasks as lm-eval ships them.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean, require_package

#: Metrics that are shares of documents (bounded in [0, 1], the same yardstick as our share metrics).
SHARE_METRICS = {"acc", "acc_norm", "exact_match", "mcc", "f1", "em", "acc_mutual_info"}


@dataclass
class UtilityTask:
    """One lm-eval task run as a utility metric."""

    name: str
    num_fewshot: int | None = None
    #: First ``limit`` documents of the test split (``None``: all).
    limit: int | None = None
    batch_size: int = 8
    #: Which of the task's metrics to keep, as lm-eval names them (``acc_norm``, ``exact_match,strict-match``);
    #: empty: all.
    metrics: list[str] = field(default_factory=list)
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    #: Offline form: split name -> local JSON-lines file; the installed task runs on these files instead of
    #: its hub dataset (task name ``<name>_local``).
    data_files: dict[str, str] = field(default_factory=dict)
    #: Generation settings merged into the task's (lm-eval's ``--gen_kwargs``), e.g. ``max_gen_toks=128``.
    gen_kwargs: str | None = None
    #: Counted in the task's utility score U (else a detail).
    primary: bool = True

    @property
    def run_name(self) -> str:
        return f"{self.name}_local" if self.data_files else self.name


def require_lm_eval() -> Any:
    return require_package("lm_eval", "utility_tasks need lm-evaluation-harness: pip install "
                                      "'unlearn-bench[lm-eval]' (lm_eval==0.4.13)")


def local_task_yaml(task: UtilityTask, installed_yaml: Path) -> str:
    """A task that includes ``installed_yaml`` and reads ``task.data_files`` instead of the hub."""
    files = {}
    for split, path in task.data_files.items():
        if not Path(path).is_file():
            raise UserError(f"utility task '{task.name}': data file {path} ({split}) does not exist; "
                            "give existing JSON-lines files in data_files")
        files[split] = str(Path(path).resolve())
    return "\n".join([f"include: {json.dumps(str(installed_yaml))}", f"task: {task.run_name}",
                      "tag: []", "dataset_path: json", "dataset_name: null", "dataset_kwargs:",
                      "  data_files:", *(f"    {split}: {json.dumps(p)}" for split, p in files.items()), ""])


class TaskCatalog:
    """lm-eval's task index plus our local YAMLs (one ``TaskManager``, built once: it scans every YAML)."""

    def __init__(self, tasks: list[UtilityTask], include_path: str | None = None) -> None:
        require_lm_eval()
        from lm_eval.tasks import TaskManager

        self._tmp = tempfile.TemporaryDirectory(prefix="ub-lm-eval-")
        installed = TaskManager(include_path=include_path) if include_path else TaskManager()
        for task in tasks:
            if task.name not in installed.all_tasks:
                raise UserError(f"utility_tasks: '{task.name}' is not an lm-eval task; "
                                f"{did_you_mean(task.name, installed.all_tasks)}")
            if task.data_files:
                entry = installed.task_index[task.name]
                yaml_path = getattr(entry, "yaml_path", None)
                if yaml_path is None or "group" in str(getattr(entry, "kind", "")).lower():
                    raise UserError(f"utility task '{task.name}' is a group; data_files needs a single task")
                Path(self._tmp.name, f"{task.run_name}.yaml").write_text(local_task_yaml(task, Path(yaml_path)))
        if any(t.data_files for t in tasks):  # a second index that also sees the local-data YAMLs
            installed = TaskManager(include_path=[self._tmp.name] + ([include_path] if include_path else []))
        self.manager = installed

    def close(self) -> None:
        self._tmp.cleanup()


_CATALOGS: dict[str, TaskCatalog] = {}


def catalog(tasks: list[UtilityTask], include_path: str | None = None) -> TaskCatalog:
    """The catalog of a utility-task configuration, built once per process (indexing lm-eval's YAMLs takes
    seconds): the run's up-front check and every evaluation in the same process share it."""
    from bench.params import params_dict, stable_hash

    key = stable_hash([[params_dict(t) for t in tasks], include_path])
    if key not in _CATALOGS:
        _CATALOGS[key] = TaskCatalog(tasks, include_path)
    return _CATALOGS[key]


def check_tasks(raw: list[Any], include_path: str | None = None) -> list[UtilityTask]:
    """Parse and check ``utility_tasks`` before any cell runs (unknown names: a did-you-mean error)."""
    from bench.params import build_params

    tasks = [build_params(UtilityTask, {"name": t} if isinstance(t, str) else t, "utility_tasks") for t in raw]
    if include_path and not Path(include_path).is_dir():
        raise UserError(f"lm_eval_include_path {include_path} is not a folder; give the folder of your task YAMLs")
    if tasks:
        catalog(tasks, include_path)
    return tasks


def _metric_names(task: UtilityTask, results: dict[str, Any], name: str) -> list[str]:
    keys = [k for k in results if k != "alias" and not k.endswith("_stderr") and "_stderr," not in k]
    if task.metrics:
        missing = [m for m in task.metrics if m not in keys and f"{m},none" not in keys]
        if missing:
            raise UserError(f"utility task '{name}' has no metric {missing[0]}; it reports {sorted(keys)}")
        return [m if m in keys else f"{m},none" for m in task.metrics]
    return keys


def _per_item(samples: list[dict[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    """Per-document values of ``metric`` (``name,filter``) and each document's chance level (1/choices)."""
    base, _, filt = metric.partition(",")
    values, chance = [], []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        if s.get("filter", "none") != (filt or "none") or base not in s:
            continue
        value = s[base]
        values.append(float(value[0] if isinstance(value, (list, tuple)) else value))
        n_choices = len(s.get("arguments") or [])
        chance.append(1.0 / n_choices if n_choices > 1 else math.nan)
    return values, chance


def metric_name(task: UtilityTask, metric: str) -> str:
    """``lmeval_<task>_<metric>[_<filter>]`` with only word characters (metric names are file-safe)."""
    base, _, filt = metric.partition(",")
    parts = [task.run_name, base] + ([filt] if filt and filt != "none" else [])
    return "lmeval_" + "_".join(re.sub(r"\W+", "-", p).strip("-") for p in parts)


def evaluate_utility_tasks(model: Any, tokenizer: Any, tasks: list[UtilityTask], catalog: TaskCatalog,
                           ) -> tuple[list[Any], list[dict[str, Any]], dict[str, str]]:
    """Run each task on ``model``; return (metrics, samples, sources)."""
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    from bench.eval.scales import SHARE, SHARE_EFFECT
    from bench.eval.stats import mean_metric

    metrics, samples, sources = [], [], {}
    was_training = model.training
    for task in tasks:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=task.batch_size)
        out = lm_eval.simple_evaluate(
            model=lm, tasks=[task.run_name], task_manager=catalog.manager, num_fewshot=task.num_fewshot,
            limit=task.limit, log_samples=True, bootstrap_iters=0, gen_kwargs=task.gen_kwargs,
            apply_chat_template=task.apply_chat_template, fewshot_as_multiturn=task.fewshot_as_multiturn,
            verbosity="ERROR")
        leaves = list(out["samples"])
        for metric in _metric_names(task, out["results"][leaves[0]], task.run_name):
            values, chance = [], []
            for leaf in leaves:  # a group (mmlu): every subtask's documents, i.e. the micro average
                v, c = _per_item(out["samples"][leaf], metric)
                values += v
                chance += c
            if not values:
                continue
            base = metric.partition(",")[0]
            higher = out.get("higher_is_better", {}).get(leaves[0], {}).get(base, True)
            share = base in SHARE_METRICS
            kind = "choice" if chance and not any(math.isnan(c) for c in chance) else "generative"
            extra: dict[str, Any] = {"min_effect": SHARE_EFFECT, "bounds": SHARE} if share else {}
            if kind == "choice" and share:
                extra["chance"] = sum(chance) / len(chance)
            m = mean_metric(metric_name(task, metric), "utility", values, "higher" if higher else "lower", kind,
                            **extra)
            m.primary = task.primary
            metrics.append(m)
        for leaf in leaves:
            samples += [{"set": f"lm_eval:{leaf}", "id": s["doc_id"], "filter": s.get("filter"),
                         "output": _first_response(s), "target": str(s.get("target"))}
                        for s in out["samples"][leaf]]
        sources[f"lm_eval:{task.run_name}"] = (
            f"lm-evaluation-harness {getattr(lm_eval, '__version__', '?')} task {task.name}"
            + (f" over local files {task.data_files}" if task.data_files else " (its own dataset source)")
            + f"; num_fewshot={out['config'].get('num_fewshot') if task.num_fewshot is None else task.num_fewshot}"
            + f", limit={task.limit}, chat template={task.apply_chat_template}")
    model.train(was_training)
    return metrics, samples, sources


def _first_response(sample: dict[str, Any]) -> str:
    resp = sample.get("filtered_resps") or sample.get("resps") or [""]
    first = resp[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    return str(first)
