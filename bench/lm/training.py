"""The one training loop every loss-based method shares: LoRA or full fine-tuning, batching, AdamW,
gradient accumulation, clipping and the divergence guard.

A method supplies only ``loss(model, forget_batch, retain_batch)``; everything here is the same for all
methods so that differences in results come from the losses, not from incidental training code.
"""

from __future__ import annotations

import copy
import math
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import torch

from bench.api import Method, TrainParams, UnlearnContext
from bench.data.text import Batch, make_batch
from bench.engine.progress import bar
from bench.errors import Diverged
from bench.lm.precision import eval_precision, resolve_autocast

LossFn = Callable[[], tuple[torch.Tensor, dict[str, float]]]
T = TypeVar("T")


def shuffled_batches(items: Sequence[T], batch_size: int, rng: random.Random) -> Iterator[list[T]]:
    """Endless shuffled mini-batches of ``items``; reshuffled every epoch with the cell's seeded RNG."""
    if not items:
        raise ValueError("no examples to train on")
    while True:
        order = list(range(len(items)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [items[i] for i in order[start:start + batch_size]]


def with_adapter(model: Any, params: TrainParams, seed: int) -> Any:
    """Wrap ``model`` for training: a fresh LoRA adapter (seeded init) or all weights trainable."""
    torch.manual_seed(seed)
    if params.gradient_checkpointing:
        set_checkpointing(model, True)
    if params.finetune == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=params.lora_rank, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                        target_modules=list(params.lora_targets), bias="none", task_type="CAUSAL_LM")
    with quiet_peft():
        return get_peft_model(model, config)


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft (0.21) reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps a model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def set_checkpointing(model: Any, on: bool) -> None:
    """Activation (gradient) checkpointing, non-reentrant, under the name this transformers has
    (``activation_checkpointing_*`` from 5.2x on, ``gradient_checkpointing_*`` before)."""
    new = hasattr(model, "activation_checkpointing_enable")
    if on:
        kwargs = {"use_reentrant": False}
        if new:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif new:
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def is_checkpointing(model: Any) -> bool:
    if hasattr(type(model), "is_activation_checkpointing"):  # the old name warns on transformers 5.2x
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


def merged(model: Any, ctx: UnlearnContext | None = None) -> Any:
    """Fold a LoRA adapter into the weights and return the plain model (the adapter first handed to
    ``ctx.keep_adapter`` when the engine asks for it)."""
    if ctx is not None and ctx.keep_adapter is not None and hasattr(model, "peft_config"):
        ctx.keep_adapter(model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if is_checkpointing(model):
        set_checkpointing(model, False)
    model.requires_grad_(False)
    model.eval()
    return model


@torch.no_grad()
def snapshot(model: Any, names: Iterable[str], device: str | None = None) -> dict[str, torch.Tensor]:
    """Copies of the named parameters (on ``device``; default: where they are), to undo an in-place change
    exactly with ``restore`` — never by subtracting the change again, which drifts in low precision."""
    return {name: model.get_parameter(name).detach().to(device or model.get_parameter(name).device, copy=True)
            for name in names}


@torch.no_grad()
def restore(model: Any, saved: dict[str, torch.Tensor]) -> None:
    """Put ``snapshot``'s copies back, bit-exactly."""
    for name, value in saved.items():
        weight = model.get_parameter(name)
        weight.copy_(value.to(weight.device))


class Reference:
    """The frozen original model π_ref, for losses that compare against it (NPO, ICU's KL term).

    With LoRA the adapter is switched off for the reference forward pass: exactly the original weights, no
    second copy. With full fine-tuning the weights being trained are the process's only resident copy of
    the base (``ModelCache``), so π_ref is a frozen copy made at setup (before the first step) and, on an
    accelerator, kept **off the device**: in host memory, each module's weights streamed to the device for
    its forward pass (accelerate's ``cpu_offload``), at the cost of one host-to-device transfer of the
    weights per reference forward. On a CPU-only machine host memory is the device, and the copy is a plain
    second copy there. ``offload`` forces either choice (tests run the offloaded path on CPU).
    """

    def __init__(self, model: Any, offload: bool | None = None):
        self._model = model
        self._copy = None
        if hasattr(model, "disable_adapter"):
            return
        device = next(model.parameters()).device
        if not (device.type != "cpu" if offload is None else offload):
            self._copy = copy.deepcopy(model).requires_grad_(False).eval()
            return
        self._copy = _offloaded_copy(model, device)

    @torch.no_grad()
    def logits(self, batch: Batch) -> torch.Tensor:
        if self._copy is not None:
            return logits(self._copy, batch)
        with self._model.disable_adapter():
            return logits(self._model, batch)


def _offloaded_copy(model: Any, device: torch.device) -> Any:
    """A frozen copy of ``model`` whose weights live in host memory and run on ``device``: an empty shell of
    the same class and attention implementation, the weights copied to host memory, the buffers as they
    are (a half-precision model's rotary frequencies are rounded; a fresh shell's would not be)."""
    from accelerate import cpu_offload, init_empty_weights

    weights = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
    with init_empty_weights():
        shell = type(model)._from_config(model.config, dtype=next(model.parameters()).dtype,
                                         attn_implementation=model.config._attn_implementation)
    for module_name, module in model.named_modules():
        target = shell.get_submodule(module_name)
        for name, buffer in module.named_buffers(recurse=False):
            target._buffers[name] = buffer.detach().to("cpu", copy=True)
    return cpu_offload(shell.requires_grad_(False).eval(), execution_device=device, state_dict=weights)


def logits(model: Any, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def _grad_norm(parameters: Sequence[torch.nn.Parameter]) -> float:
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


class MasterWeightsAdamW(torch.optim.AdamW):
    """AdamW on fp32 master copies of half-precision parameters.

    ``param_groups`` of the wrapped view hold the model's own (bf16/fp16) parameters, so clipping and
    gradient norms see the model; ``step`` moves their gradients onto the fp32 masters, steps there and
    copies the result back (rounded once, from an fp32 value that keeps every small update).
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999)):
        self.model_params = params
        self.masters = [p.detach().float().clone().requires_grad_(True) for p in params]
        super().__init__(self.masters, lr=lr, weight_decay=weight_decay, betas=betas)

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return self.model_params

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for p, master in zip(self.model_params, self.masters):
            master.grad = None if p.grad is None else p.grad.float()
        out = super().step(closure)
        for p, master in zip(self.model_params, self.masters):
            p.copy_(master)
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for p in self.model_params:
            p.grad = None


def uses_master_weights(params: TrainParams, trainable: list[torch.nn.Parameter]) -> bool:
    half = any(p.dtype in (torch.bfloat16, torch.float16) for p in trainable)
    return params.finetune == "full" and half and params.master_weights != "off"


def make_optimizer(model: Any, params: TrainParams, total_steps: int | None = None,
                   warmup_steps: int = 0) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, with ``params``' learning-rate schedule over ``total_steps``
    (default ``params.steps``) attached as ``optimizer.lr_schedule``, which ``train`` steps; an optimiser
    kept across ``train`` calls (ICU's epochs) keeps its schedule's position."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    betas = (float(params.adam_betas[0]), float(params.adam_betas[1]))
    if uses_master_weights(params, trainable):
        optimizer = MasterWeightsAdamW(trainable, lr=params.lr, weight_decay=params.weight_decay, betas=betas)
    else:
        optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay, betas=betas)
    total = params.steps if total_steps is None else total_steps
    factor = lr_factor(params.lr_schedule, total, warmup_steps)
    optimizer.lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer


def lr_factor(schedule: str, total_steps: int, warmup_steps: int) -> Any:
    """The multiplier of the base learning rate before optimiser step ``k + 1`` (k = 0, 1, …), as
    transformers' ``get_linear_schedule_with_warmup`` / ``get_constant_schedule_with_warmup``: k/warmup
    during warmup, then 1 (constant) or (total − k)/(total − warmup) (linear, reaching 0 at the end)."""
    def factor(k: int) -> float:
        if k < warmup_steps:
            return k / max(1, warmup_steps)
        if schedule == "linear":
            return max(0.0, (total_steps - k) / max(1, total_steps - warmup_steps))
        return 1.0
    return factor


def trainable_of(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The model parameters an optimizer trains (the model's own, also behind fp32 master weights)."""
    return getattr(optimizer, "trainable", None) or [p for group in optimizer.param_groups for p in group["params"]]


def train(model: Any, params: TrainParams, loss_fn: LossFn, ctx: UnlearnContext, *, desc: str = "train",
          steps: int | None = None, log_prefix: str = "", log_every: int = 1,
          optimizer: torch.optim.Optimizer | None = None, warmup_steps: int = 0) -> None:
    """Optimise ``loss_fn`` for ``steps`` optimiser steps (default ``params.steps``).

    Each optimiser step accumulates ``params.grad_accum`` micro-batches (``loss_fn`` draws its own
    batches). A non-finite loss or a gradient norm above ``params.max_grad_norm_diverge`` raises
    ``Diverged`` with the step, which the runner records as the cell's status. Pass ``optimizer`` to
    keep optimiser state across calls (iterative methods training in rounds); otherwise one is made with
    the learning-rate schedule over ``steps`` (``warmup_steps`` of linear warmup).
    """
    steps = params.steps if steps is None else steps
    optimizer = optimizer or make_optimizer(model, params, steps, warmup_steps)
    trainable = trainable_of(optimizer)
    device = str(trainable[0].device)
    precision = resolve_autocast(params.autocast, device)
    model.train()
    for step in bar(range(1, steps + 1), ctx.progress, desc, unit="step"):
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for _ in range(params.grad_accum):
            # the evaluation's region helper: bf16 without autocast's weight-cast cache (it would outlive this
            # step inside an enclosing region), or autocast off even inside one
            with eval_precision(precision, device):
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
        schedule = getattr(optimizer, "lr_schedule", None)
        lr = optimizer.param_groups[0]["lr"]
        if schedule is not None:
            schedule.step()
        if step % log_every == 0 or step == steps:
            ctx.log(**{f"{log_prefix}step": step, **{f"{log_prefix}{k}": v for k, v in totals.items()},
                       f"{log_prefix}grad_norm": norm, f"{log_prefix}lr": lr})
    model.eval()


class LossMethod(Method):
    """A method defined by its loss over forget (and optionally retain) batches: the shared ``unlearn``
    (adapter, shuffled batches, the training loop, the merge) is inherited, as in open-unlearning.

    A subclass sets ``name`` and ``Params`` and implements ``loss(model, forget, retain)``; ``uses_retain =
    True`` draws a retain batch every step. ``forget_items`` / ``collate_forget`` let a
    method train on richer items than plain examples (FLAT pairs each forget example with a template
    answer); by default an item is an ``Example`` and a batch is a tokenised ``Batch``.
    """

    #: LoRA learning rates around the demo's 5e-4, and a step budget from a quarter to twice the demo's 12.
    tune_space: ClassVar[dict[str, Any]] = {"lr": {"log_uniform": [1e-4, 3e-3]}, "steps": [6, 12, 24]}
    uses_retain: bool = False
    params: TrainParams

    def loss(self, model: Any, forget: Any, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError  # pragma: no cover - interface

    def setup(self, model: Any, ctx: UnlearnContext) -> None:
        """Hook for one-off preparation before training (e.g. the reference model)."""

    def forget_items(self, ctx: UnlearnContext) -> Sequence[Any]:
        return ctx.forget

    def collate_forget(self, tokenizer: Any, items: list[Any], device: str) -> Any:
        return make_batch(tokenizer, items, self.params.max_length).to(device)

    def unlearn(self, ctx: UnlearnContext) -> Any:
        p = self.params
        rng = random.Random(ctx.seed)
        model = with_adapter(ctx.model, p, ctx.seed)
        self.setup(model, ctx)
        forget = shuffled_batches(self.forget_items(ctx), p.batch_size, rng)
        retain = shuffled_batches(ctx.retain, p.batch_size, rng) if self.uses_retain else None
        tok, device = ctx.tokenizer, ctx.device

        def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
            retain_batch = make_batch(tok, next(retain), p.max_length).to(device) if retain else None
            return self.loss(model, self.collate_forget(tok, next(forget), device), retain_batch)

        ctx.log_probes(ctx.initial_probe(model), step=0)
        steps, warmup = p.step_budget(len(self.forget_items(ctx)))
        train(model, p, step_loss, ctx, desc=getattr(self, "name", "train"), steps=steps, warmup_steps=warmup)
        # No final probe here: the runner fills the last trajectory row from the final evaluation.
        return merged(model, ctx)
