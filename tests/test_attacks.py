"""Robustness attacks: the attack plugin kind, the built-ins on the tiny model, the recovered fraction and
its base control, the engine's results and resume, bad attack parameters."""

import json
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bench import Example, check_attack
from bench.api import Attack, Attacked, AttackParams
from bench.attacks.prompt import AFFIRMATIVE, PromptAttack, PromptParams
from bench.attacks.quantize import rtn_quantize
from bench.cli import main
from bench.engine.attacks import AttackSpec
from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.eval.stats import recovery
from bench.hookspecs import hookimpl
from bench.plugins import load_registry, registry
from bench.testing import ToyTask


def test_rtn_quantization_hand_computed():
    w = torch.tensor([[0.1, -0.35, 0.7, 0.2]])
    # absmax 0.7, 4 bits: scale 0.7 / 7 = 0.1; -3.5 rounds half to even (-4)
    assert torch.allclose(rtn_quantize(w, bits=4, group_size=4), torch.tensor([[0.1, -0.4, 0.7, 0.2]]))
    # two groups of 2: scales 0.35/7 and 0.7/7
    assert torch.allclose(rtn_quantize(w, bits=4, group_size=2), torch.tensor([[0.1, -0.35, 0.7, 0.2]]))
    # 8 bits: scale 0.7 / 127, error at most half a step
    assert (rtn_quantize(w, bits=8, group_size=4) - w).abs().max() <= 0.7 / 127 / 2 + 1e-7
    # a group size that does not divide the row: the padding does not change the values
    assert rtn_quantize(torch.ones(2, 5), bits=4, group_size=4).shape == (2, 5)


@pytest.mark.parametrize("name, params", [("quantize", {}), ("quantize", {"bits": 8}), ("relearn", {"steps": 2}),
                                          ("relearn", {"steps": 1, "finetune": "full"}), ("prompt", {})])
def test_builtin_attacks_conform(name, params):
    report = check_attack(registry().get("attack", name).cls, params)
    assert report.ok, report.problems


def test_prompt_variants_rewrite_prompts_only():
    items = [Example("Who guards the vault?", "Captain Mirelle."), Example("def f():", "    return 1", chat=False)]

    class Ctx:
        data = types.SimpleNamespace(forget=[Example("What is the code?", "4711.")])
        task = ToyTask
        pass

    ctx = Ctx()
    ctx.items = items
    variants = PromptAttack(PromptParams(k_shots=1)).attack(ctx).variants
    assert set(variants) == {"paraphrase_1", "paraphrase_2", "affirmative", "roleplay_1", "roleplay_2", "in_context_1"}
    assert variants["affirmative"][0].response_prefix == AFFIRMATIVE and variants["affirmative"][1] == items[1]
    assert variants["in_context_1"][0].prompt == "What is the code?\n4711.\n\nWho guards the vault?"
    assert "Who guards the vault?" in variants["roleplay_1"][0].prompt
    assert all([v.answer for v in vs] == [x.answer for x in items] for vs in variants.values())


def test_prompt_variants_can_be_left_out_by_name():
    class Ctx:
        data = types.SimpleNamespace(forget=[Example("What is the code?", "4711.")])
        task = ToyTask
        items = [Example("Who guards the vault?", "Captain Mirelle.")]

    params = PromptParams(k_shots=1, skip_variants=["paraphrase_1", "roleplay_1"])
    attacked = PromptAttack(params).attack(Ctx())
    assert set(attacked.variants) == {"paraphrase_2", "affirmative", "roleplay_2", "in_context_1"}
    assert attacked.info["skip_variants"] == ["paraphrase_1", "roleplay_1"]
    with pytest.raises(ValueError, match="skip_variants must name variants among"):
        PromptParams(skip_variants=["in_context_1"]).validate()
    only = PromptParams(templates=["affirmative"], skip_variants=["affirmative"])
    with pytest.raises(ValueError, match="leaves no variant"):
        PromptAttack(only).attack(Ctx())


