"""Attacks on forgetting, run by the engine after a cell's evaluation (``attacks:`` in a run config).

For each attack the engine scores the task's forget-probe items (``Task.probe_items``; answer
log-likelihoods, higher = the model knows more) four times: the base model, the base model attacked (the
control), the unlearned model, and the unlearned model attacked. An attack that yields a model (relearning,
quantization) is also measured on the task's **scored generative forget metrics** (``Task.evaluate_forget``:
the same prompts, batches and decoding as the evaluation), the numbers the board ranks by, so that a method
whose outputs stay forgotten while its probe recovers (or the reverse) shows as such; prompt attacks change the
prompts of the probe only. The headline is the recovered fraction

    R = (F_attacked − F_unlearned) / (F_base − F_unlearned)

with F the mean over items: 0 = the attack recovers nothing, 1 = back at the base model's level (above 1:
past it). Its 95 % interval is a paired percentile bootstrap over items (the same items in all four
measurements), and for an attack with several variants (prompt templates) the worst case is the
maximum over variants *within each bootstrap replicate*, so the interval accounts for picking the worst.
R is undefined when the method did not lower the forget probe significantly (nothing to recover): it is
then recorded as ``None`` with the reason. The control is the base model's change under the same attack
(F_base,attacked − F_base, worst variant, with its interval): an attack that raises it as much as the
unlearned model's teaches rather than reveals. All four measurements are scored in the run's evaluation
precision (``eval_autocast``), the one the evaluation's own forget-probe values were computed in.

Results are written beside the cell's (``cells/<cell>/attacks/<attack id>.json``), the control once per
(base evaluation, seed, attack) under ``base/<base>/attacks/``; a cell counts as finished only when every
attack it is configured with has a result that did not fail, so a run interrupted between a cell and its
attacks (or an attack that failed) re-runs the (deterministic) cell on resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.api import Attack, AttackContext, Example, Metric, Task
from bench.eval.stats import recovery
from bench.lm.likelihood import answer_logliks
from bench.params import stable_hash

log = logging.getLogger("unlearn_bench")


@dataclass(frozen=True)
class AttackSpec:
    """One configured attack: a registered name and its parameters (as given, validated by the planner)."""

    name: str
    params: dict[str, Any]

    @property
    def attack_id(self) -> str:
        return f"{self.name}__{stable_hash(self.params, 6)}"

    @property
    def label(self) -> str:
        """``quantize(bits=8)``: the name and the parameters set in the config."""
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})" if args else self.name

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}


def forget_items(task: Task, data: Any) -> tuple[str, list[Example]]:
    """The first ``forget/`` probe's key and items."""
    items = task.probe_items(data)
    key = next((k for k in items if k.startswith("forget/")), None)
    if key is None or not items[key]:
        raise ValueError(f"task '{task.name}' exposes no forget/ probe items to attack")
    return key, list(items[key])


@dataclass
class AttackedValues:
    """What one attack measured on one model: per-item forget-probe log-likelihoods per variant (a model attack
    has one variant, ``model``), per scored generative forget metric its per-item values (and weights) on the
    attacked model (model attacks only; ``generated_values``), the attack's info and its wall time."""

    probe: dict[str, list[float]]
    generated: dict[str, dict[str, Any]]
    info: dict[str, Any]
    seconds: float


def generated_values(metrics: Any) -> dict[str, dict[str, Any]]:
    """The scored generative forget metrics among ``metrics`` (primary, group ``forget``, kind ``generative``,
    per item): ``{name: {"values": [...], "weights": [...] or None}}``; weights where the value is a ratio of sums
    (micro-F1), so that a recovered share of it is computed on the same statistic the board shows."""
    return {m.name: {"values": list(m.per_item), "weights": None if m.weights is None else list(m.weights)}
            for m in metrics if m.group == "forget" and m.primary and m.kind == "generative"
            and m.per_item is not None}


