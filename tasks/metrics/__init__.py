"""The built-in tasks' answer-scoring metrics as local Hugging Face ``evaluate`` modules.

Each folder is a module that ``evaluate.load(<folder>)`` loads offline (no hub access), so a number on a
leaderboard can be recomputed outside the harness from ``samples.jsonl`` (see ``docs/tasks.md``). The tasks
compute their metrics through these same modules (``load``), and every module returns per-item values
beside its aggregate, so bootstraps and paired deltas keep working.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent
MODULES = ("ner_span_f1", "humaneval_pass_at_k", "gsm8k_exact_match", "toxicity_aggregates", "choice_accuracy")


def path(name: str) -> Path:
    """The folder of a module (what ``evaluate.load`` takes)."""
    if name not in MODULES:
        raise KeyError(f"unknown metric module {name!r}; known: {', '.join(MODULES)}")
    return FOLDER / name


@cache
def load(name: str) -> Any:
    """The module, loaded once per process (kept in memory: nothing is written to the metrics cache)."""
    import evaluate

    return evaluate.load(str(path(name)), keep_in_memory=True)


def compute(name: str, **inputs: Any) -> dict[str, Any]:
    return load(name).compute(**inputs)


def multiple_choice(model: Any, tokenizer: Any, prompts: list[str], options: list[list[str]], gold: list[int],
                    batch_size: int) -> tuple[list[int], list[float], list[list[float]]]:
    """lm-eval-style multiple choice scored by the ``choice_accuracy`` module's ``acc_norm``: (chosen option,
    1/0 correct, the options' summed log-likelihoods) per item. Prompts are already rendered."""
    from bench.lm.likelihood import choose

    scores = choose(model, tokenizer, prompts, options, batch_size=batch_size)
    result = compute("choice_accuracy", predictions=scores, references=gold,
                     option_bytes=[[len(o.encode("utf-8")) for o in opts] for opts in options])
    return list(result["chosen"]), list(result["per_item"]), scores


def likelihoods_as_details(metrics: list[Any]) -> list[Any]:
    """Mark the likelihood probes non-primary and return ``metrics``: the tasks' real metrics (span-F1, pass
    rates, accuracies, toxicity) decide F and U; a probe's log-likelihood stays on the board as a detail, in
    methods' trajectories and as the attacks' forget probe, but a method that only lowers the likelihood of
    reference answers, without changing what the model does, is not scored as forgetting."""
    for metric in metrics:
        if metric.kind == "likelihood":
            metric.primary = False
    return metrics
