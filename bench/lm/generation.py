"""Batched generation: left padding, length-sorted batches, KV cache, stop sequences, and rows that leave.

Prompts are sorted by token length so each batch pads little; outputs come back in input order.

Why our own decoding loop rather than ``model.generate``: ``generate`` keeps every row of a batch in the
forward pass until the *last* row stops, so a batch of 16 where one answer rambles to the token budget
pays 16 rows for every step of it. Here a row that has produced EOS or a stop string leaves the batch —
its KV cache rows, mask and position are dropped — and later steps compute only the rows still going.
Per step the loop does what ``generate`` does for a decoder-only model: the prefill projects only the last
position onto the vocabulary (``logits_to_keep=1``), positions come from the attention mask (left padding),
and greedy decoding takes the argmax, so outputs equal ``generate``'s (tested token for token).

Backends: this loop ("native") is the CPU path. On CUDA, where a batch's forward pass costs little more
than a row's and kernel launches dominate, ``model.generate`` with a static KV cache ("hf") can be faster;
``generation_backend`` (a run setting, or ``UNLEARN_BENCH_GENERATION``) picks one, "auto" = "hf" on CUDA,
"native" elsewhere. Greedy outputs are the same token for token (tested on CPU); sampled ones draw from the
same distributions but with another random stream (``generate`` draws from the global RNG, seeded per batch
in a forked RNG state), so the backend is recorded in each result's provenance.

Sampling scales by temperature and draws from the top-p nucleus that transformers' ``TopPLogitsWarper``
keeps (by rejection, without sorting the vocabulary: ``sample_top_p``), with a ``torch.Generator`` seeded per batch
(``seed * 100003 + batch index``), so a run is reproducible for a given seed and batch size without
touching the global RNG. Only the arguments given here shape decoding; settings in a model's
``generation_config`` that would change it (repetition penalty, n-gram bans, …) are reported once in the
log and not applied, so every model in a matrix is decoded the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch

from bench.engine.progress import bar
from bench.lm.kv import (
    positions_from_mask,
    prefill_shared,
    with_cache,
    with_room,
)
from bench.lm.precision import linear_weights_in_autocast_dtype

log = logging.getLogger("unlearn_bench")

# generation_config fields that would alter greedy or sampled tokens, with their neutral values
_IGNORED_SETTINGS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None,
                     "min_new_tokens": None, "min_length": 0, "forced_bos_token_id": None,
                     "forced_eos_token_id": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                     "sequence_bias": None, "encoder_repetition_penalty": 1.0}
_warned: set[int] = set()


BACKENDS = ("auto", "native", "hf")
BACKEND_ENV = "UNLEARN_BENCH_GENERATION"


def resolve_backend(device: torch.device | str, requested: str | None = None) -> str:
    """"native" or "hf" for ``device`` from ``requested`` (default: ``UNLEARN_BENCH_GENERATION``, else "auto")."""
    import os

    name = requested or os.environ.get(BACKEND_ENV) or "auto"
    if name not in BACKENDS:
        raise ValueError(f"generation backend must be one of {', '.join(BACKENDS)}, got '{name}'")
    if name == "auto":
        return "hf" if torch.device(device).type == "cuda" else "native"
    return name


@dataclass(frozen=True)
class Decoding:
    """How tokens are chosen: greedy unless ``do_sample``; when sampling, temperature then top-p (no top-k)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0


#: A stop is a string (the text is cut where it starts) or a compiled pattern (the text is cut where its
#: first match *ends*: e.g. a complete code block, whose closing fence must not be confused with an
#: opening one).
Stop = Union[str, "re.Pattern[str]"]


def _stop_end(text: str, stop: Stop) -> int:
    """Where ``text`` is cut for ``stop`` (−1: no match)."""
    if isinstance(stop, str):
        return text.find(stop)
    match = stop.search(text)
    return match.end() if match else -1


