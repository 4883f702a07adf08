"""Run untrusted, model-generated Python in a contained subprocess.

Each program gets its own process in a fresh temporary directory (removed afterwards) with:

* wall-clock timeout and CPU-time limit; the whole process tree is killed on timeout;
* address-space, file-size, open-file and process-count limits (no fork bombs);
* an environment rebuilt from scratch (an allow-list: nothing of the harness's env, so no HF_TOKEN,
  ``*_API_KEY`` or cloud credentials leak);
* no network and a contained filesystem: with bubblewrap (``bwrap``; the Makefile installs it) the
  program sees the filesystem read-only except its own directory, a private ``/tmp``, and new
  network/PID/IPC namespaces; without it ``unshare --net --pid`` where the kernel allows, else sockets
  are disabled inside the child. ``SandboxResult.isolation`` records which;
* when the harness runs as root, the program runs as an unprivileged uid claimed for it alone (locks
  shared across processes, so parallel cells never share one), so process limits apply and everything
  it leaves behind is killed afterwards (and dies with its PID namespace).

A program passes only if it exits 0 **and** prints the per-run random sentinel appended after the test
code, so ``sys.exit(0)`` / ``os._exit(0)`` before the tests cannot fake a pass. Limitation: code that
reads its own source could forge the sentinel; that requires deliberate targeting of this harness.

A program the sandbox could not *start* is never scored as the program failing: a small launcher prints a
second per-run token before it compiles the program (so a syntax error still counts as started), and a
run without that token is retried and then raises :class:`SandboxUnavailable`, naming the sandbox's own
error. Known cause, handled: bubblewrap's outer process exits without waiting for its pid-namespace init
(containers/bubblewrap#697), leaving a zombie owned by the sandbox uid for whoever adopts it; where the
machine's init reaps late (containers, micro-VMs) those zombies count against the uid's process limit and
bubblewrap cannot fork ("Can't fork for pid 1"). The harness therefore makes itself a child subreaper and
reaps those orphans after every program: as root everything its sandbox uid left, otherwise the orphaned
bubblewrap processes (never a process a ``Popen`` of ours still owns).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

_NO_SOCKETS = """\
import socket as _s
def _blocked(*a, **k):
    raise OSError("network disabled in sandbox")
_s.socket = _blocked
_s.create_connection = _blocked
_s.socketpair = _blocked
del _s, _blocked
"""

_LAUNCHER = """\
import sys
sys.stdout.write({token!r} + "\\n")
sys.stdout.flush()
import runpy
runpy.run_path({program!r}, run_name="__main__")
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


class SandboxUnavailable(RuntimeError):
    """The sandbox could not start a program (its own error, not the program's), even after retries."""


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


_BWRAP_FLAGS = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--tmpfs", "/var/tmp", "--tmpfs", "/dev/shm", "--unshare-all", "--die-with-parent",
                "--new-session", "--clearenv"]


def _drop_to(setpriv: str, uid: int) -> list[str]:
    """Command prefix that runs the rest as ``uid`` with no supplementary groups or capabilities."""
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--"]


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_SANDBOX_TMPFS = ("/tmp", "/var/tmp", "/dev/shm")  # replaced by empty tmpfs inside bubblewrap (_BWRAP_FLAGS)


def _interpreter(is_root: bool, bwrap: bool) -> str:
    """The Python that runs programs: this one, or a system one where programs could not reach it.

    Programs run with ``-I -S`` (no site-packages), so a virtual environment adds nothing and its base
    interpreter (the link's target) serves. It must be readable by the sandbox uid (as root) and must not lie
    under a path bubblewrap hides (a venv in /tmp: every program would fail to start)."""
    def reachable(path: str) -> bool:
        hidden = bwrap and any(path == t or path.startswith(t + "/") for t in _SANDBOX_TMPFS)
        return os.path.exists(path) and not hidden and (not is_root or _traversable_by_others(path))

    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    return next((c for c in candidates if reachable(os.path.realpath(c))), sys.executable)


