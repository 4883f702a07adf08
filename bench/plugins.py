"""Plugin discovery: entry points of group ``unlearn_bench`` -> registries of methods, tasks, reporters.

Built-in methods and tasks are loaded exactly like third-party plugins (they are entry points of this
distribution). A plugin that fails to import or to register is reported on stderr and skipped, so one
broken package never takes the harness down (tox 4 behaviour).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import UserError, unknown

GROUP = "unlearn_bench"
KINDS = ("method", "task", "reporter")


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    cls: type
    package: str
    version: str


@dataclass
class PluginProblem:
    plugin: str
    package: str
    stage: str  # "import" | "register"
    error: str


class Registry:
    """All registered plugins, by kind and name."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}
        self.problems: list[PluginProblem] = []

    def get(self, kind: str, name: str) -> Registration:
        found = self.entries[kind].get(name)
        if found is None:
            raise unknown(kind, name, self.entries[kind])
        return found

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def rows(self) -> list[dict[str, str]]:
        return [
            {"kind": r.kind, "name": r.name, "package": r.package, "version": r.version}
            for kind in KINDS
            for r in sorted(self.entries[kind].values(), key=lambda r: r.name)
        ]


def _warn(problem: PluginProblem) -> None:
    print(
        f"unlearn-bench: plugin '{problem.plugin}' from {problem.package} failed at {problem.stage} "
        f"and was skipped: {problem.error}",
        file=sys.stderr,
    )


def _register_module(registry: Registry, pm: pluggy.PluginManager, module: Any, name: str,
                     package: str, version: str) -> None:
    collected: list[tuple[str, type]] = []
    hooks = {"method": pm.hook.register_methods, "task": pm.hook.register_tasks,
             "reporter": pm.hook.register_reporters}
    pm.register(module, name=name)
    try:
        for kind, hook in hooks.items():
            hook(register=lambda cls, _kind=kind: collected.append((_kind, cls)))
        for kind, cls in collected:
            plugin_name = getattr(cls, "name", None)
            if not isinstance(plugin_name, str) or not plugin_name:
                raise TypeError(f"{cls!r} has no 'name' class attribute")
            registry.entries[kind][plugin_name] = Registration(kind, plugin_name, cls, package, version)
    finally:
        pm.unregister(module)


def load_registry(extra_modules: list[Any] | None = None) -> Registry:
    """Discover and register every plugin. ``extra_modules`` lets tests add in-memory plugins."""
    registry = Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    entries = sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)
    for ep in entries:
        dist = ep.dist
        package = dist.metadata["Name"] if dist else "unknown"
        version = dist.version if dist else "unknown"
        try:
            module = ep.load()
        except Exception as err:  # noqa: BLE001 - any failure in third-party code is isolated
            problem = PluginProblem(ep.name, package, "import", f"{type(err).__name__}: {err}")
            registry.problems.append(problem)
            _warn(problem)
            continue
        try:
            _register_module(registry, pm, module, ep.name, package, version)
        except Exception as err:  # noqa: BLE001
            problem = PluginProblem(ep.name, package, "register", f"{type(err).__name__}: {err}")
            registry.problems.append(problem)
            _warn(problem)
    for module in extra_modules or []:
        _register_module(registry, pm, module, module.__name__, "(in-process)", "0")
    return registry


_CACHED: dict[tuple[str, ...], Registry] = {}


def registry(modules: Sequence[str] = ()) -> Registry:
    """The process-wide registry (loaded once), plus plugin modules named by import path (the config's
    ``plugins:``, for plugins that are not installed as packages)."""
    key = tuple(modules)
    if key not in _CACHED:
        extra = []
        for name in key:
            try:
                extra.append(importlib.import_module(name))
            except ImportError as err:
                raise UserError(f"cannot import plugin module '{name}' ({err}); install it or add its "
                                "folder to PYTHONPATH") from None
        _CACHED[key] = load_registry(extra_modules=extra)
    return _CACHED[key]
