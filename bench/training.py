"""The one training loop every loss-based method shares: LoRA or full fine-tuning, batching, AdamW,
gradient accumulation, clipping and the divergence guard.

A method supplies only ``loss(model, forget_batch, retain_batch)``; everything here is the same for all
methods so that differences in results come from the losses, not from incidental training code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .api import Example, TrainParams, UnlearnContext
from .errors import Diverged
from .progress import bar
from .text import Batch, encode, collate

LossFn = Callable[[], tuple[torch.Tensor, dict[str, float]]]


def example_stream(tokenizer: Any, examples: Sequence[Example], batch_size: int, max_length: int,
                   rng: random.Random) -> Iterator[Batch]:
    """Endless shuffled batches; reshuffled every epoch with the cell's seeded RNG."""
    if not examples:
        raise ValueError("no examples to train on")
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    while True:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield collate([encoded[i] for i in idx], tokenizer.pad_token_id)


def with_adapter(model: Any, params: TrainParams, seed: int) -> Any:
    """Wrap ``model`` for training: a fresh LoRA adapter (seeded init) or all weights trainable."""
    torch.manual_seed(seed)
    if params.finetune == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=params.lora_rank, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                        target_modules=list(params.lora_targets), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def merged(model: Any) -> Any:
    """Fold a LoRA adapter into the weights and return the plain model."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.requires_grad_(False)
    model.eval()
    return model


@contextmanager
def reference_mode(model: Any) -> Iterator[Any]:
    """Run the frozen base model: with LoRA the adapter is disabled (no second copy of the weights)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter(), torch.no_grad():
            yield model
    else:
        raise TypeError("reference_mode needs a LoRA-wrapped model; full fine-tuning keeps a frozen copy")


def logits(model: Any, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def _grad_norm(parameters: Sequence[torch.nn.Parameter]) -> float:
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def train(model: Any, params: TrainParams, loss_fn: LossFn, ctx: UnlearnContext, *, desc: str = "train",
          steps: int | None = None, log_prefix: str = "", log_every: int = 1) -> None:
    """Optimise ``loss_fn`` for ``steps`` optimiser steps (default ``params.steps``).

    Each optimiser step accumulates ``params.grad_accum`` micro-batches (``loss_fn`` draws its own
    batches). A non-finite loss or a gradient norm above ``params.max_grad_norm_diverge`` raises
    ``Diverged`` with the step, which the runner records as the cell's status.
    """
    steps = params.steps if steps is None else steps
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    model.train()
    for step in bar(range(1, steps + 1), ctx.progress, desc, unit="step"):
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for _ in range(params.grad_accum):
            loss, logs = loss_fn()
            if not torch.isfinite(loss):
                raise Diverged(step, f"non-finite loss {loss.item()}")
            (loss / params.grad_accum).backward()
            for k, v in {"loss": loss.item(), **logs}.items():
                totals[k] = totals.get(k, 0.0) + v / params.grad_accum
        norm = _grad_norm(trainable)
        if not math.isfinite(norm) or norm > params.max_grad_norm_diverge:
            raise Diverged(step, f"gradient norm {norm:.3g} exceeds {params.max_grad_norm_diverge:g}")
        if params.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            ctx.log(**{f"{log_prefix}step": step, **{f"{log_prefix}{k}": v for k, v in totals.items()},
                       f"{log_prefix}grad_norm": norm})
    model.eval()


class LossMethodMixin:
    """Shared ``unlearn`` for methods defined by a loss over forget (and optionally retain) batches."""

    uses_retain: bool = False
    params: TrainParams

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError  # pragma: no cover - interface

    def setup(self, model: Any, ctx: UnlearnContext) -> None:
        """Hook for one-off preparation before training (e.g. reference statistics)."""

    def unlearn(self, ctx: UnlearnContext) -> Any:
        p = self.params
        rng = random.Random(ctx.seed)
        model = with_adapter(ctx.model, p, ctx.seed)
        forget = example_stream(ctx.tokenizer, ctx.forget, p.batch_size, p.max_length, rng)
        retain = (example_stream(ctx.tokenizer, ctx.retain, p.batch_size, p.max_length, rng)
                  if self.uses_retain else None)
        device = ctx.device
        self.setup(model, ctx)

        def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
            return self.loss(model, next(forget).to(device), next(retain).to(device) if retain else None)

        ctx.log(step=0, **{f"probe/{k}": v for k, v in ctx.probe(model).items()})
        train(model, p, step_loss, ctx, desc=getattr(self, "name", "train"))
        unlearned = merged(model)
        ctx.log(step=p.steps, **{f"probe/{k}": v for k, v in ctx.probe(unlearned).items()})
        return unlearned
