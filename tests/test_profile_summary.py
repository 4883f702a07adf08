"""bench.perf.profile_summary: py-spy raw stacks -> share of samples per phase and building block."""

import pytest

from bench.perf.profile_summary import markdown_table, parse_frame, summarise

ROOT = "/src/ub"
RUN = f"main ({ROOT}/bench/cli.py:10);Engine.run_cell ({ROOT}/bench/engine/runner.py:160)"
STACKS = [
    # base evaluation inside the first cell: generation under the task's evaluate
    (f"{RUN};Engine.base_result ({ROOT}/bench/engine/runner.py:140);"
     f"CodingTask.evaluate ({ROOT}/tasks/coding/__init__.py:190);"
     f"generate ({ROOT}/bench/lm/generation.py:250);decode_batch ({ROOT}/bench/lm/generation.py:200);"
     "forward (/venv/torch/nn/modules/module.py:1)", 10),
    # RnR's Reveal inside its unlearn: counted as reveal, generation
    (f"{RUN};RevealAndRelease.unlearn ({ROOT}/methods/rnr.py:300);reveal ({ROOT}/bench/reveal/__init__.py:210);"
     f"generate ({ROOT}/bench/lm/generation.py:250)", 20),
    # ICU training step and its per-epoch probe
    (f"{RUN};unlearn ({ROOT}/methods/icu.py:150);train ({ROOT}/bench/lm/training.py:300);"
     f"backward (/venv/torch/_tensor.py:600)", 25),
    (f"{RUN};ICU.unlearn ({ROOT}/methods/icu.py:155);probe ({ROOT}/tasks/ner/__init__.py:80);"
     f"answer_logliks ({ROOT}/bench/lm/likelihood.py:90)", 15),
    # evaluation of a cell, sandbox for the coding task
    (f"{RUN};evaluate ({ROOT}/tasks/coding/__init__.py:210);run_batch ({ROOT}/bench/eval/sandbox.py:400)", 20),
    # a method on the shared loss loop: named by its loss's module, or not at all during a probe
    (f"{RUN};LossMethodMixin.unlearn ({ROOT}/bench/lm/training.py:90);train ({ROOT}/bench/lm/training.py:300);"
     f"step_loss ({ROOT}/bench/lm/training.py:95);loss ({ROOT}/methods/npo.py:40)", 4),
    (f"{RUN};LossMethodMixin.unlearn ({ROOT}/bench/lm/training.py:90);"
     f"answer_logliks ({ROOT}/bench/lm/likelihood.py:90)", 1),
    # start-up
    ("<module> (/venv/transformers/__init__.py:1)", 5),
]


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "pyspy.txt"
    path.write_text("".join(f"{stack} {n}\n" for stack, n in STACKS) + "garbage line without count\n")
    return path


def test_samples_are_split_by_phase_and_building_block(profile):
    s = summarise(profile)
    assert s["samples"] == 100
    phases = {p["phase"]: p for p in s["phases"]}
    assert phases["unlearning: icu"]["share"] == 0.40
    assert phases["unlearning: icu"]["kinds"] == {"likelihood": 0.15, "training": 0.25}
    assert phases["unlearning: npo"]["kinds"] == {"training": 0.04}
    loss_loop = phases["unlearning: loss methods: backward, optimiser, probes (shared loop)"]
    assert loss_loop["kinds"] == {"likelihood": 0.01}
    assert phases["reveal (forget-data search)"]["kinds"] == {"generation": 0.20}
    assert phases["base evaluation"]["kinds"] == {"generation": 0.10}
    assert phases["evaluation: coding"]["kinds"] == {"sandbox": 0.20}
    assert phases["start-up, loading, writing"]["kinds"] == {"other": 0.05}
    assert [p["phase"] for p in s["phases"]][0] == "unlearning: icu"  # largest first
    assert s["kinds"] == {"generation": 0.30, "likelihood": 0.16, "training": 0.29, "sandbox": 0.20, "other": 0.05}


def test_markdown_table_has_a_row_per_phase_and_a_total(profile):
    lines = markdown_table(summarise(profile))
    assert lines[0].startswith("| phase | share of samples | generation")
    assert len(lines) == 2 + 7 + 1 and "| **all** | 100.0% |" in lines[-1]


def test_frames_parse_with_and_without_line_numbers():
    assert parse_frame("f (/a/b.py:12)").file == "/a/b.py"
    assert parse_frame("<module> (<string>)").func == "<module>"
