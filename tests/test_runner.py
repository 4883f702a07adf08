"""Runner: cells on the tiny model with the toy task, resume, force, divergence, failures, reports."""

import json
import types

import pytest
import torch

from bench.api import Method, TaskData
from bench.cli import write_report
from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.hookspecs import hookimpl
from bench.plugins import load_registry
from bench.testing import ToyTask
from methods.ga import GradientAscent


class ExplodingMethod(Method):
    """Returns a loss of NaN on its first step (the divergence guard must stop the cell)."""

    name = "nan_method"

    def unlearn(self, ctx):
        from bench.lm.training import train, with_adapter

        model = with_adapter(ctx.model, self.params, ctx.seed)
        first = next(p for p in model.parameters() if p.requires_grad)
        train(model, self.params, lambda: (first.sum() * float("nan"), {}), ctx)
        return model


class CrashingMethod(Method):
    name = "crash_method"

    def unlearn(self, ctx):
        raise RuntimeError("plugin bug inside a cell")


def _registry():
    module = types.ModuleType("test_extra_plugins")

    @hookimpl
    def register_methods(register):
        register(ExplodingMethod)
        register(CrashingMethod)

    @hookimpl
    def register_tasks(register):
        register(ToyTask)

    module.register_methods = register_methods
    module.register_tasks = register_tasks
    return load_registry(extra_modules=[module])


def _config(out, methods=("ga",), seeds=(0,)):
    return load_config(None, {"model": "tiny-random-llama", "methods": list(methods), "tasks": ["toy"],
                              "seeds": list(seeds), "out": str(out), "progress": False,
                              "method_params": {"ga": {"steps": 2, "batch_size": 2, "lr": 1e-2}}})


def test_cell_result_schema_and_resume(tmp_path):
    reg = _registry()
    config = _config(tmp_path / "run", seeds=(0, 1))
    first = run_matrix(config, reg)
    assert first.skipped == 0 and list(first.ran.values()) == ["done", "done"]
    cell_dirs = sorted((tmp_path / "run" / "cells").iterdir())
    result = json.loads((cell_dirs[0] / "result.json").read_text())
    assert result["status"] == "done"
    metric = result["metrics"]["forget_loglik"]
    for key in ("value", "better", "n", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high"):
        assert key in metric
    prov = result["provenance"]
    for key in ("versions", "git", "model", "data_sources", "seed", "device", "wall_time_s", "memory"):
        assert key in prov
    assert prov["model"]["weights_hash"] and prov["model"]["tokenizer_hash"]
    assert result["trajectory"][0]["step"] == 0 and any("loss" in row for row in result["trajectory"])
    assert (cell_dirs[0] / "samples.jsonl").read_text().strip()
    assert "ga on toy" in (cell_dirs[0] / "log.txt").read_text()
    # one base evaluation for both seeds
    assert len(list((tmp_path / "run" / "base").iterdir())) == 1
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("result.json")}
    second = run_matrix(config, reg)
    assert second.skipped == 2 and second.ran == {}
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("result.json")} == mtimes
    forced = run_matrix(config, reg, force=True)
    assert len(forced.ran) == 2


def test_same_seed_gives_identical_metrics(tmp_path):
    reg = _registry()
    a = run_matrix(_config(tmp_path / "a"), reg)
    run_matrix(_config(tmp_path / "b"), reg)
    [cell] = a.ran
    ra = json.loads((tmp_path / "a" / "cells" / cell / "result.json").read_text())
    rb = json.loads((tmp_path / "b" / "cells" / cell / "result.json").read_text())
    assert ra["metrics"] == rb["metrics"]
    assert ra["metrics"]["forget_loglik"]["delta"] < 0  # GA lowered the forget likelihood


def test_divergence_and_failures_are_recorded_and_matrix_continues(tmp_path):
    reg = _registry()
    summary = run_matrix(_config(tmp_path / "run", methods=("nan_method", "crash_method", "ga")), reg)
    assert sorted(summary.ran.values()) == ["diverged", "done", "failed"]
    results = {json.loads(p.read_text())["spec"]["method"]: json.loads(p.read_text())
               for p in (tmp_path / "run" / "cells").glob("*/result.json")}
    assert results["nan_method"]["status"] == "diverged"
    assert "step 1" in results["nan_method"]["reason"] and results["nan_method"]["extras"]["diverged_step"] == 1
    assert results["crash_method"]["status"] == "failed"
    assert "plugin bug inside a cell" in results["crash_method"]["reason"]
    crash_dir = next(p for p in (tmp_path / "run" / "cells").iterdir() if p.name.startswith("crash_method"))
    assert "Traceback" in (crash_dir / "log.txt").read_text()
    # diverged counts as finished, failed is retried on resume
    again = run_matrix(_config(tmp_path / "run", methods=("nan_method", "crash_method", "ga")), reg)
    assert list(again.ran.values()) == ["failed"]
    # the leaderboard shows failed/diverged cells instead of dropping them
    written = write_report([str(tmp_path / "run")], str(tmp_path / "lb"))
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "diverged" in md and "failed" in md and "plugin bug" in md
    assert {"leaderboard.md", "results.json", "results.csv", "index.html"} <= {p.name for p in written}
    html = (tmp_path / "lb" / "index.html").read_text()
    assert "diverged" in html and "failed" in html and "plugin bug" in html


