"""The Ray executor: same results as the local executor, a lost worker is retried then recorded as
failed while the other cells finish, and a matrix resumes across executors."""

import json
import math

import pytest

pytest.importorskip("ray")

from bench.engine.config import load_config  # noqa: E402
from bench.engine.ray_executor import run_matrix_ray  # noqa: E402
from bench.engine.runner import run_matrix  # noqa: E402
from bench.plugins import registry  # noqa: E402

PLUGINS = ["ray_plugins"]

pytestmark = pytest.mark.ray


def _config(out, methods, executor="local", **extra):
    return load_config(None, {"model": "tiny-random-llama", "methods": methods, "tasks": ["toy"], "seeds": [0, 1],
                              "out": str(out), "progress": False, "plugins": PLUGINS, "executor": executor,
                              "num_cpus": 1, "train_params": {"steps": 2, "batch_size": 2, "lr": 1e-2},
                              **extra})


def _metrics(out):
    results = {}
    for path in sorted(out.glob("cells/*/result.json")):
        data = json.loads(path.read_text())
        results[data["cell_id"]] = (data["status"], {k: m["value"] for k, m in data["metrics"].items()})
    return results


def test_ray_matches_local_and_resumes_across_executors(tmp_path):
    reg = registry(PLUGINS)
    local = run_matrix(_config(tmp_path / "local", ["ga", "npo"]), reg)
    assert sorted(local.ran.values()) == ["done"] * 4
    remote = run_matrix_ray(_config(tmp_path / "ray", ["ga", "npo"], "ray"), reg)
    assert sorted(remote.ran.values()) == ["done"] * 4
    a, b = _metrics(tmp_path / "local"), _metrics(tmp_path / "ray")
    assert a.keys() == b.keys()
    for cell_id in a:
        assert a[cell_id][0] == b[cell_id][0] == "done"
        for name, value in a[cell_id][1].items():
            # same seeds and data; only the thread count differs (1 per Ray worker)
            assert math.isclose(value, b[cell_id][1][name], rel_tol=1e-4, abs_tol=1e-5), (cell_id, name)
    # a matrix finished on Ray is complete for the local executor, and the reverse
    assert run_matrix(_config(tmp_path / "ray", ["ga", "npo"]), reg).ran == {}
    assert run_matrix_ray(_config(tmp_path / "local", ["ga", "npo"], "ray"), reg).ran == {}


def test_lost_worker_is_retried_then_failed_while_others_finish(tmp_path):
    reg = registry(PLUGINS)
    summary = run_matrix_ray(_config(tmp_path, ["kill_worker", "ga"], "ray", max_retries=1), reg)
    statuses = {cid.split("__")[0] + cid.split("__")[2]: s for cid, s in summary.ran.items()}
    assert statuses == {"kill_workers0": "failed", "kill_workers1": "failed", "gas0": "done", "gas1": "done"}
    for path in tmp_path.glob("cells/kill_worker*/result.json"):
        data = json.loads(path.read_text())
        assert data["status"] == "failed" and "worker lost" in data["reason"]
        assert data["extras"]["attempts"] == 2  # the first try and one retry


def test_cells_are_submitted_longest_first():
    from bench.engine.config import load_config, plan_cells
    from bench.engine.ray_executor import longest_first
    from bench.plugins import registry

    reg = registry()
    cells = plan_cells(load_config(None, {"methods": ["ga", "rnr", "icu"], "tasks": ["toxicity", "coding"]}), reg)
    order = [(c.method, c.task) for c in longest_first(cells, reg)]
    assert order[0] == ("rnr", "coding") and order[-1] == ("ga", "toxicity")
    assert order.index(("icu", "coding")) < order.index(("rnr", "toxicity"))
