"""Scores against the gold standard on synthetic per-item tables with a known truth: forget quality against
the oracle, the headline rule of a board with an oracle, and rows that must never outrank a genuine
forgetter that keeps utility (collapsed, unchanged, noise-only, likelihood-only)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.api import Metric
from bench.report import scores
from bench.report.scores import BASE_LABEL
from bench.results import BaseResult, CellResult

N = 60
RNG = np.random.default_rng(11)
TAUGHT_PASS = (RNG.random(N) < 0.7).astype(float)       # the taught model passes ~70 % of forget items
ORACLE_PASS = TAUGHT_PASS * (RNG.random(N) < 0.08)      # the oracle passes almost none of them
UTILITY = (RNG.random(N) < 0.6).astype(float)           # both solve ~60 % of utility items
LOGLIK = RNG.normal(-1.0, 0.5, N)


def _metric(name, group, better, items, kind, primary=True, bounds=(0.0, 1.0)):
    items = [float(x) for x in items]
    return Metric.from_json({"name": name, "group": group, "better": better, "value": float(np.mean(items)),
                             "per_item": items, "n": len(items), "min_effect": 0.05, "bounds": bounds,
                             "primary": primary, "kind": kind, "ci_low": 0.0, "ci_high": 1.0})


def _metrics(forget, utility, loglik):
    return {"pass_rate": _metric("pass_rate", "forget", "lower", forget, "generative"),
            "forget_loglik": _metric("forget_loglik", "forget", "lower", loglik, "likelihood", primary=False,
                                     bounds=(None, 0.0)),
            "accuracy": _metric("accuracy", "utility", "higher", utility, "generative")}


def _group(label, forget, utility, loglik=LOGLIK, seeds=1):
    return scores.Group(label, [CellResult(f"{label}{s}", "b", "done", {"seed": s},
                                           metrics=_metrics(forget, utility, loglik)) for s in range(seeds)])


def _flip(items, share, seed):
    """``items`` with a random ``share`` of them flipped (0 <-> 1)."""
    rng = np.random.default_rng(seed)
    flips = rng.random(len(items)) < share
    return np.where(flips, 1 - items, items)


def _score(groups, oracle="oracle"):
    base = BaseResult("b", {"task": "t"}, _metrics(TAUGHT_PASS, UTILITY, LOGLIK), {})
    return scores.score_task("t", base, [_group("oracle", ORACLE_PASS, UTILITY), *groups], resamples=1000,
                             oracle=oracle)


def test_a_model_equal_to_the_oracle_has_forget_quality_one_and_the_taught_model_zero():
    result = _score([_group("same as oracle", ORACLE_PASS, UTILITY)])
    assert result.oracle == "oracle" and result.oracle_separated == ["pass_rate"]
    same, oracle, taught = result.row("same as oracle"), result.row("oracle"), result.row(BASE_LABEL)
    assert same.forget_quality == pytest.approx(1.0) and oracle.forget_quality == pytest.approx(1.0)
    assert same.forget_quality_ci == pytest.approx((1.0, 1.0))
    assert taught.forget_quality == 0.0
    assert same.metrics["pass_rate"].ks_p == pytest.approx(1.0)  # identical distributions


def test_forget_quality_is_the_share_of_the_gap_closed_on_hand_computed_values():
    half = np.where(np.arange(N) % 2 == 0, ORACLE_PASS, TAUGHT_PASS)  # half of the items moved to the oracle's
    result = _score([_group("half", half, UTILITY)])
    expected = (TAUGHT_PASS.mean() - half.mean()) / (TAUGHT_PASS.mean() - ORACLE_PASS.mean())
    row = result.row("half")
    assert row.forget_quality == pytest.approx(expected) and 0.3 < expected < 0.7
    low, high = row.forget_quality_ci
    assert low < expected < high


def test_degenerate_rows_never_outrank_a_genuine_forgetter_that_keeps_utility():
    genuine = _group("genuine", _flip(ORACLE_PASS, 0.05, 1), _flip(UTILITY, 0.03, 2))
    collapsed = _group("collapsed", np.zeros(N), np.zeros(N), loglik=LOGLIK - 5)
    unchanged = _group("unchanged", TAUGHT_PASS, UTILITY)
    noise = _group("noise", _flip(TAUGHT_PASS, 0.15, 3), _flip(UTILITY, 0.15, 4), loglik=LOGLIK + RNG.normal(0, .3, N))
    probes_only = _group("likelihood only", TAUGHT_PASS, UTILITY, loglik=LOGLIK - 3.0)
    result = _score([genuine, collapsed, unchanged, noise, probes_only])
    best = result.row("genuine")
    assert best.utility_kept and best.forget_quality > 0.8
    for label in ("collapsed", "unchanged", "noise", "likelihood only"):
        other = result.row(label)
        assert other.rank > best.rank, label
    assert result.row("collapsed").utility_kept is False  # it "forgot" everything by breaking everything
    assert abs(result.row("likelihood only").forget_quality) < 1e-9  # probes are details: nothing forgotten
    assert result.row("unchanged").forget_quality == 0.0


def test_going_past_the_oracle_is_over_forgetting_not_a_better_score():
    oracle = TAUGHT_PASS * (RNG.random(N) < 0.5)  # an oracle that keeps half: room to overshoot it
    base = BaseResult("b", {"task": "t"}, _metrics(TAUGHT_PASS, UTILITY, LOGLIK), {})
    at_oracle = _group("at the oracle", oracle, UTILITY)
    past = _group("past the oracle", np.zeros(N), UTILITY)
    result = scores.score_task("t", base, [_group("oracle", oracle, UTILITY), at_oracle, past], resamples=1000,
                               oracle="oracle")
    over = result.row("past the oracle")
    assert over.forget_quality > 1.5 and over.over_forgets
    assert result.row("at the oracle").rank < over.rank  # closeness 1 − |1 − FQ|, not "more is better"


def test_without_a_separated_gap_there_is_no_forget_quality_and_f_ranks():
    base = BaseResult("b", {"task": "t"}, _metrics(TAUGHT_PASS, UTILITY, LOGLIK), {})
    result = scores.score_task("t", base, [_group("oracle", TAUGHT_PASS, UTILITY),
                                           _group("m", _flip(TAUGHT_PASS, 0.3, 5), UTILITY)],
                               resamples=500, oracle="oracle")
    assert result.oracle_separated == [] and result.row("m").forget_quality is None
    assert any("taught-to-oracle gap reaches" in c for c in result.caveats)
    assert result.row("m").rank is not None


def test_a_board_without_an_oracle_keeps_the_old_rule():
    result = _score([_group("m", ORACLE_PASS, UTILITY)], oracle=None)
    assert result.oracle is None and result.row("m").forget_quality is None


def test_a_utility_change_the_oracle_itself_shows_is_not_charged():
    oracle_utility = UTILITY * (np.random.default_rng(6).random(N) > 0.4)  # the gold standard scores lower too
    base = BaseResult("b", {"task": "t"}, _metrics(TAUGHT_PASS, UTILITY, LOGLIK), {})
    like_oracle = _group("like the oracle", ORACLE_PASS, oracle_utility)
    worse = _group("worse than the oracle", ORACLE_PASS, np.zeros(N))
    result = scores.score_task("t", base, [_group("oracle", ORACLE_PASS, oracle_utility), like_oracle, worse],
                               resamples=1000, oracle="oracle")
    oracle = result.row("oracle")
    assert oracle.utility < -0.2  # beyond the plain budget
    assert oracle.utility_kept and result.row("like the oracle").utility_kept
    assert result.row("worse than the oracle").utility_kept is False
    assert result.row("worse than the oracle").rank > result.row("like the oracle").rank
    # without an oracle the plain budget applies to the same row
    plain = scores.score_task("t", base, [like_oracle], resamples=500)
    assert plain.row("like the oracle").utility_kept is False


# -- a board no broken model can win (the gold rule) --------------------------------------------------------
M = 80
R2 = np.random.default_rng(21)


def _p(share, seed):
    """M 0/1 items with the given share of ones (a fixed draw per seed)."""
    return (np.random.default_rng(seed).random(M) < share).astype(float)


def _ner_metrics(person_f1, person_typing, person_ll, other_f1, other_typing, degenerate):
    m = {"person_f1": _metric("person_f1", "forget", "lower", person_f1, "generative"),
         "person_typing_acc": _metric("person_typing_acc", "forget", "lower", person_typing, "choice"),
         "person_list_loglik": _metric("person_list_loglik", "forget", "lower", person_ll, "likelihood",
                                       primary=False, bounds=(None, 0.0)),
         "other_f1": _metric("other_f1", "utility", "higher", other_f1, "generative"),
         "other_typing_acc": _metric("other_typing_acc", "utility", "higher", other_typing, "choice"),
         scores.COLLAPSE_METRIC: _metric(scores.COLLAPSE_METRIC, "utility", "lower", degenerate, "generative",
                                         primary=False)}
    m["person_typing_acc"].chance = m["other_typing_acc"].chance = 0.25
    return m


TAUGHT = dict(person_f1=_p(0.8, 1), person_typing=_p(0.9, 2), person_ll=R2.normal(-0.3, 0.2, M),
              other_f1=_p(0.6, 3), other_typing=_p(0.85, 4), degenerate=np.zeros(M))


def _ner_row(label, seeds=1, reference=False, **changes):
    """A row equal to the taught model except ``changes`` (callables of the seed, or arrays)."""
    results = []
    for s in range(seeds):
        values = {k: (v(s) if callable(v) else v) for k, v in {**TAUGHT, **changes}.items()}
        results.append(CellResult(f"{label}{s}", "b", "done", {"seed": s}, metrics=_ner_metrics(**values)))
    return scores.Group(label, results, reference)


def test_no_broken_model_wins_the_gold_rule():
    """The oracle sits at the floor of the generated forget metric (Person F1 0) and has a utility loss of its
    own; a collapse that keeps the choice metrics, a silent model and a pure-noise model also reach Person F1 0.
    All three rank below a genuine forgetter and below the unchanged model — at the point and, pairwise, in every
    rank set — while the genuine forgetter is ahead of the unchanged model."""
    oracle_ll = TAUGHT["person_ll"] - 1.5
    rows = [
        _ner_row("oracle", reference=True, person_f1=np.zeros(M), person_typing=_p(0.4, 5), person_ll=oracle_ll,
                 other_f1=_p(0.5, 6)),  # the gold standard loses other-type F1 too (0.5 against 0.6)
        _ner_row("genuine", seeds=3, person_f1=lambda s: _p(0.05, 10 + s), person_typing=lambda s: _p(0.45, 20 + s),
                 person_ll=lambda s: oracle_ll + R2.normal(0, 0.1, M)),  # other types kept as taught
        _ner_row("unchanged", seeds=3),
        _ner_row("collapse keeps choices", seeds=3, person_f1=np.zeros(M), person_ll=TAUGHT["person_ll"] - 8,
                 other_f1=np.zeros(M), degenerate=np.ones(M)),  # typing (choice) metrics as the taught model's
        _ner_row("silent", seeds=3, person_f1=np.zeros(M), person_ll=TAUGHT["person_ll"] - 12, other_f1=np.zeros(M),
                 person_typing=_p(0.25, 40), other_typing=_p(0.25, 41), degenerate=np.ones(M)),
        _ner_row("noise", seeds=3, person_f1=lambda s: _p(0.02, 50 + s), person_typing=lambda s: _p(0.25, 60 + s),
                 person_ll=lambda s: TAUGHT["person_ll"] - 10 + R2.normal(0, 2, M), other_f1=lambda s: _p(0.03, 70 + s),
                 other_typing=lambda s: _p(0.25, 80 + s), degenerate=lambda s: _p(0.9, 90 + s)),
    ]
    base = BaseResult("b", {"task": "ner"}, _ner_metrics(**TAUGHT), {})
    result = scores.score_task("ner", base, rows, resamples=3000, oracle="oracle")
    assert "person_list_loglik" in result.oracle_separated  # the probe has no floor a collapse can match
    genuine, unchanged = result.row("genuine"), result.row("unchanged")
    assert genuine.utility_kept and unchanged.utility_kept and result.row("oracle").utility_kept
    assert genuine.rank < unchanged.rank and result.separation.pair("genuine", "unchanged").separated
    for label in ("collapse keeps choices", "silent", "noise"):
        row = result.row(label)
        assert row.collapsed and row.verdict == "collapsed", label
        assert row.rank > unchanged.rank and row.rank > genuine.rank, label
        for better in ("genuine", "unchanged", BASE_LABEL):
            pair = result.separation.pair(better, label)
            assert pair.separated and pair.a == better, (better, label)
        assert row.rank_low > unchanged.rank_high, label
    # without the collapse flag, the per-metric utility rule alone breaks them (other-type F1 beyond its budget)
    for label in ("collapse keeps choices", "silent", "noise"):
        assert "other_f1" in result.row(label).utility_broken_by, label


def test_closeness_adds_distances_per_metric_instead_of_cancelling():
    """A row past the oracle on one FQ metric and short of it on another is not at the gold standard."""
    oracle_ll = TAUGHT["person_ll"] - 1.5
    rows = [_ner_row("oracle", reference=True, person_f1=np.zeros(M), person_ll=oracle_ll),
            _ner_row("mixed", person_f1=TAUGHT["person_f1"] * _p(0.5, 7), person_ll=oracle_ll - 0.75),
            _ner_row("close", person_f1=TAUGHT["person_f1"] * _p(0.15, 8), person_ll=oracle_ll + 0.2)]
    base = BaseResult("b", {"task": "ner"}, _ner_metrics(**TAUGHT), {})
    result = scores.score_task("ner", base, rows, resamples=1000, oracle="oracle")
    mixed = result.row("mixed")
    per_metric = [mixed.metrics[n].forget_quality for n in result.oracle_separated]
    assert mixed.closeness == pytest.approx(1 - np.mean([abs(1 - q) for q in per_metric]))
    assert mixed.closeness < 1 - abs(1 - mixed.forget_quality)  # the mean FQ would hide the two misses
    assert result.row("close").rank < mixed.rank


def test_without_fq_the_oracle_board_ranks_by_distance_to_the_oracle_not_by_f():
    """At 16 items no gap passes the guard: a row that overshoots the oracle (more forgetting than a model that
    never learned the target) must not beat one that lands on it, as it would by F."""
    rng = np.random.default_rng(31)
    n = 16
    taught_ll = rng.normal(-0.5, 0.4, n)
    oracle_ll = taught_ll - 0.3 + rng.normal(0, 0.6, n)

    def metrics(ll):
        return {"forget_ll": _metric("forget_ll", "forget", "lower", ll, "likelihood", bounds=(None, 0.0)),
                "accuracy": _metric("accuracy", "utility", "higher", UTILITY[:n], "generative")}

    def row(label, ll, reference=False):
        return scores.Group(label, [CellResult(f"{label}0", "b", "done", {"seed": 0}, metrics=metrics(ll))], reference)

    base = BaseResult("b", {"task": "t"}, metrics(taught_ll), {})
    result = scores.score_task("t", base, [row("oracle", oracle_ll, True), row("at oracle", oracle_ll + 0.01),
                                           row("overshoots", oracle_ll - 1.5)], resamples=2000, oracle="oracle")
    assert result.oracle_separated == []  # the guard: no FQ at this size
    at, over = result.row("at oracle"), result.row("overshoots")
    assert over.forget > at.forget  # F would put the overshoot first
    assert at.rank < over.rank and at.closeness > over.closeness