def test_full_finetune_option(tmp_path):
    reg = _registry()
    config = _config(tmp_path / "run")
    config.method_params = {"ga": {"steps": 1, "batch_size": 2, "finetune": "full", "lr": 1e-3}}
    assert list(run_matrix(config, reg).ran.values()) == ["done"]


def test_gradient_ascent_lowers_forget_likelihood_on_tiny_model(tiny):
    from bench.testing import make_context

    model, tokenizer = tiny
    import copy

    ctx = make_context(copy.deepcopy(model), tokenizer)
    before = ctx.probe(ctx.model)["forget/forget_loglik"]
    params = GradientAscent.Params(steps=5, lr=5e-3, batch_size=3)
    after_model = GradientAscent(params).unlearn(ctx)
    assert ctx.probe(after_model)["forget/forget_loglik"] < before
    assert not any(p.requires_grad for p in after_model.parameters())
    assert isinstance(after_model, torch.nn.Module) and not hasattr(after_model, "peft_config")


@pytest.mark.parametrize("bad", ["nan_methd"])
def test_unknown_method_with_extra_plugins(tmp_path, bad):
    from bench.errors import UserError

    with pytest.raises(UserError, match="did you mean 'nan_method'"):
        run_matrix(_config(tmp_path / "run", methods=(bad,)), _registry())
    assert not (tmp_path / "run").exists()


def test_forget_data_reveal_replaces_task_forget_data(tmp_path):
    reg = _registry()
    config = _config(tmp_path / "run")
    config.forget_data = "reveal"
    config.reveal_params = {"queries": 2, "n_mutations": 1, "n_paraphrases": 0, "responses_per_query": 2,
                            "max_new_tokens": 6, "fit_steps": 2, "embedding": "model", "top_instructions": 1,
                            "relevance_threshold": 0.0}
    summary = run_matrix(config, reg)
    assert list(summary.ran.values()) == ["done"]
    [path] = list((tmp_path / "run" / "cells").glob("*/result.json"))
    result = json.loads(path.read_text())
    assert result["spec"]["forget_data"] == "reveal"
    assert "self-generated by Reveal" in result["provenance"]["data_sources"]["forget"]
    assert len(result["extras"]["reveal"]["trajectory"]) == 2
    assert result["extras"]["reveal"]["stats"]["forget_size"] >= 1
    # a different forget-data source is a different cell
    assert path.parent.name != run_matrix(_config(tmp_path / "run2"), reg).ran.popitem()[0]


@pytest.mark.parametrize("autocast", ["bf16", "off"])
def test_reveal_runs_in_the_methods_training_precision(tmp_path, monkeypatch, autocast):
    """Reveal is part of the method that asked for it (``forget_data: reveal``): its generations and scores
    run in that method's training precision, as everything else the method computes does."""
    import bench.reveal

    seen, real = [], bench.reveal.reveal

    def spy(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench.reveal, "reveal", spy)
    config = _config(tmp_path / "run")
    config.forget_data = "reveal"
    config.method_params = {"ga": {**config.method_params.get("ga", {}), "autocast": autocast}}
    config.reveal_params = {"queries": 2, "n_mutations": 1, "n_paraphrases": 0, "responses_per_query": 2,
                            "max_new_tokens": 6, "fit_steps": 2, "embedding": "model", "top_instructions": 1,
                            "relevance_threshold": 0.0}
    assert list(run_matrix(config, _registry()).ran.values()) == ["done"]
    assert seen == [torch.bfloat16 if autocast == "bf16" else None]


