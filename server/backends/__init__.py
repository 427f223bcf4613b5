"""Where tasks, their event logs, the job queue, the live event feed, output files and API keys are
kept: the implementations of the task ports (server.tasks.ports) and of `KeyStore`
(server.security.keys). `factory` picks them from `--broker`: SQLite + an in-memory queue + an
in-process bus for one process, or Redis for many.
"""
