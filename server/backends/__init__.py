"""Where tasks, their event logs, the job queue and the live event feed are kept.

`base` defines the small interfaces; `local` (SQLite + in-memory queue + in-process bus) is the
default single-process backend.
"""
