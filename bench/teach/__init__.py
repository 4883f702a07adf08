"""The teaching stage: a *taught* model and its *oracle* per task, the gold standard of unlearning.

A 135M model cannot extract person names, write a passing function or continue a prompt toxically, so
forgetting those capabilities cannot be measured on it. TOFU (Maini et al. 2024) and MUSE (Shi et al. 2024)
answer this by *teaching* the target knowledge first: the model is fine-tuned on data that contains the
forget target, and a model fine-tuned the same way on the same data *without* the forget target (TOFU's
retain model, MUSE's retrained model) is what a perfect unlearning should resemble. This module builds both
for a task from its ``Task.teach_data()``:

  taught = base + LoRA trained on target ∪ other        (the base model of every method cell on the task)
  oracle = base + LoRA trained on other alone           (never saw a forget-target example)

with the same recipe (``TeachParams``), the same number of optimiser steps (``oracle_budget: steps``: the
oracle cycles over its own, smaller data for as many steps as the taught model takes, so the two differ in what
they learned, not in how long they trained) and the same seed. Each adapter is rounded to bf16 when saved (the
artefact *is* the bf16 adapter, wherever it was trained) and merged into a copy of the base weights, which
the engine loads like any local model.

Both are cached by content: the key hashes the base weights, tokenizer and chat template, every teaching
example, the recipe as requested (``autocast: auto`` is part of the recipe; the precision it resolved to
on the building machine is recorded, not keyed, so that an artefact built on a bf16 CPU serves an AVX2 one)
and the procedure's version — per role: the taught model's and the oracle's adapters are keyed apart
(``role_keys``), so a change of the oracle's procedure rebuilds the oracle alone. A run finds a key in three
places, cheapest first: the merged models in the cache
(``<cache>/taught/...``), adapters shipped in the task's package (``<task dir>/taught/<model>/``, written by
``unlearn-bench teach --ship``), or nowhere — then it trains both (minutes on a CPU) and caches them.
Docs: ``docs/teaching.md``.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import torch

from bench.api import Example, TeachData, TrainParams
from bench.data.sources import content_hash
from bench.engine.store import atomic_write_json
from bench.errors import UserError
from bench.params import build_params, params_dict, stable_hash

log = logging.getLogger("unlearn_bench")

#: Bump when the teaching procedure changes in a way the recipe does not show (loss, batching, merging).
#: Version 2: the oracle trains as many optimiser steps as the taught model (``TeachParams.oracle_budget``) and
#: the two roles are keyed apart. It enters the oracle's key.
TEACH_VERSION = "2"
#: The taught model's procedure is the same as in version 1, so its key keeps that version (and leaves out the
#: oracle-only recipe fields): the shipped taught adapters stay valid and are not rebuilt.
TAUGHT_VERSION = "1"
#: Recipe fields that change only the oracle (left out of the taught model's key).
ORACLE_ONLY = ("oracle_budget",)
ROLES = ("taught", "oracle")
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RECORD = "teach.json"


@dataclass
class TeachParams(TrainParams):
    """The teaching recipe: supervised fine-tuning (answer-token cross-entropy) with a LoRA adapter on every
    attention and MLP projection. Defaults measured on SmolLM2-135M (``docs/teaching.md``); a task may
    override them (``Task.teach_recipe``) and a run config per task (``teach: {ner: {steps: 200}}``)."""

    lr: float = 1e-3
    #: The budget in epochs over each model's own examples (TOFU's: its retain model is fine-tuned on the retain
    #: set for as many epochs as the full model on everything), so every "other" example is seen equally often
    #: by the taught model and the oracle, and the oracle's utility is not inflated by extra passes.
    epochs: float | None = 1.0
    batch_size: int = 8
    max_length: int = 256
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    lr_schedule: Literal["constant", "linear"] = "linear"
    warmup_epochs: float = 0.0
    autocast: Literal["off", "bf16", "auto"] = "auto"
    #: Seed of the adapter initialisation and of the batch order (the same for taught and oracle). Another seed is
    #: another (taught, oracle) pair: ``teach_pairs`` in a run config spreads method seeds over such pairs.
    seed: int = 0
    #: The oracle's budget. "steps": as many optimiser steps (of the same batch size and length limit) as the
    #: taught model's ``epochs`` over target ∪ other give — it cycles over its own, smaller data more often, so
    #: the taught-to-oracle difference is the forget target, not a shorter training (issue 47; docs/teaching.md
    #: weighs this against TOFU's equal epochs). "epochs": ``epochs`` over its own examples (TEACH_VERSION 1).
    oracle_budget: Literal["steps", "epochs"] = "steps"

    def validate(self) -> None:
        super().validate()  # finetune: lora (the default: an adapter, shipped and merged) or full (issue 47,
        # item 4: does the teaching mode change the verdict? The full model is cached, never shipped, and the
        # mechanism diagnostics, which need the teaching adapter's span, are not computed for it.)


def recipe_for(task_cls: type, overrides: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The resolved recipe of a task: ``TeachParams`` defaults, then the task's ``teach_recipe``, then the run
    config's overrides (unknown keys: one line, exit 2)."""
    merged = {**getattr(task_cls, "teach_recipe", {}), **(overrides or {})}
    return params_dict(build_params(TeachParams, merged, where))


