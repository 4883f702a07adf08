"""Formatting shared by reporters: numbers with intervals, significance marks, score and rank cells,
the scoring legend and provenance lines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.report import ResultTable
from bench.report.robustness import UNCALIBRATED
from bench.report.scores import BASE_LABEL, FQ_GUARD_K, RowScore, Scoring, TaskScores
from bench.results import CellResult

ARROW = {"lower": "↓", "higher": "↑", "closer": "≈base"}
NO_SIGNAL = "⚑"


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_signed(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:+.{digits}f}"


def interval(ci: tuple[float, float] | None, digits: int = 2, signed: bool = False) -> str:
    if ci is None:
        return ""
    f = fmt_signed if signed else fmt
    return f"[{f(ci[0], digits)}, {f(ci[1], digits)}]"


def mark(stats: Any) -> str:
    """``**``: significant after the multiplicity correction and at least the minimum meaningful effect;
    ``*``: significant only."""
    return "**" if stats.meaningful else "*" if stats.significant else ""


def fmt_metric(stats: Any, with_delta: bool = True) -> str:
    """``0.250 [0.10, 0.40] Δ −0.100**``."""
    if stats is None:
        return "–"
    text = f"{fmt(stats.value)} {interval((stats.ci_low, stats.ci_high))}"
    if with_delta and stats.delta is not None:
        text += f" Δ {stats.delta:+.3f}{mark(stats)}"
    return text


def metric_header(scores: TaskScores, group: str, name: str) -> str:
    info = scores.metrics.get(name)
    arrow = ARROW.get(info.better, "") if info else ""
    flag = "" if name not in scores.signal or scores.signal[name].ok else f" {NO_SIGNAL}"
    detail = "" if info is None or info.primary else ", detail"
    return f"{name} {arrow} ({group}{detail}){flag}"


def fq_text(row: RowScore, short: bool = False) -> str:
    """``FQ 0.62 [0.41, 0.80]`` (forget quality against the oracle), "past the oracle" when significantly > 1;
    empty without one."""
    if row.forget_quality is None:
        return ""
    past = ", past the oracle: over-forgets" if row.over_forgets else ""
    if short:
        return f"FQ {fmt(row.forget_quality)}{past}"
    bad = (f", {row.forget_quality_nonfinite} non-finite replicates not ranked"
           if row.forget_quality_nonfinite else "")
    return f"FQ {fmt(row.forget_quality)} {interval(row.forget_quality_ci)}{past}{bad}"


def score_text(row: RowScore) -> str:
    """``FQ 0.62 [0.41, 0.80] · F +0.31 [+0.20, +0.41] · U −0.05 [−0.10, +0.00]`` (FQ on boards with an
    oracle)."""
    if row.forget is None:
        return row.status if row.status != "done" else "–"
    fq = fq_text(row)
    if row.closeness is not None and row.forget_quality is not None:
        fq = f"closeness {fmt(row.closeness)} {interval(row.closeness_ci)} · {fq}"
    elif row.closeness is not None:  # no FQ metric passed the guard: the distance to the oracle in σ units
        low, high = row.closeness_ci  # closeness = −distance here; 0.0 − x keeps a zero distance unsigned
        fq = f"distance to the oracle {fmt(0.0 - row.closeness, 2)} σ {interval((0.0 - high, 0.0 - low))}"
    return ((f"{fq} · " if fq else "") + f"F {fmt_signed(row.forget)} {interval(row.forget_ci, signed=True)} · "
            f"U {fmt_signed(row.utility)} {interval(row.utility_ci, signed=True)}")


def verdict_text(row: RowScore) -> str:
    """The verdict with what decided it: the metrics outside their utility bands, or why the output collapsed."""
    if row.collapsed:
        return f"collapsed: {row.collapsed}"
    if row.utility_kept is False and row.utility_broken_by:
        return f"utility broken ({', '.join(row.utility_broken_by)})"
    return row.verdict


def utility_band_line(scores: TaskScores) -> str:
    """Each scored utility metric's fixed band (``bench.report.ranking``)."""
    if not scores.utility_bands:
        return ""
    parts = [f"`{b.name}` {b.text()} (budget {b.budget:.3g}"
             + (f"; the oracle's {b.gold:.3g} is an end" if b.gold_differs else "") + ")" for b in scores.utility_bands]
    return ("Utility breaks when a scored utility metric leaves its band — the range between the taught model and "
            "the gold standard, widened by the budget (twice the metric's minimum meaningful effect by default) — "
            "with a significant change from the taught model: " + "; ".join(parts) + ".")


