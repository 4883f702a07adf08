"""Predicted peak memory of a cell, from the model config alone (meta device, no weights loaded).

A cell's peak is the larger of its training peak and its evaluation peak:

* **weights** — resident copies of the model (``resident_copies``: the engine keeps one, which the cell
  borrows and unlearns in place; ``ModelCache``);
* **reference** — a frozen copy for losses that compare with π_ref (NPO, ICU) under full fine-tuning, on
  the device only on a CPU-only machine (on an accelerator it stays in host memory and streams per module,
  ``bench.lm.training.Reference``); with LoRA the reference is the same weights with the adapter switched
  off (0 bytes). At evaluation, a task that measures under the base model (``Task.uses_reference``) holds a
  second copy of the weights (``eval_reference``);
* **gradients** and **optimizer** — AdamW keeps two moments per trainable parameter in the parameter's dtype;
  ``master_weights`` adds an fp32 copy of bf16/fp16 weights (4 bytes + fp32 moments, and fp32 gradients
  during the step);
* **activations** — what autograd saves per token and layer for a Llama-style decoder layer (derived op by
  op, ``activation_bytes_per_token``), times the tokens of every batch in the loss's graph (forget, retain,
  paired), plus the logits and their fp32 log-softmax; with ``gradient_checkpointing`` only each layer's
  input is kept, plus one layer recomputed. Gradients are not added on top: backward frees activations
  as it creates gradients, so the peak is the larger of the two phases (``MemoryEstimate.train_peak``);
* **kv_cache** — evaluation: 2 × layers × KV width × (prompt + new tokens) × generation batch, plus one
  step's logits.

Numbers are tensor bytes (what ``torch.cuda.max_memory_allocated`` counts); the CUDA context (~0.5 GiB) and
the allocator's fragmentation come on top, so a cell is flagged when it needs more than 90 % of the device.
Checked against measured peaks on CPU (tiny, SmolLM2; tests) and on an H100 (leaderboards/perf).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

GiB = 1024 ** 3
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
#: Share of the device a plan may fill before it warns (context, fragmentation, the allocator's cache).
FIT_SHARE = 0.9


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from a ``transformers`` config."""

    n_params: int
    n_layers: int
    hidden: int
    intermediate: int
    kv_width: int  # key/value heads x head dim
    vocab: int
    #: (in_features, out_features) of each Linear by module name suffix (q_proj, v_proj, ...) in one layer.
    linears: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Instantiate on the meta device (no memory, no weights) and count."""
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        n_params = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
        linears: dict[str, tuple[int, int]] = {}
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers.0." in name:
                linears[name.rsplit(".", 1)[-1]] = (module.in_features, module.out_features)
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(n_params, config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                   kv_heads * head_dim, config.vocab_size, linears)


@dataclass(frozen=True)
class TrainingShape:
    """The training side of a cell (from the method's ``TrainParams``); ``finetune: none`` for a method that
    trains nothing (the prompt baseline, a checkpoint being scored)."""

    finetune: str = "lora"
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    batch_size: int = 4
    max_length: int = 256
    #: Batches whose activations are alive together in one loss (forget + retain, forget + paired, ...).
    graphs: int = 1
    needs_reference: bool = False
    gradient_checkpointing: bool = False
    master_weights: bool = False


@dataclass(frozen=True)
class GenerationShape:
    """The largest generation of the cell's evaluation (KV cache)."""

    batch_size: int = 16
    prompt_tokens: int = 512
    new_tokens: int = 256


@dataclass
class MemoryEstimate:
    weights: int
    reference: int
    gradients: int
    optimizer: int
    activations: int
    kv_cache: int
    #: A second copy of the weights during evaluation, for tasks that measure under the base model.
    eval_reference: int = 0
    #: Alive only during the optimiser step, when activations are gone: AdamW's temporaries, and the fp32
    #: gradients of master weights.
    step_transient: int = 0

    @property
    def train_peak(self) -> int:
        """Steady state (AdamW's moments exist from the first step on): during forward/backward the
        activations dominate, and gradients grow only as activations are freed; during the step the
        gradients and the step's temporaries."""
        return (self.weights + self.reference + self.optimizer
                + max(self.activations, self.gradients + self.step_transient))

    @property
    def eval_peak(self) -> int:
        return self.weights + self.eval_reference + self.kv_cache

    @property
    def peak(self) -> int:
        return max(self.train_peak, self.eval_peak)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "train_peak": self.train_peak, "eval_peak": self.eval_peak, "peak": self.peak}


def lora_params(shape: ModelShape, rank: int, targets: tuple[str, ...]) -> int:
    return shape.n_layers * sum(rank * (fan_in + fan_out) for name, (fan_in, fan_out) in shape.linears.items()
                                if name in targets)


ATTENTION_INPUTS = ("q_proj", "k_proj", "v_proj")
MLP_INPUTS = ("gate_proj", "up_proj")


