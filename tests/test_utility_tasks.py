"""``utility_tasks:``: lm-evaluation-harness tasks run in-process as utility metrics, paired with the base."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="module")
def gsm8k_files():
    pytest.importorskip("lm_eval")
    if not (GSM8K / "test.jsonl").is_file():
        pytest.skip("real GSM8K not present at ../shared/data/gsm8k")
    return {"train": str(GSM8K / "train.jsonl"), "test": str(GSM8K / "test.jsonl")}


def test_lm_eval_task_over_local_jsonl_is_a_paired_utility_metric(tmp_path, gsm8k_files):
    from bench.engine.config import load_config
    from bench.engine.runner import run_matrix
    from bench.engine.store import ResultsStore
    from bench.plugins import registry

    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga"], "tasks": ["coding"], "seeds": [0], "out": str(tmp_path),
        "progress": False, "method_params": {"ga": {"steps": 1}},
        "task_params": {"coding": {"n_forget": 2, "n_stdlib_forget": 1, "n_eval": 2, "n_gsm_eval": 2,
                                   "n_retain": 2, "n_arithmetic": 2, "max_new_tokens_code": 4,
                                   "max_new_tokens_math": 4, "gsm8k_source": "symbolic", "n_functions": 2,
                                   "n_word_problems": 2, "max_new_tokens_function": 4, "max_new_tokens_word": 4}},
        "utility_tasks": [{"name": "gsm8k", "data_files": gsm8k_files, "limit": 5, "num_fewshot": 1,
                           "gen_kwargs": "max_gen_toks=4", "batch_size": 5}]})
    summary = run_matrix(config, registry())
    assert list(summary.ran.values()) == ["done"]
    store = ResultsStore(str(tmp_path))
    (cell,) = [json.loads(p.read_text()) for p in store.root.glob("cells/*/result.json")]
    (base,) = [json.loads(p.read_text()) for p in store.root.glob("base/*/result.json")]
    name = "lmeval_gsm8k_local_exact_match_strict-match"
    for result in (cell, base):
        metric = result["metrics"][name]
        assert metric["group"] == "utility" and metric["primary"] and len(metric["per_item"]) == 5
        assert "lm_eval:gsm8k_local" in result["provenance"]["data_sources"]
    assert "lmeval_gsm8k_local_exact_match_flexible-extract" in cell["metrics"]
    assert cell["metrics"][name]["delta"] is not None  # paired with the base's items
    samples = [json.loads(line) for line in (store.root / "cells" / cell["cell_id"] / "samples.jsonl").open()]
    assert sum(s["set"] == "lm_eval:gsm8k_local" for s in samples) == 10  # 5 documents x 2 filters


def test_unknown_lm_eval_task_is_refused_before_any_cell(tmp_path):
    pytest.importorskip("lm_eval")
    config = tmp_path / "run.yaml"
    out = tmp_path / "runs"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [coding]\nout: {out}\n"
                      "utility_tasks: [arc_easyy]\n")
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "'arc_easyy' is not an lm-eval task" in done.stderr and "arc_easy" in done.stderr.split("not an")[1]
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_utility_task_parameters_are_checked():
    from bench.errors import UserError
    from bench.eval.lm_eval_bridge import UtilityTask, local_task_yaml, metric_name

    with pytest.raises(UserError, match="does not exist"):
        local_task_yaml(UtilityTask("gsm8k", data_files={"test": "/no/such.jsonl"}), Path("/x.yaml"))
    assert metric_name(UtilityTask("arc_easy"), "acc_norm,none") == "lmeval_arc_easy_acc_norm"
    assert metric_name(UtilityTask("gsm8k", data_files={"test": "t"}), "exact_match,strict-match") == \
        "lmeval_gsm8k_local_exact_match_strict-match"


def test_users_multiple_choice_task_gets_a_chance_floor(tmp_path, tiny):
    """A user's own YAML task (``lm_eval_include_path``): multiple choice -> kind "choice", chance = mean
    1/choices, per-item values."""
    pytest.importorskip("lm_eval")
    import copy

    from bench.eval.lm_eval_bridge import TaskCatalog, check_tasks, evaluate_utility_tasks

    rows = [{"q": f"{a} plus {b} is", "choices": [str(a + b), str(a + b + 1), str(a * b + 7)][: 2 + (a % 2)],
             "label": 0} for a, b in [(1, 2), (2, 3), (3, 4), (4, 5)]]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ub_mc.yaml").write_text(
        "task: ub_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {json.dumps(str(tmp_path / 'mc.jsonl'))}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{q}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    tasks = check_tasks([{"name": "ub_mc", "batch_size": 4}], str(tmp_path))
    catalog = TaskCatalog(tasks, str(tmp_path))
    try:
        metrics, samples, sources = evaluate_utility_tasks(copy.deepcopy(tiny[0]), tiny[1], tasks, catalog)
    finally:
        catalog.close()
    by_name = {m.name: m for m in metrics}
    assert set(by_name) == {"lmeval_ub_mc_acc", "lmeval_ub_mc_acc_norm"}
    acc = by_name["lmeval_ub_mc_acc"]
    assert acc.kind == "choice" and len(acc.per_item) == 4 and set(acc.per_item) <= {0.0, 1.0}
    assert acc.chance == pytest.approx((1 / 2 + 1 / 3 + 1 / 2 + 1 / 3) / 4)
    assert "lm_eval:ub_mc" in sources and len(samples) == 4
    with pytest.raises(Exception, match="did you mean"):
        check_tasks(["ub_mcc"], str(tmp_path))
