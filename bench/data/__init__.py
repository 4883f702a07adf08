"""Data in: offline/online sources (hub rows, local JSONL, content hashes) and prompt rendering / batching."""
