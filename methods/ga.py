"""Gradient ascent (``ga``): push the likelihood of the forget data down.

Loss, over a batch of forget examples with answer tokens y_1..y_T and prompt x:

    L_GA(θ) = −CE_θ(forget) = (1/N) Σ_{i,t} log π_θ(y_{i,t} | x_i, y_{i,<t})

where N is the number of answer tokens in the batch (token-level mean, as in the usual CE). Minimising
L_GA ascends the forget CE. It is unbounded below, so GA eventually destroys the model; the step budget
and the divergence guard (non-finite loss / gradient norm) bound it. LoRA by default; ``finetune:
full`` trains every weight.

Clipping: none by default (``max_grad_norm: 0``), as TOFU's ``forget.py`` trains (``bench.api.TOFU_MAX_GRAD_NORM``);
``max_grad_norm: 1.0`` clips as open-unlearning's single-process runs do. Sources and deviations:
docs/methods/ga.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench import TOFU_RECIPE, Batch, LossMethod, TrainParams, cross_entropy, logits
from bench.api import TOFU_MAX_GRAD_NORM


def ga_loss(forget_logits: torch.Tensor, forget_labels: torch.Tensor) -> torch.Tensor:
    """−CE on the forget answer tokens."""
    return -cross_entropy(forget_logits, forget_labels)


@dataclass
class GAParams(TrainParams):
    max_grad_norm: float = TOFU_MAX_GRAD_NORM  # TOFU's forget.py: no clipping (docs/methods/ga.md)


class GradientAscent(LossMethod):
    name = "ga"
    description = "Gradient ascent on the forget data (−CE)"
    Params = GAParams
    # TOFU's grad_ascent: locuslab/tofu forget.py (max_length 500, line 75) with config/forget.yaml
    paper_preset = {**TOFU_RECIPE, "max_length": 500}

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        loss = ga_loss(logits(model, forget), forget.labels)
        return loss, {"forget_ce": -loss.item()}

