"""Leaderboards: all reporters on a real (tiny) run, the guards against mixing incomparable results,
and the HTML page in headless Chromium (injected markup must not run; the table must be visible)."""

import json
import os
import shutil
import subprocess

import pytest

from bench.cli import write_report
from bench.engine.config import load_config
from bench.engine.runner import run_matrix
from bench.errors import UserError
from bench.plugins import load_registry
from bench.report.scores import pareto_front
from bench.testing import ToyTask

PAYLOAD = ("<script>document.body.appendChild(document.createElement('pwned-script'))</script>"
           "<img src=x onerror=\"document.body.appendChild(document.createElement('pwned-img'))\">")


# -- scores (the full rules are tested in test_scoring.py) ----------------------------------------
def test_pareto_front():
    points = [("base", 0, 0), ("a", 0.5, -0.1), ("b", 0.3, 0.0), ("c", 0.2, -0.2), ("d", 0.5, -0.3)]
    assert sorted(pareto_front(points)) == ["a", "b"]  # b (0.3, 0) dominates the base
    assert pareto_front([("base", 0, 0), ("x", -0.1, 0.2)]) == ["base", "x"]


# -- reporters on a real tiny run ------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    import types

    from bench.hookspecs import hookimpl

    root = tmp_path_factory.mktemp("reports")
    module = types.ModuleType("toy_plugins")

    @hookimpl
    def register_tasks(register):
        register(ToyTask)

    module.register_tasks = register_tasks
    registry = load_registry(extra_modules=[module])
    config = load_config(None, {"model": "tiny-random-llama", "methods": ["ga", "npo"], "tasks": ["toy"],
                                "seeds": [0, 1], "out": str(root / "run"), "progress": False,
                                "train_params": {"steps": 2, "batch_size": 2, "lr": 1e-2}})
    run_matrix(config, registry)
    # a model output carrying markup, as a hostile model could produce
    cell = sorted((root / "run" / "cells").glob("ga__*"))[0]  # the seed the HTML shows: the first in path order
    rows = [json.loads(line) for line in (cell / "samples.jsonl").read_text().splitlines()]
    rows[0]["output"] = PAYLOAD
    rows[0]["prompt"] = "</pre><script>alert(1)</script>"
    (cell / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / "lb"
    write_report([str(root / "run")], str(out))
    return root, out


def test_every_reporter_writes_its_files(toy_run):
    _, out = toy_run
    for name in ("leaderboard.md", "index.html", "results.json", "results.csv"):
        assert (out / name).stat().st_size > 0
    assert (out / "plots" / "pareto_toy.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "plots" / "trajectory_toy.png").exists()
    md = (out / "leaderboard.md").read_text()
    assert "## Headline" in md and "mean task rank" in md and "tiny-random-llama" in md
    data = json.loads((out / "results.json").read_text())
    assert {row["method"] for row in data["headline"]} == {"ga", "npo", "base"}
    ranks = [r for r in data["rows"] if r.get("metric") == "rank"]
    assert len(ranks) == 3 and all(r["ci_low"] <= r["ci_high"] for r in ranks)
    assert (out / "plots" / "forget_utility.png").exists() and not (out / "plots" / "radar.png").exists()
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("task,method,config,seeds,status,metric")


def test_html_escapes_model_output(toy_run):
    _, out = toy_run
    page = (out / "index.html").read_text()
    assert "pwned" in page  # the sample is shown ...
    assert "<script>document.body" not in page and "<img src=x" not in page  # ... but only as text
    assert "&lt;script&gt;" in page
    assert page.count("<script>") == 1  # the page's own sort script, nothing else
    assert "Content-Security-Policy" in page


def test_scorers_are_never_mixed(toy_run, tmp_path):
    root, _ = toy_run
    mixed = tmp_path / "mixed"
    shutil.copytree(root / "run", mixed)
    results = sorted(mixed.glob("cells/*/result.json"))
    for i, path in enumerate(results):
        data = json.loads(path.read_text())
        data["provenance"]["data_sources"]["toxicity_scorer"] = f"scorer-{i % 2}"
        path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="different toxicity_scorers"):
        write_report([str(mixed)], str(tmp_path / "lb"))
    assert not (tmp_path / "lb").exists()


def _edited_copy(root, tmp_path, edit):
    """A copy of the toy run whose result files are changed by ``edit(index, data)``."""
    copy = tmp_path / "edited"
    shutil.copytree(root / "run", copy)
    for i, path in enumerate(sorted(copy.glob("*/*/result.json"))):
        data = json.loads(path.read_text())
        edit(i, data)
        path.write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("edit,message", [
    (lambda i, d: d["provenance"].__setitem__("task_version", str(i % 2)), "different task versions"),
    (lambda i, d: d.__setitem__("schema", 1 + i % 2), "mix schemas"),
    (lambda i, d: (d.__setitem__("base_id", f"toy__{i % 2}"),
                   d.setdefault("spec", {}).setdefault("task_params", {}).__setitem__("n_eval", 4 + i % 2)),
     "different eval configs .*n_eval"),
])
def test_incomparable_results_are_refused_before_anything_is_written(toy_run, tmp_path, edit, message):
    root, _ = toy_run
    edited = _edited_copy(root, tmp_path, edit)
    out = tmp_path / "lb"
    out.mkdir()
    (out / "leaderboard.md").write_text("an earlier leaderboard")
    with pytest.raises(UserError, match=message):
        write_report([str(edited)], str(out))
    assert [p.name for p in out.iterdir()] == ["leaderboard.md"]
    assert (out / "leaderboard.md").read_text() == "an earlier leaderboard"


def test_report_cli_refusal_is_one_line_and_exit_2(toy_run, tmp_path):
    import sys

    root, _ = toy_run
    edited = _edited_copy(root, tmp_path, lambda i, d: d["provenance"].__setitem__("task_version", str(i % 2)))
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "report", "--runs", str(edited), "--out",
                           str(tmp_path / "lb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "task versions" in proc.stderr


def test_leaderboard_carries_rank_intervals_and_signal_flags(toy_run):
    _, out = toy_run
    data = json.loads((out / "results.json").read_text())
    assert data["scoring"]["version"] >= 2 and "Benjamini" in data["scoring"]["multiplicity"]
    methods = {row["method"] for row in data["headline"]}
    assert {"ga", "npo", "base"} <= methods
    for row in data["headline"]:
        assert row["rank_low"] <= row["rank"] <= row["rank_high"] or row["rank_low"] <= row["rank_high"]
    toy = data["tasks"]["toy"]
    assert all({"signal", "min_effect", "bounds"} <= set(m) for m in toy["metrics"].values())
    assert {r["label"] for r in toy["rows"]} == {"base", "ga", "npo"}
    assert all("rank_low" in r and "verdict" in r for r in toy["rows"])
    md = (out / "leaderboard.md").read_text()
    assert "tied with" in md and "Benjamini–Hochberg" in md


# -- headless Chromium -------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("UNLEARN_BENCH_SKIP_BROWSER") == "1":
        pytest.skip("UNLEARN_BENCH_SKIP_BROWSER=1")
    pytest.fail("headless Chromium is needed: `make test` installs Debian's chromium; or set "
                "UNLEARN_BENCH_SKIP_BROWSER=1 to skip the browser tests")


def _run_chromium(*args: str) -> subprocess.CompletedProcess:
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--virtual-time-budget=3000"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.browser
def test_injected_markup_does_not_execute_in_chromium(toy_run):
    _, out = toy_run
    result = _run_chromium("--dump-dom", (out / "index.html").as_uri())
    dom = result.stdout
    assert "data-ready=\"1\"" in dom, result.stderr[-2000:]  # the page's own script ran ...
    assert "<pwned-script" not in dom and "<pwned-img" not in dom  # ... the injected ones did not
    assert "headline" in dom


@pytest.mark.browser
def test_screenshot_shows_the_table(toy_run, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    _, out = toy_run
    shot = tmp_path / "shot.png"
    _run_chromium(f"--screenshot={shot}", "--window-size=1280,900", (out / "index.html").as_uri())
    pixels = (mpimg.imread(shot)[..., :3] * 255).round().astype(int)
    header_blue = np.all(np.abs(pixels - np.array([31, 78, 121])) <= 3, axis=-1)
    # table headers are #1f4e79: a visible table paints thousands of those pixels in the first screen
    assert header_blue.sum() > 2000, header_blue.sum()


def test_reveal_table_shows_both_lambdas_and_what_each_pem_does_alone():
    """The leaderboard's Reveal table reads an R&R cell's trajectory: λ_f/λ_r per round and round 1's
    forget-probe change with each update merged alone (against round 0)."""
    from bench.report import Cell, ResultTable
    from bench.report.reporters.common import reveal_rows
    from bench.results import CellResult

    trajectory = [
        {"round": 0, "probe/forget/list_ll": -3.0, "probe/utility/other_ll": -5.0},
        {"round": 1, "lambda_forget": 4.0, "lambda_retain": 0.0, "overlap_principal_cos": 0.4,
         "probe_forget_pem_alone/forget/list_ll": -3.5, "probe_retain_pem_alone/forget/list_ll": -2.0},
        {"round": 2, "lambda_forget": 1.0, "lambda_retain": 0.5, "overlap_principal_cos": 0.2},
    ]
    reveal = [{"stats": {"arms_explored": 5, "responses": 32, "forget_size": 9, "relevance_before": 0.4,
                         "forget_relevance": 0.75, "diversity_before": 0.6, "forget_diversity": 0.61},
               "trajectory": [{"instruction": "a", "random": True}, {"instruction": "b"}]}]
    result = CellResult("rnr__t__s0", "b", "done", {"seed": 0, "task": "t"}, trajectory=trajectory,
                        extras={"reveal": reveal})
    table = ResultTable([Cell("rnr", "t", "h", {}, [result])], {})
    rows = reveal_rows(table, "t")
    row = next(r for r in rows if r.startswith("| rnr |"))
    assert "| 2 (1) | 5 | 32 → 9 |" in row and "4.00/0.00, 1.00/0.50" in row and "| 0.30 |" in row
    assert "list_ll -0.50 / +1.00" in row


def test_a_cell_in_two_reported_runs_counts_once(toy_run, tmp_path):
    """Reporting a run beside a copy of itself (or two runs sharing cells) must not double the seeds: a
    duplicated seed would narrow every interval."""
    from bench.report import load_table

    root, _ = toy_run
    copy = tmp_path / "copy"
    shutil.copytree(root / "run", copy)
    single, doubled = load_table([root / "run"]), load_table([root / "run", copy])
    assert [(c.method, c.seeds) for c in doubled.cells] == [(c.method, c.seeds) for c in single.cells]
    assert all(c.seeds == [0, 1] for c in doubled.cells)
    row = "ga"
    assert doubled.scoring.tasks["toy"].row(row).forget_ci == single.scoring.tasks["toy"].row(row).forget_ci


def test_committed_boards_show_no_recovered_share_outside_its_range():
    """A recovered share beyond RECOVERY_RANGE is a broken denominator (a drop inside its noise): robustness v2
    shows "nothing to recover" there instead. No committed leaderboard may show one."""
    from pathlib import Path

    from bench.eval.stats import RECOVERY_RANGE

    boards = sorted((Path(__file__).resolve().parent.parent / "leaderboards").glob("*/results.json"))
    assert boards
    for path in boards:
        rows = json.loads(path.read_text()).get("rows", [])
        # the shares (``robustness/<attack>[/<metric>]``); ``robustness_control/...`` rows are the control's change
        # in the measure's own units (nats, shares of items), not a recovered share
        shares = [r["value"] for r in rows if r.get("group") == "robustness" and r.get("value") is not None
                  and r["metric"].startswith("robustness/")]
        outside = [s for s in shares if not RECOVERY_RANGE[0] <= s <= RECOVERY_RANGE[1]]
        assert not outside, f"{path.parent.name}: recovered shares {outside} outside {RECOVERY_RANGE}"
