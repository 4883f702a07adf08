"""Representation misdirection for unlearning (``rmu``) — Li et al., "The WMDP Benchmark: Measuring and
Reducing Malicious Use With Unlearning" (ICML 2024), code ``centerforaisafety/wmdp`` ``rmu/unlearn.py``.

RMU works on one layer's hidden states instead of the output distribution. Let h_θ^ℓ(t) be the output of
decoder layer ℓ (the residual stream after that layer; the official code hooks ``model.layers[layer_id]`` and
keeps ``output[0]``) at token t, h_0^ℓ the same for the frozen original model, and D the hidden size. A
random unit vector u is drawn once per run, u = r / ‖r‖ with r ~ Uniform[0, 1)^D (``torch.rand``, so every
coordinate is positive), and scaled by the steering coefficient c. With T_f and T_r the tokens counted in a
forget and a retain batch,

    L_forget(θ) = 1/(|T_f|·D) · Σ_{t ∈ T_f} ‖h_θ^ℓ(t) − c·u‖²
    L_retain(θ) = 1/(|T_r|·D) · Σ_{t ∈ T_r} ‖h_θ^ℓ(t) − h_0^ℓ(t)‖²
    L(θ)        = L_forget(θ) + α · L_retain(θ)

i.e. ``mse_loss`` over the counted positions, as the official ``rmu/unlearn.py`` computes both terms
(``mse_loss(updated_forget_activations, control_vec)`` and ``alpha * mse_loss(updated_retain_activations,
frozen_retain_activations)``, one optimiser step on their sum). On forget data the layer's output is pushed
towards a fixed random direction of norm c (scrambling what later layers read from it); on retain data it is
held at the frozen model's. Only a few weight matrices are updated: the official defaults steer layer 7 of
Zephyr-7B's 32 (``--layer_id 7``) and update ``param_ids [6]`` of layers 5, 6, 7 (``--layer_ids 5,6,7``):
the seventh parameter of a Llama/Mistral decoder layer, ``mlp.down_proj.weight`` (open-unlearning's
``configs/experiment/unlearn/wmdp/default.yaml`` line 56 names it ``model\\.layers\\.(5|6|7)\\.mlp\\.down_proj
\\.weight``).

Choices of this implementation (docs/methods/rmu.md has each one's source and reason):

* **Layer.** ``layer: null`` scales the official layer to the model's depth: ℓ = ⌊7·L/32 + ½⌋ (7 of 32, 7 of
  SmolLM2-135M's 30, 4 of 16, 0 of the 2-layer test model); the ``update_layers`` layers ending at ℓ are updated
  (3: ℓ−2, ℓ−1, ℓ, as officially), their ``update_params`` (``mlp.down_proj.weight``).
* **Fine-tuning.** ``finetune: full`` (this method's default) trains exactly those weight matrices, as the
  official code does. ``finetune: lora`` puts LoRA adapters on the modules owning them instead (``lora_rank``,
  ``lora_alpha``; ``lora_targets`` is ignored): a deviation, for adapter-only runs.
* **Steering coefficient.** ``steering_coeff`` sets c. Unset (``null``), c = ``steering_ratio`` × the frozen
  model's mean per-token ‖h_0^ℓ‖ over the forget data's counted tokens: the official c = 6.5 was chosen for
  Zephyr-7B, whose layer-7 activations have a norm of about 2.5–3.2 in the official run's log, while
  SmolLM2-135M's layer-7 norm is about 119 (toy forget answers); a fixed 6.5 would ask a small model to shrink
  its activations rather than redirect them. The default ratio 2 keeps the official run's c-to-norm proportion.
* **Positions.** ``positions: answer`` counts the answer tokens (labels ≠ −100), as open-unlearning's RMU does
  (``src/trainer/unlearn/rmu.py`` lines 158 and 129); ``sequence`` counts every non-padding token, as the
  official code does on its plain-text corpora (whose ``mse_loss`` also counts the padding positions; we do not).
  Both terms average over the batch's counted tokens pooled (the official ``mse_loss``); open-unlearning
  averages per sequence first.
* **Frozen model.** With LoRA, the same network with the adapter disabled; with full fine-tuning, the same
  network with the original values of the few trained matrices swapped in (``torch.func.functional_call``), so
  no second copy of the weights is held.

The forward passes stop at layer ℓ (nothing after it enters the loss or receives a gradient).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from bench import Batch, LossMethod, TrainParams, UnlearnContext, UserError, make_batch

#: The official layer and the depth of the model it was chosen for: ``rmu/unlearn.py`` ``--layer_id 7`` on
#: Zephyr-7B (``HuggingFaceH4/zephyr-7b-beta``, 32 decoder layers).
OFFICIAL_LAYER, OFFICIAL_DEPTH = 7, 32


def scaled_layer(n_layers: int) -> int:
    """The official layer 7 of 32 at the same relative depth of an ``n_layers``-layer model, rounded half up."""
    if n_layers < 1:
        raise ValueError(f"a model needs at least one layer, got {n_layers}")
    return min(n_layers - 1, int(OFFICIAL_LAYER * n_layers / OFFICIAL_DEPTH + 0.5))


def decoder_layers(model: Any) -> tuple[str, torch.nn.ModuleList]:
    """(name, module) of the model's list of decoder layers: the ``ModuleList`` with ``num_hidden_layers``
    entries (``model.layers`` in Llama/Mistral/Qwen, ``transformer.h`` in GPT-2, ``gpt_neox.layers``)."""
    n_layers = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return name, module
    raise UserError(f"rmu: no list of {n_layers} decoder layers found in {type(model).__name__}")


def control_vector(dim: int, coeff: float, seed: int) -> torch.Tensor:
    """c·u with u = r/‖r‖, r ~ Uniform[0, 1)^dim (the official ``torch.rand``), drawn from its own generator
    seeded with ``seed`` (fp32, CPU)."""
    r = torch.rand(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return coeff * r / r.norm()


def activation_mse(acts: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the counted positions (``mask`` [B, T]) and the hidden dimension of (acts − target)², in fp32:
    ``mse_loss`` on the counted rows. ``target`` is [B, T, D] or a vector [D]; no position counted gives 0."""
    sq = (acts.float() - target.to(acts.device).float()).pow(2).mean(-1)
    mask = mask.to(sq.dtype)
    return (sq * mask).sum() / mask.sum().clamp(min=1)


