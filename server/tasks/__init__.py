"""Tasks: what a request asks for, what the service records, the lifecycle between them, and the
ports (interfaces) through which the service reaches storage, queue and live feed."""
