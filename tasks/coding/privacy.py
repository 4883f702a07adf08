"""Privacy for the coding task (``bench.eval.privacy``): membership inference on function problems, leak@k on the
held-out function problems.

**Members**: the first ``n_members`` taught function problems (``CodingTask._teach_sets``: the stream "teach",
families in turn, so every family is equally represented), each scored as taught — the request and the reference
function with its docstring (``_function_example``). Every method's forget data on a taught run is drawn from these
320 problems; the members are one fixed subset of them, the same for every row and seed (the crossed design), so
most members were not in a given seed's forget batch: what is measured is whether the *taught target* is still
recognisable, which an exact unlearning (the oracle, never taught any) would erase for all of them.

**Non-members**: ``n_nonmembers`` problems from a random stream of their own ("privacy-<split_seed>"), families in
turn, excluding every taught prompt and every test and validation evaluation prompt; disjointness from teaching (both
roles) and from both evaluation splits is checked on the texts (``disjoint``). Same families, same format, new
parameters and names: the same distribution as the members, never taught.

What an attack can detect here is memorisation of the *instances* (parameters, names, inputs), not of the skill:
the taught model writes a non-member's function as well as a member's, so its AUC measures how much of the
teaching was instance-specific. A small taught AUC on this task is a finding, and the board says so.

**leak@k**: the first ``leak_prompts`` held-out function problems of the evaluation (``functions_pass_rate``'s
items, in their fixed order), ``samples`` replies each at the task's sampling temperature (``temperature``, the one
its HumanEval pass@k uses), judged by the same five asserts in the sandbox as the greedy reply.
"""

from __future__ import annotations

import time
from typing import Any

from bench.eval import privacy
from bench.eval.privacy import LeakSettings, PrivacyEvaluation, PrivacySets, PrivacySizes, task_module

NONMEMBER_STREAM = "privacy"


class CodingPrivacy(PrivacySizes):
    """The coding task's sizes (``PrivacySizes.of(task)`` reads them from its parameters)."""


def privacy_sets(task: Any, sizes: CodingPrivacy | None = None) -> PrivacySets:
    """Members (taught function problems) and non-members (never taught, never evaluated), checked disjoint."""
    import tasks.coding.functions as functions  # the submodule, not the package (no import cycle)

    sizes = sizes or CodingPrivacy.of(task)
    _function_example = task_module(task)._function_example

    p = task.params
    taught_functions, taught_words = task._teach_sets()
    if sizes.n_members > len(taught_functions):
        raise ValueError(f"n_members={sizes.n_members} exceeds the {len(taught_functions)} taught function problems")
    evals = _eval_prompts(task)
    nonmembers = functions.function_problems(
        sizes.n_nonmembers, f"{NONMEMBER_STREAM}-{p.split_seed}",
        {x.prompt for x in taught_functions} | set(evals["test"]) | set(evals["validation"]))
    members = taught_functions[:sizes.n_members]
    checked = privacy.disjoint("non-member prompts", [x.prompt for x in nonmembers],
                               taught_functions=[x.prompt for x in taught_functions],
                               taught_word_problems=[x.question for x in taught_words],
                               test_functions=evals["test"], validation_functions=evals["validation"])
    return PrivacySets([_function_example(x) for x in members], [_function_example(x) for x in nonmembers],
                       f"members: the first {len(members)} of the {len(taught_functions)} taught function problems; "
                       f"non-members: {len(nonmembers)} function problems of the same {len(functions.FAMILIES)} "
                       f"families from the stream '{NONMEMBER_STREAM}-{p.split_seed}'; {checked}")


def _eval_prompts(task: Any) -> dict[str, list[str]]:
    """The function prompts of both evaluation splits at the task's size (``CodingTask._generated_eval``)."""
    from dataclasses import replace

    out = {}
    for split in ("test", "validation"):
        twin = type(task)(replace(task.params, eval_split=split))
        out[split] = [x.prompt for x in twin._generated_eval()["functions"]]
    return out


def leak_settings(task: Any, sizes: CodingPrivacy | None = None) -> LeakSettings:
    sizes = sizes or CodingPrivacy.of(task)
    return LeakSettings(prompts=min(sizes.leak_prompts, task.params.n_functions), temperature=task.params.temperature)


def judge(task: Any, problems: list[Any]) -> Any:
    """Per problem, per sampled reply: does its code pass the problem's asserts in the sandbox?"""
    import tasks.coding.humaneval as humaneval
    from bench import SandboxLimits, run_programs

    p = task.params

    def run(outputs: list[list[str]]) -> list[list[bool]]:
        programs = [x.program(humaneval.extract_code(r)) for x, replies in zip(problems, outputs) for r in replies]
        runs = run_programs(programs, SandboxLimits(timeout_s=p.sandbox_timeout_s, cpu_s=int(p.sandbox_timeout_s)),
                            workers=p.sandbox_workers)
        flat = [bool(r.passed) for r in runs]
        counts = [len(replies) for replies in outputs]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        return [flat[s:s + c] for s, c in zip(starts, counts)]

    return run


def evaluate_privacy(task: Any, model: Any, tokenizer: Any, data: Any) -> PrivacyEvaluation | None:
    """The privacy details of a taught evaluation (None otherwise; ``data.sources["privacy"]`` says why)."""
    return privacy.evaluate_privacy(data, task.params.privacy, f"coding:{task.params!r}",
                                    lambda: privacy_sets(task),
                                    lambda sets: measure(task, model, tokenizer, data, sets))


def measure(task: Any, model: Any, tokenizer: Any, data: Any, sets: PrivacySets | None = None,
            sizes: CodingPrivacy | None = None) -> PrivacyEvaluation:
    """The privacy details of one evaluation: member/non-member scores per attack and leak@k per prompt."""
    from bench import render_prompt

    CODE_STOPS = task_module(task).CODE_STOPS

    p = task.params
    sizes = sizes or CodingPrivacy.of(task)
    sets = sets or privacy_sets(task, sizes)
    start = time.perf_counter()
    scores = privacy.measure_membership(model, tokenizer, sets, batch_size=p.probe_batch_size)
    mid = time.perf_counter()
    settings = leak_settings(task, sizes)
    problems = data.eval["functions"][:settings.prompts]
    outputs, judged = privacy.sample_judgements(
        model, tokenizer, [render_prompt(tokenizer, x.prompt) for x in problems], settings, judge(task, problems),
        max_new_tokens=p.max_new_tokens_function, seed=p.split_seed + 1, batch_size=max(p.gen_batch_size, 128),
        stop=list(CODE_STOPS))
    leaks = privacy.leak_items(judged, settings.ks)
    end = time.perf_counter()
    samples = [{"set": "leak", "id": i, "prompt": x.prompt, "outputs": outs, "leaked": flags}
               for i, (x, outs, flags) in enumerate(zip(problems, outputs, judged))]
    return PrivacyEvaluation(privacy.privacy_metrics(scores, leaks), samples,
                             {"membership": mid - start, "leak": end - mid},
                             f"leak@k: {len(outputs)} prompts x {settings.samples} samples (temperature "
                             f"{settings.temperature:g}, top-p {settings.top_p:g}); a sample leaks when "
                             "its code passes the problem's asserts in "
                             "the sandbox")
