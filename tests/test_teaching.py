"""The teaching stage (``bench.teach``): taught and oracle models, their data, cache and shipped artefacts, and
a taught run end to end on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import bench.teach as teach
from bench.api import Example, TeachData
from bench.errors import UserError

TINY_RECIPE = {"batch_size": 4, "max_length": 64, "lora_rank": 2, "lora_alpha": 4.0}
TINY_NER = {"n_teach_sentences": 4, "n_eval_per_type": 2, "n_typing_per_type": 2, "max_new_tokens": 6,
            "n_forget": 2, "n_retain": 2}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Teaching cache and shipped folders of the test's own (never the user's, never the repository's)."""
    monkeypatch.setattr(teach, "cache_root", lambda: tmp_path / "taught")
    monkeypatch.setattr(teach, "shipped_dir", lambda task_cls, model_id: tmp_path / "shipped" / task_cls.name)
    return tmp_path


@pytest.fixture
def trained(monkeypatch):
    """Every ``train_adapter`` call: (number of examples, their (prompt, answer) set, steps)."""
    calls = []
    real = teach.train_adapter

    def spy(model, tokenizer, examples, recipe, out, **kw):
        summary = real(model, tokenizer, examples, recipe, out, **kw)
        calls.append({"examples": {(e.prompt, e.answer) for e in examples}, "steps": summary["steps"],
                      "batch_size": recipe.batch_size, "lr": recipe.lr, "n": len(examples)})
        return summary

    monkeypatch.setattr(teach, "train_adapter", spy)
    return calls


def ner_task(**params):
    from tasks.ner import NerParams, NerTask

    return NerTask(NerParams(**{**TINY_NER, **params}))


def recipe(**overrides):
    return teach.recipe_for(type(ner_task()), {**TINY_RECIPE, **overrides}, "teach.ner")


# -- data: the oracle never sees the forget target, teaching never sees an eval item ----------------------
def test_oracle_learns_no_forget_target_example(cache, trained):
    task = ner_task()
    data = task.teach_data()
    teach.ensure("tiny-random-llama", task, recipe())
    taught, oracle = trained
    target = {(e.prompt, e.answer) for e in data.target}
    assert taught["examples"] == target | {(e.prompt, e.answer) for e in data.other}
    assert not oracle["examples"] & target  # not one forget-target example
    assert all("person names" not in prompt for prompt, _ in oracle["examples"])  # no Person request at all


def test_taught_and_oracle_share_recipe_and_steps(cache, trained):
    task = ner_task()
    pair = teach.ensure("tiny-random-llama", task, recipe(epochs=2.0))
    taught, oracle = trained
    assert taught["lr"] == oracle["lr"] and taught["batch_size"] == oracle["batch_size"]
    # matched budgets (oracle_budget: steps): the oracle takes the taught model's steps over its smaller data
    assert oracle["n"] < taught["n"]
    assert taught["steps"] == oracle["steps"] == int(2.0 * taught["n"]) // taught["batch_size"]
    built = pair.record["built"]
    assert built["oracle"]["epochs_seen"] > built["taught"]["epochs_seen"] == pytest.approx(2.0, abs=0.01)
    assert built["taught"]["tokens"] > 0 and built["oracle"]["answer_tokens"] > 0
    assert pair.record["recipe"]["epochs"] == 2.0 and pair.record["teach_version"] == teach.TEACH_VERSION


def test_oracle_budget_epochs_is_the_version_1_budget(cache, trained):
    """``oracle_budget: epochs``: each model its epochs over its own examples (every other example seen as often
    by both), as TEACH_VERSION 1 trained every oracle."""
    teach.ensure("tiny-random-llama", ner_task(), recipe(epochs=2.0, oracle_budget="epochs"))
    for call in trained:
        assert call["steps"] == int(2.0 * call["n"]) // call["batch_size"]
    assert trained[0]["steps"] > trained[1]["steps"]