def task_cell(row: RowScore | None) -> str:
    """A task's column in the headline: rank interval, F and U, and the verdict when not kept."""
    if row is None:
        return "–"
    if row.rank is None:
        return row.status
    verdict = "" if row.verdict == "utility kept" else f", {verdict_text(row)}"
    if row.forget is None:
        return f"{row.rank_text}{verdict}"
    fq = fq_text(row, short=True)
    scores = f"{fq + ', ' if fq else ''}F {fmt_signed(row.forget)}, U {fmt_signed(row.utility)}"
    return f"{row.rank_text} ({scores}{verdict})"


def oracle_lines(scores: TaskScores) -> list[str]:
    """A taught task's gold standard: the taught-to-oracle gap of each scored forget metric against the guard
    (2 × the gap's MDE), and which ones forget quality is computed on."""
    if scores.oracle is None:
        return []

    def verdict(name: str) -> str:
        guard = FQ_GUARD_K * scores.oracle_gap_mde.get(name, float("nan"))
        return (f" (≥ {FQ_GUARD_K:g} × MDE = {fmt(guard, 2)}: FQ formed)" if name in scores.oracle_separated
                else f" (below {FQ_GUARD_K:g} × MDE = {fmt(guard, 2)}: left out)")

    gaps = "; ".join(f"`{name}` {fmt_signed(gap)} {interval((low, high), signed=True)}{verdict(name)}"
                     for name, (gap, low, high) in scores.oracle_gap.items())
    return [f"Gold standard: the row `{scores.oracle}` (taught the same way without the forget target). "
            f"Taught − oracle per scored forget metric: {gaps or 'none'}. Forget quality FQ is computed where the gap "
            f"is at least {FQ_GUARD_K:g} × its minimum detectable effect; where it is formed, rows that kept utility "
            "are ranked by closeness to the oracle, 1 − the mean over those metrics of |1 − FQ_m|; where none is, "
            "by the distance to the oracle in σ units, mean |e_row − e_oracle| over the scored forget metrics."] \
        + oracle_floor_lines(scores)


def oracle_floor_lines(scores: TaskScores) -> list[str]:
    """With several teaching pairs: the oracle-against-oracle FQ, the noise floor of "indistinguishable from the
    oracle" (``bench.report.scores.oracle_floor``)."""
    floor = scores.oracle_floor
    if not floor:
        return []
    fq = ", ".join(fmt(x, 2) for x in floor["fq"])
    close = ", ".join(fmt(x, 2) for x in floor["closeness"])
    return [f"Teaching variance ({floor['pairs']} teaching pairs, the method seeds spread over them): each pair's "
            f"oracle scored against the other pairs' gap has FQ {fq} (closeness {close}) — the noise floor of "
            "\"indistinguishable from the oracle\": a row within this spread is as close to the gold standard as "
            "another teaching run of the oracle itself."]


def power_line(scores: TaskScores) -> str:
    """Power at the board's own levels (``bench.inference.power``): per metric the minimum detectable change of a
    method row against the taught model (BH level, seeds included), the task's for F and FQ, and for two rows."""
    if not scores.power:
        return ""
    level = next(iter(scores.power.values())).level
    parts = [f"`{name}` ±{fmt(p.mde, 3)} ({fmt(p.in_sigma, 2)} σ, n={p.n}"
             f"{', minimum-effect floor' if p.floor_binds else ''})" for name, p in scores.power.items()]
    summary = []
    if scores.minimum_detectable_f is not None:
        summary.append(f"F {fmt(scores.minimum_detectable_f, 2)}")
    if scores.minimum_detectable_fq is not None:
        summary.append(f"FQ {fmt(scores.minimum_detectable_fq, 2)}")
    pair = ""
    if scores.minimum_detectable_pair is not None:
        what = "FQ" if scores.oracle_separated else "F"
        pair = (f" Two rows separate for sure (Holm's first step, level {scores.pair_level:.2g}) from a {what} "
                f"difference of {fmt(scores.minimum_detectable_pair, 2)}.")
    return (f"Power (80 %; a row against the taught model at the board's BH level {level:.2g}, seeds included; "
            "`bench.inference.power`): minimum detectable "
            + (f"{' and '.join(summary)}; per metric " if summary else "per metric ") + "; ".join(parts) + "." + pair)


