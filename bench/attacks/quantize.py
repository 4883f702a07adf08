"""``quantize``: weight-only quantization of every linear layer, after Zhang et al., "Catastrophic Failure
of LLM Unlearning via Quantization" (ICLR 2025), who found that 4-bit quantization of an unlearned model
restores much of what was "forgotten": unlearning moves weights by less than a quantization step, and
rounding can snap them back to the original grid point.

Backends: ``rtn`` — symmetric round-to-nearest per group of ``group_size`` input weights (absmax scale,
integers in [−2^(b−1), 2^(b−1) − 1]), applied in place and dequantized, so it runs anywhere (CPU
included) and computes exactly what an RTN int-b kernel would; ``nf4`` — bitsandbytes' NF4 (blocksize
64), on CUDA when bitsandbytes is installed. ``auto`` picks ``nf4`` for 4 bits on CUDA with bitsandbytes,
else ``rtn``; the backend that ran is recorded. ``lm_head`` (tied to the embeddings in many small models)
and embeddings stay in full precision, as in common quantization tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from bench.api import Attack, AttackContext, Attacked, AttackParams
from bench.lm.training import restore, snapshot


@dataclass
class QuantizeParams(AttackParams):
    bits: int = 4
    group_size: int = 128
    backend: Literal["auto", "rtn", "nf4"] = "auto"

    def validate(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {self.bits}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.backend == "nf4" and self.bits != 4:
            raise ValueError("backend nf4 is 4-bit; set bits: 4")


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """Symmetric per-group round-to-nearest, dequantized (same shape and dtype as ``weight``)."""
    out_features, in_features = weight.shape
    w = weight.detach().float()
    pad = (-in_features) % group_size
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    groups = w.reshape(out_features, -1, group_size)
    qmax = 2 ** (bits - 1) - 1
    scale = groups.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / qmax
    q = torch.clamp(torch.round(groups / scale), -qmax - 1, qmax)
    return (q * scale).reshape(out_features, -1)[:, :in_features].to(weight.dtype)


def nf4_quantize(weight: torch.Tensor) -> torch.Tensor:  # pragma: no cover - needs CUDA and bitsandbytes
    import bitsandbytes.functional as bnbf

    packed, state = bnbf.quantize_4bit(weight.detach(), blocksize=64, quant_type="nf4")
    return bnbf.dequantize_4bit(packed, state).to(weight.dtype)


def choose_backend(params: QuantizeParams, device: str) -> str:
    if params.backend != "auto":
        return params.backend
    if params.bits == 4 and device.startswith("cuda"):
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is not None:
            return "nf4"
    return "rtn"


def quantizable(model: Any) -> list[tuple[str, torch.nn.Linear]]:
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]


class QuantizeAttack(Attack):
    name = "quantize"
    description = "Weight-only quantization of linear layers (RTN int4/int8 on CPU, NF4 on CUDA)"
    Params = QuantizeParams
    seeded = False  # deterministic: one base control serves every seed

    def attack(self, ctx: AttackContext) -> Attacked:
        p = self.params
        backend = choose_backend(p, ctx.device)
        layers = quantizable(ctx.model)
        if backend == "nf4" and not str(layers[0][1].weight.device).startswith("cuda"):
            raise ValueError("backend nf4 needs the model on CUDA; use backend: rtn")
        # Snapshots on the CPU: the attacked weights replace the originals in place (one resident copy on
        # the device) and ``restore`` puts them back bit-exactly.
        saved = snapshot(ctx.model, (f"{name}.weight" for name, _ in layers), device="cpu")
        with torch.no_grad():
            for _, module in layers:
                w = module.weight
                w.copy_(nf4_quantize(w) if backend == "nf4" else rtn_quantize(w, p.bits, p.group_size))
        info = {"backend": backend, "bits": p.bits, "group_size": p.group_size if backend == "rtn" else 64,
                "layers": len(layers)}
        return Attacked(model=ctx.model, info=info, restore=lambda: restore(ctx.model, saved))