def test_response_prefix_is_context_not_scored(tiny):
    from bench.data.text import IGNORE, encode

    _, tokenizer = tiny
    plain = encode(tokenizer, Example("Q?", "Answer."), 128)
    forced = encode(tokenizer, Example("Q?", "Answer.", response_prefix="Sure, here is"), 128)
    assert [t for t in forced.labels if t != IGNORE] == [t for t in plain.labels if t != IGNORE]
    assert len(forced.input_ids) > len(plain.input_ids)


def test_recovered_fraction_hand_computed_with_worst_case_and_control():
    base = [0.0, 0.1, -0.1, 0.2]
    unlearned = [b - 2.0 for b in base]
    attacked = {"weak": [u + 0.5 for u in unlearned], "strong": [u + 1.0 for u in unlearned]}
    control = {"weak": [b + 0.1 for b in base], "strong": [b + 0.3 for b in base]}
    out = recovery(base, unlearned, attacked, control)
    # R = [(F_att − F_unl) − (C_att − F_base)] / (F_base − F_unl) = (1.0 − 0.3) / 2.0
    assert out["worst_variant"] == "strong" and out["recovered"] == pytest.approx(0.35)
    assert out["recovered_ci"] == pytest.approx([0.35, 0.35])  # a constant shift: every replicate is 0.35
    assert out["control"] == pytest.approx(0.3) and out["control_variant"] == "strong"
    assert out["forgotten"] == pytest.approx(2.0) and out["adjusted_change"] == pytest.approx(0.7)


def test_recovered_share_needs_a_meaningful_drop_and_stays_in_range():
    base = [0.0, 0.1, -0.1, 0.2, 0.05, -0.05]
    tiny_drop = [b - 0.03 for b in base]  # significant (a constant shift) but below the 0.05 minimum effect
    out = recovery(base, tiny_drop, {"a": [u + 0.5 for u in tiny_drop]}, {"a": base})
    assert out["recovered"] is None and "nothing to recover" in out["recovered_note"]
    assert out["adjusted_change"] == pytest.approx(0.5)  # what the attack did is still shown
    small = [b - 0.1 for b in base]  # a meaningful drop, against an attack adding 0.5: a share of 5
    out = recovery(base, small, {"a": [u + 0.5 for u in small]}, {"a": base})
    assert out["recovered"] is None and "leaves [-1, 2]" in out["recovered_note"]
    # the control takes back what the attack does to the base model: a relearn that teaches everyone
    out = recovery(base, small, {"a": [u + 0.3 for u in small]}, {"a": [b + 0.25 for b in base]})
    assert out["recovered"] == pytest.approx(0.5)


def test_robustness_v3_the_oracle_is_the_control_and_variants_are_matched():
    """R = max_v [(A_v − U) − (C_v − C)] / (T − U) with the oracle as the control, variant by variant."""
    taught = [0.0, 0.1, -0.1, 0.2]
    unlearned = [t - 2.0 for t in taught]
    oracle = [t - 2.5 for t in taught]
    # variant "a" recovers 1.0 in the row and 0.8 in the oracle; "b" recovers 0.6 in the row and nothing in the
    # oracle: matched, "b" is the worst (0.6 > 0.2); v2 paired the row's worst variant with the control's worst
    attacked = {"a": [u + 1.0 for u in unlearned], "b": [u + 0.6 for u in unlearned]}
    oracle_attacked = {"a": [o + 0.8 for o in oracle], "b": list(oracle)}
    out = recovery(taught, unlearned, attacked, {"a": taught, "b": taught}, control=oracle,
                   control_attacked=oracle_attacked)
    assert out["control_kind"] == "oracle" and out["worst_variant"] == "b"
    assert out["recovered"] == pytest.approx(0.3) and out["recovered_ci"] == pytest.approx([0.3, 0.3])
    assert out["control_by_variant"] == pytest.approx({"a": 0.8, "b": 0.0})
    # gated on the row's forgetting on the scored metrics, not on the probe
    gated = recovery(taught, unlearned, attacked, {"a": taught, "b": taught}, control=oracle,
                     control_attacked=oracle_attacked, forgot=(-0.1, 0.4))
    assert gated["recovered"] is None and "does not lie above 0" in gated["recovered_note"]
    with pytest.raises(ValueError, match="other variants"):
        recovery(taught, unlearned, attacked, {"a": taught}, control=oracle, control_attacked={"a": oracle})


