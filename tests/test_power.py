"""Power on every number (``bench.inference.power``): minimum detectable effects at the board's levels, variance
components and the items and seeds a pairwise difference needs, on hand-computed values; ``plan --power``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.eval import power as old_path
from bench.inference import power


def test_minimum_detectable_effect_and_items_needed_by_hand():
    z = 1.959964 + 0.841621  # z_{0.975} + z_{0.80}
    assert power.z_sum() == pytest.approx(z, abs=1e-5)
    assert power.minimum_detectable(1.0, 100) == pytest.approx(z / 10, abs=1e-6)
    assert power.minimum_detectable(0.1) == pytest.approx(z / 10, abs=1e-6)  # a bootstrap SE, n = 1
    assert power.items_needed(1.0, power.z_sum() / 10 + 1e-12) == 100  # the two are inverse
    assert power.items_needed(0.5, 0.25) == math.ceil((z * 2) ** 2) == 32
    with pytest.raises(ValueError, match="effect must be > 0"):
        power.items_needed(1.0, 0.0)
    assert old_path.minimum_detectable is power.minimum_detectable  # the old import path still works


def test_levels_of_the_boards_rules_by_hand():
    # BH: p sorted 0.001, 0.01, 0.03, 0.2 against 0.0125, 0.025, 0.0375, 0.05: k = 3 passes -> 0.05 * 3 / 4
    assert power.bh_level([0.2, 0.001, 0.03, 0.01]) == pytest.approx(0.0375)
    assert power.bh_level([0.5, 0.9]) == pytest.approx(0.025)  # nothing passes: alpha / m
    assert power.holm_first_level(5) == pytest.approx(0.005)  # 10 pairs
    # the minimum meaningful effect is a floor and says so
    p = power.metric_power(0.14, 0.0375, 0.5, 0.05, 40, "hand")
    assert p.mde == pytest.approx(0.14) and not p.floor_binds and p.in_sigma == pytest.approx(0.28)
    floored = power.metric_power(0.001, 0.05, 0.5, 0.05, 40, "hand")
    assert floored.mde == 0.05 and floored.floor_binds


def test_the_mde_from_replicates_is_the_normal_formula_for_normal_replicates_and_larger_for_heavy_tails():
    rng = np.random.default_rng(1)
    normal = rng.normal(0.3, 0.1, 200_000)
    mde, extrapolated = power.replicate_mde(normal, 0.05)
    assert mde == pytest.approx(power.z_sum(0.05) * 0.1, rel=0.02) and not extrapolated
    heavy = 0.3 + 0.1 * rng.standard_t(2, 200_000)
    assert power.replicate_mde(heavy, 0.05)[0] > 1.3 * mde  # t with 2 df: the bound lies much further out
    strict, extrapolated = power.replicate_mde(normal[:1000], 0.001)  # 1 replicate beyond the bound: extrapolated
    assert extrapolated and strict == pytest.approx(power.z_sum(0.001) * 0.1, rel=0.1)
    assert power.board_mde([normal[:1000], 2 * normal[:1000]], 0.05)[0] == pytest.approx(
        np.median([power.replicate_mde(normal[:1000], 0.05)[0], power.replicate_mde(2 * normal[:1000], 0.05)[0]]))


def test_variance_components_recover_a_known_design():
    rng = np.random.default_rng(0)
    n, s = 400, 6
    reference = rng.normal(0, 1, n)
    rows = []
    for _ in range(9):  # item SD 0.5, seed SD 0.3, interaction SD 0.4 on the differences from the reference
        d = rng.normal(0, 0.5, n)[None, :] + rng.normal(0, 0.3, s)[:, None] + rng.normal(0, 0.4, (s, n))
        rows.append(reference + d)
    comp = power.components(reference, rows)
    assert comp.item == pytest.approx(0.25, rel=0.25) and comp.interaction == pytest.approx(0.16, rel=0.15)
    assert comp.seed == pytest.approx(0.09, rel=0.6)  # 6 seeds: the seed component is the noisiest
    assert comp.se(100, 3) == pytest.approx(math.sqrt(comp.item / 100 + comp.seed / 3 + comp.interaction / 300))
    # a seed component larger than the target allows: no number of items helps
    assert power.pair_items_needed(comp, 0.1, 1, 0.05) == math.inf
    need = power.pair_items_needed(power.Components(0.25, 0.0, 0.0, 1), 0.2, 3, 0.05)
    assert need == math.ceil(power.z_sum() ** 2 * 0.25 / (0.2 ** 2 / 2))  # no seed part: the normal plan
    with_seeds = power.Components(0.25, 0.002, 0.0, 1)
    t_plan = power.pair_items_needed(with_seeds, 0.2, 3, 0.05)
    normal_plan = math.ceil(power.z_sum() ** 2 * 0.25 / (0.2 ** 2 / 2 - power.z_sum() ** 2 * 0.002 / 3))
    assert t_plan > normal_plan  # 2 x 2 degrees of freedom for the seed part: more items than the normal plan
    assert power.pair_items_needed(with_seeds, 0.2, 1, 0.05) == math.inf


def _record(task, name, items, base_id="b1", status="done", seed=0):
    return {"base_id": base_id, "status": status, "spec": {"task": task, "method": "ga", "method_params": {},
                                                           "seed": seed},
            "metrics": {name: {"group": "forget", "primary": True, "per_item": list(items)}}}


def test_plan_items_from_stored_records(tmp_path, capsys):
    rng = np.random.default_rng(3)
    base_items = (rng.random(40) < 0.6).astype(float)
    base = {**_record("coding", "pass_rate", base_items), "base_id": "b1"}
    cells = [_record("coding", "pass_rate", np.where(rng.random(40) < 0.2, 1 - base_items, base_items), seed=s)
             for s in range(3)]
    rows = power.plan_items([base], cells, effect=0.5, n_rows={"coding": 5})
    (row,) = rows
    assert row["n"] == 40 and row["sd_ref"] == pytest.approx(np.std(base_items, ddof=1))
    assert row["level"] == pytest.approx(0.005) and row["rows"] == 5
    stacked = np.asarray([c["metrics"]["pass_rate"]["per_item"] for c in cells])
    comp = power.components(base_items, [stacked])
    assert row["components"]["item"] == pytest.approx(comp.item)
    need = row["items_needed"]
    assert need[3] == power.pair_items_needed(comp, 0.5 * row["sd_ref"], 3, 0.005)
    assert need[8] <= need[3] <= need[1]  # more seeds never need more items
    assert power.plan_items([base], cells, 0.25, tasks=["ner"]) == []
    assert "Items needed to separate two rows" in power.render_plan(rows, 0.5)


def test_plan_power_command_needs_stored_evaluations(tmp_path, capsys):
    from bench.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"model: tiny-random-llama\nmethods: [ga]\ntasks: [ner]\nout: {tmp_path / 'empty'}\n")
    assert main(["plan", "--config", str(config), "--power", "0.25"]) == 2
    assert "holds no base evaluation yet" in capsys.readouterr().err
    assert main(["plan", "--config", str(config), "--power", "-1"]) == 2
