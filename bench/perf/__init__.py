"""``unlearn-bench perf``: side-by-side performance measurements on the current machine.

Every row compares two things measured in the same process on the same inputs (ratios, not absolute
times alone) and says whether the target from the performance issue is met:

1. batched generation (left padding, KV cache, length-sorted batches, length-grouped prefill, stop
   strings, finished rows leaving the batch) versus a naive per-prompt ``generate`` loop — identical
   greedy outputs, ≥ 5× faster at batch 16;
2. our generation versus lm-evaluation-harness's HF backend on identical GSM8K-style prompts
   (when ``lm_eval`` is installed) — same outputs, wall-time ratio ≥ 1;
3. one training step of ``bench.lm.training.train`` versus a bare hand-written torch loop on the same
   model, LoRA and batch — ≤ 1.1× its time — with model FLOPs utilisation against this machine's
   measured GEMM peak;
4. base-model evaluation cached: M cells on one task cost M cells + 1 base evaluation;
5. evaluation under bf16 autocast versus fp32 on the embedded model: speed-up and how far values move;
6. the full demo and study matrices' wall time and peak memory per cell (read from finished runs);
7. scaling of evaluation time with eval-set size and of unlearning time with forget-set size, and
   the speed-up of 2 Ray workers over the local executor on a 4-cell matrix.

Writes ``<out>/<machine>.md`` and ``<out>/<machine>.json``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.api import Example, TaskData, TrainParams, TrajectoryLogger, UnlearnContext
from bench.data.text import make_batch, render_prompt
from bench.engine.provenance import git_commit, package_versions, portable, portable_path
from bench.engine.store import ResultsStore, atomic_write_json, atomic_write_text
from bench.lm.generation import generate
from bench.lm.models import EMBEDDED, LoadedModel, ModelCache
from bench.perf.profile_summary import markdown_table as profile_table
from bench.perf.profile_summary import summarise as summarise_profile
from bench.perf.rows import PerfRow


@dataclass
class PerfReport:
    machine: dict[str, Any]
    rows: list[PerfRow] = field(default_factory=list)
    #: When and at which commit the report was written (its header states both: a report beside others must
    #: say how current it is; rows carry their own commits).
    finished_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    git: dict[str, Any] = field(default_factory=git_commit)
    #: Set on a report superseded by later measurements (why, and by what): its header says so.
    stale: str = ""

    def to_json(self) -> dict[str, Any]:
        return portable({"machine": self.machine, "git": self.git, "versions": package_versions(),
                         "finished_at": self.finished_at, **({"stale": self.stale} if self.stale else {}),
                         "rows": [asdict(r) for r in self.rows]})

    def commit_label(self) -> str:
        return commit_label(self.git)


def commit_label(git: dict[str, Any]) -> str:
    """``0123456789`` (10 digits) or ``…-dirty``, ``n/a`` outside a checkout."""
    return (git.get("commit") or "n/a")[:10] + ("-dirty" if git.get("dirty") else "")


# -- machine ----------------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "platform": platform.platform(), "torch": torch.__version__}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    from bench.lm.precision import cpu_has_native_bf16, native_bf16_override

    # the hardware's, not what UNLEARN_BENCH_NATIVE_BF16 makes `auto` do: the report file is the machine's
    facts["native_bf16"] = cpu_has_native_bf16()
    override = native_bf16_override()
    if override is not None:
        facts["native_bf16_override"] = override
    return facts


def machine_slug(facts: dict[str, Any]) -> str:
    name = facts.get("gpu") or facts["cpu"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("(r)", "").replace("(tm)", "")).strip("-")
    # CPUs sold under one name differ in bf16 (AVX512-BF16/AMX or not), which changes what runs fastest
    bf16 = "-bf16" if facts.get("native_bf16") and not facts.get("gpu") else ""
    return f"{slug}-{facts['cores']}cpu{bf16}"[:80]


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_peak_flops(dtype: torch.dtype = torch.float32, n: int = 1536, repeats: int = 5) -> float:
    """Measured matmul throughput (FLOP/s) of this machine at ``dtype``: the MFU denominator."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    return 2 * n ** 3 / best_of(lambda: a @ b, repeats)


