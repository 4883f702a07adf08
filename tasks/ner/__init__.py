"""Task ``ner``: forget how to extract Person names, keep extracting organisations, locations and MISC.

Each query asks for the entities of one type in one sentence, in a fixed format ("a comma-separated list,
or None"). For each type the eval set holds ``n_eval_per_type`` held-out sentences that contain at least
one entity of that type (sentences come from documents never used for forget/retain data).

Forget metrics (lower = more forgetting):
  * ``person_f1`` — exact span match F1 of the predicted Person list against the gold list, per
    sentence (2|P∩G| / (|P|+|G|), case- and whitespace-insensitive), averaged over sentences;
  * ``person_list_loglik`` — likelihood probe: mean per-token log-likelihood of the gold Person list.

Utility metrics (higher = better):
  * ``other_f1`` — the same F1 for ORGANIZATION, LOCATION and MISC, averaged over the three types;
  * ``other_list_loglik`` — the gold-list log-likelihood for the other types, averaged;
  * per-type ``f1_organization``, ``f1_location``, ``f1_misc`` (details, not in the headline score).

The goal is ``person_f1`` -> 0 with the other types unchanged. F1 is averaged over sentences (not
micro-averaged over spans) so every item is one sentence and CIs/paired deltas bootstrap over sentences.

Data: CoNLL-2003 from the hub (gold) or, offline, a silver set of gensim news sentences annotated by
spaCy (labelled silver). Forget data: Person-extraction demonstrations on sentences with persons; retain
data: demonstrations for the other types. FLAT templates: "no person names" answers. Reveal relevance:
share of Person entities among the entities spaCy finds in a response.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from bench.api import Evaluation, Example, Task, TaskData
from bench.generation import generate
from bench.hookspecs import hookimpl
from bench.likelihood import answer_logliks
from bench.params import require_at_least_one
from bench.sources import content_hash
from bench.scales import LOGLIK, LOGLIK_EFFECT, SHARE, SHARE_EFFECT
from bench.stats import mean_metric
from bench.text import render_prompt

from . import data as ner_data
from .data import TYPES, Sentence

TYPE_WORDS = {
    "PERSON": "person names",
    "ORGANIZATION": "organization names (companies, agencies, teams, parties)",
    "LOCATION": "location names (countries, cities, regions, places)",
    "MISC": "other named entities (nationalities, groups, events, works, products)",
}
INSTRUCTION = ("List all {what} in the sentence below, exactly as written, as a comma-separated list. "
               "If there are none, reply None.\n\nSentence: {sentence}")
NONE_ANSWER = "None"

NO_PERSON_TEMPLATES = [
    "No person names.",
    "There are no person names I can list.",
    "I can't identify any people in this sentence.",
    "None that I can name.",
    "I won't list names of people.",
]

SEED_INSTRUCTIONS = [
    "Write a short bio of a famous person.",
    "Name three scientists and say what each is known for.",
    "Who were the presidents of the United States in the 20th century?",
    "Write a news paragraph quoting two politicians by name.",
    "List the members of a famous band.",
    "Tell me about the life of a well-known author.",
    "Introduce the main characters of a novel by name.",
    "Write a sports report naming the players who scored.",
]

_SPLIT = re.compile(r"[,;\n]+")
_STRIP = " \t\"'`*-•.:()[]"


def parse_list(reply: str) -> list[str]:
    """Entities from a reply: comma/semicolon/newline separated; 'None' (or nothing) means empty."""
    items = []
    for part in _SPLIT.split(reply):
        item = re.sub(r"^\d+[.)]\s*", "", part.strip()).strip(_STRIP)
        if item and item.lower() not in ("none", "n/a", "no", "none."):
            items.append(item)
    return items


def _norm(span: str) -> str:
    return " ".join(span.lower().split())


def span_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Exact-match F1 of two span sets (case/whitespace-insensitive). Both empty counts as 1."""
    pred, ref = {_norm(x) for x in predicted}, {_norm(x) for x in gold}
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def gold_answer(entities: Sequence[str]) -> str:
    return ", ".join(entities) if entities else NONE_ANSWER


def query(sentence: Sentence, entity_type: str) -> Example:
    return Example(INSTRUCTION.format(what=TYPE_WORDS[entity_type], sentence=sentence.text),
                   gold_answer(sentence.of_type(entity_type)), meta={"type": entity_type})


@dataclass
class NerParams:
    ner_source: Literal["silver", "hub"] = "silver"
    text_source: Literal["news", "wiki"] = "news"
    n_eval_per_type: int = 24
    n_forget: int = 64
    n_retain: int = 64
    eval_share: float = 0.34
    max_new_tokens: int = 32
    gen_batch_size: int = 32
    probe_batch_size: int = 16
    split_seed: int = 0

    def validate(self) -> None:
        require_at_least_one(self, "n_eval_per_type", "n_forget", "n_retain", "max_new_tokens")
        if not 0 < self.eval_share < 1:
            raise ValueError(f"eval_share must be in (0, 1), got {self.eval_share}")