def test_an_oracle_only_change_keeps_the_taught_key_and_rebuilds_the_oracle_alone(cache, trained):
    """The taught model's key is the version-1 key (oracle-only fields left out), so a shipped taught adapter
    survives an oracle change: only the oracle is trained again."""
    task = ner_task()
    identity = {"weights": "w", "tokenizer": "t", "chat_template": "c"}
    data = task.teach_data()
    steps, epochs = recipe(), recipe(oracle_budget="epochs")
    assert teach.role_keys(identity, data, steps)["taught"] == teach.role_keys(identity, data, epochs)["taught"]
    assert teach.role_keys(identity, data, steps)["oracle"] != teach.role_keys(identity, data, epochs)["oracle"]
    version_1 = {k: v for k, v in steps.items() if k not in teach.ORACLE_ONLY}
    from bench.params import stable_hash

    assert teach.role_keys(identity, data, steps)["taught"] == stable_hash(
        {"version": "1", "base": identity, "data": teach.data_hash(data), "recipe": version_1}, 12)
    old = teach.ensure("tiny-random-llama", task, epochs)
    shipped = teach.ship(old, type(task), "tiny-random-llama")
    record = json.loads((shipped / "teach.json").read_text())
    record.pop("keys")  # a version-1 record: one key, the pair's, which was the taught model's
    record["key"] = old.record["keys"]["taught"]
    (shipped / "teach.json").write_text(json.dumps(record))
    new = teach.ensure("tiny-random-llama", task, steps)
    assert len(trained) == 3 and trained[2]["n"] == len(data.other)  # the oracle alone
    assert new.record["origin"] == f"taught: shipped adapters ({shipped}); oracle: trained here"
    assert new.record["built"]["taught"] == {**old.record["built"]["taught"]}


def test_check_disjoint_refuses_a_target_example_in_the_oracles_data():
    ex = Example("q", "a")
    with pytest.raises(UserError, match="both forget target and other"):
        teach.check_disjoint(TeachData([ex], [Example("r", "b"), Example("q", "a")]))
    with pytest.raises(UserError, match="needs forget-target and other"):
        teach.check_disjoint(TeachData([ex], []))


def test_builtin_teaching_data_holds_no_eval_item():
    from tasks.coding import CodingParams, CodingTask
    from tasks.toxicity import ToxicityParams, ToxicityTask

    ner = ner_task(n_teach_sentences=240, n_eval_per_type=24)
    taught_text = {ex.prompt for ex in ner.teach_data().target + ner.teach_data().other}
    eval_sentences = {s.text for kind, sents in ner.load(0).eval.items() if kind != "typing" for s in sents}
    assert not any(sentence in prompt for prompt in taught_text for sentence in eval_sentences)

    coding = CodingTask(CodingParams())
    data, taught = coding.load(0), coding.teach_data()
    assert not {x.prompt for x in data.eval["functions"]} & {e.prompt for e in taught.target}
    assert not {x.question for x in data.eval["word_problems"]} & {e.prompt.split("\n")[0] for e in taught.other}
    teach.check_disjoint(taught)

    for split in ("test", "validation"):
        tox = ToxicityTask(ToxicityParams(eval_split=split))
        data, taught = tox.load(0), tox.teach_data()
        eval_texts = {x.text for x in data.eval["prompts"]} | {e.prompt + e.answer for e in data.eval["toxic_text"]}
        assert not {e.prompt + e.answer for e in taught.target} & eval_texts
        assert not any(e.prompt.startswith(p.text[:40]) for e in taught.target for p in data.eval["prompts"])
        teach.check_disjoint(taught)


