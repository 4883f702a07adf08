"""bench.lm.precision: bf16 autocast for evaluation and probes — how far it may move metrics, when "auto"
turns it on, and that a run records it and keeps such cells apart from fp32 ones."""

import json

import pytest
import torch
from test_runner import _config, _registry

from bench.api import Example
from bench.engine.runner import run_matrix
from bench.lm import precision
from bench.lm.likelihood import answer_logliks, choose
from bench.lm.models import load_model

#: How far bf16 autocast may move a mean per-token log-likelihood, relative to its fp32 value (bf16 keeps
#: 8 mantissa bits: ~0.4 % per rounding; errors partly cancel over a sequence).
LOGLIK_RELATIVE_BOUND = 0.02


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-random-llama", "cpu", "float32")


def test_bf16_evaluation_moves_likelihoods_within_the_bound(loaded):
    model, tok = loaded.model, loaded.tokenizer
    examples = [Example(f"Question {i}: say something about {w}.", f"{w} is a word with {len(w)} letters.")
                for i, w in enumerate(["apple", "river", "mountain", "x", "a longer phrase here"])]
    fp32 = answer_logliks(model, tok, examples, batch_size=2)
    with precision.eval_precision("bf16", "cpu"):
        bf16 = answer_logliks(model, tok, examples, batch_size=2)
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")
    assert bf16 != fp32  # it did run in bf16
    for a, b in zip(fp32, bf16):
        assert abs(b - a) <= LOGLIK_RELATIVE_BOUND * abs(a)
    with precision.eval_precision("off", "cpu"):
        assert answer_logliks(model, tok, examples, batch_size=2) == fp32


