"""Unlearned models kept: ``save_model: merged`` writes each finished cell's model in Hugging Face format
(``OUT/cells/<cell-id>/model/``: safetensors, config, tokenizer) with a model card (README.md: method,
parameters, data, metrics with intervals, provenance) that ``AutoModelForCausalLM.from_pretrained`` loads;
``save_model: adapter`` writes only the LoRA adapter in PEFT format (``OUT/cells/<cell-id>/adapter/``, with
the tokenizer and the card), which ``PeftModel.from_pretrained(base, folder)`` — or ``unlearn-bench eval
--checkpoints`` — puts back on the base model.

The directory is written to a temporary name and renamed when complete, so an interrupted save never
leaves a half-written checkpoint that looks finished."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def model_card(result: dict[str, Any]) -> str:
    spec, prov = result["spec"], result.get("provenance", {})
    lines = [f"# {spec['method']} on {spec['task']} (seed {spec['seed']}) — unlearned with unlearn-bench", "",
             f"Base model: `{spec['model']}` (weights {prov.get('model', {}).get('weights_hash', '?')}). "
             f"Method `{spec['method']}`, task `{spec['task']}` (task version {prov.get('task_version', '?')}), "
             f"preset `{spec['preset']}`. Load with `AutoModelForCausalLM.from_pretrained(<this folder>)`.", "",
             "## Parameters", "", "```json", json.dumps({"method_params": spec["method_params"],
                                                         "task_params": spec["task_params"]}, indent=1), "```", "",
             "## Data", "", *[f"- `{k}`: {v}" for k, v in sorted(prov.get("data_sources", {}).items())], "",
             "## Metrics (95 % bootstrap interval; Δ versus the base model, paired)", "",
             "| metric | group | value | interval | Δ | Δ interval |", "|---|---|---|---|---|---|"]
    for name, m in result.get("metrics", {}).items():
        delta = m.get("delta")
        lines.append(f"| {name} | {m['group']} | {m['value']:.4f} | [{m['ci_low']:.4f}, {m['ci_high']:.4f}] | "
                     + (f"{delta:+.4f} | [{m['delta_ci_low']:+.4f}, {m['delta_ci_high']:+.4f}] |"
                        if delta is not None else "– | – |"))
    lines += ["", "## Provenance", "", "```json", json.dumps({k: prov.get(k) for k in
                                                             ("versions", "git", "device", "wall_time_s")},
                                                            indent=1, default=str), "```", ""]
    return "\n".join(lines)


def staging(folder: Path, kind: str) -> Path:
    """An empty temporary folder for a checkpoint of ``kind`` ("model" or "adapter") of a cell."""
    tmp = folder / f".{kind}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def save_weights(model: Any, tmp: Path) -> None:
    """A merged model's weights, or a PEFT model's adapter alone (``save_pretrained`` of each)."""
    model.save_pretrained(tmp, safe_serialization=True)


def finish(tmp: Path, tokenizer: Any, result: dict[str, Any], kind: str) -> Path:
    """Add the tokenizer and the card to a staged checkpoint and move it to ``<cell>/<kind>`` (atomically, by
    rename: an interrupted save never leaves a folder that looks finished)."""
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(model_card(result), encoding="utf-8")
    target = tmp.parent / kind
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
