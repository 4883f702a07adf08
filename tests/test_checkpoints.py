"""``save_model: merged``: an unlearned model kept in Hugging Face format, with a model card, that reloads and
re-evaluates to identical metrics."""

from __future__ import annotations

import json

from bench.cli import main


def test_saved_checkpoint_reloads_and_reevaluates_identically(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.params import build_params
    from bench.plugins import registry

    out = tmp_path / "runs"
    config = tmp_path / "toy.yaml"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [toy]\nout: {out}\nprogress: false\n"
                      "plugins: [ray_plugins]\ntrain_params: {steps: 2, batch_size: 2, lr: 0.01}\n"
                      "save_model: merged\n")
    assert main(["run", "--config", str(config)]) == 0
    [result_path] = list(out.glob("cells/*/result.json"))
    result = json.loads(result_path.read_text())
    assert result["metrics"]["forget_loglik"]["delta"] != 0  # the saved model is the unlearned one
    folder = result_path.parent / "model"
    card = (folder / "README.md").read_text()
    assert "ga on toy" in card and "forget_loglik" in card and "Δ" in card
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    task_cls = registry(["ray_plugins"]).get("task", "toy").cls
    task = task_cls(build_params(task_cls.Params, result["spec"]["task_params"], "task_params.toy"))
    evaluation = task.evaluate(model, tokenizer, task.load(result["spec"]["seed"]), progress=False)
    for metric in evaluation.metrics:
        assert metric.value == result["metrics"][metric.name]["value"], metric.name
        assert metric.per_item == result["metrics"][metric.name]["per_item"]


def _run(tmp_path, name, save_model, extra=""):
    out = tmp_path / name
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [toy]\nout: {out}\nprogress: false\n"
                      f"plugins: [ray_plugins]\ntrain_params: {{steps: 2, batch_size: 2, lr: 0.01}}\n"
                      f"save_model: {save_model}\n{extra}")
    assert main(["run", "--config", str(config)]) == 0
    (result_path,) = out.glob("cells/*/result.json")
    return out, result_path.parent, json.loads(result_path.read_text())


def _eval(tmp_path, out, *checkpoints):
    config = tmp_path / "eval.yaml"
    config.write_text("plugins: [ray_plugins]\nprogress: false\n")
    return main(["eval", "--config", str(config), "--base", "tiny-random-llama", "--tasks", "toy", "--out",
                 str(out), "--checkpoints", *map(str, checkpoints)])


def test_eval_scores_saved_checkpoints_beside_the_methods_that_made_them(tmp_path):
    """A GA model saved by one run (merged, and as a LoRA adapter by another) is scored by ``eval`` against
    the base: identical metrics to the run's own, and rows named after the checkpoints on one leaderboard."""
    from bench.report import load_table

    merged_run, merged_cell, merged = _run(tmp_path, "merged", "merged")
    adapter_run, adapter_cell, adapter = _run(tmp_path, "adapter", "adapter")
    assert (adapter_cell / "adapter" / "adapter_config.json").exists() and "ga on toy" in (
        adapter_cell / "adapter" / "README.md").read_text()
    assert not (adapter_cell / "model").exists() and not list(adapter_cell.glob(".*.tmp"))
    scored = tmp_path / "scored"
    assert _eval(tmp_path, scored, merged_cell / "model", f"ga-adapter={adapter_cell / 'adapter'}") == 0
    rows = {json.loads(p.read_text())["spec"]["method_params"]["label"]: json.loads(p.read_text())
            for p in scored.glob("cells/*/result.json")}
    assert set(rows) == {merged_cell.name, "ga-adapter"}
    for row, original in ((rows[merged_cell.name], merged), (rows["ga-adapter"], adapter)):
        assert row["status"] == "done"
        for name, metric in original["metrics"].items():
            assert abs(row["metrics"][name]["value"] - metric["value"]) < 1e-5, name
    assert _eval(tmp_path, scored, merged_cell / "model", f"ga-adapter={adapter_cell / 'adapter'}") == 0  # resumes
    table = load_table([merged_run, scored])
    assert {table.label(c) for c in table.cells} == {"ga", merged_cell.name, "ga-adapter"}
    assert main(["report", "--runs", str(merged_run), str(scored), "--out", str(tmp_path / "lb"),
                 "--reporters", "markdown"]) == 0
    board = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert f"| {merged_cell.name} |" in board and "| ga |" in board and "| ga-adapter |" in board


def test_incompatible_checkpoints_and_adapter_saves_are_one_line_exit_2(tmp_path, capsys, tiny):
    import copy

    from transformers import LlamaForCausalLM

    model, tokenizer = tiny
    wider = copy.deepcopy(model.config)
    wider.num_hidden_layers = 3
    LlamaForCausalLM(wider).save_pretrained(tmp_path / "deeper")
    tokenizer.save_pretrained(tmp_path / "deeper")
    model.save_pretrained(tmp_path / "other_tok")
    other = copy.deepcopy(tokenizer)
    other.add_tokens(["<unlearn-bench-extra>"])
    other.save_pretrained(tmp_path / "other_tok")
    from peft import LoraConfig

    LoraConfig(target_modules=["c_attn"], task_type="CAUSAL_LM").save_pretrained(tmp_path / "gpt2_adapter")
    cases = [(tmp_path / "deeper", "num_hidden_layers"), (tmp_path / "other_tok", "different tokenizer"),
             (tmp_path / "missing", "no readable config"), (tmp_path / "gpt2_adapter", "modules ['c_attn']")]
    for path, message in cases:
        assert _eval(tmp_path, tmp_path / "never", path) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "never").exists()
    for extra, message in (("method_params: {ga: {finetune: full}}\n", "finetune: full"),):
        config = tmp_path / "bad.yaml"
        config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [toy]\nout: {tmp_path / 'bad'}\n"
                          f"plugins: [ray_plugins]\nsave_model: adapter\n{extra}")
        assert main(["run", "--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    config.write_text(f"model: tiny-random-llama\nmethods: [rnr]\ntasks: [toy]\nout: {tmp_path / 'bad'}\n"
                      "plugins: [ray_plugins]\nsave_model: adapter\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "'rnr' does not end with a single LoRA adapter" in capsys.readouterr().err
