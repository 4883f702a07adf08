"""HTML reporter: ``index.html``, one self-contained file (inline CSS/JS, plots as data URIs).

Model outputs are untrusted input: every string from results or samples goes through ``html.escape``,
and a Content-Security-Policy allows only this page's own script (by hash) and data-URI images, so even
a missed escape could not run injected script or load anything from the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from pathlib import Path
from typing import Any

from bench.api import Reporter
from bench.engine.store import atomic_write_text
from bench.hookspecs import hookimpl
from bench.report import ResultTable, read_samples
from bench.report.damage import LEGEND as DAMAGE_LEGEND
from bench.report.damage import damage_rows
from bench.report.mechanism import LEGEND as MECHANISM_LEGEND
from bench.report.mechanism import mechanism_rows
from bench.report.mechanism import table_rows as mechanism_cells
from bench.report.privacy import LEGEND as PRIVACY_LEGEND
from bench.report.privacy import is_privacy_metric
from bench.report.privacy import table_rows as privacy_table_rows
from bench.report.reporters.common import (
    ROBUSTNESS_LEGEND,
    base_name,
    fmt,
    fmt_signed,
    fq_text,
    interval,
    mark,
    metric_header,
    no_headline_reason,
    no_signal_lines,
    provenance_lines,
    reveal_rows,
    robustness_cells,
    scoring_legend,
    task_cell,
    tied_text,
    verdict_text,
)
from bench.report.reporters.plots import figures
from bench.report.scores import BASE_LABEL

SAMPLES_PER_CELL = 3
SAMPLE_CHARS = 600

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1b1b1b;max-width:1400px}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th{background:#1f4e79;color:#fff;padding:6px 8px;cursor:pointer;position:sticky;top:0}
td{border:1px solid #ddd;padding:4px 8px;vertical-align:top}
tr:nth-child(even) td{background:#f4f7fb}
.ns{color:#888}.sig{font-weight:600}.bad{color:#b00020;font-weight:600}
.ci{color:#666;font-size:11px}.prov{font-size:12px;color:#444}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:6px;margin:2px 0;max-width:1100px}
.wrap{overflow-x:auto;max-width:100%}
img{max-width:100%;border:1px solid #eee;margin:6px 6px 6px 0}
"""

# Click a header to sort by that column (numbers by data-v, else text); click again to reverse.
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1;
    th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x !== undefined && y !== undefined) { return dir * (parseFloat(x) - parseFloat(y)); }
      return dir * a.cells[col].textContent.localeCompare(b.cells[col].textContent);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.body.setAttribute('data-ready', '1');
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f' data-v="{x:.6g}"'


def _metric_cell(stats: Any, with_delta: bool = True) -> str:
    if stats is None:
        return "<td>–</td>"
    text = f"{fmt(stats.value)} <span class=ci>{interval((stats.ci_low, stats.ci_high))}</span>"
    if with_delta and stats.delta is not None:
        sig = stats.significant
        text += (f"<br><span class={'sig' if sig else 'ns'}>Δ {stats.delta:+.3f}{mark(stats)}"
                 f"{'' if sig else ' (n.s.)'}</span>")
    return f"<td{_num(stats.value)}>{text}</td>"


def _task_cell(row: Any) -> str:
    if row is None:
        return "<td>–</td>"
    bad = row.rank is None or row.verdict != "utility kept"
    return f"<td{_num(row.rank)}{' class=bad' if bad else ''}>{esc(task_cell(row))}</td>"


