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
