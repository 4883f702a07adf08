"""Plots reporter: ``plots/*.png`` (also embedded by the HTML reporter).

  * ``pareto_<task>.png`` — forget score F (x) versus utility score U (y) per method with 95 % intervals
    and rank intervals, base model at (0, 0), the utility budget as a line, the Pareto front among the
    rows that kept utility highlighted; where the run has attacks, a hollow marker at F·(1 − R) shows the
    forgetting left after the worst attack (R: its recovered fraction of the forget probe);
  * ``trajectory_<task>.png`` — the task's likelihood probes over training (steps for loss methods,
    rounds for Reveal-and-Release, epochs for ICU), from each cell's stored trajectory;
  * ``forget_utility.png`` — the per-task panels side by side (one figure for the whole leaderboard);
  * ``leak_<task>.png`` — oracle boards: leak@k against k per row with 95 % intervals (``bench.report.privacy``).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from bench.api import Reporter
from bench.engine.store import atomic_write_bytes
from bench.hookspecs import hookimpl
from bench.report import ResultTable
from bench.report.scores import BASE_LABEL, pareto_front

X_KEYS = ("round", "epoch", "step")


def _pyplot():
    os.environ.setdefault("MPLCONFIGDIR", str(Path.home() / ".cache" / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def worst_recovery(table: Any, task: str) -> dict[str, tuple[float, str]]:
    """Per row of ``task``: the largest recovered fraction R over the run's attacks, and that attack's label.
    Rows the attacks found nothing forgotten in (no R) are left out."""
    worst: dict[str, tuple[float, str]] = {}
    for entry in table.robustness.get(task, []):
        recovered = (entry.summary or {}).get("recovered")
        if entry.status == "done" and recovered is not None and recovered > worst.get(entry.label, (-1e9, ""))[0]:
            worst[entry.label] = (float(recovered), entry.attack)
    return worst


def _forget_utility_axes(ax: Any, table: ResultTable, task: str) -> bool:
    """F (x) against U (y) with 95 % intervals, the base at (0, 0), rows that broke utility (per-metric bands,
    ``bench.report.ranking``) in grey; False if unranked."""
    scores = table.scoring.tasks[task]
    rows = [r for r in scores.rows if r.forget is not None]
    if scores.unranked_reason or not rows:
        ax.text(0.5, 0.5, f"{task}: not ranked\n({scores.unranked_reason or 'no scores'})", ha="center",
                va="center", transform=ax.transAxes, fontsize=8)
        ax.set_axis_off()
        return False
    front = set(pareto_front([(r.label, r.forget, r.utility) for r in rows if r.utility_kept]))
    attacked, drawn_attacked = worst_recovery(table, task), False
    for r in rows:
        if r.label == BASE_LABEL:
            ax.scatter([0], [0], marker="*", s=200, color="black", zorder=4, label="base model")
            continue
        color = "tab:red" if r.label in front else ("tab:blue" if r.utility_kept else "tab:gray")
        ax.errorbar([r.forget], [r.utility], xerr=[[r.forget - r.forget_ci[0]], [r.forget_ci[1] - r.forget]],
                    yerr=[[r.utility - r.utility_ci[0]], [r.utility_ci[1] - r.utility]], fmt="o", ms=5,
                    color=color, ecolor=color, elinewidth=0.8, capsize=2, zorder=3)
        ax.annotate(f"{r.label} ({r.rank_text})", (r.forget, r.utility), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
        if r.label in attacked:
            # forgetting after the worst attack: F discounted by the recovered fraction of the forget probe
            # (assumes the attack recovers every forget metric in the probe's proportion; docs/attacks.md)
            attacked_f = r.forget * (1 - attacked[r.label][0])
            ax.plot([r.forget, attacked_f], [r.utility, r.utility], ls=":", lw=0.8, color=color, zorder=2)
            ax.scatter([attacked_f], [r.utility], marker="o", s=28, facecolors="none", edgecolors=color, zorder=3,
                       label="after the worst attack: F·(1 − R)" if not drawn_attacked else None)
            drawn_attacked = True
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("forget score F (→ more forgetting)")
    ax.set_ylabel("utility score U (↑ kept)")
    ax.set_title(f"{task}: red = Pareto front among utility-kept rows, grey = utility broken or collapsed; "
                 "(rank set)", fontsize=8)
    return True


def pareto_plot(table: ResultTable, task: str) -> bytes | None:
    if task not in table.scoring.tasks:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 4.4))
    if not _forget_utility_axes(ax, table, task):
        plt.close(fig)
        return None
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def forget_utility_grid(table: ResultTable) -> bytes | None:
    """One forget-versus-utility panel per task, side by side (replaces a radar of combined scores)."""
    tasks = [t for t in table.tasks() if t in table.scoring.tasks]
    if not tasks:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        _forget_utility_axes(ax, table, task)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def _probe_series(rows: list[dict[str, Any]], prefix: str) -> tuple[list[float], list[float], str] | None:
    points = []
    x_name = next((k for k in X_KEYS if any(k in r for r in rows)), None)
    for i, row in enumerate(rows):
        value = next((v for k, v in row.items() if k.startswith(prefix)), None)
        if isinstance(value, (int, float)) and math.isfinite(value):
            x = row.get(x_name, i) if x_name else i
            points.append((float(x), float(value)))
    if not points:
        return None
    return [p[0] for p in points], [p[1] for p in points], x_name or "row"


def trajectory_plot(table: ResultTable, task: str) -> bytes | None:
    series = []
    for cell in table.cells_for(task):
        for result in cell.results[:1]:  # first seed: one line per method keeps the plot readable
            rows = result.trajectory
            forget, utility = _probe_series(rows, "probe/forget/"), _probe_series(rows, "probe/utility/")
            if forget or utility:
                series.append((table.label(cell), forget, utility))
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, forget, utility in series:
        for ax, s in zip(axes, (forget, utility)):
            if s:
                ax.plot(s[0], s[1], marker="o", ms=3, label=f"{label} ({s[2]})")
    axes[0].set_title(f"{task}: forget probe (↓ = forgetting)")
    axes[1].set_title(f"{task}: utility probe (↑ = kept)")
    for ax in axes:
        ax.set_xlabel("step / round / epoch")
        ax.set_ylabel("mean log-likelihood")
    axes[1].legend(fontsize=7, loc="best")
    return _png(fig)


def leak_plot(table: ResultTable, task: str) -> bytes | None:
    """leak@k (y) against k (x, log scale) per row, with 95 % intervals: what sampling reveals beyond greedy."""
    scores = table.scoring.tasks.get(task)
    result = scores.privacy if scores is not None else None
    if result is None or not any(r.leak for r in result.rows):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    for i, row in enumerate(r for r in result.rows if r.leak):
        ks = [p.k * (1 + 0.03 * (i - len(result.rows) / 2)) for p in row.leak]  # small offsets: bars stay apart
        values = [p.value.value for p in row.leak]
        errors = [[v - p.value.low for v, p in zip(values, row.leak)],
                  [p.value.high - v for v, p in zip(values, row.leak)]]
        label = "taught" if row.label == BASE_LABEL else row.label
        ax.errorbar(ks, values, yerr=errors, marker="o", ms=3, capsize=2, lw=1, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks([p.k for p in result.rows[0].leak] or [1])
    ax.set_xticklabels([str(p.k) for p in result.rows[0].leak] or ["1"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("k (sampled outputs per prompt)")
    ax.set_ylabel("leak@k")
    ax.set_title(f"{task}: leak@k on {result.prompts} forget prompts")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def figures(table: ResultTable) -> dict[str, bytes]:
    """All plots as PNG bytes, by file name."""
    out: dict[str, bytes] = {}
    for task in table.tasks():
        for name, make in (("pareto", pareto_plot), ("trajectory", trajectory_plot), ("leak", leak_plot)):
            png = make(table, task)
            if png:
                out[f"{name}_{task}.png"] = png
    grid = forget_utility_grid(table)
    if grid:
        out["forget_utility.png"] = grid
    return out


class PlotsReporter(Reporter):
    name = "plots"
    description = "plots/*.png: forget-vs-utility per task with intervals, probe trajectories"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        written = []
        for name, png in figures(table).items():
            path = out_dir / "plots" / name
            atomic_write_bytes(path, png)
            written.append(path)
        return written


@hookimpl
def register_reporters(register):
    register(PlotsReporter)
