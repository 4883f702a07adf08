"""unlearn-bench: a benchmark harness for LLM unlearning methods.

``bench`` is the one import a plugin author needs: the contracts (what a method, a task and a reporter
are, and what they exchange), the hook marker, the loss and likelihood building blocks, the metric and
sandbox helpers, and the conformance checks — everything listed in ``__all__``. A method in one file::

    from bench import LossMethod, TrainParams, cross_entropy, hookimpl, logits

The engine (runner, executors, store, reports, perf tooling) lives in submodules and is not part of this
surface. Names resolve lazily (PEP 562), so ``import bench`` does not import torch: the CLI's ``--help``
stays instant and torch loads only when a model-facing name is first used. Built-in methods and tasks
(top-level ``methods`` and ``tasks`` packages) use this same surface and are registered through the
``unlearn_bench`` entry-point group exactly like third-party plugins.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bench.exports import EXPORTS as _EXPORTS  # public name -> its submodule (a leaf module)

__version__ = "0.1.0"

#: The plugin API's version (semantic: a major bump breaks plugins, a minor one adds names; a renamed or
#: moved name keeps working, with a ``DeprecationWarning``, for one minor version — ``bench.deprecation``).
#: A plugin module may set ``BENCH_API = "1.0"`` (the major.minor it was written against): a registry that
#: provides another major, or an older minor, refuses it in one line naming both versions.
API_VERSION = "1.0.0"

#: Version of the on-disk results layout. A results directory written with another schema version is
#: refused (never silently mixed or overwritten).
RESULTS_SCHEMA = 2

__all__ = sorted([*_EXPORTS, "API_VERSION", "RESULTS_SCHEMA", "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        from bench.deprecation import RENAMED

        if name in RENAMED:  # a renamed name still resolves, with a warning naming the new one
            from bench.deprecation import module_getattr

            return module_getattr("bench", whole_module_moved=False, stacklevel=3)(name)
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from bench.api import (
        PROBE_PREFIX,
        TOFU_RECIPE,
        Attack,
        AttackContext,
        Attacked,
        AttackParams,
        Better,
        Evaluation,
        Example,
        Group,
        Method,
        Metric,
        Reporter,
        Task,
        TaskData,
        TeachData,
        TrainParams,
        UnlearnContext,
        forget_prompts,
        probe_fields,
    )
    from bench.data.sources import content_hash, hub_rows, read_jsonl
    from bench.data.text import Batch, chat_messages, make_batch, raw_context, render_prompt
    from bench.errors import UserError, unknown
    from bench.eval.sandbox import SandboxLimits, SandboxResult, run_program, run_programs
    from bench.eval.stats import bootstrap_ci, mean_metric
    from bench.hookspecs import hookimpl
    from bench.lm.generation import generate
    from bench.lm.likelihood import answer_logliks, choose
    from bench.lm.losses import cross_entropy, kl_on_answers, sequence_logprob, shift, token_logprobs
    from bench.lm.training import (
        LossMethod,
        Reference,
        logits,
        make_optimizer,
        merged,
        shuffled_batches,
        train,
        with_adapter,
    )
    from bench.params import build_params, require_at_least_one, require_data_files, require_file
    from bench.results import BaseResult, CellResult
    from bench.testing import check_attack, check_method, check_task
