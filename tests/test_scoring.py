"""Leaderboard scoring on synthetic results with a known truth: degenerate models cannot win, noise gives
ties, a clearly better method ranks first with a separated interval, and intervals never collapse."""

import numpy as np
import pytest

from bench.api import Metric
from bench.eval.stats import benjamini_hochberg, bootstrap_p_value, clopper_pearson, mean_metric
from bench.report import scores
from bench.report.scores import BASE_LABEL, MetricInfo, signal_check
from bench.results import BaseResult, CellResult

N = 40
RNG = np.random.default_rng(7)
BASE_FORGET = RNG.normal(-2.0, 1.0, N)
BASE_UTILITY = RNG.normal(-2.0, 1.0, N)


def _metric(group, better, items, min_effect=0.05, bounds=(None, 0.0), primary=True):
    items = [float(x) for x in items]
    return {"group": group, "better": better, "value": float(np.mean(items)), "per_item": items, "n": len(items),
            "min_effect": min_effect, "bounds": bounds, "primary": primary, "kind": "likelihood",
            "ci_low": min(items), "ci_high": max(items)}


def _result(forget, utility, seed=0, status="done"):
    return {"status": status, "spec": {"seed": seed},
            "metrics": {} if status != "done" else {"forget_ll": _metric("forget", "lower", forget),
                                                    "utility_ll": _metric("utility", "higher", utility)}}


BASE = {"metrics": _result(BASE_FORGET, BASE_UTILITY)["metrics"]}


# The tests write results as plain dicts (easy to edit per case); scoring reads the typed records.
def _metrics(data):
    return {name: Metric.from_json({"name": name, **m}) for name, m in data["metrics"].items()}


def Group(label, results):  # noqa: N802 - stands in for scores.Group, taking dict results
    return scores.Group(label, [CellResult(f"{label}{i}", "b", r["status"], r["spec"], metrics=_metrics(r))
                                for i, r in enumerate(results)])


def _base(data):
    return BaseResult("b", {"task": "t"}, _metrics(data), {})


def score_task(task, base, groups, **kw):
    return scores.score_task(task, _base(base), groups, **kw)


def score_leaderboard(per_task, **kw):
    return scores.score_leaderboard({t: (_base(b), g) for t, (b, g) in per_task.items()}, **kw)


def _shifted(df, du, noise=0.0, seed=0):
    rng = np.random.default_rng(100 + seed)
    return _result(BASE_FORGET + df + rng.normal(0, noise, N), BASE_UTILITY + du + rng.normal(0, noise, N), seed)


def _score(groups, **kw):
    return score_task("synthetic", BASE, groups, resamples=kw.pop("resamples", 1000), **kw)


def test_a_method_that_destroys_utility_never_outranks_doing_nothing():
    scores = _score([Group("collapse", [_shifted(-6.0, -6.0)]), Group("noop", [_shifted(0.0, 0.0)])])
    collapse, noop, base = scores.row("collapse"), scores.row("noop"), scores.row(BASE_LABEL)
    assert collapse.forget > 3 and collapse.utility < -3          # it forgot a lot, at the cost of everything
    assert collapse.utility_kept is False and noop.utility_kept is True
    assert collapse.rank > noop.rank and collapse.rank_low > max(noop.rank_high, base.rank_high)
    assert noop.forget == 0 and noop.rank == base.rank == 1       # an unchanged model ties the base, never wins


def test_noise_only_differences_give_overlapping_intervals_and_ties():
    groups = [Group("a", [_shifted(-0.3, 0.0, noise=0.4, seed=1)]),
              Group("b", [_shifted(-0.3, 0.0, noise=0.4, seed=2)])]
    scores = _score(groups)
    a, b = scores.row("a"), scores.row("b")
    assert a.rank_low <= b.rank_high and b.rank_low <= a.rank_high
    assert "b" in a.tied_with and "a" in b.tied_with


def test_a_clearly_better_method_over_three_seeds_ranks_first_and_separated():
    groups = [Group("good", [_shifted(-1.5, 0.0, noise=0.1, seed=s) for s in range(3)]),
              Group("weak", [_shifted(-0.3, 0.0, noise=0.1, seed=10 + s) for s in range(3)]),
              Group("noop", [_shifted(0.0, 0.0, seed=20 + s) for s in range(3)])]
    scores = _score(groups)
    good = scores.row("good")
    assert (good.rank, good.rank_low, good.rank_high) == (1, 1, 1)
    assert all(r.rank_low > 1 for r in scores.rows if r.label != "good")
    assert good.tied_with == []


