"""Evaluation precision: bfloat16 autocast for evaluation and probes, where the hardware has it.

Why: evaluation is forward passes only, and a bf16 matmul runs about twice as fast as fp32 on GPUs and on
CPUs with AVX512-BF16 or AMX; weights stay fp32 (autocast casts per operation), so an unlearned model is
scored in the precision it was trained in everywhere else. Why not by default: bf16 keeps 8 bits of
mantissa, so log-likelihoods move in their third digit and a near-tie in multiple choice can flip — a run
says it wants that (``eval_autocast``), its provenance records what ran, and its cells get other ids than
fp32 ones (their metrics are not the same measurement). On a CPU without native bf16 (an AVX2-only EPYC,
this project's CI machine) bf16 is emulated and slower than fp32: ``auto`` then stays fp32.

``UNLEARN_BENCH_NATIVE_BF16`` (``0`` or ``1``) overrides the CPU's flags for ``auto``: ``0`` runs a bf16 machine
as an AVX2-only one would (fp32), to measure the demo's fp32 time where only a bf16 machine is at hand.

The bound on how far metrics may move is tested (tests/test_generation.py) and measured on the embedded
model by ``unlearn-bench perf``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch

EvalAutocast = Literal["off", "bf16", "auto"]
#: CPU flags (``/proc/cpuinfo``) of native bf16 matrix arithmetic.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: How far bf16 autocast may move a metric's mean over its items, relative to fp32: each item's rounding error
#: (up to a few % on a 3-token answer, where few roundings average out) mostly cancels across items. A
#: statement about metrics, not items: ``unlearn-bench perf`` shows the per-item maximum beside it.
MEAN_RELATIVE_BOUND = 0.01
#: "0" or "1": what ``auto`` takes the CPU to have, whatever its flags say.
NATIVE_BF16_ENV = "UNLEARN_BENCH_NATIVE_BF16"


@cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def cpu_has_native_bf16() -> bool:
    """What the CPU's flags say (AVX512-BF16 or AMX), whatever ``UNLEARN_BENCH_NATIVE_BF16`` makes ``auto`` do."""
    return any(flag in _cpu_flags() for flag in NATIVE_BF16_CPU_FLAGS)


def native_bf16_override() -> bool | None:
    """``UNLEARN_BENCH_NATIVE_BF16`` as a bool, or None when unset."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced and forced not in ("0", "1"):
        raise ValueError(f"{NATIVE_BF16_ENV} must be 0 or 1, got {forced!r}")
    return None if not forced else forced == "1"


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (CUDA with bf16 support; CPU with AVX512-BF16/AMX, or
    as ``UNLEARN_BENCH_NATIVE_BF16`` says)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        forced = native_bf16_override()
        return cpu_has_native_bf16() if forced is None else forced
    return False


def resolve_autocast(requested: str, device: str, setting: str = "autocast") -> str:
    """"bf16" or "off": what ``requested`` means on ``device`` ("auto": bf16 where it is native). Serves
    evaluation (``eval_autocast``) and training (``TrainParams.autocast``) alike."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "off"
    if requested not in ("off", "bf16"):
        raise ValueError(f"{setting} must be off, bf16 or auto, got {requested!r}")
    return requested


def resolve_eval_autocast(requested: str, device: str) -> str:
    """``resolve_autocast`` for the run's ``eval_autocast``."""
    return resolve_autocast(requested, device, "eval_autocast")


@contextmanager
def eval_precision(mode: str, device: str) -> Iterator[None]:
    """Run the block under bf16 autocast when ``mode`` (resolved) is "bf16", else in the weights' precision —
    also inside an enclosing autocast (a method that trains in bf16 probes in the evaluation's precision).

    Never with autocast's weight-cast cache: it keeps the bf16 copy of every parameter that requires grad
    until the *outermost* autocast region ends, so a weight changed in place inside a region (a training
    step, a LoRA merge, an attack) would go unseen by every later forward pass in it — an unlearned model
    scored as the base. Generation and scoring, whose weights do not change while they run, cast once per
    call instead (``linear_weights_in_autocast_dtype``)."""
    device_type = device.split(":")[0]
    if mode != "bf16":
        if device_type not in ("cpu", "cuda"):
            yield
            return
        with torch.autocast(device_type=device_type, enabled=False):
            yield
        return
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, cache_enabled=False):
        yield


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype an active autocast region computes in on ``device_type``, or None outside one."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