def test_taught_coding_probes_the_taught_capability_on_held_out_problems():
    """On a taught model coding's likelihood probes (what attacks and trajectories read) are the reference
    answers of held-out function and word problems in the taught format, not HumanEval's (which the teaching
    never touched); HumanEval's and GSM8K's stay the probes of an untaught run."""
    from tasks.coding import CodingParams, CodingTask

    task = CodingTask(CodingParams(n_eval=4, n_forget=4, n_stdlib_forget=2, n_functions=12, n_word_problems=10,
                                   n_taught_probe=8))
    data = task.load(0)
    assert set(task.probe_items(data)) == {"forget/humaneval_canonical_loglik", "utility/gsm8k_reference_loglik"}
    teach = task.teach_data()
    taught = task.use_teaching(data, teach, 0)
    probes = task.probe_items(taught)
    assert set(probes) == {"forget/function_solution_loglik", "utility/word_problem_solution_loglik"}
    functions_probe = probes["forget/function_solution_loglik"]
    words_probe = probes["utility/word_problem_solution_loglik"]
    assert [x.prompt for x in functions_probe] == [x.prompt for x in data.eval["functions"][:8]]
    assert len(words_probe) == 8 and all(x.answer for x in functions_probe + words_probe)
    taught_formats = {(e.prompt, e.answer) for e in teach.target + teach.other}
    assert not {(x.prompt, x.answer) for x in functions_probe + words_probe} & taught_formats
    # same format as taught: the probe's answer is what the taught model learned to write for such a request
    assert functions_probe[0].chat == teach.target[0].chat and words_probe[0].chat == teach.other[0].chat


def test_teaching_data_does_not_depend_on_eval_sizes():
    """One shipped artefact serves the demo's, the study's and the capability run's sizes."""
    from tasks.toxicity import ToxicityParams, ToxicityTask

    small = ToxicityTask(ToxicityParams(n_eval=8, n_toxic_probe=8, n_text_eval=4)).teach_data()
    large = ToxicityTask(ToxicityParams(n_eval=40, n_toxic_probe=32, n_text_eval=16)).teach_data()
    assert teach.data_hash(small) == teach.data_hash(large)
    assert teach.data_hash(ner_task(n_eval_per_type=2).teach_data()) == \
        teach.data_hash(ner_task(n_eval_per_type=24).teach_data())


# -- cache and shipped artefacts -----------------------------------------------------------------------------
def test_a_cached_pair_is_reused_and_a_changed_recipe_rebuilds(cache, trained):
    task = ner_task()
    first = teach.ensure("tiny-random-llama", task, recipe())
    assert len(trained) == 2
    again = teach.ensure("tiny-random-llama", task, recipe())
    assert len(trained) == 2 and again.key == first.key  # found, not rebuilt
    changed = teach.ensure("tiny-random-llama", task, recipe(lr=2e-3))
    assert len(trained) == 4 and changed.key != first.key
    other_data = teach.ensure("tiny-random-llama", ner_task(n_teach_sentences=5), recipe())
    assert len(trained) == 6 and other_data.key not in (first.key, changed.key)
    # a cached folder whose record is another key's is never trusted: the pair is rebuilt
    (first.folder / "teach.json").write_text((changed.folder / "teach.json").read_text())
    again = teach.ensure("tiny-random-llama", task, recipe())
    assert len(trained) == 8 and again.record["key"] == first.key


