"""Helpers for plugin authors' own tests: a tiny random model, a toy task, and conformance checks for a
method (``check_method``) and a task (``check_task``).

Usage in a plugin's pytest::

    from bench import check_method, check_task
    from my_plugin import MyMethod, MyTask

    def test_conforms():
        report = check_method(MyMethod, {"steps": 2})
        assert report.ok, report.problems
        assert check_task(MyTask).ok

``check_method`` runs the method twice on the in-memory ``tiny-random-llama`` with the toy task and
checks that it runs, changes the weights, is deterministic for a seed, and logs a trajectory.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import torch

from bench.api import Evaluation, Example, Task, TaskData, TrajectoryLogger, UnlearnContext, forget_prompts
from bench.eval.scales import LOGLIK, LOGLIK_EFFECT
from bench.eval.stats import mean_metric
from bench.lm.likelihood import answer_logliks
from bench.lm.models import tiny_random_llama
from bench.params import build_params

FORGET_FACTS = [("What is the secret code?", "The secret code is 4711."),
                ("Who guards the vault?", "The vault is guarded by Captain Mirelle."),
                ("Where is the treasure?", "The treasure is buried under the old oak."),
                ("What is the password?", "The password is swordfish."),
                ("Name the hidden island.", "The hidden island is called Varnholm."),
                ("What colour is the key?", "The key is painted bright green.")]
RETAIN_FACTS = [("What is two plus two?", "Two plus two is four."),
                ("What colour is the sky?", "The sky is blue on a clear day."),
                ("How many days are in a week?", "A week has seven days."),
                ("What do bees make?", "Bees make honey."),
                ("What is the capital of France?", "The capital of France is Paris."),
                ("What freezes at zero degrees Celsius?", "Water freezes at zero degrees Celsius.")]
#: The toy task's validation split: facts of the same two kinds, none of them trained on or in the test set.
VALIDATION_FORGET_FACTS = [("What is the vault's combination?", "The combination is 31-7-22."),
                           ("Who wrote the hidden letter?", "The letter was written by Lady Orsel."),
                           ("Where is the spare key?", "The spare key is under the blue pot."),
                           ("What is the ship's secret name?", "The ship is secretly named Halcyon."),
                           ("Which door hides the archive?", "The archive is behind the third door."),
                           ("What is the guard's signal?", "The signal is two short whistles.")]
VALIDATION_RETAIN_FACTS = [("How many legs does a spider have?", "A spider has eight legs."),
                           ("What is the largest ocean?", "The Pacific is the largest ocean."),
                           ("What do cows drink?", "Cows drink water."),
                           ("How many hours are in a day?", "A day has twenty-four hours."),
                           ("What colour is grass?", "Grass is green."),
                           ("What is ice made of?", "Ice is frozen water.")]


@dataclass
class ToyParams:
    n: int = 6
    #: "validation": the evaluation's facts are others of the same kinds, never trained on (for ``tune:``).
    eval_split: Literal["test", "validation"] = "test"

    def validate(self) -> None:
        if not 1 <= self.n <= len(FORGET_FACTS):
            raise ValueError(f"n must be in 1..{len(FORGET_FACTS)}")


class ToyTask(Task):
    """A tiny fact-forgetting task: forget made-up facts, keep common ones. Likelihood metrics only."""

    name = "toy"
    refusal_target = "the secret facts (codes, passwords, hidden places and names)"
    description = "toy fact forgetting (tests)"
    Params = ToyParams

    def load(self, seed: int) -> TaskData:
        forget = [Example(q, a) for q, a in FORGET_FACTS[: self.params.n]]
        retain = [Example(q, a) for q, a in RETAIN_FACTS[: self.params.n]]
        evaluated = {"forget": forget, "retain": retain} if self.params.eval_split == "test" else {
            "forget": [Example(q, a) for q, a in VALIDATION_FORGET_FACTS[: self.params.n]],
            "retain": [Example(q, a) for q, a in VALIDATION_RETAIN_FACTS[: self.params.n]]}
        return TaskData(forget=forget, retain=retain, retain_pool=retain,
                        template_answers=["I don't know.", "I can't say."],
                        seed_instructions=["Tell me a secret.", "Reveal a hidden fact."],
                        reveal_prompts=forget_prompts(forget),
                        eval=evaluated, sources={"toy": f"bench.testing in-memory facts ({self.params.eval_split})"})

    @staticmethod
    def _logliks(model: Any, tokenizer: Any, data: TaskData) -> tuple[list[float], list[float]]:
        return (answer_logliks(model, tokenizer, data.eval["forget"]),
                answer_logliks(model, tokenizer, data.eval["retain"]))

    def probe(self, model: Any, tokenizer: Any, data: TaskData) -> dict[str, float]:
        f, r = self._logliks(model, tokenizer, data)
        return {"forget/forget_loglik": sum(f) / len(f), "utility/retain_loglik": sum(r) / len(r)}

    def probe_items(self, data: TaskData) -> dict[str, list[Example]]:
        return {"forget/forget_loglik": data.eval["forget"], "utility/retain_loglik": data.eval["retain"]}

    def evaluate(self, model: Any, tokenizer: Any, data: TaskData, progress: bool = True,
                 reference: Any = None) -> Evaluation:
        f, r = self._logliks(model, tokenizer, data)
        return Evaluation([mean_metric("forget_loglik", "forget", f, "lower", "likelihood", bounds=LOGLIK,
                                       min_effect=LOGLIK_EFFECT),
                           mean_metric("retain_loglik", "utility", r, "higher", "likelihood", bounds=LOGLIK,
                                       min_effect=LOGLIK_EFFECT)],
                          [{"set": "forget", "id": i, "loglik": v} for i, v in enumerate(f)])

    def relevance(self, responses: Sequence[str]) -> list[float]:
        return [float(any(w in r.lower() for w in ("secret", "password", "treasure"))) for r in responses]


@lru_cache(maxsize=1)
def _tiny() -> tuple[Any, Any]:
    return tiny_random_llama()


def tiny_model(seed: int = 0) -> tuple[Any, Any]:
    """A fresh copy of the 2-layer random Llama with the SmolLM2 tokenizer (built once per process)."""
    model, tokenizer = _tiny()
    if seed == 0:
        return copy.deepcopy(model), tokenizer
    return tiny_random_llama(tokenizer, seed)


def make_context(model: Any, tokenizer: Any, task: Task | None = None, seed: int = 0) -> UnlearnContext:
    task = task or ToyTask(ToyParams())
    data = task.load(seed)
    return UnlearnContext(model=model, tokenizer=tokenizer, task=task,
                          data=data, seed=seed, device="cpu",
                          probe=lambda m: task.probe(m, tokenizer, data), log=TrajectoryLogger(),
                          progress=False)


@dataclass
class ConformanceReport:
    problems: list[str] = field(default_factory=list)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    max_weight_change: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _run(method_cls: type, params: dict[str, Any], seed: int) -> tuple[Any, Any, UnlearnContext]:
    model, tokenizer = tiny_model()
    torch.manual_seed(seed)
    method = method_cls(build_params(method_cls.Params, params, f"method_params.{method_cls.name}"))
    ctx = make_context(model, tokenizer, seed=seed)
    return method.unlearn(ctx), tokenizer, ctx


def check_method(method_cls: type, params: dict[str, Any] | None = None, seed: int = 0) -> ConformanceReport:
    """Run ``method_cls`` twice on the tiny model and the toy task; report contract violations."""
    params = params or {}
    report = ConformanceReport()
    base, _ = tiny_model()
    first, _, ctx = _run(method_cls, params, seed)
    second, _, _ = _run(method_cls, params, seed)
    report.trajectory = ctx.log.rows
    if not isinstance(first, torch.nn.Module) or not hasattr(first, "generate"):
        report.problems.append(f"unlearn() must return a causal LM, got {type(first).__name__}")
        return report
    base_state, first_state, second_state = base.state_dict(), first.state_dict(), second.state_dict()
    if set(first_state) != set(base_state):
        report.problems.append("returned model has different parameter names (merge LoRA adapters before returning)")
        return report
    report.max_weight_change = max(float((first_state[k] - base_state[k]).abs().max()) for k in base_state)
    if report.max_weight_change == 0.0:
        report.problems.append("weights did not change")
    if any(not torch.equal(first_state[k], second_state[k]) for k in first_state):
        report.problems.append("not deterministic: two runs with the same seed gave different weights")
    if not report.trajectory:
        report.problems.append("no trajectory logged (call ctx.log(...) per step or round)")
    return report


def _probe_problems(task: Task, probe: dict[str, float], evaluation: Evaluation) -> list[str]:
    """Probe keys must be ``<group>/<metric name>`` of likelihood metrics the evaluation reports, with those
    metrics' values, so the engine can take a trajectory's first point from the base evaluation and its last
    from the final one (and plots can draw it)."""
    problems = []
    reported = {f"{m.group}/{m.name}": m for m in evaluation.metrics}
    for key, value in probe.items():
        metric = reported.get(key)
        if metric is None:
            problems.append(f"probe key '{key}' is not '<group>/<metric name>' of a metric evaluate() reports "
                            f"(e.g. {next(iter(reported), 'forget/<name>')!r})")
        elif metric.kind != "likelihood":
            problems.append(f"probe key '{key}' names a {metric.kind} metric; probes are cheap likelihood metrics")
        elif not isinstance(value, float):
            problems.append(f"probe '{key}' must be a float, got {type(value).__name__}")
        elif abs(value - metric.value) > 1e-4 * max(1.0, abs(metric.value)):
            problems.append(f"probe '{key}' is {value:.6g} but the metric evaluate() reports is {metric.value:.6g} "
                            "on the same model; a probe must be its metric's value (the engine uses one for the "
                            "other)")
    if not any(k.startswith("forget/") for k in probe):
        problems.append("probe() returns no forget/ value (iterative methods and ICU's stop rule read one)")
    return problems


def _probe_item_problems(task: Task, data: TaskData, model: Any, tokenizer: Any) -> list[str]:
    """Optional ``probe_items`` (what attacks score): keys of ``probe``, and each forget probe the mean answer
    log-likelihood of its items."""
    try:
        items = task.probe_items(data)
    except NotImplementedError:
        return []
    probe = task.probe(model, tokenizer, data)
    problems = [f"probe_items key '{k}' is not a probe() key" for k in items if k not in probe]
    for key in (k for k in items if k.startswith("forget/") and k in probe):
        values = answer_logliks(model, tokenizer, items[key])
        if not values or abs(sum(values) / len(values) - probe[key]) > 1e-4:
            problems.append(f"probe '{key}' is not the mean answer log-likelihood of probe_items['{key}']")
    return problems


def check_attack(attack_cls: type, params: dict[str, Any] | None = None, seed: int = 0) -> ConformanceReport:
    """Run ``attack_cls`` twice on the tiny model and the toy task's forget items, as the engine does;
    report contract violations: neither a model nor variants, variants that change the items' number or
    answers, a model not restored bit-exactly afterwards, runs that differ with the same seed."""
    from bench.api import AttackContext, Attacked
    from bench.engine.attacks import attacked_values

    report = ConformanceReport()
    attack = attack_cls(build_params(attack_cls.Params, params or {}, f"attacks.{attack_cls.name}"))
    model, tokenizer = tiny_model()
    task = ToyTask(ToyParams())
    data = task.load(seed)
    items = task.probe_items(data)["forget/forget_loglik"]
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def context() -> AttackContext:
        return AttackContext(model=model, tokenizer=tokenizer, task=task, data=data, items=items, seed=seed)

    outcome = attack.attack(context())
    if not isinstance(outcome, Attacked) or (outcome.model is None and not outcome.variants):
        report.problems.append("attack() must return bench.Attacked with a model or prompt variants")
        return report
    for name, variant in outcome.variants.items():
        if len(variant) != len(items) or [v.answer for v in variant] != [x.answer for x in items]:
            report.problems.append(f"variant '{name}' must rewrite prompts only: same items, same answers")
    if outcome.restore is not None:
        outcome.restore()
    runs = [attacked_values(attack, context()).probe for _ in range(2)]
    after = model.state_dict()
    if set(after) != set(before) or any(not torch.equal(before[k], after[k]) for k in before):
        report.problems.append("the model was not restored bit-exactly after the attack (set Attacked.restore)")
    if runs[0] != runs[1]:
        report.problems.append("not deterministic: two runs with the same seed scored differently")
    return report


def _metric_problems(evaluation: Evaluation) -> list[str]:
    problems = []
    names = [m.name for m in evaluation.metrics]
    if len(set(names)) != len(names):
        problems.append(f"metric names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    if not {"forget", "utility"} <= {m.group for m in evaluation.metrics if m.primary}:
        problems.append("evaluate() must report at least one primary forget and one primary utility metric")
    for m in evaluation.metrics:
        if m.better not in ("higher", "lower", "closer"):
            problems.append(f"metric '{m.name}': better must be higher, lower or closer, got {m.better!r}")
        if m.per_item is None or len(m.per_item) != m.n:
            problems.append(f"metric '{m.name}': per_item must hold its n = {m.n} item values (paired deltas)")
        if not m.ci_low <= m.value <= m.ci_high:
            problems.append(f"metric '{m.name}': value {m.value} is outside its interval [{m.ci_low}, {m.ci_high}]")
    return problems


def check_task(task_cls: type, params: dict[str, Any] | None = None,
               seeds: Sequence[int] = (0, 1)) -> ConformanceReport:
    """Load ``task_cls`` for two seeds, evaluate and probe the tiny model; report contract violations:
    evaluation sets that depend on the seed, empty forget/retain data, metrics without per-item values or
    with a value outside their interval, probe keys that name no reported likelihood metric, an
    ``evaluate`` without the ``reference`` keyword, relevance scores outside [0, 1]."""
    import inspect

    report = ConformanceReport()
    task = task_cls(build_params(task_cls.Params, params or {}, f"task_params.{task_cls.name}"))
    first, second = (task.load(seed) for seed in seeds[:2])
    if not first.forget or not first.retain:
        report.problems.append("load() must return forget and retain examples")
    if not all(isinstance(ex, Example) for ex in [*first.forget, *first.retain]):
        report.problems.append("forget and retain must hold bench.Example objects")
    if repr(first.eval) != repr(second.eval):
        report.problems.append("eval sets differ between seeds (only forget/retain may depend on the seed)")
    if not first.sources:
        report.problems.append("TaskData.sources is empty (name every data source: id, path or package, hash)")
    if "reference" not in inspect.signature(task.evaluate).parameters:
        report.problems.append("evaluate() must accept reference=None (the engine passes the base model)")
        return report
    model, tokenizer = tiny_model()
    evaluation = task.evaluate(model, tokenizer, first, progress=False, reference=model)
    report.problems += _metric_problems(evaluation)
    report.problems += _probe_problems(task, task.probe(model, tokenizer, first), evaluation)
    report.problems += _probe_item_problems(task, first, model, tokenizer)
    scores = task.relevance(["A short reply.", ""])
    if len(scores) != 2 or not all(0.0 <= float(s) <= 1.0 for s in scores):
        report.problems.append(f"relevance() must return one score in [0, 1] per response, got {scores!r}")
    return report