@contextmanager
def linear_weights_in_autocast_dtype(model: torch.nn.Module) -> Iterator[None]:
    """Inside an autocast region, give every ``nn.Linear`` of ``model`` its weight already in the region's
    dtype for the block, and put the originals back afterwards (exactly: the same Parameter objects).

    Why: without the weight-cast cache (see ``eval_precision``) autocast casts each fp32 weight to bf16 on
    every call. In a decode step (a few rows, one token each) that cast costs more than the matmul — reading
    the whole fp32 model and writing a bf16 copy per generated token. Casting once per block computes the same
    thing: autocast casts a Linear's input and weight with the same rounding, so a weight that is already
    bf16 gives bit-identical outputs (tested). Only Linear weights and biases are cast — what autocast casts
    anyway; embeddings and norms keep theirs, so the residual stream stays fp32. A weight tied to another
    module (SmolLM2's lm_head and its embeddings) is replaced on the Linear only, so the embedding still looks
    up fp32 rows. For forward passes whose weights do not change inside the block (generation, scoring);
    costs one bf16 copy of the Linear weights while it lasts. Outside autocast, or when the weights are
    already in the region's dtype, it does nothing.

    An unmerged LoRA layer (a relearn attack's adapter, a method's adapter probed mid-training) is folded:
    its base weight becomes bf16(W + ΔW) and its adapter branch is off for the block (``fold_lora_layers``).
    Under autocast the unfolded branch adds a small ΔW·x to an output already rounded to bf16, and a change
    below half a bf16 step there rounds away every time: a 3-step relearn on the 135M model raised the
    base's Person probe by 0.24 nats/token in fp32 and by 0.07 under bf16. Rounding the merged weight instead
    is unbiased over the weights (each W sits anywhere in its rounding interval), as for merged methods."""
    device = next(model.parameters(), torch.empty(0)).device
    dtype = _autocast_dtype(device.type)
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Parameter]] = []
    folded: list[torch.nn.Module] = []
    if dtype is not None:
        skip = fold_lora_layers(model, dtype, swapped, folded)
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear) or id(module) in skip:
                continue
            for name in ("weight", "bias"):
                param = module._parameters.get(name)
                if param is None or not param.is_floating_point() or param.dtype == dtype:
                    continue
                swapped.append((module, name, param))
                module._parameters[name] = torch.nn.Parameter(param.detach().to(dtype), requires_grad=False)
    try:
        yield
    finally:
        for layer in folded:
            layer._disable_adapters = False
        for module, name, param in reversed(swapped):
            module._parameters[name] = param


def fold_lora_layers(model: torch.nn.Module, dtype: torch.dtype, swapped: list[Any],
                     folded: list[torch.nn.Module]) -> set[int]:
    """Give each foldable PEFT LoRA layer of ``model`` the base weight ``(W + ΔW).to(dtype)`` (ΔW: the sum of
    its active adapters' ``get_delta_weight``) and switch its adapter branch off; the originals are appended
    to ``swapped`` and the layers to ``folded`` for the caller to restore. Foldable: enabled, not merged,
    vanilla LoRA on an ``nn.Linear`` (no DoRA or other variant, no LoRA bias). Returns the ids of the folded layers'
    ``lora_A``/``lora_B``, which the folded block never calls (the caller's loop casts the rest)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return set()
    done: set[int] = set()
    for layer in model.modules():
        if not isinstance(layer, LoraLayer) or layer.disable_adapters or layer.merged:
            continue
        base = layer.get_base_layer()
        active = [a for a in layer.active_adapters if a in layer.lora_A]
        if (not active or not isinstance(base, torch.nn.Linear) or any(a in layer.lora_variant for a in active)
                or any(getattr(layer, "lora_bias", {}).get(a) for a in active)):
            continue
        weight = base._parameters["weight"]
        with torch.no_grad(), torch.autocast(weight.device.type, enabled=False):  # ΔW = B·A in fp32
            merged = weight.detach().clone()
            for adapter in active:
                merged += layer.get_delta_weight(adapter).to(merged.dtype)
        swapped.append((base, "weight", weight))
        base._parameters["weight"] = torch.nn.Parameter(merged.to(dtype), requires_grad=False)
        layer._disable_adapters = True  # the base Linear's bias is cast by the caller's loop, as any Linear's
        folded.append(layer)
        done |= {*(id(m) for m in layer.lora_A.values()), *(id(m) for m in layer.lora_B.values())}
    return done
