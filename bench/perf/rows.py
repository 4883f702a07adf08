"""One row of the side-by-side performance report (shared by the report and its lm-eval comparison)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PerfRow:
    """One side-by-side measurement."""

    key: str
    title: str
    target: str
    measured: dict[str, Any]
    summary: str
    met: bool | None  # None: no target, or not measurable here
    note: str = ""
    #: The commit the row was measured at (a matrix row: the one its run's cells were computed at), so a
    #: report updated one row at a time (``perf --only``) still says which code each number belongs to.
    commit: str = ""
