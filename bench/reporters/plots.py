"""Plots reporter: ``plots/*.png`` (also embedded by the HTML reporter).

  * ``pareto_<task>.png`` — forget score F (x) versus utility score U (y) per method, base model at
    (0, 0), the Pareto front (no other point better on both) highlighted;
  * ``trajectory_<task>.png`` — the task's likelihood probes over training (steps for loss methods,
    rounds for Reveal-and-Release, epochs for ICU), from each cell's stored trajectory;
  * ``radar.png`` — combined score C per task for each method.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

from ..api import Reporter
from ..hookspecs import hookimpl
from ..report import ResultTable
from ..scores import pareto_front
from ..store import atomic_write_bytes

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


def pareto_plot(table: ResultTable, task: str) -> bytes | None:
    scores = {label: s for label, s in table.scores(task).items() if s is not None}
    if not scores:
        return None
    plt = _pyplot()
    points = [("base", 0.0, 0.0)] + [(label, s.forget, s.utility) for label, s in scores.items()]
    front = set(pareto_front(points))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label, x, y in points:
        on_front = label in front
        if label == "base":
            ax.scatter([x], [y], marker="*", s=220, color="black", zorder=3, label="base model")
        else:
            ax.scatter([x], [y], s=60, color="tab:red" if on_front else "tab:blue", zorder=3,
                       edgecolors="black" if on_front else "none")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ordered = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    ax.plot([p[1] for p in ordered], [p[2] for p in ordered], color="tab:red", lw=1.2, ls="--",
            label="Pareto front")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel("forget score F (→ more forgetting)")
    ax.set_ylabel("utility score U (↑ kept)")
    ax.set_title(f"{task}: forgetting versus utility")
    ax.legend(fontsize=8, loc="best")
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
            rows = result.get("trajectory") or []
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


def radar_plot(table: ResultTable) -> bytes | None:
    tasks = table.tasks()
    rows = [r for r in table.headline() if any(s is not None for s in r["scores"].values())]
    if not rows or len(tasks) < 2:
        return None
    plt = _pyplot()
    angles = [2 * math.pi * i / len(tasks) for i in range(len(tasks))] + [0.0]
    fig = plt.figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot(projection="polar")
    for row in rows:
        values = [row["scores"][t].combined if row["scores"][t] else -2.0 for t in tasks]
        values.append(values[0])
        ax.plot(angles, values, label=row["method"])
        ax.fill(angles, values, alpha=0.07)
    ax.set_xticks(angles[:-1])
    ax.set_xticklabels(tasks)
    ax.set_ylim(-2, 2)
    ax.set_title("combined score C per task (0 = base model)")
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.35, 1.1))
    return _png(fig)


def figures(table: ResultTable) -> dict[str, bytes]:
    """All plots as PNG bytes, by file name."""
    out: dict[str, bytes] = {}
    for task in table.tasks():
        for name, make in (("pareto", pareto_plot), ("trajectory", trajectory_plot)):
            png = make(table, task)
            if png:
                out[f"{name}_{task}.png"] = png
    radar = radar_plot(table)
    if radar:
        out["radar.png"] = radar
    return out


class PlotsReporter(Reporter):
    name = "plots"
    description = "plots/*.png: forget-vs-utility Pareto per task, probe trajectories, radar"

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
