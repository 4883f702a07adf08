"""End-to-end on SmolLM2 (small sizes): every built-in method lowers the forget likelihood on coding."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

METHODS = ["graddiff", "npo", "flat", "icu"]


def test_each_method_lowers_forget_loglik(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"""
model: smollm2-135m-instruct
methods:
  graddiff: {{steps: 6, lr: 0.001, batch_size: 4, max_length: 128}}
  npo: {{steps: 3, batch_size: 4, max_length: 128}}
  flat: {{steps: 3, batch_size: 4, max_length: 128}}
  icu: {{steps: 3, batch_size: 4, max_length: 128, max_epochs: 1, max_new_tokens: 8}}
tasks:
  coding: {{n_forget: 8, n_stdlib_forget: 2, n_eval: 4, n_gsm_eval: 2, n_retain: 8, n_arithmetic: 4, n_functions: 4,
           n_word_problems: 4,
           max_new_tokens_code: 8, max_new_tokens_math: 8, gsm8k_source: symbolic}}
out: {tmp_path / 'run'}
""")
    run = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--config", str(config), "--no-progress"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    results = {json.loads(p.read_text())["spec"]["method"]: json.loads(p.read_text())
               for p in (tmp_path / "run" / "cells").glob("*/result.json")}
    assert sorted(results) == sorted(METHODS)
    for method, result in results.items():
        assert result["status"] == "done", (method, result["reason"])
        forget = result["metrics"]["humaneval_canonical_loglik"]
        assert forget["delta"] < 0, (method, forget)
    assert results["icu"]["extras"]["pairing_embedding"].startswith("all-MiniLM")
