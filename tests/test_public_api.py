"""The plugin surface: one import (``bench``) with an explicit ``__all__``, lazy so that importing it does
not import torch; the base classes' contracts; ``check_task``."""

import subprocess
import sys

import pytest

import bench
from bench.api import Evaluation
from bench.testing import ToyTask, check_task


def test_every_public_name_resolves_and_all_is_explicit():
    assert bench.__all__ == sorted(bench.__all__) and len(set(bench.__all__)) == len(bench.__all__)
    for name in bench.__all__:
        assert getattr(bench, name) is not None, name
    assert {"Method", "LossMethod", "Task", "Reporter", "Example", "TaskData", "Metric", "Evaluation", "TrainParams",
            "hookimpl", "mean_metric", "run_programs", "check_method", "check_task"} <= set(bench.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bench.nope  # noqa: B018


def test_import_bench_does_not_import_torch():
    code = "import sys, bench; bench.Method; bench.hookimpl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_loss_method_is_a_method_and_needs_no_mixin_order():
    from bench import LossMethod, Method

    class Mine(LossMethod):
        name = "mine"

    assert issubclass(Mine, Method) and Mine.unlearn is LossMethod.unlearn


def test_context_has_one_source_of_forget_and_retain():
    from bench.testing import make_context, tiny_model

    model, tokenizer = tiny_model()
    ctx = make_context(model, tokenizer)
    assert ctx.forget is ctx.data.forget and ctx.retain is ctx.data.retain
    ctx.data.forget = ctx.forget[:1]  # e.g. the engine replacing it with Reveal's set
    assert ctx.forget == ctx.data.forget
    ctx.log_probes({"forget/x": -1.0}, step=3)
    assert ctx.log.rows[-1] == {"step": 3, "probe/forget/x": -1.0}


def test_check_task_passes_the_toy_task():
    report = check_task(ToyTask)
    assert report.ok, report.problems


def test_check_task_catches_broken_contracts():
    class BadProbe(ToyTask):
        name = "bad_probe"

        def probe(self, model, tokenizer, data):
            return {"forget_loglik": -1.0}  # no group prefix

        def relevance(self, responses):
            return [2.0 for _ in responses]

    problems = check_task(BadProbe).problems
    assert any("probe key 'forget_loglik'" in p for p in problems)
    assert any("returns no forget/ value" in p for p in problems)
    assert any("relevance()" in p for p in problems)

    class NoReference(ToyTask):
        name = "no_reference"

        def evaluate(self, model, tokenizer, data, progress=True):
            return Evaluation([])

    assert any("reference=None" in p for p in check_task(NoReference).problems)

    class OffProbe(ToyTask):
        name = "off_probe"

        def probe(self, model, tokenizer, data):
            return {key: value + 0.5 for key, value in super().probe(model, tokenizer, data).items()}

    assert any("a probe must be its metric's value" in p for p in check_task(OffProbe).problems)

    class SeedDependentEval(ToyTask):
        name = "seed_eval"

        def load(self, seed):
            data = super().load(seed)
            data.eval = {**data.eval, "forget": data.eval["forget"][seed:]}
            return data

    assert any("eval sets differ between seeds" in p for p in check_task(SeedDependentEval).problems)


def test_the_docs_third_party_method_is_short_imports_only_bench_and_conforms(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    from bench import check_method

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    snippet = re.search(r"A complete third-party method.*?```python\n(.*?)```", doc, re.S).group(1)
    code_lines = [line for line in snippet.splitlines() if line.strip()]
    assert len(code_lines) <= 20
    imported = set(re.findall(r"^(?:from|import) (\w+)", snippet, re.M))
    assert imported == {"dataclasses", "torch", "bench"}
    (tmp_path / "docs_method.py").write_text(snippet)
    monkeypatch.syspath_prepend(str(tmp_path))
    import docs_method

    report = check_method(docs_method.CappedGA, {"steps": 2, "batch_size": 2, "lr": 1e-2})
    assert report.ok, report.problems
