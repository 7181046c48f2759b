"""Benchmark of the production-like stack: `python -m bench.run` (see bench/README.md)."""
