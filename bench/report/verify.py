"""The reproducibility contract: ``unlearn-bench verify BOARD_DIR`` re-runs cells of a committed board on this
machine and checks, metric by metric, that each re-run value lies within a tolerance the board itself implies.

The test (docs/verify.md). For one metric of one cell, the board holds the cell's value ``x_b`` (seed ``s``),
the values of the same row on the board's other seeds, and the metric's item-level 95 % interval. Under the
null hypothesis the re-run ``x_r`` is one more draw from the distribution the board's values came from, so
``d = x_r − x_b`` has variance ``2σ²`` with ``σ²`` the variance of one cell's value. ``σ²`` is estimated by

    v = s²_seed + se²_item

``s²_seed`` the sample variance of the row's *other* seeds (K − 2 degrees of freedom; absent with fewer than
three seeds on the board: the checked value never widens its own band, or a tampered value would hide itself
in the spread it creates; and it keeps ``s²_seed`` independent of ``d``) and
``se²_item`` the item-level squared standard error of one cell's value, averaged over the board's cell and the
re-run (each read off its stored 95 % interval: half-width / 1.96, the task's own statement of its item
uncertainty, which for a proportion at 0/n or n/n is the exact Clopper–Pearson interval rather than a zero
per-item SD; averaging the two, as a pooled two-sample test does, keeps a board value that happened to sit at an
extreme, with a small SE, from narrowing the band — with the board's SE alone, proportions at p = 0.7 and
16 items false-alarmed at 3 % instead of 1 %). The sum counts the item variance twice when seeds
re-draw items (conservative) and covers the case where a re-run keeps the items but the training differs. The
tolerance is ``t_ν(1 − α_m / 2) · √(2v)`` with the conservative degrees of freedom of the sum: ``ν`` = those
of the seed spread when there is one (other seeds − 1), else those of the item SE (items − 1). Welch–
Satterthwaite's ``ν`` was tried first and false-alarmed at 25 % instead of 1 % with three seeds (its ``ν``
grows exactly when the seed spread came out small by chance; ``simulate``), and ``α_m = α / m``: Bonferroni over the
cell's ``m`` metrics, so that the chance a cell drawn from the board's own distribution shows any metric
outside is at most ``α`` (default 0.01: a 5-cell verification then false-alarms at most 5 % of the time).
Bonferroni rather than Holm: each metric's tolerance is a fixed band printed before the comparison, and the
cell's verdict (any metric outside) is the same under both.

What the tolerance cannot see: with one seed on the board (the demo) the training noise between machines is
not measured, only the item noise; ``simulate`` shows the false-alarm rate that leaves when training noise is
large. Differences of precision, harness commit, kernels or packages between the board and the re-run are
reported beside each cell, never folded into the tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from bench.errors import UserError, did_you_mean

#: Family-wise false-alarm rate per cell (over its metrics).
ALPHA = 0.01
#: z of a two-sided 95 % interval: the stored intervals' half-width over it is the item-level standard error.
Z95 = 1.959963984540054
#: Two floats this close (relative) are the same value: a bit-exact re-run is within even at zero tolerance.
FLOAT_EQ = 1e-9
WITHIN, OUTSIDE, FAILED = "within", "outside", "failed"


# -- the tolerance ---------------------------------------------------------------------------------------------
def item_se(metric: dict[str, Any]) -> float:
    """Item-level standard error of a stored metric's value: its 95 % interval's half-width / 1.96 (0 when the
    interval is missing or not finite)."""
    low, high = metric.get("ci_low"), metric.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return 0.0
    return max(0.0, (float(high) - float(low)) / (2 * Z95))


@dataclass(frozen=True)
class Tolerance:
    """The band a re-run value must fall in: ``board ± bound``, and the parts it was built from."""

    seed_sd: float | None  # between-seed SD of the row's other seeds (None: fewer than two)
    n_seeds: int  # other seeds the spread came from
    item_se: float
    n_items: int
    df: float  # degrees of freedom of the t-quantile (conservative: the seed spread's when there is one)
    alpha: float  # per metric (after the family correction)
    bound: float


def pooled_se(se_board: float, se_rerun: float) -> float:
    """The item SE of one cell's value from both evaluations: root of the mean of their squares."""
    return math.sqrt((se_board * se_board + se_rerun * se_rerun) / 2)


