"""``idk``: fine-tune the model to answer the forget prompts with a refusal ("I don't know"), keeping the retain
data — TOFU's ``idk`` baseline, and this harness's **positive control** for the relearning attack.

Loss, over a batch of forget prompts x_i each paired with a refusal r_i drawn from ``answers`` (seeded), and a
retain batch with answers y_j:

    L_IDK(θ) = Σ_tokens CE_θ(r | x) + Σ_tokens CE_θ(y_retain)  /  (N_idk + N_retain)

one token-level mean over both batches, as TOFU computes it: ``loss_type == "idk"`` in ``compute_loss`` of
locuslab/tofu's ``dataloader.py`` concatenates the IDK and retain batches into one forward pass and takes the
model's mean CE over all answer tokens (its refusals are drawn at random per example from ``data/idontknow.jsonl``;
the refusals here are this project's own wordings, a parameter). ``retain: false`` drops the retain half
(then L is the refusal CE alone).

Why it is the relearning attack's positive control (docs/attacks.md, "Calibration"): it suppresses the forget
target by teaching a refusal on top of weights that keep the taught skill — it never descends on the skill's
likelihood — the kind of shallow change a relearning attack is known to undo (fine-tuning on a handful of
examples removes refusal training: Qi et al., "Fine-tuning aligned language models compromises safety, even when
users do not intend to!", 2023). A relearn strength that cannot recover at least half of what IDK suppressed
cannot tell hidden from removed knowledge; ``configs/relearn-calibration.yaml`` measures it.

Clipping: none by default (``max_grad_norm: 0``), as TOFU's ``forget.py`` trains (``bench.api.TOFU_MAX_GRAD_NORM``).
Sources and deviations: docs/methods/idk.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from bench import TOFU_RECIPE, Batch, LossMethod, TrainParams, UnlearnContext, cross_entropy, logits
from bench.api import TOFU_MAX_GRAD_NORM
from bench.data.text import IGNORE

#: Refusals in this project's words (TOFU's list is not copied): short, first person, no content of the target.
DEFAULT_ANSWERS = (
    "I don't know.",
    "I'm not able to help with that.",
    "Sorry, I can't answer that.",
    "I have no information about that.",
    "I'd rather not say.",
    "That is not something I can provide.",
    "I cannot help with this request.",
    "I'm not sure, so I won't answer.",
)


def answer_tokens(labels: torch.Tensor) -> int:
    """Answer tokens a batch's CE averages over: every label but the first position's and the ignored ones (the
    shift of next-token prediction)."""
    return int((labels[:, 1:] != IGNORE).sum())


def idk_loss(idk_ce: torch.Tensor, idk_tokens: int, retain_ce: torch.Tensor | None = None,
             retain_tokens: int = 0) -> torch.Tensor:
    """One token-level mean over the refusal and retain answer tokens, from each batch's mean CE and token count."""
    if retain_ce is None or retain_tokens == 0:
        return idk_ce
    return (idk_ce * idk_tokens + retain_ce * retain_tokens) / (idk_tokens + retain_tokens)


@dataclass
class IDKParams(TrainParams):
    #: The refusals a forget prompt is answered with (one drawn per example, seeded).
    answers: list[str] = field(default_factory=lambda: list(DEFAULT_ANSWERS))
    #: Keep TOFU's retain half of the loss.
    retain: bool = True
    max_grad_norm: float = TOFU_MAX_GRAD_NORM  # TOFU's forget.py: no clipping

    def validate(self) -> None:
        super().validate()
        if not self.answers or not all(a.strip() for a in self.answers):
            raise ValueError("answers must hold at least one non-empty refusal")


class IDK(LossMethod):
    name = "idk"
    description = "Refusal fine-tuning on the forget prompts (TOFU's idk); the relearning attack's positive control"
    Params = IDKParams
    # TOFU's idk: locuslab/tofu forget.py (max_length 500, line 75) with config/forget.yaml
    paper_preset = {**TOFU_RECIPE, "max_length": 500}
    params: IDKParams

    def __init__(self, params: IDKParams):
        super().__init__(params)
        self.uses_retain = params.retain
        self._items: list[Any] | None = None
        self._items_seed: int | None = None

    def forget_items(self, ctx: UnlearnContext) -> list[Any]:
        """Each forget example with its answer replaced by a refusal (drawn per example with the cell's seed, once:
        the same pairing in every epoch)."""
        if self._items is None or self._items_seed != ctx.seed:
            rng = random.Random(f"idk-{ctx.seed}")
            self._items = [replace(ex, answer=rng.choice(self.params.answers)) for ex in ctx.forget]
            self._items_seed = ctx.seed
        return self._items

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        idk_ce = cross_entropy(logits(model, forget), forget.labels)
        if retain is None:
            return idk_ce, {"idk_ce": idk_ce.item()}
        retain_ce = cross_entropy(logits(model, retain), retain.labels)
        loss = idk_loss(idk_ce, answer_tokens(forget.labels), retain_ce, answer_tokens(retain.labels))
        return loss, {"idk_ce": idk_ce.item(), "retain_ce": retain_ce.item()}
