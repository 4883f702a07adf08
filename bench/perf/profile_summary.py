"""Where a run's time goes, from a py-spy sampling profile (``py-spy record --format raw``).

``make demo-profiled`` records the demo matrix at 10 samples/s into ``<run>/pyspy.txt``: one line per
distinct Python stack, ``frame;frame;…;frame count`` from the outermost frame to the innermost, each frame
written ``function (file:line)``. Samples are attributed twice:

* **phase** — what the harness was doing, by the most specific of these frames on the stack: the base
  model's evaluation (``Engine.base_result``), Reveal's instruction search (``bench/reveal/__init__.py``),
  a method's unlearning (an ``unlearn``, named by the first ``methods/<name>.py`` frame under it), a
  task's evaluation (``evaluate`` in ``tasks/<name>``); anything else is start-up, loading and writing;
* **kind** — which of our building blocks the time was spent under, by the innermost frame from one of
  them: generation (``bench/lm/generation.py``), likelihood probes (``bench/lm/likelihood.py``), training steps
  (``bench/lm/training.py``, ``bench/lm/losses.py``), the code sandbox (``bench/eval/sandbox.py``), or other.

Native torch time is counted against the Python frame that called into it, which is what says which
building block to make faster.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

KINDS = ["generation", "likelihood", "training", "sandbox", "other"]
_KIND_FILES = {"bench/lm/generation.py": "generation", "bench/lm/likelihood.py": "likelihood",
               "bench/lm/training.py": "training", "bench/lm/losses.py": "training", "bench/eval/sandbox.py": "sandbox"}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Frame:
    func: str
    file: str


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    return Frame(match["func"], match["file"].replace("\\", "/")) if match else Frame(text.strip(), "")


def _name(frame: Frame) -> str:
    """The function's own name: py-spy writes qualified names (``Engine.base_result``) on Python ≥ 3.11."""
    return frame.func.rsplit(".", 1)[-1]


def phase_of(stack: list[Frame]) -> str:
    """The harness phase of one sampled stack (outermost frame first)."""
    found = {}
    for i, frame in enumerate(stack):
        name = _name(frame)
        if name == "base_result" and frame.file.endswith("bench/engine/runner.py"):
            found.setdefault("base", "base evaluation")
        elif name == "reveal" and frame.file.endswith("bench/reveal/__init__.py"):
            found.setdefault("reveal", "reveal (forget-data search)")
        elif name == "unlearn" and "unlearn" not in found:
            found["unlearn"] = f"unlearning: {_method_name(stack[i:])}"
        elif name == "evaluate" and "/tasks/" in frame.file:
            found.setdefault("evaluate", f"evaluation: {_task_name(frame.file)}")
    for key in ("base", "reveal", "evaluate", "unlearn"):  # most specific first
        if key in found:
            return found[key]
    return "start-up, loading, writing"


def _method_name(stack: list[Frame]) -> str:
    """A method's module under ``methods/``; methods built on the shared loss loop (``LossMethod.unlearn``
    in bench/lm/training.py) are named by their loss's module when it is on the stack."""
    for frame in stack:
        if "/methods/" in frame.file:
            return Path(frame.file).stem
    return "loss methods: backward, optimiser, probes (shared loop)"


def _task_name(file: str) -> str:
    parts = Path(file).parts
    i = parts.index("tasks")
    return Path(parts[i + 1]).stem if i + 1 < len(parts) else "?"


def kind_of(stack: list[Frame]) -> str:
    for frame in reversed(stack):
        for suffix, kind in _KIND_FILES.items():
            if frame.file.endswith(suffix):
                return kind
    return "other"


def summarise(path: Path) -> dict:
    """Share of samples per phase, split by kind: ``{"samples": n, "rate_hz": …, "phases": [...]}``."""
    by_phase: dict[str, Counter] = defaultdict(Counter)
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        stack = [parse_frame(f) for f in stack_text.split(";") if f]
        n = int(count)
        by_phase[phase_of(stack)][kind_of(stack)] += n
        total += n
    phases = [{"phase": phase, "share": round(sum(kinds.values()) / total, 4),
               "kinds": {k: round(kinds[k] / total, 4) for k in KINDS if kinds[k]}}
              for phase, kinds in sorted(by_phase.items(), key=lambda kv: -sum(kv[1].values()))] if total else []
    kinds_total = Counter()
    for kinds in by_phase.values():
        kinds_total.update(kinds)
    return {"samples": total, "phases": phases,
            "kinds": {k: round(kinds_total[k] / total, 4) for k in KINDS if kinds_total[k]} if total else {}}


def markdown_table(summary: dict) -> list[str]:
    lines = ["| phase | share of samples | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for row in summary["phases"] + [{"phase": "**all**", "share": 1.0, "kinds": summary["kinds"]}]:
        cells = [f"{row['kinds'][k]:.1%}" if k in row["kinds"] else "" for k in KINDS]
        lines.append(f"| {row['phase']} | {row['share']:.1%} | " + " | ".join(cells) + " |")
    return lines
