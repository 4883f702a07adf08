"""Committed boards are what the code makes of their data: the demo board and the relearn-calibration board,
rescored from their own ``board-data.json.gz`` with this checkout's scoring and reporters, are identical file by
file (a change to the inference or the reporters must come with the regenerated boards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.audit import rescore

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"


@pytest.mark.parametrize("board", ["smollm2-135m-demo", "relearn-calibration"])
def test_the_committed_boards_rescore_identically(board):
    assert rescore(BOARDS / board) == []
