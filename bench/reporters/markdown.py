"""Markdown reporter: ``leaderboard.md`` with a headline table and one table per task."""

from __future__ import annotations

from pathlib import Path

from ..api import Reporter
from ..hookspecs import hookimpl
from ..report import ResultTable
from ..store import atomic_write_text
from .common import ARROW, fmt, fmt_metric, provenance_lines


def _task_table(table: ResultTable, task: str) -> list[str]:
    names = table.metric_names(task)
    header = ["method", "seeds", "status", "forget F", "utility U", "combined C"] + [
        f"{n} {ARROW.get(_better(table, task, n), '')} ({g})" for g, n in names] + ["time (s)"]
    scores = table.scores(task)
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = table.base_for(task)
    if base:
        rows.append("| **base** | – | done | 0 | 0 | 0 | " + " | ".join(fmt_metric(base["metrics"].get(n), False)
                                                       for _, n in names) +
                    f" | {fmt(base['provenance'].get('wall_time_s'), 0)} |")
    for cell in table.cells_for(task):
        times = [r["provenance"].get("wall_time_s") for r in cell.results]
        mean_time = sum(t for t in times if t) / max(1, len(times))
        sc = scores.get(table.label(cell))
        rows.append(f"| {table.label(cell)} | {len(cell.seeds)} | {cell.status} | "
                    + (f"{sc.forget:+.3f} | {sc.utility:+.3f} | **{sc.combined:+.3f}** | " if sc else "– | – | – | ")
                    + " | ".join(fmt_metric(cell.metric(n)) for _, n in names) + f" | {fmt(mean_time, 0)} |")
    for cell in table.cells_for(task):
        for reason in cell.reasons:
            rows.append(f"\n- {table.label(cell)} ({cell.status}) — {reason}")
    return rows


def _better(table: ResultTable, task: str, name: str) -> str:
    base = table.base_for(task)
    if base and name in base["metrics"]:
        return base["metrics"][name]["better"]
    return ""


def headline_table(table: ResultTable) -> list[str]:
    tasks = table.tasks()
    rows = ["| rank | method | mean win rate | " + " | ".join(f"{t} C (F / U)" for t in tasks) + " |",
            "|" + "---|" * (3 + len(tasks))]
    for rank, row in enumerate(table.headline(), 1):
        cells = []
        for t in tasks:
            sc = row["scores"][t]
            cells.append(f"{sc.combined:+.3f} ({sc.forget:+.2f} / {sc.utility:+.2f})" if sc
                         else ("failed" if row["ran"][t] else "–"))
        rows.append(f"| {rank} | {row['method']} | {fmt(row['win_rate'], 2)} | " + " | ".join(cells) + " |")
    return rows


SCORE_NOTE = ("Scores are normalised against the base model per task: for each primary metric the relative "
              "change r = ±(v − b)/max(|b|, 0.01) in the method's wanted direction, clipped to [−1, 1], and 0 "
              "when the paired 95 % CI of the change includes zero; "
              "forget score F = mean r over forget metrics (>0: forgot), utility score U = mean r over "
              "utility metrics (0: kept, <0: lost), combined C = F + U. Mean win rate: share of other "
              "methods whose C a method beats, averaged over tasks (failed/diverged cells lose).")


def render(table: ResultTable, title: str) -> str:
    out = [f"# {title}", "", *[f"- {line}" for line in provenance_lines(table)], "",
           "Values are means over evaluation items with a 95 % bootstrap CI in brackets (several seeds: "
           "mean over seeds with a 95 % t-interval). Δ is the change versus the base model, paired over "
           "items; `*` marks a Δ whose 95 % CI excludes zero, a Δ without `*` is not significant. "
           "↓/↑: the direction the method wants.", "", "## Headline", "", *headline_table(table), "",
           SCORE_NOTE, ""]
    for task in table.tasks():
        out += [f"## Task `{task}`", "", *_task_table(table, task), ""]
    return "\n".join(out)


class MarkdownReporter(Reporter):
    name = "markdown"
    description = "leaderboard.md: headline + per-task tables"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        path = out_dir / "leaderboard.md"
        atomic_write_text(path, render(table, f"Leaderboard: {out_dir.name}") + "\n")
        return [path]


@hookimpl
def register_reporters(register):
    register(MarkdownReporter)
