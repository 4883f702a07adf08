"""``tune:``: equal trial budgets, selection on a validation split disjoint from the reported evaluation by the
headline's own rule (utility bands, collapse, closeness to the oracle on taught tasks; synthetic per-item tables with
a known answer), resume after a kill, the study's tuning config and its documented spaces, the selection turned into
config YAML, and bad tuning configs refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.api import Metric
from bench.cli import main
from bench.engine.config import CellSpec, load_config
from bench.engine.tuning import (
    TUNE_DIR,
    Trial,
    TuneParams,
    merged_record,
    plan_tuning,
    run_tuned,
    sample_trials,
    select_from_table,
    selection_key,
    space_text,
    validation_oracles,
)
from bench.engine.tuning import main as tuning_main
from bench.errors import UserError
from bench.eval.textmetrics import COLLAPSE_METRIC
from bench.plugins import registry
from bench.report import table_from_records
from bench.results import BaseResult, CellResult

ROOT = Path(__file__).resolve().parent.parent

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


def test_selection_key_orders_by_class_then_key_then_trial():
    kept_far = selection_key(0, 0.2, 0)
    kept_close = selection_key(0, 0.9, 1)
    broken = selection_key(1, -0.5, 2)
    less_broken = selection_key(1, -0.1, 3)
    failed = selection_key(2, 0.0, 4)
    unkeyed = selection_key(0, float("nan"), 5)  # a key that could not be formed: last within its class
    assert sorted([failed, broken, kept_far, unkeyed, less_broken, kept_close]) == [
        kept_close, kept_far, unkeyed, less_broken, broken, failed]
    assert selection_key(0, 0.5, 0) < selection_key(0, 0.5, 5)  # a tie goes to the earlier trial


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
        expected = min(entry["trial_results"], key=lambda t: selection_key(t["rank_class"], t["rank_key"], t["trial"]))
        assert entry["ranking_key"] == "F" and entry["oracle"] is None  # an untaught task: today's rule, by F
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


# -- the rule on synthetic validation boards with a known answer -------------------------------------------------
N = 200  # enough items for the taught-to-oracle gap to pass forget quality's guard (2 x its MDE)
RNG = np.random.default_rng(5)
TAUGHT_PASS = (RNG.random(N) < 0.7).astype(float)         # the taught model passes ~70 % of the forget items
ORACLE_PASS = TAUGHT_PASS * (RNG.random(N) < 0.5)         # the oracle keeps about half of them: room to overshoot
UTILITY = (RNG.random(N) < 0.6).astype(float)             # the taught model solves ~60 % of the utility items
CLEAN = np.zeros(N)                                        # no degenerate forget output
TEACH = {"seed": 0, "steps": 1}                            # a taught task's recipe (any: it only marks the cells)


def _metric(name, group, better, items, primary=True):
    items = [float(x) for x in items]
    return Metric.from_json({"name": name, "group": group, "better": better, "value": float(np.mean(items)),
                             "per_item": items, "n": len(items), "min_effect": 0.05, "bounds": (0.0, 1.0),
                             "primary": primary, "kind": "generative", "ci_low": 0.0, "ci_high": 1.0})


def _metrics(forget, utility, degenerate=CLEAN):
    return {"pass_rate": _metric("pass_rate", "forget", "lower", forget),
            "accuracy": _metric("accuracy", "utility", "higher", utility),
            COLLAPSE_METRIC: _metric(COLLAPSE_METRIC, "utility", "lower", degenerate, primary=False)}


def _spec(method, params, teach=None):
    return CellSpec("m", method, params, "t", {"eval_split": "validation"}, 0, "demo", "float32", teach=teach)


def _board(rows, teach=None, oracle=None):
    """(trials, table): one trial per ``(status, forget items, utility items, degenerate items)`` of ``rows``, in
    that order, as cells of one validation board; ``oracle``: the oracle's (forget, utility) items."""
    trials, cells = [], []
    for i, (status, forget, utility, degenerate) in enumerate(rows):
        spec = _spec("ga", {"lr": 10.0 ** -(i + 2)}, teach)
        trials.append(Trial("ga", "t", i, {"lr": spec.method_params["lr"]}, spec))
        metrics = _metrics(forget, utility, degenerate) if status == "done" else {}
        cells.append(CellResult(spec.cell_id, "b", status, spec.to_json(), metrics=metrics).to_json())
    if oracle is not None:
        spec = _spec("reference", {"role": "oracle", "pair": 0, "label": "oracle"}, teach)
        cells.append(CellResult(spec.cell_id, "b", "done", spec.to_json(), metrics=_metrics(*oracle)).to_json())
    base = BaseResult("b", {"model": "m", "task": "t", "task_params": {"eval_split": "validation"}},
                      _metrics(TAUGHT_PASS, UTILITY), {}).to_json()
    return trials, table_from_records([base], cells, sources=["synthetic"], resamples=2000)