def truncate_at_stops(text: str, stops: Sequence[Stop]) -> str:
    cuts = [c for c in (_stop_end(text, s) for s in stops) if c >= 0]
    return text[:min(cuts)] if cuts else text


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """End-of-sequence ids as ``generate`` uses them: the generation config's, else the tokenizer's."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _warn_ignored_settings(model: Any) -> None:
    config = getattr(model, "generation_config", None)
    if config is None or id(model) in _warned:
        return
    _warned.add(id(model))
    odd = {k: getattr(config, k) for k, neutral in _IGNORED_SETTINGS.items()
           if getattr(config, k, neutral) not in (neutral, None, [], ())}
    if odd:
        log.warning("generation_config settings not applied by unlearn-bench's decoder: %s", odd)


class _StopWatch:
    """Whether a row's newest tokens complete a stop: strings look at a short decoded tail of the row,
    patterns at the row's whole text so far."""

    def __init__(self, tokenizer: Any, stops: Sequence[Stop]):
        self.tokenizer = tokenizer
        self.strings = [s for s in stops if isinstance(s, str)]
        self.patterns = [s for s in stops if not isinstance(s, str)]
        self.tail = max([8] + [len(s) for s in self.strings])

    def hit(self, tokens: list[int]) -> bool:
        if self.strings:
            text = self.tokenizer.decode(tokens[-self.tail:], skip_special_tokens=True)
            if any(s in text for s in self.strings):
                return True
        if self.patterns:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return any(p.search(text) for p in self.patterns)
        return False


def nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-p truncation of each row of ``probs``: (kept probabilities, their token ids), most probable first,
    zeros for tokens outside the nucleus. The kept set is transformers' ``TopPLogitsWarper``'s: a token stays
    when the mass of the tokens ranked above it is below ``top_p``, so the most probable always stays (tested
    equal to the warper's). Sorts the vocabulary: ``sample_top_p``'s exact fallback."""
    top, ids = probs.sort(dim=-1, descending=True)
    above = top.cumsum(-1) - top
    return top.masked_fill(above >= top_p, 0.0), ids


def sample_top_p(probs: torch.Tensor, top_p: float, generator: torch.Generator | None,
                 max_rounds: int = 32) -> torch.Tensor:
    """One token per row of ``probs`` from its top-p nucleus, renormalised: the distribution transformers'
    ``TopPLogitsWarper`` then a draw give, without sorting the vocabulary.

    Why: the warper sorts all of a 49k vocabulary every step and ``torch.multinomial`` then draws an
    exponential variate per token — on 2 CPU cores, 8 rows, ~16 ms a step, a fifth of SmolLM2-135M's bf16
    decode step. Here a row draws from its full distribution by inverse CDF (one uniform, a binary search)
    and keeps the draw when it lies in the nucleus — the mass of the tokens more probable than it is below
    ``top_p`` — else draws again: rejection sampling, so accepted draws follow the nucleus distribution
    exactly, and a draw is kept with probability ≥ ``top_p`` (the nucleus's mass). Rows still rejected after
    ``max_rounds`` (a tiny ``top_p`` on a flat distribution) are drawn exactly from the sorted nucleus."""
    rows, vocab = probs.shape
    cdf = probs.double().cumsum(-1)
    chosen = torch.zeros(rows, dtype=torch.long, device=probs.device)
    pending = torch.arange(rows, device=probs.device)
    for _ in range(max_rounds):
        p, c = probs[pending], cdf[pending]
        u = torch.rand(len(pending), generator=generator, dtype=torch.float64, device=probs.device) * c[:, -1]
        token = torch.searchsorted(c, u[:, None], right=True).squeeze(-1).clamp_(max=vocab - 1)
        p_token = p.gather(-1, token[:, None])
        inside = (p * (p > p_token)).sum(-1) < top_p
        chosen[pending[inside]] = token[inside]
        pending = pending[~inside]
        if not len(pending):
            return chosen
    kept, ids = nucleus(probs[pending], top_p)
    chosen[pending] = ids.gather(-1, torch.multinomial(kept, 1, generator=generator)).squeeze(-1)
    return chosen


def _choose(logits: torch.Tensor, decoding: Decoding, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of each row: argmax, or a draw from the temperature-scaled distribution, top-p
    truncated and renormalised (``sample_top_p``)."""
    if not decoding.do_sample:
        return logits.argmax(-1)
    scores = logits.float()
    if decoding.temperature != 1.0:
        scores = scores / decoding.temperature
    return sample_top_p(torch.softmax(scores, -1), decoding.top_p, generator)


def decode_batch(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoding: Decoding,
                 eos_ids: set[int], stops: _StopWatch, generator: torch.Generator | None = None,
                 repeats: int = 1, prefill_overhead_tokens: int = 48) -> list[list[int]]:
    """New token ids per row of a left-padded batch (``repeats`` rows per prompt); a row leaves when it stops."""
    n = input_ids.shape[0] * repeats
    new_tokens: list[list[int]] = [[] for _ in range(n)]
    if decoding.max_new_tokens <= 0:
        return new_tokens
    cache, logits, attention_mask = prefill_shared(model, input_ids, attention_mask, repeats, prefill_overhead_tokens)
    cache = with_room(cache, decoding.max_new_tokens - 1)
    mask = attention_mask.repeat_interleave(repeats, dim=0)
    next_position = positions_from_mask(mask)[:, -1:] + 1
    rows = list(range(n))  # which output row each live batch row is
    for step in range(decoding.max_new_tokens):
        chosen = _choose(logits, decoding, generator)
        keep = []
        for i, (row, token) in enumerate(zip(rows, chosen.tolist())):
            new_tokens[row].append(token)
            if token not in eos_ids and not stops.hit(new_tokens[row]):
                keep.append(i)
        if not keep or step == decoding.max_new_tokens - 1:
            break
        if len(keep) < len(rows):  # rows that stopped leave: every later step computes only live rows
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask, chosen, next_position = mask[index], chosen[index], next_position[index]
            rows = [rows[i] for i in keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position,
                       **with_cache(model, cache), use_cache=True).logits[:, -1, :]
        next_position = next_position + 1
    return new_tokens


@torch.no_grad()
def decode_batch_hf(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoding: Decoding,
                    eos_ids: set[int], stops: _StopWatch, generator: torch.Generator | None = None,
                    repeats: int = 1, prefill_overhead_tokens: int = 48) -> list[list[int]]:
    """``decode_batch``'s contract through ``model.generate`` with a static KV cache (the "hf" backend).

    Decoding is set in full by a fresh ``GenerationConfig`` (the model's own settings do not leak in; no
    top-k, as here). Stop strings are applied to the text afterwards (``truncate_at_stops``): a row runs on
    to EOS or the budget, which costs time, not correctness. Sampling draws from the global RNG, seeded from
    ``generator`` inside a forked RNG state, so the caller's RNG is left alone."""
    from transformers import GenerationConfig

    n = input_ids.shape[0] * repeats
    if decoding.max_new_tokens <= 0:
        return [[] for _ in range(n)]
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else min(eos_ids)
    config = GenerationConfig(max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                              temperature=decoding.temperature, top_p=decoding.top_p, top_k=0,
                              num_return_sequences=repeats, eos_token_id=sorted(eos_ids), pad_token_id=pad,
                              cache_implementation="static")
    devices = [input_ids.device] if input_ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if generator is not None:
            torch.manual_seed(int(generator.initial_seed()))
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    new_tokens = []
    for row in out[:, input_ids.shape[1]:].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
        new_tokens.append(row[:cut])
    return new_tokens


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
             batch_size: int = 16, do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
             num_return_sequences: int = 1, seed: int = 0, stop: Sequence[Stop] = (),
             progress: bool = False, desc: str = "generate", prefill_overhead_tokens: int = 48,
             backend: str | None = None) -> list[list[str]]:
    """Generate for already-rendered prompts. Returns, per prompt, ``num_return_sequences`` texts.

    ``prefill_overhead_tokens``: what one more prefill forward pass is worth in padded tokens when rows are
    grouped by length (see ``prefill``); 48 is measured on a 2-core CPU with SmolLM2-135M (a batch-1 prefill
    of 182 tokens costs as much as ~230 tokens inside a batch of 16). Larger values mean fewer groups.
    """
    if not prompts:
        return []
    device = next(model.parameters()).device
    decoding = Decoding(max_new_tokens, do_sample, temperature, top_p)
    eos_ids, stops = eos_token_ids(model, tokenizer), _StopWatch(tokenizer, stop)
    _warn_ignored_settings(model)
    decode = decode_batch if resolve_backend(device, backend) == "native" else decode_batch_hf
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    outputs: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        with linear_weights_in_autocast_dtype(model):  # one weight cast per call, not one per decode step
            for b, start in enumerate(bar(range(0, len(order), batch_size), progress, desc, unit="batch")):
                idx = order[start:start + batch_size]
                enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(device)
                generator = None
                if do_sample:
                    generator = torch.Generator(device=device).manual_seed(seed * 100003 + b)
                tokens = decode(model, enc["input_ids"], enc["attention_mask"], decoding, eos_ids, stops, generator,
                                repeats=num_return_sequences, prefill_overhead_tokens=prefill_overhead_tokens)
                texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
                for j, text in enumerate(texts):
                    outputs[idx[j // num_return_sequences]].append(truncate_at_stops(text, stop))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return outputs
