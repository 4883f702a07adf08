"""Predicted (``memory_plan``) versus measured peak tensor memory, per model shape and training setup.

Run on a GPU with randomly initialised models built from real configs (no weights needed):
``python -m bench.perf.memory --device cuda --out DIR``; on CPU the measurement is ``LiveStorages``.
Writes ``memory-<device>.md`` and ``.json``. The configs are the shapes published in each model's
``config.json`` on the Hugging Face hub (only the shape matters for memory).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench.engine.provenance import git_commit
from bench.lm.memory_plan import GenerationShape, GiB, ModelShape, TrainingShape, estimate

#: Shapes from the hub's config.json of HuggingFaceTB/SmolLM2-135M-Instruct, meta-llama/Llama-3.2-1B-Instruct
#: and meta-llama/Llama-3.1-8B-Instruct.
CONFIGS: dict[str, dict[str, Any]] = {
    "SmolLM2-135M": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True},
    "Llama-3.2-1B": {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                     "tie_word_embeddings": True},
    "Llama-3.1-8B": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False},
}

#: (label, training shape) per case; the memory profiles of the built-in methods: GA (1 graph), GradDiff
#: (2), NPO with retain (2 + reference), R&R (LoRA).
_FULL_FT = [
    ("GA full, bs 4x256", TrainingShape("full", batch_size=4, max_length=256)),
    ("GA full + fp32 masters", TrainingShape("full", batch_size=4, max_length=256, master_weights=True)),
    ("NPO+retain full (reference)",
     TrainingShape("full", batch_size=4, max_length=256, graphs=2, needs_reference=True)),
]
CASES: dict[str, list[tuple[str, TrainingShape]]] = {
    "SmolLM2-135M": [
        *_FULL_FT,
        ("LoRA r8 q,v", TrainingShape("lora", batch_size=4, max_length=256)),
        ("GA full + grad. checkpointing", TrainingShape("full", batch_size=4, max_length=256,
                                                        gradient_checkpointing=True)),
    ],
    "Llama-3.2-1B": [
        *_FULL_FT,
        ("GradDiff full + fp32 masters", TrainingShape("full", batch_size=4, max_length=256, graphs=2,
                                                       master_weights=True)),
        ("LoRA r8 q,v, bs 8x512", TrainingShape("lora", batch_size=8, max_length=512)),
        ("LoRA + grad. checkpointing, bs 8x512", TrainingShape("lora", batch_size=8, max_length=512,
                                                                gradient_checkpointing=True)),
    ],
    "Llama-3.1-8B": [
        ("LoRA r8 q,v, bs 4x256", TrainingShape("lora", batch_size=4, max_length=256)),
        ("LoRA + grad. checkpointing, bs 8x1024", TrainingShape("lora", batch_size=8, max_length=1024,
                                                                 gradient_checkpointing=True)),
        ("GA full, bs 1x256 (no masters)", TrainingShape("full", batch_size=1, max_length=256)),
    ],
}
GENERATION = GenerationShape(batch_size=16, prompt_tokens=1000, new_tokens=256)


def _builder(name: str, device: str) -> Any:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**CONFIGS[name])
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def build() -> Any:
        with torch.device(device):
            return AutoModelForCausalLM.from_config(config, dtype=dtype)

    return config, build


def measure_all(device: str, only: list[str] | None = None) -> list[dict[str, Any]]:
    from bench.perf.memory_measure import measure_generation, measure_train_step

    rows = []
    dtype = "bfloat16" if device == "cuda" else "float32"
    for name in only or list(CONFIGS):
        config, build = _builder(name, device)
        shape = ModelShape.from_config(config)
        capacity = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
        for label, train in CASES[name] + [("generation 16 x (1000 + 256)", None)]:
            gen = GENERATION
            predicted = estimate(shape, train or TrainingShape(), gen, dtype, resident_copies=1,
                                 foreach=device == "cuda", reference_on_device=device != "cuda")
            peak = predicted.eval_peak if train is None else predicted.train_peak
            start = time.perf_counter()
            try:
                measured: int | None = (measure_generation(build(), gen, device) if train is None
                                        else measure_train_step(build, train, device))
                note = ""
            except torch.cuda.OutOfMemoryError:
                measured, note = None, "out of memory"
            if device == "cuda":
                torch.cuda.empty_cache()
            row = {"model": name, "n_params": shape.n_params, "case": label, "dtype": dtype,
                   "predicted_gib": round(peak / GiB, 2),
                   "measured_gib": None if measured is None else round(measured / GiB, 2),
                   "ratio": None if not measured else round(peak / measured, 3), "note": note,
                   "fits_prediction": None if capacity is None else peak <= 0.9 * capacity,
                   "seconds": round(time.perf_counter() - start, 1), "breakdown_gib": {
                       k: round(v / GiB, 2) for k, v in predicted.to_json().items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], name: str, device: str, torch_version: str, written: str = "",
           commit: str = "") -> str:
    """The report; ``written`` (date) and ``commit`` head it: a report beside others says how current it is."""
    lines = [f"# Predicted versus measured peak memory ({name}, torch {torch_version})", "",
             f"Written {written[:10] or 'n/a'} at commit {commit or 'n/a'}.", "",
             "Randomly initialised models from each config's shape; one resident copy of the weights; "
             "two optimiser steps on batches of random tokens at full length (the steady state: AdamW's "
             "moments exist); generation: one batch with a KV cache. Measured: "
             + ("`torch.cuda.max_memory_allocated`." if device.startswith("cuda") else "live tensor storages.")
             + " Written by `python -m bench.perf.memory`; predictions by `bench.lm.memory_plan` (what "
             "`unlearn-bench plan` shows).",
             "", "| model | case | predicted GiB | measured GiB | predicted / measured | note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['case']} | {r['predicted_gib']} | "
                     f"{r['measured_gib'] if r['measured_gib'] is not None else '—'} | "
                     f"{r['ratio'] if r['ratio'] is not None else '—'} | {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="leaderboards/perf")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS))
    args = parser.parse_args(argv)
    rows = measure_all(args.device, args.only)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    git = git_commit()
    commit = (git.get("commit") or "n/a")[:10] + ("-dirty" if git.get("dirty") else "")
    written = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    (out / f"memory-{slug}.md").write_text(render(rows, name, args.device, torch.__version__, written, commit))
    (out / f"memory-{slug}.json").write_text(json.dumps({"device": name, "torch": torch.__version__,
                                                          "finished_at": written, "git": git, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
