"""GSM8K-style exact match of a final number (unlearn-bench, task ``coding``).

Four answer extractions, all returned per item:

* ``harness`` — unlearn-bench's rule: the first number after the last "####", else the last number of the
  reply; both sides normalised as numbers ("1,000" = "1000", "18.0" = "18").
* ``strict`` — lm-evaluation-harness ``gsm8k`` "strict-match": the first match of ``#### (-?[0-9.,]+)``.
* ``flexible`` — lm-evaluation-harness ``gsm8k`` "flexible-extract": the last match of
  ``(-?[$0-9.,]{2,})|(-?[0-9]+)``.
* ``cot_strict`` — lm-evaluation-harness ``gsm8k_cot_llama`` "strict-match": the number after the last
  "The final answer is".
* ``last`` — the last number of the reply, normalised as a number (short answers, e.g. arithmetic).

``strict``, ``cot_strict`` and ``flexible`` are compared as lm-eval's ``exact_match`` does for gsm8k:
commas, "$", anything up to "#### " and a trailing "." removed from both sides, case ignored; a reply without a match is
"[invalid]".
"""

import re

import datasets
import evaluate

_CITATION = """\
@article{cobbe2021gsm8k,
  title = {Training Verifiers to Solve Math Word Problems},
  author = {Cobbe, Karl and others}, journal = {arXiv preprint arXiv:2110.14168}, year = {2021}}
"""

_INPUTS = """
Args:
    predictions: the model's replies.
    references: the gold answers (a number, or a GSM8K solution ending "#### N").
    extraction: which extraction gives ``accuracy`` and ``per_item`` (harness | strict | cot_strict | flexible | last;
        default harness); every extraction's accuracy and per-item results are returned as well.
Returns:
    accuracy, per_item (0/1), and for each extraction: <name>_accuracy, <name>_per_item, <name>_answers.
Example:
    >>> module.compute(predictions=["so #### 18"], references=["18"])["accuracy"]
    1.0
"""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_COT_STRICT = re.compile(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))")
_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")
INVALID = "[invalid]"


def normalise_number(text):
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else str(value)


def _gold_number(reference):
    return normalise_number(reference.split("####")[-1].strip())


def harness(reply):
    if "####" in reply:
        found = _NUMBER.findall(reply.split("####")[-1])
        if found:
            return normalise_number(found[0])
    found = _NUMBER.findall(reply)
    return normalise_number(found[-1]) if found else None


def last(reply):
    found = _NUMBER.findall(reply)
    return normalise_number(found[-1]) if found else None


def strict(reply):
    match = _STRICT.search(reply)
    return match.group(1) if match else INVALID


def _last_match(pattern, reply):
    """lm-eval's regex filter with ``group_select: -1``: the last match; of its groups the first non-empty."""
    matches = pattern.findall(reply)
    if not matches:
        return INVALID
    groups = matches[-1]
    return next((g for g in groups if g), groups[0]) if isinstance(groups, tuple) else groups


def flexible(reply):
    return _last_match(_FLEXIBLE, reply)


def cot_strict(reply):
    return _last_match(_COT_STRICT, reply)


def lm_eval_exact(answer, reference):
    def clean(text):
        for pattern in _IGNORE:
            text = re.sub(pattern, "", text)
        return text.lower()

    return clean(answer) == clean(reference)


EXTRACTIONS = {"harness": harness, "strict": strict, "cot_strict": cot_strict, "flexible": flexible, "last": last}
_LM_EVAL_STYLE = ("strict", "cot_strict", "flexible")


class Gsm8kExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation=_CITATION, inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, extraction="harness"):
        if extraction not in EXTRACTIONS:
            raise ValueError(f"extraction must be one of {sorted(EXTRACTIONS)}, got {extraction!r}")
        out = {}
        for name, extract in EXTRACTIONS.items():
            answers = [extract(p) for p in predictions]
            if name in _LM_EVAL_STYLE:
                gold = [r.split("####")[-1].strip() for r in references]
                ok = [float(lm_eval_exact(a, g)) for a, g in zip(answers, gold)]
            else:
                ok = [float(a is not None and a == _gold_number(r)) for a, r in zip(answers, references)]
            out[f"{name}_accuracy"] = sum(ok) / len(ok) if ok else 0.0
            out[f"{name}_per_item"] = ok
            out[f"{name}_answers"] = answers
        out["accuracy"], out["per_item"] = out[f"{extraction}_accuracy"], out[f"{extraction}_per_item"]
        return out