def _flip(items, share, seed):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(items)) < share, 1 - items, items)


def test_a_trial_that_breaks_utility_or_collapses_is_never_selected_over_one_that_keeps_it():
    some_forgetting = np.where(np.arange(N) % 3 == 0, 0.0, TAUGHT_PASS)  # a third of the items forgotten
    rows = [("done", np.zeros(N), np.zeros(N), CLEAN),        # 0: forgets everything, utility destroyed
            ("done", np.zeros(N), UTILITY, np.ones(N)),        # 1: forgets everything, its output collapsed
            ("failed", None, None, None),                      # 2: failed
            ("done", some_forgetting, UTILITY, CLEAN)]         # 3: forgets some, keeps utility: the selection
    trials, table = _board(rows)
    entry = select_from_table(trials, table)[("ga", "t")]
    results = {t["trial"]: t for t in entry["trial_results"]}
    assert results[0]["forget"] > results[3]["forget"] and results[1]["forget"] > results[3]["forget"]
    assert results[0]["utility_kept"] is False and results[0]["rank_class"] == 1
    assert results[1]["collapsed"] and results[1]["rank_class"] == 1
    assert results[2]["rank_class"] == 2 and results[3]["rank_class"] == 0
    assert entry["selected"] == 3 and entry["selected_params"] == trials[3].overrides
    assert entry["ranking_key"] == "F" and entry["oracle"] is None  # no oracle: today's rule, by F
    # with no trial that kept utility, the one that lost the least U; failed last
    without_keeper = select_from_table(trials[:3], table)[("ga", "t")]
    assert without_keeper["selected"] == 1 and results[1]["utility"] > results[0]["utility"]


def test_on_a_taught_task_the_trial_closest_to_the_oracle_wins_over_a_larger_f():
    rows = [("done", np.zeros(N), UTILITY, CLEAN),             # 0: overshoots the oracle: the largest F
            ("done", _flip(ORACLE_PASS, 0.03, 1), UTILITY, CLEAN),  # 1: about where the oracle is
            ("done", TAUGHT_PASS, UTILITY, CLEAN)]             # 2: forgot nothing
    trials, table = _board(rows, teach=TEACH, oracle=(ORACLE_PASS, UTILITY))
    entry = select_from_table(trials, table)[("ga", "t")]
    results = {t["trial"]: t for t in entry["trial_results"]}
    assert results[0]["forget"] > results[1]["forget"] > results[2]["forget"]
    assert results[0]["forget_quality"] > 1.5  # past the oracle: over-forgetting
    assert entry["selected"] == 1 and entry["oracle"] == "oracle" and entry["ranking_key"].startswith("closeness")
    # the key is the scoring's own closeness (bench.report.scores), not a number recomputed here
    row = table.scoring.tasks["t"].row(table.label(next(c for c in table.cells if c.method_params["lr"] == 1e-3)))
    assert results[1]["rank_key"] == pytest.approx(row.closeness) and results[1]["closeness"] == row.closeness


def test_a_utility_loss_the_oracle_itself_shows_is_not_charged_in_the_selection():
    oracle_utility = UTILITY * (np.random.default_rng(6).random(N) > 0.4)  # the gold standard scores lower too
    rows = [("done", ORACLE_PASS, np.zeros(N), CLEAN),                # 0: at the oracle, utility gone
            ("done", _flip(ORACLE_PASS, 0.1, 2), oracle_utility, CLEAN)]  # 1: near the oracle, its utility
    trials, table = _board(rows, teach=TEACH, oracle=(ORACLE_PASS, oracle_utility))
    entry = select_from_table(trials, table)[("ga", "t")]
    results = {t["trial"]: t for t in entry["trial_results"]}
    assert results[0]["utility_kept"] is False and results[1]["utility_kept"] is True
    assert results[0]["closeness"] > results[1]["closeness"]  # the closer one broke utility: not selected
    assert entry["selected"] == 1


