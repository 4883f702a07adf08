"""``unlearn-bench plan``: predicted peak memory against measured peaks; the training knobs it plans for
(gradient checkpointing, fp32 master weights)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from bench.lm.memory_plan import GenerationShape, ModelShape, TrainingShape, estimate
from bench.perf.memory_measure import measure_generation, measure_train_step

CASES = [
    TrainingShape("full", batch_size=4, max_length=64),
    TrainingShape("lora", batch_size=4, max_length=64),
    TrainingShape("full", batch_size=4, max_length=64, graphs=2, needs_reference=True),
    TrainingShape("full", batch_size=4, max_length=64, gradient_checkpointing=True),
    TrainingShape("lora", batch_size=4, max_length=64, gradient_checkpointing=True),
]


@pytest.mark.parametrize("train", CASES, ids=lambda t: f"{t.finetune}-g{t.graphs}-ref{t.needs_reference}-"
                                                    f"ckpt{t.gradient_checkpointing}")
def test_plan_is_within_20_percent_of_the_measured_peak_on_the_tiny_model(tiny, train):
    model, _ = tiny
    shape = ModelShape.from_config(model.config)
    measured = measure_train_step(lambda: copy.deepcopy(model), train)
    predicted = estimate(shape, train, GenerationShape(), "float32", resident_copies=1).train_peak
    assert 0.8 <= predicted / measured <= 1.2, (predicted, measured)


def test_plan_generation_peak_on_the_tiny_model(tiny):
    model, _ = tiny
    gen = GenerationShape(batch_size=8, prompt_tokens=96, new_tokens=16)
    measured = measure_generation(copy.deepcopy(model), gen)
    predicted = estimate(ModelShape.from_config(model.config), TrainingShape(), gen, "float32", 1).eval_peak
    assert 0.8 <= predicted / measured <= 1.2, (predicted, measured)


def test_half_precision_plan_on_a_small_bf16_model():
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=4096, hidden_size=128, intermediate_size=320, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    shape = ModelShape.from_config(config)
    for train in (TrainingShape("full", batch_size=2, max_length=64, master_weights=True),
                  TrainingShape("lora", batch_size=2, max_length=64)):
        measured = measure_train_step(lambda: AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16), train)
        predicted = estimate(shape, train, GenerationShape(), "bfloat16", resident_copies=1).train_peak
        assert 0.8 <= predicted / measured <= 1.2, (train, predicted, measured)


def test_estimate_components_follow_the_setup():
    shape = ModelShape(n_params=1000, n_layers=2, hidden=8, intermediate=16, kv_width=4, vocab=10,
                       linears={"q_proj": (8, 8), "v_proj": (8, 4)})
    full = estimate(shape, TrainingShape("full"), GenerationShape(), "bfloat16", resident_copies=2)
    assert full.weights == 2 * 1000 * 2 and full.gradients == 1000 * 2 and full.optimizer == 2 * 1000 * 2
    master = estimate(shape, TrainingShape("full", master_weights=True), GenerationShape(), "bfloat16", 1)
    assert master.optimizer == 1000 * (4 + 8)  # fp32 masters and fp32 moments
    assert estimate(shape, TrainingShape("full", master_weights=True), GenerationShape(), "float32", 1).optimizer \
        == 1000 * 8  # masters only matter for half precision
    lora = estimate(shape, TrainingShape("lora", lora_rank=2), GenerationShape(), "bfloat16", 1)
    assert lora.gradients == 2 * 2 * ((8 + 8) + (8 + 4)) * 4 and lora.reference == 0
    ref = estimate(shape, TrainingShape("full", needs_reference=True), GenerationShape(), "bfloat16", 1)
    assert ref.reference == 1000 * 2
    offloaded = estimate(shape, TrainingShape("full", needs_reference=True), GenerationShape(), "bfloat16", 1,
                         reference_on_device=False, eval_reference=True)
    assert offloaded.reference == 0 and offloaded.eval_peak == 2 * 1000 * 2 + offloaded.kv_cache
    untrained = estimate(shape, TrainingShape("none"), GenerationShape(), "bfloat16", 1)
    assert untrained.train_peak == untrained.weights == 1000 * 2 and untrained.kv_cache == full.kv_cache
    ckpt = estimate(shape, TrainingShape("full", max_length=512, gradient_checkpointing=True), GenerationShape(),
                    "bfloat16", 1)
    assert ckpt.activations < estimate(shape, TrainingShape("full", max_length=512), GenerationShape(),
                                       "bfloat16", 1).activations


def test_master_weights_keep_updates_that_bf16_rounds_away(tiny):
    """AdamW at lr 1e-5 on bf16 weights: in place, most updates are below half an ulp and vanish; with fp32
    masters they accumulate and more of the bf16 weights move."""
    from bench.api import TrainParams
    from bench.lm.training import MasterWeightsAdamW, make_optimizer

    changed = {}
    for master in ("off", "fp32"):
        model = copy.deepcopy(tiny[0]).to(torch.bfloat16).requires_grad_(True)
        before = [p.detach().clone() for p in model.parameters()]
        optimizer = make_optimizer(model, TrainParams(lr=1e-5, finetune="full", master_weights=master))
        assert isinstance(optimizer, MasterWeightsAdamW) == (master == "fp32")
        ids = torch.randint(3, 500, (2, 16))
        for _ in range(10):
            optimizer.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
        moved = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
        changed[master] = moved / sum(b.numel() for b in before)
    assert changed["fp32"] > 2 * changed["off"]


def test_gradient_checkpointing_gives_the_same_gradients(tiny):
    from bench.api import TrainParams
    from bench.lm.training import is_checkpointing, with_adapter

    grads = []
    for ckpt in (False, True):
        model = with_adapter(copy.deepcopy(tiny[0]), TrainParams(finetune="full", gradient_checkpointing=ckpt), 0)
        model.train()
        torch.manual_seed(0)
        ids = torch.randint(3, 500, (2, 16))
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert is_checkpointing(model) == ckpt
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_plan_command_warns_for_cells_that_do_not_fit(tmp_path):
    """An 8B config (shape only: no weights anywhere) with full fine-tuning on this machine's memory."""
    from bench.perf.memory import CONFIGS

    model_dir = tmp_path / "llama-8b-config"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                       **CONFIGS["Llama-3.1-8B"]}))
    args = [sys.executable, "-m", "bench.cli", "plan", "--model", str(model_dir), "--methods", "ga", "npo",
            "--tasks", "toxicity", "--device", "cpu", "--dtype", "bfloat16"]
    config = tmp_path / "run.yaml"
    config.write_text("method_params: {ga: {finetune: full}, npo: {finetune: lora}}\n")
    done = subprocess.run(args + ["--config", str(config), "--json"], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["n_params"] == 8030261248
    by_method = {c["method"]: c for c in plan["cells"]}
    assert by_method["ga"]["memory"]["gradients"] == 8030261248 * 2
    assert by_method["ga"]["memory"]["peak"] > 60 * 2 ** 30  # weights, gradients and AdamW: 16 + 16 + 32 GB
    assert by_method["npo"]["memory"]["reference"] == 0  # LoRA: the reference is the adapter switched off
    fits = {c["method"]: c["fits"] for c in plan["cells"]}
    limit = 0.9 * plan["capacity_bytes"]
    assert fits == {m: c["memory"]["peak"] <= limit for m, c in by_method.items()}
    text = subprocess.run(args + ["--config", str(config)], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}).stdout
    assert ("warning: ga × toxicity needs" in text) == (not fits["ga"])


