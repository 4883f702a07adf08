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