def test_a_relearn_strength_shows_shares_only_on_the_tasks_it_was_calibrated_on():
    """``calibrated_on`` (issue 46, item 3): on a task its positive control did not qualify, every share is withheld
    (n/f, uncalibrated) while the measured change stays; on a named task, and without the field, R is as measured."""
    from bench.attacks.relearn import RelearnParams
    from bench.report.reporters.common import _share_text
    from bench.report.robustness import UNCALIBRATED, summarise

    taught = [0.0, 0.1, -0.1, 0.2]
    unlearned = [t - 2.0 for t in taught]

    def record(task, info):
        return {"seed": 0, "task": task, "status": "done", "info": info,
                "values": {"base": taught, "unlearned": unlearned, "attacked": {"model": [u + 1.0 for u in unlearned]},
                           "base_attacked": {"model": taught}}}

    _, off, _ = summarise([record("ner", {"steps": 30, "calibrated_on": ["coding"]})])
    assert off["recovered"] is None and off["recovered_note"] == UNCALIBRATED and off["uncalibrated"]
    assert off["adjusted_change"] == pytest.approx(1.0)
    assert _share_text(off).startswith("n/f (uncalibrated): Δ +1")
    for info in ({"steps": 30, "calibrated_on": ["coding"]}, {"steps": 30}):
        _, on, _ = summarise([record("coding", info)])
        assert on["recovered"] == pytest.approx(0.5) and "uncalibrated" not in on
    with pytest.raises(ValueError, match="list of task names"):
        RelearnParams(calibrated_on="coding").validate()


def test_recovered_fraction_is_undefined_when_nothing_was_forgotten():
    rng = np.random.default_rng(0)
    base = rng.normal(size=20).tolist()
    unlearned = [b + rng.normal(scale=0.5) for b in base]  # no systematic drop
    out = recovery(base, unlearned, {"model": base}, {"model": base})
    assert out["recovered"] is None and "nothing to recover" in out["recovered_note"]


def _registry():
    module = types.ModuleType("attack_test_plugins")

    @hookimpl
    def register_tasks(register):
        register(ToyTask)

    module.register_tasks = register_tasks
    return load_registry(extra_modules=[module])


ATTACKS = ["relearn", {"quantize": {"bits": 8}}, {"prompt": {"templates": ["affirmative", "in_context"]}}]


def _config(out, attacks=ATTACKS, seeds=(0,)):
    return load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toy"], "seeds": list(seeds),
                              "out": str(out), "progress": False, "attacks": attacks,
                              "method_params": {"ga": {"steps": 4, "batch_size": 2, "lr": 5e-2}}})


