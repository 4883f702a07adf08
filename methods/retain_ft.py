"""``retain_ft``: keep fine-tuning on the retain data only — a **baseline**, not an unlearning method.

    L_RFT(θ) = CE_θ(retain)

the token-mean next-token cross-entropy over the answer tokens of a retain batch; the forget data is never seen.

Why it is on the harness (issue 47, "teaching validity"): on a taught task the retain data is the other examples the
taught model learned beside the forget target, and the oracle is a model trained on those alone. A method's move
toward the oracle could be catastrophic forgetting — any further training on other data overwrites a narrowly
taught target — rather than unlearning. This row measures how far that alone goes at the same budget (the run's
``train_params``: same steps, batch size, lr and adapter as every method): a method that does not beat it has not
shown that its forget loss does anything. TOFU's "retain model" fine-tunes on the retain set *from the base* (our
oracle); continuing from the taught model, as here, is the catastrophic-forgetting control of the continual-learning
literature (e.g. the fine-tuning baseline of Kirkpatrick et al., "Overcoming catastrophic forgetting in neural
networks", PNAS 2017). Sources and choices: docs/methods/retain_ft.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench import Batch, LossMethod, TrainParams, cross_entropy, logits


def retain_ft_loss(retain_ce: torch.Tensor) -> torch.Tensor:
    """The retain CE itself (a function so that the loss is tested like every method's)."""
    return retain_ce


@dataclass
class RetainFTParams(TrainParams):
    pass


class RetainFineTune(LossMethod):
    name = "retain_ft"
    description = "Baseline: keep fine-tuning on the retain data only (does catastrophic forgetting reach the oracle?)"
    Params = RetainFTParams
    #: A control at the run's shared budget: nothing of its own to tune (tuning it would answer another question).
    tune_space: dict[str, Any] = {}
    uses_retain = True

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        if retain is None:
            raise ValueError("retain_ft needs retain data (the task's retain set)")
        r_ce = cross_entropy(logits(model, retain), retain.labels)
        return retain_ft_loss(r_ce), {"retain_ce": r_ce.item()}
