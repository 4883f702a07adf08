"""Metric functions on hand-made examples: bootstrap CI, pass@k, GSM answers, code extraction."""

import math

import pytest

from bench.eval.stats import attach_delta, bootstrap_ci, mean_metric, significant
from tasks.coding import gsm, humaneval


def test_bootstrap_ci_contains_mean_and_is_deterministic():
    values = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    low, high = bootstrap_ci(values)
    assert low < 0.7 < high
    assert (low, high) == bootstrap_ci(values)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_ci([5.0]) == (5.0, 5.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_paired_delta_is_tight_when_every_item_moves():
    base = mean_metric("m", "forget", [1.0, 2.0, 3.0, 4.0], "lower")
    after = mean_metric("m", "forget", [0.5, 1.5, 2.5, 3.5], "lower")
    attach_delta(after, base)
    assert after.delta == pytest.approx(-0.5)
    assert after.delta_ci_low == pytest.approx(-0.5) and after.delta_ci_high == pytest.approx(-0.5)
    assert significant(after.delta_ci_low, after.delta_ci_high)
    assert not significant(-0.1, 0.2)


def test_pass_at_k_is_human_evals_unbiased_estimator():
    from tasks import metrics

    def pass_at(samples, correct, k):
        runs = [[True] * correct + [False] * (samples - correct)]
        return metrics.compute("humaneval_pass_at_k", predictions=runs, references=["t"], k=[k])[f"pass@{k}"]

    assert pass_at(1, 1, 1) == 1.0 and pass_at(1, 0, 1) == 0.0
    assert pass_at(10, 3, 1) == pytest.approx(0.3)
    assert pass_at(10, 3, 2) == pytest.approx(1 - 21 / 45)  # 1 - C(7,2)/C(10,2)
    assert pass_at(5, 4, 2) == 1.0
    with pytest.raises(ValueError, match="at least 3 samples"):
        pass_at(2, 1, 3)


@pytest.mark.parametrize("reply, harness, strict, flexible", [
    ("3 + 4 = 7\n#### 7", "7", "7", "7"),
    ("The answer is #### 1,234.", "1234", "1,234.", "1,234."),
    ("First 2 apples, then 5 more: total 7 apples.", "7", "[invalid]", "7"),
    ("#### $18.00", "18", "[invalid]", "$18.00"),
    ("no numbers here", None, "[invalid]", "[invalid]"),
    ("x is -3.5", "-3.5", "[invalid]", "-3.5"),
])
def test_gsm_answer_extractions(reply, harness, strict, flexible):
    from tasks import metrics

    out = metrics.compute("gsm8k_exact_match", predictions=[reply], references=["0"])
    assert (out["harness_answers"][0], out["strict_answers"][0], out["flexible_answers"][0]) == (harness, strict,
                                                                                                flexible)


def test_gsm_scoring_and_cleaning():
    assert gsm.score_answers(["so #### 18", "so #### 17", "#### 1,000.", "it is 18"], ["18"] * 2 + ["1000", "18"]) \
        == [1.0, 0.0, 1.0, 1.0]
    # lm-eval's strict-match needs "#### N"; flexible-extract takes the last number; both ignore "," "$" and a final "."
    assert gsm.score_answers(["it is 18", "#### 1,000."], ["18", "1000"], extraction="strict") == [0.0, 1.0]
    assert gsm.score_answers(["it is 18", "#### $1,000."], ["18", "1000"], extraction="flexible") == [1.0, 1.0]
    assert gsm.score_answers(["5 - 2 = 3"], ["3"], extraction="last") == [1.0]
    assert gsm.clean_solution("6 * 3 = <<6*3=18>>18 eggs") == "6 * 3 = 18 eggs"
    assert gsm.gold_answer("blah\n#### 1,000") == "1000"


def test_code_extraction_and_program_assembly():
    problem = humaneval.CodeProblem("t/0", "from typing import List\n\ndef add(a, b):\n    \"\"\"add\"\"\"\n",
                                    "    return a + b\n", "def check(f):\n    assert f(1, 2) == 3\n", "add")
    reply = "Sure!\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert humaneval.extract_code(reply) == "def add(a, b):\n    return a + b"
    program = humaneval.build_program(problem, reply)
    assert problem.prompt in program and "check(add)" in program
    assert program.index(problem.prompt) < program.index("    return a + b")  # the reply's def replaces the stub
    body_only = humaneval.build_program(problem, "    return a + b\n")
    assert problem.prompt + "    return a + b" in body_only
    assert humaneval.defines_entry_point(reply, problem) and not humaneval.defines_entry_point("no code", problem)
    assert humaneval.is_function_source(reply)
    assert not humaneval.is_function_source("just words, no code")
    assert humaneval.is_function_source("```python\ndef f(x):\n    y = x + 1\n    return (y +")  # cut off
    assert not humaneval.is_function_source("```python\ndef f(x):")
    assert not humaneval.is_function_source("x = 1\nprint(x)")


def test_code_stop_never_cuts_an_opening_fence():
    import re

    from bench.lm.generation import truncate_at_stops
    from tasks.coding import CODE_STOPS

    after_prose = "Here it is:\n```\ndef f():\n    return 1\n```\nThis function returns one."
    assert truncate_at_stops(after_prose, CODE_STOPS) == "Here it is:\n```\ndef f():\n    return 1\n```"
    assert truncate_at_stops("Sure:\n\n```python\ndef f():\n    pass", CODE_STOPS).endswith("pass")  # still open
    assert truncate_at_stops("abc", CODE_STOPS) == "abc"
    assert truncate_at_stops("a STOP b", ["STOP", re.compile("b")]) == "a "  # the earliest cut wins


def test_arithmetic_set_is_deterministic_and_correct():
    first, again = gsm.arithmetic_problems(30, 0), gsm.arithmetic_problems(30, 0)
    assert [x.question for x in first] == [x.question for x in again]
    for x in first:
        a, op, b = x.solution.split("\n")[0].split(" = ")[0].split()
        assert int(x.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] >= 0
    assert gsm.score_answers(["The answer is 1,234."], ["1234"], extraction="last") == [1.0]


def test_every_canonical_humaneval_solution_passes_through_the_program_builder():
    """All 164 canonical solutions, given as a whole function in a code block and as a body completion,
    pass through the same program builder and sandbox as model replies (helpers such as HumanEval/38's
    ``encode_cyclic`` must survive)."""
    from bench.eval.sandbox import SandboxLimits, run_programs

    problems, _ = humaneval.load_problems("package")
    assert len(problems) == 164
    replies = [(x, f"Here it is:\n```python\n{x.prompt}{x.canonical_solution}```\nIt works.") for x in problems]
    replies += [(x, x.canonical_solution) for x in problems]
    runs = run_programs([humaneval.build_program(x, r) for x, r in replies], SandboxLimits(timeout_s=20, cpu_s=20),
                        workers=2)
    failed = [x.task_id for (x, _), run in zip(replies, runs) if not run.passed]
    assert failed == []


def test_degenerate_outputs_are_flagged_and_working_ones_are_not():
    from bench.eval.textmetrics import degenerate

    for text in ["", "   ", "!!! ...", "the the the the the the the the the", "a b a b a b a b a b a b a b",
                 "\ufffd\ufffd\ufffd ok \ufffd\ufffd"]:
        assert degenerate(text), repr(text)
    assert degenerate("John Smith", well_formed=False)
    for text in ["None", "John Smith, Mary Jones", "def f(x):\n    return x + 1",
                 "and then he walked out of the room without a word."]:
        assert not degenerate(text), repr(text)
