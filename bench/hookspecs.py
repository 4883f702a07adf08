"""The plugin hooks. A plugin is a module with ``@hookimpl`` functions, exposed via the
``unlearn_bench`` entry-point group, e.g. in its ``pyproject.toml``::

    [project.entry-points.unlearn_bench]
    my_method = "my_package.my_method"

Each hook receives a ``register`` callable; call it once per class you contribute.
"""

import pluggy

hookspec = pluggy.HookspecMarker("unlearn_bench")
hookimpl = pluggy.HookimplMarker("unlearn_bench")


@hookspec
def register_methods(register):
    """Register unlearning methods: ``register(MethodClass)`` (subclass of ``bench.api.Method``)."""


@hookspec
def register_tasks(register):
    """Register tasks: ``register(TaskClass)`` (subclass of ``bench.api.Task``)."""


@hookspec
def register_reporters(register):
    """Register leaderboard reporters: ``register(ReporterClass)`` (subclass of ``bench.api.Reporter``)."""


@hookspec
def register_attacks(register):
    """Register robustness attacks: ``register(AttackClass)`` (subclass of ``bench.api.Attack``)."""


# Facade names reached through this module (an old import path) resolve with a DeprecationWarning
# (bench.deprecation; docs/plugins.md, "API version and deprecations").
from bench.deprecation import module_getattr as _module_getattr  # noqa: E402

__getattr__ = _module_getattr(__name__, whole_module_moved=False)
