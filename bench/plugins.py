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

A hook may register a class, or, as lm-evaluation-harness's registry allows, a lazy placeholder
``register("package.module:Class", name="x")`` that is imported the first time ``x`` is used. The
built-ins register that way, so that listing plugins does not import torch and every method; the
placeholder's type and name are checked when it is loaded (``unlearn-bench plugins --check`` loads all).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from bench import hookspecs
from bench.errors import UserError, unknown

GROUP = "unlearn_bench"
KINDS = ("method", "task", "reporter", "attack")
#: The distribution whose entry points are the built-ins (loaded first, never filtered by the allow-list).
BUILTIN_PACKAGE = "unlearn-bench"
ALLOW_ENV = "UNLEARN_BENCH_PLUGINS"


def _base_class(kind: str) -> type:
    from bench import api

    return {"method": api.Method, "task": api.Task, "reporter": api.Reporter, "attack": api.Attack}[kind]


def _normal(package: str) -> str:
    return package.lower().replace("_", "-").replace(".", "-")


def allowed_packages() -> set[str] | None:
    """The allow-list from ``UNLEARN_BENCH_PLUGINS`` (normalised package names), or ``None``: load all."""
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return {_normal(name.strip()) for name in raw.split(",") if name.strip()}


#: A lazy placeholder: ``"dotted.module:Attribute"``.
PLACEHOLDER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class Registration:
    """One registered plugin. ``target`` is the class, or a ``"module:Class"`` placeholder that ``cls``
    imports and checks on first use."""

    kind: str
    name: str
    target: type | str
    package: str
    version: str

    @property
    def cls(self) -> type:
        if isinstance(self.target, str):
            self.target = _materialise(self)
        return self.target

    @property
    def origin(self) -> str:
        """Where the class lives (``module.Class``), without importing a placeholder."""
        if isinstance(self.target, str):
            return self.target.replace(":", ".")
        return f"{self.target.__module__}.{self.target.__qualname__}"


def register_placeholders(register: Any, targets: dict[str, str]) -> None:
    """Register each ``name -> "module:Class"`` of ``targets`` lazily (how the built-ins register)."""
    for name, target in targets.items():
        register(target, name=name)


def _materialise(entry: Registration) -> type:
    """Import a placeholder and check it as an eager registration is checked (kind, name)."""
    module_name, _, attr = str(entry.target).partition(":")
    where = f"{entry.kind} '{entry.name}' (registered by {entry.package} as '{entry.target}')"
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except Exception as err:  # noqa: BLE001 - a broken plugin must name itself, not crash with a traceback
        raise UserError(f"{where} cannot be loaded: {type(err).__name__}: {err}; fix or uninstall "
                        f"{entry.package}") from None
    base = _base_class(entry.kind)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{where} is {cls!r}, not a subclass of bench.{base.__name__}; fix {entry.package}")
    if getattr(cls, "name", None) != entry.name:
        raise UserError(f"{where} has name {getattr(cls, 'name', None)!r}; the placeholder and the class must "
                        f"agree: fix {entry.package}")
    return cls


@dataclass
class PluginProblem:
    plugin: str
    package: str
    stage: str  # "import" | "register"
    error: str
    version: str = "unknown"

    @property
    def fix(self) -> str:
        """What to do about it, in words."""
        missing = re.search(r"No module named '([\w.]+)'", self.error)
        if missing and missing.group(1).split(".")[0] == "bench":
            return (f"{missing.group(1)} is not a module of this unlearn-bench: import the plugin API's names from "
                    "`bench` (docs/plugins.md), or install a version of the plugin made for this one")
        if missing:
            dependency = missing.group(1).split(".")[0]
            return f"install {dependency} (a dependency of {self.package}) or uninstall {self.package}"
        if "needs plugin API" in self.error:
            return self.error.rsplit(": ", 1)[-1]
        return f"fix or uninstall {self.package}"

    def line(self) -> str:
        return (f"plugin '{self.plugin}' ({self.package} {self.version}) failed at {self.stage}: {self.error}; "
                f"fix: {self.fix}")


