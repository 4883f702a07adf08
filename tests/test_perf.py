"""`unlearn-bench perf` building blocks on the tiny random model (the real numbers come from `make bench`)."""

import json

import pytest
import torch

from bench.lm.models import load_model
from bench.lm.precision import MEAN_RELATIVE_BOUND
from bench.perf import (
    PerfReport,
    PerfRow,
    bench_bf16_eval,
    bench_generation,
    bench_train_step,
    demo_row,
    machine_facts,
    machine_slug,
    markdown,
    matrix_run_row,
    naive_generate,
)


@pytest.fixture(scope="module")
def tiny_loaded():
    return load_model("tiny-random-llama", "cpu", "float32")


def test_batched_generation_matches_the_naive_loop(tiny_loaded):
    row = bench_generation(tiny_loaded, 6, 8)
    assert row.measured["identical_outputs"] == 6
    assert row.measured["batched_s"] > 0 and row.measured["naive_s"] > 0
    assert row.met == (row.measured["speedup"] >= 5)


def test_naive_generate_is_greedy_and_deterministic(tiny_loaded):
    prompts = ["Hello there", "What is two plus two?"]
    a = naive_generate(tiny_loaded.model, tiny_loaded.tokenizer, prompts, 5)
    b = naive_generate(tiny_loaded.model, tiny_loaded.tokenizer, prompts, 5)
    assert a == b and len(a) == 2


def test_train_step_row_reports_ratio_and_mfu(tiny_loaded):
    row = bench_train_step(tiny_loaded, 2, 32, 2)
    m = row.measured
    assert m["ours_s"] > 0 and m["bare_s"] > 0 and m["ratio"] == pytest.approx(m["ours_s"] / m["bare_s"], rel=0.05)
    assert 0 < m["mfu"] < 1 and m["gemm_peak_gflops"] > 0
    assert m["model_flops_per_step"] == 4 * sum(p.numel() for p in tiny_loaded.model.parameters()) * m["tokens"]


def test_privacy_seconds_sum_every_evaluations_privacy_rows(tmp_path):
    from bench.perf import privacy_seconds

    for folder, rows in (("cells/a", [{"set": "x", "v": 1}, {"set": "privacy_seconds", "membership": 4.5,
                                                                  "leak": 1.5}]),
                         ("base/b", [{"set": "privacy_seconds", "membership": 2.0, "leak": 0.0}]),
                         ("cells/c", [{"set": "y", "v": 9}])):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert privacy_seconds(tmp_path) == 8.0
    assert privacy_seconds(tmp_path / "empty") == 0.0


def test_demo_row_reads_a_run_and_its_invocation(tmp_path):
    from bench.engine.config import load_config
    from bench.engine.executors import execute
    from bench.plugins import registry

    out = tmp_path / "run"
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga"], "tasks": ["toy"], "out": str(out),
                                "progress": False, "plugins": ["ray_plugins"],
                                "train_params": {"steps": 1, "batch_size": 2}})
    execute(config, registry(("ray_plugins",)))
    row = demo_row(out)
    assert row.measured["cells"] == 1 and row.measured["wall_s"] > 0 and row.met is True
    from bench.engine.provenance import git_commit

    here = git_commit()  # the row names the commit its cells were computed at
    assert row.commit == (here["commit"] or "n/a")[:10] + ("-dirty" if here["dirty"] else "")
    assert "min wall (local)" in row.summary
    assert "profile" not in row.measured and not row.note
    (out / "pyspy.txt").write_text(
        "run_cell (/r/bench/engine/runner.py:1);unlearn (/r/methods/ga.py:2);train (/r/bench/lm/training.py:3) 3\n"
        "run_cell (/r/bench/engine/runner.py:1);evaluate (/r/tasks/toy.py:4);"
        "generate (/r/bench/lm/generation.py:5) 1\n")
    profiled = demo_row(out)
    assert profiled.measured["profile"]["samples"] == 4
    assert "unlearning: ga 75% (mostly training)" in profiled.note
    report = markdown(PerfReport(machine_facts(), [profiled]))
    assert "where the time goes (py-spy)" in report and "| unlearning: ga | 75.0% |" in report
    missing = demo_row(tmp_path / "nothing")
    assert missing.met is None and "make demo" in missing.summary
    study = matrix_run_row(out, "study", 60.0)
    assert study.key == "study" and study.target.startswith("≤ 60 min") and study.met is True
    assert matrix_run_row(tmp_path / "nothing", "study", 60.0).summary.endswith("(run `make study`)")
    slow = matrix_run_row(out, "study", row.measured["wall_s"] / 120)  # a goal half the measured wall time
    assert slow.met is False and "2.0× the goal" in slow.summary
    # the row names the precision its cells ran in; a run in the precision this machine's `auto` would not
    # pick (fp32 forced on a bf16 CPU) is a row of its own beside the native one
    assert row.measured["precision"] == "fp32" and "matrix in fp32" in row.title
    assert demo_row(out, native=False).key == "demo" and demo_row(out, native=True).key == "demo_fp32"
    for result in out.glob("cells/*/result.json"):  # as if run with the kernels capped at AVX2
        cell = json.loads(result.read_text())
        cell["provenance"]["machine"].update(cpu_capability="AVX2", isa_caps={"ATEN_CPU_CAPABILITY": "avx2"})
        result.write_text(json.dumps(cell))
    capped = demo_row(out, native=True)
    assert capped.key == "demo_fp32_avx2" and "on AVX2 kernels, capped by ATEN_CPU_CAPABILITY=avx2" in capped.title
    assert capped.measured["kernels"] == "AVX2"