def test_identical_per_seed_deltas_never_give_a_zero_width_interval():
    same = [_shifted(-0.5, 0.0, noise=0.3, seed=5) for _ in range(3)]
    for s, r in enumerate(same):
        r["spec"]["seed"] = s
    stats = _score([Group("m", same)]).row("m").metrics["forget_ll"]
    assert stats.seeds == 3
    assert stats.delta_ci_high - stats.delta_ci_low > 0.05
    assert stats.ci_high - stats.ci_low > 0.05


def test_zero_of_sixteen_gets_its_exact_upper_bound():
    metric = mean_metric("acc", "utility", [0.0] * 16, "higher", bounds=(0.0, 1.0))
    assert metric.ci_low == 0.0 and metric.ci_high == pytest.approx(0.206, abs=0.001)
    assert clopper_pearson(0, 16)[1] == pytest.approx(1 - 0.025 ** (1 / 16))
    base = {"metrics": {"acc": {**_metric("utility", "higher", [0.0] * 16, bounds=(0.0, 1.0)),
                                "kind": "generative"}}}
    row = score_task("t", base, [], resamples=200).row(BASE_LABEL)
    assert row.metrics["acc"].ci_high == pytest.approx(0.206, abs=0.001)


@pytest.mark.parametrize("successes,group,better,ok", [
    (0, "utility", "higher", False),   # 0/16 accuracy cannot fall: no utility loss is detectable
    (1, "forget", "lower", False),     # 1/16 pass@1 can fall by one item only: never significant
    (8, "forget", "lower", True),
    (16, "forget", "higher", False),   # at the ceiling, cannot rise
    (15, "utility", "higher", True),   # near the ceiling but a loss can be seen
])
def test_floor_and_ceiling_detection(successes, group, better, ok):
    items = np.array([1.0] * successes + [0.0] * (16 - successes))
    info = MetricInfo("acc", group, better, min_effect=0.05, bounds=(0.0, 1.0))
    draws = np.random.default_rng(0).integers(0, 16, size=(1000, 1, 16))
    signal = signal_check(info, items, draws)
    assert signal.ok is ok, signal.reason
    assert signal.reason == "" if ok else signal.reason


def test_unscored_metric_stays_out_of_the_scores():
    base = {"metrics": {**BASE["metrics"], "acc": {**_metric("forget", "lower", [0.0] * N, bounds=(0.0, 1.0))}}}
    result = _shifted(-0.5, 0.0, noise=0.1)
    result["metrics"]["acc"] = _metric("forget", "lower", [0.0] * N, bounds=(0.0, 1.0))
    scores = score_task("t", base, [Group("m", [result])], resamples=200)
    assert scores.scored["forget"] == ["forget_ll"] and not scores.signal["acc"].ok
    m = scores.row("m")
    assert m.forget == pytest.approx(m.metrics["forget_ll"].effect)


def test_closer_metrics_penalise_a_move_either_way():
    info_items = BASE_UTILITY
    base = {"metrics": {**BASE["metrics"], "fluency": _metric("utility", "closer", info_items, bounds=None)}}
    rows = []
    for label, shift in (("blander", -0.5), ("garbled", 0.5)):
        r = _shifted(-0.5, 0.0, noise=0.05)
        r["metrics"]["fluency"] = _metric("utility", "closer", info_items + shift, bounds=None)
        rows.append(Group(label, [r]))
    scores = score_task("t", base, rows, resamples=200)
    b, g = scores.row("blander").metrics["fluency"], scores.row("garbled").metrics["fluency"]
    assert b.effect < 0 and g.effect < 0 and b.effect == pytest.approx(g.effect)


def test_failed_cells_rank_last_and_multiplicity_is_adjusted():
    groups = [Group("good", [_shifted(-1.0, 0.0, noise=0.1)]),
              Group("broken", [_result([], [], status="failed")])]
    scoring = score_leaderboard({"t": (BASE, groups)}, resamples=300)
    rows = scoring.tasks["t"].rows
    assert rows[-1].label == "broken" and rows[-1].rank == 3 and rows[-1].verdict == "failed"
    stats = scoring.tasks["t"].row("good").metrics["forget_ll"]
    assert stats.q_value >= stats.p_value and stats.significant and stats.meaningful
    assert [r.label for r in scoring.overall][0] == "good"


