"""``tune:``: equal trial budgets, selection on a validation split disjoint from the reported evaluation, the
rule applied as documented, resume after a kill, and bad tuning configs refused in one line."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from bench.engine.config import load_config
from bench.engine.tuning import TUNE_DIR, TuneParams, plan_tuning, run_tuned, sample_trials, selection_key
from bench.plugins import registry

SPACE = {"ga": {"lr": {"log_uniform": [0.001, 0.05]}, "steps": [1, 2, 4]},
         "npo": {"lr": {"log_uniform": [0.001, 0.05]}, "steps": [1, 2], "beta": [0.1, 1.0]}}


def _config(out, trials=3, **extra):
    return load_config(None, {"model": "tiny-random-llama", "methods": ["ga", "npo"], "tasks": ["toy"],
                              "seeds": [0, 1], "out": str(out), "progress": False, "plugins": ["ray_plugins"],
                              "train_params": {"batch_size": 2},
                              **{"tune": {"trials": trials, "space": SPACE}, **extra}})


def test_every_method_gets_the_same_budget_on_the_validation_split():
    config = _config("unused")
    tune, trials, cells = plan_tuning(config, registry(config.plugins))
    for method in ("ga", "npo"):
        mine = [t for t in trials if t.method == method]
        assert len(mine) == tune.trials == 3
        assert len({t.spec.cell_id for t in mine}) == 3  # distinct configurations, not repeats
        for t in mine:
            assert t.spec.task_params["eval_split"] == "validation" and t.spec.seed == tune.trial_seed
            assert t.spec.attacks == [] and set(t.overrides) == set(SPACE[method])
    assert all(c.task_params["eval_split"] == "test" for c in cells)
    # reproducible: the same seed draws the same trials; another seed others
    again = plan_tuning(config, registry(config.plugins))[1]
    assert [t.spec.cell_id for t in again] == [t.spec.cell_id for t in trials]
    other = sample_trials("ga", "toy", SPACE["ga"], TuneParams(trials=3, seed=1))
    assert other != [t.overrides for t in trials if t.method == "ga"]
    assert sample_trials("prompt", "toy", {}, TuneParams(trials=3)) == []  # nothing to tune: no trials


def test_selection_rule_by_hand():
    budget = 0.2
    kept_low = selection_key("done", 0.5, -0.1, budget, 0)
    kept_high = selection_key("done", 0.9, -0.19, budget, 1)
    broken = selection_key("done", 3.0, -0.5, budget, 2)
    less_broken = selection_key("done", 0.0, -0.3, budget, 3)
    failed = selection_key("failed", None, None, budget, 4)
    assert sorted([failed, broken, kept_low, less_broken, kept_high]) == [kept_high, kept_low, less_broken, broken,
                                                                          failed]
    assert selection_key("done", 0.5, -0.1, budget, 0) < selection_key("done", 0.5, -0.1, budget, 5)  # tie: earlier


def test_tuned_run_selects_on_validation_reports_on_test_and_resumes_after_a_kill(tmp_path, monkeypatch):
    from bench.engine.runner import Engine

    config = _config(tmp_path / "out")
    reg = registry(config.plugins)
    calls: list[str] = []
    real = Engine.run_cell

    def killed_after_four(self, spec, attempt=0):
        if len(calls) == 4:
            raise KeyboardInterrupt  # the machine goes away in the middle of the trials
        calls.append(spec.cell_id)
        return real(self, spec, attempt)

    monkeypatch.setattr(Engine, "run_cell", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_tuned(config, reg)
    assert not (tmp_path / "out" / "tuning.json").exists()
    monkeypatch.setattr(Engine, "run_cell", lambda self, spec, attempt=0: calls.append(spec.cell_id)
                        or real(self, spec, attempt))
    summary = run_tuned(config, reg)
    assert len(calls) == len(set(calls)) == 6 + 4  # every trial once (4 before the kill), then 2 methods x 2 seeds
    assert sorted(summary.ran.values()) == ["done"] * 4
    tuning = json.loads((tmp_path / "out" / "tuning.json").read_text())
    trial_results = {}
    for entry in tuning["selections"]:
        assert entry["trials"] == 3 and len(entry["trial_results"]) == 3
        # the documented rule, recomputed from the stored validation scores
        expected = min(entry["trial_results"], key=lambda t: selection_key(
            t["status"], t["forget"], t["utility"], tuning["protocol"]["utility_budget"], t["trial"]))
        assert entry["selected"] == expected["trial"]
        trial_results[entry["method"]] = entry
    # reported cells: the selected parameters, the test split, the run's seeds; trials only under tune/
    reported = [json.loads(p.read_text()) for p in (tmp_path / "out" / "cells").glob("*/result.json")]
    assert len(reported) == 4
    for result in reported:
        spec = result["spec"]
        selected = trial_results[spec["method"]]["selected_params"]
        assert {k: spec["method_params"][k] for k in selected} == selected
        assert spec["task_params"]["eval_split"] == "test" and spec["seed"] in (0, 1)
    trials = [json.loads(p.read_text()) for p in (tmp_path / "out" / TUNE_DIR / "cells").glob("*/result.json")]
    assert len(trials) == 6 and all(t["spec"]["task_params"]["eval_split"] == "validation" for t in trials)
    # the validation base evaluation is a different evaluation from the reported one
    assert {t["base_id"] for t in trials}.isdisjoint({r["base_id"] for r in reported})
    assert main(["report", "--runs", str(tmp_path / "out"), "--out", str(tmp_path / "lb"),
                 "--reporters", "markdown", "json"]) == 0
    board = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| ga (tuned, 3 trials) |" in board and "### Tuning" in board
    untuned = tmp_path / "untuned"
    run_matrix = __import__("bench.engine.runner", fromlist=["run_matrix"]).run_matrix
    run_matrix(_config(untuned, tune=None), reg)
    assert main(["report", "--runs", str(untuned), str(tmp_path / "out"), "--out", str(tmp_path / "both"),
                 "--reporters", "markdown"]) == 0
    both = (tmp_path / "both" / "leaderboard.md").read_text()
    assert "| ga (untuned) |" in both and "| ga (tuned, 3 trials) |" in both
    assert json.loads((tmp_path / "lb" / "results.json").read_text())["tuning"][0]["rule"]
    calls.clear()
    run_tuned(config, reg)  # finished: nothing runs again
    assert calls == []


@pytest.mark.parametrize("tune, message", [
    ({"trials": 4, "space": {"ga": {"steps": [1, 2]}}}, "only 2 distinct configurations"),
    ({"space": {"ga": {"lrr": [0.1]}}}, "did you mean 'lr'"),
    ({"space": {"ga": {"lr": {"log_uniform": [0.0, 1.0]}}}}, "lo > 0"),
    ({"space": {"gaa": {"lr": [0.1]}}}, "did you mean 'ga'"),
    ({"trials": 0}, "trials must be >= 1"),
])
def test_bad_tuning_configs_are_one_line_exit_2(tmp_path, capsys, tune, message):
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toy"],
                                      "plugins": ["ray_plugins"], "out": str(tmp_path / "out"), "tune": tune}))
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
