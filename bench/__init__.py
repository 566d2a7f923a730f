"""Benchmarks, each printing one JSON object (`python bench/<name>.py`, see docs/performance.md)."""
