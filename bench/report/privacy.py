"""A board's privacy column group (oracle boards): per task and row, each membership-inference attack's AUC and
PrivLeak against the oracle, and the leak@k curve — all from the per-item values the tasks report
(``bench.eval.privacy``), on the task's crossed bootstrap (its shared item draws and each row's seed multipliers,
so privacy intervals are paired with, and as wide as, every other number of the board). docs/scoring.md,
"Privacy", gives the definitions and the sets per task.

**Not part of the ranking** (stated in advance): the headline ranks forgetting of the taught *behaviour* by
closeness to the oracle on the task's own metrics; membership inference asks a different question — are the
particular taught *instances* still recognisable — that the taught capability can leave unanswered (a skill that
generalises to held-out examples makes members and non-members alike even before unlearning), and leak@k re-asks a
scored forget metric under sampling on a subset of its prompts. Both are shown beside the ranking, as MUSE shows
PrivLeak beside its other criteria, so a method that hides its greedy outputs but stays detectable, or that turns
its forget set into an outlier, is visible without changing the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.eval import privacy as P
from bench.inference.bootstrap import CrossedDraws


@dataclass
class PrivacyRow:
    label: str
    attacks: dict[str, P.AttackStats] = field(default_factory=dict)
    leak: list[P.LeakPoint] = field(default_factory=list)

    def leak_at(self, k: int) -> P.LeakPoint | None:
        return next((p for p in self.leak if p.k == k), None)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "attacks": {a: s.to_json() for a, s in self.attacks.items()},
                "leak_at_k": [p.to_json() for p in self.leak]}


@dataclass
class TaskPrivacy:
    """One task's privacy group: sizes, every row's statistics, and what a reader must know."""

    members: int
    nonmembers: int
    prompts: int | None
    rows: list[PrivacyRow]
    oracle: str
    taught: str
    table_k: int = P.TABLE_K
    notes: list[str] = field(default_factory=list)

    def row(self, label: str) -> PrivacyRow | None:
        return next((r for r in self.rows if r.label == label), None)

    def to_json(self) -> dict[str, Any]:
        return {"members": self.members, "nonmembers": self.nonmembers, "leak_prompts": self.prompts,
                "attacks": list(P.ATTACKS), "min_k": P.MIN_K, "table_k": self.table_k, "oracle": self.oracle,
                "taught": self.taught, "in_headline": False, "notes": self.notes,
                "rows": [r.to_json() for r in self.rows]}


def _tables(per_seed: list[dict[str, Any]], attack: str) -> P.ScoreTable | None:
    """A row's score table for ``attack`` from its seeds' metrics (name -> per-item list), or None if missing."""
    member, non = P.member_metric_name(attack, "member"), P.member_metric_name(attack, "nonmember")
    if not per_seed or any(member not in m or non not in m for m in per_seed):
        return None
    return P.ScoreTable.of([m[member] for m in per_seed], [m[non] for m in per_seed])


def task_privacy(base_metrics: dict[str, Any] | list[dict[str, Any]], rows: list[tuple[str, list[dict[str, Any]]]],
                 draws: CrossedDraws, multipliers: dict[str, np.ndarray | None], oracle: str, taught: str
                 ) -> TaskPrivacy | None:
    """The privacy group of one task, or None when its evaluations report no membership scores.

    ``base_metrics``: the taught model's metrics (name -> per-item list), or one such dict per teaching pair (the
    taught row's seeds, drawn with ``multipliers[taught]``); ``rows``: (label, per-seed metrics) of every other
    row, the oracle's included; ``multipliers``: each row's seed multipliers, the ones its other metrics were
    drawn with."""
    taught_seeds = base_metrics if isinstance(base_metrics, list) else [base_metrics]
    base_metrics = taught_seeds[0]
    everyone = [(taught, taught_seeds), *rows]
    if _tables(taught_seeds, P.ATTACKS[0]) is None:
        return None
    out_rows = {label: PrivacyRow(label) for label, _ in everyone}
    for attack in P.ATTACKS:
        tables = {label: t for label, seeds in everyone if (t := _tables(seeds, attack)) is not None}
        if oracle not in tables:
            return None
        for label, stats in P.membership_stats(tables, draws, multipliers, oracle, attack).items():
            out_rows[label].attacks[attack] = stats
    ks = [k for k in P.LEAK_KS if P.leak_metric_name(k) in base_metrics]
    prompts = len(base_metrics[P.leak_metric_name(ks[0])]) if ks else None
    for label, seeds in everyone:
        if ks and all(P.leak_metric_name(k) in m for m in seeds for k in ks):
            per_k = {k: [m[P.leak_metric_name(k)] for m in seeds] for k in ks}
            out_rows[label].leak = P.leak_curve(per_k, draws.items[prompts], multipliers.get(label))
    result = TaskPrivacy(len(base_metrics[P.member_metric_name(P.ATTACKS[0], "member")]),
                         len(base_metrics[P.member_metric_name(P.ATTACKS[0], "nonmember")]), prompts,
                         list(out_rows.values()), oracle, taught, P.TABLE_K if P.TABLE_K in ks else max(ks or [0]))
    result.notes = _notes(result)
    return result


def _notes(result: TaskPrivacy) -> list[str]:
    """What the issue requires a board to say: the taught model must show leakage and the oracle none, on every
    attack — or the board says where and why not."""
    notes = []
    taught, oracle = result.row(result.taught), result.row(result.oracle)
    for attack in P.ATTACKS:
        label = P.ATTACK_LABELS[attack]
        t, o = taught.attacks[attack], oracle.attacks[attack]
        if not t.auc.low > 0.5:
            notes.append(f"{label}: the taught model's AUC {t.auc.value:.3f} [{t.auc.low:.3f}, {t.auc.high:.3f}] is "
                         "not "
                         "above 0.5 — its members cannot be told from held-out examples even before unlearning (the "
                         "taught capability generalises to unseen examples of the same kind), so this attack cannot "
                         "show what a method removed on this task")
        elif t.privleak is not None and not t.privleak.low > 0:
            notes.append(f"{label}: the taught model's PrivLeak {t.privleak.value:+.3f} [{t.privleak.low:+.3f}, "
                         f"{t.privleak.high:+.3f}] does not exceed the oracle's AUC significantly")
        if o.auc.low > 0.5 or o.auc.high < 0.5:
            notes.append(f"{label}: the oracle's own AUC {o.auc.value:.3f} [{o.auc.low:.3f}, {o.auc.high:.3f}] differs "
                         "from 0.5 — members and non-members differ for a model that never learned the target (e.g. it "
                         "saw the members' inputs while learning the rest); PrivLeak is measured against it, not 0.5")
    return notes


def attack_cell(stats: P.AttackStats | None) -> str:
    """``+0.12 [+0.05, +0.20] leaks`` (PrivLeak; the AUC on the oracle row)."""
    if stats is None:
        return "–"
    if stats.privleak is None:
        return f"AUC {stats.auc.value:.3f} [{stats.auc.low:.3f}, {stats.auc.high:.3f}]"
    lk = stats.privleak
    flag = {"leaks membership": " ▲ leaks", "over-unlearned": " ▼ over-unlearned"}.get(stats.verdict, "")
    return f"{lk.value:+.3f} [{lk.low:+.3f}, {lk.high:+.3f}]{flag}"


def leak_cell(point: P.LeakPoint | None) -> str:
    if point is None:
        return "–"
    return f"{point.value.value:.3f} [{point.value.low:.2f}, {point.value.high:.2f}]"


LEGEND = ("Privacy (not part of the ranking): PrivLeak = (AUC_row − AUC_oracle) / AUC_oracle per membership-"
          "inference attack on the taught forget-target examples (members) against held-out ones (non-members); "
          "0 = the oracle, ▲ > 0 leaks membership, ▼ < 0 over-unlearned (the forget set is now an outlier); the "
          "oracle row shows its AUC. leak@k: share of forget prompts on which at least one of k sampled outputs "
          "shows the forgotten behaviour (unbiased from 8 samples). 95 % intervals from the board's crossed "
          "bootstrap, paired with the oracle.")


def table_rows(result: TaskPrivacy, name: Any) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the privacy table: one row per board row, PrivLeak per attack and leak@k at the table's k.
    ``name``: label -> the name a report shows."""
    header = ["row", *[f"PrivLeak {P.ATTACK_LABELS[a]}" for a in P.ATTACKS]]
    if result.prompts:
        header.append(f"leak@{result.table_k} ({result.prompts} prompts)")
    rows = []
    for row in result.rows:
        cells = [name(row.label), *[attack_cell(row.attacks.get(a)) for a in P.ATTACKS]]
        if result.prompts:
            cells.append(leak_cell(row.leak_at(result.table_k)))
        rows.append(cells)
    return header, rows


def csv_rows(result: TaskPrivacy) -> list[dict[str, Any]]:
    """Flat rows for results.csv: AUC, PrivLeak per attack and leak@k per k, per row."""
    out = []
    for row in result.rows:
        for attack, stats in row.attacks.items():
            out.append({"metric": f"privacy/{attack}/auc", "label": row.label, "n": result.members + result.nonmembers,
                        "value": stats.auc.value, "ci_low": stats.auc.low, "ci_high": stats.auc.high,
                        "p_value": stats.auc.p})
            if stats.privleak is not None:
                lk = stats.privleak
                out.append({"metric": f"privacy/{attack}/privleak", "label": row.label,
                            "n": result.members + result.nonmembers, "value": lk.value, "ci_low": lk.low,
                            "ci_high": lk.high, "p_value": lk.p})
        for point in row.leak:
            out.append({"metric": f"privacy/leak@{point.k}", "label": row.label, "n": result.prompts,
                        "value": point.value.value, "ci_low": point.value.low, "ci_high": point.value.high})
    return out


def is_privacy_metric(name: str) -> bool:
    """Privacy metrics are shown in their own group, not in a task's metric table."""
    return P.parse_privacy_name(name) is not None
