"""Run configuration: YAML file + CLI overrides -> validated ``RunConfig`` -> list of ``CellSpec``.

A cell is (model, method + params, task + params, seed); its id embeds a hash of everything that
changes its result, so a changed parameter is a new cell and an unchanged one is skipped on resume.
Lists in method/task parameters (where the field is not itself a list) are hyperparameter sweeps and
expand into one cell per combination.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import UserError, did_you_mean
from .params import build_params, params_dict, stable_hash
from .plugins import Registry


@dataclass
class RunConfig:
    model: str = "smollm2-135m-instruct"
    methods: list[str] = field(default_factory=lambda: ["ga"])
    tasks: list[str] = field(default_factory=lambda: ["coding"])
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: Literal["demo", "paper"] = "demo"
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "runs/default"
    device: str = "auto"
    dtype: str = "auto"
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 0
    forget_data: Literal["task"] = "task"
    progress: bool = True

    def validate(self) -> None:
        if not self.methods:
            raise ValueError("at least one method is needed (methods: [ga])")
        if not self.tasks:
            raise ValueError("at least one task is needed (tasks: [coding])")
        if not self.seeds:
            raise ValueError("at least one seed is needed (seeds: [0])")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


def _normalise_plugin_section(raw: dict[str, Any], key: str, params_key: str) -> None:
    """Allow ``methods: {ga: {lr: 1e-4}}`` as shorthand for a name list plus a params mapping."""
    value = raw.get(key)
    if isinstance(value, dict):
        raw[key] = list(value)
        merged = dict(raw.get(params_key) or {})
        for name, params in value.items():
            merged[name] = {**(params or {}), **merged.get(name, {})}
        raw[params_key] = merged
    elif isinstance(value, str):
        raw[key] = [value]


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise UserError(f"config file {path} does not exist; pass an existing YAML file to --config")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise UserError(f"config file {path} is not valid YAML{where}; fix the syntax") from None
        if not isinstance(raw, dict):
            raise UserError(f"config file {path} must be a mapping of keys (model:, methods:, ...)")
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    _normalise_plugin_section(raw, "methods", "method_params")
    _normalise_plugin_section(raw, "tasks", "task_params")
    return build_params(RunConfig, raw, "config")


@dataclass(frozen=True)
class CellSpec:
    """Everything that defines one cell; JSON-serialisable so any executor can ship it."""

    model: str
    method: str
    method_params: dict[str, Any]
    task: str
    task_params: dict[str, Any]
    seed: int
    preset: str
    dtype: str
    device: str = "auto"
    forget_data: str = "task"

    def key(self) -> dict[str, Any]:
        return {"model": self.model, "method": self.method, "method_params": self.method_params,
                "task": self.task, "task_params": self.task_params, "seed": self.seed, "dtype": self.dtype,
                "forget_data": self.forget_data}

    @property
    def cell_id(self) -> str:
        return f"{self.method}__{self.task}__s{self.seed}__{stable_hash(self.key(), 8)}"

    @property
    def base_id(self) -> str:
        """Base evaluation key: model + task + eval config (the run seed does not change evaluation)."""
        return f"{self.task}__{stable_hash({'model': self.model, 'task': self.task, 'task_params': self.task_params, 'dtype': self.dtype}, 8)}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_list_field(cls: type, name: str) -> bool:
    hints = typing.get_type_hints(cls)
    return name in hints and typing.get_origin(hints[name]) in (list, tuple)


def expand_sweep(cls: type, values: dict[str, Any]) -> list[dict[str, Any]]:
    """``{lr: [1e-5, 3e-5], steps: 10}`` -> two dicts, unless the field itself is a list."""
    sweep_keys = [k for k, v in values.items() if isinstance(v, list) and not _is_list_field(cls, k)]
    if not sweep_keys:
        return [values]
    combos = itertools.product(*(values[k] for k in sweep_keys))
    return [{**values, **dict(zip(sweep_keys, combo))} for combo in combos]


def _resolved(cls: type, preset: str, paper_preset: dict[str, Any], user: dict[str, Any], where: str) -> list[dict[str, Any]]:
    base = dict(paper_preset) if preset == "paper" else {}
    return [params_dict(build_params(cls, {**base, **variant}, where))
            for variant in expand_sweep(cls, {**base, **user})]


def plan_cells(config: RunConfig, registry: Registry) -> list[CellSpec]:
    """Validate every name and parameter up front, then list the cells (tasks outermost)."""
    methods = {m: registry.get("method", m).cls for m in config.methods}
    tasks = {t: registry.get("task", t).cls for t in config.tasks}
    # Parameters for a registered plugin outside this run are fine (a config shared by several runs,
    # narrowed with --methods); a name that is not registered at all is a typo.
    for section, kind in (("method_params", "method"), ("task_params", "task")):
        for name in getattr(config, section):
            if name not in registry.entries[kind]:
                raise UserError(f"{section} has '{name}', which is not a registered {kind}; "
                                f"{did_you_mean(name, registry.entries[kind])}")
    cells = []
    for task_name, task_cls in tasks.items():
        for task_params in _resolved(task_cls.Params, config.preset, task_cls.paper_preset,
                                     config.task_params.get(task_name, {}), f"task_params.{task_name}"):
            for method_name, method_cls in methods.items():
                for method_params in _resolved(method_cls.Params, config.preset, method_cls.paper_preset,
                                               config.method_params.get(method_name, {}),
                                               f"method_params.{method_name}"):
                    for seed in config.seeds:
                        cells.append(CellSpec(config.model, method_name, method_params, task_name, task_params,
                                              int(seed), config.preset, config.dtype, config.device,
                                              config.forget_data))
    return cells