def activation_bytes_per_token(shape: ModelShape, act_bytes: int, trained: tuple[str, ...] | None,
                               lora_rank: int = 0) -> int:
    """Bytes autograd keeps per token for one Llama-style decoder layer (HF Llama, SDPA attention).

    ``trained``: the Linear names that train (LoRA targets), ``None`` for full fine-tuning. Derived from what
    each op saves for its backward pass, and checked against measured peaks: a Linear keeps its input only
    when its weight (or adapter) trains; a product keeps an operand only when the other one needs a
    gradient, so RoPE (cos/sin need none) keeps no q/k copy. Hence per layer:

    * each RMSNorm keeps its fp32 input (the input itself on fp32 models, an fp32 copy otherwise), and its
      output when a trained Linear reads it (norm weight trains under full fine-tuning);
    * SDPA keeps q, k, v (grouped-query width) and its output; o_proj's input when it trains;
    * the SwiGLU MLP keeps gate, SiLU(gate) and up; down_proj's input when it trains;
    * LoRA on a half-precision model: PEFT casts each target's input to the fp32 adapter (a copy per
      target), and every target keeps its rank-r intermediate.
    """
    h, kv, i, a = shape.hidden, shape.kv_width, shape.intermediate, act_bytes

    def trains(*names: str) -> bool:
        return trained is None or any(n in trained for n in names)

    total = 4 * h + (a * h if trains(*ATTENTION_INPUTS) else 0)
    total += 4 * h + (a * h if trains(*MLP_INPUTS) else 0)
    total += a * (2 * h + 2 * kv) + (a * h if trains("o_proj") else 0)
    total += a * 3 * i + (a * i if trains("down_proj") else 0)
    if trained is not None:
        targets = [fan_in for name, (fan_in, _) in shape.linears.items() if name in trained]
        total += sum(4 * fan_in for fan_in in targets) if a < 4 else 0
        total += 4 * lora_rank * len(targets)
    return total


def logits_bytes_per_token(shape: ModelShape, graphs: int) -> int:
    """Every graph keeps its fp32 log-softmax (4 bytes per vocabulary entry; the model-dtype logits and
    their fp32 copy are not needed by backward and are freed). Backward then holds, one graph at a time,
    the fp32 gradients at the log-softmax's output and input (the cast back to a half-precision dtype
    comes after the first is freed)."""
    return shape.vocab * 4 * (graphs + 2)


def estimate(shape: ModelShape, train: TrainingShape, gen: GenerationShape, weight_dtype: str = "float32",
             resident_copies: int = 1, foreach: bool = False, reference_on_device: bool = True,
             eval_reference: bool = False) -> MemoryEstimate:
    """``foreach``: AdamW's multi-tensor step (torch's default on CUDA) makes its temporaries for all
    parameters at once; the single-tensor step (CPU) one parameter at a time. ``reference_on_device``: False
    on an accelerator, where a full fine-tuning reference stays in host memory."""
    wb = DTYPE_BYTES[weight_dtype]
    act = wb  # activations follow the weights' dtype (autocast keeps fp32 weights: use "bfloat16" there)
    full = train.finetune == "full"
    trained = None if full else tuple(train.lora_targets)
    per_layer = activation_bytes_per_token(shape, act, trained, train.lora_rank)
    trainable = shape.n_params if full else lora_params(shape, train.lora_rank, train.lora_targets)
    largest = shape.vocab * shape.hidden if full else max(
        (train.lora_rank * max(f_in, f_out) for n, (f_in, f_out) in shape.linears.items() if n in train.lora_targets),
        default=0)
    # PEFT keeps adapters in fp32 on bf16/fp16 models (autocast_adapter_dtype); full FT trains in place.
    tb = wb if full else 4
    master = 4 if (full and train.master_weights and wb < 4) else 0
    optimizer = trainable * (2 * (4 if master else tb) + master)
    tokens = train.batch_size * train.max_length  # per graph
    logits = logits_bytes_per_token(shape, train.graphs)
    if train.gradient_checkpointing:
        # each layer's input is kept; backward first goes through the logits, then rebuilds one layer at a
        # time (its activations and the gradients flowing through it)
        per_token = train.graphs * shape.n_layers * shape.hidden * act + max(logits, 2 * per_layer)
    else:
        per_token = train.graphs * shape.n_layers * per_layer + logits
    activations = tokens * per_token
    # Backward starts at the output layer: its gradient exists while every activation is still alive.
    head_grad = shape.vocab * shape.hidden * tb if full else 0
    kv = 2 * shape.n_layers * shape.kv_width * (gen.prompt_tokens + gen.new_tokens) * gen.batch_size * wb
    kv += gen.batch_size * shape.vocab * 4 * 2  # one step's logits and their fp32 softmax
    # the prefill's widest moment: one layer's MLP intermediates (gate, up, their product) and hidden states
    kv += gen.batch_size * gen.prompt_tokens * (3 * shape.intermediate + 2 * shape.hidden) * wb
    if train.finetune == "none":  # nothing trains: no gradients, optimizer state, activations or π_ref
        trainable = largest = optimizer = activations = head_grad = 0
    return MemoryEstimate(
        weights=resident_copies * shape.n_params * wb,
        reference=shape.n_params * wb if (full and train.needs_reference and reference_on_device) else 0,
        eval_reference=shape.n_params * wb if eval_reference else 0,
        gradients=trainable * tb, optimizer=optimizer, activations=activations + head_grad, kv_cache=kv,
        # AdamW's step: a square-root temporary per moment; with masters also the fp32 gradients
        step_transient=(trainable * 4 if master else 0)
        + (trainable if foreach else largest) * (4 if master else tb))


def rough_seconds(shape: ModelShape, train: TrainingShape, steps: int, gen: GenerationShape, n_generated: int,
                  flops_per_s: float) -> float:
    """A rough wall time: 6·N FLOPs per trained token (4·N with a frozen base: no weight gradients),
    2·N per prefilled or generated token, at the measured matmul throughput (an upper bound on speed)."""
    n = shape.n_params
    per_token = 6 if train.finetune == "full" else 4
    train_flops = per_token * n * train.batch_size * train.max_length * train.graphs * steps
    if train.gradient_checkpointing:
        train_flops *= 4 / 3  # one more forward pass
    gen_flops = 2 * n * n_generated * (gen.prompt_tokens + gen.new_tokens)
    return (train_flops + gen_flops) / flops_per_s
