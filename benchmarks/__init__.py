"""Benchmark programs of the platform (``make bench``); see docs/performance.md."""
