"""Likelihood probes: how much probability the model puts on reference answers.

Generative metrics are near zero for small models, so every task also reports the mean per-token
log-likelihood of reference answers (canonical code, gold entity lists, toxic continuations). It moves
smoothly under unlearning and is cheap enough to call between rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .api import Example
from .losses import mean_token_logprob
from .progress import bar
from .text import collate, encode


@torch.no_grad()
def answer_logliks(model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 8,
                   max_length: int = 512, progress: bool = False, desc: str = "likelihood") -> list[float]:
    """Mean per-token log-likelihood of each example's answer, in input order."""
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    values = [0.0] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        for start in bar(range(0, len(order), batch_size), progress, desc, unit="batch"):
            idx = order[start:start + batch_size]
            batch = collate([encoded[i] for i in idx], tokenizer.pad_token_id).to(device)
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            for j, v in zip(idx, mean_token_logprob(logits, batch.labels).tolist()):
                values[j] = v
    finally:
        model.train(was_training)
    return values