def attacked_values(attack: Any, ctx: AttackContext, batch_size: int = 8) -> AttackedValues:
    """Run ``attack`` on ``ctx.model`` and measure it; the model is restored before returning."""
    start = time.perf_counter()
    outcome = attack.attack(ctx)
    generated: dict[str, dict[str, Any]] = {}
    try:
        if outcome.model is not None:
            values = {"model": answer_logliks(outcome.model, ctx.tokenizer, ctx.items, batch_size=batch_size)}
            generated = generated_values(ctx.task.evaluate_forget(outcome.model, ctx.tokenizer, ctx.data))
        else:  # every variant's items in one call: batched by length across variants, one weight cast
            flat = [ex for items in outcome.variants.values() for ex in items]
            scores = iter(answer_logliks(ctx.model, ctx.tokenizer, flat, batch_size=batch_size,
                                         max_length=variant_max_length(ctx.model)))
            values = {name: [next(scores) for _ in items] for name, items in outcome.variants.items()}
    finally:
        if outcome.restore is not None:
            outcome.restore()
    if not values:
        raise ValueError(f"attack '{attack.name}' returned neither a model nor prompt variants")
    return AttackedValues(values, generated, outcome.info, time.perf_counter() - start)


def variant_max_length(model: Any, longest: int = 2048) -> int:
    """The token budget of a prompt variant: an attack's longer prompt (in-context examples before a long
    HumanEval item) is scored whole, not cut from the left at the evaluation's 512 tokens, up to ``longest``
    and the model's context. Rows that share their in-context examples run them once (``answer_logliks``)."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return min(longest, int(context)) if context else longest


def _context(model: Any, tokenizer: Any, task: Task, data: Any, items: list[Example], seed: int, device: str,
             rows: list[dict[str, Any]]) -> AttackContext:
    return AttackContext(model=model, tokenizer=tokenizer, task=task, data=data, items=items, seed=seed,
                         device=device, log=lambda **row: rows.append(row))


def control_seed(attack: Attack, seed: int) -> int:
    """The seed a base control is stored under: the cell's for a seeded attack, 0 for one that ignores it
    (computed once, shared by every seed)."""
    return seed if attack.seeded else 0


def _attacks(engine: Any, spec: Any) -> Iterator[tuple[AttackSpec, Attack]]:
    from bench.params import build_params

    for attack_spec in (AttackSpec(a["name"], a["params"]) for a in spec.attacks):
        cls = engine.registry.get("attack", attack_spec.name).cls
        yield attack_spec, cls(build_params(cls.Params, attack_spec.params, f"attacks.{attack_spec.name}"))


def attack_controls(engine: Any, spec: Any, task: Task, data: Any) -> None:
    """Every configured attack on the base model (the control), cached per (base evaluation, attack, seed);
    run before the cell borrows the base model. A control that raises is left uncached: the cell's attack
    result then records the failure."""
    from bench.engine.store import atomic_write_json

    store = engine.store
    key, items = forget_items(task, data)
    base_result = store.base_result(spec.base_id) or {"metrics": {}}
    # the base model's forget-probe values are its evaluation's; scored here only when they are not there
    base_metrics = [Metric.from_json(m) for m in base_result["metrics"].values()]
    base_values = evaluated_items(base_metrics, key, len(items))
    base_generated = generated_values(base_metrics)
    for attack_spec, attack in _attacks(engine, spec):
        control_path = store.control_path(spec.base_id, attack_spec.attack_id, control_seed(attack, spec.seed))
        if control_path.exists():
            continue
        base = engine.models.base(engine.model_ref(spec), spec.device, spec.dtype)
        try:
            rows: list[dict[str, Any]] = []
            with engine.evaluation_precision(spec, base.model):  # as the evaluation scored base_values
                if base_values is None:
                    base_values = answer_logliks(base.model, base.tokenizer, items)
                measured = attacked_values(
                    attack, _context(base.model, base.tokenizer, task, data, items, spec.seed, base.info.device,
                                     rows))
        except Exception:  # noqa: BLE001 - reported by run_attacks for the cell
            import traceback

            log.error("attack %s on the base model (control) failed:\n%s", attack_spec.label, traceback.format_exc())
            continue
        if measured.generated and set(measured.generated) - set(base_generated):
            with engine.evaluation_precision(spec, base.model):  # a base evaluation from before evaluate_forget
                base_generated = generated_values(task.evaluate_forget(base.model, base.tokenizer, data))
        atomic_write_json(control_path, {"base": base_values, "attacked": measured.probe, "info": measured.info,
                                         "seconds": round(measured.seconds, 2), "trajectory": rows,
                                         "attack": attack_spec.to_json(), "probe": key,
                                         "generated": paired_generated(base_generated, measured.generated)})


def paired_generated(before: dict[str, dict[str, Any]], attacked: dict[str, dict[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    """Per generated metric the model's values before and under the attack (``{"before", "attacked"}``), for the
    metrics measured both ways."""
    return {name: {"before": before[name], "attacked": values} for name, values in attacked.items() if name in before}


def evaluated_items(metrics: Any, key: str, n: int) -> list[float] | None:
    """The per-item values of the forget probe ``key`` ("forget/<metric>") when the evaluation already scored
    those ``n`` items as that metric (every built-in task's evaluation reports its probes), else None."""
    group, _, name = key.partition("/")
    metric = next((m for m in metrics if m.name == name and m.group == group), None)
    values = getattr(metric, "per_item", None)
    return list(values) if values is not None and len(values) == n else None


def generated_record(control: dict[str, dict[str, Any]], row: dict[str, dict[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    """Per generated metric measured on the row and on its base control, the four measurements ``recovery``
    takes (``base``, ``unlearned``, ``attacked``, ``base_attacked``; each ``{"values", "weights"}``)."""
    return {name: {"base": control[name]["before"], "base_attacked": control[name]["attacked"],
                   "unlearned": pair["before"], "attacked": pair["attacked"]}
            for name, pair in row.items() if name in control}


def run_attacks(engine: Any, spec: Any, task: Task, data: Any, model: Any, tokenizer: Any, device: str,
                metrics: Any = ()) -> None:
    """Every configured attack on the unlearned ``model``, against its control (``attack_controls``); one
    result file each. An attack that raises is recorded as ``failed`` with its reason; the cell's own result
    stands. The unlearned model's forget-probe values are taken from its evaluation's ``metrics`` when they
    are there (the same items, scored once), else scored here. Everything is scored in the evaluation's
    precision, as the control and the evaluation's values were."""
    with engine.evaluation_precision(spec, model):
        _run_attacks(engine, spec, task, data, model, tokenizer, device, metrics)


def _run_attacks(engine: Any, spec: Any, task: Task, data: Any, model: Any, tokenizer: Any, device: str,
                 metrics: Any) -> None:
    from bench.engine.store import atomic_write_json, read_json

    store = engine.store
    key, items = forget_items(task, data)
    unlearned = evaluated_items(metrics, key, len(items)) or answer_logliks(model, tokenizer, items)
    unlearned_generated = generated_values(metrics)
    for attack_spec, attack in _attacks(engine, spec):
        record: dict[str, Any] = {"cell_id": spec.cell_id, "base_id": spec.base_id, "method": spec.method,
                                  "task": spec.task, "seed": spec.seed, "attack_id": attack_spec.attack_id,
                                  "attack": attack_spec.to_json(), "label": attack_spec.label, "probe": key}
        try:
            control_path = store.control_path(spec.base_id, attack_spec.attack_id, control_seed(attack, spec.seed))
            if not control_path.exists():
                raise RuntimeError("the same attack on the base model (the control) failed; see the cell's log")
            control = read_json(control_path)
            rows: list[dict[str, Any]] = []
            measured = attacked_values(attack, _context(model, tokenizer, task, data, items, spec.seed, device, rows))
            if measured.generated and set(measured.generated) - set(unlearned_generated):
                unlearned_generated = generated_values(task.evaluate_forget(model, tokenizer, data))
            record.update(status="done", info=measured.info, seconds=round(measured.seconds, 2), trajectory=rows,
                          summary=recovery(control["base"], unlearned, measured.probe, control["attacked"]),
                          values={"base": control["base"], "unlearned": unlearned, "attacked": measured.probe,
                                  "base_attacked": control["attacked"],
                                  "generated": generated_record(control.get("generated", {}),
                                                                paired_generated(unlearned_generated,
                                                                                 measured.generated))})
            summary = record["summary"]
            log.info("attack %s on %s: recovered %s (worst: %s), base control %+.3f", attack_spec.label,
                     spec.cell_id, "n/a" if summary["recovered"] is None else f"{summary['recovered']:.3f}",
                     summary["worst_variant"], summary["control"])
        except Exception as err:  # noqa: BLE001 - an attack's failure must not lose the cell
            import traceback

            record.update(status="failed", reason=f"{type(err).__name__}: {err}".splitlines()[0][:500])
            log.error("attack %s on %s failed:\n%s", attack_spec.label, spec.cell_id, traceback.format_exc())
        atomic_write_json(store.attack_path(spec.cell_id, attack_spec.attack_id), record)
