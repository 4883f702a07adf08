"""Rank agreement between two boards of the same matrix (the demo in fp32 and in bf16): Kendall's τ-b of the
rows' point ranks with a bootstrap interval, and the share of pairwise verdicts that agree.

Both are read from the boards' ``results.json``. Ranks are compared within a task only (rows of different tasks
are never ranked against each other): τ-b pools the concordant, discordant and tied pairs of every task shared by
the boards, over the rows (labels) both boards rank. The interval resamples rows with replacement within each
task (``resamples`` draws, fixed seed) — over rows, not items: the item-level values are in the boards' data
files, and re-scoring every row under an item resample costs the whole scoring each time. A pairwise verdict is
"a ahead", "b ahead" (separated at the board's Holm level, in the direction of the larger ahead-share) or "not
separated"; two boards agree on a pair when their verdicts are the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError


@dataclass(frozen=True)
class RankAgreement:
    tau: float
    tau_ci: tuple[float, float]
    pairs_agree: int
    pairs: int
    tasks: list[str]
    rows: int  # rows (task, label) both boards rank
    resamples: int

    @property
    def verdict_share(self) -> float:
        return self.pairs_agree / self.pairs if self.pairs else math.nan


def read_results(board: str | Path) -> dict[str, Any]:
    """A board's ``results.json`` (a board directory or the file itself); one-line error when missing."""
    path = Path(board)
    path = path / "results.json" if path.is_dir() else path
    if not path.exists():
        raise UserError(f"{path} does not exist; give a board directory written by unlearn-bench report")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise UserError(f"{path} is not JSON; regenerate the board (unlearn-bench report --rescore)") from None


def point_ranks(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Task -> label -> point rank, for ranked tasks' finished rows."""
    out: dict[str, dict[str, float]] = {}
    for task, block in (results.get("tasks") or {}).items():
        ranks = {r["label"]: float(r["rank"]) for r in block.get("rows", []) if r.get("rank") is not None}
        if ranks:
            out[task] = ranks
    return out


def _pair_counts(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """Kendall's pair counts of two rankings of the same rows: (concordant − discordant, pairs, pairs tied in a,
    pairs tied in b)."""
    i, j = np.triu_indices(len(a), k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    return float(np.sum(da * db)), float(len(i)), float(np.sum(da == 0)), float(np.sum(db == 0))


def pooled_tau(groups: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Kendall's τ-b over the within-group pairs of every group (NaN when one side ties every pair)."""
    s = n0 = ta = tb = 0.0
    for a, b in groups:
        ds, dn, dta, dtb = _pair_counts(a, b)
        s, n0, ta, tb = s + ds, n0 + dn, ta + dta, tb + dtb
    denominator = math.sqrt((n0 - ta) * (n0 - tb))
    return s / denominator if denominator > 0 else math.nan


def _verdict(pair: dict[str, Any]) -> str:
    """"<label> ahead" (separated, the label with the larger ahead-share) or "not separated"."""
    if not pair.get("separated"):
        return "not separated"
    ahead = pair["a"] if pair.get("a_ahead", 0) >= pair.get("b_ahead", 0) else pair["b"]
    return f"{ahead} ahead"


def verdicts(results: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """(task, label, label) in sorted label order -> pairwise verdict."""
    out = {}
    for task, block in (results.get("tasks") or {}).items():
        for pair in (block.get("pairwise") or {}).get("pairs", []):
            a, b = sorted((pair["a"], pair["b"]))
            out[(task, a, b)] = _verdict(pair)
    return out


def rank_agreement(board_a: str | Path, board_b: str | Path, resamples: int = 2000, seed: int = 0) -> RankAgreement:
    """τ-b with its percentile bootstrap interval over rows, and the pairwise verdicts' agreement (module
    docstring), of two boards' ``results.json``."""
    ra, rb = read_results(board_a), read_results(board_b)
    ranks_a, ranks_b = point_ranks(ra), point_ranks(rb)
    tasks = sorted(set(ranks_a) & set(ranks_b))
    groups = []
    for task in tasks:
        labels = sorted(set(ranks_a[task]) & set(ranks_b[task]))
        if len(labels) >= 2:
            groups.append((np.array([ranks_a[task][x] for x in labels]), np.array([ranks_b[task][x] for x in labels])))
    if not groups:
        raise UserError(f"{board_a} and {board_b} share no ranked task with two common rows; compare boards of "
                        "the same matrix")
    tau = pooled_tau(groups)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        picked = [(a[idx], b[idx]) for a, b in groups for idx in [rng.integers(0, len(a), len(a))]]
        draws.append(pooled_tau(picked))
    finite = np.asarray([d for d in draws if math.isfinite(d)])
    ci = (float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))) if finite.size else (math.nan, math.nan)
    va, vb = verdicts(ra), verdicts(rb)
    common = sorted(set(va) & set(vb))
    agree = sum(va[k] == vb[k] for k in common)
    return RankAgreement(tau, ci, agree, len(common), tasks, sum(len(a) for a, _ in groups), resamples)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.perf.agreement BOARD_A BOARD_B``: the two boards' rank agreement as one line and JSON
    (comparison tooling, outside the runtime path: the teaching-mode comparison of docs/teaching.md uses it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m bench.perf.agreement", description=main.__doc__)
    parser.add_argument("board_a")
    parser.add_argument("board_b")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        result = rank_agreement(args.board_a, args.board_b, args.resamples)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    low, high = result.tau_ci
    print(f"Kendall's tau-b {result.tau:.2f} [{low:.2f}, {high:.2f}] over {result.rows} rows of {result.tasks}; "
          f"pairwise verdicts agree on {result.pairs_agree}/{result.pairs}")
    print(json.dumps({"tau": result.tau, "tau_ci": list(result.tau_ci), "pairs_agree": result.pairs_agree,
                      "pairs": result.pairs, "tasks": result.tasks, "rows": result.rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
