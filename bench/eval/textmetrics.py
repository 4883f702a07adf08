"""Text metrics: overlap between a generated continuation and a reference (token F1, sentence BLEU), and the
collapse check's ``degenerate`` output test."""

from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN = re.compile(r"\w+|[^\w\s]")
#: The detail metric every built-in task reports for the collapse check (``bench.report.scores``): per forget
#: prompt, the share of its outputs that are ``degenerate``.
COLLAPSE_METRIC = "forget_output_degenerate"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over lower-cased word/punctuation tokens (multiset overlap)."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def sentence_bleu(prediction: str, reference: str, max_n: int = 4) -> float:
    """BLEU-4 of one sentence with add-one smoothing of the n-gram precisions for n > 1 (Lin & Och 2004)."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        pred_ngrams = Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
        ref_ngrams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        matches = sum((pred_ngrams & ref_ngrams).values())
        total = max(sum(pred_ngrams.values()), 0)
        if n == 1:
            if matches == 0:
                return 0.0
            log_precision += math.log(matches / total)
        else:
            log_precision += math.log((matches + 1) / (total + 1))
    brevity = 1.0 if len(pred) > len(ref) else math.exp(1 - len(ref) / len(pred))
    return brevity * math.exp(log_precision / max_n)


_WORD = re.compile(r"[^\W_]{2,}")


def degenerate(text: str, well_formed: bool = True) -> bool:
    """Whether an output is degenerate — the collapse check's unit (``bench.report.scores.COLLAPSE_METRIC``):

    * empty, or without a single word of two letters or digits (silence, punctuation, stray symbols);
    * a repetition loop: at least 8 tokens of which one token makes up more than half, or whose distinct
      bigrams are under 30 % of its bigrams (Li et al.'s distinct-2, as the toxicity task reports it);
    * mostly replacement characters (undecodable bytes): more than 20 % U+FFFD;
    * not in the task's format (``well_formed`` False: e.g. an NER reply that is not a list or "None").

    Deliberately crude: it must flag what a collapsed model writes, not judge what a working one says; a task
    whose oracle writes such output at some rate is compared against that rate, not against 0."""
    stripped = text.strip()
    if not stripped or not _WORD.search(stripped) or not well_formed:
        return True
    if stripped.count("\ufffd") > 0.2 * len(stripped):
        return True
    toks = tokens(stripped)
    if len(toks) >= 8:
        if Counter(toks).most_common(1)[0][1] > len(toks) / 2:
            return True
        bigrams = list(zip(toks, toks[1:]))
        if len(set(bigrams)) < 0.3 * len(bigrams):
            return True
    return False
