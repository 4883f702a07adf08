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
    scored as the base. Measured on the embedded model: no speed difference without the cache."""
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