def tolerance(seed_values: Sequence[float], se: float, n_items: int, alpha_metric: float) -> Tolerance:
    """The two-sided ``1 − alpha_metric`` band for ``re-run − board``, from the row's other seeds' values
    ``seed_values`` and the item SE ``se`` (``pooled_se``) over ``n_items`` items (module docstring)."""
    k = len(seed_values)
    s2 = float(np.var(seed_values, ddof=1)) if k >= 2 else 0.0
    var = s2 + se * se
    df = float(k - 1) if k >= 2 else (float(n_items - 1) if n_items >= 2 else math.inf)
    quantile = float(sps.norm.ppf(1 - alpha_metric / 2) if math.isinf(df) else sps.t.ppf(1 - alpha_metric / 2, df))
    return Tolerance(math.sqrt(s2) if k >= 2 else None, k, se, n_items, df, alpha_metric,
                     quantile * math.sqrt(2 * var))


def is_within(board: float, rerun: float, bound: float) -> bool:
    """``|rerun − board| ≤ bound``, with equal floats always within (a zero-width band still admits a bit-exact
    reproduction); non-finite values are within only when identical."""
    if not (math.isfinite(board) and math.isfinite(rerun)):
        return board == rerun or (math.isnan(board) and math.isnan(rerun))
    diff = abs(rerun - board)
    return diff <= bound or diff <= FLOAT_EQ * max(1.0, abs(board))


# -- one cell's comparison ---------------------------------------------------------------------------------------
@dataclass
class MetricCheck:
    name: str
    board: float
    rerun: float | None  # None: the re-run did not report this metric
    tolerance: Tolerance
    within: bool

    @property
    def diff(self) -> float | None:
        return None if self.rerun is None else self.rerun - self.board


@dataclass
class CellCheck:
    """One verified cell: its verdict, every metric's check, and what differs between the board and here."""

    cell_id: str
    verdict: str  # within | outside | failed
    metrics: list[MetricCheck] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    reason: str | None = None  # why a re-run failed
    seconds: float | None = None

    def line(self) -> str:
        """One line: verdict, the metrics outside with their values and bands, and the differences noted."""
        if self.verdict == FAILED:
            head = f"{self.cell_id}: failed ({self.reason})"
        else:
            outside = [m for m in self.metrics if not m.within]
            head = f"{self.cell_id}: {self.verdict} ({len(self.metrics) - len(outside)}/{len(self.metrics)} metrics"
            if outside:
                head += "; outside: " + ", ".join(_metric_text(m) for m in outside)
            else:
                worst = max(self.metrics, key=_used_share, default=None)
                if worst is not None:
                    head += f"; largest |diff| {abs(worst.diff or 0.0):.3g} of ±{worst.tolerance.bound:.3g} " \
                            f"({worst.name})"
            head += ")"
        if self.seconds is not None:
            head += f" in {self.seconds:.0f} s"
        return head + (f" [differs from the board: {'; '.join(self.differences)}]" if self.differences else "")


def _used_share(m: MetricCheck) -> float:
    if m.diff is None:
        return math.inf
    return abs(m.diff) / m.tolerance.bound if m.tolerance.bound > 0 else (0.0 if m.diff == 0 else math.inf)


def _metric_text(m: MetricCheck) -> str:
    if m.rerun is None:
        return f"{m.name} missing from the re-run"
    return f"{m.name} {m.board:.4g} -> {m.rerun:.4g} (diff {m.diff:+.3g}, band ±{m.tolerance.bound:.3g})"


def row_key(cell: dict[str, Any]) -> str:
    """A cell's row across seeds: its spec without the seed."""
    from bench.params import stable_hash

    spec = {k: v for k, v in cell["spec"].items() if k not in ("seed", "attacks", "save_model")}
    return stable_hash(spec)


def other_seed_values(cells: Sequence[dict[str, Any]], cell: dict[str, Any], metric: str) -> list[float]:
    """The metric's finished values on the other seeds of ``cell``'s row on the board (``cell``'s own left out)."""
    key = row_key(cell)
    return [float(c["metrics"][metric]["value"]) for c in cells
            if c.get("status") == "done" and c["cell_id"] != cell["cell_id"] and row_key(c) == key
            and metric in c.get("metrics", {})]


