"""Ranges and minimum meaningful effects shared by the built-in tasks' metrics.

A metric declares its range (floors and ceilings are detected against it) and the smallest change its
author considers meaningful (``bench.api.Metric``). These are this project's choices, stated once here so
every task uses the same yardstick (rationale in ``docs/scoring.md``):

  * shares of items (pass@k, accuracy, F1, toxicity probability), range [0, 1]: 0.05 — five points, about
    one item in twenty;
  * mean per-token log-likelihoods, range (−∞, 0]: 0.05 nats — about a 5 % change of the per-token
    probability (e^0.05 ≈ 1.05);
  * mean log-perplexities (≥ 0): 0.1 — about a 10 % change of the perplexity;
  * mean toxicity scores and distinct-n ratios, range [0, 1]: 0.02.
"""

from __future__ import annotations

SHARE: tuple[float | None, float | None] = (0.0, 1.0)
SHARE_EFFECT = 0.05
LOGLIK: tuple[float | None, float | None] = (None, 0.0)
LOGLIK_EFFECT = 0.05
LOG_PPL: tuple[float | None, float | None] = (0.0, None)
LOG_PPL_EFFECT = 0.1
SCORE_EFFECT = 0.02
