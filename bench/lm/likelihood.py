"""Likelihood probes: how much probability the model puts on reference answers.

Generative metrics are near zero for small models, so every task also reports the mean per-token
log-likelihood of reference answers (canonical code, gold entity lists, toxic continuations). It moves
smoothly under unlearning and is cheap enough to call between rounds.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from bench.api import Example
from bench.data.text import IGNORE, collate, encode
from bench.engine.progress import bar
from bench.lm.losses import mean_token_logprob, sequence_logprob


@torch.no_grad()
def answer_logliks(model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 8,
                   max_length: int = 512, progress: bool = False, desc: str = "likelihood",
                   reduction: str = "mean") -> list[float]:
    """Log-likelihood of each example's answer, in input order: the mean per token (``reduction="mean"``)
    or the sum over its tokens (``"sum"``, lm-eval's loglikelihood of a continuation)."""
    reduce = {"mean": mean_token_logprob, "sum": sequence_logprob}[reduction]
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    values = [0.0] * len(encoded)
    trim = supports_logits_to_keep(model)
    was_training = model.training
    model.eval()
    try:
        for start in bar(range(0, len(order), batch_size), progress, desc, unit="batch"):
            idx = order[start:start + batch_size]
            batch = collate([encoded[i] for i in idx], tokenizer.pad_token_id).to(device)
            logits, labels = _answer_logits(model, batch, trim)
            for j, v in zip(idx, reduce(logits, labels).tolist()):
                values[j] = v
    finally:
        model.train(was_training)
    return values


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the (possibly PEFT-wrapped) model's forward takes ``logits_to_keep`` (transformers >= 4.50)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def _answer_logits(model: Any, batch: Any, trim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels from the position before the batch's earliest answer token onwards.

    Prompt positions carry no loss, so their vocabulary projection (a fifth of a small model's FLOPs
    and a ``[B, L, V]`` float tensor) is skipped; the values are the same as with full logits.
    """
    if not trim:
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch.labels
    answer = (batch.labels != IGNORE).any(0).nonzero()
    start = max(0, int(answer[0]) - 1) if len(answer) else 0
    keep = batch.input_ids.shape[1] - start
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep)
    return out.logits, batch.labels[:, start:]


def choose(model: Any, tokenizer: Any, prompts: Sequence[str], options: Sequence[Sequence[str]], *,
           batch_size: int = 16) -> list[list[float]]:
    """Multiple choice as lm-evaluation-harness scores it: the summed log-likelihood of every option as a
    continuation of its (already rendered) prompt; the answer is the argmax. Options get no end-of-turn
    token, so only the option's own tokens are compared."""
    examples = [Example(prompt, option, chat=False) for prompt, opts in zip(prompts, options) for option in opts]
    sums = answer_logliks(model, tokenizer, examples, batch_size=batch_size, reduction="sum")
    out, start = [], 0
    for opts in options:
        out.append(sums[start:start + len(opts)])
        start += len(opts)
    return out
