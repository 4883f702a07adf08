"""Turning ``Example``s into token tensors: chat-template rendering and answer-only label masks.

Shared by training (loss on answer tokens), likelihood probes and generation, so that every part of the
harness formats a prompt the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

from bench.api import Example

IGNORE = -100

#: The system prompt a model is deployed behind while it is evaluated and attacked (the ``prompt`` baseline
#: sets one: ``UnlearnContext.system_prompt``); ``None``: none.
_SYSTEM_PROMPT: ContextVar[str | None] = ContextVar("unlearn_bench_system_prompt", default=None)


@contextmanager
def deployed_behind(system_prompt: str | None) -> Iterator[None]:
    """Every prompt rendered inside the block carries ``system_prompt`` (``chat_messages``, ``raw_context``)."""
    token = _SYSTEM_PROMPT.set(system_prompt)
    try:
        yield
    finally:
        _SYSTEM_PROMPT.reset(token)


def chat_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A chat's messages, behind the deployment's system prompt when there is one."""
    system = _SYSTEM_PROMPT.get()
    return [{"role": "system", "content": system}, *messages] if system else messages


def raw_context(text: str) -> str:
    """Text for the model to continue, after the deployment's system prompt (as an instruction paragraph)
    when there is one."""
    system = _SYSTEM_PROMPT.get()
    return f"{system}\n\n{text}" if system else text


def render_prompt(tokenizer: Any, prompt: str, chat: bool = True) -> str:
    """The text the model sees before its answer. Chat prompts use the tokenizer's chat template; raw
    prompts (text to continue) start with the BOS token when the tokenizer puts one before any text it
    encodes (``uses_bos``), since prompts are tokenized without special tokens everywhere else. Both carry
    the deployment's system prompt, if any (``deployed_behind``)."""
    if chat and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(chat_messages([{"role": "user", "content": prompt}]),
                                             add_generation_prompt=True, tokenize=False)
    prompt = raw_context(prompt)
    if uses_bos(tokenizer) and not prompt.startswith(tokenizer.bos_token):
        return tokenizer.bos_token + prompt
    return prompt


def uses_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer begins every encoded text with its BOS token (Llama, Mistral: yes).

    A tokenizer that merely *names* a BOS token without adding it is left alone: SmolLM2-Instruct's
    "BOS" is ``<|im_start|>``, its chat-turn marker, and raw text after it would read as a role header.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None or not getattr(tokenizer, "bos_token", None):
        return False
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def answer_suffix(tokenizer: Any, ex: Example) -> str:
    """Chat answers end with the end-of-turn token so the model learns (or unlearns) to stop."""
    if ex.chat and getattr(tokenizer, "chat_template", None) and tokenizer.eos_token:
        return tokenizer.eos_token
    return ""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt positions


def encode(tokenizer: Any, ex: Example, max_length: int) -> Encoded:
    """Tokenise prompt and answer separately (so the boundary is exact) and mask the prompt.

    Over-long examples keep the start of the answer: the prompt is cut from the left first, then the
    answer from the right, so at least one answer token always carries loss.
    """
    context = render_prompt(tokenizer, ex.prompt, ex.chat) + ex.response_prefix
    prompt_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(ex.answer + answer_suffix(tokenizer, ex), add_special_tokens=False)["input_ids"]
    if not answer_ids:
        answer_ids = [tokenizer.eos_token_id]
    if not prompt_ids and tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id]  # something to condition the first answer token on
    budget_prompt = max(1, max_length - len(answer_ids))
    prompt_ids = prompt_ids[-budget_prompt:]
    answer_ids = answer_ids[: max(1, max_length - len(prompt_ids))]
    return Encoded(prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids)


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # IGNORE on prompt and padding

    def to(self, device: str) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


def collate(encoded: Sequence[Encoded], pad_id: int) -> Batch:
    """Right-pad a list of encoded examples into one batch."""
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return Batch(ids, mask, labels)


def make_batch(tokenizer: Any, examples: Sequence[Example], max_length: int) -> Batch:
    return collate([encode(tokenizer, ex, max_length) for ex in examples], tokenizer.pad_token_id)
