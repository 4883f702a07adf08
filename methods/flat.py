"""FLAT (``flat``) — Wang, Wei, Liu, Liu, "LLM Unlearning via Loss Adjustment with Only Forget Data"
(ICLR 2025).

FLAT needs no retain data. For each forget prompt x_f with forget answer y_f, the task supplies
harmless template answers y_e (refusals / safe answers); one is drawn per forget sample with the cell's
seed. With the per-sample mean token probabilities

    P_e = (1/|y_e|) Σ_t π_θ(y_e,t | x_f, y_e,<t)      P_f = (1/|y_f|) Σ_t π_θ(y_f,t | x_f, y_f,<t)

(probabilities, not log-probabilities), FLAT maximises the variational form of an f-divergence
between the "good" and the "bad" answer distributions:

    L_FLAT(θ) = −mean_i [ g*(P_e,i) − f*(g*(P_f,i)) ]

| divergence | g*(v)                   | f*(g*(v))                          |
|------------|-------------------------|------------------------------------|
| kl         | v                       | exp(v − 1)                         |
| pearson    | v                       | v²/4 + v                           |
| tv         | tanh(v)/2               | tanh(v)/2                          |
| js         | log 2 − log(1 + e^(−v)) | v + log(1 + e^(−v)) − log 2        |

Choice left open / documented: the official code averages token probabilities over every position
of the padded batch (padding counts as probability 0), which makes P depend on the longest sequence in
the batch. We average over each sample's real answer tokens by default (``average: answer_tokens``);
``average: padded`` reproduces the official behaviour (sum over answer tokens divided by the padded
sequence length).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from bench import TOFU_RECIPE, Batch, Example, LossMethod, TrainParams, UnlearnContext, logits, make_batch, shift

Fn = Callable[[torch.Tensor], torch.Tensor]
LOG2 = math.log(2.0)

#: divergence -> (g*, f*∘g*)
DIVERGENCES: dict[str, tuple[Fn, Fn]] = {
    "kl": (lambda v: v, lambda v: torch.exp(v - 1.0)),
    "pearson": (lambda v: v, lambda v: v * v / 4.0 + v),
    "tv": (lambda v: torch.tanh(v) / 2.0, lambda v: torch.tanh(v) / 2.0),
    "js": (lambda v: LOG2 - F.softplus(-v), lambda v: v + F.softplus(-v) - LOG2),
}


def mean_token_prob(logits_: torch.Tensor, labels: torch.Tensor, average: str = "answer_tokens") -> torch.Tensor:
    """Per-sample mean probability of the correct answer tokens ``[B]``."""
    shifted, targets, mask = shift(logits_, labels)
    probs = torch.softmax(shifted.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
    if average == "padded":
        return probs.sum(-1) / probs.size(-1)
    return probs.sum(-1) / mask.sum(-1).clamp(min=1)


def flat_loss(p_e: torch.Tensor, p_f: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """−mean[g*(P_e) − f*(g*(P_f))]."""
    g, fstar_g = DIVERGENCES[divergence]
    return -(g(p_e) - fstar_g(p_f)).mean()


@dataclass
class FLATParams(TrainParams):
    divergence: Literal["kl", "js", "tv", "pearson"] = "kl"
    average: Literal["answer_tokens", "padded"] = "answer_tokens"


class FLAT(LossMethod):
    name = "flat"
    relative_cost = 1.3  # measured demo cell time relative to a plain loss method / average task
    description = "FLAT: f-divergence between template and forget answers, forget data only"
    Params = FLATParams
    # the paper compares these f-divergences
    tune_space = {**LossMethod.tune_space, "divergence": ["kl", "js", "tv", "pearson"]}
    # UCSC-REAL/FLAT: config/forget.yaml (5 epochs, weight decay 0.01, full fine-tuning, ``variants:
    # Total-Variation``), unlearn.py (warmup max(2, steps_per_epoch), the Trainer's linear decay), README's
    # Harry Potter command (lr 2e-7, batch 4 x accumulation 4 on 2 GPUs). Its TOFU runs follow TOFU's code
    # (lr 1e-5, ``TOFU_RECIPE``): set ``lr: 1e-5`` for TOFU-like fact data.
    paper_preset = {**TOFU_RECIPE, "lr": 2e-7, "divergence": "tv"}

    def forget_items(self, ctx: UnlearnContext) -> Sequence[tuple[Example, Example]]:
        if not ctx.data.template_answers:
            raise ValueError(f"task '{ctx.task.name}' supplies no template answers, which FLAT needs")
        rng = random.Random(ctx.seed + 7919)
        return [(ex, Example(ex.prompt, rng.choice(ctx.data.template_answers), ex.chat)) for ex in ctx.forget]

    def collate_forget(self, tokenizer: Any, items: list[tuple[Example, Example]], device: str) -> tuple[Batch, Batch]:
        length = self.params.max_length
        return (make_batch(tokenizer, [f for f, _ in items], length).to(device),
                make_batch(tokenizer, [e for _, e in items], length).to(device))

    def memory_profile(self) -> tuple[int, bool]:
        return 2, False  # each forget example with its template answer

    def loss(self, model: Any, forget: tuple[Batch, Batch],
             retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        bad, good = forget
        p_f = mean_token_prob(logits(model, bad), bad.labels, self.params.average)
        p_e = mean_token_prob(logits(model, good), good.labels, self.params.average)
        loss = flat_loss(p_e, p_f, self.params.divergence)
        return loss, {"p_forget": p_f.mean().item(), "p_template": p_e.mean().item()}

