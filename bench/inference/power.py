"""Power that matches the board's decisions: minimum detectable effects with the seed component, at the level of
the rule that decides, and the items and seeds a target pairwise difference needs.

A board makes two kinds of claims, each at its own level:

* **a row against the taught model** (a starred delta): Benjamini–Hochberg over the board's claims; the level a
  delta had to pass is the board's realised BH threshold α·k/m (k claims starred of m; α/m when none was);
* **two rows against each other** (a separated pair): Holm over the ranking's R(R − 1)/2 pairs; the level that
  surely suffices is Holm's first step, α/m.

At level a with 80 % power, a two-sided test detects a true difference of

    MDE = q_{1−a}(|ε|) − q_{0.2}(ε)           (= (z_{1−a/2} + z_{0.80}) · SE for a normal ε)

where ε is the estimate's error *as the board estimates it*: its crossed-bootstrap replicates (items and seeds,
``bench.inference.bootstrap``) centred on their median. The test rejects when the estimate leaves the central
1 − a of ε's distribution (q_{1−a}(|ε|)); a true difference δ does so 80 % of the time when δ + q_{0.2}(ε) reaches that
bound. Quantiles rather than an SD, because the seed term with 3 seeds is Student-t with 2 degrees of freedom: its
variance is infinite, and a normal MDE from the replicates' SD is meaningless (with a robust SD it would claim ~80 %
power where the board detects ~50 %, ``tests/test_inference_coverage.py``). Where a·B < 5 replicates lie beyond the
bound, q_{1−a} is extrapolated from the central interval with a normal tail (flagged). The board's value is the
median over its method rows (or method pairs). A metric's MDE is never below its minimum meaningful effect; where
that floor binds, the board says so. (Before version 4, the MDE came from seed-averaged per-item differences at 5 %
for one test: it left out the seed component and the multiplicity the board applies.)

**Planning.** For one metric, the paired difference from the reference decomposes (two-way random effects, items
crossed with seeds) into an item component σ²_i, a seed component σ²_s and their interaction σ²_e, so that over n
items and S seeds

    SE²(Δ) = σ²_i / n + σ²_s / S + σ²_e / (n S),        SE²(Δ_A − Δ_B) ≈ 2 · SE²(Δ)

(two methods' differences as independent: conservative when methods agree item by item). ``plan_items`` estimates
the components from stored evaluations and gives, per number of seeds, the items a target pairwise difference needs
at Holm's first-step level for the run's rows — or "∞" when the seed component alone is too large: more seeds,
not more items. Its quantiles are Student t with the Welch–Satterthwaite degrees of freedom of the two parts, so
that a plan with 3 seeds is not the optimistic normal one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.8
SEED_OPTIONS = (1, 2, 3, 5, 8)


def z_sum(alpha: float = ALPHA, power: float = POWER) -> float:
    """z_{1−α/2} + z_{power} (2.80 at the defaults)."""
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)


def minimum_detectable(sd: float, n: int = 1, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference detected with ``power`` at level ``alpha``, for a standard error sd / √n (pass
    a bootstrap SE with n = 1)."""
    return z_sum(alpha, power) * sd / math.sqrt(max(n, 1))


