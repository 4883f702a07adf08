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

from ..api import Reporter
from ..hookspecs import hookimpl
from ..report import ResultTable, read_samples
from ..stats import significant
from ..store import atomic_write_text
from .common import ARROW, fmt, provenance_lines
from .markdown import SCORE_NOTE
from .plots import figures

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


def _metric_cell(m: dict[str, Any] | None, with_delta: bool = True) -> str:
    if m is None:
        return "<td>–</td>"
    text = f"{fmt(m['value'])} <span class=ci>[{fmt(m['ci_low'], 2)}, {fmt(m['ci_high'], 2)}]</span>"
    if with_delta and m.get("delta") is not None:
        sig = significant(m.get("delta_ci_low"), m.get("delta_ci_high"))
        text += (f"<br><span class={'sig' if sig else 'ns'}>Δ {m['delta']:+.3f}"
                 f"{'' if sig else ' (n.s.)'}</span>")
    return f"<td{_num(m['value'])}>{text}</td>"


def _score_cells(sc: Any) -> str:
    if sc is None:
        return "<td>–</td><td>–</td><td>–</td>"
    return "".join(f"<td{_num(v)}>{v:+.3f}</td>" for v in (sc.forget, sc.utility, sc.combined))


def _headline(table: ResultTable) -> str:
    tasks = table.tasks()
    head = "".join(f"<th>{esc(t)} C</th>" for t in tasks)
    rows = []
    for rank, row in enumerate(table.headline(), 1):
        cells = "".join(
            f"<td{_num(row['scores'][t].combined)}>{row['scores'][t].combined:+.3f}</td>" if row["scores"][t]
            else f"<td class=bad>{'failed' if row['ran'][t] else '–'}</td>" for t in tasks)
        rows.append(f"<tr><td data-v={rank}>{rank}</td><td>{esc(row['method'])}</td>"
                    f"<td{_num(row['win_rate'])}>{fmt(row['win_rate'], 2)}</td>{cells}</tr>")
    return (f"<table class=sortable id=headline><thead><tr><th>rank</th><th>method</th><th>mean win rate</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _task_table(table: ResultTable, task: str) -> str:
    names = table.metric_names(task)
    base = table.base_for(task)
    better = {n: (base["metrics"][n]["better"] if base and n in base["metrics"] else "") for _, n in names}
    head = "".join(f"<th>{esc(n)} {ARROW.get(better[n], '')}<br><small>{esc(g)}</small></th>" for g, n in names)
    rows = []
    if base:
        rows.append("<tr><td><b>base</b></td><td>–</td><td>done</td>" + "<td data-v=0>0</td>" * 3
                    + "".join(_metric_cell(base["metrics"].get(n), False) for _, n in names) + "</tr>")
    scores = table.scores(task)
    for cell in table.cells_for(task):
        status_class = "" if cell.status == "done" else " class=bad"
        rows.append(f"<tr><td>{esc(table.label(cell))}</td><td>{len(cell.seeds)}</td>"
                    f"<td{status_class}>{esc(cell.status)}</td>{_score_cells(scores.get(table.label(cell)))}"
                    + "".join(_metric_cell(cell.metric(n)) for _, n in names) + "</tr>")
    notes = "".join(f"<li>{esc(table.label(c))} ({esc(c.status)}): {esc(r)}</li>"
                    for c in table.cells_for(task) for r in c.reasons)
    return (f"<div class=wrap><table class=sortable id='table-{esc(task)}'><thead><tr><th>method</th><th>seeds</th><th>status</th>"
            f"<th>F</th><th>U</th><th>C</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            + (f"<ul>{notes}</ul>" if notes else ""))


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
        blocks.append(("base", read_samples(table.sources, base["base_id"], SAMPLES_PER_CELL, kind="base")))
    for cell in table.cells_for(task):
        result = cell.results[0]
        blocks.append((table.label(cell), read_samples(table.sources, result["cell_id"], SAMPLES_PER_CELL)))
    return "".join(f"<details><summary>{esc(label)}: {len(samples)} sample generations</summary>"
                   + "".join(_sample_block(s) for s in samples) + "</details>" for label, samples in blocks)


def _img(pngs: dict[str, bytes], name: str, alt: str) -> str:
    if name not in pngs:
        return ""
    data = base64.b64encode(pngs[name]).decode("ascii")
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


def render(table: ResultTable, title: str) -> str:
    pngs = figures(table)
    sections = []
    for task in table.tasks():
        sections.append(
            f"<section id='task-{esc(task)}'><h2>Task <code>{esc(task)}</code></h2>{_task_table(table, task)}"
            f"{_img(pngs, f'pareto_{task}.png', f'{task} Pareto')}"
            f"{_img(pngs, f'trajectory_{task}.png', f'{task} trajectories')}"
            f"<h3>Sample generations</h3>{_samples(table, task)}</section>")
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    prov = "".join(f"<li>{esc(line)}</li>" for line in provenance_lines(table))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1><ul class=prov>{prov}</ul>"
            f"<h2>Headline</h2>{_headline(table)}<p class=prov>{esc(SCORE_NOTE)}</p>"
            f"<p class=prov>Cells: value [95 % CI]; Δ versus the base model, paired over items; (n.s.): the "
            f"Δ's 95 % CI includes zero. Click a column header to sort.</p>"
            f"{_img(pngs, 'radar.png', 'radar')}{''.join(sections)}"
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
