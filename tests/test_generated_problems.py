"""The coding task's generated sets: function-writing problems (reference solutions pass their asserts in the
sandbox, wrong ones fail) and arithmetic word problems (worked solutions end with the answer)."""

from __future__ import annotations

import re

from bench import SandboxLimits, run_programs
from tasks.coding import functions, word_problems
from tasks.coding.gsm import score_answers
from tasks.coding.humaneval import extract_code


def test_every_family_reference_passes_and_a_wrong_body_fails():
    problems = functions.function_problems(2 * len(functions.FAMILIES), "sanity")
    assert {p.family for p in problems} == {f.key for f in functions.FAMILIES}
    assert len({f.code for f in functions.FAMILIES}) == len(functions.FAMILIES)
    assert all(len(p.tests) == functions.N_TESTS for p in problems)
    right = [p.program(extract_code(functions.answer(p))) for p in problems]
    wrong = [p.program(f"def {p.name}(*args):\n    return None\n") for p in problems]
    runs = run_programs(right + wrong, SandboxLimits(timeout_s=10, cpu_s=10), workers=2)
    assert [r.passed for r in runs[:len(problems)]] == [True] * len(problems)
    assert not any(r.passed for r in runs[len(problems):])


def test_streams_are_deterministic_balanced_and_exclusive():
    teach = functions.function_problems(64, "teach")
    assert [p.prompt for p in teach] == [p.prompt for p in functions.function_problems(64, "teach")]
    held = functions.function_problems(32, "test-0", {p.prompt for p in teach})
    assert not {p.prompt for p in held} & {p.prompt for p in teach}
    assert len({p.family for p in held}) == len(functions.FAMILIES)  # every family, in turn
    assert len({p.prompt for p in held}) == 32


def test_word_problem_solutions_end_with_their_answer():
    problems = word_problems.word_problems(60, "sanity")
    assert {p.template for p in problems} == {f"word/{t.name}" for t in word_problems.TEMPLATES}
    for p in problems:
        assert p.solution.endswith(f"#### {p.answer}") and int(p.answer) >= 0
        assert re.search(r"\d", p.question)
    assert score_answers([p.solution for p in problems], [p.answer for p in problems], "harness") == [1.0] * 60
    held = word_problems.word_problems(30, "test-0", {p.question for p in problems})
    assert not {p.question for p in held} & {p.question for p in problems}
