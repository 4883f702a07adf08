"""Power on every number (``bench.eval.power``): the minimum detectable paired effect and the items an effect
needs, on hand-computed values; ``plan --power`` from stored evaluations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.eval import power


def test_minimum_detectable_effect_and_items_needed_by_hand():
    z = 1.959964 + 0.841621  # z_{0.975} + z_{0.80}
    assert power.z_sum() == pytest.approx(z, abs=1e-5)
    assert power.minimum_detectable(1.0, 100) == pytest.approx(z / 10, abs=1e-6)
    assert power.items_needed(1.0, power.z_sum() / 10 + 1e-12) == 100  # the two are inverse
    assert power.items_needed(0.5, 0.25) == math.ceil((z * 2) ** 2) == 32
    with pytest.raises(ValueError, match="effect must be > 0"):
        power.items_needed(1.0, 0.0)


def test_paired_sd_uses_the_rows_and_falls_back_to_root_two_sigma():
    reference = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    assert power.paired_sd(reference, [])[0] == pytest.approx(math.sqrt(2) * np.std(reference, ddof=1))
    shifted = reference + 0.1  # a constant shift: paired differences do not vary
    flipped = 1.0 - reference
    sd, source = power.paired_sd(reference, [shifted, flipped, shifted])
    assert sd == pytest.approx(0.0, abs=1e-12) and "median SD of 3 rows" in source


def _record(task, name, items, base_id="b1", status="done"):
    return {"base_id": base_id, "status": status, "spec": {"task": task},
            "metrics": {name: {"group": "forget", "primary": True, "per_item": list(items)}}}


def test_plan_items_from_stored_records(tmp_path, capsys):
    rng = np.random.default_rng(3)
    base_items = (rng.random(40) < 0.6).astype(float)
    base = {**_record("coding", "pass_rate", base_items), "base_id": "b1"}
    cell = _record("coding", "pass_rate", np.where(rng.random(40) < 0.2, 1 - base_items, base_items))
    rows = power.plan_items([base], [cell], effect=0.25)
    (row,) = rows
    assert row["n"] == 40 and row["sd_ref"] == pytest.approx(np.std(base_items, ddof=1))
    diff_sd = np.std(np.asarray(cell["metrics"]["pass_rate"]["per_item"]) - base_items, ddof=1)
    assert row["sd_diff"] == pytest.approx(diff_sd)
    assert row["items_needed"] == power.items_needed(diff_sd, 0.25 * row["sd_ref"])
    assert row["mde_sigma"] == pytest.approx(power.minimum_detectable(diff_sd, 40) / row["sd_ref"])
    assert power.plan_items([base], [cell], 0.25, tasks=["ner"]) == []
    assert "items needed" in power.render_plan(rows, 0.25)


def test_plan_power_command_needs_stored_evaluations(tmp_path, capsys):
    from bench.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [ner]\nout: {tmp_path / 'empty'}\n")
    assert main(["plan", "--config", str(config), "--power", "0.25"]) == 2
    assert "holds no base evaluation yet" in capsys.readouterr().err
    assert main(["plan", "--config", str(config), "--power", "-1"]) == 2
