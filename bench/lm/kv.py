"""KV caches and batch plans shared by generation and likelihood scoring.

Both run prompts through the model into a KV cache and continue from it: generation decodes from a
length-grouped prefill (``prefill``, ``with_room``), scoring continues rows from a prefix they share
(``shared_prefix_groups``, ``prefix_cache``) and multiple-choice options from their item's prompt. The
plans that decide which rows run together (``plan_prefill_groups``) and the model-signature questions both
ask (``with_cache``, ``supports_logits_to_keep``) live here, so neither module imports the other.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from bench.data.text import IGNORE

if TYPE_CHECKING:
    from transformers import DynamicCache


@functools.cache
def _cache_keyword(model_class: type) -> str:
    try:
        names = inspect.signature(model_class.forward).parameters
    except (AttributeError, TypeError, ValueError):
        names = {}
    return "cache" if "cache" in names else "past_key_values"


def with_cache(model: Any, cache: Any) -> dict[str, Any]:
    """The keyword a model's ``forward`` takes its KV cache by: ``cache`` from transformers 5.2x on (where
    ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before. A PEFT wrapper's
    ``forward(*args, **kwargs)`` says nothing: the wrapped model's signature decides."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {_cache_keyword(type(inner)): cache}


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the (possibly PEFT-wrapped) model's forward takes ``logits_to_keep`` (transformers >= 4.50)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def plan_prefill_groups(lengths: Sequence[int], overhead_tokens: int,
                        max_rows: int | None = None) -> list[list[int]]:
    """Rows grouped for a forward pass so that padded tokens plus a per-forward overhead are fewest.

    Rows are taken longest first and cut into runs of at most ``max_rows``; a run costs (its size × its
    longest row) padded tokens plus ``overhead_tokens`` for the extra forward pass. Exact dynamic programme
    over the cut points. Serves the generation prefill and likelihood scoring (``_encoded_logliks``).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best, cut = [0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(0 if max_rows is None else max(0, end - max_rows), end):
            cost = best[start] + (end - start) * lengths[order[start]] + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, as ``generate`` derives them from the attention mask."""
    position = mask.long().cumsum(-1) - 1
    return position.masked_fill_(mask == 0, 1)


def _plain_layers(model: Any) -> bool:
    """Whether the model's KV cache is plain full-attention layers (which can be padded and stacked)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


def supports_shared_prefix(model: Any) -> bool:
    """Whether scoring may run a shared prompt prefix once into a KV cache that several rows continue from:
    a plain full-attention cache (a sliding window or a hybrid cache would see other positions)."""
    return _plain_layers(model)


def _zeros_like_layer(states: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """Zeros shaped like one layer's cached keys or values ``[batch, heads, length, dim]`` for a whole batch."""
    return states.new_zeros(rows, states.shape[1], width, states.shape[-1])


class _GroupedPrefill:
    """The forward passes of row groups assembled into one batch: each group's last-position logits and its
    cached keys and values written into zero-filled, full-width tensors at the group's rows and columns
    (zeros the attention mask hides), then one ``DynamicCache`` for decoding. Serves ``prefill`` and
    ``prefill_shared``, which differ only in where a group's positions sit."""

    def __init__(self, rows: int, width: int):
        self.rows, self.width = rows, width
        self.logits: torch.Tensor | None = None
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, index: torch.Tensor, out: Any, part: Any, columns: slice, source: slice = slice(None)) -> None:
        """Group ``index``'s output ``out`` and cache ``part``; its positions ``source`` go to ``columns``."""
        if self.logits is None:
            self.logits = out.logits.new_zeros(self.rows, out.logits.shape[-1])
            self.layers = [(_zeros_like_layer(layer.keys, self.rows, self.width),
                            _zeros_like_layer(layer.values, self.rows, self.width)) for layer in part.layers]
        self.logits[index] = out.logits[:, -1, :]
        for (keys, values), layer in zip(self.layers, part.layers):
            keys[index, :, columns] = layer.keys[:, :, source]
            values[index, :, columns] = layer.values[:, :, source]

    def result(self, model: Any, repeats: int) -> tuple[DynamicCache, torch.Tensor]:
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        for i, (keys, values) in enumerate(self.layers):
            cache.update(keys, values, i)
        return _repeated(cache, self.logits, repeats)


def _repeated(cache: Any, logits: torch.Tensor, repeats: int) -> tuple[Any, torch.Tensor]:
    """Each row's cache and logits repeated ``repeats`` times (``num_return_sequences`` share one prefill)."""
    if repeats > 1:
        cache.batch_repeat_interleave(repeats)
        logits = logits.repeat_interleave(repeats, dim=0)
    return cache, logits


