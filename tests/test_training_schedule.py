"""Training budget and learning-rate schedule: epochs counted as TOFU counts them, warmup and linear decay as
transformers' schedules, Adam betas reaching the optimiser."""

import pytest
import torch

from bench import TrainParams
from bench.lm.training import lr_factor, make_optimizer, train


def test_step_budget_in_epochs_is_tofus_max_steps_and_warmup_is_one_epoch():
    # TOFU forget.py: steps_per_epoch = N // (bs*accum), max_steps = int(epochs*N) // (bs*accum)
    p = TrainParams(epochs=5, batch_size=4, grad_accum=4, warmup_epochs=1)
    assert p.step_budget(40) == (12, 2)  # 200 // 16 = 12 steps; 40 // 16 = 2 steps per epoch
    assert p.step_budget(10) == (3, 1)  # fewer examples than one step: warmup max(1, 0) = 1
    assert TrainParams(steps=7).step_budget(1000) == (7, 0)  # no epochs: steps, no warmup
    assert TrainParams(epochs=0.01, batch_size=8).step_budget(8) == (1, 0)  # at least one step


def test_lr_factor_matches_hand_computed_linear_and_constant_schedules():
    linear = lr_factor("linear", total_steps=10, warmup_steps=2)
    assert [round(linear(k), 4) for k in range(11)] == [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    constant = lr_factor("constant", total_steps=10, warmup_steps=4)
    assert [constant(k) for k in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert lr_factor("constant", 5, 0)(0) == 1.0  # the default leaves the learning rate alone


def test_train_follows_the_schedule_and_the_betas(tiny):
    import copy

    model = copy.deepcopy(tiny[0]).float()
    model.requires_grad_(False)
    layer = model.model.layers[0].mlp.down_proj
    layer.weight.requires_grad_(True)
    params = TrainParams(lr=1e-3, steps=4, lr_schedule="linear", adam_betas=[0.8, 0.95], finetune="full")
    optimizer = make_optimizer(model, params, total_steps=4, warmup_steps=1)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    rows = []

    class Ctx:
        progress = False

        def log(self, **row):
            rows.append(row)

    def step_loss():
        return layer.weight.pow(2).sum(), {}

    train(model, params, step_loss, Ctx(), steps=4, optimizer=optimizer)
    # step k uses base lr × factor(k-1): warmup 0, then (4-1)/3, (4-2)/3, (4-3)/3
    assert [round(r["lr"], 7) for r in rows] == [0.0, 1e-3, round(2e-3 / 3, 7), round(1e-3 / 3, 7)]


@pytest.mark.parametrize("bad, message", [({"epochs": 0}, "epochs must be > 0"),
                                          ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
                                          ({"adam_betas": [0.9]}, "adam_betas must be two numbers")])
def test_bad_schedule_parameters_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainParams(**bad).validate()


def test_default_schedule_changes_nothing(tiny):
    """Constant, no warmup: the optimiser's learning rate stays the configured one at every step."""
    model = torch.nn.Linear(3, 1)
    optimizer = make_optimizer(model, TrainParams(lr=0.01, steps=3))
    for _ in range(3):
        assert optimizer.param_groups[0]["lr"] == 0.01
        optimizer.step()
        optimizer.lr_schedule.step()


@pytest.mark.parametrize("flags, requested, expect_bf16", [({"avx2"}, "auto", False), ({"avx512_bf16"}, "auto", True),
                                                           ({"avx2"}, "bf16", True), ({"avx512_bf16"}, "off", False)])
def test_training_autocast_auto_is_bf16_only_where_native(monkeypatch, flags, requested, expect_bf16):
    """``autocast: auto`` trains under bf16 autocast where the CPU has native bf16, in fp32 where it would be
    emulated; "bf16" and "off" are honoured as asked."""
    from bench.lm import precision

    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    weight = torch.nn.Parameter(torch.ones(3, 3))
    seen = []

    class Ctx:
        progress = False

        def log(self, **row):
            pass

    def step_loss():
        seen.append(torch.is_autocast_enabled("cpu"))
        return (weight @ torch.ones(3)).pow(2).sum(), {}

    train(torch.nn.Linear(1, 1), TrainParams(lr=1e-3, steps=2, autocast=requested), step_loss, Ctx(), steps=2,
          optimizer=torch.optim.SGD([weight], lr=1e-3))
    assert seen == [expect_bf16] * 2


def test_flat_warmup_is_at_least_two_steps_as_its_official_code():
    """UCSC-REAL/FLAT unlearn.py: warmup_steps=max(2, steps_per_epoch); TOFU's forget.py: max(1, ·)."""
    from methods.flat import FLATParams

    recipe = {"epochs": 5, "batch_size": 4, "grad_accum": 4, "warmup_epochs": 1}
    assert TrainParams(**recipe).step_budget(20) == (6, 1)  # 20 // 16 = 1 step per epoch, 100 // 16 = 6 steps
    assert FLATParams(**recipe).step_budget(20) == (6, 2)
    assert FLATParams(**recipe).step_budget(40) == (12, 2) == TrainParams(**recipe).step_budget(40)
    assert FLATParams(**recipe).step_budget(80) == (25, 5)  # one epoch when that is longer
    assert FLATParams(**{**recipe, "warmup_epochs": 0}).step_budget(20) == (6, 0)  # no warmup asked: none
    assert FLATParams(**{**recipe, "epochs": 1}).step_budget(16) == (1, 1)  # never past the last step
    # the schedule it gives: transformers' linear schedule with 2 warmup steps over 6
    factor = lr_factor("linear", *FLATParams(**recipe).step_budget(20))
    assert [factor(k) for k in range(6)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]


#: Gradient clipping each method's official code applies (0: none): TOFU's forget.py and the NPO and FLAT code
#: built on it train under DeepSpeed with no gradient_clipping (bench.api.TOFU_MAX_GRAD_NORM); R&R has no code
#: (the Trainer's 1.0, our choice). ICU's default is set in methods/icu.py.
CLIPPING = {"ga": 0.0, "graddiff": 0.0, "npo": 0.0, "flat": 0.0, "rnr": 1.0}


@pytest.mark.parametrize("method, expected", sorted(CLIPPING.items()))
def test_each_method_clips_as_its_official_code_by_default(method, expected):
    from bench.plugins import registry

    params = registry().get("method", method).cls.Params()
    assert params.max_grad_norm == expected
    assert TrainParams().max_grad_norm == 1.0  # attacks and teaching: the Trainer's default


def test_clipping_is_overridden_by_train_params_and_method_params():
    from bench.engine.config import load_config, plan_cells
    from bench.plugins import registry

    config = load_config(None, {"methods": ["ga", "npo", "flat"], "tasks": ["toxicity"],
                                "train_params": {"max_grad_norm": 0.5},
                                "method_params": {"npo": {"max_grad_norm": 2.0}}})
    planned = {c.method: c.method_params["max_grad_norm"] for c in plan_cells(config, registry())}
    assert planned == {"ga": 0.5, "npo": 2.0, "flat": 0.5}
    defaults = {c.method: c.method_params["max_grad_norm"]
                for c in plan_cells(load_config(None, {"methods": ["ga", "rnr"], "tasks": ["toxicity"]}), registry())}
    assert defaults == {"ga": 0.0, "rnr": 1.0}  # recorded with the cell, so the board shows it
    with pytest.raises(ValueError, match="max_grad_norm must be >= 0"):
        TrainParams(max_grad_norm=-1.0).validate()


@pytest.mark.parametrize("max_grad_norm, clipped", [(0.0, False), (1.0, True)])
def test_train_clips_only_when_max_grad_norm_is_positive(monkeypatch, max_grad_norm, clipped):
    calls = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, norm: calls.append(norm) or real(params, norm))
    model = torch.nn.Linear(3, 1)

    class Ctx:
        progress = False

        def log(self, **row):
            pass

    params = TrainParams(lr=0.01, steps=2, finetune="full", max_grad_norm=max_grad_norm)
    train(model, params, lambda: (100 * model.weight.sum(), {}), Ctx())
    assert calls == ([1.0, 1.0] if clipped else [])
