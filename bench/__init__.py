"""Benchmarks: `python -m bench.run_all [--quick] [--out docs/benchmarks.md]` (see docs/benchmarks.md)."""
