"""Statistical inference for leaderboards: the crossed bootstrap (``bootstrap``), pairwise separation and rank
confidence sets (``pairwise``), and power that matches the board's decisions (``power``). The ranking rule itself
lives in ``bench.report.ranking``; ``bench.report.scores`` puts them together. docs/scoring.md states each."""