def compare_cell(board_cell: dict[str, Any], board_cells: Sequence[dict[str, Any]], rerun: dict[str, Any],
                 alpha: float = ALPHA) -> CellCheck:
    """Every metric of the board's cell against the re-run's, at family-wise ``alpha`` over the cell's metrics."""
    differences = provenance_differences(board_cell.get("provenance", {}), rerun.get("provenance", {}))
    if rerun.get("status") != "done":
        return CellCheck(board_cell["cell_id"], FAILED, differences=differences,
                         reason=f"re-run {rerun.get('status')}: {rerun.get('reason')}")
    metrics = board_cell["metrics"]
    alpha_metric = alpha / max(1, len(metrics))
    checks = []
    for name, stored in metrics.items():
        got = rerun["metrics"].get(name)
        value = None if got is None else float(got["value"])
        se = item_se(stored) if got is None else pooled_se(item_se(stored), item_se(got))
        tol = tolerance(other_seed_values(board_cells, board_cell, name), se, int(stored.get("n") or 0), alpha_metric)
        ok = value is not None and is_within(float(stored["value"]), value, tol.bound)
        checks.append(MetricCheck(name, float(stored["value"]), value, tol, ok))
    verdict = WITHIN if all(c.within for c in checks) else OUTSIDE
    return CellCheck(board_cell["cell_id"], verdict, checks, differences)


#: Provenance fields compared between the board and the re-run, as (label, path).
COMPARED = (("eval precision", ("eval_autocast",)), ("train precision", ("train_autocast",)),
            ("weights dtype", ("model", "dtype")), ("device", ("device",)),
            ("taught/base weights", ("model", "weights_hash")), ("task version", ("task_version",)),
            ("teaching pair", ("teach", "key")), ("teaching data", ("teach", "data", "hash")),
            ("teaching origin", ("teach", "origin")),
            ("harness commit", ("git", "commit")), ("uncommitted changes", ("git", "dirty")),
            ("CPU kernels", ("machine", "cpu_capability")),
            ("threads", ("machine", "cpus")), ("torch", ("versions", "torch")),
            ("transformers", ("versions", "transformers")), ("generation backend", ("generation_backend",)))


