"""Measured peak tensor memory of one training step and one generation, to check ``memory_plan``.

On CUDA the truth is ``torch.cuda.max_memory_allocated``. On CPU there is no allocator statistic, so
live tensor storages are tracked by ``LiveStorages`` (a ``TorchDispatchMode``: parameters, gradients,
optimizer state, activations and temporaries all count, each storage once, until it is freed). The step
is the harness's own: the same adapter wrapping, AdamW, reference and loss helpers as ``bench.lm.training``,
on batches of random tokens at exactly ``max_length`` (the worst case the plan predicts).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from bench.lm.memory_plan import GenerationShape, TrainingShape


class LiveStorages(TorchDispatchMode):
    """Bytes of tensor storages alive, and their peak: every storage an op returns is counted until it is
    freed (a weak reference per storage), plus the storages of the tensors given to ``track``."""

    def __init__(self) -> None:
        super().__init__()
        self.current = self.peak = 0
        self._alive: dict[int, weakref.ref] = {}

    def track(self, *tensors: torch.Tensor) -> None:
        for t in tensors:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._alive or storage.nbytes() == 0:
                continue
            size = storage.nbytes()
            self._alive[key] = weakref.ref(storage, lambda _, key=key, size=size: self._free(key, size))
            self.current += size
            self.peak = max(self.peak, self.current)

    def _free(self, key: int, size: int) -> None:
        if self._alive.pop(key, None) is not None:
            self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        out = func(*args, **(kwargs or {}))
        self.track(*[t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)])
        return out


def _state_tensors(*objects: Any) -> list[torch.Tensor]:
    """Parameters, buffers, gradients and optimiser state of modules and optimisers."""
    out: list[torch.Tensor] = []
    for obj in objects:
        if isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                out += [p] + ([p.grad] if p.grad is not None else [])
            out += list(obj.buffers())
        elif isinstance(obj, torch.optim.Optimizer):
            out += [t for state in obj.state.values() for t in state.values() if isinstance(t, torch.Tensor)]
    return out


@contextmanager
def peak_tensor_bytes(device: torch.device, *tracked: Any) -> Iterator[dict[str, int]]:
    """Yield a dict that holds ``peak`` (bytes of live tensors, including ``tracked`` modules' and
    optimisers' state) once the block ends."""
    out: dict[str, int] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out["peak"] = torch.cuda.max_memory_allocated(device)
        return
    mode = LiveStorages()
    mode.track(*_state_tensors(*[t for t in tracked if t is not None]))
    with mode:
        yield out
    out["peak"] = mode.peak


def _batch(vocab: int, batch_size: int, length: int, device: torch.device) -> Any:
    from bench.data.text import Batch

    ids = torch.randint(3, vocab, (batch_size, length), device=device)
    return Batch(ids, torch.ones_like(ids), ids.clone())


def measure_train_step(build_model: Callable[[], Any], train: TrainingShape, device: str = "cpu",
                       lr: float = 1e-5) -> int:
    """Peak tensor bytes of the model on ``device`` (one resident copy) over two optimiser steps."""
    from bench.api import TrainParams
    from bench.lm.losses import cross_entropy, sequence_logprob
    from bench.lm.training import Reference, logits, make_optimizer, with_adapter

    dev = torch.device(device)
    params = TrainParams(lr=lr, finetune=train.finetune, lora_rank=train.lora_rank,
                         lora_targets=list(train.lora_targets), batch_size=train.batch_size,
                         max_length=train.max_length, gradient_checkpointing=train.gradient_checkpointing,
                         master_weights="fp32" if train.master_weights else "off")
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    model = build_model().to(dev)
    model = with_adapter(model, params, 0)
    reference = Reference(model) if train.needs_reference else None
    optimizer = make_optimizer(model, params)
    vocab = model.config.vocab_size
    batches = [_batch(vocab, train.batch_size, train.max_length, dev) for _ in range(train.graphs)]
    model.train()
    # on CUDA the peak statistic is reset once the model is built, so it starts at the weights' bytes
    with peak_tensor_bytes(dev, model, optimizer) as peak:
        for _ in range(2):  # the second step has AdamW's moments from the first: the steady state
            optimizer.zero_grad(set_to_none=True)
            loss = sum(cross_entropy(logits(model, b), b.labels).mean() for b in batches)
            if reference is not None:  # as NPO: the reference's sequence log-probability, no graph
                loss = loss + 0.0 * sequence_logprob(reference.logits(batches[0]), batches[0].labels).sum()
            loss.backward()
            optimizer.step()
            del loss
    result = peak["peak"]
    del model, optimizer, reference, batches
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return result


@torch.no_grad()
def measure_generation(model: Any, gen: GenerationShape, device: str = "cpu") -> int:
    """Peak tensor bytes of one generation batch with a KV cache (weights included)."""
    from transformers import DynamicCache

    from bench.lm.kv import with_cache

    dev = torch.device(device)
    model = model.to(dev).eval()
    ids = torch.randint(3, model.config.vocab_size, (gen.batch_size, gen.prompt_tokens), device=dev)
    with peak_tensor_bytes(dev, model) as peak:
        cache = DynamicCache()
        out = model(input_ids=ids, **with_cache(model, cache), use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1].float().softmax(-1).argmax(-1, keepdim=True)
        for _ in range(gen.new_tokens - 1):
            out = model(input_ids=nxt, **with_cache(model, cache), use_cache=True)
            nxt = out.logits[:, -1].float().softmax(-1).argmax(-1, keepdim=True)
    return peak["peak"]
