"""The crossed bootstrap: items and seeds resampled independently, as the evaluation is designed.

Every seed of every row of a task is evaluated on the *same* items: items are crossed with seeds and with rows,
not nested in them. A replicate therefore draws **one** item index vector per eval size, shared by every seed of
every row (the base model, the oracle and the reference rows included), so that

* a row's item-sampling variance is counted once, whatever its number of seeds (a nested draw — fresh items per
  seed — divides it by S and makes a 3-seed interval up to √3 too narrow), and
* every difference between rows (a delta, a forget quality, a pairwise difference) is paired item by item.

**The seed component.** With S = 3 training seeds, resampling seeds has only 10 distinct multisets and its
variance is biased by (S − 1)/S. Instead each row gets a random-effects seed term per replicate:

    seed_b = t_b · Σ_s g_{b,s} · d_s · c / √(S(S − 1))        g_{b,s} ~ N(0, 1),   t_b = √((S − 1) / χ²_{S−1})

with d_s = M_s − M̄ the seed's deviation from the row's mean (each seed's value over all items). Since Σ d_s = 0,
Var(Σ g_s d_s) = Σ d_s², so the term has variance c² · ŝ² / S with ŝ² the unbiased (ddof 1) variance of the seed
values: no (S − 1)/S bias, a continuous distribution, and — because the same g and t serve every metric of the
row — the seeds' correlation across metrics is kept (a seed that forgot more on one metric did on the others).
t_b turns the normal multiplier into Student's t with S − 1 degrees of freedom: with 3 seeds the seed variance
is estimated from 2 degrees of freedom, and a normal multiplier would cover a seed-dominated truth ~81 % of the
time instead of 95 % (tests/test_inference_coverage.py).

c removes the part of ŝ² that the item draw already counts. A seed value M_s carries the items' noise on that
seed (the seed × item interaction σ²_e / n) besides the seed effect σ²_b; the item draw of the seed-averaged
values counts σ²_e / (nS) already. With the two-way ANOVA of the per-item values (interaction mean square MS_e):

    σ̂²_b = max(0, ŝ² − MS_e / n),      c = √(σ̂²_b / ŝ²)

Ratio metrics (weighted means, e.g. corpus micro-F1) enter the ANOVA through their linearised per-item values
M_s + w_i (y_i − M_s) / w̄ (whose item mean is M_s exactly). One seed (S = 1): no seed term; the row's interval
is conditional on that training run, which the board says (a reference model is one fixed model: exact).

Tested on synthetic items × seeds designs with known variance components: coverage of 95 % intervals for values,
deltas and forget quality (tests/test_inference_coverage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def weighted_means(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Means over the last axis, weighted when ``weights`` (same shape) is given (NaN where Σw = 0)."""
    if weights is None:
        return values.mean(axis=-1)
    total = weights.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (values * weights).sum(axis=-1) / np.where(total > 0, total, 1), np.nan)


@dataclass
class CrossedDraws:
    """One task's replicates: ``items[n]`` is the ``[B, n]`` item index matrix shared by every row and seed on
    metrics evaluated on n items; ``rng`` draws each row's seed terms."""

    resamples: int
    items: dict[int, np.ndarray]
    rng: np.random.Generator

    @classmethod
    def draw(cls, sizes: set[int] | list[int], resamples: int, rng: np.random.Generator) -> CrossedDraws:
        return cls(resamples, {n: rng.integers(0, n, size=(resamples, n)) for n in sorted(sizes)}, rng)

    def seed_multipliers(self, n_seeds: int) -> np.ndarray | None:
        """A row's ``[B, S]`` seed multipliers t_b · g_{b,s} / √(S(S − 1)) (None for one seed), drawn once per row
        and shared by all its metrics."""
        if n_seeds < 2:
            return None
        normal = self.rng.standard_normal((self.resamples, n_seeds))
        t_scale = np.sqrt((n_seeds - 1) / self.rng.chisquare(n_seeds - 1, size=(self.resamples, 1)))
        return normal * t_scale / np.sqrt(n_seeds * (n_seeds - 1))


