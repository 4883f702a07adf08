"""Committed boards are what the code makes of their data: the demo board, rescored from its own
``board-data.json.gz`` with this checkout's scoring and reporters, is identical file by file (a change to the
inference or the reporters must come with the regenerated board)."""

from __future__ import annotations

from pathlib import Path

from bench.report.audit import rescore

DEMO = Path(__file__).resolve().parents[1] / "leaderboards" / "smollm2-135m-demo"


def test_the_committed_demo_board_rescores_identically():
    assert rescore(DEMO) == []
