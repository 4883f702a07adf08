"""FLAT (``flat``) — Wang et al., "LLM Unlearning via Loss Adjustment with Only Forget Data" (ICLR 2025).
Official code: UCSC-REAL/FLAT (``dataloader.py``, ``data_module.py``, ``unlearn.py``); every source line and
every deviation is listed in docs/methods/flat.md.

FLAT needs no retain data. Each forget prompt x_f with its forget answer y_f is paired with a harmless
template answer y_e (a refusal / safe answer) drawn from the task's ``template_answers``, **afresh every time
the example is served, i.e. once per epoch** (the official dataset draws one in ``__getitem__``). With the
probabilities of the answer tokens

    p_t = π_θ(y_t | x, y_<t)       (probabilities, not log-probabilities)

FLAT maximises the variational form of an f-divergence between the template ("good") and the forget
("bad") answers:

    L_FLAT(θ) = −[ g*(P_e) − f*(g*(P_f)) ]

| divergence | g*(v)                   | f*(g*(v))                          |
|------------|-------------------------|------------------------------------|
| kl         | v                       | exp(v − 1)                         |
| pearson    | v                       | v²/4 + v                           |
| tv         | tanh(v)/2               | tanh(v)/2                          |
| js         | log 2 − log(1 + e^(−v)) | v + log(1 + e^(−v)) − log 2        |

(``get_contrastive_loss`` in the official ``dataloader.py``, which also has reverse KL, Jeffrey, squared
Hellinger and Neyman; not offered here.) What P is, ``average``:

* ``padded`` — **the official computation** (``compute_loss``, ``loss_type == "cl"``; ``ProbLossStable``):
  every sequence is padded to a fixed length L (``pad_length``, default 500: the ``max_length`` the official
  ``unlearn.py`` passes to its datasets, as TOFU's ``forget.py`` does), and P is the mean of p_t over *every*
  position of the micro-batch after the shift, padding and prompt positions counting as 0:

      P = (1 / (B · (L − 1))) Σ_b Σ_t m_b,t · p_b,t          (one number per micro-batch)

  The conjugates are applied to these two batch means. The padding is not materialised here: a padded
  position contributes 0 to the sum, so dividing by B·(L − 1) gives the same number without the forward
  pass over L positions (causal attention: right padding does not change the real positions' logits).
* ``answer_tokens`` (default) — P_i is sample i's mean of p_t over its own answer tokens, the conjugates
  are applied per sample and the loss is their mean: L = −mean_i[g*(P_e,i) − f*(g*(P_f,i))]. Our choice: the
  official P depends on the batch size and on an arbitrary pad length (answers of ~20 tokens padded to 500
  give P ≈ 0.04 · mean p, where every conjugate is nearly linear), and on which samples share a batch.

Warm-up: ``warmup_min_steps`` (2) — the official ``unlearn.py`` warms up for ``max(2, steps_per_epoch)``
steps where TOFU's ``forget.py`` has ``max(1, ·)``. Clipping: none by default (``bench.api.TOFU_MAX_GRAD_NORM``).
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
from bench.api import TOFU_MAX_GRAD_NORM

Fn = Callable[[torch.Tensor], torch.Tensor]
LOG2 = math.log(2.0)

#: divergence -> (g*, f*∘g*)
DIVERGENCES: dict[str, tuple[Fn, Fn]] = {
    "kl": (lambda v: v, lambda v: torch.exp(v - 1.0)),
    "pearson": (lambda v: v, lambda v: v * v / 4.0 + v),
    "tv": (lambda v: torch.tanh(v) / 2.0, lambda v: torch.tanh(v) / 2.0),
    "js": (lambda v: LOG2 - F.softplus(-v), lambda v: v + F.softplus(-v) - LOG2),
}

#: The fixed length the official code pads every sequence to (UCSC-REAL/FLAT ``unlearn.py`` line 82,
#: ``max_length = 500``, passed to its datasets, which pad to it: ``data_module.py`` ``create_tofu_sample_pair``).
OFFICIAL_PAD_LENGTH = 500


def answer_token_probs(logits_: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p_t of every label position after the shift ``[B, T-1]`` (0 where masked), and the mask."""
    shifted, targets, mask = shift(logits_, labels)
    probs = torch.softmax(shifted.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
    return probs, mask


def mean_token_prob(logits_: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``average: answer_tokens``: each sample's mean probability of its own answer tokens ``[B]``."""
    probs, mask = answer_token_probs(logits_, labels)
    return probs.sum(-1) / mask.sum(-1).clamp(min=1)


def padded_batch_prob(logits_: torch.Tensor, labels: torch.Tensor, pad_length: int) -> torch.Tensor:
    """``average: padded``: the official P, one scalar per micro-batch — Σ p_t over the batch's answer tokens
    divided by B·(pad_length − 1), as if every sequence were padded to ``pad_length`` (a padded or prompt position
    is a 0 in the official mean)."""
    probs, _ = answer_token_probs(logits_, labels)
    if probs.size(-1) > pad_length - 1:
        raise ValueError(f"a sequence of {probs.size(-1) + 1} tokens is longer than pad_length {pad_length}")
    return probs.sum() / (probs.size(0) * (pad_length - 1))


def flat_loss(p_e: torch.Tensor, p_f: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """−mean[g*(P_e) − f*(g*(P_f))] (per sample, or on the two batch means when they are scalars)."""
    g, fstar_g = DIVERGENCES[divergence]
    return -(g(p_e) - fstar_g(p_f)).mean()


@dataclass
class FLATParams(TrainParams):
    divergence: Literal["kl", "js", "tv", "pearson"] = "kl"
    #: How P is averaged: "answer_tokens" (per sample, conjugates per sample) or "padded" (the official code:
    #: the micro-batch mean over ``pad_length`` positions per sequence, conjugates on the two batch means).
    average: Literal["answer_tokens", "padded"] = "answer_tokens"
    #: The fixed sequence length of ``average: padded`` (official: 500). Must be >= ``max_length``.
    pad_length: int = OFFICIAL_PAD_LENGTH
    #: Warm-up is max(warmup_min_steps, warmup_epochs · steps per epoch) when ``warmup_epochs`` > 0: the
    #: official ``unlearn.py`` (line 103) has max(2, steps_per_epoch).
    warmup_min_steps: int = 2
    max_grad_norm: float = TOFU_MAX_GRAD_NORM  # the official code: no clipping (docs/methods/flat.md)

    def validate(self) -> None:
        super().validate()
        if self.average == "padded" and self.pad_length < self.max_length:
            raise ValueError(f"average 'padded' needs pad_length >= max_length (the official code truncates to "
                             f"the length it pads to); got pad_length {self.pad_length}, max_length {self.max_length}")
        if self.warmup_min_steps < 0:
            raise ValueError(f"warmup_min_steps must be >= 0, got {self.warmup_min_steps}")

    def step_budget(self, n_examples: int) -> tuple[int, int]:
        total, warmup = super().step_budget(n_examples)
        if self.warmup_epochs > 0:
            warmup = min(max(self.warmup_min_steps, warmup), total)
        return total, warmup


class FLAT(LossMethod):
    name = "flat"
    relative_cost = 1.3  # measured demo cell time relative to a plain loss method / average task
    description = "FLAT: f-divergence between template and forget answers, forget data only"
    Params = FLATParams
    params: FLATParams
    # the paper compares these f-divergences
    tune_space = {**LossMethod.tune_space, "divergence": ["kl", "js", "tv", "pearson"]}
    # UCSC-REAL/FLAT: config/forget.yaml (5 epochs, weight decay 0.01, full fine-tuning ``LoRA.r: 0``,
    # ``variants: Total-Variation``), unlearn.py (warmup max(2, steps_per_epoch), the Trainer's linear decay,
    # max_length 500), dataloader.py (the loss on padded batch means: ``average: padded``), README's Harry Potter
    # command (lr 2e-7, batch 4 per device x accumulation 4 on 2 GPUs: effective 32, as batch 4 x accumulation 8
    # here, whose micro-batch of 4 is the one the official batch means average over). Its TOFU runs follow
    # TOFU's code (lr 1e-5, ``TOFU_RECIPE``): set ``lr: 1e-5`` for TOFU-like fact data.
    paper_preset = {**TOFU_RECIPE, "lr": 2e-7, "batch_size": 4, "grad_accum": 8, "max_length": OFFICIAL_PAD_LENGTH,
                    "divergence": "tv", "average": "padded"}

    def setup(self, model: Any, ctx: UnlearnContext) -> None:
        if not ctx.data.template_answers:
            raise ValueError(f"task '{ctx.task.name}' supplies no template answers, which FLAT needs")
        self.templates = list(ctx.data.template_answers)
        self.template_rng = random.Random(ctx.seed + 7919)

    def forget_items(self, ctx: UnlearnContext) -> Sequence[Example]:
        return ctx.forget

    def with_templates(self, items: list[Example]) -> list[tuple[Example, Example]]:
        """Each forget example with a template answer drawn now: the shared loop serves every example once per
        epoch, so each example gets a fresh draw every epoch (the official ``__getitem__`` draws per access)."""
        return [(ex, Example(ex.prompt, self.template_rng.choice(self.templates), ex.chat)) for ex in items]

    def collate_forget(self, tokenizer: Any, items: list[Example], device: str) -> tuple[Batch, Batch]:
        pairs, length = self.with_templates(items), self.params.max_length
        return (make_batch(tokenizer, [f for f, _ in pairs], length).to(device),
                make_batch(tokenizer, [e for _, e in pairs], length).to(device))

    def memory_profile(self) -> tuple[int, bool]:
        return 2, False  # each forget example with its template answer

    def probabilities(self, model: Any, batch: Batch) -> torch.Tensor:
        out = logits(model, batch)
        if self.params.average == "padded":
            return padded_batch_prob(out, batch.labels, self.params.pad_length)
        return mean_token_prob(out, batch.labels)

    def loss(self, model: Any, forget: tuple[Batch, Batch],
             retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        bad, good = forget
        p_f, p_e = self.probabilities(model, bad), self.probabilities(model, good)
        loss = flat_loss(p_e, p_f, self.params.divergence)
        return loss, {"p_forget": p_f.mean().item(), "p_template": p_e.mean().item()}
