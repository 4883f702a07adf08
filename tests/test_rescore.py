"""Auditable boards (``bench.report.audit``): a board carries its data file, and ``report --rescore`` regenerates
every file of the board from that file alone, byte for byte. Synthetic results (no model): seconds, not minutes."""

import gzip
import json
import shutil

import numpy as np
import pytest

from bench.api import Metric
from bench.cli import main, write_report
from bench.engine.store import ResultsStore, atomic_write_json
from bench.errors import UserError
from bench.report.audit import BOARD_DATA, SIZE_LIMIT, encode, load_board_data, rescore, rescore_files, write_board_data
from bench.results import BaseResult, CellResult

N = 24
TASK = "toy"
BASE_ID = "toy__0a1b2c3d"
SAMPLE_TEXT = "a sample output only the stored samples hold"


def _metric(name: str, group: str, better: str, items: np.ndarray) -> Metric:
    values = [float(x) for x in items]
    mean = float(np.mean(values))
    return Metric(name, group, mean, better, len(values), mean - 0.1, mean + 0.1, kind="likelihood",
                  per_item=values, min_effect=0.05, bounds=(None, 0.0))


def _metrics(forget: np.ndarray, utility: np.ndarray) -> dict[str, Metric]:
    return {"forget_ll": _metric("forget_ll", "forget", "lower", forget),
            "utility_ll": _metric("utility_ll", "utility", "higher", utility)}


def _provenance() -> dict:
    return {"model": {"model_id": "tiny-random-llama", "weights_hash": "0123456789abcdef", "dtype": "float32"},
            "versions": {"unlearn-bench": "0.1.0", "torch": "x", "transformers": "y", "peft": "z"},
            "git": {"commit": "feedfacecafe", "dirty": False}, "preset": "demo", "device": "cpu",
            "task_version": "1", "data_sources": {"facts": "synthetic"}, "wall_time_s": 2.0}


def _samples(label: str) -> list[dict]:
    return [{"id": i, "prompt": f"question {i}", "output": f"{SAMPLE_TEXT} ({label} {i})", "score": 0.5 * i}
            for i in range(5)]


def _attack(cell_id: str, seed: int, rng: np.random.Generator, base: np.ndarray, unlearned: np.ndarray) -> dict:
    """A relearning attack that brings back half of what was forgotten."""
    attacked = unlearned + 0.5 * (base - unlearned) + rng.normal(0, 0.05, N)
    return {"cell_id": cell_id, "base_id": BASE_ID, "task": TASK, "seed": seed, "attack_id": "relearn__1a2b3c",
            "label": "relearn(steps=2)", "status": "done", "info": {"steps": 2}, "seconds": 1.5,
            "values": {"base": base.tolist(), "unlearned": unlearned.tolist(), "attacked": {"model": attacked.tolist()},
                       "base_attacked": {"model": (base + rng.normal(0, 0.05, N)).tolist()}}}