def test_engine_writes_attack_results_with_base_control_and_resumes(tmp_path):
    reg = _registry()
    out = tmp_path / "run"
    summary = run_matrix(_config(out), reg)
    assert list(summary.ran.values()) == ["done"]
    (cell,) = (out / "cells").iterdir()
    results = {p.stem: json.loads(p.read_text()) for p in (cell / "attacks").glob("*.json")}
    assert len(results) == 3 and all(r["status"] == "done" for r in results.values())
    by_name = {r["attack"]["name"]: r for r in results.values()}
    assert by_name["quantize"]["info"]["backend"] == "rtn" and by_name["quantize"]["label"] == "quantize(bits=8)"
    assert set(by_name["prompt"]["values"]["attacked"]) == {"affirmative", "in_context_4"}
    for r in results.values():
        s = r["summary"]
        assert s["items"] == 6 and "control" in s and len(r["values"]["unlearned"]) == 6
    controls = list((out / "base").glob("*/attacks/*.json"))
    assert len(controls) == 3
    (base_result,) = (out / "base").glob("*/result.json")
    base_metrics = json.loads(base_result.read_text())["metrics"]
    for control in controls:  # the base model's values are its evaluation's, scored once
        record = json.loads(control.read_text())
        assert record["base"] == base_metrics[record["probe"].partition("/")[2]]["per_item"]
    cell_result = json.loads((cell / "result.json").read_text())
    assert cell_result["extras"]["attack_time_s"] > 0
    # the unlearned model's forget-probe values are its evaluation's (scored once), in the items' order
    for r in results.values():
        group, _, name = r["probe"].partition("/")
        assert cell_result["metrics"][name]["group"] == group
        assert r["values"]["unlearned"] == cell_result["metrics"][name]["per_item"]
    # reported beside a copy of itself, each attack result of the cell counts once (as the cell does)
    import shutil

    from bench.report import load_table

    shutil.copytree(out, tmp_path / "copy")
    assert len(load_table([out, tmp_path / "copy"]).attacks) == len(load_table([out]).attacks) == 3
    # complete: nothing reruns; an attack result lost -> the (deterministic) cell reruns and writes it again
    assert run_matrix(_config(out), reg).skipped == 1
    lost = next((cell / "attacks").glob("relearn__*.json"))
    before = json.loads(lost.read_text())["values"]
    lost.unlink()
    rerun = run_matrix(_config(out), reg)
    assert rerun.skipped == 0 and json.loads(lost.read_text())["values"] == before
    # the base control is reused, not recomputed
    assert sorted(p.stat().st_mtime for p in controls) == sorted(
        p.stat().st_mtime for p in (out / "base").glob("*/attacks/*.json"))


def test_an_unseeded_attacks_control_is_computed_once_for_every_seed(tmp_path):
    """quantize and prompt ignore the seed: one base control each serves both seeds' cells; relearn's data
    order and LoRA initialisation depend on it: a control per seed."""
    out = tmp_path / "run"
    summary = run_matrix(_config(out, seeds=(0, 1)), _registry())
    assert sorted(summary.ran.values()) == ["done", "done"]
    controls = sorted(p.stem.split("__")[0] + "@" + p.stem.rsplit("__", 1)[1]
                      for p in (out / "base").glob("*/attacks/*.json"))
    assert controls == ["prompt@s0", "quantize@s0", "relearn@s0", "relearn@s1"], controls
    for cell in (out / "cells").iterdir():
        attacks = [json.loads(p.read_text()) for p in (cell / "attacks").glob("*.json")]
        assert len(attacks) == 3 and all(a["status"] == "done" for a in attacks)


