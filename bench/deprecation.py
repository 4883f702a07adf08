"""The plugin API's deprecation policy in code (docs/plugins.md, "API version and deprecations").

A public name that is renamed or moved keeps working for one minor version of ``bench.API_VERSION``: reaching
it by its old name or old module path returns the current object and emits one ``DeprecationWarning`` naming
the replacement. ``module_getattr`` builds the PEP 562 ``__getattr__`` that does it for a module.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

from bench.exports import EXPORTS

#: Old name -> (current facade name, API version that deprecated it, version that removes it).
RENAMED: dict[str, tuple[str, str, str]] = {
    "LossMethodMixin": ("LossMethod", "1.0", "1.1"),
}
#: Old module path -> (where its names live now, version that moved it, version that removes the alias).
MOVED_MODULES: dict[str, tuple[str, str, str]] = {
    "bench.losses": ("bench", "1.0", "1.1"),
    "bench.training": ("bench", "1.0", "1.1"),
}


def replacement(module: str, name: str) -> str | None:
    """The facade name an old ``module.name`` stands for, or ``None`` when there is none."""
    current = RENAMED.get(name, (name,))[0]
    return current if current in EXPORTS else None


def module_getattr(module: str, *, whole_module_moved: bool, stacklevel: int = 2) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``module``: a facade name it does not define itself (or a renamed one) resolves to
    ``bench.<name>`` with a ``DeprecationWarning``; anything else is an ``AttributeError`` naming the facade."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        current = replacement(module, name)
        if current is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}; the plugin API is `bench` "
                                 "(`python -c \"import bench; print(bench.__all__)\"`, docs/plugins.md)")
        if whole_module_moved:
            _, since, until = MOVED_MODULES[module]
            where = f"{module} moved in plugin API {since}"
        elif name in RENAMED:
            _, since, until = RENAMED[name]
            where = f"{module}.{name} was renamed in plugin API {since}"
        else:
            since, until = "1.0", "1.1"
            where = f"{module}.{name} is an internal path, not the plugin API"
        warnings.warn(f"{where}: use `from bench import {current}` (the old name is removed in {until})",
                      DeprecationWarning, stacklevel=stacklevel)
        return getattr(importlib.import_module(f"bench.{EXPORTS[current]}"), current)

    return __getattr__


def parse_api(version: str) -> tuple[int, int]:
    """``"1.0"`` or ``"1.0.3"`` -> (major, minor); a malformed version is a ``ValueError`` naming the form."""
    parts = str(version).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"BENCH_API must be 'major.minor' (e.g. '1.0'), got {version!r}") from None


def check_api(required: str, provided: str, plugin: str) -> None:
    """Refuse a plugin written against another major, or a newer minor, of the plugin API (one line, both
    versions named)."""
    need, have = parse_api(required), parse_api(provided)
    if need[0] != have[0] or need[1] > have[1]:
        raise ValueError(f"plugin '{plugin}' needs plugin API {required}; this unlearn-bench provides {provided}: "
                         + ("upgrade unlearn-bench" if need > have else
                            f"install a version of the plugin written for API {have[0]}.x"))