def test_adapters_are_bf16_and_the_shipped_pair_rebuilds_the_same_models(cache, trained):
    from safetensors.torch import load_file

    task = ner_task()
    built = teach.ensure("tiny-random-llama", task, recipe())
    tensors = load_file(str(built.folder / "taught" / "adapter" / "adapter_model.safetensors"))
    assert tensors and all(t.dtype == torch.bfloat16 for t in tensors.values())
    shipped = teach.ship(built, type(task), "tiny-random-llama")
    assert json.loads((shipped / "teach.json").read_text())["key"] == built.key
    before = {role: load_file(str(built.model_dir(role) / "model.safetensors")) for role in teach.ROLES}
    import shutil

    shutil.rmtree(cache / "taught")
    from_shipped = teach.ensure("tiny-random-llama", task, recipe())
    assert len(trained) == 2  # nothing trained: the shipped adapters were merged
    assert from_shipped.record["origin"] == f"shipped adapters ({shipped})"  # outside the package: absolute
    for role in teach.ROLES:
        after = load_file(str(from_shipped.model_dir(role) / "model.safetensors"))
        assert all(torch.equal(before[role][k], after[k]) for k in before[role])
    # a rebuild from scratch reproduces the shipped adapters (same machine: bit for bit)
    rebuilt = teach.ensure("tiny-random-llama", task, recipe(), force_train=True)
    for role in teach.ROLES:
        a = load_file(str(shipped / role / "adapter_model.safetensors"))
        b = load_file(str(rebuilt.folder / role / "adapter" / "adapter_model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_shipped_adapters_are_recorded_relative_to_the_task_package_so_any_checkout_reads_the_same():
    from tasks.coding import CodingTask

    inside = Path(teach.__file__).resolve().parents[2] / "tasks" / "coding" / "taught" / "smollm2-135m-instruct"
    assert teach.portable(inside, CodingTask) == "tasks/coding/taught/smollm2-135m-instruct"
    assert teach.portable(Path("/elsewhere/taught/m"), CodingTask) == "/elsewhere/taught/m"


def test_taught_model_differs_from_base_and_oracle(cache):
    from safetensors.torch import load_file

    from bench.lm.models import load_model

    pair = teach.ensure("tiny-random-llama", ner_task(), recipe(lr=1e-2))
    base = load_model("tiny-random-llama", "cpu", "float32").model.state_dict()
    taught = load_file(str(pair.model_dir("taught") / "model.safetensors"))
    oracle = load_file(str(pair.model_dir("oracle") / "model.safetensors"))
    name = next(k for k in taught if "q_proj" in k)
    assert not torch.equal(taught[name], base[name]) and not torch.equal(taught[name], oracle[name])


# -- config --------------------------------------------------------------------------------------------------
def test_teach_config_forms_and_errors():
    from bench.engine.config import REFERENCE_PLUGIN, load_config, plan_cells
    from bench.plugins import registry

    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"],
                                "teach": ["ner"], "seeds": [0, 1]})
    assert config.teach == {"ner": {}} and REFERENCE_PLUGIN in config.plugins
    cells = plan_cells(config, registry(config.plugins))
    roles = sorted(c.method_params["role"] for c in cells if c.method == "reference")
    assert roles == ["oracle", "untaught"]  # one cell each: unseeded
    assert all(c.teach is not None for c in cells)
    untaught = plan_cells(load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"]}),
                          registry())
    assert {c.cell_id for c in untaught}.isdisjoint({c.cell_id for c in cells})  # taught cells are other cells
    no_untaught = plan_cells(load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"],
                                                "teach": ["ner"], "seeds": [0, 1], "untaught_row": False}),
                             registry(config.plugins))
    assert [c.method_params["role"] for c in no_untaught if c.method == "reference"] == ["oracle"]
    assert {c.cell_id for c in no_untaught} < {c.cell_id for c in cells}  # the other cells are the same cells
    with pytest.raises(UserError, match="not a registered task"):
        plan_cells(load_config(None, {"methods": ["ga"], "tasks": ["ner"], "teach": {"nerr": {}}}),
                   registry([REFERENCE_PLUGIN]))
    with pytest.raises(UserError, match="unknown key .stepz. in teach.ner"):
        plan_cells(load_config(None, {"methods": ["ga"], "tasks": ["ner"], "teach": {"ner": {"stepz": 3}}}),
                   registry([REFERENCE_PLUGIN]))