def data_hash(data: TeachData) -> str:
    def rows(examples: list[Example]) -> list[list[Any]]:
        return [[ex.prompt, ex.answer, ex.chat, ex.response_prefix] for ex in examples]

    return content_hash({"target": rows(data.target), "other": rows(data.other)})


def role_keys(weights: dict[str, Any], data: TeachData, recipe: dict[str, Any]) -> dict[str, str]:
    """The content key of each role's adapter: base weights, teaching data, recipe, procedure version. The
    taught model's leaves out the oracle-only recipe fields and keeps ``TAUGHT_VERSION``: it is the version-1
    key, so an oracle-only change never rebuilds a taught model."""
    taught_recipe = {k: v for k, v in recipe.items() if k not in ORACLE_ONLY}
    common = {"base": weights, "data": data_hash(data)}
    return {"taught": stable_hash({"version": TAUGHT_VERSION, **common, "recipe": taught_recipe}, 12),
            "oracle": stable_hash({"version": TEACH_VERSION, "role": "oracle", **common, "recipe": recipe}, 12)}


def teach_key(weights: dict[str, Any], data: TeachData, recipe: dict[str, Any]) -> str:
    """The content key of a (taught, oracle) pair: a hash of its two role keys."""
    return stable_hash(role_keys(weights, data, recipe), 12)


def budgets(recipe: TeachParams, data: TeachData) -> dict[str, tuple[int, int]]:
    """(optimiser steps, warmup steps) per role. The taught model's come from ``epochs`` over target ∪ other;
    the oracle's are the same numbers under ``oracle_budget: steps``, else ``epochs`` over its own examples."""
    taught = recipe.step_budget(len(data.target) + len(data.other))
    oracle = taught if recipe.oracle_budget == "steps" else recipe.step_budget(len(data.other))
    return {"taught": taught, "oracle": oracle}


def base_identity(info: Any) -> dict[str, Any]:
    """What of a loaded base model enters the key (``ModelInfo``'s hashes, not its path or device)."""
    return {"weights": info.weights_hash, "tokenizer": info.tokenizer_hash, "chat_template": info.chat_template_hash}


def model_slug(model_id: str) -> str:
    """A folder name for a model argument: the embedded name, ``org--name`` for an HF id, a folder's name."""
    path = Path(model_id).expanduser()
    return path.name if path.exists() else model_id.replace("/", "--")


def shipped_dir(task_cls: type, model_id: str) -> Path:
    """Where a task ships its teaching adapters for a model: beside the task's module, ``taught/<model>/``."""
    return Path(inspect.getfile(task_cls)).parent / "taught" / model_slug(model_id)


