"""The docs' example plugin, pip-installed into a throwaway virtualenv (never the live one) and used
through its entry points there."""

import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "ub-example-plugin"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv that sees this environment's packages (torch, unlearn-bench: a ``.pth`` adds their
    site directory, processing its own ``.pth`` files) and gets the example plugin installed by pip."""
    root = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
                    "--no-build-isolation", "--prefix", str(root), str(EXAMPLE)], check=True)
    assert not any(Path(p, "ub_example.py").exists() for p in site.getsitepackages())  # the live venv is untouched
    return python


@pytest.fixture(scope="module")
def installed(venv):
    return [str(venv), "-m", "bench.cli"]


def test_example_plugin_is_listed(installed):
    out = subprocess.run(installed + ["plugins", "--json"], capture_output=True, text=True, check=True).stdout
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
    run = subprocess.run(installed + ["run", "--config", str(config), "--no-progress",
                                "--report", str(tmp_path / "lb")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2 done" in run.stdout
    summary = (tmp_path / "lb" / "summary.txt").read_text()
    assert "capitals capped_ga: done" in summary and "capitals ga: done" in summary


def test_example_plugin_conforms(venv):
    code = ("from bench import check_method, check_task; from ub_example import Capitals, CappedGA; "
            "r = check_method(CappedGA, {'steps': 2, 'batch_size': 2, 'lr': 1e-2}); t = check_task(Capitals); "
            "print('OK' if r.ok and t.ok else (r.problems, t.problems))")
    out = subprocess.run([str(venv), "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("OK")