class _Captured(Exception):
    """Raised by the capture hook to end a forward pass once the steered layer has run."""


def layer_output(model: Any, layer: torch.nn.Module, batch: Batch,
                 params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The output hidden states [B, T, D] of ``layer`` (a decoder layer of ``model``) on ``batch``; the
    forward pass stops there. ``params``: parameter values (by name) to use instead of the model's own."""
    captured: list[torch.Tensor] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Captured

    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "use_cache": False}
    handle = layer.register_forward_hook(hook)
    try:
        if params is None:
            model(**kwargs)
        else:
            torch.func.functional_call(model, params, args=(), kwargs=kwargs, strict=False)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("rmu: the steered layer did not run in the forward pass")
    return captured[0]


def positions_mask(batch: Batch, positions: str) -> torch.Tensor:
    """The tokens a loss term counts: answer tokens (labels ≠ −100) or every non-padding token."""
    if positions == "answer":
        return batch.labels != -100
    return batch.attention_mask.bool()


@dataclass
class RMUParams(TrainParams):
    #: "full" trains exactly the selected weight matrices (official); "lora" adapters on their modules.
    finetune: Literal["lora", "full"] = "full"
    #: The steered layer (0-based); null: the official 7 of 32 scaled to the model's depth (``scaled_layer``).
    layer: int | None = None
    #: How many layers, ending at the steered one, are updated (official ``--layer_ids 5,6,7``: 3).
    update_layers: int = 3
    #: Parameters updated in each of those layers, by name inside the layer (official ``--param_ids 6``).
    update_params: list[str] = field(default_factory=lambda: ["mlp.down_proj.weight"])
    #: c; null: ``steering_ratio`` × the frozen model's mean activation norm at the layer on the forget data.
    steering_coeff: float | None = None
    #: c relative to that norm when ``steering_coeff`` is null (official run: 6.5 against norms ~2.5-3.2).
    steering_ratio: float = 2.0
    #: α, the retain term's weight: the official Zephyr-7B run's ``--alpha 1200,1200``; 0 drops the term.
    alpha: float = 1200.0
    #: Tokens counted by both terms: "answer" (labels) or "sequence" (every non-padding token).
    positions: Literal["answer", "sequence"] = "answer"
    #: No clipping: the official loop (``optimizer.step()`` right after ``loss.backward()``) clips nothing.
    max_grad_norm: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"layer must be >= 0 (or null), got {self.layer}")
        if self.update_layers < 1:
            raise ValueError(f"update_layers must be >= 1, got {self.update_layers}")
        if not self.update_params:
            raise ValueError("update_params must name at least one parameter of a decoder layer")
        if self.steering_coeff is not None and not self.steering_coeff > 0:
            raise ValueError(f"steering_coeff must be > 0 (or null), got {self.steering_coeff}")
        if not self.steering_ratio > 0:
            raise ValueError(f"steering_ratio must be > 0, got {self.steering_ratio}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")


