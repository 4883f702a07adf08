"""SimNPO and RMU: the losses on hand-computed tensors, RMU's layer and trainable-parameter selection on the tiny
model, the frozen model's activations, short training runs that reduce each loss, conformance, presets and
registration."""

import math

import pytest
import torch

from bench import Batch, check_method, make_batch
from bench.errors import UserError
from bench.lm.training import with_adapter
from bench.params import build_params
from bench.testing import make_context, tiny_model
from methods.rmu import (
    RMU,
    activation_mse,
    control_vector,
    layer_output,
    plan,
    positions_mask,
    scaled_layer,
)
from methods.simnpo import SimNPO, mean_answer_nll, simnpo_loss

LN3 = math.log(3.0)


# ---- SimNPO -------------------------------------------------------------------------------------------------

def test_simnpo_loss_by_hand():
    # beta 2, gamma 0.5, mean NLLs 1 and 3: (2/2) * mean(log(1 + e^-1), log(1 + e^-5))
    #   log(1 + e^-1) = 0.3132617, log(1 + e^-5) = 0.0067153, mean 0.1599885
    nll = torch.tensor([1.0, 3.0])
    assert simnpo_loss(nll, beta=2.0, gamma=0.5).item() == pytest.approx(0.1599885, abs=1e-6)
    # beta 1, gamma 0, NLL 0: 2 * log 2
    assert simnpo_loss(torch.tensor([0.0]), beta=1.0).item() == pytest.approx(1.3862944, abs=1e-6)
    # gamma sits inside the beta-scaled term, as the authors' code has it: sigma(beta * (nll - gamma)), so
    # beta 2, gamma 1, NLL 1 is log 2 * (2/2), not -log sigma(2*1 - 1) = 0.3132617
    assert simnpo_loss(torch.tensor([1.0]), beta=2.0, gamma=1.0).item() == pytest.approx(0.6931472, abs=1e-6)


def test_simnpo_gradient_is_the_adaptive_weight():
    # d/d nll of (2/beta) softplus(-beta (nll - gamma)) = -2 sigma(-beta (nll - gamma)); nll 1, beta 2,
    # gamma 0.5: -2 sigma(-1) = -2 * 0.2689414 = -0.5378828
    nll = torch.tensor([1.0], requires_grad=True)
    simnpo_loss(nll, beta=2.0, gamma=0.5).backward()
    assert nll.grad.item() == pytest.approx(-0.5378828, abs=1e-6)


def test_mean_answer_nll_normalises_by_answer_length():
    # vocab 2; logits [ln 3, 0] give p(0) = 3/4, p(1) = 1/4; [0, 0] give 1/2 each. Logits at t predict label t+1.
    logits = torch.tensor([[[LN3, 0.0], [0.0, 0.0], [0.0, 0.0]],
                           [[0.0, 0.0], [LN3, 0.0], [0.0, 0.0]]])
    labels = torch.tensor([[-100, 0, 0],       # two answer tokens: -ln(3/4) = 0.2876821, -ln(1/2) = 0.6931472
                           [-100, -100, 1]])   # one answer token: -ln(1/4) = 1.3862944
    nll = mean_answer_nll(logits, labels)
    assert nll.tolist() == pytest.approx([(0.2876821 + 0.6931472) / 2, 1.3862944], abs=1e-6)


