"""The tasks' answer-scoring metrics are local ``evaluate`` modules: each loads by path in a fresh process
with the hub switched off, and its ``compute`` on a run's recorded samples (``samples.jsonl``) equals the
number the task reported (``result.json``) — the recipe of docs/tasks.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import metrics

SCRIPT = """
import json, sys
import evaluate
jobs = json.load(sys.stdin)
print(json.dumps({key: evaluate.load(path).compute(**inputs) for key, (path, inputs) in jobs.items()}))
"""


def _base(run: Path, task: str) -> tuple[dict, list[dict]]:
    folder = next(run.glob(f"base/{task}__*"))
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return json.loads((folder / "result.json").read_text())["metrics"], samples


def _in_fresh_offline_process(jobs: dict) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(jobs), capture_output=True, text=True,
                          env=env, timeout=600, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def recomputed(tiny_task_run):
    """(what each module computes from samples.jsonl in a fresh offline process, the tasks' own metrics)."""
    tox, tox_samples = _base(tiny_task_run, "toxicity")
    ner, ner_samples = _base(tiny_task_run, "ner")
    code, code_samples = _base(tiny_task_run, "coding")
    rtp = [s for s in tox_samples if s["set"] == "rtp"]
    person = [s for s in ner_samples if s["set"] == "PERSON"]
    typing = [s for s in ner_samples if s["set"] == "typing" and s["gold"] == "PERSON"]
    kinds = list(typing[0]["option_logliks"])
    nxt = [s for s in tox_samples if s["set"] == "next_sentence"]
    by_set = {name: [s for s in code_samples if s["set"] == name] for name in ("humaneval", "gsm8k", "arithmetic")}
    path = lambda name: str(metrics.path(name))  # noqa: E731
    jobs = {
        "toxicity_aggregates": (path("toxicity_aggregates"), {"predictions": [s["toxicity"] for s in rtp],
                                                              "references": [s["prompt"] for s in rtp]}),
        "next_sentence": (path("choice_accuracy"), {
            "predictions": [s["option_logliks"] for s in nxt], "references": [s["gold"] for s in nxt],
            "option_bytes": [[len((" " + o).encode()) for o in s["options"]] for s in nxt]}),
        "ner_span_f1": (path("ner_span_f1"), {"predictions": [s["predicted"] for s in person],
                                              "references": [s["gold"] for s in person]}),
        "choice_accuracy": (path("choice_accuracy"), {
            "predictions": [[s["option_logliks"][k] for k in kinds] for s in typing],
            "references": [kinds.index("PERSON")] * len(typing),
            "option_bytes": [[len((" " + k.lower()).encode()) for k in ("person", "organization", "location",
                                                                         "other")]] * len(typing)}),
        "humaneval_pass_at_k": (path("humaneval_pass_at_k"), {
            "predictions": [[s["passed"]] for s in by_set["humaneval"]],
            "references": [s["id"] for s in by_set["humaneval"]]}),
        "gsm8k_exact_match": (path("gsm8k_exact_match"), {"predictions": [s["output"] for s in by_set["gsm8k"]],
                                                          "references": [s["answer"] for s in by_set["gsm8k"]],
                                                          "extraction": "strict"}),
        "arithmetic": (path("gsm8k_exact_match"), {"predictions": [s["output"] for s in by_set["arithmetic"]],
                                                   "references": [s["answer"] for s in by_set["arithmetic"]],
                                                   "extraction": "last"}),
    }
    return _in_fresh_offline_process(jobs), {"toxicity": tox, "ner": ner, "coding": code}


@pytest.mark.parametrize("job,key,task,metric", [
    ("toxicity_aggregates", "expected_max_toxicity", "toxicity", "expected_max_toxicity"),
    ("toxicity_aggregates", "toxicity_probability", "toxicity", "toxicity_probability"),
    ("ner_span_f1", "micro_f1", "ner", "person_f1"),
    ("choice_accuracy", "acc_norm", "ner", "person_typing_acc"),
    ("next_sentence", "acc_norm", "toxicity", "next_sentence_acc"),
    ("humaneval_pass_at_k", "pass@1", "coding", "humaneval_pass@1"),
    ("gsm8k_exact_match", "accuracy", "coding", "gsm8k_strict_match"),
    ("arithmetic", "accuracy", "coding", "arithmetic_accuracy"),
])
def test_module_recomputes_the_tasks_number_offline(recomputed, job, key, task, metric):
    out, reported = recomputed
    assert out[job][key] == pytest.approx(reported[task][metric]["value"])
    per_item = out[job]["per_item"]
    per_item = per_item[key] if isinstance(per_item, dict) else per_item
    assert per_item == pytest.approx(reported[task][metric]["per_item"])


@pytest.mark.parametrize("name", metrics.MODULES)
def test_module_documents_itself_and_has_no_multi_import_lines(name):
    """evaluate's offline import scanner misreads ``import a, b``: one import per line."""
    source = (metrics.path(name) / f"{name}.py").read_text()
    assert source.startswith('"""') and "_CITATION" in source and "Example:" in source
    assert not any(line.startswith("import ") and "," in line for line in source.splitlines())
    with pytest.raises(KeyError, match="unknown metric module"):
        metrics.path("no_such_module")
