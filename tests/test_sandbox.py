"""Sandbox basics: correct programs pass, faked passes and hostile programs fail, the harness survives."""

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from bench.eval import sandbox
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


def test_a_syntax_error_is_the_program_failing_not_the_sandbox():
    result = run_program("def broken(:\n    pass", FAST)
    assert not result.passed and result.status == "failed" and "SyntaxError" in result.stderr


def test_a_program_the_sandbox_cannot_start_raises_instead_of_scoring_as_failed(monkeypatch):
    """The sandbox's own failure (here: a command that exits before the launcher runs) must never be
    scored as the program failing: it is retried, then raised with the sandbox's error."""
    tries = []

    def cannot_start(launcher, env, uid):
        tries.append(launcher)
        return ["sh", "-c", "echo 'bwrap: Can'\"'\"'t fork for pid 1: Resource temporarily unavailable' >&2; exit 1"]

    monkeypatch.setattr(sandbox, "_command", cannot_start)
    monkeypatch.setattr(sandbox, "_START_RETRIES", (0.0, 0.0))
    with pytest.raises(sandbox.SandboxUnavailable, match="after 3 tries: bwrap: Can't fork"):
        run_program("assert True", FAST)
    assert len(tries) == 3


def test_back_to_back_programs_leave_no_zombie_against_the_process_limit():
    """bubblewrap's outer process never waits for its pid-namespace init (containers/bubblewrap#697); left to
    a lazily reaping machine init, those zombies filled the sandbox uid's process limit and later programs
    could not start (seen as canonical HumanEval solutions failing). The harness adopts and reaps them."""
    if sandbox._capabilities()["setpriv"] is None:
        pytest.skip("programs run as the caller's uid here (not root): no sandbox uid to check")
    limits = SandboxLimits(timeout_s=10, cpu_s=5, memory_mb=512, max_processes=8)
    runs = [run_program("assert 1 + 1 == 2", limits) for _ in range(4 * limits.max_processes)]
    assert [r.status for r in runs] == ["passed"] * len(runs)
    left = [p for uid in range(sandbox._UID_BASE, sandbox._UID_BASE + 4) for p in sandbox._processes_of(uid)]
    assert left == []


def test_without_a_sandbox_uid_the_orphaned_bubblewrap_processes_are_reaped_too(monkeypatch):
    """Not root, programs run as the caller: bubblewrap's orphaned inits are re-parented here and reaped (no
    zombie left to a lazily reaping init, none kept here), and the harness's own children are left alone."""
    if not sandbox._capabilities()["bwrap"]:
        pytest.skip("no bubblewrap here: nothing is orphaned")

    @contextmanager
    def no_uid():
        yield None

    monkeypatch.setattr(sandbox, "_claimed_uid", no_uid)
    bystander = subprocess.Popen(["sleep", "30"])  # a child of the harness that the reaper must not take
    try:
        runs = run_programs(["assert 1 + 1 == 2"] * 24, FAST, workers=2)
        assert [r.status for r in runs] == ["passed"] * len(runs)
        zombies = [p for p in sandbox._processes_of(os.getuid())
                   if p.name == "bwrap" and p.state == "Z" and p.parent in (1, os.getpid())]
        assert zombies == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        assert bystander.wait() == -9  # still ours to wait for: its status was not taken


def test_an_interpreter_bubblewrap_would_hide_is_replaced_by_one_programs_can_reach(tmp_path, monkeypatch):
    """A virtual environment under /tmp (bubblewrap mounts an empty tmpfs there) made every program fail to
    start: its base interpreter, or a system one, runs them instead (``-I -S``: no site-packages needed)."""
    system = [c for c in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(c)]
    if not system or not str(tmp_path).startswith("/tmp/"):
        pytest.skip("needs a system Python and a temporary directory under /tmp")
    fake = tmp_path / "venv-python"  # a copied interpreter (not a link) inside /tmp
    fake.write_text("")
    monkeypatch.setattr(sys, "executable", str(fake))
    assert sandbox._interpreter(is_root=False, bwrap=True) == system[0]
    assert sandbox._interpreter(is_root=False, bwrap=False) == str(fake)  # no bubblewrap: /tmp is not hidden
    linked = tmp_path / "linked-python"  # a venv's usual link to its base interpreter
    linked.symlink_to(os.path.realpath(system[0]))
    monkeypatch.setattr(sys, "executable", str(linked))
    assert sandbox._interpreter(is_root=False, bwrap=True) == os.path.realpath(system[0])
