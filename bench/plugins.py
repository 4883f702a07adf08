"""Plugin discovery: entry points of group ``unlearn_bench`` -> registries of methods, tasks, reporters.

Built-in methods and tasks are loaded exactly like third-party plugins (they are entry points of this
distribution). A plugin that fails to import or to register is reported on stderr and skipped, so one
broken package never takes the harness down (tox 4 behaviour).

The registry is strict, as lm-evaluation-harness's is: a class of the wrong kind, a name another package
already registered (built-ins load first and keep theirs), and a hook implementation no hookspec declares
(a misspelt ``register_method``, say: pluggy's ``check_pending``) refuse the whole plugin module, with a
message naming the fix. ``UNLEARN_BENCH_PLUGINS`` is an allow-list of installed plugin distributions, as
simonw/llm's ``LLM_LOAD_PLUGINS``: comma-separated package names; set but empty loads no third-party plugin.
Built-ins always load.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from bench import hookspecs
from bench.errors import UserError, unknown

GROUP = "unlearn_bench"
KINDS = ("method", "task", "reporter")
#: The distribution whose entry points are the built-ins (loaded first, never filtered by the allow-list).
BUILTIN_PACKAGE = "unlearn-bench"
ALLOW_ENV = "UNLEARN_BENCH_PLUGINS"


def _base_class(kind: str) -> type:
    from bench import api

    return {"method": api.Method, "task": api.Task, "reporter": api.Reporter}[kind]


def _normal(package: str) -> str:
    return package.lower().replace("_", "-").replace(".", "-")


def allowed_packages() -> set[str] | None:
    """The allow-list from ``UNLEARN_BENCH_PLUGINS`` (normalised package names), or ``None``: load all."""
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {_normal(name.strip()) for name in raw.split(",") if name.strip()}


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


def _validate(registry: Registry, kind: str, cls: Any, package: str) -> str:
    """The plugin name of ``cls``, or an error naming the fix (wrong type, no name, name taken)."""
    base = _base_class(kind)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"register_{kind}s got {cls!r}, which is not a subclass of bench.{base.__name__}")
    plugin_name = getattr(cls, "name", None)
    if not isinstance(plugin_name, str) or not plugin_name:
        raise TypeError(f"{cls!r} has no 'name' class attribute")
    taken = registry.entries[kind].get(plugin_name)
    if taken is not None:
        raise ValueError(f"{kind} '{plugin_name}' is already registered by {taken.package} "
                         f"({taken.cls.__module__}.{taken.cls.__qualname__}); rename the one in {package}")
    return plugin_name


def _register_module(registry: Registry, pm: pluggy.PluginManager, module: Any, name: str,
                     package: str, version: str) -> None:
    """Register every class ``module``'s hooks contribute, or none of them (the module is refused whole)."""
    collected: list[tuple[str, type]] = []
    hooks = {"method": pm.hook.register_methods, "task": pm.hook.register_tasks,
             "reporter": pm.hook.register_reporters}
    pm.register(module, name=name)
    try:
        pm.check_pending()  # a hookimpl with no hookspec (a misspelt hook) is an error, not a silent no-op
        for kind, hook in hooks.items():
            hook(register=lambda cls, _kind=kind: collected.append((_kind, cls)))
        staged: list[Registration] = []
        for kind, cls in collected:
            plugin_name = _validate(registry, kind, cls, package)
            if any(r.kind == kind and r.name == plugin_name for r in staged):
                raise ValueError(f"{kind} '{plugin_name}' is registered twice by {package}")
            staged.append(Registration(kind, plugin_name, cls, package, version))
        for entry in staged:
            registry.entries[entry.kind][entry.name] = entry
    finally:
        pm.unregister(module)


#: Top-level packages this distribution installs beside ``bench``.
BUILTIN_TOP_LEVEL = ("methods", "tasks")


def check_installation() -> None:
    """Refuse to run when a built-in top-level package resolves outside this installation: research repos
    often have their own ``tasks/`` or ``methods.py``, which on ``sys.path`` (``python -m`` from that folder,
    ``PYTHONPATH=.``) shadows the built-ins, and the user would otherwise see "unknown task 'coding'"."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for name in BUILTIN_TOP_LEVEL:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec and spec.origin else None
        if origin is None or root not in origin.parents:
            raise UserError(f"the package '{name}' resolves to {origin or 'nothing'}, not to unlearn-bench's "
                            f"built-ins in {root}: a '{name}' folder or module of yours shadows them; run from "
                            f"another directory or rename yours")


def load_registry(extra_modules: list[Any] | None = None) -> Registry:
    """Discover and register every plugin. ``extra_modules`` lets tests add in-memory plugins."""
    check_installation()
    registry = Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allowed = allowed_packages()
    entries = []
    for ep in metadata.entry_points(group=GROUP):
        dist = ep.dist
        package = dist.metadata["Name"] if dist else "unknown"
        version = dist.version if dist else "unknown"
        builtin = _normal(package) == BUILTIN_PACKAGE
        if builtin or allowed is None or _normal(package) in allowed:
            entries.append((not builtin, ep.name, ep, package, version))
    for _, _, ep, package, version in sorted(entries, key=lambda e: e[:2]):  # built-ins first
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
        try:
            _register_module(registry, pm, module, module.__name__, "(in-process)", "0")
        except (TypeError, ValueError, pluggy.PluginValidationError) as err:
            raise UserError(f"plugin module '{module.__name__}': {err}") from None
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
