"""Privacy statistics (bench.eval.privacy): attack scores on hand-computed token distributions, AUC on synthetic
member / non-member tables with a known AUC, coverage of the crossed-bootstrap intervals of AUC, PrivLeak and
leak@k on synthetic data with a known truth, PrivLeak's sign conventions, and leak@k on scripted samples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import beta as beta_fn
from scipy.stats import norm

from bench.eval import privacy as P
from bench.inference.bootstrap import CrossedDraws

LN2 = math.log(2)


# -- attack scores on hand-computed distributions ----------------------------------------------------------------------
def _dist(*probs: float) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=float))


#: Three answer positions over a 4-token vocabulary. Position 1: p = (1/2, 1/4, 1/8, 1/8), log2 p = (−1, −2, −3, −3):
#: μ = −1.75 ln2, E[(log p)²] = 3.75 (ln2)², σ² = 0.6875 (ln2)²; the answer's token is the 4th (log p = −3 ln2), so
#: z = (−3 + 1.75) / √0.6875 = −1.50756. Position 2: uniform, σ = 0 (floored), z = 0 whatever the token.
#: Position 3: the same distribution as position 1, token 1 (log p = −ln2): z = 0.75 / √0.6875 = +0.90453.
POSITIONS = [_dist(.5, .25, .125, .125), _dist(.25, .25, .25, .25), _dist(.5, .25, .125, .125)]
TOKENS = [3, 1, 0]
Z = [-1.25 / math.sqrt(0.6875), 0.0, 0.75 / math.sqrt(0.6875)]
LOGP = [-3 * LN2, -2 * LN2, -LN2]


def test_vocab_moments_match_the_hand_computation():
    mu, var = P.vocab_moments(np.stack(POSITIONS))
    assert mu == pytest.approx([-1.75 * LN2, -2 * LN2, -1.75 * LN2])
    assert var == pytest.approx([0.6875 * LN2 ** 2, 0.0, 0.6875 * LN2 ** 2], abs=1e-12)


def _stats() -> P.TokenStats:
    mu, var = P.vocab_moments(np.stack(POSITIONS))
    logp = np.array([POSITIONS[t][tok] for t, tok in enumerate(TOKENS)])
    return P.TokenStats(logp, mu, var)


def test_min_k_plus_plus_on_hand_computed_distributions():
    stats = _stats()
    # k = 0.4 of 3 tokens: ⌊1.2⌋ = 1 token, the lowest z
    assert P.min_k_plus_plus_score(stats, 0.4) == pytest.approx(Z[0])
    # k = 1: the mean of all three z
    assert P.min_k_plus_plus_score(stats, 1.0) == pytest.approx(sum(Z) / 3)
    # k = 0.7: the two lowest (−1.508 and 0)
    assert P.min_k_plus_plus_score(stats, 0.7) == pytest.approx((Z[0] + Z[1]) / 2)


def test_min_k_loss_and_zlib_on_hand_computed_log_probabilities():
    stats = _stats()
    assert P.loss_score(stats) == pytest.approx(sum(LOGP) / 3)
    assert P.min_k_score(stats, 0.4) == pytest.approx(-3 * LN2)
    assert P.min_k_score(stats, 0.7) == pytest.approx(-2.5 * LN2)
    text = "abcabcabcabc"
    import zlib

    assert P.zlib_score(stats, text) == pytest.approx(sum(LOGP) / 3 / len(zlib.compress(text.encode())))


def test_the_model_side_reduce_gives_the_hand_computed_statistics():
    """The torch reduction the model pass uses (log-softmax of the logits, shifted by one) returns the same log p,
    μ and σ² per answer token, and NaN on prompt positions."""
    import torch

    from bench.data.text import IGNORE

    # logits at positions 0..2 predict the tokens at 1..3; position 3's logits are unused
    logits = torch.tensor(np.stack([*POSITIONS, POSITIONS[0]])[None], dtype=torch.float32) + 0.7  # shift-invariant
    labels = torch.tensor([[IGNORE, *TOKENS]])
    out = P._token_stats_reduce(logits, labels)[0].numpy()
    assert out[:, 0] == pytest.approx(LOGP, abs=1e-5)
    stats = P.TokenStats(out[:, 0], out[:, 1], out[:, 2])
    assert P.min_k_plus_plus_score(stats, 1.0) == pytest.approx(sum(Z) / 3, abs=1e-4)
    prompt = P._token_stats_reduce(logits, torch.tensor([[IGNORE, IGNORE, TOKENS[1], TOKENS[2]]]))[0].numpy()
    assert np.isnan(prompt[0]).all() and not np.isnan(prompt[1:]).any()


def test_min_k_plus_plus_sees_a_token_at_the_mode_of_a_flat_distribution_as_member_like():
    """Why the ++: the same absolute log-probability is a member signal when it is high *for its distribution*."""
    flat = _dist(.3, .3, .2, .2)
    peaked = _dist(.9, .05, .03, .02)
    # token of probability 0.3 at the top of a flat distribution vs a probability-0.05 token of a peaked one
    mu_f, var_f = P.vocab_moments(flat[None])
    mu_p, var_p = P.vocab_moments(peaked[None])
    at_mode = P.TokenStats(np.array([flat[0]]), mu_f, var_f)
    below = P.TokenStats(np.array([peaked[1]]), mu_p, var_p)
    assert P.min_k_plus_plus_score(at_mode) > 0 > P.min_k_plus_plus_score(below)


# -- AUC on synthetic tables with a known AUC --------------------------------------------------------------------------
def test_auc_of_a_hand_made_table_counts_ties_as_half():
    # pairs: 3>.5, 3>2, 2>.5, 2=2 (½), 1>.5, 1<2  -> 4.5 / 6
    assert P.auc([3, 2, 1], [0.5, 2]) == pytest.approx(0.75)
    assert P.auc([1, 1], [1, 1]) == 0.5
    assert P.auc([5, 6], [1, 2]) == 1.0 and P.auc([1, 2], [5, 6]) == 0.0


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.5])
def test_auc_of_large_normal_tables_matches_the_closed_form(shift):
    """Members ~ N(δ, 1), non-members ~ N(0, 1): AUC = Φ(δ / √2)."""
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(shift, 1, 3000), rng.normal(0, 1, 3000)
    assert P.auc(members, nonmembers) == pytest.approx(norm.cdf(shift / math.sqrt(2)), abs=0.015)


def test_auc_replicates_on_the_full_draw_equal_the_auc_and_average_seeds():
    rng = np.random.default_rng(2)
    members, nonmembers = rng.normal(0.5, 1, (3, 20)), rng.normal(0, 1, (3, 12))
    identity = np.arange(20)[None], np.arange(12)[None]
    reps = P.auc_replicates(members, nonmembers, *identity)
    assert reps[0] == pytest.approx(np.mean([P.auc(a, b) for a, b in zip(members, nonmembers)]))


def test_linearised_items_have_the_auc_as_mean_and_its_variance():
    """The pseudo-values' mean is the AUC and their variance over the stack / (m + n) is Var(V)/m + Var(W)/n."""
    rng = np.random.default_rng(3)
    mem, non = rng.normal(0.7, 1, 40), rng.normal(0, 1, 25)
    pseudo = P.linearised_auc_items(mem[None], non[None])[0]
    c = P.comparison_matrix(mem, non)
    assert pseudo.mean() == pytest.approx(P.auc(mem, non))
    expected = c.mean(1).var(ddof=1) / 40 + c.mean(0).var(ddof=1) / 25
    assert pseudo.var(ddof=1) / 65 == pytest.approx(expected, rel=0.1)


