"""Plugin discovery: built-ins via entry points, broken plugins isolated, `plugins` command."""

import json
import types

from bench.cli import main
from bench.hookspecs import hookimpl
from bench.plugins import load_registry


def test_builtins_are_registered_through_entry_points():
    reg = load_registry()
    assert {"ga"} <= set(reg.names("method"))
    assert {"coding"} <= set(reg.names("task"))
    assert {"markdown", "json", "csv"} <= set(reg.names("reporter"))
    assert reg.get("method", "ga").package == "unlearn-bench"


def test_plugins_json_output(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(set(r) == {"kind", "name", "package", "version"} for r in rows)
    assert {"kind": "method", "name": "ga", "package": "unlearn-bench", "version": "0.1.0"} in rows


def test_import_failure_isolated(monkeypatch, capsys):
    from importlib import metadata

    real = metadata.entry_points

    class FakeEP:
        name = "exploding"
        dist = None

        def load(self):
            raise ImportError("no module named exploding_dep")

    def fake_entry_points(group=None):
        return list(real(group=group)) + [FakeEP()]

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    reg = load_registry()
    err = capsys.readouterr().err
    assert "plugin 'exploding'" in err and "failed at import" in err
    assert "ga" in reg.names("method") and reg.problems[0].plugin == "exploding"


def test_registration_failure_isolated(monkeypatch, capsys):
    from importlib import metadata

    real = metadata.entry_points
    module = types.ModuleType("bad_register")

    @hookimpl
    def register_tasks(register):
        raise ValueError("cannot register")

    module.register_tasks = register_tasks

    class FakeEP:
        name = "bad_register"
        dist = None

        def load(self):
            return module

    monkeypatch.setattr(metadata, "entry_points", lambda group=None: list(real(group=group)) + [FakeEP()])
    reg = load_registry()
    assert "failed at register" in capsys.readouterr().err
    assert "coding" in reg.names("task")


def _fake_plugin(monkeypatch, module, package="other-pkg", ep_name="fake"):
    """Install ``module`` as an entry point of distribution ``package`` (in this process only)."""
    from importlib import metadata

    real = metadata.entry_points

    class FakeDist:
        metadata = {"Name": package}
        version = "9.9"

    class FakeEP:
        name = ep_name
        dist = FakeDist()

        def load(self):
            return module

    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None: list(real(group=group)) + ([FakeEP()] if group == "unlearn_bench" else []))


def _module_registering(kind, *classes):
    module = types.ModuleType("fake_plugin")

    def hook(register):
        for cls in classes:
            register(cls)

    hook.__name__ = f"register_{kind}s"
    setattr(module, f"register_{kind}s", hookimpl(hook))
    return module


def test_duplicate_name_is_refused_naming_both_packages(monkeypatch, capsys):
    from bench.api import Method

    class Impostor(Method):
        name = "ga"

    _fake_plugin(monkeypatch, _module_registering("method", Impostor))
    reg = load_registry()
    err = capsys.readouterr().err
    assert "method 'ga' is already registered by unlearn-bench" in err and "other-pkg" in err
    assert reg.get("method", "ga").package == "unlearn-bench"  # the built-in kept its name


def test_wrong_type_is_refused_and_the_module_registers_nothing(monkeypatch, capsys):
    from bench.api import Method

    class Fine(Method):
        name = "fine_method"

    class NotATask:
        name = "not_a_task"

    module = _module_registering("method", Fine)
    module.register_tasks = _module_registering("task", NotATask).register_tasks
    _fake_plugin(monkeypatch, module)
    reg = load_registry()
    assert "not a subclass of bench.Task" in capsys.readouterr().err
    assert "fine_method" not in reg.names("method") and "not_a_task" not in reg.names("task")


def test_misspelt_hook_is_an_error_not_a_silent_no_op(monkeypatch, capsys):
    module = types.ModuleType("typo")

    @hookimpl
    def register_method(register):  # missing "s"
        pass

    module.register_method = register_method
    _fake_plugin(monkeypatch, module)
    load_registry()
    err = capsys.readouterr().err
    assert "failed at register" in err and "register_method" in err


def test_allow_list_env_var(monkeypatch):
    from bench.api import Method

    class Extra(Method):
        name = "extra_method"

    _fake_plugin(monkeypatch, _module_registering("method", Extra), package="Other_Pkg")
    assert "extra_method" in load_registry().names("method")
    monkeypatch.setenv("UNLEARN_BENCH_PLUGINS", "")
    names = load_registry().names("method")
    assert "extra_method" not in names and "ga" in names  # built-ins always load
    monkeypatch.setenv("UNLEARN_BENCH_PLUGINS", "some-other, other-pkg")
    assert "extra_method" in load_registry().names("method")


