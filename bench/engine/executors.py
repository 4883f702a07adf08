"""Run the matrix with the configured executor: in-process (``bench.engine.runner``) or on Ray
(``bench.engine.ray_executor``, which builds on the runner's engine). Kept apart from both so that neither
imports the other's dispatcher (no import cycle)."""

from __future__ import annotations

import time

from bench.engine.config import CellSpec, RunConfig
from bench.engine.provenance import Timer, command_line, git_commit, machine
from bench.engine.runner import MatrixSummary, run_matrix
from bench.engine.store import ResultsStore
from bench.plugins import Registry


def execute(config: RunConfig, registry: Registry, force: bool = False,
            cells: list[CellSpec] | None = None) -> MatrixSummary:
    """Run the matrix (or ``cells``) with the configured executor; append the invocation's wall time, executor and
    outcome to ``OUT/invocations.jsonl`` (what ``unlearn-bench perf`` reads for whole-matrix times)."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with Timer() as timer:
        if config.executor == "ray":
            from bench.engine.ray_executor import run_matrix_ray  # Ray is optional: imported when asked for

            summary = run_matrix_ray(config, registry, force=force, cells=cells)
        else:
            summary = run_matrix(config, registry, force=force, cells=cells)
    ResultsStore(config.out).append_invocation({
        "started_at": started, "wall_time_s": round(timer.seconds, 2), "executor": config.executor,
        "num_cpus_per_cell": config.num_cpus if config.executor == "ray" else None,
        "planned": summary.planned, "skipped": summary.skipped, "ran": summary.ran,
        "git": git_commit(), "machine": machine(), "command": command_line()})
    return summary