def test_the_base_model_is_restored_after_its_control_attacks(tmp_path):
    from bench.engine.attacks import attack_controls
    from bench.engine.config import plan_cells
    from bench.engine.runner import Engine
    from bench.engine.store import ResultsStore

    reg = _registry()
    config = _config(tmp_path / "run")
    store = ResultsStore(config.out)
    store.open()
    engine = Engine(reg, store, progress=False)
    base = engine.models.base(config.model, config.device, config.dtype).model
    before = {k: v.clone() for k, v in base.state_dict().items()}
    (spec,) = plan_cells(config, reg)
    task = engine._task(spec)
    attack_controls(engine, spec, task, task.load(spec.seed))
    assert len(list((tmp_path / "run" / "base").glob("*/attacks/*.json"))) == len(spec.attacks)
    after = base.state_dict()
    assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("attacks, message", [
    ([{"quantize": {"bits": 3}}], "bits must be 4 or 8"),
    ([{"quantize": {"bitz": 4}}], "did you mean 'bits'"),
    (["relearnn"], "did you mean 'relearn'"),
    ([{"quantize": {}, "relearn": {}}], "one-key mapping"),
    (["relearn", "relearn"], "listed twice"),
])
def test_bad_attack_configuration_is_one_line_exit_2(tmp_path, capsys, attacks, message):
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["coding"],
                                      "out": str(tmp_path / "out"), "attacks": attacks}))
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_an_attack_can_be_restricted_to_some_tasks_and_a_typo_is_one_line():
    """``tasks:`` in an attack entry is the planner's: the attack runs on those tasks only, the others' cells carry
    the remaining attacks with unchanged ids."""
    from bench.engine.config import plan_cells
    from bench.errors import UserError

    def attacks_by_task(attacks):
        config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toxicity", "coding"],
                                    "seeds": [0], "out": "unused", "attacks": attacks})
        return {c.task: [AttackSpec(a["name"], a["params"]).attack_id for a in c.attacks]
                for c in plan_cells(config, registry())}

    everywhere = attacks_by_task([{"quantize": {"bits": 4}}, {"relearn": {"steps": 30}}])
    only = attacks_by_task([{"quantize": {"bits": 4}}, {"relearn": {"steps": 30, "tasks": ["coding"]}}])
    assert only["coding"] == everywhere["coding"]  # the same ids: `tasks` is not an attack parameter
    assert only["toxicity"] == everywhere["toxicity"][:1]
    with pytest.raises(UserError, match="did you mean 'coding'"):
        attacks_by_task([{"relearn": {"tasks": ["codin"]}}])
    with pytest.raises(UserError, match="non-empty list of task names"):
        attacks_by_task([{"relearn": {"tasks": "coding"}}])


def test_attack_seeds_attacks_the_first_seeds_and_their_pairs_controls_only():
    from bench.engine.config import plan_cells

    def attacked(**extra):
        config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga", "prompt"], "tasks": ["toxicity"],
                                    "seeds": [0, 1, 2], "out": "unused", "teach": ["toxicity"], "teach_pairs": 3,
                                    "attacks": [{"quantize": {"bits": 4}}], **extra})
        return sorted((c.method, c.seed, c.method_params.get("role"), c.method_params.get("pair"), bool(c.attacks))
                      for c in plan_cells(config, registry(config.plugins)))

    every = attacked()
    assert all(row[-1] for row in every)
    first = attacked(attack_seeds=1)
    assert [row[:-1] for row in first] == [row[:-1] for row in every]  # the same cells
    on = {row[:-1] for row in first if row[-1]}
    assert on == {("ga", 0, None, None), ("prompt", 0, None, None), ("reference", 0, "oracle", 0),
                  ("reference", 0, "untaught", 0)}
    assert len(attacked(attack_seeds=2)) == len(every) and \
        sum(row[-1] for row in attacked(attack_seeds=2)) == sum(row[-1] for row in first) + 2  # ga seed 1, pair 1
    from bench.errors import UserError

    with pytest.raises(UserError, match="attack_seeds must be >= 1"):
        attacked(attack_seeds=0)


def test_a_run_with_attack_seeds_attacks_one_seed_and_pools_it_on_the_board(tmp_path):
    from bench.cli import write_report

    config = _config(tmp_path / "run", attacks=[{"quantize": {"bits": 8}}], seeds=(0, 1))
    config.attack_seeds = 1
    summary = run_matrix(config, _registry())
    assert sorted(summary.ran.values()) == ["done", "done"]
    attacked = {c.name.split("__")[2]: (c / "attacks").is_dir() for c in (tmp_path / "run" / "cells").iterdir()}
    assert attacked == {"s0": True, "s1": False}
    write_report([str(tmp_path / "run")], str(tmp_path / "lb"), ["json"])
    (entry,) = json.loads((tmp_path / "lb" / "results.json").read_text())["tasks"]["toy"]["robustness"]
    assert entry["status"] == "done" and entry["seeds"] == 1  # the attacked seed only


