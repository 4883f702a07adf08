"""Markdown reporter: ``leaderboard.md`` with the headline ranking and, per task, its ranking and metrics."""

from __future__ import annotations

from pathlib import Path

from bench.api import Reporter
from bench.engine.store import atomic_write_text
from bench.hookspecs import hookimpl
from bench.report import ResultTable
from bench.report.damage import LEGEND as DAMAGE_LEGEND
from bench.report.damage import damage_rows
from bench.report.mechanism import LEGEND as MECHANISM_LEGEND
from bench.report.mechanism import mechanism_rows
from bench.report.mechanism import table_rows as mechanism_cells
from bench.report.privacy import LEGEND as PRIVACY_LEGEND
from bench.report.privacy import is_privacy_metric
from bench.report.privacy import table_rows as privacy_table_rows
from bench.report.reporters.common import (
    base_name,
    fmt,
    fmt_metric,
    metric_header,
    no_headline_reason,
    no_signal_lines,
    provenance_lines,
    reveal_rows,
    robustness_rows,
    score_text,
    scoring_legend,
    separated_pairs_text,
    task_cell,
    tied_text,
    tuning_rows,
    verdict_text,
)
from bench.report.scores import BASE_LABEL, separated_pairs


def headline_table(table: ResultTable) -> list[str]:
    scoring = table.scoring
    tasks = [t for t in table.tasks() if t in scoring.tasks]
    rows = ["| rank | method | mean task rank | tied with | " + " | ".join(f"{t}: rank (F, U)" for t in tasks) + " |",
            "|" + "---|" * (4 + len(tasks))]
    for row in scoring.overall:
        cells = [task_cell(scoring.tasks[t].row(row.label)) for t in tasks]
        name = f"**{base_name(table)}** (no change)" if row.label == BASE_LABEL else row.label
        rows.append(f"| {row.rank_text} | {name} | {row.mean_rank:.2f} | {tied_text(table, row.tied_with)} | "
                    + " | ".join(cells) + " |")
    unranked = [f"- `{t}` is not ranked: {ts.unranked_reason}."
                for t, ts in scoring.tasks.items() if ts.unranked_reason]
    detectable = [f"{t}: F {ts.minimum_detectable_f:.2f}"
                  + (f", FQ {ts.minimum_detectable_fq:.2f}" if ts.minimum_detectable_fq is not None else "")
                  + (f", two rows {ts.minimum_detectable_pair:.2f}" if ts.minimum_detectable_pair is not None else "")
                  + (" (underpowered: not in the overall rank)" if ts.underpowered else "")
                  for t, ts in scoring.tasks.items() if ts.minimum_detectable_f is not None]
    power = ["", "Smallest effects these sizes detect (80 % power, seeds included; against the taught model at the "
             "board's BH level, two rows at Holm's first-step level): " + "; ".join(detectable) + "."
             ] if detectable else []
    if not scoring.overall:
        return [f"**{no_headline_reason(scoring)}**"] + power + ([""] + unranked if unranked else [])
    separation = separation_line(scoring.overall, table.reference_labels())
    return rows + ["", separation] + power + ([""] + unranked if unranked else [])


def separation_line(rows: list, references: set[str] = frozenset()) -> str:
    """How many pairs of the headline's rows the pairwise tests order: all rows, and methods alone (the base
    model and the reference rows, oracle and untaught base, aside)."""
    methods = [r for r in rows if r.label != BASE_LABEL and r.label not in references]
    apart, total = separated_pairs(rows)
    apart_m, total_m = separated_pairs(methods)
    aside = "the base model and the reference rows" if references else "the base model"
    return (f"Pairwise tests (Holm, family-wise 5 %) separate {apart} of {total} pairs of rows ({apart_m} of "
            f"{total_m} pairs of methods, {aside} aside); every other pair is tied.")


def ranking_table(table: ResultTable, task: str) -> list[str]:
    scores = table.scoring.tasks[task]
    if scores.unranked_reason:
        return [f"Not ranked: {scores.unranked_reason}."]
    scores_head = "forget quality FQ vs oracle · " if scores.oracle_separated else ""
    rows = [f"| rank | method | {scores_head}forget F · utility U [95 % CI] | verdict | tied with |",
            "|---|---|---|---|---|"]
    for row in scores.rows:
        label = f"**{base_name(table)}**" if row.label == BASE_LABEL else row.label
        rows.append(f"| {row.rank_text} | {label} | {score_text(row)} | {verdict_text(row)} | "
                    f"{tied_text(table, row.tied_with)} |")
    scored = scores.scored
    rows += ["", f"Scored metrics — forget: {', '.join(f'`{n}`' for n in scored['forget']) or 'none'}; "
                 f"utility: {', '.join(f'`{n}`' for n in scored['utility']) or 'none'}."]
    pairs = separated_pairs_text(table, scores)
    return rows + (["", pairs] if pairs else [])


