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


class Random(Method):
    name = "random"

    def unlearn(self, ctx):
        import torch

        with torch.no_grad():
            for p in ctx.model.parameters():
                p.add_(torch.randn(p.shape, generator=None) * 1e-3)  # unseeded on purpose
        ctx.log(step=1)
        return ctx.model


def test_conformance_catches_noop_and_nondeterminism():
    noop = check_method(DoesNothing)
    assert "weights did not change" in noop.problems
    assert any("no trajectory" in p for p in noop.problems)
    rnd = check_method(Random)
    assert any("not deterministic" in p for p in rnd.problems) or rnd.ok is False