def write_run(root) -> None:
    """A results directory of one task: its base evaluation and two methods x two seeds, with trajectories,
    samples and attacks, as the runner stores them."""
    rng = np.random.default_rng(3)
    base_forget, base_utility = rng.normal(-2, 1, N), rng.normal(-2, 1, N)
    store = ResultsStore(root)
    store.open()
    spec = {"model": "tiny-random-llama", "task": TASK, "task_params": {"n": N}}
    base = BaseResult(BASE_ID, spec, _metrics(base_forget, base_utility), _provenance())
    store.write_base(BASE_ID, base.to_json(), _samples("base"))
    for method, drop in (("ga", 0.8), ("npo", 0.3)):
        for seed in (0, 1):
            forget = base_forget - drop + rng.normal(0, 0.1, N)
            cell_id = f"{method}__{TASK}__s{seed}__{seed}f{len(method)}"
            trajectory = [{"step": step, "probe/forget/forget_ll": -2 - drop * step / 3,
                           "probe/utility/utility_ll": -2 - 0.01 * step} for step in range(4)]
            cell = CellResult(cell_id, BASE_ID, "done", {**spec, "method": method, "seed": seed,
                                                         "method_params": {"lr": 1e-3 * (1 + drop)}},
                              metrics=_metrics(forget, base_utility + rng.normal(0, 0.05, N)),
                              trajectory=trajectory, provenance=_provenance())
            store.write_cell(cell_id, cell.to_json(), _samples(method))
            atomic_write_json(store.attack_path(cell_id, "relearn__1a2b3c"),
                              _attack(cell_id, seed, rng, base_forget, forget))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board written from a run that is deleted afterwards: only the board directory is left."""
    root = tmp_path_factory.mktemp("rescore")
    write_run(root / "run")
    write_report([str(root / "run")], str(root / "toy-board"))
    shutil.rmtree(root / "run")
    return root / "toy-board"


def _copy(board, tmp_path):
    copy = tmp_path / board.name
    shutil.copytree(board, copy)
    return copy


def _edit_data(board, edit) -> None:
    path = board / BOARD_DATA
    record = json.loads(gzip.decompress(path.read_bytes()))
    edit(record)
    path.write_bytes(encode(record))


def test_a_board_rescored_from_its_directory_alone_is_identical(board):
    status = rescore_files(board)
    assert set(status) >= {BOARD_DATA, "leaderboard.md", "index.html", "results.json", "results.csv",
                           f"plots/pareto_{TASK}.png", f"plots/trajectory_{TASK}.png", "plots/forget_utility.png"}
    assert set(status.values()) == {"identical"}, status
    page = (board / "index.html").read_text()
    assert SAMPLE_TEXT in page  # the samples came from the data file: the run is gone
    assert "relearn(steps=2)" in (board / "leaderboard.md").read_text()  # attacks too


def test_the_data_file_is_small_deterministic_and_holds_the_per_item_values(board, tmp_path):
    data = (board / BOARD_DATA).read_bytes()
    assert len(data) <= SIZE_LIMIT
    assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08  # gzip header: no timestamp, no file name
    table = load_board_data(board)
    assert write_board_data(table, tmp_path / "a").read_bytes() == write_board_data(table, tmp_path / "b").read_bytes()
    record = json.loads(gzip.decompress(data))
    assert record["bootstrap_seed"] == table.bootstrap_seed and record["unlearn_bench"]
    assert len(record["cells"]) == 4 and all(len(m["per_item"]) == N for c in record["cells"]
                                             for m in c["metrics"].values())
    assert [(c.method, c.seeds) for c in table.cells] == [("ga", [0, 1]), ("npo", [0, 1])]


def test_one_altered_per_item_value_is_caught(board, tmp_path):
    copy = _copy(board, tmp_path)
    _edit_data(copy, lambda r: r["cells"][0]["metrics"]["forget_ll"]["per_item"].__setitem__(0, 5.0))
    differing = rescore(copy)
    assert "results.json" in differing and "leaderboard.md" in differing
    assert BOARD_DATA not in differing  # the data file itself round-trips; the numbers rendered from it do not


def test_a_stale_committed_file_counts_and_out_keeps_the_regenerated_board(board, tmp_path):
    copy = _copy(board, tmp_path)
    (copy / "plots" / "radar.png").write_bytes(b"an old plot")
    out = tmp_path / "regenerated"
    assert rescore(copy, out=out) == ["plots/radar.png"]
    assert (out / copy.name / "leaderboard.md").read_bytes() == (copy / "leaderboard.md").read_bytes()
    with pytest.raises(UserError, match="not empty"):  # never over anything already written: not the board
        rescore(copy, out=tmp_path)
    with pytest.raises(UserError, match="is a file"):
        rescore(copy, out=copy / "leaderboard.md")


def test_cli_rescore_prints_one_line_per_file_and_exits_1_on_a_difference(board, tmp_path, capsys):
    copy = _copy(board, tmp_path)
    _edit_data(copy, lambda r: r["bases"][0]["metrics"]["utility_ll"]["per_item"].__setitem__(3, -9.0))
    assert main(["report", "--rescore", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rescore_files(board)) and "results.json: differs" in lines
    assert f"{BOARD_DATA}: identical" in lines


@pytest.mark.parametrize("argv,message", [
    (["report"], "--runs"),
    (["report", "--out", "somewhere"], "--runs"),
    (["report", "--rescore", "{tmp}"], BOARD_DATA),
    (["report", "--rescore", "{tmp}/absent"], "not a directory"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
