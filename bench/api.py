"""The plugin API: what a method, a task and a reporter are, and what they exchange.

Stable surface for plugin authors. A **method** turns a model into an unlearned model given an
``UnlearnContext``; a **task** supplies data, evaluation and probes; a **reporter** renders results.
Plugins subclass these bases and register the classes through ``bench.hookspecs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

#: The direction an unlearning method wants a metric to move. "closer" means "as close as possible to the
#: base model's value" (two-sided, e.g. fluency: blander text is as much a change as garbled text).
Better = Literal["higher", "lower", "closer"]
Group = Literal["forget", "utility"]


@dataclass
class Example:
    """One training/probing example: the loss and likelihood cover ``answer`` tokens only.

    ``chat=True`` renders ``prompt`` as a user turn with the tokenizer's chat template (instruct
    models); ``chat=False`` treats ``prompt`` as a raw prefix (e.g. a text to continue, or "" for
    plain language-modelling text). ``response_prefix`` is text the response is forced to begin with
    (context, not scored): the forced-affirmative prompt attack writes "Sure, here is" there.
    """

    prompt: str
    answer: str
    chat: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    response_prefix: str = ""


#: How many forget prompts (no answers) seed Reveal's pool by default (``RevealParams.n_forget_prompts``).
SEED_FORGET_PROMPTS = 16


def forget_prompts(forget: list[Example], n: int | None = None, template: str = "{prompt}") -> list[str]:
    """The distinct forget prompts (the first ``n``; all by default), without their answers, as Reveal's
    ``TaskData.reveal_prompts``; ``template`` frames each as a request (``"Continue this text: {prompt}"``)."""
    return list(dict.fromkeys(template.format(prompt=ex.prompt) for ex in forget))[:n]


@dataclass
class TaskData:
    """Everything a task hands to methods and to its own evaluation for one seed."""

    forget: list[Example]
    retain: list[Example]
    #: Candidate neighbours for ICU pairing; defaults to ``retain``.
    retain_pool: list[Example] = field(default_factory=list)
    #: Harmless / refusal answers for FLAT (one drawn per forget sample, seeded).
    template_answers: list[str] = field(default_factory=list)
    #: Seed instructions for Reveal-and-Release's instruction search: general requests for the behaviour.
    seed_instructions: list[str] = field(default_factory=list)
    #: The forget examples' prompts *without their answers* (``forget_prompts``), as requests: Reveal seeds
    #: its search with some of them (``RevealParams.seeds``) — the model's own answers are what it collects.
    reveal_prompts: list[str] = field(default_factory=list)
    #: Task-private evaluation sets (held out from forget data).
    eval: dict[str, Any] = field(default_factory=dict)
    #: Provenance of every data source actually used: name -> description (id, path, package, hash).
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class TeachData:
    """A task's capability data for the teaching stage (``bench.teach``): what a small model is fine-tuned on
    before unlearning, so that the task's real metrics start off the floor (TOFU's and MUSE's design).

    ``target`` holds the forget-target examples (Person extraction, code, toxic continuations) and ``other``
    the rest of the capability (the other entity types, math, benign text). The *taught* model learns both;
    the *oracle* learns ``other`` alone with the same recipe and budget: the model a perfect unlearning of
    ``target`` should resemble. No evaluation item may appear in either (tasks draw them from their
    training splits)."""

    target: list[Example]
    other: list[Example]
    #: What the data is, in words (recorded in provenance and on the leaderboard).
    description: str = ""


@dataclass
class Metric:
    """One metric with its uncertainty. ``better`` is the direction an unlearning method wants:
    for a forget metric lower usually means more forgetting; for utility higher is better.

    ``min_effect`` is the smallest change of the value that the task's author considers meaningful (in the
    metric's own units); a significant change smaller than it is reported as such, and a metric whose base
    value cannot move by it in the scored direction is flagged "no signal at this size" (see
    ``docs/scoring.md``). ``bounds`` is the metric's range ``(low, high)``, ``None`` for an open side
    (log-likelihoods have no floor); floors and ceilings are detected against it.
    """

    name: str
    group: Group
    value: float
    better: Better
    n: int
    ci_low: float
    ci_high: float
    kind: Literal["generative", "choice", "likelihood", "other"] = "other"
    #: Primary metrics enter the leaderboard's normalised scores; the rest are details (e.g. per type).
    primary: bool = True
    #: Per-item values (same order on every run of this task config), kept so that deltas versus the
    #: base model can be bootstrapped *paired*.
    per_item: list[float] | None = None
    #: Per-item weights when the value is a ratio of sums rather than a plain mean: value =
    #: Σ wᵢ·vᵢ / Σ wᵢ (corpus micro-F1 is the weighted mean of per-sentence F1 with weights 2TP+FP+FN).
    #: ``None``: equal weights. Bootstraps resample (value, weight) pairs.
    weights: list[float] | None = None
    min_effect: float | None = None
    bounds: tuple[float | None, float | None] | None = None
    #: The value a model guessing at random gets (multiple choice: 1 / options); a forget metric's
    #: floor for "no signal" checks, since forgetting a choice task means falling to chance, not to 0.
    chance: float | None = None
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metric:
        data = dict(data)
        if data.get("bounds") is not None:
            data["bounds"] = tuple(data["bounds"])
        return cls(**data)


@dataclass
class Evaluation:
    """A task's evaluation of one model: metrics plus per-sample records (prompts, outputs, scores)."""

    metrics: list[Metric]
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainParams:
    """Knobs shared by every training-based method; the same name means the same thing everywhere.

    Defaults are the ``demo`` preset (CPU, minutes). Methods subclass this to add their own fields.
    """

    lr: float = 5e-4
    steps: int = 20
    #: When set, the step budget in epochs over the method's training examples, as TOFU's forget.py counts
    #: it: ⌊epochs·N / (batch_size·grad_accum)⌋ optimiser steps (at least 1); ``steps`` is then ignored.
    epochs: float | None = None
    batch_size: int = 4
    grad_accum: int = 1
    #: Clip the global gradient norm to this before each optimiser step; 0: no clipping. 1.0 is the Hugging
    #: Face Trainer's default (kept by the attacks' and the teaching's training); each method's ``Params`` sets
    #: the default of its official code (``TOFU_MAX_GRAD_NORM`` for GA, GradDiff, NPO and FLAT;
    #: docs/methods/<method>.md). ``max_grad_norm`` in ``method_params`` or ``train_params`` overrides it.
    max_grad_norm: float = 1.0
    max_length: int = 256
    weight_decay: float = 0.0
    #: AdamW's (β1, β2); ICU's code uses (0.9, 0.98).
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: Learning-rate schedule after warmup: "constant", or "linear" decay to 0 at the last step (the
    #: Hugging Face Trainer's default, which the TOFU, NPO and FLAT reference code train with).
    lr_schedule: Literal["constant", "linear"] = "constant"
    #: Linear warmup from 0, in epochs of the training examples (TOFU/NPO: one epoch,
    #: ``warmup_steps = max(1, steps_per_epoch)``); 0: none.
    warmup_epochs: float = 0.0
    #: "lora" trains a LoRA adapter and merges it into the weights; "full" fine-tunes all weights.
    finetune: Literal["lora", "full"] = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    #: Stop as ``diverged`` when the gradient norm (before clipping) exceeds this.
    max_grad_norm_diverge: float = 1e4
    #: "bf16" runs forward/backward under bfloat16 autocast (weights, LoRA and optimiser stay fp32):
    #: ~1.6x faster training on CPUs with AVX512-BF16/AMX and on GPUs; "off" is plain fp32/dtype; "auto" is
    #: "bf16" where bf16 is native and "off" where it would be emulated (tens of times slower on an AVX2-only
    #: CPU), resolved per device by ``bench.lm.precision.resolve_autocast`` and recorded in the cell's log.
    autocast: Literal["off", "bf16", "auto"] = "off"
    #: Recompute each layer's activations during backward instead of keeping them: activation memory drops
    #: to one layer's plus every layer's input, for about a third more compute (``unlearn-bench plan``).
    gradient_checkpointing: bool = False
    #: Full fine-tuning of bf16/fp16 weights: "fp32" keeps fp32 master weights and AdamW moments and copies
    #: them back after each step, so updates smaller than a half-precision ulp accumulate instead of being
    #: rounded away; "off" updates the half-precision weights in place; "auto" = fp32 exactly then.
    master_weights: Literal["auto", "fp32", "off"] = "auto"

    def validate(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.finetune == "lora" and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8, got {self.max_length}")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0 (or null to use steps), got {self.epochs}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if not self.max_grad_norm >= 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0: no clipping), got {self.max_grad_norm}")

    def step_budget(self, n_examples: int) -> tuple[int, int]:
        """(optimiser steps, warmup steps) for ``n_examples`` training examples: ``epochs`` counted as TOFU's
        forget.py counts them (``max_steps = ⌊epochs·N⌋ // (batch·accum)``, ``steps_per_epoch = N // (batch·accum)``),
        else ``steps``; warmup ``max(1, round(warmup_epochs · steps_per_epoch))`` when ``warmup_epochs`` > 0."""
        per_step = self.batch_size * self.grad_accum
        per_epoch = max(1, n_examples // per_step)
        total = self.steps if self.epochs is None else max(1, int(self.epochs * n_examples) // per_step)
        warmup = max(1, round(self.warmup_epochs * per_epoch)) if self.warmup_epochs > 0 else 0
        return total, min(warmup, total)


#: The training recipe of TOFU's reference unlearning code (locuslab/tofu ``forget.py`` with
#: ``config/forget.yaml``), which the NPO and FLAT reference code inherit: AdamW at lr 1e-5, weight decay 0.01,
#: 5 epochs, warmup ``max(1, steps_per_epoch)`` (one epoch), then the Hugging Face Trainer's default linear
#: decay; full fine-tuning (``LoRA.r: 0``); effective batch 32 (the README's ``batch_size=4
#: gradient_accumulation_steps=4`` on 2 GPUs), here 8 × 4 accumulation.
TOFU_RECIPE: dict[str, Any] = {"lr": 1e-5, "epochs": 5, "batch_size": 8, "grad_accum": 4, "weight_decay": 0.01,
                               "warmup_epochs": 1, "lr_schedule": "linear", "finetune": "full"}

#: Gradient clipping of TOFU's reference unlearning code and of the NPO and FLAT code built on it: **none**, the
#: default ``max_grad_norm`` of GA, GradDiff, NPO and FLAT. Their scripts (locuslab/tofu ``forget.py``,
#: licong-lin/negative-preference-optimization ``TOFU/forget.py``, UCSC-REAL/FLAT ``unlearn.py``) set no
#: ``max_grad_norm`` but always train under DeepSpeed (``deepspeed='config/ds_config.json'``), whose config has no
#: ``gradient_clipping`` key. The Trainer then leaves clipping to DeepSpeed (accelerate's ``clip_grad_norm_``
#: does not clip a DeepSpeed model), transformers and accelerate write ``max_grad_norm`` into the DeepSpeed config
#: only where a key says ``"auto"``, and DeepSpeed's own default is ``gradient_clipping = 0`` (off). Read from the
#: libraries' code, not measured. open-unlearning's single-process launch (a plain Trainer) clips at 1.0 instead.
TOFU_MAX_GRAD_NORM = 0.0


class TrajectoryLogger:
    """Collects the per-step / per-round trajectory of a method (stored in result.json)."""

    def __init__(self, echo: Callable[[str], None] | None = None):
        self.rows: list[dict[str, Any]] = []
        self._echo = echo

    def __call__(self, **row: Any) -> None:
        clean = {k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}
        self.rows.append(clean)
        if self._echo:
            self._echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in clean.items()))


#: Trajectory keys of probe values start with this: ``probe/<group>/<metric name>`` (the runner fills a
#: trajectory's last point from the final evaluation's metric of that name; plots draw them).
PROBE_PREFIX = "probe/"


def probe_fields(values: dict[str, float], prefix: str = PROBE_PREFIX) -> dict[str, float]:
    """``{"forget/x": v}`` -> ``{"probe/forget/x": v}``: probe values as trajectory fields."""
    return {f"{prefix}{key}": value for key, value in values.items()}


@dataclass
class UnlearnContext:
    """What a method receives. It returns the unlearned model (a plain ``PreTrainedModel``).

    The forget and retain examples are the task data's (``ctx.forget`` is ``ctx.data.forget``): one source
    of truth, also when the engine replaces the forget set (``forget_data: reveal``)."""

    model: Any
    tokenizer: Any
    task: Task
    data: TaskData
    seed: int
    device: str
    #: Evaluate the task's cheap likelihood probes on a model: ``{"forget/...": x, "utility/...": y}``.
    probe: Callable[[Any], dict[str, float]]
    #: Append a trajectory row: ``ctx.log(step=3, loss=...)``.
    log: TrajectoryLogger
    #: Show progress bars.
    progress: bool = True
    #: Method-specific extras recorded in the result (e.g. Reveal statistics).
    extras: dict[str, Any] = field(default_factory=dict)
    #: The probes of the unchanged base model, computed once per (task, seed) by the engine and shared by
    #: every method of a matrix; ``None`` outside the engine.
    base_probe: Callable[[], dict[str, float]] | None = None
    #: Set by the engine under ``save_model: adapter``: called with the PEFT model just before its adapter
    #: is merged (``bench.lm.training.merged`` does it), to save the adapter alone.
    keep_adapter: Callable[[Any], None] | None = None
    #: A system prompt the unlearned model is deployed behind: set by a method that changes behaviour by
    #: instruction rather than weights (the ``prompt`` baseline); the engine evaluates and attacks the model
    #: with every prompt carrying it (``bench.data.text.deployed_behind``).
    system_prompt: str | None = None

    @property
    def forget(self) -> list[Example]:
        return self.data.forget

    @property
    def retain(self) -> list[Example]:
        return self.data.retain

    def initial_probe(self, model: Any) -> dict[str, float]:
        """Probes before any update (the trajectory's point 0). ``model`` must still compute the base
        function (a fresh LoRA adapter does); the engine's shared base probe is used when available."""
        return self.base_probe() if self.base_probe is not None else self.probe(model)

    def log_probes(self, values: dict[str, float], **row: Any) -> None:
        """Log a trajectory row with probe values under their ``probe/`` keys:
        ``ctx.log_probes(ctx.probe(model), round=t, lambda_forget=1.0)``."""
        self.log(**row, **probe_fields(values))


class Method:
    """Base class for unlearning methods. Subclasses set ``name``, ``Params`` and ``unlearn``."""

    name: ClassVar[str]
    Params: ClassVar[type] = TrainParams
    #: Overrides applied for ``preset: paper`` (the papers' values, for GPU runs).
    paper_preset: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    #: Rough cost relative to other methods/tasks (1 = a plain loss method / an average task). Only
    #: used to start the longest cells first on parallel executors, so one long cell is not left
    #: running alone at the end.
    relative_cost: ClassVar[float] = 1.0
    #: Whether the unlearned model depends on the cell's seed (training order, initialisation, sampling). A
    #: method that does not (the ``prompt`` baseline changes no weight) runs for the first configured seed
    #: only: more seeds would repeat the same numbers and count them as replicates.
    seeded: ClassVar[bool] = True

    def __init__(self, params: Any):
        self.params = params

    def unlearn(self, ctx: UnlearnContext) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    #: The default search space of ``tune:`` (``bench.engine.tuning``): parameter -> a list of values or
    #: ``{log_uniform|uniform|int: [lo, hi]}``. Empty: nothing to tune (the configuration runs as given).
    tune_space: ClassVar[dict[str, Any]] = {}

    def ends_with_adapter(self) -> bool:
        """Whether ``unlearn`` ends with one LoRA adapter on the unchanged base weights (handed to
        ``ctx.keep_adapter`` before it is merged), which ``save_model: adapter`` keeps. True for LoRA
        fine-tuning unless a method merges updates into the weights along the way (Reveal-and-Release)."""
        return getattr(self.params, "finetune", None) == "lora"

    def memory_profile(self) -> tuple[int, bool]:
        """For ``unlearn-bench plan``: (batches whose activations one loss holds together, whether a frozen
        reference model is compared against). Default: the forget batch, plus the retain batch when the
        method trains on one."""
        return 1 + int(bool(getattr(self, "uses_retain", False))), False


class Task:
    """Base class for tasks: data, evaluation (forget + utility metrics) and cheap probes."""

    name: ClassVar[str]
    Params: ClassVar[type]
    #: Bump when a metric's definition changes: a report refuses to compare results of two versions.
    version: ClassVar[str] = "1"
    paper_preset: ClassVar[dict[str, Any]] = {}
    description: ClassVar[str] = ""
    #: Rough cost relative to other methods/tasks (1 = a plain loss method / an average task). Only
    #: used to start the longest cells first on parallel executors, so one long cell is not left
    #: running alone at the end.
    relative_cost: ClassVar[float] = 1.0
    #: Whether ``evaluate`` measures something under the unchanged base model (``reference``). The engine
    #: lends its one resident base copy to the cell being unlearned, so a reference costs a second copy of
    #: the weights during evaluation (``unlearn-bench plan`` counts it): declare it only when used.
    uses_reference: ClassVar[bool] = False
    #: What the model should refuse, in words, for the ``prompt`` baseline's system prompt (a phrase that
    #: follows "...refuse to produce"): the task's forget target.
    refusal_target: ClassVar[str] = "the content this task asks the model to forget"

    def __init__(self, params: Any):
        self.params = params

    def load(self, seed: int) -> TaskData:  # pragma: no cover - interface
        """Load data; forget/retain may depend on ``seed``; eval sets must not."""
        raise NotImplementedError

    def evaluate(self, model: Any, tokenizer: Any, data: TaskData, progress: bool = True,
                 reference: Any = None) -> Evaluation:
        """Forget and utility metrics of ``model``. ``reference`` is the unchanged base model, for metrics
        measured under it (e.g. fluency), passed when the task sets ``uses_reference``; ``None`` otherwise
        and when evaluating the base itself (then ``model`` is the reference)."""
        raise NotImplementedError  # pragma: no cover - interface

    def evaluate_forget(self, model: Any, tokenizer: Any, data: TaskData) -> list[Metric]:
        """The scored generative forget metrics alone (primary, ``group="forget"``, per item), computed exactly as
        ``evaluate`` computes them — same prompts, same batches, same decoding — so that a model attack
        (relearning, quantization) can be measured on what the board scores and not only on the likelihood
        probe (robustness v3, docs/attacks.md). Empty: the task has none; its attacks measure the probe only."""
        return []

    def generation_shape(self) -> tuple[int, int, int, int] | None:
        """For ``unlearn-bench plan``: (batch size, prompt tokens, new tokens, sequences generated) of the
        evaluation's largest generation; ``None``: the planner's generic guess."""
        return None

    def probe(self, model: Any, tokenizer: Any, data: TaskData) -> dict[str, float]:
        """Cheap likelihood probes used between rounds by iterative methods.

        Keys are ``"<kind>/<metric name>"`` of the likelihood metrics ``evaluate`` reports (e.g.
        ``"forget/toxic_text_loglik"``), and each value is that metric's value on the same model: the runner
        then takes a trajectory's first point from the base model's evaluation and its last point from the
        final evaluation instead of computing the same numbers twice (``bench.check_task`` checks it).
        """
        raise NotImplementedError  # pragma: no cover - interface

    def relevance(self, responses: Sequence[str]) -> list[float]:
        """How strongly each response shows the behaviour to forget, in [0, 1] (Reveal reward)."""
        raise NotImplementedError  # pragma: no cover - interface

    #: How a forget prompt is framed as a request for Reveal's seeds (``forget_prompts``'s ``template``).
    reveal_template: ClassVar[str] = "{prompt}"

    def teach_data(self) -> TeachData:
        """The capability to teach before unlearning (``teach:`` in a run config; ``bench.teach``). Must not
        depend on the run seed and must hold no evaluation item. Optional: a task without it cannot be taught."""
        raise NotImplementedError(f"task '{self.name}' has no teaching data (teach_data); drop it from teach:")

    def use_teaching(self, data: TaskData, teach: TeachData, seed: int) -> TaskData:
        """The methods' data on a taught model: forget examples drawn from the taught forget target and
        retain examples from the rest of the teaching data (as TOFU's forget set is part of its fine-tuning
        set), as many as the task's own forget and retain sets hold, chosen by ``seed``. Evaluation sets
        are unchanged (held out from teaching)."""
        import random

        rng = random.Random(f"teach-{seed}")
        data.forget = rng.sample(teach.target, min(len(data.forget), len(teach.target)))
        data.retain = rng.sample(teach.other, min(len(data.retain), len(teach.other)))
        data.retain_pool = data.retain
        data.reveal_prompts = forget_prompts(data.forget, template=self.reveal_template)
        data.sources = {**data.sources, "teaching": f"forget {len(data.forget)} of the {len(teach.target)} taught "
                                                    f"forget-target examples, retain {len(data.retain)} of the "
                                                    f"{len(teach.other)} other taught examples ({teach.description})"}
        return data

    def probe_items(self, data: TaskData) -> dict[str, list[Example]]:
        """The examples behind each likelihood probe (same keys as ``probe``): the probe is the mean answer
        log-likelihood over them. Attacks measure forgetting on the ``forget/`` ones, item by item, so that
        a recovered fraction gets a paired interval. Optional: a task without it cannot be attacked."""
        raise NotImplementedError(f"task '{self.name}' does not expose probe_items, which attacks need")


@dataclass
class AttackParams:
    """Base of every attack's parameters (an attack subclasses it to add its own)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming a bad value."""


@dataclass
class AttackContext:
    """What an attack receives: the model under attack (an unlearned model, or the base model as the
    control), the task's data, and ``items``: the task's forget-probe examples the engine will score."""

    model: Any
    tokenizer: Any
    task: Any
    data: TaskData
    items: list[Example]
    seed: int
    device: str = "cpu"
    progress: bool = False
    #: Trajectory rows of a training attack (``bench.train`` logs through it); kept with the result.
    log: Callable[..., None] = lambda **row: None


@dataclass
class Attacked:
    """An attack's output: an attacked ``model`` (scored on the unchanged items), or ``variants``: named
    rewritten item lists (same order and answers as ``ctx.items``) scored on the unattacked model, the worst
    case over them reported. ``info`` is recorded with the result (e.g. which quantization backend ran).
    ``restore`` undoes an attack that changed ``ctx.model`` in place (the engine calls it after scoring):
    attacks never keep a second resident copy of the weights."""

    model: Any = None
    variants: dict[str, list[Example]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    restore: Callable[[], None] | None = None


class Attack:
    """Base class for robustness attacks on forgetting. Subclasses set ``name``, ``Params`` and ``attack``.

    The engine applies the same attack to the unlearned model and to the base model (the control: an
    attack that raises the base's forget probe too teaches rather than reveals) and scores the task's
    forget-probe items under each."""

    name: ClassVar[str]
    Params: ClassVar[type] = AttackParams
    description: ClassVar[str] = ""
    #: Whether the attack's outcome depends on ``AttackContext.seed`` (a relearn's data order and LoRA
    #: initialisation do; a quantization or a prompt rewrite does not). An unseeded attack's base control is
    #: computed once and serves every seed.
    seeded: ClassVar[bool] = True

    def __init__(self, params: Any):
        self.params = params

    def attack(self, ctx: AttackContext) -> Attacked:  # pragma: no cover - interface
        raise NotImplementedError


class Reporter:
    """Base class for reporters: render a set of cell results into files under ``out_dir``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def write(self, table: Any, out_dir: Path) -> list[Path]:  # pragma: no cover - interface
        raise NotImplementedError


# Facade names reached through this module (an old import path) resolve with a DeprecationWarning
# (bench.deprecation; docs/plugins.md, "API version and deprecations").
from bench.deprecation import module_getattr as _module_getattr  # noqa: E402

__getattr__ = _module_getattr(__name__, whole_module_moved=False)
