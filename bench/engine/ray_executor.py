"""The Ray executor: every cell is one Ray task; Ray does the scheduling, placement and process isolation.

* ``ray_address`` unset: a local Ray is started on this machine (and shut down at the end);
  ``auto`` or ``ray://host:port`` joins an existing cluster (the results directory must then be on
  storage every node can reach).
* Each cell requests ``num_cpus`` / ``num_gpus`` from the config. The base model's evaluation for each
  (model, task, eval config) is its own task, run once; the cells that need it take its result as an
  argument, so Ray starts them only when it is written.
* A worker process keeps an ``Engine`` (with its loaded base weights) between the cells it runs.
* Results are written by the workers with the same atomic writes as the local executor, into the same
  layout: a matrix can be started with one executor and resumed with the other.
* A cell whose worker dies (killed, OOM, segfault) or that ends ``failed`` is retried up to
  ``max_retries`` times; after that it is recorded as failed with the reason, and the other cells go on.
* Ctrl-C cancels the cells still queued or running; finished cells stay on disk.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from bench.engine.config import CellSpec, RunConfig, plan_cells
from bench.engine.provenance import git_commit, package_versions
from bench.engine.runner import Engine, MatrixSummary, check_cached_bases, prepare_teaching
from bench.engine.store import ResultsStore
from bench.errors import UserError, require_package
from bench.plugins import Registry
from bench.results import CellResult

log = logging.getLogger("unlearn_bench")

_ENGINES: dict[tuple[str, tuple[str, ...]], Engine] = {}


def _use_assigned_cpus() -> None:
    """Size torch's thread pool to the CPUs Ray gave this task, so that parallel cells on one machine
    do not oversubscribe its cores (torch would otherwise start one thread per core in every worker)."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def _engine(out: str, plugins: tuple[str, ...]) -> Engine:
    """The worker process's engine for this results directory (kept across the cells it runs)."""
    from bench.plugins import registry

    _use_assigned_cpus()
    key = (out, plugins)
    if key not in _ENGINES:
        store = ResultsStore(out)
        store.open(create=False)
        _ENGINES[key] = Engine(registry(plugins), store, progress=False)
    return _ENGINES[key]


def _base_task(spec_json: dict[str, Any], out: str, plugins: tuple[str, ...]) -> str | None:
    """Evaluate (or find cached) the base model for this cell's task; None when it worked."""
    try:
        _engine(out, plugins).base_result(CellSpec(**spec_json))
        return None
    except Exception as err:  # noqa: BLE001 - the cell records the failure when it retries the base
        return f"{type(err).__name__}: {err}"


def _cell_task(spec_json: dict[str, Any], out: str, plugins: tuple[str, ...], base_error: str | None,
               attempt: int) -> str:
    """Run one cell. ``base_error`` is the base task's result: taking it as an argument makes Ray wait for
    the base evaluation; when it failed, the cell retries it and records the failure itself."""
    engine = _engine(out, plugins)
    return engine.run_cell(CellSpec(**spec_json), attempt=attempt)["status"]


def _import_ray() -> Any:
    return require_package("ray", "executor 'ray' needs Ray: pip install 'unlearn-bench[ray]' "
                                  "(or use --executor local)")


