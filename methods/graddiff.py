"""Gradient difference (``graddiff``): ascend on forget data, descend on retain data.

    L_GD(θ) = −w_f · CE_θ(forget) + w_r · CE_θ(retain)

CE is the token-mean next-token cross-entropy over answer tokens of a batch. Each optimiser step
draws one forget batch and one retain batch of the same size. Defaults w_f = w_r = 1 (Liu et al.,
"Continual learning and private unlearning", 2022; the TOFU/open-unlearning baseline).

Clipping: none by default (``max_grad_norm: 0``), as TOFU's ``forget.py`` trains (``bench.api.TOFU_MAX_GRAD_NORM``);
``max_grad_norm: 1.0`` clips as open-unlearning's single-process runs do. Sources and deviations:
docs/methods/graddiff.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench import TOFU_RECIPE, Batch, LossMethod, TrainParams, cross_entropy, logits
from bench.api import TOFU_MAX_GRAD_NORM


def graddiff_loss(forget_ce: torch.Tensor, retain_ce: torch.Tensor, forget_weight: float = 1.0,
                  retain_weight: float = 1.0) -> torch.Tensor:
    return -forget_weight * forget_ce + retain_weight * retain_ce


@dataclass
class GradDiffParams(TrainParams):
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    max_grad_norm: float = TOFU_MAX_GRAD_NORM  # TOFU's forget.py: no clipping (docs/methods/graddiff.md)

    def validate(self) -> None:
        super().validate()
        if self.forget_weight < 0 or self.retain_weight < 0:
            raise ValueError("forget_weight and retain_weight must be >= 0")


class GradDiff(LossMethod):
    name = "graddiff"
    relative_cost = 1.3  # measured demo cell time relative to a plain loss method / average task
    description = "Gradient difference: −w_f·CE(forget) + w_r·CE(retain)"
    Params = GradDiffParams
    # the retain term's weight around 1 (TOFU's grad_diff)
    tune_space = {**LossMethod.tune_space, "retain_weight": [0.5, 1.0, 2.0]}
    # TOFU's grad_diff: locuslab/tofu forget.py (max_length 500, line 75) with config/forget.yaml
    paper_preset = {**TOFU_RECIPE, "max_length": 500}
    uses_retain = True

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert retain is not None
        f_ce = cross_entropy(logits(model, forget), forget.labels)
        r_ce = cross_entropy(logits(model, retain), retain.labels)
        loss = graddiff_loss(f_ce, r_ce, self.params.forget_weight, self.params.retain_weight)
        return loss, {"forget_ce": f_ce.item(), "retain_ce": r_ce.item()}