def seed_values(per_seed: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each seed's value over all items (``[S]``)."""
    return weighted_means(per_seed, weights)


def _pseudo_values(per_seed: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-item values whose item mean is the seed's value: the values themselves, or a ratio metric's
    linearisation M_s + w_i (y_i − M_s) / w̄_s."""
    if weights is None:
        return per_seed
    means = seed_values(per_seed, weights)[:, None]
    mean_w = weights.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean_w > 0, means + weights * (per_seed - means) / np.where(mean_w > 0, mean_w, 1), means)


def seed_shrinkage(per_seed: np.ndarray, weights: np.ndarray | None = None) -> float:
    """c = √(σ̂²_b / ŝ²): the share of the seed values' spread that is the seed effect, not item noise."""
    n_seeds, n_items = per_seed.shape
    values = seed_values(per_seed, weights)
    spread = float(np.var(values, ddof=1)) if n_seeds > 1 else 0.0
    if not spread > 0 or n_items < 2:
        return 0.0
    u = _pseudo_values(per_seed, weights)
    residual = u - u.mean(axis=1, keepdims=True) - u.mean(axis=0, keepdims=True) + u.mean()
    interaction = float((residual ** 2).sum()) / ((n_seeds - 1) * (n_items - 1))
    return float(np.sqrt(max(0.0, spread - interaction / n_items) / spread))


def item_replicates(per_seed: np.ndarray, item_draws: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``[B]`` item-resampled replicates of the mean over seeds of each seed's mean over the drawn items, expanded
    by √(n / (n − 1)) about the full-sample value: the plain bootstrap's variance is (n − 1)/n of the unbiased one,
    which at n = 16 leaves a 95 % percentile interval covering ~93 % (Hesterberg's expanded percentile interval,
    "What teachers should know about the bootstrap", The American Statistician 2015)."""
    per_seed = np.atleast_2d(np.asarray(per_seed, dtype=float))
    weights = None if weights is None else np.atleast_2d(np.asarray(weights, dtype=float))
    picked_w = None if weights is None else weights[:, item_draws]
    values = weighted_means(per_seed[:, item_draws], picked_w).mean(axis=0)
    n = per_seed.shape[1]
    if n < 2:
        return values
    center = float(seed_values(per_seed, weights).mean())
    return center + np.sqrt(n / (n - 1)) * (values - center)


def row_replicates(per_seed: np.ndarray, item_draws: np.ndarray, multipliers: np.ndarray | None,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """``[B]`` replicates of a row's value (the mean over seeds of each seed's mean over items).

    ``per_seed``: ``[S, n]`` per-item values, items aligned with every other row; ``item_draws``: the task's shared
    ``[B, n]`` draws; ``multipliers``: the row's ``seed_multipliers(S)``; ``weights``: ``[S, n]`` or None."""
    per_seed = np.asarray(per_seed, dtype=float)
    values = item_replicates(per_seed, item_draws, weights)
    if multipliers is None or per_seed.shape[0] < 2:
        return values
    deviations = seed_values(per_seed, weights)
    deviations = deviations - deviations.mean()
    return values + (multipliers @ deviations) * seed_shrinkage(per_seed, weights)


def delta_replicates(per_seed: np.ndarray, base_per_seed: np.ndarray, item_draws: np.ndarray,
                     multipliers: np.ndarray | None, weights: np.ndarray | None = None,
                     base_weights: np.ndarray | None = None) -> np.ndarray:
    """``[B]`` replicates of a row's delta when its seeds start from *different* base models: seed s from
    ``base_per_seed[s]`` (a taught task with several teaching pairs, seed s on pair s mod P).

    The delta is the mean over seeds of (seed's value − its own base's value). The item part is the difference of
    the two item-resampled means on the shared draws (paired item by item, seed by seed); the seed term is drawn,
    as in ``row_replicates``, from the seeds' deviations of their *deltas* — so the spread between teaching pairs of
    what the method did is counted, while the spread of the taught models themselves (which every delta subtracts)
    is not — shrunk by the share of that spread that the item noise does not explain (the ANOVA of the per-item
    differences, ratio metrics linearised). With every seed on one base this is ``row_replicates`` minus the
    base's item replicates (the same seed deviations and interaction), which the board keeps computing as such."""
    per_seed = np.asarray(per_seed, dtype=float)
    base_per_seed = np.asarray(base_per_seed, dtype=float)
    values = item_replicates(per_seed, item_draws, weights) - item_replicates(base_per_seed, item_draws, base_weights)
    if multipliers is None or per_seed.shape[0] < 2:
        return values
    difference = _pseudo_values(per_seed, weights) - _pseudo_values(base_per_seed, base_weights)
    deviations = seed_values(difference)
    deviations = deviations - deviations.mean()
    return values + (multipliers @ deviations) * seed_shrinkage(difference)


def finite_interval(replicates: np.ndarray, alpha: float = 0.05) -> tuple[float, float, int]:
    """(low, high, non-finite count): the percentile interval over the finite replicates (NaN, NaN when fewer
    than two are finite), and how many were not finite — shown on the board, never hidden."""
    replicates = np.asarray(replicates, dtype=float)
    finite = replicates[np.isfinite(replicates)]
    bad = int(replicates.size - finite.size)
    if finite.size < 2:
        return float("nan"), float("nan"), bad
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), bad


__all__ = ["CrossedDraws", "delta_replicates", "finite_interval", "item_replicates", "row_replicates", "seed_shrinkage",
           "seed_values", "weighted_means"]
