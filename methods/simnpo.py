"""Simple negative preference optimisation (``simnpo``) — Fan, Liu, Lin, Jia, Zhang, Mei, Liu, "Simplicity
Prevails: Rethinking Negative Preference Optimization for LLM Unlearning" (arXiv 2410.07163).

NPO without a reference model: the forget answer's log-likelihood is normalised by its length instead of
compared with π_ref. For forget pairs (x_i, y_i), with |y_i| answer tokens and

    ℓ_i = −(1/|y_i|) · log π_θ(y_i|x_i)           (the answer's mean token NLL)

the forget loss is, as the authors' code computes it (OPTML-Group/Unlearn-Simple ``TOFU/dataloader.py``,
lines 283–284: ``get_batch_loss(...) / loss_mask.sum(-1) - self.gamma``, then
``-F.logsigmoid(self.beta * forget_loss).mean() * 2 / self.beta``),

    L_SimNPO(θ) = −(2/β) · mean_i log σ( β · (ℓ_i − γ) )
               =  (2/β) · mean_i softplus( −β · (ℓ_i − γ) )

with the margin γ inside the β-scaled term (σ(−(β/|y|)·log π_θ − β·γ)); open-unlearning's
``SimNPO.compute_loss`` (``src/trainer/unlearn/simnpo.py`` lines 19–20, its ``delta``) does the same. The
gradient with respect to ℓ_i is −2·σ(−β(ℓ_i − γ)): large while the answer is still likely (ℓ small),
vanishing once it is not — NPO's adaptive weight, with the current model's own mean likelihood as the
yardstick instead of π_ref's.

The full objective is the authors' ``simnpo_grad_diff`` (``TOFU/dataloader.py`` line 289), the loss their TOFU
config trains (``TOFU/config/forget.yaml`` line 16):

    L(θ) = w_f · L_SimNPO(θ) + w_r · CE_θ(retain)

CE is the token-mean next-token cross-entropy over the retain batch's answer tokens (their
``retain_outputs.loss``). ``retain_weight: 0`` drops the retain term (their plain ``simnpo``, lines 269–276).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench import TOFU_RECIPE, Batch, LossMethod, TrainParams, cross_entropy, logits, token_logprobs
from bench.api import TOFU_MAX_GRAD_NORM


def mean_answer_nll(logits_: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ℓ_i = −(1/|y_i|)·log π_θ(y_i|x_i) per sequence ``[B]``: the summed NLL of the answer tokens over their
    count (the authors' ``get_batch_loss(...) / loss_mask.sum(-1)``)."""
    logp, mask = token_logprobs(logits_, labels)
    return -logp.sum(-1) / mask.sum(-1).clamp(min=1)


def simnpo_loss(nll: torch.Tensor, beta: float, gamma: float = 0.0) -> torch.Tensor:
    """(2/β)·mean softplus(−β·(ℓ − γ)) over sequences, for per-sequence mean NLLs ``nll`` = ℓ."""
    return (2.0 / beta) * F.softplus(-beta * (nll - gamma)).mean()


@dataclass
class SimNPOParams(TrainParams):
    #: β: Unlearn-Simple TOFU/config/forget.yaml line 22 (forget05; the README's forget10 command: 4.5).
    beta: float = 2.5
    #: γ, the margin subtracted from the mean NLL inside the β-scaled term: forget.yaml line 23.
    gamma: float = 0.0
    #: w_f, the forget term's weight (their ``npo_coeff``): forget.yaml line 18 (forget10 command: 0.125).
    forget_weight: float = 0.1375
    #: w_r, the retain cross-entropy's weight (their ``grad_diff_coeff``): forget.yaml line 19; 0 drops it.
    retain_weight: float = 1.0
    #: No clipping: their forget.py trains under DeepSpeed (line 134, config/ds_config.json), whose config sets no
    #: ``gradient_clipping`` (DeepSpeed's default was 0, off, until microsoft/DeepSpeed PR 8068): TOFU's setup.
    max_grad_norm: float = TOFU_MAX_GRAD_NORM

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.forget_weight <= 0:
            raise ValueError(f"forget_weight must be > 0, got {self.forget_weight}")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight must be >= 0, got {self.retain_weight}")


class SimNPO(LossMethod):
    name = "simnpo"
    description = ("Reference-free, length-normalised NPO with margin γ (SimNPO), plus a retain cross-entropy "
                   "(retain_weight)")
    Params = SimNPOParams
    # β from the authors' commands (MUSE News README 0.7, TOFU forget05 2.5, forget10 4.5) and the forget
    # weight from their TOFU config (0.1375) and MUSE commands (1.0, retain weight 0.1 there).
    tune_space = {**LossMethod.tune_space, "beta": [0.7, 2.5, 4.5], "forget_weight": [0.1375, 1.0]}
    # OPTML-Group/Unlearn-Simple TOFU/config/forget.yaml: LoRA r 0 (full fine-tuning, line 5), lr 1e-5 (line 9),
    # batch 1 x accumulation 4 (lines 13-14) on 8 GPUs (README command: --nproc_per_node=8) = 32, 10 epochs
    # (line 15), npo_coeff 0.1375, grad_diff_coeff 1.0 (lines 18-19), beta 2.5, gamma 0.0 (lines 22-23),
    # weight decay 0.01 (line 24), warmup one epoch (line 30; forget.py lines 111-114), the Trainer's default
    # linear decay (forget.py lines 119-139 set no scheduler): TOFU's recipe (bench.TOFU_RECIPE) for 10 epochs;
    # sequences truncated to 500 tokens (forget.py line 65), no clipping (above).
    paper_preset = {**TOFU_RECIPE, "epochs": 10, "beta": 2.5, "gamma": 0.0, "forget_weight": 0.1375,
                    "retain_weight": 1.0, "max_grad_norm": TOFU_MAX_GRAD_NORM, "max_length": 500}

    def __init__(self, params: SimNPOParams):
        super().__init__(params)
        self.uses_retain = params.retain_weight > 0

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        p = self.params
        nll = mean_answer_nll(logits(model, forget), forget.labels)
        forget_loss = simnpo_loss(nll, p.beta, p.gamma)
        loss = p.forget_weight * forget_loss
        logs = {"simnpo": forget_loss.item(), "forget_mean_nll": nll.mean().item()}
        if retain is not None:
            r_ce = cross_entropy(logits(model, retain), retain.labels)
            loss = loss + p.retain_weight * r_ce
            logs["retain_ce"] = r_ce.item()
        return loss, logs
