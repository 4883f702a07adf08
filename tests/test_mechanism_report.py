"""The mechanism columns of oracle boards: the seed interval's coverage on synthetic seeds with a known mean, and
the rows read from cells' ``extras.mechanism``."""

import types

import numpy as np
import pytest

from bench.report.mechanism import KINDS_SHOWN, SeedMean, mechanism_rows, table_rows


@pytest.mark.parametrize("seeds", [3, 5])
def test_seed_interval_covers_the_true_mean(seeds):
    """Normal seed-to-seed spread around a known share: the 95 % t-interval covers it ~95 % of the time."""
    rng = np.random.default_rng(0)
    truth, hits, trials = 0.4, 0, 2000
    for _ in range(trials):
        values = list(rng.normal(truth, 0.1, size=seeds))
        s = SeedMean.of(values, (0.0, 1.0))
        hits += s.low <= truth <= s.high
    assert 0.93 <= hits / trials <= 0.97


def test_one_seed_has_no_interval_and_bounds_clip():
    assert SeedMean.of([0.3]).low is None
    clipped = SeedMean.of([0.99, 1.0, 0.95], (0.0, 1.0))
    assert clipped.high == 1.0 and clipped.low < clipped.mean


def _record(share, chance=1e-3, ratio=0.5):
    kind = {"share": share, "chance": chance, "norm_ratio": ratio}
    return {"kinds": {k: dict(kind) for k in KINDS_SHOWN}}


def test_rows_pool_seeds_and_keep_errors():
    def result(extras, status="done"):
        return types.SimpleNamespace(status=status, extras=extras)

    cells = {"ga": [result({"mechanism": _record(0.9)}), result({"mechanism": _record(0.7)})],
             "rmu": [result({"mechanism": {"error": "ValueError: no adapter"}})],
             "reference": [result({})]}

    class Table:
        def cells_for(self, task):
            return [types.SimpleNamespace(name=n, results=r) for n, r in cells.items()]

        def label(self, cell):
            return cell.name

    rows = {r.label: r for r in mechanism_rows(Table(), "toy")}
    assert set(rows) == {"ga", "rmu"}  # the reference row recorded nothing
    assert rows["ga"].share["all"].mean == pytest.approx(0.8) and rows["ga"].share["all"].seeds == 2
    assert rows["rmu"].share == {} and rows["rmu"].errors == ["ValueError: no adapter"]
    header, cells_text = table_rows(list(rows.values()))
    assert header[1] == "share all" and cells_text[0][1].startswith("0.80 [")
    assert "not computed" in cells_text[1][0]