@dataclass
class RMUPlan:
    """Where RMU acts on one model: the steered layer and the parameters it updates."""

    n_layers: int
    layer: int
    updated_layers: list[int]
    #: Full names of the updated parameters in the unwrapped model (``model.layers.5.mlp.down_proj.weight``).
    param_names: list[str]
    layer_module: torch.nn.Module
    params: list[torch.nn.Parameter]

    @property
    def lora_targets(self) -> list[str]:
        """The modules owning the updated parameters, as full names (PEFT matches them as name suffixes)."""
        return sorted({name.rsplit(".", 1)[0] for name in self.param_names})


def plan(model: Any, params: RMUParams) -> RMUPlan:
    """Resolve the steered layer and the updated parameters of ``model`` (unwrapped, before any adapter)."""
    list_name, layers = decoder_layers(model)
    n_layers = len(layers)
    layer = scaled_layer(n_layers) if params.layer is None else params.layer
    if layer >= n_layers:
        raise UserError(f"rmu: layer {layer} does not exist; the model has {n_layers} layers (0..{n_layers - 1})")
    updated = list(range(max(0, layer - params.update_layers + 1), layer + 1))
    names, tensors = [], []
    for i in updated:
        own = dict(layers[i].named_parameters())
        for pname in params.update_params:
            if pname not in own:
                raise UserError(f"rmu: decoder layer {i} has no parameter '{pname}'; its parameters: "
                                f"{', '.join(own)}")
            if params.finetune == "lora":
                owner = layers[i].get_submodule(pname.rsplit(".", 1)[0]) if "." in pname else layers[i]
                if not isinstance(owner, torch.nn.Linear):
                    raise UserError(f"rmu: finetune: lora needs linear modules; '{pname}' belongs to a "
                                    f"{type(owner).__name__} (use finetune: full)")
            names.append(f"{list_name}.{i}.{pname}")
            tensors.append(own[pname])
    return RMUPlan(n_layers, layer, updated, names, layers[layer], tensors)