def test_run_precision_counts_training_only_where_a_cell_trained():
    from bench.perf import run_precision

    def cell(eval_mode, train_mode, seconds):
        return {"provenance": {"eval_autocast": eval_mode, "train_autocast": train_mode},
                "extras": {"unlearn_time_s": seconds}}

    trained = cell("bf16", "bf16", 4.2)
    assert run_precision([trained, cell("bf16", "off", 0.0)]) == "bf16"  # the prompt baseline trains nothing
    assert run_precision([trained, cell("bf16", "off", 3.0)]) == "mixed"
    assert run_precision([cell("off", "off", 2.0), cell("off", "off", 0.0)]) == "fp32"


def test_a_run_with_the_instruction_set_capped_is_a_row_of_its_own(monkeypatch):
    """AVX2-only CPUs are measured on an AVX512 one by capping torch's kernels (ATEN_CPU_CAPABILITY and the
    GEMM libraries' caps): every cell records the caps and the level torch ran at, and the perf row says so."""
    from bench.engine.provenance import ISA_CAP_ENV, machine
    from bench.perf import run_kernels

    for name in ISA_CAP_ENV:
        monkeypatch.delenv(name, raising=False)
    here = machine()
    assert here["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "isa_caps" not in here
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert machine()["isa_caps"] == {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}

    def cell(level, caps):
        return {"provenance": {"machine": {"cpu_capability": level, **({"isa_caps": caps} if caps else {})}}}

    avx2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    assert run_kernels([cell("AVX512", None), cell("AVX512", None)]) is None  # the hardware's own kernels
    assert run_kernels([cell("AVX2", avx2), cell("AVX2", avx2)]) == ("AVX2", avx2)
    assert run_kernels([cell("AVX2", avx2), cell("AVX512", None)])[0] == "mixed"  # a resumed run, caps changed
    assert run_kernels([{}]) is None  # cells from before the caps were recorded


def test_machine_facts_name_the_hardware_not_the_override(monkeypatch):
    from bench.lm.precision import NATIVE_BF16_ENV, cpu_has_native_bf16

    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    facts = machine_facts()
    assert facts["native_bf16"] == cpu_has_native_bf16() and facts["native_bf16_override"] is False
    monkeypatch.delenv(NATIVE_BF16_ENV)
    assert "native_bf16_override" not in machine_facts()


def test_bf16_evaluation_row_reports_speed_and_agreement(tiny_loaded):
    row = bench_bf16_eval(tiny_loaded, quick=True)
    m = row.measured
    assert m["fp32_s"] > 0 and m["bf16_s"] > 0 and m["speedup"] == pytest.approx(m["fp32_s"] / m["bf16_s"], rel=0.05)
    assert 0 < m["max_relative_loglik_change"] <= 0.02 and m["choice_items"] > 0 and m["loglik_items"] > 0
    # the target is a bound on each metric's mean; the per-item maximum is shown, and a mean never moves more
    assert set(m["relative_mean_change"]) >= {"toxicity/toxic_text_loglik", "ner/person_list_loglik"}
    assert m["max_relative_mean_change"] == max(m["relative_mean_change"].values()) <= m["max_relative_loglik_change"]
    assert "metric means move" in row.summary and "one item at most" in row.summary
    assert row.met is None if not m["native_bf16"] else \
        row.met == (m["speedup"] > 1 and m["max_relative_mean_change"] <= MEAN_RELATIVE_BOUND)


def test_markdown_report_lists_every_row_and_marks_misses():
    report = PerfReport(machine_facts(), [
        PerfRow("generation", "Batched vs naive", "≥ 5×", {"speedup": 3.0}, "3.00× faster", False),
        PerfRow("scaling", "Scaling", "reported", {"rows": [{"n": 4, "loglik_s": 1, "generate16_s": 2,
                                                             "icu_epoch_s": 3}]}, "×1", None)])
    text = markdown(report)
    assert "| 1 | Batched vs naive | ≥ 5× | 3.00× faster | **no** | n/a |" in text
    assert "| 4 | 1 | 2 | 3 |" in text
    json.dumps(report.to_json())
    assert machine_slug({"cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "cores": 2}) == \
        "intel-xeon-platinum-8481c-cpu-2-70ghz-2cpu"
    assert machine_slug({"cpu": "AMD EPYC", "cores": 2, "native_bf16": True}) == "amd-epyc-2cpu-bf16"
    assert machine_slug({"cpu": "AMD EPYC", "cores": 2, "native_bf16": False}) == "amd-epyc-2cpu"


def test_lm_eval_row_on_identical_prompts(tiny_loaded):
    pytest.importorskip("lm_eval")
    from bench.perf.vs_lm_eval import bench_lm_eval

    row = bench_lm_eval(tiny_loaded, 4, 8)
    m = row.measured
    assert m["n"] == 4 and m["identical_outputs"] == 4
    assert m["accuracy_ours"] == m["accuracy_lm_eval"]
    # decode rows counted on both sides: at most 4 rows x 7 decode steps (the first token comes from the
    # prefill); ours never computes more rows than a batch that keeps every row to the end
    assert 0 < m["decode_rows_ours"] <= m["decode_rows_lm_eval"] <= 4 * 7
    assert m["rows_leaving_ceiling"] == pytest.approx(m["decode_rows_lm_eval"] / m["decode_rows_ours"], abs=0.01)
    assert "saves at most" in row.summary


def test_decode_row_counter_counts_only_one_token_steps_while_active(tiny_loaded):
    from bench.perf.vs_lm_eval import DecodeRowCounter

    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    ids = tok(["a b c", "d e f"], return_tensors="pt")["input_ids"]
    counter = DecodeRowCounter(model)
    try:
        model(input_ids=ids[:, :1])  # not counting yet
        with counter.count():
            model(input_ids=ids)  # a prefill: several positions
            model(input_ids=ids[:, :1])
            model(input_ids=ids[:1, :1])
        model(input_ids=ids[:, :1])  # after the block
        assert counter.rows == 3
    finally:
        counter.handle.remove()


def test_a_partial_run_keeps_the_other_rows_and_their_commits(tmp_path):
    """``perf --only demo`` replaces the demo row and keeps every other row with the commit it was measured
    at: the report never dates an old number to the current commit."""
    from bench.perf import run_perf

    facts = machine_facts()
    old = PerfReport(facts, [PerfRow("generation", "Batched vs naive", "≥ 5×", {"speedup": 5.1}, "5.10× faster", True,
                                     commit="0123456789")])
    (tmp_path / f"{machine_slug(facts)}.json").write_text(json.dumps(old.to_json()))
    report, (md, _) = run_perf(tmp_path, tmp_path / "no-demo-run", only=["demo"])
    assert [r.key for r in report.rows] == ["generation", "demo"]
    text = md.read_text()
    assert "| 1 | Batched vs naive | ≥ 5× | 5.10× faster | yes | 0123456789 |" in text
    assert report.rows[1].commit and report.rows[1].commit != "0123456789"


def test_a_variant_row_not_listed_sorts_with_its_family():
    from bench.perf import _row_rank

    keys = ["ray", "study_bf16_avx2", "demo_avx512", "study", "demo", "generation", "demo_fp32_avx2", "unknown"]
    assert sorted(keys, key=_row_rank) == ["generation", "demo", "demo_fp32_avx2", "demo_avx512", "study",
                                           "study_bf16_avx2", "ray", "unknown"]
