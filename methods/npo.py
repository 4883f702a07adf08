"""Negative Preference Optimization (``npo``) — Zhang, Lin, Bai, Mei, "Negative Preference
Optimization: From Catastrophic Collapse to Effective Unlearning" (COLM 2024).

For forget pairs (x_i, y_i) with sequence log-likelihoods summed over answer tokens,

    L_NPO(θ) = −(2/β) · mean_i log σ( −β · (log π_θ(y_i|x_i) − log π_ref(y_i|x_i)) )
             =  (2/β) · mean_i softplus( β · (log π_θ(y_i|x_i) − log π_ref(y_i|x_i)) )

with β = 0.1. π_ref is the frozen original model: with LoRA, the same network with the adapter
disabled (no second copy of the weights); with full fine-tuning, a frozen copy. As β → 0 the loss
tends to gradient ascent; the softplus saturates once π_θ(y|x) ≪ π_ref(y|x), which is what slows the
collapse GA suffers from.

NPO+RT: ``retain_weight > 0`` adds ``retain_weight · CE_θ(retain)``:

    L_NPO+RT(θ) = L_NPO(θ) + retain_weight · CE_θ(retain)

``preset: paper`` is NPO+RT with retain_weight 1.0, the configuration the cited code runs
(licong-lin/negative-preference-optimization ``TOFU/config/forget.yaml``: ``forget_loss: npo_grad_diff``,
``npo_coeff: 1.0``, ``grad_diff_coeff: 1.0``; the loss ``npo_coeff·forget + grad_diff_coeff·retain`` in
``TOFU/dataloader.py``). The demo default stays pure NPO (``retain_weight: 0``), which is also one parameter
away in the paper preset.

Clipping: none by default (``max_grad_norm: 0``), as the cited code trains under TOFU's DeepSpeed setup
(``bench.api.TOFU_MAX_GRAD_NORM``). Sources and deviations: docs/methods/npo.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench import (
    TOFU_RECIPE,
    Batch,
    LossMethod,
    Reference,
    TrainParams,
    UnlearnContext,
    cross_entropy,
    logits,
    sequence_logprob,
)
from bench.api import TOFU_MAX_GRAD_NORM


def npo_loss(logp_theta: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """(2/β)·mean softplus(β·(log π_θ − log π_ref)) over sequences."""
    return (2.0 / beta) * F.softplus(beta * (logp_theta - logp_ref)).mean()


@dataclass
class NPOParams(TrainParams):
    beta: float = 0.1
    #: Weight of the retain CE (NPO+RT); 0: pure NPO.
    retain_weight: float = 0.0
    max_grad_norm: float = TOFU_MAX_GRAD_NORM  # the cited code: no clipping (docs/methods/npo.md)

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.retain_weight < 0:
            raise ValueError("retain_weight must be >= 0")


class NPO(LossMethod):
    name = "npo"
    description = "Negative preference optimisation against the frozen base (NPO, +RT with retain_weight)"
    Params = NPOParams
    # NPO's β: the paper's 0.1 and the values around it
    tune_space = {**LossMethod.tune_space, "beta": [0.05, 0.1, 0.5, 1.0]}
    # licong-lin/negative-preference-optimization TOFU/config/forget.yaml (TOFU's forget.py recipe): lr 1e-5
    # (line 8), batch 4 x accumulation 4 (lines 11-12) on 2 GPUs, 10 epochs (line 13), NPO+RT as
    # ``forget_loss: npo_grad_diff`` with npo_coeff 1.0 and grad_diff_coeff 1.0 (lines 14-17; TOFU/dataloader.py
    # line 291), beta 0.1 (line 20), weight decay 0.01 (line 21), warmup one epoch (line 27); TOFU/forget.py
    # max_length 500 (line 70).
    paper_preset = {**TOFU_RECIPE, "epochs": 10, "beta": 0.1, "retain_weight": 1.0, "max_length": 500}

    def __init__(self, params: NPOParams):
        super().__init__(params)
        self.uses_retain = params.retain_weight > 0
        self.reference: Reference | None = None

    def setup(self, model: Any, ctx: UnlearnContext) -> None:
        self.reference = Reference(model)

    def memory_profile(self) -> tuple[int, bool]:
        return 1 + int(self.uses_retain), True

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert self.reference is not None
        logp = sequence_logprob(logits(model, forget), forget.labels)
        logp_ref = sequence_logprob(self.reference.logits(forget), forget.labels)
        loss = npo_loss(logp, logp_ref, self.params.beta)
        logs = {"npo": loss.item(), "log_ratio": (logp - logp_ref).mean().item()}
        if retain is not None:
            r_ce = cross_entropy(logits(model, retain), retain.labels)
            loss = loss + self.params.retain_weight * r_ce
            logs["retain_ce"] = r_ce.item()
        return loss, logs

