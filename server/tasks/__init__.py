"""Tasks: what a request asks for, what the service records, and the lifecycle between them."""
