"""Soft-prompt instruction search space for Reveal (``search: soft_prompt``).

The Reveal-and-Release paper searches **soft prompts** with NeuralUCB (what its text describes; no code is
public). We follow the construction of InstructZero (Chen et al. 2023) and INSTINCT (Lin et al. 2024):

* a candidate is a point z in the box [-1, 1]^d' of a low intrinsic dimension d' (``intrinsic_dim``);
* a fixed random matrix A (seeded) projects it to ``soft_tokens`` input embeddings, scaled so that each
  coordinate has the spread of the model's own token embeddings: soft = reshape(A z);
* the soft tokens are prepended to a meta prompt that shows the task's seed instructions and asks for one
  more request of that kind; the model's greedy reply (first line) is the candidate's instruction.

The arms NeuralUCB chooses among are these generated instructions (duplicates merged); their contexts are
the model's embeddings of the instructions, as in the discrete search, and the rest of Reveal is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bench.data.text import render_prompt
from bench.lm.generation import eos_token_ids
from bench.lm.kv import with_cache

META_PROMPT = ("Here are requests a user sent to an assistant:\n{examples}\nWrite one more request of the same "
               "kind. Reply with the request only.")


@dataclass(frozen=True)
class SoftCandidate:
    z: tuple[float, ...]
    instruction: str


def projection(model: Any, intrinsic_dim: int, soft_tokens: int, seed: int) -> torch.Tensor:
    """A: (soft_tokens·hidden) × intrinsic_dim, Gaussian, scaled so that A z (z uniform in [-1, 1]^d',
    coordinate SD 1/√3) has the per-coordinate SD of the model's input embeddings."""
    embeddings = model.get_input_embeddings().weight
    hidden = embeddings.shape[1]
    target = float(embeddings.detach().float().std())
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(soft_tokens * hidden, intrinsic_dim, generator=gen)
    return a * target / (math.sqrt(intrinsic_dim) / math.sqrt(3))


@torch.no_grad()
def _greedy_from_embeddings(model: Any, tokenizer: Any, prefix: torch.Tensor, ids: torch.Tensor,
                            max_new_tokens: int) -> str:
    """Greedy decoding after ``prefix`` (soft embeddings) + ``ids``; stops at a newline or end of sequence."""
    from transformers import DynamicCache

    embed = model.get_input_embeddings()
    inputs = torch.cat([prefix.to(embed.weight.dtype)[None], embed(ids)[None]], dim=1)
    cache = DynamicCache()
    out = model(inputs_embeds=inputs, **with_cache(model, cache), use_cache=True)
    tokens: list[int] = []
    eos = set(eos_token_ids(model, tokenizer))
    for _ in range(max_new_tokens):
        token = int(out.logits[0, -1].argmax())
        if token in eos:
            break
        tokens.append(token)
        if "\n" in tokenizer.decode(tokens[-1:]) and len(tokens) > 1:
            break
        out = model(input_ids=torch.tensor([[token]], device=ids.device), **with_cache(model, cache), use_cache=True)
    return tokenizer.decode(tokens, skip_special_tokens=True).strip().split("\n")[0].strip().strip('"')


def soft_prompt_candidates(model: Any, tokenizer: Any, seeds: list[str], n_candidates: int, intrinsic_dim: int,
                           soft_tokens: int, max_new_tokens: int, seed: int) -> list[SoftCandidate]:
    """``n_candidates`` points z, each turned into an instruction by the model (empty or overlong replies
    dropped)."""
    device = next(model.parameters()).device
    a = projection(model, intrinsic_dim, soft_tokens, seed).to(device)
    hidden = model.get_input_embeddings().weight.shape[1]
    examples = "\n".join(f"- {s}" for s in seeds[:4])
    text = render_prompt(tokenizer, META_PROMPT.format(examples=examples))
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][0].to(device)
    gen = torch.Generator().manual_seed(seed + 1)
    out = []
    was_training = model.training
    model.eval()
    for _ in range(n_candidates):
        z = torch.rand(intrinsic_dim, generator=gen) * 2 - 1
        soft = (a @ z.to(device)).reshape(soft_tokens, hidden)
        instruction = _greedy_from_embeddings(model, tokenizer, soft, ids, max_new_tokens)
        if 10 <= len(instruction) <= 300:
            out.append(SoftCandidate(tuple(float(v) for v in z), instruction))
    model.train(was_training)
    return out
