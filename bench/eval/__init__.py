"""Scoring a model: metric statistics (bootstrap intervals, paired deltas), metric scales, text metrics, the
sandbox for model-written code, and lm-evaluation-harness tasks as utility metrics."""