def no_headline_reason(scoring: Scoring) -> str:
    """Why the board has no overall ranking ("" when it has one)."""
    if scoring.overall:
        return ""
    under = [t for t, ts in scoring.tasks.items() if ts.underpowered]
    if under:
        return (f"No overall ranking: every ranked task is underpowered at this size ({', '.join(under)}: the "
                "minimum detectable forget score exceeds every method's observed one), so an order across tasks "
                "would rest on noise. Each task's own ranking, rank sets and pairwise tests are below.")
    return "No overall ranking: no task could be ranked (reasons below)."


def separated_pairs_text(table: ResultTable, scores: TaskScores) -> str:
    """The pairs the pairwise tests order (Holm, family-wise 5 %), as ``A > B`` in a compact list."""
    if scores.separation is None:
        return ""
    apart = [p for p in scores.separation.pairs if p.separated]
    names = {BASE_LABEL: base_name(table)}
    listed = "; ".join(f"{names.get(p.a, p.a)} > {names.get(p.b, p.b)}" for p in apart)
    return (f"Separated pairs ({len(apart)} of {len(scores.separation.pairs)}; Holm over every pair of this "
            f"ranking, family-wise error 5 %): {listed or 'none'}.")


def no_signal_lines(scores: TaskScores) -> list[str]:
    """The task's caveats and every metric flagged "no signal at this size", with the reason."""
    power = power_line(scores)
    bands = utility_band_line(scores)
    under = [f"**{scores.underpowered[0].upper()}{scores.underpowered[1:]}.**"] if scores.underpowered else []
    return oracle_lines(scores) + ([bands] if bands else []) + under + ([power] if power else []) + [
        f"Caveat: {c}" for c in scores.caveats] + [
        f"`{name}` {NO_SIGNAL} no signal at this size: {s.reason}" for name, s in scores.signal.items() if not s.ok]


def scoring_legend(scoring: Scoring) -> list[str]:
    """What every number on the page means (formulas: docs/scoring.md)."""
    return [
        "Values: mean over evaluation items (and seeds), 95 % interval from a crossed bootstrap "
        f"({scoring.resamples} replicates, seed {scoring.seed}: one item draw per replicate shared by every seed "
        "of every row, and a random-effects seed term per row, Student t with S − 1 df); a row with one seed is "
        "conditional on that run. A proportion's interval is at least its exact Clopper–Pearson interval. "
        "Δ: change versus the base model, paired over items. "
        "`*`: Δ significant after the Benjamini–Hochberg correction over the board's claims — method rows × "
        f"scored metrics (FDR 5 %; the threshold a claim had to pass, α·k/m, or α/m when none passed: p ≤ "
        f"{scoring.bh_level:.2g}); reference rows and details "
        "are shown without stars. `**`: significant and at least the metric's minimum meaningful effect. "
        f"{NO_SIGNAL}: no signal at this size — the base model cannot move detectably in the scored direction "
        "at this eval size; shown, but kept out of F and U.",
        "F (forget score) and U (utility score): mean standardised change (Glass's Δ: change in the wanted "
        "direction divided by the spread of the base model's per-item values, at least the minimum "
        "meaningful effect) over the task's primary metrics with signal; 0 = the base model, F > 0 forgot, "
        "U < 0 lost utility. ≈base: two-sided, any move away from the base model counts as a loss.",
        "Ranks: the point rank and, in brackets, the rank set [1 + rows surely ahead, R − rows surely behind] from "
        "pairwise "
        "tests: every pair of rows of a ranking is tested on the bootstrap replicates of the ranking key, with "
        "Holm's correction over the pairs (family-wise error 5 %). \"Tied with\" lists the rows a row is not "
        "separated from. Overall: mean rank over the ranked tasks that are not underpowered, tested the same way.",
        "Utility: a row breaks utility when a scored utility metric leaves its band — between the taught model's "
        "value and the gold standard's (the oracle's), widened by "
        f"{scoring.budget:g} × the metric's minimum meaningful effect — with a significant change from the taught "
        "model (its uncorrected 95 % Δ interval excludes 0); a point decision, the same in every replicate; one "
        "metric breaks utility, whatever the others gain. "
        "A row whose forget-prompt outputs "
        "collapsed (degenerate share above both the taught model's and the oracle's by more than 0.2, "
        "significantly) is marked collapsed and ranks with the rows that broke utility.",
    ] + ([
        "Boards with an oracle (taught tasks): FQ (forget quality) = (v_taught − v_row) / (v_taught − v_oracle) per "
        f"forget metric whose taught-to-oracle gap is at least {FQ_GUARD_K:g} × its minimum detectable effect — the "
        "scored forget metrics and the forget likelihood probes, which have no floor a collapse could reach; 0 = "
        "the taught model, 1 = the oracle, > 1 = past the oracle (over-forgetting). The rule, stated in advance: "
        "rows that kept utility and did not collapse rank first by closeness to the oracle, 1 − the mean over those "
        "metrics of |1 − FQ_m| (a distance per metric: overshooting one metric does not cancel stopping short on "
        "another); rows that broke utility or collapsed follow by U; failed rows last. The oracle, the taught model "
        "(the base row) and, where the run scores it, the untaught base are rows."]
        if any(ts.oracle for ts in scoring.tasks.values()) else [
        "The rule: rows that kept utility and did not collapse rank first, by F; rows that broke utility or collapsed "
        "follow, by U; failed rows last. The base model is a row: a method not separated from it has not been shown "
        "to forget."])