def test_a_taught_task_without_its_validation_oracle_is_refused_not_ranked_by_f():
    trials, table = _board([("done", ORACLE_PASS, UTILITY, CLEAN)], teach=TEACH)
    with pytest.raises(UserError, match="taught task t has no finished oracle on its validation split"):
        select_from_table(trials, table)


# -- the study's tuning config: the study's matrix, equal budgets, documented spaces -----------------------------
def test_the_study_tuning_config_is_the_study_matrix_at_an_equal_budget():
    from bench.engine.config import REFERENCE_METHOD

    study = load_config(ROOT / "configs" / "study.yaml")
    config = load_config(ROOT / "configs" / "study-tuning.yaml")
    for key in ("model", "methods", "tasks", "seeds", "teach", "train_params", "task_params", "method_params",
                "eval_autocast", "preset", "dtype"):
        assert getattr(config, key) == getattr(study, key), key
    reg = registry(config.plugins)
    tune, trials, cells = plan_tuning(config, reg)
    assert tune.final_run is False and config.out != study.out
    for task in config.tasks:
        for method in config.methods:
            mine = [t for t in trials if (t.method, t.task) == (method, task)]
            space = reg.get("method", method).cls.tune_space
            assert len(mine) == (tune.trials if space else 0), (method, task)  # the same budget; prompt: none
            assert all(t.spec.task_params["eval_split"] == "validation" and t.spec.teach for t in mine)
    oracles = validation_oracles(cells, trials, tune)
    assert sorted(o.task for o in oracles) == sorted(config.tasks)  # the oracle once per task, on validation
    assert all(o.method == REFERENCE_METHOD and o.method_params["role"] == "oracle" and o.attacks == []
               and o.task_params["eval_split"] == "validation" for o in oracles)


def test_docs_list_every_methods_search_space():
    """docs/tuning.md's table names each registered method's ``tune_space`` as the code has it."""
    docs = (ROOT / "docs" / "tuning.md").read_text()
    reg = registry([])
    for name in sorted(reg.entries["method"]):
        cls = reg.get("method", name).cls
        assert f"| `{name}` | {space_text(getattr(cls, 'tune_space', {}))} |" in docs, name


# -- a taught run end to end on the tiny model: the oracle on validation, the selection only ----------------------
TINY_RECIPE = {"batch_size": 4, "max_length": 64, "lora_rank": 2, "lora_alpha": 4.0}
TINY_NER = {"n_teach_sentences": 4, "n_eval_per_type": 2, "n_typing_per_type": 2, "max_new_tokens": 6,
            "n_forget": 2, "n_retain": 2}


def test_a_taught_tuning_run_scores_trials_against_the_validation_oracle_and_can_stop_at_the_selection(
        tmp_path, monkeypatch):
    import bench.teach as teach

    monkeypatch.setattr(teach, "cache_root", lambda: tmp_path / "taught")
    monkeypatch.setattr(teach, "shipped_dir", lambda task_cls, model_id: tmp_path / "shipped" / task_cls.name)
    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga", "prompt"], "tasks": ["ner"], "seeds": [0, 1],
        "out": str(tmp_path / "out"), "progress": False, "teach": {"ner": TINY_RECIPE},
        "task_params": {"ner": TINY_NER}, "method_params": {"ga": {"batch_size": 2, "max_length": 64}},
        "tune": {"trials": 2, "space": {"ga": {"lr": [1e-3, 1e-2], "steps": [1]}}, "final_run": False}})
    run_tuned(config, registry(config.plugins))
    out = tmp_path / "out"
    assert not (out / "cells").exists()  # final_run: false: nothing on the test split
    stored = [json.loads(p.read_text()) for p in (out / TUNE_DIR / "cells").glob("*/result.json")]
    assert sorted(r["spec"]["method"] for r in stored) == ["ga", "ga", "reference"]  # prompt: nothing to tune
    assert all(r["spec"]["task_params"]["eval_split"] == "validation" for r in stored)
    assert next(r for r in stored if r["spec"]["method"] == "reference")["spec"]["method_params"]["role"] == "oracle"
    tuning = json.loads((out / "tuning.json").read_text())
    assert json.loads((out / TUNE_DIR / "tuning.json").read_text()) == tuning  # the trials' board shows it too
    (entry,) = tuning["selections"]
    assert entry["oracle"] == "oracle" and entry["trials"] == 2 and len(entry["cell_ids"]) == 2  # the 2 seeds
    # the tiny random model's NER has no forget metric with signal: no rule applies, and the selection says so
    # (the earliest finished trial, recorded as unranked) instead of ranking by something else; the rule itself
    # is tested on the synthetic boards above
    assert entry["unranked"] == "no primary forget metric has signal at this size" and entry["ranking_key"] == ""
    assert entry["selected"] == 0 and all(t["rank_class"] == 2 for t in entry["trial_results"])
    assert main(["report", "--runs", str(out / TUNE_DIR), "--out", str(tmp_path / "lb"), "--reporters",
                 "markdown"]) == 0
    assert "### Tuning" in (tmp_path / "lb" / "leaderboard.md").read_text()


