"""Checkpoints in: ``unlearn-bench eval --base MODEL --checkpoints DIR_OR_ID ...`` scores models unlearned
elsewhere (open-unlearning's published checkpoints, or this harness's own ``save_model``) on the tasks,
against their base, with the same results store, resume and leaderboards as methods.

Each checkpoint is a cell of the pseudo-method ``checkpoint`` (registered only for such runs: this module is
added to the run's ``plugins``, so that every worker and a resumed run find it), whose "unlearning" puts
the checkpoint's weights into the borrowed base model — a full model (``from_pretrained``) or a PEFT
adapter (merged onto the base). Its leaderboard row is the checkpoint's name (``label``).

Before anything runs, every checkpoint's architecture and tokenizer are compared with the base's
(``check_compatible``): a checkpoint of another architecture, shape or vocabulary would be scored against
the wrong reference, so it is refused with one line (exit 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.api import Method, UnlearnContext
from bench.errors import UserError
from bench.hookspecs import hookimpl

log = logging.getLogger("unlearn_bench")

#: Config fields that must agree for a checkpoint's weights to be the base model's shape.
SHAPE_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size", "tie_word_embeddings")


def default_label(path: str) -> str:
    """A row name for a checkpoint: the folder's name (its cell's, for this harness's ``model``/``adapter``
    folders), or the HF id."""
    local = Path(path).expanduser()
    if not local.exists():
        return path
    local = local.resolve()
    return local.parent.name if local.name in ("model", "adapter") else local.name


@dataclass
class CheckpointParams:
    #: A local folder or an HF id: full weights (``config.json`` + safetensors) or a PEFT adapter
    #: (``adapter_config.json``). ``NAME=PATH`` names the row.
    path: str = ""
    #: The leaderboard row; default: ``default_label(path)``.
    label: str = ""

    def validate(self) -> None:
        if not self.path:
            raise ValueError("checkpoint needs a path: --checkpoints DIR_OR_ID (or NAME=DIR_OR_ID)")
        if "=" in self.path and not Path(self.path).expanduser().exists():
            self.label, self.path = self.path.split("=", 1)
        self.label = self.label or default_label(self.path)


def is_adapter(path: str) -> bool:
    local = Path(path).expanduser()
    if local.exists():
        return (local / "adapter_config.json").exists()
    try:
        from peft import PeftConfig

        PeftConfig.from_pretrained(path)
        return True
    except Exception:  # noqa: BLE001 - no adapter config at that id: a full model
        return False


def _config_of(path: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise UserError(f"checkpoint '{path}' has no readable config ({str(err).splitlines()[0]}); pass a "
                        "saved Hugging Face model folder, a PEFT adapter folder or an HF id") from None


def _tokenizer_hash_of(path: str) -> str | None:
    """The checkpoint's own tokenizer's hash, or ``None`` when it ships none (then the base's is used)."""
    from bench.lm.models import load_tokenizer, tokenizer_hash

    local = Path(path).expanduser()
    if local.exists() and not any((local / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    try:
        return tokenizer_hash(load_tokenizer(path))
    except (OSError, ValueError):
        return None


def check_compatible(base_model: str, path: str) -> None:
    """Refuse (one line) a checkpoint whose architecture, shape or tokenizer differs from the base's."""
    from bench.lm.models import TINY, convert_embedded, load_tokenizer, model_config, tokenizer_hash
    from bench.lm.models import _resolve as resolve_model

    base = model_config(base_model)
    if is_adapter(path):
        from accelerate import init_empty_weights
        from peft import PeftConfig
        from transformers import AutoModelForCausalLM

        adapter = PeftConfig.from_pretrained(path)
        with init_empty_weights():  # the base's module names, from its config alone
            names = {name.rsplit(".", 1)[-1] for name, _ in AutoModelForCausalLM.from_config(base).named_modules()}
        # a string is a pattern (or "all-linear") that PEFT resolves itself; a list names modules
        listed = [] if isinstance(adapter.target_modules, str) else list(adapter.target_modules or [])
        missing = sorted(m for m in listed if m not in names)
        if missing:
            raise UserError(f"checkpoint '{path}' is an adapter for modules {missing} that the base "
                            f"{base_model} does not have; pass an adapter trained on {base_model}")
        config = None
    else:
        config = _config_of(path)
    if config is not None:
        arch = (getattr(config, "architectures", None) or [None])[0]
        base_arch = (getattr(base, "architectures", None) or [arch])[0]
        differ = [f for f in SHAPE_FIELDS if getattr(config, f, None) != getattr(base, f, None)]
        if arch != base_arch:
            differ.insert(0, f"architectures ({arch} vs {base_arch})")
        if differ:
            raise UserError(f"checkpoint '{path}' does not have the architecture of the base {base_model} "
                            f"(differs in {', '.join(differ)}); pass --base the model it was unlearned from")
    own = _tokenizer_hash_of(path)
    if own is not None:
        base_tok = load_tokenizer(convert_embedded() if base_model == TINY else resolve_model(base_model)[0])
        if own != tokenizer_hash(base_tok):
            raise UserError(f"checkpoint '{path}' has a different tokenizer from the base {base_model}: its "
                            "scores would not be comparable; pass --base the model it was unlearned from")


class Checkpoint(Method):
    """A model unlearned elsewhere: its weights replace the base's; nothing is trained."""

    name = "checkpoint"
    description = "A checkpoint unlearned elsewhere (full weights or a PEFT adapter), scored against its base"
    Params = CheckpointParams

    def unlearn(self, ctx: UnlearnContext) -> Any:
        path = self.params.path
        dtype = next(ctx.model.parameters()).dtype
        adapter = is_adapter(path)
        if adapter:
            from peft import PeftModel

            from bench.lm.training import quiet_peft

            with quiet_peft():
                model = PeftModel.from_pretrained(ctx.model, path).merge_and_unload()
        else:
            from transformers import AutoModelForCausalLM

            loaded = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            ctx.model.load_state_dict(loaded.state_dict(), strict=True)
            del loaded
            model = ctx.model
        model.requires_grad_(False)
        model.eval()
        ctx.extras["checkpoint"] = {"path": path, "kind": "adapter" if adapter else "full"}
        return model

    def memory_profile(self) -> tuple[int, bool]:
        return 0, False

    def ends_with_adapter(self) -> bool:
        return False


@hookimpl
def register_methods(register):
    register(Checkpoint)


def parse_checkpoints(entries: list[str]) -> list[dict[str, str]]:
    """``--checkpoints`` entries -> method params, each checked for a unique row name."""
    params = []
    for entry in entries:
        p = CheckpointParams(path=entry)
        p.validate()
        params.append({"path": p.path, "label": p.label})
    labels = [p["label"] for p in params]
    for label in labels:
        if labels.count(label) > 1:
            raise UserError(f"two checkpoints would share the row name '{label}'; name them with "
                            "--checkpoints NAME=PATH")
    return params