@lru_cache(maxsize=1)
def _capabilities() -> dict[str, object]:
    """Probe once what containment this machine allows, strongest first:

    1. bubblewrap: read-only view of the whole filesystem except the program's own directory, private
       ``/tmp``, new network/PID/IPC/UTS namespaces (as root, entered as an unprivileged uid);
    2. ``unshare --net --pid`` (as root also an unprivileged uid, so writes are limited to
       world-writable places);
    3. process group + sockets disabled inside the child.
    """
    is_root = os.geteuid() == 0
    setpriv = shutil.which("setpriv") if is_root else None
    bwrap = shutil.which("bwrap")
    python = _interpreter(is_root, bool(bwrap))
    if bwrap:
        bwrap = bwrap if _bwrap_works(bwrap, setpriv) else None
    unshare = shutil.which("unshare")
    net_ns = False
    if unshare and not bwrap:
        probe = [unshare, "--net", "--pid", "--fork", "--kill-child", "true"]
        if not is_root:
            probe.insert(1, "--map-root-user")
        net_ns = _works(probe)
    return {"root": is_root, "bwrap": bwrap, "unshare": unshare, "net_ns": net_ns or bool(bwrap),
            "setpriv": setpriv, "python": python}


def _bwrap_works(bwrap: str, setpriv: str | None) -> bool:
    """Whether bubblewrap runs here, as programs will run it (as root: entered as a claimed sandbox uid)."""
    probe = [bwrap, *_BWRAP_FLAGS, "true"]
    if not setpriv:
        with _LAUNCHING:  # no reaper runs meanwhile: the probe's own bubblewrap process is subprocess's
            return _works(probe)
    with _exclusive_uid() as uid:
        _adopt_orphans()
        try:
            return _works([*_drop_to(setpriv, uid), *probe])
        finally:
            _clear_uid(uid)


def isolation_summary() -> dict[str, str]:
    """How programs are contained on this machine (recorded in every coding result)."""
    caps = _capabilities()
    uid = " + unprivileged uid" if caps["setpriv"] else ""
    if caps["bwrap"]:
        return {"network": "netns (bubblewrap --unshare-net)",
                "processes": f"pid namespace{uid}",
                "filesystem": "read-only except the program's temp dir; private /tmp (bubblewrap)",
                "interpreter": str(caps["python"])}
    return {
        "network": "netns (unshare --net)" if caps["net_ns"] else "sockets disabled in child",
        "processes": (f"pid namespace{uid}" if caps["net_ns"] else "process group"),
        "filesystem": ("writes limited to world-writable paths (unprivileged uid)" if caps["setpriv"]
                       else "not isolated: install bubblewrap (apt install bubblewrap)"),
        "interpreter": str(caps["python"]),
    }


_UID_BASE, _UID_COUNT = 61000, 1000


@contextmanager
def _claimed_uid() -> Iterator[int | None]:
    """An unprivileged uid for one program, exclusive across threads *and* processes (parallel cells
    each run sandboxes): claimed by an advisory lock so that killing a uid's leftovers never hits a
    program of another caller. ``None`` when not root (the program runs as the caller)."""
    if not _capabilities()["setpriv"]:
        yield None
        return
    with _exclusive_uid() as uid:
        yield uid


@contextmanager
def _exclusive_uid() -> Iterator[int]:
    """The first sandbox uid no other thread or process holds, held (advisory lock) until the block ends."""
    locks = Path(tempfile.gettempdir()) / "ub-sandbox-uids"
    locks.mkdir(mode=0o700, exist_ok=True)
    for uid in range(_UID_BASE, _UID_BASE + _UID_COUNT):
        handle = open(locks / f"{uid}.lock", "w")  # noqa: SIM115 - held for the program's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield uid  # the program's runner kills what is left under this uid before releasing it
        finally:
            handle.close()
        return
    raise RuntimeError(f"all {_UID_COUNT} sandbox uids are in use")


