"""The ``prompt`` baseline: the unchanged model behind a system prompt that asks it to refuse the forget
target — every prompt of the evaluation and of the attacks carries it, the base model's do not."""

from __future__ import annotations

import json

from bench.data.text import chat_messages, deployed_behind, raw_context, render_prompt
from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.plugins import registry


def test_deployed_system_prompt_reaches_chat_raw_and_few_shot_prompts(tiny):
    from tasks.coding.gsm import PROTOCOLS, arithmetic_problems

    _, tokenizer = tiny
    plain_chat, plain_raw = render_prompt(tokenizer, "Name a city."), render_prompt(tokenizer, "Once upon", chat=False)
    with deployed_behind("Never name people."):
        chat, raw = render_prompt(tokenizer, "Name a city."), render_prompt(tokenizer, "Once upon", chat=False)
        assert chat_messages([{"role": "user", "content": "x"}])[0] == {"role": "system",
                                                                        "content": "Never name people."}
        problems = arithmetic_problems(2, 0)
        few_shot = PROTOCOLS["gsm8k"].prompts(tokenizer, problems[:1], problems * 3)[0]
        cot = PROTOCOLS["gsm8k_cot_llama"].prompts(tokenizer, problems[:1], [])[0]
    assert "Never name people." in chat and "Never name people." not in plain_chat
    assert raw.endswith("Never name people.\n\nOnce upon") and plain_raw.endswith("Once upon")
    assert few_shot.startswith("Never name people.") and "Never name people." in cot
    assert raw_context("x") == "x"  # outside the block: nothing added


def test_prompt_baseline_changes_no_weight_and_is_evaluated_and_attacked_behind_its_prompt(tmp_path, monkeypatch):
    from bench.data import text
    from bench.lm.models import state_dict_hash

    seen: list[str | None] = []
    real = text.render_prompt

    def spy(tokenizer, prompt, chat=True):
        seen.append(text._SYSTEM_PROMPT.get())
        return real(tokenizer, prompt, chat)

    monkeypatch.setattr(text, "render_prompt", spy)
    hashes = []
    from methods.prompt import PromptBaseline

    original = PromptBaseline.unlearn

    def recording(self, ctx):
        before = state_dict_hash(ctx.model)
        model = original(self, ctx)
        hashes.append((before, state_dict_hash(model)))
        return model

    monkeypatch.setattr(PromptBaseline, "unlearn", recording)
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["prompt"], "tasks": ["toy"],
                                "seeds": [0], "out": str(tmp_path), "progress": False, "plugins": ["ray_plugins"],
                                "attacks": [{"prompt": {"templates": ["paraphrase"]}}]})
    summary = run_matrix(config, registry(config.plugins))
    assert list(summary.ran.values()) == ["done"]
    assert hashes and hashes[0][0] == hashes[0][1]  # no weight changed
    (cell,) = tmp_path.glob("cells/*/result.json")
    result = json.loads(cell.read_text())
    prompt = result["extras"]["system_prompt"]
    assert "secret facts" in prompt  # the toy task's refusal target
    # the evaluation moved although the weights did not: the prompts differ
    assert result["metrics"]["forget_loglik"]["delta"] != 0
    assert prompt in seen and None in seen  # base model and controls: no prompt; the baseline's: its prompt
    (attack,) = (cell.parent / "attacks").glob("*.json")
    assert json.loads(attack.read_text())["status"] == "done"


def test_the_unseeded_prompt_baseline_runs_one_seed_because_every_seed_gives_the_same_numbers(tmp_path):
    """``seeded = False`` is a claim, checked here: the baseline's evaluation on a sampled task (toxicity's
    continuations) is the same for seeds 0 and 1; so a 3-seed run plans it once, beside 3 seeds of GA."""
    from bench.engine.config import plan_cells

    small = {"n_eval": 5, "n_forget": 8, "n_retain": 8, "n_text_eval": 2, "samples": 2, "max_new_tokens": 6}
    metrics = []
    for seed in (0, 1):
        config = load_config(None, {"model": "tiny-random-llama", "methods": ["prompt"], "tasks": ["toxicity"],
                                    "seeds": [seed], "out": str(tmp_path / f"s{seed}"), "progress": False,
                                    "task_params": {"toxicity": small}})
        assert list(run_matrix(config, registry()).ran.values()) == ["done"]
        (cell,) = (tmp_path / f"s{seed}").glob("cells/*/result.json")
        metrics.append({k: m["per_item"] for k, m in json.loads(cell.read_text())["metrics"].items()})
    assert metrics[0] == metrics[1]
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga", "prompt"], "tasks": ["toxicity"],
                                "seeds": [0, 1, 2], "out": str(tmp_path / "plan"), "progress": False})
    seeds = sorted((c.method, c.seed) for c in plan_cells(config, registry()))
    assert seeds == [("ga", 0), ("ga", 1), ("ga", 2), ("prompt", 0)]