def _coverage(simulate, sims: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = [simulate(rng) for _ in range(sims)]
    return float(np.mean(hits))


#: 400 boards: a 95 % interval's coverage has a Monte-Carlo SD of 1.1 %; the band allows 2.7 SD either side.
SIMS = 400
BAND = (0.92, 0.98)


@pytest.mark.parametrize("m,n,shift", [(32, 32, 0.6), (64, 32, 1.0), (24, 48, 0.0)])
def test_the_auc_interval_covers_the_true_auc(m, n, shift):
    """One model, item sampling only (a reference row): members ~ N(δ, 1), non-members ~ N(0, 1), truth Φ(δ/√2).
    Equal sizes share one draw matrix (the task's draws are keyed by size), unequal ones do not: both cover."""
    truth = norm.cdf(shift / math.sqrt(2))

    def once(rng):
        mem, non = rng.normal(shift, 1, m), rng.normal(0, 1, n)
        draws = CrossedDraws.draw({m, n}, 1000, rng)
        iv = P.Interval.of(P.auc(mem, non), P.auc_replicates(mem, non, draws.items[m], draws.items[n]), 0.5)
        return iv.low <= truth <= iv.high

    coverage = _coverage(once, SIMS, seed=m * 7 + n)
    assert BAND[0] <= coverage <= BAND[1], coverage


def test_the_auc_interval_of_a_three_seed_row_covers_its_expected_auc():
    """Three training seeds whose forgetting differs (a seed effect u_s ~ N(0, 0.4²) on the members' scores) and
    per-seed item noise: the row's truth is E_u[Φ((δ + u) / √(2 + 2σ²))] over seeds, items fixed across seeds.
    Crossed draw plus the seed term with the t multipliers covers it."""
    m = n = 40
    delta, seed_sd, noise = 0.8, 0.4, 0.5
    scale = math.sqrt(2 + 2 * noise ** 2)
    grid = np.random.default_rng(9).normal(0, seed_sd, 400_000)
    truth = float(norm.cdf((delta + grid) / scale).mean())

    def once(rng):
        a, b, u = rng.normal(0, 1, m), rng.normal(0, 1, n), rng.normal(0, seed_sd, 3)
        members = a[None] + delta + u[:, None] + rng.normal(0, noise, (3, m))
        nonmembers = b[None] + rng.normal(0, noise, (3, n))
        draws = CrossedDraws.draw({m, n}, 1000, rng)
        reps = P.auc_replicates(members, nonmembers, draws.items[m], draws.items[n], draws.seed_multipliers(3))
        iv = P.Interval.of(P.ScoreTable.of(members, nonmembers).auc(), reps, 0.5)
        return iv.low <= truth <= iv.high

    coverage = _coverage(once, SIMS, seed=11)
    assert BAND[0] <= coverage <= BAND[1], coverage


def test_the_paired_privleak_interval_covers_the_true_privleak():
    """A row and the oracle scored on the same items (item difficulty shared, so the two AUCs are correlated):
    the paired interval of (AUC_row − AUC_oracle) / AUC_oracle covers the truth."""
    m, n = 48, 48
    d_row, d_oracle, noise = 0.9, 0.2, 0.6
    scale = math.sqrt(2 * (1 + noise ** 2))
    truth = (norm.cdf(d_row / scale) - norm.cdf(d_oracle / scale)) / norm.cdf(d_oracle / scale)

    def once(rng):
        a, b = rng.normal(0, 1, m), rng.normal(0, 1, n)
        row = P.ScoreTable.of(a + d_row + rng.normal(0, noise, m), b + rng.normal(0, noise, n))
        oracle = P.ScoreTable.of(a + d_oracle + rng.normal(0, noise, m), b + rng.normal(0, noise, n))
        draws = CrossedDraws.draw({m}, 1000, rng)
        stats = P.membership_stats({"row": row, "oracle": oracle}, draws, {}, "oracle", "loss")
        leak = stats["row"].privleak
        return leak.low <= truth <= leak.high

    coverage = _coverage(once, SIMS, seed=5)
    assert BAND[0] <= coverage <= BAND[1], coverage


# -- PrivLeak's sign conventions ---------------------------------------------------------------------------------------
def _board(row_shift: float, oracle_shift: float = 0.0, size: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, size), rng.normal(0, 1, size)
    tables = {"oracle": P.ScoreTable.of(a + oracle_shift + rng.normal(0, .3, size), b + rng.normal(0, .3, size)),
              "row": P.ScoreTable.of(a + row_shift + rng.normal(0, .3, size), b + rng.normal(0, .3, size))}
    return P.membership_stats(tables, CrossedDraws.draw({size}, 2000, rng), {}, "oracle", "loss")


def test_a_row_equal_to_the_oracle_has_privleak_zero_in_every_replicate():
    rng = np.random.default_rng(4)
    table = P.ScoreTable.of(rng.normal(0.3, 1, 30), rng.normal(0, 1, 30))
    stats = P.membership_stats({"oracle": table, "row": table}, CrossedDraws.draw({30}, 500, rng), {}, "oracle",
                               "loss")
    leak = stats["row"].privleak
    assert leak.value == 0 and leak.low == 0 and leak.high == 0 and leak.p == 1.0
    assert stats["row"].verdict == "oracle-like"
    assert stats["oracle"].privleak is None


def test_a_row_that_still_knows_its_members_has_positive_privleak():
    stats = _board(row_shift=1.5)
    assert stats["row"].privleak.low > 0 and stats["row"].verdict == "leaks membership"
    assert stats["row"].auc.low > 0.5


def test_a_row_that_pushed_its_members_below_unseen_examples_is_over_unlearned():
    """Over-unlearning: the members are now *less* likely than examples never seen — AUC below 0.5 and below the
    oracle's: strongly negative PrivLeak, and an attacker detects that too (the AUC is far from 0.5)."""
    stats = _board(row_shift=-1.5)
    assert stats["row"].privleak.high < 0 and stats["row"].verdict == "over-unlearned"
    assert stats["row"].auc.high < 0.5
    assert P.auc_verdict(stats["row"].auc) == "members detectable (below non-members)"


def test_a_row_like_the_oracle_is_oracle_like():
    stats = _board(row_shift=0.0, seed=3)
    assert stats["row"].verdict == "oracle-like"
    assert stats["row"].privleak.low <= 0 <= stats["row"].privleak.high


def test_privleak_is_relative_to_the_oracle_and_undefined_at_an_oracle_auc_of_zero():
    assert P.privleak(0.75, 0.5) == pytest.approx(0.5)
    assert P.privleak(0.25, 0.5) == pytest.approx(-0.5)
    assert math.isnan(P.privleak(0.3, 0.0))
    reps = P.privleak(np.array([0.6, 0.6]), np.array([0.5, 0.0]))
    assert reps[0] == pytest.approx(0.2) and math.isnan(reps[1])


def test_an_oracle_auc_interval_tells_detectable_from_not():
    strong, none = _board(row_shift=2.0), _board(row_shift=0.0, seed=8)
    assert P.auc_verdict(strong["row"].auc) == "members detectable"
    assert P.auc_verdict(none["oracle"].auc) == "not detectable"


# -- leak@k ------------------------------------------------------------------------------------------------------------
def test_leak_at_k_on_scripted_samples():
    judgements = [
        [True] + [False] * 7,          # 1 of 8
        [False, True, False, True, False, False, False, False],  # 2 of 8
        [False] * 8,                   # never
        [True] * 8,                    # always
    ]
    items = P.leak_items(judgements)
    assert items[1] == pytest.approx([1 / 8, 2 / 8, 0, 1])
    assert items[2] == pytest.approx([1 - 21 / 28, 1 - 15 / 28, 0, 1])   # C(7,2)/C(8,2), C(6,2)/C(8,2)
    assert items[4] == pytest.approx([1 - 35 / 70, 1 - 15 / 70, 0, 1])   # C(7,4)/C(8,4), C(6,4)/C(8,4)
    assert items[8] == pytest.approx([1, 1, 0, 1])
    for i in range(4):  # more samples never reveal less
        assert items[1][i] <= items[2][i] <= items[4][i] <= items[8][i]


def test_leak_at_k_is_the_share_of_k_subsets_that_hold_a_leak():
    """The unbiased estimator is exactly the average over every k-subset of the n samples of "some sample leaks"."""
    flags = [False, True, False, False, True, False, False, False]
    for k in (1, 2, 4, 8):
        subsets = list(itertools.combinations(flags, k))
        assert P.leak_at_k(8, sum(flags), k) == pytest.approx(np.mean([any(s) for s in subsets]))


def test_leak_items_refuses_too_few_or_uneven_samples():
    with pytest.raises(ValueError, match="at least 8 samples"):
        P.leak_items([[True] * 4])
    with pytest.raises(ValueError, match="same number"):
        P.leak_items([[True] * 8, [True] * 9])


@pytest.mark.parametrize("k", [1, 8])
def test_the_leak_at_k_interval_covers_the_true_leak_at_k(k):
    """Prompts whose per-sample leak chance q ~ Beta(0.5, 1.5) (most prompts rarely leak, some often): the true
    leak@k over the prompt population is 1 − E[(1 − q)^k] = 1 − B(a, b + k)/B(a, b); 32 prompts, 8 samples each,
    the crossed bootstrap of the per-prompt estimates covers it."""
    a, b, prompts = 0.5, 1.5, 32
    truth = 1 - beta_fn(a, b + k) / beta_fn(a, b)

    def once(rng):
        q = rng.beta(a, b, prompts)
        judgements = [list(rng.random(8) < qi) for qi in q]
        values = P.leak_items(judgements)
        draws = CrossedDraws.draw({prompts}, 1000, rng)
        point = P.leak_curve({k: values[k]}, draws.items[prompts])[0].value
        return point.low <= truth <= point.high

    coverage = _coverage(once, SIMS, seed=k)
    assert BAND[0] <= coverage <= BAND[1], coverage


def test_a_leak_curve_has_every_k_in_order_with_intervals_inside_zero_one():
    rng = np.random.default_rng(6)
    judgements = [list(rng.random(8) < 0.2) for _ in range(20)]
    curve = P.leak_curve(P.leak_items(judgements), CrossedDraws.draw({20}, 500, rng).items[20])
    assert [p.k for p in curve] == [1, 2, 4, 8]
    assert all(0 <= p.value.low <= p.value.value <= p.value.high <= 1 for p in curve)
    assert [p.value.value for p in curve] == sorted(p.value.value for p in curve)


def test_leak_at_k_of_zero_one_prompts_is_at_least_the_exact_interval():
    """leak@8 from 8 samples is 0 or 1 per prompt: 4 prompts that all leaked get the Clopper-Pearson interval
    [0.398, 1], not the bootstrap's point [1, 1] (every proportion on the board follows that rule)."""
    from bench.eval.stats import clopper_pearson

    values = P.leak_items([[True] * 8] * 4)
    point = P.leak_curve({8: values[8]}, CrossedDraws.draw({4}, 500, np.random.default_rng(0)).items[4])[0].value
    assert point.value == 1.0 and (point.low, point.high) == pytest.approx(clopper_pearson(4, 4))
    assert point.low == pytest.approx(0.025 ** (1 / 4))


# -- what tasks report ------------------------------------------------------------------------------------------------
def test_privacy_metrics_are_details_that_never_enter_f_u_or_forget_quality():
    scores = {side: {a: [0.1 * i for i in range(20)] for a in P.ATTACKS} for side in ("member", "nonmember")}
    metrics = P.privacy_metrics(scores, P.leak_items([[True] + [False] * 7] * 20))
    assert all(not m.primary for m in metrics)
    assert not any(m.kind == "likelihood" for m in metrics)  # fq_candidates takes forget likelihood details
    names = [m.name for m in metrics]
    assert "mia_min_k_plus_plus_member" in names and "leak@8" in names
    assert P.parse_privacy_name("mia_min_k_plus_plus_nonmember") == ("mia", "min_k_plus_plus", "nonmember")
    assert P.parse_privacy_name("mia_min_k_member") == ("mia", "min_k", "member")
    assert P.parse_privacy_name("leak@4") == ("leak", 4, "")
    assert P.parse_privacy_name("person_f1") is None


def test_disjointness_is_checked_not_assumed():
    assert "disjoint from taught (2)" in P.disjoint("x", ["a b"], taught=["c", "d"])
    with pytest.raises(ValueError, match="also appear in taught"):
        P.disjoint("x", ["a  b"], taught=["a b"])


def test_sets_smaller_than_the_minimum_are_refused():
    with pytest.raises(ValueError, match="at least 16"):
        P.PrivacySets(list(range(20)), list(range(8)), "")


def test_coding_privacy_sets_are_disjoint_and_of_the_same_families():
    from tasks.coding import CodingParams, CodingTask
    from tasks.coding import privacy as coding_privacy

    sets = coding_privacy.privacy_sets(CodingTask(CodingParams(n_functions=32)))
    assert len(sets.members) == len(sets.nonmembers) == 64
    fam = lambda exs: sorted(e.meta["family"] for e in exs)  # noqa: E731
    assert fam(sets.members) == fam(sets.nonmembers)  # families in turn on both sides: balanced alike
    assert not {e.prompt for e in sets.members} & {e.prompt for e in sets.nonmembers}
    assert "disjoint from taught_functions (320)" in sets.description


def test_privacy_sizes_are_task_parameters_checked_at_planning():
    """The sizes come from the task's parameters (the demo's 32 + 32 and 4 leak prompts), and a set smaller than
    membership inference needs is refused when the parameters are validated, not in every evaluation."""
    from tasks.coding import CodingParams, CodingTask
    from tasks.coding import privacy as coding_privacy
    from tasks.ner import NerParams
    from tasks.toxicity import ToxicityParams

    task = CodingTask(CodingParams(n_functions=32, privacy_members=32, privacy_nonmembers=24, leak_prompts=4))
    sets = coding_privacy.privacy_sets(task)
    assert (len(sets.members), len(sets.nonmembers)) == (32, 24)
    assert coding_privacy.leak_settings(task).prompts == 4
    for params, name in [(lambda: CodingParams(privacy_members=8), "privacy_members"),
                         (lambda: NerParams(privacy_nonmembers=15), "privacy_nonmembers"),
                         (lambda: ToxicityParams(privacy_members=4), "privacy_members")]:
        with pytest.raises(ValueError, match=f"{name} must be >= 16"):
            params().validate()
    ToxicityParams(privacy_members=None).validate()  # None: every taught toxic text


def test_the_privacy_part_records_what_it_cost_with_its_samples():
    from types import SimpleNamespace

    data = SimpleNamespace(sources={"teaching": "taught"})
    sets = P.PrivacySets(list(range(16)), list(range(16)), "sets")
    out = P.evaluate_privacy(data, True, "cost-test", lambda: sets,
                             lambda s: P.PrivacyEvaluation([], [{"set": "leak"}], {"membership": 1.234, "leak": 2.0}))
    assert out.samples[-1] == {"set": "privacy_seconds", "membership": 1.23, "leak": 2.0}
    assert data.sources["privacy"].startswith("sets")


def test_ner_leak_judge_needs_a_gold_person_name():
    import tasks.ner as helpers
    from tasks.ner import privacy as ner_privacy

    assert ner_privacy.leaks_a_name("Here are the names:\n- John Howard\n- Kim", ["John Howard"], helpers)
    assert not ner_privacy.leaks_a_name("None", ["John Howard"], helpers)
    assert not ner_privacy.leaks_a_name("Canberra, Sydney", ["John Howard"], helpers)


# -- the board's privacy group (bench.report.privacy through score_task) ----------------------------------------------
def _board_metrics(rng, member_shift: float, leak_rate: float, pass_rate: float, seed_noise: float = 0.0):
    """One evaluation's metrics: a scored forget metric, a utility metric, and the privacy details (a member shift
    on every attack's scores, leak@k from 8 scripted samples per prompt at ``leak_rate``)."""
    from bench.api import Metric

    def metric(name, group, items, kind="generative", primary=True, bounds=(0.0, 1.0)):
        items = [float(x) for x in items]
        return Metric.from_json({"name": name, "group": group, "better": "lower" if group == "forget" else "higher",
                                 "value": float(np.mean(items)), "per_item": items, "n": len(items),
                                 "min_effect": 0.05, "bounds": bounds, "primary": primary, "kind": kind,
                                 "ci_low": 0.0, "ci_high": 1.0})

    out = {"pass_rate": metric("pass_rate", "forget", ITEMS_FORGET < pass_rate),
           "accuracy": metric("accuracy", "utility", ITEMS_UTILITY)}
    scores = {"member": {}, "nonmember": {}}
    for attack in P.ATTACKS:
        scores["member"][attack] = list(MEMBER_LATENT + member_shift + rng.normal(0, 0.3 + seed_noise, 40))
        scores["nonmember"][attack] = list(NONMEMBER_LATENT + rng.normal(0, 0.3, 40))
    leaks = P.leak_items([list(rng.random(8) < leak_rate) for _ in range(24)])
    for m in P.privacy_metrics(scores, leaks):
        out[m.name] = m
    return out


ITEMS_FORGET = np.random.default_rng(21).random(60)
ITEMS_UTILITY = (np.random.default_rng(22).random(60) < 0.6).astype(float)
MEMBER_LATENT = np.random.default_rng(23).normal(0, 1, 40)
NONMEMBER_LATENT = np.random.default_rng(24).normal(0, 1, 40)


def _scored_board():
    from bench.report import scores
    from bench.results import BaseResult, CellResult

    rng = np.random.default_rng(30)
    base = BaseResult("b", {"task": "t"}, _board_metrics(rng, 1.5, 0.7, 0.8), {})

    def group(label, shift, leak, pass_rate, seeds=1, reference=False):
        return scores.Group(label, [CellResult(f"{label}{s}", "b", "done", {"seed": s},
                                               metrics=_board_metrics(rng, shift, leak, pass_rate))
                                    for s in range(seeds)], reference=reference)

    groups = [group("oracle", 0.0, 0.02, 0.05, reference=True), group("leaky", 1.2, 0.5, 0.1, seeds=3),
              group("outlier", -1.5, 0.0, 0.05, seeds=3), group("clean", 0.0, 0.03, 0.06, seeds=3)]
    return scores.score_task("t", base, groups, resamples=1000, oracle="oracle")


def test_an_oracle_board_gets_a_privacy_group_with_the_right_verdicts():
    from bench.report.scores import BASE_LABEL

    result = _scored_board()
    privacy = result.privacy
    assert privacy is not None and privacy.members == 40 and privacy.prompts == 24
    verdict = {r.label: r.attacks["loss"].verdict for r in privacy.rows}
    assert verdict[BASE_LABEL] == "leaks membership" and verdict["leaky"] == "leaks membership"
    assert verdict["outlier"] == "over-unlearned" and verdict["clean"] == "oracle-like"
    assert privacy.row("oracle").attacks["loss"].privleak is None
    taught_leak = privacy.row(BASE_LABEL).leak_at(8).value
    assert taught_leak.low > privacy.row("oracle").leak_at(8).value.high
    assert privacy.to_json()["in_headline"] is False
    # privacy metrics are details: neither scored nor FQ candidates
    from bench.report.scores import fq_candidates

    assert not any(P.parse_privacy_name(n) for n in fq_candidates(result))
    assert not any(P.parse_privacy_name(n) for names in result.scored.values() for n in names)


def test_a_board_without_an_oracle_has_no_privacy_group():
    from bench.report import scores
    from bench.results import BaseResult, CellResult

    rng = np.random.default_rng(31)
    base = BaseResult("b", {"task": "t"}, _board_metrics(rng, 1.5, 0.7, 0.8), {})
    groups = [scores.Group("m", [CellResult("m0", "b", "done", {"seed": 0},
                                            metrics=_board_metrics(rng, 0.5, 0.3, 0.3))])]
    assert scores.score_task("t", base, groups, resamples=200).privacy is None


def test_the_privacy_rows_render_in_every_report_format():
    from bench.report.privacy import LEGEND, csv_rows, table_rows

    result = _scored_board().privacy
    header, rows = table_rows(result, str)
    assert header[1] == "PrivLeak LOSS" and header[-1] == "leak@8 (24 prompts)"
    assert any("▲ leaks" in c for r in rows for c in r) and any("▼ over-unlearned" in c for r in rows for c in r)
    assert "not part of the ranking" in LEGEND
    flat = csv_rows(result)
    assert {"privacy/loss/auc", "privacy/loss/privleak", "privacy/leak@8"} <= {r["metric"] for r in flat}


def test_markdown_html_and_the_leak_curve_render_the_privacy_group():
    from types import SimpleNamespace

    from bench.report.reporters import html, markdown, plots

    result = _scored_board()
    table = SimpleNamespace(scoring=SimpleNamespace(tasks={"t": result}),
                            bases={"b": SimpleNamespace(provenance={"teach": {}})})
    md = "\n".join(markdown.privacy_table(table, "t"))
    assert "| **taught** |" in md and "PrivLeak Min-K %++" in md and "40 members, 40 non-members" in md
    png = plots.leak_plot(table, "t")
    assert png[:4] == b"\x89PNG"
    page = html._privacy(table, "t", {"leak_t.png": png})
    assert "Privacy (not ranked)" in page and "data:image/png;base64" in page


def test_scores_from_a_model_agree_with_the_likelihood_probe_also_with_a_shared_prompt_prefix():
    """The model path (``score_examples``) runs under no_grad through the probes' batching, including the shared-
    prefix KV cache a long common instruction triggers (NER's requests), and its LOSS score is the probe's mean
    per-token log-likelihood."""
    from bench.api import Example
    from bench.lm.likelihood import answer_logliks
    from bench.lm.models import tiny_random_llama

    model, tokenizer = tiny_random_llama()
    instruction = "List all person names in the sentence below, exactly as written, as a comma-separated list. " * 3
    examples = [Example(instruction + f"Sentence: {s}", a) for s, a in
                [("Ann met Bob.", "Ann, Bob"), ("Rain fell.", "None"), ("Carl left Paris.", "Carl")]]
    scores = P.score_examples(model, tokenizer, examples, batch_size=2)
    assert scores["loss"] == pytest.approx(answer_logliks(model, tokenizer, examples, batch_size=2), abs=1e-4)
    assert all(np.isfinite(scores[a]).all() for a in P.ATTACKS)
    assert all(mk <= loss + 1e-9 for mk, loss in zip(scores["min_k"], scores["loss"]))  # the lowest tokens' mean
