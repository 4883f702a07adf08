"""Run untrusted, model-generated Python in a contained subprocess.

Each program gets its own process in a fresh temporary directory (removed afterwards) with:

* wall-clock timeout and CPU-time limit; the whole process tree is killed on timeout;
* address-space, file-size, open-file and process-count limits (no fork bombs);
* an environment rebuilt from scratch (an allow-list: nothing of the harness's env, so no HF_TOKEN,
  ``*_API_KEY`` or cloud credentials leak);
* no network: a fresh network namespace (``unshare --net``) where the kernel allows it, otherwise
  sockets are disabled inside the child. ``SandboxResult.isolation`` records which;
* when the harness runs as root, the program runs as an unprivileged uid (one per concurrent slot) in
  its own PID namespace, so it cannot write outside world-writable places, process limits apply, and
  every process it leaves behind dies with the namespace.

A program passes only if it exits 0 **and** prints the per-run random sentinel appended after the test
code, so ``sys.exit(0)`` / ``os._exit(0)`` before the tests cannot fake a pass. Limitation: code that
reads its own source could forge the sentinel; that requires deliberate targeting of this harness.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_NO_SOCKETS = """\
import socket as _s
def _blocked(*a, **k):
    raise OSError("network disabled in sandbox")
_s.socket = _blocked
_s.create_connection = _blocked
_s.socketpair = _blocked
del _s, _blocked
"""

_ALLOWED_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    max_processes: int = 32
    max_file_mb: int = 16
    max_open_files: int = 64
    output_bytes: int = 20_000


@dataclass
class SandboxResult:
    passed: bool
    status: str  # passed | failed | timeout | killed
    returncode: int | None
    duration_s: float
    stdout: str = ""
    stderr: str = ""
    isolation: dict[str, str] = field(default_factory=dict)


def _traversable_by_others(path: str) -> bool:
    p = Path(path).resolve()
    for part in [p, *p.parents]:
        mode = part.stat().st_mode
        needed = stat.S_IXOTH if part != p else stat.S_IXOTH | stat.S_IROTH
        if not mode & needed:
            return False
    return True


@lru_cache(maxsize=1)
def _capabilities() -> dict[str, object]:
    """Probe once what containment this machine allows."""
    is_root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    setpriv = shutil.which("setpriv")
    python = sys.executable
    if is_root and not _traversable_by_others(python):
        python = next((c for c in ("/usr/bin/python3", "/usr/local/bin/python3")
                       if os.path.exists(c) and _traversable_by_others(c)), python)
    net_ns = False
    if unshare:
        probe = [unshare, "--net", "--pid", "--fork", "--kill-child", "true"]
        if not is_root:
            probe.insert(1, "--map-root-user")
        try:
            net_ns = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            net_ns = False
    return {"root": is_root, "unshare": unshare, "net_ns": net_ns,
            "setpriv": setpriv if is_root and setpriv else None, "python": python}


def isolation_summary() -> dict[str, str]:
    caps = _capabilities()
    return {
        "network": "netns (unshare --net)" if caps["net_ns"] else "sockets disabled in child",
        "processes": "pid namespace + unprivileged uid" if caps["net_ns"] and caps["setpriv"]
        else ("pid namespace" if caps["net_ns"] else "process group"),
        "interpreter": str(caps["python"]),
    }


def _limit_child(limits: SandboxLimits):
    def apply() -> None:
        os.setsid()
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_mb * mb, limits.max_file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _command(script: Path, slot: int) -> list[str]:
    caps = _capabilities()
    cmd = [str(caps["python"]), "-I", "-S", str(script)]
    if caps["setpriv"]:
        uid = 61000 + slot
        cmd = [str(caps["setpriv"]), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               "--inh-caps=-all", "--"] + cmd
    if caps["net_ns"]:
        prefix = [str(caps["unshare"]), "--net", "--pid", "--fork", "--kill-child"]
        if not caps["root"]:
            prefix.append("--map-root-user")
        cmd = prefix + ["--"] + cmd
    return cmd


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_uid(uid: int) -> None:
    """Kill anything left running as a sandbox uid (double-forked, setsid'd children)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue


def run_program(code: str, limits: SandboxLimits = SandboxLimits(), slot: int = 0) -> SandboxResult:
    """Run ``code`` contained; pass = exit 0 and the sentinel printed after the code."""
    caps = _capabilities()
    sentinel = "UB-SENTINEL-" + secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="ub-sandbox-"))
    script = workdir / "program.py"
    preamble = "" if caps["net_ns"] else _NO_SOCKETS
    script.write_text(f"{preamble}{code}\n\nprint({sentinel!r}, flush=True)\n")
    if caps["setpriv"]:
        uid = 61000 + slot
        os.chown(workdir, uid, uid)
        os.chown(script, uid, uid)
    env = dict(_ALLOWED_ENV, HOME=str(workdir), TMPDIR=str(workdir))
    start = time.monotonic()
    status = "failed"
    try:
        proc = subprocess.Popen(_command(script, slot), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_limit_child(limits), close_fds=True)
        try:
            out, err = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            out, err = proc.communicate()
            status = "timeout"
        returncode = proc.returncode
    finally:
        if caps["setpriv"]:
            _kill_uid(61000 + slot)
        shutil.rmtree(workdir, ignore_errors=True)
    stdout = out.decode(errors="replace")[-limits.output_bytes:]
    stderr = err.decode(errors="replace")[-limits.output_bytes:]
    lines = stdout.strip().splitlines()
    passed = status != "timeout" and returncode == 0 and bool(lines) and lines[-1] == sentinel
    if passed:
        status = "passed"
    elif status != "timeout" and returncode is not None and returncode < 0:
        status = "killed"
    stdout = stdout.replace(sentinel, "<sentinel>")
    return SandboxResult(passed, status, returncode, time.monotonic() - start, stdout, stderr,
                         isolation_summary())


def run_programs(codes: list[str], limits: SandboxLimits = SandboxLimits(), workers: int = 2) -> list[SandboxResult]:
    """Run several programs, ``workers`` at a time (each concurrent slot has its own uid)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run_program, code, limits, i % max(1, workers)) for i, code in enumerate(codes)]
        return [f.result() for f in futures]
