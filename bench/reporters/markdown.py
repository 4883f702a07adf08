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
    header = ["method", "seeds", "status"] + [f"{n} {ARROW.get(_better(table, task, n), '')} ({g})"
                                              for g, n in names] + ["time (s)"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = table.base_for(task)
    if base:
        rows.append("| **base** | – | done | " + " | ".join(fmt_metric(base["metrics"].get(n), False)
                                                       for _, n in names) +
                    f" | {fmt(base['provenance'].get('wall_time_s'), 0)} |")
    for cell in table.cells_for(task):
        times = [r["provenance"].get("wall_time_s") for r in cell.results]
        mean_time = sum(t for t in times if t) / max(1, len(times))
        rows.append(f"| {cell.label} | {len(cell.seeds)} | {cell.status} | "
                    + " | ".join(fmt_metric(cell.metric(n)) for _, n in names) + f" | {fmt(mean_time, 0)} |")
    for cell in table.cells_for(task):
        for reason in cell.reasons:
            rows.append(f"\n- {cell.label} ({cell.status}) — {reason}")
    return rows


def _better(table: ResultTable, task: str, name: str) -> str:
    base = table.base_for(task)
    if base and name in base["metrics"]:
        return base["metrics"][name]["better"]
    return ""


def render(table: ResultTable, title: str) -> str:
    out = [f"# {title}", "", *[f"- {line}" for line in provenance_lines(table)], "",
           "Values are means over evaluation items with a 95 % bootstrap CI in brackets (several seeds: "
           "mean over seeds with a 95 % t-interval). Δ is the change versus the base model, paired over "
           "items; `*` marks a Δ whose 95 % CI excludes zero. ↓/↑: the direction the method wants.", ""]
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