def prefill(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, repeats: int = 1,
            overhead_tokens: int = 48) -> tuple[DynamicCache, torch.Tensor]:
    """KV cache and last-position logits of a left-padded batch, each row repeated ``repeats`` times.

    Why in groups: on a CPU the prefill is compute-bound, so padding is paid in full — a batch whose longest
    prompt is twice the median spends a third of its prefill on pad tokens. Rows of similar length are
    run together (``plan_prefill_groups``) and their caches are stacked, left-padded with zeros that the
    attention mask hides, into one batch for decoding. Repeats (``num_return_sequences``) share one prefill.
    """
    from transformers import DynamicCache  # here, not at import: registering plugins must not load transformers

    extra = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    position, width = positions_from_mask(mask), input_ids.shape[1]
    lengths = mask.sum(1).tolist()
    groups = plan_prefill_groups(lengths, overhead_tokens) if _plain_layers(model) else [list(range(len(lengths)))]
    if len(groups) == 1:
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position, **with_cache(model, cache),
                       use_cache=True, **extra).logits[:, -1, :]
        return _repeated(cache, logits, repeats)
    batch = _GroupedPrefill(len(lengths), width)
    for rows in groups:
        longest = max(1, max(lengths[r] for r in rows))  # an empty prompt still gets one (masked) position
        index, cols = torch.tensor(rows, device=mask.device), slice(width - longest, width)
        part = DynamicCache(config=model.config)
        out = model(input_ids=input_ids[index, cols], attention_mask=mask[index, cols],
                    position_ids=position[index, cols], **with_cache(model, part), use_cache=True, **extra)
        batch.add(index, out, part, cols)
    return batch.result(model, repeats)


def common_prompt_prefix(input_ids: torch.Tensor, mask: torch.Tensor) -> int:
    """How many tokens every prompt of a left-padded batch begins with, at most the shortest prompt's length
    less one (each row keeps a token of its own, whose position predicts its first new token)."""
    lengths = mask.sum(1).tolist()
    width = input_ids.shape[1]
    shared = min(lengths) - 1
    first = input_ids[0, width - lengths[0]:]
    for i in range(1, len(lengths)):
        if shared <= 0:
            return 0
        row = input_ids[i, width - lengths[i]:width - lengths[i] + shared]
        shared = int((row == first[:shared]).long().cumprod(0).sum())  # the leading run of equal tokens
    return max(0, shared)


def prefill_shared(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, repeats: int = 1,
                   overhead_tokens: int = 48) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """``prefill`` that runs the prompt prefix every row shares once; returns the cache, the last-position
    logits and the attention mask of the cache's layout.

    Why: task prompts repeat a long start — a chat template's system turn and the task's instruction; a
    few-shot context (GSM8K's five worked examples, ~900 tokens) is most of every prompt — and on a CPU a
    prefill is paid per token. The prefix runs once (batch of one) and every row continues from it, so a batch
    of n prompts sharing p tokens prefills (n − 1)·p fewer; it is used when that saving exceeds the cost of the
    extra forward pass (``overhead_tokens``, as in ``plan_prefill_groups``). The cache's layout is then
    [shared prefix][padding][the rest of the row] — the padding moves from the front to after the prefix;
    the returned mask hides it and position ids follow the mask, so every real token sits at the position it
    has in the plain left-padded layout. The numbers differ from ``prefill``'s by the floating-point order of
    other matrix shapes only (tested: the same greedy tokens)."""
    from transformers import DynamicCache

    rows, width = input_ids.shape
    shared = common_prompt_prefix(input_ids, mask) if rows > 1 and _plain_layers(model) else 0
    if (rows - 1) * shared <= overhead_tokens:
        cache, logits = prefill(model, input_ids, mask, repeats, overhead_tokens)
        return cache, logits, mask
    lengths = mask.sum(1).tolist()
    start0 = width - lengths[0]
    prefix = prefix_cache(model, input_ids[0, start0:start0 + shared].tolist(), input_ids.device)
    layout = torch.tensor([list(range(width - n, width - n + shared)) + list(range(width - n))
                           + list(range(width - n + shared, width)) for n in lengths], device=input_ids.device)
    ids, mask = input_ids.gather(1, layout), mask.gather(1, layout)
    position = positions_from_mask(mask)
    rest = [n - shared for n in lengths]
    extra = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    batch = _GroupedPrefill(rows, width)
    for group in plan_prefill_groups(rest, overhead_tokens):
        index = torch.tensor(group, device=mask.device)
        longest = max(rest[r] for r in group)
        cols = torch.cat([torch.arange(shared, device=mask.device),
                          torch.arange(width - longest, width, device=mask.device)])
        part = DynamicCache(config=model.config)
        for i, layer in enumerate(prefix.layers):
            part.update(layer.keys.expand(len(group), -1, -1, -1).contiguous(),
                        layer.values.expand(len(group), -1, -1, -1).contiguous(), i)
        out = model(input_ids=ids[index, width - longest:], attention_mask=mask[index][:, cols],
                    position_ids=position[index, width - longest:], **with_cache(model, part), use_cache=True,
                    **extra)
        batch.add(index, out, part, slice(width - longest, width), slice(shared, None))
    for (keys, values), layer in zip(batch.layers, prefix.layers):  # the prefix's positions, every row alike
        keys[:, :, :shared] = layer.keys
        values[:, :, :shared] = layer.values
    cache, logits = batch.result(model, repeats)
    return cache, logits, mask


