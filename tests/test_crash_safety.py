"""Crash safety: SIGKILL a running matrix at random points, resume, and compare with an uninterrupted run.

Checks after every kill and at the end: every results file on disk parses (atomic writes), no cell that
had finished is run again (its result file keeps its bytes), no temp file survives a resume, and the
final metrics equal those of a run that was never interrupted (same seeds).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, out: Path) -> Path:
    config = {"model": "tiny-random-llama", "methods": ["ga", "npo", "graddiff"], "tasks": ["toy"],
              "seeds": [0, 1], "out": str(out), "progress": False, "plugins": ["ray_plugins"],
              "train_params": {"steps": 12, "batch_size": 2, "lr": 1e-2}}
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(config: Path) -> subprocess.Popen:
    path = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])  # for ray_plugins
    env = dict(os.environ, HF_HUB_OFFLINE="1", UNLEARN_BENCH_PROGRESS="0", OMP_NUM_THREADS="1", PYTHONPATH=path)
    with open(config.with_suffix(".log"), "ab") as log:  # a file, not a pipe nobody reads while it runs
        return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--config", str(config)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _log_tail(config: Path) -> str:
    return config.with_suffix(".log").read_text(errors="replace")[-2000:]


def _finished(out: Path) -> dict[str, bytes]:
    """cell id -> bytes of its result file, for every cell whose result is on disk."""
    found = {}
    for path in sorted(out.glob("cells/*/result.json")):
        found[path.parent.name] = path.read_bytes()
    return found


def _all_files_parse(out: Path) -> None:
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    for path in out.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)


def _metrics(out: Path) -> dict[str, dict[str, float]]:
    return {cell: {k: m["value"] for k, m in json.loads(data)["metrics"].items()}
            for cell, data in _finished(out).items()}


def _cell_logs(out: Path) -> dict[Path, tuple[int, int]]:
    return {log: (log.stat().st_mtime_ns, log.stat().st_size) for log in out.glob("cells/*/log.txt")}


def _new_cell_started(out: Path, logs_before: dict[Path, tuple[int, int]]) -> bool:
    """Whether a cell without a result has (re)written its log since ``logs_before`` was taken."""
    return any(not (log.parent / "result.json").exists() and logs_before.get(log) != stamp
               for log, stamp in _cell_logs(out).items())


def _wait_for(event, proc: subprocess.Popen, timeout: float) -> bool:
    """Poll ``event`` until it holds; False if the run exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if event():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path):
    reference_out = tmp_path / "uninterrupted"
    started = time.monotonic()
    reference = _config(tmp_path, reference_out)
    proc = _start(reference)
    startup = None
    while proc.poll() is None:  # time to the first cell's start (imports, model, base evaluation)
        if startup is None and list(reference_out.glob("cells/*/log.txt")):
            startup = time.monotonic() - started
        time.sleep(0.05)
    assert proc.returncode == 0, _log_tail(reference)
    whole = time.monotonic() - started
    per_cell = (whole - startup) / 6
    expected = _metrics(reference_out)
    assert len(expected) == 6

    out = tmp_path / "killed"
    config = _config(tmp_path, out)
    rng = random.Random(1234)
    kills, seen, progress = 0, {}, []
    # Kill points are tied to events, not to one guess of the total time, so that every kill lands inside the
    # matrix whatever the machine's speed: during start-up (imports, model, base evaluation), at a random moment
    # of the first cell this run starts (training, evaluation, writing), or just after this run finished a cell
    # (which guarantees progress between kills).
    kinds = ["start-up", "in a cell", "in a cell", "after a cell", "after a cell", "in a cell"]
    rng.shuffle(kinds)
    for kind in kinds:
        logs_before, results_before = _cell_logs(out), set(_finished(out))
        proc = _start(config)
        if kind == "start-up":
            time.sleep(rng.uniform(0.2, 0.9) * startup)
        elif kind == "in a cell" and _wait_for(lambda: _new_cell_started(out, logs_before), proc, 10 * startup):
            time.sleep(rng.uniform(0.0, 1.0) * per_cell)
        elif kind == "after a cell" and _wait_for(lambda: set(_finished(out)) - results_before, proc, 10 * startup):
            time.sleep(rng.uniform(0.0, 0.5) * per_cell)
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        _all_files_parse(out)
        now = _finished(out)
        for cell, data in seen.items():
            assert now[cell] == data, f"finished cell {cell} was lost or rerun"
        seen = now
        progress.append(len(now))
    print("finished cells after each kill:", progress, f"(uninterrupted run {whole:.1f}s, start-up {startup:.1f}s)")
    assert kills == len(kinds), f"the matrix finished after only {kills} kills; lengthen it"
    assert len(set(progress)) >= 2, f"kills did not land at different points of the matrix: {progress}"
    proc = _start(config)
    assert proc.wait(timeout=600) == 0, _log_tail(config)
    final = _finished(out)
    for cell, data in seen.items():
        assert final[cell] == data, f"finished cell {cell} was rerun after the last kill"
    assert not list(out.rglob("*.tmp"))
    _all_files_parse(out)
    assert _metrics(out) == expected
