"""Corpus micro span-F1 of extracted entity lists (unlearn-bench, task ``ner``).

Exact span match, case- and whitespace-insensitive, per item (one sentence and one entity type): true
positives are predicted spans that are gold spans, false positives the other predicted spans, false
negatives the gold spans not predicted. The aggregate is micro-averaged over the corpus as in
conlleval/seqeval: 2·ΣTP / (2·ΣTP + ΣFP + ΣFN). Per item it returns the sentence's F1 and its weight
2TP+FP+FN, whose weighted mean is the micro-F1 (so bootstraps can resample sentences).
"""

import datasets
import evaluate

_CITATION = """\
@inproceedings{tjong-kim-sang-de-meulder-2003-introduction,
  title = {Introduction to the {C}o{NLL}-2003 Shared Task: Language-Independent Named Entity Recognition},
  author = {Tjong Kim Sang, Erik F. and De Meulder, Fien},
  booktitle = {Proceedings of CoNLL-2003}, year = {2003}}
"""

_INPUTS = """
Args:
    predictions: for each item, the list of predicted entity strings.
    references: for each item, the list of gold entity strings.
Returns:
    micro_f1, tp, fp, fn (corpus totals), per_item (F1 per item; 1.0 when both lists are empty) and
    weights (2TP+FP+FN per item).
Example:
    >>> module.compute(predictions=[["A", "B"], []], references=[["a"], ["C", "D"]])["micro_f1"]  # 2/(2+1+2)
    0.4
"""


def _norm(span):
    return " ".join(span.lower().split())


def counts(predicted, gold):
    pred, ref = {_norm(x) for x in predicted}, {_norm(x) for x in gold}
    tp = len(pred & ref)
    return tp, len(pred) - tp, len(ref) - tp


class NerSpanF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references):
        per_item, weights, totals = [], [], [0, 0, 0]
        for predicted, gold in zip(predictions, references):
            tp, fp, fn = counts(predicted, gold)
            weight = 2 * tp + fp + fn
            per_item.append(2 * tp / weight if weight else 1.0)
            weights.append(float(weight))
            totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        tp, fp, fn = totals
        micro = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
        return {"micro_f1": micro, "tp": tp, "fp": fp, "fn": fn, "per_item": per_item, "weights": weights}
