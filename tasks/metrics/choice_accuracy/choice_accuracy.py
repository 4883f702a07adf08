"""Multiple-choice accuracy from option log-likelihoods, as lm-evaluation-harness scores it (unlearn-bench,
task ``ner`` entity typing).

``acc``: the option with the highest summed log-likelihood is the answer. ``acc_norm``: the highest
log-likelihood per byte of the option's text (lm-eval's length normalisation).
"""

import datasets
import evaluate

_CITATION = """\
@misc{eval-harness,
  title = {A framework for few-shot language model evaluation},
  author = {Gao, Leo and others}, publisher = {Zenodo}, year = {2023}, doi = {10.5281/zenodo.10256836}}
"""

_INPUTS = """
Args:
    predictions: for each item, the summed log-likelihood of every option.
    references: for each item, the index of the gold option.
    option_bytes: for each item, the length in bytes of every option's text (needed for acc_norm).
    normalise: which accuracy gives ``accuracy``/``per_item`` (default True: acc_norm).
Returns:
    acc, acc_norm, accuracy, per_item (0/1), chosen (the chosen option index per item).
Example:
    >>> module.compute(predictions=[[-1.0, -4.0]], references=[0], option_bytes=[[6, 12]])["acc"]
    1.0
"""


def _argmax(values):
    return max(range(len(values)), key=lambda i: values[i])


class ChoiceAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, option_bytes=None, normalise=True):
        raw = [_argmax(p) for p in predictions]
        lengths = option_bytes or [[1] * len(p) for p in predictions]
        norm = [_argmax([v / n for v, n in zip(p, ls)]) for p, ls in zip(predictions, lengths)]
        acc = [float(c == r) for c, r in zip(raw, references)]
        acc_norm = [float(c == r) for c, r in zip(norm, references)]
        chosen, per_item = (norm, acc_norm) if normalise else (raw, acc)
        mean = (lambda v: sum(v) / len(v) if v else 0.0)
        return {"acc": mean(acc), "acc_norm": mean(acc_norm), "accuracy": mean(per_item), "per_item": per_item,
                "chosen": chosen}