def test_config_plugin_module_problems_are_user_errors():
    import pytest

    from bench.errors import UserError

    class NotAMethod:
        name = "nope"

    with pytest.raises(UserError, match="not a subclass of bench.Method"):
        load_registry(extra_modules=[_module_registering("method", NotAMethod)])


def test_a_users_own_tasks_folder_shadowing_the_builtins_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("# a research repo's own tasks package\n")
    run = subprocess.run([sys.executable, "-m", "bench.cli", "plugins"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert run.returncode == 2
    assert "the package 'tasks' resolves to" in run.stderr and "shadows them" in run.stderr
    assert "Traceback" not in run.stderr


def test_ray_workers_get_the_working_directory_last_on_their_path():
    from bench.engine.ray_executor import worker_pythonpath

    assert worker_pythonpath(["", "/site", "/repo"], "/repo").split(":") == ["/site", "/repo"]
    assert worker_pythonpath(["/site"], "/research").split(":") == ["/site", "/research"]


def _module_registering_lazily(kind, *pairs):
    """A plugin module whose hook registers ``(placeholder, name)`` pairs."""
    module = types.ModuleType("lazy_plugin")

    def hook(register):
        for target, name in pairs:
            register(target, name=name)

    hook.__name__ = f"register_{kind}s"
    setattr(module, f"register_{kind}s", hookimpl(hook))
    return module


def test_listing_plugins_imports_neither_torch_nor_a_method_module():
    """The built-ins register lazily, so `unlearn-bench plugins` stays fast (issue 17: < 2 s)."""
    import subprocess
    import sys

    code = ("import sys; from bench.cli import main; main(['plugins']); "
            "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('methods.', 'tasks.')));"
            "print('HEAVY', heavy)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in run.stdout, run.stdout
    assert "method    rnr" in run.stdout


def test_every_builtin_placeholder_loads_and_is_checked(capsys):
    reg = load_registry()
    assert isinstance(reg.get("method", "ga").target, str)  # not imported by registration
    assert reg.check() == []
    from methods.ga import GradientAscent

    assert reg.get("method", "ga").cls is GradientAscent and reg.get("method", "ga").target is GradientAscent
    assert main(["plugins", "--check"]) == 0


def test_lazy_placeholder_is_loaded_on_first_use_with_the_eager_checks(monkeypatch, tmp_path):
    import sys

    import pytest

    from bench.errors import UserError

    (tmp_path / "lazy_mod.py").write_text(
        "from bench import Method\n"
        "class Good(Method):\n    name = 'good_lazy'\n"
        "class Misnamed(Method):\n    name = 'other'\n"
        "class NotAMethod:\n    name = 'not_a_method'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_mod", raising=False)
    module = _module_registering_lazily(
        "method", ("lazy_mod:Good", "good_lazy"), ("lazy_mod:Misnamed", "misnamed"),
        ("lazy_mod:NotAMethod", "not_a_method"), ("lazy_mod:Missing", "missing"))
    reg = load_registry(extra_modules=[module])
    assert "lazy_mod" not in sys.modules  # registered, not imported
    assert reg.get("method", "good_lazy").cls.__name__ == "Good"
    with pytest.raises(UserError, match="has name 'other'; the placeholder and the class must agree"):
        _ = reg.get("method", "misnamed").cls
    with pytest.raises(UserError, match="not a subclass of bench.Method"):
        _ = reg.get("method", "not_a_method").cls
    with pytest.raises(UserError, match="cannot be loaded: AttributeError"):
        _ = reg.get("method", "missing").cls
    failures = reg.check()
    assert len(failures) == 3 and all(line.startswith("method '") for line in failures)


def test_malformed_or_nameless_placeholders_and_name_clashes_are_refused():
    import pytest

    from bench.errors import UserError

    with pytest.raises(UserError, match="write 'package.module:Class'"):
        load_registry(extra_modules=[_module_registering_lazily("method", ("lazy_mod.Good", "x"))])
    with pytest.raises(UserError, match="without name="):
        load_registry(extra_modules=[_module_registering_lazily("method", ("lazy_mod:Good", None))])
    with pytest.raises(UserError, match=r"method 'ga' is already registered by unlearn-bench \(methods.ga."):
        load_registry(extra_modules=[_module_registering_lazily("method", ("lazy_mod:Good", "ga"))])