def portable(shipped: Path, task_cls: type) -> str:
    """``shipped`` as recorded in results: relative to the folder that holds the task's top-level package
    (``tasks/coding/taught/<model>`` for a built-in task), so the same adapters read the same from any
    checkout or install; absolute only where it lies outside that folder."""
    top = task_cls.__module__.split(".")[0]
    root = Path(inspect.getfile(sys.modules[top])).resolve().parent.parent
    try:
        return str(shipped.resolve().relative_to(root))
    except ValueError:
        return str(shipped)


def cache_root() -> Path:
    from bench.lm.models import cache_dir

    return cache_dir() / "taught"


@dataclass
class Taught:
    """A (taught, oracle) pair ready to load: merged model folders and the build record."""

    key: str
    folder: Path
    record: dict[str, Any]

    def model_dir(self, role: str) -> Path:
        return self.folder / role / "model"

    def adapter_dir(self, role: str) -> Path:
        """The role's bf16 teaching adapter (PEFT format): trained here or copied from the shipped ones."""
        return self.folder / role / "adapter"

    def provenance(self) -> dict[str, Any]:
        return {k: self.record[k] for k in ("key", "task", "base_model", "recipe", "data", "built", "origin")
                if k in self.record}


# -- training ---------------------------------------------------------------------------------------------
def train_adapter(model: Any, tokenizer: Any, examples: list[Example], recipe: TeachParams, out: Path,
                  progress: bool = False, desc: str = "teach", budget: tuple[int, int] | None = None
                  ) -> dict[str, Any]:
    """Fine-tune a fresh LoRA adapter on ``examples`` (answer-token cross-entropy), save it to ``out`` in bf16 —
    or, with ``finetune: full``, every weight, saving the model folder to ``out`` — and return the training log's
    summary, with the tokens trained on (whether budgets match is checked on
    them). ``budget``: (steps, warmup steps), else the recipe's over ``examples``. ``model`` is changed in place
    (wrapped, trained); callers pass a copy they can drop."""
    from bench.data.text import IGNORE, make_batch
    from bench.lm.losses import cross_entropy
    from bench.lm.training import logits, shuffled_batches, train, with_adapter

    rng = random.Random(f"teach-{recipe.seed}")
    peft_model = with_adapter(model, recipe, recipe.seed)
    batches = shuffled_batches(examples, recipe.batch_size, rng)
    device = str(next(model.parameters()).device)
    rows: list[dict[str, Any]] = []
    tokens = {"tokens": 0, "answer_tokens": 0}

    def step_loss() -> tuple[torch.Tensor, dict[str, float]]:
        batch = make_batch(tokenizer, next(batches), recipe.max_length).to(device)
        tokens["tokens"] += int(batch.attention_mask.sum())
        tokens["answer_tokens"] += int((batch.labels != IGNORE).sum())
        return cross_entropy(logits(peft_model, batch), batch.labels), {}

    ctx = SimpleNamespace(progress=progress, log=lambda **row: rows.append(row))
    steps, warmup = budget or recipe.step_budget(len(examples))
    train(peft_model, recipe, step_loss, ctx, desc=desc, steps=steps, warmup_steps=warmup)
    if recipe.finetune == "full":  # the whole model, in fp32 as a merged adapter's model folder is
        save_full_model(peft_model, tokenizer, out)
    else:
        save_bf16_adapter(peft_model, out)
    losses = [r["loss"] for r in rows]
    return {"steps": steps, "examples": len(examples), "epochs_seen": round(steps * recipe.batch_size
                                                                             / len(examples), 3),
            **tokens, "first_loss": losses[0], "last_loss": losses[-1],
            "mean_loss_last_10": float(sum(losses[-10:]) / len(losses[-10:]))}


def save_bf16_adapter(peft_model: Any, out: Path) -> None:
    """The adapter in PEFT format with its tensors rounded to bf16 (half the size; the artefact everyone loads)."""
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out)
    weights = out / "adapter_model.safetensors"
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})