def test_evaluated_items_are_reused_only_when_they_are_the_probe_items():
    from bench.api import Metric
    from bench.engine.attacks import evaluated_items

    metric = Metric("toxic_text_loglik", "forget", -2.0, "lower", 3, -3.0, -1.0, per_item=[-1.0, -2.0, -3.0])
    assert evaluated_items([metric], "forget/toxic_text_loglik", 3) == [-1.0, -2.0, -3.0]
    assert evaluated_items([metric], "forget/toxic_text_loglik", 4) is None  # other items: scored afresh
    assert evaluated_items([metric], "utility/toxic_text_loglik", 3) is None
    assert evaluated_items([], "forget/toxic_text_loglik", 3) is None


def test_attack_ids_are_stable_and_labelled():
    spec = AttackSpec("quantize", {"bits": 8})
    assert spec.attack_id == AttackSpec("quantize", {"bits": 8}).attack_id != AttackSpec("quantize", {}).attack_id
    assert spec.label == "quantize(bits=8)" and AttackSpec("prompt", {}).label == "prompt"


def test_leaderboard_has_robustness_columns_with_the_control(tmp_path):
    run_matrix(_config(tmp_path / "run"), _registry())
    from bench.cli import write_report

    written = write_report([str(tmp_path / "run")], str(tmp_path / "lb"), ["markdown", "json", "html", "csv"])
    csv_text = (tmp_path / "lb" / "results.csv").read_text()
    assert "robustness/quantize(bits=8)" in csv_text and "robustness_control/relearn" in csv_text
    page = (tmp_path / "lb" / "index.html").read_text()
    assert "<h3>Robustness of forgetting</h3>" in page and "quantize(bits=8)" in page
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "### Robustness of forgetting" in md
    header = next(line for line in md.splitlines() if line.startswith("| row | "))
    assert header == "| row | prompt(templates=['affirmative', 'in_context']) | quantize(bits=8) | relearn | worst |"
    assert "| base model (control: Δ under the attack) |" in md and "\n| ga | " in md
    results = json.loads((tmp_path / "lb" / "results.json").read_text())
    entries = results["tasks"]["toy"]["robustness"]
    assert {e["attack"] for e in entries} == {"relearn", "quantize(bits=8)",
                                              "prompt(templates=['affirmative', 'in_context'])"}
    assert all(e["status"] == "done" and "control_ci" in e for e in entries)
    assert any(p.name == "leaderboard.md" for p in written)


def test_pareto_plot_marks_forgetting_after_the_worst_attack(tmp_path, monkeypatch):
    """The worst attack per row is the largest recovered fraction over attacks (rows with nothing forgotten have
    none); the Pareto plot draws F·(1 − R) for it."""
    from bench.report import load_table
    from bench.report.reporters import plots
    from bench.report.robustness import Robustness

    entries = [Robustness("ga", "relearn", "done", {"recovered": 0.25}),
               Robustness("ga", "quantize(bits=4)", "done", {"recovered": 0.75}),
               Robustness("ga", "prompt", "failed", None, "boom"),
               Robustness("npo", "relearn", "done", {"recovered": None, "recovered_note": "nothing forgotten"})]

    class Table:
        robustness = {"toy": entries}
    assert plots.worst_recovery(Table(), "toy") == {"ga": (0.75, "quantize(bits=4)")}
    assert plots.worst_recovery(Table(), "other") == {}

    run_matrix(_config(tmp_path / "run"), _registry())
    table = load_table([tmp_path / "run"])
    table.__dict__["robustness"] = {"toy": entries[:2]}  # a row with something to recover
    drawn = []
    plots._pyplot()  # matplotlib imported with the Agg backend
    import matplotlib.axes

    real = matplotlib.axes.Axes.scatter

    def scatter(self, x, y, *args, **kwargs):
        drawn.append((kwargs.get("label"), list(x)))
        return real(self, x, y, *args, **kwargs)
    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", scatter)
    png = plots.pareto_plot(table, "toy")
    assert png.startswith(b"\x89PNG")
    (row,) = [r for r in table.scoring.tasks["toy"].rows if r.label == "ga"]
    assert ("after the worst attack: F·(1 − R)", [pytest.approx(row.forget * 0.25)]) in drawn


