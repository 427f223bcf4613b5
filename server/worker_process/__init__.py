"""A worker in a process of its own, as `latentcast serve` runs each: two sides of one channel.

`api_side` is the parent's side, in the API process: `WorkerProcess` spawns the child, answers
its calls on the API process's `TaskService`, watches its heartbeats and replaces it when it dies.
`worker_side` is the child's side, the worker process itself: it runs one `Worker` whose calls go
across. `messages` declares what crosses, one Protocol each way, and `channel` carries it.
See docs/process-model.md.
"""