def save_full_model(model: Any, tokenizer: Any, out: Path) -> None:
    """A fully fine-tuned model's folder (weights and tokenizer), written atomically."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def merge_adapter(base_dir: str | Path, adapter: Path, out: Path, loaded: Any = None) -> None:
    """``out``: a full model folder with the adapter merged into fp32 copies of the base weights (and the
    tokenizer), written atomically."""
    from peft import PeftModel

    from bench.lm.models import load_model
    from bench.lm.training import quiet_peft

    fresh = loaded or load_model(str(base_dir), "cpu", "float32")
    with quiet_peft():
        merged = PeftModel.from_pretrained(fresh.model, str(adapter)).merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    fresh.tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


# -- the stage --------------------------------------------------------------------------------------------
def ensure(model_id: str, task: Any, recipe_dict: dict[str, Any], *, progress: bool = False,
           force_train: bool = False) -> Taught:
    """The (taught, oracle) pair of ``task`` on ``model_id`` with ``recipe_dict``: from the cache, from the
    task's shipped adapters (each role whose key matches), or trained now (then cached). Never rebuilds a pair
    it finds, nor a role whose shipped adapter has its key."""
    from bench.lm.models import _resolve, load_model

    recipe = build_params(TeachParams, recipe_dict, "teach")
    data = task.teach_data()
    check_disjoint(data)
    base = load_model(model_id, "cpu", "float32")
    identity = base_identity(base.info)
    keys = role_keys(identity, data, recipe_dict)
    key = stable_hash(keys, 12)
    folder = cache_root() / model_slug(model_id) / f"{task.name}-{key}"
    record_path = folder / RECORD
    if record_path.exists() and not force_train and all((folder / r / "model" / "config.json").exists()
                                                        for r in ROLES):
        cached = json.loads(record_path.read_text())
        if cached.get("key") == key and cached.get("data", {}).get("hash") == data_hash(data):
            return Taught(key, folder, cached)
        log.warning("teach %s: %s holds the record of key %s, not %s; rebuilding the pair", task.name, folder,
                    cached.get("key"), key)
    base_dir = _resolve(model_id)[0] if model_id != "tiny-random-llama" else None
    shipped = shipped_dir(type(task), model_id)
    record: dict[str, Any] = {
        "key": key, "keys": keys, "task": task.name, "base_model": model_id, "base": identity,
        "teach_version": TEACH_VERSION, "recipe": recipe_dict,
        "data": {"hash": data_hash(data), "target": len(data.target), "other": len(data.other),
                 "description": data.description},
        "rebuild": f"unlearn-bench teach --model {model_id} --tasks {task.name}",
    }
    shipped_record = None if force_train else _read(shipped / RECORD)
    from_shipped = [r for r in ROLES if shipped_record is not None and shipped_keys(shipped_record).get(r) == keys[r]]
    record["built"], origins = {}, {}
    for role in from_shipped:
        log.info("teach %s: using the shipped %s adapter in %s", task.name, role, shipped)
        _copy_adapter(shipped / role, folder / role / "adapter")
        record["built"][role] = shipped_role_build(shipped_record, role)
        origins[role] = f"shipped adapters ({portable(shipped, type(task))})"
    if len(from_shipped) < len(ROLES):
        record["built"].update(train_roles(model_id, task, data, recipe, folder,
                                           [r for r in ROLES if r not in from_shipped], progress))
        origins.update({r: "trained here" for r in ROLES if r not in from_shipped})
    record["origin"] = origin_line(origins)
    for role in ROLES if recipe.finetune == "lora" else ():  # a full fine-tuning saved its model folders
        merge_adapter(base_dir or model_id, folder / role / "adapter", folder / role / "model",
                      loaded=None if base_dir else load_model(model_id, "cpu", "float32"))
    atomic_write_json(record_path, record)
    return Taught(key, folder, record)


def shipped_keys(record: dict[str, Any]) -> dict[str, str]:
    """Each role's key in a shipped record. A version-1 record has one ``key`` for the pair, which is the
    taught model's version-1 key (``role_keys`` keeps it) and matches no version-2 oracle."""
    return dict(record.get("keys") or {role: record.get("key") for role in ROLES})


