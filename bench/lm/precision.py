"""Evaluation precision: bfloat16 autocast for evaluation and probes, where the hardware has it.

Why: evaluation is forward passes only, and a bf16 matmul runs about twice as fast as fp32 on GPUs and on
CPUs with AVX512-BF16 or AMX; weights stay fp32 (autocast casts per operation), so an unlearned model is
scored in the precision it was trained in everywhere else. Why not by default: bf16 keeps 8 bits of
mantissa, so log-likelihoods move in their third digit and a near-tie in multiple choice can flip — a run
says it wants that (``eval_autocast``), its provenance records what ran, and its cells get other ids than
fp32 ones (their metrics are not the same measurement). On a CPU without native bf16 (an AVX2-only EPYC,
this project's CI machine) bf16 is emulated and slower than fp32: ``auto`` then stays fp32.

The bound on how far metrics may move is tested (tests/test_generation.py) and measured on the embedded
model by ``unlearn-bench perf``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Literal

import torch

EvalAutocast = Literal["off", "bf16", "auto"]
#: CPU flags (``/proc/cpuinfo``) of native bf16 matrix arithmetic.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return frozenset(line.split(":", 1)[-1].split())


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes bf16 matmuls natively (CUDA with bf16 support; CPU with AVX512-BF16/AMX)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        return any(flag in _cpu_flags() for flag in NATIVE_BF16_CPU_FLAGS)
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
    already in the region's dtype, it does nothing."""
    device = next(model.parameters(), torch.empty(0)).device
    dtype = _autocast_dtype(device.type)
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Parameter]] = []
    if dtype is not None:
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear):
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
        for module, name, param in reversed(swapped):
            module._parameters[name] = param