def test_simnpo_loss_method_combines_forget_and_retain_terms():
    model, tok = tiny_model()
    ctx = make_context(model, tok)
    forget, retain = make_batch(tok, ctx.forget[:2], 64), make_batch(tok, ctx.retain[:2], 64)
    method = SimNPO(build_params(SimNPO.Params, {"beta": 0.5, "gamma": 3.0, "forget_weight": 0.25,
                                                 "retain_weight": 2.0}, "simnpo"))
    with torch.no_grad():
        loss, logs = method.loss(model, forget, retain)
        out_f = model(input_ids=forget.input_ids, attention_mask=forget.attention_mask).logits
        out_r = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
    from bench import cross_entropy

    expected = 0.25 * simnpo_loss(mean_answer_nll(out_f, forget.labels), 0.5, 3.0) + 2.0 * cross_entropy(
        out_r, retain.labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(logs) == {"simnpo", "forget_mean_nll", "retain_ce"}
    assert not SimNPO(build_params(SimNPO.Params, {"retain_weight": 0.0}, "simnpo")).uses_retain


def test_simnpo_training_reduces_its_forget_loss():
    # The tiny random model already gives the toy answers a mean NLL ~11, where beta 2.5 saturates; a margin
    # gamma above that keeps the term live.
    model, tok = tiny_model()
    ctx = make_context(model, tok)
    params = build_params(SimNPO.Params, {"steps": 8, "batch_size": 6, "lr": 3e-3, "beta": 0.5, "gamma": 14.0,
                                          "forget_weight": 1.0, "retain_weight": 0.0}, "simnpo")
    SimNPO(params).unlearn(ctx)
    rows = [r for r in ctx.log.rows if "simnpo" in r]
    assert rows[-1]["simnpo"] < rows[0]["simnpo"]
    assert rows[-1]["forget_mean_nll"] > rows[0]["forget_mean_nll"]


# ---- RMU ----------------------------------------------------------------------------------------------------

def test_scaled_layer_keeps_the_official_relative_depth():
    # official: layer 7 of Zephyr-7B's 32; round(7 L / 32) half up
    assert [scaled_layer(n) for n in (32, 30, 28, 16, 40, 2, 1)] == [7, 7, 6, 4, 9, 0, 0]


def test_control_vector_is_a_positive_direction_of_norm_c():
    u = control_vector(64, 6.5, seed=3)
    assert u.norm().item() == pytest.approx(6.5, rel=1e-6) and bool((u >= 0).all())
    assert torch.equal(u, control_vector(64, 6.5, seed=3)) and not torch.equal(u, control_vector(64, 6.5, seed=4))


def test_activation_mse_by_hand():
    acts = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target = torch.tensor([1.0, 0.0])
    # position 0: ((1-1)^2 + (2-0)^2) / 2 = 2; position 1: ((3-1)^2 + (4-0)^2) / 2 = 10
    assert activation_mse(acts, target, torch.tensor([[True, False]])).item() == pytest.approx(2.0)
    assert activation_mse(acts, target, torch.tensor([[True, True]])).item() == pytest.approx(6.0)
    assert activation_mse(acts, target, torch.tensor([[False, False]])).item() == 0.0
    # a [B, T, D] target, positions pooled over the batch: sequence 0 counts one position (2), sequence 1 three
    # positions of 4 each: (2 + 12) / 4 = 3.5 (a per-sequence mean first would give 3)
    acts = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])
    acts = torch.cat([acts, torch.tensor([[[9.0, 9.0]], [[2.0, 2.0]]])], dim=1)  # [2, 3, 2]
    target = torch.tensor([[[1.0, 0.0]] * 3, [[0.0, 0.0]] * 3])
    mask = torch.tensor([[True, False, False], [True, True, True]])
    assert activation_mse(acts, target, mask).item() == pytest.approx(3.5)


def test_positions_mask():
    batch = Batch(torch.zeros(1, 4, dtype=torch.long), torch.tensor([[0, 1, 1, 1]]), torch.tensor([[-100, -100, 5, 6]]))
    assert positions_mask(batch, "answer").tolist() == [[False, False, True, True]]
    assert positions_mask(batch, "sequence").tolist() == [[False, True, True, True]]


def test_layer_output_is_the_layers_hidden_state_and_leaves_the_model_intact():
    model, tok = tiny_model()
    batch = make_batch(tok, make_context(model, tok).forget[:3], 64)
    with torch.no_grad():
        full = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        hooks = dict(model.model.layers[0]._forward_hooks)  # transformers' own output-capturing hooks
        acts = layer_output(model, model.model.layers[0], batch)
        again = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.allclose(acts, full.hidden_states[1], atol=1e-6)  # hidden_states[l + 1]: layer l's output
    assert torch.equal(again, full.logits)  # the aborted pass left no hook or state behind
    assert dict(model.model.layers[0]._forward_hooks) == hooks