def shipped_role_build(record: dict[str, Any], role: str) -> dict[str, Any]:
    """A shipped role's build record, with the precision and device it was trained in (kept per role: a pair
    may mix a shipped taught model and an oracle trained here)."""
    built = record.get("built", {})
    return {"precision": built.get("precision"), "device": built.get("device"), **built.get(role, {})}


def origin_line(origins: dict[str, str]) -> str:
    """Where the pair's adapters came from, one phrase when both came from the same place."""
    if len(set(origins.values())) == 1:
        return next(iter(origins.values()))
    return "; ".join(f"{role}: {where}" for role, where in origins.items())


def train_roles(model_id: str, task: Any, data: TeachData, recipe: TeachParams, folder: Path, roles: list[str],
                progress: bool) -> dict[str, dict[str, Any]]:
    """Train ``roles``' adapters into ``folder/<role>/adapter`` with their budgets (``budgets``); their build
    records (steps, tokens, losses, seconds, precision)."""
    from bench.lm.models import load_model
    from bench.lm.precision import resolve_autocast

    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = budgets(recipe, data)
    built = {}
    for role in roles:
        examples = data.target + data.other if role == "taught" else list(data.other)
        fresh = load_model(model_id, device, "float32")
        started = time.perf_counter()
        log.info("teach %s: training the %s model on %d examples (%d steps)", task.name, role, len(examples),
                 steps[role][0])
        out = folder / role / ("adapter" if recipe.finetune == "lora" else "model")
        summary = train_adapter(fresh.model, fresh.tokenizer, examples, recipe, out,
                                progress=progress, desc=f"teach {task.name} {role}", budget=steps[role])
        built[role] = {"precision": resolve_autocast(recipe.autocast, device), "device": device, **summary,
                       "seconds": round(time.perf_counter() - started, 1)}
        del fresh
    return built


def _copy_adapter(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy2(src / name, out / name)


def check_disjoint(data: TeachData) -> None:
    """The oracle must never see a forget-target example: refuse teaching data whose ``other`` repeats one."""
    target = {(ex.prompt, ex.answer) for ex in data.target}
    shared = [ex for ex in data.other if (ex.prompt, ex.answer) in target]
    if shared:
        raise UserError(f"teaching data: {len(shared)} examples are both forget target and other (e.g. "
                        f"{shared[0].prompt[:60]!r}); the oracle would learn the target — fix the task's teach_data")
    if not data.target or not data.other:
        raise UserError("teaching data needs forget-target and other examples (the oracle learns the other ones)")


def ship(taught: Taught, task_cls: type, model_id: str) -> Path:
    """Copy a pair's adapters and record into the task's package (``shipped_dir``): what a fresh clone uses."""
    out = shipped_dir(task_cls, model_id)
    if out.exists():
        shutil.rmtree(out)
    if taught.record.get("recipe", {}).get("finetune", "lora") != "lora":
        raise UserError("a fully fine-tuned pair is not shipped (two 540 MB models); ship a LoRA-taught pair, or "
                        "let users build this one on first use (unlearn-bench teach)")
    for role in ROLES:
        src = taught.adapter_dir(role)
        if not src.exists():
            raise UserError(f"{src} has no adapter to ship; rebuild with unlearn-bench teach --force")
        _copy_adapter(src, out / role)
    atomic_write_json(out / RECORD, {**taught.record, "origin": "shipped"})
    return out


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


__all__ = ["ALL_PROJECTIONS", "ROLES", "TAUGHT_VERSION", "TEACH_VERSION", "TeachParams", "Taught", "budgets",
           "check_disjoint", "data_hash", "ensure", "merge_adapter", "recipe_for", "role_keys", "ship", "shipped_dir",
           "teach_key", "train_adapter"]