def test_base_probe_shared_and_final_probe_filled_from_evaluation(tmp_path, monkeypatch):
    """Every method's trajectory starts at one shared base probe — the base evaluation's own values (a probe is
    its metric's value: Task.probe's contract) — and its last point is the final evaluation's likelihood
    values: neither end is a second identical computation."""
    calls = []
    original = ToyTask.probe

    def counting_probe(self, model, tokenizer, data):
        calls.append(1)
        return original(self, model, tokenizer, data)

    monkeypatch.setattr(ToyTask, "probe", counting_probe)
    config = _config(tmp_path, methods=("ga", "npo"))
    config.method_params["npo"] = {"steps": 2, "batch_size": 2, "lr": 1e-2}
    run_matrix(config, _registry())
    assert len(calls) == 0  # both ends come from evaluations; the toy methods probe nothing in between
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "cells").glob("*/result.json"))]
    assert len(results) == 2
    (base,) = [json.loads(p.read_text()) for p in (tmp_path / "base").glob("*/result.json")]
    first_rows = [r["trajectory"][0] for r in results]
    assert first_rows[0]["probe/forget/forget_loglik"] == first_rows[1]["probe/forget/forget_loglik"]
    assert first_rows[0]["probe/forget/forget_loglik"] == base["metrics"]["forget_loglik"]["value"]
    for result in results:
        last = result["trajectory"][-1]
        assert last["step"] == 2 and last["probe_source"] == "final evaluation"
        assert last["probe/forget/forget_loglik"] == result["metrics"]["forget_loglik"]["value"]
        assert last["probe/utility/retain_loglik"] == result["metrics"]["retain_loglik"]["value"]
        assert last["probe/forget/forget_loglik"] < first_rows[0]["probe/forget/forget_loglik"]


def test_exploding_gradients_stop_the_cell_as_diverged(tiny):
    """A finite loss whose gradient norm exceeds ``max_grad_norm_diverge`` stops training at that step."""
    import copy

    from bench.api import TrainParams, TrajectoryLogger, UnlearnContext
    from bench.errors import Diverged
    from bench.lm.training import train, with_adapter

    model, tok = tiny
    params = TrainParams(steps=5, max_grad_norm_diverge=1e3)
    model = with_adapter(copy.deepcopy(model), params, 0)
    first = next(p for p in model.parameters() if p.requires_grad)
    calls = []

    def loss_fn():
        calls.append(1)
        scale = 1.0 if len(calls) < 3 else 1e9  # healthy for two steps, then explodes
        return (first * scale).pow(2).sum(), {}

    ctx = UnlearnContext(model=model, tokenizer=tok, task=None, data=TaskData([], []), seed=0,
                         device="cpu", probe=lambda m: {}, log=TrajectoryLogger(),
                         progress=False)
    with pytest.raises(Diverged) as err:
        train(model, params, loss_fn, ctx)
    assert err.value.step == 3 and "gradient norm" in str(err.value)


def test_result_records_follow_the_declared_schema_and_read_back_typed(tmp_path):
    """Every result.json is a schema record: read back, its metrics are Metric objects, and serialising it
    again gives the very same JSON; another schema version is refused."""
    import pytest

    from bench.api import Metric
    from bench.results import BaseResult, CellResult

    run_matrix(_config(tmp_path / "a"), _registry())
    for path in (tmp_path / "a").glob("*/*/result.json"):
        data = json.loads(path.read_text())
        record = (CellResult if data["kind"] == "cell" else BaseResult).from_json(data)
        assert all(isinstance(m, Metric) for m in record.metrics.values()) and record.metrics
        assert json.loads(json.dumps(record.to_json())) == data
    with pytest.raises(ValueError, match="not a schema-2 cell result"):
        CellResult.from_json({**data, "kind": "cell", "schema": 1})


def test_a_stored_base_of_another_task_version_is_refused_before_any_cell(tmp_path, monkeypatch):
    """Deltas are measured against the stored base evaluation: one made by another version of the task is
    never reused. The run stops with one line naming the fix, before any cell runs or anything is written."""
    import pytest

    from bench.errors import UserError

    out = tmp_path / "a"
    run_matrix(_config(out), _registry())
    cells_before = sorted(p.name for p in (out / "cells").iterdir())
    monkeypatch.setattr(ToyTask, "version", "99")
    with pytest.raises(UserError, match="base evaluation of task toy version 1; this is version 99"):
        run_matrix(_config(out, seeds=(0, 1)), _registry())
    assert sorted(p.name for p in (out / "cells").iterdir()) == cells_before


