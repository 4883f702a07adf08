"""Leaderboards: normalised scores by hand, all reporters on a real (tiny) run, the scorer-mixing guard,
and the HTML page in headless Chromium (injected markup must not run; the table must be visible)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.cli import write_report
from bench.config import load_config
from bench.errors import UserError
from bench.plugins import load_registry
from bench.runner import run_matrix
from bench.scores import cell_scores, pareto_front, relative_gain, win_rates
from bench.testing import ToyTask

PAYLOAD = ("<script>document.body.appendChild(document.createElement('pwned-script'))</script>"
           "<img src=x onerror=\"document.body.appendChild(document.createElement('pwned-img'))\">")


# -- scores by hand ----------------------------------------------------------------------------
def test_relative_gain_direction_floor_and_clip():
    assert relative_gain(-2.0, -1.0, "lower") == pytest.approx(1.0)        # loglik fell by |b|
    assert relative_gain(-1.5, -1.0, "lower") == pytest.approx(0.5)
    assert relative_gain(0.5, 1.0, "higher") == pytest.approx(-0.5)         # utility halved
    assert relative_gain(30.0, 20.0, "lower") == pytest.approx(-0.5)        # perplexity up 50 %
    assert relative_gain(0.02, 0.0, "higher") == pytest.approx(1.0)         # floor 0.01, clipped
    assert relative_gain(0.005, 0.0, "higher") == pytest.approx(0.5)
    assert relative_gain(-10.0, -1.0, "lower") == 1.0


def test_cell_scores_average_primary_metrics_only():
    base = {"f1": {"value": 0.5}, "ll": {"value": -2.0}, "u": {"value": 1.0}, "detail": {"value": 1.0}}
    metrics = {
        "f1": {"value": 0.25, "group": "forget", "better": "lower"},                    # r = 0.5
        "ll": {"value": -3.0, "group": "forget", "better": "lower"},                    # r = 0.5
        "u": {"value": 0.9, "group": "utility", "better": "higher"},                    # r = -0.1
        "detail": {"value": 0.0, "group": "utility", "better": "higher", "primary": False},
    }
    scores = cell_scores(metrics, base)
    assert scores.forget == pytest.approx(0.5) and scores.utility == pytest.approx(-0.1)
    assert scores.combined == pytest.approx(0.4)
    # a change whose paired CI includes zero counts as no change
    metrics["f1"].update(delta_ci_low=-0.4, delta_ci_high=0.1)
    assert cell_scores(metrics, base).forget == pytest.approx(0.25)


def test_win_rates_by_hand_with_a_failed_cell():
    per_task = {"a": {"x": 0.5, "y": 0.1, "z": None}, "b": {"x": 0.0, "y": 0.2, "z": 0.2}}
    rates = win_rates(per_task)
    # task a: x beats y and z -> 1, y beats z -> .5, z -> 0; task b: y ties z (.5 each) and beats x
    assert rates["x"] == pytest.approx((1.0 + 0.0) / 2)
    assert rates["y"] == pytest.approx((0.5 + 0.75) / 2)
    assert rates["z"] == pytest.approx((0.0 + 0.75) / 2)


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
    cell = next((root / "run" / "cells").glob("ga__*"))
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
    assert "## Headline" in md and "mean win rate" in md and "tiny-random-llama" in md
    data = json.loads((out / "results.json").read_text())
    assert {row["method"] for row in data["headline"]} == {"ga", "npo"}
    scored = [r for r in data["rows"] if r.get("metric") == "score_combined"]
    assert len(scored) == 2
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


def test_injected_markup_does_not_execute_in_chromium(toy_run):
    _, out = toy_run
    result = _run_chromium("--dump-dom", (out / "index.html").as_uri())
    dom = result.stdout
    assert "data-ready=\"1\"" in dom, result.stderr[-2000:]  # the page's own script ran ...
    assert "<pwned-script" not in dom and "<pwned-img" not in dom  # ... the injected ones did not
    assert "headline" in dom


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