def _growing_layer_class() -> type:
    """A ``DynamicLayer`` whose keys and values live in a buffer with room to grow (made on first use:
    transformers is imported only when decoding needs it)."""
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """Why: ``DynamicLayer.update`` concatenates, so every decoding step copies the whole cache of every
        layer (at batch 16 and ~1,000 cached positions, more bytes than the step's weights); here a step
        writes its one position into spare room and the cache is re-allocated only when the room runs out
        (doubling). ``keys``/``values`` are views of the filled part; attention reads the same numbers."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
            super().__init__()
            self.length = keys.shape[-2]
            self._keys = self._with_room(keys, room)
            self._values = self._with_room(values, room)
            self.device, self.is_initialized = keys.device, True
            self._expose()

        @staticmethod
        def _with_room(states: torch.Tensor, room: int) -> torch.Tensor:
            buffer = states.new_empty(*states.shape[:2], states.shape[2] + room, states.shape[3])
            buffer[:, :, :states.shape[2]] = states
            return buffer

        def _expose(self) -> None:
            self.keys = self._keys[:, :, :self.length]
            self.values = self._values[:, :, :self.length]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            new = key_states.shape[-2]
            if self.length + new > self._keys.shape[2]:
                room = max(new, self._keys.shape[2])
                self._keys, self._values = self._with_room(self.keys, room), self._with_room(self.values, room)
            self._keys[:, :, self.length:self.length + new] = key_states
            self._values[:, :, self.length:self.length + new] = value_states
            self.length += new
            self._expose()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self._expose()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

    return GrowingLayer


_GROWING: list[type] = []


def with_room(cache: Any, room: int) -> Any:
    """``cache`` (plain full-attention layers) with each layer's keys and values moved into a buffer with
    ``room`` spare positions (``GrowingLayer``); other caches are returned unchanged."""
    from transformers.cache_utils import DynamicLayer

    if not _GROWING:
        _GROWING.append(_growing_layer_class())
    if room > 0 and all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers):
        cache.layers = [_GROWING[0](layer.keys, layer.values, room) for layer in cache.layers]
    return cache


def shared_prefix_groups(encoded: Sequence[Any], min_tokens: int) -> list[tuple[int, list[int]]]:
    """Rows (two or more) whose token sequences begin with the same ``min_tokens`` or more prompt tokens, as
    ``(shared length, row indices)``. A shared prefix stops one token before the shortest prompt of its
    group, so every answer token, and the position that predicts the first one, lies after it. Rows are
    grouped in lexicographic order of their tokens, where rows with a long common start sit together."""
    if min_tokens < 1:
        return []
    shareable = [max(0, e.labels.count(IGNORE) - 1) for e in encoded]  # prompt tokens but the last
    order = sorted((i for i in range(len(encoded)) if shareable[i] >= min_tokens),
                   key=lambda i: encoded[i].input_ids)
    groups: list[tuple[int, list[int]]] = []
    rows: list[int] = []
    shared = 0
    for i in order:
        if rows:
            common = min(shared, shareable[i], _common_length(encoded[rows[0]].input_ids, encoded[i].input_ids))
            if common >= min_tokens:
                rows.append(i)
                shared = common
                continue
            if len(rows) > 1:
                groups.append((shared, rows))
        rows, shared = [i], shareable[i]
    if len(rows) > 1:
        groups.append((shared, rows))
    return groups


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_cache(model: Any, prefix: Sequence[int], device: Any) -> Any:
    """The KV cache of one prefix (batch of one)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.tensor([list(prefix)], device=device)
    extra = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    model(input_ids=ids, attention_mask=torch.ones_like(ids), **with_cache(model, cache), use_cache=True, **extra)
    return cache