def items_needed(sd_diff: float, effect: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Items needed to detect a paired mean difference ``effect`` (same units as ``sd_diff``), one seed."""
    if effect <= 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    return max(2, math.ceil((z_sum(alpha, power) * sd_diff / effect) ** 2))


def bh_level(p_values: Sequence[float], alpha: float = ALPHA) -> float:
    """The realised Benjamini–Hochberg threshold: α·k/m for the largest k with p_(k) ≤ α·k/m (α/m if none)."""
    p = np.sort(np.asarray(p_values, dtype=float))
    m = p.size
    if m == 0:
        return alpha
    passing = np.nonzero(p <= alpha * np.arange(1, m + 1) / m)[0]
    return alpha * (passing[-1] + 1) / m if passing.size else alpha / m


def holm_first_level(n_rows: int, alpha: float = ALPHA) -> float:
    """α / m for the m = R(R − 1)/2 pairs of a ranking of R rows: the level that separates a pair for sure."""
    return alpha / max(1, n_rows * (n_rows - 1) // 2)


@dataclass
class Power:
    """A metric's minimum detectable change against the taught model, at the board's BH level."""

    mde: float
    #: The same in units of the metric's scale σ (that of Glass's Δ, so comparable with F).
    in_sigma: float
    #: The MDE from the replicates before the minimum-effect floor (median over the method rows; seeds included).
    raw: float
    level: float
    n: int
    #: The metric's minimum meaningful effect is larger than the computed MDE (the floor decides).
    floor_binds: bool
    #: The bound at ``level`` lay beyond the replicates' resolution and was extrapolated with a normal tail.
    extrapolated: bool
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def metric_power(raw: float, level: float, scale: float, min_effect: float | None, n: int, source: str,
                 extrapolated: bool = False) -> Power:
    mde = max(raw, min_effect or 0.0)
    return Power(mde, mde / scale if scale else float("nan"), raw, level, n, bool(min_effect and min_effect > raw),
                 extrapolated, source)


def replicate_mde(replicates: np.ndarray, level: float, power: float = POWER) -> tuple[float, bool] | None:
    """(MDE, extrapolated) of an estimate from its bootstrap replicates: q_{1−level}(|ε|) − q_{1−power}(ε), ε the
    replicates centred on their median; None with fewer than 20 finite replicates."""
    reps = np.asarray(replicates, dtype=float)
    eps = reps[np.isfinite(reps)]
    if eps.size < 20:
        return None
    eps = eps - np.median(eps)
    lower = float(np.quantile(eps, 1 - power))
    if level * eps.size >= 5:
        return float(np.quantile(np.abs(eps), 1 - level)) - lower, False
    normal = NormalDist()
    scale = float(np.quantile(np.abs(eps), 0.95)) / normal.inv_cdf(0.975)
    return scale * normal.inv_cdf(1 - level / 2) - lower, True


def board_mde(replicates: Sequence[np.ndarray], level: float, power: float = POWER) -> tuple[float, bool] | None:
    """The median over rows (or pairs) of ``replicate_mde``; extrapolated when any was."""
    found = [m for m in (replicate_mde(r, level, power) for r in replicates) if m is not None]
    if not found:
        return None
    return float(np.median([m for m, _ in found])), any(x for _, x in found)


# -- planning ----------------------------------------------------------------------------------------
@dataclass
class Components:
    """Variance components of a paired difference from the reference (two-way random effects)."""

    item: float
    seed: float
    interaction: float
    rows: int

    def se(self, n: int, seeds: int) -> float:
        return math.sqrt(self.item / n + self.seed / seeds + self.interaction / (n * seeds))


def components(reference: np.ndarray, rows: Sequence[np.ndarray]) -> Components:
    """Medians over ``rows`` (each ``[S, n]`` per-seed per-item values) of the ANOVA estimates of the item, seed and
    interaction components of the differences from ``reference``. A one-seed row cannot split item from
    interaction: its whole item variance counts as the item component (conservative for more seeds)."""
    reference = np.asarray(reference, dtype=float)
    items, seeds, inter = [], [], []
    for row in rows:
        d = np.atleast_2d(np.asarray(row, dtype=float)) - reference[None, :]
        s, n = d.shape
        if n < 2:
            continue
        if s == 1:
            items.append(float(np.var(d[0], ddof=1)))
            continue
        residual = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
        ms_e = float((residual ** 2).sum()) / ((s - 1) * (n - 1))
        ms_items = s * float(np.var(d.mean(axis=0), ddof=1))
        ms_seeds = n * float(np.var(d.mean(axis=1), ddof=1))
        items.append(max(0.0, (ms_items - ms_e) / s))
        seeds.append(max(0.0, (ms_seeds - ms_e) / n))
        inter.append(ms_e)
    if not items:
        sd = float(np.std(reference, ddof=1)) if reference.size > 1 else 0.0
        return Components(2 * sd ** 2, 0.0, 0.0, 0)  # no row yet: a row uncorrelated with the reference
    med = (lambda v: float(np.median(v)) if v else 0.0)  # noqa: E731 - one-line median with a default
    return Components(med(items), med(seeds), med(inter), len(items))


def _t_sum(level: float, power: float, df: float) -> float:
    """t_{df, 1−level/2} + t_{df, power} (the normal's z_sum at infinite df)."""
    if not math.isfinite(df):
        return z_sum(level, power)
    from scipy.stats import t

    return float(t.ppf(1 - level / 2, df) + t.ppf(power, df))


def pair_items_needed(comp: Components, effect: float, seeds: int, level: float, power: float = POWER) -> float:
    """Items for two rows' difference ``effect`` at ``level`` with ``seeds`` each (∞ when seeds alone exceed it).

    SE² = 2 · (σ²_i / n + σ²_s / S + σ²_e / (nS)); the quantiles are Student t with the Welch–Satterthwaite degrees
    of freedom of that sum (the seed part estimated from 2(S − 1) degrees of freedom, the item part from many), as
    the board's t-based seed term makes the real requirement larger than a normal plan with few seeds."""
    if seeds < 2 and comp.seed > 0:
        return math.inf  # one seed per row: the seed variance is not estimated at all

    def detectable(n: int) -> bool:
        v_item, v_seed = 2 * (comp.item + comp.interaction / seeds) / n, 2 * comp.seed / seeds
        df = math.inf if v_seed == 0 else (v_item + v_seed) ** 2 / (v_seed ** 2 / (2 * (seeds - 1)))
        return _t_sum(level, power, df) * math.sqrt(v_item + v_seed) <= effect

    if not detectable(10 ** 7):
        return math.inf
    low, high = 2, 10 ** 7
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if detectable(mid) else (mid + 1, high)
    return float(low)


def plan_items(bases: list[dict], cells: list[dict], effect: float, tasks: Sequence[str] | None = None,
               n_rows: int | dict[str, int] = 2, alpha: float = ALPHA, power: float = POWER) -> list[dict]:
    """Per (task, metric) of the stored base evaluations: the eval size and seeds now, the reference's per-item SD
    σ_ref, the variance components of the stored rows' differences, and for each number of seeds the items that
    a pairwise difference of ``effect`` · σ_ref needs at Holm's first-step level for ``n_rows`` rows."""
    out = []
    for base in bases:
        task = base["spec"]["task"]
        if tasks and task not in tasks:
            continue
        rows_here = n_rows.get(task, 2) if isinstance(n_rows, dict) else n_rows
        level = holm_first_level(rows_here, alpha)
        mine = [c for c in cells if c.get("base_id") == base["base_id"] and c.get("status") == "done"]
        for name, metric in base["metrics"].items():
            reference = np.asarray(metric.get("per_item") or [], dtype=float)
            if reference.size < 2:
                continue
            comp = components(reference, _per_seed_rows(mine, name, reference.size))
            sd_ref = float(np.std(reference, ddof=1))
            target = effect * sd_ref
            out.append({"task": task, "metric": name, "group": metric["group"],
                        "primary": metric.get("primary", True), "n": int(reference.size), "rows": rows_here,
                        "level": level, "sd_ref": sd_ref, "components": asdict(comp),
                        "items_needed": {s: (pair_items_needed(comp, target, s, level, power) if target else None)
                                         for s in SEED_OPTIONS}})
    return out


def _per_seed_rows(cells: list[dict], name: str, n: int) -> list[np.ndarray]:
    """Stored cells grouped into rows (same method and parameters), each ``[S, n]``."""
    groups: dict[str, list[list[float]]] = {}
    for c in cells:
        items = (c["metrics"].get(name) or {}).get("per_item")
        if items and len(items) == n:
            spec = c.get("spec", {})
            key = repr((spec.get("method"), sorted((spec.get("method_params") or {}).items())))
            groups.setdefault(key, []).append(items)
    return [np.asarray(v, dtype=float) for v in groups.values()]


def render_plan(rows: list[dict], effect: float) -> str:
    """``plan --power``'s table."""
    seeds = "".join(f"{f'S={s}':>8}" for s in SEED_OPTIONS)
    lines = [f"Items needed to separate two rows whose difference is {effect:g} × the reference's per-item SD, with "
             "80 % power at Holm's first-step level for the run's rows (bench/inference/power.py), by seeds per row. "
             "∞: the seed component alone is too large — add seeds, not items.", "",
             f"{'task':<10} {'metric':<28} {'kind':<8} {'n now':>6} {'rows':>5} {'σ_ref':>8} {'σ_item':>7} "
             f"{'σ_seed':>7}{seeds}"]
    for r in rows:
        kind = f"{r['group'][:7]}" + ("" if r["primary"] else "*")
        comp = r["components"]
        need = "".join(f"{_count(r['items_needed'][s]):>8}" for s in SEED_OPTIONS)
        lines.append(f"{r['task']:<10} {r['metric']:<28} {kind:<8} {r['n']:>6} {r['rows']:>5} {r['sd_ref']:>8.3f} "
                     f"{math.sqrt(comp['item']):>7.3f} {math.sqrt(comp['seed']):>7.3f}{need}")
    lines += ["", "* a detail (not scored). σ_item, σ_seed: the item and seed components of the stored rows' paired "
              "differences (median over rows; no row stored yet: √2 × σ_ref and no seed component)."]
    return "\n".join(lines)


def _count(value: float | None) -> str:
    if value is None:
        return "–"
    return "∞" if math.isinf(value) else str(int(value))


__all__ = ["ALPHA", "Components", "POWER", "Power", "bh_level", "board_mde", "components", "holm_first_level",
           "items_needed", "metric_power", "minimum_detectable", "pair_items_needed", "plan_items", "render_plan",
           "replicate_mde", "z_sum"]
