"""The results store: crash-safe files under one output directory.

Layout::

    OUT/manifest.json                 harness + schema version (checked before anything is written)
    OUT/base/<base-id>/result.json    base-model evaluation, once per (model, task, eval config)
    OUT/cells/<cell-id>/result.json   one cell: status, metrics, trajectory, provenance
    OUT/cells/<cell-id>/samples.jsonl per-sample records
    OUT/cells/<cell-id>/log.txt       the cell's log (tracebacks of failures included)
    OUT/invocations.jsonl             one line per `run`: start, wall time, executor, what ran

Every file is written atomically (temp file in the same directory, fsync, rename, fsync of the
directory), so a crash at any point leaves either the old file or the new one, never a partial one. A
cell counts as finished only once its ``result.json`` exists.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench import RESULTS_SCHEMA, __version__
from bench.errors import UserError

FINISHED = ("done", "diverged")
#: A run's tuning selections (``bench.engine.tuning`` writes it, ``bench.report`` reads it): part of the
#: results layout, so it lives here where both import it.
TUNING_FILE = "tuning.json"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise UserError(f"{path} is corrupt (not JSON); delete that cell directory and resume") from None


class ResultsStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    # -- manifest ------------------------------------------------------------------------------
    def open(self, create: bool = True) -> None:
        """Check the directory was written by a compatible version; create the manifest if new."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root} is a file, not a directory; give a directory path for the results")
        manifest = self.root / "manifest.json"
        if manifest.exists():
            data = read_json(manifest)
            if data.get("schema") != RESULTS_SCHEMA:
                raise UserError(
                    f"{self.root} holds results of schema {data.get('schema')} (unlearn-bench "
                    f"{data.get('version')}); this is schema {RESULTS_SCHEMA}: use a new --out directory")
            if create:
                self.remove_interrupted_writes()
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise UserError(f"{self.root} is not empty and is not an unlearn-bench results directory; "
                            "choose another --out")
        if create:
            atomic_write_json(manifest, {"tool": "unlearn-bench", "schema": RESULTS_SCHEMA, "version": __version__})

    def remove_interrupted_writes(self) -> int:
        """Delete temp files left by a process killed mid-write (the finished file, if any, is intact).

        Called by the driver when a matrix starts or resumes (``open(create=True)``), before any worker
        writes; workers open the store with ``create=False`` and never sweep.
        """
        leftovers = [p for p in self.root.rglob(".*.tmp") if p.is_file()]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)

    # -- cells ---------------------------------------------------------------------------------
    def cell_dir(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def base_dir(self, base_id: str) -> Path:
        return self.root / "base" / base_id

    def cell_result(self, cell_id: str) -> dict[str, Any] | None:
        path = self.cell_dir(cell_id) / "result.json"
        return read_json(path) if path.exists() else None

    def base_result(self, base_id: str) -> dict[str, Any] | None:
        path = self.base_dir(base_id) / "result.json"
        return read_json(path) if path.exists() else None

    def write_cell(self, cell_id: str, result: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        folder = self.cell_dir(cell_id)
        atomic_write_jsonl(folder / "samples.jsonl", samples)
        atomic_write_json(folder / "result.json", result)  # last: marks the cell finished

    def write_base(self, base_id: str, result: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        folder = self.base_dir(base_id)
        atomic_write_jsonl(folder / "samples.jsonl", samples)
        atomic_write_json(folder / "result.json", result)

    # -- attacks (bench.engine.attacks) ------------------------------------------------------------
    def attack_path(self, cell_id: str, attack_id: str) -> Path:
        return self.cell_dir(cell_id) / "attacks" / f"{attack_id}.json"

    def control_path(self, base_id: str, attack_id: str, seed: int) -> Path:
        return self.base_dir(base_id) / "attacks" / f"{attack_id}__s{seed}.json"

    def is_complete(self, cell_id: str, attack_ids: list[str]) -> bool:
        """Finished, and (when it finished ``done``) every configured attack has a result that did not fail."""
        result = self.cell_result(cell_id)
        if result is None or result.get("status") not in FINISHED:
            return False
        return result["status"] != "done" or all(self._attack_done(cell_id, a) for a in attack_ids)

    def _attack_done(self, cell_id: str, attack_id: str) -> bool:
        """An attack result exists and did not fail (a failed attack is retried, as a failed cell is)."""
        path = self.attack_path(cell_id, attack_id)
        return path.exists() and read_json(path).get("status") == "done"

    def all_attacks(self) -> list[dict[str, Any]]:
        return [read_json(p) for p in sorted((self.root / "cells").glob("*/attacks/*.json"))]

    def append_invocation(self, record: dict[str, Any]) -> None:
        """Add one line to ``invocations.jsonl`` (rewritten atomically: old lines are never lost)."""
        path = self.root / "invocations.jsonl"
        rows = self.invocations()
        atomic_write_jsonl(path, [*rows, record])

    def invocations(self) -> list[dict[str, Any]]:
        path = self.root / "invocations.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def all_cells(self) -> list[dict[str, Any]]:
        return [read_json(p) for p in sorted((self.root / "cells").glob("*/result.json"))]

    def all_bases(self) -> list[dict[str, Any]]:
        return [read_json(p) for p in sorted((self.root / "base").glob("*/result.json"))]
