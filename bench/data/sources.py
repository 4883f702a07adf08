"""Data-source helpers shared by tasks: online detection, local JSONL, HF datasets, hashing.

Every data source has an online form (an HF dataset id) and an offline form (a package or a local
file). Tasks record the source actually used in ``TaskData.sources``; the results and leaderboards show
it, so an offline substitute is never silent.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.errors import UserError


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """False when ``HF_HUB_OFFLINE`` is set or huggingface.co:443 cannot be reached quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSONL file; a missing or empty file is a one-line user error."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file {path} does not exist; fix the path in the task parameters")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UserError(f"{path}:{lineno} is not valid JSON; fix or regenerate the file") from None
    if not rows:
        raise UserError(f"data file {path} is empty; point the task at a file with examples")
    return rows


def hub_rows(dataset_id: str, split: str, config: str | None = None) -> list[dict[str, Any]]:
    """Load a hub dataset split as a list of dicts (online form of a source)."""
    from datasets import load_dataset

    try:
        ds = load_dataset(dataset_id, config, split=split)
    except Exception as err:  # noqa: BLE001 - hub errors come in many types
        raise UserError(f"cannot load {dataset_id} ({config or 'default'}/{split}) from the hub: "
                        f"{str(err).splitlines()[0][:200]}; go online or choose the offline source") from None
    return [dict(r) for r in ds]


def content_hash(items: Any) -> str:
    """A short hash of the data actually used (recorded in provenance)."""
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]