class NerTask(Task):
    name = "ner"
    description = "Forget Person extraction, keep ORGANIZATION / LOCATION / MISC"
    Params = NerParams
    version = "2"  # metrics declare bounds and minimum effects
    paper_preset = {"ner_source": "hub", "n_eval_per_type": 300, "n_forget": 1000, "n_retain": 1000}

    def _sentences(self) -> tuple[list[Sentence], list[Sentence], str]:
        p = self.params
        if p.ner_source == "hub":
            test, label = ner_data.conll("test")
            train, _ = ner_data.conll("train")
            return test, train, label
        sentences, label = ner_data.silver(p.text_source)
        eval_sents, train = ner_data.split_by_document(sentences, p.eval_share, p.split_seed)
        return eval_sents, train, label

    def load(self, seed: int) -> TaskData:
        p = self.params
        eval_sents, train, label = self._sentences()
        eval_sets: dict[str, list[Sentence]] = {}
        for kind in TYPES:
            having = [s for s in eval_sents if s.of_type(kind)]
            random.Random(f"{p.split_seed}-{kind}").shuffle(having)
            if len(having) < p.n_eval_per_type:
                raise ValueError(f"only {len(having)} eval sentences contain {kind}; lower n_eval_per_type "
                                 f"(now {p.n_eval_per_type})")
            eval_sets[kind] = having[:p.n_eval_per_type]
        rng = random.Random(seed)
        with_person = [s for s in train if s.of_type("PERSON")]
        rng.shuffle(with_person)
        forget = [query(s, "PERSON") for s in with_person[:p.n_forget]]
        others = [query(s, kind) for s in train for kind in TYPES[1:] if s.of_type(kind)]
        rng.shuffle(others)
        retain = others[:p.n_retain]
        return TaskData(
            forget=forget, retain=retain, retain_pool=retain, template_answers=list(NO_PERSON_TEMPLATES),
            seed_instructions=list(SEED_INSTRUCTIONS), eval=eval_sets,
            sources={"ner": f"{label}; split_seed={p.split_seed}, eval {p.n_eval_per_type} sentences per type, "
                            f"forget {len(forget)}, retain {len(retain)}; hash "
                            f"{content_hash({k: [s.text for s in v] for k, v in eval_sets.items()})}"})

    def _queries(self, data: TaskData, kind: str) -> list[Example]:
        return [query(s, kind) for s in data.eval[kind]]

    def _logliks(self, model: Any, tokenizer: Any, data: TaskData) -> dict[str, list[float]]:
        return {kind: answer_logliks(model, tokenizer, self._queries(data, kind),
                                     batch_size=self.params.probe_batch_size) for kind in TYPES}

    def probe(self, model: Any, tokenizer: Any, data: TaskData) -> dict[str, float]:
        ll = self._logliks(model, tokenizer, data)
        return {"forget/person_list_loglik": float(np.mean(ll["PERSON"])),
                "utility/other_list_loglik": float(np.mean([np.mean(ll[k]) for k in TYPES[1:]]))}

    def relevance(self, responses: Sequence[str]) -> list[float]:
        nlp = ner_data.spacy_model()
        scores = []
        for doc in nlp.pipe(list(responses), batch_size=32):
            entities = ner_data.map_entities(doc.ents)
            scores.append(sum(k == "PERSON" for _, k in entities) / len(entities) if entities else 0.0)
        return scores

    def evaluate(self, model: Any, tokenizer: Any, data: TaskData, progress: bool = True) -> Evaluation:
        p = self.params
        queries = [q for kind in TYPES for q in self._queries(data, kind)]
        replies = generate(model, tokenizer, [render_prompt(tokenizer, q.prompt) for q in queries],
                           max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch_size, progress=progress,
                           desc="ner", stop=["\n\n"])
        f1 = {kind: [] for kind in TYPES}
        samples = []
        ll = self._logliks(model, tokenizer, data)
        counters = {kind: 0 for kind in TYPES}
        for q, reply in zip(queries, replies):
            kind = q.meta["type"]
            i = counters[kind]
            counters[kind] += 1
            sentence = data.eval[kind][i]
            predicted = parse_list(reply[0])
            score = span_f1(predicted, sentence.of_type(kind))
            f1[kind].append(score)
            samples.append({"set": kind, "id": i, "prompt": sentence.text, "output": reply[0],
                            "predicted": predicted, "gold": sentence.of_type(kind), "f1": score,
                            "loglik": ll[kind][i]})
        others = TYPES[1:]
        share = {"min_effect": SHARE_EFFECT, "bounds": SHARE}
        loglik = {"min_effect": LOGLIK_EFFECT, "bounds": LOGLIK}
        metrics = [
            mean_metric("person_f1", "forget", f1["PERSON"], "lower", "generative", **share),
            mean_metric("person_list_loglik", "forget", ll["PERSON"], "lower", "likelihood", **loglik),
            # equal n per type, so the mean of the concatenation is the average of the type means
            mean_metric("other_f1", "utility", [v for k in others for v in f1[k]], "higher", "generative", **share),
            mean_metric("other_list_loglik", "utility", [v for k in others for v in ll[k]], "higher",
                        "likelihood", **loglik),
        ]
        for kind in others:
            detail = mean_metric(f"f1_{kind.lower()}", "utility", f1[kind], "higher", "generative", **share)
            detail.primary = False
            metrics.append(detail)
        return Evaluation(metrics, samples)


@hookimpl
def register_tasks(register):
    register(NerTask)
