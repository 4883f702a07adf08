"""A plugin API that stays put: its declared version, old import paths that warn and resolve, version checks,
broken plugins named by ``plugins`` and ``run``, and an import graph without cycles."""

from __future__ import annotations

import ast
import json
import textwrap
import types
import warnings
from importlib import metadata
from pathlib import Path

import pytest

import bench
from bench.cli import main
from bench.deprecation import check_api
from bench.plugins import load_registry

ROOT = Path(__file__).resolve().parent.parent


def test_api_version_is_declared_and_shown(capsys):
    major, minor, patch = (int(x) for x in bench.API_VERSION.split("."))
    assert "API_VERSION" in bench.__all__ and major >= 1
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"plugin API {bench.API_VERSION}"


@pytest.mark.parametrize(("old", "name", "new"), [
    ("bench.losses", "cross_entropy", "cross_entropy"),
    ("bench.losses", "token_logprobs", "token_logprobs"),
    ("bench.training", "LossMethodMixin", "LossMethod"),
    ("bench.training", "train", "train"),
    ("bench.api", "LossMethod", "LossMethod"),
    ("bench.hookspecs", "TrainParams", "TrainParams"),
])
def test_old_paths_resolve_to_the_facade_with_a_warning_naming_the_replacement(old, name, new):
    import importlib

    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"use `from bench import {new}`.*removed in 1\.1"):
        value = getattr(module, name)
    assert value is getattr(bench, new)


def test_names_the_modules_define_themselves_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from bench.api import Method, TrainParams  # noqa: F401  (defined in bench.api itself)
        from bench.hookspecs import hookimpl  # noqa: F401


def test_renamed_facade_name_warns_and_unknown_names_fail_in_one_line():
    with pytest.warns(DeprecationWarning, match="LossMethodMixin was renamed.*from bench import LossMethod"):
        assert bench.LossMethodMixin is bench.LossMethod
    with pytest.raises(ImportError, match="cannot import name 'nothing_here'"):
        from bench.losses import nothing_here  # noqa: F401
    with pytest.raises(AttributeError, match=r"the plugin API is `bench`"):
        bench.training.nothing_here  # noqa: B018


OLD_PLUGIN = textwrap.dedent('''
    """A GA variant written against the module paths of an earlier release."""
    import torch

    from bench.hookspecs import hookimpl
    from bench.losses import cross_entropy
    from bench.training import LossMethodMixin, logits


    class OldGA(LossMethodMixin):
        name = "old_ga"

        def loss(self, model, forget, retain):
            loss = -cross_entropy(logits(model, forget), forget.labels)
            return loss, {"forget_ce": -loss.item()}


    @hookimpl
    def register_methods(register):
        register(OldGA)
''')


def test_a_plugin_written_against_old_paths_still_loads_and_passes_check_method(tmp_path, monkeypatch):
    (tmp_path / "old_plugin.py").write_text(OLD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(DeprecationWarning):
        import old_plugin
    reg = load_registry(extra_modules=[old_plugin])
    cls = reg.get("method", "old_ga").cls
    assert issubclass(cls, bench.LossMethod)
    report = bench.check_method(cls)
    assert report.ok, report.problems


@pytest.mark.parametrize(("required", "ok"), [("1.0", True), ("1", True), ("1.9", False), ("2.0", False),
                                              ("0.9", False)])
def test_api_version_check(required, ok):
    if ok:
        check_api(required, "1.0.0", "p")
    else:
        with pytest.raises(ValueError, match=rf"plugin 'p' needs plugin API {required}; this unlearn-bench provides "
                                             r"1\.0\.0: (upgrade unlearn-bench|install a version)"):
            check_api(required, "1.0.0", "p")


def _install(monkeypatch, ep_name: str, load) -> None:
    """An entry point of a fake distribution ``broken-pkg 3.1`` whose ``load`` is ``load``."""
    real = metadata.entry_points

    class Dist:
        metadata = {"Name": "broken-pkg"}
        version = "3.1"

    class EP:
        name = ep_name
        dist = Dist()

        def load(self):
            return load()

    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: list(real(group=group)) + ([EP()] if group == "unlearn_bench" else []))
    monkeypatch.setattr("bench.plugins._CACHED", {})


def test_a_plugin_needing_another_api_version_is_refused_naming_both(monkeypatch, capsys):
    module = types.ModuleType("future_plugin")
    module.BENCH_API = "2.0"
    _install(monkeypatch, "future_method", lambda: module)
    reg = load_registry()
    problem = reg.problems[-1]
    assert problem.stage == "register" and "needs plugin API 2.0; this unlearn-bench provides 1.0.0" in problem.error
    assert "needs plugin API 2.0" in capsys.readouterr().err


def _raise_moved_module():
    raise ModuleNotFoundError("No module named 'bench.old_module'")


def test_a_broken_plugin_is_listed_with_its_error_and_fix(monkeypatch, capsys):
    _install(monkeypatch, "my_method", _raise_moved_module)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("broken"))
    assert "my_method" in line and "broken-pkg 3.1" in line and "No module named 'bench.old_module'" in line
    assert "fix: bench.old_module is not a module of this unlearn-bench: import the plugin API's names from " \
           "`bench`" in line
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    broken = [r for r in rows if r["kind"] == "broken"]
    assert broken == [{"kind": "broken", "name": "my_method", "package": "broken-pkg", "version": "3.1",
                       "stage": "import", "error": "ModuleNotFoundError: No module named 'bench.old_module'",
                       "fix": broken[0]["fix"]}]


def test_run_with_a_broken_plugins_method_names_its_import_error(monkeypatch, capsys, tmp_path):
    _install(monkeypatch, "my_method", _raise_moved_module)
    code = main(["run", "--methods", "my_method", "--tasks", "ner", "--model", "tiny-random-llama",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("error: method 'my_method' is not available: plugin 'my_method' (broken-pkg 3.1) failed "
                          "at import: ModuleNotFoundError: No module named 'bench.old_module'; fix:")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("result.json"))
    # an unknown name beside a broken plugin: the did-you-mean, and the broken plugin mentioned
    assert main(["run", "--methods", "gaa", "--tasks", "ner", "--model", "tiny-random-llama",
                 "--out", str(tmp_path / "run2"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown method 'gaa'; did you mean 'ga'?" in err and "1 plugin(s) failed to load" in err


# -- no import cycle -----------------------------------------------------------------------------------------
def import_graph(packages=("bench", "methods", "tasks")) -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and inside functions; ``if TYPE_CHECKING``
    blocks excluded: they never run)."""
    modules = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module or ""
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[module] |= {r for t in targets if (r := resolve(t)) and r != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 80 and "bench.engine.runner" in graph["bench.engine.executors"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
