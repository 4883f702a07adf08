"""Batched generation: left padding, length-sorted batches, KV cache, stop sequences.

Prompts are sorted by token length so each batch pads little; outputs come back in input order. Greedy
decoding is deterministic; sampling is seeded per batch so a run is reproducible for a given seed and
batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from .progress import bar


class _StopOnStrings(StoppingCriteria):
    """Marks a row done once its generated text contains any stop string (checked on a short tail)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len
        self.tail = max(8, max(len(s) for s in stops))

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = []
        for row in input_ids[:, self.prompt_len:]:
            text = self.tokenizer.decode(row[-self.tail:], skip_special_tokens=True)
            done.append(any(s in text for s in self.stops))
        return torch.tensor(done, device=input_ids.device)


def truncate_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    return text if cut < 0 else text[:cut]


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
             batch_size: int = 16, do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
             num_return_sequences: int = 1, seed: int = 0, stop: Sequence[str] = (),
             progress: bool = False, desc: str = "generate") -> list[list[str]]:
    """Generate for already-rendered prompts. Returns, per prompt, ``num_return_sequences`` texts."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    outputs: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for b, start in enumerate(bar(range(0, len(order), batch_size), progress, desc, unit="batch")):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            width = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                          num_return_sequences=num_return_sequences,
                                          pad_token_id=tokenizer.pad_token_id)
            if do_sample:
                kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
                torch.manual_seed(seed * 100003 + b)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if stop:
                kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(tokenizer, stop, width)])
            out = model.generate(**enc, **kwargs)
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for j, text in enumerate(texts):
                outputs[idx[j // num_return_sequences]].append(truncate_at_stops(text, stop))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs
