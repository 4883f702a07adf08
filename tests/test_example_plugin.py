"""The docs' example plugin, installed into the venv via pip and used through entry points."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "ub-example-plugin"
CLI = [sys.executable, "-m", "bench.cli"]


@pytest.fixture(scope="module")
def installed():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", "--no-build-isolation", str(EXAMPLE)], check=True)
    yield
    subprocess.run(pip + ["uninstall", "-y", "ub-example-plugin"], check=True)


def test_example_plugin_is_listed(installed):
    out = subprocess.run(CLI + ["plugins", "--json"], capture_output=True, text=True, check=True).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    for key in [("method", "capped_ga"), ("task", "capitals"), ("reporter", "summary")]:
        assert rows[key]["package"] == "ub-example-plugin" and rows[key]["version"] == "0.1.0"


def test_example_plugin_runs_end_to_end(installed, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"""
model: tiny-random-llama
methods: {{capped_ga: {{steps: 2, batch_size: 2, lr: 0.01}}, ga: {{steps: 2, batch_size: 2}}}}
tasks: [capitals]
out: {tmp_path / 'run'}
""")
    run = subprocess.run(CLI + ["run", "--config", str(config), "--no-progress",
                                "--report", str(tmp_path / "lb")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 done" in run.stdout
    summary = (tmp_path / "lb" / "summary.txt").read_text()
    assert "capitals capped_ga: done" in summary and "capitals ga: done" in summary


def test_example_method_conforms(installed):
    code = ("from bench.testing import check_method; from ub_example import CappedGA; "
            "r = check_method(CappedGA, {'steps': 2, 'batch_size': 2, 'lr': 1e-2}); "
            "print('OK' if r.ok else r.problems)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("OK")