def _headline(table: ResultTable) -> str:
    scoring = table.scoring
    tasks = [t for t in table.tasks() if t in scoring.tasks]
    head = "".join(f"<th>{esc(t)}: rank (F, U)</th>" for t in tasks)
    rows = []
    for row in scoring.overall:
        cells = "".join(_task_cell(scoring.tasks[t].row(row.label)) for t in tasks)
        rows.append(f"<tr><td data-v={row.rank}>{esc(row.rank_text)}</td><td>{esc(row.label)}</td>"
                    f"<td{_num(row.mean_rank)}>{row.mean_rank:.2f}</td><td>{esc(tied_text(table, row.tied_with))}</td>"
                    f"{cells}</tr>")
    notes = "".join(f"<li>{esc(t)} is not ranked: {esc(ts.unranked_reason)}</li>"
                    for t, ts in scoring.tasks.items() if ts.unranked_reason)
    if not scoring.overall:
        reason = f"<p class=bad id=headline>{esc(no_headline_reason(scoring))}</p>"
        return reason + (f"<ul>{notes}</ul>" if notes else "")
    return (f"<table class=sortable id=headline><thead><tr><th>rank</th><th>method</th><th>mean task rank</th>"
            f"<th>tied with</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + (f"<ul>{notes}</ul>" if notes else ""))


def _ranking(table: ResultTable, task: str) -> str:
    scores = table.scoring.tasks[task]
    if scores.unranked_reason:
        return f"<p class=bad>Not ranked: {esc(scores.unranked_reason)}</p>"
    with_fq = scores.oracle is not None and bool(scores.oracle_separated)
    rows = "".join(
        f"<tr><td data-v={r.rank}>{esc(r.rank_text)}</td><td>{esc(r.label)}</td>"
        + (f"<td{_num(r.forget_quality)}>{esc(fq_text(r) or '–')}</td>" if with_fq else "")
        + f"<td{_num(r.forget)}>{esc(fmt_signed(r.forget))} "
        f"<span class=ci>{esc(interval(r.forget_ci, signed=True))}</span></td>"
        f"<td{_num(r.utility)}>{esc(fmt_signed(r.utility))} "
        f"<span class=ci>{esc(interval(r.utility_ci, signed=True))}</span></td>"
        f"<td{'' if r.verdict == 'utility kept' else ' class=bad'}>{esc(verdict_text(r))}</td>"
        f"<td>{esc(tied_text(table, r.tied_with))}</td></tr>" for r in scores.rows)
    scored = scores.scored
    fq_head = "<th>forget quality vs oracle</th>" if with_fq else ""
    return (f"<table class=sortable id='ranking-{esc(task)}'><thead><tr><th>rank</th><th>method</th>{fq_head}"
            "<th>forget F</th>"
            f"<th>utility U</th><th>verdict</th><th>tied with</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p class=prov>Scored metrics — forget: {esc(', '.join(scored['forget']) or 'none')}; utility: "
            f"{esc(', '.join(scored['utility']) or 'none')}.</p>" + _pairwise_matrix(table, task))


def _pairwise_matrix(table: ResultTable, task: str) -> str:
    """Every pair of the task's rows: ▲ the row is surely ahead of the column's, ▼ surely behind, ○ not separated
    (Holm over every pair, family-wise 5 %); the cell's title gives the share of replicates ahead and p (Holm)."""
    separation = table.scoring.tasks[task].separation
    if separation is None:
        return ""
    labels = [r.label for r in table.scoring.tasks[task].rows]
    names = [base_name(table) if x == BASE_LABEL else x for x in labels]

    def cell(x: str, y: str) -> str:
        if x == y:
            return "<td>·</td>"
        pair = separation.pair(x, y)
        sign = ("▲" if pair.a == x else "▼") if pair.separated else "○"
        share = pair.a_ahead if pair.a == x else pair.b_ahead
        title = f"{x} ahead in {share:.1%} of replicates; p (Holm) {pair.p_holm:.3g}"
        return f"<td title='{esc(title)}'{'' if pair.separated else ' class=ci'}>{sign}</td>"

    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = "".join(f"<tr><th>{esc(n)}</th>" + "".join(cell(x, y) for y in labels) + "</tr>"
                   for n, x in zip(names, labels))
    return (f"<details open><summary>Pairwise separation ({separation.separated_count()} of {len(separation.pairs)} "
            "pairs; Holm, family-wise error 5 %): ▲ row surely ahead of column, ▼ surely behind, ○ not "
            f"separated</summary><div class=wrap><table id='pairwise-{esc(task)}'><thead><tr><th></th>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table></div></details>")


def _task_table(table: ResultTable, task: str) -> str:
    scores = table.scoring.tasks[task]
    names = [(g, n) for g, n in table.metric_names(task) if not is_privacy_metric(n)]
    head = "".join(f"<th>{esc(metric_header(scores, g, n))}</th>" for g, n in names)
    rows = []
    for row in scores.rows:
        is_base = row.label == BASE_LABEL
        seeds = "–" if is_base else str(len(table.cell_for(task, row.label).seeds))
        status_class = "" if row.status == "done" else " class=bad"
        rows.append(f"<tr><td>{f'<b>{base_name(table)}</b>' if is_base else esc(row.label)}</td><td>{seeds}</td>"
                    f"<td{status_class}>{esc(row.status)}</td>"
                    + "".join(_metric_cell(row.metrics.get(n), not is_base) for _, n in names) + "</tr>")
    notes = "".join(f"<li>{esc(table.label(c))} ({esc(c.status)}): {esc(r)}</li>"
                    for c in table.cells_for(task) for r in c.reasons)
    notes += "".join(f"<li>{esc(line)}</li>" for line in no_signal_lines(scores))
    reveal = reveal_rows(table, task)
    reveal_html = ""
    if reveal:
        cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in reveal[2:] if not line.startswith("|-")]
        reveal_html = (f"<p>{esc(reveal[0])}</p><div class=wrap><table><thead><tr>"
                       + "".join(f"<th>{esc(h)}</th>" for h in cells[0]) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
                       + "</tbody></table></div>")
    return (f"<div class=wrap><table class=sortable id='table-{esc(task)}'><thead><tr><th>method</th><th>seeds</th>"
            f"<th>status</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + (f"<ul>{notes}</ul>" if notes else "") + reveal_html)


def _sample_block(sample: dict[str, Any]) -> str:
    scalars = ", ".join(f"{esc(k)}={esc(round(v, 3) if isinstance(v, float) else v)}"
                        for k, v in sample.items()
                        if k not in ("prompt", "output", "outputs") and isinstance(v, (int, float, str, bool)))
    prompt = sample.get("prompt")
    return ((f"<div class=prov>{scalars}</div>")
            + (f"<pre>prompt: {esc(str(prompt)[:SAMPLE_CHARS])}</pre>" if prompt else "")
            + f"<pre>output: {esc(str(sample.get('output', ''))[:SAMPLE_CHARS])}</pre>")


def _samples(table: ResultTable, task: str) -> str:
    blocks = []
    base = table.base_for(task)
    if base:
        blocks.append(("base", read_samples(table.sources, base.base_id, SAMPLES_PER_CELL, kind="base")))
    for cell in table.cells_for(task):
        result = cell.results[0]
        blocks.append((table.label(cell), read_samples(table.sources, result.cell_id, SAMPLES_PER_CELL)))
    return "".join(f"<details><summary>{esc(label)}: {len(samples)} sample generations</summary>"
                   + "".join(_sample_block(s) for s in samples) + "</details>" for label, samples in blocks)


def _img(pngs: dict[str, bytes], name: str, alt: str) -> str:
    if name not in pngs:
        return ""
    data = base64.b64encode(pngs[name]).decode("ascii")
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


def _robustness(table: ResultTable, task: str) -> str:
    attacks, rows = robustness_cells(table, task)
    if not attacks:
        return ""
    head = "".join(f"<th>{esc(a)}</th>" for a in [*attacks, "worst"])
    body = "".join(f"<tr><td>{esc(label)}</td>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
                   for label, cells in rows)
    return (f"<h3>Robustness of forgetting</h3><p class=prov>{esc(ROBUSTNESS_LEGEND)}</p>"
            f"<table><thead><tr><th>row</th>{head}</tr></thead><tbody>{body}</tbody></table>")


def _sortable(header: list[str], rows: list[list[str]]) -> str:
    """A scrolling, sortable table of plain-text cells (escaped)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class=wrap><table class=sortable><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _privacy(table: ResultTable, task: str, pngs: dict[str, bytes]) -> str:
    """The privacy column group (oracle boards): PrivLeak per attack, leak@k at the table's k, the notes, and the
    leak@k curve of every row."""
    result = table.scoring.tasks[task].privacy
    if result is None:
        return ""
    header, rows = privacy_table_rows(result, lambda label: base_name(table) if label == BASE_LABEL else label)
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
    return (f"<h3>Privacy (not ranked)</h3><p class=prov>{esc(PRIVACY_LEGEND)} Sizes: {result.members} members, "
            f"{result.nonmembers} non-members" + (f", leak@k on {result.prompts} prompts" if result.prompts else "")
            + ".</p>" + _sortable(header, rows) + (f"<ul>{notes}</ul>" if notes else "")
            + _img(pngs, f"leak_{task}.png", f"{task} leak@k curves"))


def _mechanism(table: ResultTable, task: str) -> str:
    """Where each method row's weight change lies against the teaching adapter (taught tasks; not ranked)."""
    rows = mechanism_rows(table, task)
    if not rows:
        return ""
    header, cells = mechanism_cells(rows)
    return (f"<h3>Mechanism: where the weight change lies (not ranked)</h3><p class=prov>{esc(MECHANISM_LEGEND)}</p>"
            + _sortable(header, cells))


def _damage(table: ResultTable, task: str) -> str:
    """The ``on_oracle`` rows: each method's damage signature against the oracle (not ranked)."""
    found = damage_rows(table, task)
    if found is None:
        return ""
    return (f"<h3>Methods on the oracle: the damage signature (not ranked)</h3><p class=prov>{esc(DAMAGE_LEGEND)}</p>"
            + _sortable(*found))


def render(table: ResultTable, title: str) -> str:
    pngs = figures(table)
    sections = []
    for task in table.tasks():
        sections.append(
            f"<section id='task-{esc(task)}'><h2>Task <code>{esc(task)}</code></h2>{_ranking(table, task)}"
            f"{_task_table(table, task)}{_robustness(table, task)}{_privacy(table, task, pngs)}"
            f"{_mechanism(table, task)}{_damage(table, task)}"
            f"{_img(pngs, f'pareto_{task}.png', f'{task} Pareto')}"
            f"{_img(pngs, f'trajectory_{task}.png', f'{task} trajectories')}"
            f"<h3>Sample generations</h3>{_samples(table, task)}</section>")
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    prov = "".join(f"<li>{esc(line)}</li>" for line in provenance_lines(table))
    legend = "".join(f"<p class=prov>{esc(line)}</p>" for line in scoring_legend(table.scoring))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1><ul class=prov>{prov}</ul>"
            f"<h2>Headline</h2>{_headline(table)}{legend}"
            f"<p class=prov>(n.s.): not significant after the correction. Click a column header to sort.</p>"
            f"{_img(pngs, 'forget_utility.png', 'forget versus utility per task')}{''.join(sections)}"
            f"<script>{SCRIPT}</script></body></html>\n")


class HtmlReporter(Reporter):
    name = "html"
    description = "index.html: self-contained page with sortable tables, plots and sample generations"

    def write(self, table: ResultTable, out_dir: Path) -> list[Path]:
        path = out_dir / "index.html"
        atomic_write_text(path, render(table, f"Leaderboard: {out_dir.name}"))
        return [path]


@hookimpl
def register_reporters(register):
    register(HtmlReporter)
