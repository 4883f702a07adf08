"""Command line: ``unlearn-bench run | eval | teach | plan | plugins | report | verify | perf``.

User errors print one line (``error: …`` naming the fix) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import UserError

log = logging.getLogger("unlearn_bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn-bench", description="Benchmark LLM unlearning methods.")
    parser.add_argument("--version", action="version", version=f"unlearn-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a method x task x seed matrix")
    run.add_argument("--config", help="YAML run configuration")
    run.add_argument("--model", help="HF id, local path, 'smollm2-135m-instruct' or 'tiny-random-llama'")
    run.add_argument("--methods", nargs="+")
    run.add_argument("--tasks", nargs="+")
    run.add_argument("--seeds", nargs="+", type=int)
    run.add_argument("--preset", choices=["demo", "paper"])
    run.add_argument("--out", help="results directory (resumable)")
    run.add_argument("--device", help="auto | cpu | cuda | mps")
    run.add_argument("--dtype", help="auto | float32 | bfloat16 | float16")
    run.add_argument("--executor", choices=["local", "ray"], help="local (default) or ray")
    run.add_argument("--ray-address", help="join a Ray cluster: auto | ray://host:port (default: local Ray)")
    run.add_argument("--num-cpus", type=float, help="CPUs per cell (Ray)")
    run.add_argument("--num-gpus", type=float, help="GPUs per cell (Ray)")
    run.add_argument("--max-retries", type=int, help="retries of a failed cell or lost worker (Ray)")
    run.add_argument("--force", action="store_true", help="rerun finished cells")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--report", metavar="DIR", help="write a leaderboard to DIR when the run ends")

    plan = sub.add_parser("plan", help="predicted peak memory and a rough time per cell, nothing loaded")
    for flag in ("--config", "--model", "--methods", "--tasks", "--preset", "--device", "--dtype"):
        plan._add_action(next(a for a in run._actions if flag in a.option_strings))
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    plan.add_argument("--power", type=float, metavar="EFFECT",
                      help="instead of memory: the items (per number of seeds) each metric needs to separate two rows "
                           "whose difference is EFFECT x the reference's per-item SD, at Holm's level for the "
                           "config's rows, from the evaluations already stored in the config's out")

    ev = sub.add_parser("eval", help="score checkpoints unlearned elsewhere against their base, as leaderboard rows")
    ev.add_argument("--base", required=True, help="the model the checkpoints were unlearned from (as --model)")
    ev.add_argument("--checkpoints", nargs="+", required=True, metavar="DIR_OR_ID",
                    help="saved models or PEFT adapters (folders or HF ids); NAME=DIR_OR_ID names the row")
    for flag in ("--config", "--tasks", "--seeds", "--out", "--device", "--dtype", "--force", "--no-progress",
                 "--report"):
        ev._add_action(next(a for a in run._actions if flag in a.option_strings))

    teach = sub.add_parser("teach", help="build (or find) the taught and oracle models of taught tasks")
    for flag in ("--config", "--model", "--tasks", "--no-progress"):
        teach._add_action(next(a for a in run._actions if flag in a.option_strings))
    teach.add_argument("--ship", action="store_true",
                       help="copy the adapters into each task's package (taught/<model>/), for fresh clones")
    teach.add_argument("--force", action="store_true", help="train again even when a cached or shipped pair exists")

    plugins = sub.add_parser("plugins", help="list registered methods, tasks and reporters")
    plugins.add_argument("--json", action="store_true")
    plugins.add_argument("--check", action="store_true",
                         help="also import every plugin class and check it (built-ins register lazily)")

    report = sub.add_parser("report", help="write leaderboards from results directories, or check one (--rescore)")
    report.add_argument("--runs", nargs="+", help="results directories (required unless --rescore)")
    report.add_argument("--out", help="leaderboard directory (required unless --rescore); with --rescore: keep "
                                      "the regenerated board in OUT/<board name>")
    report.add_argument("--rescore", metavar="BOARD_DIR",
                        help="regenerate a board from its board-data.json.gz alone and compare every file byte "
                             "for byte (exit 1 if any differs)")
    report.add_argument("--reporters", nargs="+", help="default: all registered reporters")
    report.add_argument("--utility-budget", type=float, default=None,
                        help="each scored utility metric's allowed loss beyond the band between the taught model and "
                             "the gold standard, in units of its minimum meaningful effect (default 2; "
                             "docs/scoring.md)")
    verify = sub.add_parser("verify", help="re-run cells of a committed board here and check each metric against "
                                           "a tolerance from the board's own spread (docs/verify.md)")
    verify.add_argument("board", metavar="BOARD_DIR", help="a board directory with board-data.json.gz")
    pick = verify.add_mutually_exclusive_group(required=True)
    pick.add_argument("--cells", type=int, metavar="N", help="re-run N finished cells sampled with --seed")
    pick.add_argument("--cell", nargs="+", metavar="ID", help="re-run these cells (ids as in the board's data)")
    verify.add_argument("--seed", type=int, default=0, help="seed of the sample of --cells (default 0)")
    verify.add_argument("--alpha", type=float, default=None,
                        help="family-wise false-alarm rate per cell over its metrics (default 0.01)")
    verify.add_argument("--out", help="results directory for the re-runs (default: a new runs/verify-BOARD-* "
                                      "folder; an existing results directory is resumed)")
    verify.add_argument("--json", action="store_true", help="every metric's check as JSON")
    verify.add_argument("--no-progress", action="store_true", help="hide progress bars")
    perf = sub.add_parser("perf", help="measure performance side by side; writes leaderboards/perf/<machine>.md")
    perf.add_argument("--out", default="leaderboards/perf")
    perf.add_argument("--demo-runs", default="runs/smollm2-135m-demo", help="a finished demo run to report")
    perf.add_argument("--study-runs", default="runs/smollm2-135m-study", help="a finished study run to report")
    perf.add_argument("--gsm8k-path", help="GSM8K folder (test.jsonl) for the lm-eval comparison; "
                                            "default: GSM-symbolic questions")
    perf.add_argument("--demo-boards", nargs=2, metavar=("BF16_BOARD", "FP32_BOARD"),
                      default=["leaderboards/smollm2-135m-demo", "runs/smollm2-135m-demo-fp32-board"],
                      help="the demo's boards in bf16 and in fp32, for the rank-agreement row (demo_precision)")
    perf.add_argument("--only", nargs="+", help="run only these rows")
    perf.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    return parser


def cmd_plugins(args: argparse.Namespace) -> int:
    from bench import API_VERSION
    from bench.plugins import registry

    reg = registry()
    rows = reg.rows()
    broken = [{"kind": "broken", "name": p.plugin, "package": p.package, "version": p.version, "stage": p.stage,
               "error": p.error, "fix": p.fix} for p in reg.problems]
    if args.json:
        print(json.dumps(rows + broken, indent=2))
    else:
        print(f"plugin API {API_VERSION}")
        width = max((len(r["name"]) for r in rows + broken), default=4)
        for r in rows:
            print(f"{r['kind']:<9} {r['name']:<{width}}  {r['package']} {r['version']}")
        for r in broken:
            print(f"{'broken':<9} {r['name']:<{width}}  {r['package']} {r['version']}: failed at {r['stage']}: "
                  f"{r['error']}; fix: {r['fix']}")
    if args.check:
        failures = reg.check()
        for line in failures:
            print(f"error: {line}", file=sys.stderr)
        return 1 if failures else 0
    return 0


def write_report(run_dirs: list[str], out: str, reporter_names: list[str] | None = None,
                 utility_budget: float | None = None) -> list[Path]:
    """Every report of the runs into ``out``, with the board's data file (``bench.report.audit``): a board can
    always be rescored from its own directory."""
    from bench.report import load_table
    from bench.report.audit import make_reporters, write_board
    from bench.report.scores import UTILITY_BUDGET

    names, reporters = make_reporters(reporter_names)  # unknown names fail before writing
    table = load_table(run_dirs, utility_budget=UTILITY_BUDGET if utility_budget is None else utility_budget)
    _ = table.scoring  # computed (and any refusal raised) before anything is written
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a directory; give a directory for the leaderboard")
    return write_board(table, out_dir, reporters, names)


def cmd_report(args: argparse.Namespace) -> int:
    if args.rescore:
        return _rescore(args)
    if not args.runs or not args.out:
        raise UserError("report needs --runs RUN_DIR... and --out DIR (or --rescore BOARD_DIR to check a board)")
    for path in write_report(args.runs, args.out, args.reporters, args.utility_budget):
        print(path)
    return 0


def _rescore(args: argparse.Namespace) -> int:
    """``report --rescore BOARD_DIR``: one line per file, exit 1 unless every file is regenerated identically."""
    from bench.report.audit import IDENTICAL, rescore_files

    if args.runs:
        raise UserError("--rescore reads the board's own data file, never runs; drop --runs")
    if args.utility_budget is not None:
        raise UserError("--rescore uses the utility budget recorded in the board; drop --utility-budget")
    status = rescore_files(args.rescore, args.out, args.reporters)
    for name, state in status.items():
        print(f"{name}: {state}")
    return 0 if all(s == IDENTICAL for s in status.values()) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from bench.engine.config import load_config

    overrides = {"model": args.model, "methods": args.methods, "tasks": args.tasks, "seeds": args.seeds,
                 "preset": args.preset, "out": args.out, "device": args.device, "dtype": args.dtype,
                 "executor": args.executor, "ray_address": args.ray_address, "num_cpus": args.num_cpus,
                 "num_gpus": args.num_gpus, "max_retries": args.max_retries,
                 "progress": False if args.no_progress else None}
    if args.no_progress:
        os.environ["UNLEARN_BENCH_PROGRESS"] = "0"
    return _execute(load_config(args.config, overrides), args)


def _execute(config: Any, args: argparse.Namespace) -> int:
    """Run a configured matrix (tuned first when it says so), print its summary, write the report if asked;
    exit status 1 when a cell failed."""
    from bench.engine.executors import execute
    from bench.plugins import registry

    if config.tune is not None:
        from bench.engine.tuning import run_tuned

        summary = run_tuned(config, registry(config.plugins), force=args.force)
    else:
        summary = execute(config, registry(config.plugins), force=args.force)
    print(summary.line())
    if args.report:
        for path in write_report([config.out], args.report):
            print(path)
    return 0 if all(s != "failed" for s in summary.ran.values()) else 1


def cmd_eval(args: argparse.Namespace) -> int:
    """``run`` with one pseudo-method cell per checkpoint (``bench.engine.checkpoint_eval``)."""
    from bench.engine.checkpoint_eval import check_compatible, parse_checkpoints
    from bench.engine.config import load_config

    if args.no_progress:
        os.environ["UNLEARN_BENCH_PROGRESS"] = "0"
    config = load_config(args.config, {"model": args.base, "tasks": args.tasks, "seeds": args.seeds,
                                       "out": args.out, "device": args.device, "dtype": args.dtype,
                                       "progress": False if args.no_progress else None})
    checkpoints = parse_checkpoints(args.checkpoints)
    for checkpoint in checkpoints:
        check_compatible(config.model, checkpoint["path"])
    config.methods = ["checkpoint"]
    config.method_params = {"checkpoint": {"path": [f"{c['label']}={c['path']}" for c in checkpoints]}}
    config.train_params, config.save_model = {}, "none"
    config.plugins = [*config.plugins, "bench.engine.checkpoint_eval"]
    config.tune = None  # a checkpoint has nothing to tune
    return _execute(config, args)


def cmd_teach(args: argparse.Namespace) -> int:
    """Build the (taught, oracle) pairs of a config's ``teach:`` tasks (or of ``--tasks`` with their default
    recipes) without running any cell — every one of its ``teach_pairs`` pairs; ``--ship`` writes them into the
    tasks' packages (pair 0 only: further pairs are built on first use and cached, docs/teaching.md)."""
    from bench.engine.config import load_config, pair_recipe, plan_teaching
    from bench.params import build_params
    from bench.plugins import registry as load_registry
    from bench.teach import ensure, ship

    if args.no_progress:
        os.environ["UNLEARN_BENCH_PROGRESS"] = "0"
    config = load_config(args.config, {"model": args.model})
    if args.tasks:
        config.tasks = list(args.tasks)
        config.teach = {t: config.teach.get(t, {}) for t in args.tasks}
    if not config.teach:
        raise UserError("nothing to teach: give --tasks, or a config with a teach: block")
    registry = load_registry(config.plugins)
    classes = {t: registry.get("task", t).cls for t in config.teach}
    recipes = plan_teaching(config, classes)
    for name, cls in classes.items():
        task = cls(build_params(cls.Params, config.task_params.get(name, {}), f"task_params.{name}"))
        for index in range(config.teach_pairs):
            pair = ensure(config.model, task, pair_recipe(recipes[name], index), progress=not args.no_progress,
                          force_train=args.force)
            built = pair.record.get("built", {})
            times = ", ".join(f"{role} {built[role]['seconds']:.0f} s" for role in ("taught", "oracle")
                              if role in built)
            print(f"{name} pair {index}: {pair.key} ({pair.record.get('origin')}{'; ' + times if times else ''}) "
                  f"in {pair.folder}")
            if args.ship and index == 0:
                print(f"{name}: shipped to {ship(pair, cls, config.model)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from bench.engine.config import load_config
    from bench.engine.planner import plan_run, render
    from bench.plugins import registry

    config = load_config(args.config, {"model": args.model, "methods": args.methods, "tasks": args.tasks,
                                       "preset": args.preset, "device": args.device, "dtype": args.dtype})
    if args.power is not None:
        return _plan_power(config, args)
    plan = plan_run(config, registry(config.plugins))
    print(json.dumps(plan.to_json(), indent=2) if args.json else render(plan))
    return 0


def _plan_power(config: Any, args: argparse.Namespace) -> int:
    """``plan --power EFFECT``: items per metric from the reference evaluations already in ``config.out``."""
    from bench.engine.store import ResultsStore
    from bench.inference.power import plan_items, render_plan

    if args.power <= 0:
        raise UserError(f"--power takes a positive effect in SD units (e.g. 0.25), got {args.power}")
    store = ResultsStore(config.out)
    bases = store.all_bases() if store.root.exists() else []
    if not bases:
        raise UserError(f"{config.out} holds no base evaluation yet: run the config once (any size), then plan")
    n_rows = {task: len(config.methods) + 1 + (1 + int(config.untaught_row) if task in config.teach else 0)
              for task in config.tasks}  # methods, the base (taught) model, the oracle and the untaught row
    rows = plan_items(bases, store.all_cells(), args.power, config.tasks, n_rows=n_rows)
    print(json.dumps(rows, indent=2) if args.json else render_plan(rows, args.power))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify BOARD_DIR``: one line per re-run cell; exit 0 all within, 1 some outside or failed, 2 bad input."""
    from bench.report.verify import ALPHA, verify

    if args.no_progress:
        os.environ["UNLEARN_BENCH_PROGRESS"] = "0"
    report = verify(args.board, n_cells=args.cells, names=args.cell, seed=args.seed,
                    alpha=ALPHA if args.alpha is None else args.alpha, out=args.out, progress=not args.no_progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(report.header())
        for cell in report.cells:
            print(cell.line())
    return report.exit_status


def cmd_perf(args: argparse.Namespace) -> int:
    from bench.errors import did_you_mean
    from bench.perf import ROWS, run_perf

    for name in args.only or []:
        if name not in ROWS:
            raise UserError(f"unknown perf row '{name}'; {did_you_mean(name, ROWS)}")
    report, paths = run_perf(Path(args.out), Path(args.demo_runs), quick=args.quick, only=args.only,
                             gsm8k_path=args.gsm8k_path, study_runs=Path(args.study_runs),
                             demo_boards=(Path(args.demo_boards[0]), Path(args.demo_boards[1])))
    for row in report.rows:
        print(f"{row.key}: {row.summary}")
    for path in paths:
        print(path)
    return 0


#: Exit status when the reader of stdout went away (``… | head``): 128 + SIGPIPE, what a shell reports for a
#: program killed by the signal; not 1, which means "a cell failed / a value outside its tolerance" here.
CLOSED_PIPE = 141


def closed_pipe() -> int:
    """Quiet exit after the reader of stdout closed the pipe (Python's documented recipe, "Note on SIGPIPE" in
    the signal module's docs): stdout is pointed at devnull so that the interpreter's flush at exit cannot raise
    a second BrokenPipeError; whatever the command wrote to files before is untouched."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return CLOSED_PIPE


def _flush_or_close() -> None:
    """Flush stdout now, so that a closed pipe is handled here and not in the interpreter's exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        closed_pipe()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    try:
        args = _parser().parse_args(argv)
    except BrokenPipeError:  # --help or --version into a closed pipe
        return closed_pipe()
    except SystemExit:  # --help, --version or a usage error: argparse's own exit, after its output is out
        _flush_or_close()
        raise
    handlers = {"run": cmd_run, "eval": cmd_eval, "plan": cmd_plan, "plugins": cmd_plugins, "report": cmd_report,
                "perf": cmd_perf, "teach": cmd_teach, "verify": cmd_verify}
    try:
        status = handlers[args.command](args)
        sys.stdout.flush()  # inside the try: a reader gone before the last buffered line is a closed pipe too
        return status
    except BrokenPipeError:
        return closed_pipe()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished cells are kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
