"""Hostile programs in one batch with correct ones: each is contained and scored failed, the canary and
the harness survive, nothing is left running, and the correct programs still pass."""

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from bench.eval.sandbox import SandboxLimits, isolation_summary, run_programs

LIMITS = SandboxLimits(timeout_s=4, cpu_s=3, memory_mb=512, max_processes=32)
BWRAP = "bubblewrap" in isolation_summary()["filesystem"]

CORRECT = [
    "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5",
    "import math\nassert math.isclose(sum(1 / 2 ** k for k in range(60)), 2.0)",
]


def hostile_programs(canary: Path, outside: Path, port: int, harness_pid: int) -> dict[str, str]:
    """name -> program; every one must end *not passed*."""
    return {
        "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "memory bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))",
        "infinite loop": "while True:\n    pass",
        "busy children left behind, then a faked pass": (
            "import subprocess, sys, os\n"
            "for _ in range(3):\n"
            "    subprocess.Popen([sys.executable, '-c', 'ub_hostile_child = 1\\nwhile True: pass'],\n"
            "                     start_new_session=True)\n"
            "os._exit(0)"),
        "write outside its temp dir": (
            f"import pathlib\nfor target in [{str(outside)!r}, {str(canary / 'planted.txt')!r}]:\n"
            "    try:\n        pathlib.Path(target).write_text('pwned')\n    except OSError:\n        pass\n"
            "assert False, 'tests fail'"),
        "read the harness's environment": (
            "import os\nsecrets = [os.environ.get('HF_TOKEN'), os.environ.get('OPENAI_API_KEY')]\n"
            f"try:\n    secrets.append(open('/proc/{harness_pid}/environ', 'rb').read().decode(errors='replace'))\n"
            "except OSError:\n    pass\nprint(secrets)\nassert False"),
        "connect to 127.0.0.1": (
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'exfiltrated')"),
        "rm -rf the canary": f"import os\nos.system('rm -rf {canary}')\nraise SystemExit(1)",
        "sys.exit(0) before the tests": "import sys\nsys.exit(0)\nassert False",
        "os._exit(0) before the tests": "import os\nos._exit(0)\nassert False",
        "SystemExit raised from a finally": "try:\n    assert False\nfinally:\n    raise SystemExit(0)",
        "prints a fake sentinel": "print('UB-SENTINEL-' + '0' * 32)\nimport os\nos._exit(0)",
    }


def _sandbox_processes() -> list[str]:
    """Command lines of live processes started from a sandbox program directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "ub-sandbox-" in cmdline or "ub_hostile_child" in cmdline:  # not any busy loop on the machine
                found.append(cmdline)
    return found


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    yield server
    server.close()


def test_hostile_batch_is_contained(tmp_path, monkeypatch, listener):
    monkeypatch.setenv("HF_TOKEN", "hf_harness_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-harness-secret")
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("precious")
    outside = tmp_path / "outside.txt"
    hostile = hostile_programs(canary, outside, listener.getsockname()[1], os.getpid())
    names = list(hostile)
    results = run_programs([CORRECT[0], *hostile.values(), CORRECT[1]], LIMITS, workers=2)

    assert results[0].passed and results[-1].passed, (results[0].stderr, results[-1].stderr)
    for name, result in zip(names, results[1:-1]):
        assert not result.passed, f"{name} was scored as passed"
        assert result.status in {"failed", "timeout", "killed"}, name
    assert (canary / "keep.txt").read_text() == "precious"
    assert not (canary / "planted.txt").exists() and not outside.exists()
    for result in results:
        assert "hf_harness_secret" not in result.stdout + result.stderr
        assert "sk-harness-secret" not in result.stdout + result.stderr
    with pytest.raises(socket.timeout):
        listener.accept()
    assert _sandbox_processes() == []
    # the harness itself still forks and runs fine
    assert subprocess.run(["true"]).returncode == 0


def test_fork_bomb_and_memory_bomb_stop_at_their_limits():
    fork_bomb, memory_bomb = run_programs([
        "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time\n"
        "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as err:\n"
        "    print('forks', n, err)\n    raise",
        "try:\n    x = bytearray(4 * 1024 ** 3)\nexcept MemoryError:\n    print('memory limit hit')\n    raise",
    ], LIMITS)
    forks = int(fork_bomb.stdout.split()[1])
    assert forks < LIMITS.max_processes and not fork_bomb.passed
    assert "memory limit hit" in memory_bomb.stdout and not memory_bomb.passed
    assert _sandbox_processes() == []


@pytest.mark.skipif(not BWRAP, reason="needs bubblewrap (make test installs it)")
def test_world_writable_places_outside_its_dir_are_read_only(tmp_path):
    """With bubblewrap even world-writable directories outside the program's own are out of reach."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)
    home = Path.home() / ".ub-sandbox-canary"
    (result,) = run_programs([
        f"import pathlib\nfor p in [{str(shared / 'planted')!r}, {str(home)!r}, '/var/tmp/ub-planted']:\n    try:\n"
        "        pathlib.Path(p).write_text('x')\n        print('WROTE', p)\n    except OSError as err:\n"
        "        print('blocked', p, type(err).__name__)\nopen('mine.txt', 'w').write('ok')",
    ], LIMITS)
    assert result.passed, result.stderr
    assert f"WROTE {shared / 'planted'}" not in result.stdout and f"WROTE {home}" not in result.stdout
    # /var/tmp (like /tmp) is a private tmpfs: the write succeeds inside and vanishes with the sandbox
    assert not (shared / "planted").exists() and not home.exists() and not Path("/var/tmp/ub-planted").exists()