def _nproc_limit(limits: SandboxLimits, uid: int | None) -> int:
    """RLIMIT_NPROC counts every process of the *real* uid: with a dedicated uid that is the program's
    own, otherwise the caller's, whose current processes must not count against the program."""
    if uid is not None:
        return limits.max_processes
    me = os.getuid()
    mine = sum(1 for e in Path("/proc").iterdir() if e.name.isdigit() and _owner(e) == me)
    return mine + limits.max_processes


def _owner(entry: Path) -> int | None:
    try:
        return entry.stat().st_uid
    except OSError:
        return None


def _limit_child(limits: SandboxLimits, nproc: int):
    def apply() -> None:
        os.setsid()
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_mb * mb, limits.max_file_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _command(launcher: Path, env: dict[str, str], uid: int | None) -> list[str]:
    caps = _capabilities()
    cmd = [str(caps["python"]), "-I", "-S", str(launcher)]
    drop = _drop_to(str(caps["setpriv"]), uid) if uid is not None else []
    if caps["bwrap"]:  # entered as the unprivileged uid: bubblewrap then runs in a user namespace
        workdir = str(launcher.parent)
        setenv = [x for k, v in env.items() for x in ("--setenv", k, v)]
        return [*drop, str(caps["bwrap"]), *_BWRAP_FLAGS, "--bind", workdir, workdir, "--chdir", workdir,
                *setenv, "--", *cmd]
    if caps["net_ns"]:  # namespaces are created as root, the uid is dropped inside them
        prefix = [str(caps["unshare"]), "--net", "--pid", "--fork", "--kill-child"]
        if not caps["root"]:
            prefix.append("--map-root-user")
        return [*prefix, "--", *drop, *cmd]
    return [*drop, *cmd]


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Proc(NamedTuple):
    pid: int
    parent: int
    state: str  # "Z" for a zombie
    name: str


def _processes_of(uid: int) -> list[_Proc]:
    """Every process owned by ``uid``, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _owner(entry) == uid:
            try:  # "pid (name) state parent ...": the name may hold spaces and parentheses
                text = (entry / "stat").read_text()
                state, parent = text[text.rindex(")") + 2:].split()[:2]
                found.append(_Proc(int(entry.name), int(parent), state, text[text.index("(") + 1:text.rindex(")")]))
            except (OSError, IndexError, ValueError):
                continue
    return found


_PR_SET_CHILD_SUBREAPER = 36

#: Without a sandbox uid, launching a bubblewrap process and reaping orphaned ones exclude each other, so that
#: the reaper never takes a process that a ``Popen`` of ours launched and will wait for (``_LAUNCHED``).
_LAUNCHING = threading.Lock()
_LAUNCHED: set[int] = set()


@lru_cache(maxsize=1)
def _adopt_orphans() -> bool:
    """Make this process a child subreaper (Linux prctl), so that processes orphaned inside a program's
    process tree -- bubblewrap's pid-namespace init above all, which bubblewrap's outer process never waits
    for -- are re-parented here rather than to the machine's init, and :func:`_clear_uid` or
    :func:`_reap_bwrap_orphans` can reap them at once. Only sandbox processes are reaped: the harness's other
    children belong to ``subprocess``."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _clear_uid(uid: int) -> None:
    """Kill everything left running as a sandbox uid (double-forked, setsid'd children) and reap what of it
    was re-parented here: left as zombies they count against the uid's RLIMIT_NPROC and stop its next
    program starting. Every child is SIGKILLed before it is waited for, so each wait is short."""
    me = os.getpid()
    for _ in range(3):  # a dying child's own children are re-parented here as it goes
        left = _processes_of(uid)
        for proc in left:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
        ours = [proc.pid for proc in left if proc.parent == me]
        if not ours:
            return
        for pid in ours:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                continue


def _reap_bwrap_orphans() -> None:
    """Without a sandbox uid (not root) nothing can be killed by uid: reap the orphaned bubblewrap processes
    re-parented here, dying of bubblewrap's ``--die-with-parent``, waiting up to 2 s, never one a ``Popen`` of
    ours still owns."""
    me, deadline = os.getpid(), time.monotonic() + 2.0
    with _LAUNCHING:
        while True:
            orphans = [p.pid for p in _processes_of(os.getuid())
                       if p.parent == me and p.name == "bwrap" and p.pid not in _LAUNCHED]
            for pid in orphans:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
            if not orphans or time.monotonic() > deadline:
                return
            time.sleep(0.005)


