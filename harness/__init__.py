"""What the tests (tests/) and the benchmarks (bench/) share: the real processes both run against
(`harness.processes`) and the one way both wait for a condition (`harness.waiting`).

Not part of the installed package: a checkout's tooling, imported as `harness` from the
repository root (pytest's rootdir, and `python -m bench.NAME`'s working directory).
"""
