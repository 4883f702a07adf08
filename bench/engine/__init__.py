"""The engine: run configuration, the matrix runner and its executors (in-process, Ray), the crash-safe
results store, provenance, progress, the memory planner and checkpoints."""
