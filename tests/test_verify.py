"""``unlearn-bench verify``: a board made from a tiny run verifies clean on re-run, a perturbed value fails, bad
input is one line with status 2; the tolerance's false-alarm rate and power on synthetic data with known truth."""

import gzip
import json
import shutil
import types

import pytest

from bench.cli import main, write_report
from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.errors import UserError
from bench.hookspecs import hookimpl
from bench.plugins import load_registry
from bench.report.audit import BOARD_DATA, encode
from bench.report.verify import (
    ALPHA,
    OUTSIDE,
    WITHIN,
    Scenario,
    choose_cells,
    compare_cell,
    is_within,
    provenance_differences,
    simulate,
    tolerance,
    verify,
)
from bench.testing import ToyTask


def _registry():
    module = types.ModuleType("verify_test_plugins")

    @hookimpl
    def register_tasks(register):
        register(ToyTask)

    module.register_tasks = register_tasks
    return load_registry(extra_modules=[module])


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board of a tiny run (GA and NPO on the toy task, two seeds); the run is deleted: only the board is left."""
    root = tmp_path_factory.mktemp("verify")
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga", "npo"], "tasks": ["toy"],
                                "seeds": [0, 1], "out": str(root / "run"), "progress": False,
                                "method_params": {"ga": {"steps": 2, "batch_size": 2, "lr": 1e-2},
                                                  "npo": {"steps": 2, "batch_size": 2, "lr": 1e-2}}})
    reg = _registry()
    assert set(run_matrix(config, reg).ran.values()) == {"done"}
    write_report([str(root / "run")], str(root / "tiny-board"))
    shutil.rmtree(root / "run")
    return root / "tiny-board"


def _record(board):
    return json.loads(gzip.decompress((board / BOARD_DATA).read_bytes()))


def _copy_with(board, tmp_path, edit):
    copy = tmp_path / board.name
    shutil.copytree(board, copy)
    record = _record(copy)
    edit(record)
    (copy / BOARD_DATA).write_bytes(encode(record))
    return copy


def test_a_board_of_a_tiny_run_verifies_clean(board, tmp_path):
    report = verify(board, n_cells=2, seed=3, out=str(tmp_path / "rerun"), registry=_registry())
    assert report.exit_status == 0 and [c.verdict for c in report.cells] == [WITHIN, WITHIN]
    for cell in report.cells:
        assert cell.metrics and all(m.rerun is not None and m.within for m in cell.metrics)
        assert not any(d.startswith(("eval precision", "train precision", "weights dtype")) for d in cell.differences)
    assert "within" in report.cells[0].line()


def test_a_perturbed_board_value_is_outside(board, tmp_path):
    cell_id = sorted(c["cell_id"] for c in _record(board)["cells"] if c["spec"]["method"] == "ga")[0]

    def shift(record):
        cell = next(c for c in record["cells"] if c["cell_id"] == cell_id)
        metric = cell["metrics"]["forget_loglik"]
        width = metric["ci_high"] - metric["ci_low"]
        metric["value"] += 5 * width  # far beyond any band the board's own spread allows

    perturbed = _copy_with(board, tmp_path, shift)
    report = verify(perturbed, names=[cell_id], out=str(tmp_path / "rerun"), registry=_registry())
    [cell] = report.cells
    assert report.exit_status == 1 and cell.verdict == OUTSIDE
    assert [m.name for m in cell.metrics if not m.within] == ["forget_loglik"]
    assert "outside: forget_loglik" in cell.line()


def test_the_cli_exit_status_and_one_line_errors(board, tmp_path, capsys):
    assert main(["verify", str(board), "--cell", "nope__toy__s0__00000000"]) == 2
    assert capsys.readouterr().err.startswith("error: the board has no finished cell")
    assert main(["verify", str(board), "--cells", "99"]) == 2
    assert "at most 4" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing"), "--cells", "1"]) == 2
    assert main(["verify", str(board), "--cells", "1", "--alpha", "1.5"]) == 2


def test_a_spec_that_does_not_rebuild_its_id_is_refused(board, tmp_path):
    def alter(record):
        record["cells"][0]["spec"]["seed"] = 7  # the recorded id no longer matches its spec

    altered = _copy_with(board, tmp_path, alter)
    with pytest.raises(UserError, match="rebuilds as"):
        verify(altered, names=[_record(altered)["cells"][0]["cell_id"]], out=str(tmp_path / "x"),
               registry=_registry())
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_sampling_is_stated_by_its_seed(board):
    cells = _record(board)["cells"]
    assert [c["cell_id"] for c in choose_cells(cells, 2, None, 5)] == \
        [c["cell_id"] for c in choose_cells(cells, 2, None, 5)]


def test_precision_differences_are_reported():
    board = {"eval_autocast": "bf16", "train_autocast": "bf16", "model": {"dtype": "float32"}}
    here = {"eval_autocast": "off", "train_autocast": "off", "model": {"dtype": "float32"}}
    assert provenance_differences(board, here)[:2] == ["eval precision: board bf16, here off",
                                                       "train precision: board bf16, here off"]


def test_compare_cell_uses_the_rows_seed_spread():
    def cell(seed, value):
        return {"cell_id": f"ga__toy__s{seed}", "status": "done", "spec": {"method": "ga", "seed": seed},
                "metrics": {"m": {"value": value, "ci_low": value - 0.02, "ci_high": value + 0.02, "n": 16}}}

    cells = [cell(0, 2.0), cell(1, 1.0), cell(2, 3.0)]  # a wide spread between the other seeds
    rerun = {"status": "done", "metrics": {"m": {"value": 2.5}}}
    assert compare_cell(cells[0], cells, rerun).verdict == WITHIN
    assert compare_cell(cells[0], cells[:1], rerun).verdict == OUTSIDE  # one seed: the item SE alone


def test_equal_floats_are_within_a_zero_band():
    assert is_within(0.0, 0.0, 0.0) and not is_within(0.0, 0.01, 0.0)
    assert tolerance([0.5], 0.0, 16, 0.01).bound == 0.0


# -- the simulation: known truth -----------------------------------------------------------------------------------
REPS = 300
#: Monte Carlo slack: 3 binomial SDs of a rate of ALPHA over REPS replicates.
SLACK = 3 * (ALPHA * (1 - ALPHA) / REPS) ** 0.5


@pytest.mark.parametrize("scenario", [Scenario(seeds=1), Scenario(seeds=1, same_items=False),
                                      Scenario(seeds=3, train_sd=0.75), Scenario(seeds=1, p=0.7)])
def test_false_alarm_rate_is_at_most_alpha_when_the_rerun_comes_from_the_boards_distribution(scenario):
    rate = simulate(scenario, shift_sd=0.0, reps=REPS, seed=1)["cell_rate"]
    assert rate <= ALPHA + SLACK, rate


def test_one_seed_cannot_see_training_noise_and_says_so_by_false_alarms():
    """The limitation docs/verify.md states: with one seed and training noise 3x the item SE, the band (item SE
    only) is too narrow and the false-alarm rate rises well above alpha."""
    assert simulate(Scenario(seeds=1, train_sd=0.75), reps=REPS, seed=2)["cell_rate"] > 5 * ALPHA


def test_power_against_a_known_shift():
    """Every metric shifted by 5 SDs of one cell's value: caught nearly always; by 0: almost never."""
    assert simulate(Scenario(seeds=1), shift_sd=5.0, reps=100, seed=3)["cell_rate"] > 0.95