def model_text(provenance: dict[str, Any]) -> str:
    """A result's model in words: a taught task's models by their role and teaching key (their folders are
    machine-specific cache paths), any other model by its id."""
    model, teach = provenance["model"], provenance.get("teach")
    name = model["model_id"]
    if teach:
        role = Path(name).parent.name if Path(name).name == "model" else "untaught"
        name = (f"{teach['base_model']}, {role} on {teach['task']} (teach key {teach['key']}, "
                f"{teach.get('origin', '?')})" if role in ("taught", "oracle") else teach["base_model"])
    return f"{name} (weights {model['weights_hash']}, {model['dtype']})"


def base_name(table: ResultTable) -> str:
    """What the base row is: the taught model where the table's tasks were taught."""
    return "taught" if any("teach" in b.provenance for b in table.bases.values()) else BASE_LABEL


def tied_text(table: ResultTable, labels: list[str]) -> str:
    """The rows a row is tied with, the base row under its name on this table ("taught" on taught tasks)."""
    return ", ".join(base_name(table) if label == BASE_LABEL else label for label in labels) or "–"


def provenance_lines(table: ResultTable) -> list[str]:
    """Model, presets, versions and data sources behind a table (from the stored provenance)."""
    provs = [r.provenance for c in table.cells for r in c.results if "model" in r.provenance]
    provs += [b.provenance for b in table.bases.values()]
    if not provs:
        return ["(no provenance recorded)"]
    models = sorted({model_text(p) for p in provs})
    versions = provs[0]["versions"]
    commits = sorted({f"{(p['git'].get('commit') or 'unknown')[:10]}{' (dirty)' if p['git'].get('dirty') else ''}"
                      for p in provs})
    presets = sorted({p.get("preset", "?") for p in provs})
    devices = sorted({p.get("device", "?") for p in provs})
    autocast = sorted({f"train {p.get('train_autocast', 'off')}, eval {p.get('eval_autocast', 'off')}" for p in provs
                       if "train_autocast" in p or "eval_autocast" in p})
    lines = [f"Model: {', '.join(models)}",
             f"Preset: {', '.join(presets)}; device: {', '.join(devices)}"
             + (f"; autocast (the precision computed in; the weights' dtype is above): {'; '.join(autocast)}"
                if autocast else ""),
             f"unlearn-bench {versions.get('unlearn-bench')} (git {', '.join(commits)}); torch "
             f"{versions.get('torch')}, transformers {versions.get('transformers')}, peft {versions.get('peft')}"]
    sources: dict[str, set[str]] = {}
    for p in provs:
        for name, desc in p.get("data_sources", {}).items():
            sources.setdefault(name, set()).add(desc)
    lines += [f"Data/scorer `{name}`: {'; '.join(sorted(d))}" for name, d in sorted(sources.items())]
    return lines


REVEAL_HEADER = ("| method | seed | queries (random) | arms explored | responses → kept | relevance before → after | "
                 "diversity before → after | merge λ_f/λ_r by round | forget/retain update overlap | "
                 "forget probe Δ, round 1: forget PEM alone / retain PEM alone |")


def _reveal_runs(result: CellResult) -> list[dict[str, Any]]:
    reveal = result.extras.get("reveal")
    if isinstance(reveal, dict):  # ``forget_data: reveal``: one search on the base model
        return [reveal]
    return list(reveal or [])


