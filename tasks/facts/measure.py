"""Does the untaught model already know a kind of fact?  (issue 47, item 5: measurement only)

For each kind of fact in ``tasks.facts.data`` the embedded model is asked every item in a chat prompt
("What is the capital of France? Answer with the name only.") and scored two ways:

* **greedy**: the greedy reply (``max_new_tokens`` tokens) is right when it names the gold answer (any
  accepted spelling, after normalisation: case, accents, apostrophes, punctuation, "St." = "Saint") and no
  other answer of the same kind. Matching is by whole words, longest phrase first, so "one hundred" does not
  count as "one" and "Guatemala City" is not the country "Guatemala". A refusal or "I don't know" names no
  answer and scores 0; hedging between two candidates ("Paris or Lyon" when both are answers of the kind)
  scores 0; repeating the question scores 0 (items whose answer appears in the question are not in the
  lists). Only the reply's first non-empty line is read (``first_line``): asked for the name only, the answer
  is there, and what a small model rambles on with afterwards (examples, other facts) is not its answer.
* **forced choice**: the gold answer against 3 distractors of the same kind (chance 25 %), each option
  scored as the summed log-likelihood of its tokens right after the assistant header
  (``bench.lm.likelihood.choose``, lm-evaluation-harness's ``acc``); ``acc_norm`` divides by characters.

Accuracies carry exact 95 % Clopper–Pearson intervals.

    .venv/bin/python -m tasks.facts.measure                     # all kinds, fp32
    .venv/bin/python -m tasks.facts.measure --kinds capitals --limit 20 --show 10
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.facts import data
from tasks.facts.data import Fact

# ----------------------------------------------------------------------------------------------- scoring

def normalise(text: str) -> str:
    """Lower case, accents and apostrophes dropped, punctuation to spaces, "st" spelled "saint"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"['’‘ʻ`]", "", text).replace("&", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"\bst\b", "saint", text)
    return " ".join(text.split())


def first_line(reply: str) -> str:
    for line in reply.splitlines():
        if line.strip():
            return line
    return ""


def mentions(reply: str, candidates: Sequence[tuple[str, Any]]) -> list[Any]:
    """Keys of the candidate phrases named in ``reply``: whole words, longest phrase first, each stretch of
    text counted once. ``candidates`` are (phrase, key) pairs; a key of ``None`` marks neutral text (the
    question's subject), which is consumed but not reported."""
    text = f" {normalise(reply)} "
    found = []
    for phrase, key in sorted(candidates, key=lambda c: (-len(normalise(c[0])), c[1] is not None)):
        words = normalise(phrase)
        if not words:
            continue
        pattern = re.compile(rf"(?<=\s){re.escape(words)}(?=\s)")
        text, hits = pattern.subn(" | ", text)
        if hits and key is not None:
            found.append(key)
    return found


def score_reply(reply: str, gold: Any, candidates: Sequence[tuple[str, Any]], subject: str = "",
                only_first_line: bool = True) -> int:
    """1 when the reply names the gold key and no other candidate key, else 0."""
    if only_first_line:
        reply = first_line(reply)
    keys = set(mentions(reply, [*candidates, (subject, None)]))
    return int(keys == {gold})


# ------------------------------------------------------------------------------------------------- kinds

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")


@dataclass
class Kind:
    name: str
    facts: Callable[[], list[Fact]]
    question: str  # formatted with subject=
    # extra wrong answers of the kind, gold for no item: (phrase, key) pairs, spellings of one answer sharing a key
    extra_candidates: Callable[[], list[tuple[str, str]]] = lambda: []
    option_pool: Callable[[list[Fact]], list[str]] | None = None  # forced-choice options (default: all golds)
    note: str = ""

    def candidates(self, facts: list[Fact]) -> list[tuple[str, Any]]:
        """(phrase, key) for every accepted answer of every item, keyed by canonical answer."""
        out = [(alias, f.answer) for f in facts for alias in f.answers]
        out += self.extra_candidates()
        return out


def _numbers_up_to(last: int) -> list[tuple[str, str]]:
    return [(w, data.number_words(n)[0]) for n in range(1, last + 1) for w in data.number_words(n)]


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("capitals", data.capitals, "What is the capital of {subject}? Answer with the name only."),
    Kind("continents", data.continents, "On which continent is {subject}? Answer with the name only.",
         extra_candidates=lambda: [("Antarctica", "Antarctica"), ("Australia", "Australia")],
         option_pool=lambda facts: list(CONTINENTS)),
    Kind("elements", data.elements,
         "Which chemical element has the symbol {subject}? Answer with the name only."),
    Kind("past_tenses", data.past_tenses,
         'What is the simple past tense of the English verb "{subject}"? Answer with the word only.'),
    Kind("numbers", data.numbers, "How is the number {subject} written in English words? Answer with the words only.",
         extra_candidates=lambda: _numbers_up_to(999)),
]}


def distractors(kind: Kind, facts: list[Fact], i: int, k: int = 3, seed: int = 0) -> list[str]:
    """``k`` canonical answers of the kind other than item ``i``'s, a fixed draw per (kind, item, seed)."""
    pool = kind.option_pool(facts) if kind.option_pool else [f.answer for f in facts]
    others = sorted({a for a in pool if a != facts[i].answer})
    return random.Random(f"{kind.name}/{facts[i].subject}/{seed}").sample(others, k)


# ----------------------------------------------------------------------------------------------- measure