# -- from tuning.json to the study's config ------------------------------------------------------------------------
def _record():
    def selection(task, method, params, closeness):
        trial = {"trial": 1, "status": "done", "verdict": "utility kept", "closeness": closeness, "forget": 0.4,
                 "utility": -0.1}
        return {"method": method, "task": task, "trials": 6, "selected": 1, "selected_params": params,
                "ranking_key": "closeness to the oracle", "trial_results": [trial]}
    return {"protocol": {"trials": 6, "seed": 0, "trial_seed": 0, "rule": "the rule"},
            "selections": [selection("ner", "ga", {"lr": 4e-4, "steps": 12}, 0.8),
                           selection("coding", "ga", {"lr": 1e-3, "steps": 6}, 0.6),
                           selection("coding", "rnr", {"lr": 2e-4, "rounds": 4, "steps": 6}, 0.5)]}


def test_selected_values_become_config_yaml_per_task_and_merged_for_one_task(tmp_path, capsys):
    import yaml

    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(_record()))
    assert tuning_main(["selected", str(path)]) == 0
    text = capsys.readouterr().out
    assert "6 trials per method and task" in text and "# coding/rnr: trial 1 of 6 (utility kept" in text
    assert yaml.safe_load(text) == {"task_method_params": {
        "coding": {"ga": {"lr": 1e-3, "steps": 6}, "rnr": {"lr": 2e-4, "rounds": 4, "steps": 6}},
        "ner": {"ga": {"lr": 4e-4, "steps": 12}}}}
    # one task's selection over the study's method_params: R&R keeps its merge search, gets the tuned values
    assert tuning_main(["selected", str(path), "--task", "coding", "--config",
                        str(ROOT / "configs" / "study.yaml")]) == 0
    params = yaml.safe_load(capsys.readouterr().out)["method_params"]
    study = load_config(ROOT / "configs" / "study.yaml").method_params
    assert params["rnr"] == {**study["rnr"], "lr": 2e-4, "rounds": 4, "steps": 6}
    assert params["icu"] == study["icu"] and params["ga"] == {"lr": 1e-3, "steps": 6}


@pytest.mark.parametrize("argv, message", [
    (["selected", "{path}", "--task", "nerr"], "did you mean 'ner'"),
    (["selected", "{missing}"], "does not exist"),
    (["selected", "{path}", "--config", "{study}"], "add --task TASK"),
])
def test_bad_selected_arguments_are_one_line_exit_2(tmp_path, capsys, argv, message):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(_record()))
    argv = [a.format(path=path, missing=tmp_path / "nope.json", study=ROOT / "configs" / "study.yaml") for a in argv]
    assert tuning_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_task_by_task_pieces_merge_into_one_tuning_json(tmp_path):
    record = _record()
    protocol = record["protocol"]
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({"protocol": protocol, "selections": record["selections"][:1]}))  # ner first
    merged = merged_record(path, {"protocol": protocol, "selections": record["selections"][1:]})  # then coding
    assert [(s["task"], s["method"]) for s in merged["selections"]] == [("coding", "ga"), ("coding", "rnr"),
                                                                         ("ner", "ga")]
    other = merged_record(path, {"protocol": {**protocol, "trials": 8}, "selections": record["selections"][1:]})
    assert [s["task"] for s in other["selections"]] == ["coding", "coding"]  # another protocol: replaced
