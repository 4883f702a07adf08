"""Power of a paired comparison: the minimum detectable effect at an eval size, and the items an effect needs.

A leaderboard's deltas are paired over items (every row is scored on the same items as the reference). For a
paired difference with per-item SD σ_d over n items, a two-sided test at level α has power 1 − β against a
true mean difference of

    MDE = (z_{1−α/2} + z_{1−β}) · σ_d / √n                    (80 % power, 5 % two-sided: 2.80 · σ_d / √n)

and detecting a difference δ needs n = ⌈((z_{1−α/2} + z_{1−β}) · σ_d / δ)²⌉ items. Seeds do not enter: the
evaluation items are the same for every seed, so more seeds narrow the seed-to-seed part of an interval, not
the item part that sets these numbers.

σ_d comes from the results at hand (``paired_sd``): the median, over the rows scored against the reference,
of the SD of their per-item differences from it — what the methods actually do, correlation included. With
no row yet it is √2 · σ_ref, the value for a row uncorrelated with the reference item by item (conservative:
methods that change the model a little stay correlated with it, which makes σ_d smaller).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
POWER = 0.8


def z_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    """z_{1−α/2} + z_{power} (2.80 at the defaults)."""
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def paired_sd(reference: np.ndarray, rows: Sequence[np.ndarray]) -> tuple[float, str]:
    """(σ_d, where it came from): the median SD of ``rows``' per-item differences from ``reference``, or
    √2 · SD(reference) when no row is given."""
    reference = np.asarray(reference, dtype=float)
    sds = [float(np.std(np.asarray(r, float) - reference, ddof=1)) for r in rows
           if len(r) == len(reference) and len(r) > 1]
    if sds:
        return float(np.median(sds)), f"median SD of {len(sds)} rows' paired differences"
    sd = float(np.std(reference, ddof=1)) if reference.size > 1 else 0.0
    return math.sqrt(2) * sd, "√2 × SD of the reference's per-item values (no row yet)"


def minimum_detectable(sd_diff: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true paired mean difference detected with ``power`` at ``n`` items."""
    return z_sum(alpha, power) * sd_diff / math.sqrt(max(n, 1))


def items_needed(sd_diff: float, effect: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Items needed to detect a paired mean difference ``effect`` (same units as ``sd_diff``)."""
    if effect <= 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    return max(2, math.ceil((z_sum(alpha, power) * sd_diff / effect) ** 2))


def plan_items(bases: list[dict], cells: list[dict], effect: float, tasks: Sequence[str] | None = None,
               alpha: float = ALPHA, power: float = POWER) -> list[dict]:
    """Per (task, metric) of the stored base evaluations (a taught run's base is the taught model): the eval
    size now, the reference's per-item SD σ_ref, the paired SD σ_d (from the stored cells of the same base
    evaluation, ``paired_sd``), the minimum detectable effect now in units of σ_ref, and the items needed to
    detect ``effect`` · σ_ref. ``bases`` and ``cells`` are result records (``ResultsStore.all_bases/all_cells``)."""
    out = []
    for base in bases:
        task = base["spec"]["task"]
        if tasks and task not in tasks:
            continue
        mine = [c for c in cells if c.get("base_id") == base["base_id"] and c.get("status") == "done"]
        for name, metric in base["metrics"].items():
            reference = np.asarray(metric.get("per_item") or [], dtype=float)
            if reference.size < 2:
                continue
            rows = [np.asarray(c["metrics"][name]["per_item"], float) for c in mine
                    if (c["metrics"].get(name) or {}).get("per_item")]
            sd_ref = float(np.std(reference, ddof=1))
            sd_diff, source = paired_sd(reference, rows)
            row = {"task": task, "metric": name, "group": metric["group"], "primary": metric.get("primary", True),
                   "n": int(reference.size), "sd_ref": sd_ref, "sd_diff": sd_diff, "sd_source": source,
                   "mde_sigma": minimum_detectable(sd_diff, reference.size, alpha, power) / sd_ref if sd_ref else None,
                   "items_needed": items_needed(sd_diff, effect * sd_ref, alpha, power) if sd_ref and sd_diff else None}
            out.append(row)
    return out


def render_plan(rows: list[dict], effect: float) -> str:
    """``plan --power``'s table."""
    lines = [f"Items needed to detect a paired move of {effect:g} × the reference's per-item SD (80 % power, 5 % "
             "two-sided), per metric of the stored reference evaluations. Seeds do not change these numbers (the "
             "items are the same for every seed); 3 seeds keep the seed-to-seed part of an interval honest.", "",
             f"{'task':<10} {'metric':<28} {'kind':<8} {'n now':>6} {'σ_ref':>8} {'σ_d':>8} {'MDE now (σ)':>12} "
             f"{'items needed':>13}"]
    for r in rows:
        kind = f"{r['group'][:7]}" + ("" if r["primary"] else "*")
        mde = "–" if r["mde_sigma"] is None else f"{r['mde_sigma']:.2f}"
        need = "–" if r["items_needed"] is None else str(r["items_needed"])
        lines.append(f"{r['task']:<10} {r['metric']:<28} {kind:<8} {r['n']:>6} {r['sd_ref']:>8.3f} "
                     f"{r['sd_diff']:>8.3f} {mde:>12} {need:>13}")
    lines += ["", "* a detail (not scored). σ_d: median SD of the stored rows' paired differences from the reference "
              "(√2 × σ_ref where no row is stored yet)."]
    return "\n".join(lines)