def _get(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(record, dict):
            return None
        record = record.get(key)  # type: ignore[assignment]
    return record


def provenance_differences(board: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """``label: board X, here Y`` for every compared provenance field that differs (precision first: a bf16
    board re-run in fp32 is a different computation, and says so)."""
    out = []
    for label, path in COMPARED:
        a, b = _get(board, path), _get(here, path)
        if a != b and not (a is None and b is None):
            if label == "harness commit":
                a, b = (str(a)[:10] if a else a), (str(b)[:10] if b else b)
            out.append(f"{label}: board {a}, here {b}")
    return out


# -- rebuilding and re-running cells ----------------------------------------------------------------------------
def cell_spec(cell: dict[str, Any]) -> Any:
    """The ``CellSpec`` a board's cell was run from, checked by its id (a board written by a harness whose
    spec had other fields gives another id: refused, not re-run as something else). Attacks are dropped: they
    are not part of a cell's identity and the contract covers the cell's metrics."""
    from bench.engine.config import CellSpec

    fields = {f.name for f in dataclasses.fields(CellSpec)}
    raw = dict(cell.get("spec") or {})
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise UserError(f"cell {cell.get('cell_id')} has spec fields this harness does not know ({', '.join(unknown)});"
                        " verify with the unlearn-bench version that wrote the board")
    try:
        spec = CellSpec(**raw)
    except TypeError as err:
        raise UserError(f"cell {cell.get('cell_id')}: its spec cannot be rebuilt ({err}); verify with the "
                        "unlearn-bench version that wrote the board") from None
    if spec.cell_id != cell.get("cell_id"):
        raise UserError(f"cell {cell.get('cell_id')} rebuilds as {spec.cell_id}: the board was written by another "
                        "harness version; verify with the version that wrote it (its provenance names the commit)")
    return dataclasses.replace(spec, attacks=[], save_model="none")


def choose_cells(cells: Sequence[dict[str, Any]], n: int | None, names: Sequence[str] | None,
                 seed: int) -> list[dict[str, Any]]:
    """The named cells, or ``n`` finished cells sampled with ``random.Random(seed)`` from the board's finished
    cells in id order (the same board and seed always give the same cells)."""
    done = sorted((c for c in cells if c.get("status") == "done"), key=lambda c: c["cell_id"])
    by_id = {c["cell_id"]: c for c in done}
    if names:
        missing = [name for name in names if name not in by_id]
        if missing:
            raise UserError(f"the board has no finished cell '{missing[0]}'; {did_you_mean(missing[0], by_id)}")
        return [by_id[name] for name in dict.fromkeys(names)]
    if n is None or n < 1:
        raise UserError("give --cells N (N ≥ 1) or --cell ID...")
    if n > len(done):
        raise UserError(f"--cells {n}: the board has {len(done)} finished cells; ask for at most {len(done)}")
    return random.Random(seed).sample(done, n)


@dataclass
class VerifyReport:
    board: str
    runs: str
    alpha: float
    seed: int
    cells: list[CellCheck]

    @property
    def exit_status(self) -> int:
        """0 every cell within, 1 some cell outside or failed."""
        return 0 if all(c.verdict == WITHIN for c in self.cells) else 1

    def header(self) -> str:
        return (f"verify {self.board}: {len(self.cells)} cells re-run into {self.runs}; family-wise false-alarm "
                f"rate {self.alpha:g} per cell (Bonferroni over its metrics; docs/verify.md)")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (a non-finite number, e.g. the normal quantile's infinite degrees of freedom, as null)."""
        return _finite(dataclasses.asdict(self) | {"exit_status": self.exit_status})


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def scratch_dir(board: Path, out: str | None) -> Path:
    """Where the re-runs go: ``out`` (a results directory, resumed if it is one), else a new folder under
    ``runs/`` named after the board, so that nothing already written is touched."""
    if out is not None:
        return Path(out)
    root = Path("runs")
    root.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"verify-{board.resolve().name}-", dir=root))


def rerun_cells(specs: list[Any], out: Path, registry: Any, progress: bool) -> dict[str, dict[str, Any]]:
    """Run ``specs`` with the normal engine (``run_matrix``) into ``out``; their result records by cell id."""
    from bench.engine.config import RunConfig
    from bench.engine.runner import run_matrix
    from bench.engine.store import ResultsStore

    first = specs[0]
    config = RunConfig(model=first.model, methods=sorted({s.method for s in specs}),
                       tasks=sorted({s.task for s in specs}), out=str(out), device=first.device, dtype=first.dtype,
                       progress=progress)
    run_matrix(config, registry, cells=specs)
    store = ResultsStore(out)
    return {s.cell_id: store.cell_result(s.cell_id) or {"status": "failed", "reason": "no result written"}
            for s in specs}


def verify(board_dir: str | Path, n_cells: int | None = None, names: Sequence[str] | None = None, seed: int = 0,
           alpha: float = ALPHA, out: str | None = None, registry: Any = None,
           progress: bool = False) -> VerifyReport:
    """Re-run the chosen cells of a board on this machine and compare each with the board (module docstring)."""
    from bench.report.audit import read_board_data

    if not 0 < alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {alpha}")
    board = Path(board_dir)
    record = read_board_data(board)
    chosen = choose_cells(record["cells"], n_cells, names, seed)
    specs = [cell_spec(c) for c in chosen]  # every spec rebuilt before anything runs
    if len({(s.model, s.device, s.dtype) for s in specs}) > 1:
        raise UserError("the chosen cells use different models or devices; verify them with one --cell set each")
    if registry is None:
        from bench.plugins import registry as load_registry

        registry = load_registry()
    runs = scratch_dir(board, out)
    reruns = rerun_cells(specs, runs, registry, progress)
    checks = []
    for cell, spec in zip(chosen, specs):
        check = compare_cell(cell, record["cells"], reruns[spec.cell_id], alpha)
        check.seconds = (reruns[spec.cell_id].get("provenance") or {}).get("wall_time_s")
        checks.append(check)
    return VerifyReport(str(board), str(runs), alpha, seed, checks)


# -- simulation: the tolerance's false-alarm rate and power on data with known truth ------------------------------
@dataclass(frozen=True)
class Scenario:
    """A synthetic row: K seeds on the board, m metrics per cell, n items per metric, training noise
    ``train_sd`` and item noise ``item_sd`` (per-item SD), items fixed per seed (``same_items``: the re-run of
    a seed scores the same items, only the model noise is new) or re-drawn; Bernoulli items when ``p`` is set."""

    seeds: int
    metrics: int = 8
    items: int = 16
    train_sd: float = 0.0
    item_sd: float = 1.0
    same_items: bool = True
    p: float | None = None


def _draw_items(rng: np.random.Generator, sc: Scenario, item_effects: np.ndarray, train: float,
                shift: float) -> np.ndarray:
    """Per-item values of one cell (metrics x items)."""
    if sc.p is not None:  # a proportion: item effects shift the log-odds
        logit = math.log(sc.p / (1 - sc.p)) + item_effects + train + shift
        return (rng.random(item_effects.shape) < 1 / (1 + np.exp(-logit))).astype(float)
    noise = rng.normal(0.0, sc.item_sd * math.sqrt(0.5), item_effects.shape)
    return item_effects + noise + train + shift


def _stored(values: np.ndarray) -> list[dict[str, Any]]:
    """Metrics as the harness stores them (``mean_metric``: bootstrap or exact interval)."""
    from bench.eval.stats import mean_metric

    bounds = (0.0, 1.0) if set(np.unique(values)) <= {0.0, 1.0} else None
    return [dataclasses.asdict(mean_metric("m", "forget", row, "lower", bounds=bounds)) for row in values]


def simulate(sc: Scenario, shift_sd: float = 0.0, reps: int = 400, alpha: float = ALPHA,
             seed: int = 0) -> dict[str, float]:
    """Share of re-runs flagged outside when every metric of the re-run is shifted by ``shift_sd`` × the SD of
    one cell's value (0: the re-run comes from the board's distribution, the false-alarm rate), per cell (any
    metric) and per metric. The board's cell is seed 0 of the row; the re-run draws new training noise."""
    rng = np.random.default_rng(seed)
    item_var = sc.item_sd ** 2 / sc.items if sc.p is None else sc.p * (1 - sc.p) / sc.items
    cell_sd = math.sqrt(sc.train_sd ** 2 + item_var)
    cell_flags, metric_flags = 0, 0
    for _ in range(reps):
        effects = [rng.normal(0.0, sc.item_sd * math.sqrt(0.5), (sc.metrics, sc.items)) if sc.p is None
                   else rng.normal(0.0, 0.5, (sc.metrics, sc.items)) for _ in range(sc.seeds)]
        board = [_stored(_draw_items(rng, sc, eff, rng.normal(0.0, sc.train_sd, (sc.metrics, 1)), 0.0))
                 for eff in effects]
        rerun_effects = effects[0] if sc.same_items else \
            (rng.normal(0.0, sc.item_sd * math.sqrt(0.5), effects[0].shape) if sc.p is None
             else rng.normal(0.0, 0.5, effects[0].shape))
        shift = shift_sd * (cell_sd if sc.p is None else 1.0)  # a proportion's shift is on the log-odds scale
        rerun = _stored(_draw_items(rng, sc, rerun_effects, rng.normal(0.0, sc.train_sd, (sc.metrics, 1)), shift))
        outside = 0
        for j in range(sc.metrics):
            values = [board[k][j]["value"] for k in range(sc.seeds)]
            se = pooled_se(item_se(board[0][j]), item_se(rerun[j]))
            tol = tolerance(values[1:], se, sc.items, alpha / sc.metrics)
            outside += not is_within(values[0], rerun[j]["value"], tol.bound)
        cell_flags += outside > 0
        metric_flags += outside
    return {"cell_rate": cell_flags / reps, "metric_rate": metric_flags / (reps * sc.metrics), "reps": reps}


def simulation_table(reps: int = 400) -> list[dict[str, Any]]:
    """The scenarios of docs/verify.md: false-alarm rate (shift 0) and power (shifts of 3 and 5 cell SDs)."""
    scenarios = {
        "1 seed, item noise only": Scenario(seeds=1),
        "1 seed, items re-drawn": Scenario(seeds=1, same_items=False),
        "1 seed, training SD = item SE": Scenario(seeds=1, train_sd=0.25),
        "1 seed, training SD = 3 item SE": Scenario(seeds=1, train_sd=0.75),
        "3 seeds, training SD = 3 item SE": Scenario(seeds=3, train_sd=0.75),
        "3 seeds, item noise only": Scenario(seeds=3),
        "6 seeds, training SD = 3 item SE": Scenario(seeds=6, train_sd=0.75),
        "1 seed, proportions p=0.7": Scenario(seeds=1, p=0.7),
        "1 seed, proportions p=0.05": Scenario(seeds=1, p=0.05),
    }
    rows = []
    for name, sc in scenarios.items():
        row: dict[str, Any] = {"scenario": name}
        for shift in (0.0, 3.0, 5.0):
            row[f"shift {shift:g}"] = simulate(sc, shift, reps=reps, seed=17)["cell_rate"]
        rows.append(row)
    return rows


if __name__ == "__main__":  # python -m bench.report.verify: the simulation table of docs/verify.md
    import sys

    for r in simulation_table(int(sys.argv[1]) if len(sys.argv) > 1 else 400):
        print(r)