# -- 1. batched versus naive generation ------------------------------------------------------------
def naive_generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The loop people write first: one unpadded ``generate`` call per prompt."""
    outputs = []
    with torch.no_grad():
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
            outputs.append(tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return outputs


def math_prompts(n: int) -> list[str]:
    """GSM-style questions available offline (GSM-symbolic from reasoning-gym), from the ``coding`` task
    as the registry provides it (perf reaches built-ins only through the registry)."""
    from bench.params import build_params
    from bench.plugins import registry

    coding = registry().get("task", "coding").cls
    task = coding(build_params(coding.Params, {"gsm8k_source": "symbolic", "n_gsm_eval": n}, "perf"))
    return [p.question for p in task.load(0).eval["gsm"]]


def bench_generation(base: LoadedModel, n_prompts: int, max_new_tokens: int) -> PerfRow:
    tok = base.tokenizer
    prompts = [render_prompt(tok, q) for q in math_prompts(n_prompts)]
    start = time.perf_counter()
    batched = generate(base.model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=n_prompts)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_generate(base.model, tok, prompts, max_new_tokens)
    t_naive = time.perf_counter() - start
    same = sum(b[0] == n for b, n in zip(batched, naive))
    ratio = t_naive / t_batched
    return PerfRow(
        "generation", f"Batched generation vs naive per-prompt loop ({n_prompts} prompts, batch {n_prompts}, "
                      f"{max_new_tokens} new tokens, greedy)",
        "identical greedy outputs, ≥ 5× faster",
        {"batched_s": round(t_batched, 2), "naive_s": round(t_naive, 2), "speedup": round(ratio, 2),
         "identical_outputs": same, "prompts": n_prompts},
        f"{ratio:.2f}× faster; {same}/{n_prompts} outputs identical", ratio >= 5 and same == n_prompts)


# -- 3. training step versus a bare loop -----------------------------------------------------------
def _train_examples(n: int) -> list[Example]:
    text = ("The committee met on Tuesday to discuss the budget for the coming year, and after a long "
            "debate the members agreed to fund the new library, repair the bridge and hire two teachers. ")
    return [Example(f"Summarise item {i} of the meeting notes.", text * 2) for i in range(n)]


def _ga(model: Any, batch: Any) -> torch.Tensor:
    from bench.lm.losses import cross_entropy
    from bench.lm.training import logits

    return -cross_entropy(logits(model, batch), batch.labels)


def bench_train_step(base: LoadedModel, batch_size: int, max_length: int, steps: int) -> PerfRow:
    from bench.lm.training import train, with_adapter

    params = TrainParams(steps=steps, batch_size=batch_size, max_length=max_length, max_grad_norm_diverge=1e9)
    batch = make_batch(base.tokenizer, _train_examples(batch_size), max_length)
    tokens = int(batch.attention_mask.sum())

    def ours() -> None:
        model = with_adapter(copy.deepcopy(base.model), params, 0)
        ctx = UnlearnContext(model=model, tokenizer=base.tokenizer, task=None, data=TaskData([], []),
                             seed=0, device="cpu", probe=lambda m: {}, log=TrajectoryLogger(), progress=False)
        start = time.perf_counter()
        train(model, params, lambda: (_ga(model, batch), {}), ctx)
        times.setdefault("ours", []).append((time.perf_counter() - start) / steps)

    def bare() -> None:
        model = with_adapter(copy.deepcopy(base.model), params, 0)  # same LoRA init; the loop below is bare
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr)
        model.train()
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            _ga(model, batch).backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
        times.setdefault("bare", []).append((time.perf_counter() - start) / steps)

    times: dict[str, list[float]] = {}
    for run in (bare, ours, bare, ours):  # interleaved, so drift in machine load hits both alike
        run()
    t_ours, t_bare = min(times["ours"]), min(times["bare"])
    n_params = sum(p.numel() for p in base.model.parameters())
    flops = 4 * n_params * tokens  # forward 2N per token + backward through activations 2N (LoRA: no weight grads)
    peak = gemm_peak_flops(torch.float32)
    mfu = flops / t_ours / peak
    ratio = t_ours / t_bare
    return PerfRow(
        "train_step", f"One LoRA training step: bench.lm.training.train vs a bare torch loop (batch {batch_size} × "
                      f"{batch.input_ids.shape[1]} tokens, fp32)",
        "≤ 1.1× the bare loop; MFU reported",
        # times to 4 significant figures, not 3 decimals: a millisecond step rounded to 0.001 s loses up to 4 %,
        # and the stored ratio could no longer be recomputed from the stored times
        {"ours_s": float(f"{t_ours:.4g}"), "bare_s": float(f"{t_bare:.4g}"), "ratio": round(ratio, 3), "tokens": tokens,
         "model_flops_per_step": flops, "gemm_peak_gflops": round(peak / 1e9, 1),
         "achieved_gflops": round(flops / t_ours / 1e9, 1), "mfu": round(mfu, 3)},
        f"{ratio:.2f}× the bare loop; {flops / t_ours / 1e9:.0f} GFLOP/s = {mfu:.0%} of the measured "
        f"{peak / 1e9:.0f} GFLOP/s fp32 GEMM peak", ratio <= 1.1,
        "Model FLOPs = 4·N·tokens (forward 2N, backward through activations 2N; LoRA adds no weight grads).")


# -- 4 + 6. matrices: base-evaluation caching, Ray versus local ------------------------------------
def _matrix_config(out: Path, executor: str, methods: list[str], seeds: list[int], task_params: dict,
                   steps: int) -> Any:
    from bench.engine.config import load_config

    return load_config(None, {
        "model": EMBEDDED, "methods": methods, "tasks": ["toxicity"], "seeds": seeds, "out": str(out),
        "progress": False, "executor": executor, "num_cpus": 1,
        "train_params": {"steps": steps, "max_length": 128, "autocast": "off"},
        "task_params": {"toxicity": task_params}})


SMALL_TOXICITY = {"n_eval": 8, "samples": 2, "max_new_tokens": 16, "n_text_eval": 8, "n_forget": 16,
                  "n_retain": 16}


def bench_matrices(workdir: Path, steps: int) -> list[PerfRow]:
    from bench.engine.executors import execute
    from bench.plugins import registry

    reg = registry()
    walls = {}
    for executor in ("local", "ray"):
        out = workdir / f"matrix-{executor}"
        config = _matrix_config(out, executor, ["ga", "npo"], [0, 1], SMALL_TOXICITY, steps)
        start = time.perf_counter()
        execute(config, reg)
        walls[executor] = time.perf_counter() - start
        store = ResultsStore(out)
        if executor == "local":
            bases = store.all_bases()
            cells = store.all_cells()
            base_s = sum(b["provenance"]["wall_time_s"] for b in bases)
            cells_s = sum(c["provenance"]["wall_time_s"] for c in cells)
            caching = PerfRow(
                "base_cache", f"Base-model evaluation cached ({len(cells)} cells on one task, local executor)",
                "M cells cost M cells + 1 base evaluation",
                {"cells": len(cells), "base_evaluations": len(bases), "base_eval_s": round(base_s, 1),
                 "cells_s": round(cells_s, 1), "matrix_wall_s": round(walls[executor], 1),
                 "overhead_s": round(walls[executor] - base_s - cells_s, 1),
                 "saved_s": round(base_s * (len(cells) - 1), 1)},
                f"{len(bases)} base evaluation for {len(cells)} cells ({base_s:.0f} s, reused "
                f"{len(cells) - 1}×); matrix {walls[executor]:.0f} s = cells {cells_s:.0f} s + base {base_s:.0f} s "
                f"+ {walls[executor] - base_s - cells_s:.0f} s load/overhead", len(bases) == 1)
    speedup = walls["local"] / walls["ray"]
    ray_row = PerfRow(
        "ray", "Ray, 2 workers × 1 CPU vs local executor (2 threads), 4-cell matrix (ga, npo × 2 seeds, "
               "toxicity, small sizes)",
        "speed-up reported (2 cores: ≤ 2×)",
        {"local_s": round(walls["local"], 1), "ray_s": round(walls["ray"], 1), "speedup": round(speedup, 2)},
        f"{speedup:.2f}× ({walls['local']:.0f} s local, {walls['ray']:.0f} s on Ray incl. its start-up)", None)
    return [caching, ray_row]


# -- 5. demo and study matrices ----------------------------------------------------------------------
def run_precision(cells: list[dict[str, Any]]) -> str:
    """"bf16", "fp32" or "mixed": what a run's cells trained and evaluated in (their provenance). A cell that
    trained nothing (the prompt baseline, a reference row: no unlearning time) records its training precision
    as "off"; only its evaluation counts."""
    seen = {(c.get("provenance", {}).get("eval_autocast"),
             c.get("provenance", {}).get("train_autocast") if c.get("extras", {}).get("unlearn_time_s") else None)
            for c in cells}
    names = {"bf16" if mode == "bf16" else "fp32" for pair in seen for mode in pair if mode}
    return names.pop() if len(names) == 1 else "mixed"


def run_kernels(cells: list[dict[str, Any]]) -> tuple[str, dict[str, str]] | None:
    """The CPU kernel level a run's cells ran at (torch's ``cpu_capability``, e.g. "AVX2") and the caps that
    set it, when its cells ran with the instruction set capped (``ISA_CAP_ENV``); None for the hardware's own.
    Cells that disagree give ("mixed", their caps merged)."""
    machines = [c.get("provenance", {}).get("machine", {}) or {} for c in cells]
    capped = [m for m in machines if m.get("isa_caps")]
    if not capped:
        return None
    levels = {m.get("cpu_capability") or "unknown" for m in machines}
    caps = {k: v for m in capped for k, v in m["isa_caps"].items()}
    return (levels.pop() if len(levels) == 1 and len(capped) == len(machines) else "mixed"), caps


def matrix_run_row(run_dir: Path, key: str = "demo", goal_min: float = 15.0,
                   native: bool | None = None) -> PerfRow:
    """Wall time and per-cell costs of a finished run of a committed config (the demo, the study), read
    from its store: the last invocation that ran everything from scratch, attacks included. The row names
    the precision the cells ran in; a run in the precision this machine's ``auto`` would not pick (fp32 on
    a bf16 machine, via ``UNLEARN_BENCH_NATIVE_BF16=0``) is a row of its own, ``<key>_fp32`` / ``<key>_bf16``,
    beside the native one; a run with the CPU's instruction set capped (an AVX2-only machine's kernels on an
    AVX512 one) another, ``<key>[_<precision>]_<level>``."""
    target = f"≤ {goal_min:.0f} min on this machine; peak memory per cell"
    store = ResultsStore(run_dir)
    command = {"demo": "make demo", "study": "make study"}.get(key, f"the {key} config")
    if not (run_dir / "manifest.json").exists():
        return PerfRow(key, f"Full {key} matrix ({portable_path(run_dir)})", target, {},
                       f"not measured: no {key} run at {portable_path(run_dir)} (run `{command}`)", None)
    cells, bases = store.all_cells(), store.all_bases()
    precision = run_precision(cells)
    if native is not None and precision in ("bf16", "fp32") and (precision == "bf16") != native:
        key = f"{key}_{precision}"
    kernels, on_kernels = run_kernels(cells), ""
    if kernels is not None:
        level, caps = kernels
        key = f"{key}_{level.lower()}"
        on_kernels = f" on {level} kernels, capped by {' '.join(f'{k}={v}' for k, v in sorted(caps.items()))}"
    title = f"Full {key.split('_')[0]} matrix in {precision}{on_kernels} ({portable_path(run_dir)})"
    commits = Counter(_run_commit(c) for c in cells)
    full = [i for i in store.invocations() if i.get("skipped") == 0 and i.get("ran")]
    wall = full[-1]["wall_time_s"] if full else None
    per_cell = {c["cell_id"]: {"wall_s": c["provenance"].get("wall_time_s"),
                               "peak_rss_mb": c["provenance"].get("memory", {}).get("peak_rss_mb"),
                               "unlearn_s": c.get("extras", {}).get("unlearn_time_s"),
                               "eval_s": c.get("extras", {}).get("eval_time_s"),
                               "attack_s": c.get("extras", {}).get("attack_time_s")} for c in cells}
    busiest = max((v["peak_rss_mb"] or 0 for v in per_cell.values()), default=0)
    unlearn = sum(v["unlearn_s"] or 0 for v in per_cell.values())
    evaluate = sum(v["eval_s"] or 0 for v in per_cell.values())
    attack = sum(v["attack_s"] or 0 for v in per_cell.values())
    base_s = sum(b["provenance"]["wall_time_s"] for b in bases)
    privacy_s = privacy_seconds(run_dir)
    goal_s = goal_min * 60
    goal = "" if wall is None or wall <= goal_s else f", {wall / goal_s:.1f}× the goal"
    summary = (f"{wall / 60:.1f} min wall ({full[-1]['executor']}{goal})" if wall else "wall time unknown (no complete "
               "invocation logged)") + (f"; {len(cells)} cells, summed: unlearning {unlearn / 60:.1f} min, "
                                        f"evaluation {evaluate / 60:.1f} min, attacks (with their controls' share "
                                        f"outside) {attack / 60:.1f} min, base evaluations {base_s / 60:.1f} min; "
                                        f"peak RSS per cell ≤ {busiest:.0f} MB") \
        + (f"; privacy columns {privacy_s / 60:.1f} min" + (f" ({privacy_s / wall:.1%} of the wall time)" if wall
                                                            else "") if privacy_s else "")
    measured = {"wall_s": wall, "cells": len(cells), "precision": precision,
                **({"kernels": kernels[0], "isa_caps": kernels[1]} if kernels else {}),
                "unlearn_s_total": round(unlearn, 1),
                "eval_s_total": round(evaluate, 1), "attack_s_total": round(attack, 1),
                "base_eval_s_total": round(base_s, 1), "privacy_s_total": round(privacy_s, 1),
                "max_peak_rss_mb": busiest, "per_cell": per_cell}
    note = ""
    if (run_dir / "pyspy.txt").exists():  # written by `make demo-profiled`
        measured["profile"] = profile = summarise_profile(run_dir / "pyspy.txt")
        top = ", ".join(f"{p['phase']} {p['share']:.0%} (mostly {max(p['kinds'], key=p['kinds'].get)})"
                        for p in profile["phases"][:4])
        blocks = ", ".join(f"{k} {v:.0%}" for k, v in sorted(profile["kinds"].items(), key=lambda kv: -kv[1]))
        note = (f"What dominates (py-spy, {profile['samples']} samples at 10/s over the run): {top}. "
                f"By building block: {blocks}. Table below.")
    return PerfRow(key, title, target, measured, summary, None if wall is None else wall <= goal_s, note,
                   commit=", ".join(sorted(commits)) if commits else "")


def privacy_seconds(run_dir: Path) -> float:
    """Seconds the privacy columns took over a run's evaluations, cells and base evaluations alike: the sum of the
    ``privacy_seconds`` rows each evaluation leaves in its ``samples.jsonl`` (``bench.eval.privacy``; issue 49's
    cost budget is a share of the run's wall time)."""
    total = 0.0
    for path in [*run_dir.glob("cells/*/samples.jsonl"), *run_dir.glob("base/*/samples.jsonl")]:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if '"privacy_seconds"' in line:
                    row = json.loads(line)
                    total += sum(v for k, v in row.items() if k != "set" and isinstance(v, (int, float)))
    return total


def _run_commit(cell: dict[str, Any]) -> str:
    """The commit a cell was computed at, as its provenance records it (``-dirty`` for an unclean tree)."""
    git = cell.get("provenance", {}).get("git", {}) or {}
    return (git.get("commit") or "n/a")[:10] + ("-dirty" if git.get("dirty") else "")


def demo_row(run_dir: Path, native: bool | None = None) -> PerfRow:
    return matrix_run_row(run_dir, "demo", 15.0, native)


# -- the demo in fp32 and in bf16: rank agreement --------------------------------------------------------------
#: Where ``perf`` looks for the two demo boards by default: the committed (bf16) board and an fp32 board.
DEMO_BOARD = Path("leaderboards/smollm2-135m-demo")
DEMO_FP32_BOARD = Path("runs/smollm2-135m-demo-fp32-board")
FP32_DEMO_COMMAND = ("UNLEARN_BENCH_NATIVE_BF16=0 unlearn-bench run --config configs/demo.yaml "
                     "--out runs/smollm2-135m-demo-fp32 --report runs/smollm2-135m-demo-fp32-board")


def board_precision(board: Path) -> str:
    """"bf16", "fp32" or "mixed" of a board's cells (``run_precision`` over the provenance its results.json
    repeats)."""
    from bench.perf.agreement import read_results

    provenance = [p for c in read_results(board).get("cells", []) for p in c.get("provenance", [])]
    # results.json keeps no unlearning times: a training precision "off" (nothing trained) is left out instead
    cells = [{"provenance": p, "extras": {"unlearn_time_s": p.get("train_autocast") not in (None, "off")}}
             for p in provenance]
    return run_precision(cells) if cells else "unknown"


def precision_agreement_row(bf16_board: Path, fp32_board: Path) -> PerfRow:
    """The demo in bf16 and in fp32 ranked alike? Kendall's τ-b of the point ranks with its bootstrap interval
    over rows, and the share of pairwise verdicts that agree (``bench.perf.agreement``); not measured until both
    boards exist, and refused (not measured, said why) when a board is not in the precision its role says."""
    from bench.perf.agreement import rank_agreement

    key, title = "demo_precision", "Demo board in fp32 vs bf16: rank agreement"
    target = "reported (τ near 1 and most pairwise verdicts shared: bf16 does not change the board's reading)"
    missing = [b for b in (bf16_board, fp32_board) if not (b / "results.json").exists()]
    if missing:
        return PerfRow(key, title, target, {}, f"not measured: no board at {portable_path(missing[0])}"
                       + (f" (run `{FP32_DEMO_COMMAND}`)" if missing[0] == fp32_board else ""), None)
    precisions = {"bf16": board_precision(bf16_board), "fp32": board_precision(fp32_board)}
    wrong = [f"{portable_path(b)} is {precisions[role]}" for role, b in (("bf16", bf16_board), ("fp32", fp32_board))
             if precisions[role] != role]
    if wrong:
        return PerfRow(key, title, target, {"precisions": precisions},
                       f"not measured: {'; '.join(wrong)} (give a bf16 and an fp32 board)", None)
    agreement = rank_agreement(bf16_board, fp32_board)
    low, high = agreement.tau_ci
    summary = (f"Kendall's τ-b {agreement.tau:.2f} [{low:.2f}, {high:.2f}] over {agreement.rows} rows of "
               f"{len(agreement.tasks)} tasks; pairwise verdicts agree on {agreement.pairs_agree}/{agreement.pairs} "
               f"pairs ({agreement.verdict_share:.0%})")
    measured = {"tau": agreement.tau, "tau_ci": list(agreement.tau_ci), "pairs_agree": agreement.pairs_agree,
                "pairs": agreement.pairs, "rows": agreement.rows, "tasks": agreement.tasks,
                "resamples": agreement.resamples,
                "boards": {"bf16": portable_path(bf16_board), "fp32": portable_path(fp32_board)}}
    note = ("τ-b pools the within-task pairs of point ranks; its 95 % interval is a percentile bootstrap over rows "
            f"({agreement.resamples} resamples), not items. A verdict is 'a ahead', 'b ahead' or 'not separated' at "
            "each board's Holm level.")
    return PerfRow(key, title, target, measured, summary, None, note)


# -- bf16 evaluation ------------------------------------------------------------------------------------
def bench_bf16_eval(base: LoadedModel, quick: bool = False) -> PerfRow:
    """The toxicity and NER tasks' likelihood and multiple-choice sets (the demo's evaluation work that bf16
    can speed up) scored in fp32 and under bf16 autocast: time ratio, how far the values move, and how
    often multiple choice picks the same option."""
    from bench.lm.likelihood import answer_logliks, choose
    from bench.lm.precision import MEAN_RELATIVE_BOUND, eval_precision, native_bf16
    from tasks.ner import TYPING_OPTIONS, TYPING_PROMPT, NerParams, NerTask
    from tasks.toxicity import ToxicityParams, ToxicityTask

    title = "Evaluation under bf16 autocast vs fp32 (toxicity + NER likelihood and multiple-choice sets)"
    target = (f"speed-up where bf16 is native; each metric's mean within {MEAN_RELATIVE_BOUND:.0%} relative of fp32 "
              "(per-item maximum and flipped choices shown: near-ties)")
    device = str(next(base.model.parameters()).device)
    tox = ToxicityTask(ToxicityParams(n_text_eval=4 if quick else 8, n_toxic_probe=8 if quick else 24))
    tox_data = tox.load(0)
    ner = NerTask(NerParams(n_eval_per_type=4 if quick else 8, n_typing_per_type=4 if quick else 24))
    ner_data = ner.load(0)
    tok = base.tokenizer
    # the likelihood metrics the tasks report: mean answer log-likelihood over each probe's items
    metric_sets = {"toxicity/toxic_text_loglik": tox_data.eval["toxic_text"],
                   **{f"ner/{key.split('/')[-1]}": xs for key, xs in ner.probe_items(ner_data).items()}}
    names = [name for name, xs in metric_sets.items() for _ in xs]
    examples = [x for xs in metric_sets.values() for x in xs]
    items = tox_data.eval["choices"]
    prompts = [render_prompt(tok, x.context, chat=False) for x in items]
    prompts += [render_prompt(tok, TYPING_PROMPT.format(span=span), chat=False)
                for _, span, _ in ner_data.eval["typing"]]
    options = [[" " + o for o in x.options] for x in items]
    options += [[" " + v for v in TYPING_OPTIONS.values()]] * len(ner_data.eval["typing"])

    def score(mode: str) -> tuple[list[float], list[list[float]]]:
        with eval_precision(mode, device):
            return (answer_logliks(base.model, tok, examples, batch_size=8),
                    choose(base.model, tok, prompts, options, batch_size=16))

    times: dict[str, list[float]] = {"off": [], "bf16": []}
    values = {}
    for _ in range(1 if quick else 2):  # alternated, best of each
        for mode in ("off", "bf16"):
            start = time.perf_counter()
            values[mode] = score(mode)
            times[mode].append(time.perf_counter() - start)
    (ll32, mc32), (ll16, mc16) = values["off"], values["bf16"]
    per_item = max(abs(b - a) / max(abs(a), 1e-9) for a, b in zip(ll32, ll16))
    means = {}
    for name in metric_sets:
        a = float(np.mean([v for n, v in zip(names, ll32) if n == name]))
        b = float(np.mean([v for n, v in zip(names, ll16) if n == name]))
        means[name] = round(abs(b - a) / max(abs(a), 1e-9), 5)
    worst = max(means.values())
    same = sum(max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
               for a, b in zip(mc32, mc16))
    speedup = min(times["off"]) / min(times["bf16"])
    native = native_bf16(device)
    measured = {"fp32_s": round(min(times["off"]), 2), "bf16_s": round(min(times["bf16"]), 2),
                "speedup": round(speedup, 2), "max_relative_mean_change": round(worst, 5),
                "relative_mean_change": means, "max_relative_loglik_change": round(per_item, 5),
                "same_choice": same, "choice_items": len(mc32), "loglik_items": len(ll32), "native_bf16": native}
    summary = (f"{speedup:.2f}× ({min(times['off']):.1f} s fp32, {min(times['bf16']):.1f} s bf16; bf16 "
               f"{'native' if native else 'emulated'} here); metric means move ≤ {worst:.2%} "
               f"({len(means)} likelihood metrics; one item at most {per_item:.2%}); "
               f"{same}/{len(mc32)} choices the same")
    agree = worst <= MEAN_RELATIVE_BOUND
    return PerfRow("bf16_eval", title, target, measured, summary, (agree and speedup > 1) if native else None,
                   "" if native else "This CPU has no AVX512-BF16/AMX: bf16 runs emulated, so `eval_autocast: auto` "
                   "stays fp32 here; the agreement figures hold on any hardware.")


# -- 6. scaling ---------------------------------------------------------------------------------------
def bench_scaling(base: LoadedModel, sizes: list[int]) -> PerfRow:
    """Evaluation time against eval-set size (likelihood probe + generation) and unlearning time
    against forget-set size (ICU, whose epochs visit every forget example)."""
    from bench.lm.likelihood import answer_logliks
    from bench.plugins import registry
    from bench.testing import make_context

    ICU = registry().get("method", "icu").cls  # noqa: N806 - a class, from the registry

    examples = _train_examples(max(sizes))
    rows = []
    for n in sizes:
        subset = examples[:n]
        t_ll = best_of(lambda: answer_logliks(base.model, base.tokenizer, subset), 1)
        t_gen = best_of(lambda: generate(base.model, base.tokenizer,
                                         [render_prompt(base.tokenizer, e.prompt) for e in subset],
                                         max_new_tokens=16, batch_size=16), 1)
        model = copy.deepcopy(base.model)
        ctx = make_context(model, base.tokenizer)
        ctx.forget, ctx.retain = subset, _train_examples(8)
        ctx.data.retain_pool = ctx.retain
        method = ICU(ICU.Params(max_epochs=1, steps=10_000, batch_size=4, max_length=96))
        start = time.perf_counter()
        method.unlearn(ctx)
        rows.append({"n": n, "loglik_s": round(t_ll, 2), "generate16_s": round(t_gen, 2),
                     "icu_epoch_s": round(time.perf_counter() - start, 2)})
    grow = rows[-1]["icu_epoch_s"] / rows[0]["icu_epoch_s"]
    return PerfRow("scaling", f"Scaling with set size n ∈ {sizes} (embedded model)", "reported",
                   {"rows": rows},
                   f"×{sizes[-1] // sizes[0]} examples → evaluation ×{rows[-1]['loglik_s'] / rows[0]['loglik_s']:.1f} "
                   f"(likelihood), ×{rows[-1]['generate16_s'] / rows[0]['generate16_s']:.1f} (generation, "
                   f"batches of 16), ICU epoch ×{grow:.1f}", None)


# -- report -----------------------------------------------------------------------------------------
def markdown(report: PerfReport) -> str:
    m = report.machine
    lines = [f"# Performance on {m['cpu']} ({m['cores']} cores{', ' + m['gpu'] if 'gpu' in m else ''})", "",
             f"Written {report.finished_at[:10]} at commit {report.commit_label()} by `unlearn-bench perf` — "
             f"torch {m['torch']}, {m['torch_threads']} threads. Ratios are measured side "
             "by side in one process; each row names the commit it was measured at (a run's row: the commit its "
             "cells were computed at).", "",
             "| # | Measurement | Target | Result | Met | Commit |", "|---|---|---|---|---|---|"]
    if report.stale:
        lines[1:1] = ["", f"> **Stale.** {report.stale}"]
    for i, row in enumerate(report.rows, 1):
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(f"| {i} | {row.title} | {row.target} | {row.summary} | {met} | {row.commit or 'n/a'} |")
    lines.append("")
    for row in report.rows:
        if row.note:
            lines += [f"**{row.key}**: {row.note}", ""]
    scaling = next((r for r in report.rows if r.key == "scaling"), None)
    if scaling:
        lines += ["## Scaling", "", "| n | likelihood eval (s) | generation, 16 tokens (s) | ICU epoch (s) |",
                  "|---|---|---|---|"]
        lines += [f"| {r['n']} | {r['loglik_s']} | {r['generate16_s']} | {r['icu_epoch_s']} |"
                  for r in scaling.measured["rows"]]
        lines.append("")
    demo = next((r for r in report.rows if r.key == "demo" and r.measured.get("per_cell")), None)
    if demo:
        lines += ["## Demo matrix, per cell", "", "| cell | wall (s) | unlearn (s) | eval (s) | peak RSS (MB) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {cell} | {v['wall_s']} | {v['unlearn_s']} | {v['eval_s']} | {v['peak_rss_mb']} |"
                  for cell, v in sorted(demo.measured["per_cell"].items())]
        lines.append("")
        if demo.measured.get("profile"):
            lines += ["## Demo matrix, where the time goes (py-spy)", "",
                      "Share of all samples, by harness phase and by the building block the time was spent "
                      "under (native torch time counts against the Python frame that called it).", ""]
            lines += profile_table(demo.measured["profile"]) + [""]
    return "\n".join(lines)


ROWS = ["generation", "lm_eval", "train_step", "matrices", "bf16_eval", "demo", "demo_precision", "study", "scaling"]
#: Report order of row keys (``matrices`` yields two rows).
_ROW_ORDER = {k: i for i, k in enumerate(["generation", "lm_eval", "train_step", "base_cache", "bf16_eval",
                                           "demo", "demo_fp32", "demo_bf16", "demo_fp32_avx2",
                                           "demo_avx2", "demo_precision", "study", "study_fp32", "study_bf16",
                                           "scaling", "ray"])}
#: A family is a listed key that extends no other listed key (demo_fp32 is the demo's).
_ROW_FAMILIES = [k for k in _ROW_ORDER if not any(k.startswith(f"{f}_") for f in _ROW_ORDER)]


def _row_rank(key: str) -> tuple[int, int, str]:
    """Rows in report order: by family (a key ``demo_fp32_avx512`` is the demo's), then the listed order,
    then any variant not listed (a capped study, a new precision) by name after its family's listed ones."""
    family = next((i for i, f in enumerate(_ROW_FAMILIES) if key == f or key.startswith(f + "_")), len(_ROW_FAMILIES))
    return family, _ROW_ORDER.get(key, len(_ROW_ORDER)), key


def run_perf(out_dir: Path, demo_runs: Path, quick: bool = False, only: list[str] | None = None,
             gsm8k_path: str | None = None, study_runs: Path = Path("runs/smollm2-135m-study"),
             demo_boards: tuple[Path, Path] = (DEMO_BOARD, DEMO_FP32_BOARD)) -> tuple[PerfReport, list[Path]]:
    """Run every benchmark (``quick``: smaller sizes, for tests) and write the report files."""
    facts = machine_facts()
    report = PerfReport(facts)
    want = (lambda key: only is None or key in only)
    base = ModelCache().base(EMBEDDED, "cpu", "float32") if any(map(want, ["generation", "lm_eval", "train_step",
                                                                    "scaling", "bf16_eval"])) else None
    if want("generation"):
        report.rows.append(bench_generation(base, 16, 16 if quick else 64))
    if want("lm_eval"):
        from bench.perf.vs_lm_eval import bench_lm_eval

        report.rows.append(bench_lm_eval(base, 8 if quick else 16, 32 if quick else 96, gsm8k_path))
    if want("train_step"):
        report.rows.append(bench_train_step(base, 4, 128, 2 if quick else 4))
    with tempfile.TemporaryDirectory(prefix="ub-perf-") as tmp:
        if want("matrices"):
            report.rows += bench_matrices(Path(tmp), 2 if quick else 6)
    if want("bf16_eval"):
        report.rows.append(bench_bf16_eval(base, quick))
    if want("demo"):
        report.rows.append(demo_row(demo_runs, facts["native_bf16"]))
    if want("demo_precision"):
        report.rows.append(precision_agreement_row(*demo_boards))
    if want("study"):
        report.rows.append(matrix_run_row(study_runs, "study", 90.0, facts["native_bf16"]))
    if want("scaling"):
        report.rows.append(bench_scaling(base, [4, 8] if quick else [8, 16, 32]))
    here_label = report.commit_label()
    for row in report.rows:
        row.commit = row.commit or here_label
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = machine_slug(facts)
    md, js = out_dir / f"{slug}.md", out_dir / f"{slug}.json"
    if only is not None and js.exists():  # a partial run updates its rows in the existing report
        fresh = {r.key for r in report.rows}
        previous = json.loads(js.read_text())
        report.rows += [PerfRow(**{"commit": "", **r}) for r in previous["rows"] if r["key"] not in fresh]
        report.stale = previous.get("stale", "")  # the rows kept are as stale as before
    report.rows.sort(key=lambda r: _row_rank(r.key))
    atomic_write_text(md, markdown(report))
    atomic_write_json(js, report.to_json())
    return report, [md, js]


#: A local GSM8K copy as older reports named it: by its absolute path on the producing machine.
_LEGACY_LOCAL_DATA = re.compile(r"GSM8K \(local /[^)]*\)")


def rerender(json_path: Path, stale: str = "") -> list[Path]:
    """Render a committed report again from its JSON with this generator: paths made portable, a local dataset
    named without its machine path (older reports recorded no checksum), the report's own date and commit in
    the header, rows without a commit given the report's (they were measured in that invocation), and ``stale``
    (why and by what it is superseded) as a banner. No number changes: every one comes from the JSON."""
    data = json.loads(json_path.read_text())
    text = _LEGACY_LOCAL_DATA.sub("GSM8K (a local copy; its path is not shown and no checksum was recorded)",
                                  json.dumps(portable(data)))
    data = json.loads(text)
    report = PerfReport(data["machine"], [PerfRow(**{"commit": "", **r}) for r in data["rows"]],
                        finished_at=data.get("finished_at", ""), git=data.get("git") or {},
                        stale=stale or data.get("stale", ""))
    for row in report.rows:
        row.commit = row.commit or report.commit_label()
    md = json_path.with_suffix(".md")
    atomic_write_text(md, markdown(report))
    atomic_write_json(json_path, {**report.to_json(), "versions": data.get("versions")})
    return [md, json_path]