@dataclass
class KindResult:
    kind: str
    n: int
    greedy_correct: int
    choice_correct: int
    choice_norm_correct: int
    greedy_seconds: float
    choice_seconds: float
    items: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        from bench.eval.stats import clopper_pearson

        def acc(k: int) -> dict[str, Any]:
            low, high = clopper_pearson(k, self.n)
            return {"correct": k, "accuracy": k / self.n, "ci95": [round(low, 4), round(high, 4)]}

        return {"kind": self.kind, "n": self.n, "greedy": acc(self.greedy_correct),
                "forced_choice": acc(self.choice_correct), "forced_choice_norm": acc(self.choice_norm_correct),
                "greedy_seconds": round(self.greedy_seconds, 1), "choice_seconds": round(self.choice_seconds, 1)}


def measure_kind(model: Any, tokenizer: Any, kind: Kind, *, limit: int | None = None, stride: int = 1,
                 max_new_tokens: int = 24, batch_size: int = 16, seed: int = 0) -> KindResult:
    from bench.data.text import render_prompt
    from bench.lm.generation import generate
    from bench.lm.likelihood import choose

    facts = kind.facts()
    everything = facts
    facts = facts[::stride]  # every stride-th item: a sample spread over the list (regions, periods, letters)
    if limit:
        facts = facts[:limit]
    candidates = kind.candidates(everything)
    prompts = [render_prompt(tokenizer, kind.question.format(subject=f.subject)) for f in facts]

    start = time.perf_counter()
    replies = [r[0] for r in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                      batch_size=batch_size)]
    greedy_seconds = time.perf_counter() - start

    options = [[f.answer, *distractors(kind, everything, everything.index(f), seed=seed)] for f in facts]
    start = time.perf_counter()
    sums = choose(model, tokenizer, prompts, options, batch_size=batch_size)
    choice_seconds = time.perf_counter() - start

    items, g, c, cn = [], 0, 0, 0
    for f, reply, opts, s in zip(facts, replies, options, sums):
        right = score_reply(reply, f.answer, candidates, f.subject)
        pick = max(range(len(opts)), key=lambda j: s[j])
        pick_norm = max(range(len(opts)), key=lambda j: s[j] / max(1, len(opts[j])))
        g, c, cn = g + right, c + (pick == 0), cn + (pick_norm == 0)
        items.append({"subject": f.subject, "gold": f.answer, "reply": reply, "greedy": right,
                      "options": opts, "logliks": [round(x, 3) for x in s], "choice": int(pick == 0)})
    return KindResult(kind.name, len(facts), g, c, cn, greedy_seconds, choice_seconds, items)


def _fmt(block: dict[str, Any]) -> str:
    low, high = block["ci95"]
    return f"{block['accuracy']:.3f} [{low:.3f}, {high:.3f}] ({block['correct']})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--limit", type=int, default=None, help="first N items per kind (smoke runs)")
    parser.add_argument("--stride", type=int, nargs="+", default=[1],
                        help="measure every k-th item (one k for all kinds, or one per kind): a spread sample")
    parser.add_argument("--model", default=None, help="model id (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | auto")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="distractor draw")
    parser.add_argument("--show", type=int, default=0, help="print N replies per kind")
    parser.add_argument("--out", type=Path, default=None, help="write summary and per-item replies as JSON")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("UNLEARN_BENCH_PROGRESS", "0")
    from bench.lm.models import EMBEDDED, ModelCache

    start = time.perf_counter()
    loaded = ModelCache().base(args.model or EMBEDDED, "cpu", args.dtype)
    load_seconds = time.perf_counter() - start
    print(f"model {loaded.info.model_id} dtype {loaded.info.dtype} loaded in {load_seconds:.1f}s", flush=True)

    summaries, details = [], {}
    strides = args.stride * len(args.kinds) if len(args.stride) == 1 else args.stride
    if len(strides) != len(args.kinds):
        parser.error("--stride takes one value or one per kind")
    for name, stride in zip(args.kinds, strides):
        result = measure_kind(loaded.model, loaded.tokenizer, KINDS[name], limit=args.limit, stride=stride,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed)
        s = result.summary() | {"stride": stride, "of": len(KINDS[name].facts())}
        summaries.append(s)
        details[name] = result.items
        print(f"{name:12s} n={s['n']:4d}  greedy {_fmt(s['greedy'])}  forced-choice {_fmt(s['forced_choice'])}"
              f"  (norm {_fmt(s['forced_choice_norm'])})  {s['greedy_seconds']}s + {s['choice_seconds']}s",
              flush=True)
        for item in result.items[:args.show]:
            print(f"    {item['greedy']} {item['subject']!r} -> {item['reply']!r} (gold {item['gold']!r})")
        if args.out:  # after every kind, so a long run leaves what it measured
            _write(args, loaded, summaries, details, time.perf_counter() - start)
    total = time.perf_counter() - start
    print(f"wall time {total:.1f}s (dtype {loaded.info.dtype}, max_new_tokens {args.max_new_tokens})")
    if args.out:
        _write(args, loaded, summaries, details, total)
    return 0


def _write(args: Any, loaded: Any, summaries: list[dict[str, Any]], details: dict[str, Any], seconds: float) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": loaded.info.model_id, "weights_hash": loaded.info.weights_hash, "dtype": loaded.info.dtype,
        "max_new_tokens": args.max_new_tokens, "seed": args.seed, "limit": args.limit, "kinds_order": args.kinds,
        "wall_seconds": round(seconds, 1), "kinds": summaries, "items": details}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