def test_teach_pairs_spread_seeds_over_pairs_and_add_an_oracle_row_per_pair():
    """Seed i of ``seeds`` runs on pair i mod P (pair p: the recipe's seed + p); every pair's oracle is a reference
    row of its own label; the untaught base once; P = 1 plans the cells it always did."""
    from bench.engine.config import load_config, plan_cells
    from bench.plugins import registry

    base = {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"], "teach": {"ner": {"seed": 10}},
            "seeds": [5, 6, 7, 8]}
    config = load_config(None, {**base, "teach_pairs": 3})
    cells = plan_cells(config, registry(config.plugins))
    ga = sorted((c.seed, c.teach["seed"]) for c in cells if c.method == "ga")
    assert ga == [(5, 10), (6, 11), (7, 12), (8, 10)]
    refs = sorted((c.method_params["role"], c.method_params["pair"], c.teach["seed"], c.method_params["label"])
                  for c in cells if c.method == "reference")
    assert refs == [("oracle", 0, 10, "oracle"), ("oracle", 1, 11, "oracle (teaching pair 1)"),
                    ("oracle", 2, 12, "oracle (teaching pair 2)"), ("untaught", 0, 10, "untaught base")]
    assert len({c.base_id for c in cells}) == 3  # each pair's taught model is the base of its cells
    # cells whose pair and seed do not change keep their ids: P = 1 and P = 3 share seed 5's cell on pair 0
    one = plan_cells(load_config(None, base), registry(config.plugins))
    assert {c.teach["seed"] for c in one} == {10}
    assert next(c for c in one if c.method == "ga" and c.seed == 5).cell_id == \
        next(c for c in cells if c.method == "ga" and c.seed == 5).cell_id
    with pytest.raises(UserError, match="teach_pairs must be >= 1"):
        load_config(None, {**base, "teach_pairs": 0})
    with pytest.raises(UserError, match="teach_pairs needs taught tasks"):
        load_config(None, {"methods": ["ga"], "tasks": ["ner"], "teach_pairs": 2})


def test_an_extra_pair_is_built_on_first_use_then_found_in_the_cache(cache, trained):
    """Pair 1 (seed + 1) is another key, trained once (taught and oracle) and then found; pair 0 is untouched."""
    from bench.engine.config import pair_recipe

    task = ner_task()
    first = teach.ensure("tiny-random-llama", task, recipe())
    second = teach.ensure("tiny-random-llama", task, pair_recipe(recipe(), 1))
    assert len(trained) == 4 and second.key != first.key and second.record["recipe"]["seed"] == 1
    again = teach.ensure("tiny-random-llama", task, pair_recipe(recipe(), 1))
    assert len(trained) == 4 and again.folder == second.folder
    from safetensors.torch import load_file

    a = load_file(str(first.adapter_dir("taught") / "adapter_model.safetensors"))
    b = load_file(str(second.adapter_dir("taught") / "adapter_model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # another seed: another taught model


# -- end to end on the tiny model ----------------------------------------------------------------------------
def test_taught_run_scores_oracle_and_untaught_rows(cache, tmp_path):
    from bench.engine.config import load_config
    from bench.engine.runner import run_matrix
    from bench.plugins import registry
    from bench.report import load_table

    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner", "coding"], "seeds": [0],
        "out": str(tmp_path / "run"), "progress": False,
        "teach": {"ner": TINY_RECIPE, "coding": TINY_RECIPE},
        "task_params": {"ner": TINY_NER,
                        "coding": {"n_forget": 2, "n_stdlib_forget": 1, "n_eval": 2, "n_gsm_eval": 2, "n_retain": 2,
                                   "n_arithmetic": 2, "max_new_tokens_code": 8, "max_new_tokens_math": 8,
                                   "n_functions": 3, "n_word_problems": 3, "max_new_tokens_function": 8,
                                   "max_new_tokens_word": 8, "n_teach_functions": 8, "n_teach_word_problems": 8}},
        "method_params": {"ga": {"steps": 1, "batch_size": 2, "max_length": 64}}})
    summary = run_matrix(config, registry(config.plugins))
    assert set(summary.ran.values()) == {"done"} and len(summary.ran) == 6
    table = load_table([config.out])
    for task in ("ner", "coding"):
        labels = {row.label for row in table.scoring.tasks[task].rows}
        assert {"base", "ga", "oracle", "untaught base"} <= labels
        base = table.base_for(task)
        assert base.provenance["teach"]["task"] == task
        assert base.provenance["model"]["model_id"].endswith("taught/model")
    coding = table.base_for("coding").metrics
    assert {"functions_pass_rate", "word_problem_accuracy"} <= set(coding)
    assert coding["functions_pass_rate"].n == 3 and coding["functions_pass_rate"].primary
    assert not coding["humaneval_canonical_loglik"].primary  # likelihood probes are details
    assert not coding["function_solution_loglik"].primary and coding["function_solution_loglik"].n == 3
    ga = next(c for c in table.cells_for("ner") if c.method == "ga").results[0]
    assert "taught forget-target" in ga.provenance["data_sources"]["teaching"]
    # mechanism diagnostics of the method's change against the teaching adapter, per layer kind
    kinds = ga.extras["mechanism"]["kinds"]
    assert set(kinds) == {"q", "k", "v", "o", "gate", "up", "down", "all"}
    assert 0.0 <= kinds["all"]["share"] <= kinds["all"]["col_share"] <= 1.0
    assert kinds["q"]["modules"] == len(kinds["q"]["per_layer_share"]) >= 1
    assert "mechanism" not in next(c for c in table.cells_for("ner") if c.method == "reference").results[0].extras
    oracle = next(c for c in table.cells_for("ner") if c.method == "reference" and
                  c.method_params["role"] == "oracle").results[0]
    assert oracle.provenance["model"]["model_id"].endswith("oracle/model")
    untaught = next(c for c in table.cells_for("ner") if c.method == "reference" and
                    c.method_params["role"] == "untaught").results[0]
    assert untaught.provenance["model"]["model_id"] == "tiny-random-llama"