# -- issue 50.6: portable provenance, dated perf reports; 50.4: rank agreement of two boards -----------------------
def test_recorded_paths_are_portable(monkeypatch, tmp_path):
    from bench.engine.provenance import REPO_ROOT, portable, portable_path

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    record = {"model": {"model_id": str(tmp_path / "cache" / "taught" / "m"),
                        "source": f"local path {tmp_path / 'cache' / 'taught' / 'm'}"},
              "command": f"{REPO_ROOT}/.venv/bin/unlearn-bench run --config {REPO_ROOT}/configs/demo.yaml",
              "sandbox": "interpreter: /usr/bin/python3"}
    out = portable(record)
    assert out["model"] == {"model_id": "$UNLEARN_BENCH_CACHE/taught/m",
                            "source": "local path $UNLEARN_BENCH_CACHE/taught/m"}
    assert out["command"] == ".venv/bin/unlearn-bench run --config configs/demo.yaml"
    assert out["sandbox"] == "interpreter: /usr/bin/python3"  # a system path is not the producing machine's layout
    assert portable_path(REPO_ROOT / "runs" / "x") == "runs/x" and portable_path(f"{REPO_ROOT}x/y") == f"{REPO_ROOT}x/y"


def test_a_perf_report_states_its_date_commit_and_staleness(tmp_path):
    from bench.perf import PerfReport, markdown, rerender
    from bench.perf.rows import PerfRow

    report = PerfReport({"cpu": "X", "cores": 2, "torch": "t", "torch_threads": 2},
                        [PerfRow("demo", "Full demo matrix (/tmp/clone/runs/d)", "≤ 15 min", {}, "9 min", True)],
                        finished_at="2026-11-24T09:55:44+0000", git={"commit": "10b38db6cb7a", "dirty": True})
    assert "Written 2026-11-24 at commit 10b38db6cb-dirty" in markdown(report)
    path = tmp_path / "x.json"
    path.write_text(json.dumps(report.to_json()))
    md, _ = rerender(path, stale="superseded by y.md")
    text = md.read_text()
    assert "> **Stale.** superseded by y.md" in text and "$TMPDIR/clone/runs/d" in text
    assert "| 9 min | yes | 10b38db6cb-dirty |" in text  # a row without a commit: the report's
    assert json.loads(path.read_text())["stale"] == "superseded by y.md"


