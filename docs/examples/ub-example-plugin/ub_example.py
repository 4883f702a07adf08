"""An unlearn-bench plugin in one file: a method, a task and a reporter.

* ``capped_ga`` — gradient ascent that stops pushing once the forget CE passes a ceiling:
  L = −min(CE_forget, c). Beyond the ceiling the loss is constant, so the gradient vanishes and the
  model is not driven further into collapse.
* ``capitals`` — forget a few capital cities, keep other facts (likelihood metrics).
* ``summary`` — a plain-text reporter writing ``summary.txt``.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from bench import (
    Evaluation,
    Example,
    LossMethod,
    Reporter,
    Task,
    TaskData,
    TrainParams,
    answer_logliks,
    cross_entropy,
    hookimpl,
    logits,
    mean_metric,
)


@dataclass
class CappedGAParams(TrainParams):
    ce_ceiling: float = 15.0

    def validate(self):
        super().validate()
        if self.ce_ceiling <= 0:
            raise ValueError("ce_ceiling must be > 0")


class CappedGA(LossMethod):
    name = "capped_ga"
    Params = CappedGAParams

    def loss(self, model, forget, retain):
        ce = cross_entropy(logits(model, forget), forget.labels)
        return -torch.clamp(ce, max=self.params.ce_ceiling), {"forget_ce": ce.item()}


@dataclass
class CapitalsParams:
    n: int = 4


FORGET = [("What is the capital of Peru?", "Lima."), ("What is the capital of Kenya?", "Nairobi."),
          ("What is the capital of Norway?", "Oslo."), ("What is the capital of Chile?", "Santiago.")]
KEEP = [("How many legs does a spider have?", "Eight."), ("What gas do plants absorb?", "Carbon dioxide."),
        ("What is frozen water called?", "Ice."), ("How many hours are in a day?", "Twenty-four.")]


class Capitals(Task):
    name = "capitals"
    Params = CapitalsParams

    def load(self, seed):
        forget = [Example(q, a) for q, a in FORGET[: self.params.n]]
        retain = [Example(q, a) for q, a in KEEP[: self.params.n]]
        return TaskData(forget=forget, retain=retain, template_answers=["I don't know."],
                        eval={"forget": forget, "retain": retain}, sources={"capitals": "ub_example inline"})

    def probe(self, model, tokenizer, data):
        f = answer_logliks(model, tokenizer, data.eval["forget"])
        r = answer_logliks(model, tokenizer, data.eval["retain"])
        return {"forget/capital_loglik": sum(f) / len(f), "utility/other_loglik": sum(r) / len(r)}

    def evaluate(self, model, tokenizer, data, progress=True, reference=None):
        f = answer_logliks(model, tokenizer, data.eval["forget"])
        r = answer_logliks(model, tokenizer, data.eval["retain"])
        return Evaluation([mean_metric("capital_loglik", "forget", f, "lower", "likelihood"),
                           mean_metric("other_loglik", "utility", r, "higher", "likelihood")])

    def relevance(self, responses):
        return [float(any(c in r for c in ("Lima", "Nairobi", "Oslo", "Santiago"))) for r in responses]


class Summary(Reporter):
    name = "summary"

    def write(self, table, out_dir):
        lines = [f"{c.task} {c.method}: {c.status}" for c in table.cells]
        path = Path(out_dir) / "summary.txt"
        path.write_text("\n".join(lines) + "\n")
        return [path]


@hookimpl
def register_methods(register):
    register(CappedGA)


@hookimpl
def register_tasks(register):
    register(Capitals)


@hookimpl
def register_reporters(register):
    register(Summary)
