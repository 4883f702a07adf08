"""Likelihood probes: how much probability the model puts on reference answers.

Generative metrics are near zero for small models, so every task also reports the mean per-token
log-likelihood of reference answers (canonical code, gold entity lists, toxic continuations). It moves
smoothly under unlearning and is cheap enough to call between rounds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from bench.api import Example
from bench.data.text import IGNORE, Encoded, collate, encode
from bench.engine.progress import bar
from bench.lm.kv import (
    plan_prefill_groups,
    prefill,
    prefix_cache,
    shared_prefix_groups,
    supports_logits_to_keep,
    supports_shared_prefix,
    with_cache,
)
from bench.lm.losses import mean_token_logprob, sequence_logprob
from bench.lm.precision import linear_weights_in_autocast_dtype


@torch.no_grad()
def answer_logliks(model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 8,
                   max_length: int = 512, progress: bool = False, desc: str = "likelihood",
                   reduction: str = "mean") -> list[float]:
    """Log-likelihood of each example's answer, in input order: the mean per token (``reduction="mean"``)
    or the sum over its tokens (``"sum"``, lm-eval's loglikelihood of a continuation)."""
    reduce = {"mean": mean_token_logprob, "sum": sequence_logprob}[reduction]
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    return _encoded_logliks(model, encoded, tokenizer.pad_token_id, batch_size, reduce, progress, desc)


def _encoded_logliks(model: Any, encoded: Sequence[Any], pad_id: int, batch_size: int, reduce: Any,
                     progress: bool = False, desc: str = "likelihood", overhead_tokens: int = 48,
                     min_shared_prefix: int = 32) -> list[float]:
    """``reduce`` over each encoded example's answer tokens, batches of similar length, in input order.

    Rows whose prompts begin with the same ``min_shared_prefix`` or more tokens (a system prompt and a task
    instruction, a prompt attack's template or in-context examples) run that prefix once into a KV cache
    their remaining tokens continue from (``shared_prefix_groups``): same values up to float rounding."""
    device = next(model.parameters()).device
    groups = shared_prefix_groups(encoded, min_shared_prefix) if supports_shared_prefix(model) else []
    grouped = {i for _, rows in groups for i in rows}
    alone = [i for i in range(len(encoded)) if i not in grouped]
    # Batches of up to ``batch_size`` rows of similar length, cut where padding would cost more than another
    # forward pass: a CPU forward is compute-bound, so pad tokens cost as much as real ones (a length-sorted
    # batch of 8 HumanEval items spends a third of its tokens on padding).
    batches = [(0, [alone[j] for j in part]) for part in
               plan_prefill_groups([len(encoded[i].input_ids) for i in alone], overhead_tokens, max_rows=batch_size)]
    for shared, rows in groups:
        batches += [(shared, [rows[j] for j in part]) for part in plan_prefill_groups(
            [len(encoded[i].input_ids) - shared for i in rows], overhead_tokens, max_rows=batch_size)]
    values = [0.0] * len(encoded)
    trim = supports_logits_to_keep(model)
    was_training = model.training
    model.eval()
    prefix: tuple[tuple[int, ...], Any] = ((), None)  # the current group's prefix tokens and cache
    try:
        with linear_weights_in_autocast_dtype(model):  # one weight cast per call, not one per forward pass
            for shared, idx in bar(batches, progress, desc, unit="batch"):
                if shared:
                    tokens = tuple(encoded[idx[0]].input_ids[:shared])
                    if tokens != prefix[0]:  # a group's batches come one after another
                        prefix = (tokens, prefix_cache(model, tokens, device))
                    logits, labels = _suffix_logits(model, prefix[1], shared, [encoded[i] for i in idx],
                                                    pad_id, device, trim)
                else:
                    batch = collate([encoded[i] for i in idx], pad_id).to(device)
                    logits, labels = _answer_logits(model, batch, trim)
                for j, v in zip(idx, reduce(logits, labels).tolist()):
                    values[j] = v
    finally:
        model.train(was_training)
    return values


def _suffix_logits(model: Any, prefix_cache: Any, shared: int, rows: Sequence[Any], pad_id: int, device: Any,
                   trim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of the rows' tokens after their ``shared`` prefix, continued from a copy of its
    cache repeated once per row (right-padded, positions counted on from the prefix)."""
    batch = collate([Encoded(e.input_ids[shared:], e.labels[shared:]) for e in rows], pad_id).to(device)
    cache = copy.deepcopy(prefix_cache)  # batch_select_indices replaces the copy's tensors, not the prefix's
    cache.batch_select_indices(torch.zeros(len(rows), dtype=torch.long, device=device))
    width = batch.input_ids.shape[1]
    positions = (shared + torch.arange(width, device=device)).expand(len(rows), width)
    mask = torch.cat([torch.ones(len(rows), shared, dtype=batch.attention_mask.dtype, device=device),
                      batch.attention_mask], dim=1)
    return _answer_logits(model, batch, trim, attention_mask=mask, position_ids=positions,
                          **with_cache(model, cache), use_cache=True)


def _answer_logits(model: Any, batch: Any, trim: bool, **forward: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels from the position before the batch's earliest answer token onwards; ``forward``
    adds to or overrides the model call's keywords (a prefix's cache, mask and positions).

    Prompt positions carry no loss, so their vocabulary projection (a fifth of a small model's FLOPs
    and a ``[B, L, V]`` float tensor) is skipped; the values are the same as with full logits.
    """
    forward = {"attention_mask": batch.attention_mask, **forward}
    if not trim:
        return model(input_ids=batch.input_ids, **forward).logits, batch.labels
    answer = (batch.labels != IGNORE).any(0).nonzero()
    start = max(0, int(answer[0]) - 1) if len(answer) else 0
    keep = batch.input_ids.shape[1] - start
    out = model(input_ids=batch.input_ids, logits_to_keep=keep, **forward)
    return out.logits, batch.labels[:, start:]


@torch.no_grad()
def choose(model: Any, tokenizer: Any, prompts: Sequence[str], options: Sequence[Sequence[str]], *,
           batch_size: int = 16, max_length: int = 512, share_prompt: bool = True) -> list[list[float]]:
    """Multiple choice as lm-evaluation-harness scores it: the summed log-likelihood of every option as a
    continuation of its (already rendered) prompt; the answer is the argmax. Options get no end-of-turn
    token, so only the option's own tokens are compared.

    Why ``share_prompt``: an item's options share its prompt token for token (prompt and option are
    tokenised apart, ``encode``), and the prompt is most of every sequence (a few-shot context or a
    document before a one-sentence option). Scored one sequence per option, the prompt is run once per
    option; shared, it runs once per item into a KV cache that every option continues from. Same sums up
    to float rounding (padding sides differ), tested against the per-option path. ``batch_size`` counts
    option rows either way.
    """
    examples = [Example(prompt, option, chat=False) for prompt, opts in zip(prompts, options) for option in opts]
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    spans, start = [], 0
    for opts in options:
        spans.append(range(start, start + len(opts)))
        start += len(opts)
    sums = [0.0] * len(encoded)
    prompt_of = [e.input_ids[:e.labels.count(IGNORE)] for e in encoded]
    shared = [span for span in spans if share_prompt and len(span) > 1
              and all(prompt_of[i] == prompt_of[span[0]] for i in span)]
    shared_rows = {i for span in shared for i in span}
    alone = [i for i in range(len(encoded)) if i not in shared_rows]
    with linear_weights_in_autocast_dtype(model):  # once for both paths (the inner casts find bf16 and skip)
        for i, value in zip(alone, _encoded_logliks(model, [encoded[i] for i in alone], tokenizer.pad_token_id,
                                                    batch_size, sequence_logprob)):
            sums[i] = value
        if shared:
            items = [(prompt_of[span[0]], [encoded[i].input_ids[len(prompt_of[i]):] for i in span])
                     for span in shared]
            for span, values in zip(shared, _shared_prompt_sums(model, items, tokenizer.pad_token_id, batch_size)):
                for i, value in zip(span, values):
                    sums[i] = value
    return [[sums[i] for i in span] for span in spans]


def _shared_prompt_sums(model: Any, items: Sequence[tuple[list[int], list[list[int]]]], pad_id: int,
                        rows_per_batch: int) -> list[list[float]]:
    """Summed log-probabilities of each item's options after its prompt: the prompts of a batch are
    prefilled left-padded (``kv.prefill``, whose last-position logits give each option's first
    token), the cache is repeated once per option, and the right-padded options run on it together."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[float]] = [[] for _ in items]
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
    batches, current, rows = [], [], 0
    for i in order:
        if current and rows + len(items[i][1]) > rows_per_batch:
            batches.append(current)
            current, rows = [], 0
        current.append(i)
        rows += len(items[i][1])
    if current:
        batches.append(current)
    try:
        with linear_weights_in_autocast_dtype(model):
            for batch in batches:
                prompts = [items[i][0] for i in batch]
                width = max(len(p) for p in prompts)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, prompt in enumerate(prompts):
                    ids[row, width - len(prompt):] = torch.tensor(prompt)
                    mask[row, width - len(prompt):] = 1
                cache, last = prefill(model, ids.to(device), mask.to(device))
                owner = [row for row, i in enumerate(batch) for _ in items[i][1]]
                opts = [opt for i in batch for opt in items[i][1]]
                index = torch.tensor(owner, device=device)
                cache.batch_select_indices(index)
                span = max(len(o) for o in opts)
                opt_ids = torch.full((len(opts), span), pad_id, dtype=torch.long)
                opt_mask = torch.zeros((len(opts), span), dtype=torch.long)
                for row, opt in enumerate(opts):
                    opt_ids[row, :len(opt)] = torch.tensor(opt)
                    opt_mask[row, :len(opt)] = 1
                opt_ids, opt_mask = opt_ids.to(device), opt_mask.to(device)
                first = torch.log_softmax(last[index].float(), -1).gather(1, opt_ids[:, :1]).squeeze(1)
                total = first
                if span > 1:
                    prompt_len = mask.sum(1).to(device)[index]
                    positions = prompt_len[:, None] + torch.arange(span - 1, device=device)[None, :]
                    full_mask = torch.cat([mask.to(device)[index], opt_mask[:, :-1]], dim=1)
                    logits = model(input_ids=opt_ids[:, :-1], attention_mask=full_mask, position_ids=positions,
                                   **with_cache(model, cache), use_cache=True).logits.float()
                    rest = torch.log_softmax(logits, -1).gather(2, opt_ids[:, 1:, None]).squeeze(2)
                    total = total + (rest * opt_mask[:, 1:]).sum(1)
                values = total.tolist()
                for row, i in enumerate(owner):
                    out[batch[i]].append(values[row])
    finally:
        model.train(was_training)
    return out