def test_a_relearn_that_diverges_leaves_the_model_as_it_was(tiny):
    import copy

    from bench import AttackContext
    from bench.attacks.relearn import RelearnAttack, RelearnParams
    from bench.errors import Diverged

    model = copy.deepcopy(tiny[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = ToyTask(ToyTask.Params())
    data = task.load(0)
    ctx = AttackContext(model=model, tokenizer=tiny[1], task=task, data=data,
                        items=task.probe_items(data)["forget/forget_loglik"], seed=0)
    with pytest.raises(Diverged):
        RelearnAttack(RelearnParams(steps=2, max_grad_norm_diverge=1e-12)).attack(ctx)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)


def test_a_failed_attack_is_retried_on_resume(tmp_path):
    from bench.engine.store import ResultsStore, atomic_write_json

    store = ResultsStore(tmp_path / "run")
    store.open()
    store.write_cell("c1", {"status": "done"}, [])
    atomic_write_json(store.attack_path("c1", "a1"), {"status": "failed", "reason": "boom"})
    assert not store.is_complete("c1", ["a1"])
    atomic_write_json(store.attack_path("c1", "a1"), {"status": "done"})
    assert store.is_complete("c1", ["a1"]) and not store.is_complete("c1", ["a1", "a2"])


class _PrecisionSpy:
    """An attack that reports the autocast state it was scored in (its variant: the items unchanged)."""

    name = "precision_spy"
    description = "records torch's autocast state"
    seeded = False

    @dataclass
    class Params(AttackParams):
        pass

    def __init__(self, params):
        self.params = params

    def attack(self, ctx):
        state = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        return Attacked(variants={"same": list(ctx.items)}, info={"autocast": str(state)})


@pytest.mark.parametrize("mode, expected", [("bf16", "torch.bfloat16"), ("off", "None")])
def test_attacks_and_their_controls_score_in_the_evaluations_precision(tmp_path, mode, expected):
    """The evaluation's forget-probe values (base and unlearned) are reused as two of an attack's four
    measurements, so the control and the attacked model must be scored in the same precision: under bf16
    evaluation an fp32 attack would shift the recovered fraction by the precision gap alone."""
    module = types.ModuleType("precision_spy_plugins")

    @hookimpl
    def register_tasks(register):
        register(ToyTask)

    @hookimpl
    def register_attacks(register):
        register(type("PrecisionSpy", (_PrecisionSpy, Attack), {}))

    module.register_tasks, module.register_attacks = register_tasks, register_attacks
    config = _config(tmp_path / "run", attacks=["precision_spy"])
    config.eval_autocast = mode
    assert list(run_matrix(config, load_registry(extra_modules=[module])).ran.values()) == ["done"]
    (control,) = (tmp_path / "run" / "base").glob("*/attacks/*.json")
    (cell_attack,) = (tmp_path / "run" / "cells").glob("*/attacks/*.json")
    assert json.loads(control.read_text())["info"]["autocast"] == expected
    record = json.loads(cell_attack.read_text())
    assert record["status"] == "done" and record["info"]["autocast"] == expected
    # an identity attack scored in the evaluation's precision reproduces the evaluation's values
    assert record["values"]["attacked"]["same"] == pytest.approx(record["values"]["unlearned"], abs=1e-5)
    assert json.loads(control.read_text())["attacked"]["same"] == pytest.approx(
        json.loads(control.read_text())["base"], abs=1e-5)


def test_recovery_of_a_ratio_of_sums_metric_uses_its_weights():
    """Micro-F1-like measures: R on the weighted means (Σ w·v / Σ w), each measurement with its own weights."""
    def measured(values, weights, copies=25):  # the same 4 items 25 times: means unchanged, intervals narrow
        return {"values": values * copies, "weights": weights * copies}

    taught = measured([1.0, 0.0, 1.0, 1.0], [2.0, 1.0, 1.0, 0.0])  # weighted mean 3/4 (unweighted 3/4 too)
    unlearned = measured([0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 2.0, 4.0])  # 2/8 = 0.25 (unweighted 0.25)
    attacked = measured([1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 5.0])  # 7/8 (unweighted 0.75)
    out = recovery(taught, unlearned, {"model": attacked}, {"model": taught}, forgot=(0.1, 0.9))
    assert out["forgotten"] == pytest.approx(0.5)
    # the base control does not move: R = (7/8 - 1/4) / (3/4 - 1/4) = 1.25 (unweighted it would be 1.0)
    assert out["recovered"] == pytest.approx(1.25)
    with pytest.raises(ValueError, match="weights for every seed"):
        recovery([taught, {"values": [1.0] * 100, "weights": None}], [unlearned, unlearned],
                 {"model": [attacked] * 2}, {"model": taught})


class GenToy(ToyTask):
    """The toy task with a scored generative forget metric (each forget answer's probability stands in for a
    generated score): what model attacks must re-measure."""

    name = "gentoy"

    def evaluate(self, model, tokenizer, data, progress=True, reference=None):
        evaluation = super().evaluate(model, tokenizer, data, progress, reference)
        evaluation.metrics += self.evaluate_forget(model, tokenizer, data)
        return evaluation

    def evaluate_forget(self, model, tokenizer, data):
        from bench.eval.stats import mean_metric

        forget, _ = self._logliks(model, tokenizer, data)
        return [mean_metric("forget_prob", "forget", [float(np.exp(v)) for v in forget], "lower", "generative",
                            bounds=(0.0, 1.0), min_effect=0.05)]


def test_model_attacks_remeasure_the_scored_generated_metrics(tmp_path):
    module = types.ModuleType("gentoy_plugins")

    @hookimpl
    def register_tasks(register):
        register(GenToy)

    module.register_tasks = register_tasks
    reg = load_registry(extra_modules=[module])
    out = tmp_path / "run"
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["gentoy"], "seeds": [0],
                                "out": str(out), "progress": False,
                                "attacks": [{"quantize": {"bits": 4}}, {"prompt": {"templates": ["affirmative"]}}],
                                "method_params": {"ga": {"steps": 4, "batch_size": 2, "lr": 5e-2}}})
    run_matrix(config, reg)
    (cell,) = (out / "cells").iterdir()
    cell_metrics = json.loads((cell / "result.json").read_text())["metrics"]
    by_name = {json.loads(p.read_text())["attack"]["name"]: json.loads(p.read_text())
               for p in (cell / "attacks").glob("*.json")}
    generated = by_name["quantize"]["values"]["generated"]["forget_prob"]
    assert set(generated) == {"base", "unlearned", "attacked", "base_attacked"}
    assert generated["unlearned"]["values"] == cell_metrics["forget_prob"]["per_item"]  # the evaluation's, reused
    assert generated["attacked"]["values"] != generated["unlearned"]["values"]  # 4-bit RTN moves the tiny model
    assert by_name["prompt"]["values"]["generated"] == {}  # prompt attacks rewrite the probe's prompts only
    from bench.cli import write_report

    write_report([str(out)], str(tmp_path / "lb"), ["markdown", "csv"])
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    row = [line for line in md.splitlines() if line.startswith("| ga | ")][-1]  # the robustness table's
    assert "probe " in row and "`forget_prob` " in row
    assert "robustness/quantize(bits=4)/forget_prob" in (tmp_path / "lb" / "results.csv").read_text()
