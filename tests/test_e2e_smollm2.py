"""End-to-end on the real embedded SmolLM2-135M-Instruct (small sizes): GA lowers the forget likelihood."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "bench.cli"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config = root / "c.yaml"
    config.write_text(f"""
model: smollm2-135m-instruct
methods:
  ga: {{steps: 6, lr: 0.0005, batch_size: 4, max_length: 192}}
tasks:
  coding: {{n_forget: 12, n_stdlib_forget: 4, n_eval: 6, n_gsm_eval: 4, n_retain: 4, n_arithmetic: 4, n_functions: 4,
           n_word_problems: 4,
           max_new_tokens_code: 48, max_new_tokens_math: 32, gsm8k_source: symbolic}}
seeds: [0]
out: {root / 'run'}
""")
    result = subprocess.run(CLI + ["run", "--config", str(config), "--no-progress", "--report", str(root / "lb")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, config


def test_ga_lowers_forget_loglik_on_smollm2(run_dir):
    root, _ = run_dir
    [cell] = list((root / "run" / "cells").glob("*/result.json"))
    result = json.loads(cell.read_text())
    assert result["status"] == "done"
    forget = result["metrics"]["humaneval_canonical_loglik"]
    assert forget["delta"] < 0 and forget["delta_ci_high"] < 0, forget
    assert result["provenance"]["model"]["model_id"] == "smollm2-135m-instruct"
    assert "GSM-symbolic" in result["provenance"]["data_sources"]["gsm8k"]
    md = (root / "lb" / "leaderboard.md").read_text()
    assert "| ga |" in md and "GSM-symbolic" in md and "smollm2-135m-instruct" in md


def test_rerun_does_no_work(run_dir):
    root, config = run_dir
    result = subprocess.run(CLI + ["run", "--config", str(config), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "1 cells: 1 already finished, nothing to run" in result.stdout
