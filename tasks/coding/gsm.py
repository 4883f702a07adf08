"""GSM8K (utility side of the coding task): loading from hub / local JSONL / GSM-symbolic, answer
extraction and scoring."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bench import UserError, chat_messages, hub_rows, raw_context, read_jsonl
from bench.data.sources import hub_reachable
from bench.engine.provenance import dataset_checksum

_CALC = re.compile(r"<<[^>]*>>")


@dataclass
class MathProblem:
    question: str
    solution: str  # step-by-step, ending "#### N"
    answer: str
    #: GSM-symbolic: the template the problem was drawn from (eval and retain never share one).
    template: str | None = None
    #: The solution exactly as the dataset gives it (GSM8K's calculator annotations kept): lm-evaluation-
    #: harness's ``gsm8k`` shows it verbatim in its few-shot examples and reads the gold answer from it.
    reference: str = ""


#: GSM-symbolic problems drawn from the retain templates at least (the few-shot pool; retain takes a prefix).
SYMBOLIC_POOL = 32
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
        out.append(MathProblem(r["question"], sol, gold_answer(sol), reference=r["answer"]))
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
            solution = x["metadata"]["answer_cot"]
            out.append(MathProblem(x["question"], solution, normalise_number(str(x["answer"])),
                                   template=f"gsm_symbolic/{template}", reference=solution))
            if len(out) == n:
                return out
    raise UserError(f"GSM-symbolic gave only {len(out)} of {n} problems from its {len(templates)} templates; "
                    "lower n_gsm_eval / n_retain")


def load_gsm(source: str, path: str | None, n_eval: int, n_train: int, split_seed: int, eval_split: str = "test"
             ) -> tuple[list[MathProblem], list[MathProblem], str]:
    """Return (eval problems, train problems, source label). The train problems are the whole train split
    (the few-shot pool of lm-eval's ``gsm8k``); retain data takes its first ``n_train``. The validation split
    is the next ``n_eval`` test problems (GSM-symbolic: a second stream of the eval templates, without the
    test questions).

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
        label = f"GSM8K (local copy; test.jsonl sha256 {dataset_checksum(folder)})"  # no path of this machine
    elif source == "hub":
        test = _from_rows(hub_rows("openai/gsm8k", "test", "main"))
        train = _from_rows(hub_rows("openai/gsm8k", "train", "main"))
        label = "GSM8K (hub openai/gsm8k)"
    elif source == "symbolic":
        eval_templates, retain_templates = _symbolic_templates(split_seed)
        test = _symbolic(n_eval, 1000 + split_seed, eval_templates)
        if eval_split == "validation":
            seen = {x.question for x in test}
            test += [x for x in _symbolic(2 * n_eval, 3000 + split_seed, eval_templates) if x.question not in seen]
        train = _symbolic(max(n_train, SYMBOLIC_POOL), 2000 + split_seed, retain_templates)
        label = (f"GSM-symbolic (reasoning-gym gsm_symbolic; offline substitute for GSM8K; eval and retain from "
                 f"disjoint templates, {len(eval_templates)} / {len(retain_templates)})")
    else:
        raise UserError(f"unknown gsm8k_source '{source}'; use auto, local, hub or symbolic")
    if eval_split == "validation":
        if len(test) < 2 * n_eval:
            raise UserError(f"{label} has {len(test)} eval problems, fewer than n_gsm_eval x 2 (test and "
                            "validation); lower n_gsm_eval")
        return test[n_eval:2 * n_eval], train, label
    return test[:n_eval], train, label


# -- GSM8K as lm-evaluation-harness runs it ---------------------------------------------------------------
#: lm-eval's default ``fewshot_random_seed`` (``simple_evaluate``): its sampler is ``random.Random(1234)``,
#: drawing each evaluated document's shots in document order from the whole train split.
LM_EVAL_FEWSHOT_SEED = 1234
COT_PROMPT = ("Given the following problem, reason and give a final answer to the problem.\nProblem: {question}\n"
              "Your response should end with \"The final answer is [answer]\" where [answer] is the response to "
              "the problem.\n")


@dataclass(frozen=True)
class GsmProtocol:
    """How GSM8K is asked and scored, after one of lm-evaluation-harness's tasks (0.4.13).

    ``gsm8k``: plain text, ``num_fewshot`` = 5 shots ``Question: …\nAnswer: <solution>`` separated by a blank
    line, shots drawn at random from the train split (seed 1234, in document order); stops at "Question:";
    strict-match = the number after "#### ", flexible-extract = the last number.
    ``gsm8k_cot_llama``: the chat variant with chain of thought — the 8 exemplars of Wei et al. 2022 as
    earlier user/assistant turns of the chat template (lm-eval's ``--apply_chat_template
    --fewshot_as_multiturn``); strict-match = the number after the last "The final answer is".
    """

    name: str
    num_fewshot: int
    chat: bool
    stops: tuple[str, ...]
    strict: str  # the ``gsm8k_exact_match`` extraction behind strict-match

    def prompts(self, tokenizer: object, problems: list[MathProblem], pool: list[MathProblem]) -> list[str]:
        if self.chat:
            return [_cot_chat_prompt(tokenizer, p.question, self.num_fewshot) for p in problems]
        rnd = random.Random(LM_EVAL_FEWSHOT_SEED)
        if len(pool) < self.num_fewshot:
            raise UserError(f"GSM8K few-shot needs {self.num_fewshot} train problems, the train split has "
                            f"{len(pool)}; raise n_retain or use gsm8k_protocol: gsm8k_cot_llama")
        out = []
        for problem in problems:
            shots = rnd.sample(pool, self.num_fewshot)
            context = "".join(f"Question: {s.question}\nAnswer: {s.reference or s.solution}\n\n" for s in shots)
            out.append(raw_context(context + f"Question: {problem.question}\nAnswer:"))
        return out


def _cot_exemplars() -> list[dict[str, str]]:
    import json

    return json.loads((Path(__file__).parent / "data" / "gsm8k_cot_exemplars.json").read_text())["exemplars"]


def _cot_chat_prompt(tokenizer: object, question: str, num_fewshot: int) -> str:
    messages = []
    for shot in _cot_exemplars()[:num_fewshot]:
        messages += [{"role": "user", "content": COT_PROMPT.format(question=shot["question"])},
                     {"role": "assistant", "content": shot["target"]}]
    messages.append({"role": "user", "content": COT_PROMPT.format(question=question)})
    return tokenizer.apply_chat_template(chat_messages(messages), add_generation_prompt=True,  # type: ignore[attr-defined]
                                         tokenize=False)


PROTOCOLS = {
    "gsm8k": GsmProtocol("gsm8k", 5, False, ("Question:", "</s>", "<|im_end|>"), "strict"),
    "gsm8k_cot_llama": GsmProtocol("gsm8k_cot_llama", 8, True,
                                   ("<|eot_id|>", "<|start_header_id|>user<|end_header_id|>", "Q:", "</s>",
                                    "<|im_end|>"), "cot_strict"),
}


def lm_eval_gold(problem: MathProblem) -> str:
    """The gold answer as lm-eval's gsm8k reads it: the text after the last "####" of the solution."""
    return (problem.reference or problem.solution).split("####")[-1].strip()


def score_protocol(protocol: GsmProtocol, replies: list[str], problems: list[MathProblem]) -> dict[str, list[float]]:
    """Per-item strict-match and flexible-extract (lm-eval's two filters), and the extracted answers."""
    from tasks import metrics

    references = [lm_eval_gold(p) for p in problems]
    out = metrics.compute("gsm8k_exact_match", predictions=list(replies), references=references,
                          extraction=protocol.strict)
    return {"strict": out["per_item"], "flexible": out["flexible_per_item"],
            "strict_answers": out[f"{protocol.strict}_answers"], "flexible_answers": out["flexible_answers"]}


# -- an easier math set, beside GSM8K -------------------------------------------------------------------
ARITHMETIC_OPS = ("+", "-", "*")


def arithmetic_problems(n: int, seed: int, eval_split: str = "test") -> list[MathProblem]:
    """Two-number arithmetic questions generated by this project (not GSM8K): a + b or a − b with a in
    2..20 and b in 2..9 (never negative), or a product of two one-digit numbers. A math utility that a 135M
    model answers above the floor and below the ceiling (SmolLM2-135M-Instruct: 0.57 [0.43, 0.69] on 60
    such questions; two-digit operands give 0.22, mostly wrong sums), where GSM8K's word problems sit at
    0 %; labelled as such in results. The validation split is another stream without the test questions."""
    if eval_split == "validation":
        seen = {x.question for x in arithmetic_problems(n, seed)}
        fresh = [x for x in _arithmetic_stream(f"arithmetic-validation-{seed}", 20 * n) if x.question not in seen]
        return fresh[:n]
    return _arithmetic_stream(f"arithmetic-{seed}", n)


def _arithmetic_stream(name: str, n: int) -> list[MathProblem]:
    rng = random.Random(name)
    out = []
    for _ in range(n):
        op = rng.choice(ARITHMETIC_OPS)
        a, b = (rng.randint(2, 9) if op == "*" else rng.randint(2, 20)), rng.randint(2, 9)
        if op == "-" and b > a:
            a, b = b, a
        answer = a + b if op == "+" else a - b if op == "-" else a * b
        question = f"What is {a} {'×' if op == '*' else op} {b}? Reply with the number only."
        out.append(MathProblem(question, f"{a} {op} {b} = {answer}\n#### {answer}", str(answer),
                               template=f"arithmetic/{op}"))
    return out