def test_benjamini_hochberg_and_bootstrap_p_values_by_hand():
    # p sorted 0.01, 0.02, 0.03, 0.5 -> p*m/rank = 0.04, 0.04, 0.04, 0.5
    assert benjamini_hochberg([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert bootstrap_p_value(np.zeros(99)) == 1.0
    assert bootstrap_p_value(np.full(99, -1.0)) == pytest.approx(2 / 100)


def test_a_task_without_utility_signal_says_so():
    base = {"metrics": {"forget_ll": BASE["metrics"]["forget_ll"],
                        "acc": _metric("utility", "higher", [0.0] * N, bounds=(0.0, 1.0))}}
    result = _shifted(-0.5, 0.0)
    result["metrics"]["acc"] = _metric("utility", "higher", [0.0] * N, bounds=(0.0, 1.0))
    scores = score_task("t", base, [Group("m", [result])], resamples=200)
    assert scores.scored["utility"] == [] and "utility loss is not checked" in scores.caveats[0]


def test_weighted_metrics_are_ratios_of_sums_scored_paired():
    tp, fp, fn = np.array([1, 0, 2, 3] * 5), np.array([0, 1, 0, 1] * 5), np.array([1, 1, 0, 0] * 5)
    weights = 2 * tp + fp + fn
    f1 = 2 * tp / weights
    metric = mean_metric("f1", "forget", f1, "lower", bounds=(0.0, 1.0), min_effect=0.05, weights=weights)
    assert metric.value == pytest.approx(2 * tp.sum() / weights.sum())      # micro, not the mean of F1s
    assert metric.value != pytest.approx(f1.mean())
    assert metric.ci_low < metric.value < metric.ci_high
    base = {"metrics": {"f1": {**metric.to_json()}}}
    after = mean_metric("f1", "forget", np.zeros(20), "lower", bounds=(0.0, 1.0), min_effect=0.05, weights=fp + fn + 1)
    scores = score_task("t", base, [Group("m", [{"status": "done", "spec": {"seed": 0},
                                                  "metrics": {"f1": after.to_json()}}])], resamples=300)
    stats = scores.row("m").metrics["f1"]
    assert stats.delta == pytest.approx(-metric.value) and stats.delta_ci_high < 0


@pytest.mark.parametrize("correct,ok", [(5, False), (13, True)])
def test_a_choice_metric_has_its_floor_at_chance(correct, ok):
    items = np.array([1.0] * correct + [0.0] * (16 - correct))
    info = MetricInfo("acc", "forget", "lower", min_effect=0.05, bounds=(0.0, 1.0), chance=0.25)
    draws = np.random.default_rng(0).integers(0, 16, size=(1000, 1, 16))
    signal = signal_check(info, items, draws)
    assert signal.ok is ok and (ok or "chance" in signal.reason)


def test_overall_ranks_follow_the_rows_of_each_task():
    """With one task the overall ranking is that task's ranking, intervals included (the replicate columns
    must stay aligned with the rows after the rows are sorted by rank)."""
    groups = [Group("zeta", [_shifted(-1.2, 0.0, noise=0.05)]), Group("alpha", [_shifted(-0.1, 0.0, noise=0.6)]),
              Group("mid", [_shifted(-0.5, -0.1, noise=0.3)]), Group("broken", [_shifted(-3.0, -3.0)])]
    scoring = score_leaderboard({"t": (BASE, groups)}, resamples=500)
    task_rows = {r.label: (r.rank, r.rank_low, r.rank_high) for r in scoring.tasks["t"].rows}
    overall = {r.label: (r.rank, r.rank_low, r.rank_high) for r in scoring.overall}
    assert overall == task_rows
    assert [r.label for r in scoring.tasks["t"].rows][0] == "zeta" and task_rows["broken"][0] == 5


def test_separated_pairs_counts_rank_intervals_that_do_not_overlap():
    from bench.report.reporters.markdown import separation_line
    from bench.report.scores import OverallRow, separated_pairs

    rows = [OverallRow("base", 1.0, 1, 1, 2, tied_with=["a"]), OverallRow("a", 2.0, 2, 1, 3, tied_with=["base", "b"]),
            OverallRow("b", 3.0, 3, 3, 4, tied_with=["a"]), OverallRow("c", 4.0, 4, 4, 4, tied_with=["b"])]
    rows[2].tied_with.append("c")
    # pairs: base-a tied, base-b, base-c apart; a-b tied, a-c apart; b-c tied -> 3 of 6
    assert separated_pairs(rows) == (3, 6)
    assert separated_pairs(rows[1:]) == (1, 3)
    assert separation_line(rows).startswith("Pairwise tests (Holm, family-wise 5 %) separate 3 of 6 pairs of rows "
                                            "(1 of 3 pairs of methods")
    # a reference row (oracle, untaught base) is not a method: with c one, methods a-b are 0 of 1 apart
    line = separation_line(rows, {"c"})
    assert "(0 of 1 pairs of methods, the base model and the reference rows aside)" in line