class Registry:
    """All registered plugins, by kind and name."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}
        self.problems: list[PluginProblem] = []

    def get(self, kind: str, name: str) -> Registration:
        found = self.entries[kind].get(name)
        if found is None:
            broken = next((p for p in self.problems if p.plugin == name), None)
            if broken is not None:  # what the user asked for is there, but its plugin did not load
                raise UserError(f"{kind} '{name}' is not available: {broken.line()}")
            error = unknown(kind, name, self.entries[kind])
            if self.problems:
                error = UserError(f"{error}; note: {len(self.problems)} plugin(s) failed to load — "
                                  + "; ".join(p.line() for p in self.problems))
            raise error
        return found

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def check(self) -> list[str]:
        """Load every registered class (placeholders included); one line per plugin that fails."""
        failures = []
        for kind in KINDS:
            for entry in self.entries[kind].values():
                try:
                    _ = entry.cls
                except UserError as err:
                    failures.append(str(err))
        return failures

    def rows(self) -> list[dict[str, str]]:
        return [
            {"kind": r.kind, "name": r.name, "package": r.package, "version": r.version}
            for kind in KINDS
            for r in sorted(self.entries[kind].values(), key=lambda r: r.name)
        ]


def _warn(problem: PluginProblem) -> None:
    print(f"unlearn-bench: {problem.line()} (skipped)", file=sys.stderr)


def _validate(registry: Registry, kind: str, target: Any, name: str | None, package: str) -> str:
    """The plugin name of ``target`` (a class, or a placeholder with ``name=``), or an error naming the fix
    (wrong type, no name, malformed placeholder, name taken)."""
    if isinstance(target, str):
        if not PLACEHOLDER.match(target):
            raise TypeError(f"register_{kind}s got the placeholder {target!r}; write 'package.module:Class'")
        if not isinstance(name, str) or not name:
            raise TypeError(f"register_{kind}s got the placeholder {target!r} without name=; a lazy "
                            "registration names its plugin, e.g. register('pkg.mod:Cls', name='my_method')")
        plugin_name = name
    else:
        base = _base_class(kind)
        if not (isinstance(target, type) and issubclass(target, base)):
            raise TypeError(f"register_{kind}s got {target!r}, which is not a subclass of bench.{base.__name__}")
        plugin_name = getattr(target, "name", None)
        if not isinstance(plugin_name, str) or not plugin_name:
            raise TypeError(f"{target!r} has no 'name' class attribute")
        if name is not None and name != plugin_name:
            raise TypeError(f"register_{kind}s got name={name!r} for {target!r}, whose name is {plugin_name!r}")
    taken = registry.entries[kind].get(plugin_name)
    if taken is not None:
        raise ValueError(f"{kind} '{plugin_name}' is already registered by {taken.package} "
                         f"({taken.origin}); rename the one in {package}")
    return plugin_name


def _register_module(registry: Registry, pm: pluggy.PluginManager, module: Any, name: str,
                     package: str, version: str) -> None:
    """Register every class ``module``'s hooks contribute, or none of them (the module is refused whole)."""
    collected: list[tuple[str, Any, str | None]] = []
    hooks = {"method": pm.hook.register_methods, "task": pm.hook.register_tasks,
             "reporter": pm.hook.register_reporters, "attack": pm.hook.register_attacks}
    required = getattr(module, "BENCH_API", None)
    if required is not None:
        from bench import API_VERSION
        from bench.deprecation import check_api

        check_api(required, API_VERSION, name)
    pm.register(module, name=name)
    try:
        pm.check_pending()  # a hookimpl with no hookspec (a misspelt hook) is an error, not a silent no-op
        for kind, hook in hooks.items():
            hook(register=lambda target, name=None, _kind=kind: collected.append((_kind, target, name)))
        staged: list[Registration] = []
        for kind, target, name in collected:
            plugin_name = _validate(registry, kind, target, name, package)
            if any(r.kind == kind and r.name == plugin_name for r in staged):
                raise ValueError(f"{kind} '{plugin_name}' is registered twice by {package}")
            staged.append(Registration(kind, plugin_name, target, package, version))
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
            problem = PluginProblem(ep.name, package, "import", f"{type(err).__name__}: {err}", version)
            registry.problems.append(problem)
            _warn(problem)
            continue
        try:
            _register_module(registry, pm, module, ep.name, package, version)
        except Exception as err:  # noqa: BLE001
            problem = PluginProblem(ep.name, package, "register", f"{type(err).__name__}: {err}", version)
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
