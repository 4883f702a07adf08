"""Config parsing, validation and one-line user errors (exit status 2)."""

import pytest

from bench.cli import main
from bench.engine.config import expand_sweep, load_config, plan_cells
from bench.errors import UserError
from bench.plugins import registry
from methods.ga import GradientAscent


def test_unknown_config_key_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("modle: x\n")
    with pytest.raises(UserError, match="did you mean 'model'"):
        load_config(path)


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("methods: [ga\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_a_config_extends_another_key_by_key(tmp_path):
    (tmp_path / "demo.yaml").write_text("methods: [ga, npo]\nseeds: [0]\ntask_params: {toy: {n: 4}}\n")
    (tmp_path / "study.yaml").write_text("extends: demo.yaml\nseeds: [0, 1, 2]\n")
    study = load_config(tmp_path / "study.yaml")
    assert study.methods == ["ga", "npo"] and study.seeds == [0, 1, 2] and study.task_params == {"toy": {"n": 4}}
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(UserError, match="extends itself"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(UserError, match="missing.yaml does not exist"):
        load_config(tmp_path / "c.yaml")


def test_the_study_is_the_demo_matrix_with_three_seeds_every_attack_and_more_power():
    """The study runs every method the demo runs (the demo is a subset, cut for its fp32 time goal) and its tasks,
    taught the same way, with 3 seeds and every attack; its eval sets are never smaller than the demo's and its
    training budget (steps x batch) is larger, equal across methods (no method gets its own step count)."""
    from bench.engine.config import load_config as load

    demo, study = load("configs/demo.yaml"), load("configs/study.yaml")
    assert set(demo.methods) <= set(study.methods) and study.tasks == demo.tasks and study.seeds == [0, 1, 2]
    assert study.teach == demo.teach and study.eval_autocast == demo.eval_autocast == "auto"
    assert study.untaught_row  # the study keeps the untaught base as a row (the demo may drop it for time)
    for task, params in demo.task_params.items():
        for name, value in params.items():
            if name.startswith("n_eval") or name in ("n_functions", "n_word_problems", "n_arithmetic", "samples"):
                assert study.task_params[task].get(name, value) >= value, (task, name)
    budget = study.train_params["steps"] * study.train_params["batch_size"]
    assert budget > demo.train_params["steps"] * demo.train_params["batch_size"]
    assert not any("steps" in params or "batch_size" in params
                   for name, params in study.method_params.items() if name != "rnr")
    rnr = study.method_params["rnr"]  # R&R: rounds x steps per adapter = the others' steps
    assert rnr["rounds"] * rnr["steps"] == study.train_params["steps"] and "batch_size" not in rnr
    assert {a if isinstance(a, str) else next(iter(a)) for a in study.attacks} == set(registry().names("attack"))
    # every registered method but the controls: idk, the relearning attack's positive control
    # (configs/relearn-calibration.yaml), and retain_ft, the study's catastrophic-forgetting baseline
    assert set(registry().names("method")) - {"idk", "retain_ft"} <= set(study.methods)
    assert set(registry().names("task")) >= set(demo.tasks) and len(demo.tasks) == 3


@pytest.mark.parametrize("params, message", [
    ({"lr": 0}, "lr must be > 0"),
    ({"lr": -1e-3}, "lr must be > 0"),
    ({"lora_rank": 0}, "lora_rank must be >= 1"),
    ({"steps": -1}, "steps must be >= 0"),
    ({"stpes": 3}, "did you mean 'steps'"),
    ({"steps": "many"}, "must be int"),
])
def test_invalid_method_params(params, message):
    config = load_config(None, {"methods": ["ga"], "tasks": ["coding"], "method_params": {"ga": params}})
    with pytest.raises(UserError, match=message):
        plan_cells(config, registry())


def test_unknown_method_and_task_names():
    with pytest.raises(UserError, match="did you mean 'ga'"):
        plan_cells(load_config(None, {"methods": ["gaa"]}), registry())
    with pytest.raises(UserError, match="did you mean 'coding'"):
        plan_cells(load_config(None, {"tasks": ["codng"]}), registry())


def test_sweep_expands_into_distinct_cells():
    variants = expand_sweep(GradientAscent.Params, {"lr": [1e-5, 3e-5], "lora_targets": ["q_proj"]})
    assert [v["lr"] for v in variants] == [1e-5, 3e-5]
    assert all(v["lora_targets"] == ["q_proj"] for v in variants)
    config = load_config(None, {"methods": {"ga": {"lr": [1e-5, 3e-5]}}, "seeds": [0, 1]})
    cells = plan_cells(config, registry())
    assert len(cells) == 4 and len({c.cell_id for c in cells}) == 4


def test_cell_id_is_stable_and_sensitive():
    a = plan_cells(load_config(None, {}), registry())[0]
    b = plan_cells(load_config(None, {}), registry())[0]
    c = plan_cells(load_config(None, {"method_params": {"ga": {"steps": 3}}}), registry())[0]
    assert a.cell_id == b.cell_id != c.cell_id
    assert a.base_id == c.base_id  # method params do not change the base evaluation


def test_paper_preset_applies_overrides():
    cell = plan_cells(load_config(None, {"preset": "paper"}), registry())[0]
    assert cell.method_params["epochs"] == GradientAscent.paper_preset["epochs"] == 5
    assert cell.method_params["lr_schedule"] == "linear" and cell.method_params["weight_decay"] == 0.01


@pytest.mark.parametrize("argv, message", [
    (["run", "--methods", "gaa"], "did you mean 'ga'"),
    (["run", "--tasks", "codingg"], "did you mean 'coding'"),
    (["run", "--model", "./no/such/dir"], "does not exist"),
    (["report", "--runs", "/nonexistent", "--out", "/tmp/x"], "not an unlearn-bench results directory"),
])
def test_cli_errors_are_one_line_exit_2(argv, message, capsys, tmp_path):
    code = main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "run" else []))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_incompatible_results_dir_is_refused_and_untouched(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    manifest = out / "manifest.json"
    manifest.write_text('{"tool": "unlearn-bench", "schema": 999, "version": "9.9"}')
    code = main(["run", "--model", "tiny-random-llama", "--out", str(out)])
    assert code == 2 and "use a new --out" in capsys.readouterr().err
    assert manifest.read_text() == '{"tool": "unlearn-bench", "schema": 999, "version": "9.9"}'
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_model_that_is_not_a_causal_lm(tmp_path, capsys):
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2,
                                     hidden_dim=32)).save_pretrained(tmp_path / "encoder")
    code = main(["run", "--model", str(tmp_path / "encoder"), "--out", str(tmp_path / "o")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "not a causal language model" in last


def test_shared_train_params_apply_to_every_method_and_yield_to_method_params():
    config = load_config(None, {"methods": ["ga", "npo"], "train_params": {"autocast": "bf16", "steps": 3},
                                "method_params": {"npo": {"steps": 5}}})
    cells = {c.method: c for c in plan_cells(config, registry())}
    assert cells["ga"].method_params["autocast"] == "bf16" and cells["ga"].method_params["steps"] == 3
    assert cells["npo"].method_params["steps"] == 5
    with pytest.raises(UserError, match="did you mean 'autocast'"):
        plan_cells(load_config(None, {"train_params": {"autocats": "bf16"}}), registry())


def test_bf16_autocast_training_changes_weights():
    from bench.testing import check_method

    report = check_method(GradientAscent, {"steps": 2, "batch_size": 2, "lr": 1e-2, "autocast": "bf16"})
    assert report.ok, report.problems


def _finished_run(tmp_path):
    """A results directory holding one finished cell, to prove bad input never touches it."""
    out = tmp_path / "runs"
    config = tmp_path / "toy.yaml"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [toy]\nout: {out}\nprogress: false\n"
                      "plugins: [ray_plugins]\ntrain_params: {steps: 1, batch_size: 2}\n")
    assert main(["run", "--config", str(config)]) == 0
    return out, {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case, message", [
    ("missing_gsm_folder", "is not a folder"),
    ("empty_gsm_file", "is empty"),
    ("missing_gsm_file", "is missing"),
    ("missing_detoxify_checkpoint", "does not exist"),
    ("unknown_reporter", "did you mean 'markdown'"),
    ("negative_steps", "steps must be >= 0"),
    ("zero_rank", "lora_rank must be >= 1"),
    ("bad_lr", "lr must be > 0"),
])
def test_bad_input_is_one_line_exit_2_and_existing_results_survive(case, message, tmp_path, capsys):
    out, before = _finished_run(tmp_path)
    data = tmp_path / "gsm"
    data.mkdir()
    (data / "train.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    if case == "empty_gsm_file":
        (data / "test.jsonl").write_text("")
    elif case == "missing_gsm_file":
        pass
    else:
        (data / "test.jsonl").write_text('{"question": "2+2?", "answer": "#### 4"}\n')
    config = tmp_path / "bad.yaml"
    body = {
        "missing_gsm_folder": f"tasks: [coding]\ntask_params: {{coding: {{gsm8k_path: {tmp_path / 'nope'}}}}}\n",
        "empty_gsm_file": f"tasks: [coding]\ntask_params: {{coding: {{gsm8k_path: {data}}}}}\n",
        "missing_gsm_file": f"tasks: [coding]\ntask_params: {{coding: {{gsm8k_path: {data}}}}}\n",
        "missing_detoxify_checkpoint": "tasks: [toxicity]\ntask_params: {toxicity: {scorer: detoxify, "
                                       f"detoxify_checkpoint: {tmp_path / 'ckpt.pt'}}}}}\n",
        "negative_steps": "tasks: [toy]\nplugins: [ray_plugins]\ntrain_params: {steps: -2}\n",
        "zero_rank": "tasks: [toy]\nplugins: [ray_plugins]\ntrain_params: {lora_rank: 0}\n",
        "bad_lr": "tasks: [toy]\nplugins: [ray_plugins]\nmethod_params: {ga: {lr: 0}}\n",
        "unknown_reporter": "",
    }[case]
    capsys.readouterr()
    if case == "unknown_reporter":
        code = main(["report", "--runs", str(out), "--out", str(tmp_path / "lb"), "--reporters", "markdwn"])
    else:
        config.write_text(f"model: tiny-random-llama\nmethods: [ga]\nout: {out}\nprogress: false\n{body}")
        code = main(["run", "--config", str(config)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith("error: ") and message in err[-1]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", ["run", "report"])
def test_out_pointing_at_a_file_is_one_line_exit_2(command, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    argv = (["run", "--model", "tiny-random-llama", "--out", str(target)] if command == "run"
            else ["report", "--runs", str(_finished_run(tmp_path)[0]), "--out", str(target)])
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file, not a directory" in err
    assert target.read_text() == "keep me"


def test_a_missing_optional_dependency_is_a_one_line_error_naming_the_install():
    import pytest

    from bench.errors import UserError, require_package

    assert require_package("json", "unused").dumps([1]) == "[1]"
    with pytest.raises(UserError, match=r"^pip install 'unlearn-bench\[x\]' \(ub_no_such_package is not installed\)$"):
        require_package("ub_no_such_package", "pip install 'unlearn-bench[x]'")


def test_task_method_params_override_method_params_on_their_task_only():
    from bench.engine.config import load_config, plan_cells
    from bench.plugins import registry

    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toxicity", "ner"],
                                "seeds": [0], "method_params": {"ga": {"lr": 1e-4}},
                                "task_method_params": {"ner": {"ga": {"lr": 3e-4, "steps": 2}}}})
    cells = {c.task: c for c in plan_cells(config, registry())}
    assert cells["ner"].method_params["lr"] == 3e-4 and cells["ner"].method_params["steps"] == 2
    assert cells["toxicity"].method_params["lr"] == 1e-4
    typo = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"],
                              "task_method_params": {"ner": {"gaa": {"lr": 1e-4}}}})
    with pytest.raises(UserError, match="did you mean 'ga'"):
        plan_cells(typo, registry())
