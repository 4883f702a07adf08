"""Our GSM8K protocols against lm-evaluation-harness's own tasks on the same model and the same 32 real
GSM8K items: prompts, raw outputs, per-item extractions (strict-match, flexible-extract) and accuracy.

Skipped when lm_eval is not installed or the real GSM8K is not at ../shared/data/gsm8k."""

from __future__ import annotations

from pathlib import Path

import pytest

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
N_ITEMS = 32


def _gsm8k_folder() -> Path:
    if not (GSM8K / "test.jsonl").is_file():
        pytest.skip("real GSM8K not present at ../shared/data/gsm8k")
    return GSM8K


def compare_with_lm_eval(model, tokenizer, protocol_name: str, max_new_tokens: int, n: int = N_ITEMS) -> dict:
    """Run our protocol and lm-eval's task on the same items; return what differs and both accuracies."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM

    from bench.eval.lm_eval_bridge import TaskCatalog, UtilityTask
    from bench.lm.generation import generate, truncate_at_stops
    from tasks.coding import gsm

    folder = _gsm8k_folder()
    test, train, _ = gsm.load_gsm("local", str(folder), n, 0, 0)
    protocol = gsm.PROTOCOLS[protocol_name]
    prompts = protocol.prompts(tokenizer, test, train)
    ours = [r[0] for r in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=16,
                                   stop=list(protocol.stops))]
    scored = gsm.score_protocol(protocol, ours, test)

    task = UtilityTask(protocol_name, data_files={"train": str(folder / "train.jsonl"),
                                                  "test": str(folder / "test.jsonl")})
    catalog = TaskCatalog([task])
    try:
        out = lm_eval.simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16), tasks=[task.run_name],
            task_manager=catalog.manager, limit=n, log_samples=True, bootstrap_iters=0,
            gen_kwargs=f"max_gen_toks={max_new_tokens}", apply_chat_template=protocol.chat,
            fewshot_as_multiturn=protocol.chat, verbosity="ERROR")
    finally:
        catalog.close()
    by_filter: dict[str, dict[int, dict]] = {}
    for s in out["samples"][task.run_name]:
        by_filter.setdefault(s["filter"], {})[s["doc_id"]] = s
    strict, flexible = by_filter["strict-match"], by_filter["flexible-extract"]
    theirs = [truncate_at_stops(strict[i]["resps"][0][0], list(protocol.stops)) for i in range(n)]
    on_theirs = gsm.score_protocol(protocol, theirs, test)
    return {
        "prompt_diff": [i for i in range(n) if strict[i]["arguments"][0][0] != prompts[i]],
        "output_diff": [i for i in range(n) if theirs[i].strip() != ours[i].strip()],
        # our extraction on lm-eval's own outputs against lm-eval's filtered answers and per-item scores
        "strict_diff": [i for i in range(n) if on_theirs["strict_answers"][i] != strict[i]["filtered_resps"][0]],
        "flexible_diff": [i for i in range(n)
                          if on_theirs["flexible_answers"][i] != flexible[i]["filtered_resps"][0]],
        "score_diff": [i for i in range(n) if on_theirs["strict"][i] != strict[i]["exact_match"]
                       or on_theirs["flexible"][i] != flexible[i]["exact_match"]],
        "ours": {"strict": sum(scored["strict"]) / n, "flexible": sum(scored["flexible"]) / n},
        "lm_eval": {"strict": out["results"][task.run_name]["exact_match,strict-match"],
                    "flexible": out["results"][task.run_name]["exact_match,flexible-extract"]},
        "valid_flexible": sum(a != "[invalid]" for a in on_theirs["flexible_answers"]),
    }


@pytest.mark.parametrize("protocol", ["gsm8k", "gsm8k_cot_llama"])
def test_gsm8k_protocols_equal_lm_eval_on_the_tiny_model(tiny, protocol):
    import copy

    model, tokenizer = tiny
    found = compare_with_lm_eval(copy.deepcopy(model), tokenizer, protocol, max_new_tokens=8)
    assert found["prompt_diff"] == [] and found["output_diff"] == []
    assert found["strict_diff"] == [] and found["flexible_diff"] == [] and found["score_diff"] == []
    assert found["ours"] == pytest.approx(found["lm_eval"])


@pytest.mark.e2e
def test_gsm8k_equals_lm_eval_on_smollm2():
    """The figures in the closing note of issue 15 come from this comparison (5-shot gsm8k, 32 items)."""
    from bench.lm.models import load_model

    loaded = load_model("smollm2-135m-instruct", "cpu", "float32")
    found = compare_with_lm_eval(loaded.model, loaded.tokenizer, "gsm8k", max_new_tokens=96)
    print("lm-eval agreement on 32 GSM8K items:", found)
    assert found["valid_flexible"] >= N_ITEMS // 2  # real answers were extracted, not only "[invalid]"
    assert found["prompt_diff"] == [] and found["output_diff"] == []
    assert found["strict_diff"] == [] and found["flexible_diff"] == [] and found["score_diff"] == []
    assert found["ours"] == pytest.approx(found["lm_eval"])