class RMU(LossMethod):
    name = "rmu"
    description = ("Representation misdirection: steer one layer's activations on forget data towards a fixed "
                   "random vector, keep them on retain data (RMU, WMDP)")
    Params = RMUParams
    # Full-training learning rates from the official 5e-5 up to where the retain drift grows fast on SmolLM2
    # (docs/methods/rmu.md), the retain weight at the official default (rmu/unlearn.py --alpha 100) and the
    # Zephyr run's 1200, and the steering coefficient at 1, 2 and 4 times the activation norm.
    tune_space = {"lr": {"log_uniform": [5e-5, 3e-3]}, "steps": [6, 12, 24], "alpha": [100.0, 1200.0],
                  "steering_ratio": [1.0, 2.0, 4.0]}
    # The official Zephyr-7B run (centerforaisafety/wmdp run_rmu_zephyr.ipynb, its printed config; rmu/unlearn.py
    # defaults): AdamW lr 5e-5 (transformers' AdamW: no weight decay), constant, no warmup, no clipping, 150
    # batches of 4, alpha 1200, steering coefficient 6.5, layer 7, mlp.down_proj of layers 5-7 fully trained,
    # every token of the forget text counted, forget texts truncated to 512 tokens (bio; 768 for cyber).
    paper_preset = {"lr": 5e-5, "steps": 150, "batch_size": 4, "grad_accum": 1, "weight_decay": 0.0,
                    "lr_schedule": "constant", "warmup_epochs": 0.0, "max_grad_norm": 0.0, "finetune": "full",
                    "alpha": 1200.0, "steering_coeff": 6.5, "update_layers": 3,
                    "update_params": ["mlp.down_proj.weight"], "positions": "sequence", "max_length": 512}

    def __init__(self, params: RMUParams):
        super().__init__(params)
        self.uses_retain = params.alpha > 0
        self.plan: RMUPlan | None = None
        self.control: torch.Tensor | None = None
        self._originals: dict[str, torch.Tensor] | None = None

    def memory_profile(self) -> tuple[int, bool]:
        # the frozen model is the same weights (LoRA off, or a few matrices swapped back): no second copy
        return 1 + int(self.uses_retain), False

    def unlearn(self, ctx: UnlearnContext) -> Any:
        self.plan = plan(ctx.model, self.params)
        declared = self.params
        if declared.finetune == "lora":  # adapters on the modules RMU updates, not on lora_targets
            self.params = dataclasses.replace(declared, lora_targets=self.plan.lora_targets)
        try:
            return super().unlearn(ctx)
        finally:
            self.params = declared

    def setup(self, model: Any, ctx: UnlearnContext) -> None:
        assert self.plan is not None
        p, plan_ = self.params, self.plan
        if p.finetune == "full":
            model.requires_grad_(False)
            for weight in plan_.params:
                weight.requires_grad_(True)
            self._originals = {name: w.detach().clone() for name, w in zip(plan_.param_names, plan_.params)}
        else:
            self._originals = None
        norm = None
        coeff = p.steering_coeff
        if coeff is None:
            norm = self._activation_norm(model, ctx)
            coeff = p.steering_ratio * norm
        self.control = control_vector(model.config.hidden_size, coeff, ctx.seed)
        ctx.extras["rmu"] = {"layer": plan_.layer, "n_layers": plan_.n_layers, "updated_layers": plan_.updated_layers,
                             "trained": plan_.param_names if p.finetune == "full" else
                             [f"{t} (LoRA r{p.lora_rank})" for t in plan_.lora_targets],
                             "steering_coeff": float(coeff), "activation_norm": norm}

    @torch.no_grad()
    def _activation_norm(self, model: Any, ctx: UnlearnContext) -> float:
        """Mean per-token ‖h^ℓ‖ of the (still unchanged) model over the forget examples' counted tokens."""
        assert self.plan is not None
        p, items = self.params, list(self.forget_items(ctx))
        total, count = 0.0, 0
        for start in range(0, len(items), p.batch_size):
            batch = make_batch(ctx.tokenizer, items[start:start + p.batch_size], p.max_length).to(ctx.device)
            acts = layer_output(model, self.plan.layer_module, batch).float()
            mask = positions_mask(batch, p.positions)
            total += float(acts.norm(dim=-1)[mask].sum())
            count += int(mask.sum())
        if count == 0:
            raise UserError("rmu: the forget data has no token to steer (empty answers?)")
        return total / count

    @contextmanager
    def _frozen(self, model: Any) -> Iterator[dict[str, torch.Tensor] | None]:
        if self._originals is not None:
            yield self._originals
        else:
            with model.disable_adapter():
                yield None

    def loss(self, model: Any, forget: Batch, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert self.plan is not None and self.control is not None
        p, layer = self.params, self.plan.layer_module
        acts = layer_output(model, layer, forget)
        forget_mse = activation_mse(acts, self.control, positions_mask(forget, p.positions))
        loss, logs = forget_mse, {"forget_mse": forget_mse.item()}
        if retain is not None:
            retain_acts = layer_output(model, layer, retain)
            with torch.no_grad(), self._frozen(model) as originals:
                frozen = layer_output(model, layer, retain, params=originals)
            retain_mse = activation_mse(retain_acts, frozen, positions_mask(retain, p.positions))
            loss = loss + p.alpha * retain_mse
            logs["retain_mse"] = retain_mse.item()
        return loss, logs