def _alone_probe_deltas(result: CellResult) -> str:
    """Round 1's forget-probe change with the forget PEM alone / the retain PEM alone (Reveal-and-Release
    logs both with ``probe_alone``), against the round-0 probe."""
    rows = result.trajectory
    start = next((r for r in rows if r.get("round") == 0), {})
    first = next((r for r in rows if r.get("round") == 1), {})
    parts = []
    for key, base in start.items():
        if key.startswith("probe/forget/"):
            name = key.removeprefix("probe/")
            after = [first.get(f"probe_{tag}_pem_alone/{name}") for tag in ("forget", "retain")]
            if None not in after:
                parts.append(f"{name.removeprefix('forget/')} {fmt_signed(after[0] - base)} / "
                             f"{fmt_signed(after[1] - base)}")
    return "; ".join(parts) or "–"


def reveal_rows(table: ResultTable, task: str) -> list[str]:
    """Self-generated forget data, per cell that used Reveal: how the search explored, what the relevance
    filter kept, and (Reveal-and-Release) the merge weights chosen and the overlap of the two updates."""
    rows = []
    for cell in table.cells_for(task):
        for result in cell.results:
            rounds = [r for r in result.trajectory if r.get("round", 0) >= 1]
            lambdas = ", ".join(f'{fmt(r["lambda_forget"], 2)}/{fmt(r.get("lambda_retain"), 2)}'
                                for r in rounds if "lambda_forget" in r) or "–"
            alone = _alone_probe_deltas(result)
            overlap = [r["overlap_principal_cos"] for r in rounds if "overlap_principal_cos" in r]
            for run in _reveal_runs(result):
                stats, trajectory = run.get("stats", {}), run.get("trajectory", [])
                warm = sum(bool(q.get("random")) for q in trajectory)
                arms = stats.get("arms_explored", len({q.get("instruction") for q in trajectory}))
                rows.append(
                    f"| {table.label(cell)} | {result.spec['seed']} | {len(trajectory)} ({warm}) | {arms} | "
                    f"{stats.get('responses', '–')} → {stats.get('forget_size', '–')} | "
                    f"{fmt(stats.get('relevance_before'), 2)} → {fmt(stats.get('forget_relevance'), 2)} | "
                    f"{fmt(stats.get('diversity_before'), 2)} → {fmt(stats.get('forget_diversity'), 2)} | "
                    f"{lambdas} | {fmt(sum(overlap) / len(overlap), 2) if overlap else '–'} | {alone} |")
    if not rows:
        return []
    return ["Self-generated forget data (Reveal): relevance is the task's graded scorer, kept responses reach "
            "the relevance threshold; diversity = Vendi score / responses; overlap = mean largest principal-angle "
            "cosine between the forget and retain updates per module (1 = same directions); the last column is the "
            "change of the task's forget probe (lower = forgetting) with each update merged alone at round 1.", "",
            REVEAL_HEADER, "|" + "---|" * REVEAL_HEADER.count(" | ") + "---|", *rows]


ROBUSTNESS_LEGEND = ("Robustness (v3, docs/attacks.md): R = the share of the row's forget drop that the "
                     "attack recovers beyond what the same variant does to the control, max over variants of "
                     "[(A_v − U) − (C_v − C)] / (T − U): A_v and U the row's forget measure attacked and not, T the "
                     "taught (base) model's, C_v and C the control's — the oracle, a model that never learned the "
                     "target, where the board has one, else the base model (95 % crossed-bootstrap interval over "
                     "seeds and items, the worst variant chosen inside every replicate; 0 = nothing recovered, 1 = "
                     "back at the taught model). Each cell gives R on the forget likelihood probe and, for attacks "
                     "that change the model (relearn, quantize), on every scored generative forget metric (`name` R), "
                     "re-generated on the attacked model exactly as the evaluation generates; prompt attacks rewrite "
                     "the probe's prompts only. A share is shown only where the row forgot on the scored metrics "
                     "(its FQ, or F, interval above 0) and its interval lies in [−1, 2]; otherwise n/f with the "
                     "control-adjusted change Δ and its interval. The control row: the control's own change under "
                     "the row's worst variant (probe: log-likelihood per token; metrics: in their units). worst = "
                     "the largest R of the row over attacks and measures (its interval is that one's, not corrected "
                     "for the choice). n/f (uncalibrated): a relearn strength whose positive control did not qualify "
                     "it on this task (not in its `calibrated_on`): the change is measured, no share is claimed.")


