"""Formatting helpers shared by reporters (numbers, CIs, provenance lines)."""

from __future__ import annotations

import math
from typing import Any

from ..report import ResultTable
from ..stats import significant

ARROW = {"lower": "↓", "higher": "↑"}


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_metric(m: dict[str, Any] | None, with_delta: bool = True) -> str:
    """``0.250 [0.10, 0.40]`` and, for cells, ``Δ −0.10*`` (``*``: the delta's 95 % CI excludes 0)."""
    if m is None:
        return "–"
    text = f"{fmt(m['value'])} [{fmt(m['ci_low'], 2)}, {fmt(m['ci_high'], 2)}]"
    if with_delta and m.get("delta") is not None:
        mark = "*" if significant(m.get("delta_ci_low"), m.get("delta_ci_high")) else ""
        text += f" Δ {m['delta']:+.3f}{mark}"
    return text


def provenance_lines(table: ResultTable) -> list[str]:
    """Model, presets, versions and data sources behind a table (from the stored provenance)."""
    provs = [r["provenance"] for c in table.cells for r in c.results if "model" in r.get("provenance", {})]
    provs += [b["provenance"] for b in table.bases.values()]
    if not provs:
        return ["(no provenance recorded)"]
    models = sorted({f"{p['model']['model_id']} (weights {p['model']['weights_hash']}, {p['model']['source']}, "
                     f"{p['model']['dtype']})" for p in provs})
    versions = provs[0]["versions"]
    commits = sorted({f"{(p['git'].get('commit') or 'unknown')[:10]}{' (dirty)' if p['git'].get('dirty') else ''}"
                      for p in provs})
    presets = sorted({p.get("preset", "?") for p in provs})
    devices = sorted({p.get("device", "?") for p in provs})
    lines = [f"Model: {', '.join(models)}",
             f"Preset: {', '.join(presets)}; device: {', '.join(devices)}",
             f"unlearn-bench {versions.get('unlearn-bench')} (git {', '.join(commits)}); torch "
             f"{versions.get('torch')}, transformers {versions.get('transformers')}, peft {versions.get('peft')}"]
    sources: dict[str, set[str]] = {}
    for p in provs:
        for name, desc in p.get("data_sources", {}).items():
            sources.setdefault(name, set()).add(desc)
    lines += [f"Data/scorer `{name}`: {'; '.join(sorted(d))}" for name, d in sorted(sources.items())]
    return lines
