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
