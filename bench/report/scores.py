"""Leaderboard scoring: per-metric statistics, forget and utility scores, the ranking, pairwise separation and
power. Formulas, choices and worked examples: ``docs/scoring.md``. The statistics live in ``bench.inference``
(crossed bootstrap, pairwise separation, power) and the rule in ``bench.report.ranking``; this module puts them
together, per task and across tasks.

For every task, with the base model b (on a taught task: the taught model) and rows m (a method config over its
seeds, or a reference model), on one **crossed** bootstrap of B replicates (one item draw per replicate shared
by every seed of every row; a random-effects seed term per row, ``bench.inference.bootstrap``):

  metric value     v = mean over seeds of the mean over items; 95 % percentile interval (a proportion's
                   interval is at least its exact Clopper–Pearson interval)
  delta            Δ = v_m − v_b, paired; interval, two-sided bootstrap p-value; stars after Benjamini–Hochberg
                   over the board's claims: method rows × scored metrics (reference rows and details unstarred)
  effect           e = s · Δ / σ_b (s = ±1 the wanted direction; "closer" metrics −|Δ| / σ_b),
                   σ_b = max(SD of the base's per-item values, the metric's minimum meaningful effect)
  forget score     F = mean e over the scored forget metrics;  utility score U = mean e over the scored utility ones
  forget quality   FQ = Δ_row / Δ_oracle per scored forget metric or forget likelihood probe whose taught-to-oracle
                   gap is at least ``FQ_GUARD_K`` × its MDE; the ranking key on boards with an oracle is the
                   closeness 1 − mean_m |1 − FQ_m| (no metric past the guard: −mean_m |e_row − e_oracle|)

A metric has *no signal at this size* when the base model cannot move detectably in the scored direction; such
metrics are shown, flagged, and kept out of F and U. Ranks, ties and rank sets come from pairwise tests on the
same replicates (Holm over every pair of a ranking; ``bench.inference.pairwise``). Across tasks: mean rank over
the tasks that are ranked and not underpowered, with the same pairwise treatment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.api import Metric
from bench.eval.stats import (
    ALPHA,
    benjamini_hochberg,
    bootstrap_p_value,
    is_proportion,
    significant,
    weighted_means,
    widen_for_proportion,
)
from bench.eval.textmetrics import COLLAPSE_METRIC  # the detail a task reports for the collapse check
from bench.inference.bootstrap import CrossedDraws, delta_replicates, finite_interval, item_replicates, row_replicates
from bench.inference.pairwise import Separation, min_resamples, separate
from bench.inference.power import Power, bh_level, board_mde, holm_first_level, metric_power, replicate_mde
from bench.report.ranking import UtilityVerdict, classes_and_keys, competition_ranks, utility_bands, utility_verdict
from bench.results import BaseResult, CellResult

#: Version of the scoring rules; recorded in every report (results.json ``scoring.version``).
SCORING_VERSION = 4  # 4: crossed bootstrap, pairwise separation and rank sets, power at the board's levels
#: Each scored utility metric's budget, in units of its minimum meaningful effect: a row whose value on any of them
#: moves more than twice the smallest change the task's author calls meaningful beyond the band between the taught
#: model and the gold standard breaks utility (``bench.report.ranking``). Twice, not once: at the demo's 16 items a
#: single item is more than one minimum effect (0.0625 > 0.05) of an accuracy.
UTILITY_BUDGET = 2.0
#: A row's forget output has collapsed when its degenerate share exceeds both the taught model's and the oracle's
#: by more than this, with its delta against the taught model significant (interval above 0).
COLLAPSE_MARGIN = 0.2
#: Replicates: Holm's first step over R rows needs 2 / (B + 1) < α / (R(R − 1)/2); 10 000 resolves up to 22 rows.
RESAMPLES = 10000
BOOTSTRAP_SEED = 20241
CORRECTION = ("Benjamini-Hochberg (FDR 5 %) over the board's claims: method rows x scored metrics; reference "
              "rows and details are shown without stars")
#: Forget quality is formed only where the taught-to-oracle gap is at least this many times its MDE (80 % power,
#: 5 % two-sided): the denominator then lies ≥ 5.6 standard errors from zero, so a replicate near 0 (an
#: exploding ratio) has probability ~1e-8.
FQ_GUARD_K = 2.0
BASE_LABEL = "base"


@dataclass(frozen=True)
class MetricInfo:
    """What a task declares about a metric (read from the base model's result)."""

    name: str
    group: str
    better: str
    primary: bool = True
    kind: str = "other"
    min_effect: float | None = None
    bounds: tuple[float | None, float | None] | None = None
    chance: float | None = None

    @classmethod
    def of(cls, metric: Metric) -> MetricInfo:
        bounds = metric.bounds
        return cls(metric.name, metric.group, metric.better, metric.primary, metric.kind, metric.min_effect,
                   tuple(bounds) if bounds is not None else None, metric.chance)

    def floor_or_ceiling(self, direction: int) -> float | None:
        """The bound in ``direction`` (−1 down, +1 up); a choice metric's floor is its chance level."""
        if self.bounds is None or direction == 0:
            return None
        bound = self.bounds[0 if direction < 0 else 1]
        if direction < 0 and self.chance is not None:
            return self.chance if bound is None else max(bound, self.chance)
        return bound


@dataclass
class Signal:
    """Whether a metric can move detectably in its scored direction at this eval size (base model)."""

    ok: bool
    reason: str = ""


@dataclass
class MetricStats:
    """One metric of one row (a method config over its seeds, or the base model)."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    seeds: int
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    p_value: float | None = None
    #: Benjamini–Hochberg adjusted p-value over every delta of the leaderboard.
    q_value: float | None = None
    #: Standardised effect in the wanted direction (Glass's Δ); > 0 moved the way the method wants.
    effect: float | None = None
    effect_ci_low: float | None = None
    effect_ci_high: float | None = None
    significant: bool = False
    #: Significant and at least the metric's minimum meaningful effect.
    meaningful: bool = False
    #: Forget quality against the oracle (taught tasks): Δ_row / Δ_oracle, the share of the taught-to-oracle
    #: gap the row closed (1 = at the oracle, > 1 past it: over-forgetting), with its paired interval; only on
    #: forget metrics whose taught-to-oracle gap is beyond its interval.
    forget_quality: float | None = None
    forget_quality_ci: tuple[float, float] | None = None
    #: Replicates in which FQ was not finite (counted and shown, never ranked).
    forget_quality_nonfinite: int = 0
    #: Two-sample Kolmogorov–Smirnov p-value of the row's per-item values (mean over seeds) against the
    #: oracle's: small = distinguishable from the oracle (TOFU's forget quality is this p-value).
    ks_p: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowScore:
    """A row of a task's ranking: a method config (or the base model)."""

    label: str
    status: str
    metrics: dict[str, MetricStats] = field(default_factory=dict)
    forget: float | None = None
    forget_ci: tuple[float, float] | None = None
    utility: float | None = None
    utility_ci: tuple[float, float] | None = None
    utility_kept: bool | None = None
    #: The scored utility metrics outside their bands at the point estimate (``bench.report.ranking``).
    utility_broken_by: list[str] = field(default_factory=list)
    #: Why the row's forget output counts as collapsed (None: it does not).
    collapsed: str | None = None
    rank: int | None = None
    rank_low: int | None = None
    rank_high: int | None = None
    tied_with: list[str] = field(default_factory=list)
    #: Task-level forget quality against the oracle (mean over the oracle-separated forget metrics) and its
    #: interval; ``None`` without an oracle row or a separated metric.
    forget_quality: float | None = None
    forget_quality_ci: tuple[float, float] | None = None
    forget_quality_nonfinite: int = 0
    #: The ranking key on oracle boards: 1 − the mean over FQ metrics of |1 − FQ_m| (1 = at the oracle on every
    #: metric; over- and under-forgetting on two metrics add up instead of cancelling), and its interval.
    closeness: float | None = None
    closeness_ci: tuple[float, float] | None = None
    #: Seeds behind the row (1: its intervals are conditional on that one training run).
    seeds: int = 1
    #: A reference model (the oracle, the untaught base), not a method.
    reference: bool = False

    @property
    def over_forgets(self) -> bool:
        """Significantly past the oracle: forgot more than a model that never learned the target."""
        return self.forget_quality_ci is not None and self.forget_quality_ci[0] > 1.0

    @property
    def rank_text(self) -> str:
        if self.rank is None:
            return "–"
        return _rank_text(self.rank, self.rank_low, self.rank_high)

    @property
    def verdict(self) -> str:
        if self.status != "done":
            return self.status
        if self.collapsed:
            return "collapsed"
        if self.utility_kept is None:
            return "–"
        return "utility kept" if self.utility_kept else "utility broken"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = {k: v.to_json() for k, v in self.metrics.items()}
        out["verdict"] = self.verdict
        return out


@dataclass
class TaskScores:
    task: str
    metrics: dict[str, MetricInfo]
    signal: dict[str, Signal]
    rows: list[RowScore]
    #: Why the task has no ranking (no base, or no forget metric with signal); "" when ranked.
    unranked_reason: str = ""
    #: What a reader must know about a ranked task (e.g. utility could not be checked).
    caveats: list[str] = field(default_factory=list)
    #: ``[B, rows]`` rank replicates, in ``rows`` order (None when unranked).
    rank_replicates: np.ndarray | None = None
    #: The oracle row's label when the task has one (a taught task), and the forget metrics whose
    #: taught-to-oracle gap is beyond its interval (forget quality is computed on them).
    oracle: str | None = None
    oracle_separated: list[str] = field(default_factory=list)
    #: Per forget metric: the taught-to-oracle gap (taught − oracle) and its interval.
    oracle_gap: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: Per separated forget metric: the gap's own MDE (80 % power, 5 % two-sided); FQ needs gap ≥ k × this.
    oracle_gap_mde: dict[str, float] = field(default_factory=dict)
    #: With several (taught, oracle) teaching pairs: each pair's oracle scored against the other pairs' gap
    #: (``oracle_floor``): the FQ and closeness a perfect unlearning reaches through teaching variance alone.
    oracle_floor: dict[str, Any] | None = None
    #: Per metric: the minimum detectable change of a method row against the taught model, seeds included, at the
    #: board's Benjamini–Hochberg level (``bench.inference.power``).
    power: dict[str, Power] = field(default_factory=dict)
    #: The minimum detectable difference between two method rows' ranking keys (FQ on oracle boards, else F) at
    #: Holm's first-step level for this ranking, and the level.
    minimum_detectable_pair: float | None = None
    pair_level: float | None = None
    #: Why the task is left out of the overall ranking for lack of power ("" when it is not).
    underpowered: str = ""
    #: The pairwise tests of this task's ranking (ranks sets and ties come from them).
    separation: Separation | None = None
    #: Each scored utility metric's band (``bench.report.ranking.UtilityBand``): the fixed range a row must stay in.
    utility_bands: list[Any] = field(default_factory=list)
    #: Oracle boards whose tasks report membership scores: the privacy column group (``bench.report.privacy``:
    #: PrivLeak per attack, leak@k curves); not part of the ranking.
    privacy: Any = None
    #: Working state for the board-level power (``score_leaderboard``): the replicates and the rule's
    #: ``[B + 1, R]`` classes and keys in ``rows`` order. Not part of any report.
    replicates: Any = field(default=None, repr=False)
    keys: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def minimum_detectable_f(self) -> float | None:
        """The smallest F (mean standardised effect over the scored forget metrics) detectable with 80 % power,
        if every scored forget metric moved by the same number of its σ."""
        names = [n for n in self.scored["forget"] if n in self.power]
        return float(np.mean([self.power[n].in_sigma for n in names])) if names else None

    @property
    def minimum_detectable_fq(self) -> float | None:
        """The smallest forget quality detectable with 80 % power (MDE over the taught-to-oracle gap, averaged
        over the separated metrics)."""
        names = [n for n in self.oracle_separated if n in self.power and self.oracle_gap[n][0]]
        return float(np.mean([self.power[n].mde / abs(self.oracle_gap[n][0]) for n in names])) if names else None

    @property
    def scored(self) -> dict[str, list[str]]:
        """The metrics that enter F and U: primary and with signal."""
        out: dict[str, list[str]] = {"forget": [], "utility": []}
        for name, info in self.metrics.items():
            if info.primary and self.signal[name].ok:
                out[info.group].append(name)
        return out

    def row(self, label: str) -> RowScore | None:
        return next((r for r in self.rows if r.label == label), None)


@dataclass
class OverallRow:
    label: str
    mean_rank: float
    rank: int
    rank_low: int
    rank_high: int
    tied_with: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    @property
    def rank_text(self) -> str:
        return _rank_text(self.rank, self.rank_low, self.rank_high)


def _rank_text(rank: int, low: int, high: int) -> str:
    """``3 [2–11]``: the point rank and the rank set (the point rank alone when the set is that one rank)."""
    return str(rank) if low == high == rank else f"{rank} [{low}–{high}]"


def separated_pairs(rows: list[OverallRow]) -> tuple[int, int]:
    """(pairs of rows the pairwise tests separate, all pairs): how much of a ranking the evidence supports — a
    headline whose rows are all tied says nothing about order."""
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    return sum(b.label not in a.tied_with for a, b in pairs), len(pairs)


@dataclass
class Scoring:
    tasks: dict[str, TaskScores]
    overall: list[OverallRow]
    budget: float = UTILITY_BUDGET
    resamples: int = RESAMPLES
    overall_separation: Separation | None = None
    #: The board's realised Benjamini–Hochberg threshold (the level a claim had to pass).
    bh_level: float = ALPHA
    seed: int = BOOTSTRAP_SEED

    def settings(self) -> dict[str, Any]:
        return {"version": SCORING_VERSION, "utility_budget": self.budget, "resamples": self.resamples,
                "bootstrap_seed": self.seed,
                "bootstrap": "crossed: one item draw per replicate shared by every seed of every row of a task; a "
                             "random-effects seed term per row (Student t with S-1 df, seed x item interaction "
                             "removed); rows with one seed are conditional on that run",
                "interval": "95 % percentile; proportions at least Clopper-Pearson",
                "multiplicity": CORRECTION, "bh_level": self.bh_level,
                "pairwise": "every pair of rows of a ranking; Holm step-down, family-wise error 5 %; rank sets "
                            "[1 + rows surely ahead, R - rows surely behind]; tied = pair not separated",
                "power": "MDE at 80 % power with the seed component: a row against the taught model at the BH "
                         "level, two rows at Holm's first-step level; never below the minimum meaningful effect",
                "forget_quality_guard": f"taught-to-oracle gap >= {FQ_GUARD_K:g} x its MDE",
                "effect": "Glass's delta: change in the wanted direction / max(SD of base items, min effect)",
                "utility": ("broken when on any scored utility metric the row's value lies outside the band between "
                            "the taught model and the gold standard (the oracle) widened by utility_budget x the "
                            "metric's minimum meaningful effect, and its delta from the taught model is significant; "
                            "a point decision, the same in every replicate; no scalar allowance"),
                "privacy": ("oracle boards: membership-inference AUC (LOSS, zlib, Min-K %, Min-K %++) of taught "
                            "forget-target examples against held-out ones and PrivLeak = (AUC_row - AUC_oracle) / "
                            "AUC_oracle, leak@k from 8 samples per prompt; on the same crossed draws, paired with the "
                            "oracle; shown beside the ranking, not part of it"),
                "collapse": (f"{COLLAPSE_METRIC} above both the taught model's and the oracle's by more than "
                             f"{COLLAPSE_MARGIN:g}, its delta significant: ranked with the rows that broke utility"),
                "ranking": ("oracle boards: utility kept and not collapsed first, by closeness to the oracle "
                            "1 - mean_m |1 - FQ_m| over the FQ metrics (scored forget metrics and forget likelihood "
                            "probes whose gap passes the guard; none passes: -mean |e_row - e_oracle| over the scored "
                            "forget metrics), then utility broken or collapsed by U, then failed; boards without an "
                            "oracle: the same with F in place of closeness")}


# -- per-metric ------------------------------------------------------------------------------------
def _direction_of_interest(info: MetricInfo) -> int:
    """+1/−1: the direction in which the metric must be able to move to carry signal (0: both)."""
    if info.better == "closer":
        return 0
    wanted = 1 if info.better == "higher" else -1
    return wanted if info.group == "forget" else -wanted


def signal_check(info: MetricInfo, base_items: np.ndarray, item_draws: np.ndarray,
                 base_weights: np.ndarray | None = None) -> Signal:
    """Can the base model's value move detectably in the scored direction at this eval size? ``item_draws``:
    the task's ``[B, n]`` item draws."""
    direction = _direction_of_interest(info)
    bound = info.floor_or_ceiling(direction)
    if bound is None:
        return Signal(True)
    word = ("chance level" if bound == info.chance else "floor") if direction < 0 else "ceiling"
    base_value = float(weighted_means(base_items, base_weights))
    move = abs(bound - base_value)
    if move < (info.min_effect or 0.0) or move == 0.0 or (bound - base_value) * direction < 0:
        return Signal(False, f"base {base_value:.3g} is within the minimum meaningful effect "
                             f"({info.min_effect}) of the {word} {bound:g}, or beyond it")
    best_case = item_replicates(bound - base_items, item_draws, base_weights)
    low, high, _ = finite_interval(best_case)
    if low <= 0 <= high:
        return Signal(False, f"even moving every item to the {word} {bound:g} would not be detectable at "
                             f"n={base_items.size} (base {base_value:.3g})")
    base_low, base_high = _value_interval(base_items[None, :], item_draws, None, info,
                                          None if base_weights is None else base_weights[None, :])
    if (direction < 0 and base_low <= bound) or (direction > 0 and base_high >= bound):
        return Signal(False, f"the base's 95 % interval [{base_low:.3g}, {base_high:.3g}] touches the {word} {bound:g}")
    return Signal(True)


def _value_interval(items: np.ndarray, item_draws: np.ndarray, multipliers: np.ndarray | None, info: MetricInfo,
                    weights: np.ndarray | None = None, replicates: np.ndarray | None = None) -> tuple[float, float]:
    reps = row_replicates(items, item_draws, multipliers, weights) if replicates is None else replicates
    interval = _clip(finite_interval(reps)[:2], info.bounds)
    if weights is None and is_proportion(items.ravel().tolist(), info.bounds):
        interval = widen_for_proportion(interval, float(items.mean()), items.shape[1])
    return interval


def _clip(interval: tuple[float, float], bounds: tuple[float | None, float | None] | None) -> tuple[float, float]:
    """An interval kept inside a metric's range (the expanded bootstrap can step past a proportion's 0 or 1)."""
    low, high = interval
    if bounds is None:
        return low, high
    floor, ceiling = (-np.inf if bounds[0] is None else bounds[0]), (np.inf if bounds[1] is None else bounds[1])
    return float(np.clip(low, floor, ceiling)), float(np.clip(high, floor, ceiling))


def _delta_bounds(bounds: tuple[float | None, float | None] | None) -> tuple[float | None, float | None] | None:
    """The range of a difference of two values in ``bounds``: ±(high − low) when both sides are bounded."""
    if bounds is None or bounds[0] is None or bounds[1] is None:
        return None
    width = bounds[1] - bounds[0]
    return (-width, width)


def _scale(info: MetricInfo, base_items: np.ndarray) -> float:
    """σ of Glass's Δ: the SD of the base model's per-item values (unweighted, also for weighted metrics),
    at least the metric's minimum meaningful effect."""
    sd = float(np.std(base_items, ddof=1)) if base_items.size > 1 else 0.0
    return max(sd, info.min_effect or 0.0)


def _effect(info: MetricInfo, delta: np.ndarray | float, scale: float) -> np.ndarray | float:
    if info.better == "closer":
        return -np.abs(delta) / scale
    return (1.0 if info.better == "higher" else -1.0) * np.asarray(delta) / scale


# -- per-task ---------------------------------------------------------------------------------------
@dataclass
class Group:
    """Input to scoring: one row's results on a task (all its seeds). ``reference``: a model the benchmark built
    (the oracle, the untaught base), shown beside the methods but not a claim about one."""

    label: str
    results: list[CellResult]
    reference: bool = False

    @property
    def done(self) -> list[CellResult]:
        return [r for r in self.results if r.status == "done"]

    @property
    def status(self) -> str:
        return combined_status(self.results)


def combined_status(results: Sequence[CellResult]) -> str:
    """The seeds' common status, or "mixed: …" naming every status when they differ."""
    statuses = {r.status for r in results}
    return statuses.pop() if len(statuses) == 1 else "mixed: " + ", ".join(sorted(statuses))


@dataclass
class _Replicates:
    """A task's bootstrap replicates, per row label and metric: effects, deltas, and per-item values (mean over
    seeds, for the KS test)."""

    effects: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    deltas: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    items: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: Each row's seed multipliers (None: one seed), shared by all its metrics and its privacy statistics.
    multipliers: dict[str, np.ndarray | None] = field(default_factory=dict)


def score_task(task: str, base: BaseResult | Sequence[BaseResult] | None, groups: Sequence[Group], *,
               budget: float = UTILITY_BUDGET, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
               oracle: str | None = None) -> TaskScores:
    """Statistics, scores, the ranking and its pairwise tests for every row of one task. ``oracle``: the label
    of the row that is the task's gold standard (a taught task's oracle); rows are then ranked by closeness to it
    (``_forget_quality``) instead of by F. Power needs the whole board (``score_leaderboard``).

    ``base``: the unchanged model's evaluation, or on a taught task with several teaching pairs every pair's taught
    model in pair order (``ResultTable.bases_for``). Then each seed's delta is taken from its own pair's taught
    model (``delta_replicates``), the base row pools the pairs as its seeds, and pair 0 declares the metrics and
    sets the signal check and σ (the pairs share items, data and recipe; only the teaching seed differs)."""
    rng = np.random.default_rng([seed, _stable_int(task)])
    bases = [base] if isinstance(base, BaseResult) else list(base or [])
    if not bases:
        rows = [RowScore(g.label, g.status, _plain_stats(g), reference=g.reference) for g in groups]
        return TaskScores(task, {}, {}, rows, unranked_reason="no base-model evaluation")
    base = bases[0]
    infos = {name: MetricInfo.of(m) for name, m in base.metrics.items()}
    pairs = {b.base_id: ({name: np.asarray(b.metrics[name].per_item or [], dtype=float) if name in b.metrics
                          else np.zeros(0) for name in infos},
                         {name: _weights(b.metrics[name]) if name in b.metrics else None for name in infos})
             for b in bases}
    base_items, base_weights = pairs[base.base_id]
    draws = CrossedDraws.draw({a.size for a in base_items.values() if a.size}, resamples, rng)
    signal = {name: (signal_check(infos[name], base_items[name], draws.items[base_items[name].size],
                                  base_weights[name])
                     if base_items[name].size else Signal(False, "no per-item values")) for name in infos}
    scales = {name: _scale(infos[name], base_items[name]) for name in infos}

    base_row = RowScore(BASE_LABEL, "done", seeds=len(bases))
    base_multipliers = draws.seed_multipliers(len(bases)) if len(bases) > 1 else None
    pooled_items = dict(base_items)
    for name, info in infos.items():
        items = base_items[name]
        if not items.size:
            continue
        stack, weights = _stacked([pairs[b.base_id] for b in bases], name)
        if stack is None:
            continue
        low, high = _value_interval(stack, draws.items[items.size], base_multipliers, info, weights)
        base_row.metrics[name] = MetricStats(float(weighted_means(stack, weights).mean()), low, high,
                                             int(items.size), len(bases))
        if len(bases) > 1:
            pooled_items[name] = stack.mean(axis=0)
    reps = _Replicates({BASE_LABEL: {n: np.zeros(resamples) for n in infos}},
                       {BASE_LABEL: {n: np.zeros(resamples) for n in infos}}, {BASE_LABEL: pooled_items},
                       {BASE_LABEL: base_multipliers})
    rows = [base_row]
    for group in groups:
        row = RowScore(group.label, group.status, seeds=len(group.done), reference=group.reference)
        reps.multipliers[group.label] = draws.seed_multipliers(len(group.done))
        starts = [pairs.get(r.base_id, pairs[base.base_id]) for r in group.done]
        reps.effects[group.label], reps.deltas[group.label], reps.items[group.label] = _group_stats(
            group, row, infos, starts, draws, scales, reps.multipliers[group.label])
        rows.append(row)
    result = TaskScores(task, infos, signal, rows)
    scored = result.scored
    if not scored["forget"]:
        result.unranked_reason = "no primary forget metric has signal at this size"
        return result
    if not scored["utility"]:
        result.caveats.append("no primary utility metric has signal at this size: utility loss is not checked "
                              "(every row counts as 'utility kept')")
    result.oracle = oracle if oracle in {g.label for g in groups} else None
    closeness = _forget_quality(result, reps, oracle) if result.oracle else None
    if result.oracle and closeness is None:
        closeness = _effect_closeness(result, reps, oracle)
    if result.oracle:
        result.oracle_floor = oracle_floor(result, next(g for g in groups if g.label == result.oracle), pairs,
                                           base.base_id)
    _collapse_check(result, reps)
    verdicts = _utility_verdicts(result, reps, scales, budget)
    _rank(result, reps.effects, scored, verdicts, resamples, closeness)
    result.replicates = reps
    if result.oracle:
        result.privacy = _privacy(bases, groups, draws, reps.multipliers, result.oracle)
    return result


def _stacked(starts: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]], name: str
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``[S, n]`` per-item values of ``name`` on each start (a seed's taught model, or a pair's), and their weights
    (None: unweighted); (None, None) when the starts do not share the item count."""
    items = [start[0][name] for start in starts]
    if not items or any(a.size == 0 or a.size != items[0].size for a in items):
        return None, None
    weights = [start[1][name] for start in starts]
    if any(w is None for w in weights):
        return np.stack(items), None
    return np.stack(items), np.stack(weights)


def oracle_floor(result: TaskScores, oracle: Group, pairs: dict[str, Any], default: str) -> dict[str, Any] | None:
    """Teaching variance as a noise floor of "indistinguishable from the oracle": with the oracle's seeds on several
    teaching pairs, each pair's oracle is scored like a method against the gap of the *other* pairs (leave one pair
    out): FQ_p = Δ_oracle,p / mean_{q≠p} Δ_oracle,q per FQ metric, and its closeness 1 − mean_m |1 − FQ_p,m|. A
    perfect unlearning is another draw of the oracle, so an FQ this far from 1 is within teaching variance.
    None with fewer than two pairs or no FQ metric."""
    done = oracle.done
    ids = [r.base_id if r.base_id in pairs else default for r in done]
    if len(set(ids)) < 2 or not result.oracle_separated:
        return None
    per_pair: list[list[float]] = [[] for _ in done]
    for name in result.oracle_separated:
        gaps = []
        for r, pair in zip(done, ids):
            metric = r.metrics.get(name)
            items, weights = pairs[pair][0][name], pairs[pair][1][name]
            if metric is None or metric.per_item is None or len(metric.per_item) != items.size:
                return None
            gaps.append(float(weighted_means(np.asarray(metric.per_item, dtype=float), _weights(metric)))
                        - float(weighted_means(items, weights)))
        for p, gap in enumerate(gaps):
            others = float(np.mean(gaps[:p] + gaps[p + 1:]))
            per_pair[p].append(gap / others if others else float("nan"))
    fq = [float(np.mean(v)) for v in per_pair]
    closeness = [1.0 - float(np.mean([abs(1.0 - x) for x in v])) for v in per_pair]
    return {"definition": "leave-one-pair-out: each teaching pair's oracle against the mean gap of the other pairs",
            "pairs": len(done), "metrics": list(result.oracle_separated), "fq": fq, "closeness": closeness}


def _privacy(bases: Sequence[BaseResult], groups: Sequence[Group], draws: CrossedDraws,
             multipliers: dict[str, np.ndarray | None], oracle: str) -> Any:
    """The task's privacy group on its own draws and the rows' multipliers (``bench.report.privacy``); the taught
    row's seeds are the teaching pairs' taught models."""
    from bench.report.privacy import task_privacy

    def per_item(metrics: dict[str, Metric]) -> dict[str, list[float]]:
        return {name: m.per_item for name, m in metrics.items() if m.per_item is not None}

    rows = [(g.label, [per_item(r.metrics) for r in g.done]) for g in groups if g.done]
    return task_privacy([per_item(b.metrics) for b in bases], rows, draws, multipliers, oracle, BASE_LABEL)


def _plain_stats(group: Group) -> dict[str, MetricStats]:
    """Per-metric values without a base (no deltas): mean over seeds of the stored values."""
    out: dict[str, MetricStats] = {}
    for name in (group.done[0].metrics if group.done else {}):
        vals = [r.metrics[name] for r in group.done if name in r.metrics]
        out[name] = MetricStats(float(np.mean([m.value for m in vals])), min(m.ci_low for m in vals),
                                max(m.ci_high for m in vals), vals[0].n, len(vals))
    return out


def _weights(metric: Metric) -> np.ndarray | None:
    return None if metric.weights is None else np.asarray(metric.weights, dtype=float)


def _group_stats(group: Group, row: RowScore, infos: dict[str, MetricInfo],
                 starts: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]], draws: CrossedDraws,
                 scales: dict[str, float], multipliers: np.ndarray | None) -> tuple[dict[str, np.ndarray], ...]:
    """Fill ``row.metrics``; return the effect replicates, the delta replicates and the per-item values (mean
    over seeds) per metric. ``starts``: per seed, the (items, weights) of the model it started from (its teaching
    pair's taught model); ``multipliers``: the row's seed multipliers, drawn once and shared by all its metrics
    (and its privacy statistics)."""
    done = group.done
    if not done:
        return {}, {}, {}
    one_start = all(start is starts[0] for start in starts)
    effects, deltas, per_item = {}, {}, {}
    for name, info in infos.items():
        per_seed = [r.metrics.get(name) for r in done]
        b_items, b_weights = starts[0][0][name], starts[0][1][name]
        if b_items.size == 0 or any(m is None or len(m.per_item or []) != b_items.size for m in per_seed):
            continue
        items = np.asarray([m.per_item for m in per_seed], dtype=float)
        weights = None if b_weights is None else np.asarray([_weights(m) for m in per_seed], dtype=float)
        picks = draws.items[b_items.size]
        reps = row_replicates(items, picks, multipliers, weights)
        value = float(weighted_means(items, weights).mean())
        if one_start:
            delta_reps = reps - item_replicates(b_items, picks, b_weights)
            delta = value - float(weighted_means(b_items, b_weights))
        else:  # seeds on different teaching pairs: each seed's delta from its own taught model
            b_stack, bw_stack = _stacked(starts, name)
            if b_stack is None:
                continue
            delta_reps = delta_replicates(items, b_stack, picks, multipliers, weights, bw_stack)
            delta = value - float(weighted_means(b_stack, bw_stack).mean())
        low, high = _value_interval(items, picks, multipliers, info, weights, replicates=reps)
        d_low, d_high = _clip(finite_interval(delta_reps)[:2], _delta_bounds(info.bounds))
        effect_reps = _effect(info, delta_reps, scales[name])
        e_low, e_high, _ = finite_interval(effect_reps)
        row.metrics[name] = MetricStats(value, low, high, int(b_items.size), len(done), delta, d_low, d_high,
                                        bootstrap_p_value(delta_reps[np.isfinite(delta_reps)]),
                                        effect=float(_effect(info, delta, scales[name])),
                                        effect_ci_low=e_low, effect_ci_high=e_high)
        effects[name] = effect_reps
        deltas[name] = delta_reps
        per_item[name] = items.mean(axis=0)
    return effects, deltas, per_item


def _forget_quality(result: TaskScores, reps: _Replicates, oracle: str) -> dict[str, tuple[float, np.ndarray]] | None:
    """Forget quality against the oracle, per forget metric and per row, and each row's closeness to the oracle
    (the ranking key of a board with an oracle): ``{label: (point, replicates)}``, or None when no scored
    forget metric's gap passes the guard.

    Per metric m (``fq_candidates``): the taught-to-oracle gap g = v_taught − v_oracle = −Δ_oracle, and
    FQ_row = Δ_row / Δ_oracle, the share of the gap the row closed — replicate by replicate on the shared item
    draws, so the interval is paired. Formed only where |g| ≥ ``FQ_GUARD_K`` × the gap's MDE (80 % power, 5 %
    two-sided, from the quantiles of its replicates). Task FQ = mean over those metrics; closeness = 1 − mean_m
    |1 − FQ_m|, so that going past the oracle (over-forgetting) is a distance from the gold standard like stopping
    short of it, metric by metric.
    Replicates where FQ is not finite are counted on the row and never ranked."""
    from scipy.stats import ks_2samp

    oracle_deltas = reps.deltas.get(oracle) or {}
    oracle_row = result.row(oracle)
    separated = []
    for name in fq_candidates(result):
        if name not in oracle_deltas:
            continue
        gap_reps = -oracle_deltas[name]
        gap = -float(oracle_row.metrics[name].delta)
        low, high = _clip(finite_interval(gap_reps)[:2], _delta_bounds(result.metrics[name].bounds))
        result.oracle_gap[name] = (gap, low, high)
        found = replicate_mde(gap_reps, ALPHA)
        result.oracle_gap_mde[name] = found[0] if found else float("inf")
        if abs(gap) >= FQ_GUARD_K * result.oracle_gap_mde[name] and abs(gap) > 0:
            separated.append(name)
    result.oracle, result.oracle_separated = oracle, separated
    if not separated:
        result.caveats.append(f"no scored forget metric's taught-to-oracle gap reaches {FQ_GUARD_K:g} x its "
                              "minimum detectable effect: forget quality is not computed; rows are ranked by their "
                              "distance to the oracle in standardised units (section 7 of docs/scoring.md), not by F")
        return None
    closeness: dict[str, tuple[float, np.ndarray]] = {}
    for row in result.rows:
        mine = reps.deltas.get(row.label, {})
        if any(name not in mine for name in separated):
            continue
        per_metric = []
        for name in separated:
            stats = row.metrics[name]
            point = float(stats.delta or 0.0) / float(oracle_row.metrics[name].delta)
            with np.errstate(divide="ignore", invalid="ignore"):
                fq_reps = mine[name] / oracle_deltas[name]
            low, high, bad = finite_interval(fq_reps)
            stats.forget_quality, stats.forget_quality_ci, stats.forget_quality_nonfinite = point, (low, high), bad
            if row.label != oracle:
                stats.ks_p = float(ks_2samp(reps.items[row.label][name], reps.items[oracle][name]).pvalue)
            per_metric.append((point, fq_reps))
        fq = float(np.mean([p for p, _ in per_metric]))
        fq_reps = np.mean([r for _, r in per_metric], axis=0)
        low, high, bad = finite_interval(fq_reps)
        row.forget_quality, row.forget_quality_ci, row.forget_quality_nonfinite = fq, (low, high), bad
        closeness[row.label] = _closeness(row, 1.0, [(abs(1.0 - p), np.abs(1.0 - r)) for p, r in per_metric])
    return closeness


def _closeness(row: RowScore, best: float, distances: list[tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
    """A row's ranking key on an oracle board, ``best`` − the mean per-metric distance to the oracle (point and
    replicates), stored on the row with its interval."""
    point = best - float(np.mean([d for d, _ in distances]))
    reps = best - np.mean([r for _, r in distances], axis=0)
    row.closeness, row.closeness_ci = point, finite_interval(reps)[:2]
    return point, reps


def _effect_closeness(result: TaskScores, reps: _Replicates, oracle: str
                      ) -> dict[str, tuple[float, np.ndarray]] | None:
    """Where no forget metric's gap passes the guard, the oracle board's key is the distance to the oracle in the
    units of F: −mean over the scored forget metrics of |e_row − e_oracle| (Glass's Δ; paired replicates). No ratio
    whose denominator could sit in its noise, and — unlike F, which rewards moving ever further — a row that
    overshoots the oracle is as far from it as one that stops short."""
    names = result.scored["forget"]
    mine = reps.effects.get(oracle, {})
    o_row = result.row(oracle)
    if not names or any(n not in mine for n in names):
        return None
    out: dict[str, tuple[float, np.ndarray]] = {}
    for row in result.rows:
        eff = reps.effects.get(row.label, {})
        if any(n not in eff for n in names):
            continue
        point = [0.0 if row.label == BASE_LABEL else float(row.metrics[n].effect) for n in names]
        out[row.label] = _closeness(row, 0.0, [(abs(e - float(o_row.metrics[n].effect)), np.abs(eff[n] - mine[n]))
                                               for n, e in zip(names, point)])
    return out


def fq_candidates(result: TaskScores) -> list[str]:
    """The forget metrics forget quality may be formed on: the scored ones, and the forget likelihood probes
    (details for F, which would reward pushing a probe down without end, but measured against the oracle as a
    distance: a model that drives the gold answers' likelihood far below the oracle's — a collapse, or an
    over-forgetting that makes the forget set an outlier — is as far from the gold standard as one that keeps it
    at the taught model's. Unbounded below, they have no floor a collapse could reach to match the oracle)."""
    probes = [name for name, info in result.metrics.items()
              if info.group == "forget" and not info.primary and info.kind == "likelihood" and result.signal[name].ok]
    return result.scored["forget"] + probes


def _utility_verdicts(result: TaskScores, reps: _Replicates, scales: dict[str, float],
                      budget: float) -> dict[str, UtilityVerdict]:
    """Every row's utility verdict against the fixed bands of ``bench.report.ranking``."""
    base = result.row(BASE_LABEL)
    taught = {n: base.metrics[n].value for n in result.scored["utility"]}
    oracle = result.row(result.oracle) if result.oracle else None
    gold = {n: oracle.metrics[n].value for n in result.scored["utility"]
            if oracle is not None and n in oracle.metrics}
    result.utility_bands = utility_bands(result.metrics, result.scored["utility"], taught, gold, scales, budget)
    verdicts = {}
    for row in result.rows:
        if any(n not in reps.deltas.get(row.label, {}) for n in result.scored["utility"]):
            continue
        values = {n: row.metrics[n].value for n in result.scored["utility"]}
        changed = {n: significant(row.metrics[n].delta_ci_low, row.metrics[n].delta_ci_high)
                   for n in result.scored["utility"]}  # the base row has no delta: never significant
        verdicts[row.label] = utility_verdict(result.utility_bands, values, changed)
    return verdicts


def _collapse_check(result: TaskScores, reps: _Replicates) -> None:
    """Mark rows whose forget-prompt output collapsed: degenerate share (``COLLAPSE_METRIC``) above both the taught
    model's and the oracle's by more than ``COLLAPSE_MARGIN``, its delta against the taught model significant."""
    if COLLAPSE_METRIC not in result.metrics:
        return
    taught = result.row(BASE_LABEL).metrics[COLLAPSE_METRIC].value
    oracle = result.row(result.oracle).metrics.get(COLLAPSE_METRIC) if result.oracle else None
    reference = max(taught, oracle.value if oracle is not None else taught)
    for row in result.rows:
        stats = row.metrics.get(COLLAPSE_METRIC)
        if row.label in (BASE_LABEL, result.oracle) or stats is None or stats.delta_ci_low is None:
            continue
        if stats.value > reference + COLLAPSE_MARGIN and stats.delta_ci_low > 0:
            row.collapsed = (f"{stats.value:.0%} of its forget-prompt outputs are degenerate (taught {taught:.0%}"
                             + (f", oracle {oracle.value:.0%}" if oracle is not None else "") + ")")


def _rank(result: TaskScores, effects: dict[str, dict[str, np.ndarray]], scored: dict[str, list[str]],
          verdicts: dict[str, UtilityVerdict], resamples: int,
          closeness: dict[str, tuple[float, np.ndarray]] | None = None) -> None:
    """The rule (``bench.report.ranking``) at the point estimate and in every replicate, then the pairwise tests:
    point ranks, rank sets and ties (``bench.inference.pairwise``)."""
    klass, key = classes_and_keys(result, effects, scored, verdicts, resamples, BASE_LABEL, closeness)
    labels = [r.label for r in result.rows]
    separation = separate(labels, klass, key)
    ranks = competition_ranks(klass, key)
    ranks[0] = competition_ranks(klass[:1], np.nan_to_num(key[:1], nan=-np.inf))[0]
    _apply_separation(result.rows, separation, ranks[0])
    if not separation.resolvable():
        result.caveats.append(f"{resamples} replicates cannot resolve Holm's first step over {len(labels)} rows "
                              f"(needs {min_resamples(len(labels))}): no pair can separate")
    order = sorted(range(len(labels)), key=lambda j: (result.rows[j].rank, result.rows[j].rank_low,
                                                      result.rows[j].rank_high, result.rows[j].label))
    result.rows = [result.rows[j] for j in order]
    result.rank_replicates = ranks[1:][:, order]  # columns follow ``rows``
    result.separation = separation
    result.keys = (klass[:, order], key[:, order])


def _apply_separation(rows: Sequence[Any], separation: Separation, point_ranks: np.ndarray) -> None:
    for j, row in enumerate(rows):
        row.rank = int(point_ranks[j])
        row.rank_low, row.rank_high = separation.rank_set(row.label)
        row.tied_with = separation.tied_with(row.label)


# -- leaderboard ------------------------------------------------------------------------------------
def score_leaderboard(per_task: dict[str, tuple[BaseResult | None, list[Group]]], *,
                      budget: float = UTILITY_BUDGET, resamples: int = RESAMPLES,
                      oracles: dict[str, str] | None = None, seed: int = BOOTSTRAP_SEED) -> Scoring:
    """Score every task, star the board's claims (BH), state power at the board's levels, mark underpowered
    tasks, and rank across tasks; ``oracles``: task -> the label of its oracle row, for taught tasks (ranked by
    closeness to it). Reference rows are the groups marked ``reference``."""
    tasks = {task: score_task(task, base, groups, budget=budget, resamples=resamples, seed=seed,
                              oracle=(oracles or {}).get(task))
             for task, (base, groups) in sorted(per_task.items())}
    level = _adjust_multiplicity(tasks.values())
    for ts in tasks.values():
        _board_power(ts, level)
    overall, separation = _overall(tasks)
    return Scoring(tasks, overall, budget, resamples, separation, level, seed)


def _claims(ts: TaskScores) -> list[MetricStats]:
    """The board's claims on a task: deltas of method rows (not references, not the base) on scored metrics."""
    scored = set(ts.scored["forget"]) | set(ts.scored["utility"]) if ts.metrics else set()
    return [stats for row in ts.rows if not row.reference and row.label != BASE_LABEL
            for name, stats in row.metrics.items() if name in scored and stats.p_value is not None]


def _adjust_multiplicity(tasks: Iterable[TaskScores]) -> float:
    """Benjamini–Hochberg over the board's claims; returns the realised threshold. Reference rows and details
    keep their p-values, unstarred."""
    tasks = list(tasks)
    entries = [stats for ts in tasks for stats in _claims(ts)]
    for stats, q in zip(entries, benjamini_hochberg([s.p_value for s in entries])):
        stats.q_value = q
        stats.significant = q < ALPHA
    for ts in tasks:
        for name, stats in ((n, s) for row in ts.rows for n, s in row.metrics.items()):
            mme = ts.metrics[name].min_effect if name in ts.metrics else None
            stats.meaningful = stats.significant and abs(stats.delta or 0.0) >= (mme or 0.0)
    return bh_level([s.p_value for s in entries])


def _board_power(ts: TaskScores, level: float) -> None:
    """Per metric, the MDE of a method row against the taught model at the board's BH level (seeds included);
    the MDE of two methods' ranking-key difference at Holm's first-step level; underpowered or not."""
    reps = ts.replicates
    if reps is None:
        return
    methods = [r.label for r in ts.rows if not r.reference and r.label != BASE_LABEL and r.status == "done"]
    for name, info in ts.metrics.items():
        # rows that did not move a metric have a zero-width error distribution: they say nothing about what a
        # change could be detected at; with fewer than two moved method rows, the oracle's (a row that moved) too
        rows = _moved([reps.deltas[label][name] for label in methods if name in reps.deltas.get(label, {})])
        if len(rows) < 2 and ts.oracle and name in reps.deltas.get(ts.oracle, {}):
            rows = _moved(rows + [reps.deltas[ts.oracle][name]])
        found = board_mde(rows, level)
        n = int(ts.row(BASE_LABEL).metrics[name].n) if name in ts.row(BASE_LABEL).metrics else 0
        if found is None or n < 2:
            continue
        scale = _scale(info, reps.items[BASE_LABEL][name])
        ts.power[name] = metric_power(found[0], level, scale, info.min_effect, n,
                                      f"median over {len(rows)} moved rows' delta replicates (seeds included)",
                                      extrapolated=found[1])
    if ts.separation is None or ts.keys is None:
        return
    klass, key = ts.keys
    columns = [j for j, r in enumerate(ts.rows) if r.label in methods]
    diffs = [key[1:, i] - key[1:, j] for a, i in enumerate(columns) for j in columns[a + 1:]]
    same_class = [klass[1:, i] == klass[1:, j] for a, i in enumerate(columns) for j in columns[a + 1:]]
    ts.pair_level = holm_first_level(len(ts.rows))
    found = board_mde([np.where(c, d, np.nan) for d, c in zip(diffs, same_class)], ts.pair_level)
    if found is not None:
        ts.minimum_detectable_pair = found[0]
    _mark_underpowered(ts, methods)


def _moved(replicates: list[np.ndarray]) -> list[np.ndarray]:
    """The rows whose replicates vary at all (a row that did not move a metric has a zero-width distribution)."""
    return [r for r in replicates if np.ptp(r[np.isfinite(r)]) > 0]


def _mark_underpowered(ts: TaskScores, methods: list[str]) -> None:
    """A task whose minimum detectable FQ (F without an oracle) exceeds every method's observed |FQ| (|F|) could
    not have shown any method's effect: it is left out of the overall ranking."""
    fq_board = bool(ts.oracle_separated)
    mde = ts.minimum_detectable_fq if fq_board else ts.minimum_detectable_f
    observed = [abs(v) for v in ((ts.row(m).forget_quality if fq_board else ts.row(m).forget) for m in methods)
                if v is not None and np.isfinite(v)]
    if mde is not None and observed and mde > max(observed):
        what = "FQ" if fq_board else "F"
        ts.underpowered = (f"underpowered at this size: the minimum detectable {what} {mde:.3f} exceeds every "
                           f"method's |{what}| (largest {max(observed):.3f}); left out of the overall ranking")


def _overall(tasks: dict[str, TaskScores]) -> tuple[list[OverallRow], Separation | None]:
    """Mean rank over the ranked, adequately powered tasks, per replicate; pairwise tests on it."""
    ranked = [ts for ts in tasks.values() if ts.rank_replicates is not None and not ts.underpowered]
    if not ranked:
        return [], None
    labels = sorted({r.label for ts in ranked for r in ts.rows})
    resamples = ranked[0].rank_replicates.shape[0]
    sums = np.zeros((resamples + 1, len(labels)))
    counts = np.zeros(len(labels))
    for ts in ranked:
        for j, row in enumerate(ts.rows):
            k = labels.index(row.label)
            sums[0, k] += row.rank
            sums[1:, k] += ts.rank_replicates[:, j]
            counts[k] += 1
    means = sums / np.maximum(counts, 1)
    means[:, counts == 0] = np.inf
    klass = np.zeros_like(means)
    separation = separate(labels, klass, -means)
    point = competition_ranks(klass[:1], -means[:1])[0]
    rows = []
    for k, label in enumerate(labels):
        low, high = separation.rank_set(label)
        rows.append(OverallRow(label, float(means[0, k]), int(point[k]), low, high, separation.tied_with(label),
                               tasks=[ts.task for ts in ranked if ts.row(label) is not None]))
    return sorted(rows, key=lambda r: (r.rank, r.mean_rank, r.label)), separation


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def pareto_front(points: Iterable[tuple[str, float, float]]) -> list[str]:
    """Labels of the points not dominated in (x up, y up): no other point is >= on both and > on one."""
    pts = list(points)
    front = []
    for label, x, y in pts:
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for _, x2, y2 in pts)
        if not dominated:
            front.append(label)
    return front


__all__ = ["BASE_LABEL", "Group", "MetricInfo", "MetricStats", "OverallRow", "Power", "RowScore", "SCORING_VERSION",
           "Scoring", "Signal", "TaskScores", "UTILITY_BUDGET", "pareto_front", "score_leaderboard", "score_task",
           "signal_check"]