def _share_text(summary: dict[str, Any]) -> str:
    """R with its interval, or n/f with the control-adjusted change."""
    if summary["recovered"] is None:
        change = summary.get("adjusted_change")
        why = " (uncalibrated)" if summary.get("recovered_note") == UNCALIBRATED else ""
        return f"n/f{why}" if change is None else \
            f"n/f{why}: Δ {fmt_signed(change)} {interval(summary['adjusted_change_ci'], signed=True)}"
    return f"{fmt(summary['recovered'], 2)} {interval(summary['recovered_ci'])}"


def _measures(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(measure label, its summary): the probe, then each re-generated scored metric."""
    return [("probe", summary), *((f"`{name}`", s) for name, s in summary.get("generated", {}).items())]


def robustness_cells(table: ResultTable, task: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(attack labels, rows of (row label, cells)) for ``task``: the control row first, then each method."""
    entries = table.robustness[task]
    attacks = sorted({e.attack for e in entries})
    if not attacks:
        return [], []
    by_row: dict[str, dict[str, Any]] = {}
    for e in entries:
        by_row.setdefault(e.label, {})[e.attack] = e
    control = []
    for attack in attacks:
        done = [e.summary for row in by_row.values() if (e := row.get(attack)) and e.summary]
        done.sort(key=lambda summary: summary.get("control_kind") != "oracle")  # the oracle control first
        s = done[0] if done else None
        control.append("–" if s is None else " · ".join(
            f"{name} {fmt_signed(m['control'])} {interval(m['control_ci'], signed=True)}" for name, m in _measures(s)))
    kinds = {e.summary.get("control_kind", "base") for e in entries if e.summary}
    kind = "oracle" if kinds == {"oracle"} else "base model" if kinds <= {"base"} else "oracle or base model"
    rows = [(f"{kind} (control: Δ under the attack)", [*control, ""])]
    for label, row in by_row.items():
        cells, best = [], None
        for attack in attacks:
            e = row.get(attack)
            if e is None or e.status == "missing":
                cells.append("–")
                continue
            if e.status == "failed":
                cells.append("failed")
                continue
            cells.append(" · ".join(f"{name} {_share_text(m)}" for name, m in _measures(e.summary)))
            for name, m in _measures(e.summary):
                if m["recovered"] is not None and (best is None or m["recovered"] > best[1]):
                    best = (f"{attack}, {name}", m["recovered"])
        cells.append("–" if best is None else f"{fmt(best[1], 2)} ({best[0]})")
        rows.append((label, cells))
    return attacks, rows


def robustness_rows(table: ResultTable, task: str) -> list[str]:
    """The robustness table of ``task`` in Markdown (empty when no attack ran)."""
    attacks, rows = robustness_cells(table, task)
    if not attacks:
        return []
    header = "| row | " + " | ".join(attacks) + " | worst |"
    return [ROBUSTNESS_LEGEND, "", header, "|" + "---|" * (len(attacks) + 2),
            *[f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]]


TUNING_LEGEND = ("Tuned rows: every method had the same number of trials, each configuration drawn by seeded random "
                 "search from its space and run on the task's validation split (items disjoint from the ones "
                 "reported here); the rule, fixed in advance, is the headline's (docs/tuning.md): trials that kept "
                 "utility and did not collapse first — by closeness to the oracle on taught tasks, by F otherwise — "
                 "then by U. Validation scores of every trial: `OUT/tuning.json`; protocol: docs/tuning.md.")


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "as given"


def tuning_rows(table: ResultTable, task: str) -> list[str]:
    """The tuning selections of ``task`` in Markdown (empty when nothing was tuned)."""
    entries = [t for t in table.tuning if t["task"] == task]
    if not entries:
        return []
    rows = [TUNING_LEGEND, "", "| row | trials | selected parameters | validation F · U of the selected trial |",
            "|---|---|---|---|"]
    for entry in sorted(entries, key=lambda e: e["method"]):
        best = next(t for t in entry["trial_results"] if t["trial"] == entry["selected"])
        scores = (f"F {best['forget']:+.2f} · U {best['utility']:+.2f}" if best["forget"] is not None
                  and best["utility"] is not None else best["status"])
        if best.get("closeness") is not None:
            scores = f"closeness {best['closeness']:.3f} · {scores}"
        rows.append(f"| {entry['method']} (tuned, {entry['trials']} trials) | {entry['trials']} | "
                    f"{_params_text(entry['selected_params'])} | {scores} |")
    return rows
