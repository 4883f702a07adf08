"""bench.testing.check_method: passes for GA, catches methods that break the contract."""

from bench.api import Method
from bench.testing import check_method
from methods.ga import GradientAscent


def test_ga_conforms():
    report = check_method(GradientAscent, {"steps": 2, "batch_size": 2, "lr": 1e-3})
    assert report.ok, report.problems
    assert report.max_weight_change > 0 and report.trajectory


class DoesNothing(Method):
    name = "noop"

    def unlearn(self, ctx):
        return ctx.model


class DependsOnCallCount(Method):
    """Ignores the seed: each call perturbs the weights differently."""

    name = "call_count"
    calls = 0

    def unlearn(self, ctx):
        import torch

        type(self).calls += 1
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.add_(1e-3 * type(self).calls)
        ctx.log(step=1)
        return ctx.model


def test_conformance_catches_noop_and_nondeterminism():
    noop = check_method(DoesNothing)
    assert "weights did not change" in noop.problems
    assert any("no trajectory" in p for p in noop.problems)
    unseeded = check_method(DependsOnCallCount)
    assert unseeded.problems == ["not deterministic: two runs with the same seed gave different weights"]


import pytest  # noqa: E402


@pytest.mark.parametrize("name, params", [
    ("graddiff", {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    ("npo", {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    ("npo", {"steps": 2, "batch_size": 2, "lr": 1e-3, "retain_weight": 1.0}),
    ("npo", {"steps": 1, "batch_size": 2, "lr": 1e-4, "finetune": "full"}),
    ("flat", {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    ("idk", {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    ("retain_ft", {"steps": 2, "batch_size": 2, "lr": 1e-3}),
    ("flat", {"steps": 2, "batch_size": 2, "lr": 1e-3, "divergence": "js", "average": "padded"}),
    # a random tiny model reproduces no sample, so the official check before training would leave nothing to
    # train on: thresholds that keep every sample exercise the update
    ("icu", {"steps": 3, "batch_size": 2, "lr": 1e-3, "max_epochs": 2, "max_new_tokens": 4,
             "embedding": "model", "bleu_threshold": 0.0, "similarity": "off"}),
])
def test_builtin_methods_conform(name, params):
    from bench.plugins import registry

    report = check_method(registry().get("method", name).cls, params)
    assert report.ok, report.problems
