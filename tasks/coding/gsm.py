"""GSM8K (utility side of the coding task): loading from hub / local JSONL / GSM-symbolic, answer
extraction and scoring."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.sources import hub_reachable, hub_rows, read_jsonl

_CALC = re.compile(r"<<[^>]*>>")


@dataclass
class MathProblem:
    question: str
    solution: str  # step-by-step, ending "#### N"
    answer: str
    #: GSM-symbolic: the template the problem was drawn from (eval and retain never share one).
    template: str | None = None


#: Share of GSM-symbolic's templates reserved for evaluation (the rest give retain data).
EVAL_TEMPLATE_SHARE = 0.34


def clean_solution(text: str) -> str:
    """Drop GSM8K's calculator annotations ``<<2*3=6>>``: they are tool markup, not language."""
    return _CALC.sub("", text)


def gold_answer(solution: str) -> str:
    return normalise_number(solution.split("####")[-1].strip())


def normalise_number(text: str) -> str:
    text = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else str(value)


def score_answers(replies: list[str], answers: list[str], extraction: str = "harness") -> list[float]:
    """1.0/0.0 per reply: its extracted final number equals the answer (the ``gsm8k_exact_match`` evaluate
    module: "harness" = the number after "####", else the last number; "last" = the last number;
    "strict"/"flexible" = lm-evaluation-harness's gsm8k filters)."""
    from tasks import metrics

    return metrics.compute("gsm8k_exact_match", predictions=list(replies), references=list(answers),
                           extraction=extraction)["per_item"]


def _from_rows(rows: list[dict]) -> list[MathProblem]:
    out = []
    for r in rows:
        if "question" not in r or "answer" not in r:
            raise UserError("GSM8K rows need 'question' and 'answer' fields; check the data file")
        sol = clean_solution(r["answer"])
        out.append(MathProblem(r["question"], sol, gold_answer(sol)))
    return out


def _reasoning_gym():
    """reasoning-gym (the ``offline`` extra: it pins several small packages exactly, so it is not a core
    dependency)."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.path.expanduser("~"), ".cache", "matplotlib"))
    try:
        import reasoning_gym
        from reasoning_gym.arithmetic.gsm_symbolic import gsm_symbolic
    except ImportError:
        raise UserError("the offline GSM8K substitute GSM-symbolic needs reasoning-gym: pip install "
                        "'unlearn-bench[offline]', or give gsm8k_path (a local GSM8K) or gsm8k_source: hub") from None
    return reasoning_gym, gsm_symbolic


def _symbolic_templates(split_seed: int) -> tuple[set[int], set[int]]:
    """(eval templates, retain templates): a seeded partition of GSM-symbolic's usable templates."""
    tasks_ok = _reasoning_gym()[1].tasks_ok

    templates = sorted(tasks_ok)
    random.Random(split_seed).shuffle(templates)
    cut = max(1, round(len(templates) * EVAL_TEMPLATE_SHARE))
    return set(templates[:cut]), set(templates[cut:])


def _symbolic(n: int, seed: int, templates: set[int]) -> list[MathProblem]:
    """``n`` GSM-symbolic problems drawn only from ``templates`` (the dataset's own seeded stream)."""
    reasoning_gym = _reasoning_gym()[0]
    ds = reasoning_gym.create_dataset("gsm_symbolic", size=4 * n + 64, seed=seed)
    out = []
    for i, template in enumerate(ds.task_indices):
        if template in templates:
            x = ds[i]
            out.append(MathProblem(x["question"], x["metadata"]["answer_cot"], normalise_number(str(x["answer"])),
                                   template=f"gsm_symbolic/{template}"))
            if len(out) == n:
                return out
    raise UserError(f"GSM-symbolic gave only {len(out)} of {n} problems from its {len(templates)} templates; "
                    "lower n_gsm_eval / n_retain")


def load_gsm(source: str, path: str | None, n_eval: int, n_train: int, split_seed: int
             ) -> tuple[list[MathProblem], list[MathProblem], str]:
    """Return (eval problems, train problems, source label).

    ``source``: ``auto`` (local path if given, hub if reachable, else GSM-symbolic), ``local``, ``hub``,
    ``symbolic``.
    """
    if source == "auto":
        source = "local" if path else ("hub" if hub_reachable() else "symbolic")
    if source == "local":
        if not path:
            raise UserError("gsm8k_source 'local' needs gsm8k_path (a folder with test.jsonl/train.jsonl)")
        folder = Path(path)
        test, train = _from_rows(read_jsonl(folder / "test.jsonl")), _from_rows(read_jsonl(folder / "train.jsonl"))
        label = f"GSM8K (local {folder.resolve()})"
    elif source == "hub":
        test = _from_rows(hub_rows("openai/gsm8k", "test", "main"))
        train = _from_rows(hub_rows("openai/gsm8k", "train", "main"))
        label = "GSM8K (hub openai/gsm8k)"
    elif source == "symbolic":
        eval_templates, retain_templates = _symbolic_templates(split_seed)
        test = _symbolic(n_eval, 1000 + split_seed, eval_templates)
        train = _symbolic(n_train, 2000 + split_seed, retain_templates)
        label = (f"GSM-symbolic (reasoning-gym gsm_symbolic; offline substitute for GSM8K; eval and retain from "
                 f"disjoint templates, {len(eval_templates)} / {len(retain_templates)})")
    else:
        raise UserError(f"unknown gsm8k_source '{source}'; use auto, local, hub or symbolic")
    return test[:n_eval], train[:n_train], label


# -- an easier math set, beside GSM8K -------------------------------------------------------------------
ARITHMETIC_OPS = ("+", "-", "*")


def arithmetic_problems(n: int, seed: int) -> list[MathProblem]:
    """Two-number arithmetic questions generated by this project (not GSM8K): a + b or a − b with a in
    2..20 and b in 2..9 (never negative), or a product of two one-digit numbers. A math utility that a 135M
    model answers above the floor and below the ceiling (SmolLM2-135M-Instruct: 0.57 [0.43, 0.69] on 60
    such questions; two-digit operands give 0.22, mostly wrong sums), where GSM8K's word problems sit at
    0 %; labelled as such in results."""
    rng = random.Random(f"arithmetic-{seed}")
    out = []
    for _ in range(n):
        op = rng.choice(ARITHMETIC_OPS)
        a, b = (rng.randint(2, 9) if op == "*" else rng.randint(2, 20)), rng.randint(2, 9)
        if op == "-" and b > a:
            a, b = b, a
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        question = f"What is {a} {'×' if op == '*' else op} {b}? Reply with the number only."
        out.append(MathProblem(question, f"{a} {op} {b} = {answer}\n#### {answer}", str(answer), template=f"arithmetic/{op}"))
    return out