def _init(ray: Any, config: RunConfig) -> bool:
    """Start or join Ray; returns whether this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    if config.ray_address:
        try:
            ray.init(address=config.ray_address, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - connection errors vary by Ray version
            raise UserError(f"cannot join the Ray cluster at {config.ray_address}: {str(err).splitlines()[0]}; "
                            "check `ray status` on the head node or drop --ray-address for a local Ray") from None
        return True
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silence a FutureWarning; CPU cells
    path = worker_pythonpath(sys.path, os.getcwd())
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "UNLEARN_BENCH_PROGRESS": "0",
                                       "TOKENIZERS_PARALLELISM": "false"}})
    return True


def worker_pythonpath(driver_path: list[str], cwd: str) -> str:
    """Local Ray workers import this installation's packages like the driver, and the config's plugin modules
    from the working directory -- appended, never first: a user's own ``tasks/`` or ``methods.py`` there must
    not shadow the built-ins."""
    return os.pathsep.join(dict.fromkeys(p for p in [*driver_path, cwd] if p))


def worker_lost_result(spec: CellSpec, reason: str, attempts: int, seconds: float) -> dict[str, Any]:
    """The result recorded by the driver when no worker survived to write one."""
    return CellResult(spec.cell_id, spec.base_id, "failed", spec.to_json(), reason,
                      extras={"attempts": attempts, "executor": "ray"},
                      provenance={"versions": package_versions(), "git": git_commit(),
                                  "wall_time_s": round(seconds, 2)}).to_json()


def longest_first(cells: list[CellSpec], registry: Registry) -> list[CellSpec]:
    """Order cells by the declared ``relative_cost`` of method × task, longest first (stable): with
    parallel workers the long cells start early instead of one of them running alone at the end."""
    def cost(spec: CellSpec) -> float:
        return (registry.get("method", spec.method).cls.relative_cost
                * registry.get("task", spec.task).cls.relative_cost)
    return sorted(cells, key=cost, reverse=True)


def run_matrix_ray(config: RunConfig, registry: Registry, force: bool = False,
                   cells: list[CellSpec] | None = None) -> MatrixSummary:
    """``cells``: run these instead of ``config``'s matrix (tuning trials and tuned runs)."""
    ray = _import_ray()
    cells = plan_cells(config, registry) if cells is None else cells
    store = ResultsStore(config.out)
    store.open()
    check_cached_bases(cells, registry, store)
    # taught models are built here, once, before any worker starts (workers on other machines need the cache
    # on shared storage, or the shipped adapters, or they build the pair themselves)
    prepare_teaching(Engine(registry, store, progress=config.progress), cells)
    todo = longest_first([c for c in cells if force or not store.is_complete(c.cell_id, c.attack_ids)], registry)
    started = _init(ray, config)
    plugins = tuple(config.plugins)
    resources = {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus, "max_retries": 0}
    base_remote = ray.remote(_base_task).options(**resources)
    cell_remote = ray.remote(_cell_task).options(**resources)
    out = str(store.root)
    bases: dict[str, Any] = {}
    pending: dict[Any, tuple[CellSpec, int, float]] = {}

    def submit(spec: CellSpec, attempt: int) -> None:
        if spec.base_id not in bases:
            bases[spec.base_id] = base_remote.remote(spec.to_json(), out, plugins)
        ref = cell_remote.remote(spec.to_json(), out, plugins, bases[spec.base_id], attempt)
        pending[ref] = (spec, attempt, time.monotonic())

    ran: dict[str, str] = {}
    try:
        for spec in todo:
            submit(spec, 0)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            spec, attempt, t0 = pending.pop(ref)
            try:
                status = ray.get(ref)
            except Exception as err:  # noqa: BLE001 - worker death, cancellation, serialization
                status = "failed"
                reason = f"worker lost ({type(err).__name__}): {str(err).splitlines()[0][:300]}"
                log.error("cell %s: %s (attempt %d)", spec.cell_id, reason, attempt + 1)
                store.write_cell(spec.cell_id, worker_lost_result(spec, reason, attempt + 1,
                                                                  time.monotonic() - t0), [])
            if status == "failed" and attempt < config.max_retries:
                log.warning("cell %s failed; retry %d of %d", spec.cell_id, attempt + 1, config.max_retries)
                submit(spec, attempt + 1)
                continue
            ran[spec.cell_id] = status
            log.info("cell %s: %s (%d/%d)", spec.cell_id, status, len(ran), len(todo))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return MatrixSummary(len(cells), len(cells) - len(todo), ran)