def test_a_cell_borrows_the_one_resident_base_copy_and_the_next_use_reloads_it_exactly(tmp_path, monkeypatch):
    """No deep copy per cell: the cell unlearns the cached base in place, the cache forgets it, and the
    next cell gets the base reloaded bit for bit (its weights hash equal, its tensors equal)."""
    import copy

    from bench.engine.runner import Engine
    from bench.engine.store import ResultsStore
    from bench.lm import models

    real_deepcopy = copy.deepcopy

    def no_module_copies(obj, *args, **kwargs):
        assert not isinstance(obj, torch.nn.Module), "a model was deep-copied"
        return real_deepcopy(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", no_module_copies)
    loads = []
    real_load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a: loads.append(a) or real_load(*a))
    config = _config(tmp_path, methods=("ga", "npo"))
    config.method_params["npo"] = {"steps": 2, "batch_size": 2, "lr": 1e-2}
    store = ResultsStore(config.out)
    store.open()
    engine = Engine(_registry(), store, progress=False)
    pristine = {k: v.clone() for k, v in engine.models.base(config.model).model.state_dict().items()}
    seen = []
    from bench.engine.config import plan_cells

    for spec in plan_cells(config, engine.registry):
        with engine.models.checkout(spec.model, spec.device, spec.dtype) as lent:
            seen.append(id(lent.model))
            assert engine.models.base(spec.model).model is not lent.model  # a temporary copy while lent
        result = engine.run_cell(spec)
        assert result["status"] == "done" and result["provenance"]["generation_backend"] == "native"  # CPU: auto
    reloaded = engine.models.base(config.model).model
    assert all(torch.equal(pristine[k], v) for k, v in reloaded.state_dict().items())
    assert len(loads) >= 3 and len(set(seen)) == 2


def test_a_trajectory_starts_from_the_base_evaluation_without_probing_the_base(tmp_path, monkeypatch):
    """The base model's probes are its evaluation's metrics of the same names (Task.probe's contract):
    nothing is probed for a trajectory's first point, and its values are the base result's."""
    from bench.testing import ToyTask

    calls = []
    real_probe = ToyTask.probe
    monkeypatch.setattr(ToyTask, "probe", lambda self, *a: calls.append(1) or real_probe(self, *a))
    config = _config(tmp_path)
    run_matrix(config, _registry())
    (cell,) = (tmp_path / "cells").iterdir()
    result = json.loads((cell / "result.json").read_text())
    (base,) = (tmp_path / "base").iterdir()
    base_metrics = json.loads((base / "result.json").read_text())["metrics"]
    first = result["trajectory"][0]
    assert first["probe/forget/forget_loglik"] == base_metrics["forget_loglik"]["value"]
    assert first["probe/utility/retain_loglik"] == base_metrics["retain_loglik"]["value"]
    assert calls == []


def test_a_rewritten_leaderboard_does_not_make_the_code_dirty(tmp_path):
    """Provenance's ``dirty`` is about code and configs: ``make study`` rewrites a committed leaderboard, and a
    ``make demo`` run after it in the same checkout ran clean code."""
    import subprocess

    from bench.engine.provenance import tree_state

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "leaderboards").mkdir()
    (tmp_path / "leaderboards" / "board.md").write_text("old")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert tree_state(tmp_path)["dirty"] is False and len(tree_state(tmp_path)["commit"]) == 40
    (tmp_path / "leaderboards" / "board.md").write_text("regenerated")
    assert tree_state(tmp_path)["dirty"] is False
    assert tree_state(tmp_path / "leaderboards")["dirty"] is False  # the whole checkout, wherever asked from
    (tmp_path / "code.py").write_text("x = 2\n")
    assert tree_state(tmp_path)["dirty"] is True
    assert tree_state(tmp_path / "leaderboards")["dirty"] is True


def test_a_taught_runs_reference_model_is_the_untaught_one_for_every_evaluation():
    """Fluency-like metrics are scored under a model independent of the forget target: the untaught model on a
    taught run, for the taught model's own evaluation, the oracle's and every method's alike; the base model on an
    untaught run (for unlearned models only: the base evaluates under itself)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from bench.engine.runner import Engine

    asked, given = [], []
    loaded = SimpleNamespace(model="model loaded")
    fake = SimpleNamespace(
        models=SimpleNamespace(base=lambda model_id, device, dtype: asked.append(model_id) or loaded),
        model_ref=lambda spec, role="taught": "tiny" if spec.teach is None or role == "untaught" else f"{role}-dir",
        evaluation_precision=lambda spec, model: nullcontext(), progress=False)
    task = SimpleNamespace(uses_reference=True,
                           evaluate=lambda model, tok, data, progress, reference: given.append(reference) or
                           SimpleNamespace(metrics=[], samples=[]))
    taught = SimpleNamespace(teach={"key": "k"}, device="cpu", dtype="float32", utility_tasks=None)
    untaught = SimpleNamespace(teach=None, device="cpu", dtype="float32", utility_tasks=None)
    for spec, unlearned in [(taught, False), (taught, True), (untaught, True)]:
        Engine._evaluate(fake, spec, task, "m", "tok", SimpleNamespace(sources={}), unlearned=unlearned)
    Engine._evaluate(fake, untaught, task, "m", "tok", SimpleNamespace(sources={}), unlearned=False)
    assert asked == ["tiny", "tiny", "tiny"] and given == ["model loaded"] * 3 + [None]
