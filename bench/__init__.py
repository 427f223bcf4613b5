"""Latentcast's benchmarks: run each from the repository root as `python -m bench.NAME` (bench/README.md)."""
