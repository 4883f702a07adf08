"""Sandbox basics: correct programs pass, faked passes and hostile programs fail, the harness survives."""

import os

from bench.eval.sandbox import SandboxLimits, isolation_summary, run_program, run_programs

FAST = SandboxLimits(timeout_s=5, cpu_s=3, memory_mb=512)


def test_correct_program_passes_and_failing_fails():
    ok, bad = run_programs(["assert sum([1, 2]) == 3", "assert 1 == 2"], FAST)
    assert ok.passed and ok.status == "passed"
    assert not bad.passed and "AssertionError" in bad.stderr


def test_exit_tricks_cannot_fake_a_pass():
    for code in ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)"]:
        result = run_program(code, FAST)
        assert not result.passed, code


def test_timeout_kills_infinite_loop():
    result = run_program("while True:\n    pass", SandboxLimits(timeout_s=2, cpu_s=10))
    assert not result.passed and result.status == "timeout" and result.duration_s < 8


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run_program("import os; print(sorted(os.environ.items()))", FAST)
    assert result.passed
    assert "hf_secret_value" not in result.stdout and "sk-secret" not in result.stdout


def test_no_network():
    result = run_program("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)", FAST)
    assert not result.passed
    assert isolation_summary()["network"]


def test_temp_dir_removed(tmp_path):
    result = run_program("import os; print(os.getcwd())", FAST)
    workdir = result.stdout.splitlines()[0]
    assert workdir.startswith("/") and not os.path.exists(workdir)
