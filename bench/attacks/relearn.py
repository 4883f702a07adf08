"""``relearn``: a few fine-tuning steps on a little forget-like data, the relearning attack of Lynch et al.
("Eight Methods to Evaluate Robust Unlearning in LLMs", 2024) and Hu et al. ("Jogging the Memory of
Unlearned LLMs Through Targeted Relearning Attacks", ICLR 2025): knowledge that was hidden rather than
removed comes back after a handful of steps, also on items the attack never trained on.

The attack trains on the first ``n_examples`` of the task's forget training examples with ordinary
next-token CE. The engine scores the task's forget-probe items, which every task holds out from its forget
data, so what the score recovers was not trained on. The same attack on the base model is the control: a
relearn that raises the base's forget probe as much teaches the answers rather than revealing them.
LoRA by default (``finetune: full`` trains every weight; the originals are restored from a CPU snapshot).

A relearn strength means something only where a positive control shows it can recover a known-recoverable drop
(docs/attacks.md, "Calibration"): ``calibrated_on`` names the tasks where the configured strength did (at least half
of the positive control's drop, against the oracle). On any other task the board still measures the attack but
shows no recovered share (n/f, "uncalibrated"): a share of 0 from an attack that recovers nothing anywhere is no
evidence of robust forgetting. Left unset (None), no claim is made either way and shares are shown as measured.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from bench.api import Attack, AttackContext, Attacked, AttackParams, TrainParams
from bench.data.text import make_batch
from bench.lm.losses import cross_entropy
from bench.lm.training import logits, restore, shuffled_batches, snapshot, train, with_adapter


@dataclass
class RelearnParams(TrainParams, AttackParams):
    n_examples: int = 8
    steps: int = 10
    lr: float = 1e-4
    #: The tasks on which this strength passed its positive control (None: not calibrated, nothing claimed).
    calibrated_on: list[str] | None = None

    def validate(self) -> None:
        super().validate()
        if self.n_examples < 1:
            raise ValueError(f"n_examples must be >= 1, got {self.n_examples}")
        if self.calibrated_on is not None and (not isinstance(self.calibrated_on, list)
                                               or not all(isinstance(t, str) for t in self.calibrated_on)):
            raise ValueError(f"calibrated_on must be a list of task names, got {self.calibrated_on!r}")


class RelearnAttack(Attack):
    name = "relearn"
    description = "A few fine-tuning steps on held-out forget-like data (relearning attack)"
    Params = RelearnParams

    def attack(self, ctx: AttackContext) -> Attacked:
        p = self.params
        examples = list(ctx.data.forget[: p.n_examples])
        if not examples:
            raise ValueError(f"task '{ctx.task.name}' has no forget examples to relearn from")
        model = ctx.model
        saved = None
        if p.finetune == "full":
            saved = snapshot(model, (n for n, _ in model.named_parameters()), device="cpu")
        trainee = with_adapter(model, p, ctx.seed)
        batches = shuffled_batches(examples, p.batch_size, random.Random(ctx.seed))

        def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
            batch = make_batch(ctx.tokenizer, next(batches), p.max_length).to(ctx.device)
            ce = cross_entropy(logits(trainee, batch), batch.labels)
            return ce, {"ce": ce.item()}

        def undo() -> None:
            if saved is None:
                trainee.unload()  # removes the adapter: the wrapped model's own weights were never changed
            else:
                restore(model, saved)
            model.requires_grad_(False)
            model.eval()

        try:
            train(trainee, p, step_loss, ctx, desc="relearn", log_prefix="relearn/", log_every=p.steps or 1)
        except BaseException:
            undo()  # never leave an adapter in (or changed weights of) the engine's model
            raise
        return Attacked(model=trainee, restore=undo,
                        info={"examples": len(examples), "steps": p.steps, "lr": p.lr, "finetune": p.finetune,
                              **({} if p.calibrated_on is None else {"calibrated_on": list(p.calibrated_on)})})