def _rmu(**overrides):
    return RMU(build_params(RMU.Params, {"steps": 2, "batch_size": 2, "lr": 1e-3, **overrides}, "rmu"))


def test_rmu_plan_on_the_tiny_model():
    model, _ = tiny_model()
    default = plan(model, _rmu().params)
    assert (default.n_layers, default.layer, default.updated_layers) == (2, 0, [0])
    assert default.param_names == ["model.layers.0.mlp.down_proj.weight"]
    two = plan(model, _rmu(layer=1, update_layers=3).params)
    assert two.updated_layers == [0, 1] and two.layer_module is model.model.layers[1]
    assert two.param_names == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    assert two.lora_targets == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    with pytest.raises(UserError, match="layer 2 does not exist"):
        plan(model, _rmu(layer=2).params)
    with pytest.raises(UserError, match="has no parameter 'mlp.nope.weight'"):
        plan(model, _rmu(update_params=["mlp.nope.weight"]).params)
    with pytest.raises(UserError, match="needs linear modules"):
        plan(model, _rmu(finetune="lora", update_params=["input_layernorm.weight"]).params)


def _changed(base, out):
    before, after = base.state_dict(), out.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_rmu_full_trains_exactly_the_official_matrices():
    base, tok = tiny_model()
    model, _ = tiny_model()
    method = _rmu(layer=1, update_layers=2)
    ctx = make_context(model, tok)
    method.plan = plan(model, method.params)
    wrapped = with_adapter(model, method.params, 0)
    method.setup(wrapped, ctx)
    assert {n for n, p in wrapped.named_parameters() if p.requires_grad} == {
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}
    out = _rmu(layer=1, update_layers=2).unlearn(make_context(tiny_model()[0], tok))
    assert _changed(base, out) == {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}


def test_rmu_lora_adapts_only_the_official_modules():
    base, tok = tiny_model()
    model, _ = tiny_model()
    method = _rmu(finetune="lora", layer=1, update_layers=2)
    method.plan = plan(model, method.params)
    import dataclasses

    wrapped = with_adapter(model, dataclasses.replace(method.params, lora_targets=method.plan.lora_targets), 0)
    trained = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n and ".mlp.down_proj." in n for n in trained)
    assert {n.split(".layers.")[1].split(".")[0] for n in trained} == {"0", "1"}
    ctx = make_context(tiny_model()[0], tok)
    out = _rmu(finetune="lora", layer=1, update_layers=2).unlearn(ctx)
    assert _changed(base, out) == {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}
    assert ctx.extras["rmu"]["trained"] == ["model.layers.0.mlp.down_proj (LoRA r8)",
                                            "model.layers.1.mlp.down_proj (LoRA r8)"]


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_rmu_frozen_activations_are_the_original_models(finetune):
    base, tok = tiny_model()
    model, _ = tiny_model()
    method = _rmu(finetune=finetune, layer=1, update_layers=2)
    ctx = make_context(model, tok)
    method.plan = plan(model, method.params)
    import dataclasses

    p = method.params if finetune == "full" else dataclasses.replace(method.params,
                                                                      lora_targets=method.plan.lora_targets)
    wrapped = with_adapter(model, p, 0)
    method.setup(wrapped, ctx)
    with torch.no_grad():  # move the trained weights (or the adapter) away from the original
        for param in (q for q in wrapped.parameters() if q.requires_grad):
            param.add_(0.05)
    retain = make_batch(tok, ctx.retain[:2], 64)
    with torch.no_grad(), method._frozen(wrapped) as originals:
        frozen = layer_output(wrapped, method.plan.layer_module, retain, params=originals)
    with torch.no_grad():
        original = layer_output(base, base.model.layers[1], retain)
        moved = layer_output(wrapped, method.plan.layer_module, retain)
    assert torch.allclose(frozen, original, atol=1e-6) and not torch.allclose(moved, original, atol=1e-4)


