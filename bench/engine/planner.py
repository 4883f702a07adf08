"""``unlearn-bench plan``: every cell of a run with its predicted peak memory and a rough time, before
anything is loaded — the model's config only (meta device), the methods' and tasks' parameters, and the
detected device's memory. Cells that will not fit are named with what to change."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from bench.lm.memory_plan import (
    FIT_SHARE,
    GenerationShape,
    GiB,
    MemoryEstimate,
    ModelShape,
    TrainingShape,
    estimate,
    rough_seconds,
)

#: The engine keeps one copy of the base resident, which each cell borrows (``ModelCache``).
RESIDENT_COPIES = 1
#: Default generation when a task does not describe its own (``Task.generation_shape``).
GENERIC_GENERATION = (16, 512, 256, 64)


@dataclass
class PlannedCell:
    cell_id: str
    method: str
    task: str
    finetune: str
    estimate: MemoryEstimate
    seconds: float
    fits: bool


@dataclass
class Plan:
    model: str
    n_params: int
    dtype: str
    device: str
    capacity: int
    flops_per_s: float
    cells: list[PlannedCell]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "n_params": self.n_params, "dtype": self.dtype, "device": self.device,
                "capacity_bytes": self.capacity, "fit_share": FIT_SHARE, "flops_per_s": self.flops_per_s,
                "cells": [{"cell_id": c.cell_id, "method": c.method, "task": c.task, "finetune": c.finetune,
                           "memory": c.estimate.to_json(), "rough_seconds": round(c.seconds, 1), "fits": c.fits}
                          for c in self.cells]}


def device_capacity(device: str) -> tuple[int, str]:
    """(bytes the device can hold, a description)."""
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return props.total_memory, f"{props.name} ({props.total_memory / GiB:.1f} GiB)"
    import psutil

    total = psutil.virtual_memory().total
    return total, f"{device} with {total / GiB:.1f} GiB of system memory"


def matmul_flops(device: str, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """Measured dense matmul throughput (FLOP/s) on the device: the ceiling the rough times assume."""
    n = 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def training_shape(method: Any) -> TrainingShape:
    p = method.params
    graphs, needs_reference = method.memory_profile()
    return TrainingShape(
        finetune=getattr(p, "finetune", "lora") if graphs else "none", lora_rank=getattr(p, "lora_rank", 8),
        lora_targets=tuple(getattr(p, "lora_targets", ("q_proj", "v_proj"))), batch_size=getattr(p, "batch_size", 4),
        max_length=getattr(p, "max_length", 256), graphs=graphs, needs_reference=needs_reference,
        gradient_checkpointing=getattr(p, "gradient_checkpointing", False),
        # "auto"/"fp32": fp32 masters, which ``estimate`` applies only to half-precision full fine-tuning
        master_weights=getattr(p, "master_weights", "off") != "off")


def plan_run(config: Any, registry: Any) -> Plan:
    from bench.engine.config import plan_cells
    from bench.lm.models import model_config, pick_device, pick_dtype
    from bench.params import build_params

    cells = plan_cells(config, registry)
    device = pick_device(config.device)
    dtype = pick_dtype(config.dtype, device)
    dtype_name = str(dtype).replace("torch.", "")
    shape = ModelShape.from_config(model_config(config.model))
    capacity, described = device_capacity(device)
    flops = matmul_flops(device, dtype)
    planned = []
    for spec in cells:
        method_cls = registry.get("method", spec.method).cls
        task_cls = registry.get("task", spec.task).cls
        method = method_cls(build_params(method_cls.Params, spec.method_params, f"method_params.{spec.method}"))
        task = task_cls(build_params(task_cls.Params, spec.task_params, f"task_params.{spec.task}"))
        train = training_shape(method)
        batch, prompt, new, n_generated = task.generation_shape() or GENERIC_GENERATION
        gen = GenerationShape(batch, prompt, new)
        on_accelerator = not device.startswith("cpu")
        est = estimate(shape, train, gen, dtype_name, RESIDENT_COPIES, foreach=on_accelerator,
                       reference_on_device=not on_accelerator, eval_reference=task_cls.uses_reference)
        steps = getattr(method.params, "steps", 0) * getattr(method.params, "grad_accum", 1)
        seconds = rough_seconds(shape, train, steps, gen, n_generated * 2, flops)  # base + unlearned model
        planned.append(PlannedCell(spec.cell_id, spec.method, spec.task, train.finetune, est, seconds,
                                   est.peak <= FIT_SHARE * capacity))
    return Plan(config.model, shape.n_params, dtype_name, described, capacity, flops, planned)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f}"


def render(plan: Plan) -> str:
    lines = [f"model {plan.model}: {plan.n_params / 1e6:.1f}M parameters, {plan.dtype}; device: {plan.device}; "
             f"matmul {plan.flops_per_s / 1e9:.0f} GFLOP/s",
             "predicted peak tensor memory per cell, GiB (weights = the one resident base copy, which the cell "
             "unlearns in place; eval ref = a second copy during evaluation for tasks measured under the base; "
             "rough time: the FLOPs of training and generation at the measured matmul rate)",
             "| cell | finetune | weights | reference | grads | optimizer | activations | KV cache | eval ref | "
             "peak | rough time | fits |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in plan.cells:
        e = c.estimate
        lines.append(f"| {c.method} × {c.task} | {c.finetune} | {_gib(e.weights)} | {_gib(e.reference)} | "
                     f"{_gib(e.gradients)} | {_gib(e.optimizer)} | {_gib(e.activations)} | {_gib(e.kv_cache)} | "
                     f"{_gib(e.eval_reference)} | "
                     f"**{_gib(e.peak)}** | {c.seconds / 60:.1f} min | {'yes' if c.fits else '**no**'} |")
    for c in plan.cells:
        if not c.fits:
            lines.append(f"warning: {c.method} × {c.task} needs {_gib(c.estimate.peak)} GiB, more than "
                         f"{FIT_SHARE:.0%} of the device's {_gib(plan.capacity)} GiB; lower batch_size or "
                         "max_length, set gradient_checkpointing: true, or use finetune: lora")
    return "\n".join(lines)