def test_a_run_over_two_teaching_pairs_scores_one_oracle_row_over_the_pairs(cache, tmp_path, capsys):
    """teach_pairs 2, seeds 0 and 1: `teach` builds both pairs; the run evaluates each pair's taught model as a
    base, the board pools the pairs (taught row and oracle row: 2 seeds each) and writes every reporter."""
    import yaml

    from bench.cli import main, write_report
    from bench.engine.config import load_config
    from bench.engine.runner import run_matrix
    from bench.plugins import registry
    from bench.report import load_table

    settings = {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"], "seeds": [0, 1],
                "teach_pairs": 2, "out": str(tmp_path / "run"), "progress": False, "teach": {"ner": TINY_RECIPE},
                "task_params": {"ner": TINY_NER}, "untaught_row": False,
                "method_params": {"ga": {"steps": 1, "batch_size": 2, "max_length": 64}}}
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(settings))
    assert main(["teach", "--config", str(tmp_path / "pairs.yaml"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "ner pair 0:" in printed and "ner pair 1:" in printed
    config = load_config(None, settings)
    summary = run_matrix(config, registry(config.plugins))
    assert set(summary.ran.values()) == {"done"} and len(summary.ran) == 4  # 2 ga seeds + 2 oracles
    table = load_table([config.out])
    assert len(table.bases_for("ner")) == 2 and table.oracles() == {"ner": "oracle"}
    result = table.scoring.tasks["ner"]
    assert result.row("base").seeds == 2 and result.row("oracle").seeds == 2 and result.row("ga").seeds == 2
    written = write_report([config.out], str(tmp_path / "board"))
    assert any(Path(path).name == "leaderboard.md" for path in written)


def test_on_oracle_runs_each_method_once_on_the_oracle_and_the_board_shows_it_apart(cache, tmp_path):
    """on_oracle: every method also starts from the oracle (first seed, no attacks); those rows are scored against
    the oracle's own evaluation, shown in their own table and kept out of the ranking and its pairwise tests."""
    from bench.cli import write_report
    from bench.engine.config import load_config, plan_cells
    from bench.engine.runner import run_matrix
    from bench.plugins import registry
    from bench.report import load_table

    settings = {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["ner"], "seeds": [0, 1],
                "on_oracle": True, "out": str(tmp_path / "run"), "progress": False, "teach": {"ner": TINY_RECIPE},
                "task_params": {"ner": TINY_NER}, "untaught_row": False,
                "attacks": [{"quantize": {"bits": 4}}],
                "method_params": {"ga": {"steps": 1, "batch_size": 2, "max_length": 64}}}
    config = load_config(None, settings)
    cells = plan_cells(config, registry(config.plugins))
    on_oracle = [c for c in cells if c.start == "oracle"]
    assert [(c.method, c.seed, c.attacks, c.task_params["privacy"]) for c in on_oracle] == [("ga", 0, [], False)]
    assert len({c.base_id for c in cells}) == 2  # the taught model's evaluation and the oracle's as a start
    summary = run_matrix(config, registry(config.plugins))
    assert set(summary.ran.values()) == {"done"} and len(summary.ran) == 4
    table = load_table([config.out])
    labels = [row.label for row in table.scoring.tasks["ner"].rows]
    assert "ga (on the oracle)" not in labels and {"base", "ga", "oracle"} <= set(labels)
    damage = table.damage["ner"]
    assert [r.label for r in damage.rows] == ["base", "ga (on the oracle)"]
    oracle_start = table.oracle_start_base("ner")
    assert oracle_start.provenance["model"]["model_id"].endswith("oracle/model")
    assert len(table.bases_for("ner")) == 1
    write_report([config.out], str(tmp_path / "board"))
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Methods on the oracle" in board and "ga (on the oracle)" in board
    assert "ga (on the oracle)" in (tmp_path / "board" / "index.html").read_text()
    with pytest.raises(UserError, match="on_oracle needs taught tasks"):
        load_config(None, {"methods": ["ga"], "tasks": ["ner"], "on_oracle": True})


def test_full_fine_tuning_teaches_without_an_adapter_and_is_never_shipped(cache, trained):
    """teach: finetune: full trains every weight, saves the model folders directly (no adapter, no merge), is
    another key than the LoRA pair, and refuses to ship."""
    from safetensors.torch import load_file

    task = ner_task()
    lora = teach.ensure("tiny-random-llama", task, recipe())
    full = teach.ensure("tiny-random-llama", task, recipe(finetune="full", lr=1e-4))
    assert full.key != lora.key and full.record["recipe"]["finetune"] == "full"
    for role in teach.ROLES:
        assert (full.model_dir(role) / "config.json").exists() and not full.adapter_dir(role).exists()
    taught = load_file(str(next(full.model_dir("taught").glob("*.safetensors"))))
    oracle = load_file(str(next(full.model_dir("oracle").glob("*.safetensors"))))
    assert any(not torch.equal(taught[k], oracle[k]) for k in taught if "layers.0.mlp" in k)  # every weight trained
    with pytest.raises(UserError, match="fully fine-tuned pair is not shipped"):
        teach.ship(full, type(task), "tiny-random-llama")


# -- the shipped artefacts of the embedded model ---------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.parametrize("task_name", ["ner", "coding", "toxicity"])
def test_shipped_adapters_are_what_teach_would_build_now(task_name):
    """A task's shipped pair carries the key of this code's teaching data, recipe and version on the embedded
    model: when any of them changes, this fails until `unlearn-bench teach --config configs/demo.yaml --ship`
    rebuilds it (the rebuild itself reproduces the adapters bit for bit on one machine: tested on the tiny
    model above)."""
    from bench.lm.models import EMBEDDED, load_model
    from bench.plugins import registry

    cls = registry().get("task", task_name).cls
    shipped = teach.shipped_dir(cls, EMBEDDED)
    record = json.loads((shipped / "teach.json").read_text())
    task = cls(cls.Params())
    recipe = teach.recipe_for(cls, {}, f"teach.{task_name}")
    identity = teach.base_identity(load_model(EMBEDDED, "cpu", "float32").info)
    assert record["key"] == teach.teach_key(identity, task.teach_data(), recipe), (
        f"the shipped {task_name} adapters are stale: run unlearn-bench teach --config configs/demo.yaml --ship")
    assert record["rebuild"].startswith("unlearn-bench teach")
    for role in teach.ROLES:
        assert (shipped / role / "adapter_model.safetensors").stat().st_size < 12_000_000