def test_auto_is_bf16_only_where_it_is_native(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert precision.resolve_eval_autocast("auto", "cpu") == "off"
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert precision.resolve_eval_autocast("auto", "cpu") == "bf16"
    assert precision.resolve_eval_autocast("bf16", "cpu") == "bf16"  # asked for: emulated, but honoured
    assert precision.resolve_eval_autocast("auto", "mps") == "off"
    with pytest.raises(ValueError, match="off, bf16 or auto"):
        precision.resolve_eval_autocast("fp8", "cpu")


def test_a_bf16_run_records_it_and_gets_its_own_cells(tmp_path, loaded):
    fp32 = _config(tmp_path / "fp32")
    bf16 = _config(tmp_path / "bf16")
    bf16.eval_autocast = "bf16"
    run_matrix(fp32, _registry())
    run_matrix(bf16, _registry())
    results = {}
    for name in ("fp32", "bf16"):
        (cell,) = (tmp_path / name / "cells").iterdir()
        results[name] = (cell.name, json.loads((cell / "result.json").read_text()))
    assert results["fp32"][0] != results["bf16"][0]
    assert results["fp32"][1]["provenance"]["eval_autocast"] == "off"
    assert results["bf16"][1]["provenance"]["eval_autocast"] == "bf16"
    assert results["fp32"][1]["provenance"]["train_autocast"] == "off"
    a, b = results["fp32"][1]["metrics"], results["bf16"][1]["metrics"]
    assert a.keys() == b.keys()
    for name in a:
        assert b[name]["value"] == pytest.approx(a[name]["value"], rel=LOGLIK_RELATIVE_BOUND, abs=1e-3)


def test_shared_prompt_choice_under_bf16_picks_as_fp32_does_on_clear_margins(loaded):
    model, tok = loaded.model, loaded.tokenizer
    prompts = ["The capital of France is", "One two three"]
    options = [[" Paris", " a b c d e f"], [" four", " elephant trunk"]]
    fp32 = choose(model, tok, prompts, options)
    with precision.eval_precision("bf16", "cpu"):
        bf16 = choose(model, tok, prompts, options)
    for a, b in zip(fp32, bf16):
        if abs(a[0] - a[1]) > 0.1:
            assert (a[0] > a[1]) == (b[0] > b[1])
        assert b == pytest.approx(a, rel=LOGLIK_RELATIVE_BOUND)


def test_evaluation_precision_holds_inside_a_methods_autocast():
    """A method that trains under bf16 autocast (``autocast: bf16|auto``) still probes in the evaluation's
    precision: "off" switches an enclosing autocast off for its block, and back on after."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with precision.eval_precision("off", "cpu"):
            assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cpu")
        with precision.eval_precision("bf16", "cpu"):
            assert torch.is_autocast_enabled("cpu")


def test_a_weight_changed_inside_a_bf16_region_is_seen_by_the_next_forward():
    """The bug autocast's weight-cast cache would cause: a parameter updated in place inside a region (a training
    step inside a method's bf16 unlearning, a merge, an attack) scored with its stale bf16 copy."""
    layer = torch.nn.Linear(16, 16)
    x = torch.randn(2, 16)
    with precision.eval_precision("bf16", "cpu"):
        before = layer(x)
        with torch.no_grad():
            layer.weight.add_(1.0)
        with precision.eval_precision("bf16", "cpu"):  # nested, as a method's probe is
            after = layer(x)
    assert not torch.allclose(before.float(), after.float())


def test_a_bf16_trained_and_scored_cell_moves_as_the_fp32_one_does(tmp_path, loaded):
    """GA under bf16 autocast for training and evaluation changes the model as fp32 does: its forget metric
    leaves the base model's by about the fp32 change (never the base's value: the unlearned weights are seen)."""
    deltas = {}
    for name, mode in (("fp32", "off"), ("bf16", "bf16")):
        config = _config(tmp_path / name)
        config.eval_autocast = mode
        config.method_params["ga"] = {**config.method_params["ga"], "autocast": mode}
        run_matrix(config, _registry())
        (cell,) = (tmp_path / name / "cells").iterdir()
        result = json.loads((cell / "result.json").read_text())
        assert result["provenance"]["train_autocast"] == mode
        deltas[name] = result["metrics"]["forget_loglik"]["delta"]
    assert deltas["fp32"] < -0.05  # GA lowered the forget likelihood
    assert deltas["bf16"] == pytest.approx(deltas["fp32"], rel=0.2)


def test_linear_weights_cast_once_give_the_bit_identical_autocast_forward(loaded):
    """Inside autocast, ``linear_weights_in_autocast_dtype`` (generation and scoring cast each Linear weight
    once per call instead of once per forward pass) computes exactly what autocast's per-call cast computes;
    the tied embedding keeps its fp32 rows inside the block; the original Parameters come back afterwards;
    outside autocast nothing is touched."""
    model = loaded.model
    ids = torch.tensor([[5, 17, 99, 3, 42, 7]])
    params = {name: p for name, p in model.named_parameters()}
    assert model.lm_head.weight is model.model.embed_tokens.weight  # the tie under test
    with torch.no_grad(), precision.eval_precision("bf16", "cpu"):
        expected = model(input_ids=ids).logits
        with precision.linear_weights_in_autocast_dtype(model):
            assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
            assert model.lm_head.weight.dtype == torch.bfloat16
            assert model.model.embed_tokens.weight.dtype == torch.float32
            got = model(input_ids=ids).logits
    assert torch.equal(got, expected)
    assert {name: p for name, p in model.named_parameters()} == params  # the same objects, fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with precision.linear_weights_in_autocast_dtype(model):  # no autocast: a no-op
        assert model.lm_head.weight.dtype == torch.float32


def test_generation_and_scoring_under_bf16_are_unchanged_by_the_single_cast(loaded, monkeypatch):
    """The cast-once block is an optimisation only: generate and answer_logliks give the same outputs with it
    replaced by a no-op."""
    import contextlib

    from bench.lm import generation, likelihood

    model, tok = loaded.model, loaded.tokenizer
    prompts = ["Hello there, how", "One two three"]
    examples = [Example("Say a word.", "apple"), Example("Count.", "one two three four")]

    def outputs():
        with precision.eval_precision("bf16", "cpu"):
            return (generation.generate(model, tok, prompts, max_new_tokens=6),
                    answer_logliks(model, tok, examples))

    cast_once = outputs()
    no_op = lambda model: contextlib.nullcontext()  # noqa: E731
    monkeypatch.setattr(generation, "linear_weights_in_autocast_dtype", no_op)
    monkeypatch.setattr(likelihood, "linear_weights_in_autocast_dtype", no_op)
    assert outputs() == cast_once


def test_an_unmerged_lora_is_scored_under_bf16_as_its_merged_weights_are(loaded):
    """Under bf16, an unmerged LoRA (a relearn attack's adapter, a method's adapter probed mid-training) is
    scored exactly as the same adapter merged into the fp32 weights and then cast (what the evaluation of a
    merged method sees): the cast-once block folds it (unfolded, the adapter's small output is added to a
    layer output already rounded to bf16 and partly rounds away: 0.07 instead of 0.24 nats/token for a
    3-step relearn on the 135M model, bench.lm.precision). Afterwards the adapter is live again and every
    Parameter is the original object."""
    import copy

    from peft import LoraConfig, get_peft_model

    base = copy.deepcopy(loaded.model)
    tok = loaded.tokenizer
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                target_modules=["q_proj", "v_proj", "up_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft_model.eval()
    merged = copy.deepcopy(peft_model).merge_and_unload().eval()
    examples = [Example("Who guards the vault?", "Captain Mirelle of the north gate."),
                Example("def f(x):", "    return x * 2", chat=False)]
    params = {name: p for name, p in peft_model.named_parameters()}
    with precision.eval_precision("bf16", "cpu"):
        folded = answer_logliks(peft_model, tok, examples)
        reference = answer_logliks(merged, tok, examples)
        base_bf16 = answer_logliks(base, tok, examples)
    assert folded == pytest.approx(reference, abs=1e-6)
    fp32 = answer_logliks(peft_model, tok, examples)
    assert [a - b for a, b in zip(folded, base_bf16)] != [0.0, 0.0]
    assert folded == pytest.approx(fp32, rel=LOGLIK_RELATIVE_BOUND)
    assert {name: p for name, p in peft_model.named_parameters()} == params
    assert all(p.dtype == torch.float32 for p in peft_model.parameters())
    assert not any(layer.disable_adapters for layer in peft_model.modules() if hasattr(layer, "lora_A"))
    assert answer_logliks(peft_model, tok, examples) == fp32  # the adapter branch is live again


def test_native_bf16_env_overrides_the_cpu_flags(monkeypatch):
    """UNLEARN_BENCH_NATIVE_BF16 makes "auto" behave as on a machine of the other kind (the fp32 demo timing
    on a bf16 machine); any other value is refused, not ignored."""
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "0")
    assert precision.resolve_autocast("auto", "cpu") == "off"
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "1")
    assert precision.resolve_autocast("auto", "cpu") == "bf16"
    assert precision.resolve_autocast("off", "cpu") == "off"  # only "auto" reads it
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        precision.native_bf16("cpu")