def metrics_table(table: ResultTable, task: str) -> list[str]:
    scores = table.scoring.tasks[task]
    names = [(g, n) for g, n in table.metric_names(task) if not is_privacy_metric(n)]
    header = ["method", "seeds", "status"] + [metric_header(scores, g, n) for g, n in names] + ["time (s)"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in scores.rows:
        if row.label == BASE_LABEL:
            base = table.base_for(task)
            seeds, time = "–", fmt(base.provenance.get("wall_time_s") if base else None, 0)
        else:
            cell = table.cell_for(task, row.label)
            times = [r.provenance.get("wall_time_s") or 0 for r in cell.results]
            seeds, time = str(len(cell.seeds)), fmt(sum(times) / max(1, len(times)), 0)
        with_delta = row.label != BASE_LABEL
        rows.append(f"| {f'**{base_name(table)}**' if not with_delta else row.label} | {seeds} | {row.status} | "
                    + " | ".join(fmt_metric(row.metrics.get(n), with_delta) for _, n in names) + f" | {time} |")
    for cell in table.cells_for(task):
        for reason in cell.reasons:
            rows.append(f"\n- {table.label(cell)} ({cell.status}) — {reason}")
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows]]


def mechanism_table(table: ResultTable, task: str) -> list[str]:
    """The task's mechanism diagnostics (taught tasks' method rows) and legend; nothing without them."""
    rows = mechanism_rows(table, task)
    if not rows:
        return []
    header, cells = mechanism_cells(rows)
    return [MECHANISM_LEGEND, "", *markdown_table(header, cells)]


def privacy_table(table: ResultTable, task: str) -> list[str]:
    """The task's privacy column group (oracle boards), its notes and legend; nothing without one."""
    result = table.scoring.tasks[task].privacy
    if result is None:
        return []
    header, rows = privacy_table_rows(result, lambda label: f"**{base_name(table)}**" if label == BASE_LABEL
                                      else label)
    sizes = (f"{result.members} members, {result.nonmembers} non-members"
             + (f", leak@k on {result.prompts} prompts" if result.prompts else ""))
    return [*markdown_table(header, rows), "", f"{PRIVACY_LEGEND} Sizes: {sizes}.",
            *["", *[f"- {note}" for note in result.notes]]]


def render(table: ResultTable, title: str) -> str:
    scoring = table.scoring
    out = [f"# {title}", "", *[f"- {line}" for line in provenance_lines(table)], "",
           "## Headline", "", *headline_table(table), "", *scoring_legend(scoring), ""]
    for task in table.tasks():
        scores = scoring.tasks[task]
        out += [f"## Task `{task}`", "", *ranking_table(table, task), "",
                *[f"- {line}" for line in no_signal_lines(scores)], "", *metrics_table(table, task), ""]
        reveal = reveal_rows(table, task)
        out += [*reveal, ""] if reveal else []
        robust = robustness_rows(table, task)
        out += ["### Robustness of forgetting", "", *robust, ""] if robust else []
        private = privacy_table(table, task)
        out += ["### Privacy (not ranked)", "", *private, ""] if private else []
        mechanism = mechanism_table(table, task)
        out += ["### Mechanism: where the weight change lies (not ranked)", "", *mechanism, ""] if mechanism else []
        damage = damage_rows(table, task)
        if damage is not None:
            out += ["### Methods on the oracle: the damage signature (not ranked)", "", *markdown_table(*damage), "",
                    DAMAGE_LEGEND, ""]
        tuned = tuning_rows(table, task)
        out += ["### Tuning", "", *tuned, ""] if tuned else []
    return "\n".join(out)


class MarkdownReporter(Reporter):
    name = "markdown"
    description = "leaderboard.md: headline ranking with intervals + per-task rankings and metric tables"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        path = out_dir / "leaderboard.md"
        atomic_write_text(path, render(table, f"Leaderboard: {out_dir.name}") + "\n")
        return [path]


@hookimpl
def register_reporters(register):
    register(MarkdownReporter)
