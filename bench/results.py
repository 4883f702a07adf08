"""The results schema, declared once: what a base evaluation's and a cell's ``result.json`` hold.

Every record is built through these types (the runner's base evaluation and cell, the Ray driver's
"worker lost" record) and serialised by ``to_json``; ``from_json`` reads one back with its metrics as
``Metric`` objects and refuses another schema version. ``RESULTS_SCHEMA`` (``bench.RESULTS_SCHEMA``) is
the version of this layout and of the results directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bench import RESULTS_SCHEMA
from bench.api import Metric

Status = Literal["done", "failed", "diverged"]


def _metrics_json(metrics: dict[str, Metric]) -> dict[str, Any]:
    return {name: metric.to_json() for name, metric in metrics.items()}


def _check_schema(data: dict[str, Any], kind: str) -> None:
    if data.get("schema") != RESULTS_SCHEMA or data.get("kind") != kind:
        raise ValueError(f"not a schema-{RESULTS_SCHEMA} {kind} result (schema {data.get('schema')}, "
                         f"kind {data.get('kind')})")


@dataclass
class BaseResult:
    """The unchanged model's evaluation on one (model, task, task params): the reference of every delta."""

    base_id: str
    #: model, task, task_params
    spec: dict[str, Any]
    metrics: dict[str, Metric]
    provenance: dict[str, Any]
    status: Status = "done"

    def to_json(self) -> dict[str, Any]:
        return {"schema": RESULTS_SCHEMA, "kind": "base", "base_id": self.base_id, "status": self.status,
                "spec": self.spec, "metrics": _metrics_json(self.metrics), "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaseResult:
        _check_schema(data, "base")
        return cls(data["base_id"], data["spec"], {k: Metric.from_json(v) for k, v in data["metrics"].items()},
                   data["provenance"], data["status"])


@dataclass
class CellResult:
    """One method × task × seed: status, metrics with deltas versus the base, trajectory, extras."""

    cell_id: str
    base_id: str
    status: Status
    #: ``CellSpec.to_json()``: model, method, task, seed and every parameter
    spec: dict[str, Any]
    reason: str | None = None
    metrics: dict[str, Metric] = field(default_factory=dict)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"schema": RESULTS_SCHEMA, "kind": "cell", "cell_id": self.cell_id, "base_id": self.base_id,
                "status": self.status, "reason": self.reason, "spec": self.spec,
                "metrics": _metrics_json(self.metrics), "trajectory": self.trajectory, "extras": self.extras,
                "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        _check_schema(data, "cell")
        return cls(data["cell_id"], data["base_id"], data["status"], data["spec"], data.get("reason"),
                   {k: Metric.from_json(v) for k, v in data["metrics"].items()}, data.get("trajectory", []),
                   data.get("extras", {}), data.get("provenance", {}))