@pytest.mark.e2e
def test_plan_is_within_20_percent_on_smollm2():
    from bench.lm.models import load_model

    base = load_model("smollm2-135m-instruct", "cpu", "float32")
    shape = ModelShape.from_config(base.model.config)
    for train in (TrainingShape("lora", batch_size=2, max_length=128),
                  TrainingShape("full", batch_size=2, max_length=128)):
        measured = measure_train_step(lambda: copy.deepcopy(base.model), train)
        predicted = estimate(shape, train, GenerationShape(), "float32", resident_copies=1).train_peak
        assert 0.8 <= predicted / measured <= 1.2, (train, predicted, measured)


def test_a_full_finetuning_reference_kept_off_the_device_gives_the_same_logits(tiny):
    """On an accelerator π_ref stays in host memory and streams per module (``Reference``): the same logits
    as the model at setup, none of its weights on the device, and unchanged while the model trains."""
    import torch

    from bench.data.text import Batch
    from bench.lm.training import Reference

    for dtype in (torch.float32, torch.bfloat16):
        model = copy.deepcopy(tiny[0]).to(dtype)
        reference = Reference(model, offload=True)
        ids = torch.randint(3, model.config.vocab_size, (2, 12))
        batch = Batch(ids, torch.ones_like(ids), ids)
        with torch.no_grad():
            before = model(input_ids=ids).logits
            for p in model.parameters():
                p.add_(0.1)
        assert torch.equal(reference.logits(batch), before), dtype
        assert all(p.device.type == "meta" for p in reference._copy.parameters())