def _results(ranks: dict[str, dict[str, int]], separated: dict[tuple[str, str], str]) -> dict:
    """A minimal results.json: per task, rows with point ranks and pairwise verdicts (winner or none)."""
    tasks = {}
    for task, by_label in ranks.items():
        labels = sorted(by_label)
        pairs = [{"a": a, "b": b, "a_ahead": 0.9 if separated.get((a, b)) == a else 0.1,
                  "b_ahead": 0.1 if separated.get((a, b)) == a else 0.9, "separated": (a, b) in separated}
                 for i, a in enumerate(labels) for b in labels[i + 1:]]
        tasks[task] = {"rows": [{"label": x, "rank": r} for x, r in by_label.items()], "pairwise": {"pairs": pairs}}
    return {"tasks": tasks, "cells": []}


def test_rank_agreement_of_two_boards(tmp_path):
    from bench.perf.agreement import rank_agreement

    same = {"t": {"a": 1, "b": 2, "c": 3, "d": 4}}
    reversed_ = {"t": {"a": 4, "b": 3, "c": 2, "d": 1}}
    for name, ranks, sep in (("x", same, {("a", "b"): "a"}), ("y", same, {}), ("z", reversed_, {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_results(ranks, sep)))
    agree = rank_agreement(tmp_path / "x", tmp_path / "y", resamples=300)
    assert agree.tau == 1.0 and agree.pairs == 6 and agree.pairs_agree == 5  # (a, b) separated in x only
    opposite = rank_agreement(tmp_path / "y", tmp_path / "z", resamples=300)
    assert opposite.tau == -1.0 and opposite.tau_ci[1] <= -0.99  # resampled rows keep a perfect reversal
    with pytest.raises(UserError, match="does not exist"):
        rank_agreement(tmp_path / "x", tmp_path / "missing")


def test_rank_agreement_command_prints_one_line_and_json_or_exits_2(tmp_path, capsys):
    from bench.perf.agreement import main as agreement_main

    boards = {"x": {"t": {"a": 1, "b": 2, "c": 3}}, "y": {"t": {"a": 1, "b": 3, "c": 2}, "u": {"a": 1, "b": 2}}}
    for name, ranks in boards.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_results(ranks, {})))
    assert agreement_main([str(tmp_path / "x"), str(tmp_path / "y"), "--resamples", "50"]) == 0
    line, data = capsys.readouterr().out.splitlines()
    assert line.startswith("Kendall's tau-b 0.33 [") and json.loads(data)["tasks"] == ["t"]  # shared tasks only
    assert agreement_main([str(tmp_path / "x"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