def test_rmu_loss_is_forget_plus_alpha_retain_and_c_follows_the_activation_norm():
    model, tok = tiny_model()
    ctx = make_context(model, tok)
    method = _rmu(alpha=7.0, steering_ratio=3.0)
    method.plan = plan(model, method.params)
    wrapped = with_adapter(model, method.params, 0)
    method.setup(wrapped, ctx)
    forget = make_batch(tok, ctx.forget, 64)
    with torch.no_grad():
        hs = wrapped(input_ids=forget.input_ids, attention_mask=forget.attention_mask,
                     output_hidden_states=True).hidden_states[1]
    norm = hs.norm(dim=-1)[forget.labels != -100].mean().item()
    assert ctx.extras["rmu"]["activation_norm"] == pytest.approx(norm, rel=1e-5)
    assert method.control.norm().item() == pytest.approx(3.0 * norm, rel=1e-5)
    with torch.no_grad():
        for param in (q for q in wrapped.parameters() if q.requires_grad):
            param.add_(0.05)
    f_batch, r_batch = make_batch(tok, ctx.forget[:2], 64), make_batch(tok, ctx.retain[:2], 64)
    base, _ = tiny_model()
    with torch.no_grad():
        loss, logs = method.loss(wrapped, f_batch, r_batch)
        f = activation_mse(layer_output(wrapped, wrapped.model.layers[0], f_batch), method.control,
                           f_batch.labels != -100)
        r = activation_mse(layer_output(wrapped, wrapped.model.layers[0], r_batch),
                           layer_output(base, base.model.layers[0], r_batch), r_batch.labels != -100)
    assert logs["forget_mse"] == pytest.approx(f.item(), rel=1e-5) and logs["retain_mse"] == pytest.approx(r.item())
    assert loss.item() == pytest.approx(f.item() + 7.0 * r.item(), rel=1e-5) and r.item() > 0
    fixed = _rmu(steering_coeff=6.5)
    fixed.plan = plan(model, fixed.params)
    fixed.setup(wrapped, make_context(model, tok))
    assert fixed.control.norm().item() == pytest.approx(6.5, rel=1e-6)


def test_rmu_training_reduces_its_forget_loss():
    model, tok = tiny_model()
    ctx = make_context(model, tok)
    method = _rmu(steps=10, batch_size=6, lr=1e-2, alpha=1.0)
    out = method.unlearn(ctx)
    batch = make_batch(tok, ctx.forget, 64)
    base, _ = tiny_model()
    with torch.no_grad():
        before = activation_mse(layer_output(base, base.model.layers[0], batch), method.control,
                                batch.labels != -100)
        after = activation_mse(layer_output(out, out.model.layers[0], batch), method.control, batch.labels != -100)
    assert after.item() < 0.9 * before.item()
    rows = [r for r in ctx.log.rows if "forget_mse" in r]
    assert rows[-1]["forget_mse"] < rows[0]["forget_mse"]


# ---- both ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, params", [
    (SimNPO, {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    (SimNPO, {"steps": 2, "batch_size": 2, "lr": 1e-3, "retain_weight": 0.0, "gamma": 14.0}),
    (RMU, {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    (RMU, {"steps": 2, "batch_size": 2, "lr": 1e-3, "finetune": "lora", "positions": "sequence"}),
])
def test_conform(cls, params):
    report = check_method(cls, params)
    assert report.ok, report.problems


@pytest.mark.parametrize("cls", [SimNPO, RMU])
def test_paper_presets_are_valid_parameters(cls):
    params = build_params(cls.Params, cls.paper_preset, cls.name)
    for key, value in cls.paper_preset.items():
        assert getattr(params, key) == value
    for key in cls.tune_space:
        assert hasattr(params, key)


def test_builtin_methods_are_registered():
    """Nine unlearning methods and two baselines: idk (the relearning attack's positive control) and retain_ft (the
    catastrophic-forgetting control)."""
    from bench.plugins import load_registry
    from methods import BUILTIN_METHODS

    builtin = {"flat", "ga", "graddiff", "icu", "idk", "npo", "prompt", "retain_ft", "rmu", "rnr", "simnpo"}
    assert set(BUILTIN_METHODS) == builtin
    reg = load_registry()
    assert builtin <= set(reg.names("method"))
    assert reg.get("method", "simnpo").cls is SimNPO and reg.get("method", "rmu").cls is RMU