_START_RETRIES = (0.2, 1.0, 3.0)  # seconds to wait before each new try of a program the sandbox did not start


def run_program(code: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run ``code`` contained; pass = exit 0 and the sentinel printed after the code.

    Raises :class:`SandboxUnavailable` when the sandbox itself could not start the program after
    ``len(_START_RETRIES)`` more tries: that is the harness failing, and must not score as the program failing."""
    for wait_s in (*_START_RETRIES, None):
        with _claimed_uid() as uid:
            result, started = _run_as(code, limits, uid)
        if started or result.status == "timeout":
            return result
        if wait_s is None:
            reason = next((x for x in result.stderr.splitlines() if x.strip()), f"exit status {result.returncode}")
            raise SandboxUnavailable(f"the sandbox could not start a program after {len(_START_RETRIES) + 1} "
                                     f"tries: {reason} (isolation: {result.isolation}); check the machine's "
                                     "process limits and bubblewrap (see bench/eval/sandbox.py)")
        time.sleep(wait_s)
    raise AssertionError("unreachable")


def _run_as(code: str, limits: SandboxLimits, uid: int | None) -> tuple[SandboxResult, bool]:
    """One run; also whether the launcher started (printed its token before compiling the program)."""
    caps = _capabilities()
    sentinel = "UB-SENTINEL-" + secrets.token_hex(16)
    start_token = "UB-STARTED-" + secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="ub-sandbox-"))
    script, launcher = workdir / "program.py", workdir / "launch.py"
    preamble = "" if caps["net_ns"] else _NO_SOCKETS
    script.write_text(f"{preamble}{code}\n\nprint({sentinel!r}, flush=True)\n")
    launcher.write_text(_LAUNCHER.format(token=start_token, program=str(script)))
    reaps_bwrap = uid is None and bool(caps["bwrap"])
    if uid is not None or reaps_bwrap:  # otherwise nothing of the program is orphaned here
        _adopt_orphans()
    if uid is not None:
        for path in (workdir, script, launcher):
            os.chown(path, uid, uid)
    env = dict(_ALLOWED_ENV, HOME=str(workdir), TMPDIR=str(workdir))
    start = time.monotonic()
    status = "failed"
    try:
        with _LAUNCHING if reaps_bwrap else nullcontext():  # a sandbox uid's reaping needs no lock
            proc = subprocess.Popen(_command(launcher, env, uid), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=_limit_child(limits, _nproc_limit(limits, uid)), close_fds=True)
            _LAUNCHED.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            out, err = proc.communicate()
            status = "timeout"
        finally:
            _LAUNCHED.discard(proc.pid)
        returncode = proc.returncode
    finally:
        if uid is not None:
            _clear_uid(uid)
        elif reaps_bwrap:
            _reap_bwrap_orphans()
        shutil.rmtree(workdir, ignore_errors=True)
    started = out.startswith(start_token.encode())
    if started:
        out = out[len(start_token) + 1:]
    stdout = out.decode(errors="replace")[-limits.output_bytes:]
    stderr = err.decode(errors="replace")[-limits.output_bytes:]
    lines = stdout.strip().splitlines()
    passed = started and status != "timeout" and returncode == 0 and bool(lines) and lines[-1] == sentinel
    if passed:
        status = "passed"
    elif status != "timeout" and returncode is not None and returncode < 0:
        status = "killed"
    stdout = stdout.replace(sentinel, "<sentinel>")
    return SandboxResult(passed, status, returncode, time.monotonic() - start, stdout, stderr,
                         isolation_summary()), started


def run_programs(codes: list[str], limits: SandboxLimits = SandboxLimits(), workers: int = 2) -> list[SandboxResult]:
    """Run several programs, ``workers`` at a time (each running program has its own uid)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run_program, code, limits) for code in codes]
        return [f.result() for f in futures]
