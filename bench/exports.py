"""The plugin API's table: every public name of ``bench`` and the submodule that defines it.

A leaf module (it imports nothing), so that the facade (``bench/__init__.py``) and the deprecation shims
(``bench.deprecation``) both read it without importing each other.
"""

from __future__ import annotations

#: Public name -> the submodule that defines it.
EXPORTS: dict[str, str] = {
    # contracts
    **dict.fromkeys(("Attack", "AttackContext", "AttackParams", "Attacked"), "api"),
    **dict.fromkeys(("Better", "Evaluation", "Example", "Group", "Method", "Metric", "Reporter", "Task", "TaskData",
                     "TeachData",
                     "PROBE_PREFIX", "TOFU_RECIPE", "TrainParams", "UnlearnContext", "forget_prompts", "probe_fields"),
                  "api"),
    "hookimpl": "hookspecs",
    **dict.fromkeys(("BaseResult", "CellResult"), "results"),
    **dict.fromkeys(("UserError", "unknown"), "errors"),
    **dict.fromkeys(("build_params", "require_at_least_one", "require_data_files", "require_file"), "params"),
    # training building blocks
    **dict.fromkeys(("LossMethod", "Reference", "logits", "make_optimizer", "merged", "shuffled_batches", "train",
                     "with_adapter"), "lm.training"),
    **dict.fromkeys(("cross_entropy", "kl_on_answers", "sequence_logprob", "shift", "token_logprobs"), "lm.losses"),
    **dict.fromkeys(("Batch", "chat_messages", "make_batch", "raw_context", "render_prompt"), "data.text"),
    # evaluation building blocks
    **dict.fromkeys(("answer_logliks", "choose"), "lm.likelihood"),
    "generate": "lm.generation",
    **dict.fromkeys(("bootstrap_ci", "mean_metric"), "eval.stats"),
    **dict.fromkeys(("SandboxLimits", "SandboxResult", "run_program", "run_programs"), "eval.sandbox"),
    **dict.fromkeys(("content_hash", "hub_rows", "read_jsonl"), "data.sources"),
    # conformance
    **dict.fromkeys(("check_attack", "check_method", "check_task"), "testing"),
}
